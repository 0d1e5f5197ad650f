//! The commit-log seam: a [`MessageStore`](crate::MessageStore) opened with
//! [`MessageStore::open_replicated`](crate::MessageStore::open_replicated)
//! keeps its consume queues, index, checkpoint and read paths, but its
//! records live in a log it does not own (the DLedger log, wired in by the
//! broker):
//!
//! - a put encodes the records exactly as the local commit log does, assigns
//!   queue offsets under the store's writer lock and hands the records to
//!   [`ReplicatedLog::append`], which returns once the outcome is known
//!   (quorum commit or failure); the put does **not** build consume-queue
//!   entries;
//! - the owner of the log feeds every committed record, in log order, to
//!   [`MessageStore::dispatch_replicated`](crate::MessageStore::dispatch_replicated),
//!   which builds the consume queue and index entries; the store's max
//!   physical offset is the end of the last dispatched record;
//! - reads of a physical offset go to [`ReplicatedLog::read`].
//!
//! Consume queues and index are rebuilt from the log on every open (the
//! owner re-dispatches from the log's start), so nothing derived can point
//! past what the log holds after a truncation.

use bytes::Bytes;

use crate::StoreError;

/// A log that stores whole records somewhere else (DLedger).
pub trait ReplicatedLog: Send + Sync {
    /// Appends each record as its own log entry and blocks until the outcome
    /// of the last one is known. `Ok` holds the physical offset of each
    /// record, in order.
    fn append(&self, records: Vec<Bytes>) -> Result<Vec<i64>, ReplicatedAppendError>;
    /// `len` committed bytes at physical offset `offset` (a record start).
    fn read(&self, offset: i64, len: usize) -> Option<Bytes>;
    /// First readable physical offset (0 when empty).
    fn min_offset(&self) -> i64;
}

/// A failed replicated append.
#[derive(Debug)]
pub struct ReplicatedAppendError {
    /// The records reached the log (their outcome is indeterminate: they may
    /// still commit), so their queue offsets are used up.
    pub written: bool,
    pub error: StoreError,
}
