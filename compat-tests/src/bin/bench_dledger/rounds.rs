//! One group through a run: preparation, warm-up, measured rounds and the outcome.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use compat_tests::bench::{clk_tck, cpu_ticks, mib, Histogram, Latency};
use dledger::config::Timers;
use dledger::protocol::ResponseCode;

use crate::client::{run_load, wait_leader, Terms};
use crate::group::Group;
use crate::opts::Opts;
use crate::BOOT_TIMEOUT;

#[derive(Default, Clone)]
pub(crate) struct Outcome {
    pub(crate) label: String,
    pub(crate) ready_ms: f64,
    pub(crate) idle_rss_kib: u64,
    pub(crate) load_rss_kib: u64,
    pub(crate) load_anon_kib: u64,
    pub(crate) error_codes: BTreeMap<i32, u64>,
    pub(crate) tps: f64,
    pub(crate) appends: u64,
    pub(crate) errors: u64,
    pub(crate) lat: Latency,
    pub(crate) round_tps: Vec<f64>,
    pub(crate) cpu_cores: f64,
    pub(crate) cpu_us_per_append: f64,
    pub(crate) gen_cores: f64,
    pub(crate) leader_changes: i64,
    pub(crate) disturbed_rounds: usize,
    pub(crate) failovers: Vec<Option<Duration>>,
    pub(crate) timers: String,
}

pub(crate) struct Running {
    pub(crate) group: Group,
    pub(crate) leader: usize,
    pub(crate) out: Outcome,
    pub(crate) hist: Histogram,
    pub(crate) elapsed: Duration,
    pub(crate) cpu_ticks: u64,
    pub(crate) gen_ticks: u64,
    pub(crate) terms: Arc<Terms>,
}

pub(crate) fn timers_text(t: Timers) -> String {
    format!(
        "hb {} ms x{}, votes {}-{} ms",
        t.heart_beat_time_interval_ms,
        t.max_heart_beat_leak,
        t.min_vote_interval_ms,
        t.max_vote_interval_ms
    )
}

pub(crate) async fn prepare(group: Group, t0: Instant, o: &Opts) -> Running {
    let mut group = group;
    let leader = wait_leader(&mut group, BOOT_TIMEOUT).await;
    let ready_ms = t0.elapsed().as_secs_f64() * 1e3;
    tokio::time::sleep(o.settle).await;
    let idle_rss_kib = group.rss_kib();
    eprintln!(
        "[bench] {}: leader {} after {ready_ms:.0} ms, idle RSS (3 nodes) {}",
        group.label,
        group.members[leader].id,
        mib(idle_rss_kib)
    );
    Running {
        out: Outcome {
            label: group.label.clone(),
            ready_ms,
            idle_rss_kib,
            timers: timers_text(group.timers),
            ..Default::default()
        },
        group,
        leader,
        hist: Histogram::new(),
        elapsed: Duration::ZERO,
        cpu_ticks: 0,
        gen_ticks: 0,
        terms: Arc::new(Terms::new()),
    }
}

pub(crate) async fn warm_up(r: &mut Running, o: &Opts, payload: &Bytes) {
    if o.warmup.is_zero() {
        return;
    }
    let throwaway = Arc::new(Terms::new());
    let w = run_load(&r.group, r.leader, o, o.warmup, payload, &throwaway).await;
    eprintln!(
        "[bench] {}: warm-up {:?}: {} appends, {} errors",
        r.group.label, o.warmup, w.hist.total, w.errors
    );
    r.leader = wait_leader(&mut r.group, BOOT_TIMEOUT).await;
}

pub(crate) async fn round(r: &mut Running, o: &Opts, n: usize, payload: &Bytes) {
    r.leader = wait_leader(&mut r.group, BOOT_TIMEOUT).await;
    let leader_before = r.leader;
    let me = std::process::id();
    let (cpu0, gen0) = (r.group.cpu_ticks(), cpu_ticks(me));
    let l = run_load(&r.group, r.leader, o, o.duration, payload, &r.terms).await;
    let cpu = r.group.cpu_ticks().saturating_sub(cpu0);
    r.gen_ticks += cpu_ticks(me).saturating_sub(gen0);
    let tps = l.hist.total as f64 / l.elapsed.as_secs_f64();
    eprintln!(
        "[bench] {}: round {n}: {tps:.0} appends/s, p99 {:.0} us, {} errors {:?}, server CPU {:.2} cores",
        r.group.label,
        l.hist.quantile(0.99) as f64 / 1e3,
        l.errors,
        l.error_codes,
        cpu as f64 / clk_tck() / l.elapsed.as_secs_f64()
    );
    r.hist.merge(&l.hist);
    r.elapsed += l.elapsed;
    r.cpu_ticks += cpu;
    r.out.errors += l.errors;
    // Nothing failed, so any NOT_LEADER answer or a new leader after the
    // round means an election the timers should have avoided.
    let leader_after = wait_leader(&mut r.group, BOOT_TIMEOUT).await;
    if l.error_codes.contains_key(&ResponseCode::NotLeader.code()) || leader_after != leader_before
    {
        r.out.disturbed_rounds += 1;
        eprintln!("[bench] {}: round {n}: the leader changed", r.group.label);
    }
    r.leader = leader_after;
    r.out.load_rss_kib = r.out.load_rss_kib.max(l.max_rss_kib);
    r.out.load_anon_kib = r.out.load_anon_kib.max(l.max_anon_kib);
    for (c, n) in &l.error_codes {
        *r.out.error_codes.entry(*c).or_default() += n;
    }
    r.out.round_tps.push(tps);
}

pub(crate) fn finish(mut r: Running) -> (Outcome, Group) {
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let cpu_secs = r.cpu_ticks as f64 / clk_tck();
    let (tmin, tmax) = (
        r.terms.min.load(Ordering::Relaxed),
        r.terms.max.load(Ordering::Relaxed),
    );
    r.out = Outcome {
        appends: r.hist.total,
        tps: r.hist.total as f64 / secs,
        lat: Latency::of(&r.hist),
        cpu_cores: cpu_secs / secs,
        gen_cores: r.gen_ticks as f64 / clk_tck() / secs,
        cpu_us_per_append: if r.hist.total > 0 {
            cpu_secs * 1e6 / r.hist.total as f64
        } else {
            0.0
        },
        leader_changes: if tmax >= tmin { tmax - tmin } else { 0 },
        ..r.out
    };
    (r.out, r.group)
}
