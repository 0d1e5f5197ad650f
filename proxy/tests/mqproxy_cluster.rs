//! `mqproxy` in cluster mode in front of our name server and broker
//! (release binaries: `MQ_BIN_DIR`, else `target/release`), driven by the
//! tonic client generated from the same protos: route, send, receive, ack,
//! change invisible duration (the message comes back), transaction commit.
//!
//! Invariant checked throughout: every sent message is received, every
//! acknowledged (queue, offset) is acknowledged once, and a message acked
//! is not delivered again.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use compat_tests::{Cluster, JavaBroker, OurNamesrv, OurProxy};
use proxy::pb::{self, messaging_service_client::MessagingServiceClient};
use remoting::{request_code, response_code, Connection, RemotingCommand, Router};
use tonic::transport::Channel;

const CLIENT_ID: &str = "g4-test-client@127.0.0.1";
const GROUP: &str = "GID_mqproxy_cluster";

/// UPDATE_AND_CREATE_TOPIC on the broker, then waits for the name server to
/// route it.
async fn create_topic(broker: &str, namesrv: &str, topic: &str, message_type: Option<&str>) {
    let conn = Connection::connect(broker, Arc::new(Router::new()))
        .await
        .expect("connect broker");
    let mut cmd = RemotingCommand::request(request_code::UPDATE_AND_CREATE_TOPIC)
        .with_ext("topic", topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("readQueueNums", "4")
        .with_ext("writeQueueNums", "4")
        .with_ext("perm", "6")
        .with_ext("topicFilterType", "SINGLE_TAG")
        .with_ext("topicSysFlag", "0")
        .with_ext("order", "false");
    if let Some(t) = message_type {
        cmd.set_ext("attributes", format!("+message.type={t}"));
    }
    let r = conn
        .request(cmd, Duration::from_secs(5))
        .await
        .expect("create topic");
    assert_eq!(
        r.code,
        response_code::SUCCESS,
        "create topic: {:?}",
        r.remark
    );
    let ns = Connection::connect(namesrv, Arc::new(Router::new()))
        .await
        .expect("connect name server");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let q =
            RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic);
        let r = ns.request(q, Duration::from_secs(3)).await.expect("route");
        if r.code == response_code::SUCCESS {
            return;
        }
        assert!(Instant::now() < deadline, "topic {topic} never routed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn req<T>(t: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(t);
    let md = r.metadata_mut();
    md.insert("x-mq-client-id", CLIENT_ID.parse().expect("ascii"));
    md.insert("x-mq-language", "JAVA".parse().expect("ascii"));
    md.insert("x-mq-client-version", "5.0.8".parse().expect("ascii"));
    md.insert("x-mq-protocol-version", "v2".parse().expect("ascii"));
    r.set_timeout(Duration::from_secs(30));
    r
}

fn resource(name: &str) -> Option<pb::Resource> {
    Some(pb::Resource {
        resource_namespace: String::new(),
        name: name.to_owned(),
    })
}

fn now_ts() -> prost_types::Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn message(topic: &str, id: &str, body: &str, kind: pb::MessageType) -> pb::Message {
    pb::Message {
        topic: resource(topic),
        user_properties: Default::default(),
        system_properties: Some(pb::SystemProperties {
            tag: Some("TagA".into()),
            message_id: id.to_owned(),
            body_digest: Some(pb::Digest {
                r#type: pb::DigestType::Crc32 as i32,
                checksum: format!("{:08X}", crc32fast::hash(body.as_bytes())),
            }),
            body_encoding: pb::Encoding::Identity as i32,
            message_type: kind as i32,
            born_timestamp: Some(now_ts()),
            born_host: "127.0.0.1".into(),
            ..Default::default()
        }),
        body: body.as_bytes().to_vec(),
    }
}

async fn send(c: &mut MessagingServiceClient<Channel>, m: pb::Message) -> pb::SendResultEntry {
    let r = c
        .send_message(req(pb::SendMessageRequest { messages: vec![m] }))
        .await
        .expect("send rpc")
        .into_inner();
    let st = r.status.clone().unwrap_or_default();
    assert_eq!(st.code, pb::Code::Ok as i32, "send: {st:?}");
    r.entries.into_iter().next().expect("one entry")
}

/// One ReceiveMessage call: the messages of the stream.
async fn receive(
    c: &mut MessagingServiceClient<Channel>,
    topic: &str,
    invisible: Duration,
    poll: Duration,
) -> Vec<pb::Message> {
    let r = pb::ReceiveMessageRequest {
        group: resource(GROUP),
        message_queue: Some(pb::MessageQueue {
            topic: resource(topic),
            id: -1,
            permission: pb::Permission::ReadWrite as i32,
            broker: None,
            accept_message_types: vec![],
        }),
        filter_expression: Some(pb::FilterExpression {
            r#type: pb::FilterType::Tag as i32,
            expression: "*".into(),
        }),
        batch_size: 32,
        invisible_duration: Some(prost_types::Duration {
            seconds: invisible.as_secs() as i64,
            nanos: 0,
        }),
        auto_renew: false,
        long_polling_timeout: Some(prost_types::Duration {
            seconds: poll.as_secs() as i64,
            nanos: 0,
        }),
        attempt_id: None,
    };
    let mut stream = c
        .receive_message(req(r))
        .await
        .expect("receive rpc")
        .into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.message().await.expect("receive stream") {
        match item.content {
            Some(pb::receive_message_response::Content::Message(m)) => out.push(m),
            Some(pb::receive_message_response::Content::Status(st)) => {
                assert!(
                    st.code == pb::Code::Ok as i32 || st.code == pb::Code::MessageNotFound as i32,
                    "receive: {st:?}"
                );
            }
            _ => {}
        }
    }
    out
}

fn sys(m: &pb::Message) -> &pb::SystemProperties {
    m.system_properties.as_ref().expect("system properties")
}

async fn ack(c: &mut MessagingServiceClient<Channel>, topic: &str, m: &pb::Message) {
    let s = sys(m);
    let r = c
        .ack_message(req(pb::AckMessageRequest {
            group: resource(GROUP),
            topic: resource(topic),
            entries: vec![pb::AckMessageEntry {
                message_id: s.message_id.clone(),
                receipt_handle: s.receipt_handle.clone().unwrap_or_default(),
            }],
        }))
        .await
        .expect("ack rpc")
        .into_inner();
    let st = r.status.unwrap_or_default();
    assert_eq!(st.code, pb::Code::Ok as i32, "ack: {st:?}");
}

fn body(m: &pb::Message) -> String {
    String::from_utf8_lossy(&m.body).into_owned()
}

/// Where the scenario runs: a name server and one master broker.
struct Target<'a> {
    namesrv: &'a str,
    broker_addr: &'a str,
    broker_name: &'a str,
}

