//! `bench_broker`: the official Java broker (`BrokerStartup` 5.3.3 +
//! `NamesrvStartup`, started by `compat-tests/java/reference-cluster.sh`:
//! -Xms1g -Xmx1g, ASYNC_FLUSH, 64 MiB commit-log segments,
//! brokerIP1=127.0.0.1), our release `mqnamesrv` + `mqbroker` with the same
//! settings, and the echo ceiling (`remoting/examples/echo_broker.rs` behind
//! our `mqnamesrv`: answers every send with a canned SUCCESS, stores
//! nothing), in turn, on free loopback ports. Same load generator for all
//! three: `compat.BenchProducer` / `compat.BenchConsumer` on the official
//! Java client (compat-tests/java); their `RESULT ` lines are passed on to
//! stderr as they come. Prints one table with ratios; results and the
//! command go to docs/BENCHMARKS.md.
//!
//! Usage: bench_broker [--duration SECS] [--warmup SECS] [--threads 4,16,64]
//!        [--size BYTES] [--consume N] [--consume-mode push|push-batch|pull|pull-direct]
//!        [--settle SECS] [--only java,ours,echo] [--java-version V] [--keep DIR]
//!    or: bench_broker --dledger [--duration SECS] [--warmup SECS] [--threads 8,64]
//!        [--size BYTES] [--only java,ours] [--keep DIR]
//!
//! `--dledger`: a 3-broker DLedger group of ours vs 3 Java 5.3.3 brokers in
//! DLedger mode (enableDLegerCommitLog, -Xms512m -Xmx512m, 64 MiB segments,
//! brokerIP1=127.0.0.1), each group behind our `mqnamesrv`: send TPS and
//! latency with `compat.BenchProducer` (default threads 8,64), then the
//! failover time with `compat.BenchFailover` (SIGKILL the master -> first
//! acknowledged send, client route poll 100 ms).
//!
//! Defaults: 20 s per thread count after a 10 s warm-up (at the largest
//! count), 1 KiB bodies, 200000 messages for the consume test (0: none; push
//! consumer; see `compat.BenchConsumer` for the modes), 3 s settle before
//! idle RSS, Java 5.3.3. The servers are `$BENCH_BINS/{mqbroker, mqnamesrv,
//! examples/echo_broker}` when set (A/B runs of two builds), else this
//! tree's `target/release` (`$CARGO_TARGET_DIR` honoured);
//! `scripts/bench-broker.sh` builds them first (not with `BENCH_BINS`).
//! The work folder (a temporary one unless `--keep DIR`) holds the logs, the
//! drivers' outputs and `results.txt`.
//!
//! Every process started is stopped when the run ends, fails, panics or gets
//! SIGINT/SIGTERM/SIGHUP; every wait has a bound.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use compat_tests::bench::{
    awk_str, bench_bins, broker_conf_base, cleanup_on_signals, cpu_model, format_g,
    free_port_block, loadavg, mkdir, nproc, on_path, pid_alive, reference_broker_libs,
    spawn_java_broker, start_our_namesrv, status_kib, utc_minute, wait_listen, work_dir,
    write_file, Drivers, Kid, Ns, OnExit, Res, Results, STOP_GRACE,
};
use compat_tests::workspace_root;

/// The drivers' own timeouts are inside; these bound them from outside.
const DRIVER_SLACK: Duration = Duration::from_secs(300);
const FILL_TIMEOUT: Duration = Duration::from_secs(1800);
const CONSUME_TIMEOUT_SECS: u64 = 300;
const FAILOVER_TIMEOUT_SECS: u64 = 120;

// ---------------------------------------------------------------- arguments

#[derive(Debug, Clone)]
struct Opts {
    /// As given (passed on to the drivers and printed).
    duration: u64,
    warmup: u64,
    threads: String,
    thread_counts: Vec<u64>,
    size: u64,
    consume: u64,
    consume_mode: String,
    settle: Duration,
    only: Vec<String>,
    ver: String,
    keep: Option<PathBuf>,
    dledger: bool,
}

const USAGE: &str = "usage: bench_broker [--duration SECS] [--warmup SECS] [--threads 4,16,64]
                    [--size BYTES] [--consume N] [--consume-mode push|push-batch|pull|pull-direct] [--settle SECS]
                    [--only java,ours,echo] [--java-version V] [--keep DIR]
       bench_broker --dledger [--duration SECS] [--warmup SECS] [--threads 8,64]
                    [--size BYTES] [--only java,ours] [--keep DIR]";

