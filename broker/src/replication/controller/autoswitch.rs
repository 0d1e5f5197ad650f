//! [`ControllerReplication`] over the `ha` crate's AutoSwitch HA
//! (`ha::autoswitch`, ha.md §4): the master serves the HA port and is the
//! store's replication hook, proposing SyncStateSet changes; a slave runs
//! the AutoSwitch client towards the HA address a name server's
//! REGISTER_BROKER answer names. Both keep the epoch file.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use ha::autoswitch::{AutoSwitchClient, AutoSwitchConfig, AutoSwitchLog, AutoSwitchMaster};
use ha::ReplicaLog;
use store::{CommitLogOffset, EpochFile, MessageStore, StoreError};
use tokio::sync::watch;
use tracing::{error, info};

use super::replica::ControllerReplication;
use super::wire::EpochEntry;
use crate::config::BrokerConfig;
use crate::store::BrokerStore;

/// The broker's store as AutoSwitch HA sees it.
struct StoreLog(Arc<BrokerStore>);

impl ReplicaLog for StoreLog {
    fn max_offset(&self) -> CommitLogOffset {
        self.0
            .with(CommitLogOffset(0), MessageStore::commit_log_max_offset)
    }

    fn file_size(&self) -> i64 {
        self.0.with(1, |s| {
            i64::try_from(s.config().mapped_file_size_commit_log).unwrap_or(i64::MAX)
        })
    }

    fn chunk(&self, from: CommitLogOffset, max: usize) -> Option<Bytes> {
        self.0.with(None, |s| s.transfer_chunk(from, max))
    }

    fn append(&self, offset: CommitLogOffset, data: &[u8]) -> Result<CommitLogOffset, StoreError> {
        self.0.with(Err(StoreError::ShutDown), |s| {
            s.append_replica(offset, data)
        })
    }
}

impl AutoSwitchLog for StoreLog {
    fn min_offset(&self) -> CommitLogOffset {
        self.0
            .with(CommitLogOffset(-1), MessageStore::commit_log_min_offset)
    }

    fn truncate_to(&self, offset: CommitLogOffset) -> Result<CommitLogOffset, StoreError> {
        self.0
            .with(Err(StoreError::ShutDown), |s| s.truncate_to(offset))
    }

    fn truncate_torn_tail(&self) -> Result<CommitLogOffset, StoreError> {
        self.0
            .with(Err(StoreError::ShutDown), MessageStore::truncate_torn_tail)
    }

    /// The confirm offset gates consumption (the store's read limit; the
    /// store wakes held pulls when it rises).
    fn set_read_limit(&self, limit: Option<CommitLogOffset>) {
        self.0.with((), |s| s.set_read_limit(limit))
    }
}

/// The AutoSwitch keys of `config`.
pub fn autoswitch_config(config: &BrokerConfig) -> AutoSwitchConfig {
    let ms = |v: i64| Duration::from_millis(v.max(1) as u64);
    AutoSwitchConfig {
        ha: crate::replication::ha::ha_config(config),
        in_sync_replicas: config.in_sync_replicas.max(1) as u32,
        min_in_sync_replicas: config.min_in_sync_replicas.max(1) as u32,
        all_ack_in_sync_state_set: config.all_ack_in_sync_state_set,
        max_time_slave_not_catchup: ms(config.ha_max_time_slave_not_catchup),
        check_sync_state_set_period: Duration::from_millis(
            config.check_sync_state_set_period.max(1),
        ),
        sync_from_last_file: config.sync_from_last_file,
        async_learner: config.async_learner,
        read_uncommitted: config.read_un_committed,
        ..AutoSwitchConfig::default()
    }
}

enum Side {
    None,
    Master {
        master: Arc<AutoSwitchMaster>,
        proposals: watch::Receiver<Option<BTreeSet<i64>>>,
    },
    Slave(AutoSwitchClient),
}

/// AutoSwitch HA behind [`ControllerReplication`].
pub struct AutoSwitchReplication {
    store: Arc<BrokerStore>,
    log: Arc<StoreLog>,
    epochs: Arc<EpochFile>,
    cfg: AutoSwitchConfig,
    /// The HA port, bound once; each mastership serves a duplicate of it.
    listener: std::net::TcpListener,
    side: Mutex<Side>,
    /// As a slave: the master's broker address the controller named.
    slave_of: Mutex<Option<String>>,
}

