//! The mqadmin matrix (compat-tests/README.md) against our name server and broker,
//! with the 4.9.8 and the 5.3.3 tools, judged by what each command prints
//! (mqadmin exits 0 even when a command failed).
//!
//! One cluster for the whole test. Per tools version a live Java peer
//! (`compat.AdminPeer`, same client version) produces 10 messages to a shared
//! 4-queue topic and consumes the topic in its own group; the tools then run
//! in batches (`compat.AdminBatch`: several subcommands per JVM, each through
//! `MQAdminStartup.main0` as the script does). Also here: 1,000 topics created
//! through UPDATE_AND_CREATE_TOPIC and all listed by `topicList`, and the
//! 4 MiB message limit (the `bigbody` scenario of `compat.Scenarios`).
//!
//! Commands (both versions unless noted) and what is asserted on their output:
//! - `updateTopic` success line; `topicList` lists the topics (all 1,000);
//!   `topicRoute` 4/4 queues, perm 6, our address; `topicStatus` 4 queues,
//!   min 0, max offsets summing to what was produced; `topicClusterList`;
//!   `clusterList` row (cluster, broker, id 0, address); `deleteTopic` both
//!   success lines, then absent from `topicList`; `allocateMQ` result JSON.
//! - `brokerStatus` TPS keys in both spellings, put total; `getBrokerConfig`
//!   brokerName; `updateBrokerConfig` then `getBrokerConfig` shows the value.
//! - `consumerProgress` every queue consumed, "Diff Total: 0"; without `-g`
//!   our group's row (1 client, its version, PUSH, CLUSTERING);
//!   `consumerConnection` client id, language, subscription; `producerConnection`;
//!   `consumerStatus -i` (GET_CONSUMER_RUNNING_INFO relayed to the client);
//!   `getConsumerStatus` (223 -> 221; the tools ship the class but do not
//!   register it, `AdminBatch` does) offsets per queue.
//! - `queryMsgById` (4.9.8 by offset id, 5.3.3 with `-t`), `queryMsgByKey`,
//!   `queryMsgByOffset`: keys, topic, ids; `queryMsgById -g -d`
//!   (CONSUME_MESSAGE_DIRECTLY relayed to the client) CR_SUCCESS; `printMsg`
//!   every body; `sendMessage` SEND_OK; `checkMsgSendRT` rows and "Avg RT".
//! - `updateSubGroup`, `getConsumerConfig`, `deleteSubGroup`, then
//!   `getConsumerConfig` no longer shows it; 5.3.3 `updateSubGroupList` (225)
//!   and `producer` (328).
//! - `consumeMessage -t` (the tool's pull consumer from each queue's min
//!   offset): "Consume ok", every body exactly once, every message id.
//! - `statsAll` (VIEW_BROKER_STATS_DATA) row with accumulation 0 and today's
//!   puts; `brokerConsumeStats` (317) backlog total after an offline reset.
//! - `resetOffsetByTime` with the consumer online: every queue to 0 and the
//!   live consumer receives every message again; offline: the tool's
//!   fallback table and `consumerProgress` at 0; 5.3.3 `-b -q -o` one queue.
//! - `clusterRT` (loops until killed) prints a row for our broker with every
//!   send successful.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use compat_tests::{java_client, serial, text, Cluster, JavaClient, Proc, JAVA_VERSIONS};
use remoting::body::{from_fastjson, TopicList};
use remoting::code::request_code;
use remoting::{Connection, RemotingCommand, Router};

const TOPIC: &str = "MatrixTopic";
const PER_PEER: usize = 10;
const MANY_TOPICS: usize = 1000;

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Short name of a tools version: "498", "533".
fn short(version: &str) -> String {
    version.replace('.', "")
}

// ------------------------------------------------------------------ batches

/// Runs mqadmin subcommands in one JVM; returns each command's output.
fn batch(cluster: &Cluster, java: &JavaClient, cmds: &[Vec<String>]) -> Vec<String> {
    let home = cluster.client_home(&format!("mqadmin-{}", java.version));
    let mut args: Vec<&str> = Vec::new();
    for (i, c) in cmds.iter().enumerate() {
        if i > 0 {
            args.push(";;");
        }
        args.extend(c.iter().map(String::as_str));
    }
    let started = Instant::now();
    let out = text(&java.run(&home, "compat.AdminBatch", &args, Duration::from_secs(400)));
    eprintln!(
        "mqadmin {} batch of {} took {:?}",
        java.version,
        cmds.len(),
        started.elapsed()
    );
    let mut sections = vec![None; cmds.len()];
    let mut current: Option<(usize, String)> = None;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("@@@ BEGIN ") {
            let i: usize = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            current = Some((i, String::new()));
        } else if line.starts_with("@@@ END ") {
            if let Some((i, text)) = current.take() {
                if let Some(slot) = sections.get_mut(i) {
                    *slot = Some(text);
                }
            }
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    sections
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            s.unwrap_or_else(|| {
                panic!(
                    "mqadmin {} command {:?} did not finish:\n{out}\n{}",
                    java.version,
                    cmds[i],
                    cluster.logs()
                )
            })
        })
        .collect()
}

fn cmd(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Rows of whitespace-separated columns.
fn rows(out: &str) -> Vec<Vec<&str>> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| !c.is_empty())
        .collect()
}

