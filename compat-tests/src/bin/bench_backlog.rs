//! Cold backlog benchmark (issue 25): a consumer catching up on a backlog
//! whose commit-log pages are not in the page cache, ours vs the Java 5.3.3
//! broker, against the disk's sequential read speed of the same files.
//!
//! For each broker (our release `mqbroker`, then Java's `BrokerStartup`;
//! both register with our `mqnamesrv`): `compat.BenchProducer fill` writes
//! `--size-mib` of `--body`-byte messages to `Backlog` and then 2,000 to
//! `Hot`; the broker is stopped (pages of a mapped file cannot be evicted),
//! the commit-log files are evicted from the page cache with
//! `posix_fadvise(POSIX_FADV_DONTNEED)` (checked with `fincore`), their
//! sequential read speed is taken with `dd iflag=direct`, they are evicted
//! again and the broker restarted. A hot reader then pulls `Hot` (queue 0,
//! 32 messages a pull, round and round) on its own connection: one pass to
//! warm it, then timed pulls while `compat.BenchConsumer` (no warm-up pass,
//! `--mode`, default pull-direct) reads `Backlog` from its first offset.
//! Then the same again (evict, restart) with a raw reader instead of the
//! Java client: one connection per queue pulling 32 messages at a time, so
//! that the broker, not the client, is what is measured; and that raw
//! reader once more with the backlog now in the page cache (the broker's
//! in-memory speed on this machine, the ceiling for the cold pass).
//! Reported: catch-up MB/s (commit-log bytes of the backlog, or body bytes
//! received by the raw reader, over the time taken) next to the dd speed,
//! and the hot pulls' p50/p99/max during each catch-up. Bodies default to
//! 4,000 B: the Java client compresses bodies of 4 KiB and more.
//!
//! ```text
//! scripts/bench-backlog.sh [--size-mib 2048] [--body 4000] [--mode pull-direct]
//!                          [--only ours,java] [--keep DIR]
//! ```
//! Needs java 17, mvn (first run), python3, fincore, dd. Data is deleted at
//! the end unless `--keep` names a folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use compat_tests::bench::{
    awk_num, bench_bins, broker_conf_base, cleanup_on_signals, exit_with, free_port_block, mkdir,
    reference_broker_libs, spawn_java_broker, start_our_namesrv, wait_listen, work_dir, write_file,
    Drivers, Kid, Res, STOP_GRACE,
};
use remoting::code::{request_code as rq, response_code as rc};
use remoting::header::PullMessageRequestHeader;
use remoting::{Connection, RemotingCommand, Router};

const VERSION: &str = "5.3.3";
const HOT_COUNT: u64 = 2000;

fn log(msg: &str) {
    eprintln!("[bench-backlog] {msg}");
}

struct Opts {
    size_mib: u64,
    body: u64,
    mode: String,
    only: Vec<String>,
    keep: Option<PathBuf>,
}

