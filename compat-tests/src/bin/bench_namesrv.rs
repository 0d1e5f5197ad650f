//! `bench_namesrv`: our `mqnamesrv` against the official Java name server
//! (`NamesrvStartup`, default 5.3.3) with the same load generator (the
//! `remoting` crate's `Connection`), printed side by side with ratios.
//!
//! For each server: start with a fresh home on a free loopback port, time
//! spawn -> first TCP connect and spawn -> first answer to
//! GET_ROUTEINFO_BY_TOPIC (105); register one fake broker (REGISTER_BROKER
//! 103, connection kept open); idle RSS after a settle; warm-up; then a
//! fixed-duration closed-loop load (alternating rounds) of 105 from C connections x P in-flight
//! requests each, every latency recorded in a log-linear (HDR-style)
//! histogram; RSS sampled during the load. Both servers are stopped with
//! SIGTERM at the end.
//!
//! Usage: bench_namesrv [--duration SECS] [--warmup SECS] [--conns C]
//!        [--inflight P] [--topics N] [--settle SECS] [--rounds R]
//!        [--java-version V] [--only ours|java]
//! Defaults: 10 s per round, 10 s warm-up, 8 connections x 16 in flight,
//! 16 topics, 3 s settle, 3 rounds, Java 5.3.3. The measured rounds
//! alternate between the servers (ours, Java, ours, ...) so background load
//! on a shared machine hits both alike; server CPU time per request
//! (/proc/<pid>/stat) is reported as a noise-resistant efficiency figure.
//!
//! Our binary is found like the compat harness does (`$MQ_BIN_DIR`, else
//! `target/release`); `scripts/bench-namesrv.sh` builds it first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use compat_tests::{bin_dir, free_port, reference_libs, workspace_root, Proc};
use remoting::body::{
    to_json, DataVersion, RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper,
};
use remoting::code::{request_code, response_code};
use remoting::header::GetRouteInfoRequestHeader;
use remoting::{Connection, RemotingCommand, Router};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// Hard cap on requests per worker task per phase (besides the deadline).
const MAX_REQUESTS_PER_TASK: u64 = 50_000_000;

// ---------------------------------------------------------------- arguments

#[derive(Debug, Clone)]
struct Opts {
    duration: Duration,
    warmup: Duration,
    conns: usize,
    inflight: usize,
    topics: usize,
    settle: Duration,
    rounds: usize,
    java_version: String,
    ours: bool,
    java: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench_namesrv [--duration SECS] [--warmup SECS] [--conns C] [--inflight P] \
         [--topics N] [--settle SECS] [--rounds R] [--java-version V] [--only ours|java]"
    );
    std::process::exit(2)
}

fn parse_args() -> Opts {
    let mut o = Opts {
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(10),
        conns: 8,
        inflight: 16,
        topics: 16,
        settle: Duration::from_secs(3),
        rounds: 3,
        java_version: "5.3.3".to_owned(),
        ours: true,
        java: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        let secs = |s: String| -> Duration {
            Duration::from_secs_f64(s.parse::<f64>().unwrap_or_else(|_| usage()))
        };
        let num = |s: String| -> usize {
            s.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or_else(|| usage())
        };
        match a.as_str() {
            "--duration" => o.duration = secs(val()),
            "--warmup" => o.warmup = secs(val()),
            "--conns" => o.conns = num(val()),
            "--inflight" => o.inflight = num(val()),
            "--topics" => o.topics = num(val()),
            "--settle" => o.settle = secs(val()),
            "--rounds" => o.rounds = num(val()),
            "--java-version" => o.java_version = val(),
            "--only" => match val().as_str() {
                "ours" => o.java = false,
                "java" => o.ours = false,
                _ => usage(),
            },
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    o
}

// ---------------------------------------------------------------- histogram

/// Log-linear histogram of nanosecond values: exact below 1024, then 512
/// sub-buckets per power of two (relative error < 0.2%), like HdrHistogram
/// with 3 significant digits.
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB_BITS: u32 = 10;
const HALF: usize = 1 << (SUB_BITS - 1);

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; (64 - SUB_BITS as usize + 2) * HALF],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < (1 << SUB_BITS) {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros();
        let shift = msb - (SUB_BITS - 1);
        shift as usize * HALF + (v >> shift) as usize
    }

    /// Middle of the bucket `idx` covers.
    fn value_of(idx: usize) -> u64 {
        if idx < 2 * HALF {
            return idx as u64;
        }
        let shift = idx / HALF - 1;
        let mant = (idx - shift * HALF) as u64;
        (mant << shift) + ((1u64 << shift) >> 1)
    }

    fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.total += o.total;
        self.max = self.max.max(o.max);
    }

    fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let target = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Self::value_of(i).min(self.max);
            }
        }
        self.max
    }
}

