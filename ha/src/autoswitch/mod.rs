//! Controller mode's replication, AutoSwitch HA (Java
//! `AutoSwitchHAService`, `AutoSwitchHAConnection`, `AutoSwitchHAClient`;
//! wire in [`frame`]). Unlike classic HA, both sides keep an epoch file
//! ([`store::EpochFile`]: which master epoch wrote which part of the log),
//! so a replica that rejoins — an old master included — first cuts the tail
//! its new master does not share, then follows it byte for byte.
//!
//! - [`AutoSwitchMaster`] serves the HA port of the master: answers each
//!   slave's handshake with the epoch list, ships the log in frames that
//!   never cross a commit-log file or an epoch, tracks the SyncStateSet
//!   (proposing expansions and shrinks to the broker, which asks the
//!   controller) and is the store's replication hook (`allAckInSyncStateSet`,
//!   `inSyncReplicas`, `minInSyncReplicas`).
//! - [`AutoSwitchClient`] runs on a slave: handshake, truncation to the
//!   consistent point, then appending what the master ships.
//! - [`change_to_master`] / [`prepare_slave`]: the store side of a role
//!   change.
//!
//! The Java master labels the last frame of an epoch with the *next* epoch
//! (it moves its transfer epoch on before building the header); ours names
//! the epoch of the frame's own bytes. Java slaves accept both: either way
//! they append the next epoch's entry (epoch, start) once it shows up.

mod client;
pub mod frame;
mod master;

use std::time::Duration;

use store::{CommitLogOffset, EpochEntry, EpochFile, MessageStore, StoreError};

pub use client::{AutoSwitchClient, AutoSwitchClientStatus};
pub use master::{AutoSwitchMaster, SlaveConnectionInfo};

use crate::{HaConfig, ReplicaLog};

/// What AutoSwitch HA needs of the store beyond [`ReplicaLog`].
pub trait AutoSwitchLog: ReplicaLog {
    /// Start of the oldest commit-log file, -1 when there is none (where
    /// an empty slave starts unless `syncFromLastFile`).
    fn min_offset(&self) -> CommitLogOffset;
    /// Cut the log at a record boundary (Java `truncateFiles`); the new end.
    fn truncate_to(&self, offset: CommitLogOffset) -> Result<CommitLogOffset, StoreError>;
    /// Cut a record the log ends inside of; the new end.
    fn truncate_torn_tail(&self) -> Result<CommitLogOffset, StoreError>;
    /// Hold consumers back from records past the confirm offset (`None`:
    /// read everything); see `MessageStore::set_read_limit`.
    fn set_read_limit(&self, _limit: Option<CommitLogOffset>) {}
}

impl AutoSwitchLog for MessageStore {
    fn min_offset(&self) -> CommitLogOffset {
        self.commit_log_min_offset()
    }

    fn truncate_to(&self, offset: CommitLogOffset) -> Result<CommitLogOffset, StoreError> {
        MessageStore::truncate_to(self, offset)
    }

    fn truncate_torn_tail(&self) -> Result<CommitLogOffset, StoreError> {
        MessageStore::truncate_torn_tail(self)
    }

    fn set_read_limit(&self, limit: Option<CommitLogOffset>) {
        MessageStore::set_read_limit(self, limit)
    }
}

