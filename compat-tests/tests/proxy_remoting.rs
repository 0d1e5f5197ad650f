//! Remoting clients through our `mqproxy`'s remoting port (issue 22): the
//! official Java 5.3.3 producer and push consumer are given only the
//! proxy's `remotingListenPort` as name server, so every request they make
//! (routes, heartbeats, sends, held pulls, offsets, rebalancing) goes
//! through the proxy to our broker. The Java side is `compat.ProxyRemoting`.
//!
//! Asserted, with our name server, our broker and `mqproxy`:
//! 1. The route the proxy answers names the real broker with the proxy's
//!    address for it; an unknown request code is answered
//!    REQUEST_CODE_NOT_SUPPORTED.
//! 2. A malformed frame closes that connection; the proxy keeps serving.
//! 3. Every message sent (SEND_OK) is consumed at the queue and offset its
//!    SendResult named, with the same ids (`compat_tests::check_acks`),
//!    from the real broker; GET_MIN_OFFSET / GET_MAX_OFFSET through the
//!    proxy match the sends.
//! 4. The consumer's offsets reach the broker, and once the clients have
//!    shut down the proxy lists no consumer for the group.
//!
//! A third test consumes in POP mode through the proxy (the group set to
//! POP on the broker, `compat.PopConsume`): QUERY_ASSIGNMENT through the
//! proxy answers the broker's queues for popping, and every message sent
//! is delivered once, acknowledged through the proxy and not redelivered.
//!
//! A second test runs `compat.DelayTx` scenarios `tx` and `retry` with the
//! proxy as name server: transactional sends, END_TRANSACTION, the broker's
//! CHECK_TRANSACTION_STATE relayed to the producer, and consumer send-back
//! to the retry topic and on to the dead-letter queue.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use std::sync::Arc;

use compat_tests::{check_acks, java_client, remoting_call, serial, text, Cluster, OurProxy};
use remoting::body::{from_fastjson, to_json, ConsumerData, HeartbeatData, TopicRouteData};
use remoting::header::GetRouteInfoRequestHeader;
use remoting::{request_code, response_code, Connection, RemotingCommand, Router};

const TOPIC: &str = "ProxyRemoting";
const GROUP: &str = "cg_ProxyRemoting";
const COUNT: usize = 60;
const QUEUES: u32 = 4;
/// Java's broker defaults are a minute; the scenarios wait for check-backs.
const TX_BROKER_KEYS: &str =
    "transactionCheckInterval=3000\ntransactionTimeOut=3000\ntransactionCheckMax=15\n";

fn field<'a>(line: &'a str, i: usize) -> Option<&'a str> {
    line.split_whitespace().nth(i)
}

fn route_request(topic: &str) -> RemotingCommand {
    RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_header(
        &GetRouteInfoRequestHeader {
            topic: topic.to_owned(),
            accept_standard_json_only: Some(true),
        },
    )
}

