//! The 5.3.3 mqadmin controller commands (spec controller.md §11) side by
//! side: the same steps against one Java 5.3.3 controller
//! (`ControllerStartup`) and against one of ours (`mqcontroller`), each with
//! the Java 5.3.3 name server and two Java 5.3.3 brokers in controller mode
//! (same broker-set shape). Every command's output is parsed and reduced to
//! values that do not depend on ports (addresses become the broker's role
//! at the start, `first-master` / `first-slave`); the two runs must be
//! equal:
//!
//! `getControllerMetaData` (group, leader id, peers, leader = the node);
//! `getSyncStateSet` (master id, epochs, set, replicas alive);
//! `getBrokerEpoch` (each broker's id and epoch list); `getControllerConfig`
//! (the keys we set and a few defaults); `updateControllerConfig`
//! `enableElectUncleanMaster=true` (then read back) and a black-listed key
//! (refused); `electMaster` of the slave (new epochs, new master) and of an
//! unknown id (refused); `haStatus` of the new master (its fields);
//! `cleanBrokerMetadata` of a living broker (refused) and, once it is
//! SIGKILLed and seen dead, of that broker (done; the set no longer lists
//! it). `CTL_OURS_AS_JAVA=1` runs it with Java on both sides.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use compat_tests::controller::{
    controller_broker, kill_broker, Admin, ControllerGroup, ControllerKind, SyncState, BROKER_NAME,
    CLUSTER, DLEDGER_GROUP, VERSION,
};
use compat_tests::{serial, JavaBroker, JavaNamesrv};

/// Config keys compared (set by the harness or the test, or defaults).
const CONFIG_KEYS: [&str; 8] = [
    "controllerDLegerGroup",
    "controllerDLegerSelfId",
    "mappedFileSize",
    "enableElectUncleanMaster",
    "notifyBrokerRoleChanged",
    "scanNotActiveBrokerInterval",
    "electMasterMaxRetryCount",
    "controllerType",
];

/// What one run saw, with addresses replaced by roles.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    metadata: Vec<String>,
    sync_state_set: Vec<String>,
    broker_epochs: Vec<String>,
    config: BTreeMap<String, Option<String>>,
    update: Vec<String>,
    elect: Vec<String>,
    ha_status_keys: Vec<String>,
    clean: Vec<String>,
}