/// Java's AutoSwitch keys (`MessageStoreConfig`) and timings.
#[derive(Debug, Clone)]
pub struct AutoSwitchConfig {
    /// Heartbeat, housekeeping, batch size, `slaveTimeout`, reconnect
    /// delay (its `sync` rule is not used: controller mode has its own).
    pub ha: HaConfig,
    /// `inSyncReplicas`: acks a put waits for, the master counted, when
    /// not `all_ack_in_sync_state_set` (≤ 1: no waiting).
    pub in_sync_replicas: u32,
    /// `minInSyncReplicas`: below this SyncStateSet size puts are refused
    /// (IN_SYNC_REPLICAS_NOT_ENOUGH).
    pub min_in_sync_replicas: u32,
    /// `allAckInSyncStateSet`: a put waits for every SyncStateSet member.
    pub all_ack_in_sync_state_set: bool,
    /// `haMaxTimeSlaveNotCatchup`: a member not caught up for longer is
    /// proposed out of the set.
    pub max_time_slave_not_catchup: Duration,
    /// `checkSyncStateSetPeriod`: how often the master checks for shrinks.
    pub check_sync_state_set_period: Duration,
    /// Slave: `syncFromLastFile` (an empty slave starts at the master's
    /// last file rather than its oldest data).
    pub sync_from_last_file: bool,
    /// Slave: `asyncLearner` (never joins the SyncStateSet).
    pub async_learner: bool,
    /// Slave: how long it waits for the master's handshake reply.
    pub handshake_timeout: Duration,
    /// `readUnCommitted`: consumers may read past the confirm offset (no
    /// read limit is set on the store).
    pub read_uncommitted: bool,
}

impl Default for AutoSwitchConfig {
    fn default() -> Self {
        AutoSwitchConfig {
            ha: HaConfig::default(),
            in_sync_replicas: 1,
            min_in_sync_replicas: 1,
            all_ack_in_sync_state_set: false,
            max_time_slave_not_catchup: Duration::from_millis(15_000),
            check_sync_state_set_period: Duration::from_millis(5_000),
            sync_from_last_file: false,
            async_learner: false,
            handshake_timeout: Duration::from_millis(5_000),
            read_uncommitted: false,
        }
    }
}

/// Why a role change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RoleChangeError {
    /// Java refuses `changeToMaster` with an epoch below its last one.
    #[error("master epoch {epoch} is older than the last epoch {last}")]
    StaleEpoch { epoch: i32, last: i32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The store side of becoming master in `epoch` (Java
/// `AutoSwitchHAService.changeToMaster`, and
/// `changeToMasterWhenLastRoleIsMaster` when re-elected): cut a torn last
/// record and the epoch entries past it, drop entries of `epoch` and later,
/// append `(epoch, maxPhyOffset)`, and lift a slave's read limit (the
/// master sets its own). Returns that entry, or `None` when it
/// could not be appended because the last entry already starts at the
/// log's end (Java then keeps the old entry and logs an error). The broker
/// then stops its HA client, makes the store writable
/// (`set_replica(false)`), starts an [`AutoSwitchMaster`] and installs it
/// as the store's replication hook.
pub fn change_to_master(
    log: &dyn AutoSwitchLog,
    epochs: &EpochFile,
    epoch: i32,
) -> Result<Option<EpochEntry>, RoleChangeError> {
    let last = epochs.last_epoch();
    if epoch < last {
        return Err(RoleChangeError::StaleEpoch { epoch, last });
    }
    prepare_slave(log, epochs)?;
    log.set_read_limit(None);
    if epochs.last_epoch() >= epoch {
        epochs.truncate_suffix_from_epoch(epoch)?;
    }
    let entry = EpochEntry {
        epoch,
        start_offset: log.max_offset().get(),
    };
    if epochs.append(entry)? {
        tracing::info!(
            epoch,
            start = entry.start_offset,
            "epoch entry appended for mastership"
        );
        Ok(Some(entry))
    } else {
        tracing::error!(epoch, start = entry.start_offset, last = ?epochs.last(),
            "epoch entry not newer than the last; not appended");
        Ok(None)
    }
}

/// Cut a torn last record and the epoch entries from the new end on (Java
/// `truncateInvalidMsg` + `truncateEpochFileSuffix`), as a slave does
/// before every connection ([`AutoSwitchClient`] calls it itself) and a
/// new master first. Returns the log's end.
pub fn prepare_slave(
    log: &dyn AutoSwitchLog,
    epochs: &EpochFile,
) -> Result<CommitLogOffset, StoreError> {
    let before = log.max_offset();
    let end = log.truncate_torn_tail()?;
    if end < before {
        epochs.truncate_suffix_from_offset(end.get())?;
    }
    Ok(end)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
