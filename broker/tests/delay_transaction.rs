//! Delay levels and transactions in-process: END_TRANSACTION's checks, the
//! check-back call to a live producer, `transactionCheckMax`, and delay
//! progress surviving a restart.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use remoting::code::{request_code as rq, response_code as rc};
use remoting::{Connection, RemotingCommand, Router};
use tokio::sync::mpsc;

async fn max_offset(c: &Client, topic: &str, queue: i32) -> i64 {
    let r = c
        .call(
            RemotingCommand::request(rq::GET_MAX_OFFSET)
                .with_ext("topic", topic)
                .with_ext("queueId", queue.to_string()),
        )
        .await;
    r.ext("offset").and_then(|o| o.parse().ok()).unwrap_or(-1)
}

async fn wait_max_offset(c: &Client, topic: &str, queue: i32, want: i64, timeout: Duration) -> i64 {
    let deadline = Instant::now() + timeout;
    loop {
        let got = max_offset(c, topic, queue).await;
        if got >= want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn half(topic: &str, uniq: &str) -> RemotingCommand {
    let mut h = send_header(
        topic,
        0,
        &props(&[("UNIQ_KEY", uniq), ("TRAN_MSG", "true"), ("PGROUP", "pg")]),
    );
    h.sys_flag = 0x4;
    h.born_timestamp = remoting::body::now_millis();
    RemotingCommand::request(rq::SEND_MESSAGE)
        .with_header(&h)
        .with_body(&b"half"[..])
}

fn end(group: &str, queue_offset: i64, phys: i64, what: i32, check: bool) -> RemotingCommand {
    RemotingCommand::request(rq::END_TRANSACTION)
        .with_ext("producerGroup", group)
        .with_ext("tranStateTableOffset", queue_offset.to_string())
        .with_ext("commitLogOffset", phys.to_string())
        .with_ext("commitOrRollback", what.to_string())
        .with_ext("fromTransactionCheck", check.to_string())
}

fn phys_of(send: &RemotingCommand) -> i64 {
    let id = send.ext("msgId").unwrap();
    store::decode_offset_message_id(id).unwrap().1
}

#[tokio::test]
async fn end_transaction_checks_the_half_message_and_commits_once() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(config(dir.path(), None)).await;
    let c = connect(b.addr).await;
    assert_eq!(c.call(create_topic("TX", 1)).await.code, rc::SUCCESS);
    let s = c.call(half("TX", "H1")).await;
    assert_eq!(s.code, rc::SUCCESS, "{:?}", s.remark);
    assert_eq!(s.ext("transactionId"), Some("H1"));
    let qo: i64 = s.ext("queueOffset").unwrap().parse().unwrap();
    let phys = phys_of(&s);
    assert_eq!(
        max_offset(&c, "TX", 0).await,
        0,
        "half messages are not visible"
    );

    assert_eq!(
        c.call(end("other", qo, phys, 8, false)).await.code,
        rc::SYSTEM_ERROR
    );
    assert_eq!(
        c.call(end("pg", qo + 1, phys, 8, false)).await.code,
        rc::SYSTEM_ERROR
    );
    assert_eq!(
        c.call(end("pg", qo, phys + 1, 8, false)).await.code,
        rc::SYSTEM_ERROR
    );
    assert_eq!(
        c.call(end("pg", qo, phys, 0, false)).await.code,
        rc::SUCCESS
    );
    assert_eq!(max_offset(&c, "TX", 0).await, 0, "unknown is ignored");

    assert_eq!(
        c.call(end("pg", qo, phys, 8, false)).await.code,
        rc::SUCCESS
    );
    assert_eq!(c.call(end("pg", qo, phys, 8, true)).await.code, rc::SUCCESS);
    assert_eq!(max_offset(&c, "TX", 0).await, 1, "committed exactly once");
    assert_eq!(max_offset(&c, "RMQ_SYS_TRANS_OP_HALF_TOPIC", 0).await, 1);
    let r = c.call(pull("g", "TX", 0, 0, 0x4, Some("*"), 0)).await;
    let m = decode_records(r.body).remove(0);
    assert_eq!(&m.body[..], b"half");
    assert_eq!(m.sys_flag & 0xC, 0x8);
    assert_eq!(m.prepared_transaction_offset, phys);
    assert_eq!(prop(&m, "UNIQ_KEY"), Some("H1"));

    // Rollback: only the op record.
    let s = c.call(half("TX", "H2")).await;
    let qo: i64 = s.ext("queueOffset").unwrap().parse().unwrap();
    assert_eq!(
        c.call(end("pg", qo, phys_of(&s), 12, false)).await.code,
        rc::SUCCESS
    );
    assert_eq!(max_offset(&c, "TX", 0).await, 1);
    assert_eq!(max_offset(&c, "RMQ_SYS_TRANS_OP_HALF_TOPIC", 0).await, 2);
    b.stop().await;
}

#[tokio::test]
async fn check_back_goes_to_a_live_producer_until_check_max() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), None);
    cfg.transaction_check_interval = 200;
    cfg.transaction_time_out = 100;
    cfg.transaction_check_max = 2;
    let b = start(cfg).await;

    // A producer of group "pg" that records CHECK_TRANSACTION_STATE.
    let (tx, mut checks) = mpsc::unbounded_channel();
    let router = Router::new().route(
        rq::CHECK_TRANSACTION_STATE,
        move |_c: Connection, req: RemotingCommand| {
            let _ = tx.send(req);
            async move { Ok(RemotingCommand::success()) }
        },
    );
    let producer = Connection::connect(b.addr, Arc::new(router)).await.unwrap();
    let hb = serde_json::json!({
        "clientID": "producer-1",
        "producerDataSet": [{"groupName": "pg"}],
        "consumerDataSet": []
    });
    let r = producer
        .request(
            RemotingCommand::request(rq::HEART_BEAT).with_body(serde_json::to_vec(&hb).unwrap()),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(r.code, rc::SUCCESS);

    let c = connect(b.addr).await;
    assert_eq!(c.call(create_topic("TXC", 2)).await.code, rc::SUCCESS);
    let mut h = half("TXC", "H3");
    h.set_ext("queueId", "1");
    let s = c.call(h).await;
    assert_eq!(s.code, rc::SUCCESS);

    let check = tokio::time::timeout(Duration::from_secs(5), checks.recv())
        .await
        .expect("a check within 5 s")
        .unwrap();
    assert_eq!(check.ext("msgId"), Some("H3"));
    assert_eq!(check.ext("transactionId"), Some("H3"));
    assert_eq!(check.ext("topic"), Some("TXC"));
    assert_eq!(check.ext("bname"), Some("broker-t"));
    let qo: i64 = check.ext("tranStateTableOffset").unwrap().parse().unwrap();
    let phys: i64 = check.ext("commitLogOffset").unwrap().parse().unwrap();
    assert_eq!(qo, 1, "the check names the re-appended copy");
    let offset_id = check.ext("offsetMsgId").unwrap();
    assert_eq!(store::decode_offset_message_id(offset_id).unwrap().1, phys);
    let body = decode_records(check.body.clone()).remove(0);
    assert_eq!(body.topic, "TXC", "the body carries the real topic");
    assert_eq!(body.queue_id, 1);
    assert_eq!(prop(&body, "PGROUP"), Some("pg"));
    assert_eq!(prop(&body, "TRANSACTION_CHECK_TIMES"), Some("1"));
    assert_eq!(body.physical_offset, phys);

    // Nobody answers: a second check, then the message is abandoned.
    let second = tokio::time::timeout(Duration::from_secs(5), checks.recv())
        .await
        .expect("a second check")
        .unwrap();
    assert_eq!(second.ext("tranStateTableOffset"), Some("2"));
    assert_eq!(
        wait_max_offset(
            &c,
            "TRANS_CHECK_MAX_TIME_TOPIC",
            0,
            1,
            Duration::from_secs(5)
        )
        .await,
        1
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        checks.try_recv().is_err(),
        "no check after transactionCheckMax"
    );
    assert_eq!(max_offset(&c, "RMQ_SYS_TRANS_HALF_TOPIC", 0).await, 3);
    assert_eq!(max_offset(&c, "TXC", 1).await, 0);
    b.stop().await;
}

