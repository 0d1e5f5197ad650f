//! Our name server with our broker (`Cluster`, `StandaloneBroker`) and
//! readiness probes over our own remoting client.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use remoting::body::{from_fastjson, ClusterInfo};
use remoting::code::request_code;
use remoting::{Connection, RemotingCommand, Router};

use crate::namesrv::spawn_our_namesrv_with;
use crate::{bin_dir, client_home_in, free_broker_port, wait_until, Proc, TEST_BROKER_KEYS};

// ------------------------------------------------------------------- cluster

/// Our name server and one broker, on fresh loopback ports and a fresh store.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub namesrv_addr: String,
    pub broker_addr: String,
    pub cluster_name: String,
    pub broker_name: String,
    pub namesrv: Proc,
    pub broker: Proc,
}

impl Cluster {
    pub fn start() -> Cluster {
        Cluster::start_with("")
    }

    /// [`Cluster::start`] with extra broker config lines appended.
    pub fn start_with(extra_broker_properties: &str) -> Cluster {
        let bins = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("rmq-compat-")
            .tempdir()
            .expect("temp dir");
        let (namesrv, namesrv_addr) = spawn_our_namesrv_with(&bins, dir.path(), "");

        let broker_port = free_broker_port();
        let broker_addr = format!("127.0.0.1:{broker_port}");
        let cluster_name = "CompatCluster".to_owned();
        let broker_name = "broker-a".to_owned();
        let broker_conf = dir.path().join("broker.conf");
        std::fs::write(
            &broker_conf,
            format!(
                "brokerClusterName={cluster_name}\nbrokerName={broker_name}\nbrokerId=0\nlistenPort={broker_port}\n\
                 brokerIP1=127.0.0.1\nbindAddress=127.0.0.1\nstorePathRootDir={}\nmappedFileSizeCommitLog=67108864\nmaxHashSlotNum=50000\nmaxIndexNum=200000\n\
                 {TEST_BROKER_KEYS}flushDiskType=ASYNC_FLUSH\n{extra_broker_properties}",
                dir.path().join("store").display()
            ),
        )
        .expect("write broker config");
        let mut cmd = Command::new(bins.join("mqbroker"));
        cmd.arg("-c")
            .arg(&broker_conf)
            .arg("-n")
            .arg(&namesrv_addr)
            .env("HOME", dir.path())
            .env("RUST_LOG", "info");
        let broker = Proc::spawn("mqbroker", cmd, dir.path().join("broker.log"));
        let mut cluster = Cluster {
            dir,
            namesrv_addr,
            broker_addr,
            cluster_name,
            broker_name,
            namesrv,
            broker,
        };
        cluster.wait_broker_registered(Duration::from_secs(30));
        cluster
    }

