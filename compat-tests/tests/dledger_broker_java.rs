//! Mixed DLedger broker groups (issue 8): the official Java broker 5.3.3
//! (`enableDLegerCommitLog=true`) and ours in one group, registered with our
//! name server, in both compositions: Java n0 with ours n1, n2, and Java n0,
//! n1 with ours n2. The official Java 5.3.3 producer (compat.StoreDriver
//! `produce-until`, sync sends) sends the whole time and a push consumer
//! (compat.FailoverConsumer) consumes while the test
//!
//! 1. hands DLedger leadership to one of ours (LEADERSHIP_TRANSFER on the
//!    DLedger port) and waits until the name server routes it as master
//!    (id 0) and it acknowledges sends: the Java members replicate our
//!    entries;
//! 2. hands leadership to a Java member: it becomes master on entries our
//!    leader wrote (its consume queues are built from them) and acknowledges
//!    sends; ours replicate Java's entries;
//! 3. SIGKILLs that Java master: another member takes over and acknowledges
//!    sends; then restarts it: it comes back as slave (id = selfId number +
//!    1) and catches up;
//! 4. pulls every acknowledged message back (at its queue offset, with its
//!    ids; no two acknowledgements at one (queue, offset): the shared
//!    invariant, `compat_tests::invariant`) through the current master, then
//!    hands leadership to a member of the other kind and pulls them all back
//!    through it too.
//!
//! The push consumer must have every acknowledged message (redeliveries
//! only counted), and the three DLedger data logs must hold byte-identical
//! committed prefixes covering every acknowledged entry.
//!
//! Formerly tolerated (6 of 11 runs of the one-Java group before
//! 2026-11-26, none in 7 runs of both groups on 2026-11-26): after the
//! SIGKILLed Java leader restarted and rejoined, its consume queue did not
//! serve one or two acknowledged messages (a slot pointing at a record that
//! is not its queue offset). Seen then: (a) the slot pointed at a record
//! of another queue (its rebuilt index file showed a stale uncommitted
//! entry dispatched after the restart, later replaced in its DLedger log);
//! (b) the slot of the last committed entry of its checkpoint was missing
//! and the later slots of that queue shifted by one (its recovery
//! re-dispatched from offset 0 with "build consume queue repeatedly"
//! warnings). The check is strict; a message missing through
//! a Java master is reported with what its consume-queue slot holds
//! ([`phantom_slot`]).
//!
//! DLedger timers: Java's broker passes no timer keys to DLedger (its
//! `DLedgerCommitLog` sets only selfId, group, peers, store paths, file
//! size, deleteWhen, fileReservedTime, preferredLeaderId, enableBatchPush and
//! disk ratios), so every member runs DLedger's defaults (heartbeat 2000 ms,
//! 3 missed heartbeats, votes 300–1000 ms); our members get the same values
//! through DLedger's keys in their broker.conf (our default timers are
//! shorter, and a group must run one set of timers).
//!
//! Run: `cargo build --release --bins && cargo test --release -p compat-tests --test dledger_broker_java -- --nocapture`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use compat_tests::dledger_files::{checkpoint, data_log, same_committed_prefix};
use compat_tests::invariant::acked_keys;
use compat_tests::{
    acked, check_acks, cluster_info, dledger_term, free_broker_port, free_port, java_client,
    serial, text, wait_delivered, BrokerProcess, JavaBroker, JavaClient, OurNamesrv, Proc,
    TEST_BROKER_KEYS,
};
use dledger::server::DLedgerClient;

const VERSION: &str = "5.3.3";
const TOPIC: &str = "DLedgerMixed";
const CLUSTER: &str = "DLedgerMixedCluster";
const GROUP: &str = "dl-mixed";
/// DLedger data segment (= mappedFileSizeCommitLog), the same on every
/// member (a follower's entry must land at the leader's position).
const SEGMENT: u64 = 1024 * 1024;

enum Kind {
    Java(JavaBroker),
    Ours(BrokerProcess),
}

struct Node {
    n: usize,
    addr: String,
    kind: Kind,
}

impl Node {
    fn id(&self) -> String {
        format!("n{}", self.n)
    }

    fn store(&self) -> PathBuf {
        match &self.kind {
            Kind::Java(b) => b.dir.path().join("store"),
            Kind::Ours(b) => b.dir.join("store"),
        }
    }

