//! The commit-log seam: a [`MessageStore`](crate::MessageStore) opened with
//! [`MessageStore::open_replicated`](crate::MessageStore::open_replicated)
//! keeps its consume queues, index, checkpoint and read paths, but its
//! records live in a log it does not own (the DLedger log, wired in by the
//! broker):
//!
//! - a put encodes the records exactly as the local commit log does, assigns
//!   queue offsets and hands the records to [`ReplicatedLog::append`] under
//!   the store's writer lock (so log order = queue-offset order), then
//!   releases the lock; the [`PendingPut`](crate::PendingPut) it returns
//!   resolves once the log's outcome (quorum commit or failure) is known,
//!   so concurrent puts share replication rounds and no thread waits. The
//!   put does **not** build consume-queue entries;
//! - the owner of the log feeds every committed record, in log order, to
//!   [`MessageStore::dispatch_replicated`](crate::MessageStore::dispatch_replicated),
//!   which builds the consume queue and index entries; the store's max
//!   physical offset is the end of the last dispatched record;
//! - reads of a physical offset go to [`ReplicatedLog::read`];
//! - puts are refused ([`StoreError::NotWriter`]) until the owner calls
//!   [`MessageStore::become_writer`](crate::MessageStore::become_writer)
//!   with its epoch, once every committed record is dispatched (and again
//!   after [`MessageStore::stop_writing`](crate::MessageStore::stop_writing)).
//!
//! Consume queues and index are rebuilt from the log on every open (the
//! owner re-dispatches from the log's start), so nothing derived can point
//! past what the log holds after a truncation.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::{CommitLogOffset, StoreError};

/// The outcome of an append: the physical offset of each record, in order.
pub type AppendOutcome = Result<Vec<CommitLogOffset>, ReplicatedAppendError>;

/// An append that reached the log and whose outcome is not known yet.
pub type PendingAppend = Pin<Box<dyn Future<Output = AppendOutcome> + Send>>;

/// A log that stores whole records somewhere else (DLedger).
pub trait ReplicatedLog: Send + Sync {
    /// Queues each record as its own log entry behind every earlier call
    /// and returns without waiting for replication (the store calls this
    /// under its writer lock, so it must not block for long and must not
    /// need the async runtime to make progress). `epoch` is the one given
    /// to [`MessageStore::become_writer`](crate::MessageStore::become_writer):
    /// the log must refuse the records if it is no longer the writer of
    /// that epoch when it takes them (for DLedger: leader of that term).
    /// `Err` means nothing reached the log.
    fn append(
        &self,
        records: Vec<Bytes>,
        epoch: i64,
    ) -> Result<PendingAppend, ReplicatedAppendError>;
    /// `len` committed bytes at physical offset `offset` (a record start).
    fn read(&self, offset: CommitLogOffset, len: usize) -> Option<Bytes>;
    /// First readable physical offset (0 when empty).
    fn min_offset(&self) -> CommitLogOffset;
}

/// A failed replicated append.
#[derive(Debug)]
pub struct ReplicatedAppendError {
    /// The records reached the log (their outcome is indeterminate: they may
    /// still commit), so their queue offsets are used up.
    pub written: bool,
    pub error: StoreError,
}
