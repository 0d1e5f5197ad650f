//! Controller mode's confirm offset and election retries, two of our
//! brokers under a fake controller (the fakes follow controller_mode.rs):
//! with `allAckInSyncStateSet` a message is pullable on the master only
//! once every SyncStateSet member has it, and a held pull wakes when that
//! happens; a broker that sees a newer epoch without a master keeps asking
//! for an election and follows a 2011 answer.
#![allow(clippy::unwrap_used, dead_code)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker::BrokerConfig;
use common::{FakeNamesrv, TIMEOUT};
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
    /// GET_REPLICA_INFO names no master even when there is one (so the
    /// broker asks for an election and hears 2011).
    hide_master: bool,
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
            match st.master.filter(|_| !st.hide_master) {
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

struct RouteNamesrv {
    addr: SocketAddr,
    /// brokerId → (brokerAddr, haServerAddr), latest registration.
    table: Arc<Mutex<BTreeMap<i64, (String, String)>>>,
    /// The HA address slaves are told instead of the master's (a proxy).
    ha_override: Arc<Mutex<Option<String>>>,
    registrations: Arc<Mutex<Vec<RemotingCommand>>>,
    shutdown: CancellationToken,
}

impl RouteNamesrv {
    async fn start() -> RouteNamesrv {
        let table: Arc<Mutex<BTreeMap<i64, (String, String)>>> = Arc::default();
        let registrations: Arc<Mutex<Vec<RemotingCommand>>> = Arc::default();
        let ha_override: Arc<Mutex<Option<String>>> = Arc::default();
        let (t, r, o) = (table.clone(), registrations.clone(), ha_override.clone());
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
                            let ha = o.lock().unwrap().clone().unwrap_or_else(|| ha.clone());
                            resp = resp
                                .with_ext("masterAddr", master.clone())
                                .with_ext("haServerAddr", ha);
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
            ha_override,
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

/// A TCP relay that can be paused (bytes held, connections kept open).
struct Proxy {
    addr: String,
    pause: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (pause, _) = tokio::sync::watch::channel(false);
        let p = pause.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(relay(ri, wo, p.subscribe()));
                tokio::spawn(relay(ro, wi, p.subscribe()));
            }
        });
        Proxy { addr, pause }
    }

    fn set_paused(&self, paused: bool) {
        self.pause.send_replace(paused);
    }
}

async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut pause: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if pause.wait_for(|p| !*p).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

const FOUND: i32 = response_code::SUCCESS;

