//! POP over remoting, request by request: pop moves the group's offset and
//! checkpoints, ack keeps a message from coming back, an un-acked one comes
//! back through the retry topic after its invisible time (also across a
//! restart), change-invisible-time, orderly pop, request modes and queue
//! assignment.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use remoting::code::{request_code as rq, response_code as rc};
use remoting::RemotingCommand;

const TOPIC: &str = "PopT";
const GROUP: &str = "popG";

fn now() -> i64 {
    remoting::body::now_millis()
}

fn pop_req(
    topic: &str,
    queue_id: i32,
    max: i32,
    invisible: i64,
    poll: i64,
    order: bool,
) -> RemotingCommand {
    RemotingCommand::request(rq::POP_MESSAGE)
        .with_ext("consumerGroup", GROUP)
        .with_ext("topic", topic)
        .with_ext("queueId", queue_id.to_string())
        .with_ext("maxMsgNums", max.to_string())
        .with_ext("invisibleTime", invisible.to_string())
        .with_ext("pollTime", poll.to_string())
        .with_ext("bornTime", now().to_string())
        .with_ext("initMode", "0")
        .with_ext("order", order.to_string())
}

#[derive(Debug)]
struct Popped {
    topic: String,
    queue_id: i32,
    offset: i64,
    body: Vec<u8>,
    reconsume_times: i32,
    /// The extraInfo the client acks with.
    extra: String,
}

/// Decodes a pop answer the way Java's client does (`processPopResponse`):
/// `POP_CK` from the record when the broker set it, else from the header.
fn popped(resp: &RemotingCommand) -> Vec<Popped> {
    assert_eq!(resp.code, rc::SUCCESS, "{:?}", resp.remark);
    let h = |k: &str| resp.ext(k).unwrap_or_default().to_owned();
    let (pop_time, invisible, revive) = (h("popTime"), h("invisibleTime"), h("reviveQid"));
    let starts: Vec<(String, i64)> = h("startOffsetInfo")
        .split(';')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let f: Vec<&str> = s.split(' ').collect();
            (format!("{}@{}", f[0], f[1]), f[2].parse().unwrap())
        })
        .collect();
    let mut out = Vec::new();
    let mut buf = &resp.body[..];
    while !buf.is_empty() {
        let v = store::record::decode(buf).unwrap();
        let len = v.total_size as usize;
        let ck = store::properties::get(v.properties, "POP_CK").map(str::to_owned);
        let extra = ck.unwrap_or_else(|| {
            let start = starts
                .iter()
                .find(|(k, _)| *k == format!("0@{}", v.queue_id))
                .map(|(_, s)| *s)
                .unwrap();
            format!(
                "{start} {pop_time} {invisible} {revive} 0 broker-t {} {}",
                v.queue_id, v.queue_offset
            )
        });
        out.push(Popped {
            topic: v.topic.to_owned(),
            queue_id: v.queue_id,
            offset: v.queue_offset,
            body: v.body.to_vec(),
            reconsume_times: v.reconsume_times,
            extra,
        });
        buf = &buf[len..];
    }
    out
}

/// The topic an ack names: the retry topic for a retried message.
fn real_topic(p: &Popped) -> String {
    match p.extra.split(' ').nth(4) {
        Some("1") => format!("%RETRY%{GROUP}_{}", p.topic),
        Some("2") => format!("%RETRY%{GROUP}+{}", p.topic),
        _ => p.topic.clone(),
    }
}

fn ack_req(p: &Popped) -> RemotingCommand {
    RemotingCommand::request(rq::ACK_MESSAGE)
        .with_ext("consumerGroup", GROUP)
        .with_ext("topic", real_topic(p))
        .with_ext("queueId", p.queue_id.to_string())
        .with_ext("extraInfo", p.extra.clone())
        .with_ext("offset", p.offset.to_string())
}

async fn send_n(client: &Client, queue_id: i32, n: usize, prefix: &str) {
    for i in 0..n {
        let body: &'static [u8] =
            Box::leak(format!("{prefix}-{i}").into_bytes().into_boxed_slice());
        let r = client.call(send_v1(TOPIC, queue_id, "", body)).await;
        assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    }
}

fn test_config(dir: &std::path::Path) -> broker::BrokerConfig {
    let mut c = config(dir, None);
    c.revive_interval = 100;
    c.revive_queue_num = 2;
    c
}

/// Pops until something comes or the deadline passes (each pop holds 500 ms).
async fn pop_until(
    client: &Client,
    queue_id: i32,
    invisible: i64,
    order: bool,
    within: Duration,
) -> Vec<Popped> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let r = client
            .call(pop_req(TOPIC, queue_id, 32, invisible, 500, order))
            .await;
        if r.code == rc::SUCCESS {
            return popped(&r);
        }
        assert_eq!(r.code, rc::POLLING_TIMEOUT, "{:?}", r.remark);
    }
    vec![]
}

