//! The broker in-process, driven over real sockets with our remoting client.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use remoting::code::{request_code as rq, response_code as rc};
use remoting::RemotingCommand;

#[tokio::test]
async fn send_v1_v2_batch_then_pull_and_view() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(config(dir.path(), None)).await;
    let c = connect(b.addr).await;
    assert_eq!(c.call(create_topic("T1", 4)).await.code, rc::SUCCESS);

    let r1 = c
        .call(send_v1(
            "T1",
            1,
            &props(&[("UNIQ_KEY", "U1"), ("TAGS", "a")]),
            b"one",
        ))
        .await;
    assert_eq!(r1.code, rc::SUCCESS, "{:?}", r1.remark);
    assert_eq!(r1.ext("queueId"), Some("1"));
    assert_eq!(r1.ext("queueOffset"), Some("0"));
    assert_eq!(r1.ext("transactionId"), Some("U1"));
    assert_eq!(r1.ext("MSG_REGION"), Some("DefaultRegion"));
    assert_eq!(r1.ext("TRACE_ON"), Some("true"));
    let r2 = c
        .call(send_v2("T1", 1, &props(&[("UNIQ_KEY", "U2")]), b"two"))
        .await;
    assert_eq!(r2.code, rc::SUCCESS, "{:?}", r2.remark);
    assert_eq!(r2.ext("queueOffset"), Some("1"));

    let entries: Vec<(i32, String, String)> = (0..3)
        .map(|i| {
            (
                i,
                format!("batch-{i}"),
                props(&[("UNIQ_KEY", &format!("B{i}"))]),
            )
        })
        .collect();
    let mut h = send_header("T1", 1, &props(&[("WAIT", "true")]));
    h.batch = Some(true);
    let v2: remoting::header::SendMessageRequestHeaderV2 = h.into();
    let batch = RemotingCommand::request(rq::SEND_BATCH_MESSAGE)
        .with_header(&v2)
        .with_body(store::record::encode_batch(&entries));
    let r3 = c.call(batch).await;
    assert_eq!(r3.code, rc::SUCCESS, "{:?}", r3.remark);
    assert_eq!(r3.ext("queueOffset"), Some("2"));
    let ids: Vec<&str> = r3.ext("msgId").unwrap().split(',').collect();
    assert_eq!(ids.len(), 3);

    let resp = c.call(pull("g1", "T1", 1, 0, 0x4, Some("*"), 0)).await;
    assert_eq!(resp.code, rc::SUCCESS, "{:?}", resp.remark);
    assert_eq!(resp.ext("nextBeginOffset"), Some("5"));
    assert_eq!(resp.ext("minOffset"), Some("0"));
    assert_eq!(resp.ext("maxOffset"), Some("5"));
    assert_eq!(resp.ext("suggestWhichBrokerId"), Some("0"));
    let recs = decode_records(resp.body.clone());
    assert_eq!(recs.len(), 5);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.queue_offset, i as i64);
        assert_eq!(r.queue_id, 1);
        assert_eq!(r.topic, "T1");
        assert_eq!(r.store_host, b.addr, "store host = brokerIP1:listenPort");
        assert_eq!(r.born_host.ip(), c.conn.local().ip());
        assert_eq!(r.born_timestamp, 1_700_000_000_000);
    }
    assert_eq!(&recs[0].body[..], b"one");
    assert_eq!(recs[0].flag, 7);
    assert_eq!(prop(&recs[0], "UNIQ_KEY"), Some("U1"));
    assert_eq!(prop(&recs[0], "CLUSTER"), Some("TestCluster"));
    assert_eq!(&recs[1].body[..], b"two");
    assert_eq!(&recs[3].body[..], b"batch-1");
    assert_eq!(recs[3].flag, 1);
    assert_eq!(prop(&recs[4], "UNIQ_KEY"), Some("B2"));

    // Offset message ids carry the store host and the physical offset.
    let (host, phys) = store::decode_offset_message_id(r1.ext("msgId").unwrap()).unwrap();
    assert_eq!((host, phys), (b.addr, recs[0].physical_offset));
    let (_, phys3) = store::decode_offset_message_id(ids[2]).unwrap();
    assert_eq!(phys3, recs[4].physical_offset);
    let view = c
        .call(RemotingCommand::request(rq::VIEW_MESSAGE_BY_ID).with_ext("offset", phys.to_string()))
        .await;
    assert_eq!(view.code, rc::SUCCESS);
    let viewed = decode_records(view.body);
    assert_eq!(&viewed[0].body[..], b"one");

    let max = c
        .call(
            RemotingCommand::request(rq::GET_MAX_OFFSET)
                .with_ext("topic", "T1")
                .with_ext("queueId", "1"),
        )
        .await;
    assert_eq!(max.ext("offset"), Some("5"));
    let min = c
        .call(
            RemotingCommand::request(rq::GET_MIN_OFFSET)
                .with_ext("topic", "T1")
                .with_ext("queueId", "1"),
        )
        .await;
    assert_eq!(min.ext("offset"), Some("0"));
    let search = c
        .call(
            RemotingCommand::request(rq::SEARCH_OFFSET_BY_TIMESTAMP)
                .with_ext("topic", "T1")
                .with_ext("queueId", "1")
                .with_ext("timestamp", "0"),
        )
        .await;
    assert_eq!(search.ext("offset"), Some("0"));
    let earliest = c
        .call(
            RemotingCommand::request(rq::GET_EARLIEST_MSG_STORETIME)
                .with_ext("topic", "T1")
                .with_ext("queueId", "1"),
        )
        .await;
    assert!(earliest.ext("timestamp").unwrap().parse::<i64>().unwrap() > 0);
    b.stop().await;
}

