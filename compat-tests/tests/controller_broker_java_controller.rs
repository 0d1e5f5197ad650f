//! Our broker in controller mode under the official Java 5.3.3 controller
//! (`ControllerStartup`, one DLedger member) with our name server: two of
//! our `mqbroker` register (GET_NEXT_BROKER_ID → APPLY_BROKER_ID →
//! REGISTER_BROKER), the first is elected master (id 0 at the name server),
//! the second becomes its slave, replicates over AutoSwitch HA and is added
//! to the SyncStateSet (ALTER_SYNC_STATE_SET answered by Java); the identity
//! files hold what Java writes (`cluster#name#id`, no temp file left) and
//! GET_BROKER_EPOCH_CACHE shows epoch 1. Ten messages are sent to the
//! master (acknowledged by the whole SyncStateSet). Then it is SIGKILLed: the
//! Java controller elects the slave (masterEpoch 2, id 0 at the name
//! server), and the old master restarts with its identity file as slave 1
//! and rejoins the SyncStateSet.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use compat_tests::controller::{
    code, create_topic_on, request, route, ControllerGroup, ControllerKind, RawAcks,
    BROKER_FILE_SIZE, BROKER_NAME, CLUSTER,
};
use compat_tests::{
    free_broker_port, serial, wait_until, BrokerProcess, OurNamesrv, TEST_BROKER_KEYS,
};

const WAIT: Duration = Duration::from_secs(60);

fn broker(name: &str, root: &std::path::Path, ns: &str, ctl: &str) -> (BrokerProcess, String) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_broker_port();
    std::fs::write(
        dir.join("broker.conf"),
        format!(
            "brokerClusterName={CLUSTER}\nbrokerName={BROKER_NAME}\nbrokerId=-1\nbrokerRole=SLAVE\n\
             enableControllerMode=true\ncontrollerAddr={ctl}\nnamesrvAddr={ns}\nlistenPort={port}\n\
             bindAddress=127.0.0.1\nbrokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\n\
             storePathRootDir={}\nmappedFileSizeCommitLog={BROKER_FILE_SIZE}\n\
             allAckInSyncStateSet=true\nbrokerHeartbeatInterval=1000\n{TEST_BROKER_KEYS}",
            dir.join("store").display()
        ),
    )
    .unwrap();
    (BrokerProcess::new(name, dir), format!("127.0.0.1:{port}"))
}

fn epochs(addr: &str) -> Option<(i64, Vec<i64>)> {
    let r = request(addr, code::GET_BROKER_EPOCH_CACHE, &[], None)?;
    if r.code != 0 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    let list = v["epochList"]
        .as_array()?
        .iter()
        .filter_map(|e| e["epoch"].as_i64())
        .collect();
    Some((v["brokerId"].as_i64()?, list))
}

