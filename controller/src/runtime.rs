//! The running controller (Java's `DLedgerController` + `ControllerManager`):
//! a DLedger member in state-machine mode and the controller codes on its
//! peer port.
//!
//! ```text
//!  peer port ─┬─ 50000.. DLedger ─► DLedgerServer ─► committed log
//!             ├─ 904 heartbeat ─► node-local HeartbeatTable        │
//!             ├─ 1005/1009/1010 answered by any node                ▼
//!             └─ leader-only codes ─► scheduler (one at a time) ─► apply task ─► ReplicasInfo
//!                    compute → append events → wait until applied → answer
//! ```
//!
//! The apply task replays the log from index 0 at every start (no
//! snapshots, as Java). A new leader appends an empty entry and serves only
//! once it is applied, so it computes against every earlier entry.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dledger::config::{parse_peers, DLedgerConfig, Peer};
use dledger::core::message::Role;
use dledger::server::{DLedgerServer, RouteExtender, ServerError, ServerOptions};
use dledger::store::StoreConfig;
use dledger::LogIndex;
use remoting::{Connection, RemotingCommand, Router};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::body;
use crate::compute::{self, codes, ElectRequest, Outcome, Request};
use crate::config::{ConfigError, ControllerConfig};
use crate::event::Event;
use crate::heartbeat::{BrokerKey, HeartbeatTable};
use crate::notify::{self, Attempt, Notifier};
use crate::policy::LiveAt;
use crate::state::ReplicasInfo;

