//! One side's cluster: 3 controllers, the name server(s) and one broker set
//! of 3 brokers in controller mode; faults, recovery and "whole again".

use std::path::Path;
use std::time::{Duration, Instant};

use compat_tests::bench::{mkdir, write_file, Res};
use compat_tests::controller::{
    controller_broker_keys, route, ControllerGroup, ControllerKind, BROKER_NAME, CLUSTER,
};
use compat_tests::{free_broker_port, BrokerProcess, JavaBroker, JavaNamesrv, TEST_BROKER_KEYS};

use crate::{log, COMMIT_LOG_FILE};

/// Which product a side runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Java,
    Ours,
}

impl Side {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Side::Java => "java",
            Side::Ours => "ours",
        }
    }
}

enum Brokers {
    Java(Vec<JavaBroker>),
    Ours(Vec<BrokerProcess>),
}

pub(crate) struct Cluster {
    pub(crate) side: Side,
    pub(crate) group: ControllerGroup,
    _java_ns: Option<JavaNamesrv>,
    /// The name servers, `;`-joined (what the client and brokers get).
    pub(crate) ns: String,
    brokers: Brokers,
    /// Broker addresses, by index.
    pub(crate) addrs: Vec<String>,
}

/// The keys both sides' brokers get beyond the controller-mode ones.
fn common_broker_keys() -> String {
    format!("mappedFileSizeCommitLog={COMMIT_LOG_FILE}\nflushDiskType=ASYNC_FLUSH\n")
}

