//! The fakes of the controller-mode tests: a controller answering as
//! docs/protocol/controller.md §2 says (GET_NEXT_BROKER_ID through
//! ALTER_SYNC_STATE_SET), a name server that tells a slave its master's HA
//! address, and small request helpers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker::BrokerConfig;
use remoting::code::{request_code as rq, response_code};
use remoting::{serve, Connection, RemotingCommand, Router, ServerConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Client, FakeNamesrv, TIMEOUT};

pub const HEARTBEAT: i32 = 904;
pub const ALTER: i32 = 1001;
pub const ELECT: i32 = 1002;
pub const REGISTER: i32 = 1003;
pub const REPLICA_INFO: i32 = 1004;
pub const METADATA: i32 = 1005;
pub const EPOCH_CACHE: i32 = 1007;
pub const NOTIFY: i32 = 1008;
pub const NEXT_ID: i32 = 1012;
pub const APPLY_ID: i32 = 1013;

/// The replicated state of one broker set, as a controller keeps it.
#[derive(Default)]
pub struct FakeState {
    /// What 1005 names as leader (`None`: nobody).
    pub leader: Option<String>,
    /// Answer 2007 to every leader-only code.
    pub not_leader: bool,
    pub next_id: i64,
    pub members: BTreeMap<i64, (String, String)>,
    /// Ids whose APPLY is refused once with 2014.
    pub refuse_apply_once: BTreeSet<i64>,
    pub master: Option<i64>,
    pub master_epoch: i32,
    pub set: BTreeSet<i64>,
    pub set_epoch: i32,
    /// ELECT_MASTER answers 2012 (no candidate).
    pub refuse_elect: bool,
    /// GET_REPLICA_INFO names no master even when there is one (so the
    /// broker asks for an election and hears 2011).
    pub hide_master: bool,
    pub log: Vec<RemotingCommand>,
}

#[derive(Clone)]
pub struct FakeController {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<FakeState>>,
    pub shutdown: CancellationToken,
}

pub fn set_body(set: &BTreeSet<i64>, epoch: i32) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"syncStateSet": set, "syncStateSetEpoch": epoch}))
        .unwrap()
}

pub fn answer(st: &mut FakeState, req: &RemotingCommand) -> RemotingCommand {
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
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    pub async fn start() -> FakeController {
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

    pub fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    pub fn codes(&self) -> Vec<i32> {
        self.with(|s| s.log.iter().map(|r| r.code).collect())
    }

    pub fn requests(&self, code: i32) -> Vec<RemotingCommand> {
        self.with(|s| s.log.iter().filter(|r| r.code == code).cloned().collect())
    }

    pub async fn wait_for(&self, what: &str, pred: impl Fn(&FakeState) -> bool) {
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

pub fn controller_config(
    dir: &Path,
    ns: &FakeNamesrv,
    controllers: &[&FakeController],
) -> BrokerConfig {
    let mut c = super::config(dir, Some(ns.addr));
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
    c.ha_listen_port = super::free_port().into();
    c
}

pub fn state_version(register: &RemotingCommand) -> i64 {
    let v: serde_json::Value = serde_json::from_slice(&register.body).unwrap();
    v["topicConfigSerializeWrapper"]["dataVersion"]["stateVersion"]
        .as_i64()
        .unwrap()
}

pub fn registered_as(r: &RemotingCommand, id: i64) -> bool {
    r.code == rq::REGISTER_BROKER && r.ext("brokerId") == Some(id.to_string().as_str())
}

pub async fn put(client: &Client, topic: &str) -> RemotingCommand {
    client.call(super::send_v1(topic, 0, "", b"hello")).await
}

pub async fn put_code_eventually(client: &Client, code: i32) {
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

pub fn notify(master: i64, addr: &str, epoch: i32, set_epoch: i32) -> RemotingCommand {
    RemotingCommand::request(NOTIFY)
        .with_ext("masterAddress", addr)
        .with_ext("masterEpoch", epoch.to_string())
        .with_ext("syncStateSetEpoch", set_epoch.to_string())
        .with_ext("masterBrokerId", master.to_string())
        .with_body(set_body(&[master].into_iter().collect(), set_epoch))
}

/// A name server that, as Java's route table, tells a slave its master's
/// HA address in the REGISTER_BROKER answer.
pub struct RouteNamesrv {
    pub addr: SocketAddr,
    /// brokerId → (brokerAddr, haServerAddr), latest registration.
    pub table: Arc<Mutex<BTreeMap<i64, (String, String)>>>,
    /// The HA address slaves are told instead of the master's (a proxy).
    pub ha_override: Arc<Mutex<Option<String>>>,
    pub registrations: Arc<Mutex<Vec<RemotingCommand>>>,
    pub shutdown: CancellationToken,
}

impl RouteNamesrv {
    pub async fn start() -> RouteNamesrv {
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

pub async fn max_offset(client: &Client) -> i64 {
    let r = client.call(RemotingCommand::request(EPOCH_CACHE)).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["maxOffset"].as_i64().unwrap()
}

pub async fn wait_until<F, Fut>(what: &str, mut f: F)
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
