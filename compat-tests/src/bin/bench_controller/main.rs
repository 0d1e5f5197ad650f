//! `bench_controller`: controller mode (RIP-44), ours beside Java's, in the
//! same shape: 3 controllers and one broker set of 3 brokers with
//! `allAckInSyncStateSet=true`.
//!
//! - **Java**: 3 `ControllerStartup` 5.3.3 (one DLedger group), one
//!   `NamesrvStartup` 5.3.3, 3 `BrokerStartup` 5.3.3 in controller mode
//!   (`-Xms256m -Xmx512m`, G1).
//! - **Ours**: 3 `mqnamesrv` with `enableControllerInNamesrv=true` (the
//!   controllers' DLedger group inside our name servers), 3 `mqbroker`.
//!
//! Each product runs at its own defaults; the harness sets only ports,
//! paths, `bindAddress`/`brokerIP*` 127.0.0.1, 4 MiB controller DLedger
//! files, 64 MiB commit-log files, ASYNC_FLUSH, the controller-mode keys
//! (`enableControllerMode`, `controllerAddr`, `brokerId=-1`,
//! `allAckInSyncStateSet=true`) and the compat keys (auto-create topics and
//! groups). The load generator is the official Java client on both sides:
//!
//! 1. **Send TPS**: `compat.BenchProducer send` (T threads sharing one
//!    producer, closed loops of synchronous 1 KiB sends, no retries; a
//!    warm-up at the largest T, then `--duration` s per T). A send is
//!    answered once every broker of the SyncStateSet holds it.
//! 2. **Failover**, `--rounds` times each, SIGKILL and SIGSTOP alternating:
//!    `compat.BenchFailover` (route poll every 100 ms, 1 s send timeout, no
//!    retries) sends 50 messages, signals the master its route names and
//!    times the signal → the first SEND_OK, so route discovery by a real
//!    client is inside the figure. It runs `kill -KILL <pid>`; a `kill` put
//!    first on its PATH sends the round's signal instead. Then the old
//!    master is restarted on its store (SIGKILL) or resumed (SIGCONT), and
//!    the next round waits until the SyncStateSet holds 3 brokers again and
//!    every name server routes to its master.
//!
//! Usage: bench_controller [--only ours|java] [--threads 16,64]
//!        [--duration SECS] [--warmup SECS] [--size BYTES] [--rounds R]
//!        [--failover-timeout SECS] [--java-version V] [--keep DIR]
//!
//! Defaults: threads 16,64, 20 s each after a 10 s warm-up, 1 KiB bodies,
//! 2 rounds of each fault, 90 s failover timeout. Our binaries are found as
//! the compat harness finds them (`$MQ_BIN_DIR`, else `target/release`);
//! `scripts/bench-controller.sh` builds them. The work folder (temporary
//! unless `--keep DIR`) holds our brokers' stores and logs, the drivers'
//! outputs and `results.txt`; controllers and Java brokers use their own
//! temporary folders. Every wait is bounded; servers are stopped when the
//! run ends or fails.

mod cluster;
mod opts;
mod phases;
mod report;

use std::time::Duration;

use compat_tests::bench::{
    cleanup_on_signals, cpu_model, loadavg, nproc, on_path, utc_minute, work_dir, Drivers, Res,
    Results,
};
use compat_tests::workspace_root;

use crate::cluster::Side;
use crate::opts::{parse_args, Opts, USAGE};
use crate::phases::run_side;
use crate::report::report;

pub(crate) const TOPIC: &str = "BenchTopic";
pub(crate) const COMMIT_LOG_FILE: u64 = 64 * 1024 * 1024;
/// Longest wait for the broker set to be whole (start, after a fault).
pub(crate) const CLUSTER_WAIT: Duration = Duration::from_secs(180);

pub(crate) fn log(msg: &str) {
    eprintln!("[bench] {msg}");
}

fn run(o: Opts) -> Res<()> {
    if !on_path("java") {
        return Err("'java' is required but not installed".into());
    }
    let root = workspace_root();
    let (work, _remove_work) = work_dir(&root, o.keep.as_deref(), "rmq-bench-ctl-")?;
    let drv = Drivers::prepare(&root, &o.ver, &work)?;
    // The reference jars (controllers, name server, brokers), before timing.
    let _ = compat_tests::reference_libs(&o.ver);
    let mut results = Results::create(work.join("results.txt"))?;
    let before = loadavg();
    let started_at = utc_minute();
    let (mut java, mut ours) = (None, None);
    for s in &o.only {
        let side = if s == "java" { Side::Java } else { Side::Ours };
        let r = run_side(&o, &drv, &work, side, &mut results)?;
        for (what, faults) in [("kill", &r.kills), ("stop", &r.stops)] {
            for (i, f) in faults.iter().enumerate() {
                results.put(
                    side.name(),
                    &format!("{what}{}_ms", i + 1),
                    &f.ms.map_or("-1".into(), |m| format!("{m:.0}")),
                );
            }
        }
        match side {
            Side::Java => java = Some(r),
            Side::Ours => ours = Some(r),
        }
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
        "load: sync send, {}-byte bodies, threads {}, {}s each after {}s warm-up; {} rounds of \
         each fault",
        o.size, o.threads, o.duration, o.warmup, o.rounds
    );
    println!();
    report(&o, &results, java.as_ref(), ours.as_ref());
    Ok(())
}

fn main() {
    cleanup_on_signals();
    let o = parse_args(std::env::args().skip(1)).unwrap_or_else(|e| {
        eprintln!("bench_controller: {e}\n{USAGE}");
        std::process::exit(2)
    });
    compat_tests::bench::exit_with("bench_controller", run(o));
}
