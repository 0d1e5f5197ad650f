//! The official RocketMQ 5 gRPC Java client (rocketmq-client-java 5.0.8,
//! driver `compat-tests/java-grpc`) against
//! (a) the Java 5.3.3 broker with its proxy in local mode (the reference:
//!     every behaviour asserted below is asserted there too),
//! (b) the Java 5.3.3 proxy in cluster mode in front of our name server and
//!     our broker,
//! (c) our broker's own gRPC port,
//! (d) our `mqproxy` in cluster mode in front of our name server and broker
//! (CI runs (b), (c) and (d); (a) is ignored, see it).
//!
//! Scenarios (one driver JVM each, several at once): producer normal, FIFO
//! (message groups, order checked on a FIFO push consumer), delay (never
//! received before its delivery timestamp), transaction (commit, rollback,
//! unknown → check-back → commit), SimpleConsumer receive + ack,
//! changeInvisibleDuration (the unacked message comes back after the new
//! invisible time) and the DLQ after the group's max attempts, PushConsumer
//! concurrent and FIFO. Every message sent is received with the id it was
//! sent with, none twice when acked.
//!
//! Topics and groups are created up front with mqadmin (`updateTopic`,
//! `updateSubGroup -r 1` for max attempts 2, `-o true` for the FIFO group).
//! The proxies run with `enableTopicMessageTypeCheck=false`, so only the
//! transaction topic needs its `message.type` (see `create_resources`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use compat_tests::{
    grpc_driver_command, java_client, prepare_grpc_driver, serial, tail_lines, text, JavaClient,
    JavaNamesrv, JavaProxy, OurNamesrv, OurProxy, Proc, StandaloneBroker,
};

const JAVA: &str = "5.3.3";
const NORMAL: usize = 20;
const FIFO_GROUPS: usize = 3;
const FIFO_PER_GROUP: usize = 6;
const DELAY: usize = 3;
const DELAY_MS: u64 = 3000;

/// Keys of both Java broker (local mode) and ours: transaction check-back
/// of a half message unresolved for 5 s (more than the 3 s Java 5.x may take
/// to write the op record of a commit: checked earlier, a committed message is
/// committed again when the checker answers COMMIT, and delivered twice).
const BROKER_KEYS: &str = "transactionTimeOut=5000\ntransactionCheckInterval=1000\n";

fn proxy_json() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("enableTopicMessageTypeCheck", false.into()),
        ("minInvisibleTimeMillsForRecv", 1000.into()),
        // Cluster mode: the proxy announces the transactional producer groups
        // to the brokers by heartbeat (20 s by default); a broker can only
        // check back with a producer it knows.
        ("transactionHeartbeatPeriodSecond", 1.into()),
    ]
}

/// The prepared gRPC driver (`compat-tests/java-grpc/prepare.sh`).
struct GrpcDriver {
    dir: PathBuf,
}

impl GrpcDriver {
    fn prepare() -> GrpcDriver {
        GrpcDriver {
            dir: prepare_grpc_driver("5.0.8").unwrap_or_else(|e| panic!("{e}")),
        }
    }

    fn spawn(&self, home: &Path, name: &str, args: &[&str]) -> Proc {
        std::fs::create_dir_all(home).expect("driver home");
        let mut c = grpc_driver_command(
            &self.dir,
            home,
            &[
                "-Xms64m",
                "-Xmx256m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
            ],
            "compat.grpc.GrpcScenarios",
        );
        c.args(args);
        Proc::spawn(name, c, home.join(format!("{name}.out")))
    }
}

/// Waits for every driver to exit 0 (at most `timeout` in all); returns their outputs.
fn wait_all(procs: Vec<Proc>, timeout: Duration, logs: &dyn Fn() -> String) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut outs = Vec::new();
    for mut p in procs {
        let left = deadline.saturating_duration_since(Instant::now());
        let status = p.wait_exit(left);
        let out = p.log_text();
        assert!(
            status.is_some_and(|s| s.success()) && out.contains("\nDONE"),
            "driver {} failed or timed out ({status:?}):\n{}\n{}",
            p.name,
            tail_lines(&out, 80),
            logs()
        );
        outs.push(out);
    }
    outs
}

