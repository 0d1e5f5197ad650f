//! One AutoSwitch broker set of a Java 5.3.3 broker and our `mqbroker`
//! under our controller (one, embedded in our name server), both ways:
//! Java master + our slave, and our master + Java slave. In each: the first
//! broker registers and becomes master, the second becomes its slave,
//! replicates over AutoSwitch HA and joins the SyncStateSet; the official
//! producer sends for a while; once both commit logs end at the same
//! offset they are byte-identical up to it (and both epoch caches agree);
//! the master is SIGKILLed → the slave becomes master (epoch 2) and takes
//! sends; the old master restarts as a slave, catches up (identical bytes
//! again); `check_acks` holds over every acknowledged send.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use compat_tests::controller::{
    broker_epochs, controller_broker, kill_broker, Admin, ControllerGroup, ControllerKind,
    OurControllerBroker, SyncState,
};
use compat_tests::{check_acks, serial, tail_lines, text, JavaBroker};

enum Member {
    Java(JavaBroker),
    Ours(OurControllerBroker),
}

impl Member {
    fn addr(&self) -> &str {
        match self {
            Member::Java(b) => &b.addr,
            Member::Ours(b) => &b.addr,
        }
    }

    fn commit_log_dir(&self) -> PathBuf {
        match self {
            Member::Java(b) => b.dir.path().join("store").join("commitlog"),
            Member::Ours(b) => b.store_dir().join("commitlog"),
        }
    }

    fn kill(&mut self) {
        match self {
            Member::Java(b) => kill_broker(b),
            Member::Ours(b) => b.kill(),
        }
    }

    fn restart(&mut self) {
        match self {
            Member::Java(b) => b.restart(),
            Member::Ours(b) => b.start(),
        }
    }

    fn logs(&self) -> String {
        match self {
            Member::Java(b) => b.logs(),
            Member::Ours(b) => b.logs(80),
        }
    }
}

/// The commit log's first `len` bytes, across its files in name order.
fn commit_log_prefix(dir: &Path, len: u64) -> Vec<u8> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        if out.len() as u64 >= len {
            break;
        }
        out.extend(std::fs::read(&f).unwrap_or_default());
    }
    out.truncate(len as usize);
    out
}