impl AutoSwitchReplication {
    /// Opens the epoch file and binds the HA port (`haListenPort`).
    pub fn open(config: &BrokerConfig, store: Arc<BrokerStore>) -> anyhow::Result<Self> {
        let path = config.epoch_file_path();
        let epochs = EpochFile::open(&path)
            .with_context(|| format!("opening the epoch file {}", path.display()))?;
        let port = config.ha_port();
        let listener = std::net::TcpListener::bind((config.bind_address.as_str(), port))
            .with_context(|| format!("binding the HA port {port} (haListenPort)"))?;
        listener.set_nonblocking(true)?;
        let epochs = Arc::new(epochs);
        // Retention drops the entries of deleted commit-log files.
        store.with((), |s| s.set_epoch_file(Some(epochs.clone())));
        Ok(AutoSwitchReplication {
            log: Arc::new(StoreLog(store.clone())),
            store,
            epochs,
            cfg: autoswitch_config(config),
            listener,
            side: Mutex::new(Side::None),
            slave_of: Mutex::new(None),
        })
    }

    fn side(&self) -> std::sync::MutexGuard<'_, Side> {
        self.side.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stop_side(&self, side: &mut Side) {
        match std::mem::replace(side, Side::None) {
            Side::Master { master, .. } => {
                self.store.with((), |s| s.set_replication(None));
                master.shutdown();
            }
            Side::Slave(c) => c.shutdown(),
            Side::None => {}
        }
    }

    fn start_master(&self, own_id: i64) -> std::io::Result<Arc<AutoSwitchMaster>> {
        let listener = tokio::net::TcpListener::from_std(self.listener.try_clone()?)?;
        Ok(AutoSwitchMaster::start(
            self.log.clone(),
            self.epochs.clone(),
            listener,
            self.cfg.clone(),
            own_id,
        ))
    }
}

impl ControllerReplication for AutoSwitchReplication {
    fn change_to_master(&self, epoch: i32, own_id: i64, sync_state_set: &BTreeSet<i64>) {
        let mut side = self.side();
        if !matches!(*side, Side::Master { .. }) {
            self.stop_side(&mut side);
        }
        match ha::autoswitch::change_to_master(self.log.as_ref(), &self.epochs, epoch) {
            Ok(entry) => info!(epoch, ?entry, "store ready for mastership"),
            Err(e) => error!(epoch, error = %e, "store refused mastership"),
        }
        if let Side::Master { master, .. } = &*side {
            master.set_sync_state_set(sync_state_set.iter().copied());
            return;
        }
        match self.start_master(own_id) {
            Ok(master) => {
                master.set_sync_state_set(sync_state_set.iter().copied());
                let proposals = master.proposals();
                self.store
                    .with((), |s| s.set_replication(Some(master.clone())));
                *side = Side::Master { master, proposals };
            }
            Err(e) => {
                error!(error = %e, "AutoSwitch HA master not started: slaves cannot replicate")
            }
        }
    }

    fn change_to_slave(&self, master_addr: &str, epoch: i32, own_id: i64) {
        let mut side = self.side();
        // Consumers keep what they could read (an old master's confirm
        // offset) and see more only as the new master confirms it.
        let max = self.log.max_offset();
        let keep = self
            .store
            .with(None, MessageStore::read_limit)
            .map_or(max, |l| l.min(max));
        self.stop_side(&mut side);
        self.store.with((), |s| s.set_replica(true));
        self.log
            .set_read_limit((!self.cfg.read_uncommitted).then_some(keep));
        info!(%master_addr, epoch, own_id, "AutoSwitch HA client waits for the master's HA address");
        if let Ok(mut m) = self.slave_of.lock() {
            *m = Some(master_addr.to_owned());
        }
        // Java: the HA master address is learnt from the name server.
        *side = Side::Slave(AutoSwitchClient::start(
            self.log.clone(),
            self.epochs.clone(),
            None,
            self.cfg.clone(),
            own_id,
        ));
    }