/// `WAIT_TIMEOUT_OUT`: how long a request waits for its events to apply.
const APPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// The scheduler's queue (Java: 1024).
const QUEUE: usize = 1024;
/// 1008 send timeout (`doNotifyBrokerRoleChanged`).
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(3);
/// Entries read per apply round.
const APPLY_BATCH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("controllerDLegerPeers / controllerDLegerSelfId")]
    Peers(#[from] dledger::config::ConfigError),
    #[error("bindAddress {0:?} is not an IP address")]
    BindAddress(String),
    #[error("DLedger")]
    Server(#[from] ServerError),
}

enum Job {
    Request {
        req: Request,
        reply: oneshot::Sender<RemotingCommand>,
    },
    /// A broker's heartbeat expired or its channel closed (`onBrokerInactive`).
    BrokerInactive(BrokerKey),
    /// `scanInactiveMasterAndTriggerReelect`.
    ScanInactiveMasters,
}

struct Inner {
    config: RwLock<ControllerConfig>,
    group: String,
    peers: Vec<Peer>,
    state: Mutex<ReplicasInfo>,
    applied: watch::Sender<i64>,
    heartbeats: Mutex<HeartbeatTable<Connection>>,
    jobs: mpsc::Sender<Job>,
    /// Leader, and its own first entry of the term is applied.
    ready: AtomicBool,
    server: OnceLock<Arc<DLedgerServer>>,
    notify_conns: tokio::sync::Mutex<HashMap<String, Connection>>,
    notifier: Arc<Notifier>,
    stop: CancellationToken,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn not_leader() -> RemotingCommand {
    RemotingCommand::response(codes::NOT_LEADER)
        .with_remark("The controller is not in leader state")
}

fn system_error(remark: impl Into<String>) -> RemotingCommand {
    RemotingCommand::response(codes::SYSTEM_ERROR).with_remark(remark)
}

impl Inner {
    fn cfg(&self) -> std::sync::RwLockReadGuard<'_, ControllerConfig> {
        self.config.read().unwrap_or_else(|p| p.into_inner())
    }

    fn server(&self) -> Option<&Arc<DLedgerServer>> {
        self.server.get()
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
            && self.server().is_some_and(|s| s.role().role == Role::Leader)
    }

    fn compute(&self, req: &Request) -> Outcome {
        let unclean = self.cfg().enable_elect_unclean_master;
        let state = lock(&self.state);
        let table = lock(&self.heartbeats);
        let live = LiveAt {
            table: &*table,
            now_ms: now_ms(),
        };
        compute::compute(&state, &live, unclean, req)
    }

    async fn wait_applied(&self, index: i64, deadline: Instant) -> Result<(), String> {
        let mut rx = self.applied.subscribe();
        let result = tokio::time::timeout_at(deadline, rx.wait_for(|a| *a >= index))
            .await
            .map(|r| r.map(|_| ()));
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err("the controller is stopping".into()),
            Err(_) => Err(format!("timed out waiting for entry {index} to be applied")),
        }
    }

    /// Appends one entry per event and waits until the last is applied.
    async fn commit(&self, events: &[Event]) -> Result<(), String> {
        let server = self.server().ok_or("DLedger is not running")?;
        let deadline = Instant::now() + APPLY_TIMEOUT;
        let bodies = events.iter().map(|e| Bytes::from(e.encode())).collect();
        let resp = tokio::time::timeout_at(deadline, server.append_batch(bodies))
            .await
            .map_err(|_| "timed out appending events".to_owned())?
            .map_err(|e| e.to_string())?;
        if resp.header.code != dledger::core::message::ResponseCode::Success.code() {
            return Err(format!(
                "append events failed with DLedger code {}",
                resp.header.code
            ));
        }
        self.wait_applied(resp.index, deadline).await
    }

    async fn run_request(self: &Arc<Self>, req: Request) -> RemotingCommand {
        if !self.is_ready() {
            return not_leader();
        }
        let outcome = self.compute(&req);
        if !outcome.events.is_empty() {
            if let Err(e) = self.commit(&outcome.events).await {
                warn!(error = %e, "controller request failed");
                return system_error(e);
            }
        } else if self.cfg().process_read_event {
            if let Err(e) = self.commit_empty().await {
                return system_error(e);
            }
        }
        if outcome.code == codes::SUCCESS {
            if let Request::ElectMaster(r) = &req {
                self.notify_role_changed(&r.broker_name, &outcome);
            }
        }
        outcome.into_response()
    }

    async fn commit_empty(&self) -> Result<(), String> {
        let server = self.server().ok_or("DLedger is not running")?;
        let deadline = Instant::now() + APPLY_TIMEOUT;
        let resp = tokio::time::timeout_at(deadline, server.append(Bytes::new()))
            .await
            .map_err(|_| "timed out appending".to_owned())?
            .map_err(|e| e.to_string())?;
        if resp.header.code != dledger::core::message::ResponseCode::Success.code() {
            return Err(format!(
                "append failed with DLedger code {}",
                resp.header.code
            ));
        }
        self.wait_applied(resp.index, deadline).await
    }

    /// A controller-triggered election (`triggerElectMaster`, see
    /// [`notify::retry_election`]): up to `electMasterMaxRetryCount`
    /// attempts, each abandoned after 3 s, until one elects a master.
    async fn controller_elect(self: &Arc<Self>, broker_name: &str) {
        let max = self.cfg().elect_master_max_retry_count;
        let (attempts, last) =
            notify::retry_election(broker_name, max, notify::ELECT_ATTEMPT_TIMEOUT, |attempt| {
                self.controller_elect_once(broker_name, attempt)
            })
            .await;
        if last == Attempt::Failed {
            warn!(%broker_name, attempts, "controller-triggered election gave up");
        }
    }

    async fn controller_elect_once(self: &Arc<Self>, broker_name: &str, attempt: u32) -> Attempt {
        if !self.is_ready() {
            return Attempt::NotLeader;
        }
        let req = Request::ElectMaster(ElectRequest::controller_trigger(broker_name));
        let outcome = self.compute(&req);
        if !outcome.events.is_empty() {
            if let Err(e) = self.commit(&outcome.events).await {
                warn!(%broker_name, attempt, error = %e, "controller-triggered election failed");
                return Attempt::Failed;
            }
        }
        info!(%broker_name, attempt, code = outcome.code, master = ?outcome.get("masterBrokerId"), "controller-triggered election");
        if outcome.code != codes::SUCCESS {
            return Attempt::Failed;
        }
        self.notify_role_changed(broker_name, &outcome);
        Attempt::Elected
    }

    async fn on_broker_inactive(self: &Arc<Self>, key: BrokerKey) {
        if !self.is_ready() {
            return;
        }
        let is_master = lock(&self.state)
            .get(&key.broker_name)
            .is_some_and(|(_, s)| s.master_broker_id == Some(key.broker_id));
        info!(cluster = %key.cluster_name, broker = %key.broker_name, id = key.broker_id, is_master, "broker inactive");
        if is_master {
            self.controller_elect(&key.broker_name).await;
        }
    }

    async fn scan_inactive_masters(self: &Arc<Self>) {
        if !self.is_ready() {
            return;
        }
        let candidates: Vec<String> = {
            let state = lock(&self.state);
            let table = lock(&self.heartbeats);
            let now = now_ms();
            state
                .sync_states
                .iter()
                .filter_map(|(name, sync)| {
                    let r = state.replicas.get(name)?;
                    let master = sync.master_broker_id?;
                    let cluster = r.cluster();
                    let master_dead = !table.is_alive(cluster, name, master, now);
                    let any_alive = r
                        .members
                        .keys()
                        .any(|id| table.is_alive(cluster, name, *id, now));
                    (master_dead && any_alive).then(|| name.clone())
                })
                .collect()
        };
        for name in candidates {
            self.controller_elect(&name).await;
        }
    }

    /// NOTIFY_BROKER_ROLE_CHANGED (1008, one-way) to every member alive on
    /// this node, after an election succeeded.
    fn notify_role_changed(self: &Arc<Self>, broker_name: &str, outcome: &Outcome) {
        if !self.cfg().notify_broker_role_changed {
            return;
        }
        let Some(master) = outcome
            .get("masterBrokerId")
            .and_then(|m| m.parse::<i64>().ok())
        else {
            return;
        };
        let targets: Vec<String> = {
            let state = lock(&self.state);
            let table = lock(&self.heartbeats);
            let now = now_ms();
            let Some(r) = state.replicas.get(broker_name) else {
                return;
            };
            r.members
                .iter()
                .filter(|(id, _)| table.is_alive(r.cluster(), broker_name, **id, now))
                .filter_map(|(_, m)| m.address.clone())
                .collect()
        };
        let ss_epoch: i32 = outcome
            .get("syncStateSetEpoch")
            .and_then(|e| e.parse().ok())
            .unwrap_or(0);
        let mut cmd = RemotingCommand::request(codes::NOTIFY_BROKER_ROLE_CHANGED);
        for key in [
            "masterAddress",
            "masterEpoch",
            "syncStateSetEpoch",
            "masterBrokerId",
        ] {
            if let Some(v) = outcome.get(key) {
                cmd = cmd.with_ext(key, v);
            }
        }
        cmd = cmd.with_body(body::sync_state_set(
            &std::collections::BTreeSet::from([master]),
            ss_epoch,
        ));
        let master_epoch: i32 = outcome
            .get("masterEpoch")
            .and_then(|e| e.parse().ok())
            .unwrap_or(0);
        for addr in targets {
            let inner = self.clone();
            let cmd = cmd.clone();
            let to = addr.clone();
            self.notifier.notify(&addr, master_epoch, async move {
                if let Err(e) = inner.send_oneway(&to, cmd).await {
                    warn!(addr = %to, error = %e, "notify broker role changed failed");
                } else {
                    debug!(addr = %to, "notified broker role changed");
                }
            });
        }
    }

    async fn send_oneway(&self, addr: &str, cmd: RemotingCommand) -> Result<(), String> {
        let conn = {
            let mut conns = self.notify_conns.lock().await;
            match conns.get(addr) {
                Some(c) if !c.is_closed() => c.clone(),
                _ => {
                    let c = tokio::time::timeout(
                        NOTIFY_TIMEOUT,
                        Connection::connect(addr, Arc::new(Router::new())),
                    )
                    .await
                    .map_err(|_| "connect timed out".to_owned())?
                    .map_err(|e| e.to_string())?;
                    conns.insert(addr.to_owned(), c.clone());
                    c
                }
            }
        };
        tokio::time::timeout(NOTIFY_TIMEOUT, conn.oneway(cmd))
            .await
            .map_err(|_| "send timed out".to_owned())?
            .map_err(|e| e.to_string())
    }

    fn apply_entry(&self, index: i64, body: &[u8]) {
        if body.is_empty() {
            return;
        }
        match Event::decode(body) {
            Ok(event) => lock(&self.state).apply(&event),
            Err(e) => error!(index, error = %e, "undecodable controller log entry skipped"),
        }
    }

    // ---------------------------------------------------------- any-node codes

    fn heartbeat(&self, conn: &Connection, req: &RemotingCommand) -> RemotingCommand {
        let parsed = compute::decode_heartbeat(req);
        let hb = match parsed {
            Ok(hb) => hb,
            Err(err) => {
                warn!(peer = %conn.peer(), error = %err, "bad broker heartbeat");
                return system_error(err.to_string());
            }
        };
        if hb.broker_id.is_none() {
            return RemotingCommand::response(codes::INVALID_REQUEST)
                .with_remark("Heart beat with empty brokerId");
        }
        lock(&self.heartbeats).on_heartbeat(&hb, conn.clone(), now_ms());
        RemotingCommand::success().with_remark("Heart beat success")
    }

    fn metadata(&self) -> RemotingCommand {
        let mut cmd = RemotingCommand::success().with_ext("group", self.group.clone());
        let role = self.server().map(|s| s.role());
        if let Some(leader) = role.as_ref().and_then(|r| r.leader_id.clone()) {
            if let Some(p) = self.peers.iter().find(|p| p.id == leader) {
                cmd = cmd.with_ext("controllerLeaderAddress", p.addr.clone());
            }
            cmd = cmd.with_ext("controllerLeaderId", leader);
        }
        // Leader and serving (its empty entry applied), so a client that
        // trusts isLeader never gets 2007 from this node; the leader id and
        // address above are DLedger's view, set as soon as a vote is won.
        // (Java 5.3 reads DLedger's MemberState here; the two differ only
        // until the new leader's empty entry is applied.)
        let is_leader = self.is_ready();
        let peers: String = self
            .peers
            .iter()
            .map(|p| format!("{}:{};", p.id, p.addr))
            .collect();
        cmd.with_ext("isLeader", is_leader.to_string())
            .with_ext("peers", peers)
    }

    fn update_config(&self, req: &RemotingCommand) -> RemotingCommand {
        if req.body.is_empty() {
            return RemotingCommand::success();
        }
        let text = String::from_utf8_lossy(&req.body);
        let props = remoting::properties::parse(&text);
        let mut config = self.config.write().unwrap_or_else(|p| p.into_inner());
        let black = config.black_list();
        if props.keys().any(|k| black.contains(k)) {
            return RemotingCommand::response(codes::NO_PERMISSION)
                .with_remark("Can not update config in black list.");
        }
        if let Err(e) = config.update(props.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            return system_error(e.to_string());
        }
        info!(update = %text.trim(), "controller config updated");
        let path = PathBuf::from(&config.config_store_path);
        let text = config.all_configs_text();
        drop(config);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(&path, text) {
            warn!(path = %path.display(), error = %e, "cannot persist controller config");
        }
        RemotingCommand::success()
    }

    fn on_close(&self, conn: &Connection) {
        let gone = lock(&self.heartbeats).on_channel_close(conn);
        for (key, _) in gone {
            info!(broker = %key.broker_name, id = key.broker_id, "broker channel closed");
            if self.jobs.try_send(Job::BrokerInactive(key)).is_err() {
                warn!("controller queue full, broker inactivity dropped");
            }
        }
    }
}

