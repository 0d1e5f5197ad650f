//! The broker failover scenario shared by the suites.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{
    controller_broker, kill_broker, route, Admin, ControllerGroup, SyncState, BROKER_NAME,
};
use crate::{check_acks, tail_lines, text, JavaBroker, Proc};

/// Timings measured by [`failover_flow`], printed by the suites.
#[derive(Debug, Default)]
pub struct FlowTimings {
    pub first_master: Duration,
    pub new_master_after_kill: Duration,
    pub old_master_back_as_slave: Duration,
    pub new_controller_leader: Duration,
}

/// The broker failover scenario on a running controller group and name
/// servers `ns` (`;`-list): two Java brokers of [`BROKER_NAME`] register
/// (one master, SyncStateSet {1, 2}); a compat.StoreDriver producer sends
/// (bounded: `produce-until`, 4 threads) while a compat.FailoverConsumer
/// push consumer reads; the master is SIGKILLed → the other becomes master
/// (masterEpoch + 1, set {new}) and sends are acknowledged again; the old
/// master restarts and comes back as a slave (set {1, 2} again);
/// `getBrokerEpoch` shows both epochs on both brokers; the controller
/// leader is SIGKILLed → a new leader, the brokers keep their roles and
/// sends go on; the push consumer receives every acknowledged message and
/// `check_acks` holds on a dump of the topic.
pub fn failover_flow(
    group: &mut ControllerGroup,
    ns: &str,
    logs: &dyn Fn() -> String,
) -> FlowTimings {
    let mut t = FlowTimings::default();
    let first_ns = ns.split(';').next().unwrap_or(ns).to_owned();
    let admin = Admin::new(group.dir.path());
    let ctl = group.addrs();

    // 1. Two brokers; the first to register becomes master.
    let started = Instant::now();
    let mut brokers = [
        controller_broker(ns, &ctl, ""),
        controller_broker(ns, &ctl, ""),
    ];
    let all_logs = |brokers: &[JavaBroker], group: &ControllerGroup| {
        format!(
            "{}\n{}\n{}",
            brokers.iter().map(JavaBroker::logs).collect::<String>(),
            group.logs(),
            logs()
        )
    };
    let s = wait_state(
        group,
        &brokers,
        "a master and SyncStateSet of both",
        120,
        |s| s.master_broker_id.is_some() && s.in_sync.len() == 2,
        logs,
    );
    t.first_master = started.elapsed();
    let master_addr = s.master_address.clone().unwrap_or_default();
    let m = brokers
        .iter()
        .position(|b| b.addr == master_addr)
        .unwrap_or_else(|| panic!("master {master_addr} is none of ours: {s:?}"));
    let sl = 1 - m;
    wait_route(
        ns,
        &brokers[m].addr,
        &brokers[sl].addr,
        s.id_of(&brokers[sl].addr),
        60,
        &|| all_logs(&brokers, group),
    );
    eprintln!(
        "first master {master_addr} after {:?}: {s:?}",
        t.first_master
    );

    // 2. Topic on both (the Java slave copies metadata only every minute).
    let topic = "CtlFailover";
    for b in &brokers {
        admin.create_topic(&first_ns, topic, 4, &b.addr);
    }
    let home = group.dir.path().join("clients").join("drivers");
    std::fs::create_dir_all(&home).expect("drivers home");
    let dir = group.dir.path().to_owned();
    let mut producer = admin.java.spawn(
        &home,
        "compat.StoreDriver",
        &["produce-until", ns, topic, "240", "4"],
        dir.join("producer.out"),
    );
    let mut consumer = admin.java.spawn(
        &home,
        "compat.FailoverConsumer",
        &[ns, topic, "ctl_push", "300"],
        dir.join("consumer.out"),
    );
    let acked = |p: &Proc| crate::acked(p);
    let wait_acks = |p: &mut Proc, n: usize, secs: u64, what: &str, extra: &dyn Fn() -> String| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while acked(p) < n {
            assert!(
                p.is_running() && Instant::now() < deadline,
                "{what}: {} of {n} sends acknowledged\n{}\n{}",
                acked(p),
                tail_lines(&p.log_text(), 30),
                extra()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_acks(&mut producer, 300, 60, "before the kill", &|| {
        all_logs(&brokers, group)
    });

    // 3. SIGKILL the master.
    let before = s;
    let old_id = before.master_broker_id.unwrap_or(-1);
    kill_broker(&mut brokers[m]);
    let killed_at = Instant::now();
    let new_id = before.id_of(&brokers[sl].addr).unwrap_or(-1);
    let after = wait_state(
        group,
        &brokers,
        "the slave elected after the master's kill",
        60,
        |s| s.master_broker_id == Some(new_id) && s.master_epoch == before.master_epoch + 1,
        logs,
    );
    t.new_master_after_kill = killed_at.elapsed();
    assert_eq!(
        after.in_sync_ids(),
        vec![new_id],
        "SyncStateSet after the kill: {after:?}"
    );
    assert!(
        after.sync_state_set_epoch > before.sync_state_set_epoch,
        "{before:?} -> {after:?}"
    );
    eprintln!(
        "new master {new_id} after {:?}: {after:?}",
        t.new_master_after_kill
    );
    let n = acked(&producer);
    wait_acks(&mut producer, n + 100, 60, "after the kill", &|| {
        all_logs(&brokers, group)
    });

    // 4. The old master returns as a slave.
    let back = Instant::now();
    brokers[m].restart();
    let rejoined = wait_state(
        group,
        &brokers,
        "the old master back in the SyncStateSet",
        120,
        |s| s.master_broker_id == Some(new_id) && s.in_sync_ids().len() == 2,
        logs,
    );
    t.old_master_back_as_slave = back.elapsed();
    assert_eq!(rejoined.master_epoch, after.master_epoch, "{rejoined:?}");
    wait_route(
        ns,
        &brokers[sl].addr,
        &brokers[m].addr,
        Some(old_id),
        60,
        &|| all_logs(&brokers, group),
    );
    eprintln!(
        "old master back as slave after {:?}: {rejoined:?}",
        t.old_master_back_as_slave
    );

    // getSyncStateSet and getBrokerEpoch through mqadmin.
    let (ss, out) = admin.sync_state_set(&ctl, BROKER_NAME);
    let ss = ss.unwrap_or_else(|| panic!("getSyncStateSet:\n{out}"));
    assert_eq!(
        (
            ss.master_broker_id,
            ss.master_addr.as_str(),
            ss.master_epoch,
            ss.sync_state_set_nums
        ),
        (new_id, brokers[sl].addr.as_str(), rejoined.master_epoch, 2),
        "getSyncStateSet:\n{out}"
    );
    let (epochs, out) = admin.broker_epochs(&first_ns, BROKER_NAME);
    assert_eq!(epochs.len(), 2, "getBrokerEpoch:\n{out}");
    for e in &epochs {
        let list: Vec<i64> = e.epochs.iter().map(|x| x.epoch).collect();
        assert_eq!(
            list,
            vec![before.master_epoch, after.master_epoch],
            "getBrokerEpoch of {}:\n{out}",
            e.broker_addr
        );
        assert_eq!(e.epochs[0].start, 0, "{out}");
        assert_eq!(e.epochs[0].end, e.epochs[1].start, "{out}");
    }
    let n = acked(&producer);
    wait_acks(
        &mut producer,
        n + 100,
        60,
        "after the old master's return",
        &|| all_logs(&brokers, group),
    );

    // 5. Kill the controller leader: a new one, same roles, sends go on.
    let leader = group.wait_leader(Duration::from_secs(30));
    // With the controller inside a name server, the kill takes that name
    // server down too: read routes from one that is still up.
    let killed_ns = group.members[leader].namesrv_addr.clone();
    let live_ns = ns
        .split(';')
        .find(|a| Some(*a) != killed_ns.as_deref())
        .unwrap_or(&first_ns)
        .to_owned();
    group.kill(leader);
    let at = Instant::now();
    let new_leader = group.wait_new_leader(leader, Duration::from_secs(60));
    t.new_controller_leader = at.elapsed();
    eprintln!(
        "new controller leader {} after {:?}",
        group.members[new_leader].id, t.new_controller_leader
    );
    let n = acked(&producer);
    wait_acks(
        &mut producer,
        n + 100,
        60,
        "after the controller leader's kill",
        &|| all_logs(&brokers, group),
    );
    let same = wait_state(
        group,
        &brokers,
        "the SyncStateSet through the new leader",
        30,
        |s| s.master_broker_id == Some(new_id),
        logs,
    );
    assert_eq!(
        same.master_epoch, after.master_epoch,
        "a role change after the controller leader's kill: {same:?}"
    );
    assert_eq!(
        route(&live_ns).get(&0),
        Some(&brokers[sl].addr),
        "the master after the controller leader's kill"
    );

    // 6. Stop the producer (its output up to its last whole line); every
    // acknowledged message is consumed and readable at its offset.
    producer.signal(libc::SIGKILL);
    producer.wait_exit(Duration::from_secs(10));
    let out = producer.log_text();
    let acks_out = out[..out.rfind('\n').map_or(0, |i| i + 1)].to_owned();
    let keys = crate::invariant::acked_keys(&acks_out);
    crate::wait_delivered(&mut consumer, &keys, Duration::from_secs(90), || {
        all_logs(&brokers, group)
    });
    let dump = text(&admin.java.run(
        &home,
        "compat.StoreDriver",
        &["dump", &live_ns, topic, "ctl_dump", "60"],
        Duration::from_secs(120),
    ));
    check_acks(&acks_out, &dump).assert_ok("controller failover", || {
        format!("{}\n{}", tail_lines(&dump, 20), all_logs(&brokers, group))
    });
    t
}

/// Polls the group's SyncStateSet for [`BROKER_NAME`] (`secs`), checking
/// the brokers still run.
fn wait_state(
    group: &mut ControllerGroup,
    brokers: &[JavaBroker],
    what: &str,
    secs: u64,
    ok: impl Fn(&SyncState) -> bool,
    logs: &dyn Fn() -> String,
) -> SyncState {
    let blogs = || brokers.iter().map(JavaBroker::logs).collect::<String>();
    group.wait_sync_state(
        what,
        Duration::from_secs(secs),
        &|| format!("{}\n{}", blogs(), logs()),
        ok,
    )
}

/// Waits until every name server of `ns` routes `master` as id 0 and
/// `slave` under `slave_id` (any id if `None`).
fn wait_route(
    ns: &str,
    master: &str,
    slave: &str,
    slave_id: Option<i64>,
    secs: u64,
    logs: &dyn Fn() -> String,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let routes: Vec<BTreeMap<i64, String>> = ns.split(';').map(route).collect();
        let ok = routes.iter().all(|r| {
            r.get(&0).map(String::as_str) == Some(master)
                && r.iter().any(|(id, a)| {
                    a == slave && *id != 0 && slave_id.is_none_or(|want| want == *id)
                })
        });
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "name servers {ns} never routed master {master}, slave {slave} ({slave_id:?}): {routes:?}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