/// Waits (120 s) until `addr` accepts connections while `running`.
fn wait_listen(addr: &str, mut running: impl FnMut() -> bool) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        if !running() {
            return Err(format!("the broker on {addr} exited before listening"));
        }
        if Instant::now() >= deadline {
            return Err(format!("no broker listening on {addr} after 120 s"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Cluster {
    /// Java: 3 `ControllerStartup` + one `NamesrvStartup` + 3
    /// `BrokerStartup`; ours: 3 `mqnamesrv` with `enableControllerInNamesrv`
    /// + 3 `mqbroker`. Waits until the set is whole.
    pub(crate) fn start(side: Side, ver: &str, work: &Path) -> Res<Cluster> {
        let t0 = Instant::now();
        let (group, java_ns, ns) = match side {
            Side::Java => {
                let group = ControllerGroup::start(&[ControllerKind::Java; 3], "");
                let ns = JavaNamesrv::start(ver);
                let addr = ns.addr.clone();
                (group, Some(ns), addr)
            }
            Side::Ours => {
                let group = ControllerGroup::start(&[ControllerKind::OursInNamesrv; 3], "");
                let ns = group.namesrv_addrs();
                (group, None, ns)
            }
        };
        log(&format!(
            "{}: controllers {} up, leader agreed, name server(s) {ns}",
            side.name(),
            group.addrs()
        ));
        let ctl = group.addrs();
        let (brokers, addrs) = match side {
            Side::Java => {
                // One at a time: each picks its free ports once the one
                // before it has bound its own.
                let mut bs: Vec<JavaBroker> = Vec::new();
                for _ in 0..3 {
                    let mut b = JavaBroker::launch(
                        ver,
                        &ns,
                        &controller_broker_keys(&ctl, &common_broker_keys()),
                    );
                    let addr = b.addr.clone();
                    wait_listen(&addr, || b.proc.is_running())?;
                    bs.push(b);
                }
                let addrs = bs.iter().map(|b| b.addr.clone()).collect();
                (Brokers::Java(bs), addrs)
            }
            Side::Ours => {
                let mut bs = Vec::new();
                let mut addrs = Vec::new();
                for i in 0..3 {
                    let dir = work.join("ours").join(format!("broker-{i}"));
                    mkdir(&dir)?;
                    let port = free_broker_port();
                    write_file(
                        &dir.join("broker.conf"),
                        &format!(
                            "brokerClusterName={CLUSTER}\nbrokerName={BROKER_NAME}\nbrokerId=-1\n\
                             brokerRole=SLAVE\nenableControllerMode=true\ncontrollerAddr={ctl}\n\
                             allAckInSyncStateSet=true\nslaveReadEnable=true\nnamesrvAddr={ns}\n\
                             listenPort={port}\nhaListenPort={}\nbindAddress=127.0.0.1\n\
                             brokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\nstorePathRootDir={}\n\
                             {TEST_BROKER_KEYS}{}",
                            port + 1,
                            dir.join("store").display(),
                            common_broker_keys()
                        ),
                    )?;
                    let mut b = BrokerProcess::new(&format!("broker-{i}"), dir);
                    b.start();
                    let addr = format!("127.0.0.1:{port}");
                    wait_listen(&addr, || b.proc.as_mut().is_some_and(|p| p.is_running()))?;
                    bs.push(b);
                    addrs.push(addr);
                }
                (Brokers::Ours(bs), addrs)
            }
        };
        let mut c = Cluster {
            side,
            group,
            _java_ns: java_ns,
            ns,
            brokers,
            addrs,
        };
        let master = c.wait_whole(Duration::from_secs(180))?;
        log(&format!(
            "{}: broker set whole after {:.1} s, master {master}",
            side.name(),
            t0.elapsed().as_secs_f64()
        ));
        Ok(c)
    }

    pub(crate) fn pid(&self, i: usize) -> Option<u32> {
        match &self.brokers {
            Brokers::Java(bs) => bs.get(i).map(|b| b.proc.pid()),
            Brokers::Ours(bs) => bs.get(i).and_then(BrokerProcess::pid),
        }
    }

    /// `addr=pid,...` as `BenchFailover` takes it.
    pub(crate) fn pid_list(&self) -> String {
        (0..self.addrs.len())
            .filter_map(|i| self.pid(i).map(|p| format!("{}={p}", self.addrs[i])))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub(crate) fn index_of(&self, addr: &str) -> Option<usize> {
        self.addrs.iter().position(|a| a == addr)
    }

    /// Starts broker `i` again on its store (after a SIGKILL).
    pub(crate) fn restart(&mut self, i: usize) {
        match &mut self.brokers {
            Brokers::Java(bs) => bs[i].restart(),
            Brokers::Ours(bs) => {
                bs[i].reap();
                bs[i].start();
            }
        }
    }

    /// SIGCONT to broker `i` (after a SIGSTOP).
    pub(crate) fn resume(&mut self, i: usize) {
        match &self.brokers {
            Brokers::Java(bs) => bs[i].proc.signal(libc::SIGCONT),
            Brokers::Ours(bs) => bs[i].signal(libc::SIGCONT),
        }
    }

    fn all_running(&mut self) -> bool {
        match &mut self.brokers {
            Brokers::Java(bs) => bs.iter_mut().all(|b| b.proc.is_running()),
            Brokers::Ours(bs) => bs
                .iter_mut()
                .all(|b| b.proc.as_mut().is_some_and(|p| p.is_running())),
        }
    }

    /// Waits until the controllers' SyncStateSet holds all 3 brokers and
    /// every name server lists its master as id 0; the master's address.
    pub(crate) fn wait_whole(&mut self, limit: Duration) -> Res<String> {
        self.wait_in_sync(3, limit)
    }

    /// Like [`Cluster::wait_whole`] with at least `need` brokers in the
    /// SyncStateSet.
    pub(crate) fn wait_in_sync(&mut self, need: usize, limit: Duration) -> Res<String> {
        let deadline = Instant::now() + limit;
        let mut last = String::from("no SyncStateSet");
        loop {
            if !self.all_running() {
                return Err(format!(
                    "{}: a broker exited\n{}",
                    self.side.name(),
                    self.logs()
                ));
            }
            if let Some(s) = self.group.sync_state(BROKER_NAME) {
                let master = s
                    .master_broker_id
                    .and_then(|id| s.address_of(id))
                    .map(str::to_owned);
                last = format!("{s:?}");
                if let Some(m) = master {
                    let routed = self.ns.split(';').all(|ns| route(ns).get(&0) == Some(&m));
                    if s.in_sync_ids().len() >= need && routed {
                        return Ok(m);
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{}: broker set not whole within {limit:?}: {last}\n{}",
                    self.side.name(),
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub(crate) fn logs(&self) -> String {
        let brokers: String = match &self.brokers {
            Brokers::Java(bs) => bs.iter().map(|b| b.logs()).collect(),
            Brokers::Ours(bs) => bs.iter().map(|b| b.logs(60)).collect(),
        };
        format!("{}\n{brokers}", self.group.logs())
    }
}