#[tokio::test]
async fn send_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), None);
    cfg.auto_create_topic_enable = false;
    cfg.max_message_size = 16;
    let b = start(cfg).await;
    let c = connect(b.addr).await;
    assert_eq!(
        c.call(send_v2("Nope", 0, "", b"x")).await.code,
        rc::TOPIC_NOT_EXIST
    );
    assert_eq!(
        c.call(send_v2("SCHEDULE_TOPIC_XXXX", 0, "", b"x"))
            .await
            .code,
        rc::NO_PERMISSION
    );
    assert_eq!(
        c.call(send_v2("bad topic", 0, "", b"x")).await.code,
        rc::INVALID_PARAMETER
    );
    assert_eq!(c.call(create_topic("T2", 2)).await.code, rc::SUCCESS);
    assert_eq!(
        c.call(send_v2("T2", 5, "", b"x")).await.code,
        rc::INVALID_PARAMETER
    );
    assert_eq!(
        c.call(send_v2("T2", 0, "", b"01234567890123456789"))
            .await
            .code,
        rc::MESSAGE_ILLEGAL
    );
    let any_queue = c.call(send_v2("T2", -1, "", b"x")).await;
    assert_eq!(any_queue.code, rc::SUCCESS);
    let q: i32 = any_queue.ext("queueId").unwrap().parse().unwrap();
    assert!((0..2).contains(&q));
    // Unknown request code.
    let unknown = c.call(RemotingCommand::request(9999)).await;
    assert_eq!(unknown.code, rc::REQUEST_CODE_NOT_SUPPORTED);
    b.stop().await;
}

#[tokio::test]
async fn auto_create_topic_registers_at_once() {
    let ns = FakeNamesrv::start().await;
    let dir = tempfile::tempdir().unwrap();
    let b = start(config(dir.path(), Some(ns.addr))).await;
    // Boot registration: every header field and a body CRC that matches.
    let boot = ns
        .wait_for("the boot registration", |r| r.code == rq::REGISTER_BROKER)
        .await;
    assert_eq!(boot.ext("brokerName"), Some("broker-t"));
    assert_eq!(boot.ext("clusterName"), Some("TestCluster"));
    assert_eq!(boot.ext("brokerAddr"), Some(b.addr.to_string().as_str()));
    assert_eq!(
        boot.ext("haServerAddr"),
        Some(format!("127.0.0.1:{}", b.addr.port() + 1).as_str())
    );
    assert_eq!(boot.ext("brokerId"), Some("0"));
    assert_eq!(boot.ext("compressed"), Some("false"));
    let crc = crc32fast::hash(&boot.body) & 0x7FFF_FFFF;
    assert_eq!(boot.ext("bodyCrc32"), Some(crc.to_string().as_str()));
    let body: remoting::body::RegisterBrokerBody = serde_json::from_slice(&boot.body).unwrap();
    let topics = &body.topic_config_serialize_wrapper.topic_config_table;
    for t in [
        "TBW102",
        "SELF_TEST_TOPIC",
        "TestCluster",
        "broker-t",
        "OFFSET_MOVED_EVENT",
        "SCHEDULE_TOPIC_XXXX",
    ] {
        assert!(topics.contains_key(t), "system topic {t} registered");
    }
    assert_eq!(topics["TBW102"].perm, 7);

    let c = connect(b.addr).await;
    let r = c.call(send_v2("Fresh", 2, "", b"hi")).await;
    assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    let reg = ns
        .wait_for("a registration with the new topic", |r| {
            r.code == rq::REGISTER_BROKER
                && serde_json::from_slice::<remoting::body::RegisterBrokerBody>(&r.body).is_ok_and(
                    |b| {
                        b.topic_config_serialize_wrapper
                            .topic_config_table
                            .contains_key("Fresh")
                    },
                )
        })
        .await;
    let body: remoting::body::RegisterBrokerBody = serde_json::from_slice(&reg.body).unwrap();
    let fresh = &body.topic_config_serialize_wrapper.topic_config_table["Fresh"];
    assert_eq!(
        (fresh.read_queue_nums, fresh.write_queue_nums, fresh.perm),
        (4, 4, 6)
    );
    assert!(body.topic_config_serialize_wrapper.data_version.counter > 0);

    let cfg = c
        .call(RemotingCommand::request(rq::GET_TOPIC_CONFIG).with_ext("topic", "Fresh"))
        .await;
    assert_eq!(cfg.code, rc::SUCCESS);
    let t: remoting::body::TopicConfig = serde_json::from_slice(&cfg.body).unwrap();
    assert_eq!(t.write_queue_nums, 4);
    let missing = c
        .call(RemotingCommand::request(rq::GET_TOPIC_CONFIG).with_ext("topic", "Nope"))
        .await;
    assert_eq!(missing.code, rc::TOPIC_NOT_EXIST);

    b.stop().await;
    ns.wait_for("the unregistration", |r| r.code == rq::UNREGISTER_BROKER)
        .await;
    ns.shutdown.cancel();
}

