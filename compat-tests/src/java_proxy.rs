//! The official Java proxy (`rocketmq-proxy`, the gRPC `MessagingService` of
//! RocketMQ 5) from Maven Central, in its two modes (`JavaProxy`):
//!
//! - **local mode**: one JVM running the Java broker and the proxy on top of
//!   it, as `mqbroker --enable-proxy` does (`ProxyStartup -pm local -bc
//!   broker.properties -pc rmq-proxy.json`). The broker registers with the
//!   name server given; gRPC clients talk to [`JavaProxy::grpc_addr`],
//!   remoting clients to the broker at [`JavaProxy::broker_addr`] (or the
//!   proxy's own remoting port [`JavaProxy::remoting_addr`]).
//! - **cluster mode**: a standalone `mqproxy` (`ProxyStartup -pm cluster`) in
//!   front of whatever brokers a name server lists (ours or Java's), talking
//!   to them over remoting.
//!
//! Usage:
//!
//! ```text
//! use compat_tests::{JavaNamesrv, JavaProxy, OurNamesrv, StandaloneBroker};
//! // (a) the reference: Java 5.3.3 broker + proxy in local mode
//! let ns = JavaNamesrv::start("5.3.3");
//! let local = JavaProxy::start_local("5.3.3", &ns.addr, "");
//! let endpoint = local.grpc_addr.clone(); // "127.0.0.1:<port>" for gRPC clients
//! // (b) the Java proxy in cluster mode in front of our name server + broker
//! let ours = OurNamesrv::start();
//! let broker = StandaloneBroker::start(&ours.addr, "");
//! let proxy = JavaProxy::start_cluster("5.3.3", &ours.addr, "DefaultCluster", &[]);
//! ```
//!
//! Both constructors return once the proxy printed its startup line and its
//! gRPC port accepts connections (local mode: also once the broker is
//! registered with the name server). Logs: [`JavaProxy::logs`], printed when
//! a test panics while it runs. Jars: [`proxy_libs`] (Maven, cached under
//! `compat-tests/java-grpc/target/proxy/<version>/lib`, one Maven at a time).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{
    cluster_info, compat_dir, file_tail, free_broker_port, free_port, jdk_opens, run_with_timeout,
    text, Proc, TEST_BROKER_KEYS,
};

/// Lays out the official proxy + broker jars of `version` in
/// `compat-tests/java-grpc/target/proxy/<version>/lib` (Maven; skipped when
/// the stamp matches the pom).
pub fn proxy_libs(version: &str) -> PathBuf {
    let here = compat_dir().join("java-grpc");
    let out = here.join("target").join("proxy").join(version);
    let script = r#"set -euo pipefail
here="$1"; ver="$2"; out="$3"
stamp="$out/.prepared"
want="$(sha256sum <"$here/proxy/pom.xml" | cut -d' ' -f1)-$ver"
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
if ! mvn -B -q --no-transfer-progress -Dstyle.color=never -f "$here/proxy/pom.xml" \
      -Drmq.version="$ver" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$out/lib" >"$out/prepare.log" 2>&1; then
  cat "$out/prepare.log" >&2
  echo "maven failed for rocketmq-proxy $ver" >&2
  exit 1
fi
echo "$want" >"$stamp"
"#;
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(script)
        .arg("prepare-proxy")
        .arg(&here)
        .arg(version)
        .arg(&out);
    let res = run_with_timeout(c, Duration::from_secs(900));
    assert!(
        res.status.success(),
        "preparing the proxy jars {version} failed:\n{}",
        text(&res)
    );
    out.join("lib")
}

/// Which way a [`JavaProxy`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JavaProxyMode {
    /// Broker and proxy in one JVM (`mqbroker --enable-proxy`).
    Local,
    /// A standalone proxy in front of the brokers of a name server.
    Cluster,
}

/// The official Java proxy of one version, in local or cluster mode, on free
/// loopback ports; killed when dropped.
pub struct JavaProxy {
    pub dir: tempfile::TempDir,
    pub version: String,
    pub mode: JavaProxyMode,
    /// `127.0.0.1:<grpcServerPort>`: the endpoint of gRPC clients.
    pub grpc_addr: String,
    /// `127.0.0.1:<remotingListenPort>`: the proxy's remoting port.
    pub remoting_addr: String,
    /// Local mode: the embedded broker's remoting address; cluster mode: "".
    pub broker_addr: String,
    /// Local mode: the embedded broker's cluster; cluster mode: the
    /// `rocketMQClusterName` it was given.
    pub cluster_name: String,
    /// Local mode: the embedded broker's name; cluster mode: "".
    pub broker_name: String,
    pub proc: Proc,
}

