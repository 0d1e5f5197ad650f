//! What the core needs from a log: the mmap store (`crate::store`) and the
//! simulator's in-memory log both implement [`Storage`]. Calls are
//! synchronous; a returned `Ok` means the bytes are in the log (Java does not
//! fsync before acknowledging either).

use super::message::ResponseCode;
use crate::entry::Entry;

/// Persistent vote state, DLedger's `currterm` file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// `currTerm`; 0 on a fresh node.
    pub term: i64,
    /// `voteLeader`; `None` when no vote was cast in `term`.
    pub vote: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Read outside `[begin, end]` (DLedger 410 INDEX_OUT_OF_RANGE).
    #[error("index {index} out of range [{begin}, {end}]")]
    IndexOutOfRange { index: i64, begin: i64, end: i64 },
    /// Read below the first kept entry (419 INDEX_LESS_THAN_LOCAL_BEGIN).
    #[error("index {index} is below the ledger begin {begin}")]
    BelowBegin { index: i64, begin: i64 },
    /// A follower append whose index is not `end + 1` (408 INCONSISTENT_INDEX).
    #[error("append of index {index}, ledger end is {end}")]
    NotNextIndex { index: i64, end: i64 },
    /// A follower entry that would land somewhere other than its `pos` (414 DISK_ERROR).
    #[error("entry {index} has pos {expected} but would be written at {actual}")]
    PosMismatch {
        index: i64,
        expected: i64,
        actual: i64,
    },
    /// Disk usage above the full ratio (415 DISK_FULL).
    #[error("disk full")]
    DiskFull,
    /// Any other storage failure (414 DISK_ERROR).
    #[error("storage: {0}")]
    Io(String),
}

/// The code a storage failure is answered with (the codes Java's
/// `DLedgerStore` throws as `DLedgerException`).
impl From<&StorageError> for ResponseCode {
    fn from(e: &StorageError) -> Self {
        match e {
            StorageError::IndexOutOfRange { .. } => ResponseCode::IndexOutOfRange,
            StorageError::BelowBegin { .. } => ResponseCode::IndexLessThanLocalBegin,
            StorageError::NotNextIndex { .. } => ResponseCode::InconsistentIndex,
            StorageError::DiskFull => ResponseCode::DiskFull,
            StorageError::PosMismatch { .. } | StorageError::Io(_) => ResponseCode::DiskError,
        }
    }
}

/// The log as the Raft core sees it. Indexes are absolute; `-1` means none.
pub trait Storage {
    /// Index of the first entry kept (`ledgerBeginIndex`); -1 when empty.
    fn begin_index(&self) -> i64;
    /// Index of the last entry (`ledgerEndIndex`); -1 when empty.
    fn end_index(&self) -> i64;
    /// Term of the last entry (`ledgerEndTerm`); -1 when empty.
    fn end_term(&self) -> i64;
    /// The committed index as last set (`committedIndex`); -1 when none.
    fn committed_index(&self) -> i64;
    /// The entry at `index`.
    fn get(&self, index: i64) -> Result<Entry, StorageError>;
    /// Leader append: assigns `index = end + 1`, `term`, `magic` and `pos`
    /// (after rolling to the next segment if needed), writes it, returns it.
    fn append_leader(&mut self, term: i64, body: bytes::Bytes) -> Result<Entry, StorageError>;
    /// Follower append of the leader's entry: `entry.index` must be
    /// `end + 1` and the entry must land exactly at `entry.pos`.
    fn append_follower(&mut self, entry: &Entry) -> Result<(), StorageError>;
    /// DLedger's truncate (docs/protocol/dledger.md §3.7): keep the local entry at `entry.index`
    /// if it equals `entry`, else write `entry` at `entry.pos`; drop
    /// everything after. The ledger then ends at `entry.index`.
    fn truncate(&mut self, entry: &Entry) -> Result<(), StorageError>;
    /// Sets the committed index, clamped to the ledger end and never moving
    /// back (the rules of `updateCommittedIndex`, docs/protocol/dledger.md §2.11).
    fn set_committed(&mut self, term: i64, index: i64);
    /// The persisted term and vote.
    fn hard_state(&self) -> HardState;
    /// Persists term and vote (the `currterm` file) before returning.
    fn save_hard_state(&mut self, state: &HardState) -> Result<(), StorageError>;
}
