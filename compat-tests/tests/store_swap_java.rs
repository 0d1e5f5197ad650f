//! Store swap with the official Java broker 5.3.3 (issue 4): both brokers run
//! on ONE `storePathRootDir` with 1 MiB commit-log files and 100-entry
//! consume-queue files, one after the other, each with a fresh copy of OUR
//! name server.
//!
//! 1. The Java broker stores 1200 messages (tags, two keys each, user
//!    properties, ~3 KB bodies, so several commit-log files roll) and one
//!    batch of 5, sent by the official Java 5.3.3 client; it is stopped with
//!    SIGTERM (its shutdown hook closes the store: no `abort` file left).
//! 2. Our broker opens that store: every acknowledged message is pulled back
//!    with the same queue id, queue offset, offset msgId and unique id, and
//!    the same keys/tags/properties/body; `mqadmin queryMsgByKey` (through our
//!    broker) finds messages by either key and by a batch key; the topic
//!    config came from Java's `config/topics.json`.
//! 3. Our broker then stores another topic (and a batch) in the same store
//!    and stops cleanly; the Java broker opens the store again and serves
//!    both topics, every message at the same offsets and ids.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use compat_tests::{
    java_client, serial, text, JavaBroker, JavaClient, OurNamesrv, StandaloneBroker,
};

const VERSION: &str = "5.3.3";
const JAVA_TOPIC: &str = "StoreSwapJava";
const OUR_TOPIC: &str = "StoreSwapOurs";

/// (queue id, queue offset) → the rest of the line.
type Lines = BTreeMap<(i32, i64), Vec<String>>;

/// Store keys both brokers get.
fn store_properties(root: &Path) -> String {
    format!(
        "storePathRootDir={root}\nstorePathCommitLog={root}/commitlog\n\
         mappedFileSizeCommitLog=1048576\nmappedFileSizeConsumeQueue=2000\n\
         maxHashSlotNum=50000\nmaxIndexNum=200000\nflushDiskType=ASYNC_FLUSH\n",
        root = root.display()
    )
}

/// `ACK`/`MSG` lines of a StoreDriver run, keyed by queue and offset.
fn parse(out: &str, tag: &str) -> Lines {
    let mut m = Lines::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() != Some(&tag) || f.len() < 5 {
            continue;
        }
        let (Ok(q), Ok(o)) = (f[1].parse::<i32>(), f[2].parse::<i64>()) else {
            continue;
        };
        let prev = m.insert((q, o), f[3..].iter().map(|s| (*s).to_owned()).collect());
        assert!(
            prev.is_none(),
            "two {tag} lines for queue {q} offset {o}:\n{out}"
        );
    }
    m
}

fn produce(java: &JavaClient, home: &Path, ns: &str, topic: &str, count: u32, batch: u32) -> Lines {
    let out = text(&java.run(
        home,
        "compat.StoreDriver",
        &["produce", ns, topic, &count.to_string(), &batch.to_string()],
        Duration::from_secs(240),
    ));
    let total = count + batch;
    assert!(
        out.contains(&format!("DONE acked={total}")),
        "produce {topic}:\n{out}"
    );
    let acks = parse(&out, "ACK");
    assert_eq!(acks.len(), total as usize, "{out}");
    acks
}

fn dump(java: &JavaClient, home: &Path, ns: &str, topic: &str, group: &str) -> Lines {
    let out = text(&java.run(
        home,
        "compat.StoreDriver",
        &["dump", ns, topic, group, "90"],
        Duration::from_secs(150),
    ));
    assert!(out.contains("DUMPED "), "dump {topic}:\n{out}");
    parse(&out, "MSG")
}