impl JavaProxy {
    /// Java broker + proxy in local mode (one JVM), the broker registered
    /// with `namesrv_addr`; `extra_broker_properties` (`key=value` lines) are
    /// appended to its `broker.properties` (later keys win).
    pub fn start_local(
        version: &str,
        namesrv_addr: &str,
        extra_broker_properties: &str,
    ) -> JavaProxy {
        JavaProxy::start_local_with(version, namesrv_addr, extra_broker_properties, &[])
    }

    /// Like [`JavaProxy::start_local`], with more `rmq-proxy.json` keys
    /// (`extra`, they win over ours).
    pub fn start_local_with(
        version: &str,
        namesrv_addr: &str,
        extra_broker_properties: &str,
        extra: &[(&str, serde_json::Value)],
    ) -> JavaProxy {
        let dir = new_dir("rmq-compat-javaproxy-local-");
        let port = free_broker_port();
        let mut cluster_name = "JavaProxyCluster".to_owned();
        let mut broker_name = "java-proxy-broker-a".to_owned();
        let store = dir.path().join("store");
        std::fs::write(
            dir.path().join("broker.properties"),
            format!(
                "brokerClusterName={cluster_name}\nbrokerName={broker_name}\nbrokerId=0\n\
                 namesrvAddr={namesrv_addr}\nlistenPort={port}\nhaListenPort={}\nbindAddress=127.0.0.1\n\
                 brokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\nstorePathRootDir={}\n\
                 storePathCommitLog={}\nmappedFileSizeCommitLog=67108864\nflushDiskType=ASYNC_FLUSH\n\
                 {TEST_BROKER_KEYS}{extra_broker_properties}\n",
                port + 1,
                store.display(),
                store.join("commitlog").display()
            ),
        )
        .expect("write broker.properties");
        for (k, v) in extra_broker_properties
            .lines()
            .filter_map(|l| l.split_once('='))
        {
            match k.trim() {
                "brokerClusterName" => cluster_name = v.trim().to_owned(),
                "brokerName" => broker_name = v.trim().to_owned(),
                _ => {}
            }
        }
        let mut proxy = JavaProxy::launch(
            version,
            dir,
            JavaProxyMode::Local,
            namesrv_addr,
            &cluster_name,
            extra,
        );
        proxy.broker_addr = format!("127.0.0.1:{port}");
        proxy.broker_name = broker_name;
        proxy.wait_ready(Duration::from_secs(120));
        proxy.wait_broker_registered(namesrv_addr, Duration::from_secs(90));
        proxy
    }

    /// A standalone Java proxy in cluster mode in front of the brokers that
    /// `namesrv_addr` lists; `rocketMQClusterName` is `cluster_name`.
    /// `extra` are more `rmq-proxy.json` keys (they win over ours).
    pub fn start_cluster(
        version: &str,
        namesrv_addr: &str,
        cluster_name: &str,
        extra: &[(&str, serde_json::Value)],
    ) -> JavaProxy {
        let dir = new_dir("rmq-compat-javaproxy-cluster-");
        let mut proxy = JavaProxy::launch(
            version,
            dir,
            JavaProxyMode::Cluster,
            namesrv_addr,
            cluster_name,
            extra,
        );
        proxy.wait_ready(Duration::from_secs(120));
        proxy
    }

