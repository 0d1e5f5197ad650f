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
    maven_libs(
        &java.join("reference").join("pom.xml"),
        version,
        &out,
        "RocketMQ",
        Duration::from_secs(600),
    )
}

/// Copies the runtime dependencies of `pom` (with `-Drmq.version=<version>`)
/// into `<out>/lib` with Maven and returns that folder; skipped when
/// `<out>/.prepared` matches the pom and version. Test binaries may run side
/// by side: one Maven at a time (`<out>/../.maven.lock`), then look again.
/// `what` names the artifact in the error message.
pub(crate) fn maven_libs(
    pom: &Path,
    version: &str,
    out: &Path,
    what: &str,
    timeout: Duration,
) -> PathBuf {
    let script = r#"set -euo pipefail
pom="$1"; ver="$2"; out="$3"; what="$4"
stamp="$out/.prepared"
want="$(sha256sum <"$pom" | cut -d' ' -f1)-$ver"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && ls "$out"/lib/*.jar >/dev/null 2>&1; then
  exit 0
fi
mkdir -p "$out"
if command -v flock >/dev/null; then
  exec 9>"$out/../.maven.lock"
  flock 9
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && ls "$out"/lib/*.jar >/dev/null 2>&1; then
    exit 0
  fi
fi
rm -rf "$out/lib"
if ! mvn -B -q --no-transfer-progress -Dstyle.color=never -f "$pom" \
      -Drmq.version="$ver" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$out/lib" >"$out/prepare.log" 2>&1; then
  cat "$out/prepare.log" >&2
  echo "maven failed for $what $ver" >&2
  exit 1
fi
echo "$want" >"$stamp"
"#;
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(script)
        .arg("maven-libs")
        .arg(pom)
        .arg(version)
        .arg(out)
        .arg(what);
    let res = run_with_timeout(c, timeout);
    assert!(
        res.status.success(),
        "preparing the {what} jars {version} failed:\n{}",
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
        let dir = new_dir("rmq-compat-javabroker-");
        java_home(dir.path());
        let port = free_broker_port();
        let addr = format!("127.0.0.1:{port}");
        let (cluster_name, broker_name) = broker_properties(
            version,
            dir.path(),
            namesrv_addr,
            port,
            ("JavaCluster", "java-broker-a"),
            extra_properties,
        );
        let proc = Proc::spawn(
            &format!("java broker {version}"),
            java_broker_command(version, dir.path()),
            dir.path().join("broker.out"),
        );
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
        let what = format!("Java broker {}", self.version);
        let late = format!("{what} never registered with {namesrv}");
        wait_java(self, timeout, &what, &late, |b| {
            master_listed(namesrv, &b.broker_name, &b.addr, Some(&b.cluster_name))
        });
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
    let mut cmd = java_command(
        version,
        &dir.join("home"),
        &reference_libs(version),
        "rmq.broker.logback.xml",
        "org.apache.rocketmq.broker.BrokerStartup",
    );
    cmd.arg("-c").arg(dir.join("broker.properties"));
    cmd
}

/// `java` with the heap and GC options of our Java servers, home `home`
/// (`ROCKETMQ_HOME`, `user.home`), classpath `<lib>/*`, logback file
/// `logback` and main class `main`; the caller appends the arguments.
pub(crate) fn java_command(
    version: &str,
    home: &Path,
    lib: &Path,
    logback: &str,
    main: &str,
) -> Command {
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
    .arg(format!("-Drmq.logback.configurationFile={logback}"))
    .arg("-cp")
    .arg(format!("{}/*", lib.display()))
    .arg(main)
    .env("ROCKETMQ_HOME", home)
    .env_remove("NAMESRV_ADDR");
    cmd
}

/// Creates `<dir>/home/conf` with our logback files and returns the home.
pub(crate) fn java_home(dir: &Path) -> PathBuf {
    let home = dir.join("home");
    std::fs::create_dir_all(home.join("conf")).expect("create Java server home");
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
    home
}

/// Writes `<dir>/broker.properties` of a master on `port` (HA on `port + 1`)
/// with its store in `<dir>/store`, named `names` (cluster, broker) unless
/// `extra` (`key=value` lines, appended, later keys win) renames it; returns
/// the (cluster, broker) names in effect.
pub(crate) fn broker_properties(
    version: &str,
    dir: &Path,
    namesrv_addr: &str,
    port: u16,
    names: (&str, &str),
    extra: &str,
) -> (String, String) {
    let (mut cluster_name, mut broker_name) = (names.0.to_owned(), names.1.to_owned());
    let store = dir.join("store");
    let bind = if version.starts_with("4.") {
        ""
    } else {
        "bindAddress=127.0.0.1\n"
    };
    std::fs::write(
        dir.join("broker.properties"),
        format!(
            "brokerClusterName={cluster_name}\nbrokerName={broker_name}\nbrokerId=0\n\
             namesrvAddr={namesrv_addr}\nlistenPort={port}\nhaListenPort={}\n{bind}\
             brokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\nstorePathRootDir={}\n\
             storePathCommitLog={}\nmappedFileSizeCommitLog=67108864\nflushDiskType=ASYNC_FLUSH\n\
             {TEST_BROKER_KEYS}{extra}\n",
            port + 1,
            store.display(),
            store.join("commitlog").display()
        ),
    )
    .expect("write broker.properties");
    for (k, v) in extra.lines().filter_map(|l| l.split_once('=')) {
        match k.trim() {
            "brokerClusterName" => cluster_name = v.trim().to_owned(),
            "brokerName" => broker_name = v.trim().to_owned(),
            _ => {}
        }
    }
    (cluster_name, broker_name)
}

/// Whether `namesrv` lists `addr` as the master (id 0) of `broker_name`,
/// and, when `cluster_name` is given, `broker_name` in that cluster.
pub(crate) fn master_listed(
    namesrv: &str,
    broker_name: &str,
    addr: &str,
    cluster_name: Option<&str>,
) -> bool {
    let Some(info) = cluster_info(namesrv) else {
        return false;
    };
    let listed = info
        .broker_addr_table
        .get(broker_name)
        .and_then(|b| b.broker_addrs.get(&0))
        .is_some_and(|a| a == addr);
    let in_cluster = cluster_name.is_none_or(|c| {
        info.cluster_addr_table
            .get(c)
            .is_some_and(|names| names.iter().any(|n| n == broker_name))
    });
    listed && in_cluster
}

/// A Java server process of ours ([`JavaBroker`], `JavaProxy`) that
/// [`wait_java`] polls.
pub(crate) trait JavaServer {
    fn proc_mut(&mut self) -> &mut Proc;
    /// What to print when it fails.
    fn failure_logs(&self) -> String;
}

impl JavaServer for JavaBroker {
    fn proc_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }
    fn failure_logs(&self) -> String {
        self.logs()
    }
}

/// Polls `ready` every 200 ms until it holds; panics with the server's logs
/// when its process exits (`"<what> exited"`) or `timeout` passes (`late`).
pub(crate) fn wait_java<S: JavaServer>(
    server: &mut S,
    timeout: Duration,
    what: &str,
    late: &str,
    mut ready: impl FnMut(&S) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        assert!(
            server.proc_mut().is_running(),
            "{what} exited:\n{}",
            server.failure_logs()
        );
        if ready(server) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{late}\n{}",
            server.failure_logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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

/// A fresh temporary folder named `<prefix>…`.
pub(crate) fn new_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}
