//! Controller mode end to end on our side only: three of our controllers
//! embedded in three of our name servers (`enableControllerInNamesrv=true`)
//! and one broker set of three of our `mqbroker` (controller links through
//! a `FaultProxy` each). The official Java 5.3.3 producer sends throughout
//! (bounded: `produce-until`) and a push consumer reads. Faults in turn,
//! each followed by more acknowledged sends:
//! 1. master SIGKILL → a new master (masterEpoch + 1, the set grows back
//!    from {new});
//! 2. the old master restarts → slave, back in the SyncStateSet, and every
//!    broker's epoch cache (1007) shows the same epochs and start offsets
//!    (its tail past the new epoch's start truncated);
//! 3. master SIGSTOP (only missed heartbeats show it) → a new master; after
//!    SIGCONT the old master sees the higher epoch and steps down to slave;
//! 4. master cut off every controller (proxies blackholed) → a new master;
//!    healed → it rejoins as slave;
//! 5. controller leader SIGKILL → a new leader, the same master and epoch,
//!    sends go on.
//!
//! At the end `check_acks` holds on a dump of the topic (duplicates only
//! reported), and the push consumer received every acknowledged message.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use compat_tests::controller::{
    route, Admin, ControllerGroup, ControllerKind, OurControllerBroker, SyncState, BROKER_NAME,
};
use compat_tests::{check_acks, serial, tail_lines, text, Proc};

struct Run {
    group: ControllerGroup,
    brokers: Vec<OurControllerBroker>,
    ns: String,
}

impl Run {
    fn logs(&self) -> String {
        format!(
            "{}\n{}",
            self.brokers.iter().map(|b| b.logs(60)).collect::<String>(),
            self.group.logs()
        )
    }

    fn index_of(&self, addr: &str) -> usize {
        self.brokers
            .iter()
            .position(|b| b.addr == addr)
            .unwrap_or_else(|| panic!("{addr} is none of our brokers\n{}", self.logs()))
    }

    fn wait_state(&mut self, what: &str, secs: u64, ok: impl Fn(&SyncState) -> bool) -> SyncState {
        let logs = self.brokers.iter().map(|b| b.logs(60)).collect::<String>();
        self.group
            .wait_sync_state(what, Duration::from_secs(secs), &|| logs.clone(), ok)
    }

    /// The current master's index once the set holds all three.
    fn wait_full_set(&mut self, what: &str, master: Option<i64>) -> (SyncState, usize) {
        let s = self.wait_state(what, 90, |s| {
            s.master_broker_id.is_some()
                && master.is_none_or(|m| s.master_broker_id == Some(m))
                && s.in_sync.len() == 3
        });
        let m = self.index_of(s.master_address.as_deref().unwrap_or_default());
        (s, m)
    }

    /// Waits for a master other than `old` in the next epoch.
    fn wait_new_master(&mut self, what: &str, before: &SyncState) -> (SyncState, Duration) {
        let at = Instant::now();
        let old = before.master_broker_id;
        let epoch = before.master_epoch;
        let s = self.wait_state(what, 60, |s| {
            s.master_broker_id.is_some() && s.master_broker_id != old && s.master_epoch == epoch + 1
        });
        let id = s.master_broker_id.unwrap_or(-1);
        assert!(s.in_sync_ids().contains(&id), "{what}: {s:?}");
        assert!(
            s.sync_state_set_epoch > before.sync_state_set_epoch,
            "{what}: {before:?} -> {s:?}"
        );
        (s, at.elapsed())
    }