/// Waits until both brokers' commit logs end at the same offset (> 0) with
/// the same epochs, then compares the bytes up to it.
fn assert_identical(m: &[Member; 2], what: &str, logs: &dyn Fn() -> String) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (a, b) = loop {
        let a = broker_epochs(m[0].addr());
        let b = broker_epochs(m[1].addr());
        if let (Some(x), Some(y)) = (&a, &b) {
            let starts = |e: &compat_tests::controller::BrokerEpochs| {
                e.entries
                    .iter()
                    .map(|x| (x.epoch, x.start))
                    .collect::<Vec<_>>()
            };
            if x.max_offset > 0 && x.max_offset == y.max_offset && starts(x) == starts(y) {
                break (x.clone(), y.clone());
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the commit logs never agreed: {a:?} / {b:?}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let len = a.max_offset as u64;
    let x = commit_log_prefix(&m[0].commit_log_dir(), len);
    let y = commit_log_prefix(&m[1].commit_log_dir(), len);
    assert_eq!(
        x.len() as u64,
        len,
        "{what}: short commit log on {}",
        m[0].addr()
    );
    assert_eq!(
        y.len() as u64,
        len,
        "{what}: short commit log on {}",
        m[1].addr()
    );
    if let Some(i) = x.iter().zip(&y).position(|(p, q)| p != q) {
        panic!("{what}: commit logs differ at byte {i} of {len} ({a:?} / {b:?})");
    }
    eprintln!("{what}: {len} bytes identical, epochs {:?}", a.epochs());
    a.max_offset
}

fn run(java_first: bool) {
    let _serial = serial();
    let mut group = ControllerGroup::start(&[ControllerKind::OursInNamesrv], "");
    group.wait_leader(Duration::from_secs(60));
    let ns = group.namesrv_addrs();
    let ctl = group.addrs();
    let root = group.dir.path().join("brokers");
    let java = || Member::Java(controller_broker(&ns, &ctl, ""));
    let ours = || {
        Member::Ours(OurControllerBroker::new(
            "ours", &root, &ns, &ctl, false, "",
        ))
    };

    // The first broker alone, then the second once the first is master.
    let mut first = if java_first { java() } else { ours() };
    if let Member::Ours(b) = &mut first {
        b.start();
    }
    let glogs = group.logs();
    let s = group.wait_sync_state(
        "the first broker master",
        Duration::from_secs(120),
        &|| format!("{}\n{glogs}", first.logs()),
        |s| s.master_address.as_deref() == Some(first.addr()),
    );
    assert_eq!(s.master_epoch, 1, "{s:?}");
    let mut second = if java_first { ours() } else { java() };
    if let Member::Ours(b) = &mut second {
        b.start();
    }
    let mut m = [first, second];
    let logs = |m: &[Member; 2]| format!("{}\n{}", m[0].logs(), m[1].logs());
    let wait_both = |group: &mut ControllerGroup, m: &[Member; 2], master: usize, what: &str| {
        let l = logs(m);
        let want = m[master].addr().to_owned();
        group.wait_sync_state(
            what,
            Duration::from_secs(120),
            &|| l.clone(),
            |s: &SyncState| {
                s.master_address.as_deref() == Some(want.as_str()) && s.in_sync.len() == 2
            },
        )
    };
    let s1 = wait_both(&mut group, &m, 0, "the second broker in the SyncStateSet");

    // Sends while both replicate, then identical commit logs.
    let admin = Admin::new(group.dir.path());
    let topic = "CtlMixed";
    let first_ns = ns.clone();
    for b in &m {
        admin.create_topic(&first_ns, topic, 4, b.addr());
    }
    let home = group.dir.path().join("clients").join("drivers");
    std::fs::create_dir_all(&home).unwrap();
    let produce = |secs: &str| {
        text(&admin.java.run(
            &home,
            "compat.StoreDriver",
            &["produce-until", &ns, topic, secs, "2"],
            Duration::from_secs(90),
        ))
    };
    let acks1 = produce("10");
    assert!(
        compat_tests::invariant::parse_acks(&acks1).len() > 50,
        "too few acknowledged sends:\n{}\n{}",
        tail_lines(&acks1, 30),
        logs(&m)
    );
    assert_identical(&m, "after replication", &|| logs(&m));

    // Failover to the slave, sends there, the old master back as slave.
    m[0].kill();
    let glogs = group.logs();
    let want = m[1].addr().to_owned();
    let s2 = group.wait_sync_state(
        "the slave elected",
        Duration::from_secs(60),
        &|| format!("{}\n{glogs}", logs(&m)),
        |s| s.master_address.as_deref() == Some(want.as_str()),
    );
    assert_eq!(s2.master_epoch, s1.master_epoch + 1, "{s2:?}");
    let acks2 = produce("8");
    assert!(
        compat_tests::invariant::parse_acks(&acks2).len() > 20,
        "too few acknowledged sends after the failover:\n{}\n{}",
        tail_lines(&acks2, 30),
        logs(&m)
    );
    m[0].restart();
    wait_both(&mut group, &m, 1, "the old master back as slave");
    assert_identical(&m, "after the old master's return", &|| logs(&m));

    let acks = format!("{acks1}{acks2}");
    let dump = text(&admin.java.run(
        &home,
        "compat.StoreDriver",
        &["dump", &ns, topic, "ctl_mixed_dump", "60"],
        Duration::from_secs(120),
    ));
    check_acks(&acks, &dump).assert_ok("mixed broker set", || {
        format!("{}\n{}", tail_lines(&dump, 20), logs(&m))
    });
    if let Member::Ours(b) = &mut m[0] {
        b.stop(Duration::from_secs(20)).unwrap();
    }
    if let Member::Ours(b) = &mut m[1] {
        b.stop(Duration::from_secs(20)).unwrap();
    }
}

#[test]
fn java_master_our_slave() {
    run(true);
}

#[test]
fn our_master_java_slave() {
    run(false);
}
