//! A real Prometheus scrapes our broker and the Java 5.3.3 broker (both with
//! `metricsExporterType=PROM`) while the same official Java 5.3.3 client
//! workload (`compat.MetricsWorkload`) runs against each: messages in and
//! out, a retry-exhausted message per DLQ send, a consumer group left with a
//! known lag. Through Prometheus's HTTP API the test checks that every
//! series name and label key Java exports for that workload is on ours too,
//! with the same type (units are in the names), and that the values match
//! the workload on both; then that `mqadmin statsAll`, `brokerStatus` and
//! `clusterList -m` show the live figures on both.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use compat_tests::prometheus::{prometheus_available, scrape, Prometheus};
use compat_tests::{
    free_port, java_client, serial, JavaBroker, JavaClient, OurNamesrv, Proc, StandaloneBroker,
};

const VERSION: &str = "5.3.3";
const PREFIX: &str = "Mx";
const COUNT: usize = 40;
const LAG: usize = 6;
const DLQ: usize = 3;

/// Series Java 5.3.3 exports that we do not (docs/OPERATIONS.md,
/// "Observability"): POP consumption and the timer wheel's internals.
fn not_ours(name: &str) -> bool {
    name.starts_with("rocketmq_pop_") || name.starts_with("rocketmq_timer_")
}

/// Prometheus's own series for a target, not the exporter's.
fn scrape_series(name: &str) -> bool {
    name == "up" || name.starts_with("scrape_")
}

fn exporter_keys(port: u16) -> String {
    format!(
        "metricsExporterType=PROM\nmetricsPromExporterHost=127.0.0.1\nmetricsPromExporterPort={port}\n"
    )
}

/// Series name -> label keys (without `__name__`, `job`, `instance`).
fn label_keys(prom: &Prometheus, job: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in prom.series(job) {
        let Some(name) = s.get("__name__").and_then(|v| v.as_str()) else {
            continue;
        };
        let keys = out.entry(name.to_owned()).or_default();
        for k in s.keys() {
            if !matches!(k.as_str(), "__name__" | "job" | "instance" | "le") {
                keys.insert(k.clone());
            }
        }
    }
    out
}

/// A series' type from the target's metadata: by the family name Prometheus
/// keyed it under (Java's exporter names histogram and gauge families
/// without the unit suffix its samples carry; ours with it).
fn series_type(meta: &BTreeMap<String, (String, String)>, series: &str) -> Option<String> {
    let mut candidates = vec![series.to_owned()];
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = series.strip_suffix(suffix) {
            candidates.push(base.to_owned());
        }
    }
    for c in candidates.clone() {
        for unit in ["_milliseconds", "_bytes"] {
            if let Some(base) = c.strip_suffix(unit) {
                candidates.push(base.to_owned());
            }
        }
    }
    candidates
        .iter()
        .find_map(|c| meta.get(c).map(|(t, _)| t.clone()))
        .filter(|t| t != "unknown")
}

fn value(prom: &Prometheus, promql: &str) -> Option<f64> {
    let r = prom.query(promql);
    r.first().map(|(_, v)| *v)
}

struct Side<'a> {
    job: &'a str,
    ns: &'a str,
    broker_addr: &'a str,
    broker_name: &'a str,
    workload: Proc,
    stop: PathBuf,
}

fn start_workload(
    java: &JavaClient,
    home: PathBuf,
    ns: &str,
    broker: &str,
    job: &str,
) -> (Proc, PathBuf) {
    let stop = home.join("stop");
    let log = home.join(format!("workload-{job}.log"));
    let count = COUNT.to_string();
    let lag = LAG.to_string();
    let dlq = DLQ.to_string();
    let stop_arg = stop.display().to_string();
    let proc = java.spawn(
        &home,
        "compat.MetricsWorkload",
        &[ns, broker, PREFIX, &count, &lag, &dlq, &stop_arg, "120"],
        log,
    );
    (proc, stop)
}

