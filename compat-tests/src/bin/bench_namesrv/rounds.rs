//! One server through a run: outcome, preparation, warm-up, measured rounds, finish.

use std::time::{Duration, Instant};

use compat_tests::bench::{clk_tck, cpu_ticks, rss_kib, Histogram, Latency};
use remoting::Connection;

use crate::load::run_load;
use crate::opts::Opts;
use crate::servers::{register_fake_broker, wait_ready, Server};

#[derive(Default, Clone)]
pub(crate) struct Outcome {
    pub(crate) label: String,
    pub(crate) route_body_len: usize,
    pub(crate) connect_ms: f64,
    pub(crate) answer_ms: f64,
    pub(crate) idle_rss_kib: u64,
    pub(crate) load_rss_kib: u64,
    pub(crate) qps: f64,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) lat: Latency,
    pub(crate) clean_exit: bool,
    pub(crate) round_qps: Vec<f64>,
    pub(crate) cpu_cores: f64,
    pub(crate) cpu_us_per_req: f64,
    pub(crate) gen_cores: f64,
    pub(crate) gen_us_per_req: f64,
}

/// A started, registered server between load rounds.
pub(crate) struct Running {
    pub(crate) server: Server,
    pub(crate) broker: Connection,
    pub(crate) out: Outcome,
    pub(crate) hist: Histogram,
    pub(crate) elapsed: Duration,
    pub(crate) cpu_ticks: u64,
    /// CPU time of this process (the load generator) during the rounds.
    pub(crate) gen_ticks: u64,
}

/// Start-up timing, fake broker, idle RSS, warm-up.
pub(crate) async fn prepare(mut server: Server, t0: Instant, o: &Opts) -> Running {
    let pid = server.proc.pid();
    let (connect_ms, answer_ms) = wait_ready(&mut server, t0).await;
    eprintln!(
        "[bench] {}: pid {pid}, listening after {connect_ms:.0} ms, answering after {answer_ms:.0} ms",
        server.label
    );
    let (broker, route_body_len) = register_fake_broker(&server.addr, o.topics).await;
    tokio::time::sleep(o.settle).await;
    let idle_rss_kib = rss_kib(pid).unwrap_or(0);
    eprintln!("[bench] {}: idle RSS {} KiB", server.label, idle_rss_kib);
    Running {
        out: Outcome {
            label: server.label.clone(),
            route_body_len,
            connect_ms,
            answer_ms,
            idle_rss_kib,
            ..Default::default()
        },
        server,
        broker,
        hist: Histogram::new(),
        elapsed: Duration::ZERO,
        cpu_ticks: 0,
        gen_ticks: 0,
    }
}

pub(crate) async fn warm_up(r: &Running, o: &Opts) {
    if o.warmup.is_zero() {
        return;
    }
    let w = run_load(
        &r.server.addr,
        r.server.proc.pid(),
        o,
        o.warmup,
        r.out.route_body_len,
    )
    .await;
    eprintln!(
        "[bench] {}: warm-up {:?}: {} requests, {} errors",
        r.server.label, o.warmup, w.requests, w.errors
    );
}

/// One measured round; accumulates into `r`. Returns the round's QPS.
pub(crate) async fn round(r: &mut Running, o: &Opts, n: usize) -> f64 {
    let pid = r.server.proc.pid();
    let me = std::process::id();
    let (cpu0, gen0) = (cpu_ticks(pid), cpu_ticks(me));
    let l = run_load(&r.server.addr, pid, o, o.duration, r.out.route_body_len).await;
    let cpu = cpu_ticks(pid).saturating_sub(cpu0);
    r.gen_ticks += cpu_ticks(me).saturating_sub(gen0);
    let qps = l.requests as f64 / l.elapsed.as_secs_f64();
    eprintln!(
        "[bench] {}: round {n}: {qps:.0} req/s, p99 {:.0} us, {} errors, server CPU {:.2} cores",
        r.server.label,
        l.hist.quantile(0.99) as f64 / 1e3,
        l.errors,
        cpu as f64 / clk_tck() / l.elapsed.as_secs_f64()
    );
    r.hist.merge(&l.hist);
    r.elapsed += l.elapsed;
    r.cpu_ticks += cpu;
    r.out.errors += l.errors;
    r.out.load_rss_kib = r.out.load_rss_kib.max(l.max_rss_kib);
    r.out.round_qps.push(qps);
    qps
}

pub(crate) fn finish(mut r: Running) -> Outcome {
    r.broker.close();
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let cpu_secs = r.cpu_ticks as f64 / clk_tck();
    let out = Outcome {
        requests: r.hist.total,
        qps: r.hist.total as f64 / secs,
        lat: Latency::of(&r.hist),
        cpu_cores: cpu_secs / secs,
        gen_cores: r.gen_ticks as f64 / clk_tck() / secs,
        gen_us_per_req: if r.hist.total > 0 {
            r.gen_ticks as f64 / clk_tck() * 1e6 / r.hist.total as f64
        } else {
            0.0
        },
        cpu_us_per_req: if r.hist.total > 0 {
            cpu_secs * 1e6 / r.hist.total as f64
        } else {
            0.0
        },
        ..r.out
    };
    eprintln!("[bench] {}: stopping (SIGTERM)", r.server.label);
    let status = r.server.proc.stop(Duration::from_secs(20));
    Outcome {
        // Java exits with 143 on SIGTERM after its shutdown hooks; what
        // counts is that it went away within the grace period.
        clean_exit: status.is_some(),
        ..out
    }
}