/// The controller's routes on the DLedger peer port.
fn routes(inner: Arc<Inner>, router: Router) -> Router {
    let mut r = router;
    let i = inner.clone();
    r = r.route(codes::BROKER_HEARTBEAT, move |conn: Connection, req| {
        let resp = i.heartbeat(&conn, &req);
        async move { Ok(resp) }
    });
    let i = inner.clone();
    r = r.route(codes::GET_METADATA_INFO, move |_c, _req| {
        let resp = i.metadata();
        async move { Ok(resp) }
    });
    let i = inner.clone();
    r = r.route(codes::UPDATE_CONTROLLER_CONFIG, move |_c, req| {
        let resp = i.update_config(&req);
        async move { Ok(resp) }
    });
    let i = inner.clone();
    r = r.route(codes::GET_CONTROLLER_CONFIG, move |_c, _req| {
        let text = i.cfg().all_configs_text();
        async move { Ok(RemotingCommand::success().with_body(text.into_bytes())) }
    });
    for code in [
        codes::ALTER_SYNC_STATE_SET,
        codes::ELECT_MASTER,
        codes::REGISTER_BROKER,
        codes::GET_REPLICA_INFO,
        codes::GET_SYNC_STATE_DATA,
        codes::CLEAN_BROKER_DATA,
        codes::GET_NEXT_BROKER_ID,
        codes::APPLY_BROKER_ID,
    ] {
        let i = inner.clone();
        r = r.route(code, move |conn: Connection, req: RemotingCommand| {
            let i = i.clone();
            async move { Ok(leader_request(&i, &conn, &req).await) }
        });
    }
    let i = inner;
    r.on_close(move |conn| i.on_close(conn))
}

