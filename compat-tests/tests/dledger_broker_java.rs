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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use compat_tests::dledger_files::data_log;
use compat_tests::dledger_group::{Group, Kind, Spec};
use compat_tests::{check_acks, serial};

const TOPIC: &str = "DLedgerMixed";
/// How long each wait for more acknowledged sends may take.
const ACKS_WITHIN: Duration = Duration::from_secs(90);

/// With `DLEDGER_MIXED_KEEP=<dir>` set, copies every member's store and
/// logs there (for a post-mortem; the test dirs are deleted).
fn keep(g: &Group) {
    let Ok(to) = std::env::var("DLEDGER_MIXED_KEEP") else {
        return;
    };
    for n in &g.nodes {
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
    // DLedger data segment (= mappedFileSizeCommitLog) 1 MiB on every
    // member; ours on DLedger's default timers, as Java's members.
    let mut g = Group::start(Spec {
        java,
        ours_extra: "heartBeatTimeIntervalMs=2000\nmaxHeartBeatLeak=3\nminVoteIntervalMs=300\n\
                     maxVoteIntervalMs=1000\n"
            .to_owned(),
        master_timeout: Duration::from_secs(90),
        slave_timeout: Duration::from_secs(120),
        log_lines: 80,
        ..Spec::new("DLedgerMixedCluster", "dl-mixed", 1024 * 1024)
    });
    let kind = |i: usize| if java[i] { "Java" } else { "ours" };

    let first = g.wait_formed("first election");
    eprintln!(
        "first master n{first} ({}) after {:?}",
        kind(first),
        started.elapsed()
    );
    // The topic on every member, Java's included.
    for i in 0..g.nodes.len() {
        g.create_topic(TOPIC, i);
    }

    let mut producer = g.produce_until(TOPIC, 300, None);
    let mut consumer = g.push_consumer(TOPIC, "dledger_mixed_push", 360);
    g.wait_acks(&mut producer, 100, "first 100 sends", ACKS_WITHIN);

    // 1. One of ours leads; the Java members follow our entries.
    let ours = if java[first] {
        java.iter().position(|j| !j).unwrap_or_default()
    } else {
        first
    };
    g.transfer(ours);
    g.wait_acks(
        &mut producer,
        150,
        "sends acknowledged by our master",
        ACKS_WITHIN,
    );
    eprintln!(
        "n{ours} (ours) master and acknowledging after {:?}",
        started.elapsed()
    );

    // 2. A Java member leads on top of our entries; ours follow Java's.
    let jl = java.iter().position(|j| *j).unwrap_or_default();
    g.transfer(jl);
    g.wait_acks(
        &mut producer,
        150,
        "sends acknowledged by the Java master",
        ACKS_WITHIN,
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
    g.wait_acks(
        &mut producer,
        100,
        "sends acknowledged after the failover",
        ACKS_WITHIN,
    );
    eprintln!(
        "SIGKILL n{jl}: n{new} ({}) master and 100 acks after {:?}",
        kind(new),
        t0.elapsed()
    );
    g.nodes[jl].start();
    g.wait_slave(jl);
    g.wait_acks(
        &mut producer,
        100,
        &format!("sends acknowledged with n{jl} back"),
        ACKS_WITHIN,
    );
    // The push consumer gets every acknowledged message.
    let (sent, acked_keys) = g.stop_and_wait_delivered(&mut producer, &mut consumer);

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
        let out = g.dump(
            TOPIC,
            &format!("dledger_mixed_check_{step}"),
            90,
            Duration::from_secs(150),
        );
        // The shared invariant: every acknowledged message at its offset
        // with its ids, no two acknowledgements at one (queue, offset).
        let check = check_acks(&sent, &out);
        let missing = &check.unreadable;
        // A missing message through a Java master: what its consume-queue
        // slot holds (the formerly known issue, module documentation).
        let mut slots = Vec::new();
        if !missing.is_empty() {
            keep(&g);
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
    g.stop_all();
    // Java's DLedger store rewrites its checkpoint every few seconds by
    // deleting it and renaming a new one in; a Java member that left none
    // (seen once, stopped with SIGTERM) is compared on the others'
    // committed prefix.
    g.assert_same_committed_prefix(acked_keys.len(), |i| java[i]);
    eprintln!("total {:?}", started.elapsed());
}