/// PULL_MESSAGE of queue 0 of TopicC from `offset`; with `suspend_ms` > 0
/// a long poll.
async fn pull_at(client: &common::Client, offset: i64, suspend_ms: i64) -> RemotingCommand {
    const SUSPEND: i32 = 0x2;
    const SUBSCRIPTION: i32 = 0x4;
    let flag = SUBSCRIPTION | if suspend_ms > 0 { SUSPEND } else { 0 };
    client
        .conn
        .request(
            common::pull("cg", "TopicC", 0, offset, flag, Some("*"), suspend_ms),
            Duration::from_millis(suspend_ms as u64) + TIMEOUT,
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_ack_messages_are_pullable_only_once_the_slave_has_them() {
    let ns = RouteNamesrv::start().await;
    let fake_ns = FakeNamesrv::start().await;
    let ctl = FakeController::start().await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = |dir: &Path| {
        let mut c = controller_config(dir, &fake_ns, &[&ctl]);
        c.namesrv_addr = ns.addr.to_string();
        c.all_ack_in_sync_state_set = true;
        c.slave_timeout = 500;
        c.ha_send_heartbeat_interval = 200;
        c
    };
    let a = common::start(cfg(da.path())).await;
    wait_until("A registered as master", || async {
        ns.table.lock().unwrap().contains_key(&0)
    })
    .await;
    // B reaches A's HA port through a relay the test can pause.
    let a_ha = ns.table.lock().unwrap()[&0].1.clone();
    let proxy = Proxy::start(a_ha).await;
    *ns.ha_override.lock().unwrap() = Some(proxy.addr.clone());
    let b = common::start(cfg(db.path())).await;

    let ca = common::connect(a.addr).await;
    let cb = common::connect(b.addr).await;
    assert_eq!(ca.call(common::create_topic("TopicC", 1)).await.code, 0);
    assert_eq!(put(&ca, "TopicC").await.code, FOUND);
    let end = max_offset(&ca).await;
    wait_until("B caught up", || async { max_offset(&cb).await == end }).await;
    ctl.wait_for("SyncStateSet {1, 2}", |s| s.set == BTreeSet::from([1, 2]))
        .await;
    wait_until("A applied the set", || async {
        let r = ca
            .call(RemotingCommand::request(rq::GET_BROKER_HA_STATUS))
            .await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        v["inSyncSlaveNums"] == 1
    })
    .await;
    // Acked by both: pullable on the master.
    assert_eq!(pull_at(&ca, 0, 0).await.code, FOUND);

    // B's link stalls: the put is stored but times out waiting for B
    // (FLUSH_SLAVE_TIMEOUT), and consumers do not see it.
    proxy.set_paused(true);
    let r = put(&ca, "TopicC").await;
    assert_eq!(r.code, response_code::FLUSH_SLAVE_TIMEOUT, "{:?}", r.remark);
    assert!(max_offset(&ca).await > end);
    let r = pull_at(&ca, 1, 0).await;
    assert_eq!(r.code, response_code::PULL_NOT_FOUND);

    // A long poll held now is woken when B's ack moves the confirm offset
    // (no new message arrives), well before its 20 s hold.
    let held = {
        let ca = common::connect(a.addr).await;
        tokio::spawn(async move {
            let t = tokio::time::Instant::now();
            (pull_at(&ca, 1, 20_000).await, t.elapsed())
        })
    };
    // The held pull is registered before the link resumes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.set_paused(false);
    let (r, took) = held.await.unwrap();
    assert_eq!(r.code, FOUND, "{:?}", r.remark);
    assert!(took < Duration::from_secs(10), "held pull took {took:?}");
    let records = common::decode_records(r.body.clone());
    assert_eq!(records.len(), 1);
    a.stop().await;
    b.stop().await;
    ns.shutdown.cancel();
    ctl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_master_keeps_asking_for_an_election_and_follows_2011() {
    let dir = tempfile::tempdir().unwrap();
    let ns = FakeNamesrv::start().await;
    let ctl = FakeController::start().await;
    let b = common::start(controller_config(dir.path(), &ns, &[&ctl])).await;
    ns.wait_for("registration as master", |r| registered_as(r, 0))
        .await;
    let elects = || ctl.requests(ELECT).len();
    let before = elects();

    // The master was lost and no candidate is eligible: epoch 2, no master,
    // 2012 to every election. The broker asks again on later polls.
    ctl.with(|s| {
        s.master = None;
        s.master_epoch = 2;
        s.refuse_elect = true;
    });
    ctl.wait_for("three more ELECT_MASTER", |s| {
        s.log.iter().filter(|r| r.code == ELECT).count() >= before + 3
    })
    .await;
    // Still master of epoch 1 meanwhile (no newer role was given).
    assert!(ns
        .with_code(rq::REGISTER_BROKER)
        .iter()
        .all(|r| registered_as(r, 0)));

    // Eligible again: the next request elects it (epoch 3).
    ctl.with(|s| s.refuse_elect = false);
    let reg = ns
        .wait_for("registration at epoch 3", |r| {
            registered_as(r, 0) && state_version(r) == 3
        })
        .await;
    assert_eq!(state_version(&reg), 3);

    // 1004 hides a master another broker holds (epoch 5): the election
    // answers 2011 naming it, and the broker becomes its slave.
    ctl.with(|s| {
        s.members
            .insert(7, ("127.0.0.1:1".into(), "127.0.0.1:1;1".into()));
        s.master = Some(7);
        s.master_epoch = 5;
        s.set = BTreeSet::from([7]);
        s.set_epoch += 1;
        s.hide_master = true;
    });
    let id = ctl.with(|s| {
        s.members
            .iter()
            .find(|(_, (a, _))| *a == b.addr.to_string())
            .map(|(id, _)| *id)
            .unwrap()
    });
    let reg = ns
        .wait_for("registration as slave at epoch 5", |r| {
            registered_as(r, id) && state_version(r) == 5
        })
        .await;
    assert_eq!(state_version(&reg), 5);
    let client = common::connect(b.addr).await;
    put_code_eventually(&client, response_code::SYSTEM_BUSY).await;
    b.stop().await;
}
