//! POP consumption of our broker by the official Java 5.3.3 remoting client
//! (issue 22). The Java side is `compat.PopConsume`.
//!
//! The group is set to POP with `mqadmin setConsumeMode -m POP -q 0`; a
//! `DefaultMQPushConsumer` with `clientRebalance=false` then asks the broker
//! for its queues (QUERY_ASSIGNMENT answers queue -1 in POP mode) and pops.
//! Asserted, in one broker run:
//! 1. A consumer that pops and dies without acking (JVM halted inside the
//!    listener) loses nothing: after the invisible time (5 s) the revive
//!    service puts the messages into `%RETRY%group_topic` and a second
//!    consumer gets every one of them, with reconsumeTimes ≥ 1.
//! 2. A listener that returns RECONSUME_LATER for a message sees it again:
//!    the client changes its invisible time to 10 s (its first pop delay
//!    level, for reconsumeTimes 0) and it comes back through the retry topic.
//! 3. Every sent message is consumed.
//! 4. After SIGKILL of our broker with messages popped and not acked, the
//!    restarted broker revives them: a new consumer gets them all, and every
//!    acknowledged send is still readable at its (queue, offset), none two
//!    at one (the fault-test invariant, `compat_tests::invariant`).
//!
//! Orderly pop is not reachable through this client (a push consumer that
//! consumes orderly always rebalances on the client and pulls); its rules
//! are checked request by request in `broker/tests/pop.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use compat_tests::{bin_dir, java_client, serial, Cluster, JavaClient, Proc};

const TOPIC: &str = "PopCompat";
const GROUP: &str = "cg_PopCompat";

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

fn run(java: &JavaClient, home: &Path, cluster: &Cluster, args: &[&str], secs: u64) -> String {
    let mut all = vec![
        cluster.namesrv_addr.as_str(),
        cluster.broker_addr.as_str(),
        TOPIC,
        GROUP,
    ];
    all.extend_from_slice(args);
    let out = java.run(home, "compat.PopConsume", &all, Duration::from_secs(secs));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("PopConsume {args:?}:\n{text}");
    text
}

fn keys_with(out: &str, prefix: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| field(l, "key").map(str::to_owned))
        .collect()
}

/// (key → reconsumeTimes of each delivery, in order).
fn deliveries(out: &str) -> BTreeMap<String, Vec<i32>> {
    let mut m: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for l in out.lines().filter(|l| l.starts_with("delivery ")) {
        let (Some(k), Some(r)) = (field(l, "key"), field(l, "reconsumeTimes")) else {
            continue;
        };
        m.entry(k.to_owned())
            .or_default()
            .push(r.parse().unwrap_or(-1));
        assert_eq!(field(l, "topic"), Some(TOPIC), "{l}");
    }
    m
}

/// SIGKILL, then the same config, store and port again.
fn kill_and_restart(cluster: &mut Cluster) {
    cluster.broker.signal(libc::SIGKILL);
    cluster.broker.wait_exit(Duration::from_secs(10));
    let mut cmd = Command::new(bin_dir().join("mqbroker"));
    cmd.arg("-c")
        .arg(cluster.dir.path().join("broker.conf"))
        .arg("-n")
        .arg(&cluster.namesrv_addr)
        .env("HOME", cluster.dir.path())
        .env("RUST_LOG", "info");
    let log = cluster.dir.path().join("broker.after-kill.log");
    cluster.broker = Proc::spawn("mqbroker", cmd, log);
    cluster.wait_broker_registered(Duration::from_secs(30));
}

