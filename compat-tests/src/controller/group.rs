//! Controllers and their DLedger group.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{
    metadata, sync_state, SyncState, BROKER_NAME, DLEDGER_GROUP, MAPPED_FILE_SIZE, VERSION,
};
use crate::{bin_dir, compat_dir, file_tail, free_port, reference_libs, Proc, ProxyMesh};

/// What runs a controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControllerKind {
    /// Official `org.apache.rocketmq.controller.ControllerStartup` 5.3.3.
    Java,
    /// Official `NamesrvStartup` 5.3.3 with `enableControllerInNamesrv=true`.
    JavaInNamesrv,
    /// Our `mqcontroller -c <file>`.
    Ours,
    /// Our `mqnamesrv -c <file>` with `enableControllerInNamesrv=true`.
    OursInNamesrv,
}

impl ControllerKind {
    pub fn is_java(self) -> bool {
        matches!(self, ControllerKind::Java | ControllerKind::JavaInNamesrv)
    }

    pub fn in_namesrv(self) -> bool {
        matches!(
            self,
            ControllerKind::JavaInNamesrv | ControllerKind::OursInNamesrv
        )
    }
}

/// One controller of a group.
pub struct ControllerMember {
    pub kind: ControllerKind,
    /// DLedger id, `n0`, `n1`, …
    pub id: String,
    /// The controller port (the DLedger peer port).
    pub addr: String,
    /// The name server port when the controller runs inside one.
    pub namesrv_addr: Option<String>,
    pub dir: PathBuf,
    proc: Option<Proc>,
    starts: usize,
    paused: bool,
}

impl ControllerMember {
    fn conf(&self) -> PathBuf {
        self.dir.join("controller.properties")
    }

    fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    fn write_conf(&self, peers: &str, extra: &str) {
        let home = self.home();
        std::fs::create_dir_all(home.join("conf")).expect("create controller home");
        for f in ["logback_namesrv.xml", "logback_tools.xml"] {
            let _ = std::fs::copy(
                compat_dir().join("java").join("conf").join(f),
                home.join("conf").join(f),
            );
        }
        let mut conf = format!(
            "controllerDLegerGroup={DLEDGER_GROUP}\ncontrollerDLegerPeers={peers}\n\
             controllerDLegerSelfId={}\ncontrollerStorePath={}\nmappedFileSize={MAPPED_FILE_SIZE}\n\
             rocketmqHome={}\nconfigStorePath={}\nbindAddress=127.0.0.1\n",
            self.id,
            self.dir.join("store").display(),
            home.display(),
            self.dir.join("controller-config.properties").display(),
        );
        if let Some(ns) = &self.namesrv_addr {
            let port = ns.rsplit(':').next().unwrap_or_default();
            conf.push_str(&format!(
                "enableControllerInNamesrv=true\nlistenPort={port}\nkvConfigPath={}\n",
                self.dir.join("namesrv/kvConfig.json").display()
            ));
        }
        conf.push_str(extra);
        conf.push('\n');
        std::fs::write(self.conf(), conf).expect("write controller config");
    }

