//! Seeded fault rounds in controller mode, all our binaries on 127.0.0.1:
//! three `mqcontroller` (fast DLedger timers and scans), our name server and
//! one broker set of three `mqbroker` in controller mode
//! (`allAckInSyncStateSet=true`, 1.5 s controller heartbeat timeout).
//!
//! A raw SEND_MESSAGE sender follows the master through the name server and
//! records every SEND_OK (queue, offset, offsetMsgId, key). Every broker's
//! controller links and HA listener run through a `FaultProxy` each
//! (`OurControllerBroker` with `proxy_ha`). Each round a seeded PRNG picks
//! one fault: SIGKILL the master (most often) or a slave, SIGSTOP the master
//! or a slave for 0.5–4 s, SIGKILL the controller leader or a follower,
//! SIGSTOP a controller for 0.5–4 s, a partition of the master or a slave
//! from every controller for 0.5–3.5 s (longer than the 1.5 s heartbeat
//! timeout: a new master; the proxies carry heartbeats and leader look-ups,
//! while a leader already known is called at its own port), or of the
//! master from its slaves (its HA link
//! blackholed 1–5 s; past the 4 s `haHousekeepingInterval` plus
//! `haMaxTimeSlaveNotCatchup` the set shrinks to the master, which then
//! acknowledges alone), or a controller (the leader or a follower) cut off
//! its peers for 1–5 s (the controllers' DLedger links run through a
//! `ProxyMesh`: member i names member j at the proxy i -> j in its
//! `controllerDLegerPeers`; every link into and out of the member is
//! blackholed while brokers still reach it); what was faulted is then
//! restarted, resumed or
//! healed, and the round ends once the controllers agree on a
//! leader and a send is acknowledged again (60 s each, else the test fails),
//! then waits (soft, 20 s) for the whole set to be alive and in sync. No
//! server may exit by itself. At the end every acknowledged message is
//! pulled from the current master at its acknowledged offset (same
//! offsetMsgId, unique id, key and body) and no (queue, offset) is
//! acknowledged twice (`compat_tests::check_acks`).
//!
//! `CTL_FAULT_ROUNDS` (default 30) and `CTL_FAULT_SEED` (printed at the
//! start and in every failure) replay or lengthen a run.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use compat_tests::controller::{
    request, route, ControllerGroup, ControllerKind, OurControllerBroker, SyncState, BROKER_NAME,
};
use compat_tests::fault_rounds::{check_bodies, dump_topic, seed_from_env, Sender, XorShift};
use compat_tests::{check_acks, serial, OurNamesrv};

const TOPIC: &str = "CtlFaultTopic";
const QUEUES: i32 = 4;
const BROKERS: usize = 3;
const SERVING: Duration = Duration::from_secs(60);
const HEALED: Duration = Duration::from_secs(20);

const CONTROLLER_KEYS: &str = "dLegerJavaTimers=false\nscanNotActiveBrokerInterval=300\n\
                               scanInactiveMasterInterval=500\n";

/// Appended to `OurControllerBroker`'s keys (the last value of a key wins).
const BROKER_KEYS: &str = "allAckInSyncStateSet=true\ncontrollerHeartBeatTimeoutMills=1500\n\
                           brokerHeartbeatInterval=400\nsyncBrokerMetadataPeriod=1000\n\
                           syncControllerMetadataPeriod=2000\ncheckSyncStateSetPeriod=500\n\
                           haMaxTimeSlaveNotCatchup=3000\nhaSendHeartbeatInterval=1000\n\
                           haHousekeepingInterval=4000\n";

static SEED: AtomicU64 = AtomicU64::new(0);
static ROUND: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillMaster,
    KillSlave,
    PauseMaster,
    PauseSlave,
    KillControllerLeader,
    KillControllerFollower,
    PauseController,
    /// The master cut off every controller (its controller proxies
    /// blackholed).
    IsolateMaster,
    /// A slave cut off every controller.
    IsolateSlave,
    /// The master cut off its slaves (its HA proxy blackholed).
    CutMasterHa,
    /// The controller leader or a follower cut off its peers (every DLedger
    /// link into and out of it blackholed), brokers still reach it.
    PartitionController,
}