#[tokio::test]
async fn delay_level_waits_and_progress_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), None);
    cfg.message_delay_level = "1s 2s 3s".into();
    let b = start(cfg.clone()).await;
    let c = connect(b.addr).await;
    assert_eq!(c.call(create_topic("DL", 1)).await.code, rc::SUCCESS);
    let s = c
        .call(send_v2(
            "DL",
            0,
            &props(&[("UNIQ_KEY", "D1"), ("DELAY", "1")]),
            b"d1",
        ))
        .await;
    assert_eq!(s.code, rc::SUCCESS);
    assert_eq!(
        s.ext("queueId"),
        Some("0"),
        "the requested queue is reported"
    );
    assert_eq!(max_offset(&c, "SCHEDULE_TOPIC_XXXX", 0).await, 1);
    // Levels above the maximum are clamped to it.
    let s = c
        .call(send_v2(
            "DL",
            0,
            &props(&[("UNIQ_KEY", "D9"), ("DELAY", "9")]),
            b"d9",
        ))
        .await;
    assert_eq!(s.code, rc::SUCCESS);
    assert_eq!(max_offset(&c, "SCHEDULE_TOPIC_XXXX", 2).await, 1);
    let sent = Instant::now();
    assert_eq!(
        wait_max_offset(&c, "DL", 0, 1, Duration::from_secs(5)).await,
        1
    );
    assert!(
        sent.elapsed() >= Duration::from_millis(700),
        "{:?}",
        sent.elapsed()
    );
    let r = c.call(pull("g", "DL", 0, 0, 0x4, Some("*"), 0)).await;
    let m = decode_records(r.body).remove(0);
    assert_eq!(prop(&m, "UNIQ_KEY"), Some("D1"));
    assert_eq!(prop(&m, "REAL_TOPIC"), Some("DL"));
    b.stop().await;

    // The level-3 message is still pending; after a restart it arrives.
    let file = dir.path().join("config/delayOffset.json");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("offsetTable"), "{text}");
    let b = start(cfg).await;
    let c = connect(b.addr).await;
    assert_eq!(
        wait_max_offset(&c, "DL", 0, 2, Duration::from_secs(6)).await,
        2
    );
    assert_eq!(max_offset(&c, "DL", 0).await, 2, "nothing delivered twice");
    b.stop().await;
}

