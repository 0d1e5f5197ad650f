//! RocketMQ 5.x controller mode (RIP-44) for the `controller_*` suites.
//!
//! - [`ControllerGroup`]: N controllers of chosen [`ControllerKind`]s (the
//!   official Java 5.3.3 `ControllerStartup`, our `mqcontroller`, or a name
//!   server with `enableControllerInNamesrv=true`, ours or Java's) in one
//!   DLedger group with one `controllerDLegerPeers` string on free loopback
//!   ports, each with its own folder, store (4 MiB DLedger files) and log.
//!   A member can be SIGKILLed, stopped, restarted (same store) and paused
//!   (SIGSTOP/SIGCONT); the leader is found with CONTROLLER_GET_METADATA_INFO
//!   (1005) sent straight to every member.
//! - [`controller_broker`]: the official Java 5.3.3 broker in controller
//!   mode (`enableControllerMode=true`, `brokerId=-1`, `brokerRole=SLAVE`,
//!   `allAckInSyncStateSet=true`, [`CLUSTER`]/[`BROKER_NAME`]).
//! - Direct reads for polling (1005 [`metadata`], 1006 [`sync_state`]) and
//!   [`Admin`]: the 5.3.3 mqadmin commands of controller mode, parsed.
//! - [`failover_flow`]: the broker failover scenario shared by the suites
//!   (producer and push consumer through a master kill, the old master's
//!   return and a controller leader kill; `check_acks` at the end).
//!
//! Every wait polls with a deadline; a failure prints every process's logs.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use remoting::body::from_fastjson;
use remoting::{Connection, RemotingCommand, Router};

use crate::{
    bin_dir, check_acks, cluster_info, compat_dir, file_tail, free_port, java_client,
    reference_libs, tail_lines, text, workspace_root, JavaBroker, JavaClient, Proc,
};

/// The official Java version of the controllers, brokers and tools.
pub const VERSION: &str = "5.3.3";
pub const CLUSTER: &str = "CtlCluster";
pub const BROKER_NAME: &str = "ctl-a";
pub const DLEDGER_GROUP: &str = "CtlGroup";
/// DLedger data file size of every controller (`mappedFileSize`, 4 MiB).
pub const MAPPED_FILE_SIZE: u64 = 4 * 1024 * 1024;
/// Commit-log file size of every broker (8 MiB).
pub const BROKER_FILE_SIZE: u64 = 8 * 1024 * 1024;

/// Controller request codes (`RequestCode.java`).
pub mod code {
    pub const ALTER_SYNC_STATE_SET: i32 = 1001;
    pub const ELECT_MASTER: i32 = 1002;
    pub const REGISTER_BROKER: i32 = 1003;
    pub const GET_REPLICA_INFO: i32 = 1004;
    pub const GET_METADATA_INFO: i32 = 1005;
    pub const GET_SYNC_STATE_DATA: i32 = 1006;
    pub const GET_BROKER_EPOCH_CACHE: i32 = 1007;
    pub const UPDATE_CONTROLLER_CONFIG: i32 = 1009;
    pub const GET_CONTROLLER_CONFIG: i32 = 1010;
    pub const CLEAN_BROKER_DATA: i32 = 1011;
    pub const GET_NEXT_BROKER_ID: i32 = 1012;
    /// Response: the node is not the controller leader.
    pub const NOT_LEADER: i32 = 2007;
}

// ----------------------------------------------------------------- members

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

/// Our `mqcontroller`: `$MQ_BIN_DIR` or the release folder of [`bin_dir`],
/// else built into `target/compat-bins`.
pub fn controller_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = bin_dir().join("mqcontroller");
        if bin.exists() {
            return bin;
        }
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| workspace_root().join("target"));
        let own = target.join("compat-bins");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "-p", "controller", "--bins"])
            .env("CARGO_TARGET_DIR", &own)
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building mqcontroller failed");
        own.join("release").join("mqcontroller")
    })
    .clone()
}

// ------------------------------------------------------------------- group

