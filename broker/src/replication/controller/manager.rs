//! The controller-mode role manager (Java `ReplicasManager`): start-up
//! registration with the controller, heartbeats, the replica-info poll,
//! leader refresh, SyncStateSet reports, and role changes applied in place
//! (store writes, broker id and role, master-only services, name-server
//! registration with `stateVersion = masterEpoch`).

use std::sync::Arc;
use std::time::Duration;

use remoting::RemotingCommand;
use tokio::sync::mpsc;
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::client::{ControllerClient, ControllerError};
use super::identity::{check_code, IdentityError, IdentityFiles, TempIdentity};
use super::replica::ControllerReplication;
use super::state::{Decision, Role, RoleState};
use super::wire::{self, response, EpochEntryCache, MasterInfo, SyncStateSet};
use crate::config::BrokerRole;
use crate::error::BrokerError;
use crate::meta::topic::TopicConfigManager;
use crate::processor::{read_config, SharedConfig};
use crate::replication::dledger::MasterServices;
use crate::replication::namesrv::NamesrvClient;
use crate::store::BrokerStore;

/// Java retries the whole start-up every 5 s while no master is known.
const START_RETRY: Duration = Duration::from_secs(5);
/// Registration attempts per start-up round (Java: 5, random pause < 1 s).
const REGISTER_ATTEMPTS: usize = 5;
/// First run of the periodic polls after start-up (Java: 3 s).
const FIRST_POLL_DELAY: Duration = Duration::from_secs(3);
/// Notifications queued between two turns of the manager.
const NOTICE_QUEUE: usize = 64;

/// Why one start-up round failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Controller(#[from] ControllerError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("controller answer unreadable: {0}")]
    Wire(#[from] wire::WireError),
}

/// The router's side of controller mode: NOTIFY_BROKER_ROLE_CHANGED goes
/// to the manager, GET_BROKER_EPOCH_CACHE is answered from replication.
pub struct ControllerHandle {
    notices: mpsc::Sender<MasterInfo>,
    replication: Arc<dyn ControllerReplication>,
    config: SharedConfig,
}

impl ControllerHandle {
    /// NOTIFY_BROKER_ROLE_CHANGED (1008, one-way): queued for the manager.
    /// A malformed one is logged and dropped.
    pub fn notify(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        match wire::notify_request(req) {
            Ok(info) => {
                debug!(?info, "role change notified");
                if self.notices.try_send(info).is_err() {
                    warn!("role change notification dropped: manager busy or stopped");
                }
            }
            Err(e) => warn!(error = %e, "malformed NOTIFY_BROKER_ROLE_CHANGED ignored"),
        }
        Ok(RemotingCommand::success())
    }

    /// The `EpochEntryCache` body GET_BROKER_EPOCH_CACHE (1007) answers.
    pub fn epoch_cache(&self) -> EpochEntryCache {
        let (cluster, name, id) = {
            let c = read_config(&self.config);
            (
                c.broker_cluster_name.clone(),
                c.broker_name.clone(),
                c.broker_id,
            )
        };
        EpochEntryCache {
            broker_id: id,
            broker_name: name,
            cluster_name: cluster,
            epoch_list: self.replication.epoch_entries(),
            max_offset: self.replication.max_offset(),
        }
    }
}

impl ControllerHandle {
    /// GET_BROKER_HA_STATUS (907) in controller mode: the AutoSwitch side.
    pub fn ha_status(&self) -> Result<RemotingCommand, BrokerError> {
        match self.replication.ha_runtime_info() {
            Some(v) => Ok(RemotingCommand::success().with_body(v.to_string().into_bytes())),
            None => Ok(
                RemotingCommand::response(remoting::code::response_code::SYSTEM_ERROR)
                    .with_remark("Can not get HARuntimeInfo, may be duplicationEnable is true"),
            ),
        }
    }
}

/// GET_BROKER_EPOCH_CACHE (1007) on the broker port.
pub fn epoch_cache_answer(
    handle: Option<&ControllerHandle>,
) -> Result<RemotingCommand, BrokerError> {
    match handle {
        Some(h) => {
            Ok(RemotingCommand::success().with_body(remoting::body::to_json(&h.epoch_cache())))
        }
        None => Err(BrokerError::System(
            "this request only for controllerMode ".into(),
        )),
    }
}