#[tokio::test]
async fn timer_message_is_held_until_due_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), None);
    let b = start(cfg.clone()).await;
    let c = connect(b.addr).await;
    assert_eq!(c.call(create_topic("TM", 1)).await.code, rc::SUCCESS);
    let due = remoting::body::now_millis() + 1500;
    let s = c
        .call(send_v2(
            "TM",
            0,
            &props(&[("UNIQ_KEY", "T1"), ("TIMER_DELIVER_MS", &due.to_string())]),
            b"t1",
        ))
        .await;
    assert_eq!(s.code, rc::SUCCESS, "{:?}", s.remark);
    assert_eq!(max_offset(&c, "rmq_sys_wheel_timer", 0).await, 1);
    let far = remoting::body::now_millis() + 4 * 24 * 3600 * 1000;
    let s = c
        .call(send_v2(
            "TM",
            0,
            &props(&[("UNIQ_KEY", "T2"), ("TIMER_DELIVER_MS", &far.to_string())]),
            b"t2",
        ))
        .await;
    assert_eq!(s.code, rc::MESSAGE_ILLEGAL, "more than 3 days ahead");
    // DELAY wins over the timer properties.
    let s = c
        .call(send_v2(
            "TM",
            0,
            &props(&[
                ("UNIQ_KEY", "T3"),
                ("DELAY", "1"),
                ("TIMER_DELAY_SEC", "100"),
            ]),
            b"t3",
        ))
        .await;
    assert_eq!(s.code, rc::SUCCESS);
    assert_eq!(max_offset(&c, "SCHEDULE_TOPIC_XXXX", 0).await, 1);
    assert_eq!(max_offset(&c, "rmq_sys_wheel_timer", 0).await, 1);
    b.stop().await;

    let b = start(cfg).await;
    let c = connect(b.addr).await;
    assert_eq!(
        wait_max_offset(&c, "TM", 0, 2, Duration::from_secs(6)).await,
        2
    );
    assert!(remoting::body::now_millis() >= due);
    let r = c.call(pull("g", "TM", 0, 0, 0x4, Some("*"), 0)).await;
    let keys: Vec<String> = decode_records(r.body)
        .iter()
        .map(|m| prop(m, "UNIQ_KEY").unwrap_or("").to_owned())
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&"T1".to_owned()) && keys.contains(&"T3".to_owned()));
    let timer = decode_records(c.call(pull("g", "TM", 0, 0, 0x4, Some("*"), 0)).await.body)
        .into_iter()
        .find(|m| prop(m, "UNIQ_KEY") == Some("T1"))
        .unwrap();
    assert!(
        timer.store_timestamp >= due,
        "stored {} due {due}",
        timer.store_timestamp
    );
    // As Java's timer re-put: the delivery time stays readable (proxies and
    // clients take the delivery timestamp from it), the real topic and queue
    // properties go, the dequeue time is added.
    let due_s = due.to_string();
    assert_eq!(prop(&timer, "TIMER_DELIVER_MS"), Some(due_s.as_str()));
    assert_eq!(prop(&timer, "TIMER_OUT_MS"), Some(due_s.as_str()));
    assert!(prop(&timer, "TIMER_DEQUEUE_MS").is_some());
    assert_eq!(prop(&timer, "REAL_TOPIC"), None);
    assert_eq!(prop(&timer, "REAL_QID"), None);
    // Sent again as it was read (a copy of a delivered message), it is not
    // parked a second time, even with a delivery time ahead.
    let ahead = (remoting::body::now_millis() + 60_000).to_string();
    let s = c
        .call(send_v2(
            "TM",
            0,
            &props(&[
                ("UNIQ_KEY", "T4"),
                ("TIMER_DELIVER_MS", &ahead),
                ("TIMER_OUT_MS", &ahead),
            ]),
            b"t4",
        ))
        .await;
    assert_eq!(s.code, rc::SUCCESS);
    assert_eq!(max_offset(&c, "TM", 0).await, 3, "stored in TM at once");
    assert_eq!(max_offset(&c, "rmq_sys_wheel_timer", 0).await, 1);
    b.stop().await;
}