#[tokio::test]
async fn long_polling_holds_until_a_message_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(config(dir.path(), None)).await;
    let c = connect(b.addr).await;
    assert_eq!(c.call(create_topic("LP", 1)).await.code, rc::SUCCESS);

    // Suspend bit + subscription bit, 30 s hold.
    let conn = c.conn.clone();
    let held = tokio::spawn(async move {
        conn.request(
            pull("g", "LP", 0, 0, 0x2 | 0x4, Some("*"), 30_000),
            TIMEOUT * 3,
        )
        .await
    });
    let mut held = Box::pin(held);
    assert!(
        tokio::time::timeout(Duration::from_millis(600), &mut held)
            .await
            .is_err(),
        "a suspended pull must not be answered while nothing arrives"
    );
    assert_eq!(
        c.call(send_v2("LP", 0, "", b"wake")).await.code,
        rc::SUCCESS
    );
    let resp = tokio::time::timeout(TIMEOUT, held)
        .await
        .expect("answered after the send")
        .unwrap()
        .unwrap();
    assert_eq!(resp.code, rc::SUCCESS, "{:?}", resp.remark);
    assert_eq!(&decode_records(resp.body.clone())[0].body[..], b"wake");
    assert_eq!(resp.ext("nextBeginOffset"), Some("1"));

    // Hold time passes without a message: PULL_NOT_FOUND with the offsets.
    let started = std::time::Instant::now();
    let resp = c
        .call(pull("g", "LP", 0, 1, 0x2 | 0x4, Some("*"), 300))
        .await;
    assert_eq!(resp.code, rc::PULL_NOT_FOUND);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "held for the suspend time"
    );
    assert_eq!(resp.ext("nextBeginOffset"), Some("1"));
    assert_eq!(resp.ext("maxOffset"), Some("1"));
    b.stop().await;
}

#[tokio::test]
async fn pull_statuses_offsets_and_tag_filter() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(config(dir.path(), None)).await;
    let c = connect(b.addr).await;
    assert_eq!(c.call(create_topic("PS", 2)).await.code, rc::SUCCESS);
    let sub = Some("*");

    // Empty queue: offset 0 -> 19 / next 0; offset 5 -> 21 / next 0.
    let r = c.call(pull("g", "PS", 0, 0, 0x4, sub, 0)).await;
    assert_eq!(
        (r.code, r.ext("nextBeginOffset")),
        (rc::PULL_NOT_FOUND, Some("0"))
    );
    let r = c.call(pull("g", "PS", 0, 5, 0x4, sub, 0)).await;
    assert_eq!(
        (r.code, r.ext("nextBeginOffset")),
        (rc::PULL_OFFSET_MOVED, Some("0"))
    );

    for tag in ["A", "B", "A", "C"] {
        let r = c
            .call(send_v2("PS", 0, &props(&[("TAGS", tag)]), b"m"))
            .await;
        assert_eq!(r.code, rc::SUCCESS);
    }
    // Caught up (no suspend) -> 19 at the same offset; beyond max -> 21 with max.
    let r = c.call(pull("g", "PS", 0, 4, 0x4, sub, 0)).await;
    assert_eq!(
        (r.code, r.ext("nextBeginOffset")),
        (rc::PULL_NOT_FOUND, Some("4"))
    );
    let r = c.call(pull("g", "PS", 0, 9, 0x4, sub, 0)).await;
    assert_eq!(
        (r.code, r.ext("nextBeginOffset"), r.ext("maxOffset")),
        (rc::PULL_OFFSET_MOVED, Some("4"), Some("4"))
    );
    // Tag filter from the pull header.
    let r = c.call(pull("g", "PS", 0, 0, 0x4, Some("A || C"), 0)).await;
    assert_eq!(r.code, rc::SUCCESS);
    let recs = decode_records(r.body.clone());
    assert_eq!(
        recs.iter().map(|r| r.queue_offset).collect::<Vec<_>>(),
        vec![0, 2, 3]
    );
    assert_eq!(r.ext("nextBeginOffset"), Some("4"));
    // Nothing matches: 20 with the offset moved past what was examined.
    let r = c.call(pull("g", "PS", 0, 0, 0x4, Some("Z"), 0)).await;
    assert_eq!(
        (r.code, r.ext("nextBeginOffset")),
        (rc::PULL_RETRY_IMMEDIATELY, Some("4"))
    );
    // Bad queue id.
    let r = c.call(pull("g", "PS", 7, 0, 0x4, sub, 0)).await;
    assert_eq!(r.code, rc::INVALID_PARAMETER);
    // Unknown topic.
    let r = c.call(pull("g", "Nope", 0, 0, 0x4, sub, 0)).await;
    assert_eq!(r.code, rc::TOPIC_NOT_EXIST);

    // Without the subscription bit the heartbeat's subscription is used.
    let r = c.call(pull("g2", "PS", 0, 0, 0, None, 0)).await;
    assert_eq!(r.code, rc::SUBSCRIPTION_NOT_EXIST);
    assert_eq!(
        c.call(heartbeat("cid-1", "g2", "PS", "B")).await.code,
        rc::SUCCESS
    );
    let r = c.call(pull("g2", "PS", 0, 0, 0, None, 0)).await;
    assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    let recs = decode_records(r.body);
    assert_eq!(
        recs.iter().map(|r| r.queue_offset).collect::<Vec<_>>(),
        vec![1]
    );

    // Commit offset piggy-backed on the pull (sysFlag bit 0).
    let mut commit = pull("g2", "PS", 0, 4, 0x1, None, 0);
    commit.set_ext("commitOffset", "3");
    c.call(commit).await;
    let q = c
        .call(
            RemotingCommand::request(rq::QUERY_CONSUMER_OFFSET)
                .with_ext("consumerGroup", "g2")
                .with_ext("topic", "PS")
                .with_ext("queueId", "0"),
        )
        .await;
    assert_eq!((q.code, q.ext("offset")), (rc::SUCCESS, Some("3")));
    b.stop().await;
}

