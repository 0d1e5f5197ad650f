//! Broker metadata moves from our broker to the official Java 5.3.3 broker
//! (issue 25): our broker creates topics and a subscription group and
//! commits consumer offsets (each change a record in its metadata journal),
//! stops cleanly (the journals are folded into Java's `config/*.json`), and
//! the Java broker started on that store directory serves the topics
//! (`GET_ALL_TOPIC_CONFIG`, `mqadmin topicList` through the name server), the
//! group and the committed offsets (`QUERY_CONSUMER_OFFSET`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use compat_tests::{java_client, serial, JavaBroker, OurNamesrv, StandaloneBroker};
use remoting::code::request_code as rq;
use remoting::{Connection, RemotingCommand, Router};

const VERSION: &str = "5.3.3";
const TOPICS: usize = 300;
const GROUP: &str = "meta_swap_group";

fn topic(i: usize) -> String {
    format!("MetaSwap{i:04}")
}

/// Store keys both brokers get.
fn properties(root: &Path) -> String {
    format!(
        "storePathRootDir={root}\n\
         storePathCommitLog={root}/commitlog\nmappedFileSizeCommitLog=1048576\n\
         mappedFileSizeConsumeQueue=6000\nflushDiskType=ASYNC_FLUSH\n",
        root = root.display()
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn call(conn: &Connection, req: RemotingCommand) -> RemotingCommand {
    conn.request(req, Duration::from_secs(10))
        .await
        .expect("response")
}

fn offset_of(t: usize, q: i32) -> i64 {
    (t as i64) * 10 + i64::from(q)
}

#[test]
fn metadata_written_by_our_broker_is_served_by_java_5_3_3() {
    let _serial = serial();
    let java = java_client(VERSION);
    let dir = tempfile::Builder::new()
        .prefix("rmq-compat-meta-swap-")
        .tempdir()
        .expect("temp dir");
    let root = dir.path().join("store");
    let props = properties(&root);

    // 1. Ours: topics, a group, offsets; then a clean stop.
    let ns1 = OurNamesrv::start();
    let mut ours = StandaloneBroker::start(&ns1.addr, &props);
    let rt = runtime();
    rt.block_on(async {
        let conn = Connection::connect(ours.addr.as_str(), Arc::new(Router::new()))
            .await
            .expect("connect to our broker");
        for i in 0..TOPICS {
            let r = call(
                &conn,
                RemotingCommand::request(rq::UPDATE_AND_CREATE_TOPIC)
                    .with_ext("topic", topic(i))
                    .with_ext("defaultTopic", "TBW102")
                    .with_ext("readQueueNums", "4")
                    .with_ext("writeQueueNums", "4")
                    .with_ext("perm", "6")
                    .with_ext("topicFilterType", "SINGLE_TAG"),
            )
            .await;
            assert_eq!(r.code, 0, "create {}: {:?}", topic(i), r.remark);
        }
        let group =
            serde_json::json!({"groupName": GROUP, "retryMaxTimes": 3, "consumeEnable": true});
        let r = call(
            &conn,
            RemotingCommand::request(rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
                .with_body(serde_json::to_vec(&group).expect("json")),
        )
        .await;
        assert_eq!(r.code, 0, "create group: {:?}", r.remark);
        for t in (0..TOPICS).step_by(10) {
            for q in 0..4 {
                let r = call(
                    &conn,
                    RemotingCommand::request(rq::UPDATE_CONSUMER_OFFSET)
                        .with_ext("consumerGroup", GROUP)
                        .with_ext("topic", topic(t))
                        .with_ext("queueId", q.to_string())
                        .with_ext("commitOffset", offset_of(t, q).to_string()),
                )
                .await;
                assert_eq!(r.code, 0, "commit offset: {:?}", r.remark);
            }
        }
        conn.close();
    });
    let stopped = ours.proc.stop_cleanly(Duration::from_secs(30));
    let logs = format!("{}\n{}", ns1.logs(), ours.logs());
    if let Err(e) = stopped {
        panic!("{e}\n{logs}");
    }
    let config = root.join("config");
    for f in [
        "topics.json",
        "subscriptionGroup.json",
        "consumerOffset.json",
    ] {
        let log = config.join(format!("{f}.log"));
        let len = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        assert_eq!(
            len, 0,
            "{f}: the journal is folded in at a clean stop\n{logs}"
        );
    }
    drop(ours);
    drop(ns1);

    // 2. Java on the same store.
    let ns2 = OurNamesrv::start();
    let jb = JavaBroker::start_with(VERSION, &ns2.addr, &props);
    let (topics, groups, offsets) = rt.block_on(async {
        let conn = Connection::connect(jb.addr.as_str(), Arc::new(Router::new()))
            .await
            .expect("connect to the Java broker");
        let r = call(&conn, RemotingCommand::request(rq::GET_ALL_TOPIC_CONFIG)).await;
        assert_eq!(r.code, 0);
        let topics: serde_json::Value = remoting::body::from_fastjson(&r.body).expect("topics");
        let r = call(
            &conn,
            RemotingCommand::request(rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG),
        )
        .await;
        assert_eq!(r.code, 0);
        let groups: serde_json::Value = remoting::body::from_fastjson(&r.body).expect("groups");
        let mut offsets = BTreeMap::new();
        for t in (0..TOPICS).step_by(10) {
            for q in 0..4 {
                let r = call(
                    &conn,
                    RemotingCommand::request(rq::QUERY_CONSUMER_OFFSET)
                        .with_ext("consumerGroup", GROUP)
                        .with_ext("topic", topic(t))
                        .with_ext("queueId", q.to_string()),
                )
                .await;
                offsets.insert(
                    (t, q),
                    (r.code, r.ext("offset").and_then(|o| o.parse::<i64>().ok())),
                );
            }
        }
        conn.close();
        (topics, groups, offsets)
    });
    for i in 0..TOPICS {
        let t = &topics["topicConfigTable"][topic(i)];
        assert_eq!(
            (t["readQueueNums"].as_i64(), t["perm"].as_i64()),
            (Some(4), Some(6)),
            "Java's view of {}: {t}\n{}",
            topic(i),
            jb.logs()
        );
    }
    let g = &groups["subscriptionGroupTable"][GROUP];
    assert_eq!(g["retryMaxTimes"].as_i64(), Some(3), "group: {g}");
    for ((t, q), got) in &offsets {
        assert_eq!(
            *got,
            (0, Some(offset_of(*t, *q))),
            "offset of {} queue {q} on Java",
            topic(*t)
        );
    }
    // Through the name server: Java registered what it loaded.
    let home = ns2.client_home("java");
    let out = java.mqadmin(&home, &["topicList", "-n", &ns2.addr]);
    for i in [0, TOPICS / 2, TOPICS - 1] {
        assert!(
            out.lines().any(|l| l.trim() == topic(i)),
            "mqadmin topicList lacks {}:\n{out}",
            topic(i)
        );
    }
}
