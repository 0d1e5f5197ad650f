//! Broker scenario families (compat-tests/README.md) judged by the official
//! Java clients, per client version: sync/async/one-way/batch sends, two push
//! consumers in one group with takeover, broadcasting, ordered consumption,
//! tag filtering, lite pull (assign + seek), the deprecated pull consumer,
//! query by offset message id (client and mqadmin `queryMsgById`), the 4 MiB
//! body limit, and a broker restart on the same store.
//!
//! The Java side is `compat.Scenarios`, which runs several scenarios in one
//! JVM and prints one `scenario=NAME ok|FAIL ...` line each; topics (8 queues)
//! are created on the broker by the official admin client first.

use std::time::{Duration, Instant};

use compat_tests::{java_client, serial, text, Cluster, JavaClient, JAVA_VERSIONS};

const FAMILIES: [&str; 8] = [
    "sends",
    "clustering",
    "broadcasting",
    "ordered",
    "tags",
    "litepull",
    "pull",
    "bigbody",
];

/// Runs `compat.Scenarios` with `scenarios`, asserts every one printed `ok`,
/// and returns the output.
fn run_scenarios(
    cluster: &Cluster,
    java: &JavaClient,
    prefix: &str,
    scenarios: &[&str],
    timeout: Duration,
) -> String {
    let home = cluster.client_home(&format!("scenarios-{}", java.version));
    let mut args = vec![
        cluster.namesrv_addr.as_str(),
        cluster.broker_addr.as_str(),
        prefix,
    ];
    args.extend_from_slice(scenarios);
    let started = Instant::now();
    let out = text(&java.run(&home, "compat.Scenarios", &args, timeout));
    eprintln!(
        "Java {} {:?} took {:?}:\n{out}",
        java.version,
        scenarios,
        started.elapsed()
    );
    for s in scenarios {
        let ok = out
            .lines()
            .any(|l| l.starts_with(&format!("scenario={s} ok")));
        assert!(
            ok,
            "Java {} scenario {s} did not pass:\n{out}\n{}",
            java.version,
            cluster.logs()
        );
    }
    out
}

fn prefix(version: &str) -> String {
    format!("Scn{}", version.replace('.', ""))
}

fn scenario_families(version: &str) {
    let _one_at_a_time = serial();
    let java = java_client(version);
    let cluster = Cluster::start();
    let out = run_scenarios(
        &cluster,
        &java,
        &prefix(version),
        &FAMILIES,
        Duration::from_secs(300),
    );

    // Query by offset message id with the operator tool too.
    let id = out
        .lines()
        .find(|l| l.starts_with("scenario=sends ok"))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("offsetMsgId="))
        })
        .unwrap_or_else(|| panic!("no offsetMsgId printed:\n{out}"))
        .to_owned();
    let home = cluster.client_home(&format!("mqadmin-{version}"));
    let topic = format!("{}Sends", prefix(version));
    let mut args = vec!["queryMsgById", "-n", &cluster.namesrv_addr, "-i", &id];
    if !version.starts_with("4.") {
        // 5.x requires the topic (-t); 4.9 has no such option.
        args.extend(["-t", topic.as_str()]);
    }
    let shown = java.mqadmin(&home, &args);
    let field = |name: &str| {
        shown
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    };
    assert_eq!(
        field("OffsetID"),
        Some(id.clone()),
        "mqadmin {version} queryMsgById:\n{shown}"
    );
    assert_eq!(
        field("Topic"),
        Some(topic),
        "mqadmin {version} queryMsgById:\n{shown}"
    );
    assert_eq!(
        field("Keys"),
        Some("[sync-3]".to_owned()),
        "mqadmin {version} queryMsgById:\n{shown}"
    );
}

fn broker_restart(version: &str) {
    let _one_at_a_time = serial();
    let java = java_client(version);
    let mut cluster = Cluster::start();
    let p = prefix(version);
    run_scenarios(
        &cluster,
        &java,
        &p,
        &["restart-before"],
        Duration::from_secs(120),
    );
    cluster.restart_broker();
    run_scenarios(
        &cluster,
        &java,
        &p,
        &["restart-after"],
        Duration::from_secs(120),
    );
}

#[test]
fn java_4_9_8_scenario_families() {
    scenario_families(JAVA_VERSIONS[0]);
}

#[test]
fn java_5_3_3_scenario_families() {
    scenario_families(JAVA_VERSIONS[1]);
}

#[test]
fn java_4_9_8_broker_restart() {
    broker_restart(JAVA_VERSIONS[0]);
}

#[test]
fn java_5_3_3_broker_restart() {
    broker_restart(JAVA_VERSIONS[1]);
}