#[tokio::test]
async fn heartbeat_consumer_list_and_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(config(dir.path(), None)).await;
    let mut c1 = connect(b.addr).await;
    let c2 = connect(b.addr).await;
    assert_eq!(c1.call(create_topic("HB", 4)).await.code, rc::SUCCESS);

    let list = |group: &str| {
        RemotingCommand::request(rq::GET_CONSUMER_LIST_BY_GROUP).with_ext("consumerGroup", group)
    };
    let r = c1.call(list("hg")).await;
    assert_eq!(
        (r.code, r.remark.as_deref()),
        (rc::SYSTEM_ERROR, Some("no consumer for this group, hg"))
    );

    let r = c1.call(heartbeat("cid-1", "hg", "HB", "*")).await;
    assert_eq!(r.code, rc::SUCCESS);
    assert_eq!(r.ext("IS_SUPPORT_HEART_BEAT_V2"), Some("true"));
    assert_eq!(r.ext("IS_SUB_CHANGE"), Some("true"));
    assert_eq!(r.version, remoting::CURRENT_VERSION);
    let ids: remoting::body::GetConsumerListByGroupResponseBody =
        serde_json::from_slice(&c1.call(list("hg")).await.body).unwrap();
    assert_eq!(ids.consumer_id_list, vec!["cid-1"]);
    // The first member is told about itself joining; drain that.
    let first = tokio::time::timeout(TIMEOUT, c1.inbound.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.ext("consumerGroup"), Some("hg"));

    // The retry topic exists after the heartbeat.
    let retry = c1
        .call(RemotingCommand::request(rq::GET_TOPIC_CONFIG).with_ext("topic", "%RETRY%hg"))
        .await;
    assert_eq!(retry.code, rc::SUCCESS);
    let t: remoting::body::TopicConfig = serde_json::from_slice(&retry.body).unwrap();
    assert_eq!((t.read_queue_nums, t.write_queue_nums, t.perm), (1, 1, 6));

    // A second consumer joins: the first one is notified.
    assert_eq!(
        c2.call(heartbeat("cid-2", "hg", "HB", "*")).await.code,
        rc::SUCCESS
    );
    let n = tokio::time::timeout(TIMEOUT, c1.inbound.recv())
        .await
        .expect("notified")
        .unwrap();
    assert_eq!(n.code, rq::NOTIFY_CONSUMER_IDS_CHANGED);
    assert!(n.is_oneway());
    assert_eq!(n.ext("consumerGroup"), Some("hg"));
    let mut ids: remoting::body::GetConsumerListByGroupResponseBody =
        serde_json::from_slice(&c1.call(list("hg")).await.body).unwrap();
    ids.consumer_id_list.sort();
    assert_eq!(ids.consumer_id_list, vec!["cid-1", "cid-2"]);

    // A repeated heartbeat changes nothing and notifies nobody.
    assert_eq!(
        c2.call(heartbeat("cid-2", "hg", "HB", "*")).await.code,
        rc::SUCCESS
    );

    // The second one's connection closes: the first one is notified again.
    c2.conn.close();
    let n = tokio::time::timeout(TIMEOUT, c1.inbound.recv())
        .await
        .expect("notified on close")
        .unwrap();
    assert_eq!(n.ext("consumerGroup"), Some("hg"));
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let ids: remoting::body::GetConsumerListByGroupResponseBody =
            serde_json::from_slice(&c1.call(list("hg")).await.body).unwrap();
        if ids.consumer_id_list == vec!["cid-1"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "closed consumer never left: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Connection list for admin tools.
    let conns = c1
        .call(
            RemotingCommand::request(rq::GET_CONSUMER_CONNECTION_LIST)
                .with_ext("consumerGroup", "hg"),
        )
        .await;
    assert_eq!(conns.code, rc::SUCCESS);
    let v: serde_json::Value = serde_json::from_slice(&conns.body).unwrap();
    assert_eq!(v["connectionSet"][0]["clientId"], "cid-1");
    assert_eq!(v["messageModel"], "CLUSTERING");

    // Unregister: the group is gone.
    let unreg = RemotingCommand::request(rq::UNREGISTER_CLIENT)
        .with_ext("clientID", "cid-1")
        .with_ext("consumerGroup", "hg");
    assert_eq!(c1.call(unreg).await.code, rc::SUCCESS);
    assert_eq!(c1.call(list("hg")).await.code, rc::SYSTEM_ERROR);
    b.stop().await;
}

