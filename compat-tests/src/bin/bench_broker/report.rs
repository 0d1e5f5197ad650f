//! The report: machine header, the broker and the DLedger comparison tables.

use compat_tests::bench::{awk_str, cpu_model, format_g, nproc, Results};

use crate::opts::Opts;

/// The report's first lines: the machine, when the run started, the load.
pub(crate) fn report_head(started_at: &str, before: &str, after: &str) {
    println!();
    println!(
        "machine: {} CPUs, {}; load generator on the same machine",
        nproc(),
        cpu_model()
    );
    println!("run: {started_at}; load average before: {before}, after: {after}");
}

pub(crate) fn ratio(a: f64, b: f64) -> String {
    if a <= 0.0 || b <= 0.0 {
        "n/a".into()
    } else {
        format_g(a / b, 3)
    }
}

pub(crate) fn cell(r: &Results, s: &str, k: &str, scale: f64, prec: usize) -> String {
    let x = r.val(s, k);
    if x < 0.0 {
        "n/a".into()
    } else {
        format!("{:.*}", prec, x / scale)
    }
}

pub(crate) fn report_broker(o: &Opts, r: &Results) {
    let row = |label: &str, k: &str, scale: f64, prec: usize| {
        println!(
            "| {label:<34} | {:>12} | {:>12} | {:>12} | {:>9} | {:>9} |",
            cell(r, "java", k, scale, prec),
            cell(r, "ours", k, scale, prec),
            cell(r, "echo", k, scale, prec),
            ratio(r.val("ours", k), r.val("java", k)),
            ratio(r.val("ours", k), r.val("echo", k)),
        )
    };
    let goal = |text: &str, ok: bool, got: &str| {
        println!(
            "  {text:<44} {got:<10} {}",
            if ok { "MET" } else { "MISSED" }
        )
    };
    println!(
        "| {:<34} | {:>12} | {:>12} | {:>12} | {:>9} | {:>9} |",
        "", "Java 5.3.3", "ours", "echo", "ours/Java", "ours/echo"
    );
    println!(
        "|{}|{}|{}|{}|{}|{}|",
        "-".repeat(36),
        "-".repeat(14),
        "-".repeat(14),
        "-".repeat(14),
        "-".repeat(11),
        "-".repeat(11)
    );
    row("start -> accepting connections ms", "start_ms", 1.0, 0);
    row("idle RSS MiB", "idle_rss_kib", 1024.0, 1);
    row("peak RSS (VmHWM) MiB", "peak_rss_kib", 1024.0, 1);
    row("  at end: RssAnon MiB", "end_anon_kib", 1024.0, 1);
    row("  at end: RssFile (mapped) MiB", "end_file_kib", 1024.0, 1);
    for t in o.threads.split(',') {
        row(
            &format!("send TPS, {t} threads"),
            &format!("send{t}_tps"),
            1.0,
            0,
        );
        row("  p50 latency us", &format!("send{t}_p50_us"), 1.0, 0);
        row("  p99 latency us", &format!("send{t}_p99_us"), 1.0, 0);
        row("  p99.9 latency us", &format!("send{t}_p999_us"), 1.0, 0);
        row(
            "  server CPU us/msg",
            &format!("send{t}_cpu_us_per_msg"),
            1.0,
            2,
        );
        row(
            "  generator CPU us/msg",
            &format!("send{t}_gen_cpu_us_per_msg"),
            1.0,
            2,
        );
        row("  errors", &format!("send{t}_errors"), 1.0, 0);
    }
    row("consume msg/s (first to last msg)", "consume_mps", 1.0, 0);
    row(
        "  start() -> first message ms",
        "consume_first_msg_after_ms",
        1.0,
        0,
    );
    row("  server CPU us/msg", "consume_cpu_us_per_msg", 1.0, 2);
    row(
        "  consumer CPU us/msg",
        "consume_gen_cpu_us_per_msg",
        1.0,
        2,
    );
    println!();
    println!(
        "ratios are ours / other: above 1 is better for TPS, below 1 for latency, RSS, CPU and start-up"
    );
    println!();
    println!("goals (issue 9):");
    let v = |s: &str, k: &str| r.val(s, k);
    for t in o.threads.split(',') {
        let k = format!("send{t}_tps");
        let (ours, java, echo) = (v("ours", &k), v("java", &k), v("echo", &k));
        if ours > 0.0 && java > 0.0 {
            goal(
                &format!("send TPS >= 2x Java, {t} threads"),
                ours >= 2.0 * java,
                &format!("{}x", ratio(ours, java)),
            );
        }
        if ours > 0.0 && echo > 0.0 {
            goal(
                &format!("send TPS >= 70% of echo, {t} threads"),
                ours >= 0.7 * echo,
                &format!("{:.0}%", 100.0 * ours / echo),
            );
        }
        let k = format!("send{t}_p99_us");
        let (ours, java) = (v("ours", &k), v("java", &k));
        if ours > 0.0 && java > 0.0 {
            goal(
                &format!("p99 <= 0.5x Java, {t} threads"),
                ours <= 0.5 * java,
                &format!("{}x", ratio(ours, java)),
            );
        }
    }
    let (ours, java) = (v("ours", "consume_mps"), v("java", "consume_mps"));
    if ours > 0.0 && java > 0.0 {
        goal(
            "consume TPS >= 2x Java",
            ours >= 2.0 * java,
            &format!("{}x", ratio(ours, java)),
        );
    }
    let (ours, java) = (v("ours", "idle_rss_kib"), v("java", "idle_rss_kib"));
    if ours > 0.0 && java > 0.0 {
        goal(
            "idle RSS <= 1/20 of Java",
            20.0 * ours <= java,
            &format!("1/{:.0}", java / ours),
        );
    }
    let (ours, java) = (v("ours", "start_ms"), v("java", "start_ms"));
    if ours >= 0.0 && java > 0.0 {
        let got = if ours > 0.0 {
            format!("{:.0}", java / ours)
        } else {
            "inf".into()
        };
        goal(
            "start-up <= 1/20 of Java",
            20.0 * ours <= java,
            &format!("1/{got}"),
        );
    }
}