/// A DLedger group of controllers. Prints every member's logs when a test
/// fails.
pub struct ControllerGroup {
    pub dir: tempfile::TempDir,
    pub members: Vec<ControllerMember>,
    /// `n0-127.0.0.1:p0;n1-127.0.0.1:p1;…`
    pub peers: String,
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
        for m in &mut members {
            std::fs::create_dir_all(&m.dir).expect("member dir");
            m.write_conf(&peers, extra);
            m.start();
        }
        let mut group = ControllerGroup {
            dir,
            members,
            peers,
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
    pub fn leader(&mut self) -> Option<usize> {
        let mut named: Option<String> = None;
        let mut self_leader = None;
        for i in 0..self.members.len() {
            if !self.members[i].is_up() {
                continue;
            }
            let meta = metadata(&self.members[i].addr)?;
            let addr = meta.leader_addr?;
            if named.as_ref().is_some_and(|n| *n != addr) {
                return None;
            }
            if meta.is_leader && addr == self.members[i].addr {
                self_leader = Some(i);
            }
            named = Some(addr);
        }
        self_leader
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

// ------------------------------------------------------------ direct reads

/// One request with `body` and ext fields; the response (any code).
pub fn request(
    addr: &str,
    code: i32,
    ext: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Option<RemotingCommand> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let conn = tokio::time::timeout(
            Duration::from_secs(3),
            Connection::connect(addr, Arc::new(Router::new())),
        )
        .await
        .ok()?
        .ok()?;
        let mut cmd = RemotingCommand::request(code);
        for (k, v) in ext {
            cmd = cmd.with_ext(*k, *v);
        }
        if let Some(b) = body {
            cmd = cmd.with_body(b);
        }
        let resp = conn.request(cmd, Duration::from_secs(3)).await.ok();
        conn.close();
        resp
    })
}

/// A controller's answer to CONTROLLER_GET_METADATA_INFO (1005).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub group: Option<String>,
    pub leader_id: Option<String>,
    pub leader_addr: Option<String>,
    pub is_leader: bool,
    pub peers: Option<String>,
}

/// 1005 to `addr`; `None` unless it answers 0.
pub fn metadata(addr: &str) -> Option<Metadata> {
    let r = request(addr, code::GET_METADATA_INFO, &[], None)?;
    if r.code != 0 {
        return None;
    }
    let get = |k: &str| r.ext(k).filter(|v| !v.is_empty()).map(str::to_owned);
    Some(Metadata {
        group: get("group"),
        leader_id: get("controllerLeaderId"),
        leader_addr: get("controllerLeaderAddress"),
        is_leader: r.ext("isLeader") == Some("true"),
        peers: get("peers"),
    })
}

/// One member of a broker set as 1006 lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    pub broker_id: i64,
    pub address: String,
    pub alive: bool,
}

/// A broker set's replica info (1006 `BrokerReplicasInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncState {
    pub master_broker_id: Option<i64>,
    pub master_address: Option<String>,
    pub master_epoch: i64,
    pub sync_state_set_epoch: i64,
    pub in_sync: Vec<Replica>,
    pub not_in_sync: Vec<Replica>,
}

impl SyncState {
    /// The ids of the SyncStateSet, sorted.
    pub fn in_sync_ids(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.in_sync.iter().map(|r| r.broker_id).collect();
        v.sort_unstable();
        v
    }

    /// The address of member `id`.
    pub fn address_of(&self, id: i64) -> Option<&str> {
        self.in_sync
            .iter()
            .chain(&self.not_in_sync)
            .find(|r| r.broker_id == id)
            .map(|r| r.address.as_str())
    }

    /// The id registered for `address`.
    pub fn id_of(&self, address: &str) -> Option<i64> {
        self.in_sync
            .iter()
            .chain(&self.not_in_sync)
            .find(|r| r.address == address)
            .map(|r| r.broker_id)
    }
}

/// 1006 for `broker_name` to `addr` (the leader); `None` unless it answers
/// 0 with that set.
pub fn sync_state(addr: &str, broker_name: &str) -> Option<SyncState> {
    let body = serde_json::to_vec(&[broker_name]).ok()?;
    let r = request(addr, code::GET_SYNC_STATE_DATA, &[], Some(body))?;
    if r.code != 0 {
        return None;
    }
    let v: serde_json::Value = from_fastjson(&r.body).ok()?;
    parse_replicas_info(&v, broker_name)
}