fn usage(why: &str) -> ! {
    eprintln!("bench_broker: {why}\n{USAGE}");
    std::process::exit(2)
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Res<Opts> {
    let mut o = Opts {
        duration: 20,
        warmup: 10,
        threads: "4,16,64".into(),
        thread_counts: Vec::new(),
        size: 1024,
        consume: 200_000,
        consume_mode: "push".into(),
        settle: Duration::from_secs(3),
        only: Vec::new(),
        ver: "5.3.3".into(),
        keep: None,
        dledger: false,
    };
    let (mut threads_set, mut only) = (false, None);
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--dledger" {
            o.dledger = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err("options".into());
        }
        let known = [
            "--duration",
            "--warmup",
            "--threads",
            "--size",
            "--consume",
            "--consume-mode",
            "--settle",
            "--only",
            "--java-version",
            "--keep",
        ];
        if !known.contains(&flag.as_str()) {
            return Err(format!("unknown option {flag}"));
        }
        let v = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: bad value '{v}'");
        let num = || v.parse::<u64>().map_err(|_| bad());
        match flag.as_str() {
            "--duration" => o.duration = num()?,
            "--warmup" => o.warmup = num()?,
            "--size" => o.size = num()?,
            "--consume" => o.consume = num()?,
            "--threads" => {
                o.threads = v.clone();
                threads_set = true;
            }
            "--consume-mode" => {
                if !["push", "push-batch", "pull", "pull-direct"].contains(&v.as_str()) {
                    return Err(bad());
                }
                o.consume_mode = v;
            }
            "--settle" => {
                o.settle = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(bad)?
            }
            "--only" => only = Some(v),
            "--java-version" => o.ver = v,
            _ => o.keep = Some(PathBuf::from(v)),
        }
    }
    if o.dledger {
        if !threads_set {
            o.threads = "8,64".into();
        }
        o.ver = "5.3.3".into();
    }
    let only = only.unwrap_or_else(|| {
        if o.dledger {
            "java,ours"
        } else {
            "java,ours,echo"
        }
        .to_owned()
    });
    let allowed: &[&str] = if o.dledger {
        &["java", "ours"]
    } else {
        &["java", "ours", "echo"]
    };
    for s in only.split(',').filter(|s| !s.is_empty()) {
        if !allowed.contains(&s) {
            return Err(format!("--only: unknown server '{s}'"));
        }
        o.only.push(s.to_owned());
    }
    o.thread_counts = o
        .threads
        .split(',')
        .map(|t| t.parse::<u64>().ok().filter(|n| *n > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("--threads: bad value '{}'", o.threads))?;
    Ok(o)
}

// ------------------------------------------------------------------ helpers

fn log(msg: &str) {
    eprintln!("[bench] {msg}");
}

fn ms_since(t0: Instant) -> u128 {
    t0.elapsed().as_millis()
}

/// A port p with p-2 (VIP channel), p and p+1 (HA) free.
fn free_block() -> Res<u16> {
    free_port_block(15000, 30000).ok_or_else(|| "no free port block".to_owned())
}

fn kib(pid: u32, key: &str) -> String {
    status_kib(pid, key).unwrap_or(0).to_string()
}

fn print_file(path: &Path) {
    eprint!("{}", std::fs::read_to_string(path).unwrap_or_default());
}

// -------------------------------------------------------------------- bench

struct Bench {
    o: Opts,
    root: PathBuf,
    bins: PathBuf,
    work: PathBuf,
    /// The drivers' snapshot and what runs them.
    drv: Drivers,
    /// The official broker's jars (`--dledger` with Java).
    reflib: PathBuf,
    results: Results,
}

impl Bench {
    fn bin(&self, name: &str) -> PathBuf {
        self.bins.join(name)
    }