    /// Waits until every running broker's epoch cache lists the same
    /// epochs with the same start offsets as the master's.
    fn wait_epochs_agree(&mut self, master: usize, what: &str) -> Vec<i64> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let all: Vec<_> = self.brokers.iter().map(|b| b.epochs()).collect();
            let starts = |i: usize| {
                all[i].as_ref().map(|e| {
                    e.entries
                        .iter()
                        .map(|x| (x.epoch, x.start))
                        .collect::<Vec<_>>()
                })
            };
            let want = starts(master);
            if want.is_some() && (0..all.len()).all(|i| starts(i) == want) {
                return all[master].as_ref().map(|e| e.epochs()).unwrap_or_default();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: epoch caches differ: {all:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn acked(p: &Proc) -> usize {
    compat_tests::acked(p)
}

fn wait_acks(p: &mut Proc, n: usize, what: &str, logs: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked(p) < n {
        assert!(
            p.is_running() && Instant::now() < deadline,
            "{what}: {} of {n} sends acknowledged\n{}\n{}",
            acked(p),
            tail_lines(&p.log_text(), 30),
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn our_brokers_under_our_controllers_through_faults() {
    let _serial = serial();
    let started = Instant::now();
    let mut group = ControllerGroup::start(&[ControllerKind::OursInNamesrv; 3], "");
    group.wait_leader(Duration::from_secs(60));
    let ns = group.namesrv_addrs();
    let first_ns = ns.split(';').next().unwrap_or(&ns).to_owned();
    let ctl = group.addrs();
    let root = group.dir.path().join("brokers");
    let brokers = ["a", "b", "c"]
        .iter()
        .map(|n| OurControllerBroker::new(n, &root, &ns, &ctl, true, ""))
        .collect();
    let mut run = Run { group, brokers, ns };
    for b in &mut run.brokers {
        b.start();
    }
    let (s0, m0) = run.wait_full_set("a master and a SyncStateSet of three", None);
    eprintln!(
        "first master {} after {:?}: {s0:?}",
        run.brokers[m0].addr,
        started.elapsed()
    );

    // Topic on every broker; the producer and the push consumer.
    let admin = Admin::new(run.group.dir.path());
    let topic = "CtlOurs";
    for b in &run.brokers {
        admin.create_topic(&first_ns, topic, 4, &b.addr);
    }
    let home = run.group.dir.path().join("clients").join("drivers");
    std::fs::create_dir_all(&home).unwrap();
    let out = run.group.dir.path().to_owned();
    let mut producer = admin.java.spawn(
        &home,
        "compat.StoreDriver",
        &["produce-until", &run.ns, topic, "200", "4"],
        out.join("producer.out"),
    );
    let mut consumer = admin.java.spawn(
        &home,
        "compat.FailoverConsumer",
        &[&run.ns, topic, "ctl_ours_push", "300"],
        out.join("consumer.out"),
    );
    wait_acks(&mut producer, 200, "before any fault", &|| run.logs());

    // 1. Master SIGKILL.
    run.brokers[m0].kill();
    let (s1, took) = run.wait_new_master("a new master after the master's kill", &s0);
    eprintln!("1. new master after SIGKILL in {took:?}: {s1:?}");
    let n = acked(&producer);
    wait_acks(&mut producer, n + 100, "after the master's kill", &|| {
        run.logs()
    });

    // 2. The old master restarts as a slave; its divergent tail is gone.
    run.brokers[m0].start();
    let (s2, m2) = run.wait_full_set("the old master back as slave", s1.master_broker_id);
    assert_eq!(s2.master_epoch, s1.master_epoch, "{s2:?}");
    let epochs = run.wait_epochs_agree(m2, "after the old master's return");
    assert_eq!(epochs, vec![s0.master_epoch, s1.master_epoch]);
    let (admin_epochs, admin_out) = admin.broker_epochs(&first_ns, BROKER_NAME);
    assert_eq!(admin_epochs.len(), 3, "getBrokerEpoch:\n{admin_out}");
    for e in &admin_epochs {
        let list: Vec<i64> = e.epochs.iter().map(|x| x.epoch).collect();
        assert_eq!(
            list, epochs,
            "getBrokerEpoch of {}:\n{admin_out}",
            e.broker_addr
        );
    }
    let n = acked(&producer);
    wait_acks(
        &mut producer,
        n + 100,
        "after the old master's return",
        &|| run.logs(),
    );

    // 3. Master SIGSTOP: only its missed heartbeats show it.
    run.brokers[m2].pause();
    let (s3, took) = run.wait_new_master("a new master after the master's hang", &s2);
    eprintln!("3. new master after SIGSTOP in {took:?}: {s3:?}");
    let n = acked(&producer);
    wait_acks(&mut producer, n + 50, "while the old master hangs", &|| {
        run.logs()
    });
    run.brokers[m2].resume();
    let (s3b, m3) = run.wait_full_set("the hung master back as slave", s3.master_broker_id);
    assert_eq!(s3b.master_epoch, s3.master_epoch, "{s3b:?}");
    run.wait_epochs_agree(m3, "after the hung master's return");
    let n = acked(&producer);
    wait_acks(
        &mut producer,
        n + 100,
        "after the hung master's return",
        &|| run.logs(),
    );

    // 4. Master cut off every controller.
    run.brokers[m3].isolate();
    let (s4, took) = run.wait_new_master("a new master after the master's isolation", &s3b);
    eprintln!("4. new master after isolation in {took:?}: {s4:?}");
    let n = acked(&producer);
    wait_acks(
        &mut producer,
        n + 50,
        "while the old master is isolated",
        &|| run.logs(),
    );
    run.brokers[m3].heal();
    let (s4b, m4) = run.wait_full_set("the isolated master back as slave", s4.master_broker_id);
    assert_eq!(s4b.master_epoch, s4.master_epoch, "{s4b:?}");
    let epochs = run.wait_epochs_agree(m4, "after the isolated master's return");
    assert_eq!(epochs.len(), 4, "one epoch per master: {epochs:?}");
    let n = acked(&producer);
    wait_acks(
        &mut producer,
        n + 100,
        "after the isolated master's return",
        &|| run.logs(),
    );

    // 5. Controller leader SIGKILL: same roles, sends go on.
    let leader = run.group.wait_leader(Duration::from_secs(30));
    run.group.kill(leader);
    let new_leader = run.group.wait_new_leader(leader, Duration::from_secs(60));
    eprintln!(
        "5. new controller leader {}",
        run.group.members[new_leader].id
    );
    let n = acked(&producer);
    wait_acks(
        &mut producer,
        n + 100,
        "after the controller leader's kill",
        &|| run.logs(),
    );
    let s5 = run.wait_state("the set through the new leader", 30, |s| {
        s.master_broker_id == s4b.master_broker_id
    });
    assert_eq!(s5.master_epoch, s4b.master_epoch, "a role change: {s5:?}");
    let live_ns = run.group.namesrv_addrs_except(leader);
    assert_eq!(
        route(live_ns.split(';').next().unwrap_or_default()).get(&0),
        Some(&run.brokers[m4].addr),
        "the master after the controller leader's kill"
    );

    // The end: every acknowledged message readable at its offset, and
    // consumed.
    producer.signal(libc::SIGKILL);
    producer.wait_exit(Duration::from_secs(10));
    let out = producer.log_text();
    let acks_out = out[..out.rfind('\n').map_or(0, |i| i + 1)].to_owned();
    let keys = compat_tests::invariant::acked_keys(&acks_out);
    compat_tests::wait_delivered(&mut consumer, &keys, Duration::from_secs(90), || run.logs());
    let dump = text(&admin.java.run(
        &home,
        "compat.StoreDriver",
        &["dump", &live_ns, topic, "ctl_ours_dump", "60"],
        Duration::from_secs(120),
    ));
    let check = check_acks(&acks_out, &dump);
    eprintln!(
        "acked {}, stored {}, keys stored twice {} (duplicates, reported only)",
        check.acked, check.stored, check.keys_stored_twice
    );
    check.assert_ok("our brokers under our controllers", || {
        format!("{}\n{}", tail_lines(&dump, 20), run.logs())
    });
    for b in &mut run.brokers {
        if let Err(e) = b.stop(Duration::from_secs(20)) {
            panic!("{e}\n{}", run.logs());
        }
    }
    eprintln!("whole run {:?}", started.elapsed());
}