/// NOTIFY_BROKER_ROLE_CHANGED (1008) on the broker port.
pub fn notify_answer(
    handle: Option<&ControllerHandle>,
    req: &RemotingCommand,
) -> Result<RemotingCommand, BrokerError> {
    match handle {
        Some(h) => h.notify(req),
        None => {
            warn!("NOTIFY_BROKER_ROLE_CHANGED ignored: not in controller mode");
            Ok(RemotingCommand::success())
        }
    }
}

/// The role manager; [`ControllerManager::run`] drives it until shutdown.
pub struct ControllerManager {
    config: SharedConfig,
    client: ControllerClient,
    identity: IdentityFiles,
    replication: Arc<dyn ControllerReplication>,
    namesrv: Arc<NamesrvClient>,
    topics: Arc<TopicConfigManager>,
    store: Arc<BrokerStore>,
    services: MasterServices,
    notices: mpsc::Receiver<MasterInfo>,
    state: RoleState,
}

/// What the manager is built from.
pub struct Parts {
    pub config: SharedConfig,
    pub replication: Arc<dyn ControllerReplication>,
    pub namesrv: Arc<NamesrvClient>,
    pub topics: Arc<TopicConfigManager>,
    pub store: Arc<BrokerStore>,
    pub services: MasterServices,
}

impl ControllerManager {
    /// The manager and the router's handle. The broker starts isolated:
    /// slave role (puts refused), store read-only, no name-server
    /// registration.
    pub fn new(parts: Parts) -> (ControllerManager, Arc<ControllerHandle>) {
        let (tx, rx) = mpsc::channel(NOTICE_QUEUE);
        let (addrs, identity) = {
            let mut c = parts.config.write().unwrap_or_else(|p| p.into_inner());
            c.broker_role = BrokerRole::Slave;
            c.broker_id = -1;
            (
                c.controller_addrs(),
                IdentityFiles::new(
                    c.broker_identity_path(),
                    &c.broker_cluster_name,
                    &c.broker_name,
                ),
            )
        };
        parts.namesrv.set_fenced(true);
        parts.namesrv.set_broker_id(-1);
        parts.store.with((), |s| s.set_replica(true));
        let handle = Arc::new(ControllerHandle {
            notices: tx,
            replication: parts.replication.clone(),
            config: parts.config.clone(),
        });
        let m = ControllerManager {
            config: parts.config,
            client: ControllerClient::new(addrs),
            identity,
            replication: parts.replication,
            namesrv: parts.namesrv,
            topics: parts.topics,
            store: parts.store,
            services: parts.services,
            notices: rx,
            state: RoleState::default(),
        };
        (m, handle)
    }

    fn ids(&self) -> (String, String, String) {
        let c = read_config(&self.config);
        (
            c.broker_cluster_name.clone(),
            c.broker_name.clone(),
            c.broker_addr(),
        )
    }

