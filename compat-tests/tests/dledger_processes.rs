//! DLedger under real faults (issue 7): three `dledger server` processes on
//! loopback, each dialling its peers through a [`ProxyMesh`] (one fault proxy
//! per directed link), while three client threads append the whole time and
//! record every acknowledged append (code 200: index, body, term, leader).
//!
//! Rounds, each bounded by deadlines, run twice:
//! 1. SIGKILL the leader: a different member must acknowledge appends in a
//!    higher term; the killed one is restarted after a few hundred more
//!    acknowledgements (it has a backlog to catch up on).
//! 2. SIGSTOP a follower (the leader must keep acknowledging with one peer
//!    paused), SIGCONT it, then SIGSTOP the leader: a new leader must
//!    acknowledge in a higher term; SIGCONT the old one.
//! 3. Isolate the leader (every proxy link into and out of it blackholed in
//!    the first set, reset in the second): a new leader among the other two
//!    must acknowledge; a client talking only to the isolated member must get
//!    no 200 for anything it sent after the cut, and none of those appends may
//!    ever be committed; then heal.
//!
//! After every round the appenders pause and, until a deadline, the three
//! stores are copied and opened with `dledger::store`: every member must hold
//! every acknowledged body at its acknowledged index, the three logs must be
//! identical up to the committed prefix (the highest acknowledged index or
//! checkpointed committed index), and each appender's acknowledgements must
//! be in log order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use compat_tests::{bin_dir, serial, tail_lines, Proc, ProxyMesh, ProxyMode};
use dledger::core::Storage;
use dledger::protocol::ResponseCode;
use dledger::server::DLedgerClient;
use dledger::store::{DLedgerStore, StoreConfig};

const GROUP: &str = "procs";
const N: usize = 3;
const APPENDERS: usize = 3;
/// Full sets of the three rounds; `DLEDGER_PROCESS_SETS` (1..=50) overrides
/// it for a longer soak.
const SETS: usize = 2;

