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

pub mod coder;
mod list;
mod mmap;
mod props;
mod reader;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::core::{HardState, Storage, StorageError};
use crate::entry::{Entry, BODY_OFFSET, CURRENT_MAGIC};

use coder::{EntryHeader, IndexRecord, INDEX_UNIT_SIZE, MAX_ENTRY_SIZE};
pub use list::file_name;
use list::{io_err, SegmentList};
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

/// Called by [`Storage::append_leader`] with the entry body (inside the
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
    /// Opens (creating directories as needed) and recovers the store: the
    /// term file, the data and index logs (docs/protocol/dledger.md §3.6), then the committed
    /// index from the checkpoint.
    pub fn open(cfg: StoreConfig) -> Result<DLedgerStore, StorageError> {
        if cfg.mapped_file_size_for_entry_data < 2 * MIN_SEGMENT
            || cfg.mapped_file_size_for_entry_index < INDEX_UNIT_SIZE
            || (cfg.mapped_file_size_for_entry_index / INDEX_UNIT_SIZE) * INDEX_UNIT_SIZE
                != cfg.mapped_file_size_for_entry_index
        {
            return Err(StorageError::Io(format!(
                "bad segment sizes: data {} index {} (index must be a multiple of 32)",
                cfg.mapped_file_size_for_entry_data, cfg.mapped_file_size_for_entry_index
            )));
        }
        if cfg
            .data_store_path
            .as_ref()
            .is_some_and(|p| p.to_string_lossy().contains(','))
        {
            return Err(StorageError::Io(
                "multi-path dataStorePath (comma-separated) is not supported".into(),
            ));
        }
        let hard_state = load_hard_state(&cfg.default_path().join(TERM_FILE));
        let data = SegmentList::load(&cfg.data_path(), cfg.mapped_file_size_for_entry_data)?;
        let index = SegmentList::load(&cfg.index_path(), cfg.mapped_file_size_for_entry_index)?;
        let mut store = DLedgerStore {
            cfg,
            data,
            index,
            begin: -1,
            end: -1,
            end_term: -1,
            committed_index: -1,
            committed_pos: -1,
            hard_state,
            hook: None,
            disk_full: false,
        };
        store.recover()?;
        Ok(store)
    }

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

    /// `pos + size` of the committed entry; -1 until something is committed.
    pub fn committed_pos(&self) -> i64 {
        self.committed_pos
    }

    /// First live byte of the data log (first file start + start position);
    /// 0 when there are no files.
    pub fn data_min_offset(&self) -> i64 {
        self.data.min_offset()
    }

    /// End of written data (`getWritePos`); 0 when there are no files.
    pub fn data_max_offset(&self) -> i64 {
        self.data.max_wrote()
    }

    pub fn data_file_size(&self) -> usize {
        self.data.file_size()
    }

    /// Start of the data file after the one holding `offset` (`rollNextFile`).
    pub fn roll_next_file(&self, offset: i64) -> i64 {
        let fs = self.data.file_size() as i64;
        offset + fs - offset.rem_euclid(fs)
    }

    /// `len` bytes of the data log at `pos`, if all of them are committed
    /// (below [`committed_pos`](Self::committed_pos)) and in one file.
    pub fn read_committed(&self, pos: i64, len: usize) -> Option<Bytes> {
        let end = pos.checked_add(i64::try_from(len).ok()?)?;
        if pos < self.data.min_offset() || end > self.committed_pos {
            return None;
        }
        self.data.read(pos, len).map(Bytes::copy_from_slice)
    }

    /// Java's `getData(offset)` for the broker's dispatcher: the committed
    /// bytes from `pos` to the end of written data in its file, cut at
    /// `committedPos` and at `max_len`. May end with a blank record.
    pub fn read_committed_from(&self, pos: i64, max_len: usize) -> Option<Bytes> {
        if pos < self.data.min_offset() || pos >= self.committed_pos {
            return None;
        }
        let b = self.data.read_to_end_of_file(pos)?;
        let limit = usize::try_from(self.committed_pos - pos)
            .unwrap_or(usize::MAX)
            .min(max_len)
            .min(b.len());
        Some(Bytes::copy_from_slice(&b[..limit]))
    }

    /// `(pos, size)` of the entry at `index`, from the index log.
    pub fn entry_pos_and_size(&self, index: i64) -> Result<(i64, i32), StorageError> {
        self.index_check(index)?;
        let rec = self.index_record(index)?;
        Ok((rec.pos, rec.size))
    }

    /// The flush of everything written so far, to run off the append path
    /// (Java's flush thread): data files first, then index files. The bytes
    /// count as flushed once the job is taken, so take the next one only
    /// after this one has run.
    pub fn begin_flush(&mut self) -> Result<FlushJob, StorageError> {
        let mut files = Vec::new();
        self.data.take_sync(&mut files)?;
        self.index.take_sync(&mut files)?;
        let mut warm = Vec::new();
        self.data.take_warm(&mut warm);
        self.index.take_warm(&mut warm);
        Ok(FlushJob { files, warm })
    }

    /// msync data then index (Java's flush thread, every `flushFileInterval`).
    pub fn flush(&mut self) -> Result<(), StorageError> {
        self.data.flush()?;
        self.index.flush()
    }

    /// Writes `checkpoint` (`endIndex`, `committedIndex`).
    pub fn persist_checkpoint(&self) -> Result<(), StorageError> {
        let path = self.cfg.default_path().join(CHECKPOINT_FILE);
        props::store(
            &path,
            &[
                (END_INDEX_KEY, self.end.to_string()),
                (COMMITTED_INDEX_KEY, self.committed_index.to_string()),
            ],
            false,
        )
        .map_err(|e| io_err(path.display(), e))
    }

    /// Flush and checkpoint, as Java's `shutdown`.
    pub fn shutdown(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        self.persist_checkpoint()
    }

    /// Deletes leading data files whose mtime is older than
    /// `fileReservedHours` (at least 1 h) before `now` — all but the last when
    /// `force` — at most 10 per call, never the last file; then re-reads the
    /// begin index and drops index files wholly below it. Returns the number
    /// of data files deleted. When to call it (Java: `deleteWhen` o'clock or
    /// disk ratios) is the caller's policy.
    pub fn clean_expired(&mut self, now: SystemTime, force: bool) -> Result<usize, StorageError> {
        let hours = self.cfg.file_reserved_hours.max(1);
        let reserved = Duration::from_secs(hours * 3600);
        let n = self.data.delete_expired_by_time(now, reserved, force)?;
        if n > 0 {
            self.revise_begin(None)?;
        }
        Ok(n)
    }

    fn index_check(&self, index: i64) -> Result<(), StorageError> {
        if index < 0 || index > self.end {
            return Err(StorageError::IndexOutOfRange {
                index,
                begin: self.begin,
                end: self.end,
            });
        }
        if index < self.begin {
            return Err(StorageError::BelowBegin {
                index,
                begin: self.begin,
            });
        }
        Ok(())
    }

    fn index_offset(index: i64) -> Option<i64> {
        if index < 0 {
            return None;
        }
        index.checked_mul(INDEX_UNIT_SIZE as i64)
    }

    fn index_record(&self, index: i64) -> Result<IndexRecord, StorageError> {
        let off = Self::index_offset(index)
            .ok_or_else(|| corrupt(format!("index {index} has no index offset")))?;
        let b = self
            .index
            .read(off, INDEX_UNIT_SIZE)
            .ok_or_else(|| corrupt(format!("no index record for {index}")))?;
        IndexRecord::decode(b).map_err(|e| corrupt(format!("index record {index}: {e}")))
    }

    fn read_entry(&self, index: i64) -> Result<Entry, StorageError> {
        let rec = self.index_record(index)?;
        let size = usize::try_from(rec.size)
            .map_err(|_| corrupt(format!("index record {index}: size {}", rec.size)))?;
        let b = self
            .data
            .read(rec.pos, size)
            .ok_or_else(|| corrupt(format!("no data for index {index} at {}", rec.pos)))?;
        let e = coder::decode_entry(b).map_err(|e| corrupt(format!("entry {index}: {e}")))?;
        if e.pos != rec.pos || e.index != index {
            return Err(corrupt(format!(
                "entry {index} at {}: stored index {} pos {}",
                rec.pos, e.index, e.pos
            )));
        }
        Ok(e)
    }

    fn append_index(&mut self, rec: IndexRecord) -> Result<(), StorageError> {
        let want = Self::index_offset(rec.index)
            .ok_or_else(|| corrupt(format!("bad index {}", rec.index)))?;
        let at = self.index.append(&rec.encode(), false)?;
        if at != want {
            return Err(corrupt(format!(
                "index record {} written at {at}, expected {want}",
                rec.index
            )));
        }
        Ok(())
    }

    /// `reviseLedgerBeginIndex`: the begin index is the index field of the
    /// entry at the first data file's start position; index files wholly
    /// below it are dropped. If those bytes are not an entry header (a file
    /// rebuilt mid-way and reopened), `fallback` is used.
    fn revise_begin(&mut self, fallback: Option<i64>) -> Result<(), StorageError> {
        let Some(first) = self.data.segs.first() else {
            return Ok(());
        };
        let at = first.base + first.start as i64;
        let from_file = self
            .data
            .read(at, BODY_OFFSET as usize)
            .and_then(|b| EntryHeader::read(b).ok())
            .filter(|h| h.magic == CURRENT_MAGIC && h.size > crate::entry::HEADER_SIZE)
            .map(|h| h.index);
        let Some(begin) = from_file.or(fallback) else {
            return Ok(());
        };
        self.begin = begin;
        if let Some(off) = Self::index_offset(begin) {
            self.index.reset_offset(off)?;
        }
        Ok(())
    }

    /// Java's `recover` (docs/protocol/dledger.md §3.6).
    fn recover(&mut self) -> Result<(), StorageError> {
        if self.data.segs.is_empty() {
            self.index.truncate_offset(0)?;
            return Ok(());
        }
        let n = self.data.segs.len();
        let mut fi = n.saturating_sub(3);
        loop {
            if self.first_entry_checks(fi) || fi == 0 {
                break;
            }
            fi -= 1;
        }
        let fs = self.data.file_size();
        let mut rel: usize = 0;
        let mut process_offset = self.data.segs[fi].base;
        let mut last_index: i64 = -1;
        let mut last_term: i64 = -1;
        let mut first_scanned: Option<i64> = None;
        let mut need_write_index = false;
        loop {
            let seg = &self.data.segs[fi];
            let bytes = seg.all();
            let abs = seg.base + rel as i64;
            if rel + 4 > fs {
                break;
            }
            let magic =
                i32::from_be_bytes([bytes[rel], bytes[rel + 1], bytes[rel + 2], bytes[rel + 3]]);
            if magic == crate::entry::BLANK_MAGIC {
                fi += 1;
                if fi >= n {
                    process_offset = seg.base + fs as i64;
                    break;
                }
                rel = 0;
                process_offset = self.data.segs[fi].base;
                continue;
            }
            let Ok(h) = EntryHeader::read(&bytes[rel..]) else {
                break;
            };
            if h.size == 0 {
                break;
            }
            let fits = usize::try_from(h.size)
                .ok()
                .and_then(|s| rel.checked_add(s))
                .is_some_and(|e| e <= fs);
            let ok = h.pos == abs
                && h.is_well_formed()
                && fits
                && (last_index == -1 || h.index == last_index + 1)
                && h.term >= last_term
                && Self::index_offset(h.index).is_some();
            if !ok {
                break;
            }
            let size = h.size as usize;
            let rec = IndexRecord {
                magic: h.magic,
                pos: abs,
                size: h.size,
                index: h.index,
                term: h.term,
            };
            if !need_write_index && self.index_record(h.index).ok() != Some(rec) {
                let off = Self::index_offset(h.index).unwrap_or(0);
                tracing::warn!(
                    index = h.index,
                    "index log disagrees with data; rebuilding it from here"
                );
                self.index.truncate_offset(off)?;
                if self.index.max_wrote() != off {
                    self.index.rebuild_with_pos(off)?;
                }
                need_write_index = true;
            }
            if need_write_index && self.append_index(rec).is_err() {
                break;
            }
            first_scanned.get_or_insert(h.index);
            last_index = h.index;
            last_term = h.term;
            process_offset = abs + size as i64;
            rel += size;
        }
        let last_base = self.data.segs[n - 1].base;
        if last_base - process_offset > fs as i64 {
            return Err(corrupt(format!(
                "recovered data ends at {process_offset}, more than one file before the last file {last_base}; check the data manually"
            )));
        }
        self.end = last_index;
        self.end_term = last_term;
        if last_index != -1 {
            self.read_entry(last_index)?;
            self.revise_begin(first_scanned)?;
        }
        self.data.truncate_offset(process_offset)?;
        self.index
            .truncate_offset((last_index + 1).saturating_mul(INDEX_UNIT_SIZE as i64))?;
        if !self.data.check_self() || !self.index.check_self() {
            return Err(corrupt(
                "segment files not contiguous after recovery".into(),
            ));
        }
        tracing::info!(
            begin = self.begin,
            end = self.end,
            end_term = self.end_term,
            data_end = process_offset,
            "dledger store recovered"
        );
        let cp = props::load(
            &self.cfg.default_path().join(CHECKPOINT_FILE),
            COMMITTED_INDEX_KEY,
        );
        if let Some(v) = cp
            .as_ref()
            .and_then(|p| p.get(COMMITTED_INDEX_KEY))
            .and_then(|v| v.trim().parse::<i64>().ok())
        {
            let term = self.hard_state.term;
            self.set_committed(term, v);
        }
        Ok(())
    }

    /// Pre-check of a candidate start file: its first entry is well formed,
    /// sits at the file start and matches its index record.
    fn first_entry_checks(&self, fi: usize) -> bool {
        let seg = &self.data.segs[fi];
        let Ok(h) = EntryHeader::read(seg.all()) else {
            return false;
        };
        h.magic != crate::entry::BLANK_MAGIC
            && h.is_well_formed()
            && h.pos == seg.base
            && self.index_record(h.index).ok()
                == Some(IndexRecord {
                    magic: h.magic,
                    pos: seg.base,
                    size: h.size,
                    index: h.index,
                    term: h.term,
                })
    }

    fn check_writable(&self) -> Result<(), StorageError> {
        if self.disk_full {
            return Err(StorageError::DiskFull);
        }
        Ok(())
    }

    fn check_size(len: usize) -> Result<(), StorageError> {
        if len > MAX_ENTRY_SIZE {
            return Err(StorageError::Io(format!(
                "entry of {len} bytes exceeds {MAX_ENTRY_SIZE}"
            )));
        }
        Ok(())
    }

    fn check_fits_segment(&self, len: usize) -> Result<(), StorageError> {
        if len + coder::MIN_BLANK_LEN > self.data.file_size() {
            return Err(StorageError::Io(format!(
                "entry of {len} bytes cannot fit a data segment of {}",
                self.data.file_size()
            )));
        }
        Ok(())
    }
}

