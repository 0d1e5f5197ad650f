//! DLedger commit log with automatic failover (issue 8): three of our
//! brokers in one DLedger group (`enableDLegerCommitLog=true`) and our name
//! server. The official Java 5.3.3 producer (compat.StoreDriver
//! `produce-until`: sync sends, printing every acknowledged message) sends
//! the whole time while the test
//!
//! 1. SIGKILLs the master (the DLedger leader), waits until the name server
//!    routes another broker as master (id 0) and that master acknowledges
//!    sends, then restarts the killed broker and waits until it is a slave
//!    (id = selfId number + 1);
//! 2. SIGSTOPs the new master, waits for the next master and its
//!    acknowledgements, SIGCONTs it and waits until it is a slave again;
//! 3. isolates the master from its peers: every DLedger link between
//!    members goes through a [`ProxyMesh`] proxy (each member's `dLegerPeers`
//!    names the proxies of its outgoing links) and all links in and out of
//!    the master are blackholed. The isolated master must step down (the
//!    name server routes it as a slave) while the other two elect a master
//!    that acknowledges sends; sends the isolated one still acknowledged
//!    must not be lost (checked below with all the others). Then the links
//!    heal and it rejoins as a slave and catches up.
//!
//! Before round 1 the master delivers 5.x timer messages; the slaves sync its
//! timer checkpoint (GET_TIMER_CHECK_POINT), so the master after the kill
//! delivers none of them a second time.
//!
//! A push consumer (compat.FailoverConsumer) runs throughout and must receive
//! every acknowledged message (redeliveries are only counted). Then every
//! acknowledged message must be pulled back (pull consumer) at its
//! queue offset with its offset msgId and unique id, no two
//! acknowledgements may share a (queue, offset) (the shared invariant,
//! `compat_tests::invariant`; keys stored twice are only reported), and the
//! three DLedger data logs must hold byte-identical committed prefixes
//! covering at least every acknowledged entry.
//!
//! `dledger_group_at_java_timers_fails_over_on_sigkill` runs round 1 and
//! every check of the end with Java's DLedger timers on all three members
//! (`dLegerJavaTimers=true`: heartbeat 2 s, 3 missed heartbeats), so nothing
//! here relies on our fast default timers (issue 17).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use compat_tests::dledger_files::{checkpoint, same_committed_prefix};
use compat_tests::invariant::acked_keys;
use compat_tests::{
    acked, check_acks, cluster_info, free_broker_port, free_port, java_client, message_lines,
    request_body, serial, text, wait_delivered, wait_until, BrokerProcess, OurNamesrv, Proc,
    ProxyMesh, TEST_BROKER_KEYS,
};
use remoting::code::request_code;

const VERSION: &str = "5.3.3";
const TOPIC: &str = "DLedgerFailover";
/// The real topic of the timer messages, and how many.
const TIMER_TOPIC: &str = "DLedgerTimer";
const TIMERS: i64 = 20;
const CLUSTER: &str = "DLedgerCluster";
const BROKER_NAME: &str = "dl-broker";
/// DLedger data segment (= mappedFileSizeCommitLog): small, so entries roll
/// over file ends during the test.
const SEGMENT: u64 = 1024 * 1024;

struct Node {
    n: usize,
    addr: String,
    broker: BrokerProcess,
}

impl Node {
    fn logs(&self) -> String {
        self.broker.logs(60)
    }

    fn dledger_dir(&self) -> PathBuf {
        self.broker
            .dir
            .join("store")
            .join(format!("dledger-n{}", self.n))
    }
}

/// The broker ids the name server lists for the group: id → address.
fn route(ns: &str) -> BTreeMap<i64, String> {
    cluster_info(ns)
        .and_then(|info| info.broker_addr_table.get(BROKER_NAME).cloned())
        .map(|bd| bd.broker_addrs)
        .unwrap_or_default()
}

fn master(ns: &str) -> Option<String> {
    route(ns).get(&0).cloned()
}

