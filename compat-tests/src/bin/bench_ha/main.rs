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

mod ha_status;
mod nodes;
mod opts;
mod phases;
mod report;

use std::time::Duration;

use compat_tests::bench::{
    bench_bins, cleanup_on_signals, cpu_model, loadavg, nproc, on_path, reference_broker_libs,
    utc_minute, work_dir, Drivers, Res, Results,
};
use compat_tests::workspace_root;

use crate::nodes::Bench;
use crate::opts::{parse_args, Opts, USAGE};
use crate::report::report;

/// The drivers' own timeouts are inside; this bounds them from outside.
pub(crate) const DRIVER_SLACK: Duration = Duration::from_secs(300);
pub(crate) const CLUSTER: &str = "HaBench";
pub(crate) const NAME: &str = "bench-ha";
pub(crate) const TOPIC: &str = "BenchTopic";
/// Body size of the catch-up fill.
pub(crate) const FILL_BODY: u64 = 4096;
pub(crate) const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

pub(crate) fn log(msg: &str) {
    eprintln!("[bench] {msg}");
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
    compat_tests::bench::exit_with("bench_ha", run(o));
}