const FAULTS: [(Fault, u64); 11] = [
    (Fault::KillMaster, 4),
    (Fault::KillSlave, 1),
    (Fault::PauseMaster, 2),
    (Fault::PauseSlave, 1),
    (Fault::KillControllerLeader, 1),
    (Fault::KillControllerFollower, 1),
    (Fault::PauseController, 1),
    (Fault::IsolateMaster, 2),
    (Fault::IsolateSlave, 1),
    // The dearest round (the slaves' reconnect and catch-up after the heal).
    (Fault::CutMasterHa, 1),
    (Fault::PartitionController, 2),
];

fn seed_note() -> String {
    format!(
        "CTL_FAULT_SEED={} round {}",
        SEED.load(Ordering::Relaxed),
        ROUND.load(Ordering::Relaxed)
    )
}

struct Rig {
    ns: OurNamesrv,
    group: ControllerGroup,
    root: tempfile::TempDir,
    brokers: Vec<OurControllerBroker>,
    addrs: Vec<String>,
}

impl Rig {
    fn start() -> Rig {
        let ns = OurNamesrv::start();
        let group = ControllerGroup::start_meshed(&[ControllerKind::Ours; 3], CONTROLLER_KEYS);
        let ctl = group.addrs();
        let root = tempfile::Builder::new()
            .prefix("rmq-ctl-fault-")
            .tempdir()
            .unwrap();
        let mut brokers = Vec::new();
        let mut addrs = Vec::new();
        for i in 0..BROKERS {
            let name = format!("b{i}");
            let mut b =
                OurControllerBroker::new(&name, root.path(), &ns.addr, &ctl, true, BROKER_KEYS);
            b.proxy_ha();
            addrs.push(b.addr.clone());
            brokers.push(b);
        }
        Rig {
            ns,
            group,
            root,
            brokers,
            addrs,
        }
    }

    fn logs(&self) -> String {
        let mut s: String = self.brokers.iter().map(|b| b.logs(60)).collect();
        s.push_str(&self.group.logs());
        s.push_str(&self.ns.logs());
        s.push_str(&format!("\n{}\n", seed_note()));
        s
    }

    fn sync_state(&mut self) -> Option<SyncState> {
        self.group.sync_state(BROKER_NAME)
    }

    /// The broker the controllers name master, else the name server's id 0.
    fn master(&mut self) -> Option<usize> {
        let addr = self
            .sync_state()
            .and_then(|s| s.master_address)
            .or_else(|| route(&self.ns.addr).get(&0).cloned())?;
        self.addrs.iter().position(|a| *a == addr)
    }

    /// Fails (with every log) unless every broker and controller runs.
    fn assert_running(&mut self, what: &str) {
        for i in 0..self.brokers.len() {
            let up = self.brokers[i].is_running();
            assert!(
                up,
                "{}: broker b{i} ({}) exited by itself {what}\n{}",
                seed_note(),
                self.addrs[i],
                self.logs()
            );
        }
        for i in 0..self.group.members.len() {
            assert!(
                self.group.members[i].is_running(),
                "{}: controller n{i} exited by itself {what}\n{}",
                seed_note(),
                self.logs()
            );
        }
    }