/// A broker's GET_TIMER_CHECK_POINT answer: (lastReadTimeMs,
/// masterTimerQueueOffset).
fn timer_checkpoint(addr: &str) -> Option<(i64, i64)> {
    let b = request_body(addr, 60)?;
    let long = |at: usize| Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?));
    Some((long(0)?, long(24)?))
}

/// The low-water mark of a broker's `timerProgress.json`.
fn timer_progress(node: &Node) -> Option<i64> {
    let path = node
        .broker
        .dir
        .join("store")
        .join("config")
        .join("timerProgress.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v.get("commitOffset")?.as_i64()
}

/// The broker port in an `ACK` line's offsetMsgId (hex: 4-byte IP, 4-byte
/// port, 8-byte commit-log offset): which member stored it.
fn ack_port(line: &str) -> Option<u32> {
    let id = line.split_whitespace().nth(3)?;
    u32::from_str_radix(id.get(8..16)?, 16).ok()
}

#[test]
fn dledger_group_fails_over_without_losing_acknowledged_messages() {
    failover(false);
}

/// The same group at Java's DLedger timers (`dLegerJavaTimers=true`:
/// heartbeat 2 s, 3 missed heartbeats, votes 300–1000 ms), so nothing relies
/// on our fast ones (issue 17): the SIGKILL round only (with the timer
/// messages), then every check of the end.
#[test]
fn dledger_group_at_java_timers_fails_over_on_sigkill() {
    failover(true);
}

/// `java_timers`: every member runs Java's DLedger timers, and only round 1
/// runs.
fn failover(java_timers: bool) {
    let _serial = serial();
    let started = Instant::now();
    let ns = OurNamesrv::start();
    let java = java_client(VERSION).snapshot(ns.dir.path());
    let home = ns.client_home("java");
    let root = ns.dir.path().join("dledger");
    let dl_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mesh = ProxyMesh::start(
        &dl_ports
            .iter()
            .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect::<Vec<_>>(),
    )
    .expect("proxy mesh");
    // Member n's view: itself on its own port, every peer through the
    // proxy of the link n -> peer.
    let peers = |n: usize| {
        (0..3)
            .map(|i| {
                if i == n {
                    format!("n{i}-127.0.0.1:{}", dl_ports[i])
                } else {
                    format!("n{i}-{}", mesh.addr(n, i))
                }
            })
            .collect::<Vec<_>>()
            .join(";")
    };
    let mut nodes: Vec<Node> =
        (0..3)
            .map(|n| {
                let dir = root.join(format!("n{n}"));
                std::fs::create_dir_all(&dir).expect("node dir");
                let port = free_broker_port();
                std::fs::write(
                    dir.join("broker.conf"),
                    format!(
                    "brokerClusterName={CLUSTER}\nbrokerName={BROKER_NAME}\nlistenPort={port}\n\
                     namesrvAddr={ns}\nbrokerIP1=127.0.0.1\nbindAddress=127.0.0.1\n\
                     storePathRootDir={store}\nmappedFileSizeCommitLog={SEGMENT}\n\
                     mappedFileSizeConsumeQueue=6000\nmaxHashSlotNum=50000\nmaxIndexNum=200000\n\
                     {TEST_BROKER_KEYS}\
                     enableDLegerCommitLog=true\ndLegerGroup={BROKER_NAME}\n\
                     dLegerPeers={peers}\ndLegerSelfId=n{n}\n{timers}",
                    peers = peers(n),
                    timers = if java_timers { "dLegerJavaTimers=true\n" } else { "" },
                    ns = ns.addr,
                    store = dir.join("store").display(),
                ),
                )
                .expect("write broker.conf");
                Node {
                    n,
                    addr: format!("127.0.0.1:{port}"),
                    broker: BrokerProcess::new(&format!("n{n}"), dir),
                }
            })
            .collect();
    for node in &mut nodes {
        node.broker.start();
    }
    let all_logs = |nodes: &[Node]| nodes.iter().map(Node::logs).collect::<Vec<_>>().join("\n");
    let wait_master = |nodes: &[Node], not: Option<&str>, what: &str| -> usize {
        let mut found = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while found.is_none() {
            if let Some(m) = master(&ns.addr).filter(|m| Some(m.as_str()) != not) {
                found = nodes.iter().position(|n| n.addr == m);
            }
            if found.is_none() {
                assert!(
                    Instant::now() < deadline,
                    "no master ({what}); route {:?}\n{}",
                    route(&ns.addr),
                    all_logs(nodes)
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        found.unwrap_or_default()
    };
    let wait_slave = |nodes: &[Node], i: usize| {
        let id = i as i64 + 1;
        let deadline = Instant::now() + Duration::from_secs(60);
        while route(&ns.addr).get(&id) != Some(&nodes[i].addr) {
            assert!(
                Instant::now() < deadline,
                "n{i} never registered as slave {id}; route {:?}\n{}",
                route(&ns.addr),
                all_logs(nodes)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let first = wait_master(&nodes, None, "first election");
    for i in (0..3).filter(|i| *i != first) {
        wait_slave(&nodes, i);
    }
    eprintln!("first master n{first} after {:?}", started.elapsed());
    // mqadmin shows the group as Java's does: one master (BID 0), two slaves.
    let list = java.mqadmin(&home, &["clusterList", "-n", &ns.addr]);
    let rows: Vec<(String, String)> = list
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 3 && f[0] == CLUSTER && f[1] == BROKER_NAME)
        .map(|f| (f[2].to_owned(), f[3].to_owned()))
        .collect();
    let mut want: Vec<(String, String)> = (0..3)
        .map(|i| {
            let id = if i == first { 0 } else { i + 1 };
            (id.to_string(), nodes[i].addr.clone())
        })
        .collect();
    want.sort();
    let mut got = rows.clone();
    got.sort();
    assert_eq!(got, want, "clusterList:\n{list}");
    // The topic on the master; slave sync brings it to the others (Java's
    // DLedger slaves, like ours, take their topic table from the master).
    for topic in [TOPIC, TIMER_TOPIC] {
        if let Err(e) = java.update_topic_on_broker(&home, &ns.addr, topic, 4, &nodes[first].addr) {
            panic!(
                "updateTopic {topic} on the master {}: {e}\n{}",
                nodes[first].addr,
                all_logs(&nodes)
            );
        }
        for node in &nodes {
            wait_until(
                &format!("n{} holds topic {topic}", node.n),
                Duration::from_secs(40),
                || {
                    request_body(&node.addr, request_code::GET_ALL_TOPIC_CONFIG).is_some_and(|b| {
                        String::from_utf8_lossy(&b).contains(&format!("\"{topic}\""))
                    })
                },
            );
        }
    }

    // Timer messages due 1 s after sending: the master delivers them all
    // (its checkpoint: every entry below TIMERS scanned, none pending), and
    // both slaves sync that checkpoint.
    let out = text(&java.run(
        &home,
        "compat.StoreDriver",
        &[
            "produce",
            &ns.addr,
            TIMER_TOPIC,
            &TIMERS.to_string(),
            "0",
            "1000",
        ],
        Duration::from_secs(120),
    ));
    assert!(
        out.contains(&format!("DONE acked={TIMERS}")),
        "timer sends:\n{out}\n{}",
        all_logs(&nodes)
    );
    let due_by = remoting::body::now_millis() + 1000;
    for node in &nodes {
        wait_until(
            &format!(
                "n{} timer checkpoint: all {TIMERS} timer messages delivered",
                node.n
            ),
            Duration::from_secs(60),
            || timer_checkpoint(&node.addr).is_some_and(|(t, q)| t >= due_by && q >= TIMERS),
        );
    }

    let mut producer = java.spawn(
        &home,
        "compat.StoreDriver",
        &["produce-until", &ns.addr, TOPIC, "240"],
        ns.dir.path().join("producer.out"),
    );
    let mut consumer = java.spawn(
        &home,
        "compat.FailoverConsumer",
        &[&ns.addr, TOPIC, "dledger_failover_push", "300"],
        ns.dir.path().join("consumer.out"),
    );
    let wait_acks = |producer: &mut Proc, more: usize, what: &str| {
        let target = acked(producer) + more;
        wait_until(what, Duration::from_secs(90), || {
            assert!(
                producer.is_running(),
                "producer exited:\n{}",
                producer.log_text()
            );
            acked(producer) >= target
        });
    };
    wait_acks(&mut producer, 200, "200 acknowledged sends");

    // Round 1: SIGKILL the master, restart it.
    let old = wait_master(&nodes, None, "before the kill");
    let t0 = Instant::now();
    nodes[old].broker.kill();
    let new = wait_master(&nodes, Some(&nodes[old].addr.clone()), "after SIGKILL");
    wait_acks(
        &mut producer,
        100,
        "100 sends acknowledged by the new master",
    );
    eprintln!(
        "SIGKILL n{old}: n{new} master and 100 acks after {:?}",
        t0.elapsed()
    );
    // The new master's timer scan passes the timer messages (deliveries
    // come before the progress is written) without delivering them again.
    wait_until(
        &format!("n{new} timer progress past the timer messages"),
        Duration::from_secs(60),
        || timer_progress(&nodes[new]).is_some_and(|o| o >= TIMERS),
    );
    let out = text(&java.run(
        &home,
        "compat.StoreDriver",
        &["dump", &ns.addr, TIMER_TOPIC, "dledger_timer_check", "60"],
        Duration::from_secs(120),
    ));
    let (timed, _) = message_lines(&out, "MSG");
    let keys: std::collections::BTreeSet<&str> = timed.values().map(|m| m[2].as_str()).collect();
    assert!(
        timed.len() == TIMERS as usize && keys.len() == TIMERS as usize,
        "{TIMERS} timer messages delivered once each, found {} ({} keys):\n{out}\n{}",
        timed.len(),
        keys.len(),
        all_logs(&nodes)
    );
    nodes[old].broker.start();
    wait_slave(&nodes, old);
    wait_acks(
        &mut producer,
        100,
        "100 acknowledged sends with the killed broker back",
    );

    if !java_timers {
        // Round 2: SIGSTOP the master, SIGCONT it.
        let old = new;
        let t0 = Instant::now();
        nodes[old].broker.signal(libc::SIGSTOP);
        let new = wait_master(&nodes, Some(&nodes[old].addr.clone()), "after SIGSTOP");
        wait_acks(&mut producer, 100, "100 sends acknowledged after SIGSTOP");
        eprintln!(
            "SIGSTOP n{old}: n{new} master and 100 acks after {:?}",
            t0.elapsed()
        );
        nodes[old].broker.signal(libc::SIGCONT);
        wait_slave(&nodes, old);
        wait_acks(&mut producer, 100, "100 more acknowledged sends");

        // Round 3: cut the master off from its peers (it keeps its clients and
        // the name server), then heal.
        let old = wait_master(&nodes, None, "before the isolation");
        let t0 = Instant::now();
        let acks_before = acked(&producer);
        mesh.isolate(old);
        let new = wait_master(
            &nodes,
            Some(&nodes[old].addr.clone()),
            "after the isolation",
        );
        wait_slave(&nodes, old);
        wait_acks(
            &mut producer,
            100,
            "100 sends acknowledged while the old master is isolated",
        );
        let old_port = nodes[old]
            .addr
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        let by_isolated = producer
            .log_text()
            .lines()
            .filter(|l| l.starts_with("ACK "))
            .skip(acks_before)
            .filter(|l| ack_port(l).is_some_and(|p| p.to_string() == old_port))
            .count();
        eprintln!(
            "isolated n{old}: n{new} master and 100 acks after {:?}; {by_isolated} sends acknowledged \
             by n{old} after the cut (checked below like every other)",
            t0.elapsed()
        );
        mesh.heal();
        wait_acks(&mut producer, 100, "100 acknowledged sends after healing");
        wait_slave(&nodes, old);
    }

    producer.stop(Duration::from_secs(10));
    let sent = producer.log_text();
    let errors = sent.lines().filter(|l| l.starts_with("ERR ")).count();

    // The push consumer, running through every failover, gets every
    // acknowledged message (redeliveries are counted, not failed).
    let acked_keys = acked_keys(&sent);
    let delivered = wait_delivered(&mut consumer, &acked_keys, Duration::from_secs(120), || {
        all_logs(&nodes)
    });
    consumer.stop(Duration::from_secs(10));
    let redelivered: usize = delivered.values().map(|c| c - 1).sum();
    eprintln!(
        "push consumer: all {} acknowledged messages delivered; {} deliveries, {redelivered} redeliveries",
        acked_keys.len(),
        delivered.values().sum::<usize>()
    );

    let out = text(&java.run(
        &home,
        "compat.StoreDriver",
        &["dump", &ns.addr, TOPIC, "dledger_failover_check", "90"],
        Duration::from_secs(150),
    ));
    assert!(
        out.contains("DUMPED "),
        "dump:\n{out}\n{}",
        all_logs(&nodes)
    );
    // Every acknowledged message at its queue offset with its ids and key,
    // no two acknowledgements at one (queue, offset).
    let check = check_acks(&sent, &out);
    eprintln!("{} acknowledged, {errors} failed sends", check.acked);
    check.assert_ok("after the failovers", || all_logs(&nodes));

    // Slave sync copies the push consumer's offsets to every member within a
    // few sync periods of the last failover (a member restarted just before
    // a master was stopped may still be waiting for the new master).
    let offset_key = format!("{TOPIC}@dledger_failover_push");
    for node in &nodes {
        wait_until(
            &format!("n{} holds the offsets of {offset_key}", node.n),
            Duration::from_secs(40),
            || {
                request_body(&node.addr, request_code::GET_ALL_CONSUMER_OFFSET)
                    .is_some_and(|b| String::from_utf8_lossy(&b).contains(&offset_key))
            },
        );
    }

    // Every member must hold every acknowledged entry before it is stopped:
    // a follower that was paused or restarted late may still be catching up
    // (each persists its checkpoint every 3 s while running). Wait, bounded.
    let covers = |cps: &[Option<(i64, i64)>]| {
        cps.iter()
            .map(|c| c.map_or(-1, |c| c.1))
            .min()
            .unwrap_or(-1)
            + 1
            >= check.acked as i64
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !covers(
        &nodes
            .iter()
            .map(|n| checkpoint(&n.dledger_dir()))
            .collect::<Vec<_>>(),
    ) && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(500));
    }

    // Stop the members (each writes its DLedger checkpoint on the way out),
    // then compare their logs up to the lowest committed index, which must
    // cover every acknowledged entry.
    for node in &mut nodes {
        if let Err(e) = node.broker.stop_cleanly(Duration::from_secs(20)) {
            panic!("{e}\n{}", node.logs());
        }
    }
    // ... and each persisted them on the way out.
    for node in &nodes {
        let f = node
            .broker
            .dir
            .join("store")
            .join("config")
            .join("consumerOffset.json");
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        assert!(
            text.contains(&offset_key),
            "n{} has no offsets of {offset_key}: {text}",
            node.n
        );
    }
    let cps: Vec<Option<(i64, i64)>> = nodes.iter().map(|n| checkpoint(&n.dledger_dir())).collect();
    eprintln!("checkpoints (endIndex, committedIndex): {cps:?}");
    let committed = cps
        .iter()
        .map(|c| c.map_or(-1, |c| c.1))
        .min()
        .unwrap_or(-1);
    assert!(
        committed + 1 >= check.acked as i64,
        "checkpoints {cps:?} do not cover {} acknowledged entries\n{}",
        check.acked,
        all_logs(&nodes)
    );
    let dirs: Vec<PathBuf> = nodes.iter().map(Node::dledger_dir).collect();
    let end = same_committed_prefix(&dirs, committed).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "committed prefix: {} entries, {end} bytes, identical on all three; total {:?}",
        committed + 1,
        started.elapsed()
    );
}