/// Every acknowledged message is served at its queue offset with its ids,
/// keys, tags, properties and body; nothing else is served.
fn assert_same(acks: &Lines, got: &Lines, what: &str, logs: &dyn Fn() -> String) {
    let mut problems = Vec::new();
    for ((q, o), a) in acks {
        // a = [offsetMsgId, uniqId, firstKey]
        let Some(g) = got.get(&(*q, *o)) else {
            problems.push(format!("queue {q} offset {o} ({}) missing", a[2]));
            continue;
        };
        // g = [offsetMsgId, uniqId, keys, tags, seq, color, bodyHead]. A
        // batch's records also carry the batch's own UNIQ_KEY after their
        // own, so consumers see that one (Java broker and ours alike): the
        // unique id is compared for single sends only.
        let is_batch = a[2].starts_with("batch-");
        if g.len() < 7 || g[0] != a[0] || (!is_batch && g[1] != a[1]) {
            problems.push(format!("queue {q} offset {o}: acked {a:?}, served {g:?}"));
            continue;
        }
        let key = &a[2];
        let (keys, tags, seq, color, body) = if let Some(j) = key.strip_prefix("batch-") {
            let j: u32 = j.parse().unwrap_or(u32::MAX);
            (
                key.clone(),
                "TagB".to_owned(),
                None,
                "batch".to_owned(),
                format!("batch-body-{j}"),
            )
        } else {
            let i: u32 = key.trim_start_matches("key-").parse().unwrap_or(u32::MAX);
            (
                format!("key-{i}|uk-{i}"),
                format!("Tag{}", i % 3),
                Some(i.to_string()),
                format!("c{}", i % 5),
                format!("body-{i}"),
            )
        };
        let seq_ok = seq.is_none_or(|s| g[4] == s);
        if g[2] != keys || g[3] != tags || !seq_ok || g[5] != color || g[6] != body {
            problems.push(format!("queue {q} offset {o}: content {g:?} for {key}"));
        }
    }
    for k in got.keys() {
        if !acks.contains_key(k) {
            problems.push(format!("served but never acknowledged: {k:?} {:?}", got[k]));
        }
    }
    assert!(
        problems.is_empty(),
        "{what}: {} problems, first ones:\n{}\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        logs()
    );
}

/// SIGTERM and wait; Java's shutdown hook must close the store (no abort file).
fn stop_java(broker: &mut JavaBroker, root: &Path) {
    let status = broker.proc.stop(Duration::from_secs(60));
    assert!(
        status.is_some(),
        "Java broker did not exit within 60 s of SIGTERM\n{}",
        broker.logs()
    );
    assert!(
        !root.join("abort").exists(),
        "Java broker left an abort file (unclean store shutdown)\n{}",
        broker.logs()
    );
}

fn commit_log_files(root: &Path) -> usize {
    std::fs::read_dir(root.join("commitlog")).map_or(0, |d| d.count())
}

/// `mqadmin queryMsgByKey`: whether a row shows the message acknowledged
/// for `ack_key` at its queue and offset.
fn query_finds(
    java: &JavaClient,
    home: &Path,
    ns: &str,
    topic: &str,
    key: &str,
    acks: &Lines,
    ack_key: &str,
) -> Result<(), String> {
    let (q, o) = acks
        .iter()
        .find(|(_, a)| a[2] == ack_key)
        .map(|(k, _)| *k)
        .expect("acked key");
    let out = java.mqadmin(home, &["queryMsgByKey", "-n", ns, "-t", topic, "-k", key]);
    let found = out.lines().any(|l| {
        let c: Vec<&str> = l.split_whitespace().collect();
        c.len() == 3 && c[1] == q.to_string() && c[2] == o.to_string()
    });
    if found {
        Ok(())
    } else {
        Err(format!(
            "queryMsgByKey {key} lacks queue {q} offset {o} ({ack_key}):\n{out}"
        ))
    }
}