#[tokio::test]
async fn consumer_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let query = |q: &str| {
        RemotingCommand::request(rq::QUERY_CONSUMER_OFFSET)
            .with_ext("consumerGroup", "og")
            .with_ext("topic", "OT")
            .with_ext("queueId", q)
    };
    {
        let b = start(config(dir.path(), None)).await;
        let c = connect(b.addr).await;
        assert_eq!(c.call(create_topic("OT", 2)).await.code, rc::SUCCESS);
        // No offset and a queue that never held a message: 0 (Java 4.9.x).
        let r = c.call(query("0")).await;
        assert_eq!((r.code, r.ext("offset")), (rc::SUCCESS, Some("0")));
        // Unknown group: 26 (the group appears with the first heartbeat).
        let update = |off: &str| {
            RemotingCommand::request(rq::UPDATE_CONSUMER_OFFSET)
                .with_ext("consumerGroup", "og")
                .with_ext("topic", "OT")
                .with_ext("queueId", "1")
                .with_ext("commitOffset", off)
        };
        assert_eq!(
            c.call(update("42")).await.code,
            rc::SUBSCRIPTION_GROUP_NOT_EXIST
        );
        assert_eq!(
            c.call(heartbeat("cid", "og", "OT", "*")).await.code,
            rc::SUCCESS
        );
        assert_eq!(c.call(update("42")).await.code, rc::SUCCESS);
        let r = c.call(query("1")).await;
        assert_eq!((r.code, r.ext("offset")), (rc::SUCCESS, Some("42")));
        assert_eq!(
            c.call(send_v2("OT", 0, "", b"kept")).await.code,
            rc::SUCCESS
        );
        // A group without an offset on a queue whose first message is still
        // there starts at 0.
        let r = c.call(query("0")).await;
        assert_eq!((r.code, r.ext("offset")), (rc::SUCCESS, Some("0")));
        b.stop().await;
    }
    let raw = std::fs::read_to_string(dir.path().join("config/consumerOffset.json")).unwrap();
    assert!(raw.contains("OT@og"), "{raw}");
    let b = start(config(dir.path(), None)).await;
    let c = connect(b.addr).await;
    let r = c.call(query("1")).await;
    assert_eq!((r.code, r.ext("offset")), (rc::SUCCESS, Some("42")));
    // The message and the topic created through the admin request survived.
    let r = c.call(pull("og", "OT", 0, 0, 0x4, Some("*"), 0)).await;
    assert_eq!(r.code, rc::SUCCESS);
    assert_eq!(&decode_records(r.body)[0].body[..], b"kept");
    let t = c
        .call(RemotingCommand::request(rq::GET_TOPIC_CONFIG).with_ext("topic", "OT"))
        .await;
    assert_eq!(t.code, rc::SUCCESS);
    b.stop().await;
}

#[tokio::test]
async fn lock_batch_and_admin_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(config(dir.path(), None)).await;
    let c = connect(b.addr).await;
    let mq = |q: i32| serde_json::json!({"brokerName": "broker-t", "queueId": q, "topic": "LT"});
    let lock = |client: &str, qs: &[i32]| {
        let body = serde_json::json!({"consumerGroup": "lg", "clientId": client, "onlyThisBroker": false,
            "mqSet": qs.iter().map(|q| mq(*q)).collect::<Vec<_>>()});
        RemotingCommand::request(rq::LOCK_BATCH_MQ).with_body(serde_json::to_vec(&body).unwrap())
    };
    let locked = |r: RemotingCommand| -> Vec<i64> {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let mut qs: Vec<i64> = v["lockOKMQSet"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["queueId"].as_i64().unwrap())
            .collect();
        qs.sort();
        qs
    };
    assert_eq!(locked(c.call(lock("c1", &[0, 1])).await), vec![0, 1]);
    assert_eq!(locked(c.call(lock("c2", &[1, 2])).await), vec![2]);
    let unlock = serde_json::json!({"consumerGroup": "lg", "clientId": "c1", "mqSet": [mq(1)]});
    let r = c
        .call(
            RemotingCommand::request(rq::UNLOCK_BATCH_MQ)
                .with_body(serde_json::to_vec(&unlock).unwrap()),
        )
        .await;
    assert_eq!(r.code, rc::SUCCESS);
    assert_eq!(locked(c.call(lock("c2", &[1])).await), vec![1]);

    // Runtime info carries the keys clusterList parses as numbers.
    let info = c
        .call(RemotingCommand::request(rq::GET_BROKER_RUNTIME_INFO))
        .await;
    let kv: remoting::body::KvTable = serde_json::from_slice(&info.body).unwrap();
    for k in [
        "earliestMessageTimeStamp",
        "commitLogDiskRatio",
        "msgPutTotalTodayNow",
        "msgGetTotalTodayMorning",
    ] {
        assert!(
            kv.table[k].parse::<f64>().is_ok(),
            "{k} = {:?}",
            kv.table.get(k)
        );
    }
    assert_eq!(kv.table["putTps"].split(' ').count(), 3);
    assert!(
        kv.table.contains_key("getTransferedTps") && kv.table.contains_key("getTransferredTps")
    );

    // Broker config: properties text, and updates take effect.
    let cfg = c
        .call(RemotingCommand::request(rq::GET_BROKER_CONFIG))
        .await;
    let text = String::from_utf8(cfg.body.to_vec()).unwrap();
    assert!(text.contains("brokerName=broker-t"), "{text}");
    let upd =
        RemotingCommand::request(rq::UPDATE_BROKER_CONFIG).with_body(&b"brokerPermission=4\n"[..]);
    assert_eq!(c.call(upd).await.code, rc::SUCCESS);
    let cfg = c
        .call(RemotingCommand::request(rq::GET_BROKER_CONFIG))
        .await;
    assert!(String::from_utf8_lossy(&cfg.body).contains("brokerPermission=4"));
    assert_eq!(c.call(create_topic("RO", 1)).await.code, rc::SUCCESS);
    assert_eq!(
        c.call(send_v2("RO", 0, "", b"x")).await.code,
        rc::NO_PERMISSION
    );

    // Topic stats use fastjson's object keys.
    let stats = c
        .call(RemotingCommand::request(rq::GET_TOPIC_STATS_INFO).with_ext("topic", "RO"))
        .await;
    assert_eq!(stats.code, rc::SUCCESS);
    let text = String::from_utf8(stats.body.to_vec()).unwrap();
    assert!(
        text.starts_with(r#"{"offsetTable":{{"brokerName":"broker-t","queueId":0,"topic":"RO"}:{"#),
        "{text}"
    );

    let all = c
        .call(RemotingCommand::request(rq::GET_ALL_TOPIC_CONFIG))
        .await;
    let w: remoting::body::TopicConfigSerializeWrapper = serde_json::from_slice(&all.body).unwrap();
    assert!(w.topic_config_table.contains_key("RO"));
    let groups = c
        .call(RemotingCommand::request(
            rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
        ))
        .await;
    let v: serde_json::Value = serde_json::from_slice(&groups.body).unwrap();
    assert!(v["subscriptionGroupTable"]["TOOLS_CONSUMER"].is_object());
    let del = RemotingCommand::request(rq::DELETE_TOPIC_IN_BROKER).with_ext("topic", "RO");
    assert_eq!(c.call(del).await.code, rc::SUCCESS);
    let gone = c
        .call(RemotingCommand::request(rq::GET_TOPIC_CONFIG).with_ext("topic", "RO"))
        .await;
    assert_eq!(gone.code, rc::TOPIC_NOT_EXIST);
    b.stop().await;
}