async fn leader_request(
    inner: &Inner,
    conn: &Connection,
    cmd: &RemotingCommand,
) -> RemotingCommand {
    if !inner.is_ready() {
        return not_leader();
    }
    let req = match compute::decode(cmd) {
        Ok(Some(r)) => r,
        Ok(None) => return system_error("not a controller request"),
        Err(e) => {
            warn!(peer = %conn.peer(), code = cmd.code, error = %e, "bad controller request");
            return system_error(e.to_string());
        }
    };
    let (reply, rx) = oneshot::channel();
    if inner.jobs.try_send(Job::Request { req, reply }).is_err() {
        return RemotingCommand::response(codes::SYSTEM_BUSY)
            .with_remark("the controller request queue is full");
    }
    match tokio::time::timeout(APPLY_TIMEOUT + Duration::from_secs(1), rx).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(_)) => system_error("the controller is stopping"),
        Err(_) => system_error("timed out waiting for the controller"),
    }
}

async fn scheduler(inner: Arc<Inner>, mut jobs: mpsc::Receiver<Job>) {
    loop {
        let job = tokio::select! {
            _ = inner.stop.cancelled() => return,
            job = jobs.recv() => match job { Some(j) => j, None => return },
        };
        match job {
            Job::Request { req, reply } => {
                let resp = inner.run_request(req).await;
                let _ = reply.send(resp);
            }
            Job::BrokerInactive(key) => inner.on_broker_inactive(key).await,
            Job::ScanInactiveMasters => inner.scan_inactive_masters().await,
        }
    }
}