/// The message of a failed assertion on the `i`th command of a batch: the
/// command, what was expected, its output and the servers' logs.
fn batch_failure(
    version: &str,
    cmds: &[Vec<String>],
    out: &[String],
    i: usize,
    what: &str,
    logs: &str,
) -> String {
    format!(
        "{version} {:?}: {what}\n----- output -----\n{}\n{logs}",
        cmds[i], out[i]
    )
}

fn no_exception(version: &str, name: &str, out: &str) {
    // Stack-trace lines or a thrown exception's "Type: message" line (plain
    // property names such as pullTimeDelayMillsWhenException are fine).
    let bad = out.lines().map(str::trim).find(|t| {
        (t.starts_with("at ") && t.contains('('))
            || t.contains("Exception: ")
            || ((t.starts_with("org.apache.") || t.starts_with("java.")) && t.contains("Exception"))
    });
    assert!(
        bad.is_none(),
        "{version} {name} printed an exception ({bad:?}):\n{out}"
    );
}

// -------------------------------------------------------------------- peers

struct Sent {
    msg_id: String,
    offset_msg_id: String,
    queue_id: i32,
    queue_offset: i64,
}

struct Peer {
    proc: Proc,
    prefix: String,
    producer_group: String,
    consumer_group: String,
}

impl Peer {
    fn start(cluster: &Cluster, java: &JavaClient) -> Peer {
        let v = short(&java.version);
        let prefix = format!("m{v}");
        let producer_group = format!("MatrixP{v}");
        let consumer_group = format!("MatrixC{v}");
        let home = cluster.client_home(&format!("peer-{}", java.version));
        let log = cluster.dir.path().join(format!("peer-{v}.log"));
        let count = PER_PEER.to_string();
        let proc = java.spawn(
            &home,
            "compat.AdminPeer",
            &[
                &cluster.namesrv_addr,
                TOPIC,
                &producer_group,
                &consumer_group,
                &count,
                &prefix,
                "900",
            ],
            log,
        );
        Peer {
            proc,
            prefix,
            producer_group,
            consumer_group,
        }
    }

    fn log(&self) -> String {
        self.proc.log_text()
    }

    fn client_id(&self) -> Option<String> {
        self.log()
            .lines()
            .find_map(|l| l.strip_prefix("consumer-client-id=").map(str::to_owned))
    }

    fn sent(&self) -> BTreeMap<usize, Sent> {
        self.log()
            .lines()
            .filter_map(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                if c.len() != 6 || c[0] != "sent" {
                    return None;
                }
                Some((
                    c[1].parse().ok()?,
                    Sent {
                        msg_id: c[2].to_owned(),
                        offset_msg_id: c[3].to_owned(),
                        queue_id: c[4].parse().ok()?,
                        queue_offset: c[5].parse().ok()?,
                    },
                ))
            })
            .collect()
    }

    /// How often each body was delivered.
    fn received(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for l in self.log().lines() {
            let c: Vec<&str> = l.split_whitespace().collect();
            if c.len() == 5 && c[0] == "recv" {
                *m.entry(c[1].to_owned()).or_insert(0) += 1;
            }
        }
        m
    }
}

/// Every body both peers sent.
fn all_bodies(peers: &[Peer]) -> Vec<String> {
    peers
        .iter()
        .flat_map(|p| (0..PER_PEER).map(move |i| format!("{}-body-{i}", p.prefix)))
        .collect()
}

fn wait_received(cluster: &Cluster, peers: &[Peer], peer: &Peer, times: usize, timeout: Duration) {
    let bodies = all_bodies(peers);
    let deadline = Instant::now() + timeout;
    loop {
        let got = peer.received();
        if bodies
            .iter()
            .all(|b| got.get(b).copied().unwrap_or(0) >= times)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not receive every message {times} time(s) within {timeout:?}: {got:?}\n{}\n{}",
            peer.consumer_group,
            peer.log(),
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ------------------------------------------------------------ 1,000 topics

/// Creates `names` on the broker with UPDATE_AND_CREATE_TOPIC (17), several
/// requests in flight at a time.
fn create_topics(broker: &str, names: &[String]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let conn = Connection::connect(broker, Arc::new(Router::new()))
            .await
            .expect("connect to the broker");
        for chunk in names.chunks(50) {
            let mut tasks = Vec::new();
            for name in chunk {
                let conn = conn.clone();
                let req = RemotingCommand::request(request_code::UPDATE_AND_CREATE_TOPIC)
                    .with_ext("topic", name.clone())
                    .with_ext("defaultTopic", "TBW102")
                    .with_ext("readQueueNums", "1")
                    .with_ext("writeQueueNums", "1")
                    .with_ext("perm", "6")
                    .with_ext("topicFilterType", "SINGLE_TAG")
                    .with_ext("topicSysFlag", "0")
                    .with_ext("order", "false");
                tasks.push(tokio::spawn(async move {
                    conn.request(req, Duration::from_secs(30)).await
                }));
            }
            for t in tasks {
                let resp = t
                    .await
                    .expect("join")
                    .expect("UPDATE_AND_CREATE_TOPIC answered");
                assert_eq!(resp.code, 0, "create topic: {:?}", resp.remark);
            }
        }
        conn.close();
    });
}