#[tokio::test]
async fn send_back_goes_to_retry_then_dlq() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(config(dir.path(), None)).await;
    let c = connect(b.addr).await;
    assert_eq!(c.call(create_topic("SB", 1)).await.code, rc::SUCCESS);
    assert_eq!(
        c.call(send_v2(
            "SB",
            0,
            &props(&[("UNIQ_KEY", "U9"), ("TAGS", "t")]),
            b"fail-me"
        ))
        .await
        .code,
        rc::SUCCESS
    );
    let r = c.call(pull("sg", "SB", 0, 0, 0x4, Some("*"), 0)).await;
    let original = decode_records(r.body).remove(0);

    let back = |offset: i64, max: &str| {
        RemotingCommand::request(rq::CONSUMER_SEND_MSG_BACK)
            .with_ext("offset", offset.to_string())
            .with_ext("group", "sg")
            // Level 1 (1 s): the retry is parked in SCHEDULE_TOPIC_XXXX first.
            .with_ext("delayLevel", "1")
            .with_ext("originMsgId", "U9")
            .with_ext("unitMode", "false")
            .with_ext("maxReconsumeTimes", max)
    };
    assert_eq!(
        c.call(back(original.physical_offset, "16")).await.code,
        rc::SUCCESS
    );
    let mut r = c
        .call(pull("sg", "%RETRY%sg", 0, 0, 0x4, Some("*"), 0))
        .await;
    for _ in 0..50 {
        if r.code == rc::SUCCESS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        r = c
            .call(pull("sg", "%RETRY%sg", 0, 0, 0x4, Some("*"), 0))
            .await;
    }
    assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    let retry = decode_records(r.body).remove(0);
    assert_eq!(prop(&retry, "DELAY"), Some("1"));
    assert_eq!(prop(&retry, "REAL_TOPIC"), Some("%RETRY%sg"));
    assert_eq!(&retry.body[..], b"fail-me");
    assert_eq!(retry.reconsume_times, 1);
    assert_eq!(retry.topic, "%RETRY%sg");
    assert_eq!(prop(&retry, "RETRY_TOPIC"), Some("SB"));
    assert_eq!(prop(&retry, "UNIQ_KEY"), Some("U9"));
    assert_eq!(prop(&retry, "ORIGIN_MESSAGE_ID"), Some("U9"));

    // Budget spent: the dead-letter queue.
    assert_eq!(
        c.call(back(retry.physical_offset, "1")).await.code,
        rc::SUCCESS
    );
    let r = c.call(pull("sg", "%DLQ%sg", 0, 0, 0x4, Some("*"), 0)).await;
    assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    let dead = decode_records(r.body).remove(0);
    assert_eq!((dead.reconsume_times, &dead.body[..]), (2, &b"fail-me"[..]));
    assert_eq!(c.call(back(123_456_789, "16")).await.code, rc::SYSTEM_ERROR);
    b.stop().await;
}

