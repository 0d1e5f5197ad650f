//! A forced divergent tail in controller mode, end to end, all ours: three
//! `mqcontroller` (fast timers, `enableElectUncleanMaster=true`), our name
//! server and a broker set of two of our `mqbroker`
//! (`allAckInSyncStateSet=true`, `haMaxTimeSlaveNotCatchup=2000`,
//! `haHousekeepingInterval=4000`: a blackholed link still swallows what the
//! master writes, so, as in Java, only the silent connection's close makes
//! the slave stop counting as caught up), each
//! with its HA listener behind a `FaultProxy` (advertised as
//! `brokerIP2=127.0.0.2`, see `OurControllerBroker::proxy_ha`).
//!
//! 1. `a` is master, `b` joins the SyncStateSet; raw sends acknowledged
//!    (phase 1).
//! 2. `a`'s HA link is blackholed: `b` stops receiving, `a` shrinks the set
//!    to {a} and then acknowledges alone (phase 2): a tail `b` lacks.
//! 3. `a` is SIGKILLed; `b` is outside the set, so only the unclean election
//!    makes it master (epoch 2, its epoch starting where its log ended).
//! 4. More sends acknowledged by `b` (phase 3), on the queue offsets `a`'s
//!    phase 2 had used.
//! 5. `a` restarts from its identity file: it comes back as `b`'s slave,
//!    truncates its divergent tail to epoch 2's start, replicates and
//!    rejoins the set; both commit logs end at the same offset with the same
//!    epochs (GET_BROKER_EPOCH_CACHE, 1007) and are byte-identical up to it.
//!
//! Acknowledged messages per these settings: phases 1 and 3 are readable on
//! the final master at their acknowledged (queue, offset) and no offset is
//! acknowledged twice; phase 2 was acknowledged by a master alone in its
//! SyncStateSet and is lost by the unclean election, as in Java: the test
//! checks that none of it is left at its offset.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use compat_tests::controller::{
    broker_epochs, create_topic_on, BrokerEpochs, ControllerGroup, ControllerKind,
    OurControllerBroker, RawAcks, SyncState, BROKER_NAME,
};
use compat_tests::fault_rounds::dump_topic;
use compat_tests::{serial, OurNamesrv};

const TOPIC: &str = "CtlDivergent";

const CONTROLLER_KEYS: &str = "dLegerJavaTimers=false\nscanNotActiveBrokerInterval=300\n\
                               scanInactiveMasterInterval=500\nenableElectUncleanMaster=true\n";

const BROKER_KEYS: &str = "controllerHeartBeatTimeoutMills=1500\nbrokerHeartbeatInterval=400\n\
                           syncBrokerMetadataPeriod=1000\nsyncControllerMetadataPeriod=2000\n\
                           checkSyncStateSetPeriod=500\nhaMaxTimeSlaveNotCatchup=2000\n\
                           haSendHeartbeatInterval=1000\nsyncFlushTimeout=1500\n\
                           haHousekeepingInterval=4000\n";

struct Rig {
    group: ControllerGroup,
    ns: OurNamesrv,
    b: Vec<OurControllerBroker>,
}

