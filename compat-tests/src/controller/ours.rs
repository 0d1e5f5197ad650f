//! Our `mqbroker` in controller mode ([`OurControllerBroker`]): one member
//! of [`BROKER_NAME`] with `brokerId=-1`, `brokerRole=SLAVE`,
//! `enableControllerMode=true`, `allAckInSyncStateSet=true`, its own store
//! and HA port on 127.0.0.1 and [`BROKER_FILE_SIZE`] commit-log files. Its
//! links to the controllers may run through one [`FaultProxy`] each, so a
//! test can cut it off the controllers ([`OurControllerBroker::isolate`])
//! and heal it again. `controllerHeartBeatTimeoutMills` is set to Java's
//! default (10 s), which our broker's own default (3 s) is not.
//!
//! Its HA listener may sit behind a [`FaultProxy`] too
//! ([`OurControllerBroker::proxy_ha`]): as in Java, a slave in controller
//! mode dials the master's `haServerAddr` = `brokerIP2:haListenPort` that the
//! master registered with the name servers (`REGISTER_BROKER` answers it to
//! the slaves), and the listener binds `bindAddress` (127.0.0.1). So the
//! master gets `brokerIP2=`[`HA_PROXY_IP`] and a proxy listens on
//! `HA_PROXY_IP:haListenPort`, forwarding to `127.0.0.1:haListenPort`: every
//! slave's HA connection runs through it and [`OurControllerBroker::cut_ha`]
//! cuts the master off its slaves while its controller links stay up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{code, request, BROKER_FILE_SIZE, BROKER_NAME, CLUSTER};
use crate::{free_broker_port, BrokerProcess, FaultProxy, ProxyMode, TEST_BROKER_KEYS};

/// The loopback address a proxied HA listener is advertised on
/// (`brokerIP2`); the broker itself binds 127.0.0.1.
pub const HA_PROXY_IP: [u8; 4] = [127, 0, 0, 2];

/// One entry of a broker's epoch cache (GET_BROKER_EPOCH_CACHE, 1007).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i64,
    pub start: i64,
    pub end: i64,
}

/// A broker's answer to 1007: its controller id, epochs and commit-log end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerEpochs {
    pub broker_id: i64,
    pub entries: Vec<EpochEntry>,
    pub max_offset: i64,
}

impl BrokerEpochs {
    /// The epoch numbers, oldest first.
    pub fn epochs(&self) -> Vec<i64> {
        self.entries.iter().map(|e| e.epoch).collect()
    }
}

/// 1007 sent straight to the broker at `addr`; `None` unless it answers 0.
pub fn broker_epochs(addr: &str) -> Option<BrokerEpochs> {
    let r = request(addr, code::GET_BROKER_EPOCH_CACHE, &[], None)?;
    if r.code != 0 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    let entries = v
        .get("epochList")?
        .as_array()?
        .iter()
        .filter_map(|e| {
            Some(EpochEntry {
                epoch: e.get("epoch")?.as_i64()?,
                start: e.get("startOffset")?.as_i64()?,
                end: e.get("endOffset")?.as_i64()?,
            })
        })
        .collect();
    Some(BrokerEpochs {
        broker_id: v.get("brokerId")?.as_i64()?,
        entries,
        max_offset: v.get("maxOffset").and_then(|x| x.as_i64()).unwrap_or(-1),
    })
}

/// Our `mqbroker` in controller mode, which a test starts, kills, pauses and
/// cuts off the controllers.
pub struct OurControllerBroker {
    pub process: BrokerProcess,
    /// `127.0.0.1:listenPort`, the address the controllers and name servers
    /// know it by.
    pub addr: String,
    /// `127.0.0.1:haListenPort`.
    pub ha_addr: String,
    /// One proxy per controller when the links are proxied (in the order of
    /// the `controllers` list given to [`OurControllerBroker::new`]).
    pub controller_links: Vec<FaultProxy>,
    /// The proxy in front of its HA listener, after
    /// [`OurControllerBroker::proxy_ha`].
    pub ha_link: Option<FaultProxy>,
    paused: bool,
}