/// The route of `topic` as the proxy answers it, polled until the name
/// server knows the topic.
fn route_via_proxy(proxy: &str, logs: &dyn Fn() -> String) -> TopicRouteData {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = remoting_call(proxy, route_request(TOPIC), Duration::from_secs(5));
        if let Some(r) = answer.filter(|r| r.code == response_code::SUCCESS) {
            return from_fastjson(&r.body).unwrap_or_else(|e| {
                panic!(
                    "route body does not parse ({e}): {}",
                    String::from_utf8_lossy(&r.body)
                )
            });
        }
        assert!(
            Instant::now() < deadline,
            "the proxy never answered a route for {TOPIC}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Writes a frame whose header length exceeds the frame and expects the
/// proxy to close the connection without an answer.
fn malformed_frame_closes(proxy: &str, logs: &dyn Fn() -> String) {
    let mut s = TcpStream::connect(proxy).expect("connect to the remoting port");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    // Length 12: serialize type 0 and a header length of 100, then 8 bytes.
    s.write_all(&[0, 0, 0, 12, 0, 0, 0, 100, 1, 2, 3, 4, 5, 6, 7, 8])
        .expect("write the frame");
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {}
        Ok(n) => panic!(
            "the proxy answered a malformed frame with {n} bytes\n{}",
            logs()
        ),
        Err(e) => panic!(
            "the proxy kept a connection open after a malformed frame ({e})\n{}",
            logs()
        ),
    }
}

/// The broker's committed offset of `GROUP` on `queue`, asked directly.
fn committed_offset(broker: &str, queue: i32) -> Option<i64> {
    let req = RemotingCommand::request(request_code::QUERY_CONSUMER_OFFSET)
        .with_ext("consumerGroup", GROUP)
        .with_ext("topic", TOPIC)
        .with_ext("queueId", queue.to_string());
    let r = remoting_call(broker, req, Duration::from_secs(3))?;
    if r.code != response_code::SUCCESS {
        return None;
    }
    r.ext("offset")?.parse().ok()
}

#[test]
fn java_5_3_3_producer_and_push_consumer_through_the_remoting_port() {
    let _one_at_a_time = serial();
    let java = java_client("5.3.3");
    let cluster = Cluster::start();
    let proxy = OurProxy::start(&cluster.namesrv_addr, &cluster.cluster_name, &[]);
    let logs = || format!("{}\n{}", cluster.logs(), proxy.logs());
    let home = cluster.client_home("proxy-remoting");
    java.update_topic_on_broker(
        &home,
        &cluster.namesrv_addr,
        TOPIC,
        QUEUES,
        &cluster.broker_addr,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));

    // 1. Routes point at the proxy; unknown codes are refused.
    let route = route_via_proxy(&proxy.remoting_addr, &logs);
    assert_eq!(route.broker_datas.len(), 1, "{route:?}");
    let b = &route.broker_datas[0];
    assert_eq!(b.broker_name, cluster.broker_name, "{route:?}");
    assert_eq!(
        b.broker_addrs.get(&0),
        Some(&proxy.remoting_addr),
        "the master's address must be the proxy's: {route:?}"
    );
    assert!(
        b.broker_addrs.values().all(|a| *a == proxy.remoting_addr),
        "{route:?}"
    );
    assert_eq!(route.queue_datas.len(), 1, "{route:?}");
    assert_eq!(route.queue_datas[0].write_queue_nums, QUEUES as i32);
    let unknown = remoting_call(
        &proxy.remoting_addr,
        RemotingCommand::request(999_999),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|| panic!("no answer to an unknown code\n{}", logs()));
    assert_eq!(unknown.code, response_code::REQUEST_CODE_NOT_SUPPORTED);

    // 2. A malformed frame closes that connection only.
    malformed_frame_closes(&proxy.remoting_addr, &logs);
    let again = route_via_proxy(&proxy.remoting_addr, &logs);
    assert_eq!(again.broker_datas, route.broker_datas);

    // 3. Produce and consume through the proxy.
    let count = COUNT.to_string();
    let started = Instant::now();
    let out = java.run(
        &home,
        "compat.ProxyRemoting",
        &[&proxy.remoting_addr, TOPIC, &count, GROUP, "90"],
        Duration::from_secs(180),
    );
    let out_text = text(&out);
    eprintln!(
        "compat.ProxyRemoting took {:?}:\n{out_text}",
        started.elapsed()
    );
    let all_logs = || format!("{out_text}\n{}", logs());
    assert!(
        out.status.success() && out_text.contains("missing=0"),
        "the client through the proxy did not get every message\n{}",
        all_logs()
    );
    let acks: Vec<&str> = out_text.lines().filter(|l| l.starts_with("ACK ")).collect();
    assert_eq!(acks.len(), COUNT, "{}", all_logs());
    assert!(
        !out_text.contains("SEND_FAILED"),
        "a send failed\n{}",
        all_logs()
    );
    for l in out_text
        .lines()
        .filter(|l| l.starts_with("ACK ") || l.starts_with("MSG "))
    {
        let broker = if l.starts_with("ACK ") {
            field(l, 7)
        } else {
            field(l, 6)
        };
        assert_eq!(broker, Some(cluster.broker_name.as_str()), "{l}");
    }
    check_acks(&out_text, &out_text).assert_ok("sends through the proxy", all_logs);

    // GET_MIN_OFFSET / GET_MAX_OFFSET through the proxy: a fresh topic, so
    // each queue's max offset is the number of messages sent to it.
    let mut per_queue: BTreeMap<i32, i64> = BTreeMap::new();
    for l in &acks {
        let q: i32 = field(l, 1).and_then(|q| q.parse().ok()).expect("queue id");
        *per_queue.entry(q).or_default() += 1;
    }
    let queue_lines: Vec<&str> = out_text
        .lines()
        .filter(|l| l.starts_with("QUEUE "))
        .collect();
    assert_eq!(queue_lines.len(), QUEUES as usize, "{}", all_logs());
    for l in &queue_lines {
        let q: i32 = field(l, 2).and_then(|q| q.parse().ok()).expect("queue id");
        let want = per_queue.get(&q).copied().unwrap_or(0);
        assert_eq!(field(l, 3), Some("min=0"), "{l}");
        assert_eq!(field(l, 4), Some(format!("max={want}").as_str()), "{l}");
    }

    // 4. Offsets committed through the proxy, and no consumer left.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let behind: Vec<(i32, Option<i64>, i64)> = per_queue
            .iter()
            .map(|(q, n)| (*q, committed_offset(&cluster.broker_addr, *q), *n))
            .filter(|(_, got, want)| *got != Some(*want))
            .collect();
        if behind.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "committed offsets (queue, got, want) {behind:?}\n{}",
            all_logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let list = RemotingCommand::request(request_code::GET_CONSUMER_LIST_BY_GROUP)
        .with_ext("consumerGroup", GROUP);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = remoting_call(&proxy.remoting_addr, list.clone(), Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no consumer-list answer\n{}", all_logs()));
        if r.code != response_code::SUCCESS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy still lists consumers of {GROUP} after they shut down: {}\n{}",
            String::from_utf8_lossy(&r.body),
            all_logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn java_5_3_3_transactions_and_retries_through_the_remoting_port() {
    let _one_at_a_time = serial();
    let java = java_client("5.3.3");
    let cluster = Cluster::start_with(TX_BROKER_KEYS);
    let proxy = OurProxy::start(&cluster.namesrv_addr, &cluster.cluster_name, &[]);
    let home = cluster.client_home("proxy-remoting-tx");
    let flag = cluster
        .dir
        .path()
        .join("restart-flag")
        .display()
        .to_string();
    // DelayTx's admin client creates its topics on the broker directly; its
    // producers and consumers know only the proxy.
    let out = java.run(
        &home,
        "compat.DelayTx",
        &[
            &proxy.remoting_addr,
            &cluster.broker_addr,
            &cluster.broker_name,
            "PxRemoting",
            &flag,
            "tx",
            "retry",
        ],
        Duration::from_secs(240),
    );
    let out_text = text(&out);
    eprintln!("compat.DelayTx through the proxy:\n{out_text}");
    for s in ["tx", "retry"] {
        assert!(
            out_text
                .lines()
                .any(|l| l.starts_with(&format!("scenario={s} ok"))),
            "scenario {s} through the proxy did not pass:\n{out_text}\n{}\n{}",
            cluster.logs(),
            proxy.logs()
        );
    }
    assert!(out.status.success(), "{out_text}");
}

const POP_TOPIC: &str = "ProxyPop";
const POP_GROUP: &str = "cg_ProxyPop";
/// A group never set to POP: the proxy allocates its queues itself.
const PULL_GROUP: &str = "cg_ProxyPop_pull";
const POP_COUNT: usize = 20;

/// `key=value` of a driver line.
fn value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

/// (key → deliveries) of a `compat.PopConsume consume` output.
fn delivered(out: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in out.lines().filter(|l| l.starts_with("delivery ")) {
        if let Some(k) = value(l, "key") {
            *m.entry(k.to_owned()).or_default() += 1;
        }
    }
    m
}

/// On one connection to the proxy: a heartbeat of client `probe` in
/// `POP_GROUP` and `PULL_GROUP`, then QUERY_ASSIGNMENT for each group.
/// Returns the two answers' assignment lists.
fn probe_assignments(proxy: &str) -> (serde_json::Value, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let conn = Connection::connect(proxy, Arc::new(Router::new()))
            .await
            .expect("connect to the remoting port");
        let group = |g: &str| ConsumerData {
            group_name: g.to_owned(),
            consume_type: "CONSUME_PASSIVELY".into(),
            message_model: "CLUSTERING".into(),
            consume_from_where: "CONSUME_FROM_FIRST_OFFSET".into(),
            ..Default::default()
        };
        let hb = HeartbeatData {
            client_id: "probe".into(),
            consumer_data_set: vec![group(POP_GROUP), group(PULL_GROUP)],
            ..Default::default()
        };
        let r = conn
            .request(
                RemotingCommand::request(request_code::HEART_BEAT).with_body(to_json(&hb)),
                Duration::from_secs(10),
            )
            .await
            .expect("heartbeat answered");
        assert_eq!(r.code, response_code::SUCCESS, "{:?}", r.remark);
        let mut out = Vec::new();
        for g in [POP_GROUP, PULL_GROUP] {
            let body = serde_json::json!({
                "topic": POP_TOPIC,
                "consumerGroup": g,
                "clientId": "probe",
                "strategyName": "AVG",
                "messageModel": "CLUSTERING",
            });
            let r = conn
                .request(
                    RemotingCommand::request(request_code::QUERY_ASSIGNMENT)
                        .with_body(serde_json::to_vec(&body).expect("json")),
                    Duration::from_secs(10),
                )
                .await
                .expect("QUERY_ASSIGNMENT answered");
            assert_eq!(r.code, response_code::SUCCESS, "{g}: {:?}", r.remark);
            let v: serde_json::Value = serde_json::from_slice(&r.body).expect("assignment json");
            out.push(v["messageQueueAssignments"].clone());
        }
        conn.close();
        (out.remove(0), out.remove(0))
    })
}

