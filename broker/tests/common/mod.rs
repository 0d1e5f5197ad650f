//! Shared helpers: an in-process broker, a fake name server, a client.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

pub mod controller;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker::{Broker, BrokerConfig};
use bytes::Bytes;
use remoting::code::request_code as rq;
use remoting::header::{
    PullMessageRequestHeader, SendMessageRequestHeader, SendMessageRequestHeaderV2,
};
use remoting::{serve, Connection, RemotingCommand, Router, ServerConfig};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct TestBroker {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestBroker {
    /// Stops the broker and waits until it has flushed everything.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(TIMEOUT, self.task)
            .await
            .expect("broker stops in time")
            .unwrap()
            .unwrap();
    }
}

pub fn config(dir: &std::path::Path, namesrv: Option<SocketAddr>) -> BrokerConfig {
    BrokerConfig {
        broker_cluster_name: "TestCluster".into(),
        broker_name: "broker-t".into(),
        broker_ip1: "127.0.0.1".into(),
        broker_ip2: "127.0.0.1".into(),
        store_path_root_dir: dir.display().to_string(),
        namesrv_addr: namesrv.map(|a| a.to_string()).unwrap_or_default(),
        mapped_file_size_commit_log: 4 * 1024 * 1024,
        mapped_file_size_consume_queue: 6000,
        ..Default::default()
    }
}

pub async fn start(mut config: BrokerConfig) -> TestBroker {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    config.listen_port = addr.port();
    let shutdown = CancellationToken::new();
    let broker = Broker::start(listener, None, config, None, shutdown.clone())
        .await
        .expect("broker starts");
    let task = tokio::spawn(broker.wait());
    TestBroker {
        addr,
        shutdown,
        task,
    }
}

/// [`start`] on a store opened by the caller.
pub async fn start_with_store(mut config: BrokerConfig, store: store::MessageStore) -> TestBroker {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    config.listen_port = addr.port();
    let shutdown = CancellationToken::new();
    let broker = Broker::start(listener, None, config, Some(store), shutdown.clone())
        .await
        .expect("broker starts");
    let task = tokio::spawn(broker.wait());
    TestBroker {
        addr,
        shutdown,
        task,
    }
}

/// A free loopback port (for a broker's HA port: every broker listens on one).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fake name server recording what brokers send it.
pub struct FakeNamesrv {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<RemotingCommand>>>,
    pub shutdown: CancellationToken,
}

impl FakeNamesrv {
    pub async fn start() -> FakeNamesrv {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let record = |requests: Arc<Mutex<Vec<RemotingCommand>>>| {
            move |_c: Connection, req: RemotingCommand| {
                requests.lock().unwrap().push(req);
                async move { Ok(RemotingCommand::success()) }
            }
        };
        let router = Router::new()
            .route(rq::REGISTER_BROKER, record(requests.clone()))
            .route(rq::UNREGISTER_BROKER, record(requests.clone()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(
            listener,
            Arc::new(router),
            ServerConfig::default(),
            shutdown.clone(),
        ));
        FakeNamesrv {
            addr,
            requests,
            shutdown,
        }
    }

    pub fn with_code(&self, code: i32) -> Vec<RemotingCommand> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.code == code)
            .cloned()
            .collect()
    }

    /// Waits until a recorded request satisfies `pred`.
    pub async fn wait_for(
        &self,
        what: &str,
        pred: impl Fn(&RemotingCommand) -> bool,
    ) -> RemotingCommand {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if let Some(r) = self.requests.lock().unwrap().iter().find(|r| pred(r)) {
                return r.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "name server never saw {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A client connection that records the requests the broker sends it.
pub struct Client {
    pub conn: Connection,
    pub inbound: mpsc::UnboundedReceiver<RemotingCommand>,
}

pub async fn connect(addr: SocketAddr) -> Client {
    let (tx, inbound) = mpsc::unbounded_channel();
    let router = Router::new().route(
        rq::NOTIFY_CONSUMER_IDS_CHANGED,
        move |_c: Connection, req: RemotingCommand| {
            let _ = tx.send(req);
            async move { Ok(RemotingCommand::success()) }
        },
    );
    let conn = Connection::connect(addr, Arc::new(router)).await.unwrap();
    Client { conn, inbound }
}

impl Client {
    pub async fn call(&self, req: RemotingCommand) -> RemotingCommand {
        self.conn.request(req, TIMEOUT).await.expect("response")
    }
}

pub fn send_header(topic: &str, queue_id: i32, properties: &str) -> SendMessageRequestHeader {
    SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: topic.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        flag: 7,
        properties: Some(properties.into()),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: Some(false),
        ..Default::default()
    }
}

pub fn send_v1(
    topic: &str,
    queue_id: i32,
    properties: &str,
    body: &'static [u8],
) -> RemotingCommand {
    RemotingCommand::request(rq::SEND_MESSAGE)
        .with_header(&send_header(topic, queue_id, properties))
        .with_body(body)
}

pub fn send_v2(
    topic: &str,
    queue_id: i32,
    properties: &str,
    body: &'static [u8],
) -> RemotingCommand {
    let v2: SendMessageRequestHeaderV2 = send_header(topic, queue_id, properties).into();
    RemotingCommand::request(rq::SEND_MESSAGE_V2)
        .with_header(&v2)
        .with_body(body)
}

pub fn props(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}\u{1}{v}\u{2}"))
        .collect()
}