/// `TAG f1 f2 ...` lines of a driver output, split.
fn lines<'a>(out: &'a str, tag: &str) -> Vec<Vec<&'a str>> {
    out.lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .filter(|f| f.first() == Some(&tag))
        .collect()
}

/// key → message id of the `SENT` lines.
fn sent(out: &str) -> BTreeMap<String, String> {
    lines(out, "SENT")
        .iter()
        .filter(|f| f.len() >= 3)
        .map(|f| (f[1].to_owned(), f[2].to_owned()))
        .collect()
}

/// Every sent key received with its message id, and (acked consumers) no
/// key delivered twice.
fn assert_all_once(what: &str, sent: &BTreeMap<String, String>, consumer_out: &str) {
    let mut got: HashMap<&str, Vec<&str>> = HashMap::new();
    for f in lines(consumer_out, "GOT") {
        if f.len() >= 3 {
            got.entry(f[1]).or_default().push(f[2]);
        }
    }
    for (key, id) in sent {
        let ids = got.get(key.as_str()).cloned().unwrap_or_default();
        assert!(
            !ids.is_empty(),
            "{what}: {key} ({id}) never received\n{}",
            tail_lines(consumer_out, 60)
        );
        assert_eq!(
            ids,
            vec![id.as_str()],
            "{what}: {key} received {} times or under another id\n{}",
            ids.len(),
            tail_lines(consumer_out, 60)
        );
    }
    let unknown: Vec<&&str> = got.keys().filter(|k| !sent.contains_key(**k)).collect();
    assert!(unknown.is_empty(), "{what}: unexpected keys {unknown:?}");
}

/// One endpoint under test and how to create its topics and groups.
struct Target<'a> {
    label: &'a str,
    endpoint: String,
    namesrv: String,
    broker_addr: String,
    logs: &'a dyn Fn() -> String,
}