#[test]
fn our_brokers_under_the_java_controller() {
    let _serial = serial();
    let ns = OurNamesrv::start();
    let mut group = ControllerGroup::start(&[ControllerKind::Java], "");
    group.wait_leader(WAIT);
    let ctl = group.addrs();
    let root = tempfile::Builder::new()
        .prefix("rmq-ctl-ours-")
        .tempdir()
        .unwrap();
    let (mut a, a_addr) = broker("a", root.path(), &ns.addr, &ctl);
    let (mut b, b_addr) = broker("b", root.path(), &ns.addr, &ctl);
    let logs = |a: &BrokerProcess, b: &BrokerProcess, g: &ControllerGroup| {
        format!(
            "{}\n{}\n{}\n{}",
            a.logs(80),
            b.logs(80),
            g.logs(),
            ns.logs()
        )
    };

    a.start();
    wait_until("broker a registered as master", WAIT, || {
        route(&ns.addr).get(&0) == Some(&a_addr)
    });
    b.start();
    let deadline = std::time::Instant::now() + WAIT;
    while route(&ns.addr).get(&2) != Some(&b_addr) {
        assert!(
            std::time::Instant::now() < deadline,
            "broker b never registered as slave 2: {:?}\n{}",
            route(&ns.addr),
            logs(&a, &b, &group)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Identity files as Java writes them.
    let ident = |p: &BrokerProcess| {
        std::fs::read_to_string(p.dir.join("store").join("brokerIdentity")).unwrap_or_default()
    };
    assert_eq!(ident(&a), format!("{CLUSTER}#{BROKER_NAME}#1"));
    assert_eq!(ident(&b), format!("{CLUSTER}#{BROKER_NAME}#2"));
    for p in [&a, &b] {
        assert!(!p.dir.join("store").join("brokerIdentity-temp").exists());
    }

    // B catches up and the Java controller confirms SyncStateSet {1, 2}.
    let s = group.wait_sync_state(
        "SyncStateSet {1, 2}",
        WAIT,
        &|| format!("{}\n{}\n{}", a.logs(80), b.logs(80), ns.logs()),
        |s| s.master_broker_id == Some(1) && s.in_sync_ids() == [1, 2],
    );
    assert_eq!(s.master_epoch, 1);
    assert_eq!(s.address_of(1), Some(a_addr.as_str()));
    assert_eq!(s.address_of(2), Some(b_addr.as_str()));

    assert_eq!(epochs(&a_addr), Some((0, vec![1])));
    assert_eq!(epochs(&b_addr).map(|(id, _)| id), Some(2));

    // The topic on both brokers, as an operator creates it on the cluster
    // (auto-created on A alone, B would learn it only at its next
    // metadata sync, ~10 s, and refuse pulls of it as a fresh master).
    for addr in [&a_addr, &b_addr] {
        assert_eq!(
            create_topic_on(addr, "CtlTopic", 4),
            Some(0),
            "create CtlTopic on {addr}"
        );
    }

    // Messages on A (acknowledged once B, in the set, has them too).
    let mut acked = RawAcks::default();
    for i in 0..10 {
        let r = acked.send(&a_addr, "CtlTopic", format!("message {i}"));
        assert!(
            matches!(r, Some((0, Some(_)))),
            "send {i} to the master: {r:?}\n{}",
            logs(&a, &b, &group)
        );
    }

    // Failover: A is SIGKILLed; the Java controller elects B (1008 or the
    // 1004 poll), which registers as id 0; A restarts with its identity
    // file and follows B as slave 1.
    a.kill();
    let deadline = std::time::Instant::now() + WAIT;
    while route(&ns.addr).get(&0) != Some(&b_addr) {
        assert!(
            std::time::Instant::now() < deadline,
            "broker b never became master: {:?}\n{}",
            route(&ns.addr),
            logs(&a, &b, &group)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    a.start();
    let s = group.wait_sync_state(
        "A back in the SyncStateSet of master B",
        WAIT,
        &|| format!("{}\n{}\n{}", a.logs(80), b.logs(80), ns.logs()),
        |s| s.master_broker_id == Some(2) && s.in_sync_ids() == [1, 2],
    );
    assert_eq!(s.master_epoch, 2);
    assert_eq!(ident(&a), format!("{CLUSTER}#{BROKER_NAME}#1"));
    assert_eq!(route(&ns.addr).get(&1), Some(&a_addr));
    assert_eq!(epochs(&b_addr), Some((0, vec![1, 2])));
    assert_eq!(epochs(&a_addr).map(|(id, _)| id), Some(1));

    // The invariant: every acknowledged send is on the new master at the
    // queue offset it was acknowledged with, and no offset was acked twice.
    if let Err(e) = acked.check(&b_addr, "CtlTopic") {
        panic!("{e}\n{}", logs(&a, &b, &group));
    }

    let stopped_a = a.stop_cleanly(Duration::from_secs(20));
    let stopped_b = b.stop_cleanly(Duration::from_secs(20));
    if let Err(e) = stopped_a.and(stopped_b) {
        panic!("{e}\n{}", logs(&a, &b, &group));
    }
}