    fn command(&self) -> Command {
        match self.kind {
            ControllerKind::Ours | ControllerKind::OursInNamesrv => {
                let bin = if self.kind == ControllerKind::Ours {
                    controller_bin()
                } else {
                    bin_dir().join("mqnamesrv")
                };
                let mut c = Command::new(bin);
                c.arg("-c")
                    .arg(self.conf())
                    .env("HOME", self.home())
                    .env("ROCKETMQ_HOME", self.home())
                    .env("RUST_LOG", "info")
                    .env_remove("NAMESRV_ADDR");
                c
            }
            ControllerKind::Java | ControllerKind::JavaInNamesrv => {
                let lib = reference_libs(VERSION);
                let home = self.home();
                let (main, logback) = if self.kind == ControllerKind::Java {
                    (
                        "org.apache.rocketmq.controller.ControllerStartup",
                        "rmq.controller.logback.xml",
                    )
                } else {
                    (
                        "org.apache.rocketmq.namesrv.NamesrvStartup",
                        "rmq.namesrv.logback.xml",
                    )
                };
                let mut c = Command::new("java");
                c.args([
                    "-Xms128m",
                    "-Xmx512m",
                    "-XX:MaxDirectMemorySize=512m",
                    "-XX:+UseG1GC",
                    // Hessian (ReplicasInfoManager) reflects into java.lang.
                    "--add-opens",
                    "java.base/java.lang=ALL-UNNAMED",
                ])
                .arg(format!("-Duser.home={}", home.display()))
                .arg(format!("-Drocketmq.home.dir={}", home.display()))
                .arg("-Dfile.encoding=UTF-8")
                .arg(format!("-Drmq.logback.configurationFile={logback}"))
                .arg("-cp")
                .arg(format!("{}/*", lib.display()))
                .arg(main)
                .arg("-c")
                .arg(self.conf())
                .env("ROCKETMQ_HOME", &home)
                .env_remove("NAMESRV_ADDR");
                c
            }
        }
    }

    /// Starts it (again, on the same folder and store).
    pub fn start(&mut self) {
        assert!(self.proc.is_none(), "controller {} already runs", self.id);
        self.starts += 1;
        self.paused = false;
        let log = self.dir.join(format!("controller-{}.out", self.starts));
        self.proc = Some(Proc::spawn(
            &format!("controller {} ({:?})", self.id, self.kind),
            self.command(),
            log,
        ));
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|p| p.is_running())
    }

    /// Running and not paused: it can answer.
    pub fn is_up(&mut self) -> bool {
        !self.paused && self.is_running()
    }

    /// Whether its ports accept connections.
    pub fn listens(&self) -> bool {
        TcpStream::connect(&self.addr).is_ok()
            && self
                .namesrv_addr
                .as_ref()
                .is_none_or(|ns| TcpStream::connect(ns).is_ok())
    }

    /// SIGKILL, reaped.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            if self.paused {
                p.signal(libc::SIGCONT);
            }
            p.signal(libc::SIGKILL);
            p.stop(Duration::from_secs(10));
        }
        self.paused = false;
    }

    /// SIGTERM (SIGKILL after 20 s).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            if self.paused {
                p.signal(libc::SIGCONT);
            }
            p.stop(Duration::from_secs(20));
        }
        self.paused = false;
    }

    /// SIGSTOP.
    pub fn pause(&mut self) {
        if let Some(p) = &self.proc {
            p.signal(libc::SIGSTOP);
            self.paused = true;
        }
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        if let Some(p) = &self.proc {
            p.signal(libc::SIGCONT);
            self.paused = false;
        }
    }

    /// Its output of every start, and for Java the tail of its own logs.
    pub fn logs(&self, lines: usize) -> String {
        let mut s = String::new();
        for i in 1..=self.starts {
            s.push_str(&format!(
                "----- controller {} {:?} {} start {i} (last {lines} lines) -----\n{}\n",
                self.id,
                self.kind,
                self.addr,
                file_tail(&self.dir.join(format!("controller-{i}.out")), lines)
            ));
        }
        if self.kind.is_java() {
            let logs = self.home().join("logs").join("rocketmqlogs");
            for f in ["controller_default.log", "namesrv.log", "dledger.log"] {
                let p = logs.join(f);
                if p.exists() {
                    s.push_str(&format!(
                        "----- {} {f} (tail) -----\n{}\n",
                        self.id,
                        file_tail(&p, lines)
                    ));
                }
            }
        }
        s
    }
}

impl Drop for ControllerMember {
    fn drop(&mut self) {
        if self.paused {
            self.resume();
        }
    }
}

