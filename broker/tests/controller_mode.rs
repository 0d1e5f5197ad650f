//! Controller mode against in-process fake controllers (controller.md §4
//! answers) and a fake name server: identity files, registration, role
//! changes by epoch, GET_BROKER_EPOCH_CACHE, leader change.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker::{Broker, BrokerConfig};
use common::{FakeNamesrv, TestBroker, TIMEOUT};
use remoting::code::{request_code as rq, response_code};
use remoting::{serve, Connection, RemotingCommand, Router, ServerConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const HEARTBEAT: i32 = 904;
const ALTER: i32 = 1001;
const ELECT: i32 = 1002;
const REGISTER: i32 = 1003;
const REPLICA_INFO: i32 = 1004;
const METADATA: i32 = 1005;
const EPOCH_CACHE: i32 = 1007;
const NOTIFY: i32 = 1008;
const NEXT_ID: i32 = 1012;
const APPLY_ID: i32 = 1013;

/// The replicated state of one broker set, as a controller keeps it.
#[derive(Default)]
struct FakeState {
    /// What 1005 names as leader (`None`: nobody).
    leader: Option<String>,
    /// Answer 2007 to every leader-only code.
    not_leader: bool,
    next_id: i64,
    members: BTreeMap<i64, (String, String)>,
    /// Ids whose APPLY is refused once with 2014.
    refuse_apply_once: BTreeSet<i64>,
    master: Option<i64>,
    master_epoch: i32,
    set: BTreeSet<i64>,
    set_epoch: i32,
    /// ELECT_MASTER answers 2012 (no candidate).
    refuse_elect: bool,
    log: Vec<RemotingCommand>,
}

#[derive(Clone)]
struct FakeController {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    shutdown: CancellationToken,
}

fn set_body(set: &BTreeSet<i64>, epoch: i32) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"syncStateSet": set, "syncStateSetEpoch": epoch}))
        .unwrap()
}

