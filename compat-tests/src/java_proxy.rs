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
use std::time::Duration;

use crate::java_broker::{
    broker_properties, java_command, java_home, master_listed, maven_libs, new_dir, wait_java,
    JavaServer,
};
use crate::{compat_dir, file_tail, free_broker_port, free_port, Proc};

/// Lays out the official proxy + broker jars of `version` in
/// `compat-tests/java-grpc/target/proxy/<version>/lib` (Maven; skipped when
/// the stamp matches the pom).
pub fn proxy_libs(version: &str) -> PathBuf {
    let here = compat_dir().join("java-grpc");
    let out = here.join("target").join("proxy").join(version);
    maven_libs(
        &here.join("proxy").join("pom.xml"),
        version,
        &out,
        "rocketmq-proxy",
        Duration::from_secs(900),
    )
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
        let (cluster_name, broker_name) = broker_properties(
            version,
            dir.path(),
            namesrv_addr,
            port,
            ("JavaProxyCluster", "java-proxy-broker-a"),
            extra_broker_properties,
        );
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
        let home = java_home(dir.path());
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
        let mut cmd = java_command(
            version,
            &home,
            &lib,
            "rmq.proxy.logback.xml",
            "org.apache.rocketmq.proxy.ProxyStartup",
        );
        cmd.arg("-pm")
            .arg(mode_name)
            .arg("-pc")
            .arg(&proxy_conf)
            .arg("-n")
            .arg(namesrv_addr);
        if mode == JavaProxyMode::Local {
            cmd.arg("-bc").arg(dir.path().join("broker.properties"));
        }
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
        let what = format!("Java proxy {}", self.version);
        let late = format!("{what} not ready after {timeout:?}");
        wait_java(self, timeout, &what, &late, |p| {
            p.proc
                .log_text()
                .contains("rocketmq-proxy startup successfully")
                && TcpStream::connect_timeout(
                    &p.grpc_addr.parse().expect("grpc address"),
                    Duration::from_millis(500),
                )
                .is_ok()
        });
    }

    /// Local mode: waits until `namesrv` lists the embedded broker as the
    /// master of its cluster.
    pub fn wait_broker_registered(&mut self, namesrv: &str, timeout: Duration) {
        let what = format!("Java proxy {}", self.version);
        let late = format!(
            "the broker of Java proxy {} never registered with {namesrv}",
            self.version
        );
        wait_java(self, timeout, &what, &late, |p| {
            master_listed(namesrv, &p.broker_name, &p.broker_addr, None)
        });
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

impl JavaServer for JavaProxy {
    fn proc_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }
    fn failure_logs(&self) -> String {
        self.logs()
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
