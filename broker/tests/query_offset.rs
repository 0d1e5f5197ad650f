//! QUERY_CONSUMER_OFFSET (14) for groups without a committed offset: Java
//! 4.9.x answers 0 unless the queue was truncated or its first message is
//! only on disk; 5.x's `setZeroIfNotFound=false` keeps QUERY_NOT_FOUND.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use remoting::code::{request_code as rq, response_code as rc};
use remoting::RemotingCommand;

fn query(group: &str, topic: &str, queue: i32, zero: Option<bool>) -> RemotingCommand {
    let mut r = RemotingCommand::request(rq::QUERY_CONSUMER_OFFSET)
        .with_ext("consumerGroup", group)
        .with_ext("topic", topic)
        .with_ext("queueId", queue.to_string());
    if let Some(z) = zero {
        r = r.with_ext("setZeroIfNotFound", z.to_string());
    }
    r
}

fn answer(r: &RemotingCommand) -> (i32, Option<&str>) {
    (r.code, r.ext("offset"))
}

#[tokio::test]
async fn query_offset_without_a_committed_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), None);
    cfg.register_broker_to_name_server = false;
    let b = start(cfg).await;
    let c = connect(b.addr).await;
    assert_eq!(c.call(create_topic("QO", 2)).await.code, rc::SUCCESS);

    // Never-written queue: 0 (absent or true setZeroIfNotFound) ...
    for zero in [None, Some(true)] {
        let r = c.call(query("g", "QO", 0, zero)).await;
        assert_eq!(
            answer(&r),
            (rc::SUCCESS, Some("0")),
            "{zero:?} {:?}",
            r.remark
        );
    }
    // ... but QUERY_NOT_FOUND when the client asks not to get 0.
    let r = c.call(query("g", "QO", 0, Some(false))).await;
    assert_eq!(answer(&r), (rc::QUERY_NOT_FOUND, None));
    assert!(r.remark.is_some());

    // A message stored after the answer is at the offset the consumer got:
    // a consumer starting from the last offset does not skip it.
    let r = c.call(send_v2("QO", 0, "", b"first")).await;
    assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    let r = c.call(pull("g", "QO", 0, 0, 0x4, Some("*"), 0)).await;
    assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    assert_eq!(&decode_records(r.body)[0].body[..], b"first");

    // A queue that holds messages, still from offset 0 and recent (in
    // memory), for a group that never committed: 0, as Java 4.9.x
    // (`minOffset <= 0 && !checkInDiskByConsumeOffset(topic, queue, 0)`).
    for _ in 0..3 {
        assert_eq!(c.call(send_v2("QO", 1, "", b"m")).await.code, rc::SUCCESS);
    }
    for q in [0, 1] {
        let r = c.call(query("new-group", "QO", q, None)).await;
        assert_eq!(answer(&r), (rc::SUCCESS, Some("0")), "queue {q}");
        let r = c.call(query("new-group", "QO", q, Some(false))).await;
        assert_eq!(answer(&r), (rc::QUERY_NOT_FOUND, None), "queue {q}");
    }

    // A topic the broker does not know: nothing stored, so 0 as well.
    let r = c.call(query("g", "NoSuchTopic", 3, None)).await;
    assert_eq!(answer(&r), (rc::SUCCESS, Some("0")));

    // A committed offset is answered whatever setZeroIfNotFound says.
    assert_eq!(
        c.call(heartbeat("cid", "g", "QO", "*")).await.code,
        rc::SUCCESS
    );
    let update = RemotingCommand::request(rq::UPDATE_CONSUMER_OFFSET)
        .with_ext("consumerGroup", "g")
        .with_ext("topic", "QO")
        .with_ext("queueId", "1")
        .with_ext("commitOffset", "2");
    assert_eq!(c.call(update).await.code, rc::SUCCESS);
    for zero in [None, Some(true), Some(false)] {
        let r = c.call(query("g", "QO", 1, zero)).await;
        assert_eq!(answer(&r), (rc::SUCCESS, Some("2")), "{zero:?}");
    }
    // Other groups and queues are unaffected.
    let r = c.call(query("other", "QO", 1, Some(false))).await;
    assert_eq!(answer(&r), (rc::QUERY_NOT_FOUND, None));
    b.stop().await;
}