/// Smallest sensible data segment (one header plus blank).
const MIN_SEGMENT: usize = 64;

fn load_hard_state(path: &Path) -> HardState {
    let Some(p) = props::load(path, TERM_KEY) else {
        return HardState::default();
    };
    // Like Java's loadTerm: an unparsable term abandons the whole file.
    let term = match p.get(TERM_KEY).map(|v| v.trim().parse::<i64>()) {
        None => 0,
        Some(Ok(t)) => t,
        Some(Err(_)) => return HardState::default(),
    };
    let vote = p.get(VOTE_KEY).filter(|v| !v.is_empty()).cloned();
    HardState { term, vote }
}

impl Storage for DLedgerStore {
    fn begin_index(&self) -> i64 {
        self.begin
    }

    fn end_index(&self) -> i64 {
        self.end
    }

    fn end_term(&self) -> i64 {
        self.end_term
    }

    fn committed_index(&self) -> i64 {
        self.committed_index
    }

    fn get(&self, index: i64) -> Result<Entry, StorageError> {
        self.index_check(index)?;
        self.read_entry(index)
    }

    fn append_leader(&mut self, term: i64, body: Bytes) -> Result<Entry, StorageError> {
        self.check_writable()?;
        let mut entry = Entry::new(body);
        entry.index = self.end + 1;
        entry.term = term;
        entry.magic = CURRENT_MAGIC;
        let mut buf = coder::encode_entry(&entry);
        Self::check_size(buf.len())?;
        self.check_fits_segment(buf.len())?;
        let pos = self.data.pre_append(buf.len(), true)?;
        coder::set_pos(&mut buf, pos);
        entry.pos = pos;
        if let Some(hook) = self.hook.as_mut() {
            hook(
                &mut buf[BODY_OFFSET as usize..],
                crate::entry::body_pos(crate::EntryPos(pos)),
            );
            entry.body = Bytes::copy_from_slice(&buf[BODY_OFFSET as usize..]);
        }
        let at = self.data.append(&buf, true)?;
        if at != pos {
            return Err(corrupt(format!("entry written at {at}, expected {pos}")));
        }
        self.append_index(IndexRecord {
            magic: CURRENT_MAGIC,
            pos,
            size: buf.len() as i32,
            index: entry.index,
            term,
        })?;
        self.end = entry.index;
        self.end_term = term;
        if self.begin == -1 {
            self.begin = self.end;
        }
        Ok(entry)
    }