    /// Measures one running broker: idle RSS, send phases, consume, peak RSS.
    fn measure(&mut self, s: &str, pid: u32, ns: &str, do_consume: bool) -> Res<()> {
        let o = self.o.clone();
        std::thread::sleep(o.settle);
        let idle = kib(pid, "VmRSS");
        self.results.put(s, "idle_rss_kib", &idle);
        log(&format!(
            "{s}: pid {pid}, idle RSS {idle} KiB; send load {}s x threads {} (warm-up {}s)",
            o.duration, o.threads, o.warmup
        ));
        let d = self.work.join(s);
        let home = d.join("client");
        let send_timeout =
            Duration::from_secs(o.warmup + o.duration * o.thread_counts.len() as u64)
                + DRIVER_SLACK;
        let args = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (pid_s, warmup, duration, size, count) = (
            pid.to_string(),
            o.warmup.to_string(),
            o.duration.to_string(),
            o.size.to_string(),
            o.consume.to_string(),
        );
        let out = self.drv.driver_ok(
            &home,
            "compat.BenchProducer",
            &args(&[
                "send",
                ns,
                "BenchTopic",
                &pid_s,
                &warmup,
                &duration,
                &o.threads,
                &size,
            ]),
            &d.join("send.out"),
            send_timeout,
        )?;
        self.results.record(s, &out);
        if do_consume && o.consume > 0 {
            log(&format!(
                "{s}: filling BenchConsume with {} messages",
                o.consume
            ));
            self.drv.driver_ok(
                &home,
                "compat.BenchProducer",
                &args(&["fill", ns, "BenchConsume", &count, &size]),
                &d.join("fill.out"),
                FILL_TIMEOUT,
            )?;
            log(&format!("{s}: consuming {} messages", o.consume));
            let out = self.drv.driver_ok(
                &home,
                "compat.BenchConsumer",
                &args(&[
                    ns,
                    "BenchConsume",
                    &count,
                    &pid_s,
                    &CONSUME_TIMEOUT_SECS.to_string(),
                    &o.consume_mode,
                ]),
                &d.join("consume.out"),
                // A warm-up pass and the measured one, each with that timeout.
                Duration::from_secs(2 * CONSUME_TIMEOUT_SECS) + DRIVER_SLACK,
            )?;
            self.results.record(s, &out);
        }
        self.results.put(s, "peak_rss_kib", &kib(pid, "VmHWM"));
        self.results.put(s, "end_anon_kib", &kib(pid, "RssAnon"));
        self.results.put(s, "end_file_kib", &kib(pid, "RssFile"));
        Ok(())
    }

    /// `reference-cluster.sh stop <d>`, bounded; its stdout dropped.
    fn reference_stop(root: &Path, d: &Path, quiet: bool) {
        let mut c = Command::new("bash");
        c.arg(root.join("compat-tests/java/reference-cluster.sh"))
            .arg("stop")
            .arg(d)
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if quiet {
            c.stderr(Stdio::null());
        }
        let _ = c.spawn().map(|mut ch| {
            // Its own bound: SIGKILL 30 s after SIGTERM, per process.
            let deadline = Instant::now() + Duration::from_secs(90);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = ch.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = ch.kill();
            let _ = ch.wait();
        });
    }

    // ---------------------------------------------------------- servers

