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

mod client;
mod group;
mod opts;
mod report;
mod rounds;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use compat_tests::bench::loadavg;
use compat_tests::{bin_dir, java_client, workspace_root};
use dledger::config::{JAVA_TIMERS, OUR_TIMERS};

use crate::client::failover;
use crate::group::{Group, Kind};
use crate::opts::parse_args;
use crate::report::print_report;
use crate::rounds::{finish, prepare, round, warm_up, Outcome};

pub(crate) const GROUP: &str = "bench";
pub(crate) const NODES: usize = 3;
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest failover we wait for before calling it failed.
pub(crate) const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);
/// Appends in flight during a failover measurement.
pub(crate) const FAILOVER_INFLIGHT: usize = 8;
/// Hard cap on appends per worker task per phase (besides the deadline).
pub(crate) const MAX_APPENDS_PER_TASK: u64 = 50_000_000;

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