/// INVOKE_BROKER_TO_RESET_OFFSET: a master answers it (no consumer online
/// here), a slave refuses with Java 5.x's SYSTEM_ERROR.
#[tokio::test]
async fn reset_offset_is_refused_on_a_slave() {
    let reset = || {
        RemotingCommand::request(rq::INVOKE_BROKER_TO_RESET_OFFSET)
            .with_ext("topic", "TR")
            .with_ext("group", "gR")
            .with_ext("timestamp", "-1")
            .with_ext("isForce", "true")
    };
    for role in ["ASYNC_MASTER", "SLAVE"] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), None);
        cfg.broker_role = role.parse().unwrap();
        let b = start(cfg).await;
        let c = connect(b.addr).await;
        assert_eq!(c.call(create_topic("TR", 2)).await.code, rc::SUCCESS);
        let r = c.call(reset()).await;
        if role == "SLAVE" {
            assert_eq!(r.code, rc::SYSTEM_ERROR, "{:?}", r.remark);
            assert_eq!(
                r.remark.as_deref(),
                Some("Can not reset offset in slave broker")
            );
        } else {
            assert_eq!(r.code, rc::CONSUMER_NOT_ONLINE, "{:?}", r.remark);
        }
        b.stop().await;
    }
}

/// A slave refuses sends unless it is acting master, and pulls unless
/// `slaveReadEnable` (Java's `rejectRequest`), with SYSTEM_BUSY; other
/// requests (admin, offsets) are served; a master takes everything. A send
/// an acting-master slave lets through still does not reach its store,
/// which takes only what its master ships (Java's slave-mode store:
/// SERVICE_NOT_AVAILABLE).
#[tokio::test]
async fn slave_rejects_sends_and_pulls_by_its_switches() {
    const REJECT: &str = "[REJECTREQUEST]system busy, start flow control for a while";
    for (role, acting_master, slave_read) in [
        ("SLAVE", false, false),
        ("slave", true, true),
        ("SYNC_MASTER", false, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), None);
        cfg.broker_role = role.parse().unwrap();
        cfg.enable_slave_acting_master = acting_master;
        cfg.slave_read_enable = slave_read;
        let b = start(cfg).await;
        let c = connect(b.addr).await;
        assert_eq!(c.call(create_topic("TS", 1)).await.code, rc::SUCCESS);
        let sent = c.call(send_v2("TS", 0, &props(&[]), b"x")).await;
        let pulled = c.call(pull("gS", "TS", 0, 0, 0, Some("*"), 0)).await;
        let is_slave = role.eq_ignore_ascii_case("SLAVE");
        if is_slave && !acting_master {
            assert_eq!(sent.code, rc::SYSTEM_BUSY, "{role}");
            assert_eq!(sent.remark.as_deref(), Some(REJECT));
        } else if is_slave {
            assert_eq!(sent.code, rc::SERVICE_NOT_AVAILABLE, "{role}");
            assert_eq!(
                sent.remark.as_deref(),
                Some("message store is slave mode, so putMessage is forbidden")
            );
        } else {
            assert_eq!(sent.code, rc::SUCCESS, "{role}: {:?}", sent.remark);
        }
        if is_slave && !slave_read {
            assert_eq!(pulled.code, rc::SYSTEM_BUSY, "{role}");
            assert_eq!(pulled.remark.as_deref(), Some(REJECT));
        } else {
            assert_ne!(pulled.code, rc::SYSTEM_BUSY, "{role}: {:?}", pulled.remark);
        }
        b.stop().await;
    }
}

/// A master and a slave (static `haMasterAddress`) replicate, and
/// GET_BROKER_HA_STATUS answers Java's `HARuntimeInfo` on both: the master
/// lists its slave connection, in sync at its commit-log end; the slave
/// shows its master and the same end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_and_slave_replicate_and_report_ha_status() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ha_port = free_port();
    let mut mc = config(md.path(), None);
    mc.ha_listen_port = i32::from(ha_port);
    let m = start(mc).await;
    let mcon = connect(m.addr).await;
    assert_eq!(mcon.call(create_topic("HT", 1)).await.code, rc::SUCCESS);
    for i in 0..20 {
        let body: &'static [u8] = format!("m{i}").into_bytes().leak();
        let r = mcon.call(send_v2("HT", 0, &props(&[]), body)).await;
        assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
    }
    let status = |body: &[u8]| -> serde_json::Value { serde_json::from_slice(body).unwrap() };
    let ms = mcon
        .call(RemotingCommand::request(rq::GET_BROKER_HA_STATUS))
        .await;
    assert_eq!(ms.code, rc::SUCCESS, "{:?}", ms.remark);
    let v = status(&ms.body);
    assert_eq!(v["master"], true);
    assert_eq!(v["haConnectionInfo"].as_array().unwrap().len(), 0);
    let end = v["masterCommitLogMaxOffset"].as_i64().unwrap();
    assert!(end > 0);

    let mut sc = config(sd.path(), None);
    sc.broker_role = "SLAVE".parse().unwrap();
    sc.broker_id = 1;
    sc.slave_read_enable = true;
    sc.ha_master_address = format!("127.0.0.1:{ha_port}");
    let s = start(sc).await;
    let scon = connect(s.addr).await;
    // No name server here, so no slave sync of topic configs: create it.
    assert_eq!(scon.call(create_topic("HT", 1)).await.code, rc::SUCCESS);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = status(
            &mcon
                .call(RemotingCommand::request(rq::GET_BROKER_HA_STATUS))
                .await
                .body,
        );
        let conns = v["haConnectionInfo"].as_array().unwrap().clone();
        if conns.len() == 1 && conns[0]["slaveAckOffset"].as_i64() == Some(end) {
            assert_eq!(conns[0]["diff"], 0);
            assert_eq!(conns[0]["inSync"], true);
            assert_eq!(v["inSyncSlaveNums"], 1);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slave never acknowledged {end}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v = status(
        &scon
            .call(RemotingCommand::request(rq::GET_BROKER_HA_STATUS))
            .await
            .body,
    );
    assert_eq!(v["master"], false, "{v}");
    assert_eq!(v["haClientRuntimeInfo"]["maxOffset"], end);
    assert_eq!(
        v["haClientRuntimeInfo"]["masterAddr"],
        format!("127.0.0.1:{ha_port}")
    );
    assert!(
        v["haClientRuntimeInfo"]["lastReadTimestamp"]
            .as_i64()
            .unwrap()
            > 0
    );
    // The slave serves the replicated messages at the master's offsets.
    let pulled = scon.call(pull("gH", "HT", 0, 0, 0x4, Some("*"), 0)).await;
    assert_eq!(pulled.code, rc::SUCCESS, "{:?}", pulled.remark);
    let msgs = store::StoredMessage::decode_all(&pulled.body).unwrap();
    assert_eq!(msgs.len(), 20);
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(
            (m.queue_offset, &m.body[..]),
            (i as i64, format!("m{i}").as_bytes())
        );
    }
    // ... and refuses sends.
    let sent = scon.call(send_v2("HT", 0, &props(&[]), b"x")).await;
    assert_eq!(sent.code, rc::SYSTEM_BUSY);
    s.stop().await;
    m.stop().await;
}