    fn run_java(&mut self) -> Res<()> {
        let d = self.work.join("java");
        let (root, dd) = (self.root.clone(), d.clone());
        let _stop = OnExit::new(move || Self::reference_stop(&root, &dd, true));
        let bport = free_block()?;
        let nsport = free_block()?;
        mkdir(&d)?;
        let ver = self.o.ver.clone();
        log(&format!(
            "java: starting NamesrvStartup + BrokerStartup {ver} (reference-cluster.sh)"
        ));
        let mut c = Command::new("bash");
        c.arg(self.root.join("compat-tests/java/reference-cluster.sh"))
            .arg("start")
            .arg(&d)
            .arg(&ver)
            .current_dir(&self.root)
            .env("REF_NS_PORT", nsport.to_string())
            .env("REF_BROKER_PORT", bport.to_string());
        let start_log = d.join("start.log");
        let starter = Kid::spawn_logged("reference-cluster.sh", c, &start_log, STOP_GRACE)?;
        // The broker is spawned once the name server booted; broker.pid is
        // written right after.
        let pid_file = d.join("broker.pid");
        let read_pid = || {
            std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        let bpid = loop {
            if let Some(p) = read_pid() {
                break p;
            }
            if !starter.is_running() {
                if let Some(p) = read_pid() {
                    break p;
                }
                print_file(&start_log);
                return Err("reference-cluster.sh start failed".into());
            }
            if Instant::now() >= deadline {
                return Err("Java broker not spawned".into());
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let t0 = Instant::now();
        wait_listen(bport, || pid_alive(bpid), "Java broker")?;
        let ms = ms_since(t0);
        // It returns once the broker logged "boot success" (90 s at most).
        match starter.wait_timeout(Duration::from_secs(300)) {
            Some(s) if s.success() => {}
            _ => {
                print_file(&start_log);
                return Err("reference-cluster.sh start failed".into());
            }
        }
        self.results.put("java", "start_ms", &ms.to_string());
        log(&format!("java: broker pid {bpid} listening after {ms} ms"));
        let ns = format!("127.0.0.1:{nsport}");
        self.drv.update_topic(&ns, "RefCluster", "BenchTopic")?;
        self.drv.update_topic(&ns, "RefCluster", "BenchConsume")?;
        self.measure("java", bpid, &ns, true)?;
        Self::reference_stop(&self.root, &d, false);
        Ok(())
    }

    fn run_ours(&mut self) -> Res<()> {
        let d = self.work.join("ours");
        mkdir(&d)?;
        let ns = start_our_namesrv(&self.bin("mqnamesrv"), &d.join("ns"))?;
        let port = free_block()?;
        let conf = d.join("broker.conf");
        write_file(
            &conf,
            &format!(
                "brokerClusterName=BenchCluster\nbrokerName=bench-broker-a\nbrokerId=0\n{}\
                 enablePropertyFilter=true\n",
                broker_conf_base(&ns.addr, port, &d.join("store"))
            ),
        )?;
        log("ours: starting mqnamesrv + mqbroker");
        let t0 = Instant::now();
        let mut c = Command::new(self.bin("mqbroker"));
        c.arg("-c").arg(&conf).env("HOME", &d);
        let broker = Kid::spawn_logged("mqbroker", c, &d.join("broker.log"), STOP_GRACE)?;
        wait_listen(port, || broker.is_running(), "mqbroker")?;
        let ms = ms_since(t0);
        self.results.put("ours", "start_ms", &ms.to_string());
        log(&format!(
            "ours: broker pid {} listening after {ms} ms",
            broker.pid()
        ));
        self.drv
            .update_topic(&ns.addr, "BenchCluster", "BenchTopic")?;
        self.drv
            .update_topic(&ns.addr, "BenchCluster", "BenchConsume")?;
        self.measure("ours", broker.pid(), &ns.addr, true)?;
        broker.stop();
        ns.kid.stop();
        Ok(())
    }

    fn run_echo(&mut self) -> Res<()> {
        let d = self.work.join("echo");
        mkdir(&d)?;
        let ns = start_our_namesrv(&self.bin("mqnamesrv"), &d.join("ns"))?;
        let port = free_block()?;
        log("echo: starting echo_broker");
        let t0 = Instant::now();
        let mut c = Command::new(self.bin("examples/echo_broker"));
        c.args(["--namesrv", &ns.addr, "--port", &port.to_string()])
            .args(["--topics", "BenchTopic,BenchConsume", "--queues", "8"]);
        let echo = Kid::spawn_logged("echo_broker", c, &d.join("echo.log"), STOP_GRACE)?;
        wait_listen(port, || echo.is_running(), "echo_broker")?;
        let ms = ms_since(t0);
        self.results.put("echo", "start_ms", &ms.to_string());
        self.measure("echo", echo.pid(), &ns.addr, false)?;
        echo.stop();
        ns.kid.stop();
        Ok(())
    }

    // ------------------------------------------------------ --dledger mode

    /// Starts a 3-member DLedger group (`kind` java|ours) behind our name
    /// server; the master's pid and `addr=pid,...` of all members.
    fn start_group(&self, kind: &str) -> Res<Group> {
        let d = self.work.join(format!("dl-{kind}"));
        mkdir(&d)?;
        let ns = start_our_namesrv(&self.bin("mqnamesrv"), &d.join("ns"))?;
        let mut dports = Vec::new();
        let mut bports = Vec::new();
        for _ in 0..3 {
            dports.push(free_block()?);
            bports.push(free_block()?);
        }
        let peers = dports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("n{i}-127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(";");
        let mut members: Vec<Kid> = Vec::new();
        let mut addrs = Vec::new();
        for (i, bport) in bports.iter().enumerate() {
            let n = d.join(format!("n{i}"));
            mkdir(&n)?;
            let conf = n.join("broker.conf");
            write_file(
                &conf,
                &format!(
                    "brokerClusterName=DLedgerBench\nbrokerName=bench-dl\nbrokerId=0\n{}\
                     enableDLegerCommitLog=true\ndLegerGroup=bench-dl\ndLegerPeers={peers}\n\
                     dLegerSelfId=n{i}\n",
                    broker_conf_base(&ns.addr, *bport, &n.join("store"))
                ),
            )?;
            let kid = if kind == "java" {
                spawn_java_broker(
                    &self.root,
                    &self.reflib,
                    &n,
                    &conf,
                    &["-Xms512m", "-Xmx512m", "-XX:MaxDirectMemorySize=512m"],
                )?
            } else {
                let mut c = Command::new(self.bin("mqbroker"));
                c.arg("-c").arg(&conf).env("HOME", &n);
                Kid::spawn_logged("mqbroker", c, &n.join("broker.log"), STOP_GRACE)?
            };
            addrs.push(format!("127.0.0.1:{bport}={}", kid.pid()));
            members.push(kid);
        }
        for (i, (port, kid)) in bports.iter().zip(&members).enumerate() {
            wait_listen(*port, || kid.is_running(), &format!("{kind} broker n{i}"))?;
        }
        // A master elected and registered (broker id 0), then the topic on
        // every member.
        let deadline = Instant::now() + Duration::from_secs(180);
        let master = loop {
            if Instant::now() >= deadline {
                return Err(format!("no {kind} DLedger master after 180 s"));
            }
            std::thread::sleep(Duration::from_secs(1));
            if let Some(m) = self.drv.master_of(&ns.addr, "DLedgerBench") {
                break m;
            }
        };
        for port in &bports {
            let addr = format!("127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(60);
            while !self.drv.update_topic_b(&ns.addr, &addr, "BenchTopic") {
                if Instant::now() >= deadline {
                    return Err(format!("updateTopic on {kind} {addr} failed"));
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        let master_pid = addrs
            .iter()
            .find_map(|a| a.strip_prefix(&format!("{master}=")))
            .unwrap_or("0")
            .to_owned();
        log(&format!(
            "{kind}: DLedger group up, master {master} (pid {master_pid})"
        ));
        Ok(Group {
            ns,
            members,
            addrs: addrs.join(","),
            master_pid,
        })
    }

    fn run_dledger(&mut self, kind: &str) -> Res<()> {
        let group = match self.start_group(kind) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("bench_broker: {e}");
                self.results.put(kind, "failed", "1");
                return Ok(());
            }
        };
        let o = self.o.clone();
        let d = self.work.join(format!("dl-{kind}"));
        let home = d.join("client");
        let args = [
            "send".to_owned(),
            group.ns.addr.clone(),
            "BenchTopic".into(),
            group.master_pid.clone(),
            o.warmup.to_string(),
            o.duration.to_string(),
            o.threads.clone(),
            o.size.to_string(),
        ];
        let send_timeout =
            Duration::from_secs(o.warmup + o.duration * o.thread_counts.len() as u64)
                + DRIVER_SLACK;
        let (_, out) = self.drv.driver(
            &home,
            "compat.BenchProducer",
            &args,
            &d.join("send.out"),
            send_timeout,
        )?;
        self.results.record(kind, &out);
        let args = [
            group.ns.addr.clone(),
            "BenchTopic".into(),
            "bench-dl".into(),
            group.addrs.clone(),
            FAILOVER_TIMEOUT_SECS.to_string(),
        ];
        let (_, out) = self.drv.driver(
            &home,
            "compat.BenchFailover",
            &args,
            &d.join("failover.out"),
            Duration::from_secs(FAILOVER_TIMEOUT_SECS) + DRIVER_SLACK,
        )?;
        for line in out.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first() == Some(&"RESULT") && f.get(1) == Some(&"failover") {
                let v = f.get(2).and_then(|kv| kv.split('=').nth(1)).unwrap_or("");
                self.results.put(kind, "failover_ms", v);
            }
        }
        for m in &group.members {
            m.stop();
        }
        group.ns.kid.stop();
        Ok(())
    }
}

struct Group {
    ns: Ns,
    members: Vec<Kid>,
    addrs: String,
    master_pid: String,
}

// ------------------------------------------------------------------- report

/// The report's first lines: the machine, when the run started, the load.
fn report_head(started_at: &str, before: &str, after: &str) {
    println!();
    println!(
        "machine: {} CPUs, {}; load generator on the same machine",
        nproc(),
        cpu_model()
    );
    println!("run: {started_at}; load average before: {before}, after: {after}");
}

fn ratio(a: f64, b: f64) -> String {
    if a <= 0.0 || b <= 0.0 {
        "n/a".into()
    } else {
        format_g(a / b, 3)
    }
}

fn cell(r: &Results, s: &str, k: &str, scale: f64, prec: usize) -> String {
    let x = r.val(s, k);
    if x < 0.0 {
        "n/a".into()
    } else {
        format!("{:.*}", prec, x / scale)
    }
}

fn report_broker(o: &Opts, r: &Results) {
    let row = |label: &str, k: &str, scale: f64, prec: usize| {
        println!(
            "| {label:<34} | {:>12} | {:>12} | {:>12} | {:>9} | {:>9} |",
            cell(r, "java", k, scale, prec),
            cell(r, "ours", k, scale, prec),
            cell(r, "echo", k, scale, prec),
            ratio(r.val("ours", k), r.val("java", k)),
            ratio(r.val("ours", k), r.val("echo", k)),
        )
    };
    let goal = |text: &str, ok: bool, got: &str| {
        println!(
            "  {text:<44} {got:<10} {}",
            if ok { "MET" } else { "MISSED" }
        )
    };
    println!(
        "| {:<34} | {:>12} | {:>12} | {:>12} | {:>9} | {:>9} |",
        "", "Java 5.3.3", "ours", "echo", "ours/Java", "ours/echo"
    );
    println!(
        "|{}|{}|{}|{}|{}|{}|",
        "-".repeat(36),
        "-".repeat(14),
        "-".repeat(14),
        "-".repeat(14),
        "-".repeat(11),
        "-".repeat(11)
    );
    row("start -> accepting connections ms", "start_ms", 1.0, 0);
    row("idle RSS MiB", "idle_rss_kib", 1024.0, 1);
    row("peak RSS (VmHWM) MiB", "peak_rss_kib", 1024.0, 1);
    row("  at end: RssAnon MiB", "end_anon_kib", 1024.0, 1);
    row("  at end: RssFile (mapped) MiB", "end_file_kib", 1024.0, 1);
    for t in o.threads.split(',') {
        row(
            &format!("send TPS, {t} threads"),
            &format!("send{t}_tps"),
            1.0,
            0,
        );
        row("  p50 latency us", &format!("send{t}_p50_us"), 1.0, 0);
        row("  p99 latency us", &format!("send{t}_p99_us"), 1.0, 0);
        row("  p99.9 latency us", &format!("send{t}_p999_us"), 1.0, 0);
        row(
            "  server CPU us/msg",
            &format!("send{t}_cpu_us_per_msg"),
            1.0,
            2,
        );
        row(
            "  generator CPU us/msg",
            &format!("send{t}_gen_cpu_us_per_msg"),
            1.0,
            2,
        );
        row("  errors", &format!("send{t}_errors"), 1.0, 0);
    }
    row("consume msg/s (first to last msg)", "consume_mps", 1.0, 0);
    row(
        "  start() -> first message ms",
        "consume_first_msg_after_ms",
        1.0,
        0,
    );
    row("  server CPU us/msg", "consume_cpu_us_per_msg", 1.0, 2);
    row(
        "  consumer CPU us/msg",
        "consume_gen_cpu_us_per_msg",
        1.0,
        2,
    );
    println!();
    println!(
        "ratios are ours / other: above 1 is better for TPS, below 1 for latency, RSS, CPU and start-up"
    );
    println!();
    println!("goals (issue 9):");
    let v = |s: &str, k: &str| r.val(s, k);
    for t in o.threads.split(',') {
        let k = format!("send{t}_tps");
        let (ours, java, echo) = (v("ours", &k), v("java", &k), v("echo", &k));
        if ours > 0.0 && java > 0.0 {
            goal(
                &format!("send TPS >= 2x Java, {t} threads"),
                ours >= 2.0 * java,
                &format!("{}x", ratio(ours, java)),
            );
        }
        if ours > 0.0 && echo > 0.0 {
            goal(
                &format!("send TPS >= 70% of echo, {t} threads"),
                ours >= 0.7 * echo,
                &format!("{:.0}%", 100.0 * ours / echo),
            );
        }
        let k = format!("send{t}_p99_us");
        let (ours, java) = (v("ours", &k), v("java", &k));
        if ours > 0.0 && java > 0.0 {
            goal(
                &format!("p99 <= 0.5x Java, {t} threads"),
                ours <= 0.5 * java,
                &format!("{}x", ratio(ours, java)),
            );
        }
    }
    let (ours, java) = (v("ours", "consume_mps"), v("java", "consume_mps"));
    if ours > 0.0 && java > 0.0 {
        goal(
            "consume TPS >= 2x Java",
            ours >= 2.0 * java,
            &format!("{}x", ratio(ours, java)),
        );
    }
    let (ours, java) = (v("ours", "idle_rss_kib"), v("java", "idle_rss_kib"));
    if ours > 0.0 && java > 0.0 {
        goal(
            "idle RSS <= 1/20 of Java",
            20.0 * ours <= java,
            &format!("1/{:.0}", java / ours),
        );
    }
    let (ours, java) = (v("ours", "start_ms"), v("java", "start_ms"));
    if ours >= 0.0 && java > 0.0 {
        let got = if ours > 0.0 {
            format!("{:.0}", java / ours)
        } else {
            "inf".into()
        };
        goal(
            "start-up <= 1/20 of Java",
            20.0 * ours <= java,
            &format!("1/{got}"),
        );
    }
}

fn report_dledger(o: &Opts, r: &Results) {
    let row = |label: &str, k: &str, prec: usize| {
        println!(
            "| {label:<30} | {:>12} | {:>12} | {:>9} |",
            cell(r, "java", k, 1.0, prec),
            cell(r, "ours", k, 1.0, prec),
            ratio(r.val("ours", k), r.val("java", k)),
        )
    };
    let goal = |text: &str, ok: bool, got: &str| {
        println!(
            "  {text:<40} {got:<10} {}",
            if ok { "MET" } else { "MISSED" }
        )
    };
    if r.val("java", "failed") > 0.0 {
        println!("Java DLedger group did not start (see the log above)");
    }
    if r.val("ours", "failed") > 0.0 {
        println!("our DLedger group did not start (see the log above)");
    }
    println!(
        "| {:<30} | {:>12} | {:>12} | {:>9} |",
        "3-member DLedger group", "Java 5.3.3", "ours", "ours/Java"
    );
    println!(
        "|{}|{}|{}|{}|",
        "-".repeat(32),
        "-".repeat(14),
        "-".repeat(14),
        "-".repeat(11)
    );
    for t in o.threads.split(',') {
        row(
            &format!("send TPS, {t} threads"),
            &format!("send{t}_tps"),
            0,
        );
        row("  p50 latency us", &format!("send{t}_p50_us"), 0);
        row("  p99 latency us", &format!("send{t}_p99_us"), 0);
        row("  master CPU us/msg", &format!("send{t}_cpu_us_per_msg"), 2);
        row("  errors", &format!("send{t}_errors"), 0);
    }
    row("failover ms (SIGKILL -> ack)", "failover_ms", 0);
    println!();
    println!("goals (issue 8):");
    for t in o.threads.split(',') {
        let k = format!("send{t}_tps");
        let (ours, java) = (r.val("ours", &k), r.val("java", &k));
        if ours > 0.0 && java > 0.0 {
            goal(
                &format!("send TPS >= 3x Java, {t} threads"),
                ours >= 3.0 * java,
                &format!("{}x", ratio(ours, java)),
            );
        }
    }
    let f = r.val("ours", "failover_ms");
    if f >= 0.0 {
        goal(
            "failover <= 1.5 s",
            f <= 1500.0,
            &format!("{} ms", awk_str(f)),
        );
    }
}

// --------------------------------------------------------------------- main

fn run(o: Opts) -> Res<()> {
    for tool in ["java", "mvn"] {
        if !on_path(tool) {
            return Err(format!("'{tool}' is required but not installed"));
        }
    }
    let root = workspace_root();
    let bins = bench_bins(&root);
    let mut need = Vec::new();
    for s in &o.only {
        match s.as_str() {
            "ours" => need.extend(["mqnamesrv", "mqbroker"]),
            "echo" => need.extend(["mqnamesrv", "examples/echo_broker"]),
            _ if o.dledger => need.push("mqnamesrv"),
            _ => {}
        }
    }
    for b in need {
        if !bins.join(b).is_file() {
            return Err(format!(
                "{} missing (scripts/bench-broker.sh builds it)",
                bins.join(b).display()
            ));
        }
    }
    let (work, _remove_work) = work_dir(&root, o.keep.as_deref(), "rmq-bench-broker-")?;
    let drv = Drivers::prepare(&root, &o.ver, &work)?;
    let results = Results::create(work.join("results.txt"))?;
    let mut b = Bench {
        o: o.clone(),
        root,
        bins,
        reflib: work.join("reflib"),
        work,
        drv,
        results,
    };
    if o.dledger {
        if o.only.iter().any(|s| s == "java") {
            b.reflib = reference_broker_libs(&b.root, &o.ver, &b.work)?;
        }
        let before = loadavg();
        let started_at = utc_minute();
        for s in &o.only {
            b.run_dledger(s)?;
        }
        let after = loadavg();
        report_head(&started_at, &before, &after);
        println!(
            "DLedger groups of 3 on one machine; sync send, {}-byte bodies, threads {}, {}s each after {}s warm-up",
            o.size, o.threads, o.duration, o.warmup
        );
        println!();
        report_dledger(&o, &b.results);
        return Ok(());
    }
    let before = loadavg();
    let started_at = utc_minute();
    for s in &o.only {
        match s.as_str() {
            "java" => b.run_java()?,
            "ours" => b.run_ours()?,
            _ => b.run_echo()?,
        }
    }
    let after = loadavg();
    report_head(&started_at, &before, &after);
    println!(
        "load: sync send, {}-byte bodies, threads {}, {}s each after {}s warm-up; consume: {} messages ({} consumer)",
        o.size, o.threads, o.duration, o.warmup, o.consume, o.consume_mode
    );
    println!();
    report_broker(&o, &b.results);
    Ok(())
}

fn main() {
    cleanup_on_signals();
    let o = parse_args(std::env::args().skip(1)).unwrap_or_else(|e| usage(&e));
    // Every process and the work folder are cleaned up inside `run` (its
    // guards drop before the exit below, which waits for a signal's
    // clean-up if one is under way).
    let code = match run(o) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bench_broker: {e}");
            1
        }
    };
    compat_tests::bench::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;
    use compat_tests::bench::awk_num;

    fn parse(a: &[&str]) -> Res<Opts> {
        parse_args(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_dledger_defaults() {
        let o = parse(&[]).expect("defaults");
        assert_eq!(
            (o.duration, o.warmup, o.size, o.consume),
            (20, 10, 1024, 200_000)
        );
        assert_eq!((o.threads.as_str(), o.ver.as_str()), ("4,16,64", "5.3.3"));
        assert_eq!(o.only, ["java", "ours", "echo"]);
        let o = parse(&["--java-version", "4.9.8", "--dledger"]).expect("dledger");
        assert_eq!((o.threads.as_str(), o.ver.as_str()), ("8,64", "5.3.3"));
        assert_eq!(o.only, ["java", "ours"]);
        let o = parse(&["--dledger", "--threads", "4", "--only", "ours"]).expect("dledger");
        assert_eq!(
            (o.thread_counts.as_slice(), o.only.as_slice()),
            (&[4][..], &["ours".to_owned()][..])
        );
        assert!(parse(&["--dledger", "--only", "echo"]).is_err());
        assert!(parse(&["--threads", "4,x"]).is_err());
        assert!(parse(&["--duration"]).is_err());
        assert!(parse(&["--nope", "1"]).is_err());
    }

    #[test]
    fn result_lines_become_records() {
        let mut r = Results {
            file: PathBuf::from("/dev/null"),
            v: std::collections::HashMap::new(),
        };
        r.record(
            "ours",
            "noise\nRESULT send threads=4 sent=10 tps=123.5 p99_us=77\n\
             RESULT consume mode=push mps=900 first_msg_after_ms=12\n",
        );
        assert_eq!(r.val("ours", "send4_tps"), 123.5);
        assert_eq!(r.val("ours", "send4_p99_us"), 77.0);
        assert_eq!(r.val("ours", "consume_mps"), 900.0);
        assert_eq!(r.val("ours", "consume_mode"), 0.0);
        assert_eq!(r.val("java", "send4_tps"), -1.0);
        assert_eq!(awk_num(" 12.5e3x"), 12500.0);
        assert_eq!(awk_num("1e"), 1.0);
        assert_eq!(awk_num(""), 0.0);
        assert_eq!(awk_str(1234.0), "1234");
        assert_eq!(ratio(3.0, 2.0), "1.5");
        assert_eq!(ratio(-1.0, 2.0), "n/a");
    }
}
