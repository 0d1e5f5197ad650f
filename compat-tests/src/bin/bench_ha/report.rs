//! The comparison table and the goal lines printed at the end of a run.

use compat_tests::bench::Results;

use crate::opts::Opts;

pub(crate) fn fmt_ratio(a: f64, b: f64) -> String {
    if a <= 0.0 || b <= 0.0 {
        "n/a".into()
    } else {
        format!("{:.2}", a / b)
    }
}

pub(crate) fn report(o: &Opts, r: &Results) {
    let cell = |s: &str, k: &str, prec: usize| {
        let v = r.val(s, k);
        if v < 0.0 {
            "n/a".to_owned()
        } else {
            format!("{v:.prec$}")
        }
    };
    let row = |label: &str, k: &str, prec: usize| {
        println!(
            "| {label:<40} | {:>12} | {:>12} | {:>9} |",
            cell("java", k, prec),
            cell("ours", k, prec),
            fmt_ratio(r.val("ours", k), r.val("java", k))
        )
    };
    println!(
        "| {:<40} | {:>12} | {:>12} | {:>9} |",
        "master + slave", "Java 5.3.3", "ours", "ours/Java"
    );
    println!(
        "|{}|{}|{}|{}|",
        "-".repeat(42),
        "-".repeat(14),
        "-".repeat(14),
        "-".repeat(11)
    );
    for t in &o.thread_counts {
        row(
            &format!("SYNC_MASTER send TPS, {t} threads"),
            &format!("sync{t}_tps"),
            0,
        );
        row("  p50 latency us", &format!("sync{t}_p50_us"), 0);
        row("  p99 latency us", &format!("sync{t}_p99_us"), 0);
        row("  p99.9 latency us", &format!("sync{t}_p999_us"), 0);
        row("  master CPU us/msg", &format!("sync{t}_cpu_us_per_msg"), 2);
        row(
            "  slave CPU us/msg",
            &format!("sync{t}_slave_cpu_us_per_msg"),
            2,
        );
        row(
            "  generator CPU us/msg",
            &format!("sync{t}_gen_cpu_us_per_msg"),
            2,
        );
        row("  errors", &format!("sync{t}_errors"), 0);
    }
    row("  time without a slave connected %", "sync_no_slave_pct", 1);
    let t = o.thread_counts.iter().max().copied().unwrap_or(64);
    row(
        &format!("ASYNC_MASTER send TPS, {t} threads"),
        &format!("async{t}_tps"),
        0,
    );
    row("  p99 latency us", &format!("async{t}_p99_us"), 0);
    row(
        "  master CPU us/msg",
        &format!("async{t}_cpu_us_per_msg"),
        2,
    );
    row("  time without a slave connected %", "lag_no_slave_pct", 1);
    row("  lag bytes: p50", "lag_bytes_p50", 0);
    row("  lag bytes: mean", "lag_bytes_mean", 0);
    row("  lag bytes: p99", "lag_bytes_p99", 0);
    row("  lag bytes: max", "lag_bytes_max", 0);
    row("  lag ms: p50", "lag_ms_p50", 2);
    row("  lag ms: mean", "lag_ms_mean", 2);
    row("  lag ms: p99", "lag_ms_p99", 2);
    row("  lag ms: max", "lag_ms_max", 2);
    row("  samples with no lag %", "lag_zero_pct", 1);
    row("  907 samples with a slave listed", "lag_samples", 0);
    if o.catchup_gib > 0.0 {
        row("catch-up: MiB copied", "catchup_mib", 1);
        row("  first 907 row -> caught up ms", "catchup_ms", 0);
        row("  slave spawn -> caught up ms", "catchup_wall_ms", 0);
        row("  rate MB/s", "catchup_mbps", 1);
        row("  disk seq. write (write+fsync) MB/s", "disk_mbps", 1);
        row("  % of the disk's write speed", "catchup_pct_disk", 1);
        row("  slave CPU s per GiB", "catchup_slave_cpu_s_per_gib", 2);
    }
    println!();
    println!("ratios are ours / Java: above 1 is better for TPS and rates, below 1 for latency, lag and CPU");
    println!();
    println!("goals (issue 19):");
    let goal = |text: &str, ok: bool, got: String| {
        println!(
            "  {text:<44} {got:<10} {}",
            if ok { "MET" } else { "MISSED" }
        )
    };
    for t in &o.thread_counts {
        let k = format!("sync{t}_tps");
        let (ours, java) = (r.val("ours", &k), r.val("java", &k));
        if ours > 0.0 && java > 0.0 {
            goal(
                &format!("SYNC_MASTER TPS >= 2x Java, {t} threads"),
                ours >= 2.0 * java,
                format!("{}x", fmt_ratio(ours, java)),
            );
        }
        let k = format!("sync{t}_p99_us");
        let (ours, java) = (r.val("ours", &k), r.val("java", &k));
        if ours > 0.0 && java > 0.0 {
            goal(
                &format!("SYNC_MASTER p99 <= 0.5x Java, {t} threads"),
                ours <= 0.5 * java,
                format!("{}x", fmt_ratio(ours, java)),
            );
        }
    }
    let pct = r.val("ours", "catchup_pct_disk");
    if pct >= 0.0 {
        goal(
            "catch-up >= 80% of disk sequential write",
            pct >= 80.0,
            format!("{pct:.0}%"),
        );
    }
}