#[tokio::test]
async fn unacked_messages_come_back_through_the_retry_topic() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(test_config(dir.path())).await;
    let client = connect(b.addr).await;
    send_n(&client, 0, 3, "m").await;

    let first = popped(&client.call(pop_req(TOPIC, -1, 32, 1500, 0, false)).await);
    let offsets: Vec<i64> = first.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2]);
    assert!(first
        .iter()
        .all(|p| p.topic == TOPIC && p.reconsume_times == 0));
    for p in &first[..2] {
        let r = client.call(ack_req(p)).await;
        assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    }
    // The offset moved: nothing more now.
    let r = client.call(pop_req(TOPIC, -1, 32, 1500, 0, false)).await;
    assert_eq!(r.code, rc::POLLING_TIMEOUT);

    // Only the un-acked message comes back, once, from the retry topic,
    // under the original topic name.
    let again = pop_until(&client, -1, 1500, false, Duration::from_secs(15)).await;
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].body, b"m-2");
    assert_eq!(again[0].topic, TOPIC);
    assert_eq!(again[0].reconsume_times, 1);
    assert_eq!(real_topic(&again[0]), format!("%RETRY%{GROUP}_{TOPIC}"));
    let r = client.call(ack_req(&again[0])).await;
    assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);

    // Acked: past its invisible time and a revive round, nothing comes.
    let none = pop_until(&client, -1, 1500, false, Duration::from_millis(5000)).await;
    assert!(none.is_empty(), "{none:?}");

    // Ack outside the queue: NO_MESSAGE; garbage extraInfo: an error, no panic.
    let mut bad = ack_req(&again[0]);
    bad.set_ext("offset", "99");
    assert_eq!(client.call(bad).await.code, rc::NO_MESSAGE);
    let mut bad = ack_req(&first[0]);
    bad.set_ext("extraInfo", "x y");
    assert_eq!(client.call(bad).await.code, rc::SYSTEM_ERROR);
    b.stop().await;
}

#[tokio::test]
async fn change_invisible_time_and_long_polling() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(test_config(dir.path())).await;
    let client = connect(b.addr).await;
    send_n(&client, 1, 2, "c").await;
    let got = popped(&client.call(pop_req(TOPIC, 1, 32, 60_000, 0, false)).await);
    assert_eq!(got.len(), 2);
    // The first is acked, the second made visible again in 300 ms.
    assert_eq!(client.call(ack_req(&got[0])).await.code, rc::SUCCESS);
    let change = RemotingCommand::request(rq::CHANGE_MESSAGE_INVISIBLETIME)
        .with_ext("consumerGroup", GROUP)
        .with_ext("topic", TOPIC)
        .with_ext("queueId", "1")
        .with_ext("extraInfo", got[1].extra.clone())
        .with_ext("offset", got[1].offset.to_string())
        .with_ext("invisibleTime", "300");
    let r = client.call(change).await;
    assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    assert_eq!(r.ext("invisibleTime"), Some("300"));
    let back = pop_until(&client, -1, 60_000, false, Duration::from_secs(15)).await;
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(back[0].body, b"c-1");

    // A held pop returns as soon as a message arrives.
    let c2 = connect(b.addr).await;
    let held =
        tokio::spawn(async move { c2.call(pop_req(TOPIC, -1, 32, 60_000, 8_000, false)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info = client
        .call(
            RemotingCommand::request(rq::POLLING_INFO)
                .with_ext("consumerGroup", GROUP)
                .with_ext("topic", TOPIC)
                .with_ext("queueId", "-1"),
        )
        .await;
    assert_eq!(info.code, rc::SUCCESS, "{:?}", info.remark);
    let started = Instant::now();
    send_n(&client, 2, 1, "late").await;
    let r = held.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(4));
    let got = popped(&r);
    assert_eq!(got[0].body, b"late-0");
    b.stop().await;
}

#[tokio::test]
async fn a_held_pop_of_a_closed_connection_takes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(test_config(dir.path())).await;
    let client = connect(b.addr).await;
    let gone = connect(b.addr).await;
    let conn = gone.conn.clone();
    let held = tokio::spawn(async move {
        conn.request(
            pop_req(TOPIC, -1, 32, 60_000, 10_000, false),
            Duration::from_secs(20),
        )
        .await
    });
    // The pop is held (nothing to pop yet); then its client goes away.
    tokio::time::sleep(Duration::from_millis(300)).await;
    gone.conn.close();
    let _ = held.await;
    send_n(&client, 0, 1, "after").await;
    let got = pop_until(&client, -1, 60_000, false, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body, b"after-0");
    assert_eq!(
        got[0].reconsume_times, 0,
        "not popped for the closed connection first"
    );
    b.stop().await;
}