/// The `broker_name` entry of a `BrokerReplicasInfo` JSON value.
pub fn parse_replicas_info(v: &serde_json::Value, broker_name: &str) -> Option<SyncState> {
    let e = v.get("replicasInfoTable")?.get(broker_name)?;
    let replicas = |k: &str| -> Vec<Replica> {
        e.get(k)
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|r| {
                        Some(Replica {
                            broker_id: r.get("brokerId")?.as_i64()?,
                            address: r.get("brokerAddress")?.as_str()?.to_owned(),
                            alive: r.get("alive").and_then(|a| a.as_bool()).unwrap_or(false),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    Some(SyncState {
        master_broker_id: e.get("masterBrokerId").and_then(|x| x.as_i64()),
        master_address: e
            .get("masterAddress")
            .and_then(|x| x.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        master_epoch: e.get("masterEpoch")?.as_i64()?,
        sync_state_set_epoch: e.get("syncStateSetEpoch")?.as_i64()?,
        in_sync: replicas("inSyncReplicas"),
        not_in_sync: replicas("notInSyncReplicas"),
    })
}

// ------------------------------------------------------------------ brokers

/// The keys of a Java broker of [`BROKER_NAME`] in controller mode.
pub fn controller_broker_keys(controller_addrs: &str, extra: &str) -> String {
    format!(
        "brokerClusterName={CLUSTER}\nbrokerName={BROKER_NAME}\nbrokerId=-1\nbrokerRole=SLAVE\n\
         enableControllerMode=true\ncontrollerAddr={controller_addrs}\nallAckInSyncStateSet=true\n\
         mappedFileSizeCommitLog={BROKER_FILE_SIZE}\nslaveReadEnable=true\n{extra}"
    )
}

/// The official Java 5.3.3 broker in controller mode, launched (not waited
/// for): registered with the name servers `namesrv_addrs` (`;`-list).
pub fn controller_broker(namesrv_addrs: &str, controller_addrs: &str, extra: &str) -> JavaBroker {
    JavaBroker::launch(
        VERSION,
        namesrv_addrs,
        &controller_broker_keys(controller_addrs, extra),
    )
}

/// SIGKILLs a Java broker and reaps it.
pub fn kill_broker(b: &mut JavaBroker) {
    b.proc.signal(libc::SIGKILL);
    b.proc.stop(Duration::from_secs(10));
}

/// [`BROKER_NAME`]'s brokers as name server `ns` lists them: id → address.
pub fn route(ns: &str) -> BTreeMap<i64, String> {
    cluster_info(ns)
        .and_then(|info| info.broker_addr_table.get(BROKER_NAME).cloned())
        .map(|bd| bd.broker_addrs)
        .unwrap_or_default()
}

// -------------------------------------------------------------------- admin

/// The official 5.3.3 mqadmin with a home of its own, parsing the output of
/// the controller-mode commands (spec controller.md §11).
pub struct Admin {
    pub java: JavaClient,
    pub home: PathBuf,
}

/// `getControllerMetaData`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminMetadata {
    pub group: String,
    pub leader_id: String,
    pub leader_addr: String,
    /// `id:addr` per `#Peer:` line.
    pub peers: Vec<String>,
}

/// One broker set of `getSyncStateSet`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminSyncState {
    pub broker_name: String,
    pub master_broker_id: i64,
    pub master_addr: String,
    pub master_epoch: i64,
    pub sync_state_set_epoch: i64,
    pub sync_state_set_nums: i64,
    /// (brokerId, address, alive) per `InSyncReplica:` line.
    pub in_sync: Vec<(i64, String, bool)>,
    pub not_in_sync: Vec<(i64, String, bool)>,
}

/// One `EpochEntry{epoch=…, startOffset=…, endOffset=…}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Epoch {
    pub epoch: i64,
    pub start: i64,
    pub end: i64,
}

/// One broker of `getBrokerEpoch`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminBrokerEpoch {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addr: String,
    pub broker_id: i64,
    pub epochs: Vec<Epoch>,
}

/// `electMaster`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminElect {
    pub cluster: String,
    pub broker_name: String,
    pub master_addr: String,
    pub master_epoch: i64,
    pub sync_state_set_epoch: i64,
}

