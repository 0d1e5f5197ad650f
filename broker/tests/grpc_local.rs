//! Local proxy mode (`enableProxy`): the RocketMQ 5 gRPC MessagingService
//! served by an in-process broker, driven by a tonic client the way the
//! official 5.x clients drive it: telemetry settings, route, send, receive
//! (status, messages, delivery timestamp), ack, change invisible duration
//! and redelivery, transactions with commit and with the server's
//! orphaned-transaction check, and the error codes of bad requests.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use broker::Broker;
use common::*;
use proxy::pb::messaging_service_client::MessagingServiceClient;
use proxy::pb::{self, Code};
use proxy::tonic::transport::Channel;
use proxy::tonic::Request;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

struct GrpcBroker {
    remoting: SocketAddr,
    grpc: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

/// A test broker's config with the gRPC port on (a free port, loopback).
fn grpc_config(dir: &std::path::Path) -> broker::BrokerConfig {
    let mut c = config(dir, None);
    c.bind_address = "127.0.0.1".into();
    c.enable_proxy = true;
    c.grpc_server_port = 0;
    c
}

impl GrpcBroker {
    async fn start(tune: impl FnOnce(&mut broker::BrokerConfig)) -> GrpcBroker {
        let dir = tempfile::tempdir().unwrap();
        let mut c = grpc_config(dir.path());
        tune(&mut c);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let remoting = listener.local_addr().unwrap();
        c.listen_port = remoting.port();
        let shutdown = CancellationToken::new();
        let b = Broker::start(listener, None, c, None, shutdown.clone())
            .await
            .expect("broker starts");
        let grpc = b.grpc_addr().expect("gRPC port bound");
        let task = tokio::spawn(b.wait());
        GrpcBroker {
            remoting,
            grpc,
            shutdown,
            task,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(TIMEOUT, self.task)
            .await
            .expect("broker stops in time")
            .unwrap()
            .unwrap();
    }

    async fn create_topic(&self, topic: &str) {
        let c = connect(self.remoting).await;
        let r = c.call(create_topic(topic, 4)).await;
        assert_eq!(r.code, 0, "{:?}", r.remark);
    }
}

type Client = MessagingServiceClient<Channel>;

async fn client(addr: SocketAddr) -> Client {
    MessagingServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn res(name: &str) -> pb::Resource {
    pb::Resource {
        resource_namespace: String::new(),
        name: name.into(),
    }
}

fn req<T>(client_id: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("x-mq-client-id", client_id.parse().unwrap());
    r.metadata_mut()
        .insert("x-mq-language", "JAVA".parse().unwrap());
    r.set_timeout(Duration::from_secs(30));
    r
}

fn code(s: &Option<pb::Status>) -> Code {
    Code::try_from(s.as_ref().map(|s| s.code).unwrap_or(0)).unwrap_or(Code::Unspecified)
}

fn dur(ms: i64) -> prost_types_dur::Duration {
    prost_types_dur::Duration {
        seconds: ms / 1000,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

use proxy::prost_types as prost_types_dur;

/// An open telemetry stream: commands from the server arrive on `inbound`.
struct Telemetry {
    tx: mpsc::Sender<pb::TelemetryCommand>,
    inbound: proxy::tonic::Streaming<pb::TelemetryCommand>,
}

impl Telemetry {
    async fn open(
        c: &mut Client,
        client_id: &str,
        settings: pb::Settings,
    ) -> (Telemetry, pb::TelemetryCommand) {
        let (tx, rx) = mpsc::channel(16);
        tx.send(pb::TelemetryCommand {
            status: None,
            command: Some(pb::telemetry_command::Command::Settings(settings)),
        })
        .await
        .unwrap();
        let mut r = Request::new(tokio_stream_compat(rx));
        r.metadata_mut()
            .insert("x-mq-client-id", client_id.parse().unwrap());
        let mut inbound = c.telemetry(r).await.unwrap().into_inner();
        let first = tokio::time::timeout(TIMEOUT, inbound.message())
            .await
            .expect("settings answered in time")
            .unwrap()
            .expect("a settings answer");
        (Telemetry { tx, inbound }, first)
    }
}

fn tokio_stream_compat(
    rx: mpsc::Receiver<pb::TelemetryCommand>,
) -> impl futures::Stream<Item = pb::TelemetryCommand> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

fn producer_settings(topic: &str) -> pb::Settings {
    pb::Settings {
        client_type: Some(pb::ClientType::Producer as i32),
        pub_sub: Some(pb::settings::PubSub::Publishing(pb::Publishing {
            topics: vec![res(topic)],
            max_body_size: 0,
            validate_message_type: true,
        })),
        ..Default::default()
    }
}

fn consumer_settings(group: &str, topic: &str) -> pb::Settings {
    pb::Settings {
        client_type: Some(pb::ClientType::SimpleConsumer as i32),
        pub_sub: Some(pb::settings::PubSub::Subscription(pb::Subscription {
            group: Some(res(group)),
            subscriptions: vec![pb::SubscriptionEntry {
                topic: Some(res(topic)),
                expression: Some(pb::FilterExpression {
                    r#type: pb::FilterType::Tag as i32,
                    expression: "*".into(),
                }),
            }],
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn message(topic: &str, id: &str, body: &[u8], ty: pb::MessageType) -> pb::Message {
    pb::Message {
        topic: Some(res(topic)),
        user_properties: [("k".to_owned(), "v".to_owned())].into_iter().collect(),
        system_properties: Some(pb::SystemProperties {
            tag: Some("TagA".into()),
            keys: vec!["key1".into()],
            message_id: id.into(),
            body_encoding: pb::Encoding::Identity as i32,
            message_type: ty as i32,
            born_host: "127.0.0.1".into(),
            ..Default::default()
        }),
        body: body.to_vec(),
    }
}

async fn send(c: &mut Client, client_id: &str, m: pb::Message) -> pb::SendMessageResponse {
    c.send_message(req(client_id, pb::SendMessageRequest { messages: vec![m] }))
        .await
        .unwrap()
        .into_inner()
}

/// One ReceiveMessage call: (status code, messages, saw a delivery timestamp).
async fn receive(
    c: &mut Client,
    client_id: &str,
    group: &str,
    topic: &str,
    invisible_ms: i64,
) -> (Code, Vec<pb::Message>, bool) {
    let r = pb::ReceiveMessageRequest {
        group: Some(res(group)),
        message_queue: Some(pb::MessageQueue {
            topic: Some(res(topic)),
            id: -1,
            permission: pb::Permission::ReadWrite as i32,
            broker: Some(pb::Broker {
                name: "broker-t".into(),
                id: 0,
                endpoints: None,
            }),
            accept_message_types: vec![],
        }),
        filter_expression: Some(pb::FilterExpression {
            r#type: pb::FilterType::Tag as i32,
            expression: "*".into(),
        }),
        batch_size: 32,
        invisible_duration: Some(dur(invisible_ms)),
        auto_renew: false,
        long_polling_timeout: Some(dur(5_000)),
        attempt_id: None,
    };
    let mut s = c
        .receive_message(req(client_id, r))
        .await
        .unwrap()
        .into_inner();
    let mut st = Code::Unspecified;
    let mut msgs = Vec::new();
    let mut ts = false;
    let mut first_is_status = None;
    while let Some(m) = s.message().await.unwrap() {
        use pb::receive_message_response::Content;
        match m.content {
            Some(Content::Status(x)) => {
                first_is_status.get_or_insert(true);
                st = Code::try_from(x.code).unwrap();
            }
            Some(Content::Message(m)) => {
                first_is_status.get_or_insert(false);
                msgs.push(m)
            }
            Some(Content::DeliveryTimestamp(_)) => ts = true,
            None => {}
        }
    }
    assert_eq!(
        first_is_status,
        Some(true),
        "the stream starts with a status"
    );
    (st, msgs, ts)
}

fn sp(m: &pb::Message) -> &pb::SystemProperties {
    m.system_properties.as_ref().unwrap()
}

async fn ack(
    c: &mut Client,
    client_id: &str,
    group: &str,
    topic: &str,
    handles: &[(String, String)],
) -> pb::AckMessageResponse {
    c.ack_message(req(
        client_id,
        pb::AckMessageRequest {
            group: Some(res(group)),
            topic: Some(res(topic)),
            entries: handles
                .iter()
                .map(|(id, h)| pb::AckMessageEntry {
                    message_id: id.clone(),
                    receipt_handle: h.clone(),
                })
                .collect(),
        },
    ))
    .await
    .unwrap()
    .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_receive_ack_and_error_codes() {
    let b = GrpcBroker::start(|_| {}).await;
    let mut c = client(b.grpc).await;
    const T: &str = "GrpcT";
    const G: &str = "GrpcG";

    // A topic that does not exist.
    let r = c
        .query_route(req(
            "p1",
            pb::QueryRouteRequest {
                topic: Some(res("NoSuchTopic")),
                endpoints: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::TopicNotFound);

    b.create_topic(T).await;
    let endpoints = pb::Endpoints {
        scheme: pb::AddressScheme::IPv4 as i32,
        addresses: vec![pb::Address {
            host: "127.0.0.1".into(),
            port: i32::from(b.grpc.port()),
        }],
    };
    let r = c
        .query_route(req(
            "p1",
            pb::QueryRouteRequest {
                topic: Some(res(T)),
                endpoints: Some(endpoints.clone()),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::Ok);
    assert_eq!(r.message_queues.len(), 4);
    for q in &r.message_queues {
        assert_eq!(q.permission, pb::Permission::ReadWrite as i32);
        let broker = q.broker.as_ref().unwrap();
        assert_eq!(broker.name, "broker-t");
        assert_eq!(broker.endpoints.as_ref(), Some(&endpoints));
        assert_eq!(q.accept_message_types, vec![pb::MessageType::Normal as i32]);
    }

    // Producer settings: the server's backoff and limits come back.
    let (_ptel, first) = Telemetry::open(&mut c, "p1", producer_settings(T)).await;
    assert_eq!(code(&first.status), Code::Ok);
    let Some(pb::telemetry_command::Command::Settings(s)) = first.command else {
        panic!("settings expected")
    };
    assert_eq!(s.backoff_policy.as_ref().unwrap().max_attempts, 3);
    match s.pub_sub {
        Some(pb::settings::PubSub::Publishing(p)) => assert_eq!(p.max_body_size, 4 * 1024 * 1024),
        other => panic!("publishing expected, got {other:?}"),
    }

    // Sends.
    let mut sent = BTreeSet::new();
    for i in 0..10 {
        let id = format!("MSGID{i:04}");
        let r = send(
            &mut c,
            "p1",
            message(
                T,
                &id,
                format!("body-{i}").as_bytes(),
                pb::MessageType::Normal,
            ),
        )
        .await;
        assert_eq!(code(&r.status), Code::Ok, "{:?}", r.status);
        assert_eq!(r.entries.len(), 1);
        assert_eq!(r.entries[0].message_id, id);
        sent.insert(id);
    }
    // Bad sends get Java's codes.
    let r = send(&mut c, "p1", message(T, "E1", b"", pb::MessageType::Normal)).await;
    assert_eq!(code(&r.status), Code::MessageBodyEmpty);
    let r = send(
        &mut c,
        "p1",
        message("NoSuchTopic", "E2", b"x", pb::MessageType::Normal),
    )
    .await;
    assert_eq!(code(&r.status), Code::TopicNotFound);
    let r = send(&mut c, "p1", message(T, "", b"x", pb::MessageType::Normal)).await;
    assert_eq!(code(&r.status), Code::IllegalMessageId);
    let r = send(
        &mut c,
        "p1",
        message(
            T,
            "E3",
            &vec![b'x'; 4 * 1024 * 1024 + 1],
            pb::MessageType::Normal,
        ),
    )
    .await;
    assert_eq!(code(&r.status), Code::MessageBodyTooLarge);
    let mut m = message(T, "E4", b"x", pb::MessageType::Normal);
    m.user_properties.insert("UNIQ_KEY".into(), "x".into());
    let r = send(&mut c, "p1", m).await;
    assert_eq!(code(&r.status), Code::IllegalMessagePropertyKey);
    let mut m = message(T, "E5", b"x", pb::MessageType::Normal);
    sp_mut(&mut m).tag = Some("a|b".into());
    let r = send(&mut c, "p1", m).await;
    assert_eq!(code(&r.status), Code::IllegalMessageTag);

    // Consumer.
    let (_ctel, first) = Telemetry::open(&mut c, "c1", consumer_settings(G, T)).await;
    assert_eq!(code(&first.status), Code::Ok);
    let Some(pb::telemetry_command::Command::Settings(s)) = first.command else {
        panic!("settings expected")
    };
    assert_eq!(s.backoff_policy.as_ref().unwrap().max_attempts, 17);
    let hb = c
        .heartbeat(req(
            "c1",
            pb::HeartbeatRequest {
                group: Some(res(G)),
                client_type: pb::ClientType::SimpleConsumer as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&hb.status), Code::Ok);
    let hb = c
        .heartbeat(req(
            "unknown-client",
            pb::HeartbeatRequest {
                group: None,
                client_type: 1,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&hb.status), Code::UnrecognizedClientType);
    let a = c
        .query_assignment(req(
            "c1",
            pb::QueryAssignmentRequest {
                topic: Some(res(T)),
                group: Some(res(G)),
                endpoints: Some(endpoints),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&a.status), Code::Ok);
    assert_eq!(a.assignments.len(), 1);
    assert_eq!(a.assignments[0].message_queue.as_ref().unwrap().id, -1);

    // Invisible time below Java's minimum for receive.
    let (st, _, _) = receive(&mut c, "c1", G, T, 1_000).await;
    assert_eq!(st, Code::IllegalInvisibleTime);

    let mut got = BTreeSet::new();
    let mut handles = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < sent.len() && Instant::now() < deadline {
        let (st, msgs, ts) = receive(&mut c, "c1", G, T, 30_000).await;
        assert!(ts, "a delivery timestamp ends the stream");
        if st == Code::MessageNotFound {
            continue;
        }
        assert_eq!(st, Code::Ok);
        for m in msgs {
            let p = sp(&m);
            assert!(
                got.insert(p.message_id.clone()),
                "delivered twice: {}",
                p.message_id
            );
            assert_eq!(p.tag.as_deref(), Some("TagA"));
            assert_eq!(p.keys, vec!["key1".to_owned()]);
            assert_eq!(p.delivery_attempt, Some(1));
            assert_eq!(m.user_properties.get("k").map(String::as_str), Some("v"));
            assert!(!m.user_properties.contains_key("UNIQ_KEY"));
            let d = p.body_digest.as_ref().unwrap();
            assert_eq!(d.checksum, format!("{:X}", crc32fast::hash(&m.body)));
            handles.push((p.message_id.clone(), p.receipt_handle.clone().unwrap()));
        }
    }
    assert_eq!(got, sent, "every sent message received once");
    let r = ack(&mut c, "c1", G, T, &handles).await;
    assert_eq!(code(&r.status), Code::Ok, "{:?}", r);
    assert!(r.entries.iter().all(|e| code(&e.status) == Code::Ok));

    // Forged and malformed handles.
    let r = ack(&mut c, "c1", G, T, &[("x".into(), "not a handle".into())]).await;
    assert_eq!(code(&r.status), Code::InvalidReceiptHandle);
    let r = ack(
        &mut c,
        "c1",
        G,
        T,
        &[("x".into(), "1 2 3 4 0 broker-t 0 5 6".into())],
    )
    .await;
    assert_eq!(code(&r.status), Code::InvalidReceiptHandle, "expired");

    // Nothing left: MESSAGE_NOT_FOUND after the long poll.
    let (st, msgs, _) = receive(&mut c, "c1", G, T, 30_000).await;
    assert_eq!((st, msgs.len()), (Code::MessageNotFound, 0));

    let r = c
        .notify_client_termination(req(
            "c1",
            pb::NotifyClientTerminationRequest {
                group: Some(res(G)),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::Ok);
    b.stop().await;
}

fn sp_mut(m: &mut pb::Message) -> &mut pb::SystemProperties {
    m.system_properties.as_mut().unwrap()
}

async fn end_tx(
    c: &mut Client,
    client_id: &str,
    topic: &str,
    msg_id: &str,
    tx_id: &str,
    resolution: pb::TransactionResolution,
    source: pb::TransactionSource,
) -> Code {
    let r = c
        .end_transaction(req(
            client_id,
            pb::EndTransactionRequest {
                topic: Some(res(topic)),
                message_id: msg_id.into(),
                transaction_id: tx_id.into(),
                resolution: resolution as i32,
                source: source as i32,
                trace_context: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    code(&r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_checks_and_redelivery() {
    let b = GrpcBroker::start(|c| {
        c.transaction_time_out = 1_000;
        c.transaction_check_interval = 500;
    })
    .await;
    let mut c = client(b.grpc).await;
    const T: &str = "GrpcTxT";
    const G: &str = "GrpcTxG";
    b.create_topic(T).await;
    let (mut ptel, first) = Telemetry::open(&mut c, "p2", producer_settings(T)).await;
    assert_eq!(code(&first.status), Code::Ok);
    let (_ctel, first) = Telemetry::open(&mut c, "c2", consumer_settings(G, T)).await;
    assert_eq!(code(&first.status), Code::Ok);
    use pb::TransactionResolution as R;
    use pb::TransactionSource as S;

    // Committed by the client.
    let r = send(
        &mut c,
        "p2",
        message(T, "TX1", b"tx-1", pb::MessageType::Transaction),
    )
    .await;
    assert_eq!(code(&r.status), Code::Ok, "{:?}", r.status);
    let tx1 = r.entries[0].transaction_id.clone();
    assert!(!tx1.is_empty());
    assert_eq!(
        end_tx(&mut c, "p2", T, "TX1", &tx1, R::Commit, S::SourceClient).await,
        Code::Ok
    );
    // Rolled back.
    let r = send(
        &mut c,
        "p2",
        message(T, "TX3", b"tx-3", pb::MessageType::Transaction),
    )
    .await;
    let tx3 = r.entries[0].transaction_id.clone();
    assert_eq!(
        end_tx(&mut c, "p2", T, "TX3", &tx3, R::Rollback, S::SourceClient).await,
        Code::Ok
    );
    // Unknown transaction.
    assert_eq!(
        end_tx(
            &mut c,
            "p2",
            T,
            "X",
            "no-such-tx",
            R::Commit,
            S::SourceClient
        )
        .await,
        Code::InvalidTransactionId
    );
    // Left open: the broker's check reaches the producer over telemetry.
    let r = send(
        &mut c,
        "p2",
        message(T, "TX2", b"tx-2", pb::MessageType::Transaction),
    )
    .await;
    assert_eq!(code(&r.status), Code::Ok);
    let cmd = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let m = ptel
                .inbound
                .message()
                .await
                .unwrap()
                .expect("telemetry open");
            if let Some(pb::telemetry_command::Command::RecoverOrphanedTransactionCommand(r)) =
                m.command
            {
                return r;
            }
        }
    })
    .await
    .expect("a RecoverOrphanedTransactionCommand within 30 s");
    let m = cmd.message.as_ref().unwrap();
    assert_eq!(sp(m).message_id, "TX2");
    assert_eq!(m.body, b"tx-2");
    assert_eq!(
        end_tx(
            &mut c,
            "p2",
            T,
            "TX2",
            &cmd.transaction_id,
            R::Commit,
            S::SourceServerCheck
        )
        .await,
        Code::Ok
    );
    drop(ptel.tx);

    // TX1 and TX2 are delivered, TX3 never.
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut handles = Vec::new();
    while got.len() < 2 && Instant::now() < deadline {
        let (st, msgs, _) = receive(&mut c, "c2", G, T, 30_000).await;
        assert!(matches!(st, Code::Ok | Code::MessageNotFound), "{st:?}");
        for m in msgs {
            let id = sp(&m).message_id.clone();
            assert_ne!(id, "TX3", "a rolled back message is never delivered");
            assert!(got.insert(id.clone()), "{id} twice");
            handles.push((id, sp(&m).receipt_handle.clone().unwrap()));
        }
    }
    assert_eq!(got, ["TX1", "TX2"].map(String::from).into_iter().collect());
    let r = ack(&mut c, "c2", G, T, &handles).await;
    assert_eq!(code(&r.status), Code::Ok);

    // Redelivery: a message made visible again after 1 s comes back with
    // delivery attempt 2; its new handle acks it.
    let r = send(
        &mut c,
        "p2",
        message(T, "R1", b"again", pb::MessageType::Normal),
    )
    .await;
    assert_eq!(code(&r.status), Code::Ok);
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.is_none() && Instant::now() < deadline {
        let (_, msgs, _) = receive(&mut c, "c2", G, T, 30_000).await;
        first = msgs.into_iter().next();
    }
    let first = first.expect("R1 received");
    assert_eq!(sp(&first).message_id, "R1");
    let ch = c
        .change_invisible_duration(req(
            "c2",
            pb::ChangeInvisibleDurationRequest {
                group: Some(res(G)),
                topic: Some(res(T)),
                receipt_handle: sp(&first).receipt_handle.clone().unwrap(),
                invisible_duration: Some(dur(1_000)),
                message_id: "R1".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&ch.status), Code::Ok, "{:?}", ch.status);
    assert!(proxy::ReceiptHandle::parse(&ch.receipt_handle).is_some());
    let mut again = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while again.is_none() && Instant::now() < deadline {
        let (_, msgs, _) = receive(&mut c, "c2", G, T, 30_000).await;
        again = msgs.into_iter().find(|m| sp(m).message_id == "R1");
    }
    let again = again.expect("R1 delivered again after its invisible time");
    assert_eq!(sp(&again).delivery_attempt, Some(2));
    assert_eq!(again.body, b"again");
    let r = ack(
        &mut c,
        "c2",
        G,
        T,
        &[("R1".into(), sp(&again).receipt_handle.clone().unwrap())],
    )
    .await;
    assert_eq!(code(&r.status), Code::Ok, "{r:?}");
    b.stop().await;
}

/// The TLS keys of local mode are read from the broker's config: with
/// `tls.server.mode=enforcing` a plaintext gRPC client is refused (it is
/// served under the default, `permissive`, as every other test here shows);
/// with `tlsTestModeEnable=false` and no key files there is nothing to serve
/// TLS with, and the broker says so instead of starting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_keys_of_local_mode() {
    let b = GrpcBroker::start(|c| c.tls_server_mode = "enforcing".into()).await;
    let plain = tokio::time::timeout(TIMEOUT, async {
        let mut c = MessagingServiceClient::connect(format!("http://{}", b.grpc)).await?;
        c.query_route(req(
            "p1",
            pb::QueryRouteRequest {
                topic: Some(res("AnyTopic")),
                endpoints: None,
            },
        ))
        .await
        .map_err(anyhow::Error::from)
        .map(|_| ())
    })
    .await
    .expect("the refusal comes in time");
    assert!(plain.is_err(), "plaintext served under enforcing");
    b.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let mut c = grpc_config(dir.path());
    c.tls_server_mode = "enforcing".into();
    c.tls_test_mode_enable = false;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    c.listen_port = listener.local_addr().unwrap().port();
    let err = match Broker::start(listener, None, c, None, CancellationToken::new()).await {
        Ok(_) => panic!("started with enforcing TLS and no certificate"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("tlsKeyPath"), "{err}");
}
