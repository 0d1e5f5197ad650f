//! `bench_grpc`: the RocketMQ 5 gRPC path with the official Java client
//! (rocketmq-client-java 5.0.8, driver `compat.grpc.GrpcBench`), our
//! `mqbroker` with its gRPC port (`enableProxy=true`) against the official
//! Java broker with its proxy in local mode (one JVM, default 5.3.3), one
//! after the other, same driver (issue 22, "gRPC" in docs/BENCHMARKS.md).
//!
//! Each round starts, for each server in turn, a fresh name server of the
//! same kind (ours or Java's) and broker on free loopback ports, creates
//! the topic (4 queues) and the consumer group over remoting, then runs:
//!
//! * send: `--threads` threads sharing one Producer make `--count`
//!   synchronous sends of a 1 KiB body (after an untimed warm-up of a
//!   tenth of that, 200 to 5,000); TPS, p50 and p99 per send.
//! * recv: `--recv-threads` threads sharing one SimpleConsumer receive (32
//!   at most, 30 s invisible) and ack (all of a batch at once) until as
//!   many messages as were sent in the timed phase are acked; TPS and
//!   deliveries of a message already seen.
//!
//! and reads the broker's RSS and CPU time. Servers alternate (ours, Java,
//! ours, Java, ...) so that a slow spell of the machine hits both. The
//! table has a line per round and server, then the medians and the ratios
//! ours / Java against the goals (>= 2x on both rates, p99 <= 0.5x).
//!
//! Usage: bench_grpc [--count N] [--threads T] [--recv-threads T]
//!        [--rounds R] [--java-version V] [--only ours|java]
//! Our binaries: `$MQ_BIN_DIR` (default `target/release`);
//! `scripts/bench-grpc.sh` builds them first. Everything started is
//! stopped, also on SIGINT/SIGTERM/SIGHUP; each driver run is bounded.

use compat_tests::{grpc_driver_command, prepare_grpc_driver};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use compat_tests::bench::{
    cleanup_on_signals, clk_tck, cpu_model, cpu_ticks, exit_with, goal, loadavg, median, mib,
    mkdir, nproc, output_within, ratio, round_ratios, rss_kib, utc_minute, work_dir, OnExit, Res,
};
use compat_tests::{remoting_call, JavaNamesrv, JavaProxy, OurNamesrv, StandaloneBroker};
use remoting::code::request_code as rq;
use remoting::RemotingCommand;

const CLIENT: &str = "5.0.8";
const TOPIC: &str = "BenchGrpc";
const GROUP: &str = "bench_grpc_group";
const QUEUES: &str = "4";
const BODY_BYTES: usize = 1024;
/// The longest one driver run (send or recv) may take.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(900);
/// What the recv driver is told: it stops by itself after this.
const RECV_SECS: u64 = 600;

struct Opts {
    count: usize,
    threads: usize,
    recv_threads: usize,
    rounds: usize,
    java_version: String,
    only: Option<String>,
}