// ----------------------------------------------------------------- machine

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `UtilAll.crc32`: CRC-32 (IEEE) masked to 31 bits.
fn crc32_masked(data: &[u8]) -> i32 {
    let mut crc: u32 = 0xFFFF_FFFF;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    ((!crc) & 0x7FFF_FFFF) as i32
}

// ----------------------------------------------------------------- servers

struct Server {
    label: String,
    proc: Proc,
    addr: String,
    _dir: tempfile::TempDir,
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

fn spawn_ours() -> Server {
    let bins = bin_dir();
    let exe = bins.join("mqnamesrv");
    assert!(
        exe.exists(),
        "{} missing (run scripts/bench-namesrv.sh)",
        exe.display()
    );
    let dir = tempdir("rmq-bench-ours-");
    let port = free_port();
    let conf = dir.path().join("namesrv.properties");
    std::fs::write(
        &conf,
        format!(
            "listenPort={port}\nbindAddress=127.0.0.1\nkvConfigPath={}\n",
            dir.path().join("namesrv/kvConfig.json").display()
        ),
    )
    .expect("write config");
    let mut cmd = Command::new(exe);
    cmd.arg("-c").arg(&conf).env("HOME", dir.path());
    let proc = Proc::spawn("mqnamesrv", cmd, dir.path().join("namesrv.log"));
    Server {
        label: "ours (mqnamesrv)".into(),
        proc,
        addr: format!("127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// The official name server, launched as `compat-tests/java/reference-cluster.sh` does.
fn spawn_java(version: &str, libs: &Path) -> Server {
    let dir = tempdir("rmq-bench-java-");
    let d = dir.path();
    let port = free_port();
    let home = d.join("home");
    std::fs::create_dir_all(home.join("conf")).expect("home/conf");
    let confs = workspace_root().join("compat-tests/java/conf");
    for f in [
        "logback_namesrv.xml",
        "logback_broker.xml",
        "logback_tools.xml",
    ] {
        let _ = std::fs::copy(confs.join(f), home.join("conf").join(f));
    }
    let bind = if version.starts_with("4.") {
        String::new()
    } else {
        "bindAddress=127.0.0.1\n".to_owned()
    };
    let conf = d.join("namesrv.properties");
    std::fs::write(
        &conf,
        format!(
            "listenPort={port}\n{bind}kvConfigPath={}\nconfigStorePath={}\n",
            d.join("namesrv/kvConfig.json").display(),
            d.join("namesrv/namesrv.properties").display()
        ),
    )
    .expect("write config");
    let mut cmd = Command::new("java");
    cmd.args(["-Xms256m", "-Xmx256m", "-XX:MaxMetaspaceSize=128m"]);
    if version.starts_with("4.") {
        cmd.args([
            "--add-opens",
            "java.base/java.nio=ALL-UNNAMED",
            "--add-opens",
            "java.base/sun.nio.ch=ALL-UNNAMED",
            "--add-exports",
            "java.base/jdk.internal.ref=ALL-UNNAMED",
            "--add-exports",
            "java.base/sun.nio.ch=ALL-UNNAMED",
        ]);
    }
    cmd.arg("-XX:+UseG1GC")
        .arg(format!("-Duser.home={}", home.display()))
        .arg(format!("-Drocketmq.home.dir={}", home.display()))
        .arg("-Dfile.encoding=UTF-8")
        .arg("-Drmq.logback.configurationFile=rmq.namesrv.logback.xml")
        .arg("-cp")
        .arg(format!("{}/*", libs.display()))
        .arg("org.apache.rocketmq.namesrv.NamesrvStartup")
        .arg("-c")
        .arg(&conf)
        .env("ROCKETMQ_HOME", &home);
    let proc = Proc::spawn("java-namesrv", cmd, d.join("namesrv.out"));
    Server {
        label: format!("Java {version} (NamesrvStartup)"),
        proc,
        addr: format!("127.0.0.1:{port}"),
        _dir: dir,
    }
}

fn route_request(topic: &str) -> RemotingCommand {
    RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_header(
        &GetRouteInfoRequestHeader {
            topic: topic.to_owned(),
            accept_standard_json_only: None,
        },
    )
}

fn topic_name(i: usize) -> String {
    format!("BenchTopic-{i}")
}

// ----------------------------------------------------------------- results

#[derive(Default, Clone)]
struct Outcome {
    label: String,
    route_body_len: usize,
    connect_ms: f64,
    answer_ms: f64,
    idle_rss_kib: u64,
    load_rss_kib: u64,
    qps: f64,
    requests: u64,
    errors: u64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    clean_exit: bool,
    round_qps: Vec<f64>,
    cpu_cores: f64,
    cpu_us_per_req: f64,
    gen_cores: f64,
}

/// Waits for the first TCP connect, then the first answer to 105 (any
/// response code: "topic not exist" is an answer). Times from `t0`.
async fn wait_ready(server: &mut Server, t0: Instant) -> (f64, f64) {
    let deadline = t0 + BOOT_TIMEOUT;
    let mut connect = None;
    while connect.is_none() {
        assert!(
            Instant::now() < deadline,
            "{}: no TCP connect within {BOOT_TIMEOUT:?}\n{}",
            server.label,
            server.proc.log_text()
        );
        assert!(
            server.proc.is_running(),
            "{} exited during start-up:\n{}",
            server.label,
            server.proc.log_text()
        );
        if tokio::net::TcpStream::connect(&server.addr).await.is_ok() {
            connect = Some(t0.elapsed());
        } else {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    loop {
        assert!(
            Instant::now() < deadline,
            "{}: no answer to 105 within {BOOT_TIMEOUT:?}\n{}",
            server.label,
            server.proc.log_text()
        );
        assert!(
            server.proc.is_running(),
            "{} exited during start-up:\n{}",
            server.label,
            server.proc.log_text()
        );
        if let Ok(conn) = Connection::connect(&server.addr, Arc::new(Router::new())).await {
            if conn
                .request(route_request("BenchProbe"), Duration::from_secs(2))
                .await
                .is_ok()
            {
                let answer = t0.elapsed();
                conn.close();
                let ms = |d: Duration| d.as_secs_f64() * 1e3;
                return (ms(connect.unwrap_or_default()), ms(answer));
            }
            conn.close();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// REGISTER_BROKER (103) of a fake master with `topics` topics; returns the
/// connection, kept open as a broker would.
async fn register_fake_broker(addr: &str, topics: usize) -> (Connection, usize) {
    let conn = Connection::connect(addr, Arc::new(Router::new()))
        .await
        .expect("connect to register broker");
    let broker_port = free_port();
    let mut table = BTreeMap::new();
    for i in 0..topics {
        let t = topic_name(i);
        table.insert(t.clone(), TopicConfig::new(t, 8, 8, 6));
    }
    let body = to_json(&RegisterBrokerBody {
        topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
            topic_config_table: table,
            data_version: DataVersion::now(),
            ..Default::default()
        },
        filter_server_list: Vec::new(),
    });
    let crc = crc32_masked(&body);
    let req = RemotingCommand::request(request_code::REGISTER_BROKER)
        .with_ext("brokerName", "bench-broker-a")
        .with_ext("brokerAddr", format!("127.0.0.1:{broker_port}"))
        .with_ext("clusterName", "BenchCluster")
        .with_ext("haServerAddr", format!("127.0.0.1:{}", broker_port + 1))
        .with_ext("brokerId", "0")
        .with_ext("heartbeatTimeoutMillis", "600000")
        .with_ext("compressed", "false")
        .with_ext("bodyCrc32", crc.to_string())
        .with_body(body);
    let resp = conn
        .request(req, REQUEST_TIMEOUT)
        .await
        .expect("REGISTER_BROKER answered");
    assert_eq!(
        resp.code,
        response_code::SUCCESS,
        "REGISTER_BROKER failed: {:?}",
        resp.remark
    );
    // The route must now exist.
    let r = conn
        .request(route_request(&topic_name(0)), REQUEST_TIMEOUT)
        .await
        .expect("route answered");
    assert_eq!(
        r.code,
        response_code::SUCCESS,
        "route after register: {:?}",
        r.remark
    );
    assert!(!r.body.is_empty(), "empty route body");
    let len = r.body.len();
    (conn, len)
}

struct LoadOut {
    hist: Histogram,
    requests: u64,
    errors: u64,
    elapsed: Duration,
    max_rss_kib: u64,
}

/// Closed-loop load: `conns` connections x `inflight` tasks, each sending 105
/// back-to-back until `dur` passes (or the per-task cap is hit).
async fn run_load(addr: &str, pid: u32, o: &Opts, dur: Duration) -> LoadOut {
    let mut conns = Vec::with_capacity(o.conns);
    for _ in 0..o.conns {
        conns.push(
            Connection::connect(addr, Arc::new(Router::new()))
                .await
                .expect("connect load connection"),
        );
    }
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    for (ci, conn) in conns.iter().enumerate() {
        for pi in 0..o.inflight {
            let conn = conn.clone();
            let errors = errors.clone();
            let topics = o.topics;
            let reqs: Vec<RemotingCommand> =
                (0..topics).map(|i| route_request(&topic_name(i))).collect();
            let mut k = ci * o.inflight + pi;
            tasks.push(tokio::spawn(async move {
                let mut h = Histogram::new();
                let mut n = 0u64;
                while n < MAX_REQUESTS_PER_TASK && Instant::now() < deadline {
                    let req = reqs[k % topics].clone();
                    k += 1;
                    let t = Instant::now();
                    match conn.request(req, REQUEST_TIMEOUT).await {
                        Ok(r) if r.code == response_code::SUCCESS => {
                            h.record(t.elapsed().as_nanos() as u64);
                        }
                        Ok(_) | Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            if conn.is_closed() {
                                break;
                            }
                        }
                    }
                    n += 1;
                }
                h
            }));
        }
    }
    // RSS sampler, bounded by the load's own deadline (+ slack).
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut max = 0;
            let until = deadline + Duration::from_secs(10);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                max = max.max(rss_kib(pid).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            max
        })
    };
    let mut hist = Histogram::new();
    for t in tasks {
        if let Ok(h) = t.await {
            hist.merge(&h);
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let max_rss_kib = sampler.await.unwrap_or(0);
    for c in &conns {
        c.close();
    }
    LoadOut {
        requests: hist.total,
        errors: errors.load(Ordering::Relaxed),
        hist,
        elapsed,
        max_rss_kib,
    }
}

/// A started, registered server between load rounds.
struct Running {
    server: Server,
    broker: Connection,
    out: Outcome,
    hist: Histogram,
    elapsed: Duration,
    cpu_ticks: u64,
    /// CPU time of this process (the load generator) during the rounds.
    gen_ticks: u64,
}

/// Start-up timing, fake broker, idle RSS, warm-up.
async fn prepare(mut server: Server, t0: Instant, o: &Opts) -> Running {
    let pid = server.proc.pid();
    let (connect_ms, answer_ms) = wait_ready(&mut server, t0).await;
    eprintln!(
        "[bench] {}: pid {pid}, listening after {connect_ms:.0} ms, answering after {answer_ms:.0} ms",
        server.label
    );
    let (broker, route_body_len) = register_fake_broker(&server.addr, o.topics).await;
    tokio::time::sleep(o.settle).await;
    let idle_rss_kib = rss_kib(pid).unwrap_or(0);
    eprintln!("[bench] {}: idle RSS {} KiB", server.label, idle_rss_kib);
    Running {
        out: Outcome {
            label: server.label.clone(),
            route_body_len,
            connect_ms,
            answer_ms,
            idle_rss_kib,
            ..Default::default()
        },
        server,
        broker,
        hist: Histogram::new(),
        elapsed: Duration::ZERO,
        cpu_ticks: 0,
        gen_ticks: 0,
    }
}

async fn warm_up(r: &Running, o: &Opts) {
    if o.warmup.is_zero() {
        return;
    }
    let w = run_load(&r.server.addr, r.server.proc.pid(), o, o.warmup).await;
    eprintln!(
        "[bench] {}: warm-up {:?}: {} requests, {} errors",
        r.server.label, o.warmup, w.requests, w.errors
    );
}

/// One measured round; accumulates into `r`. Returns the round's QPS.
async fn round(r: &mut Running, o: &Opts, n: usize) -> f64 {
    let pid = r.server.proc.pid();
    let me = std::process::id();
    let (cpu0, gen0) = (cpu_ticks(pid), cpu_ticks(me));
    let l = run_load(&r.server.addr, pid, o, o.duration).await;
    let cpu = cpu_ticks(pid).saturating_sub(cpu0);
    r.gen_ticks += cpu_ticks(me).saturating_sub(gen0);
    let qps = l.requests as f64 / l.elapsed.as_secs_f64();
    eprintln!(
        "[bench] {}: round {n}: {qps:.0} req/s, p99 {:.0} us, {} errors, server CPU {:.2} cores",
        r.server.label,
        l.hist.quantile(0.99) as f64 / 1e3,
        l.errors,
        cpu as f64 / clk_tck() / l.elapsed.as_secs_f64()
    );
    r.hist.merge(&l.hist);
    r.elapsed += l.elapsed;
    r.cpu_ticks += cpu;
    r.out.errors += l.errors;
    r.out.load_rss_kib = r.out.load_rss_kib.max(l.max_rss_kib);
    r.out.round_qps.push(qps);
    qps
}

fn finish(mut r: Running) -> Outcome {
    r.broker.close();
    let us = |ns: u64| ns as f64 / 1e3;
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let cpu_secs = r.cpu_ticks as f64 / clk_tck();
    let out = Outcome {
        requests: r.hist.total,
        qps: r.hist.total as f64 / secs,
        p50_us: us(r.hist.quantile(0.50)),
        p99_us: us(r.hist.quantile(0.99)),
        p999_us: us(r.hist.quantile(0.999)),
        max_us: us(r.hist.max),
        cpu_cores: cpu_secs / secs,
        gen_cores: r.gen_ticks as f64 / clk_tck() / secs,
        cpu_us_per_req: if r.hist.total > 0 {
            cpu_secs * 1e6 / r.hist.total as f64
        } else {
            0.0
        },
        ..r.out
    };
    eprintln!("[bench] {}: stopping (SIGTERM)", r.server.label);
    let status = r.server.proc.stop(Duration::from_secs(20));
    Outcome {
        // Java exits with 143 on SIGTERM after its shutdown hooks; what
        // counts is that it went away within the grace period.
        clean_exit: status.is_some(),
        ..out
    }
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the ")" that closes the command name; utime/stime are 14/15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

// ------------------------------------------------------------------- report

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn print_report(o: &Opts, results: &[Outcome]) {
    println!();
    println!(
        "machine: {} CPUs, {}; load average before run: {}",
        nproc(),
        cpu_model(),
        o_load()
    );
    println!(
        "load: GET_ROUTEINFO_BY_TOPIC (105), {} connections x {} in flight, {} topics, warm-up {:?}, {} alternating rounds of {:?}; load average after: {}",
        o.conns, o.inflight, o.topics, o.warmup, o.rounds, o.duration, loadavg()
    );
    println!();
    type Row = (&'static str, Box<dyn Fn(&Outcome) -> String>);
    let rows: Vec<Row> = vec![
        (
            "spawn -> TCP connect",
            Box::new(|r: &Outcome| format!("{:.0} ms", r.connect_ms)),
        ),
        (
            "spawn -> first 105 answer",
            Box::new(|r: &Outcome| format!("{:.0} ms", r.answer_ms)),
        ),
        ("idle RSS", Box::new(|r: &Outcome| mib(r.idle_rss_kib))),
        (
            "RSS under load (max)",
            Box::new(|r: &Outcome| mib(r.load_rss_kib)),
        ),
        (
            "route answer body",
            Box::new(|r: &Outcome| format!("{} bytes", r.route_body_len)),
        ),
        (
            "requests (errors)",
            Box::new(|r: &Outcome| format!("{} ({})", r.requests, r.errors)),
        ),
        (
            "throughput",
            Box::new(|r: &Outcome| format!("{:.0} req/s", r.qps)),
        ),
        (
            "throughput per round",
            Box::new(|r: &Outcome| {
                r.round_qps
                    .iter()
                    .map(|q| format!("{q:.0}"))
                    .collect::<Vec<_>>()
                    .join(" / ")
            }),
        ),
        (
            "server CPU (cores busy)",
            Box::new(|r: &Outcome| format!("{:.2}", r.cpu_cores)),
        ),
        (
            "server CPU per request",
            Box::new(|r: &Outcome| format!("{:.1} us", r.cpu_us_per_req)),
        ),
        (
            "load generator CPU (cores)",
            Box::new(|r: &Outcome| format!("{:.2}", r.gen_cores)),
        ),
        (
            "p50 latency",
            Box::new(|r: &Outcome| format!("{:.0} us", r.p50_us)),
        ),
        (
            "p99 latency",
            Box::new(|r: &Outcome| format!("{:.0} us", r.p99_us)),
        ),
        (
            "p99.9 latency",
            Box::new(|r: &Outcome| format!("{:.0} us", r.p999_us)),
        ),
        (
            "max latency",
            Box::new(|r: &Outcome| format!("{:.0} us", r.max_us)),
        ),
        (
            "exited on SIGTERM (20 s)",
            Box::new(|r: &Outcome| {
                if r.clean_exit {
                    "yes".into()
                } else {
                    "no (SIGKILLed)".into()
                }
            }),
        ),
    ];
    let w0 = 28;
    let w = 32;
    print!("| {:<w0$} |", "");
    for r in results {
        print!(" {:<w$} |", r.label);
    }
    println!();
    print!("|{}|", "-".repeat(w0 + 2));
    for _ in results {
        print!("{}|", "-".repeat(w + 2));
    }
    println!();
    for (name, f) in &rows {
        print!("| {name:<w0$} |");
        for r in results {
            print!(" {:<w$} |", f(r));
        }
        println!();
    }
    if let [ours, java] = results {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        let qps = ratio(ours.qps, java.qps);
        let p99 = ratio(java.p99_us, ours.p99_us);
        let rss = ratio(java.idle_rss_kib as f64, ours.idle_rss_kib as f64);
        let rss_load = ratio(java.load_rss_kib as f64, ours.load_rss_kib as f64);
        let start = ratio(java.answer_ms, ours.answer_ms);
        let cpu = ratio(java.cpu_us_per_req, ours.cpu_us_per_req);
        let mut per_round: Vec<f64> = ours
            .round_qps
            .iter()
            .zip(&java.round_qps)
            .map(|(a, b)| ratio(*a, *b))
            .collect();
        per_round.sort_by(f64::total_cmp);
        let rounds = per_round
            .iter()
            .map(|q| format!("{q:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        let goal = |ok: bool| if ok { "meets goal" } else { "MISSES goal" };
        println!();
        println!("ratios (higher = ours better):");
        println!(
            "  throughput ours/Java       {qps:>8.2}x   (goal >= 3x: {})",
            goal(qps >= 3.0)
        );
        println!("  (per round, sorted: {rounds})");
        println!(
            "  server CPU/request Java/ours {cpu:>6.2}x   (= server capacity per core, ours/Java)"
        );
        println!("  p99 latency Java/ours      {p99:>8.2}x");
        println!(
            "  idle RSS Java/ours         {rss:>8.2}x   (goal >= 10x, i.e. ours <= 1/10: {})",
            goal(rss >= 10.0)
        );
        println!("  RSS under load Java/ours   {rss_load:>8.2}x");
        println!("  start-up Java/ours         {start:>8.2}x   (spawn -> first 105 answer)");
    }
}

static LOAD_BEFORE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
fn o_load() -> String {
    LOAD_BEFORE.get().cloned().unwrap_or_default()
}

fn main() {
    let o = parse_args();
    let _ = LOAD_BEFORE.set(loadavg());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Prepare both sides before timing anything (maven may run for the jars).
    let libs: Option<PathBuf> = o.java.then(|| reference_libs(&o.java_version));
    if o.ours {
        let _ = bin_dir();
    }
    // Start-up is timed one server at a time on an otherwise idle pair; the
    // load rounds then alternate between the two servers so that background
    // noise on a shared machine falls on both alike.
    let mut running = Vec::new();
    if o.ours {
        let t0 = Instant::now();
        let s = spawn_ours();
        running.push(rt.block_on(prepare(s, t0, &o)));
    }
    if let Some(libs) = &libs {
        let t0 = Instant::now();
        let s = spawn_java(&o.java_version, libs);
        running.push(rt.block_on(prepare(s, t0, &o)));
    }
    for r in &running {
        rt.block_on(warm_up(r, &o));
    }
    for n in 1..=o.rounds {
        for r in running.iter_mut() {
            rt.block_on(round(r, &o, n));
        }
    }
    let results: Vec<Outcome> = running.into_iter().map(finish).collect();
    print_report(&o, &results);
}