fn answer(st: &mut FakeState, req: &RemotingCommand) -> RemotingCommand {
    let ext = |k: &str| req.ext(k).unwrap_or_default().to_owned();
    let leader_only = !matches!(req.code, HEARTBEAT | METADATA);
    if leader_only && st.not_leader {
        return RemotingCommand::response(2007)
            .with_remark("The controller is not in leader state");
    }
    let with_master = |st: &FakeState, r: RemotingCommand| match st.master {
        Some(m) => r
            .with_ext("masterBrokerId", m.to_string())
            .with_ext("masterAddress", st.members[&m].0.clone())
            .with_ext("masterEpoch", st.master_epoch.to_string())
            .with_ext("syncStateSetEpoch", st.set_epoch.to_string()),
        None => r,
    };
    match req.code {
        METADATA => {
            let r = RemotingCommand::success()
                .with_ext("group", "g")
                .with_ext("controllerLeaderId", "n0")
                .with_ext("isLeader", "true")
                .with_ext("peers", "");
            match &st.leader {
                Some(l) => r.with_ext("controllerLeaderAddress", l.clone()),
                None => r,
            }
        }
        NEXT_ID => RemotingCommand::success()
            .with_ext("clusterName", ext("clusterName"))
            .with_ext("brokerName", ext("brokerName"))
            .with_ext("nextBrokerId", st.next_id.max(1).to_string()),
        APPLY_ID => {
            let id: i64 = ext("appliedBrokerId").parse().unwrap_or(-1);
            let code = ext("registerCheckCode");
            let free_or_same = st.members.get(&id).is_none_or(|(_, c)| *c == code);
            if st.refuse_apply_once.remove(&id) || !free_or_same {
                st.next_id = st.next_id.max(id + 1);
                return RemotingCommand::response(2014).with_remark("Fail to apply brokerId");
            }
            let addr = code.split(';').next().unwrap_or_default().to_owned();
            st.members.insert(id, (addr, code));
            st.next_id = st.next_id.max(id + 1);
            RemotingCommand::success()
                .with_ext("clusterName", ext("clusterName"))
                .with_ext("brokerName", ext("brokerName"))
        }
        REGISTER => {
            let id: i64 = ext("brokerId").parse().unwrap_or(-1);
            let Some(m) = st.members.get_mut(&id) else {
                return RemotingCommand::response(2010).with_remark("need register");
            };
            m.0 = ext("brokerAddress");
            with_master(st, RemotingCommand::success())
                .with_ext("clusterName", ext("clusterName"))
                .with_ext("brokerName", ext("brokerName"))
                .with_body(set_body(&st.set, st.set_epoch))
        }
        ELECT => {
            let id: i64 = ext("brokerId").parse().unwrap_or(-1);
            if st.refuse_elect {
                return RemotingCommand::response(2012).with_remark("Failed to elect a new master");
            }
            if st.master.is_some() {
                return with_master(st, RemotingCommand::response(2011))
                    .with_body(set_body(&st.set, st.set_epoch));
            }
            if !st.members.contains_key(&id) {
                return RemotingCommand::response(2010);
            }
            st.master = Some(id);
            st.master_epoch += 1;
            st.set = [id].into_iter().collect();
            st.set_epoch += 1;
            let body = serde_json::json!({"brokerMemberGroup": {"brokerAddrs": {}, "brokerName": "x", "cluster": "c"}, "syncStateSet": [id]});
            with_master(st, RemotingCommand::success())
                .with_body(serde_json::to_vec(&body).unwrap())
        }
        REPLICA_INFO => {
            let r = RemotingCommand::success()
                .with_ext("masterEpoch", st.master_epoch.to_string())
                .with_body(set_body(&st.set, st.set_epoch));
            match st.master {
                Some(m) => r
                    .with_ext("masterBrokerId", m.to_string())
                    .with_ext("masterAddress", st.members[&m].0.clone()),
                None => r,
            }
        }
        ALTER => {
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let proposed: BTreeSet<i64> = body["syncStateSet"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
                .unwrap_or_default();
            let master: i64 = ext("masterBrokerId").parse().unwrap_or(-1);
            let epoch: i32 = ext("masterEpoch").parse().unwrap_or(-1);
            if st.master != Some(master) || epoch != st.master_epoch {
                return RemotingCommand::response(2000).with_ext("newSyncStateSetEpoch", "0");
            }
            if body["syncStateSetEpoch"].as_i64() != Some(i64::from(st.set_epoch)) {
                return RemotingCommand::response(2001).with_ext("newSyncStateSetEpoch", "0");
            }
            if proposed == st.set || !proposed.contains(&master) {
                return RemotingCommand::response(2013).with_ext("newSyncStateSetEpoch", "0");
            }
            st.set = proposed;
            st.set_epoch += 1;
            RemotingCommand::success()
                .with_ext("newSyncStateSetEpoch", st.set_epoch.to_string())
                .with_body(set_body(&st.set, st.set_epoch))
        }
        HEARTBEAT => RemotingCommand::success(),
        _ => RemotingCommand::response(response_code::REQUEST_CODE_NOT_SUPPORTED),
    }
}

impl FakeController {
    fn stop(&self) {
        self.shutdown.cancel();
    }

    async fn start() -> FakeController {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(FakeState {
            leader: Some(addr.to_string()),
            next_id: 1,
            ..Default::default()
        }));
        let mut router = Router::new();
        for code in [
            HEARTBEAT,
            ALTER,
            ELECT,
            REGISTER,
            REPLICA_INFO,
            METADATA,
            NEXT_ID,
            APPLY_ID,
        ] {
            let state = state.clone();
            router = router.route(code, move |_c: Connection, req: RemotingCommand| {
                let resp = {
                    let mut st = state.lock().unwrap();
                    st.log.push(req.clone());
                    answer(&mut st, &req)
                };
                async move { Ok(resp) }
            });
        }
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(
            listener,
            Arc::new(router),
            ServerConfig::default(),
            shutdown.clone(),
        ));
        FakeController {
            addr,
            state,
            shutdown,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    fn codes(&self) -> Vec<i32> {
        self.with(|s| s.log.iter().map(|r| r.code).collect())
    }

    fn requests(&self, code: i32) -> Vec<RemotingCommand> {
        self.with(|s| s.log.iter().filter(|r| r.code == code).cloned().collect())
    }

    async fn wait_for(&self, what: &str, pred: impl Fn(&FakeState) -> bool) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if self.with(|s| pred(s)) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "controller never saw {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn controller_config(
    dir: &Path,
    ns: &FakeNamesrv,
    controllers: &[&FakeController],
) -> BrokerConfig {
    let mut c = common::config(dir, Some(ns.addr));
    c.enable_controller_mode = true;
    c.controller_addr = controllers
        .iter()
        .map(|c| c.addr.to_string())
        .collect::<Vec<_>>()
        .join(";");
    c.broker_role = broker::BrokerRole::Slave;
    c.broker_id = -1;
    c.broker_heartbeat_interval = 100;
    c.sync_broker_metadata_period = 200;
    c.sync_controller_metadata_period = 300;
    c.ha_listen_port = common::free_port().into();
    c
}

fn state_version(register: &RemotingCommand) -> i64 {
    let v: serde_json::Value = serde_json::from_slice(&register.body).unwrap();
    v["topicConfigSerializeWrapper"]["dataVersion"]["stateVersion"]
        .as_i64()
        .unwrap()
}

fn registered_as(r: &RemotingCommand, id: i64) -> bool {
    r.code == rq::REGISTER_BROKER && r.ext("brokerId") == Some(id.to_string().as_str())
}

async fn put(client: &common::Client, topic: &str) -> RemotingCommand {
    client.call(common::send_v1(topic, 0, "", b"hello")).await
}

async fn put_code_eventually(client: &common::Client, code: i32) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let r = put(client, "TopicC").await;
        if r.code == code {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "put never answered {code}, last {} {:?}",
            r.code,
            r.remark
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn notify(master: i64, addr: &str, epoch: i32, set_epoch: i32) -> RemotingCommand {
    RemotingCommand::request(NOTIFY)
        .with_ext("masterAddress", addr)
        .with_ext("masterEpoch", epoch.to_string())
        .with_ext("syncStateSetEpoch", set_epoch.to_string())
        .with_ext("masterBrokerId", master.to_string())
        .with_body(set_body(&[master].into_iter().collect(), set_epoch))
}

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

/// A name server that, as Java's route table, tells a slave its master's
/// HA address in the REGISTER_BROKER answer.
struct RouteNamesrv {
    addr: SocketAddr,
    /// brokerId → (brokerAddr, haServerAddr), latest registration.
    table: Arc<Mutex<BTreeMap<i64, (String, String)>>>,
    registrations: Arc<Mutex<Vec<RemotingCommand>>>,
    shutdown: CancellationToken,
}

impl RouteNamesrv {
    async fn start() -> RouteNamesrv {
        let table: Arc<Mutex<BTreeMap<i64, (String, String)>>> = Arc::default();
        let registrations: Arc<Mutex<Vec<RemotingCommand>>> = Arc::default();
        let (t, r) = (table.clone(), registrations.clone());
        let router = Router::new()
            .route(
                rq::REGISTER_BROKER,
                move |_c: Connection, req: RemotingCommand| {
                    let ext = |k: &str| req.ext(k).unwrap_or_default().to_owned();
                    let id: i64 = ext("brokerId").parse().unwrap_or(-1);
                    let addr = ext("brokerAddr");
                    let mut table = t.lock().unwrap();
                    // An address registering under a new id leaves its old one.
                    table.retain(|_, (a, _)| *a != addr);
                    table.insert(id, (addr, ext("haServerAddr")));
                    r.lock().unwrap().push(req.clone());
                    let mut resp = RemotingCommand::success();
                    if id != 0 {
                        if let Some((master, ha)) = table.get(&0) {
                            resp = resp
                                .with_ext("masterAddr", master.clone())
                                .with_ext("haServerAddr", ha.clone());
                        }
                    }
                    async move { Ok(resp) }
                },
            )
            .route(
                rq::UNREGISTER_BROKER,
                |_c: Connection, _r: RemotingCommand| async { Ok(RemotingCommand::success()) },
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(
            listener,
            Arc::new(router),
            ServerConfig::default(),
            shutdown.clone(),
        ));
        RouteNamesrv {
            addr,
            table,
            registrations,
            shutdown,
        }
    }
}

async fn max_offset(client: &common::Client) -> i64 {
    let r = client.call(RemotingCommand::request(EPOCH_CACHE)).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["maxOffset"].as_i64().unwrap()
}

async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
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
    for _ in 0..20 {
        assert_eq!(put(&ca, "TopicC").await.code, response_code::SUCCESS);
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
    put_code_eventually(&cb, response_code::SUCCESS).await;
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
    a.stop().await;
    b.stop().await;
    ns.shutdown.cancel();
    ctl.stop();
}