    fn master_ha_learnt(&self, ha_addr: &str, master_addr: Option<&str>) {
        // A name server that has not yet seen the new master's registration
        // answers with the old master's HA address: ignored, so the slave
        // keeps asking (`needs_master_ha`) instead of following the old one.
        let expected = self.slave_of.lock().ok().and_then(|m| m.clone());
        if let (Some(named), Some(expected)) = (master_addr, expected.as_deref()) {
            if !named.is_empty() && named != expected {
                info!(%ha_addr, %named, %expected, "master HA address of another master ignored");
                return;
            }
        }
        if let Side::Slave(c) = &*self.side() {
            c.update_master_address(Some(ha_addr.to_owned()));
        }
    }

    fn needs_master_ha(&self) -> bool {
        matches!(&*self.side(), Side::Slave(c) if c.status().master_addr.is_none())
    }

    fn set_sync_state_set(&self, set: &BTreeSet<i64>) {
        if let Side::Master { master, .. } = &*self.side() {
            master.set_sync_state_set(set.iter().copied());
        }
    }

    fn proposed_sync_state_set(&self) -> Option<BTreeSet<i64>> {
        match &*self.side() {
            Side::Master { proposals, .. } => proposals.borrow().clone(),
            _ => None,
        }
    }

    fn epoch_entries(&self) -> Vec<EpochEntry> {
        let e = self.epochs.entries();
        e.iter()
            .enumerate()
            .map(|(i, x)| EpochEntry {
                epoch: x.epoch,
                start_offset: x.start_offset,
                end_offset: e.get(i + 1).map_or(i64::MAX, |n| n.start_offset),
            })
            .collect()
    }

    fn max_offset(&self) -> i64 {
        self.log.max_offset().get()
    }

    fn confirm_offset(&self) -> i64 {
        match &*self.side() {
            Side::Master { master, .. } => master.confirm_offset().get(),
            Side::Slave(c) => c.confirm_offset().get(),
            Side::None => self.max_offset(),
        }
    }

    fn ha_runtime_info(&self) -> Option<serde_json::Value> {
        use serde_json::json;
        let max = self.max_offset();
        let idle_client = json!({
            "lastReadTimestamp": 0,
            "lastWriteTimestamp": 0,
            "masterFlushOffset": 0,
            "maxOffset": 0,
            "transferredByteInSecond": 0,
        });
        match &*self.side() {
            Side::Master { master, .. } => {
                let conns: Vec<serde_json::Value> = master
                    .connections()
                    .into_iter()
                    .map(|c| {
                        let ack = c.slave_ack_offset.get().max(0);
                        json!({
                            "addr": c.addr.to_string(),
                            "diff": max - ack,
                            "inSync": c.in_sync,
                            "slaveAckOffset": ack,
                            "transferFromWhere": c.transfer_from.get().max(0),
                            "transferredByteInSecond": 0,
                        })
                    })
                    .collect();
                // AutoSwitch: the SyncStateSet without the master.
                let in_sync = master.sync_state_set().len().saturating_sub(1);
                Some(json!({
                    "haClientRuntimeInfo": idle_client,
                    "haConnectionInfo": conns,
                    "inSyncSlaveNums": in_sync,
                    "master": true,
                    "masterCommitLogMaxOffset": max,
                }))
            }
            Side::Slave(c) => {
                let st = c.status();
                Some(json!({
                    "haClientRuntimeInfo": {
                        "lastReadTimestamp": ha::wall_clock_ms(st.last_read_ms),
                        "lastWriteTimestamp": ha::wall_clock_ms(st.last_write_ms),
                        "masterAddr": st.master_addr.unwrap_or_default(),
                        "masterFlushOffset": 0,
                        "maxOffset": max,
                        "transferredByteInSecond": 0,
                    },
                    "haConnectionInfo": [],
                    "inSyncSlaveNums": 0,
                    "master": false,
                    "masterCommitLogMaxOffset": 0,
                }))
            }
            Side::None => None,
        }
    }

    fn shutdown(&self) {
        let mut side = self.side();
        self.stop_side(&mut side);
    }
}
