//! The side-by-side table, ratios and goals.

use compat_tests::bench::{goal, ratio, Results};

use crate::opts::Opts;
use crate::phases::{Fault, SideResult};

/// The median of the measured times; a round without an acknowledged send
/// counts as the timeout.
pub(crate) fn median(faults: &[Fault], timeout_ms: f64) -> f64 {
    compat_tests::bench::median(faults.iter().map(|f| f.ms.unwrap_or(timeout_ms)).collect())
}

fn rounds(faults: &[Fault]) -> String {
    faults
        .iter()
        .map(|f| f.ms.map_or("none".into(), |m| format!("{m:.0}")))
        .collect::<Vec<_>>()
        .join(" / ")
}

fn errors(faults: &[Fault]) -> String {
    faults
        .iter()
        .map(|f| f.errors.to_string())
        .collect::<Vec<_>>()
        .join(" / ")
}

fn whole(faults: &[Fault]) -> String {
    faults
        .iter()
        .map(|f| {
            f.whole_ms
                .map_or("never".into(), |m| format!("{:.1}", m / 1e3))
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

/// A ratio, or "-" when a side was not run.
fn rcell(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}")
    } else {
        "-".into()
    }
}

fn cell(v: f64, digits: usize) -> String {
    if v < 0.0 || !v.is_finite() {
        "-".into()
    } else {
        format!("{v:.digits$}")
    }
}

pub(crate) fn report(
    o: &Opts,
    res: &Results,
    java: Option<&SideResult>,
    ours: Option<&SideResult>,
) {
    println!("| 3 controllers + 3 brokers | Java 5.3.3 | ours | ours/Java |");
    println!("|---|---:|---:|---:|");
    let mut tps_ok = true;
    for t in &o.thread_counts {
        let v = |s: &str, k: &str| res.val(s, &format!("send{t}_{k}"));
        let (j, u) = (v("java", "tps"), v("ours", "tps"));
        tps_ok &= ratio(u, j) >= 2.0;
        println!(
            "| send TPS, {t} threads (allAckInSyncStateSet) | {} | {} | **{}×** |",
            cell(j, 0),
            cell(u, 0),
            rcell(ratio(u, j))
        );
        println!(
            "| p50 / p99 µs, {t} threads | {} / {} | {} / {} | {} / {} |",
            cell(v("java", "p50_us"), 0),
            cell(v("java", "p99_us"), 0),
            cell(v("ours", "p50_us"), 0),
            cell(v("ours", "p99_us"), 0),
            rcell(ratio(v("ours", "p50_us"), v("java", "p50_us"))),
            rcell(ratio(v("ours", "p99_us"), v("java", "p99_us"))),
        );
        println!(
            "| master / generator CPU µs/msg, {t} threads | {} / {} | {} / {} | {} |",
            cell(v("java", "cpu_us_per_msg"), 1),
            cell(v("java", "gen_cpu_us_per_msg"), 1),
            cell(v("ours", "cpu_us_per_msg"), 1),
            cell(v("ours", "gen_cpu_us_per_msg"), 1),
            rcell(ratio(
                v("ours", "cpu_us_per_msg"),
                v("java", "cpu_us_per_msg")
            )),
        );
        println!(
            "| send errors, {t} threads | {} | {} | |",
            cell(v("java", "errors"), 0),
            cell(v("ours", "errors"), 0)
        );
    }
    let timeout_ms = o.failover_timeout as f64 * 1e3;
    let empty = SideResult::default();
    let (j, u) = (java.unwrap_or(&empty), ours.unwrap_or(&empty));
    let mut fail_ok = true;
    for (what, jf, uf) in [
        ("SIGKILL", &j.kills, &u.kills),
        ("SIGSTOP", &j.stops, &u.stops),
    ] {
        let (jm, um) = (median(jf, timeout_ms), median(uf, timeout_ms));
        fail_ok &= ratio(um, jm) <= 0.25;
        println!(
            "| master {what} → first SEND_OK, ms per round | {} | {} | |",
            rounds(jf),
            rounds(uf)
        );
        println!(
            "| master {what} → first SEND_OK, median | {} ms | {} ms | **{}** |",
            cell(jm, 0),
            cell(um, 0),
            rcell(ratio(um, jm))
        );
        println!(
            "| failed sends before it, per round | {} | {} | |",
            errors(jf),
            errors(uf)
        );
        println!(
            "| old master back → set whole, s per round | {} | {} | |",
            whole(jf),
            whole(uf)
        );
    }
    println!();
    if java.is_some() && ours.is_some() {
        println!(
            "goal send TPS >= 2x Java's at every thread count: {}",
            goal(tps_ok)
        );
        println!(
            "goal failover <= 1/4 of Java's (median, SIGKILL and SIGSTOP): {}",
            goal(fail_ok)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(ms: Option<f64>) -> Fault {
        Fault {
            ms,
            errors: 0,
            whole_ms: None,
        }
    }

    #[test]
    fn medians() {
        assert_eq!(
            median(&[f(Some(3.0)), f(Some(1.0)), f(Some(2.0))], 9.0),
            2.0
        );
        assert_eq!(median(&[f(Some(1.0)), f(None)], 9.0), 5.0);
        assert!(median(&[], 9.0).is_nan());
    }
}
