//! Shared helpers: an in-process broker, a fake name server, a client.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker::{Broker, BrokerConfig};
use bytes::{Buf, Bytes};
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

/// One decoded stored record (messages.md §1), IPv4 hosts.
#[derive(Debug, Clone)]
pub struct Record {
    pub total_size: i32,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub physical_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub body: Bytes,
    pub topic: String,
    pub properties: String,
}

fn host(b: &mut Bytes) -> SocketAddr {
    let ip = std::net::Ipv4Addr::new(b.get_u8(), b.get_u8(), b.get_u8(), b.get_u8());
    SocketAddr::new(ip.into(), b.get_i32() as u16)
}

pub fn decode_records(mut b: Bytes) -> Vec<Record> {
    let mut out = Vec::new();
    while b.has_remaining() {
        let total = b.get_i32();
        let mut r = b.split_to(total as usize - 4);
        let magic = r.get_i32();
        assert_eq!(magic, 0xDAA320A7_u32 as i32, "V1 magic");
        let _crc = r.get_i32();
        let queue_id = r.get_i32();
        let flag = r.get_i32();
        let queue_offset = r.get_i64();
        let physical_offset = r.get_i64();
        let sys_flag = r.get_i32();
        let born_timestamp = r.get_i64();
        let born_host = host(&mut r);
        let _store_ts = r.get_i64();
        let store_host = host(&mut r);
        let reconsume_times = r.get_i32();
        let _prepared = r.get_i64();
        let body_len = r.get_i32() as usize;
        let body = r.split_to(body_len);
        let topic_len = r.get_u8() as usize;
        let topic = String::from_utf8(r.split_to(topic_len).to_vec()).unwrap();
        let prop_len = r.get_i16() as usize;
        let properties = String::from_utf8(r.split_to(prop_len).to_vec()).unwrap();
        assert!(!r.has_remaining(), "TOTALSIZE matches the fields");
        out.push(Record {
            total_size: total,
            queue_id,
            flag,
            queue_offset,
            physical_offset,
            sys_flag,
            born_timestamp,
            born_host,
            store_host,
            reconsume_times,
            body,
            topic,
            properties,
        });
    }
    out
}

pub fn prop<'a>(r: &'a Record, key: &str) -> Option<&'a str> {
    r.properties
        .split('\u{2}')
        .filter_map(|p| p.split_once('\u{1}'))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
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