/// Runs the scenario against a new `mqproxy`; on failure prints
/// `logs()` and the proxy's log.
fn run(target: &Target<'_>, cluster_name: &str, logs: impl Fn() -> String) {
    let proxy = OurProxy::start(
        target.namesrv,
        cluster_name,
        &[("transactionHeartbeatPeriodSecond", 2.into())],
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let started = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(scenario(target, proxy.grpc_port))
    }));
    if let Err(e) = result {
        eprintln!(
            "{}\n----- mqproxy log -----\n{}",
            logs(),
            proxy.proc.log_text()
        );
        std::panic::resume_unwind(e);
    }
    eprintln!("mqproxy scenario took {:?}", started.elapsed());
}

#[test]
fn mqproxy_in_front_of_our_broker() {
    let _one = compat_tests::serial();
    let cluster = Cluster::start_with("transactionTimeOut=1000\ntransactionCheckInterval=1000\n");
    let target = Target {
        namesrv: &cluster.namesrv_addr,
        broker_addr: &cluster.broker_addr,
        broker_name: &cluster.broker_name,
    };
    run(&target, &cluster.cluster_name, || cluster.logs());
}

/// The same scenario with the Java 5.3.3 broker behind our proxy: each
/// asserted behaviour is the Java broker's too.
#[test]
fn mqproxy_in_front_of_the_java_5_3_3_broker() {
    let _one = compat_tests::serial();
    let ns = OurNamesrv::start();
    let broker = JavaBroker::start_with(
        "5.3.3",
        &ns.addr,
        "transactionTimeOut=1000\ntransactionCheckInterval=1000\n",
    );
    let target = Target {
        namesrv: &ns.addr,
        broker_addr: &broker.addr,
        broker_name: &broker.broker_name,
    };
    run(&target, &broker.cluster_name, || {
        format!("{}\n{}", ns.logs(), broker.logs())
    });
}