#[tokio::test]
async fn orderly_pop_blocks_a_queue_until_acked() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(test_config(dir.path())).await;
    let client = connect(b.addr).await;
    send_n(&client, 3, 3, "o").await;
    let r = client.call(pop_req(TOPIC, 3, 2, 800, 0, true)).await;
    assert_eq!(r.ext("reviveQid"), Some("999"));
    let first = popped(&r);
    assert_eq!(
        first.iter().map(|p| p.offset).collect::<Vec<_>>(),
        vec![0, 1]
    );
    // Blocked while the batch is out.
    assert_eq!(
        client.call(pop_req(TOPIC, 3, 2, 800, 0, true)).await.code,
        rc::POLLING_TIMEOUT
    );
    assert_eq!(client.call(ack_req(&first[0])).await.code, rc::SUCCESS);
    assert_eq!(
        client.call(pop_req(TOPIC, 3, 2, 800, 0, true)).await.code,
        rc::POLLING_TIMEOUT
    );
    // Not acked in time: the same message again, counted once more.
    let again = pop_until(&client, 3, 800, true, Duration::from_secs(5)).await;
    assert_eq!(again[0].offset, 1);
    let r_counts = again.len();
    assert!(r_counts >= 1);
    for p in &again {
        assert_eq!(client.call(ack_req(p)).await.code, rc::SUCCESS);
    }
    let rest = pop_until(&client, 3, 800, true, Duration::from_secs(5)).await;
    let all: Vec<i64> = again.iter().chain(rest.iter()).map(|p| p.offset).collect();
    assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
    assert_eq!(*all.last().unwrap(), 2);
    b.stop().await;
}

#[tokio::test]
async fn request_mode_and_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(test_config(dir.path())).await;
    let client = connect(b.addr).await;
    send_n(&client, 0, 1, "a").await;
    let set = |topic: &str| {
        RemotingCommand::request(rq::SET_MESSAGE_REQUEST_MODE).with_body(
            format!(r#"{{"topic":"{topic}","consumerGroup":"{GROUP}","mode":"POP","popShareQueueNum":0}}"#)
                .into_bytes(),
        )
    };
    assert_eq!(client.call(set(TOPIC)).await.code, rc::SUCCESS);
    assert_eq!(client.call(set("%RETRY%x")).await.code, rc::NO_PERMISSION);
    let hb = format!(
        r#"{{"clientID":"c1","consumerDataSet":[{{"groupName":"{GROUP}","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[],"unitMode":false}}],"producerDataSet":[]}}"#
    );
    let r = client
        .call(RemotingCommand::request(rq::HEART_BEAT).with_body(hb.into_bytes()))
        .await;
    assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    let q = RemotingCommand::request(rq::QUERY_ASSIGNMENT).with_body(
        format!(r#"{{"topic":"{TOPIC}","consumerGroup":"{GROUP}","clientId":"c1","strategyName":"AVG","messageModel":"CLUSTERING"}}"#)
            .into_bytes(),
    );
    let r = client.call(q).await;
    assert_eq!(r.code, rc::SUCCESS);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let a = v["messageQueueAssignments"].as_array().unwrap();
    assert_eq!(a.len(), 1, "{v}");
    assert_eq!(a[0]["mode"], "POP");
    assert_eq!(a[0]["messageQueue"]["queueId"], -1);
    b.stop().await;
    let text = std::fs::read_to_string(dir.path().join("config/messageRequestMode.json")).unwrap();
    assert!(text.contains("\"POP\""), "{text}");
}

#[tokio::test]
async fn unacked_pops_are_revived_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(test_config(dir.path())).await;
    let client = connect(b.addr).await;
    send_n(&client, 0, 4, "r").await;
    let got = popped(&client.call(pop_req(TOPIC, 0, 32, 2000, 0, false)).await);
    assert_eq!(got.len(), 4);
    assert_eq!(client.call(ack_req(&got[1])).await.code, rc::SUCCESS);
    b.stop().await;

    let b = start(test_config(dir.path())).await;
    let client = connect(b.addr).await;
    let mut bodies = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while bodies.len() < 3 && Instant::now() < deadline {
        for p in pop_until(&client, -1, 60_000, false, Duration::from_secs(2)).await {
            assert!(bodies.insert(String::from_utf8(p.body).unwrap()), "twice");
        }
    }
    let want: BTreeSet<String> = ["r-0", "r-2", "r-3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(bodies, want);
    b.stop().await;
}
