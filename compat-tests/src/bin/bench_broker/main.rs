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

mod bench;
mod dledger;
mod opts;
mod report;

use std::path::Path;
use std::time::{Duration, Instant};

use compat_tests::bench::{
    bench_bins, cleanup_on_signals, free_port_block, loadavg, on_path, reference_broker_libs,
    status_kib, utc_minute, work_dir, Drivers, Res, Results,
};
use compat_tests::workspace_root;

use crate::bench::Bench;
use crate::opts::{parse_args, usage, Opts};
use crate::report::{report_broker, report_dledger, report_head};

/// The drivers' own timeouts are inside; these bound them from outside.
pub(crate) const DRIVER_SLACK: Duration = Duration::from_secs(300);
pub(crate) const FILL_TIMEOUT: Duration = Duration::from_secs(1800);
pub(crate) const CONSUME_TIMEOUT_SECS: u64 = 300;
pub(crate) const FAILOVER_TIMEOUT_SECS: u64 = 120;

pub(crate) fn log(msg: &str) {
    eprintln!("[bench] {msg}");
}

pub(crate) fn ms_since(t0: Instant) -> u128 {
    t0.elapsed().as_millis()
}

/// A port p with p-2 (VIP channel), p and p+1 (HA) free.
pub(crate) fn free_block() -> Res<u16> {
    free_port_block(15000, 30000).ok_or_else(|| "no free port block".to_owned())
}

pub(crate) fn kib(pid: u32, key: &str) -> String {
    status_kib(pid, key).unwrap_or(0).to_string()
}

pub(crate) fn print_file(path: &Path) {
    eprint!("{}", std::fs::read_to_string(path).unwrap_or_default());
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
    compat_tests::bench::exit_with("bench_broker", run(o));
}