/// Replays and follows the committed log, applying every entry in order.
async fn apply_loop(inner: Arc<Inner>, server: Arc<DLedgerServer>) {
    let mut committed = server.subscribe_committed();
    let mut next: i64 = 0;
    loop {
        let target = committed.borrow_and_update().get();
        while next <= target {
            match server
                .get_committed_range(LogIndex(next), APPLY_BATCH)
                .await
            {
                Ok(entries) if !entries.is_empty() => {
                    for e in entries {
                        if e.index != next {
                            warn!(expected = next, got = e.index, "apply: index gap");
                        }
                        inner.apply_entry(e.index, &e.body);
                        next = e.index + 1;
                        inner.applied.send_replace(e.index);
                    }
                }
                Ok(_) => break,
                Err(_) => return,
            }
        }
        tokio::select! {
            _ = inner.stop.cancelled() => return,
            r = committed.changed() => if r.is_err() { return },
            // A range that was not readable yet is retried.
            _ = tokio::time::sleep(Duration::from_millis(200)), if next <= target => {}
        }
    }
}

/// Follows DLedger's role: a new leader appends an empty entry and serves
/// once it is applied; any other role stops serving at once.
async fn role_loop(inner: Arc<Inner>, server: Arc<DLedgerServer>) {
    let mut roles = server.subscribe_role();
    loop {
        let rs = roles.borrow_and_update().clone();
        if rs.role == Role::Leader {
            inner.ready.store(false, Ordering::Release);
            for _attempt in 0..1000 {
                let now = server.role();
                if inner.stop.is_cancelled() || now.role != Role::Leader || now.term != rs.term {
                    break;
                }
                match inner.commit_empty().await {
                    Ok(()) => {
                        let now = server.role();
                        if now.role == Role::Leader && now.term == rs.term {
                            inner.ready.store(true, Ordering::Release);
                            info!(term = %rs.term, "controller leader ready");
                        }
                        break;
                    }
                    Err(e) => {
                        warn!(error = %e, "controller leader: empty entry not applied yet");
                        tokio::select! {
                            _ = inner.stop.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                        }
                    }
                }
            }
        } else if inner.ready.swap(false, Ordering::AcqRel) {
            info!(role = ?rs.role, "controller no longer leader");
        }
        tokio::select! {
            _ = inner.stop.cancelled() => return,
            r = roles.changed() => if r.is_err() { return },
        }
    }
}

