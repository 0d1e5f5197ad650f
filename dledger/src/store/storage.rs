//! [`Storage`] for the Raft core: leader and follower appends (with the
//! disk-full and size checks before any byte is written), truncation, the
//! committed index and the `currterm` hard state.

use bytes::Bytes;

use crate::core::{HardState, Storage, StorageError};
use crate::entry::{Entry, BODY_OFFSET, CURRENT_MAGIC};

use super::coder::{self, IndexRecord, MAX_ENTRY_SIZE};
use super::list::io_err;
use super::{corrupt, props, DLedgerStore, TERM_FILE, TERM_KEY, VOTE_KEY};

impl DLedgerStore {
    pub(super) fn append_index(&mut self, rec: IndexRecord) -> Result<(), StorageError> {
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
