//! `bench_meta`: the cost of one UPDATE_AND_CREATE_TOPIC as the topic table
//! grows, our `mqbroker` against the official Java broker (`BrokerStartup`,
//! default 5.3.3), one after the other, same driver.
//!
//! For each broker: a fresh store, no name server (so only the metadata path
//! is measured, not registration), one connection creating topics of 8
//! queues one at a time (each create answered before the next is sent).
//! At every checkpoint (default 1,000, 10,000, 100,000 topics) it prints
//! the time so far, p50/p99/max of the last 1,000 creates, the broker's RSS
//! and the bytes it wrote (`/proc/<pid>/io` wchar) per create over that
//! window. A run stops at the last checkpoint or after `--max-secs` per
//! broker (default 900), saying where it stopped.
//!
//! With `--offsets N` (after the topics, if the broker got that far): one
//! subscription group commits N queue offsets (UPDATE_CONSUMER_OFFSET, 32 in
//! flight, spread over the first 1,000 topics), waits two persist intervals
//! (`flushConsumerOffsetInterval=5000` on both), then moves 10 offsets and
//! reports the bytes written and the CPU the broker used per interval over
//! the next three intervals.
//!
//! Usage: bench_meta [--topics N[,N...]] [--max-secs S] [--offsets N]
//!        [--java-version V] [--only ours|java] [--java-heap ARGS]
//! Our binary is `$BENCH_BINS/mqbroker` (default `target/release`);
//! `scripts/bench-meta.sh` builds it first.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compat_tests::bench::{
    bench_bins, cleanup_on_signals, exit_with, mkdir, reference_broker_libs, rss_kib,
    spawn_java_broker, wait_listen, work_dir, write_file, Histogram, Kid, Res, STOP_GRACE,
};
use remoting::code::request_code as rq;
use remoting::{Connection, RemotingCommand, Router};

const WINDOW: usize = 1000;

struct Opts {
    checkpoints: Vec<usize>,
    max_secs: u64,
    offsets: usize,
    java_version: String,
    only: Option<String>,
    java_heap: Vec<String>,
}