impl OurControllerBroker {
    /// Writes `root/name/broker.conf` (not started): name servers `ns`
    /// (`;`-list), controllers `controllers` (`;`-list; through a proxy each
    /// if `proxied`), `extra` appended.
    pub fn new(
        name: &str,
        root: &Path,
        ns: &str,
        controllers: &str,
        proxied: bool,
        extra: &str,
    ) -> OurControllerBroker {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("create broker folder");
        let port = free_broker_port();
        let ha_port = port + 1;
        let mut controller_links = Vec::new();
        let ctl = if proxied {
            let mut list = Vec::new();
            for a in controllers.split(';').filter(|a| !a.is_empty()) {
                let target: SocketAddr = a.parse().expect("controller address");
                let p = FaultProxy::start(target).expect("start controller proxy");
                list.push(p.addr().to_string());
                controller_links.push(p);
            }
            list.join(";")
        } else {
            controllers.to_owned()
        };
        std::fs::write(
            dir.join("broker.conf"),
            format!(
                "brokerClusterName={CLUSTER}\nbrokerName={BROKER_NAME}\nbrokerId=-1\n\
                 brokerRole=SLAVE\nenableControllerMode=true\ncontrollerAddr={ctl}\n\
                 namesrvAddr={ns}\nlistenPort={port}\nhaListenPort={ha_port}\n\
                 bindAddress=127.0.0.1\nbrokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\n\
                 storePathRootDir={}\nmappedFileSizeCommitLog={BROKER_FILE_SIZE}\n\
                 allAckInSyncStateSet=true\nbrokerHeartbeatInterval=1000\n\
                 controllerHeartBeatTimeoutMills=10000\n\
                 slaveReadEnable=true\n{TEST_BROKER_KEYS}{extra}\n",
                dir.join("store").display()
            ),
        )
        .expect("write broker.conf");
        OurControllerBroker {
            process: BrokerProcess::new(name, dir),
            addr: format!("127.0.0.1:{port}"),
            ha_addr: format!("127.0.0.1:{ha_port}"),
            controller_links,
            ha_link: None,
            paused: false,
        }
    }

    /// Before the first start: advertises `brokerIP2=`[`HA_PROXY_IP`] and
    /// puts a [`FaultProxy`] on `HA_PROXY_IP:haListenPort` in front of the HA
    /// listener, so every slave's HA connection to it runs through the
    /// proxy. Returns the advertised `haServerAddr`.
    pub fn proxy_ha(&mut self) -> String {
        let target: SocketAddr = self.ha_addr.parse().expect("HA address");
        let bind = SocketAddr::from((HA_PROXY_IP, target.port()));
        let p = FaultProxy::start_at(bind, target).expect("start the HA proxy");
        let conf = self.process.dir.join("broker.conf");
        let mut text = std::fs::read_to_string(&conf).expect("read broker.conf");
        // The last value of a key wins (Java `Properties` and ours).
        let [a, b, c, d] = HA_PROXY_IP;
        text.push_str(&format!("brokerIP2={a}.{b}.{c}.{d}\n"));
        std::fs::write(&conf, text).expect("write broker.conf");
        let advertised = p.addr().to_string();
        self.ha_link = Some(p);
        advertised
    }

    /// Blackholes its HA link (every slave's connection to it and new ones):
    /// it is cut off its slaves, its controller links stay up.
    pub fn cut_ha(&self) {
        let p = self.ha_link.as_ref();
        let p = p.unwrap_or_else(|| panic!("{} has no proxied HA link", self.process.name));
        p.set_mode(ProxyMode::Blackhole);
    }

    /// Lets its HA link pass again (connections that lost bytes are closed,
    /// so slaves dial again).
    pub fn heal_ha(&self) {
        if let Some(p) = &self.ha_link {
            p.set_mode(ProxyMode::Pass);
        }
    }

    pub fn dir(&self) -> &Path {
        &self.process.dir
    }

    pub fn store_dir(&self) -> PathBuf {
        self.process.dir.join("store")
    }

    /// The commit-log files, sorted by name (their start offsets).
    pub fn commit_log_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.store_dir().join("commitlog"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Starts it (again, on the same store and identity file).
    pub fn start(&mut self) {
        self.process.start();
    }

    pub fn is_running(&mut self) -> bool {
        self.process.proc.as_mut().is_some_and(|p| p.is_running())
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if self.paused {
            self.resume();
        }
        self.process.kill();
    }

    /// SIGTERM; an error unless it exits with 0 within `grace`.
    pub fn stop(&mut self, grace: Duration) -> Result<(), String> {
        if self.paused {
            self.resume();
        }
        self.process.stop_cleanly(grace)
    }

    /// SIGSTOP: a hang, noticed only through missed heartbeats.
    pub fn pause(&mut self) {
        self.process.signal(libc::SIGSTOP);
        self.paused = true;
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        self.process.signal(libc::SIGCONT);
        self.paused = false;
    }

    /// Blackholes every controller link (proxied brokers only).
    pub fn isolate(&self) {
        assert!(
            !self.controller_links.is_empty(),
            "{} has no proxied controller links",
            self.process.name
        );
        for p in &self.controller_links {
            p.set_mode(ProxyMode::Blackhole);
        }
    }

    /// Lets every controller link pass again.
    pub fn heal(&self) {
        for p in &self.controller_links {
            p.set_mode(ProxyMode::Pass);
        }
    }

    /// Its epoch cache (1007), `None` unless it answers.
    pub fn epochs(&self) -> Option<BrokerEpochs> {
        broker_epochs(&self.addr)
    }

    /// The last `lines` lines of each start's log.
    pub fn logs(&self, lines: usize) -> String {
        self.process.logs(lines)
    }
}

impl Drop for OurControllerBroker {
    fn drop(&mut self) {
        if self.paused && self.process.proc.is_some() {
            self.resume();
        }
    }
}