    /// Waits until the name server lists our broker as master, as upstream's
    /// `waitBrokerRegistered` does.
    pub fn wait_broker_registered(&mut self, timeout: Duration) {
        let ns = self.namesrv_addr.clone();
        let want = self.broker_addr.clone();
        let name = self.broker_name.clone();
        let deadline = Instant::now() + timeout;
        loop {
            assert!(
                self.broker.is_running(),
                "mqbroker exited:\n{}",
                self.broker.log_text()
            );
            if let Some(info) = cluster_info(&ns) {
                if info
                    .broker_addr_table
                    .get(&name)
                    .and_then(|b| b.broker_addrs.get(&0))
                    == Some(&want)
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "broker never registered with {ns}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn logs(&self) -> String {
        format!(
            "----- mqnamesrv log -----\n{}\n----- mqbroker log -----\n{}",
            self.namesrv.log_text(),
            self.broker.log_text()
        )
    }

    /// A folder for a client's home, logs and local offsets.
    pub fn client_home(&self, name: &str) -> PathBuf {
        client_home_in(self.dir.path(), name)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let stopped = [
            self.broker.stop_cleanly(Duration::from_secs(10)),
            self.namesrv.stop_cleanly(Duration::from_secs(10)),
        ];
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        } else if let Some(Err(e)) = stopped.iter().find(|r| r.is_err()) {
            panic!("{e}\n{}", self.logs());
        }
    }
}

/// GET_BROKER_CLUSTER_INFO through our own remoting client (readiness only;
/// every assertion about behaviour goes through the official tools).
pub fn cluster_info(namesrv: &str) -> Option<ClusterInfo> {
    let body = request_body(namesrv, request_code::GET_BROKER_CLUSTER_INFO)?;
    from_fastjson(&body).ok()
}

/// The current term of DLedger member `id` of `group` at `addr`, read
/// without side effects: a heartbeat from member `other` claiming term 0 is
/// answered 403 with the member's term. `None` on any other answer.
pub fn dledger_term(
    rt: &tokio::runtime::Runtime,
    addr: String,
    group: &str,
    id: String,
    other: String,
) -> Option<i64> {
    use dledger::protocol::{
        request_frame, Base, Body, HeartBeatRequest, HeartBeatResponse, RequestCode,
    };
    let req = HeartBeatRequest {
        base: Base {
            group: Some(group.into()),
            remote_id: Some(id),
            local_id: Some(other.clone()),
            leader_id: Some(other),
            term: 0,
            ..Base::default()
        },
    };
    let peer = dledger::server::PeerClient::new(addr);
    let resp = rt
        .block_on(peer.call(
            request_frame(RequestCode::HeartBeat, &req),
            Duration::from_secs(3),
        ))
        .ok()?;
    let r = HeartBeatResponse::from_json(&resp.body).ok()?;
    (r.base.code == 403).then_some(r.base.term)
}

/// Sends one request with no header to `addr` and returns the body of a
/// SUCCESS response; `None` on any failure (the caller polls).
pub fn request_body(addr: &str, code: i32) -> Option<Vec<u8>> {
    let resp = remoting_call(addr, RemotingCommand::request(code), Duration::from_secs(3))?;
    (resp.code == 0).then(|| resp.body.to_vec())
}

/// Sends `req` to `addr` on a fresh connection (and a runtime of its own)
/// and returns the response; `None` when it cannot connect or no response
/// comes within `timeout`.
pub fn remoting_call(
    addr: &str,
    req: RemotingCommand,
    timeout: Duration,
) -> Option<RemotingCommand> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let conn = Connection::connect(addr, Arc::new(Router::new()))
            .await
            .ok()?;
        let resp = conn.request(req, timeout).await.ok();
        conn.close();
        resp
    })
}

/// Our `mqbroker` alone, registered with the name servers of `namesrv_addrs`
/// (`;`-separated, as `namesrvAddr`), extra config lines appended. Cluster
/// "CompatCluster", broker "broker-a", id 0.
pub struct StandaloneBroker {
    pub dir: tempfile::TempDir,
    pub addr: String,
    pub cluster_name: String,
    pub broker_name: String,
    pub proc: Proc,
    /// Set by [`StandaloneBroker::kill`]: drop then expects no clean exit.
    killed: bool,
}