fn opts() -> Res<Opts> {
    let mut o = Opts {
        checkpoints: vec![1_000, 10_000, 100_000],
        max_secs: 900,
        offsets: 0,
        java_version: "5.3.3".into(),
        only: None,
        java_heap: vec!["-Xms1g".into(), "-Xmx1g".into()],
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--topics" => {
                o.checkpoints = val()?
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse::<usize>()
                            .map_err(|e| format!("--topics: {e}"))
                    })
                    .collect::<Res<_>>()?;
                o.checkpoints.sort_unstable();
            }
            "--max-secs" => o.max_secs = val()?.parse().map_err(|e| format!("--max-secs: {e}"))?,
            "--offsets" => o.offsets = val()?.parse().map_err(|e| format!("--offsets: {e}"))?,
            "--java-version" => o.java_version = val()?,
            "--only" => o.only = Some(val()?),
            "--java-heap" => o.java_heap = val()?.split_whitespace().map(str::to_owned).collect(),
            "-h" | "--help" => {
                println!("bench_meta [--topics N,N,...] [--max-secs S] [--java-version V] [--only ours|java] [--java-heap ARGS]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn free_port() -> Res<u16> {
    compat_tests::bench::free_port_block(20000, 40000).ok_or_else(|| "no free port".to_owned())
}

fn conf(port: u16, store: &Path) -> String {
    let s = store.display();
    format!(
        "brokerClusterName=BenchMeta\nbrokerName=bench-meta\nbrokerId=0\nlistenPort={port}\n\
         haListenPort={}\nbindAddress=127.0.0.1\nbrokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\n\
         storePathRootDir={s}\nstorePathCommitLog={s}/commitlog\n\
         mappedFileSizeCommitLog=67108864\nflushDiskType=ASYNC_FLUSH\n\
         flushConsumerOffsetInterval=5000\n",
        port + 1
    )
}

fn wchar(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("wchar: "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The offsets phase: time to commit them all, then per persist interval
/// with 10 offsets moved, bytes written and CPU milliseconds.
struct OffsetRun {
    offsets: usize,
    commit_secs: f64,
    bytes_per_interval: f64,
    cpu_ms_per_interval: f64,
}

const INTERVAL: Duration = Duration::from_secs(5);
const GROUP: &str = "bench_meta_group";

async fn offsets_phase(
    name: &str,
    kid: &Kid,
    conn: &Connection,
    topics: usize,
    n: usize,
) -> Res<OffsetRun> {
    let body = format!("{{\"groupName\":\"{GROUP}\"}}");
    let r = conn
        .request(
            RemotingCommand::request(rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
                .with_body(body.into_bytes()),
            Duration::from_secs(30),
        )
        .await
        .map_err(|e| format!("{name}: create group: {e}"))?;
    if r.code != 0 {
        return Err(format!("{name}: create group: {:?}", r.remark));
    }
    let spread = topics.clamp(1, 1000);
    let per_topic = n.div_ceil(spread);
    let commit = |i: usize, offset: i64| {
        RemotingCommand::request(rq::UPDATE_CONSUMER_OFFSET)
            .with_ext("consumerGroup", GROUP)
            .with_ext("topic", format!("BenchMeta{:07}", i % spread))
            .with_ext("queueId", (i / spread % per_topic.max(1)).to_string())
            .with_ext("commitOffset", offset.to_string())
    };
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    const LANES: usize = 32;
    for lane in 0..LANES {
        let conn = conn.clone();
        let reqs: Vec<RemotingCommand> = (lane..n).step_by(LANES).map(|i| commit(i, 100)).collect();
        tasks.spawn(async move {
            for r in reqs {
                let resp = conn
                    .request(r, Duration::from_secs(60))
                    .await
                    .map_err(|e| e.to_string())?;
                if resp.code != 0 {
                    return Err(format!("code {} {:?}", resp.code, resp.remark));
                }
            }
            Ok::<(), String>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| e.to_string())?
            .map_err(|e| format!("{name}: commit offsets: {e}"))?;
    }
    let commit_secs = start.elapsed().as_secs_f64();
    eprintln!("[bench] {name}: {n} offsets committed in {commit_secs:.1} s; waiting two persist intervals");
    tokio::time::sleep(2 * INTERVAL + Duration::from_secs(1)).await;
    let (w0, c0) = (wchar(kid.pid()), compat_tests::bench::cpu_ticks(kid.pid()));
    for i in 0..10 {
        let r = conn
            .request(commit(i * 97, 200), Duration::from_secs(30))
            .await
            .map_err(|e| format!("{name}: commit: {e}"))?;
        if r.code != 0 {
            return Err(format!("{name}: commit: {:?}", r.remark));
        }
    }
    tokio::time::sleep(3 * INTERVAL).await;
    let (w1, c1) = (wchar(kid.pid()), compat_tests::bench::cpu_ticks(kid.pid()));
    let run = OffsetRun {
        offsets: n,
        commit_secs,
        bytes_per_interval: (w1 - w0) as f64 / 3.0,
        cpu_ms_per_interval: (c1 - c0) as f64 * 1000.0 / compat_tests::bench::clk_tck() / 3.0,
    };
    eprintln!(
        "[bench] {name}: 10 of {n} offsets moved: {:.0} B written and {:.1} ms CPU per 5 s interval",
        run.bytes_per_interval, run.cpu_ms_per_interval
    );
    Ok(run)
}

struct Point {
    topics: usize,
    secs: f64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    rss_mib: f64,
    bytes_per_create: f64,
}

type Outcome = (Vec<Point>, Option<String>, Option<OffsetRun>);

fn drive(name: &str, kid: &Kid, port: u16, o: &Opts) -> Res<Outcome> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // The broker answers admin codes once it is up: poll one harmless call.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let conn = Connection::connect(addr, Arc::new(Router::new()))
            .await
            .map_err(|e| format!("{name}: connect: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let r = conn
                .request(RemotingCommand::request(rq::GET_ALL_TOPIC_CONFIG), Duration::from_secs(5))
                .await;
            if matches!(&r, Ok(c) if c.code == 0) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{name}: no answer to GET_ALL_TOPIC_CONFIG"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut points = Vec::new();
        let mut hist = Histogram::new();
        let start = Instant::now();
        let mut w0 = wchar(kid.pid());
        let last = *o.checkpoints.last().unwrap_or(&0);
        let mut stopped = None;
        let mut created = 0;
        for i in 0..last {
            if start.elapsed().as_secs() >= o.max_secs {
                stopped = Some(format!("{name}: stopped by --max-secs {} at {i} topics", o.max_secs));
                break;
            }
            let req = RemotingCommand::request(rq::UPDATE_AND_CREATE_TOPIC)
                .with_ext("topic", format!("BenchMeta{i:07}"))
                .with_ext("defaultTopic", "TBW102")
                .with_ext("readQueueNums", "8")
                .with_ext("writeQueueNums", "8")
                .with_ext("perm", "6")
                .with_ext("topicFilterType", "SINGLE_TAG")
                .with_ext("topicSysFlag", "0")
                .with_ext("order", "false");
            let t = Instant::now();
            let r = conn
                .request(req, Duration::from_secs(60))
                .await
                .map_err(|e| format!("{name}: create {i}: {e}"))?;
            if r.code != 0 {
                return Err(format!("{name}: create {i}: code {} {:?}", r.code, r.remark));
            }
            hist.record(t.elapsed().as_micros() as u64);
            let n = i + 1;
            created = n;
            if n % WINDOW == 0 && o.checkpoints.contains(&n) {
                let w = wchar(kid.pid());
                let p = Point {
                    topics: n,
                    secs: start.elapsed().as_secs_f64(),
                    p50_us: hist.quantile(0.50),
                    p99_us: hist.quantile(0.99),
                    max_us: hist.quantile(1.0),
                    rss_mib: rss_kib(kid.pid()).unwrap_or(0) as f64 / 1024.0,
                    bytes_per_create: (w.saturating_sub(w0)) as f64 / WINDOW as f64,
                };
                eprintln!(
                    "[bench] {name}: {n} topics in {:.1} s; last {WINDOW}: p50 {} us p99 {} us max {} us; RSS {:.0} MiB; {:.0} B written per create",
                    p.secs, p.p50_us, p.p99_us, p.max_us, p.rss_mib, p.bytes_per_create
                );
                points.push(p);
            }
            if n % WINDOW == 0 {
                hist = Histogram::new();
                w0 = wchar(kid.pid());
            }
        }
        let offsets = if o.offsets > 0 {
            Some(offsets_phase(name, kid, &conn, created, o.offsets).await?)
        } else {
            None
        };
        conn.close();
        Ok((points, stopped, offsets))
    })
}

fn run_ours(root: &Path, work: &Path, o: &Opts) -> Res<Outcome> {
    let d = work.join("ours");
    mkdir(&d)?;
    let port = free_port()?;
    let c = d.join("broker.conf");
    write_file(&c, &conf(port, &d.join("store")))?;
    let mut cmd = Command::new(bench_bins(root).join("mqbroker"));
    cmd.arg("-c")
        .arg(&c)
        .env("HOME", &d)
        .env("RUST_LOG", "warn");
    let kid = Kid::spawn_logged("mqbroker", cmd, &d.join("broker.log"), STOP_GRACE)?;
    wait_listen(port, || kid.is_running(), "mqbroker")?;
    let r = drive("ours", &kid, port, o);
    kid.stop();
    r
}

fn run_java(root: &Path, work: &Path, o: &Opts) -> Res<Outcome> {
    let d = work.join("java");
    mkdir(&d)?;
    let reflib = reference_broker_libs(root, &o.java_version, work)?;
    let port = free_port()?;
    let c = d.join("broker.conf");
    write_file(&c, &conf(port, &d.join("store")))?;
    let heap: Vec<&str> = o.java_heap.iter().map(String::as_str).collect();
    let kid = spawn_java_broker(root, &reflib, &d, &c, &heap)?;
    wait_listen(port, || kid.is_running(), "BrokerStartup")?;
    let r = drive("java", &kid, port, o);
    kid.stop();
    r
}

fn cell(p: Option<&Point>, f: impl Fn(&Point) -> String) -> String {
    p.map_or_else(|| "—".to_owned(), f)
}

fn main() {
    cleanup_on_signals();
    let outcome = (|| -> Res<()> {
        let o = opts()?;
        let root = compat_tests::workspace_root();
        let (work, _guard) = work_dir(&root, None, "bench-meta-")?;
        let ours = if o.only.as_deref() != Some("java") {
            Some(run_ours(&root, &work, &o)?)
        } else {
            None
        };
        let java = if o.only.as_deref() != Some("ours") {
            Some(run_java(&root, &work, &o)?)
        } else {
            None
        };
        println!("| topics | server | time to here | p50 per create | p99 per create | max | broker RSS | bytes written per create |");
        println!("|---:|---|---:|---:|---:|---:|---:|---:|");
        for &n in &o.checkpoints {
            for (name, r) in [
                ("ours", &ours),
                (&*format!("Java {}", o.java_version), &java),
            ] {
                let Some((points, _, _)) = r else { continue };
                let p = points.iter().find(|p| p.topics == n);
                println!(
                    "| {n} | {name} | {} | {} | {} | {} | {} | {} |",
                    cell(p, |p| format!("{:.1} s", p.secs)),
                    cell(p, |p| format!("{:.2} ms", p.p50_us as f64 / 1000.0)),
                    cell(p, |p| format!("{:.2} ms", p.p99_us as f64 / 1000.0)),
                    cell(p, |p| format!("{:.1} ms", p.max_us as f64 / 1000.0)),
                    cell(p, |p| format!("{:.0} MiB", p.rss_mib)),
                    cell(p, |p| format!("{:.0}", p.bytes_per_create)),
                );
            }
        }
        if o.offsets > 0 {
            println!("\n| server | offsets committed | time to commit | bytes written per 5 s interval, 10 moved | broker CPU per interval |");
            println!("|---|---:|---:|---:|---:|");
            for (name, r) in [
                ("ours", &ours),
                (&*format!("Java {}", o.java_version), &java),
            ] {
                if let Some((_, _, Some(x))) = r {
                    println!(
                        "| {name} | {} | {:.1} s | {:.0} | {:.1} ms |",
                        x.offsets, x.commit_secs, x.bytes_per_interval, x.cpu_ms_per_interval
                    );
                }
            }
        }
        for (_, stopped, _) in [&ours, &java].into_iter().flatten() {
            if let Some(s) = stopped {
                println!("\n{s}");
            }
        }
        Ok(())
    })();
    exit_with("bench_meta", outcome);
}