#[test]
fn java_5_3_3_pop_consumer_through_the_remoting_port() {
    let _one_at_a_time = serial();
    let java = java_client("5.3.3");
    // Unacknowledged pops come back within a second of their invisible time.
    let cluster = Cluster::start_with("reviveInterval=200\n");
    let proxy = OurProxy::start(&cluster.namesrv_addr, &cluster.cluster_name, &[]);
    let logs = || format!("{}\n{}", cluster.logs(), proxy.logs());
    let home = cluster.client_home("proxy-pop");
    let pop = |args: &[&str], secs: u64| -> String {
        let mut all = vec![
            proxy.remoting_addr.as_str(),
            cluster.broker_addr.as_str(),
            POP_TOPIC,
            POP_GROUP,
        ];
        all.extend_from_slice(args);
        let out = java.run(&home, "compat.PopConsume", &all, Duration::from_secs(secs));
        let t = text(&out);
        eprintln!("PopConsume {args:?} through the proxy:\n{t}");
        t
    };

    // The producer knows only the proxy; the topic is created on the broker.
    let count = POP_COUNT.to_string();
    let out = pop(&["produce", "P", &count], 90);
    let sent: Vec<String> = out
        .lines()
        .filter(|l| l.starts_with("sent ") && l.contains("SEND_OK"))
        .filter_map(|l| value(l, "key").map(str::to_owned))
        .collect();
    assert_eq!(sent.len(), POP_COUNT, "{out}\n{}", logs());

    // POP mode is set on the broker itself, not through the proxy.
    let admin = java.mqadmin(
        &home,
        &[
            "setConsumeMode",
            "-b",
            &cluster.broker_addr,
            "-t",
            POP_TOPIC,
            "-g",
            POP_GROUP,
            "-m",
            "POP",
            "-q",
            "0",
        ],
    );
    eprintln!("mqadmin setConsumeMode:\n{admin}");

    // The proxy's answers: the POP group pops every queue (-1) of the
    // broker, named; the other group gets the route's queues to pull.
    let (popped, pulled) = probe_assignments(&proxy.remoting_addr);
    let popped = popped.as_array().cloned().unwrap_or_default();
    assert_eq!(
        popped.len(),
        1,
        "POP assignments {popped:?}\n{admin}\n{}",
        logs()
    );
    assert_eq!(popped[0]["mode"], "POP", "{popped:?}");
    assert_eq!(popped[0]["messageQueue"]["queueId"], -1, "{popped:?}");
    assert_eq!(
        popped[0]["messageQueue"]["brokerName"],
        cluster.broker_name.as_str(),
        "{popped:?}"
    );
    let pulled = pulled.as_array().cloned().unwrap_or_default();
    let mut pulled_ids: Vec<i64> = pulled
        .iter()
        .inspect(|a| {
            assert_eq!(a["mode"], "PULL", "{pulled:?}");
            assert_eq!(
                a["messageQueue"]["brokerName"],
                cluster.broker_name.as_str(),
                "{pulled:?}"
            );
        })
        .filter_map(|a| a["messageQueue"]["queueId"].as_i64())
        .collect();
    pulled_ids.sort();
    assert_eq!(pulled_ids, [0, 1, 2, 3], "{pulled:?}");

    // Every message consumed once through the proxy, in POP mode.
    let keys = sent.join(",");
    let out = pop(&["consume", "5000", &keys, "", "60"], 120);
    assert!(
        out.lines().any(|l| l == "done"),
        "not every message was consumed through the proxy\n{out}\n{}",
        logs()
    );
    let got = delivered(&out);
    for k in &sent {
        assert_eq!(
            got.get(k),
            Some(&1),
            "{k} delivered {:?} times\n{out}",
            got.get(k)
        );
    }

    // Acknowledged through the proxy: nothing comes back after the
    // invisible time (5 s) and the revive interval, watched for 15 s.
    let out = pop(&["consume", "5000", "never-sent", "", "15"], 60);
    assert!(out.lines().any(|l| l == "timeout"), "{out}\n{}", logs());
    let again = delivered(&out);
    assert!(
        again.is_empty(),
        "redelivered after being acknowledged through the proxy: {again:?}\n{out}\n{}",
        logs()
    );
}
