//! `bench_ha`: one master + one slave of ours (`mqbroker`) against the same
//! pair of official Java 5.3.3 brokers (`BrokerStartup`, -Xms1g -Xmx1g
//! G1), each pair behind our `mqnamesrv` on free loopback ports, the same
//! load generator for both (`compat.BenchProducer` on the official Java
//! client). Three measures per side:
//!
//! 1. **SYNC_MASTER** (`inSyncReplicas=2`: a send is answered once the
//!    slave holds it): send TPS, p50/p99 latency, master CPU per message
//!    (from the driver) and slave CPU per message (sampled here at the
//!    driver's phase boundaries) at each `--threads` count.
//! 2. **ASYNC_MASTER lag** at the largest thread count: GET_BROKER_HA_STATUS
//!    (907) on the master every `--poll-ms` during the measured phase;
//!    bytes behind = `masterCommitLogMaxOffset - slaveAckOffset`; ms behind
//!    = the sample's time minus the time the master's max offset passed the
//!    slave's acknowledged offset (interpolated between the samples).
//! 3. **Catch-up**: a fresh ASYNC_MASTER alone (one commit-log file larger
//!    than the data, since a new slave is sent the master's last file
//!    only, on both sides) is filled with `--catchup-gib` GiB
//!    (`BenchProducer fill`, 4 KiB bodies); the disk's sequential write
//!    speed is measured on the same filesystem (4 MiB `write`s, then
//!    `fsync`); then an empty slave starts and 907 is polled until its
//!    acknowledged offset reaches the master's max offset. Rate = bytes
//!    acknowledged between the first 907 row listing the slave and the
//!    catch-up / that time; the time from the slave's spawn is printed too.
//!
//! Usage: bench_ha [--only ours|java] [--threads 16,64] [--duration SECS]
//!        [--warmup SECS] [--lag-duration SECS] [--size BYTES]
//!        [--catchup-gib G] [--poll-ms MS] [--java-version V] [--keep DIR]
//!
//! Defaults: threads 16,64, 20 s per thread count after a 10 s warm-up,
//! 20 s of ASYNC load, 1 KiB bodies, 1 GiB catch-up (0 skips it; at most
//! 1.5, Java's files are int-sized), 907 every 10 ms. Servers:
//! `$BENCH_BINS/{mqbroker,mqnamesrv}` when set, else this tree's
//! `target/release`; `scripts/bench-ha.sh` builds them. The work folder (a
//! temporary one unless `--keep DIR`) holds the stores, logs, the drivers'
//! outputs and `results.txt`.
//!
//! Every process started is stopped when the run ends, fails, panics or gets
//! SIGINT/SIGTERM/SIGHUP; every wait has a bound.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compat_tests::bench::{
    bench_bins, broker_conf_base, cleanup_on_signals, clk_tck, cpu_model, cpu_ticks,
    free_port_block, loadavg, mkdir, nproc, on_path, reference_broker_libs, spawn_java_broker,
    start_our_namesrv, utc_minute, wait_listen, work_dir, write_file, Drivers, Kid, Ns, OnExit,
    Res, Results, STOP_GRACE,
};
use compat_tests::{cluster_info, workspace_root};
use remoting::{Connection, RemotingCommand, Router};

/// The drivers' own timeouts are inside; this bounds them from outside.
const DRIVER_SLACK: Duration = Duration::from_secs(300);
const CLUSTER: &str = "HaBench";
const NAME: &str = "bench-ha";
const TOPIC: &str = "BenchTopic";
/// Body size of the catch-up fill.
const FILL_BODY: u64 = 4096;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

// ---------------------------------------------------------------- arguments

#[derive(Debug, Clone)]
struct Opts {
    duration: u64,
    warmup: u64,
    lag_duration: u64,
    threads: String,
    thread_counts: Vec<u64>,
    size: u64,
    catchup_gib: f64,
    poll: Duration,
    only: Vec<String>,
    ver: String,
    keep: Option<PathBuf>,
}

const USAGE: &str =
    "usage: bench_ha [--only ours|java] [--threads 16,64] [--duration SECS] [--warmup SECS]
                [--lag-duration SECS] [--size BYTES] [--catchup-gib G] [--poll-ms MS]
                [--java-version V] [--keep DIR]";