/// `\t`/space separated `#key value` lines of mqadmin output.
fn hash_fields(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix('#')?;
            let (k, v) = rest.split_once(|c: char| c == '\t' || c == ' ')?;
            Some((k.trim_end_matches(':').to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// `Name{a=1, b='x', …}` → key → value (quotes removed).
fn to_string_fields(s: &str) -> BTreeMap<String, String> {
    let inner = s
        .split_once('{')
        .map(|(_, r)| r.trim_end().trim_end_matches('}'))
        .unwrap_or("");
    inner
        .split(", ")
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('\'').to_owned()))
        .collect()
}

fn replica_line(s: &str) -> Option<(i64, String, bool)> {
    let f = to_string_fields(s);
    Some((
        f.get("brokerId")?.parse().ok()?,
        f.get("brokerAddress")?.clone(),
        f.get("alive")? == "true",
    ))
}

/// Parses `getControllerMetaData` output.
pub fn parse_controller_metadata(out: &str) -> Option<AdminMetadata> {
    let mut m = AdminMetadata::default();
    let mut seen = false;
    for (k, v) in hash_fields(out) {
        match k.as_str() {
            "ControllerGroup" => {
                m.group = v;
                seen = true;
            }
            "ControllerLeaderId" => m.leader_id = v,
            "ControllerLeaderAddress" => m.leader_addr = v,
            "Peer" => m.peers.push(v),
            _ => {}
        }
    }
    seen.then_some(m)
}

/// Parses `getSyncStateSet` output (one entry per `#brokerName`).
pub fn parse_sync_state_set(out: &str) -> Vec<AdminSyncState> {
    let mut sets: Vec<AdminSyncState> = Vec::new();
    for line in out.lines() {
        let l = line.trim();
        if let Some(r) = l.strip_prefix("InSyncReplica:") {
            if let (Some(s), Some(x)) = (sets.last_mut(), replica_line(r)) {
                s.in_sync.push(x);
            }
            continue;
        }
        if let Some(r) = l.strip_prefix("NotInSyncReplica:") {
            if let (Some(s), Some(x)) = (sets.last_mut(), replica_line(r)) {
                s.not_in_sync.push(x);
            }
            continue;
        }
        let Some((k, v)) = hash_fields(l).pop() else {
            continue;
        };
        if k == "brokerName" {
            sets.push(AdminSyncState {
                broker_name: v,
                ..AdminSyncState::default()
            });
            continue;
        }
        let Some(s) = sets.last_mut() else { continue };
        let n = v.parse::<i64>().unwrap_or(-1);
        match k.as_str() {
            "MasterBrokerId" => s.master_broker_id = n,
            "MasterAddr" => s.master_addr = v,
            "MasterEpoch" => s.master_epoch = n,
            "SyncStateSetEpoch" => s.sync_state_set_epoch = n,
            "SyncStateSetNums" => s.sync_state_set_nums = n,
            _ => {}
        }
    }
    sets
}

/// Parses `getBrokerEpoch` output (one entry per `#clusterName`).
pub fn parse_broker_epochs(out: &str) -> Vec<AdminBrokerEpoch> {
    let mut v: Vec<AdminBrokerEpoch> = Vec::new();
    for (k, val) in hash_fields(out) {
        if k == "clusterName" {
            v.push(AdminBrokerEpoch {
                cluster: val,
                ..AdminBrokerEpoch::default()
            });
            continue;
        }
        let Some(b) = v.last_mut() else { continue };
        match k.as_str() {
            "brokerName" => b.broker_name = val,
            "brokerAddr" => b.broker_addr = val,
            "brokerId" => b.broker_id = val.parse().unwrap_or(-1),
            "Epoch" => {
                let f = to_string_fields(&val);
                let num = |k: &str| f.get(k).and_then(|x| x.parse::<i64>().ok());
                if let (Some(epoch), Some(start), Some(end)) =
                    (num("epoch"), num("startOffset"), num("endOffset"))
                {
                    b.epochs.push(Epoch { epoch, start, end });
                }
            }
            _ => {}
        }
    }
    v
}

/// Parses `getControllerConfig` output: address → key → value.
pub fn parse_controller_config(out: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut all: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut cur: Option<String> = None;
    for line in out.lines() {
        let l = line.trim_end();
        if let Some(a) = l
            .strip_prefix("============")
            .and_then(|r| r.strip_suffix("============"))
        {
            cur = Some(a.to_owned());
            all.entry(a.to_owned()).or_default();
            continue;
        }
        let (Some(c), Some((k, v))) = (&cur, l.split_once("=  ")) else {
            continue;
        };
        if let Some(m) = all.get_mut(c) {
            m.insert(k.trim().to_owned(), v.to_owned());
        }
    }
    all
}

impl Admin {
    /// Prepares the 5.3.3 tools (cached) in `dir`.
    pub fn new(dir: &Path) -> Admin {
        let java = java_client(VERSION).snapshot(dir);
        let home = dir.join("clients").join("admin");
        std::fs::create_dir_all(&home).expect("admin home");
        Admin { java, home }
    }

    pub fn run(&self, args: &[&str]) -> String {
        self.java.mqadmin(&self.home, args)
    }

    /// `getControllerMetaData -a addr`: parsed, and the text.
    pub fn controller_metadata(&self, addr: &str) -> (Option<AdminMetadata>, String) {
        let out = self.run(&["getControllerMetaData", "-a", addr]);
        (parse_controller_metadata(&out), out)
    }

    /// `getSyncStateSet -a addrs -b name`: parsed, and the text.
    pub fn sync_state_set(&self, addrs: &str, name: &str) -> (Option<AdminSyncState>, String) {
        let out = self.run(&["getSyncStateSet", "-a", addrs, "-b", name]);
        let s = parse_sync_state_set(&out)
            .into_iter()
            .find(|s| s.broker_name == name);
        (s, out)
    }

    /// `getBrokerEpoch -n ns -b name`: parsed, and the text.
    pub fn broker_epochs(&self, ns: &str, name: &str) -> (Vec<AdminBrokerEpoch>, String) {
        let out = self.run(&["getBrokerEpoch", "-n", ns, "-b", name]);
        (parse_broker_epochs(&out), out)
    }

    /// `electMaster -a addr -c cluster -bn name -b id`: parsed on success,
    /// else the text.
    pub fn elect_master(
        &self,
        addr: &str,
        cluster: &str,
        name: &str,
        id: i64,
    ) -> Result<AdminElect, String> {
        let id = id.to_string();
        let out = self.run(&[
            "electMaster",
            "-a",
            addr,
            "-c",
            cluster,
            "-bn",
            name,
            "-b",
            &id,
        ]);
        if out.contains("command failed") || !out.contains("#BrokerMasterAddr") {
            return Err(out);
        }
        let mut e = AdminElect::default();
        for (k, v) in hash_fields(&out) {
            let n = v.parse::<i64>().unwrap_or(-1);
            match k.as_str() {
                "ClusterName" => e.cluster = v,
                "BrokerName" => e.broker_name = v,
                "BrokerMasterAddr" => e.master_addr = v,
                "MasterEpoch" => e.master_epoch = n,
                "SyncStateSetEpoch" => e.sync_state_set_epoch = n,
                _ => {}
            }
        }
        Ok(e)
    }

    /// `cleanBrokerMetadata -a addr -c cluster -bn name [-b ids] [-l]`: the
    /// text; an error unless it reports success.
    pub fn clean_broker_metadata(
        &self,
        addr: &str,
        cluster: &str,
        name: &str,
        ids: Option<&str>,
        living: bool,
    ) -> Result<String, String> {
        let mut args = vec![
            "cleanBrokerMetadata",
            "-a",
            addr,
            "-c",
            cluster,
            "-bn",
            name,
        ];
        if let Some(ids) = ids {
            args.extend(["-b", ids]);
        }
        if living {
            args.push("-l");
        }
        let out = self.run(&args);
        if out.contains(&format!(
            "clear broker {name} metadata from controller success!"
        )) {
            Ok(out)
        } else {
            Err(out)
        }
    }

    /// `updateControllerConfig -a addrs -k key -v value`: the text; an error
    /// unless it reports success.
    pub fn update_controller_config(
        &self,
        addrs: &str,
        key: &str,
        value: &str,
    ) -> Result<String, String> {
        let out = self.run(&[
            "updateControllerConfig",
            "-a",
            addrs,
            "-k",
            key,
            "-v",
            value,
        ]);
        if out.contains("update controller config success!") && !out.contains("command failed") {
            Ok(out)
        } else {
            Err(out)
        }
    }

    /// `getControllerConfig -a addrs`: address → key → value, and the text.
    pub fn controller_config(
        &self,
        addrs: &str,
    ) -> (BTreeMap<String, BTreeMap<String, String>>, String) {
        let out = self.run(&["getControllerConfig", "-a", addrs]);
        (parse_controller_config(&out), out)
    }

    /// `haStatus -n ns -b brokerAddr`: `#key value` fields, and the text.
    pub fn ha_status(&self, ns: &str, broker_addr: &str) -> (BTreeMap<String, String>, String) {
        let out = self.run(&["haStatus", "-n", ns, "-b", broker_addr]);
        (hash_fields(&out).into_iter().collect(), out)
    }

    /// `updateTopic -b addr` with `queues` queues; panics unless it succeeds.
    pub fn create_topic(&self, ns: &str, topic: &str, queues: u32, broker_addr: &str) {
        if let Err(e) = self
            .java
            .update_topic_on_broker(&self.home, ns, topic, queues, broker_addr)
        {
            panic!("updateTopic {topic} on {broker_addr}: {e}");
        }
    }
}

// ----------------------------------------------------------------- scenario

/// Timings measured by [`failover_flow`], printed by the suites.
#[derive(Debug, Default)]
pub struct FlowTimings {
    pub first_master: Duration,
    pub new_master_after_kill: Duration,
    pub old_master_back_as_slave: Duration,
    pub new_controller_leader: Duration,
}

/// The broker failover scenario on a running controller group and name
/// servers `ns` (`;`-list): two Java brokers of [`BROKER_NAME`] register
/// (one master, SyncStateSet {1, 2}); a compat.StoreDriver producer sends
/// (bounded: `produce-until`, 4 threads) while a compat.FailoverConsumer
/// push consumer reads; the master is SIGKILLed → the other becomes master
/// (masterEpoch + 1, set {new}) and sends are acknowledged again; the old
/// master restarts and comes back as a slave (set {1, 2} again);
/// `getBrokerEpoch` shows both epochs on both brokers; the controller
/// leader is SIGKILLed → a new leader, the brokers keep their roles and
/// sends go on; the push consumer receives every acknowledged message and
/// `check_acks` holds on a dump of the topic.
pub fn failover_flow(
    group: &mut ControllerGroup,
    ns: &str,
    logs: &dyn Fn() -> String,
) -> FlowTimings {
    let mut t = FlowTimings::default();
    let first_ns = ns.split(';').next().unwrap_or(ns).to_owned();
    let admin = Admin::new(group.dir.path());
    let ctl = group.addrs();

    // 1. Two brokers; the first to register becomes master.
    let started = Instant::now();
    let mut brokers = [
        controller_broker(ns, &ctl, ""),
        controller_broker(ns, &ctl, ""),
    ];
    let all_logs = |brokers: &[JavaBroker], group: &ControllerGroup| {
        format!(
            "{}\n{}\n{}",
            brokers.iter().map(JavaBroker::logs).collect::<String>(),
            group.logs(),
            logs()
        )
    };
    let s = wait_state(
        group,
        &brokers,
        "a master and SyncStateSet of both",
        120,
        |s| s.master_broker_id.is_some() && s.in_sync.len() == 2,
        logs,
    );
    t.first_master = started.elapsed();
    let master_addr = s.master_address.clone().unwrap_or_default();
    let m = brokers
        .iter()
        .position(|b| b.addr == master_addr)
        .unwrap_or_else(|| panic!("master {master_addr} is none of ours: {s:?}"));
    let sl = 1 - m;
    wait_route(
        ns,
        &brokers[m].addr,
        &brokers[sl].addr,
        s.id_of(&brokers[sl].addr),
        60,
        &|| all_logs(&brokers, group),
    );
    eprintln!(
        "first master {master_addr} after {:?}: {s:?}",
        t.first_master
    );

    // 2. Topic on both (the Java slave copies metadata only every minute).
    let topic = "CtlFailover";
    for b in &brokers {
        admin.create_topic(&first_ns, topic, 4, &b.addr);
    }
    let home = group.dir.path().join("clients").join("drivers");
    std::fs::create_dir_all(&home).expect("drivers home");
    let dir = group.dir.path().to_owned();
    let mut producer = admin.java.spawn(
        &home,
        "compat.StoreDriver",
        &["produce-until", ns, topic, "240", "4"],
        dir.join("producer.out"),
    );
    let mut consumer = admin.java.spawn(
        &home,
        "compat.FailoverConsumer",
        &[ns, topic, "ctl_push", "300"],
        dir.join("consumer.out"),
    );
    let acked = |p: &Proc| crate::acked(p);
    let wait_acks = |p: &mut Proc, n: usize, secs: u64, what: &str, extra: &dyn Fn() -> String| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while acked(p) < n {
            assert!(
                p.is_running() && Instant::now() < deadline,
                "{what}: {} of {n} sends acknowledged\n{}\n{}",
                acked(p),
                tail_lines(&p.log_text(), 30),
                extra()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_acks(&mut producer, 300, 60, "before the kill", &|| {
        all_logs(&brokers, group)
    });

    // 3. SIGKILL the master.
    let before = s;
    let old_id = before.master_broker_id.unwrap_or(-1);
    kill_broker(&mut brokers[m]);
    let killed_at = Instant::now();
    let new_id = before.id_of(&brokers[sl].addr).unwrap_or(-1);
    let after = wait_state(
        group,
        &brokers,
        "the slave elected after the master's kill",
        60,
        |s| s.master_broker_id == Some(new_id) && s.master_epoch == before.master_epoch + 1,
        logs,
    );
    t.new_master_after_kill = killed_at.elapsed();
    assert_eq!(
        after.in_sync_ids(),
        vec![new_id],
        "SyncStateSet after the kill: {after:?}"
    );
    assert!(
        after.sync_state_set_epoch > before.sync_state_set_epoch,
        "{before:?} -> {after:?}"
    );
    eprintln!(
        "new master {new_id} after {:?}: {after:?}",
        t.new_master_after_kill
    );
    let n = acked(&producer);
    wait_acks(&mut producer, n + 100, 60, "after the kill", &|| {
        all_logs(&brokers, group)
    });

    // 4. The old master returns as a slave.
    let back = Instant::now();
    brokers[m].restart();
    let rejoined = wait_state(
        group,
        &brokers,
        "the old master back in the SyncStateSet",
        120,
        |s| s.master_broker_id == Some(new_id) && s.in_sync_ids().len() == 2,
        logs,
    );
    t.old_master_back_as_slave = back.elapsed();
    assert_eq!(rejoined.master_epoch, after.master_epoch, "{rejoined:?}");
    wait_route(
        ns,
        &brokers[sl].addr,
        &brokers[m].addr,
        Some(old_id),
        60,
        &|| all_logs(&brokers, group),
    );
    eprintln!(
        "old master back as slave after {:?}: {rejoined:?}",
        t.old_master_back_as_slave
    );

    // getSyncStateSet and getBrokerEpoch through mqadmin.
    let (ss, out) = admin.sync_state_set(&ctl, BROKER_NAME);
    let ss = ss.unwrap_or_else(|| panic!("getSyncStateSet:\n{out}"));
    assert_eq!(
        (
            ss.master_broker_id,
            ss.master_addr.as_str(),
            ss.master_epoch,
            ss.sync_state_set_nums
        ),
        (new_id, brokers[sl].addr.as_str(), rejoined.master_epoch, 2),
        "getSyncStateSet:\n{out}"
    );
    let (epochs, out) = admin.broker_epochs(&first_ns, BROKER_NAME);
    assert_eq!(epochs.len(), 2, "getBrokerEpoch:\n{out}");
    for e in &epochs {
        let list: Vec<i64> = e.epochs.iter().map(|x| x.epoch).collect();
        assert_eq!(
            list,
            vec![before.master_epoch, after.master_epoch],
            "getBrokerEpoch of {}:\n{out}",
            e.broker_addr
        );
        assert_eq!(e.epochs[0].start, 0, "{out}");
        assert_eq!(e.epochs[0].end, e.epochs[1].start, "{out}");
    }
    let n = acked(&producer);
    wait_acks(
        &mut producer,
        n + 100,
        60,
        "after the old master's return",
        &|| all_logs(&brokers, group),
    );

    // 5. Kill the controller leader: a new one, same roles, sends go on.
    let leader = group.wait_leader(Duration::from_secs(30));
    group.kill(leader);
    let at = Instant::now();
    let new_leader = group.wait_new_leader(leader, Duration::from_secs(60));
    t.new_controller_leader = at.elapsed();
    eprintln!(
        "new controller leader {} after {:?}",
        group.members[new_leader].id, t.new_controller_leader
    );
    let n = acked(&producer);
    wait_acks(
        &mut producer,
        n + 100,
        60,
        "after the controller leader's kill",
        &|| all_logs(&brokers, group),
    );
    let same = wait_state(
        group,
        &brokers,
        "the SyncStateSet through the new leader",
        30,
        |s| s.master_broker_id == Some(new_id),
        logs,
    );
    assert_eq!(
        same.master_epoch, after.master_epoch,
        "a role change after the controller leader's kill: {same:?}"
    );
    assert_eq!(
        route(&first_ns).get(&0),
        Some(&brokers[sl].addr),
        "the master after the controller leader's kill"
    );

    // 6. Stop the producer (its output up to its last whole line); every
    // acknowledged message is consumed and readable at its offset.
    producer.signal(libc::SIGKILL);
    producer.wait_exit(Duration::from_secs(10));
    let out = producer.log_text();
    let acks_out = out[..out.rfind('\n').map_or(0, |i| i + 1)].to_owned();
    let keys = crate::invariant::acked_keys(&acks_out);
    crate::wait_delivered(&mut consumer, &keys, Duration::from_secs(90), || {
        all_logs(&brokers, group)
    });
    let dump = text(&admin.java.run(
        &home,
        "compat.StoreDriver",
        &["dump", &first_ns, topic, "ctl_dump", "60"],
        Duration::from_secs(120),
    ));
    check_acks(&acks_out, &dump).assert_ok("controller failover", || {
        format!("{}\n{}", tail_lines(&dump, 20), all_logs(&brokers, group))
    });
    t
}

/// Polls the group's SyncStateSet for [`BROKER_NAME`] (`secs`), checking
/// the brokers still run.
fn wait_state(
    group: &mut ControllerGroup,
    brokers: &[JavaBroker],
    what: &str,
    secs: u64,
    ok: impl Fn(&SyncState) -> bool,
    logs: &dyn Fn() -> String,
) -> SyncState {
    let blogs = || brokers.iter().map(JavaBroker::logs).collect::<String>();
    group.wait_sync_state(
        what,
        Duration::from_secs(secs),
        &|| format!("{}\n{}", blogs(), logs()),
        ok,
    )
}

/// Waits until every name server of `ns` routes `master` as id 0 and
/// `slave` under `slave_id` (any id if `None`).
fn wait_route(
    ns: &str,
    master: &str,
    slave: &str,
    slave_id: Option<i64>,
    secs: u64,
    logs: &dyn Fn() -> String,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let routes: Vec<BTreeMap<i64, String>> = ns.split(';').map(route).collect();
        let ok = routes.iter().all(|r| {
            r.get(&0).map(String::as_str) == Some(master)
                && r.iter().any(|(id, a)| {
                    a == slave && *id != 0 && slave_id.is_none_or(|want| want == *id)
                })
        });
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "name servers {ns} never routed master {master}, slave {slave} ({slave_id:?}): {routes:?}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
