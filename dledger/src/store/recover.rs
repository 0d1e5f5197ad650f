//! Opening the store: the `currterm` file, recovery of the data and index
//! logs (docs/protocol/dledger.md §3.6), the begin index, and the committed
//! index from the checkpoint.

use std::path::Path;

use crate::core::{HardState, Storage, StorageError};
use crate::entry::{BODY_OFFSET, CURRENT_MAGIC};

use super::coder::{EntryHeader, IndexRecord, INDEX_UNIT_SIZE};
use super::list::SegmentList;
use super::{
    corrupt, props, DLedgerStore, StoreConfig, CHECKPOINT_FILE, COMMITTED_INDEX_KEY, TERM_FILE,
    TERM_KEY, VOTE_KEY,
};

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

    /// `reviseLedgerBeginIndex`: the begin index is the index field of the
    /// entry at the first data file's start position; index files wholly
    /// below it are dropped. If those bytes are not an entry header (a file
    /// rebuilt mid-way and reopened), `fallback` is used.
    pub(super) fn revise_begin(&mut self, fallback: Option<i64>) -> Result<(), StorageError> {
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