fn parse_args(args: impl IntoIterator<Item = String>) -> Res<Opts> {
    let mut o = Opts {
        duration: 20,
        warmup: 10,
        lag_duration: 20,
        threads: "16,64".into(),
        thread_counts: Vec::new(),
        size: 1024,
        catchup_gib: 1.0,
        poll: Duration::from_millis(10),
        only: vec!["java".into(), "ours".into()],
        ver: "5.3.3".into(),
        keep: None,
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err("options".into());
        }
        let known = [
            "--duration",
            "--warmup",
            "--lag-duration",
            "--threads",
            "--size",
            "--catchup-gib",
            "--poll-ms",
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
            "--duration" => o.duration = num()?.max(1),
            "--warmup" => o.warmup = num()?,
            "--lag-duration" => o.lag_duration = num()?.max(1),
            "--size" => o.size = num()?.max(1),
            "--poll-ms" => o.poll = Duration::from_millis(num()?.max(1)),
            "--threads" => o.threads = v.clone(),
            "--catchup-gib" => {
                o.catchup_gib = v
                    .parse::<f64>()
                    .ok()
                    .filter(|g| g.is_finite() && (0.0..=1.5).contains(g))
                    .ok_or_else(bad)?
            }
            "--only" => {
                o.only = match v.as_str() {
                    "ours" | "java" => vec![v.clone()],
                    "java,ours" | "ours,java" => v.split(',').map(str::to_owned).collect(),
                    _ => return Err(bad()),
                }
            }
            "--java-version" => o.ver = v,
            _ => o.keep = Some(PathBuf::from(v)),
        }
    }
    o.thread_counts = o
        .threads
        .split(',')
        .map(|t| t.trim().parse::<u64>().ok().filter(|n| *n > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("--threads: bad value '{}'", o.threads))?;
    Ok(o)
}

fn log(msg: &str) {
    eprintln!("[bench] {msg}");
}

// ------------------------------------------------------------- HA status

/// What GET_BROKER_HA_STATUS (907) of a master says.
#[derive(Debug, Clone, Copy, Default)]
struct HaStatus {
    master_max: i64,
    /// The first slave connection's acknowledged offset and where its
    /// transfer started; `None` without a slave.
    slave: Option<(i64, i64)>,
    in_sync: i64,
}

/// The integer after `"key":` in `json`, from `from` on.
fn json_int(json: &str, key: &str, from: usize) -> Option<i64> {
    let pat = format!("\"{key}\":");
    let at = json[from..].find(&pat)? + from + pat.len();
    let rest = json[at..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Java's fastjson and ours print the same keys; read them by name (no
/// dependence on either side's spacing or key order).
fn parse_ha_status(body: &[u8]) -> Option<HaStatus> {
    let json = String::from_utf8_lossy(body);
    let master_max = json_int(&json, "masterCommitLogMaxOffset", 0)?;
    let in_sync = json_int(&json, "inSyncSlaveNums", 0).unwrap_or(0);
    let slave = json.find("\"haConnectionInfo\":[").and_then(|at| {
        let list = &json[at..];
        let end = list.find(']').unwrap_or(list.len());
        let list = &list[..end];
        Some((
            json_int(list, "slaveAckOffset", 0)?,
            json_int(list, "transferFromWhere", 0).unwrap_or(0),
        ))
    });
    Some(HaStatus {
        master_max,
        slave,
        in_sync,
    })
}

/// One connection to a master, asked for 907 on demand.
struct HaClient {
    rt: tokio::runtime::Runtime,
    addr: String,
    conn: Option<Connection>,
}

impl HaClient {
    fn new(addr: &str) -> Res<HaClient> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        Ok(HaClient {
            rt,
            addr: addr.to_owned(),
            conn: None,
        })
    }

    fn status(&mut self) -> Option<HaStatus> {
        let addr = self.addr.clone();
        if self.conn.is_none() {
            self.conn = self
                .rt
                .block_on(async {
                    tokio::time::timeout(
                        Duration::from_secs(3),
                        Connection::connect(addr, Arc::new(Router::new())),
                    )
                    .await
                })
                .ok()
                .and_then(|c| c.ok());
        }
        let conn = self.conn.as_ref()?;
        let resp = self.rt.block_on(conn.request(
            RemotingCommand::request(remoting::request_code::GET_BROKER_HA_STATUS),
            Duration::from_secs(3),
        ));
        match resp {
            Ok(r) if r.code == 0 => parse_ha_status(&r.body),
            Ok(_) => None,
            Err(_) => {
                if let Some(c) = self.conn.take() {
                    c.close();
                }
                None
            }
        }
    }
}

impl Drop for HaClient {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            c.close();
        }
    }
}

/// One 907 sample: when, the master's max offset, the slave's ack (-1:
/// no slave connected).
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    master_max: i64,
    ack: i64,
}

/// The share of `samples` in `[from, to]` in which no slave was connected,
/// in percent (-1 without samples).
fn no_slave_pct(samples: &[Sample], from: Instant, to: Instant) -> f64 {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .collect();
    if inside.is_empty() {
        return -1.0;
    }
    100.0 * inside.iter().filter(|s| s.ack < 0).count() as f64 / inside.len() as f64
}