pub fn pull(
    group: &str,
    topic: &str,
    queue_id: i32,
    offset: i64,
    sys_flag: i32,
    subscription: Option<&str>,
    suspend_ms: i64,
) -> RemotingCommand {
    let h = PullMessageRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id,
        queue_offset: offset,
        max_msg_nums: 32,
        sys_flag,
        commit_offset: 0,
        suspend_timeout_millis: suspend_ms,
        subscription: subscription.map(str::to_owned),
        sub_version: 0,
        expression_type: Some("TAG".into()),
        max_msg_bytes: None,
        broker_name: None,
    };
    RemotingCommand::request(rq::PULL_MESSAGE).with_header(&h)
}

pub fn create_topic(topic: &str, queues: i32) -> RemotingCommand {
    RemotingCommand::request(rq::UPDATE_AND_CREATE_TOPIC)
        .with_ext("topic", topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("readQueueNums", queues.to_string())
        .with_ext("writeQueueNums", queues.to_string())
        .with_ext("perm", "6")
        .with_ext("topicFilterType", "SINGLE_TAG")
        .with_ext("topicSysFlag", "0")
        .with_ext("order", "false")
        .with_ext("attributes", "")
}

/// Stored records as a pull or view body carries them, decoded by the store's own reader.
pub type Record = store::record::StoredMessage;

pub fn decode_records(body: Bytes) -> Vec<Record> {
    Record::decode_all(&body).expect("the body holds whole stored records")
}

pub fn prop<'a>(r: &'a Record, key: &str) -> Option<&'a str> {
    store::properties::get(&r.properties, key)
}

pub fn heartbeat(client_id: &str, group: &str, topic: &str, sub: &str) -> RemotingCommand {
    let tags: Vec<&str> = if sub == "*" {
        vec![]
    } else {
        sub.split("||").map(str::trim).collect()
    };
    let body = serde_json::json!({
        "clientID": client_id,
        "producerDataSet": [{"groupName": "CLIENT_INNER_PRODUCER"}],
        "consumerDataSet": [{
            "groupName": group,
            "consumeType": "CONSUME_PASSIVELY",
            "messageModel": "CLUSTERING",
            "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
            "unitMode": false,
            "subscriptionDataSet": [
                {"classFilterMode": false, "topic": topic, "subString": sub, "tagsSet": tags, "codeSet": [], "subVersion": 1, "expressionType": "TAG"},
                {"classFilterMode": false, "topic": format!("%RETRY%{group}"), "subString": "*", "tagsSet": [], "codeSet": [], "subVersion": 1, "expressionType": "TAG"}
            ]
        }]
    });
    RemotingCommand::request(rq::HEART_BEAT).with_body(serde_json::to_vec(&body).unwrap())
}