    fn launch(
        version: &str,
        dir: tempfile::TempDir,
        mode: JavaProxyMode,
        namesrv_addr: &str,
        cluster_name: &str,
        extra: &[(&str, serde_json::Value)],
    ) -> JavaProxy {
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join("conf")).expect("create proxy home");
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
        let grpc_port = free_port();
        let remoting_port = free_port();
        let mode_name = match mode {
            JavaProxyMode::Local => "local",
            JavaProxyMode::Cluster => "cluster",
        };
        let mut conf = serde_json::Map::new();
        conf.insert("rocketMQClusterName".into(), cluster_name.into());
        conf.insert("namesrvAddr".into(), namesrv_addr.into());
        conf.insert("proxyMode".into(), mode_name.into());
        conf.insert("grpcServerPort".into(), grpc_port.into());
        conf.insert("remotingListenPort".into(), remoting_port.into());
        conf.insert("localServeAddr".into(), "127.0.0.1".into());
        for (k, v) in extra {
            conf.insert((*k).to_owned(), v.clone());
        }
        let proxy_conf = dir.path().join("rmq-proxy.json");
        std::fs::write(
            &proxy_conf,
            serde_json::to_vec_pretty(&serde_json::Value::Object(conf)).expect("proxy json"),
        )
        .expect("write rmq-proxy.json");
        // ConfigurationManager also looks for $ROCKETMQ_HOME/conf/rmq-proxy.json.
        let _ = std::fs::copy(&proxy_conf, home.join("conf").join("rmq-proxy.json"));

        let lib = proxy_libs(version);
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
        .arg("-Drmq.logback.configurationFile=rmq.proxy.logback.xml")
        .arg("-cp")
        .arg(format!("{}/*", lib.display()))
        .arg("org.apache.rocketmq.proxy.ProxyStartup")
        .arg("-pm")
        .arg(mode_name)
        .arg("-pc")
        .arg(&proxy_conf)
        .arg("-n")
        .arg(namesrv_addr);
        if mode == JavaProxyMode::Local {
            cmd.arg("-bc").arg(dir.path().join("broker.properties"));
        }
        cmd.env("ROCKETMQ_HOME", &home).env_remove("NAMESRV_ADDR");
        let proc = Proc::spawn(
            &format!("java proxy {version} ({mode_name})"),
            cmd,
            dir.path().join("proxy.out"),
        );
        JavaProxy {
            dir,
            version: version.to_owned(),
            mode,
            grpc_addr: format!("127.0.0.1:{grpc_port}"),
            remoting_addr: format!("127.0.0.1:{remoting_port}"),
            broker_addr: String::new(),
            cluster_name: cluster_name.to_owned(),
            broker_name: String::new(),
            proc,
        }
    }

    /// Waits until the proxy printed its startup line and its gRPC port
    /// accepts a connection.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            assert!(
                self.proc.is_running(),
                "Java proxy {} exited:\n{}",
                self.version,
                self.logs()
            );
            if self
                .proc
                .log_text()
                .contains("rocketmq-proxy startup successfully")
                && TcpStream::connect_timeout(
                    &self.grpc_addr.parse().expect("grpc address"),
                    Duration::from_millis(500),
                )
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Java proxy {} not ready after {timeout:?}\n{}",
                self.version,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Local mode: waits until `namesrv` lists the embedded broker as the
    /// master of its cluster.
    pub fn wait_broker_registered(&mut self, namesrv: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            assert!(
                self.proc.is_running(),
                "Java proxy {} exited:\n{}",
                self.version,
                self.logs()
            );
            if let Some(info) = cluster_info(namesrv) {
                let listed = info
                    .broker_addr_table
                    .get(&self.broker_name)
                    .and_then(|b| b.broker_addrs.get(&0))
                    == Some(&self.broker_addr);
                if listed {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the broker of Java proxy {} never registered with {namesrv}\n{}",
                self.version,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Its home folder (`ROCKETMQ_HOME`, `user.home`): logs are under
    /// `logs/rocketmqlogs/`.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Stdout/stderr and the tails of `proxy.log` (and `broker.log` in
    /// local mode).
    pub fn logs(&self) -> String {
        let logs = self.home().join("logs").join("rocketmqlogs");
        let mut s = format!(
            "----- Java proxy {} stdout -----\n{}\n----- proxy.log (tail) -----\n{}",
            self.version,
            self.proc.log_text(),
            file_tail(&logs.join("proxy.log"), 150)
        );
        if self.mode == JavaProxyMode::Local {
            s.push_str(&format!(
                "\n----- broker.log (tail) -----\n{}",
                file_tail(&logs.join("broker.log"), 100)
            ));
        }
        s
    }
}

impl Drop for JavaProxy {
    fn drop(&mut self) {
        self.proc.stop(Duration::from_secs(30));
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

fn new_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}