async fn scenario(target: &Target<'_>, grpc_port: u16) {
    let topic = "TopicMqproxyNormal";
    let tx_topic = "TopicMqproxyTx";
    create_topic(target.broker_addr, target.namesrv, topic, None).await;
    create_topic(
        target.broker_addr,
        target.namesrv,
        tx_topic,
        Some("TRANSACTION"),
    )
    .await;
    let mut c = MessagingServiceClient::connect(format!("http://127.0.0.1:{grpc_port}"))
        .await
        .expect("connect mqproxy");

    // Route: the broker's four queues, served at the proxy's address.
    let route = c
        .query_route(req(pb::QueryRouteRequest {
            topic: resource(topic),
            endpoints: Some(pb::Endpoints {
                scheme: pb::AddressScheme::IPv4 as i32,
                addresses: vec![pb::Address {
                    host: "127.0.0.1".into(),
                    port: i32::from(grpc_port),
                }],
            }),
        }))
        .await
        .expect("route rpc")
        .into_inner();
    assert_eq!(
        route.status.clone().unwrap_or_default().code,
        pb::Code::Ok as i32,
        "{route:?}"
    );
    let brokers: HashSet<String> = route
        .message_queues
        .iter()
        .filter_map(|q| q.broker.as_ref().map(|b| b.name.clone()))
        .collect();
    assert_eq!(brokers, HashSet::from([target.broker_name.to_owned()]));
    let missing = c
        .query_route(req(pb::QueryRouteRequest {
            topic: resource("TopicThatDoesNotExist"),
            endpoints: None,
        }))
        .await
        .expect("route rpc")
        .into_inner();
    assert_eq!(
        missing.status.unwrap_or_default().code,
        pb::Code::TopicNotFound as i32
    );

    // Send: ten messages, ten distinct (queue, offset).
    let mut sent = BTreeMap::new();
    for i in 0..10 {
        let id = format!("0100000000000000000000{i:04}");
        let e = send(
            &mut c,
            message(topic, &id, &format!("body-{i}"), pb::MessageType::Normal),
        )
        .await;
        assert_eq!(e.message_id, id);
        sent.insert(id, format!("body-{i}"));
    }

    // Receive all ten; ack nine; change the tenth's invisible time to 1 s.
    let mut got: BTreeMap<String, pb::Message> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < sent.len() {
        assert!(
            Instant::now() < deadline,
            "received {} of {}",
            got.len(),
            sent.len()
        );
        for m in receive(
            &mut c,
            topic,
            Duration::from_secs(20),
            Duration::from_secs(2),
        )
        .await
        {
            let id = sys(&m).message_id.clone();
            assert_eq!(sent.get(&id), Some(&body(&m)), "unexpected message {id}");
            assert!(sys(&m).receipt_handle.is_some(), "no receipt handle");
            assert!(
                got.insert(id.clone(), m).is_none(),
                "{id} delivered twice while invisible"
            );
        }
    }
    let mut acked: HashSet<(i32, i64)> = HashSet::new();
    let (last_id, last) = got.pop_last().expect("ten messages");
    for m in got.values() {
        ack(&mut c, topic, m).await;
        let key = (sys(m).queue_id, sys(m).queue_offset.unwrap_or(-1));
        assert!(acked.insert(key), "two acks share {key:?}");
    }
    let changed = c
        .change_invisible_duration(req(pb::ChangeInvisibleDurationRequest {
            group: resource(GROUP),
            topic: resource(topic),
            receipt_handle: sys(&last).receipt_handle.clone().unwrap_or_default(),
            invisible_duration: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            message_id: last_id.clone(),
        }))
        .await
        .expect("change invisible rpc")
        .into_inner();
    assert_eq!(
        changed.status.clone().unwrap_or_default().code,
        pb::Code::Ok as i32,
        "{changed:?}"
    );
    assert_ne!(
        changed.receipt_handle,
        sys(&last).receipt_handle.clone().unwrap_or_default()
    );

    // The tenth comes back (and only it); ack it with its new handle.
    let deadline = Instant::now() + Duration::from_secs(40);
    let again = loop {
        assert!(
            Instant::now() < deadline,
            "{last_id} never became visible again"
        );
        let ms = receive(
            &mut c,
            topic,
            Duration::from_secs(20),
            Duration::from_secs(2),
        )
        .await;
        for m in &ms {
            assert_eq!(sys(m).message_id, last_id, "an acked message came back");
        }
        if let Some(m) = ms.into_iter().next() {
            break m;
        }
    };
    assert_eq!(body(&again), sent[&last_id]);
    assert!(
        sys(&again).delivery_attempt.unwrap_or(1) >= 2,
        "{:?}",
        sys(&again)
    );
    // Redelivered from the group's retry topic: its (queue, offset) there
    // is not comparable with the topic's, the message id is.
    ack(&mut c, topic, &again).await;
    assert_eq!(acked.len() + 1, sent.len());

    // A forged handle is INVALID_RECEIPT_HANDLE, not a crash.
    let forged = c
        .ack_message(req(pb::AckMessageRequest {
            group: resource(GROUP),
            topic: resource(topic),
            entries: vec![pb::AckMessageEntry {
                message_id: last_id.clone(),
                receipt_handle: "not a handle".into(),
            }],
        }))
        .await
        .expect("ack rpc")
        .into_inner();
    let codes: Vec<i32> = forged
        .entries
        .iter()
        .filter_map(|e| e.status.as_ref().map(|s| s.code))
        .chain(forged.status.iter().map(|s| s.code))
        .collect();
    assert!(
        codes.contains(&(pb::Code::InvalidReceiptHandle as i32)),
        "{forged:?}"
    );

    // Nothing left: every ack held.
    let rest = receive(
        &mut c,
        topic,
        Duration::from_secs(20),
        Duration::from_secs(1),
    )
    .await;
    assert!(rest.is_empty(), "acked messages came back: {rest:?}");

    // Transaction: a half message is invisible until committed.
    let tx_id = "01000000000000000000009999";
    let half = send(
        &mut c,
        message(tx_topic, tx_id, "tx-body", pb::MessageType::Transaction),
    )
    .await;
    assert!(!half.transaction_id.is_empty());
    let none = receive(
        &mut c,
        tx_topic,
        Duration::from_secs(20),
        Duration::from_secs(1),
    )
    .await;
    assert!(none.is_empty(), "a half message was delivered: {none:?}");
    let end = c
        .end_transaction(req(pb::EndTransactionRequest {
            topic: resource(tx_topic),
            message_id: tx_id.into(),
            transaction_id: half.transaction_id.clone(),
            resolution: pb::TransactionResolution::Commit as i32,
            source: pb::TransactionSource::SourceClient as i32,
            trace_context: String::new(),
        }))
        .await
        .expect("end transaction rpc")
        .into_inner();
    assert_eq!(
        end.status.clone().unwrap_or_default().code,
        pb::Code::Ok as i32,
        "{end:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let committed = loop {
        assert!(
            Instant::now() < deadline,
            "the committed message never arrived"
        );
        let ms = receive(
            &mut c,
            tx_topic,
            Duration::from_secs(20),
            Duration::from_secs(2),
        )
        .await;
        if let Some(m) = ms.into_iter().next() {
            break m;
        }
    };
    assert_eq!(sys(&committed).message_id, tx_id);
    assert_eq!(body(&committed), "tx-body");
    ack(&mut c, tx_topic, &committed).await;
}