fn parse() -> Res<Opts> {
    let mut o = Opts {
        size_mib: 2048,
        body: 4000,
        mode: "pull-direct".into(),
        only: vec!["ours".into(), "java".into()],
        keep: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--size-mib" => o.size_mib = val()?.parse().map_err(|e| format!("{a}: {e}"))?,
            "--body" => o.body = val()?.parse().map_err(|e| format!("{a}: {e}"))?,
            "--mode" => o.mode = val()?,
            "--only" => o.only = val()?.split(',').map(str::to_owned).collect(),
            "--keep" => o.keep = Some(PathBuf::from(val()?)),
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    Ok(o)
}

fn main() {
    cleanup_on_signals();
    exit_with("bench_backlog", run());
}

fn run() -> Res<()> {
    let o = parse()?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?
        .to_owned();
    let bins = bench_bins(&root);
    let (work, _guard) = work_dir(&root, o.keep.as_deref(), "bench-backlog-")?;
    log(&format!("work dir {}", work.display()));
    let drv = Drivers::prepare(&root, VERSION, &work)?;
    let ns = start_our_namesrv(&bins.join("mqnamesrv"), &work.join("ns"))?;
    let mut rows = Vec::new();
    for side in o.only.clone() {
        let row = one_side(&o, &root, &bins, &work, &drv, &ns.addr, &side)?;
        rows.push((side.clone(), row));
        // The next side's backlog needs the disk space.
        let _ = std::fs::remove_dir_all(work.join(&side).join("store"));
    }
    ns.kid.stop();
    println!();
    println!(
        "| broker | backlog MiB | dd iflag=direct MB/s | Java client catch-up MB/s | hot pulls | hot p50 ms | hot p99 ms | hot max ms | raw catch-up MB/s | share of dd | same, warm MB/s | cold/warm | hot pulls | hot p99 ms | hot max ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (side, r) in &rows {
        println!(
            "| {side} | {:.0} | {:.0} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} % | {:.0} | {:.0} % | {} | {:.2} | {:.2} |",
            r.backlog_mib,
            r.dd_mbps,
            r.catchup_mbps,
            r.hot_n,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.raw_mbps,
            100.0 * r.raw_mbps / r.dd_mbps.max(1e-9),
            r.raw_warm_mbps,
            100.0 * r.raw_mbps / r.raw_warm_mbps.max(1e-9),
            r.raw_hot_n,
            r.raw_p99_ms,
            r.raw_max_ms
        );
    }
    Ok(())
}

struct Row {
    backlog_mib: f64,
    dd_mbps: f64,
    catchup_mbps: f64,
    hot_n: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    raw_mbps: f64,
    raw_warm_mbps: f64,
    raw_hot_n: usize,
    raw_p99_ms: f64,
    raw_max_ms: f64,
}

/// The `p` quantile of sorted `v` (0 when empty).
fn pct(v: &[f64], p: f64) -> f64 {
    v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

fn start_broker(
    side: &str,
    root: &Path,
    bins: &Path,
    work: &Path,
    d: &Path,
    conf: &Path,
    port: u16,
) -> Res<Kid> {
    let kid = if side == "java" {
        let reflib = reference_broker_libs(root, VERSION, work)?;
        spawn_java_broker(root, &reflib, d, conf, &["-Xms2g", "-Xmx2g"])?
    } else {
        let mut c = Command::new(bins.join("mqbroker"));
        c.arg("-c").arg(conf).env("HOME", d);
        Kid::spawn_logged("mqbroker", c, &d.join("broker.log"), STOP_GRACE)?
    };
    wait_listen(port, || kid.is_running(), side)?;
    Ok(kid)
}

fn one_side(
    o: &Opts,
    root: &Path,
    bins: &Path,
    work: &Path,
    drv: &Drivers,
    ns: &str,
    side: &str,
) -> Res<Row> {
    let d = work.join(side);
    mkdir(&d)?;
    let port = free_port_block(30000, 45000).ok_or("no free port block")?;
    let store = d.join("store");
    let conf = d.join("broker.conf");
    write_file(
        &conf,
        &format!(
            "brokerClusterName=BacklogCluster\nbrokerName=backlog-{side}\nbrokerId=0\n{}\
             mappedFileSizeCommitLog=1073741824\n",
            broker_conf_base(ns, port, &store).replace("mappedFileSizeCommitLog=67108864\n", "")
        ),
    )?;
    let home = d.join("client");
    let args = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let record = o.body + 200;
    let count = o.size_mib * 1024 * 1024 / record;
    log(&format!(
        "{side}: writing {count} x {} B to Backlog",
        o.body
    ));
    let broker = start_broker(side, root, bins, work, &d, &conf, port)?;
    let fill = |topic: &str, n: u64| {
        drv.driver_ok(
            &home,
            "compat.BenchProducer",
            &args(&["fill", ns, topic, &n.to_string(), &o.body.to_string()]),
            &d.join(format!("fill-{topic}.out")),
            Duration::from_secs(3600),
        )
    };
    fill("Backlog", count)?;
    fill("Hot", HOT_COUNT)?;
    broker.stop();
    let files = commit_log_files(&store.join("commitlog"))?;
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let written = backlog_bytes(&files, count)?;
    evict(&files)?;
    log(&format!(
        "{side}: commit log after eviction: {}",
        fincore(&files)
    ));
    let dd_mbps = dd_speed(&files, bytes)?;
    evict(&files)?;
    log(&format!(
        "{side}: commit log before catch-up: {}",
        fincore(&files)
    ));
    let broker = start_broker(side, root, bins, work, &d, &conf, port)?;
    let pid = broker.pid();

    // The hot reader: warm pass, then timed pulls until told to stop.
    let (stop, hot) = start_hot_reader(port)?;
    log(&format!("{side}: catching up ({})", o.mode));
    let out = drv.driver_ok(
        &home,
        "compat.BenchConsumer",
        &args(&[
            ns,
            "Backlog",
            &count.to_string(),
            &pid.to_string(),
            "1800",
            &o.mode,
            "0",
        ]),
        &d.join("consume.out"),
        Duration::from_secs(1900),
    )?;
    stop.store(true, Ordering::SeqCst);
    let mut lat = hot.join().map_err(|_| "hot reader panicked")??;
    broker.stop();

    // The same catch-up without the Java client's costs: one connection
    // per queue pulling 32 at a time from offset 0, counting bytes.
    evict(&files)?;
    log(&format!(
        "{side}: commit log before raw catch-up: {}",
        fincore(&files)
    ));
    let broker = start_broker(side, root, bins, work, &d, &conf, port)?;
    let (stop, hot) = start_hot_reader(port)?;
    let (raw_bytes, raw_secs) = raw_catch_up(&format!("127.0.0.1:{port}"))?;
    stop.store(true, Ordering::SeqCst);
    let mut raw_lat = hot.join().map_err(|_| "hot reader panicked")??;
    // Once more, now that the pass above left the backlog in the page
    // cache: the broker's in-memory speed, the ceiling for the cold one.
    log(&format!(
        "{side}: commit log before warm raw catch-up: {}",
        fincore(&files)
    ));
    let (warm_bytes, warm_secs) = raw_catch_up(&format!("127.0.0.1:{port}"))?;
    let raw_warm_mbps = warm_bytes as f64 / 1e6 / warm_secs.max(1e-9);
    broker.stop();
    raw_lat.sort_by(f64::total_cmp);
    let raw_mbps = raw_bytes as f64 / 1e6 / raw_secs.max(1e-9);
    log(&format!(
        "{side}: raw catch-up {raw_bytes} B in {raw_secs:.2} s = {raw_mbps:.0} MB/s, hot p99 {:.2} ms",
        pct(&raw_lat, 0.99)
    ));
    let line = out
        .lines()
        .find(|l| l.starts_with("RESULT consume"))
        .ok_or("no RESULT line")?;
    let secs = field(line, "secs");
    let catchup_mbps = written as f64 / 1e6 / secs.max(1e-9);
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| pct(&lat, p);
    let row = Row {
        backlog_mib: written as f64 / 1048576.0,
        dd_mbps,
        catchup_mbps,
        hot_n: lat.len(),
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
        raw_mbps,
        raw_warm_mbps,
        raw_hot_n: raw_lat.len(),
        raw_p99_ms: pct(&raw_lat, 0.99),
        raw_max_ms: raw_lat.last().copied().unwrap_or(0.0),
    };
    log(&format!(
        "{side}: {line}; catch-up {catchup_mbps:.0} MB/s, dd {dd_mbps:.0} MB/s, hot p99 {:.2} ms over {} pulls",
        row.p99_ms, row.hot_n
    ));
    Ok(row)
}

fn field(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .map_or(0.0, awk_num)
}

fn commit_log_files(dir: &Path) -> Res<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    Ok(v)
}

/// Bytes of the backlog in the commit log: `count` records of the size of
/// the first one (the fill's records differ only in their values, not their
/// lengths). Reads 4 bytes of the first file (evicted again afterwards).
fn backlog_bytes(files: &[PathBuf], count: u64) -> Res<u64> {
    use std::io::Read;
    let first = files.first().ok_or("no commit-log file")?;
    let mut size = [0u8; 4];
    std::fs::File::open(first)
        .and_then(|mut f| f.read_exact(&mut size))
        .map_err(|e| format!("{}: {e}", first.display()))?;
    Ok(u64::from(u32::from_be_bytes(size)) * count)
}

fn sh(cmd: &str) -> String {
    Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn evict(files: &[PathBuf]) -> Res<()> {
    for f in files {
        let ok = Command::new("python3")
            .arg("-c")
            .arg("import os,sys;fd=os.open(sys.argv[1],os.O_RDONLY);os.fsync(fd);os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)")
            .arg(f)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("posix_fadvise {}", f.display()));
        }
    }
    Ok(())
}

