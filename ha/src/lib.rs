//! Master/slave replication as RocketMQ's classic HA does it (Java
//! `DefaultHAService`, `DefaultHAConnection`, `DefaultHAClient`): every
//! slave opens one TCP connection to its master's HA port, reports its
//! commit-log end in 8-byte words, and the master ships raw commit-log
//! bytes in frames that never cross a commit-log file ([`frame`]). The
//! slave's files end up byte-identical to the master's, and its consume
//! queues are built from them.
//!
//! - [`HaMaster`] serves the HA port and is the store's
//!   [`Replication`](store::replication::Replication) hook: it decides
//!   whether a put waits for slaves (`brokerRole`, `inSyncReplicas`, the
//!   4.x rule), wakes its connections when the log grows and answers the
//!   waits as slaves acknowledge.
//! - [`HaClient`] runs on a slave: it connects to the master's HA address
//!   (configured, or learnt from the name server's REGISTER_BROKER answer),
//!   appends what it receives with `MessageStore::append_replica` and
//!   reconnects after errors.
//!
//! Both reach the store through [`ReplicaLog`], which `MessageStore`
//! implements, so a broker can put its own handle behind it.
//!
//! Controller mode replicates with the other protocol Java has on the same
//! port, AutoSwitch HA ([`autoswitch`]): epoch lists in a handshake,
//! truncation of a rejoining replica's divergent tail, SyncStateSet
//! bookkeeping and the confirm offset.

pub mod autoswitch;
mod client;
pub mod frame;
mod master;

use std::time::Duration;

use bytes::Bytes;
use store::{CommitLogOffset, MessageStore, StoreError};

pub use client::{ClientStatus, HaClient};
pub use master::{ConnectionInfo, HaMaster};

/// What the HA service needs of the store.
pub trait ReplicaLog: Send + Sync + 'static {
    /// The commit log's end (Java `getMaxPhyOffset`).
    fn max_offset(&self) -> CommitLogOffset;
    /// `mappedFileSizeCommitLog`: where an empty slave starts.
    fn file_size(&self) -> i64;
    /// Master: bytes to ship from `from`, within one file.
    fn chunk(&self, from: CommitLogOffset, max: usize) -> Option<Bytes>;
    /// Slave: append shipped bytes at `offset`; the new end.
    fn append(&self, offset: CommitLogOffset, data: &[u8]) -> Result<CommitLogOffset, StoreError>;
}

impl ReplicaLog for MessageStore {
    fn max_offset(&self) -> CommitLogOffset {
        self.commit_log_max_offset()
    }

    fn file_size(&self) -> i64 {
        i64::try_from(self.config().mapped_file_size_commit_log).unwrap_or(i64::MAX)
    }

    fn chunk(&self, from: CommitLogOffset, max: usize) -> Option<Bytes> {
        self.transfer_chunk(from, max)
    }

    fn append(&self, offset: CommitLogOffset, data: &[u8]) -> Result<CommitLogOffset, StoreError> {
        self.append_replica(offset, data)
    }
}

/// When a synchronous master's put waits for slaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncRule {
    /// `ASYNC_MASTER`: never.
    Async,
    /// `SYNC_MASTER`, 5.x: until `in_sync_replicas` replicas, the master
    /// counted, hold the put (`inSyncReplicas`; 1, the default, means no
    /// waiting at all).
    Sync { in_sync_replicas: u32 },
    /// `SYNC_MASTER`, 4.x: until one slave holds it; SLAVE_NOT_AVAILABLE
    /// without a connected slave within `haMaxGapNotInSync`.
    SyncV4,
}

/// Java's HA keys (`MessageStoreConfig`) and timings.
#[derive(Debug, Clone)]
pub struct HaConfig {
    pub sync: SyncRule,
    /// `haSendHeartbeatInterval`: master heartbeat frame / slave report
    /// when nothing was written for this long.
    pub heartbeat_interval: Duration,
    /// `haHousekeepingInterval`: either side closes a connection on which
    /// nothing was read for this long.
    pub housekeeping_interval: Duration,
    /// `haTransferBatchSize`: data bytes per frame at most.
    pub transfer_batch_size: usize,
    /// `haMaxGapNotInSync`: the 4.x "slave OK" gap.
    pub max_gap_not_in_sync: i64,
    /// `slaveTimeout`: how long a put waits for its acknowledgements.
    pub slave_timeout: Duration,
    /// Slave: pause before reconnecting (Java 5 s).
    pub reconnect_delay: Duration,
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            sync: SyncRule::Async,
            heartbeat_interval: Duration::from_millis(5000),
            housekeeping_interval: Duration::from_millis(20_000),
            transfer_batch_size: 32 * 1024,
            max_gap_not_in_sync: 256 * 1024 * 1024,
            slave_timeout: Duration::from_millis(3000),
            reconnect_delay: Duration::from_millis(5000),
        }
    }
}

/// A time of [`ClientStatus`] (monotonic ms, 0 = never) as wall-clock ms
/// since the epoch, as Java's runtime info shows it (0 stays 0).
pub fn wall_clock_ms(mono_ms: u64) -> i64 {
    if mono_ms == 0 {
        return 0;
    }
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    wall - now_ms().saturating_sub(mono_ms) as i64
}

/// Milliseconds on a monotonic clock shared by the connections; never 0
/// (0 means "never" in [`ClientStatus`]).
fn now_ms() -> u64 {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(std::time::Instant::now);
    u64::try_from(base.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}