pub(crate) fn report_dledger(o: &Opts, r: &Results) {
    let row = |label: &str, k: &str, prec: usize| {
        println!(
            "| {label:<30} | {:>12} | {:>12} | {:>9} |",
            cell(r, "java", k, 1.0, prec),
            cell(r, "ours", k, 1.0, prec),
            ratio(r.val("ours", k), r.val("java", k)),
        )
    };
    let goal = |text: &str, ok: bool, got: &str| {
        println!(
            "  {text:<40} {got:<10} {}",
            if ok { "MET" } else { "MISSED" }
        )
    };
    if r.val("java", "failed") > 0.0 {
        println!("Java DLedger group did not start (see the log above)");
    }
    if r.val("ours", "failed") > 0.0 {
        println!("our DLedger group did not start (see the log above)");
    }
    println!(
        "| {:<30} | {:>12} | {:>12} | {:>9} |",
        "3-member DLedger group", "Java 5.3.3", "ours", "ours/Java"
    );
    println!(
        "|{}|{}|{}|{}|",
        "-".repeat(32),
        "-".repeat(14),
        "-".repeat(14),
        "-".repeat(11)
    );
    for t in o.threads.split(',') {
        row(
            &format!("send TPS, {t} threads"),
            &format!("send{t}_tps"),
            0,
        );
        row("  p50 latency us", &format!("send{t}_p50_us"), 0);
        row("  p99 latency us", &format!("send{t}_p99_us"), 0);
        row("  master CPU us/msg", &format!("send{t}_cpu_us_per_msg"), 2);
        row("  errors", &format!("send{t}_errors"), 0);
    }
    row("failover ms (SIGKILL -> ack)", "failover_ms", 0);
    println!();
    println!("goals (issue 8):");
    for t in o.threads.split(',') {
        let k = format!("send{t}_tps");
        let (ours, java) = (r.val("ours", &k), r.val("java", &k));
        if ours > 0.0 && java > 0.0 {
            goal(
                &format!("send TPS >= 3x Java, {t} threads"),
                ours >= 3.0 * java,
                &format!("{}x", ratio(ours, java)),
            );
        }
    }
    let f = r.val("ours", "failover_ms");
    if f >= 0.0 {
        goal(
            "failover <= 1.5 s",
            f <= 1500.0,
            &format!("{} ms", awk_str(f)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compat_tests::bench::{awk_num, awk_str};
    use std::path::PathBuf;
    #[test]
    fn result_lines_become_records() {
        let mut r = Results {
            file: PathBuf::from("/dev/null"),
            v: std::collections::HashMap::new(),
        };
        r.record(
            "ours",
            "noise\nRESULT send threads=4 sent=10 tps=123.5 p99_us=77\n\
             RESULT consume mode=push mps=900 first_msg_after_ms=12\n",
        );
        assert_eq!(r.val("ours", "send4_tps"), 123.5);
        assert_eq!(r.val("ours", "send4_p99_us"), 77.0);
        assert_eq!(r.val("ours", "consume_mps"), 900.0);
        assert_eq!(r.val("ours", "consume_mode"), 0.0);
        assert_eq!(r.val("java", "send4_tps"), -1.0);
        assert_eq!(awk_num(" 12.5e3x"), 12500.0);
        assert_eq!(awk_num("1e"), 1.0);
        assert_eq!(awk_num(""), 0.0);
        assert_eq!(awk_str(1234.0), "1234");
        assert_eq!(ratio(3.0, 2.0), "1.5");
        assert_eq!(ratio(-1.0, 2.0), "n/a");
    }
}
