//! `bench_dledger`: a 3-node group of our `dledger server` against 3 Java
//! DLedger 0.3.1.2 servers (`compat.DLedgerWire server`, the jar RocketMQ
//! ships) on loopback, driven by the same client (remoting frames built with
//! the `dledger` crate's protocol types), printed side by side with ratios.
//!
//! Per side: fresh store dirs, free 127.0.0.1 ports, wait for a leader, idle
//! RSS, warm-up (the JIT), then measured rounds alternating between the
//! sides: C connections x P appends in flight to the leader, fixed-size
//! bodies, fixed duration, every latency in a log-linear histogram; server
//! CPU (sum of the 3 processes, /proc/<pid>/stat) per acknowledged append
//! and the summed RSS under load. Leader changes seen while nothing failed
//! (distinct terms in the acknowledgements) are counted.
//!
//! Failover, alternating between the sides: while a few appends are in
//! flight, SIGKILL the leader and time kill -> first append acknowledged by
//! another member (the client rediscovers the leader through METADATA every
//! 10 ms); then restart the killed member and wait until the group is whole.
//! Each side uses its own default timers; with `--java-our-timers` (default
//! on) a third group, Java with our timers, is measured too.
//!
//! Usage: bench_dledger [--duration SECS] [--warmup SECS] [--conns C]
//!        [--inflight P] [--body BYTES] [--rounds R] [--failovers F]
//!        [--settle SECS] [--java-version V] [--only ours|java]
//!        [--no-java-our-timers] [--java-heap SIZE]
//! Defaults: 10 s rounds, 10 s warm-up, 4 connections x 32 in flight,
//! 1024-byte bodies, 3 rounds, 3 failovers per group, 3 s settle, the
//! 5.3.3 classpath (DLedger 0.3.1.2), Java heap 1g (G1).
//!
//! `BENCH_JAVA_CP` (the drivers' `classes:lib/*`) skips `prepare.sh`.
//!
//! Our binary is found like the compat harness does (`$MQ_BIN_DIR`, else
//! `target/release`); `scripts/bench-dledger.sh` builds it first.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use compat_tests::bench::{
    clk_tck, cpu_model, cpu_ticks, goal, latency_rows, loadavg, mib, nproc, per_round, print_table,
    ratio, round_ratios, rss_anon_kib, rss_kib, CommonOpts, Histogram, Latency, Row,
};
use compat_tests::{bin_dir, free_port, java_client, workspace_root, Proc};
use dledger::config::{Timers, JAVA_TIMERS, OUR_TIMERS};
use dledger::protocol::{
    request_frame, AppendEntryRequest, AppendEntryResponse, Base, Body, MetadataRequest,
    MetadataResponse, RequestCode, ResponseCode,
};
use remoting::{Connection, RemotingCommand, Router};

const GROUP: &str = "bench";
const NODES: usize = 3;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest failover we wait for before calling it failed.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);
/// Appends in flight during a failover measurement.
const FAILOVER_INFLIGHT: usize = 8;
/// Hard cap on appends per worker task per phase (besides the deadline).
const MAX_APPENDS_PER_TASK: u64 = 50_000_000;

// ---------------------------------------------------------------- arguments

#[derive(Debug, Clone)]
struct Opts {
    common: CommonOpts,
    body: usize,
    failovers: usize,
    java_heap: String,
    java_our_timers: bool,
}

impl std::ops::Deref for Opts {
    type Target = CommonOpts;
    fn deref(&self) -> &CommonOpts {
        &self.common
    }
}

fn usage(why: &str) -> ! {
    eprintln!(
        "bench_dledger: {why}\nusage: bench_dledger [--duration SECS] [--warmup SECS] [--conns C] \
         [--inflight P] [--body BYTES] [--rounds R] [--failovers F] [--settle SECS] \
         [--java-version V] [--only ours|java] [--no-java-our-timers] [--java-heap SIZE]"
    );
    std::process::exit(2)
}

