//! Controller mode against in-process fake controllers (controller.md §4
//! answers) and a fake name server: identity files, registration, role
//! changes by epoch, GET_BROKER_EPOCH_CACHE, leader change.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use broker::Broker;
use common::controller::*;
use common::{FakeNamesrv, TestBroker};
use remoting::code::{request_code as rq, response_code};
use remoting::RemotingCommand;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_registers_elects_and_follows_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let ns = FakeNamesrv::start().await;
    let ctl = FakeController::start().await;
    let b: TestBroker = common::start(controller_config(dir.path(), &ns, &[&ctl])).await;
    let own = b.addr.to_string();

    // Registered as master (id 0) with stateVersion = masterEpoch 1.
    let reg = ns
        .wait_for("registration as master", |r| registered_as(r, 0))
        .await;
    assert_eq!(state_version(&reg), 1);
    assert!(
        ns.with_code(rq::REGISTER_BROKER)
            .iter()
            .all(|r| registered_as(r, 0)),
        "no registration while isolated"
    );

    // Identity files with Java's bytes; the temp file is gone.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("brokerIdentity")).unwrap(),
        "TestCluster#broker-t#1"
    );
    assert!(!dir.path().join("brokerIdentity-temp").exists());
    // The start-up sequence of §6.2.
    let codes = ctl.codes();
    let first = |c: i32| codes.iter().position(|x| *x == c).unwrap();
    assert_eq!(codes[0], METADATA);
    assert!(first(NEXT_ID) < first(APPLY_ID) && first(APPLY_ID) < first(REGISTER));
    assert!(first(REGISTER) < first(HEARTBEAT) && first(HEARTBEAT) < first(ELECT));
    let apply = &ctl.requests(APPLY_ID)[0];
    assert_eq!(apply.ext("appliedBrokerId"), Some("1"));
    let check = apply.ext("registerCheckCode").unwrap();
    assert!(check.starts_with(&format!("{own};")), "{check}");
    assert!(check[own.len() + 1..].parse::<i64>().is_ok());
    let register = &ctl.requests(REGISTER)[0];
    assert_eq!(register.ext("brokerAddress"), Some(own.as_str()));
    assert_eq!(register.ext("brokerId"), Some("1"));

    // Heartbeats carry the controller id and the epoch.
    ctl.wait_for("a heartbeat with epoch 1", |s| {
        s.log
            .iter()
            .any(|r| r.code == HEARTBEAT && r.ext("epoch") == Some("1"))
    })
    .await;
    let hb = ctl.requests(HEARTBEAT).pop().unwrap();
    assert_eq!(hb.ext("brokerId"), Some("1"));
    assert_eq!(hb.ext("brokerAddr"), Some(own.as_str()));
    // Ours defaults to 3000 (Java 10000) for fast failure detection.
    assert_eq!(hb.ext("heartbeatTimeoutMills"), Some("2000"));
    assert_eq!(
        hb.ext("electionPriority"),
        Some(i32::MAX.to_string().as_str())
    );

    // Master: puts accepted; 1007 answers the epoch cache.
    let client = common::connect(b.addr).await;
    assert_eq!(client.call(common::create_topic("TopicC", 1)).await.code, 0);
    put_code_eventually(&client, response_code::SUCCESS).await;
    let cache = client.call(RemotingCommand::request(EPOCH_CACHE)).await;
    assert_eq!(cache.code, 0);
    let v: serde_json::Value = serde_json::from_slice(&cache.body).unwrap();
    let text = String::from_utf8(cache.body.to_vec()).unwrap();
    assert!(text.starts_with(r#"{"brokerId":0,"brokerName":"broker-t","clusterName":"TestCluster","epochList":[{"endOffset":9223372036854775807,"epoch":1,"startOffset":0}],"maxOffset":"#), "{text}");
    assert!(v["maxOffset"].as_i64().unwrap() > 0);

    // Junk and an equal epoch naming another master: ignored.
    client
        .conn
        .oneway(RemotingCommand::request(NOTIFY).with_ext("masterEpoch", "x"))
        .await
        .unwrap();
    client
        .conn
        .oneway(notify(2, "127.0.0.1:1", 1, 9))
        .await
        .unwrap();
    client
        .conn
        .oneway(
            RemotingCommand::request(NOTIFY)
                .with_ext("masterEpoch", "7")
                .with_ext("syncStateSetEpoch", "7")
                .with_body(&b"{not json"[..]),
        )
        .await
        .unwrap();
    // A higher epoch naming another master: slave with its controller id.
    ctl.with(|s| {
        s.members.insert(2, ("127.0.0.1:1".into(), "c".into()));
        s.master = Some(2);
        s.master_epoch = 2;
        s.set = [2].into_iter().collect();
        s.set_epoch = 2;
    });
    client
        .conn
        .oneway(notify(2, "127.0.0.1:1", 2, 2))
        .await
        .unwrap();
    let reg = ns
        .wait_for("registration as slave", |r| registered_as(r, 1))
        .await;
    assert_eq!(state_version(&reg), 2);
    put_code_eventually(&client, response_code::SYSTEM_BUSY).await;
    // The ignored ones did not change anything in between: one slave
    // registration, after the masters.
    let regs = ns.with_code(rq::REGISTER_BROKER);
    let first_slave = regs.iter().position(|r| registered_as(r, 1)).unwrap();
    assert!(regs[..first_slave].iter().all(|r| registered_as(r, 0)));
    let cache = client.call(RemotingCommand::request(EPOCH_CACHE)).await;
    let v: serde_json::Value = serde_json::from_slice(&cache.body).unwrap();
    assert_eq!(v["brokerId"], 1);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reuses_id_and_temp_file_reapplies_it() {
    let ns = FakeNamesrv::start().await;
    // brokerIdentity present: straight to REGISTER_BROKER with that id.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("brokerIdentity"), "TestCluster#broker-t#3").unwrap();
    let ctl = FakeController::start().await;
    ctl.with(|s| {
        s.members.insert(3, ("x".into(), "x;1".into()));
        s.next_id = 4;
    });
    let b = common::start(controller_config(dir.path(), &ns, &[&ctl])).await;
    ns.wait_for("registration as master", |r| registered_as(r, 0))
        .await;
    assert!(ctl.requests(NEXT_ID).is_empty() && ctl.requests(APPLY_ID).is_empty());
    assert_eq!(ctl.requests(REGISTER)[0].ext("brokerId"), Some("3"));
    b.stop().await;

    // Only the temp file: APPLY_BROKER_ID again with its id and check code.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("brokerIdentity-temp"),
        "TestCluster#broker-t#2#127.0.0.1:1;1726700000000",
    )
    .unwrap();
    let ctl = FakeController::start().await;
    ctl.with(|s| {
        s.members.insert(1, ("y".into(), "y;1".into()));
        s.members.insert(
            2,
            ("127.0.0.1:1".into(), "127.0.0.1:1;1726700000000".into()),
        );
        s.next_id = 3;
    });
    let b = common::start(controller_config(dir.path(), &ns, &[&ctl])).await;
    ctl.wait_for("REGISTER_BROKER", |s| {
        s.log.iter().any(|r| r.code == REGISTER)
    })
    .await;
    assert!(ctl.requests(NEXT_ID).is_empty());
    let apply = &ctl.requests(APPLY_ID)[0];
    assert_eq!(apply.ext("appliedBrokerId"), Some("2"));
    assert_eq!(
        apply.ext("registerCheckCode"),
        Some("127.0.0.1:1;1726700000000")
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("brokerIdentity")).unwrap(),
        "TestCluster#broker-t#2"
    );
    assert!(!dir.path().join("brokerIdentity-temp").exists());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_apply_goes_back_to_next_id_and_a_live_master_makes_a_slave() {
    let dir = tempfile::tempdir().unwrap();
    let ns = FakeNamesrv::start().await;
    let ctl = FakeController::start().await;
    // Broker 1 is master already (epoch 3); our first apply of 2 is refused.
    ctl.with(|s| {
        s.members
            .insert(1, ("127.0.0.1:1".into(), "127.0.0.1:1;1".into()));
        s.next_id = 2;
        s.refuse_apply_once.insert(2);
        s.master = Some(1);
        s.master_epoch = 3;
        s.set = [1].into_iter().collect();
        s.set_epoch = 3;
    });
    let b = common::start(controller_config(dir.path(), &ns, &[&ctl])).await;
    let reg = ns
        .wait_for("registration as slave", |r| registered_as(r, 3))
        .await;
    assert_eq!(state_version(&reg), 3);
    let applied: Vec<_> = ctl
        .requests(APPLY_ID)
        .iter()
        .map(|r| r.ext("appliedBrokerId").unwrap().to_owned())
        .collect();
    assert_eq!(applied, ["2", "3"]);
    assert_eq!(ctl.requests(NEXT_ID).len(), 2);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("brokerIdentity")).unwrap(),
        "TestCluster#broker-t#3"
    );
    assert!(
        ctl.requests(ELECT).is_empty(),
        "a master exists: no election"
    );
    let client = common::connect(b.addr).await;
    put_code_eventually(&client, response_code::SYSTEM_BUSY).await;

    // The master's epoch goes up with this broker as master (1004 poll).
    ctl.with(|s| {
        s.master = Some(3);
        s.master_epoch = 4;
        s.set = [3].into_iter().collect();
        s.set_epoch = 4;
    });
    let reg = ns
        .wait_for("registration as master", |r| registered_as(r, 0))
        .await;
    assert_eq!(state_version(&reg), 4);
    assert_eq!(client.call(common::create_topic("TopicC", 1)).await.code, 0);
    put_code_eventually(&client, response_code::SUCCESS).await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_until_a_master_is_known() {
    let dir = tempfile::tempdir().unwrap();
    let ns = FakeNamesrv::start().await;
    let ctl = FakeController::start().await;
    ctl.with(|s| s.refuse_elect = true);
    let b = common::start(controller_config(dir.path(), &ns, &[&ctl])).await;
    ctl.wait_for("ELECT_MASTER", |s| s.log.iter().any(|r| r.code == ELECT))
        .await;
    let client = common::connect(b.addr).await;
    assert_eq!(client.call(common::create_topic("TopicC", 1)).await.code, 0);
    assert_eq!(
        put(&client, "TopicC").await.code,
        response_code::SYSTEM_BUSY
    );
    assert!(
        ns.with_code(rq::REGISTER_BROKER).is_empty(),
        "isolated: no registration"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_change_is_followed_after_not_leader() {
    let dir = tempfile::tempdir().unwrap();
    let ns = FakeNamesrv::start().await;
    let a = FakeController::start().await;
    let b_ctl = FakeController::start().await;
    let b = common::start(controller_config(dir.path(), &ns, &[&a, &b_ctl])).await;
    ns.wait_for("registration as master", |r| registered_as(r, 0))
        .await;
    // Heartbeats go to every controller.
    b_ctl
        .wait_for("a heartbeat", |s| s.log.iter().any(|r| r.code == HEARTBEAT))
        .await;
    a.wait_for("GET_REPLICA_INFO at the first leader", |s| {
        s.log.iter().any(|r| r.code == REPLICA_INFO)
    })
    .await;
    // Hand the broker set over to B; A is no longer leader.
    let copied = a.with(|s| {
        (
            s.members.clone(),
            s.master,
            s.master_epoch,
            s.set.clone(),
            s.set_epoch,
        )
    });
    b_ctl.with(|s| {
        (s.members, s.master, s.master_epoch, s.set, s.set_epoch) = copied.clone();
    });
    let b_addr = b_ctl.addr.to_string();
    a.with(|s| {
        s.not_leader = true;
        s.leader = Some(b_addr.clone());
    });
    b_ctl.with(|s| s.leader = Some(b_addr.clone()));
    b_ctl
        .wait_for("GET_REPLICA_INFO at the new leader", |s| {
            s.log.iter().any(|r| r.code == REPLICA_INFO)
        })
        .await;
    assert!(a.with(|s| s
        .log
        .iter()
        .any(|r| r.code == REPLICA_INFO && r.ext("brokerName") == Some("broker-t"))));
    // No role change: still one master registration stream.
    assert!(ns
        .with_code(rq::REGISTER_BROKER)
        .iter()
        .all(|r| registered_as(r, 0)));
    b.stop().await;
    a.stop();
    b_ctl.stop();
}

#[tokio::test]
async fn refused_configs_and_plain_broker_answers() {
    let dir = tempfile::tempdir().unwrap();
    let ns = FakeNamesrv::start().await;
    let ctl = FakeController::start().await;
    let mut c = controller_config(dir.path(), &ns, &[&ctl]);
    c.enable_d_leger_commit_log = true;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("enableControllerMode"), "{err}");

    std::fs::write(dir.path().join("brokerIdentity"), "TestCluster#other#1").unwrap();
    let c = controller_config(dir.path(), &ns, &[&ctl]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = Broker::start(listener, None, c, None, CancellationToken::new())
        .await
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("other"), "{err:#}");
    assert!(ctl.codes().is_empty());

    // Not in controller mode: 1007 refused, 1008 ignored.
    let dir = tempfile::tempdir().unwrap();
    let mut c = common::config(dir.path(), None);
    c.ha_listen_port = common::free_port().into();
    let b = common::start(c).await;
    let client = common::connect(b.addr).await;
    let r = client.call(RemotingCommand::request(EPOCH_CACHE)).await;
    assert_eq!(r.code, response_code::SYSTEM_ERROR);
    assert_eq!(
        r.remark.as_deref(),
        Some("this request only for controllerMode ")
    );
    client
        .conn
        .oneway(notify(2, "127.0.0.1:1", 5, 5))
        .await
        .unwrap();
    assert_eq!(client.call(common::create_topic("TopicC", 1)).await.code, 0);
    assert_eq!(put(&client, "TopicC").await.code, 0);
    b.stop().await;
}

/// A put to queue 0 of TopicC with `KEYS` = `key`.
async fn put_keyed(client: &common::Client, key: &str) -> RemotingCommand {
    let props = common::props(&[("KEYS", key)]);
    client
        .call(common::send_v1("TopicC", 0, &props, b"hello"))
        .await
}

/// (queue, queue offset, key) of a SEND_OK.
fn ack_of(r: &RemotingCommand, key: &str) -> (i32, i64, String) {
    let q = r.ext("queueId").and_then(|v| v.parse().ok()).unwrap();
    let o = r.ext("queueOffset").and_then(|v| v.parse().ok()).unwrap();
    (q, o, key.to_owned())
}

/// The invariant over `acks` against the broker behind `client`.
async fn assert_acks_on(client: &common::Client, acks: &[(i32, i64, String)]) {
    let mut seen = BTreeSet::new();
    for (q, o, _) in acks {
        assert!(
            seen.insert((*q, *o)),
            "({q}, {o}) acknowledged twice: {acks:?}"
        );
    }
    let mut stored = std::collections::BTreeMap::new();
    let mut next = 0i64;
    for _ in 0..100 {
        let r = client
            .call(common::pull("g-inv", "TopicC", 0, next, 0x4, Some("*"), 0))
            .await;
        if r.code != response_code::SUCCESS {
            break;
        }
        let recs = common::decode_records(r.body.clone());
        if recs.is_empty() {
            break;
        }
        for rec in &recs {
            let key = common::prop(rec, "KEYS").unwrap_or("-").to_owned();
            stored.insert((rec.queue_id, rec.queue_offset), key);
        }
        next = recs.last().map_or(next, |r| r.queue_offset + 1);
    }
    for (q, o, key) in acks {
        assert_eq!(
            stored.get(&(*q, *o)).map(String::as_str),
            Some(key.as_str()),
            "acknowledged {key} at ({q}, {o}); stored: {stored:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_replicate_and_fail_over() {
    let ns = RouteNamesrv::start().await;
    let fake_ns = FakeNamesrv::start().await;
    let ctl = FakeController::start().await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = |dir: &Path| {
        let mut c = controller_config(dir, &fake_ns, &[&ctl]);
        c.namesrv_addr = ns.addr.to_string();
        c
    };
    let a = common::start(cfg(da.path())).await;
    wait_until("A registered as master", || async {
        ns.table.lock().unwrap().contains_key(&0)
    })
    .await;
    let b = common::start(cfg(db.path())).await;
    wait_until("B registered as slave 2", || async {
        ns.table.lock().unwrap().contains_key(&2)
    })
    .await;

    let ca = common::connect(a.addr).await;
    let cb = common::connect(b.addr).await;
    assert_eq!(ca.call(common::create_topic("TopicC", 1)).await.code, 0);
    let mut acks = Vec::new();
    for i in 0..20 {
        let r = put_keyed(&ca, &format!("a-{i}")).await;
        assert_eq!(r.code, response_code::SUCCESS);
        acks.push(ack_of(&r, &format!("a-{i}")));
    }
    let end = max_offset(&ca).await;
    assert!(end > 0);
    wait_until("B caught up", || async { max_offset(&cb).await == end }).await;
    // Caught up: the master asked the controller to add B to the set.
    ctl.wait_for("SyncStateSet {1, 2}", |s| s.set == BTreeSet::from([1, 2]))
        .await;
    // GET_BROKER_HA_STATUS shows the AutoSwitch sides.
    wait_until("A's HA status lists B in sync", || async {
        let r = ca
            .call(RemotingCommand::request(rq::GET_BROKER_HA_STATUS))
            .await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        v["master"] == true
            && v["inSyncSlaveNums"] == 1
            && v["masterCommitLogMaxOffset"] == end
            && v["haConnectionInfo"][0]["inSync"] == true
            && v["haConnectionInfo"][0]["slaveAckOffset"] == end
    })
    .await;
    let r = cb
        .call(RemotingCommand::request(rq::GET_BROKER_HA_STATUS))
        .await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["master"], false);
    assert_eq!(v["haClientRuntimeInfo"]["maxOffset"], end);
    let a_ha = ns.table.lock().unwrap()[&0].1.clone();
    assert_eq!(v["haClientRuntimeInfo"]["masterAddr"], a_ha.as_str());

    // Failover: B is elected (epoch 2); A hears it through 1008 and B
    // through the 1004 poll.
    ctl.with(|s| {
        s.master = Some(2);
        s.master_epoch = 2;
        s.set = BTreeSet::from([2]);
        s.set_epoch += 1;
    });
    let set_epoch = ctl.with(|s| s.set_epoch);
    ca.conn
        .oneway(notify(2, &b.addr.to_string(), 2, set_epoch))
        .await
        .unwrap();
    wait_until("B master and A slave", || async {
        let t = ns.table.lock().unwrap();
        t.get(&0).map(|(addr, _)| addr.clone()) == Some(b.addr.to_string())
            && t.get(&1).map(|(addr, _)| addr.clone()) == Some(a.addr.to_string())
    })
    .await;
    let reg = ns
        .registrations
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|r| r.ext("brokerAddr") == Some(b.addr.to_string().as_str()))
        .cloned()
        .unwrap();
    assert_eq!(reg.ext("brokerId"), Some("0"));
    assert_eq!(state_version(&reg), 2);
    put_code_eventually(&ca, response_code::SYSTEM_BUSY).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    while acks.len() < 30 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B never took 10 puts"
        );
        let key = format!("b-{i}");
        i += 1;
        let r = put_keyed(&cb, &key).await;
        if r.code == response_code::SUCCESS {
            acks.push(ack_of(&r, &key));
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let end = max_offset(&cb).await;
    wait_until("A follows B", || async { max_offset(&ca).await == end }).await;
    // B's epoch list: epoch 1 from A's mastership, epoch 2 from its own.
    let r = cb.call(RemotingCommand::request(EPOCH_CACHE)).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let epochs: Vec<i64> = v["epochList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["epoch"].as_i64().unwrap())
        .collect();
    assert_eq!(epochs, [1, 2]);
    assert_eq!(v["brokerId"], 0);
    // Every acknowledged put is on the new master at the queue offset it
    // was acknowledged with, and no two share an offset.
    assert_acks_on(&cb, &acks).await;
    a.stop().await;
    b.stop().await;
    ns.shutdown.cancel();
    ctl.stop();
}