impl StandaloneBroker {
    /// Starts it and waits until every name server lists it as master.
    pub fn start(namesrv_addrs: &str, extra_properties: &str) -> StandaloneBroker {
        let bins = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("rmq-compat-broker-")
            .tempdir()
            .expect("temp dir");
        let port = free_broker_port();
        let addr = format!("127.0.0.1:{port}");
        let cluster_name = "CompatCluster".to_owned();
        let broker_name = "broker-a".to_owned();
        let conf = dir.path().join("broker.conf");
        std::fs::write(
            &conf,
            format!(
                "brokerClusterName={cluster_name}\nbrokerName={broker_name}\nbrokerId=0\n\
                 listenPort={port}\nnamesrvAddr={namesrv_addrs}\nbrokerIP1=127.0.0.1\n\
                 bindAddress=127.0.0.1\nstorePathRootDir={}\nmappedFileSizeCommitLog=67108864\nmaxHashSlotNum=50000\nmaxIndexNum=200000\n\
                 {TEST_BROKER_KEYS}\
                 flushDiskType=ASYNC_FLUSH\n{extra_properties}",
                dir.path().join("store").display()
            ),
        )
        .expect("write broker config");
        let mut cmd = Command::new(bins.join("mqbroker"));
        cmd.arg("-c")
            .arg(&conf)
            .env("HOME", dir.path())
            .env("RUST_LOG", "info")
            .env_remove("NAMESRV_ADDR");
        let proc = Proc::spawn("mqbroker", cmd, dir.path().join("broker.log"));
        let mut broker = StandaloneBroker {
            dir,
            addr,
            cluster_name,
            broker_name,
            proc,
            killed: false,
        };
        for ns in namesrv_addrs.split(';').filter(|s| !s.is_empty()) {
            broker.wait_registered(ns, Duration::from_secs(30));
        }
        broker
    }

    /// Whether `namesrv` lists this broker as master of its cluster.
    pub fn is_registered(&self, namesrv: &str) -> bool {
        cluster_info(namesrv).is_some_and(|info| {
            info.broker_addr_table
                .get(&self.broker_name)
                .and_then(|b| b.broker_addrs.get(&0))
                == Some(&self.addr)
                && info
                    .cluster_addr_table
                    .get(&self.cluster_name)
                    .is_some_and(|names| names.contains(&self.broker_name))
        })
    }

    pub fn wait_registered(&mut self, namesrv: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.is_registered(namesrv) {
            assert!(self.proc.is_running(), "mqbroker exited:\n{}", self.logs());
            assert!(
                Instant::now() < deadline,
                "broker never registered with {namesrv}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`) to the broker process.
    pub fn signal(&self, signal: i32) {
        self.proc.signal(signal);
    }

    /// SIGKILL and reap it.
    pub fn kill(&mut self) {
        self.killed = true;
        self.signal(libc::SIGKILL);
        self.proc.stop(Duration::from_secs(10));
    }

    pub fn logs(&self) -> String {
        format!("----- mqbroker log -----\n{}", self.proc.log_text())
    }
}

impl Drop for StandaloneBroker {
    fn drop(&mut self) {
        if !self.killed && self.proc.is_running() {
            // A stopped process cannot act on SIGTERM.
            self.signal(libc::SIGCONT);
        }
        let stopped = self.proc.stop_cleanly(Duration::from_secs(10));
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        } else if let (false, Err(e)) = (self.killed, stopped) {
            panic!("{e}\n{}", self.logs());
        }
    }
}

impl Cluster {
    /// Stops only the broker with SIGTERM (asserting a clean exit), then starts
    /// it again on the same config, store folder and port, and waits until it
    /// is registered with the name server again. Its new log goes to
    /// `broker.restart-<n>.log`; [`Cluster::logs`] shows the current one.
    pub fn restart_broker(&mut self) {
        if let Err(e) = self.broker.stop_cleanly(Duration::from_secs(20)) {
            panic!("{e} before the restart\n{}", self.logs());
        }
        let port: u16 = self
            .broker_addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("broker port");
        wait_until(
            "the broker port to be free",
            Duration::from_secs(20),
            || TcpListener::bind(("127.0.0.1", port)).is_ok(),
        );
        let mut n = 1;
        while self
            .dir
            .path()
            .join(format!("broker.restart-{n}.log"))
            .exists()
        {
            n += 1;
        }
        let mut cmd = Command::new(bin_dir().join("mqbroker"));
        cmd.arg("-c")
            .arg(self.dir.path().join("broker.conf"))
            .arg("-n")
            .arg(&self.namesrv_addr)
            .env("HOME", self.dir.path())
            .env("RUST_LOG", "info");
        let log = self.dir.path().join(format!("broker.restart-{n}.log"));
        self.broker = Proc::spawn("mqbroker", cmd, log);
        self.wait_broker_registered(Duration::from_secs(30));
    }
}
