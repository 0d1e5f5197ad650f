//! `bench_namesrv`: our `mqnamesrv` against the official Java name server
//! (`NamesrvStartup`, default 5.3.3) with the same load generator, printed
//! side by side with ratios. The generator is deliberately lean (one thread,
//! pre-encoded frames, batched writes, answers parsed only as far as needed;
//! see "load generator" below) because it shares the machine's cores with
//! the server under test.
//!
//! For each server: start with a fresh home on a free loopback port, time
//! spawn -> first TCP connect and spawn -> first answer to
//! GET_ROUTEINFO_BY_TOPIC (105); register one fake broker (REGISTER_BROKER
//! 103, connection kept open); idle RSS after a settle; warm-up; then a
//! fixed-duration closed-loop load (alternating rounds) of 105 from C connections x P in-flight
//! requests each, every latency recorded in a log-linear (HDR-style)
//! histogram, every answer checked (SUCCESS, route-sized body; one in 4096
//! fully decoded as a route); RSS sampled during the load. Both servers are stopped with
//! SIGTERM at the end.
//!
//! Usage: bench_namesrv [--duration SECS] [--warmup SECS] [--conns C]
//!        [--inflight P] [--topics N] [--settle SECS] [--rounds R]
//!        [--per-write N] [--java-version V] [--only ours|java]
//! Defaults: 10 s per round, 10 s warm-up, 8 connections x 16 in flight,
//! 16 topics, 3 s settle, 3 rounds, Java 5.3.3; `--per-write N` caps the
//! requests sent per write syscall (default: all that are ready). The measured rounds
//! alternate between the servers (ours, Java, ours, ...) so background load
//! on a shared machine hits both alike; server CPU time per request
//! (/proc/<pid>/stat) is reported as a noise-resistant efficiency figure.
//!
//! Our binary is found like the compat harness does (`$MQ_BIN_DIR`, else
//! `target/release`); `scripts/bench-namesrv.sh` builds it first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use compat_tests::bench::{
    clk_tck, cpu_model, cpu_ticks, goal, latency_rows, loadavg, mib, nproc, per_round, print_table,
    ratio, round_ratios, rss_kib, CommonOpts, Histogram, Latency, Row,
};
use compat_tests::{bin_dir, free_port, jdk_opens, reference_libs, workspace_root, Proc};
use remoting::body::{
    to_json, DataVersion, RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper,
};
use remoting::code::{request_code, response_code};
use remoting::header::GetRouteInfoRequestHeader;
use remoting::{Connection, RemotingCommand, Router};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// Hard cap on requests per load connection per phase (besides the deadline).
const MAX_REQUESTS_PER_CONN: u64 = 500_000_000;

// ---------------------------------------------------------------- arguments

#[derive(Debug, Clone)]
struct Opts {
    common: CommonOpts,
    /// Requests per write syscall at most (0 = all that are ready).
    per_write: usize,
    topics: usize,
}

impl std::ops::Deref for Opts {
    type Target = CommonOpts;
    fn deref(&self) -> &CommonOpts {
        &self.common
    }
}

fn usage(why: &str) -> ! {
    eprintln!(
        "bench_namesrv: {why}\nusage: bench_namesrv [--duration SECS] [--warmup SECS] [--conns C] \
         [--inflight P] [--topics N] [--settle SECS] [--rounds R] [--per-write N] \
         [--java-version V] [--only ours|java]"
    );
    std::process::exit(2)
}

fn parse_args() -> Opts {
    let mut common = CommonOpts::new(8, 16);
    let (mut per_write, mut topics) = (0, 16);
    let parsed = common.parse(std::env::args().skip(1), |flag, value| {
        let mut num = || {
            value()
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag} needs a number above 0"))
        };
        match flag {
            "--per-write" => per_write = num()?,
            "--topics" => topics = num()?,
            _ => return Ok(false),
        }
        Ok(true)
    });
    if let Err(e) = parsed {
        usage(&e);
    }
    Opts {
        common,
        per_write,
        topics,
    }
}

// ----------------------------------------------------------------- machine