/// GET_ALL_TOPIC_LIST_FROM_NAMESERVER through our remoting client (readiness
/// only; the assertion is on mqadmin topicList's output).
fn namesrv_topics(namesrv: &str) -> BTreeSet<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let Ok(conn) = Connection::connect(namesrv, Arc::new(Router::new())).await else {
            return BTreeSet::new();
        };
        let resp = conn
            .request(
                RemotingCommand::request(request_code::GET_ALL_TOPIC_LIST_FROM_NAMESERVER),
                Duration::from_secs(10),
            )
            .await;
        conn.close();
        match resp {
            Ok(r) if r.code == 0 => from_fastjson::<TopicList>(&r.body)
                .map(|l| l.topic_list.into_iter().collect())
                .unwrap_or_default(),
            _ => BTreeSet::new(),
        }
    })
}

// --------------------------------------------------------------- the test

#[test]
fn mqadmin_matrix() {
    let _serial = serial();
    let started = Instant::now();
    let cluster = Cluster::start();
    let ns = cluster.namesrv_addr.clone();
    let addr = cluster.broker_addr.clone();
    let cname = cluster.cluster_name.clone();
    let javas: Vec<JavaClient> = JAVA_VERSIONS.iter().map(|v| java_client(v)).collect();
    let java5 = &javas[1];

    // The shared topic, by the 5.3.3 tool.
    let out = batch(
        &cluster,
        java5,
        &[cmd(&[
            "updateTopic",
            "-n",
            &ns,
            "-c",
            &cname,
            "-t",
            TOPIC,
            "-r",
            "4",
            "-w",
            "4",
        ])],
    );
    assert!(
        out[0].contains(&format!("create topic to {addr} success")),
        "updateTopic:\n{}\n{}",
        out[0],
        cluster.logs()
    );

    // 1,000 topics, created while the peers start.
    let many: Vec<String> = (0..MANY_TOPICS).map(|i| format!("Many{i:04}")).collect();
    let t0 = now_millis() - 1000;
    let peers: Vec<Peer> = javas.iter().map(|j| Peer::start(&cluster, j)).collect();
    let created = Instant::now();
    create_topics(&addr, &many);
    eprintln!("created {MANY_TOPICS} topics in {:?}", created.elapsed());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = namesrv_topics(&ns);
        if many.iter().all(|t| listed.contains(t)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the name server never listed all {MANY_TOPICS} topics ({} listed)\n{}",
            listed.len(),
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    for p in &peers {
        wait_received(&cluster, &peers, p, 1, Duration::from_secs(120));
    }

    // The 4 MiB limit (accepted; one byte more refused with MESSAGE_ILLEGAL by
    // the client and, with the client's limit raised, by the broker).
    {
        let home = cluster.client_home("bigbody");
        let out = text(&java5.run(
            &home,
            "compat.Scenarios",
            &[&ns, &addr, "Matrix", "bigbody"],
            Duration::from_secs(180),
        ));
        assert!(
            out.lines().any(|l| l.starts_with("scenario=bigbody ok")),
            "4 MiB limit:\n{out}\n{}",
            cluster.logs()
        );
    }

    for (java, peer) in javas.iter().zip(&peers) {
        wait_progress_complete(&cluster, java, peer);
        matrix_for(&cluster, java, peer, &peers, &many, t0);
    }

    // resetOffsetByTime pushed the offsets to the live consumers: each group
    // receives every message again.
    for p in &peers {
        wait_received(&cluster, &peers, p, 2, Duration::from_secs(90));
    }
    for (java, peer) in javas.iter().zip(&peers) {
        wait_progress_complete(&cluster, java, peer);
    }

    // With no consumer online the broker answers CONSUMER_NOT_ONLINE and the
    // tool resets through UPDATE_CONSUMER_OFFSET itself.
    let groups: Vec<String> = peers.iter().map(|p| p.consumer_group.clone()).collect();
    drop(peers);
    for (java, group) in javas.iter().zip(&groups) {
        offline_reset(&cluster, java, group, t0);
    }

    cluster_rt(&cluster, &javas);
    eprintln!("mqadmin matrix took {:?}", started.elapsed());
}

/// Rows of `TOPIC` in a table whose columns are `TOPIC broker qid a b ...`.
fn topic_rows<'a>(out: &'a str, broker: &str) -> Vec<Vec<&'a str>> {
    rows(out)
        .into_iter()
        .filter(|c| c.len() >= 5 && c[0] == TOPIC && c[1] == broker)
        .collect()
}

