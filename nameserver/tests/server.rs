//! The name server in-process on 127.0.0.1:0, driven over TCP with
//! `remoting::Connection` the way brokers, clients and mqadmin drive it.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nameserver::register_body::body_crc32;
use nameserver::{run, NamesrvConfig};
use remoting::body::{from_fastjson, ClusterInfo, DataVersion, KvTable, TopicList, TopicRouteData};
use remoting::code::{request_code as rc, response_code};
use remoting::{Connection, RemotingCommand, Router};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(10);

struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), nameserver::ServerError>>,
}

impl Server {
    async fn start(config: NamesrvConfig) -> Server {
        let listener = nameserver::server::bind(&config).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(listener, config, shutdown.clone()));
        Server {
            addr,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }

    async fn connect(&self) -> Connection {
        Connection::connect(self.addr, Arc::new(Router::new()))
            .await
            .unwrap()
    }
}

fn config(dir: &tempfile::TempDir) -> NamesrvConfig {
    let mut c = NamesrvConfig::with_home(dir.path());
    c.bind_address = "127.0.0.1".into();
    c.listen_port = 0;
    c.scan_not_active_broker_interval = 50;
    c
}

/// A name server with the test `config` on a fresh home directory; the
/// directory lives as long as the returned handle.
async fn start() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir)).await;
    (dir, server)
}

/// A fresh name server (see `start`) on which broker `a` of DefaultCluster,
/// at 127.0.0.1:10911 with topics T and A, has registered over the returned
/// connection.
async fn start_with_broker_a() -> (tempfile::TempDir, Server, Connection) {
    let (dir, server) = start().await;
    let conn = server.connect().await;
    let r = register(&conn, "a", 0, "127.0.0.1:10911", &[("T", 4), ("A", 4)]).await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    (dir, server, conn)
}

async fn call(conn: &Connection, cmd: RemotingCommand) -> RemotingCommand {
    conn.request(cmd, TIMEOUT).await.unwrap()
}

/// Sends a request with only a code: no ext fields, no body.
async fn ask(conn: &Connection, code: i32) -> RemotingCommand {
    call(conn, RemotingCommand::request(code)).await
}

/// Polls `check` until it returns true or 10 s pass.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + TIMEOUT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A RegisterBrokerBody as a 5.3 Java broker writes it.
fn register_body(counter: i64, topics: &[(&str, i32)]) -> Vec<u8> {
    let table: serde_json::Map<String, serde_json::Value> = topics
        .iter()
        .map(|(t, q)| {
            (
                (*t).to_owned(),
                serde_json::json!({"attributes":{},"order":false,"perm":6,"readQueueNums":q,"topicFilterType":"SINGLE_TAG","topicName":t,"topicSysFlag":0,"writeQueueNums":q}),
            )
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "filterServerList": [],
        "topicConfigSerializeWrapper": {
            "dataVersion": {"counter": counter, "stateVersion": 0, "timestamp": 1700000000000i64},
            "mappingDataVersion": {"counter": 0, "stateVersion": 0, "timestamp": 1700000000000i64},
            "topicConfigTable": table,
            "topicQueueMappingDetailMap": {},
            "topicQueueMappingInfoMap": {}
        }
    }))
    .unwrap()
}

/// REGISTER_BROKER for broker `name`/`id` of DefaultCluster at `addr` with
/// `topics`, at data version 1.
fn register_cmd(name: &str, id: i64, addr: &str, topics: &[(&str, i32)]) -> RemotingCommand {
    register_raw_cmd(name, id, addr, register_body(1, topics))
}

/// REGISTER_BROKER as `register_cmd` but with `body` as it is.
fn register_raw_cmd(name: &str, id: i64, addr: &str, body: Vec<u8>) -> RemotingCommand {
    RemotingCommand::request(rc::REGISTER_BROKER)
        .with_ext("brokerName", name)
        .with_ext("brokerAddr", addr)
        .with_ext("clusterName", "DefaultCluster")
        .with_ext("haServerAddr", format!("{addr}-ha"))
        .with_ext("brokerId", id.to_string())
        .with_ext("enableActingMaster", "false")
        .with_ext("compressed", "false")
        .with_ext("bodyCrc32", body_crc32(&body).to_string())
        .with_body(body)
}

