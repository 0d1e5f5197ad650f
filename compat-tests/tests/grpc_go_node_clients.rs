//! The official RocketMQ 5 gRPC clients for Go (`rocketmq-clients/golang/v5`
//! v5.1.2, `compat-tests/go-grpc`) and Node (`rocketmq-client-nodejs`
//! 1.0.8, `compat-tests/node-grpc`) against
//!
//! (a) the Java 5.3.3 broker with its proxy in local mode (the reference:
//!     every assertion below holds there), and
//! (b) our broker's own gRPC port (local proxy mode), with the clients'
//!     defaults: the Go client dials TLS (the port serves TLS beside
//!     plaintext, `proxy::tls`), Node as it is configured by default, and
//! (c) our `mqproxy` (cluster mode) in front of our name server and broker,
//!     the same clients the same way.
//!
//! Go scenarios, run side by side on their own topics: normal messages +
//! SimpleConsumer receive/ack + ChangeInvisibleDuration (the unacked message
//! comes back after its new invisible time, with delivery attempt 2), FIFO
//! (order per message group), delay (not received before its delivery
//! timestamp), transaction (commit delivered, rollback never, an unended one
//! checked back and committed). Node: one produce + receive/ack round trip.
//! In all: every sent message received, and none received twice once acked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use compat_tests::controller::request;
use compat_tests::{
    free_port, run_with_timeout, serial, text, wait_until, workspace_root, JavaNamesrv, JavaProxy,
    OurProxy,
};

/// The Java client version the Java servers come from.
const JAVA: &str = "5.3.3";
/// The pinned Node client (`compat-tests/node-grpc/package.json`).
const NODE_CLIENT: &str = "1.0.8";

fn compat_dir() -> PathBuf {
    workspace_root().join("compat-tests")
}

/// `compat-tests/go-grpc/build.sh` into `target/compat-go-grpc/` (once).
fn go_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = workspace_root().join("target").join("compat-go-grpc");
        let mut c = Command::new("bash");
        c.arg(compat_dir().join("go-grpc").join("build.sh"))
            .arg(&out);
        let res = run_with_timeout(c, Duration::from_secs(1200));
        assert!(res.status.success(), "go-grpc build.sh:\n{}", text(&res));
        out.join("scenarios")
    })
    .clone()
}

/// `npm ci` in `compat-tests/node-grpc` unless the pinned client is there.
fn node_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = compat_dir().join("node-grpc");
        let installed =
            std::fs::read_to_string(dir.join("node_modules/rocketmq-client-nodejs/package.json"))
                .unwrap_or_default()
                .contains(&format!("\"version\": \"{NODE_CLIENT}\""));
        if !installed {
            let mut c = Command::new("npm");
            c.args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir);
            let res = run_with_timeout(c, Duration::from_secs(600));
            assert!(res.status.success(), "npm ci in node-grpc:\n{}", text(&res));
        }
        dir
    })
    .clone()
}

/// Where the clients go and how to create what they need.
struct Target<'a> {
    /// The gRPC endpoint (`host:port`).
    grpc: &'a str,
    /// A broker's remoting address, for topic and group creation.
    broker: &'a str,
    /// The name server the broker registers with.
    namesrv: &'a str,
}

