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

mod load;
mod opts;
mod report;
mod rounds;
mod servers;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use compat_tests::bench::loadavg;
use compat_tests::{bin_dir, reference_libs};

use crate::opts::parse_args;
use crate::report::{print_report, LOAD_BEFORE};
use crate::rounds::{finish, prepare, round, warm_up, Outcome};
use crate::servers::{spawn_java, spawn_ours};

pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// Hard cap on requests per load connection per phase (besides the deadline).
pub(crate) const MAX_REQUESTS_PER_CONN: u64 = 500_000_000;

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
