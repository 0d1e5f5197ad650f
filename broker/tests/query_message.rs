//! QUERY_MESSAGE (12) against an in-process broker.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use remoting::code::{request_code as rq, response_code as rc};
use remoting::RemotingCommand;

fn query(topic: &str, key: &str, max: i32, unique: bool) -> RemotingCommand {
    let mut r = RemotingCommand::request(rq::QUERY_MESSAGE)
        .with_ext("topic", topic)
        .with_ext("key", key)
        .with_ext("maxNum", max.to_string())
        .with_ext("beginTimestamp", "0")
        .with_ext("endTimestamp", i64::MAX.to_string());
    if unique {
        r = r.with_ext("_UNIQUE_KEY_QUERY", "true");
    }
    r
}

#[tokio::test]
async fn query_message_by_key_and_unique_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), None);
    cfg.register_broker_to_name_server = false;
    let b = start(cfg).await;
    let c = connect(b.addr).await;
    assert_eq!(c.call(create_topic("QT", 2)).await.code, rc::SUCCESS);
    for i in 0..3 {
        let uniq = format!("UNIQ{i}");
        let keys = if i == 2 {
            "other".to_owned()
        } else {
            format!("k{i} shared")
        };
        let p = props(&[("KEYS", keys.as_str()), ("UNIQ_KEY", uniq.as_str())]);
        let r = c.call(send_v2("QT", i % 2, &p, b"hello")).await;
        assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    }

    let r = c.call(query("QT", "shared", 64, false)).await;
    assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    assert!(
        r.ext("indexLastUpdateTimestamp")
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );
    assert!(
        r.ext("indexLastUpdatePhyoffset")
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );
    let recs = decode_records(r.body.clone());
    let mut uniqs: Vec<&str> = recs.iter().map(|m| prop(m, "UNIQ_KEY").unwrap()).collect();
    uniqs.sort();
    assert_eq!(uniqs, ["UNIQ0", "UNIQ1"]);
    assert!(recs.iter().all(|m| m.topic == "QT"));

    let r = c.call(query("QT", "shared", 1, false)).await;
    assert_eq!(decode_records(r.body.clone()).len(), 1);

    // Unique-key query (maxNum is replaced by 32).
    let r = c.call(query("QT", "UNIQ2", 0, true)).await;
    assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    let recs = decode_records(r.body.clone());
    assert_eq!(recs.len(), 1);
    assert_eq!(prop(&recs[0], "KEYS"), Some("other"));
    assert_eq!(&recs[0].body[..], b"hello");

    // Not found: 22 with the headers still present.
    for (topic, key) in [("QT", "missing"), ("NoSuchTopic", "shared")] {
        let r = c.call(query(topic, key, 64, false)).await;
        assert_eq!(r.code, rc::QUERY_NOT_FOUND);
        assert!(r.ext("indexLastUpdateTimestamp").is_some());
        assert!(r.ext("indexLastUpdatePhyoffset").is_some());
        assert!(r.body.is_empty());
    }

    // Missing mandatory header field: SYSTEM_ERROR like Java's decode failure.
    let bad = RemotingCommand::request(rq::QUERY_MESSAGE).with_ext("topic", "QT");
    assert_ne!(c.call(bad).await.code, rc::SUCCESS);
    b.stop().await;
}