    fn append_follower(&mut self, entry: &Entry) -> Result<(), StorageError> {
        self.check_writable()?;
        if entry.index != self.end + 1 {
            return Err(StorageError::NotNextIndex {
                index: entry.index,
                end: self.end,
            });
        }
        let buf = coder::encode_entry(entry);
        Self::check_size(buf.len())?;
        self.check_fits_segment(buf.len())?;
        // Unlike Java, check the position before writing the entry, so a
        // mismatch leaves no stray bytes behind.
        let pos = self.data.pre_append(buf.len(), true)?;
        if pos != entry.pos {
            return Err(StorageError::PosMismatch {
                index: entry.index,
                expected: entry.pos,
                actual: pos,
            });
        }
        self.data.append(&buf, true)?;
        self.append_index(IndexRecord {
            magic: entry.magic,
            pos,
            size: buf.len() as i32,
            index: entry.index,
            term: entry.term,
        })?;
        self.end = entry.index;
        self.end_term = entry.term;
        if self.begin == -1 {
            self.begin = self.end;
        }
        Ok(())
    }

    fn truncate(&mut self, entry: &Entry) -> Result<(), StorageError> {
        let buf = coder::encode_entry(entry);
        Self::check_size(buf.len())?;
        let index_off = Self::index_offset(entry.index)
            .ok_or_else(|| corrupt(format!("truncate at bad index {}", entry.index)))?;
        if entry.pos < 0 {
            return Err(corrupt(format!("truncate at bad pos {}", entry.pos)));
        }
        let existed = self
            .get(entry.index)
            .map(|local| local.same_as(entry))
            .unwrap_or(false);
        if !existed {
            self.check_fits_segment(buf.len())?;
        }
        // Java cuts at `entry.pos` when the entry differs. We cut right after
        // our entry `index - 1` when we have it and let the roll rule place
        // the leader's entry (checked against `entry.pos` below): identical
        // when positions agree, and no stale local entry survives below
        // `entry.pos` when they do not (Java would revive it on restart).
        let prev_end = if existed || entry.index == 0 {
            None
        } else {
            self.entry_pos_and_size(entry.index - 1)
                .ok()
                .map(|(pos, size)| pos + i64::from(size))
        };
        let cut = if existed {
            entry.pos + buf.len() as i64
        } else {
            prev_end.unwrap_or(entry.pos)
        };
        // The log must reach the cut point; otherwise (empty log, files that
        // start later, or a cut beyond the written end) start afresh there.
        if cut < self.data.min_offset() || cut > self.data.max_wrote() || self.data.segs.is_empty()
        {
            self.data.rebuild_with_pos(cut)?;
        } else {
            self.data.truncate_offset(cut)?;
            if self.data.max_wrote() != cut {
                self.data.rebuild_with_pos(cut)?;
            }
        }
        if !existed {
            let at = self.data.append(&buf, true)?;
            if at != entry.pos {
                // The leader's pos contradicts our roll rule (different
                // segment size?). Leave a consistent, shorter log: nothing
                // at or after `entry.index`.
                self.data.truncate_offset(cut)?;
                self.index.truncate_offset(index_off)?;
                self.end = entry.index - 1;
                if self.end < self.begin || self.end < 0 {
                    (self.begin, self.end, self.end_term) = (-1, -1, -1);
                } else {
                    self.end_term = self.read_entry(self.end).map_or(-1, |e| e.term);
                }
                return Err(StorageError::PosMismatch {
                    index: entry.index,
                    expected: entry.pos,
                    actual: at,
                });
            }
        }
        if index_off > self.index.max_wrote() || self.index.segs.is_empty() {
            self.index.rebuild_with_pos(index_off)?;
        } else {
            self.index.truncate_offset(index_off)?;
            if self.index.max_wrote() != index_off {
                self.index.rebuild_with_pos(index_off)?;
            }
        }
        self.append_index(IndexRecord {
            magic: entry.magic,
            pos: entry.pos,
            size: buf.len() as i32,
            index: entry.index,
            term: entry.term,
        })?;
        self.end = entry.index;
        self.end_term = entry.term;
        self.revise_begin(Some(entry.index))?;
        Ok(())
    }

