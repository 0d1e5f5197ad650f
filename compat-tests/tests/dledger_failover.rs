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
//!    members goes through a [`ProxyMesh`](compat_tests::ProxyMesh) proxy (each member's `dLegerPeers`
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

use std::time::{Duration, Instant};

use compat_tests::dledger_group::{Group, Node, Spec};
use compat_tests::{acked, check_acks, message_lines, request_body, serial, wait_until};
use dledger::LogIndex;
use remoting::code::request_code;

const TOPIC: &str = "DLedgerFailover";
/// The real topic of the timer messages, and how many.
const TIMER_TOPIC: &str = "DLedgerTimer";
const TIMERS: i64 = 20;
const CLUSTER: &str = "DLedgerCluster";
const BROKER_NAME: &str = "dl-broker";
/// DLedger data segment (= mappedFileSizeCommitLog): small, so entries roll
/// over file ends during the test.
const SEGMENT: u64 = 1024 * 1024;
/// How long each wait for more acknowledged sends may take.
const ACKS_WITHIN: Duration = Duration::from_secs(90);

/// A broker's GET_TIMER_CHECK_POINT answer: (lastReadTimeMs,
/// masterTimerQueueOffset).
fn timer_checkpoint(addr: &str) -> Option<(i64, i64)> {
    let b = request_body(addr, 60)?;
    let long = |at: usize| Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?));
    Some((long(0)?, long(24)?))
}