fn interval_of(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0).max(10))
}

/// Heartbeat expiry on every node; the inactive-master scan on the leader.
async fn scan_loops(inner: Arc<Inner>) {
    // Java: the first expiry scan after 2 s, then every
    // scanNotActiveBrokerInterval; a shorter interval (fast failure
    // detection, down to ~200 ms) also brings the first scan forward.
    let first =
        interval_of(inner.cfg().scan_not_active_broker_interval).min(Duration::from_secs(2));
    let mut next_expire = Instant::now() + first;
    let mut next_master_scan =
        Instant::now() + interval_of(inner.cfg().scan_inactive_master_interval);
    loop {
        tokio::select! {
            _ = inner.stop.cancelled() => return,
            _ = tokio::time::sleep_until(next_expire.min(next_master_scan)) => {}
        }
        let now = Instant::now();
        if now >= next_expire {
            next_expire = now + interval_of(inner.cfg().scan_not_active_broker_interval);
            let gone = lock(&inner.heartbeats).expire(now_ms());
            for (key, info) in gone {
                info!(broker = %key.broker_name, id = key.broker_id, "broker heartbeat expired");
                info.channel.close();
                if inner.jobs.try_send(Job::BrokerInactive(key)).is_err() {
                    warn!("controller queue full, broker inactivity dropped");
                }
            }
        }
        if now >= next_master_scan {
            next_master_scan = now + interval_of(inner.cfg().scan_inactive_master_interval);
            if inner.is_ready() && inner.jobs.try_send(Job::ScanInactiveMasters).is_err() {
                warn!("controller queue full, inactive-master scan skipped");
            }
        }
    }
}

/// Starts controllers.
pub struct Controller;