fn opts() -> Res<Opts> {
    let mut o = Opts {
        count: 50_000,
        threads: 32,
        recv_threads: 8,
        rounds: 2,
        java_version: "5.3.3".into(),
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        let num = |v: String| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(format!("{a}: a positive number, not {v:?}"))
        };
        match a.as_str() {
            "--count" => o.count = num(val()?)?,
            "--threads" => o.threads = num(val()?)?,
            "--recv-threads" => o.recv_threads = num(val()?)?,
            "--rounds" => o.rounds = num(val()?)?,
            "--java-version" => o.java_version = val()?,
            "--only" => {
                let v = val()?;
                if v != "ours" && v != "java" {
                    return Err(format!("--only: ours or java, not {v:?}"));
                }
                o.only = Some(v);
            }
            "-h" | "--help" => {
                println!(
                    "bench_grpc [--count N] [--threads T] [--recv-threads T] [--rounds R] \
                     [--java-version V] [--only ours|java]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

// ----------------------------------------------------------- what is left

/// On a signal: SIGKILL every child process still running (the name
/// servers, brokers and drivers, also those still starting, before any
/// handle to them exists). Children are found by their parent pid, so only
/// processes this run started are touched. Registered after the work
/// folder's guard, so it runs before the folder is removed.
fn stop_children_on_signal() -> OnExit {
    OnExit::new(|| {
        let me = std::process::id();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        let mut kids = Vec::new();
        for e in procs.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces, so split
            // after its closing parenthesis.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(me) {
                kids.push(pid);
            }
        }
        for pid in kids {
            // SAFETY: a signal to, then a wait for, our own child.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    })
}

// ---------------------------------------------------------------- drivers

/// The prepared Java driver: `compat-tests/java-grpc/target/client-5.0.8`.
struct Driver {
    dir: PathBuf,
    home: PathBuf,
}

impl Driver {
    fn prepare(work: &Path) -> Res<Driver> {
        let dir = prepare_grpc_driver(CLIENT)?;
        let home = work.join("driver-home");
        mkdir(&home)?;
        Ok(Driver { dir, home })
    }

    /// Runs `GrpcBench <args>` to its end (at most [`DRIVER_TIMEOUT`]) and
    /// returns the `key=value` fields of its line starting with `tag`.
    fn run(&self, tag: &str, args: &[String]) -> Res<HashMap<String, f64>> {
        // The same JVM for both servers; C2 on, as an application would run.
        let mut c = grpc_driver_command(
            &self.dir,
            &self.home,
            &["-Xms512m", "-Xmx512m", "-XX:+UseG1GC"],
            "compat.grpc.GrpcBench",
        );
        c.args(args);
        let (status, out, err) = output_within("GrpcBench", c, DRIVER_TIMEOUT)?;
        for l in out.lines().filter(|l| l.starts_with("ERROR ")) {
            eprintln!("[bench]   driver: {l}");
        }
        let line = out.lines().find(|l| l.starts_with(tag));
        match (status, line) {
            (Some(s), Some(line)) if s.success() => Ok(line
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
                .collect()),
            _ => {
                let tail: Vec<&str> = out.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                let errs: Vec<&str> = err.lines().rev().take(5).collect();
                Err(format!(
                    "GrpcBench {} failed ({status:?}):\n{}\n{}",
                    args.first().map_or("", String::as_str),
                    tail.join("\n"),
                    errs.into_iter().rev().collect::<Vec<_>>().join("\n")
                ))
            }
        }
    }
}

// ---------------------------------------------------------------- servers

/// A running name server + broker with a gRPC endpoint.
struct Server {
    endpoint: String,
    broker_addr: String,
    ns_addr: String,
    /// The process serving gRPC and storing messages (ours: `mqbroker`;
    /// Java: the one JVM of broker and proxy).
    pid: u32,
    /// Dropped (and so stopped) broker first, then the name server.
    _handles: Box<dyn std::any::Any>,
}

fn our_server() -> Server {
    let ns = OurNamesrv::start();
    let port = compat_tests::free_port();
    let broker = StandaloneBroker::start(
        &ns.addr,
        &format!(
            "enableProxy=true\ngrpcServerPort={port}\nbrokerIP1=127.0.0.1\n\
             enableTopicMessageTypeCheck=false\nminInvisibleTimeMillsForRecv=1000\n"
        ),
    );
    Server {
        endpoint: format!("127.0.0.1:{port}"),
        broker_addr: broker.addr.clone(),
        ns_addr: ns.addr.clone(),
        pid: broker.proc.pid(),
        // Tuple fields drop in order: the broker, then the name server.
        _handles: Box::new((broker, ns)),
    }
}

fn java_server(version: &str) -> Server {
    let ns = JavaNamesrv::start(version);
    // As the gRPC compat tests run the reference: no message-type check
    // (our broker keeps no topic attributes), same minimum invisible time.
    let local = JavaProxy::start_local_with(
        version,
        &ns.addr,
        "",
        &[
            ("enableTopicMessageTypeCheck", false.into()),
            ("minInvisibleTimeMillsForRecv", 1000.into()),
        ],
    );
    Server {
        endpoint: local.grpc_addr.clone(),
        broker_addr: local.broker_addr.clone(),
        ns_addr: ns.addr.clone(),
        pid: local.proc.pid(),
        _handles: Box::new((local, ns)),
    }
}

/// One remoting request to `addr`; an error unless it answers 0.
fn admin(addr: &str, what: &str, req: RemotingCommand) -> Res<()> {
    match remoting_call(addr, req, Duration::from_secs(30)) {
        Some(r) if r.code == 0 => Ok(()),
        Some(r) => Err(format!("{what}: code {} {:?}", r.code, r.remark)),
        None => Err(format!("{what}: no answer from {addr}")),
    }
}

/// Creates the topic and the group on the broker, then waits (60 s at
/// most) until the name server has the topic's route, which the proxy
/// side hands to the client.
fn create_topic_and_group(s: &Server) -> Res<()> {
    admin(
        &s.broker_addr,
        "create topic",
        RemotingCommand::request(rq::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", TOPIC)
            .with_ext("defaultTopic", "TBW102")
            .with_ext("readQueueNums", QUEUES)
            .with_ext("writeQueueNums", QUEUES)
            .with_ext("perm", "6")
            .with_ext("topicFilterType", "SINGLE_TAG")
            .with_ext("topicSysFlag", "0")
            .with_ext("order", "false"),
    )?;
    admin(
        &s.broker_addr,
        "create group",
        RemotingCommand::request(rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
            .with_body(format!("{{\"groupName\":\"{GROUP}\"}}").into_bytes()),
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = remoting_call(
            &s.ns_addr,
            RemotingCommand::request(rq::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", TOPIC),
            Duration::from_secs(5),
        );
        if r.is_some_and(|r| r.code == 0) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the name server has no route for {TOPIC} after 60 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ------------------------------------------------------------------ rounds

#[derive(Clone)]
struct Sample {
    server: String,
    round: usize,
    send_tps: f64,
    send_p50_us: f64,
    send_p99_us: f64,
    send_errors: f64,
    recv_tps: f64,
    recv_dup: f64,
    /// Broker CPU milliseconds per 1,000 messages sent (warm-up included) /
    /// received + acked, over each driver's whole run (so Java's also
    /// holds the JIT compiling it does meanwhile).
    send_cpu_ms: f64,
    recv_cpu_ms: f64,
    /// The driver JVM's CPU milliseconds per 1,000 messages, the same two
    /// phases: what the client takes of the two cores.
    client_send_cpu_ms: f64,
    client_recv_cpu_ms: f64,
    rss_kib: u64,
}

fn cpu_ms(pid: u32) -> f64 {
    cpu_ticks(pid) as f64 * 1000.0 / clk_tck()
}

fn one_side(
    name: &str,
    round: usize,
    o: &Opts,
    driver: &Driver,
    start: impl FnOnce() -> Server,
) -> Res<Sample> {
    eprintln!("[bench] round {round}: {name}: starting servers");
    let s = std::panic::catch_unwind(AssertUnwindSafe(start))
        .map_err(|p| format!("{name}: start-up failed: {}", panic_text(&p)))?;
    let r = measure(name, round, o, driver, &s);
    // The harness's handles panic when a server does not stop cleanly:
    // worth a line, not the end of the run.
    if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(move || drop(s))) {
        eprintln!("[bench] {name}: stopping: {}", panic_text(&p));
    }
    r
}

fn measure(name: &str, round: usize, o: &Opts, driver: &Driver, s: &Server) -> Res<Sample> {
    create_topic_and_group(s).map_err(|e| format!("{name}: {e}"))?;
    eprintln!(
        "[bench] round {round}: {name}: gRPC at {}, sending {} x {BODY_BYTES} B from {} threads",
        s.endpoint, o.count, o.threads
    );
    let c0 = cpu_ms(s.pid);
    let send = driver.run(
        "SEND ",
        &[
            "send".into(),
            s.endpoint.clone(),
            TOPIC.into(),
            o.count.to_string(),
            o.threads.to_string(),
            BODY_BYTES.to_string(),
        ],
    )?;
    let c1 = cpu_ms(s.pid);
    let get = |m: &HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(f64::NAN);
    let sent = get(&send, "count");
    eprintln!(
        "[bench] round {round}: {name}: send {:.0}/s p50 {:.0} us p99 {:.0} us errors {:.0}; receiving {sent:.0} from {} threads",
        get(&send, "tps"),
        get(&send, "p50us"),
        get(&send, "p99us"),
        get(&send, "errors"),
        o.recv_threads
    );
    let recv = driver.run(
        "RECV ",
        &[
            "recv".into(),
            s.endpoint.clone(),
            TOPIC.into(),
            GROUP.into(),
            format!("{sent:.0}"),
            o.recv_threads.to_string(),
            RECV_SECS.to_string(),
        ],
    )?;
    let c2 = cpu_ms(s.pid);
    let rss = rss_kib(s.pid).unwrap_or(0);
    let acked = get(&recv, "count");
    let sample = Sample {
        server: name.to_owned(),
        round,
        send_tps: get(&send, "tps"),
        send_p50_us: get(&send, "p50us"),
        send_p99_us: get(&send, "p99us"),
        send_errors: get(&send, "errors"),
        recv_tps: get(&recv, "tps"),
        recv_dup: get(&recv, "dup"),
        // The window is the whole driver run: the warm-up's sends count.
        send_cpu_ms: (c1 - c0) / (sent + get(&send, "warmup")).max(1.0) * 1000.0,
        recv_cpu_ms: (c2 - c1) / acked.max(1.0) * 1000.0,
        client_send_cpu_ms: get(&send, "cpums") / sent.max(1.0) * 1000.0,
        client_recv_cpu_ms: get(&recv, "cpums") / acked.max(1.0) * 1000.0,
        rss_kib: rss,
    };
    eprintln!(
        "[bench] round {round}: {name}: recv+ack {:.0}/s dup {:.0}; broker RSS {}",
        sample.recv_tps,
        sample.recv_dup,
        mib(rss)
    );
    Ok(sample)
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panic".into())
        .lines()
        .take(20)
        .collect::<Vec<_>>()
        .join("\n")
}

fn report(o: &Opts, samples: &[Sample], java_name: &str) {
    println!(
        "\n| round | server | send TPS | send p50 | send p99 | send errors | recv+ack TPS | recv dup | broker CPU per 1k sent / acked | client CPU per 1k sent / acked | broker RSS after |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in samples {
        println!(
            "| {} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.0} | {:.0} | {:.0} | {:.0} / {:.0} ms | {:.0} / {:.0} ms | {} |",
            s.round,
            s.server,
            s.send_tps,
            s.send_p50_us / 1000.0,
            s.send_p99_us / 1000.0,
            s.send_errors,
            s.recv_tps,
            s.recv_dup,
            s.send_cpu_ms,
            s.recv_cpu_ms,
            s.client_send_cpu_ms,
            s.client_recv_cpu_ms,
            mib(s.rss_kib)
        );
    }
    let of = |name: &str, f: fn(&Sample) -> f64| -> Vec<f64> {
        samples.iter().filter(|s| s.server == name).map(f).collect()
    };
    let ours_n = of("ours", |_| 0.0).len();
    let java_n = of(java_name, |_| 0.0).len();
    if ours_n == 0 || java_n == 0 {
        println!("\n(only one server measured: no ratios)");
        return;
    }
    // Pair the rounds both servers finished, in order, for per-round ratios.
    let rounds: Vec<usize> = samples
        .iter()
        .filter(|s| s.server == "ours")
        .map(|s| s.round)
        .filter(|r| {
            samples
                .iter()
                .any(|s| s.server == java_name && s.round == *r)
        })
        .collect();
    let paired = |name: &str, f: fn(&Sample) -> f64| -> Vec<f64> {
        rounds
            .iter()
            .filter_map(|r| samples.iter().find(|s| s.server == name && s.round == *r))
            .map(f)
            .collect()
    };
    println!(
        "\n| median of {} rounds | ours | {java_name} | ours / Java (per round) | goal |",
        o.rounds
    );
    println!("|---|---:|---:|---:|---|");
    // (label, value, unit, decimals, goal: (higher is better, ratio)).
    type Metric = (
        &'static str,
        fn(&Sample) -> f64,
        &'static str,
        usize,
        Option<(bool, f64)>,
    );
    let metrics: [Metric; 8] = [
        ("send TPS", |s| s.send_tps, "", 0, Some((true, 2.0))),
        ("send p50", |s| s.send_p50_us / 1000.0, " ms", 2, None),
        (
            "send p99",
            |s| s.send_p99_us / 1000.0,
            " ms",
            2,
            Some((false, 0.5)),
        ),
        ("recv+ack TPS", |s| s.recv_tps, "", 0, Some((true, 2.0))),
        ("broker CPU per 1k sent", |s| s.send_cpu_ms, " ms", 0, None),
        ("broker CPU per 1k acked", |s| s.recv_cpu_ms, " ms", 0, None),
        (
            "client CPU per 1k sent",
            |s| s.client_send_cpu_ms,
            " ms",
            0,
            None,
        ),
        (
            "broker RSS after",
            |s| s.rss_kib as f64 / 1024.0,
            " MiB",
            0,
            None,
        ),
    ];
    for (label, f, unit, prec, target) in metrics {
        let (a, b) = (median(of("ours", f)), median(of(java_name, f)));
        let r = ratio(a, b);
        let verdict = match target {
            Some((true, x)) => format!("{} (>= {x}x)", goal(r >= x)),
            Some((false, x)) => format!("{} (<= {x}x)", goal(r <= x)),
            None => String::new(),
        };
        println!(
            "| {label} | {a:.prec$}{unit} | {b:.prec$}{unit} | {r:.2} ({}) | {verdict} |",
            round_ratios(&paired("ours", f), &paired(java_name, f))
        );
    }
}

fn main() {
    cleanup_on_signals();
    let outcome = (|| -> Res<()> {
        let o = opts()?;
        let root = compat_tests::workspace_root();
        let (work, _guard) = work_dir(&root, None, "bench-grpc-")?;
        // The harness puts every server's folder in a temporary folder of
        // its own; under the work folder, they go with it also when a
        // signal ends the run (which skips the harness's clean-up).
        let tmp = work.join("tmp");
        mkdir(&tmp)?;
        std::env::set_var("TMPDIR", &tmp);
        let _children = stop_children_on_signal();
        let driver = Driver::prepare(&work)?;
        let java_name = format!("Java {}", o.java_version);
        let load_before = loadavg();
        let started = Instant::now();
        println!(
            "gRPC benchmark {}: {} sends of {BODY_BYTES} B from {} threads, recv+ack from {} threads, {} rounds; \
             client rocketmq-client-java {CLIENT}; {} x {}; load average before {load_before}",
            utc_minute(),
            o.count,
            o.threads,
            o.recv_threads,
            o.rounds,
            nproc(),
            cpu_model()
        );
        let mut samples = Vec::new();
        let mut failures = Vec::new();
        for round in 1..=o.rounds {
            if o.only.as_deref() != Some("java") {
                match one_side("ours", round, &o, &driver, our_server) {
                    Ok(s) => samples.push(s),
                    Err(e) => failures.push(format!("round {round}: {e}")),
                }
            }
            if o.only.as_deref() != Some("ours") {
                let v = o.java_version.clone();
                match one_side(&java_name, round, &o, &driver, move || java_server(&v)) {
                    Ok(s) => samples.push(s),
                    Err(e) => failures.push(format!("round {round}: {e}")),
                }
            }
        }
        report(&o, &samples, &java_name);
        println!(
            "\nload average after {}; {:.0} s in all",
            loadavg(),
            started.elapsed().as_secs_f64()
        );
        for f in &failures {
            println!("\nFAILED {f}");
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(format!("{} run(s) failed", failures.len()))
        }
    })();
    exit_with("bench_grpc", outcome);
}