#[test]
fn java_5_3_3_store_opens_in_our_broker_and_back() {
    let _serial = serial();
    let java = java_client(VERSION);
    let store_dir = tempfile::Builder::new()
        .prefix("rmq-compat-store-swap-")
        .tempdir()
        .expect("temp dir");
    let root = store_dir.path().join("store");
    let props = store_properties(&root);

    // 1. Java writes.
    let ns1 = OurNamesrv::start();
    let mut jb = JavaBroker::start_with(VERSION, &ns1.addr, &props);
    let home = ns1.client_home("java");
    java.update_topic(&home, &ns1.addr, &jb.cluster_name, JAVA_TOPIC, 4, &jb.addr)
        .unwrap_or_else(|e| panic!("{e}\n{}", jb.logs()));
    let java_acks = produce(&java, &home, &ns1.addr, JAVA_TOPIC, 1200, 5);
    let java_served = dump(&java, &home, &ns1.addr, JAVA_TOPIC, "swap_java_1");
    assert_same(
        &java_acks,
        &java_served,
        "Java broker serving its own store",
        &|| jb.logs(),
    );
    stop_java(&mut jb, &root);
    drop(jb);
    drop(ns1);
    let files = commit_log_files(&root);
    assert!(
        files >= 3,
        "expected several 1 MiB commit-log files, found {files}"
    );

    // 2. Ours reads Java's store.
    let ns2 = OurNamesrv::start();
    let mut ours = StandaloneBroker::start(&ns2.addr, &props);
    let home = ns2.client_home("java");
    let served = dump(&java, &home, &ns2.addr, JAVA_TOPIC, "swap_ours_1");
    let logs = || format!("{}\n{}", ns2.logs(), ours.logs());
    assert_same(
        &java_acks,
        &served,
        "our broker serving Java's store",
        &logs,
    );
    assert!(
        served == java_served,
        "our broker serves other bytes than Java did"
    );
    for (key, ack_key) in [
        ("key-7", "key-7"),
        ("uk-7", "key-7"),
        ("batch-3", "batch-3"),
    ] {
        if let Err(e) = query_finds(
            &java, &home, &ns2.addr, JAVA_TOPIC, key, &java_acks, ack_key,
        ) {
            panic!("through our broker on Java's store: {e}\n{}", logs());
        }
    }

    // 3. Ours writes another topic into the same store; Java reads both.
    java.update_topic(
        &home,
        &ns2.addr,
        &ours.cluster_name,
        OUR_TOPIC,
        4,
        &ours.addr,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    let our_acks = produce(&java, &home, &ns2.addr, OUR_TOPIC, 600, 5);
    let stopped = ours.proc.stop_cleanly(Duration::from_secs(20));
    let logs = format!("{}\n{}", ns2.logs(), ours.logs());
    if let Err(e) = stopped {
        panic!("{e}\n{logs}");
    }
    assert!(
        !root.join("abort").exists(),
        "our broker left an abort file\n{logs}"
    );
    let topics = std::fs::read_to_string(root.join("config/topics.json")).unwrap_or_default();
    assert!(
        topics.contains(JAVA_TOPIC) && topics.contains(OUR_TOPIC),
        "config/topics.json after our broker:\n{topics}"
    );
    drop(ours);
    drop(ns2);

    let ns3 = OurNamesrv::start();
    let mut jb = JavaBroker::start_with(VERSION, &ns3.addr, &props);
    let home = ns3.client_home("java");
    let served = dump(&java, &home, &ns3.addr, OUR_TOPIC, "swap_java_2");
    assert_same(&our_acks, &served, "Java broker serving our store", &|| {
        jb.logs()
    });
    let served = dump(&java, &home, &ns3.addr, JAVA_TOPIC, "swap_java_3");
    assert_same(
        &java_acks,
        &served,
        "Java broker serving its records after our broker",
        &|| jb.logs(),
    );
    assert!(
        served == java_served,
        "Java serves its records differently after our broker"
    );
    for (key, ack_key) in [("uk-11", "key-11"), ("batch-1", "batch-1")] {
        if let Err(e) = query_finds(&java, &home, &ns3.addr, OUR_TOPIC, key, &our_acks, ack_key) {
            panic!("through the Java broker on our store: {e}\n{}", jb.logs());
        }
    }
    stop_java(&mut jb, &root);
}
