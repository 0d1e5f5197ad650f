//! The comparison tables and goal lines printed at the end of a run.

use std::time::Duration;

use compat_tests::bench::{
    cpu_model, goal, latency_rows, loadavg, mib, nproc, per_round, print_table, ratio,
    round_ratios, Row,
};

use crate::opts::Opts;
use crate::rounds::Outcome;
use crate::FAILOVER_INFLIGHT;

pub(crate) fn median(v: &[Duration]) -> Option<Duration> {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied()
}

pub(crate) fn ok_failovers(o: &Outcome) -> Vec<Duration> {
    o.failovers.iter().flatten().copied().collect()
}

pub(crate) fn print_report(o: &Opts, results: &[Outcome], load_before: &str) {
    println!();
    println!(
        "machine: {} CPUs, {}; load average before run: {load_before}",
        nproc(),
        cpu_model()
    );
    println!(
        "load: APPEND (50001) of {}-byte bodies to the leader of a 3-node group, {} connections x {} in flight, \
         warm-up {:?}, {} alternating rounds of {:?}; failover: {} SIGKILLs of the leader per group with {} appends in flight; \
         load average after: {}",
        o.body,
        o.conns,
        o.inflight,
        o.warmup,
        o.rounds,
        o.duration,
        o.failovers,
        FAILOVER_INFLIGHT,
        loadavg()
    );
    println!();
    let ms = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1e3);
    let mut rows: Vec<Row<Outcome>> = vec![
        ("timers", Box::new(|r: &Outcome| r.timers.clone())),
        (
            "start -> agreed leader",
            Box::new(|r: &Outcome| format!("{:.0} ms", r.ready_ms)),
        ),
        (
            "idle RSS (3 nodes)",
            Box::new(|r: &Outcome| mib(r.idle_rss_kib)),
        ),
        (
            "RSS under load (3 nodes, max)",
            Box::new(|r: &Outcome| mib(r.load_rss_kib)),
        ),
        (
            "anon RSS under load (3 nodes)",
            Box::new(|r: &Outcome| mib(r.load_anon_kib)),
        ),
        (
            "appends acked (errors)",
            Box::new(|r: &Outcome| format!("{} ({})", r.appends, r.errors)),
        ),
        (
            "errors by code (-1 = no answer)",
            Box::new(|r: &Outcome| {
                if r.error_codes.is_empty() {
                    "-".to_owned()
                } else {
                    r.error_codes
                        .iter()
                        .map(|(c, n)| format!("{c}: {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            }),
        ),
        (
            "throughput",
            Box::new(|r: &Outcome| format!("{:.0} appends/s", r.tps)),
        ),
        (
            "throughput per round",
            Box::new(|r: &Outcome| per_round(&r.round_tps)),
        ),
        (
            "server CPU (cores busy, 3 nodes)",
            Box::new(|r: &Outcome| format!("{:.2}", r.cpu_cores)),
        ),
        (
            "server CPU per append",
            Box::new(|r: &Outcome| format!("{:.1} us", r.cpu_us_per_append)),
        ),
        (
            "load generator CPU (cores)",
            Box::new(|r: &Outcome| format!("{:.2}", r.gen_cores)),
        ),
    ];
    rows.extend(latency_rows(|r: &Outcome| r.lat));
    rows.extend::<Vec<Row<Outcome>>>(vec![
        (
            "elections under load (rounds hit)",
            Box::new(|r: &Outcome| {
                format!(
                    "{} terms ({} of {} rounds)",
                    r.leader_changes,
                    r.disturbed_rounds,
                    r.round_tps.len()
                )
            }),
        ),
        (
            "failover kill -> ack (ms)",
            Box::new(move |r: &Outcome| {
                r.failovers
                    .iter()
                    .map(|f| f.map_or("none".to_owned(), ms))
                    .collect::<Vec<_>>()
                    .join(" / ")
            }),
        ),
        (
            "failover median",
            Box::new(move |r: &Outcome| {
                median(&ok_failovers(r)).map_or("-".to_owned(), |d| format!("{} ms", ms(d)))
            }),
        ),
    ]);
    // A failover-only group has no load figures.
    let always = [
        "timers",
        "start -> agreed leader",
        "idle RSS (3 nodes)",
        "failover kill -> ack (ms)",
        "failover median",
    ];
    let rows: Vec<Row<Outcome>> = rows
        .into_iter()
        .map(|(name, f)| -> Row<Outcome> {
            if always.contains(&name) {
                (name, f)
            } else {
                (
                    name,
                    Box::new(move |r: &Outcome| {
                        if r.round_tps.is_empty() {
                            "-".to_owned()
                        } else {
                            f(r)
                        }
                    }),
                )
            }
        })
        .collect();
    print_table(results, |r| &r.label, &rows, 33, 34);
    let ours = results.iter().find(|r| r.label.starts_with("ours"));
    let java = results
        .iter()
        .find(|r| r.label.starts_with("Java") && r.appends > 0);
    let java_fast = results.iter().find(|r| r.label.contains("our timers"));
    println!();
    println!("ratios (higher = ours better):");
    if let (Some(ours), Some(java)) = (ours, java) {
        let tps = ratio(ours.tps, java.tps);
        let rounds = round_ratios(&ours.round_tps, &java.round_tps);
        println!(
            "  throughput ours/Java          {tps:>8.2}x   (goal >= 3x: {})",
            goal(tps >= 3.0)
        );
        println!("  (per round, sorted: {rounds})");
        println!(
            "  server CPU/append Java/ours   {:>8.2}x",
            ratio(java.cpu_us_per_append, ours.cpu_us_per_append)
        );
        println!(
            "  p50 latency Java/ours         {:>8.2}x",
            ratio(java.lat.p50_us, ours.lat.p50_us)
        );
        println!(
            "  p99 latency Java/ours         {:>8.2}x",
            ratio(java.lat.p99_us, ours.lat.p99_us)
        );
        println!(
            "  RSS under load Java/ours      {:>8.2}x",
            ratio(java.load_rss_kib as f64, ours.load_rss_kib as f64)
        );
    }
    if let Some(ours) = ours {
        if let Some(m) = median(&ok_failovers(ours)) {
            let worst = ok_failovers(ours).into_iter().max().unwrap_or(m);
            let all = ours.failovers.iter().all(Option::is_some);
            println!(
                "  failover, ours (median {:.2} s, worst {:.2} s)          (goal <= 1.5 s: {})",
                m.as_secs_f64(),
                worst.as_secs_f64(),
                goal(all && m <= Duration::from_millis(1500))
            );
            for other in [java, java_fast].into_iter().flatten() {
                if let Some(j) = median(&ok_failovers(other)) {
                    println!(
                        "  failover {}/ours  {:>8.2}x   (median {:.2} s)",
                        other.label,
                        ratio(j.as_secs_f64(), m.as_secs_f64()),
                        j.as_secs_f64()
                    );
                }
            }
        }
    }
}