fn matrix_for(
    cluster: &Cluster,
    java: &JavaClient,
    peer: &Peer,
    peers: &[Peer],
    many: &[String],
    t0: i64,
) {
    let version = java.version.as_str();
    let v5 = version.starts_with('5');
    let v = short(version);
    let ns = cluster.namesrv_addr.as_str();
    let addr = cluster.broker_addr.as_str();
    let cname = cluster.cluster_name.as_str();
    let bname = cluster.broker_name.as_str();
    let tmp = format!("MatrixTmp{v}");
    let subg = format!("MatrixSub{v}");
    let cg = peer.consumer_group.as_str();
    let pg = peer.producer_group.as_str();
    let client_id = peer.client_id().expect("peer printed its client id");
    let sent = peer.sent();
    let m3 = sent.get(&3).expect("peer sent message 3");
    let key3 = format!("{}-key-3", peer.prefix);
    let qid3 = m3.queue_id.to_string();
    let qoff3 = m3.queue_offset.to_string();
    let reserved = if v5 { "49" } else { "48" };
    let total: i64 = (PER_PEER * peers.len()) as i64;
    let ts0 = t0.to_string();

    let mut by_id = cmd(&["queryMsgById", "-n", ns, "-i", &m3.offset_msg_id]);
    if v5 {
        by_id.extend(cmd(&["-t", TOPIC]));
    }
    let mut by_id_direct = by_id.clone();
    by_id_direct.extend(cmd(&["-g", cg, "-d", &client_id]));

    let mut cmds = vec![
        cmd(&[
            "updateTopic",
            "-n",
            ns,
            "-c",
            cname,
            "-t",
            &tmp,
            "-r",
            "2",
            "-w",
            "2",
        ]),
        cmd(&["topicList", "-n", ns]),
        cmd(&["topicRoute", "-n", ns, "-t", TOPIC]),
        cmd(&["topicStatus", "-n", ns, "-t", TOPIC]),
        cmd(&["topicClusterList", "-n", ns, "-t", TOPIC]),
        cmd(&["clusterList", "-n", ns]),
        cmd(&["brokerStatus", "-n", ns, "-b", addr]),
        cmd(&["getBrokerConfig", "-n", ns, "-b", addr]),
        cmd(&[
            "updateBrokerConfig",
            "-n",
            ns,
            "-b",
            addr,
            "-k",
            "fileReservedTime",
            "-v",
            reserved,
        ]),
        cmd(&["getBrokerConfig", "-n", ns, "-b", addr]),
        cmd(&["consumerProgress", "-n", ns, "-g", cg]),
        cmd(&["consumerConnection", "-n", ns, "-g", cg]),
        cmd(&["producerConnection", "-n", ns, "-g", pg, "-t", TOPIC]),
        by_id,
        cmd(&["queryMsgByKey", "-n", ns, "-t", TOPIC, "-k", &key3]),
        cmd(&[
            "queryMsgByOffset",
            "-n",
            ns,
            "-t",
            TOPIC,
            "-b",
            bname,
            "-i",
            &qid3,
            "-o",
            &qoff3,
        ]),
        cmd(&["printMsg", "-n", ns, "-t", TOPIC]),
        cmd(&[
            "sendMessage",
            "-n",
            ns,
            "-t",
            &tmp,
            "-p",
            &format!("extra-{v}"),
            "-k",
            "extra",
        ]),
        cmd(&["updateSubGroup", "-n", ns, "-b", addr, "-g", &subg]),
        cmd(&["getConsumerConfig", "-n", ns, "-g", &subg]),
        cmd(&["deleteSubGroup", "-n", ns, "-b", addr, "-g", &subg]),
        cmd(&["getConsumerConfig", "-n", ns, "-g", &subg]),
        cmd(&["statsAll", "-n", ns, "-t", TOPIC]),
        cmd(&["consumerStatus", "-n", ns, "-g", cg, "-i", &client_id]),
        by_id_direct,
        cmd(&[
            "checkMsgSendRT",
            "-n",
            ns,
            "-t",
            &tmp,
            "-a",
            "3",
            "-s",
            "16",
        ]),
        cmd(&["deleteTopic", "-n", ns, "-c", cname, "-t", &tmp]),
        cmd(&["topicList", "-n", ns]),
        cmd(&[
            "allocateMQ",
            "-n",
            ns,
            "-t",
            TOPIC,
            "-i",
            "10.0.0.1,10.0.0.2",
        ]),
        cmd(&["getConsumerStatus", "-n", ns, "-g", cg, "-t", TOPIC]),
        cmd(&[
            "resetOffsetByTime",
            "-n",
            ns,
            "-g",
            cg,
            "-t",
            TOPIC,
            "-s",
            &ts0,
        ]),
    ];
    let group_list_file = cluster.dir.path().join(format!("groups-{v}.json"));
    let listed_group = format!("MatrixList{v}");
    if v5 {
        // 5.x updateSubGroupList (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST, 225).
        std::fs::write(
            &group_list_file,
            format!(r#"[{{"groupName":"{listed_group}","retryMaxTimes":5}}]"#),
        )
        .expect("write group list");
        let file = group_list_file.display().to_string();
        cmds.push(cmd(&[
            "updateSubGroupList",
            "-n",
            ns,
            "-b",
            addr,
            "-f",
            &file,
        ]));
        cmds.push(cmd(&["getConsumerConfig", "-n", ns, "-g", &listed_group]));
        // 5.x producer (GET_ALL_PRODUCER_INFO, 328).
        cmds.push(cmd(&["producer", "-n", ns, "-b", addr]));
    }
    // consumerProgress without a group: one row per %RETRY% group.
    let all_groups_at = cmds.len();
    cmds.push(cmd(&["consumerProgress", "-n", ns]));
    // consumeMessage: the tool's pull consumer reads every queue from its min
    // offset (no `-g`: the tools read the group from `-b`).
    let consume_at = cmds.len();
    cmds.push(cmd(&["consumeMessage", "-n", ns, "-t", TOPIC]));
    // queryCq (QUERY_CONSUME_QUEUE, 321), cleanExpiredCQ (306),
    // cleanUnusedTopic (316).
    let query_cq_at = cmds.len();
    cmds.push(cmd(&[
        "queryCq", "-n", ns, "-t", TOPIC, "-q", &qid3, "-i", "0", "-c", "5", "-g", cg,
    ]));
    let clean_cq_at = cmds.len();
    cmds.push(cmd(&["cleanExpiredCQ", "-n", ns, "-b", addr]));
    let clean_unused_at = cmds.len();
    cmds.push(cmd(&["cleanUnusedTopic", "-n", ns, "-b", addr]));
    let out = batch(cluster, java, &cmds);
    let o = |i: usize| out[i].as_str();
    let fail = |i: usize, what: &str| {
        let logs = format!("----- peer -----\n{}\n{}", peer.log(), cluster.logs());
        batch_failure(version, &cmds, &out, i, what, &logs)
    };

    // queryCq: the units [0, 5) of message 3's queue, each at the commit-log
    // offset its offset message id names.
    {
        let i = query_cq_at;
        no_exception(version, "queryCq", o(i));
        let known: BTreeMap<i64, i64> = peers
            .iter()
            .flat_map(|p| p.sent().into_values())
            .filter(|s| s.queue_id == m3.queue_id)
            .filter_map(|s| {
                let hex = s
                    .offset_msg_id
                    .get(s.offset_msg_id.len().saturating_sub(16)..)?;
                Some((s.queue_offset, i64::from_str_radix(hex, 16).ok()?))
            })
            .collect();
        let (max, min) = o(i)
            .lines()
            .find_map(|l| {
                let rest = l.trim().strip_prefix("max: ")?;
                let (max, min) = rest.split_once(", min: ")?;
                Some((
                    max.trim().parse::<i64>().ok()?,
                    min.trim().parse::<i64>().ok()?,
                ))
            })
            .unwrap_or_else(|| panic!("{}", fail(i, "no max/min line")));
        assert_eq!(min, 0, "{}", fail(i, "min queue index"));
        assert!(
            max >= known.len() as i64 && max > m3.queue_offset,
            "{}",
            fail(i, "max queue index")
        );
        let entries: Vec<(i64, i64)> = o(i)
            .lines()
            .filter_map(|l| {
                let rest = l.trim().strip_prefix("ConsumeQueueData{physicOffset=")?;
                let (phys, rest) = rest.split_once(", physicSize=")?;
                let size = rest.split(',').next()?;
                Some((phys.parse().ok()?, size.parse().ok()?))
            })
            .collect();
        assert_eq!(
            entries.len() as i64,
            max.min(5),
            "{}",
            fail(i, "entry count")
        );
        let idx_lines = o(i).lines().filter(|l| l.starts_with("idx: ")).count();
        assert_eq!(idx_lines, entries.len(), "{}", fail(i, "idx lines"));
        for (q, (phys, size)) in entries.iter().enumerate() {
            assert!(*size > 0 && *phys >= 0, "{}", fail(i, "entry offset/size"));
            if let Some(expected) = known.get(&(q as i64)) {
                assert_eq!(phys, expected, "{}", fail(i, "entry physical offset"));
            }
        }
        assert!(
            entries
                .iter()
                .filter(|(p, _)| known.values().any(|k| k == p))
                .count()
                >= known.keys().filter(|q| **q < 5).count(),
            "{}",
            fail(i, "sent messages missing")
        );
        assert!(
            o(i).contains("Subscription data") && o(i).contains(TOPIC),
            "{}",
            fail(i, "subscription data of the group")
        );
    }
    // cleanExpiredCQ / cleanUnusedTopic: "success", no exception.
    for i in [clean_cq_at, clean_unused_at] {
        no_exception(version, &cmds[i][0], o(i));
        assert!(o(i).contains("success"), "{}", fail(i, "no success"));
    }

    // updateTopic
    assert!(
        o(0).contains(&format!("create topic to {addr} success")),
        "{}",
        fail(0, "success line")
    );
    // topicList: the shared topic, the new one and all 1,000 others.
    let listed: BTreeSet<&str> = o(1).lines().map(str::trim).collect();
    assert!(
        listed.contains(TOPIC) && listed.contains(tmp.as_str()),
        "{}",
        fail(1, "topics")
    );
    let missing = many.iter().filter(|t| !listed.contains(t.as_str())).count();
    assert_eq!(missing, 0, "{}", fail(1, "the 1,000 topics"));
    // topicRoute: the tool's JSON of our route.
    let route: String = o(2).split_whitespace().collect();
    assert!(
        route.contains("\"readQueueNums\":4")
            && route.contains("\"writeQueueNums\":4")
            && route.contains(&format!("\"{addr}\""))
            && route.contains("\"perm\":6"),
        "{}",
        fail(2, "route JSON")
    );
    // topicStatus: 4 queues, min 0, max offsets summing to what was produced.
    let st: Vec<Vec<&str>> = rows(o(3))
        .into_iter()
        .filter(|c| c.len() >= 4 && c[0] == bname)
        .collect();
    assert!(
        o(3).contains("#Broker Name") && o(3).contains("#Max Offset"),
        "{}",
        fail(3, "header")
    );
    assert_eq!(st.len(), 4, "{}", fail(3, "rows"));
    let max_sum: i64 = st.iter().map(|c| c[3].parse::<i64>().unwrap_or(-1)).sum();
    assert!(st.iter().all(|c| c[2] == "0"), "{}", fail(3, "min offsets"));
    assert_eq!(max_sum, total, "{}", fail(3, "max offsets"));
    // topicClusterList
    assert!(
        o(4).lines().any(|l| l.trim() == cname),
        "{}",
        fail(4, "cluster name")
    );
    // clusterList: our broker as master with its address.
    assert!(
        rows(o(5)).iter().any(|c| c.len() >= 4
            && c[0] == cname
            && c[1] == bname
            && c[2] == "0"
            && c[3] == addr),
        "{}",
        fail(5, "broker row")
    );
    // brokerStatus: TPS keys in both spellings, put total counts our messages.
    let kv: BTreeMap<&str, &str> = o(6)
        .lines()
        .filter_map(|l| l.split_once(" : "))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    for key in [
        "putTps",
        "getTransferedTps",
        "getTransferredTps",
        "getTotalTps",
        "bootTimestamp",
        "brokerVersionDesc",
    ] {
        assert!(kv.contains_key(key), "{}", fail(6, key));
    }
    let puts: i64 = kv
        .get("msgPutTotalTodayNow")
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    assert!(puts >= total, "{}", fail(6, "msgPutTotalTodayNow"));
    // getBrokerConfig, updateBrokerConfig, getBrokerConfig
    let config_value = |out: &str, key: &str| -> Option<String> {
        out.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_owned())
        })
    };
    assert_eq!(
        config_value(o(7), "brokerName").as_deref(),
        Some(bname),
        "{}",
        fail(7, "brokerName")
    );
    assert!(
        o(8).contains("update broker config success"),
        "{}",
        fail(8, "success line")
    );
    assert_eq!(
        config_value(o(9), "fileReservedTime").as_deref(),
        Some(reserved),
        "{}",
        fail(9, "new value")
    );
    // consumerProgress: every queue consumed (consumer offset = broker offset).
    let cp = topic_rows(o(10), bname);
    assert_eq!(cp.len(), 4, "{}", fail(10, "rows"));
    let broker_sum: i64 = cp.iter().map(|c| c[3].parse::<i64>().unwrap_or(-1)).sum();
    assert_eq!(broker_sum, total, "{}", fail(10, "broker offsets"));
    assert!(
        cp.iter().all(|c| c[3] == c[4]),
        "{}",
        fail(10, "consumer offsets")
    );
    assert!(
        o(10).contains("Diff Total: 0"),
        "{}",
        fail(10, "diff total")
    );
    // consumerConnection: the live consumer and its subscription.
    assert!(
        o(11).contains(&client_id) && o(11).contains("JAVA"),
        "{}",
        fail(11, "client id")
    );
    assert!(
        o(11).contains(TOPIC) && o(11).contains("CLUSTERING"),
        "{}",
        fail(11, "subscription")
    );
    // producerConnection
    assert!(
        o(12).contains(&format!("{}-producer", peer.prefix)) && o(12).contains("JAVA"),
        "{}",
        fail(12, "producer")
    );
    // queryMsgById / queryMsgByKey / queryMsgByOffset
    for i in [13, 15] {
        assert!(
            o(i).contains(&key3) && o(i).contains(TOPIC) && o(i).contains(&m3.offset_msg_id),
            "{}",
            fail(i, "message block")
        );
    }
    assert!(o(14).contains(&m3.msg_id), "{}", fail(14, "message id row"));
    // printMsg: every body.
    for b in all_bodies(peers) {
        assert!(o(16).contains(&format!("BODY: {b}")), "{}", fail(16, &b));
    }
    // sendMessage
    assert!(o(17).contains("SEND_OK"), "{}", fail(17, "SEND_OK"));
    // updateSubGroup, getConsumerConfig, deleteSubGroup, getConsumerConfig
    assert!(
        o(18).contains(&format!("create subscription group to {addr} success")),
        "{}",
        fail(18, "success")
    );
    let group_line = |out: &str| {
        out.lines()
            .any(|l| l.contains("groupName") && l.contains(subg.as_str()))
    };
    assert!(group_line(o(19)), "{}", fail(19, "group shown"));
    assert!(
        o(20).contains(&format!(
            "delete subscription group [{subg}] from broker [{addr}]"
        )),
        "{}",
        fail(20, "deleted")
    );
    assert!(!group_line(o(21)), "{}", fail(21, "group gone"));
    // statsAll: our group on the topic, nothing accumulated, today's puts.
    let stats_row = rows(o(22))
        .into_iter()
        .find(|c| c.len() == 7 && c[0] == TOPIC && c[1] == cg)
        .unwrap_or_else(|| panic!("{}", fail(22, "row")));
    assert_eq!(stats_row[2], "0", "{}", fail(22, "accumulation"));
    assert_eq!(
        stats_row[5],
        total.to_string(),
        "{}",
        fail(22, "InMsg24Hour")
    );
    // consumerStatus -i: the client's running info, relayed by the broker.
    assert!(
        o(23).contains("#Consumer Subscription#") && o(23).contains(TOPIC),
        "{}",
        fail(23, "running info")
    );
    // queryMsgById -g -d: consumed directly by the live client.
    assert!(
        o(24).contains("CR_SUCCESS"),
        "{}",
        fail(24, "consume result")
    );
    // checkMsgSendRT
    assert!(
        o(25).contains("Avg RT") && o(25).contains("true"),
        "{}",
        fail(25, "send rows")
    );
    // deleteTopic, topicList
    assert!(
        o(26).contains(&format!(
            "delete topic [{tmp}] from cluster [{cname}] success"
        )),
        "{}",
        fail(26, "cluster")
    );
    assert!(
        o(26).contains("from NameServer success"),
        "{}",
        fail(26, "name server")
    );
    assert!(
        !o(27).lines().any(|l| l.trim() == tmp),
        "{}",
        fail(27, "still listed")
    );
    assert!(
        o(27).lines().any(|l| l.trim() == TOPIC),
        "{}",
        fail(27, "topic listed")
    );
    // allocateMQ: 4 queues between two addresses.
    let alloc: String = o(28).split_whitespace().collect();
    assert!(
        alloc.contains("\"10.0.0.1\"")
            && alloc.contains("\"10.0.0.2\"")
            && alloc.contains("\"queueId\":3"),
        "{}",
        fail(28, "allocation")
    );
    // getConsumerStatus: the live client's offsets, through the broker (223 -> 221).
    let status: Vec<Vec<&str>> = rows(o(29))
        .into_iter()
        .filter(|c| c.len() == 4 && c[0] == client_id && c[1] == bname)
        .collect();
    assert!(
        o(29).contains("#clientId") && status.len() == 4,
        "{}",
        fail(29, "rows")
    );
    let status_sum: i64 = status
        .iter()
        .map(|c| c[3].parse::<i64>().unwrap_or(-1))
        .sum();
    assert_eq!(status_sum, total, "{}", fail(29, "offsets"));
    // resetOffsetByTime: every queue back to 0 (t0 is before the first message).
    assert!(
        o(30).contains("#brokerName") && o(30).contains("#offset"),
        "{}",
        fail(30, "header")
    );
    let reset_rows: Vec<Vec<&str>> = rows(o(30))
        .into_iter()
        .filter(|c| c.len() == 3 && c[0] == bname)
        .collect();
    assert_eq!(reset_rows.len(), 4, "{}", fail(30, "rows"));
    assert!(
        reset_rows.iter().all(|c| c[2] == "0"),
        "{}",
        fail(30, "offsets")
    );

    if v5 {
        assert!(o(31).contains("success"), "{}", fail(31, "success line"));
        let config: BTreeMap<&str, &str> = o(32)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        assert_eq!(
            config.get("groupName"),
            Some(&listed_group.as_str()),
            "{}",
            fail(32, "group")
        );
        assert_eq!(
            config.get("retryMaxTimes"),
            Some(&"5"),
            "{}",
            fail(32, "retryMaxTimes")
        );
        assert!(
            o(33).contains(&format!("producer group ({pg}) instance"))
                && o(33).contains(&format!("{}-producer", peer.prefix)),
            "{}",
            fail(33, "producer instance")
        );
    }

    let want_version = format!("V{}", version.replace('.', "_"));
    assert!(
        o(all_groups_at).contains("#Group")
            && rows(o(all_groups_at)).iter().any(|c| c.len() == 7
                && c[0] == cg
                && c[1] == "1"
                && c[2] == want_version
                && c[3] == "PUSH"
                && c[4] == "CLUSTERING"),
        "{}",
        fail(all_groups_at, "group row")
    );

    // consumeMessage: every body with its id (the uniq key), nothing pulled twice.
    assert!(
        o(consume_at).contains("Consume ok"),
        "{}",
        fail(consume_at, "Consume ok")
    );
    for b in all_bodies(peers) {
        let lines = o(consume_at)
            .lines()
            .filter(|l| l.ends_with(&format!(" BODY: {b}")))
            .count();
        assert_eq!(lines, 1, "{}", fail(consume_at, &b));
    }
    for s in peers.iter().flat_map(|p| p.sent().into_values()) {
        assert!(
            o(consume_at).contains(&s.msg_id),
            "{}",
            fail(consume_at, &s.msg_id)
        );
    }

    for (i, out) in out.iter().enumerate() {
        // getConsumerConfig of a deleted group prints nothing; everything else
        // must be free of stack traces.
        no_exception(version, &cmds[i][0], out);
    }
}