fn route_cmd(topic: &str, version: i32) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(rc::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic);
    cmd.version = version;
    cmd
}

fn text(cmd: &RemotingCommand) -> String {
    String::from_utf8(cmd.body.to_vec()).unwrap()
}

/// Registers as `register_cmd` over `conn`; the response.
async fn register(
    conn: &Connection,
    name: &str,
    id: i64,
    addr: &str,
    topics: &[(&str, i32)],
) -> RemotingCommand {
    call(conn, register_cmd(name, id, addr, topics)).await
}

async fn route_code(conn: &Connection, topic: &str) -> i32 {
    call(conn, route_cmd(topic, 479)).await.code
}

/// The route of `topic` as a Java 5.x client reads it.
async fn topic_route(conn: &Connection, topic: &str) -> TopicRouteData {
    serde_json::from_slice(&call(conn, route_cmd(topic, 479)).await.body).unwrap()
}

#[tokio::test]
async fn register_then_route_in_both_json_forms() {
    let (_dir, server) = start().await;
    let broker = server.connect().await;
    let r = register(
        &broker,
        "broker-a",
        0,
        "127.0.0.1:10911",
        &[("T", 4), ("U", 8)],
    )
    .await;
    assert_eq!(r.code, response_code::SUCCESS, "{:?}", r.remark);
    assert_eq!(r.version, remoting::CURRENT_VERSION);

    let client = server.connect().await;
    // Java 5.x client: standard JSON.
    let std = call(&client, route_cmd("T", 479)).await;
    assert_eq!(std.code, response_code::SUCCESS);
    assert_eq!(
        text(&std),
        r#"{"brokerDatas":[{"brokerAddrs":{"0":"127.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#
    );
    let route: TopicRouteData = serde_json::from_slice(&std.body).unwrap();
    assert_eq!(route.queue_datas[0].write_queue_nums, 4);

    // Go client (version 317): legacy fastjson, unquoted ids, still compact.
    let legacy = call(&client, route_cmd("T", 317)).await;
    assert_eq!(
        text(&legacy),
        r#"{"brokerDatas":[{"brokerAddrs":{0:"127.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#
    );
    let asked = call(
        &client,
        route_cmd("T", 317).with_ext("acceptStandardJsonOnly", "true"),
    )
    .await;
    assert_eq!(asked.body, std.body);

    let missing = call(&client, route_cmd("NOPE", 479)).await;
    assert_eq!(missing.code, response_code::TOPIC_NOT_EXIST);
    assert!(missing
        .remark
        .unwrap_or_default()
        .starts_with("No topic route info in name server for the topic: NOPE"));

    // Cluster info: always the legacy form.
    let info = ask(&client, rc::GET_BROKER_CLUSTER_INFO).await;
    let body = text(&info);
    assert!(
        body.contains(r#""brokerAddrs":{0:"127.0.0.1:10911"}"#),
        "{body}"
    );
    assert!(!body.contains(' '));
    let info: ClusterInfo = from_fastjson(&info.body).unwrap();
    assert_eq!(
        info.cluster_addr_table["DefaultCluster"],
        vec!["broker-a".to_owned()]
    );

    let all = ask(&client, rc::GET_ALL_TOPIC_LIST_FROM_NAMESERVER).await;
    let all: TopicList = serde_json::from_slice(&all.body).unwrap();
    assert_eq!(all.topic_list, ["T", "U"]);
    server.stop().await;
}

#[tokio::test]
async fn slave_learns_master_and_compressed_bodies_register() {
    let (_dir, server) = start().await;
    let master = server.connect().await;
    let r = register(&master, "b", 0, "127.0.0.1:10911", &[("T", 4), ("U", 4)]).await;
    assert_eq!(r.code, 0);
    assert_eq!(r.ext("masterAddr"), None);

    // Java's compressed form: zlib of length-prefixed parts.
    fn part(raw: &mut Vec<u8>, bytes: &[u8]) {
        raw.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        raw.extend_from_slice(bytes);
    }
    let mut raw2 = Vec::new();
    part(
        &mut raw2,
        br#"{"counter":1,"stateVersion":0,"timestamp":1700000000000}"#,
    );
    raw2.extend_from_slice(&2i32.to_be_bytes());
    part(&mut raw2, b"T 4 4 6 SINGLE_TAG {}");
    part(&mut raw2, b"U 4 4 6 SINGLE_TAG {}");
    part(&mut raw2, b"[]");
    raw2.extend_from_slice(&0i32.to_be_bytes());
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut z, &raw2).unwrap();
    let body = z.finish().unwrap();

    let slave = server.connect().await;
    let mut cmd = register_raw_cmd("b", 1, "127.0.0.1:10921", body);
    cmd.set_ext("compressed", "true");
    let r = call(&slave, cmd).await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert_eq!(r.ext("masterAddr"), Some("127.0.0.1:10911"));
    assert_eq!(r.ext("haServerAddr"), Some("127.0.0.1:10911-ha"));

    let client = server.connect().await;
    let route = topic_route(&client, "T").await;
    assert_eq!(route.broker_datas[0].broker_addrs.len(), 2);

    // Members of the group, as an HA slave asks for them.
    let g = call(
        &client,
        RemotingCommand::request(rc::GET_BROKER_MEMBER_GROUP)
            .with_ext("clusterName", "DefaultCluster")
            .with_ext("brokerName", "b"),
    )
    .await;
    assert_eq!(
        text(&g),
        r#"{"brokerMemberGroup":{"brokerAddrs":{0:"127.0.0.1:10911",1:"127.0.0.1:10921"},"brokerName":"b","cluster":"DefaultCluster"}}"#
    );
    server.stop().await;
}

