//! `bench_scale`: name server and broker costs at scale, ours vs the
//! official Java 5.3.3 servers, same driver (issue 25, "Scale:
//! registration, routes, heartbeats" in docs/BENCHMARKS.md).
//!
//! * Registration: `--brokers` fake masters register `--topics` topics each
//!   (REGISTER_BROKER, Java's zlib body as `compressedRegister` sends it,
//!   header `compressed=true`); time per registration, body size (and the
//!   JSON size it replaces), name server RSS afterwards.
//! * Routes: GET_ROUTEINFO_BY_TOPIC of random topics, one request at a
//!   time on one connection, p50/p99, at `--small` and `--topics` topics
//!   per broker; GET_ALL_TOPIC_LIST_FROM_NAMESERVER time (median of 5).
//! * Heartbeats: `--clients` client connections, each a producer and a
//!   consumer (one of `--groups` groups), heartbeating every
//!   `--hb-interval` seconds for `--hb-secs` seconds; the broker's CPU.
//!
//! Usage: bench_scale [--topics N] [--small N] [--brokers B] [--clients C]
//!        [--groups G] [--hb-interval S] [--hb-secs S] [--only ours|java]
//! Run by `scripts/bench-scale.sh`.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compat_tests::bench::{clk_tck, cpu_ticks, rss_kib};
use compat_tests::{JavaBroker, JavaNamesrv, OurNamesrv, StandaloneBroker};
use remoting::code::{request_code as rq, response_code as rc};
use remoting::{Connection, RemotingCommand, Router};

const JAVA: &str = "5.3.3";

struct Opts {
    topics: usize,
    small: usize,
    brokers: usize,
    clients: usize,
    groups: usize,
    hb_interval: u64,
    hb_secs: u64,
    only: Option<String>,
}