#[test]
fn pop_consumer_java_5_3_3_dies_fails_and_survives_a_broker_kill() {
    let _one_at_a_time = serial();
    let java = java_client("5.3.3");
    // Offsets flushed each second, so the kill below finds them on disk and
    // the popped messages can only come back through revive.
    let mut cluster = Cluster::start_with("reviveInterval=200\nflushConsumerOffsetInterval=1000\n");
    let home = cluster.client_home("pop");

    let out = run(&java, &home, &cluster, &["produce", "K", "20"], 90);
    let mut acks_out = out.clone();
    let sent = keys_with(&out, "sent ");
    assert_eq!(sent.len(), 20, "{out}\n{}", cluster.logs());
    assert!(out
        .lines()
        .filter(|l| l.starts_with("sent "))
        .all(|l| l.contains("SEND_OK")));

    let admin = java.mqadmin(
        &home,
        &[
            "setConsumeMode",
            "-b",
            &cluster.broker_addr,
            "-t",
            TOPIC,
            "-g",
            GROUP,
            "-m",
            "POP",
            "-q",
            "0",
        ],
    );
    eprintln!("mqadmin setConsumeMode:\n{admin}");
    // Persisted: in Java's file once compacted, before that in the journal
    // beside it (`messageRequestMode.json.log`, JSON records).
    let config = cluster.dir.path().join("store/config");
    let modes: String = ["messageRequestMode.json", "messageRequestMode.json.log"]
        .iter()
        .map(|f| {
            String::from_utf8_lossy(&std::fs::read(config.join(f)).unwrap_or_default()).into_owned()
        })
        .collect();
    assert!(
        modes.contains("\"POP\""),
        "messageRequestMode.json(.log): {modes:?}\n{admin}"
    );

    // 1. A consumer pops and dies without acking.
    let out = run(&java, &home, &cluster, &["hold", "5000"], 90);
    let held: BTreeSet<String> = keys_with(&out, "held ").into_iter().collect();
    assert!(
        out.contains("halted"),
        "the holding consumer never got a message\n{}",
        cluster.logs()
    );
    assert!(!held.is_empty());

    // 2 and 3: another consumer gets everything. L0, sent now (so its first
    // delivery has reconsumeTimes 0 and the client's first pop delay level,
    // 10 s, applies), fails once.
    let out = run(&java, &home, &cluster, &["produce", "L", "1"], 90);
    acks_out.push_str(&out);
    let mut sent = sent;
    sent.extend(keys_with(&out, "sent "));
    assert_eq!(sent.len(), 21);
    let keys = sent.join(",");
    let out = run(
        &java,
        &home,
        &cluster,
        &["consume", "5000", &keys, "L0", "60"],
        90,
    );
    assert!(
        out.lines().any(|l| l == "done"),
        "not all consumed\n{out}\n{}",
        cluster.logs()
    );
    let got = deliveries(&out);
    for k in &sent {
        assert!(got.contains_key(k), "{k} never delivered");
    }
    for k in &held {
        assert!(
            got[k][0] >= 1,
            "{k} was popped by the dead consumer: it must come back revived (reconsumeTimes >= 1), got {:?}",
            got[k]
        );
    }
    let failed = &got["L0"];
    assert!(
        failed.len() >= 2,
        "L0 failed once and must come again: {failed:?}"
    );
    assert_eq!(failed[0], 0);
    assert!(
        failed[1] > failed[0],
        "L0 came back through the retry topic: {failed:?}"
    );

    // 4. Popped, not acked, broker SIGKILLed: revived after the restart.
    let out = run(&java, &home, &cluster, &["produce", "M", "5"], 90);
    acks_out.push_str(&out);
    let sent_m = keys_with(&out, "sent ");
    assert_eq!(sent_m.len(), 5);
    let out = run(&java, &home, &cluster, &["hold", "8000"], 90);
    assert!(out.contains("halted"), "{out}");
    kill_and_restart(&mut cluster);
    let keys = sent_m.join(",");
    let out = run(
        &java,
        &home,
        &cluster,
        &["consume", "5000", &keys, "", "60"],
        90,
    );
    assert!(
        out.lines().any(|l| l == "done"),
        "messages popped before the kill were lost\n{out}\n{}",
        cluster.logs()
    );

    // Every acknowledged send readable at its (queue, offset) after the kill.
    let dump = java.run(
        &home,
        "compat.StoreDriver",
        &[
            "dump",
            &cluster.namesrv_addr,
            TOPIC,
            "cg_PopCompat_dump",
            "60",
        ],
        Duration::from_secs(120),
    );
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    let check = compat_tests::invariant::check_acks(&acks_out, &dump);
    assert_eq!(check.acked, 26, "{acks_out}");
    check.assert_ok("POP consumption across a broker SIGKILL", || cluster.logs());
}