    fn dledger_dir(&self) -> PathBuf {
        self.store().join(format!("dledger-n{}", self.n))
    }

    fn pid(&self) -> Option<u32> {
        match &self.kind {
            Kind::Java(b) => Some(b.proc.pid()),
            Kind::Ours(b) => b.pid(),
        }
    }

    fn kill(&mut self) {
        match &mut self.kind {
            Kind::Java(b) => {
                b.proc.signal(libc::SIGKILL);
                b.proc.stop(Duration::from_secs(10));
            }
            Kind::Ours(b) => b.kill(),
        }
    }

    /// SIGTERM; each member writes its DLedger checkpoint on the way out.
    fn stop(&mut self) {
        match &mut self.kind {
            // The JVM exits with 143 after its shutdown hooks.
            Kind::Java(b) => {
                b.proc.stop(Duration::from_secs(30));
            }
            Kind::Ours(b) => {
                if let Err(e) = b.stop_cleanly(Duration::from_secs(20)) {
                    panic!("{e}\n{}", self.logs());
                }
            }
        }
    }

    fn logs(&self) -> String {
        match &self.kind {
            Kind::Java(b) => format!("===== n{} (Java) =====\n{}", self.n, b.logs()),
            Kind::Ours(b) => b.logs(80),
        }
    }
}

struct Group {
    ns: OurNamesrv,
    java: JavaClient,
    home: PathBuf,
    nodes: Vec<Node>,
    peers: String,
    rt: tokio::runtime::Runtime,
}

impl Group {
    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(Node::logs)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Broker id → address as the name server routes the group.
    fn route(&self) -> BTreeMap<i64, String> {
        cluster_info(&self.ns.addr)
            .and_then(|info| info.broker_addr_table.get(GROUP).cloned())
            .map(|bd| bd.broker_addrs)
            .unwrap_or_default()
    }

    fn master(&self) -> Option<usize> {
        let m = self.route().get(&0).cloned()?;
        self.nodes.iter().position(|n| n.addr == m)
    }

