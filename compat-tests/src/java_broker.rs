//! The official Java broker from the Maven reference jars (`JavaBroker`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{
    cluster_info, compat_dir, file_tail, free_broker_port, run_with_timeout, text, Proc,
    TEST_BROKER_KEYS,
};

// ------------------------------------------------------- official Java broker

/// Lays out the official server jars for `version` in
/// `compat-tests/java/target/reference/<version>/lib` (Maven, cached with the
/// same stamp as `reference-cluster.sh`).
pub fn reference_libs(version: &str) -> PathBuf {
    let java = compat_dir().join("java");
    let out = java.join("target").join("reference").join(version);
    let script = r#"set -euo pipefail
here="$1"; ver="$2"; out="$3"
stamp="$out/.prepared"
want="$(cat "$here/reference/pom.xml" | sha256sum | cut -d' ' -f1)-$ver"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && ls "$out"/lib/*.jar >/dev/null 2>&1; then
  exit 0
fi
mkdir -p "$out"
# Test binaries may run side by side: one Maven at a time, then look again.
if command -v flock >/dev/null; then
  exec 9>"$out/../.maven.lock"
  flock 9
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && ls "$out"/lib/*.jar >/dev/null 2>&1; then
    exit 0
  fi
fi
rm -rf "$out/lib"
if ! mvn -B -q --no-transfer-progress -Dstyle.color=never -f "$here/reference/pom.xml" \
      -Drmq.version="$ver" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$out/lib" >"$out/prepare.log" 2>&1; then
  cat "$out/prepare.log" >&2
  echo "maven failed for RocketMQ $ver" >&2
  exit 1
fi
echo "$want" >"$stamp"
"#;
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(script)
        .arg("prepare-reference")
        .arg(&java)
        .arg(version)
        .arg(&out);
    let res = run_with_timeout(c, Duration::from_secs(600));
    assert!(
        res.status.success(),
        "preparing the reference server jars {version} failed:\n{}",
        text(&res)
    );
    out.join("lib")
}

/// The official Java broker (`BrokerStartup`) of one version, registered with
/// a name server of our choosing, on free loopback ports and a fresh store.
pub struct JavaBroker {
    pub dir: tempfile::TempDir,
    pub version: String,
    pub addr: String,
    pub cluster_name: String,
    pub broker_name: String,
    pub proc: Proc,
}

impl JavaBroker {
    pub fn start(version: &str, namesrv_addr: &str) -> JavaBroker {
        JavaBroker::start_with(version, namesrv_addr, "")
    }

    /// Like [`JavaBroker::start`], with `extra_properties` (`key=value`
    /// lines) appended to its `broker.properties`; later keys win, so e.g.
    /// `storePathRootDir`/`storePathCommitLog` point it at another store.
    pub fn start_with(version: &str, namesrv_addr: &str, extra_properties: &str) -> JavaBroker {
        let mut broker = JavaBroker::launch(version, namesrv_addr, extra_properties);
        broker.wait_registered(namesrv_addr, Duration::from_secs(90));
        broker
    }

    /// Like [`JavaBroker::start_with`] without waiting for its registration
    /// (e.g. a DLedger member, which registers as a slave until it leads);
    /// `brokerName`/`brokerClusterName` in `extra_properties` are reflected
    /// in the fields.
    pub fn launch(version: &str, namesrv_addr: &str, extra_properties: &str) -> JavaBroker {
        let dir = tempfile::Builder::new()
            .prefix("rmq-compat-javabroker-")
            .tempdir()
            .expect("temp dir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join("conf")).expect("create broker home");
        for f in [
            "logback_broker.xml",
            "logback_namesrv.xml",
            "logback_tools.xml",
        ] {
            let _ = std::fs::copy(
                compat_dir().join("java").join("conf").join(f),
                home.join("conf").join(f),
            );
        }
        let port = free_broker_port();
        let addr = format!("127.0.0.1:{port}");
        let cluster_name = "JavaCluster".to_owned();
        let broker_name = "java-broker-a".to_owned();
        let store = dir.path().join("store");
        let bind = if version.starts_with("4.") {
            ""
        } else {
            "bindAddress=127.0.0.1\n"
        };
        let conf = dir.path().join("broker.properties");
        std::fs::write(
            &conf,
            format!(
                "brokerClusterName={cluster_name}\nbrokerName={broker_name}\nbrokerId=0\n\
                 namesrvAddr={namesrv_addr}\nlistenPort={port}\nhaListenPort={}\n{bind}\
                 brokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\nstorePathRootDir={}\n\
                 storePathCommitLog={}\nmappedFileSizeCommitLog=67108864\nflushDiskType=ASYNC_FLUSH\n\
                 {TEST_BROKER_KEYS}{extra_properties}\n",
                port + 1,
                store.display(),
                store.join("commitlog").display()
            ),
        )
        .expect("write broker.properties");
        let proc = Proc::spawn(
            &format!("java broker {version}"),
            java_broker_command(version, dir.path()),
            dir.path().join("broker.out"),
        );
        let (mut cluster_name, mut broker_name) = (cluster_name, broker_name);
        for (k, v) in extra_properties.lines().filter_map(|l| l.split_once('=')) {
            match k.trim() {
                "brokerClusterName" => cluster_name = v.trim().to_owned(),
                "brokerName" => broker_name = v.trim().to_owned(),
                _ => {}
            }
        }
        JavaBroker {
            dir,
            version: version.to_owned(),
            addr,
            cluster_name,
            broker_name,
            proc,
        }
    }

    /// Starts it again on the same configuration and store (after a kill);
    /// its output goes to `broker-<n>.out`.
    pub fn restart(&mut self) {
        self.proc.stop(Duration::from_secs(30));
        let mut n = 2;
        while self.dir.path().join(format!("broker-{n}.out")).exists() {
            n += 1;
        }
        self.proc = Proc::spawn(
            &format!("java broker {}", self.version),
            java_broker_command(&self.version, self.dir.path()),
            self.dir.path().join(format!("broker-{n}.out")),
        );
    }

    /// Waits until `namesrv` lists this broker as the master of its cluster.
    pub fn wait_registered(&mut self, namesrv: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            assert!(
                self.proc.is_running(),
                "Java broker {} exited:\n{}",
                self.version,
                self.logs()
            );
            if let Some(info) = cluster_info(namesrv) {
                let listed = info
                    .broker_addr_table
                    .get(&self.broker_name)
                    .and_then(|b| b.broker_addrs.get(&0))
                    == Some(&self.addr);
                let in_cluster = info
                    .cluster_addr_table
                    .get(&self.cluster_name)
                    .is_some_and(|names| names.contains(&self.broker_name));
                if listed && in_cluster {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Java broker {} never registered with {namesrv}\n{}",
                self.version,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Its stdout/stderr and the tail of its own log file.
    pub fn logs(&self) -> String {
        format!(
            "----- Java broker {} stdout -----\n{}\n----- broker.log (tail) -----\n{}",
            self.version,
            self.proc.log_text(),
            file_tail(
                &self.dir.path().join("home/logs/rocketmqlogs/broker.log"),
                200
            )
        )
    }
}

/// The JVM options a RocketMQ 4.x server (broker, name server) needs on
/// Java 17 for its direct buffers; none for 5.x.
pub fn jdk_opens(version: &str) -> &'static [&'static str] {
    if version.starts_with("4.") {
        &[
            "--add-opens",
            "java.base/java.nio=ALL-UNNAMED",
            "--add-opens",
            "java.base/sun.nio.ch=ALL-UNNAMED",
            "--add-exports",
            "java.base/jdk.internal.ref=ALL-UNNAMED",
            "--add-exports",
            "java.base/sun.nio.ch=ALL-UNNAMED",
        ]
    } else {
        &[]
    }
}

/// `BrokerStartup` of `version` on `<dir>/broker.properties`, home `<dir>/home`.
fn java_broker_command(version: &str, dir: &Path) -> Command {
    let lib = reference_libs(version);
    let home = dir.join("home");
    let mut cmd = Command::new("java");
    cmd.args([
        "-Xms256m",
        "-Xmx512m",
        "-XX:MaxDirectMemorySize=512m",
        "-XX:+UseG1GC",
    ])
    .args(jdk_opens(version))
    .arg(format!("-Duser.home={}", home.display()))
    .arg(format!("-Drocketmq.home.dir={}", home.display()))
    .arg("-Dfile.encoding=UTF-8")
    .arg("-Drmq.logback.configurationFile=rmq.broker.logback.xml")
    .arg("-cp")
    .arg(format!("{}/*", lib.display()))
    .arg("org.apache.rocketmq.broker.BrokerStartup")
    .arg("-c")
    .arg(dir.join("broker.properties"))
    .env("ROCKETMQ_HOME", &home)
    .env_remove("NAMESRV_ADDR");
    cmd
}

impl Drop for JavaBroker {
    fn drop(&mut self) {
        self.proc.stop(Duration::from_secs(30));
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// `<dir>/clients/<name>`, created: a client's home, logs and local offsets.
pub fn client_home_in(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join("clients").join(name);
    std::fs::create_dir_all(&p).expect("create client home");
    p
}
