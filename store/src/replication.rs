//! The replication hook: where master/slave HA plugs into a store whose
//! records live in its own (local, mmap) commit log. Both of RocketMQ's
//! byte-shipping architectures use it — classic HA (`brokerRole` =
//! `SYNC_MASTER`/`ASYNC_MASTER`/`SLAVE`) and controller mode's AutoSwitch HA
//! — while DLedger replaces the commit log instead (see
//! [`ReplicatedLog`](crate::ReplicatedLog)). What the hook and the store
//! each own (the Java counterparts: `CommitLog.handleDiskFlushAndHA`,
//! `DefaultHAService`, `AutoSwitchHAService`):
//!
//! **Master side.** The store appends and dispatches as always; a
//! [`Replication`] installed with
//! [`MessageStore::set_replication`](crate::MessageStore::set_replication)
//! is asked, for every put whose messages wait for a store OK (property
//! `WAIT` not `false`), whether it may go ahead and how many replicas must
//! hold it ([`Replication::admit`], before anything is written: AutoSwitch's
//! IN_SYNC_REPLICAS_NOT_ENOUGH stores nothing); is told where the log now
//! ends after every append ([`Replication::appended`], to wake its transfer
//! loops); and gives the put a future for the acknowledgements
//! ([`Replication::wait`]). The put resolves once the flush (with
//! `SYNC_FLUSH`) and then the replicas answered: a flush timeout wins
//! (FLUSH_DISK_TIMEOUT), then a replica timeout (FLUSH_SLAVE_TIMEOUT). The
//! connections read what they ship with
//! [`MessageStore::transfer_chunk`](crate::MessageStore::transfer_chunk),
//! which never crosses a commit-log file (a Java slave writes each frame
//! into one mapped file).
//!
//! **Slave side.** The HA client hands each frame's bytes to
//! [`MessageStore::append_replica`](crate::MessageStore::append_replica),
//! which appends them at exactly the log's end (or anywhere file-aligned in
//! an empty store), byte for byte — blank end-of-file records included — and
//! dispatches every record the bytes complete into the consume queues and
//! index. A frame may end inside a record; the rest comes with the next.
//! Client puts are the broker's to refuse on a slave.
//!
//! **Controller mode** (AutoSwitch) adds three things on the same two
//! sides: [`MessageStore::truncate_to`](crate::MessageStore::truncate_to) and
//! [`truncate_torn_tail`](crate::MessageStore::truncate_torn_tail) cut a
//! replica's divergent tail before it follows a new master; the epoch file
//! ([`EpochFile`](crate::EpochFile)) records which master epoch wrote which
//! part of the log; and [`set_read_limit`](crate::MessageStore::set_read_limit)
//! holds consumers back from records past the confirm offset (Java holds
//! back dispatch instead; ours dispatches inside the put, so the limit is
//! applied where queues are read, and puts never look at it).

use std::future::Future;
use std::pin::Pin;

use crate::CommitLogOffset;

/// What a put that waits for a store OK needs from the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Store it and answer without waiting for replicas (ASYNC_MASTER, or
    /// 5.x `inSyncReplicas` ≤ 1).
    Go,
    /// Store it, then wait until this many replicas, the master counted,
    /// hold it ([`Replication::wait`]).
    Wait { acks: u32 },
    /// Store it but answer SLAVE_NOT_AVAILABLE (4.x SYNC_MASTER without a
    /// slave in reach): the message is stored; the client may resend.
    StoreWithoutSlave,
    /// Refuse before storing anything: fewer in-sync replicas than
    /// `minInSyncReplicas` (5.x, Java IN_SYNC_REPLICAS_NOT_ENOUGH).
    Refuse,
}

/// How the replicas answered a [`Replication::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaAck {
    /// Enough replicas hold every byte below the waited end.
    Acked,
    /// Not within the hook's timeout (Java `slaveTimeout`, FLUSH_SLAVE_TIMEOUT).
    TimedOut,
}

/// A wait for replica acknowledgements.
pub type ReplicaWait = Pin<Box<dyn Future<Output = ReplicaAck> + Send>>;

/// Replication of a local commit log to slaves (see the module docs).
///
/// The store calls `admit` and `appended` under its writer lock: they must
/// be quick and must not block on the network.
pub trait Replication: Send + Sync {
    /// Before a put that waits for a store OK is written; `log_end` is the
    /// commit log's end before the put.
    fn admit(&self, log_end: CommitLogOffset) -> Admission;
    /// After every append, the commit log's new end.
    fn appended(&self, log_end: CommitLogOffset);
    /// Resolves once `acks` replicas (the master counted) hold every byte
    /// below `end`, or on the hook's timeout.
    fn wait(&self, end: CommitLogOffset, acks: u32) -> ReplicaWait;
}