/// Waits until consumerProgress shows the group caught up on every queue
/// (the client commits its offsets every second).
fn wait_progress_complete(cluster: &Cluster, java: &JavaClient, peer: &Peer) {
    let ns = cluster.namesrv_addr.as_str();
    let bname = cluster.broker_name.as_str();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = batch(
            cluster,
            java,
            &[cmd(&[
                "consumerProgress",
                "-n",
                ns,
                "-g",
                &peer.consumer_group,
            ])],
        );
        let cp = topic_rows(&out[0], bname);
        if cp.len() == 4 && cp.iter().all(|c| c[3] == c[4]) && out[0].contains("Diff Total: 0") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} consumerProgress never caught up:\n{}\n{}",
            java.version,
            out[0],
            cluster.logs()
        );
    }
}

/// resetOffsetByTime for a group with no consumer online (the tool's old
/// path), then consumerProgress and brokerConsumeStats show the backlog.
fn offline_reset(cluster: &Cluster, java: &JavaClient, group: &str, t0: i64) {
    let version = java.version.as_str();
    let ns = cluster.namesrv_addr.as_str();
    let addr = cluster.broker_addr.as_str();
    let bname = cluster.broker_name.as_str();
    let ts0 = t0.to_string();
    // The broker drops the consumer when its connection closes.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = batch(
            cluster,
            java,
            &[cmd(&["consumerConnection", "-n", ns, "-g", group])],
        );
        if !out[0].contains("JAVA") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{version} {group} still online:\n{}",
            out[0]
        );
    }
    let cmds = vec![
        cmd(&[
            "resetOffsetByTime",
            "-n",
            ns,
            "-g",
            group,
            "-t",
            TOPIC,
            "-s",
            &ts0,
        ]),
        cmd(&["consumerProgress", "-n", ns, "-g", group]),
        cmd(&["brokerConsumeStats", "-n", ns, "-b", addr]),
    ];
    let out = batch(cluster, java, &cmds);
    let fail = |i: usize, what: &str| batch_failure(version, &cmds, &out, i, what, &cluster.logs());
    assert!(
        // 4.9.8 says "rollback ... #rollbackOffset", 5.3.3 "reset ... #resetOffset".
        out[0].contains(&format!(
            "consumer offset by specified consumerGroup[{group}]"
        )) && (out[0].contains("#rollbackOffset") || out[0].contains("#resetOffset")),
        "{}",
        fail(0, "old-path table")
    );
    let rolled: Vec<Vec<&str>> = rows(&out[0])
        .into_iter()
        .filter(|c| c.len() == 6 && c[0] == bname)
        .collect();
    assert_eq!(rolled.len(), 4, "{}", fail(0, "rows"));
    assert!(
        rolled.iter().all(|c| c[5] == "0"),
        "{}",
        fail(0, "rollback offsets")
    );
    let cp = topic_rows(&out[1], bname);
    assert_eq!(cp.len(), 4, "{}", fail(1, "rows"));
    assert!(
        cp.iter().all(|c| c[4] == "0"),
        "{}",
        fail(1, "consumer offsets reset")
    );
    let total = (PER_PEER * JAVA_VERSIONS.len()) as i64;
    assert!(
        out[1].contains(&format!("Diff Total: {total}")),
        "{}",
        fail(1, "diff")
    );
    // Rows are printed only for queues with a last-consumed time (none after
    // a reset to 0, as with Java's broker); the total counts the backlog.
    let broker_diff: i64 = out[2]
        .lines()
        .find_map(|l| l.trim().strip_prefix("Diff Total: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1);
    assert!(
        out[2].contains("#Consumer Offset") && broker_diff >= total,
        "{}",
        fail(2, "backlog total")
    );
    for (i, o) in out.iter().enumerate() {
        no_exception(version, &cmds[i][0], o);
    }
    if version.starts_with('5') {
        // 5.x: one queue to an explicit offset (UPDATE_CONSUMER_OFFSET, then
        // INVOKE_BROKER_TO_RESET_OFFSET with queueId and offset).
        let cmds = vec![
            cmd(&[
                "resetOffsetByTime",
                "-n",
                ns,
                "-g",
                group,
                "-t",
                TOPIC,
                "-s",
                "now",
                "-b",
                addr,
                "-q",
                "0",
                "-o",
                "3",
            ]),
            cmd(&["consumerProgress", "-n", ns, "-g", group]),
        ];
        let out = batch(cluster, java, &cmds);
        let fail =
            |i: usize, what: &str| batch_failure(version, &cmds, &out, i, what, &cluster.logs());
        assert!(
            out[0].contains("reset consumer offset to 3"),
            "{}",
            fail(0, "offset")
        );
        let cp = topic_rows(&out[1], bname);
        assert!(
            cp.len() == 4
                && cp
                    .iter()
                    .all(|c| c[4] == if c[2] == "0" { "3" } else { "0" }),
            "{}",
            fail(1, "queue 0 at 3, the others at 0")
        );
        for (i, o) in out.iter().enumerate() {
            no_exception(version, &cmds[i][0], o);
        }
    }
}

/// clusterRT loops until killed: run it in the background per version and
/// wait for its first row for our broker.
fn cluster_rt(cluster: &Cluster, javas: &[JavaClient]) {
    let ns = cluster.namesrv_addr.as_str();
    let cname = cluster.cluster_name.as_str();
    let bname = cluster.broker_name.as_str();
    for java in javas {
        let home = cluster.client_home(&format!("mqadmin-{}", java.version));
        let log = cluster
            .dir
            .path()
            .join(format!("clusterRT-{}.log", short(&java.version)));
        let mut proc = java.spawn(
            &home,
            "compat.AdminBatch",
            &["clusterRT", "-n", ns, "-a", "5", "-s", "64", "-i", "1"],
            log,
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = proc.log_text();
            let row = rows(&out)
                .into_iter()
                .find(|c| c.len() == 5 && c[0] == cname && c[1] == bname)
                .map(|c| c.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            if let Some(c) = row {
                let rt: f64 = c[2].parse().unwrap_or(-1.0);
                assert!(rt >= 0.0, "{} clusterRT RT column:\n{out}", java.version);
                assert_eq!(
                    c[3], "5",
                    "{} clusterRT success count:\n{out}",
                    java.version
                );
                assert_eq!(c[4], "0", "{} clusterRT fail count:\n{out}", java.version);
                no_exception(&java.version, "clusterRT", &out);
                break;
            }
            assert!(
                Instant::now() < deadline && proc.is_running(),
                "{} clusterRT printed no row for {bname}:\n{out}\n{}",
                java.version,
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        proc.stop(Duration::from_secs(2));
    }
}