    /// Creates the topic on every broker (UPDATE_AND_CREATE_TOPIC, 17).
    fn create_topic(&self) {
        let q = QUEUES.to_string();
        for a in &self.addrs {
            let ok = (0..50).any(|_| {
                let r = request(
                    a,
                    17,
                    &[
                        ("topic", TOPIC),
                        ("defaultTopic", "TBW102"),
                        ("readQueueNums", q.as_str()),
                        ("writeQueueNums", q.as_str()),
                        ("perm", "6"),
                        ("topicFilterType", "SINGLE_TAG"),
                        ("topicSysFlag", "0"),
                        ("order", "false"),
                    ],
                    None,
                );
                if r.is_some_and(|r| r.code == 0) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(200));
                false
            });
            assert!(
                ok,
                "{}: create {TOPIC} on {a}\n{}",
                seed_note(),
                self.logs()
            );
        }
    }

    /// Polls until the controllers name a master with all brokers alive in
    /// its SyncStateSet; whether that happened within `timeout`.
    fn wait_healed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.sync_state() {
                if s.master_broker_id.is_some()
                    && s.in_sync.len() == BROKERS
                    && s.in_sync.iter().all(|r| r.alive)
                {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn rounds_from_env() -> usize {
    std::env::var("CTL_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

/// One round's record for the report.
struct RoundReport {
    fault: Fault,
    target: String,
    held: Duration,
    /// From the fault to the first acknowledgement after the restore.
    serving_after: Duration,
    healed: bool,
    total: Duration,
}

#[test]
fn seeded_controller_fault_rounds() {
    let _serial = serial();
    let seed = seed_from_env();
    let rounds = rounds_from_env();
    SEED.store(seed, Ordering::Relaxed);
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("controller fault rounds failed at {}", seed_note());
        prev(info);
    }));
    eprintln!("controller fault rounds: CTL_FAULT_SEED={seed} CTL_FAULT_ROUNDS={rounds}");
    let mut rng = XorShift::new(seed);
    let started = Instant::now();

    let mut rig = Rig::start();
    if std::env::var("CTL_FAULT_KEEP").is_ok_and(|v| v == "1") {
        eprintln!("brokers' folders kept in {}", rig.root.path().display());
        rig.root.disable_cleanup(true);
    }
    for b in &mut rig.brokers {
        b.start();
    }
    assert!(
        rig.wait_healed(Duration::from_secs(60)),
        "{}: no master with SyncStateSet of all {BROKERS} brokers: {:?}\n{}",
        seed_note(),
        rig.sync_state(),
        rig.logs()
    );
    rig.create_topic();
    let mut sender = Sender::start(
        &rig.ns.addr,
        TOPIC,
        QUEUES,
        seed,
        2_000_000,
        Duration::from_millis(3),
    );
    assert!(
        sender.wait_acked(0, SERVING),
        "{}: the first send was never acknowledged: {:?}\n{}",
        seed_note(),
        sender.stats(),
        rig.logs()
    );
    let setup = started.elapsed();
    eprintln!("set-up (3 controllers, 3 brokers, first ack) {setup:?}");

    let weights: Vec<u64> = FAULTS.iter().map(|f| f.1).collect();
    let mut reports = Vec::new();
    let mut failovers = 0usize;
    for round in 1..=rounds {
        ROUND.store(round, Ordering::Relaxed);
        let r0 = Instant::now();
        let fault = FAULTS[rng.weighted(&weights)].0;
        let master = rig.master();
        let held;
        let target;
        match fault {
            Fault::KillMaster
            | Fault::KillSlave
            | Fault::PauseMaster
            | Fault::PauseSlave
            | Fault::IsolateMaster
            | Fault::IsolateSlave
            | Fault::CutMasterHa => {
                let m = master.unwrap_or(0);
                let on_master = matches!(
                    fault,
                    Fault::KillMaster
                        | Fault::PauseMaster
                        | Fault::IsolateMaster
                        | Fault::CutMasterHa
                );
                let b = if on_master {
                    m
                } else {
                    let others: Vec<usize> = (0..BROKERS).filter(|i| *i != m).collect();
                    others[rng.below(others.len() as u64) as usize]
                };
                target = format!("b{b} {}", rig.addrs[b]);
                match fault {
                    Fault::KillMaster | Fault::KillSlave => {
                        held = rng.millis(0, 1500);
                        rig.brokers[b].kill();
                        std::thread::sleep(held);
                        rig.brokers[b].start();
                    }
                    Fault::PauseMaster | Fault::PauseSlave => {
                        held = rng.millis(500, 4000);
                        rig.brokers[b].pause();
                        std::thread::sleep(held);
                        rig.brokers[b].resume();
                    }
                    Fault::IsolateMaster | Fault::IsolateSlave => {
                        held = rng.millis(500, 3500);
                        rig.brokers[b].isolate();
                        std::thread::sleep(held);
                        rig.brokers[b].heal();
                    }
                    _ => {
                        held = rng.millis(1000, 5000);
                        rig.brokers[b].cut_ha();
                        std::thread::sleep(held);
                        rig.brokers[b].heal_ha();
                    }
                }
            }
            Fault::KillControllerLeader
            | Fault::KillControllerFollower
            | Fault::PauseController
            | Fault::PartitionController => {
                let leader = rig.group.wait_leader(SERVING);
                let n = rig.group.members.len();
                let c = match fault {
                    Fault::KillControllerLeader => leader,
                    Fault::KillControllerFollower => (leader + 1 + rng.below(2) as usize) % n,
                    // Half the partitions cut the leader off.
                    Fault::PartitionController if rng.below(2) == 0 => leader,
                    _ => rng.below(n as u64) as usize,
                };
                target = format!(
                    "n{c}{}",
                    if c == leader {
                        " (leader)"
                    } else {
                        " (follower)"
                    }
                );
                if fault == Fault::PartitionController {
                    held = rng.millis(1000, 5000);
                    rig.group.partition(c);
                    std::thread::sleep(held);
                    rig.group.heal_partition();
                } else if fault == Fault::PauseController {
                    held = rng.millis(500, 4000);
                    rig.group.pause(c);
                    std::thread::sleep(held);
                    rig.group.resume(c);
                } else {
                    held = rng.millis(0, 1500);
                    rig.group.kill(c);
                    std::thread::sleep(held);
                    rig.group.members[c].start();
                    rig.group.wait_listening(c, Duration::from_secs(90));
                }
            }
        }
        let restored_acks = sender.acked();
        rig.group.wait_leader(SERVING);
        assert!(
            sender.wait_acked(restored_acks, SERVING),
            "{}: {fault:?} of {target}: no send acknowledged within {SERVING:?} after the \
             restore ({:?}); SyncStateSet {:?}, route {:?}\n{}",
            seed_note(),
            sender.stats(),
            rig.sync_state(),
            route(&rig.ns.addr),
            rig.logs()
        );
        let serving_after = r0.elapsed();
        let healed = rig.wait_healed(HEALED);
        if !healed {
            eprintln!(
                "round {round}: not healed within {HEALED:?}: SyncStateSet {:?}",
                rig.sync_state()
            );
        }
        rig.assert_running(&format!("after {fault:?} of {target}"));
        let total = r0.elapsed();
        let name = |m: Option<usize>| m.map_or_else(|| "-".to_owned(), |i| format!("b{i}"));
        let master_after = rig.master();
        if master_after != master {
            failovers += 1;
        }
        eprintln!(
            "round {round}: {fault:?} {target} held {held:?}; serving after {serving_after:?}; \
             {} ({total:?}); master {} -> {}; {} acked",
            if healed { "healed" } else { "NOT healed" },
            name(master),
            name(master_after),
            sender.acked()
        );
        reports.push(RoundReport {
            fault,
            target,
            held,
            serving_after,
            healed,
            total,
        });
    }
    let rounds_time = started.elapsed() - setup;

    // Stop sending, settle, and read every acknowledged message back.
    sender.stop();
    let stats = sender.stats();
    let acks = sender.ack_lines();
    assert!(
        rig.wait_healed(Duration::from_secs(60)),
        "{}: the set never healed after the last round: {:?}\n{}",
        seed_note(),
        rig.sync_state(),
        rig.logs()
    );
    let master = rig.master().unwrap();
    let master_addr = rig.addrs[master].clone();
    let (dump, pulled) = dump_topic(&master_addr, TOPIC, QUEUES, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", seed_note(), rig.logs()));
    let check = check_acks(&acks, &dump);
    let (bad_bodies, examples) = check_bodies(seed, &acks, &pulled);

    // The report: the fault mix and timings.
    let mut mix: BTreeMap<Fault, (usize, Duration, Duration)> = BTreeMap::new();
    for r in &reports {
        let e = mix.entry(r.fault).or_default();
        e.0 += 1;
        e.1 = e.1.max(r.serving_after);
        e.2 += r.total;
    }
    eprintln!("fault mix (count, worst time to serving, mean round):");
    for (f, (n, worst, sum)) in &mix {
        eprintln!("  {f:?}: {n}, {worst:?}, {:?}", *sum / (*n as u32).max(1));
    }
    let not_healed: Vec<String> = reports
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.healed)
        .map(|(i, r)| {
            format!(
                "round {} {:?} {} held {:?}",
                i + 1,
                r.fault,
                r.target,
                r.held
            )
        })
        .collect();
    eprintln!(
        "{rounds} rounds in {rounds_time:?} (set-up {setup:?}), {failovers} with a new master; \
         rounds not healed within \
         {HEALED:?}: {not_healed:?}; sender {stats:?}; read back from {master_addr}"
    );
    check.assert_ok(
        &format!("controller fault rounds ({})", seed_note()),
        || rig.logs(),
    );
    assert_eq!(
        bad_bodies,
        0,
        "{}: acknowledged messages with another body: {examples:?}",
        seed_note()
    );
}
