//! Delayed messages, retry with delay, and transactions through our broker,
//! judged by the official Java clients 4.9.8 and 5.3.3 running side by side
//! against one cluster (issue 6). The Java side is `compat.DelayTx`.
//!
//! - Delay levels 1–3 (1 s, 5 s, 10 s) arrive not early and less than 1.5 s
//!   late (consumer clock minus born time); levels 5 and 18 stay parked in
//!   `SCHEDULE_TOPIC_XXXX` queues 4 and 17 (max offsets read with GET_MAX_OFFSET);
//!   `config/delayOffset.json` records the per-level progress.
//! - A 5.x delivery time (`TIMER_DELIVER_MS`, 3 s ahead) arrives not early.
//! - RECONSUME_LATER with maxReconsumeTimes=1: the retry comes back about
//!   10 s later (level 3) with reconsumeTimes 1, then the DLQ holds it.
//! - Transactions: commit delivered, rollback never (checked after a later
//!   marker), UNKNOW resolved by check-back to COMMIT and to ROLLBACK.
//! - A broker restart with a pending level-3 message, a pending 5.x timer
//!   message (6 s) and a pending half message (immune to checks for 15 s):
//!   both delayed messages are delivered afterwards, not early, and the half
//!   message is checked after the restart and committed.
//! - The Go client v2.1.2 (`WithDelayTimeLevel(2)`): every message arrives
//!   5 s after it was born, not early and less than 1.5 s late.

use std::path::Path;
use std::time::{Duration, Instant};

use compat_tests::{
    go_driver, java_client, run_with_timeout, serial, text, wait_until, Cluster, JavaClient, Proc,
};

const VERSIONS: [&str; 2] = ["4.9.8", "5.3.3"];

fn prefix(version: &str) -> String {
    format!("Dtx{}", version.replace('.', ""))
}

fn spawn_driver(
    java: &JavaClient,
    cluster: &Cluster,
    flag: &Path,
    scenarios: &[&str],
    tag: &str,
) -> Proc {
    let prefix = prefix(&java.version);
    let home = cluster.client_home(&format!("dtx-{}-{tag}", java.version));
    let flag = flag.display().to_string();
    let mut args = vec![
        cluster.namesrv_addr.as_str(),
        cluster.broker_addr.as_str(),
        cluster.broker_name.as_str(),
        prefix.as_str(),
        flag.as_str(),
    ];
    args.extend_from_slice(scenarios);
    java.spawn(
        &home,
        "compat.DelayTx",
        &args,
        cluster
            .dir
            .path()
            .join(format!("dtx-{}-{tag}.log", java.version)),
    )
}

fn wait_exit(procs: &mut [Proc], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while procs.iter_mut().any(Proc::is_running) {
        assert!(
            Instant::now() < deadline,
            "Java drivers did not finish in {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn assert_passed(procs: &[Proc], scenarios: &[&str], cluster: &Cluster) {
    for (p, v) in procs.iter().zip(VERSIONS) {
        let out = p.log_text();
        eprintln!("Java {v}:\n{out}");
        for s in scenarios {
            assert!(
                out.lines()
                    .any(|l| l.starts_with(&format!("scenario={s} ok"))),
                "Java {v} scenario {s} did not pass:\n{out}\n{}",
                cluster.logs()
            );
        }
    }
}

#[test]
fn delay_retry_and_transactions_java_4_9_8_and_5_3_3() {
    let _one_at_a_time = serial();
    let clients: Vec<JavaClient> = VERSIONS.iter().map(|v| java_client(v)).collect();
    let mut cluster = Cluster::start_with(
        "transactionCheckInterval=3000\ntransactionTimeOut=3000\ntransactionCheckMax=15\n",
    );
    let flag = cluster.dir.path().join("restarted.txt");

    // Phase 1: both client versions at once, no restart.
    let scenarios = ["tx", "delay", "timer", "retry"];
    let mut procs: Vec<Proc> = clients
        .iter()
        .map(|j| spawn_driver(j, &cluster, &flag, &scenarios, "main"))
        .collect();
    wait_exit(&mut procs, Duration::from_secs(300));
    assert_passed(&procs, &scenarios, &cluster);

    // Progress per level in Java's file and shape: levels 1–3 moved on, the
    // level-5 and level-18 messages are still parked.
    let delay_offsets = cluster.dir.path().join("store/config/delayOffset.json");
    let text = std::fs::read_to_string(&delay_offsets)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", delay_offsets.display(), cluster.logs()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("delayOffset.json is JSON");
    let table = &v["offsetTable"];
    let level = |l: &str| table[l].as_i64().unwrap_or(0);
    // Levels 1–3: one message per client; level 3 also got the two retries.
    assert!(wait_until_level(&delay_offsets, "1", 2), "{text}");
    assert!(level("3") >= 2, "{text}");
    assert_eq!(level("5"), 0, "{text}");
    assert_eq!(level("18"), 0, "{text}");

    // Phase 2: a restart with a delayed and a half message pending.
    let mut procs: Vec<Proc> = clients
        .iter()
        .map(|j| spawn_driver(j, &cluster, &flag, &["restart"], "restart"))
        .collect();
    wait_until(
        "both drivers to ask for the restart",
        Duration::from_secs(120),
        || {
            procs
                .iter()
                .all(|p| p.log_text().contains("phase=restart-now"))
        },
    );
    cluster.restart_broker();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    std::fs::write(&flag, now_ms.to_string()).expect("write restart flag");
    wait_exit(&mut procs, Duration::from_secs(180));
    assert_passed(&procs, &["restart"], &cluster);
}

/// The level's offset in the file reaches `want` (the file is written once a second).
fn wait_until_level(path: &Path, level: &str, want: i64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["offsetTable"][level].as_i64())
            .unwrap_or(0);
        if got >= want {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn go_delay_level_2() {
    let _one_at_a_time = serial();
    let driver = go_driver();
    let cluster = Cluster::start();
    let home = cluster.client_home("go-delay");
    let mut cmd = std::process::Command::new(driver);
    cmd.args([
        "-namesrv",
        &cluster.namesrv_addr,
        "-broker-addr",
        &cluster.broker_addr,
        "-topic",
        "DtxGoDelay",
        "-count",
        "5",
        "-queues",
        "2",
        "-group",
        "dtx_go_delay",
        "-delay-level",
        "2",
        "-timeout",
        "90s",
    ])
    .env("HOME", &home)
    .env("rocketmq.client.localOffsetStoreDir", home.join("offsets"));
    let out = text(&run_with_timeout(cmd, Duration::from_secs(150)));
    eprintln!("Go:\n{out}");
    assert!(
        out.contains("sent=5 received=5 duplicates=0 missing=0"),
        "Go delay level 2:\n{out}\n{}",
        cluster.logs()
    );
    let field = |key: &str| -> i64 {
        out.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1)
    };
    let (min, max) = (field("minDelayMs"), field("maxDelayMs"));
    assert!(min >= 5000, "a delayed message arrived early: {out}");
    assert!(max <= 6500, "a delayed message arrived late: {out}");
}