/// UPDATE_AND_CREATE_TOPIC (17) with `+message.type=<kind>` on the broker,
/// then waits until the name server has a route for it.
fn create_topic(t: &Target, topic: &str, kind: &str) {
    let attributes = format!("+message.type={kind}");
    let resp = request(
        t.broker,
        17,
        &[
            ("topic", topic),
            ("defaultTopic", "TBW102"),
            ("readQueueNums", "4"),
            ("writeQueueNums", "4"),
            ("perm", "6"),
            ("topicFilterType", "SINGLE_TAG"),
            ("topicSysFlag", "0"),
            ("order", "false"),
            ("attributes", &attributes),
        ],
        None,
    );
    assert_eq!(
        resp.as_ref().map(|r| r.code),
        Some(0),
        "create topic {topic} ({kind}) on {}: {:?}",
        t.broker,
        resp.map(|r| r.remark)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    // GET_ROUTEINFO_BY_TOPIC (105) until the name server answers SUCCESS.
    while request(t.namesrv, 105, &[("topic", topic)], None).map(|r| r.code) != Some(0) {
        assert!(
            Instant::now() < deadline,
            "no route for {topic} on {} after 30 s",
            t.namesrv
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200): a FIFO (orderly) group.
fn create_fifo_group(t: &Target, group: &str) {
    let body = serde_json::json!({
        "groupName": group,
        "consumeEnable": true,
        "consumeFromMinEnable": true,
        "consumeBroadcastEnable": true,
        "consumeMessageOrderly": true,
        "retryQueueNums": 1,
        "retryMaxTimes": 16,
        "brokerId": 0,
        "whichBrokerWhenConsumeSlowly": 1,
        "notifyConsumerIdsChangedEnable": true,
    });
    let resp = request(
        t.broker,
        200,
        &[],
        Some(serde_json::to_vec(&body).expect("group json")),
    );
    assert_eq!(
        resp.as_ref().map(|r| r.code),
        Some(0),
        "create FIFO group {group} on {}: {:?}",
        t.broker,
        resp.map(|r| r.remark)
    );
}

/// One driver run's output lines, split into fields.
struct Run {
    name: String,
    ok: bool,
    out: String,
}

impl Run {
    fn lines<'s>(&'s self, tag: &'s str) -> impl Iterator<Item = Vec<&'s str>> + 's {
        self.out
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(move |f| f.first() == Some(&tag))
    }

    /// The keys of the `tag` lines (field 1), in order.
    fn keys(&self, tag: &str) -> Vec<String> {
        self.lines(tag)
            .filter_map(|f| f.get(1).map(|k| (*k).to_owned()))
            .collect()
    }

    fn check(&self, cond: bool, what: &str) {
        assert!(
            cond,
            "{}: {what}\n----- output -----\n{}",
            self.name, self.out
        );
    }

    /// Exit 0, a DONE line, every SENT key received and acked exactly once
    /// (`redelivered`: keys allowed a second GOT before their one ACK).
    fn check_round_trip(&self, redelivered: &[&str]) {
        self.check(self.ok, "driver failed");
        self.check(self.lines("DONE").next().is_some(), "no DONE line");
        let sent: BTreeSet<String> = self.keys("SENT").into_iter().collect();
        self.check(!sent.is_empty(), "nothing sent");
        let mut got: BTreeMap<String, usize> = BTreeMap::new();
        for k in self.keys("GOT") {
            *got.entry(k).or_default() += 1;
        }
        let mut acked: BTreeMap<String, usize> = BTreeMap::new();
        for k in self.keys("ACKED") {
            *acked.entry(k).or_default() += 1;
        }
        for k in &sent {
            let want = if redelivered.contains(&k.as_str()) {
                2
            } else {
                1
            };
            self.check(
                got.get(k) == Some(&want),
                &format!("{k} received {:?} times, want {want}", got.get(k)),
            );
            self.check(
                acked.get(k) == Some(&1),
                &format!("{k} acked {:?} times, want 1", acked.get(k)),
            );
        }
        self.check(
            got.keys().all(|k| sent.contains(k)),
            "received a message that was not sent",
        );
    }
}

/// Runs the Go scenarios (when `with_go`) and the Node round trip side by
/// side against `t` (fresh topics and groups named after `label`) and
/// checks them all; fails listing every scenario that failed.
fn run_clients(t: &Target, label: &str, with_go: bool) {
    let node = node_dir();
    let topic = |s: &str| format!("GoGrpc{label}{s}");
    let go_topics: &[(&str, &str)] = if with_go {
        &[
            ("Normal", "NORMAL"),
            ("Fifo", "FIFO"),
            ("Delay", "DELAY"),
            ("Tx", "TRANSACTION"),
        ]
    } else {
        &[]
    };
    for (s, kind) in go_topics.iter().chain([("Node", "NORMAL")].iter()) {
        create_topic(t, &topic(s), kind);
    }
    if with_go {
        create_fifo_group(t, &format!("gg-{label}-fifo"));
    }
    let home = tempfile::Builder::new()
        .prefix("rmq-compat-grpc-clients-")
        .tempdir()
        .expect("temp dir");
    let logs = home.path().join("logs");
    let mut jobs: Vec<(String, Command)> = Vec::new();
    let scenarios: &[(&str, &str)] = if with_go {
        &[
            ("normal", "Normal"),
            ("fifo", "Fifo"),
            ("delay", "Delay"),
            ("transaction", "Tx"),
        ]
    } else {
        &[]
    };
    for (scenario, s) in scenarios {
        let mut c = Command::new(go_bin());
        c.arg(scenario)
            .arg(t.grpc)
            .arg(topic(s))
            .arg(format!("gg-{label}-{scenario}"))
            .arg(format!("{label}{scenario}"))
            .env("HOME", home.path())
            .env("rocketmq.client.logRoot", &logs);
        jobs.push((format!("go {scenario} ({label})"), c));
    }
    let mut c = Command::new("node");
    c.arg(node.join("round_trip.js"))
        .arg(t.grpc)
        .arg(topic("Node"))
        .arg(format!("gg-{label}-node"))
        .arg(format!("{label}node"))
        .env("HOME", home.path());
    jobs.push((format!("node round trip ({label})"), c));

    let runs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(name, cmd)| {
                s.spawn(move || {
                    let out = run_with_timeout(cmd, Duration::from_secs(150));
                    Run {
                        name,
                        ok: out.status.success(),
                        out: text(&out),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("driver thread"))
            .collect()
    });
    if std::env::var_os("GRPC_CLIENTS_VERBOSE").is_some() {
        for r in &runs {
            eprintln!("----- {} -----\n{}", r.name, r.out);
        }
    }
    let run = |prefix: &str| {
        runs.iter()
            .find(|r| r.name.starts_with(prefix))
            .expect("run of that name")
    };
    let mut checks: Vec<(&str, Box<dyn Fn() + '_>)> = Vec::new();
    if with_go {
        checks.push((
            "go normal",
            Box::new(|| check_normal(run("go normal"), label)),
        ));
        checks.push(("go fifo", Box::new(|| check_fifo(run("go fifo")))));
        checks.push(("go delay", Box::new(|| check_delay(run("go delay")))));
        checks.push((
            "go transaction",
            Box::new(|| check_transaction(run("go transaction"), label)),
        ));
    }
    checks.push(("node", Box::new(|| run("node").check_round_trip(&[]))));
    let failed: Vec<&str> = checks
        .iter()
        .filter(|(_, check)| std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)).is_err())
        .map(|(name, _)| *name)
        .collect();
    assert!(
        failed.is_empty(),
        "failed against {label}: {failed:?} (each failure printed above)"
    );
}

/// Normal: 8 sent; the held one (CHANGED) came back once with delivery
/// attempt 2, at least 2 s after its invisible duration was set to 3 s (it
/// must not come back early), and was acked then; the others were received
/// and acked once.
fn check_normal(r: &Run, label: &str) {
    let changed: Vec<Vec<&str>> = r.lines("CHANGED").collect();
    r.check(changed.len() == 1, "want exactly one CHANGED line");
    let held = changed[0][1];
    r.check(
        held.starts_with(&format!("{label}normal-")),
        "held a message of another run",
    );
    r.check_round_trip(&[held]);
    r.check(r.keys("SENT").len() == 8, "want 8 sends");
    let changed_at: i64 = changed[0][2].parse().unwrap_or(i64::MAX);
    let back: Vec<Vec<&str>> = r.lines("GOT").filter(|f| f.get(1) == Some(&held)).collect();
    r.check(back.len() == 2, "held message not received twice");
    r.check(back[0][3] == "1", "first delivery attempt is not 1");
    r.check(back[1][3] == "2", "redelivery attempt is not 2");
    let back_at: i64 = back[1][4].parse().unwrap_or(0);
    r.check(
        back_at >= changed_at + 2000,
        &format!(
            "held message back {} ms after ChangeInvisibleDuration(3 s)",
            back_at - changed_at
        ),
    );
}

/// FIFO: 12 sent in 3 groups; per group received in send order, each once.
fn check_fifo(r: &Run) {
    r.check_round_trip(&[]);
    r.check(r.keys("SENT").len() == 12, "want 12 sends");
    // Keys are <run>-f<group>-<seq>.
    let mut per_group: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for k in r.keys("GOT") {
        let mut parts = k.rsplitn(3, '-');
        let seq = parts.next().and_then(|s| s.parse::<u32>().ok());
        let group = parts.next().map(str::to_owned);
        if let (Some(seq), Some(group)) = (seq, group) {
            per_group.entry(group).or_default().push(seq);
        }
    }
    r.check(per_group.len() == 3, "want 3 message groups received");
    for (g, seqs) in &per_group {
        r.check(
            seqs == &[0, 1, 2, 3],
            &format!("group {g} received in order {seqs:?}"),
        );
    }
    r.check(
        r.lines("GOT")
            .all(|f| f.len() >= 6 && f[5].contains("group")),
        "a FIFO message without its message group",
    );
}

/// Delay: 3 sent with a delivery timestamp 3 s ahead; none received more
/// than 1 s before it, and the timestamp came back on the message.
fn check_delay(r: &Run) {
    r.check_round_trip(&[]);
    let deliver: BTreeMap<String, i64> = r
        .lines("SENT")
        .filter_map(|f| Some((f.get(1)?.to_string(), f.get(3)?.parse().ok()?)))
        .collect();
    r.check(deliver.len() == 3, "want 3 delay sends");
    for f in r.lines("GOT") {
        let (Some(k), Some(at), Some(ts)) = (f.get(1), f.get(4), f.get(5)) else {
            r.check(false, "short GOT line");
            return;
        };
        let at: i64 = at.parse().unwrap_or(0);
        let ts: i64 = ts.parse().unwrap_or(0);
        let want = deliver.get(*k).copied().unwrap_or(i64::MAX);
        r.check(
            at >= want - 1000,
            &format!("{k} received {} ms before its delivery time", want - at),
        );
        r.check(
            (ts - want).abs() <= 1,
            &format!("{k} carries delivery timestamp {ts}, sent with {want}"),
        );
    }
}

/// Transaction: commit and the checked-back one delivered once, rollback
/// never; the checker was asked about the unended one and committed it.
fn check_transaction(r: &Run, label: &str) {
    let id = format!("{label}transaction");
    let commit = format!("{id}-t-commit");
    let rollback = format!("{id}-t-rollback");
    let unknown = format!("{id}-t-unknown");
    r.check(r.ok, "driver failed");
    r.check(r.lines("DONE").next().is_some(), "no DONE line");
    let got = r.keys("GOT");
    r.check(
        got.iter().filter(|k| **k == commit).count() == 1,
        "committed message not received exactly once",
    );
    r.check(
        !got.contains(&rollback),
        "rolled back message was delivered",
    );
    // Each check-back answered COMMIT stores the message once: a server that
    // checks again before it sees its own commit (Java does when the check
    // interval is shorter than its op batching, 3 s) delivers it again.
    let checks = r
        .lines("CHECK")
        .filter(|f| f.get(1) == Some(&unknown.as_str()) && f.get(2) == Some(&"COMMIT"))
        .count();
    r.check(
        checks >= 1,
        "the server never checked back the unended transaction",
    );
    let copies = got.iter().filter(|k| **k == unknown).count();
    r.check(
        (1..=checks).contains(&copies),
        &format!("checked-back message received {copies} times after {checks} checks"),
    );
    r.check(
        r.lines("CHECK")
            .all(|f| f.get(1) == Some(&unknown.as_str())),
        "the server checked back an ended transaction",
    );
    let acked = r.keys("ACKED");
    r.check(
        acked.contains(&commit) && acked.contains(&unknown),
        "transaction messages not acked",
    );
}

/// (a) The reference: Java 5.3.3 name server, broker + proxy in local mode.
#[test]
fn java_local_proxy_reference() {
    let _serial = serial();
    let started = Instant::now();
    let ns = JavaNamesrv::start(JAVA);
    // Check-back soon after the 6 s transaction timeout, yet after Java's
    // op batching (3 s), so that a committed half is not checked twice.
    let proxy = JavaProxy::start_local(JAVA, &ns.addr, "transactionCheckInterval=4000\n");
    let t = Target {
        grpc: &proxy.grpc_addr,
        broker: &proxy.broker_addr,
        namesrv: &ns.addr,
    };
    run_clients(&t, "java", true);
    eprintln!("java_local_proxy_reference: {:?}", started.elapsed());
}

/// Our broker in local proxy mode (`enableProxy=true`, the key `mqbroker
/// --enable-proxy` sets; `grpcServerPort` on a free port), its gRPC port
/// accepting connections.
fn our_broker() -> (compat_tests::Cluster, String) {
    let port = free_port();
    let cluster = compat_tests::Cluster::start_with(&format!(
        "enableProxy=true\ngrpcServerPort={port}\ntransactionCheckInterval=4000\n"
    ));
    let grpc = format!("127.0.0.1:{port}");
    wait_until(
        "our broker's gRPC port accepts",
        Duration::from_secs(30),
        || std::net::TcpStream::connect(&grpc).is_ok(),
    );
    (cluster, grpc)
}

/// (b) Our broker's gRPC port, the Go scenarios (over TLS, golang/v5's
/// only dial, the self-signed certificate unverified) and Node.
#[test]
fn our_broker_grpc_port() {
    let _serial = serial();
    let (cluster, grpc) = our_broker();
    let t = Target {
        grpc: &grpc,
        broker: &cluster.broker_addr,
        namesrv: &cluster.namesrv_addr,
    };
    run_clients(&t, "ours", true);
}

/// (c) Our `mqproxy` in cluster mode in front of our name server and broker
/// (the broker without its own gRPC port): the Go scenarios over TLS and
/// Node, through the proxy.
#[test]
fn our_mqproxy() {
    let _serial = serial();
    let cluster = compat_tests::Cluster::start_with("transactionCheckInterval=4000\n");
    // The proxy announces the transactional producer groups to the broker
    // by heartbeat; every second, so the check-back finds a producer soon.
    let proxy = OurProxy::start(
        &cluster.namesrv_addr,
        &cluster.cluster_name,
        &[("transactionHeartbeatPeriodSecond", 1.into())],
    );
    let t = Target {
        grpc: &proxy.grpc_addr,
        broker: &cluster.broker_addr,
        namesrv: &cluster.namesrv_addr,
    };
    run_clients(&t, "mqproxy", true);
}