    fn set_committed(&mut self, term: i64, index: i64) {
        if index == -1
            || self.end == -1
            || term < self.hard_state.term
            || index == self.committed_index
            || index < self.committed_index
            || index < self.begin
        {
            return;
        }
        let index = index.min(self.end);
        match self.entry_pos_and_size(index) {
            Ok((pos, size)) => {
                self.committed_index = index;
                self.committed_pos = pos + i64::from(size);
            }
            Err(e) => tracing::warn!(index, error = %e, "cannot commit: no index record"),
        }
    }

    fn hard_state(&self) -> HardState {
        self.hard_state.clone()
    }

    fn save_hard_state(&mut self, state: &HardState) -> Result<(), StorageError> {
        let path = self.cfg.default_path().join(TERM_FILE);
        props::store(
            &path,
            &[
                (TERM_KEY, state.term.to_string()),
                (VOTE_KEY, state.vote.clone().unwrap_or_default()),
            ],
            true,
        )
        .map_err(|e| io_err(path.display(), e))?;
        self.hard_state = state.clone();
        Ok(())
    }
}

/// Files to sync, from [`DLedgerStore::begin_flush`]; blocking, so run it
/// on a blocking thread.
#[derive(Debug)]
pub struct FlushJob {
    files: Vec<(PathBuf, std::fs::File)>,
    /// Ranges ahead of the write position to bring into the page cache.
    warm: Vec<mmap::WarmRange>,
}

impl FlushJob {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.warm.is_empty()
    }

    /// Pre-reads the pages ahead of the write positions, then `fdatasync`s
    /// every file, in order.
    pub fn run(self) -> Result<(), StorageError> {
        for w in self.warm {
            w.run();
        }
        for (path, f) in self.files {
            f.sync_data().map_err(|e| io_err(path.display(), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