fn sets() -> usize {
    std::env::var("DLEDGER_PROCESS_SETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| (1..=50).contains(n))
        .unwrap_or(SETS)
}
/// Small segments, so entries cross file ends many times during the test
/// (an entry is 48 bytes + a body of about 8).
const DATA_FILE_SIZE: usize = 64 * 1024;
const INDEX_FILE_SIZE: usize = 32 * 1024;
/// Acknowledgements each round waits for before its fault.
const ACKS_BEFORE_FAULT: usize = 300;
/// Deadline for a new leader to acknowledge after a fault.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(60);
/// Deadline for the three stores to converge after a round.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(60);
/// Pause between one appender's appends (keeps the log size and CPU modest).
const APPEND_PACE: Duration = Duration::from_millis(3);

fn ok() -> i32 {
    ResponseCode::Success.code()
}

// ------------------------------------------------------------------ members

struct Member {
    id: String,
    port: u16,
    /// `storeBaseDir`; the store is `<dir>/dledger-<id>`.
    dir: PathBuf,
    peers: String,
    proc: Option<Proc>,
    starts: usize,
    paused: bool,
}

struct Group {
    tmp: tempfile::TempDir,
    members: Vec<Member>,
    mesh: ProxyMesh,
}

/// Free loopback ports below the kernel's ephemeral range: a killed member is
/// restarted on its port, and in the meantime an outgoing connection (ours
/// or another test's) could take an ephemeral port as its source.
fn member_ports() -> Vec<u16> {
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        ^ (u64::from(std::process::id()) << 20);
    let mut ports: Vec<u16> = Vec::new();
    for _ in 0..10_000 {
        // splitmix64 step
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let port = 20_000 + (z % 12_000) as u16;
        if !ports.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
            if ports.len() == N {
                return ports;
            }
        }
    }
    panic!("no free ports in 20000..32000 on 127.0.0.1");
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: sending a signal to a child process we started.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

impl Group {
    fn start() -> Group {
        let tmp = tempfile::Builder::new()
            .prefix("dledger-procs-")
            .tempdir()
            .expect("temp dir");
        let ports = member_ports();
        let targets: Vec<_> = ports
            .iter()
            .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect();
        let mesh = ProxyMesh::start(&targets).expect("start proxies");
        let members = (0..N)
            .map(|i| {
                let peers = (0..N)
                    .map(|j| {
                        if i == j {
                            format!("n{j}-127.0.0.1:{}", ports[j])
                        } else {
                            format!("n{j}-{}", mesh.addr(i, j))
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(";");
                let dir = tmp.path().join(format!("n{i}"));
                std::fs::create_dir_all(&dir).expect("member dir");
                Member {
                    id: format!("n{i}"),
                    port: ports[i],
                    dir,
                    peers,
                    proc: None,
                    starts: 0,
                    paused: false,
                }
            })
            .collect();
        let mut g = Group { tmp, members, mesh };
        for i in 0..N {
            g.spawn(i);
        }
        g
    }

    fn spawn(&mut self, i: usize) {
        let m = &mut self.members[i];
        m.starts += 1;
        let mut cmd = Command::new(bin_dir().join("dledger"));
        cmd.arg("server")
            .args(["-g", GROUP, "-i", &m.id, "-p", &m.peers])
            .arg("-s")
            .arg(&m.dir)
            .args(["--bind", "127.0.0.1"])
            .args(["--heartbeat-interval-ms", "200"])
            .args(["--max-heartbeat-leak", "3"])
            .args(["--min-vote-interval-ms", "100"])
            .args(["--max-vote-interval-ms", "400"])
            .arg("--data-file-size")
            .arg(DATA_FILE_SIZE.to_string())
            .arg("--index-file-size")
            .arg(INDEX_FILE_SIZE.to_string())
            .env("RUST_LOG", "info");
        let log = self.tmp.path().join(format!("{}-{}.log", m.id, m.starts));
        m.proc = Some(Proc::spawn(&format!("dledger {}", m.id), cmd, log));
    }

    fn pid(&self, i: usize) -> u32 {
        self.members[i].proc.as_ref().expect("member running").pid()
    }

    /// SIGKILL and reap.
    fn kill(&mut self, i: usize) {
        signal(self.pid(i), libc::SIGKILL);
        if let Some(mut p) = self.members[i].proc.take() {
            p.stop(Duration::from_secs(10));
        }
    }

    fn pause(&mut self, i: usize) {
        signal(self.pid(i), libc::SIGSTOP);
        self.members[i].paused = true;
    }

    fn resume(&mut self, i: usize) {
        signal(self.pid(i), libc::SIGCONT);
        self.members[i].paused = false;
    }

    fn assert_running(&mut self) {
        for m in &mut self.members {
            if let Some(p) = m.proc.as_mut() {
                assert!(
                    p.is_running(),
                    "{} exited:\n{}",
                    m.id,
                    tail_lines(&p.log_text(), 60)
                );
            }
        }
    }

    /// `id-addr;...` with every member's own port: what a client uses.
    fn client_peers(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}-127.0.0.1:{}", m.id, m.port))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// Copies member `i`'s store while it runs and opens the copy (copy
    /// number `k`); `k == None` opens the store itself (member stopped).
    fn open_store(&self, i: usize, k: Option<usize>) -> Result<DLedgerStore, String> {
        let m = &self.members[i];
        let base = match k {
            Some(k) => {
                let base = self.tmp.path().join(format!("copy-{}", m.id));
                let _ = std::fs::remove_dir_all(&base);
                let name = format!("dledger-{}", m.id);
                copy_dir(&m.dir.join(&name), &base.join(&name))
                    .map_err(|e| format!("copy {k} of {}: {e}", m.id))?;
                base
            }
            None => m.dir.clone(),
        };
        let mut cfg = StoreConfig::new(&base, &m.id);
        cfg.mapped_file_size_for_entry_data = DATA_FILE_SIZE;
        cfg.mapped_file_size_for_entry_index = INDEX_FILE_SIZE;
        DLedgerStore::open(cfg).map_err(|e| e.to_string())
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        let mut files: Vec<_> = std::fs::read_dir(self.tmp.path())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "log"))
        {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            out.push_str(&format!(
                "===== {}\n{}\n",
                f.display(),
                tail_lines(&text, 60)
            ));
        }
        out
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(p) = m.proc.as_ref() {
                if m.paused {
                    signal(p.pid(), libc::SIGCONT);
                }
            }
            // Proc's own Drop: SIGTERM, then SIGKILL after 5 s.
            if let Some(mut p) = m.proc.take() {
                p.stop(Duration::from_secs(5));
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let src = e.path();
        let dst = to.join(e.file_name());
        let r = if e.file_type()?.is_dir() {
            copy_dir(&src, &dst)
        } else {
            std::fs::copy(&src, &dst).map(|_| ())
        };
        match r {
            // Files are renamed (checkpoint, currterm) while we copy.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- appenders

#[derive(Debug, Clone)]
struct Ack {
    writer: usize,
    seq: u64,
    index: i64,
    term: i64,
    leader: String,
    body: String,
    at: Instant,
}

#[derive(Default)]
struct Load {
    acks: Mutex<Vec<Ack>>,
    /// Appenders append only while this is set.
    run: AtomicBool,
    stop: AtomicBool,
    in_flight: AtomicUsize,
    attempts: AtomicU64,
    failures: Mutex<BTreeMap<i32, u64>>,
}

impl Load {
    fn acks(&self) -> Vec<Ack> {
        self.acks.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn ack_count(&self) -> usize {
        self.acks.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Stops appending and waits until no append is in flight.
    fn pause(&self) {
        self.run.store(false, Ordering::SeqCst);
        // An append with its leader look-ups ends within a few RPC timeouts.
        compat_tests::wait_until("appenders idle", Duration::from_secs(60), || {
            self.in_flight.load(Ordering::SeqCst) == 0
        });
    }

    fn resume(&self) {
        self.run.store(true, Ordering::SeqCst);
    }

    /// The first acknowledgement after `since` that satisfies `pred`.
    fn first_ack_after(&self, since: Instant, pred: impl Fn(&Ack) -> bool) -> Option<Ack> {
        self.acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|a| a.at >= since && pred(a))
            .cloned()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn start_appender(writer: usize, peers: String, load: Arc<Load>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        rt().block_on(async move {
            let mut client = DLedgerClient::new(GROUP, &peers).expect("client peers");
            let mut seq = 0u64;
            while !load.stop.load(Ordering::SeqCst) {
                load.in_flight.fetch_add(1, Ordering::SeqCst);
                if !load.run.load(Ordering::SeqCst) {
                    load.in_flight.fetch_sub(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                seq += 1;
                let body = format!("w{writer}-{seq}");
                load.attempts.fetch_add(1, Ordering::Relaxed);
                let r = client.append(Bytes::from(body.clone().into_bytes())).await;
                let good = r.base.code == ok();
                if good {
                    load.acks
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Ack {
                            writer,
                            seq,
                            index: r.index,
                            term: r.base.term,
                            leader: r.base.leader_id.clone().unwrap_or_default(),
                            body,
                            at: Instant::now(),
                        });
                }
                load.in_flight.fetch_sub(1, Ordering::SeqCst);
                if good {
                    tokio::time::sleep(APPEND_PACE).await;
                } else {
                    *load
                        .failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(r.base.code)
                        .or_default() += 1;
                    // Pace retries, and look for the leader again on any error.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    client.refresh_leader().await;
                }
            }
            client.close().await;
        })
    })
}

/// A client that knows only the isolated member; returns the outcomes (code,
/// index, body) of appends sent after `load.stop`-like `stop` is raised.
fn start_isolated_client(
    peers: String,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<(i32, i64, String)>> {
    std::thread::spawn(move || {
        rt().block_on(async move {
            let mut client = DLedgerClient::new(GROUP, &peers).expect("client peers");
            let mut out = Vec::new();
            let mut seq = 0;
            // Bounded: each append takes at most the RPC timeout.
            while !stop.load(Ordering::SeqCst) && seq < 1000 {
                seq += 1;
                let body = format!("iso-{seq}");
                let r = client.append(Bytes::from(body.clone().into_bytes())).await;
                out.push((r.base.code, r.index, body));
                if r.base.code != ok() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            client.close().await;
            out
        })
    })
}

// ------------------------------------------------------------------- checks

/// Who each running, unpaused member says leads (METADATA).
fn leader_views(g: &Group, rt: &tokio::runtime::Runtime) -> Vec<Option<String>> {
    let client = DLedgerClient::new(GROUP, &g.client_peers()).expect("client");
    let views = g
        .members
        .iter()
        .map(|m| {
            if m.proc.is_none() || m.paused {
                return None;
            }
            rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(2), client.metadata(&m.id))
                    .await
                    .ok()
                    .flatten()
                    .filter(|r| r.base.code == ok())
                    .and_then(|r| r.base.leader_id)
            })
        })
        .collect();
    rt.block_on(client.close());
    views
}

/// Waits for a leader every running member agrees on and that has
/// acknowledged an append since the call; returns (member index, term).
fn stable_leader(g: &mut Group, load: &Load, rt: &tokio::runtime::Runtime) -> (usize, i64) {
    let since = Instant::now();
    let deadline = since + FAILOVER_DEADLINE;
    loop {
        g.assert_running();
        let views = leader_views(g, rt);
        if let Some(Some(l)) = views.first().cloned() {
            if views.iter().all(|v| v.as_deref() == Some(l.as_str())) {
                if let Some(a) = load.first_ack_after(since, |a| a.leader == l) {
                    let i = g.members.iter().position(|m| m.id == l).expect("known id");
                    return (i, a.term);
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no stable leader with acknowledgements within {FAILOVER_DEADLINE:?}: views {views:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for an acknowledgement after `since` from a member other than
/// `old` in a term above `term`. Also returns when the members other than
/// `old` first all named the same new leader (METADATA), if seen.
fn wait_new_leader(
    g: &mut Group,
    load: &Load,
    rt: &tokio::runtime::Runtime,
    since: Instant,
    old: usize,
    term: i64,
) -> (Ack, Option<Duration>) {
    let old_id = g.members[old].id.clone();
    let deadline = since + FAILOVER_DEADLINE;
    let mut elected = None;
    loop {
        g.assert_running();
        if elected.is_none() {
            let views = leader_views(g, rt);
            let others: Vec<_> = (0..N)
                .filter(|&i| i != old && g.members[i].proc.is_some() && !g.members[i].paused)
                .map(|i| views[i].clone())
                .collect();
            if let Some(Some(l)) = others.first() {
                if *l != old_id && others.iter().all(|v| v.as_ref() == Some(l)) {
                    elected = Some(since.elapsed());
                }
            }
        }
        if let Some(a) = load.first_ack_after(since, |a| a.leader != old_id && a.term > term) {
            return (a, elected);
        }
        assert!(
            Instant::now() < deadline,
            "no acknowledgement from a new leader (not {old_id}, term > {term}) within \
             {FAILOVER_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One verification of the three stores; `Err` says what does not hold yet.
fn check_stores(g: &Group, acks: &[Ack], k: Option<usize>) -> Result<(i64, Vec<i64>), String> {
    let stores: Vec<DLedgerStore> = (0..N)
        .map(|i| g.open_store(i, k))
        .collect::<Result<_, _>>()?;
    let max_acked = acks.iter().map(|a| a.index).max().unwrap_or(-1);
    let max_committed = stores
        .iter()
        .map(|s| s.committed_index())
        .max()
        .unwrap_or(-1);
    let prefix = max_acked.max(max_committed);
    let ends: Vec<i64> = stores.iter().map(|s| s.end_index()).collect();
    for (i, s) in stores.iter().enumerate() {
        if s.end_index() < prefix {
            return Err(format!(
                "n{i} ends at {} below the committed prefix {prefix} (ends {ends:?})",
                s.end_index()
            ));
        }
        if s.begin_index() > 0 {
            return Err(format!("n{i} begins at {}", s.begin_index()));
        }
    }
    for index in 0..=prefix {
        let e0 = stores[0]
            .get(index)
            .map_err(|e| format!("n0 get {index}: {e}"))?;
        for (i, s) in stores.iter().enumerate().skip(1) {
            let e = s.get(index).map_err(|e| format!("n{i} get {index}: {e}"))?;
            if !(e.index == e0.index && e.term == e0.term && e.pos == e0.pos && e.body == e0.body) {
                return Err(format!(
                    "n0 and n{i} differ at committed index {index}: term {} vs {}, body {:?} vs {:?}",
                    e0.term,
                    e.term,
                    String::from_utf8_lossy(&e0.body),
                    String::from_utf8_lossy(&e.body)
                ));
            }
        }
    }
    // Appends sent to an isolated member are never acknowledged, and can
    // never be committed: the majority's log has moved on in a higher term.
    for index in 0..=prefix {
        let e = stores[0]
            .get(index)
            .map_err(|e| format!("n0 get {index}: {e}"))?;
        if e.body.starts_with(b"iso-") {
            return Err(format!(
                "FATAL: {:?}, sent to an isolated member, is committed at index {index}",
                String::from_utf8_lossy(&e.body)
            ));
        }
    }
    for a in acks {
        let e = stores[0]
            .get(a.index)
            .map_err(|e| format!("acknowledged index {} missing: {e}", a.index))?;
        if e.body.as_ref() != a.body.as_bytes() {
            // Not a transient state: the entry is in the agreed prefix.
            return Err(format!(
                "FATAL: lost {:?} acknowledged at index {} (term {} by {}) but the log holds {:?} (term {})",
                a.body,
                a.index,
                a.term,
                a.leader,
                String::from_utf8_lossy(&e.body),
                e.term
            ));
        }
    }
    Ok((prefix, ends))
}

/// Polls [`check_stores`] until it holds; panics with the last reason at the deadline.
fn verify(g: &mut Group, load: &Load, round: &str) -> (i64, Vec<i64>) {
    let acks = load.acks();
    // Each appender's acknowledgements are in log order, one index per body.
    let mut by_writer: BTreeMap<usize, Vec<&Ack>> = BTreeMap::new();
    for a in &acks {
        by_writer.entry(a.writer).or_default().push(a);
    }
    for (w, list) in &by_writer {
        for pair in list.windows(2) {
            assert!(
                pair[0].seq < pair[1].seq && pair[0].index < pair[1].index,
                "{round}: writer {w} acknowledgements out of log order: {:?} then {:?}",
                pair[0],
                pair[1]
            );
        }
    }
    let mut seen = BTreeMap::new();
    for a in &acks {
        if let Some(prev) = seen.insert(a.index, &a.body) {
            panic!(
                "{round}: index {} acknowledged for {prev:?} and {:?}",
                a.index, a.body
            );
        }
    }
    let deadline = Instant::now() + CONVERGE_DEADLINE;
    let mut k = 0;
    loop {
        g.assert_running();
        k += 1;
        match check_stores(g, &acks, Some(k)) {
            Ok(r) => return r,
            Err(why) => {
                assert!(!why.starts_with("FATAL"), "{round}: {why}");
                assert!(
                    Instant::now() < deadline,
                    "{round}: stores did not converge within {CONVERGE_DEADLINE:?}: {why}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

// -------------------------------------------------------------------- test

struct RoundReport {
    name: String,
    old: String,
    new: String,
    term: i64,
    elected: Option<Duration>,
    to_new_leader: Duration,
    acks_total: usize,
    prefix: i64,
    ends: Vec<i64>,
}

#[test]
fn three_processes_survive_kill_pause_and_isolation() {
    let _serial = serial();
    let started = Instant::now();
    let mut g = Group::start();
    let rt = rt();
    let load = Arc::new(Load::default());
    load.resume();
    let appenders: Vec<_> = (0..APPENDERS)
        .map(|w| start_appender(w, g.client_peers(), load.clone()))
        .collect();
    let mut reports: Vec<RoundReport> = Vec::new();
    let mut isolated_attempts = 0usize;
    let mut isolated_codes: BTreeMap<i32, u64> = BTreeMap::new();

    let sets = sets();
    for set in 1..=sets {
        for kind in ["kill", "pause", "isolate"] {
            let name = format!("set {set} {kind}");
            let round_start = load.ack_count();
            compat_tests::wait_until(
                "acknowledgements before the fault",
                FAILOVER_DEADLINE,
                || load.ack_count() >= round_start + ACKS_BEFORE_FAULT,
            );
            let (old, term) = stable_leader(&mut g, &load, &rt);
            let old_id = g.members[old].id.clone();
            let since;
            let new;
            match kind {
                "kill" => {
                    since = Instant::now();
                    g.kill(old);
                    new = wait_new_leader(&mut g, &load, &rt, since, old, term);
                    // Down long enough to have a backlog (across data files)
                    // to catch up on after the restart.
                    let before = load.ack_count();
                    compat_tests::wait_until(
                        "acknowledgements with the old leader down",
                        FAILOVER_DEADLINE,
                        || load.ack_count() >= before + ACKS_BEFORE_FAULT,
                    );
                    g.spawn(old);
                }
                "pause" => {
                    // A paused follower: the leader goes on with the other one.
                    let f = (old + 1) % N;
                    g.pause(f);
                    let before = load.ack_count();
                    compat_tests::wait_until(
                        "acknowledgements with a follower paused",
                        FAILOVER_DEADLINE,
                        || load.ack_count() >= before + ACKS_BEFORE_FAULT,
                    );
                    g.resume(f);
                    since = Instant::now();
                    g.pause(old);
                    new = wait_new_leader(&mut g, &load, &rt, since, old, term);
                    g.resume(old);
                }
                _ => {
                    since = Instant::now();
                    // Set 1 blackholes the links (a silent partition), later
                    // sets reset them (peers see refused/reset connections).
                    g.mesh.set_member(
                        old,
                        if set == 1 {
                            ProxyMode::Blackhole
                        } else {
                            ProxyMode::Reset
                        },
                    );
                    let stop = Arc::new(AtomicBool::new(false));
                    let iso = start_isolated_client(
                        format!("{}-127.0.0.1:{}", old_id, g.members[old].port),
                        stop.clone(),
                    );
                    new = wait_new_leader(&mut g, &load, &rt, since, old, term);
                    // Let the old leader step down and the isolated client
                    // try a few more appends.
                    let views_deadline = Instant::now() + FAILOVER_DEADLINE;
                    loop {
                        let v = leader_views(&g, &rt);
                        if v[old].as_deref() != Some(old_id.as_str()) {
                            break;
                        }
                        assert!(
                            Instant::now() < views_deadline,
                            "{name}: isolated {old_id} still calls itself leader"
                        );
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    stop.store(true, Ordering::SeqCst);
                    let outcomes = iso.join().expect("isolated client");
                    let acked: Vec<_> = outcomes.iter().filter(|o| o.0 == ok()).collect();
                    assert!(
                        acked.is_empty(),
                        "{name}: the isolated {old_id} acknowledged {acked:?}"
                    );
                    isolated_attempts += outcomes.len();
                    for o in &outcomes {
                        *isolated_codes.entry(o.0).or_insert(0u64) += 1;
                    }
                    g.mesh.heal();
                }
            }
            let (new, elected) = new;
            let to_new_leader = new.at.duration_since(since);
            println!(
                "{name}: leader {old_id} (term {term}) -> {} (term {}): elected after {elected:?}, \
                 first acknowledgement after {to_new_leader:?}",
                new.leader, new.term
            );
            load.pause();
            let (prefix, ends) = verify(&mut g, &load, &name);
            let acks_total = load.ack_count();
            println!("{name}: verified {acks_total} acknowledgements, committed prefix {prefix}, ends {ends:?}");
            reports.push(RoundReport {
                name,
                old: old_id,
                new: new.leader.clone(),
                term: new.term,
                elected,
                to_new_leader,
                acks_total,
                prefix,
                ends,
            });
            load.resume();
        }
    }

    // Final: a last stretch of appends with everything healthy, then stop.
    let before = load.ack_count();
    compat_tests::wait_until("final acknowledgements", FAILOVER_DEADLINE, || {
        load.ack_count() >= before + 50
    });
    load.pause();
    load.stop.store(true, Ordering::SeqCst);
    for a in appenders {
        a.join().expect("appender");
    }
    let (prefix, ends) = verify(&mut g, &load, "final");
    // And the stores themselves after a clean stop (SIGTERM: flush, checkpoint).
    for m in &mut g.members {
        let mut p = m.proc.take().expect("member running");
        if let Err(e) = p.stop_cleanly(Duration::from_secs(20)) {
            panic!("{e}:\n{}", tail_lines(&p.log_text(), 60));
        }
    }
    let (stopped_prefix, stopped_ends) =
        check_stores(&g, &load.acks(), None).unwrap_or_else(|why| panic!("stopped stores: {why}"));
    if stopped_ends != ends {
        println!("note: ends {ends:?} in the last copies, {stopped_ends:?} after the stop");
    }
    assert!(stopped_prefix >= prefix);
    let failures = load
        .failures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();

    println!("==== DLedger process faults: summary");
    for r in &reports {
        println!(
            "{:<16} {} -> {} term {:>3}  elected after {:>10}  first ack after {:>8.3?}  acks so far {:>6}  prefix {:>6}  ends {:?}",
            r.name,
            r.old,
            r.new,
            r.term,
            r.elected.map_or("(unseen)".to_owned(), |d| format!("{d:.3?}")),
            r.to_new_leader,
            r.acks_total,
            r.prefix,
            r.ends
        );
    }
    println!(
        "acknowledged {} of {} appends; failures by code {failures:?}; \
         isolated-leader appends tried {isolated_attempts} (none acknowledged, codes \
         {isolated_codes:?}); \
         final prefix {prefix}, ends {ends:?}; {:?} in all",
        load.ack_count(),
        load.attempts.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert_eq!(reports.len(), 3 * sets);
    for r in &reports {
        assert_ne!(r.old, r.new, "{}: leadership did not move", r.name);
    }
}