/// `UtilAll.crc32`: CRC-32 (IEEE) masked to 31 bits.
fn crc32_masked(data: &[u8]) -> i32 {
    (crc32fast::hash(data) & 0x7FFF_FFFF) as i32
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
    cmd.args(["-Xms256m", "-Xmx256m", "-XX:MaxMetaspaceSize=128m"])
        .args(jdk_opens(version));
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
    lat: Latency,
    clean_exit: bool,
    round_qps: Vec<f64>,
    cpu_cores: f64,
    cpu_us_per_req: f64,
    gen_cores: f64,
    gen_us_per_req: f64,
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

// ------------------------------------------------------------ load generator
//
// The generator must cost as little CPU per request as possible: on a small
// machine it shares the cores with the server, so its own cost caps the
// throughput of both servers alike. Each connection is one task on a
// current-thread runtime (one OS thread for the whole load) that keeps P
// requests in flight: the request frames are encoded once per topic with the
// `remoting` codec and only the opaque's digits are patched per request; all
// requests that can be sent go out in one write, and every read is parsed in
// place for as many whole frames as it holds, reading only the frame length,
// the header's `code` and `opaque`, and the body length (a sample is fully
// decoded and checked as a route, see `check_sample`).

/// Opaques are kept at 10 decimal digits so a pre-encoded frame can be
/// patched in place: BASE..BASE + SPAN.
const OPAQUE_BASE: u32 = 1_000_000_000;
const OPAQUE_SPAN: u32 = 1_000_000_000;
const OPAQUE_DIGITS: usize = 10;
/// Largest answer frame accepted (a route body is a few hundred bytes).
const MAX_ANSWER_FRAME: usize = 1 << 20;
/// Fully decode one answer in this many (and the first on each connection).
const SAMPLE_EVERY: u64 = 4096;

/// One pre-encoded GET_ROUTEINFO_BY_TOPIC frame per topic and where its
/// opaque digits are.
struct Templates {
    frames: Vec<Vec<u8>>,
    opaque_at: Vec<usize>,
}

fn templates(topics: usize) -> Templates {
    let mut frames = Vec::with_capacity(topics);
    let mut opaque_at = Vec::with_capacity(topics);
    let needle = format!("\"opaque\":{OPAQUE_BASE}");
    for i in 0..topics {
        let mut cmd = route_request(&topic_name(i));
        cmd.opaque = OPAQUE_BASE as i32;
        let frame = remoting::codec::encode_frame(&cmd)
            .expect("encode route request")
            .to_vec();
        let at = find(&frame, needle.as_bytes()).expect("opaque in the encoded header");
        assert!(
            find(&frame[at + 1..], needle.as_bytes()).is_none(),
            "opaque found twice in the template"
        );
        opaque_at.push(at + needle.len() - OPAQUE_DIGITS);
        frames.push(frame);
    }
    Templates { frames, opaque_at }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Writes `v` (OPAQUE_BASE..OPAQUE_BASE + OPAQUE_SPAN) as 10 ASCII digits.
fn patch_digits(dst: &mut [u8], mut v: u32) {
    for d in dst[..OPAQUE_DIGITS].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// The integer after `"key":` in a compact JSON header (None when absent or
/// not a number).
fn json_int(header: &[u8], key: &[u8]) -> Option<i64> {
    let at = find(header, key)? + key.len();
    let rest = header.get(at..)?;
    let rest = &rest[rest.iter().take_while(|b| **b == b' ').count()..];
    let (neg, digits) = match rest.first() {
        Some(b'-') => (true, &rest[1..]),
        _ => (false, rest),
    };
    let mut v: i64 = 0;
    let mut n = 0;
    for &b in digits.iter().take(19) {
        if !b.is_ascii_digit() {
            break;
        }
        v = v * 10 + i64::from(b - b'0');
        n += 1;
    }
    (n > 0).then_some(if neg { -v } else { v })
}

/// `(code, opaque, body length)` of an answer frame (the bytes after the
/// 4-byte length prefix); None if it is not a JSON-header frame with both.
fn parse_answer(frame: &[u8]) -> Option<(i64, i64, usize)> {
    let packed = u32::from_be_bytes(frame.get(..4)?.try_into().ok()?);
    if packed >> 24 != 0 {
        return None; // not JSON
    }
    let header_len = (packed & 0xFF_FFFF) as usize;
    let header = frame.get(4..4 + header_len)?;
    let code = json_int(header, b"\"code\":")?;
    let opaque = json_int(header, b"\"opaque\":")?;
    Some((code, opaque, frame.len() - 4 - header_len))
}

/// Full decode of one answer with the `remoting` codec: the same code and
/// opaque as the quick parse, and a route to `bench-broker-a` with 8/8 queues.
fn check_sample(frame: &[u8], code: i64, opaque: i64) -> Result<(), String> {
    let cmd = remoting::codec::decode_frame_body(bytes::Bytes::copy_from_slice(frame))
        .map_err(|e| format!("decode: {e}"))?;
    if i64::from(cmd.code) != code || i64::from(cmd.opaque) != opaque || !cmd.is_response() {
        return Err(format!(
            "quick parse ({code}, {opaque}) disagrees with the decoder ({}, {}, response {})",
            cmd.code,
            cmd.opaque,
            cmd.is_response()
        ));
    }
    let route: remoting::body::TopicRouteData =
        remoting::body::from_fastjson(&cmd.body).map_err(|e| format!("route body: {e}"))?;
    let broker_ok = route.broker_datas.len() == 1
        && route.broker_datas[0].broker_name == "bench-broker-a"
        && route.broker_datas[0].broker_addrs.contains_key(&0);
    let queues_ok = route.queue_datas.len() == 1
        && route.queue_datas[0].read_queue_nums == 8
        && route.queue_datas[0].write_queue_nums == 8;
    if broker_ok && queues_ok {
        Ok(())
    } else {
        Err(format!("unexpected route {route:?}"))
    }
}

/// What one load connection did.
struct ConnOut {
    hist: Histogram,
    errors: u64,
    /// First failed full-decode check, if any.
    bad_sample: Option<String>,
}

/// One connection keeping `p` requests in flight until `deadline`, then
/// draining. Every answer must be a SUCCESS with a `route_len`-byte body.
async fn drive_connection(
    addr: String,
    tpl: Arc<Templates>,
    p: usize,
    per_write: usize,
    first_topic: usize,
    deadline: Instant,
    route_len: usize,
) -> ConnOut {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut out = ConnOut {
        hist: Histogram::new(),
        errors: 0,
        bad_sample: None,
    };
    let mut stream = match tokio::net::TcpStream::connect(&addr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("[bench] load connection to {addr} failed: {e}");
            out.errors += 1;
            return out;
        }
    };
    let _ = stream.set_nodelay(true);
    let topics = tpl.frames.len();
    // Opaque of slot s, use g: BASE + (g * p + s) mod span, span a multiple of p.
    let span = OPAQUE_SPAN - OPAQUE_SPAN % p as u32;
    let mut uses = vec![0u32; p];
    let mut expected: Vec<Option<u32>> = vec![None; p];
    let mut sent_at = vec![Instant::now(); p];
    // (slot, end of its frame in wbuf) of the requests waiting to be written.
    let mut batch: Vec<(usize, usize)> = Vec::with_capacity(p);
    let max_frame = tpl.frames.iter().map(Vec::len).max().unwrap_or(0);
    let mut wbuf: Vec<u8> = Vec::with_capacity(p * max_frame);
    let mut rbuf = vec![0u8; 64 * 1024];
    let mut filled = 0usize;
    let mut topic = first_topic;
    let mut issued = 0u64;
    let mut answered = 0u64;
    let mut outstanding = 0usize;

    let mut queue = |slot: usize,
                     wbuf: &mut Vec<u8>,
                     expected: &mut [Option<u32>],
                     batch: &mut Vec<(usize, usize)>| {
        let t = topic % topics;
        topic += 1;
        let rel = ((u64::from(uses[slot]) * p as u64 + slot as u64) % u64::from(span)) as u32;
        uses[slot] = uses[slot].wrapping_add(1);
        let opaque = OPAQUE_BASE + rel;
        let at = wbuf.len() + tpl.opaque_at[t];
        wbuf.extend_from_slice(&tpl.frames[t]);
        patch_digits(&mut wbuf[at..], opaque);
        expected[slot] = Some(opaque);
        batch.push((slot, wbuf.len()));
    };
    for slot in 0..p {
        queue(slot, &mut wbuf, &mut expected, &mut batch);
        outstanding += 1;
        issued += 1;
    }
    loop {
        if !wbuf.is_empty() {
            let chunk = if per_write == 0 {
                batch.len()
            } else {
                per_write
            };
            let mut from = 0;
            let mut failed = false;
            for part in batch.chunks(chunk) {
                let now = Instant::now();
                for &(s, _) in part {
                    sent_at[s] = now;
                }
                let to = part.last().map_or(from, |&(_, end)| end);
                if stream.write_all(&wbuf[from..to]).await.is_err() {
                    failed = true;
                    break;
                }
                from = to;
            }
            if failed {
                out.errors += outstanding as u64;
                break;
            }
            batch.clear();
            wbuf.clear();
        }
        if outstanding == 0 {
            break;
        }
        if filled == rbuf.len() {
            rbuf.resize(rbuf.len() * 2, 0);
        }
        let n = match tokio::time::timeout(REQUEST_TIMEOUT, stream.read(&mut rbuf[filled..])).await
        {
            Ok(Ok(n)) if n > 0 => n,
            _ => {
                // Closed, failed or silent for REQUEST_TIMEOUT: the rest are lost.
                out.errors += outstanding as u64;
                break;
            }
        };
        let now = Instant::now();
        filled += n;
        let mut pos = 0;
        let mut broken = false;
        while filled - pos >= 4 {
            let len = u32::from_be_bytes([rbuf[pos], rbuf[pos + 1], rbuf[pos + 2], rbuf[pos + 3]])
                as usize;
            if len > MAX_ANSWER_FRAME {
                broken = true;
                break;
            }
            if filled - pos - 4 < len {
                break;
            }
            let frame = &rbuf[pos + 4..pos + 4 + len];
            pos += 4 + len;
            let Some((code, opaque, body_len)) = parse_answer(frame) else {
                broken = true;
                break;
            };
            let slot = match u32::try_from(opaque) {
                Ok(o) if o >= OPAQUE_BASE => ((o - OPAQUE_BASE) as usize) % p,
                _ => {
                    broken = true;
                    break;
                }
            };
            if expected[slot] != Some(opaque as u32) {
                broken = true; // an answer to nothing we asked
                break;
            }
            expected[slot] = None;
            outstanding -= 1;
            if code == i64::from(response_code::SUCCESS) && body_len == route_len {
                out.hist
                    .record(now.duration_since(sent_at[slot]).as_nanos() as u64);
            } else {
                out.errors += 1;
            }
            if answered.is_multiple_of(SAMPLE_EVERY) && out.bad_sample.is_none() {
                if let Err(e) = check_sample(frame, code, opaque) {
                    out.errors += 1;
                    out.bad_sample = Some(e);
                }
            }
            answered += 1;
            if now < deadline && issued < MAX_REQUESTS_PER_CONN {
                queue(slot, &mut wbuf, &mut expected, &mut batch);
                outstanding += 1;
                issued += 1;
            }
        }
        if broken {
            eprintln!(
                "[bench] {addr}: unparseable or unexpected answer frame; dropping the connection"
            );
            out.errors += outstanding as u64;
            break;
        }
        rbuf.copy_within(pos..filled, 0);
        filled -= pos;
    }
    out
}

struct LoadOut {
    hist: Histogram,
    requests: u64,
    errors: u64,
    elapsed: Duration,
    max_rss_kib: u64,
}

/// Closed-loop load: `conns` connections x `inflight` requests each, until
/// `dur` passes (or the per-connection cap is hit).
async fn run_load(addr: &str, pid: u32, o: &Opts, dur: Duration, route_len: usize) -> LoadOut {
    let tpl = Arc::new(templates(o.topics));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + dur;
    let tasks: Vec<_> = (0..o.conns)
        .map(|ci| {
            tokio::spawn(drive_connection(
                addr.to_owned(),
                tpl.clone(),
                o.inflight,
                o.per_write,
                ci * o.inflight,
                deadline,
                route_len,
            ))
        })
        .collect();
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
    let mut errors = 0;
    for t in tasks {
        match t.await {
            Ok(c) => {
                hist.merge(&c.hist);
                errors += c.errors;
                if let Some(e) = c.bad_sample {
                    eprintln!("[bench] {addr}: sampled answer failed its check: {e}");
                }
            }
            Err(_) => errors += 1,
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let max_rss_kib = sampler.await.unwrap_or(0);
    LoadOut {
        requests: hist.total,
        errors,
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
    let w = run_load(
        &r.server.addr,
        r.server.proc.pid(),
        o,
        o.warmup,
        r.out.route_body_len,
    )
    .await;
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
    let l = run_load(&r.server.addr, pid, o, o.duration, r.out.route_body_len).await;
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
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let cpu_secs = r.cpu_ticks as f64 / clk_tck();
    let out = Outcome {
        requests: r.hist.total,
        qps: r.hist.total as f64 / secs,
        lat: Latency::of(&r.hist),
        cpu_cores: cpu_secs / secs,
        gen_cores: r.gen_ticks as f64 / clk_tck() / secs,
        gen_us_per_req: if r.hist.total > 0 {
            r.gen_ticks as f64 / clk_tck() * 1e6 / r.hist.total as f64
        } else {
            0.0
        },
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

// ------------------------------------------------------------------- report

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
    let mut rows: Vec<Row<Outcome>> = vec![
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
            Box::new(|r: &Outcome| per_round(&r.round_qps)),
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
            "generator CPU per request",
            Box::new(|r: &Outcome| format!("{:.2} us", r.gen_us_per_req)),
        ),
    ];
    rows.extend(latency_rows(|r: &Outcome| r.lat));
    rows.push((
        "exited on SIGTERM (20 s)",
        Box::new(|r: &Outcome| {
            if r.clean_exit {
                "yes".into()
            } else {
                "no (SIGKILLed)".into()
            }
        }),
    ));
    print_table(results, |r| &r.label, &rows, 28, 32);
    if let [ours, java] = results {
        let qps = ratio(ours.qps, java.qps);
        let p99 = ratio(java.lat.p99_us, ours.lat.p99_us);
        let rss = ratio(java.idle_rss_kib as f64, ours.idle_rss_kib as f64);
        let rss_load = ratio(java.load_rss_kib as f64, ours.load_rss_kib as f64);
        let start = ratio(java.answer_ms, ours.answer_ms);
        let cpu = ratio(java.cpu_us_per_req, ours.cpu_us_per_req);
        let rounds = round_ratios(&ours.round_qps, &java.round_qps);
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
    // One thread for the whole generator (see "load generator" above).
    let rt = tokio::runtime::Builder::new_current_thread()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patched_template_decodes_with_the_patched_opaque() {
        let tpl = templates(12);
        for (t, frame) in tpl.frames.iter().enumerate() {
            for opaque in [OPAQUE_BASE, OPAQUE_BASE + 7, OPAQUE_BASE + OPAQUE_SPAN - 1] {
                let mut f = frame.clone();
                patch_digits(&mut f[tpl.opaque_at[t]..], opaque);
                let cmd =
                    remoting::codec::decode_frame_body(bytes::Bytes::copy_from_slice(&f[4..]))
                        .expect("patched frame decodes");
                assert_eq!(cmd.opaque as u32, opaque);
                assert_eq!(cmd.code, request_code::GET_ROUTEINFO_BY_TOPIC);
                assert_eq!(cmd.ext("topic"), Some(topic_name(t).as_str()));
            }
        }
    }

    #[test]
    fn answers_are_parsed_for_code_opaque_and_body_length() {
        let mut ok = RemotingCommand::success().with_body(vec![b'x'; 272]);
        ok.opaque = 1_234_567_890;
        let f = remoting::codec::encode_frame(&ok).expect("encode");
        assert_eq!(parse_answer(&f[4..]), Some((0, 1_234_567_890, 272)));
        let mut err = RemotingCommand::response(response_code::TOPIC_NOT_EXIST)
            .with_remark("No topic route info in name server for the topic: \"code\":0");
        err.opaque = 1_000_000_001;
        let f = remoting::codec::encode_frame(&err).expect("encode");
        let (code, opaque, len) = parse_answer(&f[4..]).expect("parsed");
        assert_eq!(
            (code, opaque, len),
            (i64::from(response_code::TOPIC_NOT_EXIST), 1_000_000_001, 0)
        );
        // Java's fastjson header order and spelling.
        let java = br#"{"code":0,"flag":1,"language":"JAVA","opaque":1000000042,"serializeTypeCurrentRPC":"JSON","version":475}"#;
        let mut frame = Vec::new();
        frame.extend_from_slice(&(java.len() as u32).to_be_bytes());
        frame.extend_from_slice(java);
        frame.extend_from_slice(&[b'y'; 5]);
        assert_eq!(parse_answer(&frame), Some((0, 1_000_000_042, 5)));
        assert_eq!(
            parse_answer(b"\x01\x00\x00\x00"),
            None,
            "binary header is refused"
        );
        assert_eq!(parse_answer(b"\x00\x00\x00\x09{\"code\":}"), None);
    }
}