    /// Start-up, then the periodic tasks, until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let round = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.start_round() => r,
            };
            match round {
                Ok(true) => {
                    self.running(&shutdown).await;
                    break;
                }
                Ok(false) => info!("no master elected yet; start-up retried in 5 s"),
                Err(e) => warn!(error = %e, "controller start-up failed; retried in 5 s"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(START_RETRY) => {}
            }
        }
        self.services.stop().await;
        self.client.close().await;
        self.replication.shutdown();
    }

    /// Java `startBasicService`: leader, registration, one heartbeat, an
    /// election if no master is known. `Ok(true)` once a role is held.
    async fn start_round(&mut self) -> Result<bool, StartError> {
        if self.client.leader().is_none() {
            self.client.discover_leader().await?;
        }
        if self.state.own_id.is_none() {
            let id = self.register_id().await?;
            info!(broker_controller_id = id, "broker id from the controller");
            self.state.own_id = Some(id);
        }
        let info = self.register_broker().await?;
        self.handle(info, false).await;
        self.heartbeat().await;
        if self.state.role == Role::Isolated {
            self.elect().await?;
        }
        Ok(self.state.role != Role::Isolated)
    }

    /// `brokerIdentity`, or the temp file's id applied again, or a new id
    /// (GET_NEXT_BROKER_ID → temp file → APPLY_BROKER_ID → identity file).
    async fn register_id(&self) -> Result<i64, StartError> {
        let mut last = None;
        for attempt in 0..REGISTER_ATTEMPTS {
            if attempt > 0 {
                let pause = (remoting::body::now_millis().rem_euclid(1000)) as u64;
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            match self.try_register_id().await {
                Ok(id) => return Ok(id),
                Err(e @ StartError::Identity(IdentityError::Mismatch { .. })) => return Err(e),
                Err(e) => {
                    warn!(attempt, error = %e, "broker id registration failed");
                    last = Some(e);
                }
            }
        }
        Err(
            last.unwrap_or(StartError::Controller(ControllerError::NoLeader(
                self.client.addrs().to_vec(),
            ))),
        )
    }

    async fn try_register_id(&self) -> Result<i64, StartError> {
        if let Some(id) = self.identity.load()? {
            return Ok(id);
        }
        let (cluster, name, addr) = self.ids();
        let temp = match self.identity.load_temp()? {
            Some(t) => t,
            None => {
                let resp = self
                    .client
                    .call_leader(wire::get_next_broker_id(&cluster, &name), &[])
                    .await?;
                let t = TempIdentity {
                    broker_id: wire::next_broker_id(&resp)?,
                    check_code: check_code(&addr),
                };
                self.identity.write_temp(&t)?;
                t
            }
        };
        let apply = wire::apply_broker_id(&cluster, &name, temp.broker_id, &temp.check_code);
        if let Err(e) = self.client.call_leader(apply, &[]).await {
            // Java: any refusal goes back to GET_NEXT_BROKER_ID.
            self.identity.delete_temp()?;
            return Err(e.into());
        }
        self.identity.commit(temp.broker_id)?;
        Ok(temp.broker_id)
    }

    /// REGISTER_BROKER (1003) with the controller id.
    async fn register_broker(&self) -> Result<MasterInfo, StartError> {
        let (cluster, name, addr) = self.ids();
        let id = self.state.own_id.unwrap_or(-1);
        let resp = self
            .client
            .call_leader(wire::register_broker(&cluster, &name, id, &addr), &[])
            .await?;
        Ok(wire::register_answer(&resp)?)
    }

    /// ELECT_MASTER (1002) for this broker; 0 and 2011 carry the master.
    async fn elect(&mut self) -> Result<(), StartError> {
        let (cluster, name, _) = self.ids();
        let id = self.state.own_id.unwrap_or(-1);
        let resp = self
            .client
            .call_leader(
                wire::elect_master(&cluster, &name, id),
                &[response::CONTROLLER_MASTER_STILL_EXIST],
            )
            .await?;
        let info = wire::elect_answer(&resp)?;
        self.handle(info, false).await;
        Ok(())
    }

    /// BROKER_HEARTBEAT (904), one-way, to every controller.
    async fn heartbeat(&self) {
        let Some(id) = self.state.own_id else { return };
        let (cluster, name, addr, timeout_millis, priority, send_timeout) = {
            let c = read_config(&self.config);
            (
                c.broker_cluster_name.clone(),
                c.broker_name.clone(),
                c.broker_addr(),
                c.controller_heart_beat_timeout_mills,
                c.broker_election_priority,
                Duration::from_millis(c.send_heartbeat_timeout_millis.max(1)),
            )
        };
        let epoch = self
            .replication
            .epoch_entries()
            .last()
            .map_or(-1, |e| e.epoch);
        let req = wire::heartbeat(&wire::Heartbeat {
            cluster: &cluster,
            name: &name,
            addr: &addr,
            id,
            epoch,
            max_offset: self.replication.max_offset(),
            confirm_offset: self.replication.confirm_offset(),
            timeout_millis,
            election_priority: priority,
        });
        self.client.oneway_all(&req, send_timeout).await;
    }

    /// The periodic tasks (Java `RUNNING`).
    async fn running(&mut self, shutdown: &CancellationToken) {
        let (hb, poll, leader, check) = {
            let c = read_config(&self.config);
            let ms = |v: u64| Duration::from_millis(v.max(10));
            (
                ms(c.broker_heartbeat_interval),
                ms(c.sync_broker_metadata_period),
                ms(c.sync_controller_metadata_period),
                ms(c.check_sync_state_set_period),
            )
        };
        let now = Instant::now();
        let mut hb = interval_at(now + hb, hb);
        let mut poll = interval_at(now + FIRST_POLL_DELAY.min(poll), poll);
        let mut leader = interval_at(now + leader, leader);
        let mut check = interval_at(now + FIRST_POLL_DELAY.min(check), check);
        for t in [&mut hb, &mut poll, &mut leader, &mut check] {
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
        }
        info!("controller mode running");
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                n = self.notices.recv() => match n {
                    Some(info) => self.handle(info, true).await,
                    None => return,
                },
                _ = hb.tick() => {
                    self.heartbeat().await;
                    // Expansions are reported soon after a slave catches up.
                    self.report_sync_state_set().await;
                }
                _ = poll.tick() => self.poll_replica_info().await,
                _ = leader.tick() => {
                    if let Err(e) = self.client.refresh_leader().await {
                        warn!(error = %e, "controller leader refresh failed");
                    }
                }
                _ = check.tick() => self.report_sync_state_set().await,
            }
        }
    }

    /// GET_REPLICA_INFO (1004): a newer epoch changes the role or, without
    /// a master, asks for an election; an unknown broker set registers again.
    async fn poll_replica_info(&mut self) {
        if self.state.role == Role::Slave && self.replication.needs_master_ha() {
            // The registration after the role change may have raced the new
            // master's: ask the name servers again for its HA address.
            self.register_now().await;
        }
        let (_, name, _) = self.ids();
        match self
            .client
            .call_leader(wire::get_replica_info(&name), &[])
            .await
        {
            Ok(resp) => match wire::replica_info_answer(&resp) {
                Ok(info) => self.handle(info, true).await,
                Err(e) => warn!(error = %e, "GET_REPLICA_INFO answer ignored"),
            },
            Err(e) if e.code() == Some(response::CONTROLLER_BROKER_METADATA_NOT_EXIST) => {
                warn!("controller does not know this broker set; registering again");
                match self.register_broker().await {
                    Ok(info) => self.handle(info, true).await,
                    Err(e) => warn!(error = %e, "re-registration failed"),
                }
            }
            Err(e) => warn!(error = %e, "GET_REPLICA_INFO failed"),
        }
    }

    /// Master: ALTER_SYNC_STATE_SET (1001) when replication proposes a set
    /// other than the confirmed one.
    async fn report_sync_state_set(&mut self) {
        if self.state.role != Role::Master {
            return;
        }
        let Some(mut proposed) = self.replication.proposed_sync_state_set() else {
            return;
        };
        let Some(own) = self.state.own_id else { return };
        proposed.insert(own);
        if proposed == self.state.sync_state_set.sync_state_set {
            return;
        }
        let (_, name, _) = self.ids();
        let body = SyncStateSet {
            sync_state_set: proposed,
            sync_state_set_epoch: self.state.sync_state_set.sync_state_set_epoch,
        };
        let req = wire::alter_sync_state_set(&name, own, self.state.master_epoch, &body);
        match self.client.call_leader(req, &[]).await {
            Ok(resp) => {
                let confirmed: Result<SyncStateSet, _> = remoting::body::from_fastjson(&resp.body);
                match confirmed {
                    Ok(s)
                        if s.sync_state_set_epoch
                            > self.state.sync_state_set.sync_state_set_epoch =>
                    {
                        info!(set = ?s.sync_state_set, epoch = s.sync_state_set_epoch, "SyncStateSet altered");
                        self.replication.set_sync_state_set(&s.sync_state_set);
                        self.state.applied(&Decision::AdoptSyncStateSet(s));
                    }
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "ALTER_SYNC_STATE_SET answer unreadable"),
                }
            }
            Err(e) => warn!(error = %e, "ALTER_SYNC_STATE_SET failed"),
        }
    }

    /// Decides about `info` and performs the change. `may_elect`: a newer
    /// epoch without a master triggers ELECT_MASTER (the start-up round
    /// elects on its own).
    async fn handle(&mut self, info: MasterInfo, may_elect: bool) {
        let d = self.state.decide(&info);
        match &d {
            Decision::Ignore => debug!(
                epoch = info.master_epoch,
                held = self.state.master_epoch,
                "not newer: ignored"
            ),
            Decision::Elect if may_elect => {
                if let Err(e) = self.elect_once().await {
                    warn!(error = %e, "ELECT_MASTER failed");
                }
            }
            Decision::Elect => {}
            Decision::ToMaster {
                epoch,
                sync_state_set,
            } => {
                self.become_master(*epoch, sync_state_set.as_ref()).await;
                self.state.applied(&d);
                self.register_now().await;
            }
            Decision::ToSlave {
                master_id,
                master_addr,
                epoch,
            } => {
                self.become_slave(*master_id, master_addr, *epoch).await;
                self.state.applied(&d);
                self.register_now().await;
            }
            Decision::AdoptSyncStateSet(s) => {
                self.replication.set_sync_state_set(&s.sync_state_set);
                self.state.applied(&d);
            }
        }
    }

    /// ELECT_MASTER from the periodic poll; its answer is applied but never
    /// triggers another election.
    async fn elect_once(&mut self) -> Result<(), StartError> {
        let (cluster, name, _) = self.ids();
        let id = self.state.own_id.unwrap_or(-1);
        let resp = self
            .client
            .call_leader(
                wire::elect_master(&cluster, &name, id),
                &[response::CONTROLLER_MASTER_STILL_EXIST],
            )
            .await?;
        let info = wire::elect_answer(&resp)?;
        let d = self.state.decide(&info);
        if !matches!(d, Decision::Elect) {
            Box::pin(self.handle(info, false)).await;
        }
        Ok(())
    }

    async fn become_master(&mut self, epoch: i32, set: Option<&SyncStateSet>) {
        let own = self.state.own_id.unwrap_or(-1);
        let members = set
            .map(|s| s.sync_state_set.clone())
            .unwrap_or_else(|| self.state.sync_state_set.sync_state_set.clone());
        let replication = self.replication.clone();
        let m = members.clone();
        let _ =
            tokio::task::spawn_blocking(move || replication.change_to_master(epoch, own, &m)).await;
        self.replication.set_sync_state_set(&members);
        self.store.with((), |s| s.set_replica(false));
        {
            let mut c = self.config.write().unwrap_or_else(|p| p.into_inner());
            c.broker_id = 0;
            c.broker_role = BrokerRole::SyncMaster;
        }
        self.namesrv.set_broker_id(0);
        self.services.run();
        self.topics.next_version_with_state(i64::from(epoch));
        info!(
            master_epoch = epoch,
            broker_controller_id = own,
            "became master"
        );
    }

    async fn become_slave(&mut self, master_id: i64, master_addr: &str, epoch: i32) {
        let own = self.state.own_id.unwrap_or(-1);
        // Refuse puts before anything else.
        self.store.with((), |s| s.set_replica(true));
        {
            let mut c = self.config.write().unwrap_or_else(|p| p.into_inner());
            c.broker_id = own;
            c.broker_role = BrokerRole::Slave;
        }
        self.namesrv.set_broker_id(own);
        self.services.stop().await;
        let replication = self.replication.clone();
        let addr = master_addr.to_owned();
        let _ = tokio::task::spawn_blocking(move || replication.change_to_slave(&addr, epoch, own))
            .await;
        self.topics.next_version_with_state(i64::from(epoch));
        info!(master_epoch = epoch, master_id, %master_addr, broker_controller_id = own, "became slave");
    }

    /// A role is known: leave isolation and register with the name servers.
    async fn register_now(&self) {
        self.namesrv.set_fenced(false);
        if !self.namesrv.addrs().is_empty()
            && read_config(&self.config).register_broker_to_name_server
        {
            self.namesrv.register_all(&self.topics).await;
        }
    }
}