impl Rig {
    fn logs(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.b.iter().map(|b| b.logs(80)).collect::<String>(),
            self.group.logs(),
            self.ns.logs()
        )
    }

    fn wait(&mut self, what: &str, secs: u64, ok: impl Fn(&SyncState) -> bool) -> SyncState {
        let logs = format!(
            "{}\n{}",
            self.b.iter().map(|b| b.logs(80)).collect::<String>(),
            self.ns.logs()
        );
        self.group
            .wait_sync_state(what, Duration::from_secs(secs), &|| logs.clone(), ok)
    }

    /// Sends until `n` more are acknowledged by `addr` (bounded: `secs`).
    fn send_n(&self, acks: &mut RawAcks, addr: &str, n: usize, tag: &str, secs: u64) {
        let want = acks.0.len() + n;
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seq = 0usize;
        while acks.0.len() < want {
            assert!(
                Instant::now() < deadline,
                "{tag}: {} of {n} sends acknowledged by {addr} in {secs} s\n{}",
                n - (want - acks.0.len()),
                self.logs()
            );
            seq += 1;
            if !matches!(acks.send(addr, TOPIC, format!("{tag}-{seq}")), Some((0, _))) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Both commit logs end at the same offset with the same epochs (polled,
/// 60 s); then their bytes up to that offset are compared.
fn assert_identical(rig: &Rig, what: &str) -> (BrokerEpochs, BrokerEpochs) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let starts = |e: &BrokerEpochs| -> Vec<(i64, i64)> {
        e.entries.iter().map(|x| (x.epoch, x.start)).collect()
    };
    let (x, y) = loop {
        let x = broker_epochs(&rig.b[0].addr);
        let y = broker_epochs(&rig.b[1].addr);
        if let (Some(x), Some(y)) = (&x, &y) {
            if x.max_offset > 0 && x.max_offset == y.max_offset && starts(x) == starts(y) {
                break (x.clone(), y.clone());
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the commit logs never agreed: {x:?} / {y:?}\n{}",
            rig.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let len = usize::try_from(x.max_offset).unwrap();
    let read = |b: &OurControllerBroker| {
        let mut out = Vec::with_capacity(len);
        for f in b.commit_log_files() {
            if out.len() >= len {
                break;
            }
            out.extend(std::fs::read(&f).unwrap_or_default());
        }
        out.truncate(len);
        out
    };
    let (p, q) = (read(&rig.b[0]), read(&rig.b[1]));
    assert_eq!((p.len(), q.len()), (len, len), "{what}: a short commit log");
    if let Some(i) = p.iter().zip(&q).position(|(u, v)| u != v) {
        panic!(
            "{what}: commit logs differ at byte {i} of {len}\n{}",
            rig.logs()
        );
    }
    eprintln!("{what}: {len} bytes identical, epochs {:?}", starts(&x));
    (x, y)
}

#[test]
fn divergent_tail_is_truncated_after_unclean_failover() {
    let _serial = serial();
    let started = Instant::now();
    let ns = OurNamesrv::start();
    let group = ControllerGroup::start(&[ControllerKind::Ours; 3], CONTROLLER_KEYS);
    let ctl = group.addrs();
    let root = group.dir.path().join("brokers");
    let mut b: Vec<OurControllerBroker> = ["a", "b"]
        .iter()
        .map(|n| OurControllerBroker::new(n, &root, &ns.addr, &ctl, false, BROKER_KEYS))
        .collect();
    for x in &mut b {
        let advertised = x.proxy_ha();
        eprintln!("{}: HA {} advertised as {advertised}", x.addr, x.ha_addr);
    }
    let mut rig = Rig { group, ns, b };

    // 1. a master, b in the set, phase-1 sends.
    rig.b[0].start();
    let a_addr = rig.b[0].addr.clone();
    let b_addr = rig.b[1].addr.clone();
    let s = rig.wait("a master", 60, |s| {
        s.master_address.as_deref() == Some(a_addr.as_str())
    });
    assert_eq!(s.master_epoch, 1, "{s:?}");
    rig.b[1].start();
    let s1 = rig.wait("b in the SyncStateSet", 60, |s| {
        s.master_address.as_deref() == Some(a_addr.as_str()) && s.in_sync.len() == 2
    });
    let a_id = s1.master_broker_id.unwrap();
    for x in [&a_addr, &b_addr] {
        let ok = (0..50).any(|_| {
            let ok = create_topic_on(x, TOPIC, 1) == Some(0);
            if !ok {
                std::thread::sleep(Duration::from_millis(200));
            }
            ok
        });
        assert!(ok, "create {TOPIC} on {x}\n{}", rig.logs());
    }
    let mut kept = RawAcks::default();
    rig.send_n(&mut kept, &a_addr, 40, "p1", 30);
    assert!(
        rig.b[0].ha_link.as_ref().unwrap().accepted() > 0,
        "b never dialled a's HA proxy\n{}",
        rig.logs()
    );
    let (ea, _) = assert_identical(&rig, "phase 1 replicated");
    let p1_end = ea.max_offset;

    // 2. a cut off b: sends go on (unacknowledged: b does not answer) until
    //    b has lagged haMaxTimeSlaveNotCatchup and a shrinks the set to {a}
    //    (an idle master keeps its slaves caught up, as Java's does); then a
    //    acknowledges alone.
    rig.b[0].cut_ha();
    let cut = Instant::now();
    let mut lost = RawAcks::default();
    let s2 = loop {
        let s = rig.group.sync_state(BROKER_NAME);
        if let Some(s) = s.filter(|s| s.master_broker_id == Some(a_id) && s.in_sync_ids() == [a_id])
        {
            break s;
        }
        assert!(
            cut.elapsed() < Duration::from_secs(30),
            "the SyncStateSet never shrank to {{a}}: {:?}\n{}",
            rig.group.sync_state(BROKER_NAME),
            rig.logs()
        );
        lost.send(
            &a_addr,
            TOPIC,
            format!("p2-wait-{}", cut.elapsed().as_millis()),
        );
    };
    eprintln!("2. set {{a}} {:?} after the cut: {s2:?}", cut.elapsed());
    rig.send_n(&mut lost, &a_addr, 30, "p2", 30);
    let a_before = broker_epochs(&a_addr).unwrap();
    let b_before = broker_epochs(&b_addr).unwrap();
    assert!(
        a_before.max_offset > b_before.max_offset && b_before.max_offset >= p1_end,
        "no divergent tail: a {a_before:?} b {b_before:?}"
    );
    eprintln!(
        "2. a ends at {}, b at {} ({} phase-2 acks)",
        a_before.max_offset,
        b_before.max_offset,
        lost.0.len()
    );

    // 3. a killed: b elected uncleanly in epoch 2.
    rig.b[0].kill();
    rig.b[0].heal_ha();
    let killed = Instant::now();
    let s3 = rig.wait("b master after a's kill", 60, |s| {
        s.master_address.as_deref() == Some(b_addr.as_str())
    });
    assert_eq!(s3.master_epoch, 2, "{s3:?}");
    eprintln!("3. b master {:?} after the kill: {s3:?}", killed.elapsed());

    // 4. phase-3 sends to b.
    rig.send_n(&mut kept, &b_addr, 40, "p3", 30);

    // 5. a back: slave of b, tail truncated, identical logs.
    rig.b[0].start();
    let s5 = rig.wait("a back in b's SyncStateSet", 60, |s| {
        s.master_address.as_deref() == Some(b_addr.as_str()) && s.in_sync.len() == 2
    });
    assert_eq!(s5.master_epoch, 2, "{s5:?}");
    let (ea, eb) = assert_identical(&rig, "a truncated and caught up");
    let epochs: Vec<(i64, i64)> = eb.entries.iter().map(|e| (e.epoch, e.start)).collect();
    assert_eq!(epochs.len(), 2, "{eb:?}");
    assert_eq!(epochs[0], (1, 0), "{eb:?}");
    assert_eq!(epochs[1], (2, b_before.max_offset), "{eb:?}");
    assert_eq!(ea.broker_id, a_id, "a's controller id changed: {ea:?}");
    eprintln!("epochs of a {ea:?} and b {eb:?}");

    // The invariant for what was acknowledged under the in-sync rule, and
    // the phase-2 tail gone.
    if let Err(e) = kept.check(&b_addr, TOPIC) {
        panic!("{e}\n{}", rig.logs());
    }
    let (_, pulled) = dump_topic(&b_addr, TOPIC, 1, Duration::from_secs(30)).unwrap();
    let survivors: Vec<&(i64, String)> = lost
        .0
        .iter()
        .filter(|(o, body)| {
            pulled
                .iter()
                .any(|p| p.queue_offset == *o && p.body == body.as_bytes())
        })
        .collect();
    assert!(
        survivors.is_empty(),
        "phase-2 messages of the truncated tail still on b: {survivors:?}"
    );
    let (_, on_a) = dump_topic(&a_addr, TOPIC, 1, Duration::from_secs(30)).unwrap();
    assert_eq!(
        on_a, pulled,
        "a (slave) and b (master) hold different messages"
    );
    eprintln!(
        "{} acks kept, {} phase-2 acks lost by the unclean election; {:?} in all",
        kept.0.len(),
        lost.0.len(),
        started.elapsed()
    );
    for x in &mut rig.b {
        x.stop(Duration::from_secs(20)).unwrap();
    }
}