fn create_resources(admin: &JavaClient, home: &Path, t: &Target, p: &str) {
    let mut args: Vec<String> = Vec::new();
    for topic in ["normal", "fifo", "delay", "tx", "redeliver"] {
        args.extend(
            [
                "updateTopic",
                "-n",
                &t.namesrv,
                "-b",
                &t.broker_addr,
                "-t",
                &format!("{p}-{topic}"),
                "-r",
                "4",
                "-w",
                "4",
            ]
            .map(String::from),
        );
        // A proxy in cluster mode announces a producer group to the brokers
        // (so that they check transactions back with it) only when the
        // topic's `message.type` is TRANSACTION (Java 5.3.3's proxy reads it
        // with GET_TOPIC_CONFIG).
        if topic == "tx" {
            args.extend(["-a", "+message.type=TRANSACTION"].map(String::from));
        }
        args.push(";;".into());
    }
    for (group, orderly) in [
        ("simple", "false"),
        ("push", "false"),
        ("fifo", "true"),
        ("delay", "false"),
        ("tx", "false"),
        ("redel", "false"),
        ("redel-dlq-reader", "false"),
    ] {
        args.extend(
            [
                "updateSubGroup",
                "-n",
                &t.namesrv,
                "-b",
                &t.broker_addr,
                "-g",
                &format!("{p}-{group}"),
                "-r",
                "1",
                "-o",
                orderly,
                ";;",
            ]
            .map(String::from),
        );
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = admin.run(home, "compat.AdminBatch", &argv, Duration::from_secs(120));
    let s = text(&out);
    let created = s.matches("create topic to").count();
    let groups = s.matches("create subscription group to").count();
    assert!(
        created == 5 && groups == 7,
        "{}: mqadmin created {created}/5 topics and {groups}/7 groups:\n{s}\n{}",
        t.label,
        (t.logs)()
    );
}

/// Runs every scenario against `t`, asserting each behaviour.
fn scenarios(driver: &GrpcDriver, admin: &JavaClient, home: &Path, t: &Target) {
    let started = Instant::now();
    let p = format!("g{}", t.label);
    create_resources(admin, home, t, &p);
    let e = t.endpoint.as_str();
    let topic = |s: &str| format!("{p}-{s}");
    let group = |s: &str| format!("{p}-{s}");
    let h = |s: &str| home.join(format!("{}-{s}", t.label));

    // Producers and the redeliver consumer at once.
    let (n, f, d) = (
        NORMAL.to_string(),
        (FIFO_GROUPS * FIFO_PER_GROUP).to_string(),
        DELAY.to_string(),
    );
    let (fg, dm) = (FIFO_GROUPS.to_string(), DELAY_MS.to_string());
    let producers = vec![
        driver.spawn(
            &h("p-normal"),
            "produce-normal",
            &["produce", e, &topic("normal"), &n, "normal"],
        ),
        driver.spawn(
            &h("p-fifo"),
            "produce-fifo",
            &["produce", e, &topic("fifo"), &f, "fifo", &fg],
        ),
        driver.spawn(
            &h("p-delay"),
            "produce-delay",
            &["produce", e, &topic("delay"), &d, "delay", &dm],
        ),
        driver.spawn(
            &h("p-redel"),
            "produce-redel",
            &["produce", e, &topic("redeliver"), "1", "normal"],
        ),
        driver.spawn(&h("tx"), "tx", &["tx", e, &topic("tx"), "30"]),
    ];
    let outs = wait_all(producers, Duration::from_secs(120), t.logs);
    let (normal, fifo, delay, redel, tx) = (&outs[0], &outs[1], &outs[2], &outs[3], &outs[4]);
    let (normal_sent, fifo_sent, delay_sent, redel_sent) =
        (sent(normal), sent(fifo), sent(delay), sent(redel));
    assert_eq!(normal_sent.len(), NORMAL, "{}", t.label);
    assert_eq!(fifo_sent.len(), FIFO_GROUPS * FIFO_PER_GROUP, "{}", t.label);
    // Transaction: the unresolved one is checked back. (Java 5.3.3 may check
    // back resolved ones too, when its check runs before their end reached
    // the broker; the checker answers those as they were resolved.)

    let consumers = vec![
        driver.spawn(
            &h("c-simple"),
            "simple-normal",
            &["simple", e, &topic("normal"), &group("simple"), &n, "60"],
        ),
        driver.spawn(
            &h("c-push"),
            "push-normal",
            &["push", e, &topic("normal"), &group("push"), &n, "60"],
        ),
        driver.spawn(
            &h("c-fifo"),
            "push-fifo",
            &["push", e, &topic("fifo"), &group("fifo"), &f, "60"],
        ),
        driver.spawn(
            &h("c-delay"),
            "simple-delay",
            &["simple", e, &topic("delay"), &group("delay"), &d, "60"],
        ),
        driver.spawn(
            &h("c-tx"),
            "simple-tx",
            &["simple", e, &topic("tx"), &group("tx"), "2", "60"],
        ),
        driver.spawn(
            &h("c-redel"),
            "redeliver",
            &["redeliver", e, &topic("redeliver"), &group("redel"), "60"],
        ),
    ];
    let outs = wait_all(consumers, Duration::from_secs(150), t.logs);
    let (c_simple, c_push, c_fifo, c_delay, c_tx, c_redel) =
        (&outs[0], &outs[1], &outs[2], &outs[3], &outs[4], &outs[5]);

    // SimpleConsumer receive + ack and PushConsumer (concurrent): all, once.
    assert_all_once(&format!("{} simple", t.label), &normal_sent, c_simple);
    assert_eq!(
        lines(c_simple, "ACKED").len(),
        NORMAL,
        "{}: every received message acked",
        t.label
    );
    assert_all_once(&format!("{} push", t.label), &normal_sent, c_push);

    // FIFO: every message once, and in send order within its message group.
    assert_all_once(&format!("{} fifo", t.label), &fifo_sent, c_fifo);
    let mut last: HashMap<String, i64> = HashMap::new();
    for f in lines(c_fifo, "GOT") {
        let (key, msg_group) = (f[1], f[5]);
        let (g, seq) = key.split_once('-').expect("fifo key g<i>-<seq>");
        assert_eq!(g, msg_group, "{}: message group of {key}", t.label);
        let seq: i64 = seq.parse().expect("fifo sequence");
        let prev = last.insert(g.to_owned(), seq).unwrap_or(-1);
        assert_eq!(
            seq,
            prev + 1,
            "{}: FIFO order broken in group {g}\n{c_fifo}",
            t.label
        );
    }

    // Delay: received, and not before its delivery timestamp.
    assert_all_once(&format!("{} delay", t.label), &delay_sent, c_delay);
    for f in lines(c_delay, "GOT") {
        let (received, at): (u64, u64) = (
            f[4].parse().expect("receivedAt"),
            f[6].parse().expect("deliverAt"),
        );
        let sent_at: u64 = lines(delay, "SENT")
            .iter()
            .find(|s| s[1] == f[1])
            .and_then(|s| s[3].parse().ok())
            .expect("deliverAt of the send");
        assert_eq!(at, sent_at, "{}: delivery timestamp of {}", t.label, f[1]);
        assert!(
            received >= at,
            "{}: {} received {} ms before its delivery time",
            t.label,
            f[1],
            at - received
        );
    }

    let checks: Vec<String> = lines(tx, "CHECK").iter().map(|f| f[1].to_owned()).collect();
    assert!(
        checks.iter().any(|k| k == "tx-unknown"),
        "{}: no check-back of tx-unknown\n{tx}",
        t.label
    );
    // Transaction: the committed and the checked-back ones, not the rolled back.
    let tx_sent: BTreeMap<String, String> = sent(tx)
        .into_iter()
        .filter(|(k, _)| k != "tx-rollback")
        .collect();
    assert_all_once(&format!("{} transaction", t.label), &tx_sent, c_tx);

    // changeInvisibleDuration: back after ~2 s (not the 30 s of the receive),
    // then to the DLQ after max attempts (retryMaxTimes 1 → 2 attempts).
    let (key, id) = redel_sent.iter().next().expect("redeliver message sent");
    let got = lines(c_redel, "GOT");
    assert!(
        got.len() >= 2,
        "{}: the unacked message did not come back\n{c_redel}",
        t.label
    );
    assert!(got.iter().all(|f| f[1] == key && f[2] == id), "{c_redel}");
    let attempts: Vec<&str> = got.iter().map(|f| f[3]).collect();
    assert_eq!(
        attempts[..2],
        ["1", "2"],
        "{}: delivery attempts\n{c_redel}",
        t.label
    );
    let (first, second): (u64, u64) = (
        got[0][4].parse().expect("time"),
        got[1][4].parse().expect("time"),
    );
    assert!(
        second - first >= 1500 && second - first < 20_000,
        "{}: back after {} ms, expected about 2 s\n{c_redel}",
        t.label,
        second - first
    );
    // The DLQ read back: by the gRPC reader group, else by mqadmin
    // (queryMsgByKey over remoting).
    let dlq_topic = format!("%DLQ%{}", group("redel"));
    let dlq = lines(c_redel, "DLQ");
    if !dlq.iter().any(|f| f[1] == key) {
        let out = text(&admin.run(
            home,
            "compat.AdminBatch",
            &[
                "queryMsgByKey",
                "-n",
                &t.namesrv,
                "-t",
                &dlq_topic,
                "-k",
                key,
            ],
            Duration::from_secs(60),
        ));
        assert!(
            out.contains(id.as_str()),
            "{}: {key} ({id}) never reached {dlq_topic}\n{c_redel}\n{out}",
            t.label
        );
        eprintln!(
            "{}: {key} in {dlq_topic} (read by mqadmin, not by the gRPC reader)",
            t.label
        );
    }
    eprintln!(
        "{}: gRPC Java client scenarios passed in {:?} (deliveries of the unacked message: {})",
        t.label,
        started.elapsed(),
        got.len()
    );
}

fn setup() -> (GrpcDriver, JavaClient, tempfile::TempDir) {
    let work = tempfile::Builder::new()
        .prefix("rmq-compat-grpc-java-")
        .tempdir()
        .expect("temp dir");
    (GrpcDriver::prepare(), java_client(JAVA), work)
}

/// (a) The reference: Java 5.3.3 name server, broker + proxy in local mode.
/// Ignored in CI for time (about 85 s; the Java versions are pinned, so what
/// it confirms does not change): run it with `-- --ignored` when changing a
/// scenario or an assertion. Passed on 8 Dec 2026.
#[test]
#[ignore]
fn java_grpc_client_reference_java_local_proxy() {
    let _serial = serial();
    let (driver, admin, work) = setup();
    let ns = JavaNamesrv::start(JAVA);
    let local = JavaProxy::start_local_with(JAVA, &ns.addr, BROKER_KEYS, &proxy_json());
    let logs = || local.logs();
    let t = Target {
        label: "java",
        endpoint: local.grpc_addr.clone(),
        namesrv: ns.addr.clone(),
        broker_addr: local.broker_addr.clone(),
        logs: &logs,
    };
    scenarios(&driver, &admin, work.path(), &t);
}

/// (b) The Java 5.3.3 proxy in cluster mode in front of our name server and
/// broker: every scenario, the transaction check-back included (the broker
/// checks back through the proxy, which relays to the client: the
/// transaction topic is typed TRANSACTION, see `create_resources`).
#[test]
fn java_grpc_client_java_proxy_before_ours() {
    let _serial = serial();
    let (driver, admin, work) = setup();
    let ns = OurNamesrv::start();
    let broker = StandaloneBroker::start(&ns.addr, BROKER_KEYS);
    let proxy = JavaProxy::start_cluster(JAVA, &ns.addr, &broker.cluster_name, &proxy_json());
    let logs = || format!("{}\n{}", proxy.logs(), broker.logs());
    let t = Target {
        label: "javaproxy-ours",
        endpoint: proxy.grpc_addr.clone(),
        namesrv: ns.addr.clone(),
        broker_addr: broker.addr.clone(),
        logs: &logs,
    };
    scenarios(&driver, &admin, work.path(), &t);
}

/// (c) Our broker's own gRPC port (local proxy mode, `enableProxy=true`,
/// `grpcServerPort` on a free port): every scenario the reference passes.
#[test]
fn java_grpc_client_our_broker_grpc_port() {
    let _serial = serial();
    let (driver, admin, work) = setup();
    let ns = OurNamesrv::start();
    let port = compat_tests::free_port();
    let broker = StandaloneBroker::start(
        &ns.addr,
        &format!(
            "{BROKER_KEYS}enableProxy=true\ngrpcServerPort={port}\n\
             minInvisibleTimeMillsForRecv=1000\nenableTopicMessageTypeCheck=false\n"
        ),
    );
    let logs = || broker.logs();
    let t = Target {
        label: "ours",
        endpoint: format!("127.0.0.1:{port}"),
        namesrv: ns.addr.clone(),
        broker_addr: broker.addr.clone(),
        logs: &logs,
    };
    scenarios(&driver, &admin, work.path(), &t);
}

/// (d) Our `mqproxy` (cluster mode, Java's `rmq-proxy.json` keys) in front
/// of our name server and broker, over remoting: every scenario the
/// reference passes.
#[test]
fn java_grpc_client_our_mqproxy() {
    let _serial = serial();
    let (driver, admin, work) = setup();
    let ns = OurNamesrv::start();
    let broker = StandaloneBroker::start(&ns.addr, BROKER_KEYS);
    let proxy = OurProxy::start(&ns.addr, &broker.cluster_name, &proxy_json());
    let logs = || format!("{}\n{}", proxy.logs(), broker.logs());
    let t = Target {
        label: "mqproxy",
        endpoint: proxy.grpc_addr.clone(),
        namesrv: ns.addr.clone(),
        broker_addr: broker.addr.clone(),
        logs: &logs,
    };
    scenarios(&driver, &admin, work.path(), &t);
}