    /// Waits until the name server routes a master accepted by `ok`.
    fn wait_master(&self, what: &str, ok: impl Fn(usize) -> bool) -> usize {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(m) = self.master().filter(|m| ok(*m)) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no master ({what}); route {:?}\n{}",
                self.route(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until node `i` is routed as slave `i + 1` (selfId number + 1).
    fn wait_slave(&self, i: usize) {
        let id = i as i64 + 1;
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.route().get(&id) != Some(&self.nodes[i].addr) {
            assert!(
                Instant::now() < deadline,
                "n{i} never registered as slave {id}; route {:?}\n{}",
                self.route(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The DLedger leader every reachable member names.
    fn dledger_leader(&self) -> Option<usize> {
        let client = DLedgerClient::new(GROUP, &self.peers).expect("client");
        let views: Vec<Option<String>> = self
            .nodes
            .iter()
            .filter(|n| n.pid().is_some())
            .map(|n| {
                self.rt
                    .block_on(client.metadata(&n.id()))
                    .and_then(|m| m.base.leader_id)
            })
            .collect();
        let first = views.first()?.clone()?;
        if views.iter().all(|v| v.as_deref() == Some(first.as_str())) {
            self.nodes.iter().position(|n| n.id() == first)
        } else {
            None
        }
    }

    /// The current term of node `i`, read without side effects: a heartbeat
    /// claiming term 0 from another member is answered 403 with the term.
    fn term_of(&self, i: usize) -> Option<i64> {
        let other = self.nodes[(i + 1) % self.nodes.len()].id();
        let addr = self
            .peers
            .split(';')
            .nth(i)
            .and_then(|p| p.split_once('-'))
            .map(|(_, a)| a.to_owned())?;
        dledger_term(&self.rt, addr, GROUP, self.nodes[i].id(), other)
    }

    /// Hands DLedger leadership to `to` (LEADERSHIP_TRANSFER to the current
    /// leader, retried: DLedger's transfer is best effort) and waits until
    /// the name server routes `to` as master.
    fn transfer(&self, to: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let client = DLedgerClient::new(GROUP, &self.peers).expect("client");
        let mut attempts = Vec::new();
        loop {
            match self.dledger_leader() {
                Some(l) if l == to => break,
                Some(l) => {
                    let term = self.term_of(l).unwrap_or(-1);
                    let r = self.rt.block_on(client.leadership_transfer(
                        &self.nodes[l].id(),
                        &self.nodes[to].id(),
                        term,
                    ));
                    attempts.push(format!("n{l}->n{to} term {term}: {}", r.base.code));
                    if r.base.code == 200 {
                        let until = Instant::now() + Duration::from_secs(10);
                        while Instant::now() < until && self.dledger_leader() != Some(to) {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        continue;
                    }
                }
                None => {}
            }
            assert!(
                Instant::now() < deadline,
                "no transfer to n{to}: {attempts:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!("leadership to n{to}: {attempts:?}");
        self.wait_master(&format!("n{to} after the transfer"), |m| m == to);
    }

    /// With `DLEDGER_MIXED_KEEP=<dir>` set, copies every member's store and
    /// logs there (for a post-mortem; the test dirs are deleted).
    fn keep(&self) {
        let Ok(to) = std::env::var("DLEDGER_MIXED_KEEP") else {
            return;
        };
        for n in &self.nodes {
            let dest = Path::new(&to).join(format!("n{}", n.n));
            let _ = std::fs::create_dir_all(&dest);
            let logs = match &n.kind {
                Kind::Java(b) => b.dir.path().join("home").join("logs"),
                Kind::Ours(b) => b.dir.clone(),
            };
            let _ = Command::new("cp")
                .arg("-r")
                .arg(n.store())
                .arg(logs)
                .arg(&dest)
                .status();
        }
        eprintln!("stores copied to {to}");
    }

    /// Pulls every queue of the topic through the current master.
    fn dump(&self, group: &str) -> Output {
        self.java.run(
            &self.home,
            "compat.StoreDriver",
            &["dump", &self.ns.addr, TOPIC, group, "90"],
            Duration::from_secs(150),
        )
    }
}

/// Slot `offset` of consume queue `queue` of the topic in `store`:
/// (commit-log offset, size) (20-byte records, files in offset order).
fn cq_slot(store: &Path, queue: i32, offset: i64) -> Option<(i64, i32)> {
    let dir = store
        .join("consumequeue")
        .join(TOPIC)
        .join(queue.to_string());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let mut all = Vec::new();
    for f in files {
        all.extend(std::fs::read(f).ok()?);
    }
    let at = usize::try_from(offset).ok()? * 20;
    let r = all.get(at..at + 20)?;
    Some((
        i64::from_be_bytes(r[0..8].try_into().ok()?),
        i32::from_be_bytes(r[8..12].try_into().ok()?),
    ))
}

/// The formerly known issue (module documentation): slot (queue, offset)
/// of the consume queue in `store` points at a record of the DLedger data
/// log `log` (commit-log offset = entry pos + 48) that is not (queue,
/// offset). Returns a description, or None if the slot is fine.
fn phantom_slot(store: &Path, log: &[u8], queue: i32, offset: i64) -> Option<String> {
    let (phys, size) = cq_slot(store, queue, offset)?;
    let at = usize::try_from(phys).ok()?;
    let rec = log.get(at..at + 28)?;
    let q = i32::from_be_bytes(rec[12..16].try_into().ok()?);
    let o = i64::from_be_bytes(rec[20..28].try_into().ok()?);
    ((q, o) != (queue, offset)).then(|| {
        format!("slot -> commit-log offset {phys} size {size}, which holds queue {q} offset {o}")
    })
}

#[test]
fn one_java_broker_and_two_of_ours_elect_replicate_and_fail_over() {
    mixed_group([true, false, false]);
}

#[test]
fn two_java_brokers_and_one_of_ours_elect_replicate_and_fail_over() {
    mixed_group([true, true, false]);
}

/// The scenario of the module documentation; `java[n]`: member n is Java's.
fn mixed_group(java: [bool; 3]) {
    let _serial = serial();
    let started = Instant::now();
    let ns = OurNamesrv::start();
    let client = java_client(VERSION).snapshot(ns.dir.path());
    let home = ns.client_home("java");
    let root = ns.dir.path().join("dledger");
    let dl_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peers = dl_ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("n{i}-127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(";");
    let dledger_keys = |n: usize| {
        format!(
            "brokerClusterName={CLUSTER}\nbrokerName={GROUP}\nmappedFileSizeCommitLog={SEGMENT}\n\
             mappedFileSizeConsumeQueue=6000\nenableDLegerCommitLog=true\ndLegerGroup={GROUP}\n\
             dLegerPeers={peers}\ndLegerSelfId=n{n}\n"
        )
    };
    let mut nodes = Vec::new();
    for (n, is_java) in java.iter().enumerate() {
        if *is_java {
            let jb = JavaBroker::launch(VERSION, &ns.addr, &dledger_keys(n));
            assert_eq!(jb.broker_name, GROUP);
            nodes.push(Node {
                n,
                addr: jb.addr.clone(),
                kind: Kind::Java(jb),
            });
            continue;
        }
        let dir = root.join(format!("n{n}"));
        std::fs::create_dir_all(&dir).expect("node dir");
        let port = free_broker_port();
        std::fs::write(
            dir.join("broker.conf"),
            format!(
                "listenPort={port}\nnamesrvAddr={ns}\nbrokerIP1=127.0.0.1\nbindAddress=127.0.0.1\n\
                 storePathRootDir={store}\nmaxHashSlotNum=50000\nmaxIndexNum=200000\n\
                 {TEST_BROKER_KEYS}{keys}\
                 heartBeatTimeIntervalMs=2000\nmaxHeartBeatLeak=3\nminVoteIntervalMs=300\n\
                 maxVoteIntervalMs=1000\n",
                ns = ns.addr,
                store = dir.join("store").display(),
                keys = dledger_keys(n),
            ),
        )
        .expect("write broker.conf");
        let mut node = Node {
            n,
            addr: format!("127.0.0.1:{port}"),
            kind: Kind::Ours(BrokerProcess::new(&format!("n{n}"), dir)),
        };
        if let Kind::Ours(b) = &mut node.kind {
            b.start();
        }
        nodes.push(node);
    }
    let mut g = Group {
        ns,
        java: client,
        home,
        nodes,
        peers,
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime"),
    };
    let kind = |i: usize| if java[i] { "Java" } else { "ours" };

    let first = g.wait_master("first election", |_| true);
    for i in (0..3).filter(|i| *i != first) {
        g.wait_slave(i);
    }
    eprintln!(
        "first master n{first} ({}) after {:?}",
        kind(first),
        started.elapsed()
    );
    // The topic on every member, Java's included.
    for node in &g.nodes {
        if let Err(e) = g
            .java
            .update_topic_on_broker(&g.home, &g.ns.addr, TOPIC, 4, &node.addr)
        {
            panic!(
                "updateTopic on n{} {}: {e}\n{}",
                node.n,
                node.addr,
                g.logs()
            );
        }
    }

    let mut producer = g.java.spawn(
        &g.home,
        "compat.StoreDriver",
        &["produce-until", &g.ns.addr, TOPIC, "300"],
        g.ns.dir.path().join("producer.out"),
    );
    let mut consumer = g.java.spawn(
        &g.home,
        "compat.FailoverConsumer",
        &[&g.ns.addr, TOPIC, "dledger_mixed_push", "360"],
        g.ns.dir.path().join("consumer.out"),
    );
    let wait_acks = |g: &Group, producer: &mut Proc, more: usize, what: &str| {
        let target = acked(producer) + more;
        let deadline = Instant::now() + Duration::from_secs(90);
        while acked(producer) < target {
            assert!(
                producer.is_running() && Instant::now() < deadline,
                "{what}: {} of {target} acknowledged\n{}\n{}",
                acked(producer),
                producer
                    .log_text()
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .join("\n"),
                g.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_acks(&g, &mut producer, 100, "first 100 sends");

    // 1. One of ours leads; the Java members follow our entries.
    let ours = if java[first] {
        java.iter().position(|j| !j).unwrap_or_default()
    } else {
        first
    };
    g.transfer(ours);
    wait_acks(&g, &mut producer, 150, "sends acknowledged by our master");
    eprintln!(
        "n{ours} (ours) master and acknowledging after {:?}",
        started.elapsed()
    );

    // 2. A Java member leads on top of our entries; ours follow Java's.
    let jl = java.iter().position(|j| *j).unwrap_or_default();
    g.transfer(jl);
    wait_acks(
        &g,
        &mut producer,
        150,
        "sends acknowledged by the Java master",
    );
    eprintln!(
        "n{jl} (Java) master and acknowledging after {:?}",
        started.elapsed()
    );

    // 3. SIGKILL the Java master: another member takes over; the killed one
    // comes back as a slave.
    // (Leadership may have moved on its own since: hand it back first.)
    g.transfer(jl);
    let t0 = Instant::now();
    g.nodes[jl].kill();
    let new = g.wait_master("after SIGKILL of the Java master", |m| m != jl);
    wait_acks(
        &g,
        &mut producer,
        100,
        "sends acknowledged after the failover",
    );
    eprintln!(
        "SIGKILL n{jl}: n{new} ({}) master and 100 acks after {:?}",
        kind(new),
        t0.elapsed()
    );
    if let Kind::Java(b) = &mut g.nodes[jl].kind {
        b.restart();
    }
    g.wait_slave(jl);
    wait_acks(&g, &mut producer, 100, "sends acknowledged with n{jl} back");
    producer.stop(Duration::from_secs(10));
    let sent = producer.log_text();
    let errors = sent.lines().filter(|l| l.starts_with("ERR ")).count();

    // The push consumer gets every acknowledged message.
    let acked_keys = acked_keys(&sent);
    let delivered = wait_delivered(&mut consumer, &acked_keys, Duration::from_secs(120), || {
        g.logs()
    });
    consumer.stop(Duration::from_secs(10));
    let redelivered: usize = delivered.values().map(|c| c - 1).sum();
    eprintln!(
        "{} acknowledged ({errors} failed sends); push consumer got them all, \
         {redelivered} redeliveries",
        acked_keys.len()
    );

    // 4. Every acknowledged message pulled back through the current master,
    // then through a master of the other kind (a Java one has caught up on
    // what ours wrote while it was down).
    let m = g.wait_master("before the checks", |_| true);
    let other = if java[m] {
        java.iter().position(|j| !j).unwrap_or_default()
    } else {
        jl
    };
    for (step, master) in [(0, m), (1, other)] {
        if step == 1 {
            g.transfer(master);
        }
        let out = text(&g.dump(&format!("dledger_mixed_check_{step}")));
        // The shared invariant: every acknowledged message at its offset
        // with its ids, no two acknowledgements at one (queue, offset).
        let check = check_acks(&sent, &out);
        let missing = &check.unreadable;
        // A missing message through a Java master: what its consume-queue
        // slot holds (the formerly known issue, module documentation).
        let mut slots = Vec::new();
        if !missing.is_empty() {
            g.keep();
            if java[master] {
                let log = data_log(&g.nodes[master].dledger_dir());
                for (q, o, what) in missing.iter().take(20) {
                    if let Some(p) = phantom_slot(&g.nodes[master].store(), &log, *q, *o) {
                        slots.push(format!("{what}: {p}"));
                    }
                }
            }
        }
        assert!(
            check.ok(),
            "through master n{master} ({}): {}\n{}\
             consume-queue slots pointing at other entries:\n{}\n{out}\n{}",
            kind(master),
            check.summary(),
            check.failure(),
            slots.join("\n"),
            g.logs()
        );
        eprintln!(
            "through master n{master} ({}): all {} acknowledged messages served; {}",
            kind(master),
            check.acked,
            check.summary()
        );
    }

    // The same committed prefix on all three, covering every acknowledged
    // entry.
    for node in &mut g.nodes {
        node.stop();
    }
    let cps: Vec<Option<(i64, i64)>> = g
        .nodes
        .iter()
        .map(|n| checkpoint(&n.dledger_dir()))
        .collect();
    eprintln!("checkpoints (endIndex, committedIndex): {cps:?}");
    // Java's DLedger store rewrites its checkpoint every few seconds by
    // deleting it and renaming a new one in; a Java member that left none
    // (seen once, stopped with SIGTERM) is compared on the others'
    // committed prefix.
    for (i, cp) in cps.iter().enumerate() {
        assert!(
            cp.is_some() || java[i],
            "n{i} (ours) wrote no DLedger checkpoint"
        );
    }
    let committed = cps.iter().flatten().map(|c| c.1).min().unwrap_or(-1);
    assert!(
        committed + 1 >= acked_keys.len() as i64,
        "checkpoints {cps:?} do not cover {} acknowledged entries\n{}",
        acked_keys.len(),
        g.logs()
    );
    let dirs: Vec<PathBuf> = g.nodes.iter().map(Node::dledger_dir).collect();
    let end = same_committed_prefix(&dirs, committed).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "committed prefix: {} entries, {end} bytes, identical on all three; total {:?}",
        committed + 1,
        started.elapsed()
    );
}