fn parse_args() -> Opts {
    let mut common = CommonOpts::new(4, 32);
    let (mut body, mut failovers) = (1024, 3);
    let (mut java_heap, mut java_our_timers) = ("1g".to_owned(), true);
    let parsed = common.parse(std::env::args().skip(1), |flag, value| {
        let mut num = || {
            value()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| format!("{flag} needs a number"))
        };
        match flag {
            "--body" => body = num()?.max(1),
            "--failovers" => failovers = num()?,
            "--java-heap" => java_heap = value().ok_or("--java-heap needs a size")?,
            "--no-java-our-timers" => java_our_timers = false,
            _ => return Ok(false),
        }
        Ok(true)
    });
    if let Err(e) = parsed {
        usage(&e);
    }
    Opts {
        java_our_timers: java_our_timers && common.java,
        common,
        body,
        failovers,
        java_heap,
    }
}

// ------------------------------------------------------------------- groups

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ours,
    Java,
}

struct Member {
    id: String,
    addr: String,
    proc: Option<Proc>,
    starts: usize,
}

/// Three members of one implementation.
struct Group {
    label: String,
    kind: Kind,
    timers: Timers,
    dir: tempfile::TempDir,
    peers: String,
    members: Vec<Member>,
    java_cp: Option<String>,
    java_heap: String,
}

impl Group {
    fn start(label: &str, kind: Kind, timers: Timers, java_cp: Option<String>, o: &Opts) -> Group {
        let dir = tempfile::Builder::new()
            .prefix("dledger-bench-")
            .tempdir()
            .expect("temp dir");
        let members: Vec<Member> = (0..NODES)
            .map(|i| Member {
                id: format!("n{i}"),
                addr: format!("127.0.0.1:{}", free_port()),
                proc: None,
                starts: 0,
            })
            .collect();
        let peers = members
            .iter()
            .map(|m| format!("{}-{}", m.id, m.addr))
            .collect::<Vec<_>>()
            .join(";");
        let mut g = Group {
            label: label.to_owned(),
            kind,
            timers,
            dir,
            peers,
            members,
            java_cp,
            java_heap: o.java_heap.clone(),
        };
        for i in 0..NODES {
            g.launch(i);
        }
        g
    }

    fn launch(&mut self, i: usize) {
        let m = &mut self.members[i];
        m.starts += 1;
        let store = self.dir.path().join(format!("store-{}", m.id));
        let log = self.dir.path().join(format!("{}-{}.log", m.id, m.starts));
        let t = self.timers;
        let timer_args = |hb: &str, leak: &str, min: &str, max: &str| -> Vec<String> {
            vec![
                hb.to_owned(),
                t.heart_beat_time_interval_ms.to_string(),
                leak.to_owned(),
                t.max_heart_beat_leak.to_string(),
                min.to_owned(),
                t.min_vote_interval_ms.to_string(),
                max.to_owned(),
                t.max_vote_interval_ms.to_string(),
            ]
        };
        let cmd = match self.kind {
            Kind::Ours => {
                let exe = bin_dir().join("dledger");
                assert!(
                    exe.exists(),
                    "{} missing (run scripts/bench-dledger.sh)",
                    exe.display()
                );
                let mut c = Command::new(exe);
                c.args(["server", "--group", GROUP, "--id", &m.id, "--peers"])
                    .arg(&self.peers)
                    .arg("--store-base-dir")
                    .arg(&store)
                    .args(["--bind", "127.0.0.1"]);
                if t != OUR_TIMERS {
                    c.args(timer_args(
                        "--heartbeat-interval-ms",
                        "--max-heartbeat-leak",
                        "--min-vote-interval-ms",
                        "--max-vote-interval-ms",
                    ));
                }
                c.env("RUST_LOG", "info");
                c
            }
            Kind::Java => {
                let home = self.dir.path().join(format!("home-{}", m.id));
                std::fs::create_dir_all(&home).expect("java home");
                let mut c = Command::new("java");
                c.arg(format!("-Xms{}", self.java_heap))
                    .arg(format!("-Xmx{}", self.java_heap))
                    .arg("-XX:+UseG1GC")
                    .args(["--add-opens", "java.base/java.nio=ALL-UNNAMED"])
                    .args(["--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED"])
                    .args(["--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED"])
                    .arg(format!("-Duser.home={}", home.display()))
                    .arg("-Drmq.logback.configurationFile=rmq.compat.logback.xml")
                    .arg("-cp")
                    .arg(self.java_cp.as_deref().expect("java classpath"))
                    .args(["compat.DLedgerWire", "server", "--group", GROUP])
                    .args(["--id", &m.id, "--peers", &self.peers])
                    .arg("--store-base-dir")
                    .arg(&store);
                if t != JAVA_TIMERS {
                    c.args(timer_args(
                        "--heartbeat-ms",
                        "--max-heartbeat-leak",
                        "--min-vote-interval-ms",
                        "--max-vote-interval-ms",
                    ));
                }
                c
            }
        };
        m.proc = Some(Proc::spawn(&format!("{} {}", self.label, m.id), cmd, log));
    }

    fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| m.proc.as_ref().map(Proc::pid))
            .collect()
    }

    fn addrs(&self) -> Vec<(String, String)> {
        self.members
            .iter()
            .map(|m| (m.id.clone(), m.addr.clone()))
            .collect()
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for m in &self.members {
            for n in 1..=m.starts {
                let f = self.dir.path().join(format!("{}-{n}.log", m.id));
                let t = std::fs::read_to_string(&f).unwrap_or_default();
                let tail: String = t
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                s.push_str(&format!(
                    "--- {} {} (start {n}) ---\n{tail}\n",
                    self.label, m.id
                ));
            }
        }
        s
    }

    fn check_running(&mut self) {
        for m in &mut self.members {
            if let Some(p) = m.proc.as_mut() {
                if !p.is_running() {
                    panic!("{} {} exited:\n{}", self.label, m.id, p.log_text());
                }
            }
        }
    }

    fn rss_kib(&self) -> u64 {
        self.pids().iter().filter_map(|p| rss_kib(*p)).sum()
    }

    fn cpu_ticks(&self) -> u64 {
        self.pids().iter().map(|p| cpu_ticks(*p)).sum()
    }

    /// SIGKILL member `i` and reap it.
    fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.members[i].proc.take() {
            // SAFETY: sending a signal to our own child process id.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(p.pid() as i32, libc::SIGKILL);
            }
            p.stop(Duration::from_secs(10));
        }
    }

    fn stop(&mut self) {
        for m in &mut self.members {
            if let Some(mut p) = m.proc.take() {
                p.stop(Duration::from_secs(20));
            }
        }
    }
}

// ------------------------------------------------------------------- client

fn base(remote: &str) -> Base {
    Base {
        group: Some(GROUP.to_owned()),
        remote_id: Some(remote.to_owned()),
        ..Base::default()
    }
}

async fn connect(addr: &str) -> Option<Connection> {
    tokio::time::timeout(
        Duration::from_secs(2),
        Connection::connect(addr, Arc::new(Router::new())),
    )
    .await
    .ok()?
    .ok()
}

/// The leader `id` reports for itself... as DLedgerClient does: the first
/// member answering METADATA with a known leader.
async fn metadata_leader(id: &str, addr: &str) -> Option<String> {
    let conn = connect(addr).await?;
    let req = MetadataRequest { base: base(id) };
    let r = conn
        .request(
            request_frame(RequestCode::Metadata, &req),
            Duration::from_secs(1),
        )
        .await;
    conn.close();
    let m = MetadataResponse::from_json(&r.ok()?.body).ok()?;
    (m.base.code == ResponseCode::Success.code())
        .then_some(m.base.leader_id)
        .flatten()
}