/// `fincore` summary: resident bytes of the files.
fn fincore(files: &[PathBuf]) -> String {
    let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let out = sh(&format!(
        "fincore --bytes --noheadings --output RES {} | awk '{{s+=$1}} END {{print s}}'",
        list.join(" ")
    ));
    format!("{} bytes resident", out.trim())
}

fn dd_speed(files: &[PathBuf], bytes: u64) -> Res<f64> {
    let t0 = Instant::now();
    for f in files {
        let ok = Command::new("dd")
            .arg(format!("if={}", f.display()))
            .arg("of=/dev/null")
            .arg("bs=1M")
            .arg("iflag=direct")
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("dd {}", f.display()));
        }
    }
    Ok(bytes as f64 / 1e6 / t0.elapsed().as_secs_f64())
}

/// Starts [`hot_reader`] on the broker at `port` in a thread and waits
/// (120 s) until it is warm; set the flag to stop it, join for its latencies.
fn start_hot_reader(port: u16) -> Res<(Arc<AtomicBool>, std::thread::JoinHandle<Res<Vec<f64>>>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let addr = format!("127.0.0.1:{port}");
    let stop2 = Arc::clone(&stop);
    let hot = std::thread::spawn(move || hot_reader(&addr, &stop2, &ready_tx));
    ready_rx
        .recv_timeout(Duration::from_secs(120))
        .map_err(|_| "hot reader did not warm up")??;
    Ok((stop, hot))
}