/// Our `mqcontroller`, beside the other binaries of [`bin_dir`] (which
/// builds them all when one is missing).
pub fn controller_bin() -> PathBuf {
    bin_dir().join("mqcontroller")
}

// ------------------------------------------------------------------- group

/// A DLedger group of controllers. Prints every member's logs when a test
/// fails.
pub struct ControllerGroup {
    pub dir: tempfile::TempDir,
    pub members: Vec<ControllerMember>,
    /// `n0-127.0.0.1:p0;n1-127.0.0.1:p1;…` (every member at its real port).
    pub peers: String,
    /// With [`ControllerGroup::start_meshed`]: every DLedger link between
    /// members runs through a proxy of this mesh (member `i` dials member
    /// `j` at [`ProxyMesh::addr`]`(i, j)`), so a member can be cut off its
    /// peers ([`ControllerGroup::partition`]).
    pub mesh: Option<ProxyMesh>,
}

/// `kind`, or with `CTL_OURS_AS_JAVA=1` in the environment the Java
/// controller in place of ours (to check a suite itself against Java).
pub fn substitute(kind: ControllerKind) -> ControllerKind {
    if std::env::var("CTL_OURS_AS_JAVA").is_ok_and(|v| v == "1") {
        match kind {
            ControllerKind::Ours => ControllerKind::Java,
            ControllerKind::OursInNamesrv => ControllerKind::JavaInNamesrv,
            k => k,
        }
    } else {
        kind
    }
}

/// Distinct free loopback ports.
fn free_ports(n: usize) -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::new();
    for _ in 0..200 {
        if ports.len() == n {
            break;
        }
        let p = free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    assert_eq!(ports.len(), n, "no {n} distinct free ports");
    ports
}

impl ControllerGroup {
    /// Starts one member per kind (`extra` appended to every config file),
    /// waits (90 s) until they listen and (60 s more) until they agree on a
    /// leader.
    pub fn start(kinds: &[ControllerKind], extra: &str) -> ControllerGroup {
        ControllerGroup::start_with(kinds, extra, false)
    }

    /// As [`ControllerGroup::start`], with every DLedger link through a
    /// [`ProxyMesh`]: member `i`'s `controllerDLegerPeers` names itself at
    /// its real port and every other member `j` at the proxy of the link
    /// `i -> j`. A member's 1005 answer then names the leader at that
    /// member's proxy address unless it is the leader itself.
    pub fn start_meshed(kinds: &[ControllerKind], extra: &str) -> ControllerGroup {
        ControllerGroup::start_with(kinds, extra, true)
    }

