//! The metadata journal end to end, on the real `mqbroker` binary: 20,000
//! topics created over remoting, kill -9, restart, all there; the journal
//! folded into Java's `topics.json`; the bytes written per create do not grow
//! with the table; a torn tail is cut at start.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use remoting::body::TopicConfigSerializeWrapper;
use remoting::code::request_code as rq;
use remoting::RemotingCommand;

const TOTAL: usize = 20_000;
const WINDOW: usize = 1_000;
const CONNECTIONS: usize = 32;

struct Proc {
    child: Child,
    port: u16,
}

impl Proc {
    fn start(dir: &Path, port: u16) -> Proc {
        let conf = dir.join("broker.conf");
        std::fs::write(
            &conf,
            format!(
                "brokerClusterName=MetaCluster\nbrokerName=meta-b\nbrokerIP1=127.0.0.1\nlistenPort={port}\n\
                 haListenPort={}\nstorePathRootDir={}\nmappedFileSizeCommitLog=4194304\n\
                 mappedFileSizeConsumeQueue=6000\nnamesrvAddr=\n",
                common::free_port(),
                dir.join("store").display()
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mqbroker"))
            .arg("-c")
            .arg(&conf)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Proc { child, port }
    }

    async fn ready(&mut self) -> common::Client {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "broker exited at start"
            );
            if let Ok(Ok(c)) = tokio::time::timeout(
                Duration::from_secs(2),
                remoting::Connection::connect(
                    std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
                    std::sync::Arc::new(remoting::Router::new()),
                ),
            )
            .await
            {
                drop(c);
                return common::connect(([127, 0, 0, 1], self.port).into()).await;
            }
            assert!(Instant::now() < deadline, "broker did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Bytes the process handed to write(2) so far (`wchar`).
    fn written(&self) -> u64 {
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.child.id())).unwrap();
        io.lines()
            .find_map(|l| l.strip_prefix("wchar: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn terminate(mut self) {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "broker did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn name(i: usize) -> String {
    format!("MetaTopic{i:05}")
}

/// Creates topics `from..to` over [`CONNECTIONS`] connections.
async fn create(port: u16, from: usize, to: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CONNECTIONS {
        tasks.spawn(async move {
            let client = common::connect(([127, 0, 0, 1], port).into()).await;
            for i in (from + c..to).step_by(CONNECTIONS) {
                let r = client.call(common::create_topic(&name(i), 8)).await;
                assert_eq!(r.code, 0, "create {}: {:?}", name(i), r.remark);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

async fn topics(client: &common::Client) -> TopicConfigSerializeWrapper {
    let r = client
        .call(RemotingCommand::request(rq::GET_ALL_TOPIC_CONFIG))
        .await;
    assert_eq!(r.code, 0);
    remoting::body::from_fastjson(&r.body).unwrap()
}

fn config_dir(dir: &Path) -> PathBuf {
    dir.join("store").join("config")
}

fn len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_topics_survive_kill_9_at_a_flat_cost_per_create() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut broker = Proc::start(dir.path(), port);
    drop(broker.ready().await);

    // Bytes written per create over the first window and the last one.
    let w0 = broker.written();
    create(port, 0, WINDOW).await;
    let first = broker.written() - w0;
    create(port, WINDOW, TOTAL - WINDOW).await;
    let w1 = broker.written();
    create(port, TOTAL - WINDOW, TOTAL).await;
    let last = broker.written() - w1;
    let all = broker.written() - w0;
    let per = |b: u64, n: usize| b as f64 / n as f64;
    eprintln!(
        "bytes written per create: first {WINDOW}: {:.0}, last {WINDOW}: {:.0}, all {TOTAL}: {:.0}",
        per(first, WINDOW),
        per(last, WINDOW),
        per(all, TOTAL)
    );
    // A rewrite of the table per create would be ~20x more at the end.
    assert!(last < 2 * first, "last window {last} vs first {first}");
    assert!(
        per(all, TOTAL) < 5.0 * per(first, WINDOW),
        "all {all} vs first {first}"
    );
    assert!(
        per(last, WINDOW) < 8192.0,
        "{last} bytes per {WINDOW} creates"
    );

    // kill -9: every acknowledged create is back after the restart.
    broker.kill9();
    let mut broker = Proc::start(dir.path(), port);
    let client = broker.ready().await;
    let t = topics(&client).await;
    let missing: Vec<_> = (0..TOTAL)
        .map(name)
        .filter(|n| !t.topic_config_table.contains_key(n))
        .collect();
    assert!(
        missing.is_empty(),
        "{} missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(t.topic_config_table[&name(7)].write_queue_nums, 8);

    // The journal was folded into Java's file at start.
    let cfg = config_dir(dir.path());
    assert_eq!(len(&cfg.join("topics.json.log")), 0);
    assert!(!cfg.join("topics.json.log.old").exists());
    let text = std::fs::read(cfg.join("topics.json")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert!(v["dataVersion"]["counter"].as_i64().unwrap() >= TOTAL as i64);
    assert_eq!(
        v["topicConfigTable"][name(19_999)]["topicName"],
        name(19_999)
    );
    assert_eq!(v["topicConfigTable"][name(19_999)]["readQueueNums"], 8);

    // A torn tail: five more creates, the last record cut in half.
    for i in 0..5 {
        let r = client
            .call(common::create_topic(&format!("Torn{i}"), 4))
            .await;
        assert_eq!(r.code, 0);
    }
    drop(client);
    broker.kill9();
    let log = cfg.join("topics.json.log");
    let bytes = std::fs::read(&log).unwrap();
    // Five framed records (len | crc | JSON), nothing else.
    let mut at = 0;
    let mut records = 0;
    while at < bytes.len() {
        let n = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        assert!(n > 20);
        at += 8 + n;
        records += 1;
    }
    assert_eq!((records, at), (5, bytes.len()));
    std::fs::write(&log, &bytes[..bytes.len() - 20]).unwrap();
    let mut broker = Proc::start(dir.path(), port);
    let client = broker.ready().await;
    let t = topics(&client).await;
    for i in 0..4 {
        assert!(
            t.topic_config_table.contains_key(&format!("Torn{i}")),
            "Torn{i}"
        );
    }
    assert!(!t.topic_config_table.contains_key("Torn4"));
    assert!(t.topic_config_table.contains_key(&name(TOTAL - 1)));

    // A clean stop leaves everything in Java's file and an empty journal.
    let r = client.call(common::create_topic("AfterTorn", 2)).await;
    assert_eq!(r.code, 0);
    drop(client);
    broker.terminate();
    assert_eq!(len(&log), 0);
    let text = std::fs::read(cfg.join("topics.json")).unwrap();
    let v: TopicConfigSerializeWrapper = remoting::body::from_fastjson(&text).unwrap();
    assert!(v.topic_config_table.contains_key("AfterTorn"));
    assert!(v.topic_config_table.contains_key(&name(0)));
}
