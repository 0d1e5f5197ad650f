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
//! A second test runs `compat.DelayTx` scenarios `tx` and `retry` with the
//! proxy as name server: transactional sends, END_TRANSACTION, the broker's
//! CHECK_TRANSACTION_STATE relayed to the producer, and consumer send-back
//! to the retry topic and on to the dead-letter queue.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use compat_tests::{check_acks, java_client, remoting_call, serial, text, Cluster, OurProxy};
use remoting::body::{from_fastjson, TopicRouteData};
use remoting::header::GetRouteInfoRequestHeader;
use remoting::{request_code, response_code, RemotingCommand};

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