    fn start_with(kinds: &[ControllerKind], extra: &str, meshed: bool) -> ControllerGroup {
        let dir = tempfile::Builder::new()
            .prefix("rmq-compat-ctl-")
            .tempdir()
            .expect("temp dir");
        let ports = free_ports(kinds.len() * 2);
        let mut members: Vec<ControllerMember> = kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| ControllerMember {
                kind: substitute(*kind),
                id: format!("n{i}"),
                addr: format!("127.0.0.1:{}", ports[2 * i]),
                namesrv_addr: kind
                    .in_namesrv()
                    .then(|| format!("127.0.0.1:{}", ports[2 * i + 1])),
                dir: dir.path().join(format!("n{i}")),
                proc: None,
                starts: 0,
                paused: false,
            })
            .collect();
        let peers = members
            .iter()
            .map(|m| format!("{}-{}", m.id, m.addr))
            .collect::<Vec<_>>()
            .join(";");
        let mesh = meshed.then(|| {
            let targets: Vec<std::net::SocketAddr> = members
                .iter()
                .map(|m| m.addr.parse().expect("controller address"))
                .collect();
            ProxyMesh::start(&targets).expect("controller proxy mesh")
        });
        // Member i's view: itself at its port, the others directly or
        // through the proxy of the link i -> j.
        let view = |i: usize| match &mesh {
            None => peers.clone(),
            Some(mesh) => members
                .iter()
                .enumerate()
                .map(|(j, m)| {
                    if i == j {
                        format!("{}-{}", m.id, m.addr)
                    } else {
                        format!("{}-{}", m.id, mesh.addr(i, j))
                    }
                })
                .collect::<Vec<_>>()
                .join(";"),
        };
        let views: Vec<String> = (0..members.len()).map(view).collect();
        for (m, v) in members.iter_mut().zip(&views) {
            std::fs::create_dir_all(&m.dir).expect("member dir");
            m.write_conf(v, extra);
            m.start();
        }
        let mut group = ControllerGroup {
            dir,
            members,
            peers,
            mesh,
        };
        for i in 0..group.members.len() {
            group.wait_listening(i, Duration::from_secs(90));
        }
        group.wait_leader(Duration::from_secs(60));
        group
    }

    /// The controller ports, `;`-joined (`controllerAddr`, mqadmin `-a`).
    pub fn addrs(&self) -> String {
        self.members
            .iter()
            .map(|m| m.addr.as_str())
            .collect::<Vec<_>>()
            .join(";")
    }

    /// The name servers of members that run inside one, `;`-joined.
    pub fn namesrv_addrs(&self) -> String {
        self.members
            .iter()
            .filter_map(|m| m.namesrv_addr.as_deref())
            .collect::<Vec<_>>()
            .join(";")
    }

    /// The name servers of members other than `skip` that run inside one,
    /// `;`-joined (the live ones after a member's kill).
    pub fn namesrv_addrs_except(&self, skip: usize) -> String {
        self.members
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .filter_map(|(_, m)| m.namesrv_addr.as_deref())
            .collect::<Vec<_>>()
            .join(";")
    }

    /// Waits until member `i` listens on its ports.
    pub fn wait_listening(&mut self, i: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            assert!(
                self.members[i].is_running(),
                "controller {} exited\n{}",
                self.members[i].id,
                self.logs()
            );
            if self.members[i].listens() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "controller {} never listened on {}\n{}",
                self.members[i].id,
                self.members[i].addr,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The member every up member names as leader (1005), if the one so
    /// named says it leads; `None` while they disagree or none leads.
    /// Members are compared by the leader id they name (in a meshed group
    /// each names the leader at its own proxy address), else by address.
    pub fn leader(&mut self) -> Option<usize> {
        let mut named: Option<String> = None;
        let mut self_leader = None;
        for i in 0..self.members.len() {
            if !self.members[i].is_up() {
                continue;
            }
            let meta = metadata(&self.members[i].addr)?;
            let addr = meta.leader_addr?;
            let who = meta.leader_id.clone().unwrap_or_else(|| addr.clone());
            if named.as_ref().is_some_and(|n| *n != who) {
                return None;
            }
            let me = &self.members[i];
            if meta.is_leader && (addr == me.addr || meta.leader_id.as_deref() == Some(&me.id)) {
                self_leader = Some(i);
            }
            named = Some(who);
        }
        self_leader
    }

    /// Cuts member `i` off its peers: every DLedger link into and out of it
    /// blackholed (meshed groups only). Clients and brokers still reach it.
    pub fn partition(&self, i: usize) {
        let mesh = self.mesh.as_ref();
        mesh.expect("partition needs ControllerGroup::start_meshed")
            .isolate(i);
    }

    /// Every DLedger link passes again (connections that lost bytes close).
    pub fn heal_partition(&self) {
        if let Some(mesh) = &self.mesh {
            mesh.heal();
        }
    }

    /// Polls [`ControllerGroup::leader`] until there is one.
    pub fn wait_leader(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.leader() {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "the controllers never agreed on a leader within {timeout:?}: {}\n{}",
                self.metadata_summary(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until a leader other than `old` is agreed on.
    pub fn wait_new_leader(&mut self, old: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.leader().filter(|i| *i != old) {
                return i;
            }
            let old_id = self.members[old].id.clone();
            assert!(
                Instant::now() < deadline,
                "no new controller leader (old {old_id}) within {timeout:?}: {}\n{}",
                self.metadata_summary(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Hands DLedger leadership to member `to` (LEADERSHIP_TRANSFER 51005
    /// to the current leader with its term, retried: DLedger's transfer is
    /// best effort) and waits until every up member names it leader.
    pub fn transfer_leadership(&mut self, to: usize, timeout: Duration) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = dledger::server::DLedgerClient::new(DLEDGER_GROUP, &self.peers)
            .expect("controller peers");
        let deadline = Instant::now() + timeout;
        let mut attempts = Vec::new();
        loop {
            match self.leader() {
                Some(l) if l == to => break,
                Some(l) => {
                    let other = (l + 1) % self.members.len();
                    let term = crate::dledger_term(
                        &rt,
                        self.members[l].addr.clone(),
                        DLEDGER_GROUP,
                        self.members[l].id.clone(),
                        self.members[other].id.clone(),
                    )
                    .unwrap_or(-1);
                    let r = rt.block_on(client.leadership_transfer(
                        &self.members[l].id,
                        &self.members[to].id,
                        term,
                    ));
                    attempts.push(format!("n{l}->n{to} term {term}: {}", r.base.code));
                    if r.base.code == 200 {
                        let until = Instant::now() + Duration::from_secs(10);
                        while Instant::now() < until && self.leader() != Some(to) {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        continue;
                    }
                }
                None => {}
            }
            assert!(
                Instant::now() < deadline,
                "no leadership transfer to n{to}: {attempts:?}; {}\n{}",
                self.metadata_summary(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!("controller leadership to n{to}: {attempts:?}");
    }

    /// What each up member answers to 1005, for failure messages.
    pub fn metadata_summary(&mut self) -> String {
        let mut s = Vec::new();
        for i in 0..self.members.len() {
            let m = &mut self.members[i];
            let up = m.is_up();
            let id = m.id.clone();
            s.push(if up {
                format!("{id}: {:?}", metadata(&m.addr))
            } else {
                format!("{id}: down")
            });
        }
        s.join("; ")
    }

    /// SIGKILL member `i`.
    pub fn kill(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// SIGTERM member `i`.
    pub fn stop(&mut self, i: usize) {
        self.members[i].stop();
    }

    /// Starts member `i` again on its store and waits (90 s) until it listens.
    pub fn restart(&mut self, i: usize) {
        self.members[i].stop();
        self.members[i].start();
        self.wait_listening(i, Duration::from_secs(90));
    }

    pub fn pause(&mut self, i: usize) {
        self.members[i].pause();
    }

    pub fn resume(&mut self, i: usize) {
        self.members[i].resume();
    }

    /// 1006 for `broker_name` through the current leader.
    pub fn sync_state(&mut self, broker_name: &str) -> Option<SyncState> {
        let l = self.leader()?;
        sync_state(&self.members[l].addr, broker_name)
    }

    /// Polls [`ControllerGroup::sync_state`] until `ok` holds; the state.
    pub fn wait_sync_state(
        &mut self,
        what: &str,
        timeout: Duration,
        extra_logs: &dyn Fn() -> String,
        ok: impl Fn(&SyncState) -> bool,
    ) -> SyncState {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(s) = self.sync_state(BROKER_NAME) {
                if ok(&s) {
                    return s;
                }
                last = Some(s);
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; last SyncStateSet {last:?}\n{}\n{}",
                self.logs(),
                extra_logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn logs(&self) -> String {
        self.members.iter().map(|m| m.logs(60)).collect()
    }
}

impl Drop for ControllerGroup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("===== controllers {} =====\n{}", self.peers, self.logs());
        }
        for m in &mut self.members {
            m.stop();
        }
    }
}