/// Polls 907 of `addr` every `every` on a thread of its own until stopped.
struct Poller {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Poller {
    fn start(addr: &str, every: Duration) -> Res<Poller> {
        let mut client = HaClient::new(addr)?;
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            let mut next = Instant::now();
            while !s.load(Ordering::Relaxed) {
                if let Some(st) = client.status() {
                    v.lock().unwrap_or_else(|p| p.into_inner()).push(Sample {
                        at: Instant::now(),
                        master_max: st.master_max,
                        ack: st.slave.map_or(-1, |(ack, _)| ack),
                    });
                }
                next += every;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        });
        Ok(Poller {
            stop,
            samples,
            thread: Some(thread),
        })
    }

    fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Bytes and milliseconds behind, per sample in `[from, to]`: the ms are
/// the sample's time minus when the master's max offset (linear between
/// two samples) reached the slave's acknowledged offset.
fn lag_series(samples: &[Sample], from: Instant, to: Instant) -> (Vec<f64>, Vec<f64>) {
    let (mut bytes, mut ms) = (Vec::new(), Vec::new());
    for (i, s) in samples.iter().enumerate() {
        if s.at < from || s.at > to || s.ack < 0 {
            continue;
        }
        let behind = (s.master_max - s.ack).max(0);
        bytes.push(behind as f64);
        if behind == 0 {
            ms.push(0.0);
            continue;
        }
        // The last earlier sample whose max offset is at most the ack.
        let Some(j) = (0..i).rev().find(|&j| samples[j].master_max <= s.ack) else {
            continue; // behind since before the first sample: unknown
        };
        let (a, b) = (samples[j], samples[j + 1]);
        let span = (b.master_max - a.master_max).max(1) as f64;
        let frac = ((s.ack - a.master_max) as f64 / span).clamp(0.0, 1.0);
        let reached = a.at + (b.at - a.at).mul_f64(frac);
        ms.push(s.at.saturating_duration_since(reached).as_secs_f64() * 1e3);
    }
    (bytes, ms)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return -1.0;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return -1.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    s[i]
}

// -------------------------------------------------------------------- disk

/// Sequential write speed of the filesystem holding `dir`: `bytes` in
/// 4 MiB `write`s, then `fsync` (clock stops after it); bytes/s.
fn disk_write_speed(dir: &Path, bytes: u64) -> Res<f64> {
    use std::io::Write;
    let path = dir.join("disk-speed.tmp");
    let _rm = {
        let p = path.clone();
        OnExit::new(move || {
            let _ = std::fs::remove_file(&p);
        })
    };
    let mut f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let chunk = vec![0x5au8; 4 << 20];
    let t0 = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])
            .map_err(|e| format!("write {}: {e}", path.display()))?;
        left -= n as u64;
    }
    f.sync_all()
        .map_err(|e| format!("fsync {}: {e}", path.display()))?;
    Ok(bytes as f64 / t0.elapsed().as_secs_f64())
}

// -------------------------------------------------------------------- bench

struct Bench {
    o: Opts,
    root: PathBuf,
    bins: PathBuf,
    work: PathBuf,
    drv: Drivers,
    reflib: PathBuf,
    results: Results,
}

/// One broker of a pair.
struct Node {
    kid: Kid,
    addr: String,
}

impl Bench {
    /// Starts a broker of `kind` in `dir` with `keys` after the common ones,
    /// commit-log files of `file_size` bytes; waits until it listens.
    fn start_node(
        &self,
        kind: &str,
        role: &str,
        dir: &Path,
        ns: &str,
        keys: &str,
        file_size: u64,
    ) -> Res<Node> {
        mkdir(dir)?;
        let port = free_port_block(15000, 30000).ok_or("no free port block")?;
        let base = broker_conf_base(ns, port, &dir.join("store")).replace(
            "mappedFileSizeCommitLog=67108864",
            &format!("mappedFileSizeCommitLog={file_size}"),
        );
        let conf = dir.join("broker.conf");
        write_file(
            &conf,
            &format!("brokerClusterName={CLUSTER}\nbrokerName={NAME}\n{base}{keys}"),
        )?;
        let kid = if kind == "java" {
            spawn_java_broker(
                &self.root,
                &self.reflib,
                dir,
                &conf,
                &["-Xms1g", "-Xmx1g", "-XX:MaxDirectMemorySize=1g"],
            )?
        } else {
            let mut c = Command::new(self.bins.join("mqbroker"));
            c.arg("-c").arg(&conf).env("HOME", dir);
            Kid::spawn_logged("mqbroker", c, &dir.join("broker.log"), STOP_GRACE)?
        };
        wait_listen(port, || kid.is_running(), &format!("{kind} {role}"))?;
        log(&format!(
            "{kind}: {role} pid {} listening on {port}",
            kid.pid()
        ));
        Ok(Node {
            kid,
            addr: format!("127.0.0.1:{port}"),
        })
    }