fn hot_reader(
    addr: &str,
    stop: &AtomicBool,
    ready: &std::sync::mpsc::Sender<Res<()>>,
) -> Res<Vec<f64>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let conn = match Connection::connect(addr, Arc::new(Router::new())).await {
            Ok(c) => c,
            Err(e) => {
                let _ = ready.send(Err(format!("connect {addr}: {e}")));
                return Err(e.to_string());
            }
        };
        let pull = |offset: i64| pull_request("hot-reader", "Hot", 0, offset);
        let mut lat = Vec::new();
        let mut offset = 0i64;
        let mut warmed = false;
        // Bounded: stops when told, or after 10 million pulls.
        for _ in 0..10_000_000u64 {
            if warmed && stop.load(Ordering::SeqCst) {
                break;
            }
            let t0 = Instant::now();
            let r = conn
                .request(pull(offset), Duration::from_secs(30))
                .await
                .map_err(|e| e.to_string())?;
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            let next = r
                .ext("nextBeginOffset")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0);
            if r.code == rc::SUCCESS && next > offset {
                offset = next;
                if warmed {
                    lat.push(ms);
                }
            } else {
                offset = 0;
                if !warmed {
                    warmed = true;
                    let _ = ready.send(Ok(()));
                }
            }
        }
        Ok(lat)
    })
}

/// Reads `Backlog` from offset 0 on every queue (0..16; a queue the topic
/// lacks ends at once), one connection per queue, 32 messages a pull.
/// Body bytes received and seconds taken.
fn raw_catch_up(addr: &str) -> Res<(u64, f64)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for queue_id in 0..16 {
            let addr = addr.to_owned();
            tasks.push(tokio::spawn(async move {
                let conn = Connection::connect(addr.as_str(), Arc::new(Router::new()))
                    .await
                    .map_err(|e| e.to_string())?;
                let (mut offset, mut bytes) = (0i64, 0u64);
                // Bounded: a backlog of at most 2^32 pulls per queue.
                for _ in 0..u32::MAX {
                    let r = conn
                        .request(
                            pull_request("raw-reader", "Backlog", queue_id, offset),
                            Duration::from_secs(60),
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    let next = r
                        .ext("nextBeginOffset")
                        .and_then(|v| v.parse::<i64>().ok())
                        .unwrap_or(0);
                    if r.code != rc::SUCCESS || next <= offset {
                        break;
                    }
                    bytes += r.body.len() as u64;
                    offset = next;
                }
                Ok::<u64, String>(bytes)
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.map_err(|e| e.to_string())??;
        }
        Ok((total, t0.elapsed().as_secs_f64()))
    })
}

fn pull_request(group: &str, topic: &str, queue_id: i32, offset: i64) -> RemotingCommand {
    let h = PullMessageRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id,
        queue_offset: offset,
        max_msg_nums: 32,
        sys_flag: 0x4,
        commit_offset: 0,
        suspend_timeout_millis: 0,
        subscription: Some("*".into()),
        sub_version: 0,
        expression_type: Some("TAG".into()),
        max_msg_bytes: None,
        broker_name: None,
    };
    RemotingCommand::request(rq::PULL_MESSAGE).with_header(&h)
}
