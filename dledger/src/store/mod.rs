//! DLedger's on-disk log, byte-compatible with Java DLedger 0.3.1.2's
//! `DLedgerMmapFileStore` (docs/protocol/dledger.md §3): data and index segments, the
//! `checkpoint` and `currterm` files, recovery, truncation, cleanup.
//!
//! [`DLedgerStore`] implements [`crate::core::Storage`] for the Raft core and
//! adds what the server and the broker need:
//! - [`DLedgerStore::flush`] (call every ~10 ms) and
//!   [`DLedgerStore::persist_checkpoint`] (every 3 s and at shutdown, or
//!   [`DLedgerStore::shutdown`] for both);
//! - [`DLedgerStore::set_append_hook`]: patch the body once `pos` is known
//!   (the broker writes PHYSICALOFFSET = `pos + 48`);
//! - [`DLedgerStore::committed_pos`], [`DLedgerStore::read_committed`],
//!   [`DLedgerStore::read_committed_from`]: the broker's view of the log,
//!   cut at `committedPos`;
//! - [`DLedgerStore::clean_expired`]: delete expired data files;
//! - [`DLedgerStore::set_disk_full`]: refuse appends (415) while the server's
//!   disk check says so.
//!
//! Every write takes `&mut self` and every read copies bytes out of the
//! mapping, so a caller shares the store behind one lock.
//!
//! Deliberate differences from Java (none changes a byte Java would write):
//! - a cut (recovery, truncate) zeroes the rest of its file; Java only moves
//!   its write position, leaving stale entries a later recovery can revive;
//! - a follower append checks `pos` before writing (Java writes, then fails);
//! - a truncate that replaces entry `i` cuts after our entry `i - 1` and lets
//!   the roll rule place the new entry, checked against its `pos` (Java cuts
//!   at the new entry's `pos`, which keeps stale entries below it when the
//!   two logs rolled differently);
//! - a truncate whose cut lies beyond the written end is a rebuild at the cut
//!   (Java moves the write position forward inside the last file, leaving a
//!   gap of zeros that ends the log at the next restart);
//! - entries with `size + 8 > mappedFileSizeForEntryData` are refused before
//!   anything is written;
//! - segment files shorter than the configured size are extended with zeros
//!   (Java refuses to start); an unparsable checkpoint is ignored (Java fails);
//! - `currterm` is fsynced, and a missing one falls back to `.tmp`, then `.bak`;
//! - multi-path `dataStorePath` and `readOnlyDataStoreDirs` are not supported.
//!
//! As in Java, recovery verifies only the last three data files, and a log
//! rebuilt mid-file (docs/protocol/dledger.md §3.7) forgets its start position on restart, so it
//! recovers empty and is re-replicated from the leader.
//!
//! Layout: this file holds the types and the store's state; `recover` opens
//! it, `storage` is the Raft core's [`crate::core::Storage`] (append,
//! truncate, commit, hard state), `read` the positions and committed reads,
//! `flush` durability and retention. Below them: `list` and `mmap` (segment
//! files), `coder` (entry and index bytes), `props` (Java properties files),
//! `reader` (committed reads from other tasks).

pub mod coder;
mod flush;
mod list;
mod mmap;
mod props;
mod read;
mod reader;
mod recover;
mod storage;

use std::path::PathBuf;

use crate::core::{HardState, StorageError};

use coder::INDEX_UNIT_SIZE;
pub use flush::FlushJob;
pub use list::file_name;
use list::SegmentList;
pub use reader::CommittedReader;

/// File names under `<storeBaseDir>/dledger-<selfId>/`.
pub const CHECKPOINT_FILE: &str = "checkpoint";
pub const TERM_FILE: &str = "currterm";
const END_INDEX_KEY: &str = "endIndex";
const COMMITTED_INDEX_KEY: &str = "committedIndex";
const TERM_KEY: &str = "currTerm";
const VOTE_KEY: &str = "voteLeader";

/// Where and how big (`DL: DLedgerConfig.java`; the broker maps its own keys
/// onto these, docs/protocol/dledger.md §4.1).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `storeBaseDir`; files go to `<storeBaseDir>/dledger-<selfId>/`.
    pub store_base_dir: PathBuf,
    pub self_id: String,
    /// `dataStorePath`; `None` → `<default path>/data`. Java's multi-path
    /// (comma-separated) form is not supported.
    pub data_store_path: Option<PathBuf>,
    /// `mappedFileSizeForEntryData` (1 GiB). Must match every peer's.
    pub mapped_file_size_for_entry_data: usize,
    /// `mappedFileSizeForEntryIndex` (32 × 5 Mi); a multiple of 32.
    pub mapped_file_size_for_entry_index: usize,
    /// `fileReservedHours` (72); values below 1 count as 1.
    pub file_reserved_hours: u64,
}

impl StoreConfig {
    pub fn new(store_base_dir: impl Into<PathBuf>, self_id: impl Into<String>) -> StoreConfig {
        StoreConfig {
            store_base_dir: store_base_dir.into(),
            self_id: self_id.into(),
            data_store_path: None,
            mapped_file_size_for_entry_data: 1024 * 1024 * 1024,
            mapped_file_size_for_entry_index: INDEX_UNIT_SIZE * 5 * 1024 * 1024,
            file_reserved_hours: 72,
        }
    }

    /// `<storeBaseDir>/dledger-<selfId>` (Java's `getDefaultPath`).
    pub fn default_path(&self) -> PathBuf {
        self.store_base_dir
            .join(format!("dledger-{}", self.self_id))
    }

    pub fn data_path(&self) -> PathBuf {
        self.data_store_path
            .clone()
            .unwrap_or_else(|| self.default_path().join("data"))
    }

    pub fn index_path(&self) -> PathBuf {
        self.default_path().join("index")
    }
}
/// Called by [`Storage::append_leader`](crate::core::Storage::append_leader) with the entry body (inside the
/// buffer about to be written) and the body's data-log position
/// ([`crate::entry::body_pos`]), as Java's `AppendHook` gets the body offset.
pub type AppendHook = Box<dyn FnMut(&mut [u8], i64) + Send>;

/// Java's `DLedgerMmapFileStore`.
pub struct DLedgerStore {
    cfg: StoreConfig,
    data: SegmentList,
    index: SegmentList,
    begin: i64,
    end: i64,
    end_term: i64,
    committed_index: i64,
    committed_pos: i64,
    hard_state: HardState,
    hook: Option<AppendHook>,
    disk_full: bool,
}

impl std::fmt::Debug for DLedgerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DLedgerStore")
            .field("path", &self.cfg.default_path())
            .field("begin", &self.begin)
            .field("end", &self.end)
            .field("end_term", &self.end_term)
            .field("committed_index", &self.committed_index)
            .field("committed_pos", &self.committed_pos)
            .finish()
    }
}

fn corrupt(msg: String) -> StorageError {
    StorageError::Io(msg)
}

impl DLedgerStore {
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Installs the hook run by every leader append after the entry's
    /// position is assigned and before the bytes are written.
    pub fn set_append_hook(&mut self, hook: AppendHook) {
        self.hook = Some(hook);
    }

    /// While set, leader and follower appends fail with
    /// [`StorageError::DiskFull`] (Java's `isDiskFull`, 415).
    pub fn set_disk_full(&mut self, full: bool) {
        self.disk_full = full;
    }
}

#[cfg(test)]
mod tests;