#[test]
fn our_broker_exports_java_metrics_to_a_real_prometheus() {
    assert!(
        prometheus_available(),
        "the `prometheus` binary is missing (Debian: apt-get install prometheus; scripts/test.sh installs it)"
    );
    let _one_at_a_time = serial();
    let started = Instant::now();
    let java = java_client(VERSION);
    let ours_port = free_port();
    let java_port = free_port();
    let ns_ours = OurNamesrv::start();
    let ns_java = OurNamesrv::start();
    let ours = StandaloneBroker::start(&ns_ours.addr, &exporter_keys(ours_port));
    let jb = JavaBroker::start_with(VERSION, &ns_java.addr, &exporter_keys(java_port));
    let ours_target = format!("127.0.0.1:{ours_port}");
    let java_target = format!("127.0.0.1:{java_port}");
    let prom = Prometheus::start(&[("ours", &ours_target), ("java", &java_target)]);

    let (w_ours, stop_ours) = start_workload(
        &java,
        ns_ours.client_home("metrics"),
        &ns_ours.addr,
        &ours.addr,
        "ours",
    );
    let (w_java, stop_java) = start_workload(
        &java,
        ns_java.client_home("metrics"),
        &ns_java.addr,
        &jb.addr,
        "java",
    );
    let mut sides = [
        Side {
            job: "ours",
            ns: &ns_ours.addr,
            broker_addr: &ours.addr,
            broker_name: &ours.broker_name,
            workload: w_ours,
            stop: stop_ours,
        },
        Side {
            job: "java",
            ns: &ns_java.addr,
            broker_addr: &jb.addr,
            broker_name: &jb.broker_name,
            workload: w_java,
            stop: stop_java,
        },
    ];
    let logs = |extra: &str| format!("{extra}\n{}\n{}\n{}", prom.logs(), ours.logs(), jb.logs());

    // Both workloads reach their holding point.
    let deadline = Instant::now() + Duration::from_secs(150);
    for side in sides.iter_mut() {
        loop {
            let out = side.workload.log_text();
            if out.contains("ready ") {
                break;
            }
            assert!(
                !out.contains("FAIL") && side.workload.is_running() && Instant::now() < deadline,
                "workload against {} did not get ready:\n{out}\n{}",
                side.job,
                logs("")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    eprintln!("workloads ready after {:?}", started.elapsed());

    // Prometheus has scraped both after the lag was built up.
    let lag_q = |job: &str| {
        format!(
            "rocketmq_consumer_lag_messages{{job=\"{job}\",consumer_group=\"{PREFIX}_lag\",topic=\"{PREFIX}Lag\"}}"
        )
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    while sides
        .iter()
        .any(|s| value(&prom, &lag_q(s.job)) != Some(LAG as f64))
    {
        assert!(
            Instant::now() < deadline,
            "lag never reached {LAG} in Prometheus: ours {:?}, java {:?}\n--- ours raw ---\n{}\n--- java raw ---\n{}\n{}",
            value(&prom, &lag_q("ours")),
            value(&prom, &lag_q("java")),
            scrape(&ours_target).unwrap_or_default(),
            scrape(&java_target).unwrap_or_default(),
            logs("")
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Names, label keys and types: Java's are all on ours.
    let java_keys = label_keys(&prom, "java");
    let our_keys = label_keys(&prom, "ours");
    let java_meta = prom.metadata("java");
    let our_meta = prom.metadata("ours");
    let mut problems = Vec::new();
    for (name, keys) in &java_keys {
        if not_ours(name) || scrape_series(name) {
            continue;
        }
        let Some(ours) = our_keys.get(name) else {
            problems.push(format!("{name}: missing (Java labels {keys:?})"));
            continue;
        };
        let missing: Vec<_> = keys.difference(ours).collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{name}: label keys {missing:?} missing (ours {ours:?})"
            ));
        }
        let (jt, ot) = (series_type(&java_meta, name), series_type(&our_meta, name));
        // Java's `# TYPE target info` is OpenMetrics' type in a Prometheus
        // text exposition; ours says gauge, which that format has.
        let info = name.ends_with("_info");
        if jt.is_some() && jt != ot && !info {
            problems.push(format!("{name}: type {ot:?}, Java {jt:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "our series differ from Java's:\n{}\n--- ours raw ---\n{}\n--- java raw ---\n{}",
        problems.join("\n"),
        scrape(&ours_target).unwrap_or_default(),
        scrape(&java_target).unwrap_or_default(),
    );

    // Values match the workload on both. The main group's consumers commit
    // their offsets every second: its lag reaches 0 shortly after.
    let main_lag = |job: &str| {
        value(
            &prom,
            &format!("sum(rocketmq_consumer_lag_messages{{job=\"{job}\",consumer_group=\"{PREFIX}_main\"}})"),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while sides.iter().any(|s| main_lag(s.job) != Some(0.0)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut wrong = Vec::new();
    for s in &sides {
        let job = s.job;
        let checks = [
            (
                format!("sum(rocketmq_messages_in_total{{job=\"{job}\",topic=\"{PREFIX}Main\",message_type=\"normal\"}})"),
                COUNT as f64,
            ),
            (
                format!("sum(rocketmq_message_size_count{{job=\"{job}\",topic=\"{PREFIX}Main\"}})"),
                COUNT as f64,
            ),
            (
                format!("sum(rocketmq_messages_out_total{{job=\"{job}\",topic=\"{PREFIX}Main\",consumer_group=\"{PREFIX}_main\"}})"),
                COUNT as f64,
            ),
            (
                format!("sum(rocketmq_send_to_dlq_messages_total{{job=\"{job}\",consumer_group=\"{PREFIX}_dlq\"}})"),
                DLQ as f64,
            ),
            (lag_q(job), LAG as f64),
            (
                format!("sum(rocketmq_consumer_lag_messages{{job=\"{job}\",consumer_group=\"{PREFIX}_main\"}})"),
                0.0,
            ),
        ];
        for (q, want) in checks {
            let got = value(&prom, &q);
            if got != Some(want) {
                wrong.push(format!("{q}: {got:?}, want {want}"));
            }
        }
        let bytes = value(
            &prom,
            &format!("sum(rocketmq_throughput_in_total{{job=\"{job}\",topic=\"{PREFIX}Main\"}})"),
        )
        .unwrap_or(0.0);
        assert!(bytes >= (COUNT * 10) as f64, "{job}: throughput in {bytes}");
        let consumers = value(
            &prom,
            &format!("sum(rocketmq_consumer_connections{{job=\"{job}\",consumer_group=\"{PREFIX}_lag\"}})"),
        );
        if consumers != Some(1.0) {
            wrong.push(format!(
                "{job}: lag group's consumer connections {consumers:?}"
            ));
        }
    }
    if !wrong.is_empty() {
        let progress: Vec<String> = sides
            .iter()
            .map(|s| {
                let home = s.stop.parent().map(PathBuf::from).unwrap_or_default();
                let p = java.mqadmin(
                    &home,
                    &[
                        "consumerProgress",
                        "-n",
                        s.ns,
                        "-g",
                        &format!("{PREFIX}_main"),
                    ],
                );
                format!("--- {} consumerProgress ---\n{p}", s.job)
            })
            .collect();
        panic!(
            "values differ from the workload:\n{}\n{}\n--- ours raw ---\n{}\n--- java raw ---\n{}",
            wrong.join("\n"),
            progress.join("\n"),
            scrape(&ours_target).unwrap_or_default(),
            scrape(&java_target).unwrap_or_default(),
        );
    }

    // mqadmin shows live figures on both, the same.
    let mut admin_figures = Vec::new();
    for s in &sides {
        let home = s.stop.parent().map(PathBuf::from).unwrap_or_default();
        let stats = java.mqadmin(
            &home,
            &["statsAll", "-n", s.ns, "-t", &format!("{PREFIX}Main")],
        );
        assert!(
            stats.contains(&format!("{PREFIX}_main")),
            "{}: statsAll lists no {PREFIX}_main line:\n{stats}",
            s.job
        );
        let status = java.mqadmin(&home, &["brokerStatus", "-n", s.ns, "-b", s.broker_addr]);
        let put_total = status
            .lines()
            .find(|l| l.trim_start().starts_with("msgPutTotalTodayNow"))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        assert!(
            put_total >= (COUNT + LAG + DLQ) as u64,
            "{}: brokerStatus msgPutTotalTodayNow {put_total}:\n{status}",
            s.job
        );
        let clusters = java.mqadmin(&home, &["clusterList", "-m", "-n", s.ns]);
        assert!(
            clusters.contains(s.broker_name),
            "{}: clusterList -m:\n{clusters}",
            s.job
        );
        eprintln!(
            "--- {} statsAll ---\n{stats}\n--- clusterList -m ---\n{clusters}",
            s.job
        );
        // #Topic #Consumer Group #Accumulation #InTPS #OutTPS #InMsg24Hour #OutMsg24Hour
        let main_line: Vec<String> = stats
            .lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .find(|f| f.len() == 7 && f[1] == format!("{PREFIX}_main"))
            .unwrap_or_default();
        let day_counts = (main_line.get(5).cloned(), main_line.get(6).cloned());
        assert_eq!(
            day_counts,
            (Some(COUNT.to_string()), Some(COUNT.to_string())),
            "{}: statsAll in/out of {PREFIX}_main:\n{stats}",
            s.job
        );
        admin_figures.push(put_total);
    }

    assert_eq!(
        admin_figures[0], admin_figures[1],
        "brokerStatus msgPutTotalTodayNow: ours, Java"
    );
    for s in sides.iter_mut() {
        std::fs::write(&s.stop, b"stop").expect("stop file");
    }
    for s in sides.iter_mut() {
        let status = s.workload.wait_exit(Duration::from_secs(30));
        assert!(
            status.is_some_and(|st| st.success()),
            "workload against {} did not finish: {status:?}\n{}",
            s.job,
            s.workload.log_text()
        );
    }
    eprintln!("metrics_prometheus took {:?}", started.elapsed());
}