impl Controller {
    /// Starts a controller: opens the DLedger store under
    /// `controllerStorePath`, binds this member's peer port (the controller
    /// port) and replays the log. Stops when `shutdown` is cancelled or
    /// [`ControllerHandle::shutdown`] is called.
    pub async fn start(
        config: ControllerConfig,
        shutdown: CancellationToken,
    ) -> Result<ControllerHandle, ControllerError> {
        config.validate()?;
        let mut dl = DLedgerConfig::java_defaults();
        dl.group = config.controller_d_leger_group.trim().to_owned();
        dl.self_id = config.controller_d_leger_self_id.trim().to_owned();
        dl.peers = parse_peers(&config.controller_d_leger_peers)?;
        dl.set_timers(config.dledger_timers()?);
        dl.validate()?;
        let mut store = StoreConfig::new(config.store_path(), dl.self_id.clone());
        store.mapped_file_size_for_entry_data =
            usize::try_from(config.mapped_file_size.max(4096)).unwrap_or(1 << 30);
        let index_size = usize::try_from(config.mapped_file_size_for_entry_index.max(32))
            .unwrap_or(32 * 5 * 1024 * 1024);
        store.mapped_file_size_for_entry_index = index_size - index_size % 32;
        let bind = config.bind_address.trim();
        let bind: Option<IpAddr> = if bind.is_empty() || bind == "0.0.0.0" {
            None
        } else {
            Some(
                bind.parse()
                    .map_err(|_| ControllerError::BindAddress(bind.to_owned()))?,
            )
        };

        let stop = shutdown.child_token();
        let (jobs_tx, jobs_rx) = mpsc::channel(QUEUE);
        let (applied, _) = watch::channel(-1i64);
        let inner = Arc::new(Inner {
            group: dl.group.clone(),
            peers: dl.peers.clone(),
            config: RwLock::new(config),
            state: Mutex::new(ReplicasInfo::default()),
            applied,
            heartbeats: Mutex::new(HeartbeatTable::default()),
            jobs: jobs_tx,
            ready: AtomicBool::new(false),
            server: OnceLock::new(),
            notify_conns: tokio::sync::Mutex::new(HashMap::new()),
            notifier: Arc::default(),
            stop: stop.clone(),
        });
        let mut opts = ServerOptions::new(dl, store);
        opts.bind = bind;
        let for_routes = inner.clone();
        opts.extra_routes = Some(RouteExtender(Arc::new(move |r| {
            routes(for_routes.clone(), r)
        })));
        let server = Arc::new(DLedgerServer::start(opts).await?);
        let _ = inner.server.set(server.clone());
        let tasks = vec![
            tokio::spawn(apply_loop(inner.clone(), server.clone())),
            tokio::spawn(role_loop(inner.clone(), server.clone())),
            tokio::spawn(scheduler(inner.clone(), jobs_rx)),
            tokio::spawn(scan_loops(inner.clone())),
            // The routes hold the controller and DLedger holds the routes, so
            // DLedger is stopped explicitly, whoever cancels.
            tokio::spawn({
                let server = server.clone();
                async move {
                    stop.cancelled().await;
                    server.shutdown().await;
                }
            }),
        ];
        info!(id = %server.self_id(), addr = %server.local_addr(), "controller started");
        Ok(ControllerHandle {
            inner,
            server,
            tasks,
        })
    }
}

/// A running controller.
pub struct ControllerHandle {
    inner: Arc<Inner>,
    server: Arc<DLedgerServer>,
    tasks: Vec<JoinHandle<()>>,
}

impl ControllerHandle {
    /// The controller (= DLedger peer) port's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn self_id(&self) -> &str {
        self.server.self_id()
    }

    /// Leader and serving leader-only requests.
    pub fn is_leader(&self) -> bool {
        self.inner.is_ready()
    }

    /// A copy of the applied state.
    pub fn state(&self) -> ReplicasInfo {
        lock(&self.inner.state).clone()
    }

    /// The index of the last applied entry (−1 before any).
    pub fn applied_index(&self) -> i64 {
        *self.inner.applied.borrow()
    }

    /// The current configuration (runtime updates included).
    pub fn config(&self) -> ControllerConfig {
        self.inner.cfg().clone()
    }

    pub fn dledger(&self) -> &DLedgerServer {
        &self.server
    }

    /// Resolves once the controller has been asked to stop.
    pub async fn stopped(&self) {
        self.inner.stop.cancelled().await
    }

    /// Stops serving, stops DLedger (flush and checkpoint) and waits.
    pub async fn shutdown(self) {
        self.inner.stop.cancel();
        self.inner.ready.store(false, Ordering::Release);
        for t in self.tasks {
            let _ = t.await;
        }
        self.server.shutdown().await;
        self.inner.notifier.abort_all();
        self.inner.notify_conns.lock().await.clear();
        info!("controller stopped");
    }
}