/// Waits until every running member names the same leader; its index.
async fn wait_leader(g: &mut Group, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        g.check_running();
        let mut named = Vec::new();
        for m in g.members.iter().filter(|m| m.proc.is_some()) {
            named.push(metadata_leader(&m.id, &m.addr).await);
        }
        if let Some(Some(l)) = named.first() {
            if named.iter().all(|n| n.as_deref() == Some(l.as_str())) {
                if let Some(i) = g
                    .members
                    .iter()
                    .position(|m| m.id == *l && m.proc.is_some())
                {
                    return i;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{}: no agreed leader within {timeout:?}: {named:?}\n{}",
            g.label,
            g.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn append_frame(leader: &str, body: &Bytes) -> RemotingCommand {
    request_frame(
        RequestCode::Append,
        &AppendEntryRequest {
            base: base(leader),
            body: Some(body.clone()),
        },
    )
}

#[derive(Default)]
struct Terms {
    min: AtomicI64,
    max: AtomicI64,
}

impl Terms {
    fn new() -> Terms {
        Terms {
            min: AtomicI64::new(i64::MAX),
            max: AtomicI64::new(i64::MIN),
        }
    }
    fn see(&self, t: i64) {
        self.min.fetch_min(t, Ordering::Relaxed);
        self.max.fetch_max(t, Ordering::Relaxed);
    }
}

struct LoadOut {
    hist: Histogram,
    errors: u64,
    /// DLedger response code (or -1: no answer) -> count.
    error_codes: BTreeMap<i32, u64>,
    elapsed: Duration,
    max_rss_kib: u64,
    max_anon_kib: u64,
}

/// Closed-loop load on the leader: `conns` connections x `inflight` tasks,
/// each appending back-to-back until `dur` passes.
async fn run_load(
    g: &Group,
    leader: usize,
    o: &Opts,
    dur: Duration,
    payload: &Bytes,
    terms: &Arc<Terms>,
) -> LoadOut {
    let (id, addr) = g.addrs()[leader].clone();
    let mut conns = Vec::with_capacity(o.conns);
    for _ in 0..o.conns {
        conns.push(connect(&addr).await.expect("connect to the leader"));
    }
    let frame = append_frame(&id, payload);
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    for conn in &conns {
        for _ in 0..o.inflight {
            let conn = conn.clone();
            let errors = errors.clone();
            let frame = frame.clone();
            let terms = terms.clone();
            tasks.push(tokio::spawn(async move {
                let mut h = Histogram::new();
                let mut codes: BTreeMap<i32, u64> = BTreeMap::new();
                let mut n = 0u64;
                while n < MAX_APPENDS_PER_TASK && Instant::now() < deadline {
                    n += 1;
                    let t = Instant::now();
                    let code = match conn.request(frame.clone(), REQUEST_TIMEOUT).await {
                        Ok(r) => match AppendEntryResponse::from_json(&r.body) {
                            Ok(a) => {
                                if a.base.code == ResponseCode::Success.code() {
                                    terms.see(a.base.term);
                                }
                                a.base.code
                            }
                            Err(_) => -1,
                        },
                        Err(_) => -1,
                    };
                    if code == ResponseCode::Success.code() {
                        h.record(t.elapsed().as_nanos() as u64);
                    } else {
                        *codes.entry(code).or_default() += 1;
                        errors.fetch_add(1, Ordering::Relaxed);
                        if conn.is_closed() {
                            break;
                        }
                        // Not the leader any more, or overloaded: back off a little.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                (h, codes)
            }));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let pids = g.pids();
        tokio::spawn(async move {
            let (mut max, mut anon) = (0, 0);
            let until = deadline + Duration::from_secs(10);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                max = max.max(pids.iter().filter_map(|p| rss_kib(*p)).sum());
                anon = anon.max(pids.iter().filter_map(|p| rss_anon_kib(*p)).sum());
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            (max, anon)
        })
    };
    let mut hist = Histogram::new();
    let mut error_codes = BTreeMap::new();
    for t in tasks {
        if let Ok((h, codes)) = t.await {
            hist.merge(&h);
            for (c, n) in codes {
                *error_codes.entry(c).or_default() += n;
            }
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (max_rss_kib, max_anon_kib) = sampler.await.unwrap_or((0, 0));
    for c in &conns {
        c.close();
    }
    LoadOut {
        hist,
        errors: errors.load(Ordering::Relaxed),
        error_codes,
        elapsed,
        max_rss_kib,
        max_anon_kib,
    }
}

/// One failover: appends in flight, SIGKILL the leader, time until another
/// member acknowledges an append; restart the killed member and wait until
/// the group agrees on a leader again. `None` = no acknowledgement within
/// [`FAILOVER_TIMEOUT`].
async fn failover(g: &mut Group, payload: &Bytes) -> Option<Duration> {
    let leader = wait_leader(g, BOOT_TIMEOUT).await;
    let nodes = Arc::new(g.addrs());
    let killed = Arc::new(AtomicU64::new(u64::MAX)); // index of the killed member
    let t0 = Instant::now();
    // ns after t0 of the kill, and of the first acknowledgement after it by a survivor.
    let kill_at = Arc::new(AtomicU64::new(u64::MAX));
    let first_ack = Arc::new(AtomicU64::new(u64::MAX));
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..FAILOVER_INFLIGHT {
        let (nodes, killed, kill_at, first_ack, stop, acks) = (
            nodes.clone(),
            killed.clone(),
            kill_at.clone(),
            first_ack.clone(),
            stop.clone(),
            acks.clone(),
        );
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut current: Option<(usize, Connection, RemotingCommand)> = None;
            let hard_stop = Instant::now() + FAILOVER_TIMEOUT + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < hard_stop {
                let Some((i, conn, frame)) = current.as_ref() else {
                    // DLedgerClient's metadata refresh: ask each member in turn.
                    let mut found = None;
                    for (id, addr) in nodes.iter() {
                        if let Some(l) = metadata_leader(id, addr).await {
                            found = nodes.iter().position(|(nid, _)| *nid == l);
                            break;
                        }
                    }
                    if let Some(i) = found {
                        if let Some(conn) = connect(&nodes[i].1).await {
                            let frame = append_frame(&nodes[i].0, &payload);
                            current = Some((i, conn, frame));
                            continue;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let r = conn.request(frame.clone(), REQUEST_TIMEOUT).await;
                let ok = matches!(&r, Ok(r) if AppendEntryResponse::from_json(&r.body)
                    .is_ok_and(|a| a.base.code == ResponseCode::Success.code()));
                if ok {
                    acks.fetch_add(1, Ordering::Relaxed);
                    let at = t0.elapsed().as_nanos() as u64;
                    if *i as u64 != killed.load(Ordering::SeqCst)
                        && kill_at.load(Ordering::SeqCst) != u64::MAX
                    {
                        first_ack.fetch_min(at, Ordering::SeqCst);
                    }
                } else {
                    conn.close();
                    current = None;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }));
    }
    // Steady appends first, then the kill.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acks.load(Ordering::Relaxed) < 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    killed.store(leader as u64, Ordering::SeqCst);
    kill_at.store(t0.elapsed().as_nanos() as u64, Ordering::SeqCst);
    let kill_instant = Instant::now();
    g.kill(leader);
    eprintln!(
        "[bench] {}: SIGKILLed leader {}",
        g.label, g.members[leader].id
    );
    while first_ack.load(Ordering::SeqCst) == u64::MAX && kill_instant.elapsed() < FAILOVER_TIMEOUT
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let first = first_ack.load(Ordering::SeqCst);
    let result = (first != u64::MAX)
        .then(|| Duration::from_nanos(first.saturating_sub(kill_at.load(Ordering::SeqCst))));
    match result {
        Some(d) => eprintln!(
            "[bench] {}: failover {:.0} ms",
            g.label,
            d.as_secs_f64() * 1e3
        ),
        None => eprintln!(
            "[bench] {}: no failover within {FAILOVER_TIMEOUT:?}",
            g.label
        ),
    }
    g.launch(leader);
    // The group is whole again when all three agree on a leader.
    wait_leader(g, BOOT_TIMEOUT).await;
    result
}

// ----------------------------------------------------------------- results

#[derive(Default, Clone)]
struct Outcome {
    label: String,
    ready_ms: f64,
    idle_rss_kib: u64,
    load_rss_kib: u64,
    load_anon_kib: u64,
    error_codes: BTreeMap<i32, u64>,
    tps: f64,
    appends: u64,
    errors: u64,
    lat: Latency,
    round_tps: Vec<f64>,
    cpu_cores: f64,
    cpu_us_per_append: f64,
    gen_cores: f64,
    leader_changes: i64,
    disturbed_rounds: usize,
    failovers: Vec<Option<Duration>>,
    timers: String,
}

struct Running {
    group: Group,
    leader: usize,
    out: Outcome,
    hist: Histogram,
    elapsed: Duration,
    cpu_ticks: u64,
    gen_ticks: u64,
    terms: Arc<Terms>,
}

fn timers_text(t: Timers) -> String {
    format!(
        "hb {} ms x{}, votes {}-{} ms",
        t.heart_beat_time_interval_ms,
        t.max_heart_beat_leak,
        t.min_vote_interval_ms,
        t.max_vote_interval_ms
    )
}

async fn prepare(group: Group, t0: Instant, o: &Opts) -> Running {
    let mut group = group;
    let leader = wait_leader(&mut group, BOOT_TIMEOUT).await;
    let ready_ms = t0.elapsed().as_secs_f64() * 1e3;
    tokio::time::sleep(o.settle).await;
    let idle_rss_kib = group.rss_kib();
    eprintln!(
        "[bench] {}: leader {} after {ready_ms:.0} ms, idle RSS (3 nodes) {}",
        group.label,
        group.members[leader].id,
        mib(idle_rss_kib)
    );
    Running {
        out: Outcome {
            label: group.label.clone(),
            ready_ms,
            idle_rss_kib,
            timers: timers_text(group.timers),
            ..Default::default()
        },
        group,
        leader,
        hist: Histogram::new(),
        elapsed: Duration::ZERO,
        cpu_ticks: 0,
        gen_ticks: 0,
        terms: Arc::new(Terms::new()),
    }
}

async fn warm_up(r: &mut Running, o: &Opts, payload: &Bytes) {
    if o.warmup.is_zero() {
        return;
    }
    let throwaway = Arc::new(Terms::new());
    let w = run_load(&r.group, r.leader, o, o.warmup, payload, &throwaway).await;
    eprintln!(
        "[bench] {}: warm-up {:?}: {} appends, {} errors",
        r.group.label, o.warmup, w.hist.total, w.errors
    );
    r.leader = wait_leader(&mut r.group, BOOT_TIMEOUT).await;
}

async fn round(r: &mut Running, o: &Opts, n: usize, payload: &Bytes) {
    r.leader = wait_leader(&mut r.group, BOOT_TIMEOUT).await;
    let leader_before = r.leader;
    let me = std::process::id();
    let (cpu0, gen0) = (r.group.cpu_ticks(), cpu_ticks(me));
    let l = run_load(&r.group, r.leader, o, o.duration, payload, &r.terms).await;
    let cpu = r.group.cpu_ticks().saturating_sub(cpu0);
    r.gen_ticks += cpu_ticks(me).saturating_sub(gen0);
    let tps = l.hist.total as f64 / l.elapsed.as_secs_f64();
    eprintln!(
        "[bench] {}: round {n}: {tps:.0} appends/s, p99 {:.0} us, {} errors {:?}, server CPU {:.2} cores",
        r.group.label,
        l.hist.quantile(0.99) as f64 / 1e3,
        l.errors,
        l.error_codes,
        cpu as f64 / clk_tck() / l.elapsed.as_secs_f64()
    );
    r.hist.merge(&l.hist);
    r.elapsed += l.elapsed;
    r.cpu_ticks += cpu;
    r.out.errors += l.errors;
    // Nothing failed, so any NOT_LEADER answer or a new leader after the
    // round means an election the timers should have avoided.
    let leader_after = wait_leader(&mut r.group, BOOT_TIMEOUT).await;
    if l.error_codes.contains_key(&ResponseCode::NotLeader.code()) || leader_after != leader_before
    {
        r.out.disturbed_rounds += 1;
        eprintln!("[bench] {}: round {n}: the leader changed", r.group.label);
    }
    r.leader = leader_after;
    r.out.load_rss_kib = r.out.load_rss_kib.max(l.max_rss_kib);
    r.out.load_anon_kib = r.out.load_anon_kib.max(l.max_anon_kib);
    for (c, n) in &l.error_codes {
        *r.out.error_codes.entry(*c).or_default() += n;
    }
    r.out.round_tps.push(tps);
}

fn finish(mut r: Running) -> (Outcome, Group) {
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let cpu_secs = r.cpu_ticks as f64 / clk_tck();
    let (tmin, tmax) = (
        r.terms.min.load(Ordering::Relaxed),
        r.terms.max.load(Ordering::Relaxed),
    );
    r.out = Outcome {
        appends: r.hist.total,
        tps: r.hist.total as f64 / secs,
        lat: Latency::of(&r.hist),
        cpu_cores: cpu_secs / secs,
        gen_cores: r.gen_ticks as f64 / clk_tck() / secs,
        cpu_us_per_append: if r.hist.total > 0 {
            cpu_secs * 1e6 / r.hist.total as f64
        } else {
            0.0
        },
        leader_changes: if tmax >= tmin { tmax - tmin } else { 0 },
        ..r.out
    };
    (r.out, r.group)
}

// ------------------------------------------------------------------- report

fn median(v: &[Duration]) -> Option<Duration> {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied()
}

fn ok_failovers(o: &Outcome) -> Vec<Duration> {
    o.failovers.iter().flatten().copied().collect()
}

fn print_report(o: &Opts, results: &[Outcome], load_before: &str) {
    println!();
    println!(
        "machine: {} CPUs, {}; load average before run: {load_before}",
        nproc(),
        cpu_model()
    );
    println!(
        "load: APPEND (50001) of {}-byte bodies to the leader of a 3-node group, {} connections x {} in flight, \
         warm-up {:?}, {} alternating rounds of {:?}; failover: {} SIGKILLs of the leader per group with {} appends in flight; \
         load average after: {}",
        o.body,
        o.conns,
        o.inflight,
        o.warmup,
        o.rounds,
        o.duration,
        o.failovers,
        FAILOVER_INFLIGHT,
        loadavg()
    );
    println!();
    let ms = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1e3);
    let mut rows: Vec<Row<Outcome>> = vec![
        ("timers", Box::new(|r: &Outcome| r.timers.clone())),
        (
            "start -> agreed leader",
            Box::new(|r: &Outcome| format!("{:.0} ms", r.ready_ms)),
        ),
        (
            "idle RSS (3 nodes)",
            Box::new(|r: &Outcome| mib(r.idle_rss_kib)),
        ),
        (
            "RSS under load (3 nodes, max)",
            Box::new(|r: &Outcome| mib(r.load_rss_kib)),
        ),
        (
            "anon RSS under load (3 nodes)",
            Box::new(|r: &Outcome| mib(r.load_anon_kib)),
        ),
        (
            "appends acked (errors)",
            Box::new(|r: &Outcome| format!("{} ({})", r.appends, r.errors)),
        ),
        (
            "errors by code (-1 = no answer)",
            Box::new(|r: &Outcome| {
                if r.error_codes.is_empty() {
                    "-".to_owned()
                } else {
                    r.error_codes
                        .iter()
                        .map(|(c, n)| format!("{c}: {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            }),
        ),
        (
            "throughput",
            Box::new(|r: &Outcome| format!("{:.0} appends/s", r.tps)),
        ),
        (
            "throughput per round",
            Box::new(|r: &Outcome| per_round(&r.round_tps)),
        ),
        (
            "server CPU (cores busy, 3 nodes)",
            Box::new(|r: &Outcome| format!("{:.2}", r.cpu_cores)),
        ),
        (
            "server CPU per append",
            Box::new(|r: &Outcome| format!("{:.1} us", r.cpu_us_per_append)),
        ),
        (
            "load generator CPU (cores)",
            Box::new(|r: &Outcome| format!("{:.2}", r.gen_cores)),
        ),
    ];
    rows.extend(latency_rows(|r: &Outcome| r.lat));
    rows.extend::<Vec<Row<Outcome>>>(vec![
        (
            "elections under load (rounds hit)",
            Box::new(|r: &Outcome| {
                format!(
                    "{} terms ({} of {} rounds)",
                    r.leader_changes,
                    r.disturbed_rounds,
                    r.round_tps.len()
                )
            }),
        ),
        (
            "failover kill -> ack (ms)",
            Box::new(move |r: &Outcome| {
                r.failovers
                    .iter()
                    .map(|f| f.map_or("none".to_owned(), ms))
                    .collect::<Vec<_>>()
                    .join(" / ")
            }),
        ),
        (
            "failover median",
            Box::new(move |r: &Outcome| {
                median(&ok_failovers(r)).map_or("-".to_owned(), |d| format!("{} ms", ms(d)))
            }),
        ),
    ]);
    // A failover-only group has no load figures.
    let always = [
        "timers",
        "start -> agreed leader",
        "idle RSS (3 nodes)",
        "failover kill -> ack (ms)",
        "failover median",
    ];
    let rows: Vec<Row<Outcome>> = rows
        .into_iter()
        .map(|(name, f)| -> Row<Outcome> {
            if always.contains(&name) {
                (name, f)
            } else {
                (
                    name,
                    Box::new(move |r: &Outcome| {
                        if r.round_tps.is_empty() {
                            "-".to_owned()
                        } else {
                            f(r)
                        }
                    }),
                )
            }
        })
        .collect();
    print_table(results, |r| &r.label, &rows, 33, 34);
    let ours = results.iter().find(|r| r.label.starts_with("ours"));
    let java = results
        .iter()
        .find(|r| r.label.starts_with("Java") && r.appends > 0);
    let java_fast = results.iter().find(|r| r.label.contains("our timers"));
    println!();
    println!("ratios (higher = ours better):");
    if let (Some(ours), Some(java)) = (ours, java) {
        let tps = ratio(ours.tps, java.tps);
        let rounds = round_ratios(&ours.round_tps, &java.round_tps);
        println!(
            "  throughput ours/Java          {tps:>8.2}x   (goal >= 3x: {})",
            goal(tps >= 3.0)
        );
        println!("  (per round, sorted: {rounds})");
        println!(
            "  server CPU/append Java/ours   {:>8.2}x",
            ratio(java.cpu_us_per_append, ours.cpu_us_per_append)
        );
        println!(
            "  p50 latency Java/ours         {:>8.2}x",
            ratio(java.lat.p50_us, ours.lat.p50_us)
        );
        println!(
            "  p99 latency Java/ours         {:>8.2}x",
            ratio(java.lat.p99_us, ours.lat.p99_us)
        );
        println!(
            "  RSS under load Java/ours      {:>8.2}x",
            ratio(java.load_rss_kib as f64, ours.load_rss_kib as f64)
        );
    }
    if let Some(ours) = ours {
        if let Some(m) = median(&ok_failovers(ours)) {
            let worst = ok_failovers(ours).into_iter().max().unwrap_or(m);
            let all = ours.failovers.iter().all(Option::is_some);
            println!(
                "  failover, ours (median {:.2} s, worst {:.2} s)          (goal <= 1.5 s: {})",
                m.as_secs_f64(),
                worst.as_secs_f64(),
                goal(all && m <= Duration::from_millis(1500))
            );
            for other in [java, java_fast].into_iter().flatten() {
                if let Some(j) = median(&ok_failovers(other)) {
                    println!(
                        "  failover {}/ours  {:>8.2}x   (median {:.2} s)",
                        other.label,
                        ratio(j.as_secs_f64(), m.as_secs_f64()),
                        j.as_secs_f64()
                    );
                }
            }
        }
    }
}

fn main() {
    let o = parse_args();
    let load_before = loadavg();
    let payload = Bytes::from(
        (0..o.body)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Jars and drivers first (Maven may run), so nothing timed waits on them.
    let java_cp: Option<String> = (o.java || o.java_our_timers).then(|| {
        // An already prepared classpath (classes:lib/*) skips prepare.sh.
        if let Ok(cp) = std::env::var("BENCH_JAVA_CP") {
            return cp;
        }
        let _ = java_client(&o.java_version);
        let dir: PathBuf = workspace_root()
            .join("compat-tests/java/target")
            .join(&o.java_version);
        format!(
            "{}:{}/*",
            dir.join("classes").display(),
            dir.join("lib").display()
        )
    });
    if o.ours {
        let _ = bin_dir();
    }
    let mut running = Vec::new();
    if o.ours {
        let t0 = Instant::now();
        let g = Group::start("ours (dledger)", Kind::Ours, OUR_TIMERS, None, &o);
        running.push(rt.block_on(prepare(g, t0, &o)));
    }
    if o.java {
        let t0 = Instant::now();
        let g = Group::start(
            "Java DLedger 0.3.1.2",
            Kind::Java,
            JAVA_TIMERS,
            java_cp.clone(),
            &o,
        );
        running.push(rt.block_on(prepare(g, t0, &o)));
    }
    for r in running.iter_mut() {
        rt.block_on(warm_up(r, &o, &payload));
    }
    for n in 1..=o.rounds {
        for r in running.iter_mut() {
            rt.block_on(round(r, &o, n, &payload));
        }
    }
    let mut finished: Vec<(Outcome, Group)> = running.into_iter().map(finish).collect();
    // Failovers alternate between the groups too.
    for _ in 0..o.failovers {
        for (out, g) in finished.iter_mut() {
            let f = rt.block_on(failover(g, &payload));
            out.failovers.push(f);
        }
    }
    let mut results = Vec::new();
    for (out, mut g) in finished {
        g.stop();
        results.push(out);
    }
    if o.java_our_timers && o.failovers > 0 {
        let t0 = Instant::now();
        let g = Group::start(
            "Java, our timers",
            Kind::Java,
            OUR_TIMERS,
            java_cp.clone(),
            &o,
        );
        let r = rt.block_on(prepare(g, t0, &o));
        let (mut out, mut g) = finish(r);
        for _ in 0..o.failovers {
            out.failovers.push(rt.block_on(failover(&mut g, &payload)));
        }
        g.stop();
        results.push(out);
    }
    print_report(&o, &results, &load_before);
}