    /// Waits (90 s) until the name server lists `node` as broker `id`.
    fn wait_registered(ns: &str, node: &Node, id: i64, what: &str) -> Res<()> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let listed = cluster_info(ns)
                .and_then(|i| i.broker_addr_table.get(NAME).cloned())
                .and_then(|b| b.broker_addrs.get(&id).cloned());
            if listed.as_deref() == Some(node.addr.as_str()) {
                return Ok(());
            }
            if !node.kid.is_running() {
                return Err(format!("{what} exited before registering"));
            }
            if Instant::now() >= deadline {
                return Err(format!("{what} not registered after 90 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (`limit`) until the master's 907 lists a slave (in sync if
    /// `in_sync`).
    fn wait_slave(master: &str, in_sync: bool, limit: Duration) -> Res<HaStatus> {
        let mut c = HaClient::new(master)?;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = c.status() {
                if st.slave.is_some() && (!in_sync || st.in_sync >= 1) {
                    return Ok(st);
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("no slave on master {master} after {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Name server, master with `master_keys`, then (unless `no_slave`) a
    /// slave registered after it (it learns the master's HA address from
    /// the name server).
    fn start_pair(
        &self,
        kind: &str,
        phase: &str,
        master_keys: &str,
        file_size: u64,
        with_slave: bool,
    ) -> Res<(Ns, Node, Option<Node>)> {
        let d = self.work.join(kind).join(phase);
        let ns = start_our_namesrv(&self.bins.join("mqnamesrv"), &d.join("ns"))?;
        let master = self.start_node(
            kind,
            "master",
            &d.join("master"),
            &ns.addr,
            &format!("brokerId=0\n{master_keys}"),
            file_size,
        )?;
        Self::wait_registered(&ns.addr, &master, 0, &format!("{kind} master"))?;
        let slave = if with_slave {
            let s = self.start_slave(kind, &d.join("slave"), &ns.addr, file_size)?;
            Self::wait_registered(&ns.addr, &s, 1, &format!("{kind} slave"))?;
            Some(s)
        } else {
            None
        };
        self.drv.update_topic(&ns.addr, CLUSTER, TOPIC)?;
        Ok((ns, master, slave))
    }

    fn start_slave(&self, kind: &str, dir: &Path, ns: &str, file_size: u64) -> Res<Node> {
        self.start_node(
            kind,
            "slave",
            dir,
            ns,
            "brokerId=1\nbrokerRole=SLAVE\n",
            file_size,
        )
    }

    /// BenchProducer `send`; `on_line` sees every line it prints.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        kind: &str,
        name: &str,
        ns: &str,
        master_pid: u32,
        warmup: u64,
        duration: u64,
        threads: &str,
        on_line: impl FnMut(&str) + Send + 'static,
    ) -> Res<String> {
        let d = self.work.join(kind);
        let n = threads.split(',').count() as u64;
        let args = [
            "send".to_owned(),
            ns.to_owned(),
            TOPIC.into(),
            master_pid.to_string(),
            warmup.to_string(),
            duration.to_string(),
            threads.to_owned(),
            self.o.size.to_string(),
        ];
        let (ok, out) = self.drv.driver_with(
            &d.join("client"),
            "compat.BenchProducer",
            &args,
            &d.join(format!("{name}.out")),
            Duration::from_secs(warmup + duration * n) + DRIVER_SLACK,
            on_line,
        )?;
        if !ok {
            log(&format!("{kind}: BenchProducer {name} failed (see above)"));
        }
        Ok(out)
    }

    // ------------------------------------------------------------ phases

    /// SYNC_MASTER: TPS, latency, master and slave CPU per thread count.
    fn sync_phase(&mut self, kind: &str) -> Res<()> {
        log(&format!("{kind}: SYNC_MASTER pair"));
        let (ns, master, slave) = self.start_pair(
            kind,
            "sync",
            "brokerRole=SYNC_MASTER\ninSyncReplicas=2\n",
            64 << 20,
            true,
        )?;
        let slave = slave.ok_or("no slave")?;
        Self::wait_slave(&master.addr, true, Duration::from_secs(120))?;
        let spid = slave.kid.pid();
        // Whether the slave stays connected (10 Hz, light on both sides).
        let poller = Poller::start(&master.addr, Duration::from_millis(100))?;
        let sync_from = Instant::now();
        // Slave CPU at each phase boundary: the end of the warm-up, then
        // every RESULT line.
        let marks: Arc<Mutex<Vec<(String, u64)>>> = Arc::new(Mutex::new(Vec::new()));
        let m = marks.clone();
        let warm = self.o.warmup > 0;
        if !warm {
            m.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(("start".into(), cpu_ticks(spid)));
        }
        let out = self.send(
            kind,
            "sync",
            &ns.addr,
            master.kid.pid(),
            self.o.warmup,
            self.o.duration,
            &self.o.threads.clone(),
            move |line| {
                if line.starts_with("[bench] warm-up") || line.starts_with("RESULT send") {
                    m.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((line.to_owned(), cpu_ticks(spid)));
                }
            },
        )?;
        let samples = poller.finish();
        let pct = no_slave_pct(&samples, sync_from, Instant::now());
        if pct >= 0.0 {
            self.results
                .put(kind, "sync_no_slave_pct", &format!("{pct:.1}"));
        }
        self.results
            .record(kind, &out.replace("RESULT send", "RESULT sync"));
        let marks = marks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for w in marks.windows(2) {
            let line = &w[1].0;
            let field = |k: &str| {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(k))
                    .and_then(|v| v.parse::<f64>().ok())
            };
            if let (Some(t), Some(sent)) = (field("threads="), field("sent=")) {
                let us = (w[1].1 - w[0].1) as f64 / clk_tck() * 1e6;
                if sent > 0.0 {
                    self.results.put(
                        kind,
                        &format!("sync{t}_slave_cpu_us_per_msg"),
                        &format!("{:.2}", us / sent),
                    );
                }
            }
        }
        slave.kid.stop();
        master.kid.stop();
        ns.kid.stop();
        Ok(())
    }

    /// ASYNC_MASTER: bytes and ms behind during the measured phase.
    fn lag_phase(&mut self, kind: &str) -> Res<()> {
        let t = *self.o.thread_counts.iter().max().unwrap_or(&64);
        log(&format!("{kind}: ASYNC_MASTER pair, lag at {t} threads"));
        let (ns, master, slave) =
            self.start_pair(kind, "async", "brokerRole=ASYNC_MASTER\n", 64 << 20, true)?;
        let slave = slave.ok_or("no slave")?;
        Self::wait_slave(&master.addr, false, Duration::from_secs(120))?;
        let poller = Poller::start(&master.addr, self.o.poll)?;
        let marks: Arc<Mutex<Vec<(String, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
        let m = marks.clone();
        let started = Instant::now();
        let out = self.send(
            kind,
            "async",
            &ns.addr,
            master.kid.pid(),
            self.o.warmup,
            self.o.lag_duration,
            &t.to_string(),
            move |line| {
                if line.starts_with("[bench] warm-up") || line.starts_with("RESULT send") {
                    m.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((line.to_owned(), Instant::now()));
                }
            },
        )?;
        let samples = poller.finish();
        self.results
            .record(kind, &out.replace("RESULT send", "RESULT async"));
        let marks = marks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let from = marks
            .iter()
            .find(|(l, _)| l.starts_with("[bench] warm-up"))
            .map_or(started, |(_, at)| *at);
        let to = marks
            .iter()
            .find(|(l, _)| l.starts_with("RESULT send"))
            .map_or(Instant::now(), |(_, at)| *at);
        let (bytes, ms) = lag_series(&samples, from, to);
        log(&format!(
            "{kind}: {} samples of 907 in the measured phase ({} in all)",
            bytes.len(),
            samples.len()
        ));
        let put = |r: &mut Results, k: &str, v: f64, prec: usize| {
            if v >= 0.0 {
                r.put(kind, k, &format!("{v:.prec$}"));
            }
        };
        put(&mut self.results, "lag_samples", bytes.len() as f64, 0);
        put(&mut self.results, "lag_bytes_mean", mean(&bytes), 0);
        put(&mut self.results, "lag_bytes_p50", quantile(&bytes, 0.5), 0);
        put(&mut self.results, "lag_ms_p50", quantile(&ms, 0.5), 2);
        put(
            &mut self.results,
            "lag_no_slave_pct",
            no_slave_pct(&samples, from, to),
            1,
        );
        put(
            &mut self.results,
            "lag_bytes_p99",
            quantile(&bytes, 0.99),
            0,
        );
        put(&mut self.results, "lag_bytes_max", quantile(&bytes, 1.0), 0);
        put(&mut self.results, "lag_ms_mean", mean(&ms), 2);
        put(&mut self.results, "lag_ms_p99", quantile(&ms, 0.99), 2);
        put(&mut self.results, "lag_ms_max", quantile(&ms, 1.0), 2);
        let zero = bytes.iter().filter(|b| **b == 0.0).count();
        if !bytes.is_empty() {
            put(
                &mut self.results,
                "lag_zero_pct",
                100.0 * zero as f64 / bytes.len() as f64,
                1,
            );
        }
        slave.kid.stop();
        master.kid.stop();
        ns.kid.stop();
        Ok(())
    }

    /// Catch-up of an empty slave from a filled master.
    fn catchup_phase(&mut self, kind: &str) -> Res<()> {
        let target = (self.o.catchup_gib * GIB) as u64;
        // One file holds it all: a new slave gets the master's last file.
        let file_size = ((target + target / 4 + (64 << 20)) >> 20) << 20;
        log(&format!(
            "{kind}: catch-up of {:.2} GiB (commit-log files of {} MiB)",
            self.o.catchup_gib,
            file_size >> 20
        ));
        let (ns, master, _) = self.start_pair(
            kind,
            "catchup",
            "brokerRole=ASYNC_MASTER\n",
            file_size,
            false,
        )?;
        let mut ha = HaClient::new(&master.addr)?;
        let d = self.work.join(kind);
        let fill_started = Instant::now();
        let mut max = 0;
        for round in 0..4 {
            let left = target.saturating_sub(max as u64);
            if left == 0 {
                break;
            }
            let count = left.div_ceil(FILL_BODY + 64).max(32);
            let out = self.drv.driver(
                &d.join("client"),
                "compat.BenchProducer",
                &[
                    "fill".into(),
                    ns.addr.clone(),
                    TOPIC.into(),
                    count.to_string(),
                    FILL_BODY.to_string(),
                ],
                &d.join(format!("fill-{round}.out")),
                Duration::from_secs(1800),
            )?;
            if !out.0 {
                return Err(format!("{kind}: fill failed"));
            }
            max = ha
                .status()
                .ok_or_else(|| format!("{kind}: no 907 answer from the master"))?
                .master_max;
        }
        log(&format!(
            "{kind}: master filled to {max} bytes in {:.1} s",
            fill_started.elapsed().as_secs_f64()
        ));
        let disk = disk_write_speed(&d, target.max(256 << 20))?;
        self.results
            .put(kind, "disk_mbps", &format!("{:.1}", disk / 1e6));
        log(&format!(
            "{kind}: disk sequential write {:.1} MB/s",
            disk / 1e6
        ));
        // Settle: the fill's dirty pages written back before the copy.
        std::thread::sleep(Duration::from_secs(3));
        let spawned = Instant::now();
        let slave =
            self.start_slave(kind, &d.join("catchup").join("slave"), &ns.addr, file_size)?;
        let spid = slave.kid.pid();
        let limit = Duration::from_secs(120) + Duration::from_secs_f64(target as f64 / 5e6);
        // (when, slave CPU, acknowledged offset) at the first 907 row.
        let mut first = None;
        let done = loop {
            if spawned.elapsed() > limit {
                return Err(format!("{kind}: slave not caught up after {limit:?}"));
            }
            if !slave.kid.is_running() {
                return Err(format!("{kind}: slave exited during catch-up"));
            }
            if let Some(st) = ha.status() {
                if let Some((ack, _)) = st.slave {
                    if first.is_none() {
                        first = Some((Instant::now(), cpu_ticks(spid), ack));
                    }
                    if ack >= st.master_max {
                        break (Instant::now(), cpu_ticks(spid), st.master_max);
                    }
                }
            }
            std::thread::sleep(self.o.poll);
        };
        let (t_first, ticks_first, ack_first) = first.unwrap_or((spawned, 0, 0));
        let (t_done, ticks_done, end) = done;
        // Copied: from the start of the master's last (here: only) file.
        let bytes = (end - end % file_size as i64).max(0);
        let bytes = (end - bytes) as f64;
        // The rate over the polled window: what was acknowledged in it.
        let secs = (t_done - t_first).as_secs_f64().max(1e-3);
        let rate = (end - ack_first).max(0) as f64 / secs;
        let cpu_s = (ticks_done.saturating_sub(ticks_first)) as f64 / clk_tck();
        let r = &mut self.results;
        r.put(kind, "catchup_mib", &format!("{:.1}", bytes / 1048576.0));
        r.put(kind, "catchup_ms", &format!("{:.0}", secs * 1e3));
        r.put(
            kind,
            "catchup_wall_ms",
            &format!("{:.0}", (t_done - spawned).as_secs_f64() * 1e3),
        );
        r.put(kind, "catchup_mbps", &format!("{:.1}", rate / 1e6));
        r.put(
            kind,
            "catchup_pct_disk",
            &format!("{:.1}", 100.0 * rate / disk),
        );
        r.put(
            kind,
            "catchup_slave_cpu_s_per_gib",
            &format!("{:.2}", cpu_s / ((end - ack_first) as f64 / GIB).max(1e-9)),
        );
        log(&format!(
            "{kind}: slave copied {:.1} MiB in {:.2} s ({:.1} MB/s, {:.0} % of the disk), \
             {:.2} s from its spawn",
            bytes / 1048576.0,
            secs,
            rate / 1e6,
            100.0 * rate / disk,
            (t_done - spawned).as_secs_f64()
        ));
        drop(ha);
        slave.kid.stop();
        master.kid.stop();
        ns.kid.stop();
        Ok(())
    }

    fn run_side(&mut self, kind: &str) -> Res<()> {
        self.sync_phase(kind)?;
        self.lag_phase(kind)?;
        if self.o.catchup_gib > 0.0 {
            self.catchup_phase(kind)?;
        }
        // Stores of a finished side are not needed any more (GiBs).
        let _ = std::fs::remove_dir_all(self.work.join(kind).join("catchup"));
        Ok(())
    }
}

// ------------------------------------------------------------------- report

fn fmt_ratio(a: f64, b: f64) -> String {
    if a <= 0.0 || b <= 0.0 {
        "n/a".into()
    } else {
        format!("{:.2}", a / b)
    }
}

fn report(o: &Opts, r: &Results) {
    let cell = |s: &str, k: &str, prec: usize| {
        let v = r.val(s, k);
        if v < 0.0 {
            "n/a".to_owned()
        } else {
            format!("{v:.prec$}")
        }
    };
    let row = |label: &str, k: &str, prec: usize| {
        println!(
            "| {label:<40} | {:>12} | {:>12} | {:>9} |",
            cell("java", k, prec),
            cell("ours", k, prec),
            fmt_ratio(r.val("ours", k), r.val("java", k))
        )
    };
    println!(
        "| {:<40} | {:>12} | {:>12} | {:>9} |",
        "master + slave", "Java 5.3.3", "ours", "ours/Java"
    );
    println!(
        "|{}|{}|{}|{}|",
        "-".repeat(42),
        "-".repeat(14),
        "-".repeat(14),
        "-".repeat(11)
    );
    for t in &o.thread_counts {
        row(
            &format!("SYNC_MASTER send TPS, {t} threads"),
            &format!("sync{t}_tps"),
            0,
        );
        row("  p50 latency us", &format!("sync{t}_p50_us"), 0);
        row("  p99 latency us", &format!("sync{t}_p99_us"), 0);
        row("  p99.9 latency us", &format!("sync{t}_p999_us"), 0);
        row("  master CPU us/msg", &format!("sync{t}_cpu_us_per_msg"), 2);
        row(
            "  slave CPU us/msg",
            &format!("sync{t}_slave_cpu_us_per_msg"),
            2,
        );
        row(
            "  generator CPU us/msg",
            &format!("sync{t}_gen_cpu_us_per_msg"),
            2,
        );
        row("  errors", &format!("sync{t}_errors"), 0);
    }
    row("  time without a slave connected %", "sync_no_slave_pct", 1);
    let t = o.thread_counts.iter().max().copied().unwrap_or(64);
    row(
        &format!("ASYNC_MASTER send TPS, {t} threads"),
        &format!("async{t}_tps"),
        0,
    );
    row("  p99 latency us", &format!("async{t}_p99_us"), 0);
    row(
        "  master CPU us/msg",
        &format!("async{t}_cpu_us_per_msg"),
        2,
    );
    row("  time without a slave connected %", "lag_no_slave_pct", 1);
    row("  lag bytes: p50", "lag_bytes_p50", 0);
    row("  lag bytes: mean", "lag_bytes_mean", 0);
    row("  lag bytes: p99", "lag_bytes_p99", 0);
    row("  lag bytes: max", "lag_bytes_max", 0);
    row("  lag ms: p50", "lag_ms_p50", 2);
    row("  lag ms: mean", "lag_ms_mean", 2);
    row("  lag ms: p99", "lag_ms_p99", 2);
    row("  lag ms: max", "lag_ms_max", 2);
    row("  samples with no lag %", "lag_zero_pct", 1);
    row("  907 samples with a slave listed", "lag_samples", 0);
    if o.catchup_gib > 0.0 {
        row("catch-up: MiB copied", "catchup_mib", 1);
        row("  first 907 row -> caught up ms", "catchup_ms", 0);
        row("  slave spawn -> caught up ms", "catchup_wall_ms", 0);
        row("  rate MB/s", "catchup_mbps", 1);
        row("  disk seq. write (write+fsync) MB/s", "disk_mbps", 1);
        row("  % of the disk's write speed", "catchup_pct_disk", 1);
        row("  slave CPU s per GiB", "catchup_slave_cpu_s_per_gib", 2);
    }
    println!();
    println!("ratios are ours / Java: above 1 is better for TPS and rates, below 1 for latency, lag and CPU");
    println!();
    println!("goals (issue 19):");
    let goal = |text: &str, ok: bool, got: String| {
        println!(
            "  {text:<44} {got:<10} {}",
            if ok { "MET" } else { "MISSED" }
        )
    };
    for t in &o.thread_counts {
        let k = format!("sync{t}_tps");
        let (ours, java) = (r.val("ours", &k), r.val("java", &k));
        if ours > 0.0 && java > 0.0 {
            goal(
                &format!("SYNC_MASTER TPS >= 2x Java, {t} threads"),
                ours >= 2.0 * java,
                format!("{}x", fmt_ratio(ours, java)),
            );
        }
        let k = format!("sync{t}_p99_us");
        let (ours, java) = (r.val("ours", &k), r.val("java", &k));
        if ours > 0.0 && java > 0.0 {
            goal(
                &format!("SYNC_MASTER p99 <= 0.5x Java, {t} threads"),
                ours <= 0.5 * java,
                format!("{}x", fmt_ratio(ours, java)),
            );
        }
    }
    let pct = r.val("ours", "catchup_pct_disk");
    if pct >= 0.0 {
        goal(
            "catch-up >= 80% of disk sequential write",
            pct >= 80.0,
            format!("{pct:.0}%"),
        );
    }
}

// --------------------------------------------------------------------- main

fn run(o: Opts) -> Res<()> {
    if !on_path("java") {
        return Err("'java' is required but not installed".into());
    }
    let root = workspace_root();
    let bins = bench_bins(&root);
    for b in ["mqnamesrv", "mqbroker"] {
        if !bins.join(b).is_file() {
            return Err(format!(
                "{} missing (scripts/bench-ha.sh builds it)",
                bins.join(b).display()
            ));
        }
    }
    let (work, _remove_work) = work_dir(&root, o.keep.as_deref(), "rmq-bench-ha-")?;
    let drv = Drivers::prepare(&root, &o.ver, &work)?;
    let reflib = if o.only.iter().any(|s| s == "java") {
        reference_broker_libs(&root, &o.ver, &work)?
    } else {
        work.join("reflib")
    };
    let results = Results::create(work.join("results.txt"))?;
    let mut b = Bench {
        o: o.clone(),
        root,
        bins,
        work,
        drv,
        reflib,
        results,
    };
    let before = loadavg();
    let started_at = utc_minute();
    for s in &o.only {
        b.run_side(s)?;
    }
    let after = loadavg();
    println!();
    println!(
        "machine: {} CPUs, {}; load generator on the same machine",
        nproc(),
        cpu_model()
    );
    println!("run: {started_at}; load average before: {before}, after: {after}");
    println!(
        "load: sync send, {}-byte bodies, SYNC threads {}, {}s each after {}s warm-up; ASYNC {}s; \
         907 every {} ms; catch-up {} GiB",
        o.size,
        o.threads,
        o.duration,
        o.warmup,
        o.lag_duration,
        o.poll.as_millis(),
        o.catchup_gib
    );
    println!();
    report(&o, &b.results);
    Ok(())
}

fn main() {
    cleanup_on_signals();
    let o = parse_args(std::env::args().skip(1)).unwrap_or_else(|e| {
        eprintln!("bench_ha: {e}\n{USAGE}");
        std::process::exit(2)
    });
    let code = match run(o) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bench_ha: {e}");
            1
        }
    };
    compat_tests::bench::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(a: &[&str]) -> Res<Opts> {
        parse_args(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn options() {
        let o = parse(&[]).expect("defaults");
        assert_eq!(o.thread_counts, [16, 64]);
        assert_eq!((o.catchup_gib, o.only.len()), (1.0, 2));
        let o = parse(&["--only", "ours", "--catchup-gib", "0.25"]).expect("ours");
        assert_eq!(
            (o.only.as_slice(), o.catchup_gib),
            (&["ours".to_owned()][..], 0.25)
        );
        assert!(parse(&["--catchup-gib", "2"]).is_err());
        assert!(parse(&["--only", "echo"]).is_err());
        assert!(parse(&["--threads", "4,x"]).is_err());
    }

    #[test]
    fn ha_status_of_both_sides() {
        let ours = br#"{"haClientRuntimeInfo":{"maxOffset":0},"haConnectionInfo":[{"addr":"127.0.0.1:5","diff":10,"inSync":true,"slaveAckOffset":90,"transferFromWhere":0,"transferredByteInSecond":0}],"inSyncSlaveNums":1,"master":true,"masterCommitLogMaxOffset":100}"#;
        let st = parse_ha_status(ours).expect("ours");
        assert_eq!(
            (st.master_max, st.slave, st.in_sync),
            (100, Some((90, 0)), 1)
        );
        let none = br#"{"haConnectionInfo":[],"inSyncSlaveNums":0,"master":true,"masterCommitLogMaxOffset":7}"#;
        let st = parse_ha_status(none).expect("none");
        assert_eq!((st.master_max, st.slave), (7, None));
    }

    #[test]
    fn lag_is_interpolated_on_the_master_series() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let s = [
            Sample {
                at: at(0),
                master_max: 0,
                ack: 0,
            },
            Sample {
                at: at(10),
                master_max: 1000,
                ack: 500,
            },
            Sample {
                at: at(20),
                master_max: 2000,
                ack: 2000,
            },
        ];
        let (bytes, ms) = lag_series(&s, t0, at(20));
        assert_eq!(bytes, [0.0, 500.0, 0.0]);
        assert_eq!(ms.len(), 3);
        assert!((ms[1] - 5.0).abs() < 0.01, "{ms:?}");
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
        let gap = [s[0], Sample { ack: -1, ..s[1] }, s[2]];
        assert_eq!(lag_series(&gap, t0, at(20)).0, [0.0, 0.0]);
        assert!((no_slave_pct(&gap, t0, at(20)) - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(mean(&[]), -1.0);
    }
}