#[tokio::test]
async fn closing_the_broker_connection_removes_it() {
    let (_dir, server, broker) = start_with_broker_a().await;
    let client = server.connect().await;
    // Registered over another connection too: only the closing one goes.
    let other = server.connect().await;
    register(&other, "b", 0, "127.0.0.1:10931", &[("T", 4), ("B", 4)]).await;
    assert_eq!(route_code(&client, "A").await, 0);
    broker.close();
    eventually("broker a to disappear", || async {
        route_code(&client, "A").await == response_code::TOPIC_NOT_EXIST
    })
    .await;
    let route = topic_route(&client, "T").await;
    assert_eq!(route.broker_datas.len(), 1);
    assert_eq!(route.broker_datas[0].broker_name, "b");
    server.stop().await;
}

#[tokio::test]
async fn silent_brokers_expire_and_their_connection_is_closed() {
    let (_dir, server) = start().await;
    let client = server.connect().await;
    let broker = server.connect().await;
    let cmd = register_cmd("a", 0, "127.0.0.1:10911", &[("T", 4), ("A", 4)])
        .with_ext("heartbeatTimeoutMillis", "1500");
    assert_eq!(call(&broker, cmd).await.code, 0);
    // A heartbeat keeps it; QUERY_DATA_VERSION answers and refreshes too.
    let q = RemotingCommand::request(rc::QUERY_DATA_VERSION)
        .with_ext("brokerName", "a")
        .with_ext("brokerAddr", "127.0.0.1:10911")
        .with_ext("clusterName", "DefaultCluster")
        .with_ext("brokerId", "0")
        .with_body(br#"{"counter":1,"stateVersion":0,"timestamp":1700000000000}"#.to_vec());
    let r = call(&broker, q.clone()).await;
    assert_eq!(r.ext("changed"), Some("false"));
    let stored: DataVersion = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(stored.counter, 1);
    let r = call(
        &broker,
        q.with_body(br#"{"counter":2,"stateVersion":0,"timestamp":1700000000000}"#.to_vec()),
    )
    .await;
    assert_eq!(r.ext("changed"), Some("true"));
    let hb = RemotingCommand::request(rc::BROKER_HEARTBEAT)
        .with_ext("clusterName", "DefaultCluster")
        .with_ext("brokerAddr", "127.0.0.1:10911")
        .with_ext("brokerName", "a");
    assert_eq!(call(&broker, hb).await.code, 0);
    eventually("broker a to expire", || async {
        route_code(&client, "A").await == response_code::TOPIC_NOT_EXIST
    })
    .await;
    eventually("the broker connection to be closed", || async {
        broker.is_closed()
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn kv_config_persists_across_restart() {
    let (dir, server) = start().await;
    let port = server.addr.port();
    let admin = server.connect().await;
    let put = |ns: &str, k: &str, v: &str| {
        RemotingCommand::request(rc::PUT_KV_CONFIG)
            .with_ext("namespace", ns)
            .with_ext("key", k)
            .with_ext("value", v)
    };
    assert_eq!(
        call(&admin, put("ORDER_TOPIC_CONFIG", "T", "broker-a:4"))
            .await
            .code,
        0
    );
    assert_eq!(call(&admin, put("ns", "k1", "v1")).await.code, 0);
    assert_eq!(call(&admin, put("ns", "k2", "v2")).await.code, 0);
    let del = RemotingCommand::request(rc::DELETE_KV_CONFIG)
        .with_ext("namespace", "ns")
        .with_ext("key", "k2");
    assert_eq!(call(&admin, del).await.code, 0);
    let missing_key = RemotingCommand::request(rc::PUT_KV_CONFIG)
        .with_ext("namespace", "ns")
        .with_ext("value", "v");
    let r = call(&admin, missing_key).await;
    assert_eq!(
        (r.code, r.remark.as_deref()),
        (
            response_code::SYSTEM_ERROR,
            Some("namespace or key is null")
        )
    );
    server.stop().await;

    let file = std::fs::read_to_string(dir.path().join("namesrv").join("kvConfig.json")).unwrap();
    assert_eq!(
        file,
        r#"{"configTable":{"ORDER_TOPIC_CONFIG":{"T":"broker-a:4"},"ns":{"k1":"v1"}}}"#
    );

    // Same port again: the listener reuses the address like Netty's.
    let mut cfg = config(&dir);
    cfg.listen_port = i32::from(port);
    cfg.order_message_enable = true;
    let server = Server::start(cfg).await;
    let admin = server.connect().await;
    let get = |ns: &str, k: &str| {
        RemotingCommand::request(rc::GET_KV_CONFIG)
            .with_ext("namespace", ns)
            .with_ext("key", k)
    };
    let r = call(&admin, get("ns", "k1")).await;
    assert_eq!((r.code, r.ext("value")), (0, Some("v1")));
    let r = call(&admin, get("ns", "k2")).await;
    assert_eq!(r.code, response_code::QUERY_NOT_FOUND);
    assert_eq!(
        r.remark.as_deref(),
        Some("No config item, Namespace: ns Key: k2")
    );
    let list = call(
        &admin,
        RemotingCommand::request(rc::GET_KVLIST_BY_NAMESPACE).with_ext("namespace", "ns"),
    )
    .await;
    let table: KvTable = serde_json::from_slice(&list.body).unwrap();
    assert_eq!(table.table.len(), 1);
    let none = call(
        &admin,
        RemotingCommand::request(rc::GET_KVLIST_BY_NAMESPACE).with_ext("namespace", "zz"),
    )
    .await;
    assert_eq!(none.code, response_code::QUERY_NOT_FOUND);

    // The order config goes back to registering brokers and into routes.
    let broker = server.connect().await;
    let r = register(
        &broker,
        "broker-a",
        0,
        "127.0.0.1:10911",
        &[("T", 4), ("U", 4)],
    )
    .await;
    assert_eq!(text(&r), r#"{"table":{"T":"broker-a:4"}}"#);
    let route = topic_route(&admin, "T").await;
    assert_eq!(route.order_topic_conf.as_deref(), Some("broker-a:4"));
    let route = topic_route(&admin, "U").await;
    assert_eq!(route.order_topic_conf, None);
    server.stop().await;
}

#[tokio::test]
async fn malformed_registrations_leave_the_table_unchanged() {
    let (_dir, server, conn) = start_with_broker_a().await;
    let cluster = || async { ask(&conn, rc::GET_BROKER_CLUSTER_INFO).await.body };
    let topics = || async {
        ask(&conn, rc::GET_ALL_TOPIC_LIST_FROM_NAMESERVER)
            .await
            .body
    };
    let before = (cluster().await, topics().await);

    let bad_json = register_raw_cmd(
        "b",
        0,
        "127.0.0.1:10931",
        b"{\"topicConfigSerializeWrapper\":".to_vec(),
    );
    let r = call(&conn, bad_json).await;
    assert_eq!(r.code, response_code::SYSTEM_ERROR);
    assert!(r
        .remark
        .unwrap_or_default()
        .starts_with("Failed to decode RegisterBrokerBody"));

    let mut bad_crc = register_cmd("b", 0, "127.0.0.1:10931", &[("B", 4), ("C", 4)]);
    bad_crc.set_ext("bodyCrc32", "12345");
    let r = call(&conn, bad_crc).await;
    assert_eq!(
        (r.code, r.remark.as_deref()),
        (response_code::SYSTEM_ERROR, Some("crc32 not match"))
    );

    let mut bad_zlib = register_raw_cmd(
        "b",
        0,
        "127.0.0.1:10931",
        vec![0x78, 0x9c, 0xff, 0x00, 0x13],
    );
    bad_zlib.set_ext("compressed", "true");
    assert_eq!(
        call(&conn, bad_zlib).await.code,
        response_code::SYSTEM_ERROR
    );

    let mut no_id = register_cmd("b", 0, "127.0.0.1:10931", &[("B", 4), ("C", 4)]);
    no_id.ext_fields.as_mut().unwrap().shift_remove("brokerId");
    let r = call(&conn, no_id).await;
    assert_eq!(r.code, response_code::SYSTEM_ERROR);
    assert!(r.remark.unwrap_or_default().contains("brokerId"));

    let first_single = register_cmd("b", 0, "127.0.0.1:10931", &[("B", 4)]);
    let r = call(&conn, first_single).await;
    assert_eq!(
        (r.code, r.remark.as_deref()),
        (response_code::SYSTEM_ERROR, Some("register broker failed"))
    );

    assert_eq!((cluster().await, topics().await), before);
    server.stop().await;
}

#[tokio::test]
async fn unknown_codes_are_not_supported() {
    let (_dir, server) = start().await;
    let conn = server.connect().await;
    let r = ask(&conn, rc::SEND_MESSAGE).await;
    assert_eq!(r.code, response_code::REQUEST_CODE_NOT_SUPPORTED);
    assert_eq!(r.remark.as_deref(), Some(" request type 10 not supported"));
    server.stop().await;
}

#[tokio::test]
async fn admin_requests() {
    let (dir, server, conn) = start_with_broker_a().await;

    let wipe = call(
        &conn,
        RemotingCommand::request(rc::WIPE_WRITE_PERM_OF_BROKER).with_ext("brokerName", "a"),
    )
    .await;
    assert_eq!(wipe.ext("wipeTopicCount"), Some("2"));
    let route = topic_route(&conn, "T").await;
    assert_eq!(route.queue_datas[0].perm, 4);
    let add = call(
        &conn,
        RemotingCommand::request(rc::ADD_WRITE_PERM_OF_BROKER).with_ext("brokerName", "a"),
    )
    .await;
    assert_eq!(add.ext("addTopicCount"), Some("2"));

    let by_cluster = call(
        &conn,
        RemotingCommand::request(rc::GET_TOPICS_BY_CLUSTER).with_ext("cluster", "DefaultCluster"),
    )
    .await;
    let list: TopicList = serde_json::from_slice(&by_cluster.body).unwrap();
    assert_eq!(list.topic_list, ["A", "T"]);
    let sys = ask(&conn, rc::GET_SYSTEM_TOPIC_LIST_FROM_NS).await;
    let sys: TopicList = serde_json::from_slice(&sys.body).unwrap();
    assert_eq!(sys.topic_list, ["DefaultCluster", "a"]);
    assert_eq!(sys.broker_addr.as_deref(), Some("127.0.0.1:10911"));
    for code in [
        rc::GET_UNIT_TOPIC_LIST,
        rc::GET_HAS_UNIT_SUB_TOPIC_LIST,
        rc::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST,
    ] {
        let r = call(&conn, RemotingCommand::request(code)).await;
        assert_eq!(r.code, 0);
        assert!(serde_json::from_slice::<TopicList>(&r.body)
            .unwrap()
            .topic_list
            .is_empty());
    }

    // REGISTER_TOPIC_IN_NAMESRV takes the queue datas of a route body.
    let body = br#"{"brokerDatas":[],"queueDatas":[{"brokerName":"a","perm":6,"readQueueNums":1,"topicSysFlag":0,"writeQueueNums":1}]}"#;
    let r = call(
        &conn,
        RemotingCommand::request(rc::REGISTER_TOPIC_IN_NAMESRV)
            .with_ext("topic", "N")
            .with_body(body.to_vec()),
    )
    .await;
    assert_eq!(r.code, 0);
    assert_eq!(route_code(&conn, "N").await, 0);
    let r = call(
        &conn,
        RemotingCommand::request(rc::DELETE_TOPIC_IN_NAMESRV).with_ext("topic", "N"),
    )
    .await;
    assert_eq!(r.code, 0);
    assert_eq!(route_code(&conn, "N").await, response_code::TOPIC_NOT_EXIST);
    let r = call(
        &conn,
        RemotingCommand::request(rc::DELETE_TOPIC_IN_NAMESRV)
            .with_ext("topic", "A")
            .with_ext("clusterName", "DefaultCluster"),
    )
    .await;
    assert_eq!(r.code, 0);
    assert_eq!(route_code(&conn, "A").await, response_code::TOPIC_NOT_EXIST);

    // Name server config: properties text both ways; black-listed keys refused.
    let get = ask(&conn, rc::GET_NAMESRV_CONFIG).await;
    assert!(
        text(&get).contains("\norderMessageEnable=false\n"),
        "{}",
        text(&get)
    );
    let update = RemotingCommand::request(rc::UPDATE_NAMESRV_CONFIG)
        .with_body(b"orderMessageEnable=true\n".to_vec());
    assert_eq!(call(&conn, update).await.code, 0);
    let get = ask(&conn, rc::GET_NAMESRV_CONFIG).await;
    assert!(text(&get).contains("\norderMessageEnable=true\n"));
    let stored =
        std::fs::read_to_string(dir.path().join("namesrv").join("namesrv.properties")).unwrap();
    assert!(stored.contains("orderMessageEnable=true\n"));
    let black = RemotingCommand::request(rc::UPDATE_NAMESRV_CONFIG)
        .with_body(b"kvConfigPath=/tmp/x\n".to_vec());
    let r = call(&conn, black).await;
    assert_eq!(
        (r.code, r.remark.as_deref()),
        (
            response_code::NO_PERMISSION,
            Some("Can not update config in black list.")
        )
    );

    // Graceful broker shutdown.
    let unreg = RemotingCommand::request(rc::UNREGISTER_BROKER)
        .with_ext("brokerName", "a")
        .with_ext("brokerAddr", "127.0.0.1:10911")
        .with_ext("clusterName", "DefaultCluster")
        .with_ext("brokerId", "0");
    assert_eq!(call(&conn, unreg).await.code, 0);
    assert_eq!(route_code(&conn, "T").await, response_code::TOPIC_NOT_EXIST);
    let info: ClusterInfo =
        from_fastjson(&ask(&conn, rc::GET_BROKER_CLUSTER_INFO).await.body).unwrap();
    assert!(info.broker_addr_table.is_empty() && info.cluster_addr_table.is_empty());

    // Topic lists can be switched off.
    let off = RemotingCommand::request(rc::UPDATE_NAMESRV_CONFIG)
        .with_body(b"enableAllTopicList=false\n".to_vec());
    assert_eq!(call(&conn, off).await.code, 0);
    let r = ask(&conn, rc::GET_ALL_TOPIC_LIST_FROM_NAMESERVER).await;
    assert_eq!(
        (r.code, r.remark.as_deref()),
        (response_code::SYSTEM_ERROR, Some("disable"))
    );
    server.stop().await;
}

#[tokio::test]
async fn malformed_kv_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    std::fs::create_dir_all(dir.path().join("namesrv")).unwrap();
    std::fs::write(&cfg.kv_config_path, b"{oops").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = run(listener, cfg, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("kvConfig.json"), "{err}");
}