/// `suggestWhichBrokerId` in pull answers (Java's pull result handler):
/// the master (0) unless `slaveReadEnable`; with it, the group's
/// `whichBrokerWhenConsumeSlowly` (1) when the pull reached further behind
/// the commit log's end than `accessMessageInMemoryMaxRatio` of memory (0 %
/// here, so always), else the group's `brokerId` (0).
#[tokio::test]
async fn pull_suggests_the_slave_to_a_consumer_that_falls_behind() {
    for (slave_read, ratio, expected) in [(true, 0, "1"), (false, 0, "0"), (true, 40, "0")] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), None);
        cfg.slave_read_enable = slave_read;
        cfg.access_message_in_memory_max_ratio = ratio;
        let b = start(cfg).await;
        let c = connect(b.addr).await;
        assert_eq!(c.call(create_topic("SG", 1)).await.code, rc::SUCCESS);
        for _ in 0..3 {
            let r = c.call(send_v2("SG", 0, &props(&[]), b"m")).await;
            assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
        }
        let r = c.call(pull("sg", "SG", 0, 0, 0x4, Some("*"), 0)).await;
        assert_eq!(r.code, rc::SUCCESS, "{:?}", r.remark);
        assert_eq!(
            r.ext("suggestWhichBrokerId"),
            Some(expected),
            "slaveReadEnable={slave_read} accessMessageInMemoryMaxRatio={ratio}"
        );
        b.stop().await;
    }
}

/// `syncMasterRule=4.x`: a SYNC_MASTER with no slave answers
/// SLAVE_NOT_AVAILABLE (11) with the message stored on the master (its queue
/// offset in the answer, readable by a pull); once a slave has caught up,
/// sends are SEND_OK again (acknowledged after the slave holds them).
#[tokio::test]
async fn sync_master_rule_4x_answers_slave_not_available_without_a_slave() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ha_port = free_port();
    let mut mc = config(md.path(), None);
    mc.ha_listen_port = i32::from(ha_port);
    mc.broker_role = "SYNC_MASTER".parse().unwrap();
    mc.sync_master_rule = "4.x".into();
    let m = start(mc).await;
    let mcon = connect(m.addr).await;
    assert_eq!(mcon.call(create_topic("V4", 1)).await.code, rc::SUCCESS);
    let r = mcon.call(send_v2("V4", 0, &props(&[]), b"alone")).await;
    assert_eq!(r.code, rc::SLAVE_NOT_AVAILABLE, "{:?}", r.remark);
    let pulled = mcon.call(pull("g4", "V4", 0, 0, 0x4, Some("*"), 0)).await;
    assert_eq!(pulled.code, rc::SUCCESS, "{:?}", pulled.remark);
    let msgs = store::StoredMessage::decode_all(&pulled.body).unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(&msgs[0].body[..], b"alone");

    let mut sc = config(sd.path(), None);
    sc.broker_role = "SLAVE".parse().unwrap();
    sc.broker_id = 1;
    sc.ha_master_address = format!("127.0.0.1:{ha_port}");
    let s = start(sc).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = mcon.call(send_v2("V4", 0, &props(&[]), b"paired")).await;
        if r.code == rc::SUCCESS {
            break;
        }
        assert_eq!(r.code, rc::SLAVE_NOT_AVAILABLE, "{:?}", r.remark);
        assert!(
            std::time::Instant::now() < deadline,
            "the slave never became available"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.stop().await;
    m.stop().await;
}
