//! The comparison tables and goal lines printed at the end of a run.

use compat_tests::bench::{
    cpu_model, goal, latency_rows, loadavg, mib, nproc, per_round, print_table, ratio,
    round_ratios, Row,
};

use crate::opts::Opts;
use crate::rounds::Outcome;

pub(crate) fn print_report(o: &Opts, results: &[Outcome]) {
    println!();
    println!(
        "machine: {} CPUs, {}; load average before run: {}",
        nproc(),
        cpu_model(),
        o_load()
    );
    println!(
        "load: GET_ROUTEINFO_BY_TOPIC (105), {} connections x {} in flight, {} topics, warm-up {:?}, {} alternating rounds of {:?}; load average after: {}",
        o.conns, o.inflight, o.topics, o.warmup, o.rounds, o.duration, loadavg()
    );
    println!();
    let mut rows: Vec<Row<Outcome>> = vec![
        (
            "spawn -> TCP connect",
            Box::new(|r: &Outcome| format!("{:.0} ms", r.connect_ms)),
        ),
        (
            "spawn -> first 105 answer",
            Box::new(|r: &Outcome| format!("{:.0} ms", r.answer_ms)),
        ),
        ("idle RSS", Box::new(|r: &Outcome| mib(r.idle_rss_kib))),
        (
            "RSS under load (max)",
            Box::new(|r: &Outcome| mib(r.load_rss_kib)),
        ),
        (
            "route answer body",
            Box::new(|r: &Outcome| format!("{} bytes", r.route_body_len)),
        ),
        (
            "requests (errors)",
            Box::new(|r: &Outcome| format!("{} ({})", r.requests, r.errors)),
        ),
        (
            "throughput",
            Box::new(|r: &Outcome| format!("{:.0} req/s", r.qps)),
        ),
        (
            "throughput per round",
            Box::new(|r: &Outcome| per_round(&r.round_qps)),
        ),
        (
            "server CPU (cores busy)",
            Box::new(|r: &Outcome| format!("{:.2}", r.cpu_cores)),
        ),
        (
            "server CPU per request",
            Box::new(|r: &Outcome| format!("{:.1} us", r.cpu_us_per_req)),
        ),
        (
            "load generator CPU (cores)",
            Box::new(|r: &Outcome| format!("{:.2}", r.gen_cores)),
        ),
        (
            "generator CPU per request",
            Box::new(|r: &Outcome| format!("{:.2} us", r.gen_us_per_req)),
        ),
    ];
    rows.extend(latency_rows(|r: &Outcome| r.lat));
    rows.push((
        "exited on SIGTERM (20 s)",
        Box::new(|r: &Outcome| {
            if r.clean_exit {
                "yes".into()
            } else {
                "no (SIGKILLed)".into()
            }
        }),
    ));
    print_table(results, |r| &r.label, &rows, 28, 32);
    if let [ours, java] = results {
        let qps = ratio(ours.qps, java.qps);
        let p99 = ratio(java.lat.p99_us, ours.lat.p99_us);
        let rss = ratio(java.idle_rss_kib as f64, ours.idle_rss_kib as f64);
        let rss_load = ratio(java.load_rss_kib as f64, ours.load_rss_kib as f64);
        let start = ratio(java.answer_ms, ours.answer_ms);
        let cpu = ratio(java.cpu_us_per_req, ours.cpu_us_per_req);
        let rounds = round_ratios(&ours.round_qps, &java.round_qps);
        println!();
        println!("ratios (higher = ours better):");
        println!(
            "  throughput ours/Java       {qps:>8.2}x   (goal >= 3x: {})",
            goal(qps >= 3.0)
        );
        println!("  (per round, sorted: {rounds})");
        println!(
            "  server CPU/request Java/ours {cpu:>6.2}x   (= server capacity per core, ours/Java)"
        );
        println!("  p99 latency Java/ours      {p99:>8.2}x");
        println!(
            "  idle RSS Java/ours         {rss:>8.2}x   (goal >= 10x, i.e. ours <= 1/10: {})",
            goal(rss >= 10.0)
        );
        println!("  RSS under load Java/ours   {rss_load:>8.2}x");
        println!("  start-up Java/ours         {start:>8.2}x   (spawn -> first 105 answer)");
    }
}

pub(crate) static LOAD_BEFORE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
pub(crate) fn o_load() -> String {
    LOAD_BEFORE.get().cloned().unwrap_or_default()
}