fn opts() -> Opts {
    let mut o = Opts {
        topics: 100_000,
        small: 1_000,
        brokers: 10,
        clients: 10_000,
        groups: 100,
        hb_interval: 10,
        hb_secs: 30,
        only: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        let n = || {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{} needs a number", args[i]))
        };
        match args[i].as_str() {
            "--topics" => o.topics = n() as usize,
            "--small" => o.small = n() as usize,
            "--brokers" => o.brokers = n() as usize,
            "--clients" => o.clients = n() as usize,
            "--groups" => o.groups = n() as usize,
            "--hb-interval" => o.hb_interval = n(),
            "--hb-secs" => o.hb_secs = n(),
            "--only" => o.only = Some(v.clone()),
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    o
}

/// Java's `RegisterBrokerBody.encode(true)` for `n` topics named `t-<i>`.
fn compressed_body(n: usize) -> (Vec<u8>, usize) {
    let mut raw = Vec::new();
    let mut json_len = 0usize;
    let chunk = |raw: &mut Vec<u8>, b: &[u8]| {
        raw.extend_from_slice(&(b.len() as i32).to_be_bytes());
        raw.extend_from_slice(b);
    };
    chunk(
        &mut raw,
        br#"{"counter":1,"stateVersion":0,"timestamp":1700000000000}"#,
    );
    raw.extend_from_slice(&(n as i32).to_be_bytes());
    for i in 0..n {
        let line = format!("t-{i} 8 8 6 SINGLE_TAG {{}}");
        chunk(&mut raw, line.as_bytes());
        // What the same topic costs in the JSON body.
        json_len += format!(
            r#""t-{i}":{{"attributes":{{}},"order":false,"perm":6,"readQueueNums":8,"topicFilterType":"SINGLE_TAG","topicName":"t-{i}","topicSysFlag":0,"writeQueueNums":8}},"#
        )
        .len();
    }
    chunk(&mut raw, b"[]");
    raw.extend_from_slice(&0i32.to_be_bytes());
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw).expect("deflate");
    (z.finish().expect("deflate"), json_len)
}

fn register_req(b: usize, body: &[u8]) -> RemotingCommand {
    let crc = crc32fast::hash(body) & 0x7FFF_FFFF;
    RemotingCommand::request(rq::REGISTER_BROKER)
        .with_ext("brokerName", format!("bench-broker-{b}"))
        .with_ext("brokerAddr", format!("127.0.0.{}:10911", b + 2))
        .with_ext("clusterName", "BenchCluster")
        .with_ext("haServerAddr", format!("127.0.0.{}:10912", b + 2))
        .with_ext("brokerId", "0")
        .with_ext("enableActingMaster", "false")
        .with_ext("compressed", "true")
        .with_ext("bodyCrc32", crc.to_string())
        .with_body(body.to_vec())
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Registration and route numbers of one name server at `topics` per broker.
async fn namesrv_round(label: &str, addr: &str, pid: u32, topics: usize, brokers: usize) {
    let (body, json_len) = compressed_body(topics);
    let mut conns = Vec::new();
    let mut reg_ms = Vec::new();
    for b in 0..brokers {
        let conn = Connection::connect(addr, Arc::new(Router::new()))
            .await
            .expect("connect");
        let t = Instant::now();
        let resp = conn
            .request(register_req(b, &body), Duration::from_secs(60))
            .await
            .expect("registered");
        assert_eq!(resp.code, rc::SUCCESS, "{:?}", resp.remark);
        reg_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        conns.push(conn);
    }
    let rss = rss_kib(pid).unwrap_or(0);
    let q = &conns[0];
    let mut lat = Vec::new();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let topic = format!("t-{}", seed % topics as u64);
        let t = Instant::now();
        let r = q
            .request(
                RemotingCommand::request(rq::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", &topic),
                Duration::from_secs(10),
            )
            .await
            .expect("route");
        if i >= 2_000 {
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
        assert_eq!(r.code, rc::SUCCESS, "route of {topic}");
    }
    let mut list_ms = Vec::new();
    let mut list_len = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let r = q
            .request(
                RemotingCommand::request(rq::GET_ALL_TOPIC_LIST_FROM_NAMESERVER),
                Duration::from_secs(30),
            )
            .await
            .expect("topic list");
        list_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        list_len = r.body.len();
    }
    println!(
        "{label} topics/broker={topics} brokers={brokers} register_ms_first={:.1} register_ms_median={:.1} \
         body_bytes={} json_bytes~{} namesrv_rss_mib={:.1} route_p50_us={:.0} route_p99_us={:.0} \
         topic_list_ms_median={:.1} topic_list_bytes={list_len}",
        reg_ms[0],
        pct(&mut reg_ms.clone(), 0.5),
        body.len(),
        json_len,
        rss as f64 / 1024.0,
        pct(&mut lat.clone(), 0.5),
        pct(&mut lat, 0.99),
        pct(&mut list_ms, 0.5),
    );
    for c in conns {
        c.close();
    }
}

fn heartbeat(client: usize, group: &str) -> RemotingCommand {
    let body = serde_json::json!({
        "clientID": format!("127.0.0.1@bench-{client}"),
        "producerDataSet": [{"groupName": format!("{group}-producer")}],
        "consumerDataSet": [{
            "groupName": group,
            "consumeType": "CONSUME_PASSIVELY",
            "messageModel": "CLUSTERING",
            "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
            "unitMode": false,
            "subscriptionDataSet": [
                {"classFilterMode": false, "topic": "BenchHb", "subString": "*", "tagsSet": [], "codeSet": [], "subVersion": 1, "expressionType": "TAG"}
            ]
        }]
    });
    RemotingCommand::request(rq::HEART_BEAT).with_body(serde_json::to_vec(&body).expect("json"))
}

/// `clients` connections heartbeating every `interval` for `secs`: the
/// broker's CPU (percent of one core) during the steady part.
async fn heartbeat_round(label: &str, addr: &str, pid: u32, o: &Opts) {
    let mut conns = Vec::with_capacity(o.clients);
    for _ in 0..o.clients {
        let router = Router::new().route(
            rq::NOTIFY_CONSUMER_IDS_CHANGED,
            |_c: Connection, _r: RemotingCommand| async { Ok(RemotingCommand::success()) },
        );
        conns.push(
            Connection::connect(addr, Arc::new(router))
                .await
                .expect("client connects"),
        );
    }
    let conns = Arc::new(conns);
    // Joins first (all groups form), then the steady heartbeats measured.
    let round = |conns: Arc<Vec<Connection>>, groups: usize| async move {
        let mut failed = 0;
        for (n, chunk) in conns.chunks(200).enumerate() {
            let calls = chunk.iter().enumerate().map(|(j, c)| {
                let i = n * 200 + j;
                let req = heartbeat(i, &format!("bench-hb-group-{}", i % groups));
                async move { c.request(req, Duration::from_secs(30)).await }
            });
            for r in futures_join(calls).await {
                if !matches!(r, Ok(ref r) if r.code == rc::SUCCESS) {
                    failed += 1;
                }
            }
        }
        failed
    };
    let t = Instant::now();
    let failed = round(conns.clone(), o.groups).await;
    let join_s = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ticks0 = cpu_ticks(pid);
    let t0 = Instant::now();
    let mut beats = 0usize;
    while t0.elapsed() < Duration::from_secs(o.hb_secs) {
        let start = Instant::now();
        let f = round(conns.clone(), o.groups).await;
        assert_eq!(f, 0, "heartbeats failed");
        beats += o.clients;
        let spent = start.elapsed();
        if spent < Duration::from_secs(o.hb_interval) {
            tokio::time::sleep(Duration::from_secs(o.hb_interval) - spent).await;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let ticks = cpu_ticks(pid).saturating_sub(ticks0);
    let hz = clk_tck();
    let cpu_s = ticks as f64 / hz;
    println!(
        "{label} clients={} groups={} join_round_s={join_s:.2} join_failed={failed} heartbeats={beats} \
         over_s={secs:.1} broker_cpu_pct={:.1} cpu_us_per_heartbeat={:.1} broker_rss_mib={:.1}",
        o.clients,
        o.groups,
        100.0 * cpu_s / secs,
        cpu_s * 1e6 / beats.max(1) as f64,
        rss_kib(pid).unwrap_or(0) as f64 / 1024.0
    );
    for c in conns.iter() {
        c.close();
    }
}

async fn futures_join<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = fs.collect();
    let mut out = Vec::with_capacity(handles.len());
    // Sequential awaits of already-issued requests would serialize them;
    // poll them together instead.
    let mut results: Vec<Option<F::Output>> = Vec::new();
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = handles.into_iter().map(Box::pin).collect();
    results.resize_with(pinned.len(), || None);
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => results[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(results.into_iter().flatten());
    out
}

fn main() {
    let o = opts();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ours = o.only.as_deref() != Some("java");
    let java = o.only.as_deref() != Some("ours");
    for topics in [o.small, o.topics] {
        if ours {
            let ns = OurNamesrv::start();
            rt.block_on(namesrv_round(
                "namesrv ours",
                &ns.addr,
                ns.proc.pid(),
                topics,
                o.brokers,
            ));
        }
        if java {
            let ns = JavaNamesrv::start(JAVA);
            rt.block_on(namesrv_round(
                "namesrv java",
                &ns.addr,
                ns.proc.pid(),
                topics,
                o.brokers,
            ));
        }
    }
    let ns = OurNamesrv::start();
    if ours {
        let b = StandaloneBroker::start(&ns.addr, "");
        rt.block_on(heartbeat_round(
            "heartbeats ours",
            &b.addr,
            b.proc.pid(),
            &o,
        ));
    }
    if java {
        let b = JavaBroker::start(JAVA, &ns.addr);
        rt.block_on(heartbeat_round(
            "heartbeats java",
            &b.addr,
            b.proc.pid(),
            &o,
        ));
    }
}