/// The low-water mark of a broker's `timerProgress.json`.
fn timer_progress(node: &Node) -> Option<i64> {
    let path = node.store().join("config").join("timerProgress.json");
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
    let mut g = Group::start(Spec {
        mesh: true,
        ours_extra: if java_timers {
            "dLegerJavaTimers=true\n".to_owned()
        } else {
            String::new()
        },
        ..Spec::new(CLUSTER, BROKER_NAME, SEGMENT)
    });
    let first = g.wait_formed("first election");
    eprintln!("first master n{first} after {:?}", started.elapsed());
    // mqadmin shows the group as Java's does: one master (BID 0), two slaves.
    let list = g.java.mqadmin(&g.home, &["clusterList", "-n", &g.ns.addr]);
    let rows: Vec<(String, String)> = list
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 3 && f[0] == CLUSTER && f[1] == BROKER_NAME)
        .map(|f| (f[2].to_owned(), f[3].to_owned()))
        .collect();
    let mut want: Vec<(String, String)> = (0..3)
        .map(|i| {
            let id = if i == first { 0 } else { i + 1 };
            (id.to_string(), g.nodes[i].addr.clone())
        })
        .collect();
    want.sort();
    let mut got = rows.clone();
    got.sort();
    assert_eq!(got, want, "clusterList:\n{list}");
    // The topic on the master; slave sync brings it to the others (Java's
    // DLedger slaves, like ours, take their topic table from the master).
    for topic in [TOPIC, TIMER_TOPIC] {
        g.create_topic(topic, first);
        g.wait_topic_everywhere(topic);
    }

    // Timer messages due 1 s after sending: the master delivers them all
    // (its checkpoint: every entry below TIMERS scanned, none pending), and
    // both slaves sync that checkpoint.
    let out = compat_tests::text(&g.java.run(
        &g.home,
        "compat.StoreDriver",
        &[
            "produce",
            &g.ns.addr,
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
        g.logs()
    );
    let due_by = remoting::body::now_millis() + 1000;
    for node in &g.nodes {
        wait_until(
            &format!(
                "n{} timer checkpoint: all {TIMERS} timer messages delivered",
                node.n
            ),
            Duration::from_secs(60),
            || timer_checkpoint(&node.addr).is_some_and(|(t, q)| t >= due_by && q >= TIMERS),
        );
    }

    let mut producer = g.produce_until(TOPIC, 240, None);
    let mut consumer = g.push_consumer(TOPIC, "dledger_failover_push", 300);
    g.wait_acks(&mut producer, 200, "200 acknowledged sends", ACKS_WITHIN);

    // Round 1: SIGKILL the master, restart it.
    let old = g.wait_master("before the kill", |_| true);
    let t0 = Instant::now();
    g.nodes[old].kill();
    let new = g.wait_master("after SIGKILL", |m| m != old);
    g.wait_acks(
        &mut producer,
        100,
        "100 sends acknowledged by the new master",
        ACKS_WITHIN,
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
        || timer_progress(&g.nodes[new]).is_some_and(|o| o >= TIMERS),
    );
    let out = g.dump(
        TIMER_TOPIC,
        "dledger_timer_check",
        60,
        Duration::from_secs(120),
    );
    let (timed, _) = message_lines(&out, "MSG");
    let keys: std::collections::BTreeSet<&str> = timed.values().map(|m| m[2].as_str()).collect();
    assert!(
        timed.len() == TIMERS as usize && keys.len() == TIMERS as usize,
        "{TIMERS} timer messages delivered once each, found {} ({} keys):\n{out}\n{}",
        timed.len(),
        keys.len(),
        g.logs()
    );
    g.nodes[old].start();
    g.wait_slave(old);
    g.wait_acks(
        &mut producer,
        100,
        "100 acknowledged sends with the killed broker back",
        ACKS_WITHIN,
    );

    if !java_timers {
        // Round 2: SIGSTOP the master, SIGCONT it.
        let old = new;
        let t0 = Instant::now();
        g.nodes[old].signal(libc::SIGSTOP);
        let new = g.wait_master("after SIGSTOP", |m| m != old);
        g.wait_acks(
            &mut producer,
            100,
            "100 sends acknowledged after SIGSTOP",
            ACKS_WITHIN,
        );
        eprintln!(
            "SIGSTOP n{old}: n{new} master and 100 acks after {:?}",
            t0.elapsed()
        );
        g.nodes[old].signal(libc::SIGCONT);
        g.wait_slave(old);
        g.wait_acks(
            &mut producer,
            100,
            "100 more acknowledged sends",
            ACKS_WITHIN,
        );

        // Round 3: cut the master off from its peers (it keeps its clients and
        // the name server), then heal.
        let mesh = g.mesh.as_ref().expect("proxy mesh");
        let old = g.wait_master("before the isolation", |_| true);
        let t0 = Instant::now();
        let acks_before = acked(&producer);
        mesh.isolate(old);
        let new = g.wait_master("after the isolation", |m| m != old);
        g.wait_slave(old);
        g.wait_acks(
            &mut producer,
            100,
            "100 sends acknowledged while the old master is isolated",
            ACKS_WITHIN,
        );
        let old_port = g.nodes[old]
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
        g.wait_acks(
            &mut producer,
            100,
            "100 acknowledged sends after healing",
            ACKS_WITHIN,
        );
        g.wait_slave(old);
    }

    // The push consumer, running through every failover, gets every
    // acknowledged message (redeliveries are counted, not failed).
    let (sent, _) = g.stop_and_wait_delivered(&mut producer, &mut consumer);

    let out = g.dump(
        TOPIC,
        "dledger_failover_check",
        90,
        Duration::from_secs(150),
    );
    assert!(out.contains("DUMPED "), "dump:\n{out}\n{}", g.logs());
    // Every acknowledged message at its queue offset with its ids and key,
    // no two acknowledgements at one (queue, offset).
    let check = check_acks(&sent, &out);
    eprintln!("{} acknowledged", check.acked);
    check.assert_ok("after the failovers", || g.logs());

    // Slave sync copies the push consumer's offsets to every member within a
    // few sync periods of the last failover (a member restarted just before
    // a master was stopped may still be waiting for the new master).
    let offset_key = format!("{TOPIC}@dledger_failover_push");
    for node in &g.nodes {
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
    let covers = |cps: &[Option<(LogIndex, LogIndex)>]| {
        cps.iter()
            .map(|c| c.map_or(LogIndex::NONE, |c| c.1))
            .min()
            .unwrap_or(LogIndex::NONE)
            .get()
            + 1
            >= check.acked as i64
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !covers(&g.checkpoints()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }

    // Stop the members (each writes its DLedger checkpoint on the way out),
    // then compare their logs up to the lowest committed index, which must
    // cover every acknowledged entry.
    g.stop_all();
    // ... and each persisted them on the way out.
    for node in &g.nodes {
        let f = node.store().join("config").join("consumerOffset.json");
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        assert!(
            text.contains(&offset_key),
            "n{} has no offsets of {offset_key}: {text}",
            node.n
        );
    }
    g.assert_same_committed_prefix(check.acked, |_| false);
    eprintln!("total {:?}", started.elapsed());
}