fn run(kind: ControllerKind) -> Seen {
    let ns = JavaNamesrv::start(VERSION);
    // Our controller's default scan is 1000 ms (Java's 5000): set it, so
    // the printed value shows the key is honoured on both.
    let mut group = ControllerGroup::start(&[kind], "scanNotActiveBrokerInterval=5000\n");
    let admin = Admin::new(group.dir.path());
    let addr = group.members[0].addr.clone();
    let mut brokers = [
        controller_broker(&ns.addr, &addr, ""),
        controller_broker(&ns.addr, &addr, ""),
    ];
    let blogs = |b: &[JavaBroker]| {
        format!(
            "{}\n{}",
            b.iter().map(JavaBroker::logs).collect::<String>(),
            ns.logs()
        )
    };
    let s1 = group.wait_sync_state(
        "a master and both brokers in sync",
        Duration::from_secs(120),
        &|| blogs(&brokers),
        |s| s.master_broker_id.is_some() && s.in_sync.len() == 2,
    );
    let master_addr = s1.master_address.clone().unwrap_or_default();
    let broker_addrs: Vec<String> = brokers.iter().map(|b| b.addr.clone()).collect();
    let role = |a: &str| -> String {
        if a == master_addr {
            "first-master".into()
        } else if broker_addrs.iter().any(|b| b == a) {
            "first-slave".into()
        } else if a == addr {
            "controller".into()
        } else {
            format!("unknown {a}")
        }
    };
    let mut seen = Seen {
        metadata: Vec::new(),
        sync_state_set: Vec::new(),
        broker_epochs: Vec::new(),
        config: BTreeMap::new(),
        update: Vec::new(),
        elect: Vec::new(),
        ha_status_keys: Vec::new(),
        clean: Vec::new(),
    };

    // getControllerMetaData
    let (m, out) = admin.controller_metadata(&addr);
    let m = m.unwrap_or_else(|| panic!("getControllerMetaData:\n{out}"));
    seen.metadata = vec![
        format!("group={}", m.group),
        format!("leaderId={}", m.leader_id),
        format!("leaderAddr={}", role(&m.leader_addr)),
        format!(
            "peers={:?}",
            m.peers
                .iter()
                .map(|p| p.replace(&addr, "controller"))
                .collect::<Vec<_>>()
        ),
    ];
    assert_eq!(m.group, DLEDGER_GROUP, "{out}");

    // getSyncStateSet
    let show_ss = |a: &compat_tests::controller::AdminSyncState| {
        let mut v = vec![
            format!("master={} {}", a.master_broker_id, role(&a.master_addr)),
            format!("masterEpoch={}", a.master_epoch),
            format!("syncStateSetEpoch={}", a.sync_state_set_epoch),
            format!("nums={}", a.sync_state_set_nums),
        ];
        for (tag, list) in [("in", &a.in_sync), ("notIn", &a.not_in_sync)] {
            let mut l: Vec<String> = list
                .iter()
                .map(|(id, ad, alive)| format!("{tag} {id} {} alive={alive}", role(ad)))
                .collect();
            l.sort();
            v.extend(l);
        }
        v
    };
    let (ss, out) = admin.sync_state_set(&addr, BROKER_NAME);
    let ss = ss.unwrap_or_else(|| panic!("getSyncStateSet:\n{out}"));
    seen.sync_state_set = show_ss(&ss);

    // getBrokerEpoch
    let (epochs, out) = admin.broker_epochs(&ns.addr, BROKER_NAME);
    let mut e: Vec<String> = epochs
        .iter()
        .map(|b| {
            format!(
                "{} {} {} id={} epochs={:?}",
                b.cluster,
                b.broker_name,
                role(&b.broker_addr),
                b.broker_id,
                b.epochs
                    .iter()
                    .map(|x| (x.epoch, x.start))
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    e.sort();
    assert_eq!(e.len(), 2, "getBrokerEpoch:\n{out}");
    seen.broker_epochs = e;

    // getControllerConfig
    let (cfg, out) = admin.controller_config(&addr);
    let c = cfg
        .get(&addr)
        .unwrap_or_else(|| panic!("getControllerConfig:\n{out}"));
    seen.config = CONFIG_KEYS
        .iter()
        .map(|k| (k.to_string(), c.get(*k).cloned()))
        .collect();
    eprintln!("{kind:?}: getControllerConfig prints {} keys", c.len());

    // updateControllerConfig
    let r = admin.update_controller_config(&addr, "enableElectUncleanMaster", "true");
    seen.update
        .push(format!("enableElectUncleanMaster=true ok={}", r.is_ok()));
    let (cfg, _) = admin.controller_config(&addr);
    seen.update.push(format!(
        "read back {:?}",
        cfg.get(&addr)
            .and_then(|c| c.get("enableElectUncleanMaster"))
    ));
    let r = admin.update_controller_config(&addr, "configStorePath", "/nonexistent/x");
    seen.update
        .push(format!("configStorePath ok={}", r.is_ok()));

    // electMaster: the slave, then an unknown id.
    let master = s1.master_broker_id.unwrap_or(-1);
    let slave = s1
        .in_sync_ids()
        .into_iter()
        .find(|i| *i != master)
        .unwrap_or(-1);
    match admin.elect_master(&addr, CLUSTER, BROKER_NAME, slave) {
        Ok(e) => seen.elect.push(format!(
            "elect {slave}: {} {} master={} masterEpoch={} syncStateSetEpoch={}",
            e.cluster,
            e.broker_name,
            role(&e.master_addr),
            e.master_epoch,
            e.sync_state_set_epoch
        )),
        Err(out) => seen.elect.push(format!("elect {slave} failed: {out}")),
    }
    let s2: SyncState = group.wait_sync_state(
        "the designated master with both in sync",
        Duration::from_secs(60),
        &|| blogs(&brokers),
        |s| s.master_broker_id == Some(slave) && s.in_sync.len() == 2,
    );
    seen.elect.push(format!(
        "after: masterEpoch={} syncStateSetEpoch={}",
        s2.master_epoch, s2.sync_state_set_epoch
    ));
    let r = admin.elect_master(&addr, CLUSTER, BROKER_NAME, 99);
    seen.elect.push(format!("elect 99 ok={}", r.is_ok()));

    // haStatus of the new master, once its slave is connected.
    let new_master = s2.master_address.clone().unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let fields = loop {
        let (f, out) = admin.ha_status(&ns.addr, &new_master);
        if f.get("InSyncSlaveNum").map(String::as_str) == Some("1") {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "haStatus of {new_master}:\n{out}\n{}",
            blogs(&brokers)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    seen.ha_status_keys = fields.keys().cloned().collect();
    assert_eq!(fields.get("MasterAddr"), Some(&new_master));

    // cleanBrokerMetadata: a living broker (refused), then a dead one.
    let victim = master;
    let r = admin.clean_broker_metadata(
        &addr,
        CLUSTER,
        BROKER_NAME,
        Some(&victim.to_string()),
        false,
    );
    seen.clean.push(format!("living {victim} ok={}", r.is_ok()));
    let v = brokers
        .iter()
        .position(|b| b.addr == master_addr)
        .expect("first master");
    kill_broker(&mut brokers[v]);
    group.wait_sync_state(
        "the killed broker seen dead",
        Duration::from_secs(60),
        &|| blogs(&brokers),
        |s| {
            s.in_sync
                .iter()
                .chain(&s.not_in_sync)
                .any(|r| r.broker_id == victim && !r.alive)
        },
    );
    let r = admin.clean_broker_metadata(
        &addr,
        CLUSTER,
        BROKER_NAME,
        Some(&victim.to_string()),
        false,
    );
    seen.clean.push(format!(
        "dead {victim} ok={}{}",
        r.is_ok(),
        r.err().map(|e| format!(": {e}")).unwrap_or_default()
    ));
    let (ss, out) = admin.sync_state_set(&addr, BROKER_NAME);
    let ss = ss.unwrap_or_else(|| panic!("getSyncStateSet after the clean:\n{out}"));
    seen.clean.extend(show_ss(&ss));
    eprintln!("{kind:?}: {seen:#?}");
    seen
}

#[test]
fn mqadmin_controller_commands_side_by_side() {
    let _serial = serial();
    let java = run(ControllerKind::Java);
    let ours = run(ControllerKind::Ours);
    assert_eq!(
        ours, java,
        "mqadmin output against our controller (left) and Java's (right) differ"
    );
}
