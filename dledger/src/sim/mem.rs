//! An in-memory [`Storage`] with the real store's position rules: entries
//! never straddle a segment; if `size + 8 > remaining`, the entry starts at
//! the next segment (the 8 bytes are the blank record's header).

use bytes::Bytes;

use crate::core::{HardState, Storage, StorageError};
use crate::entry::Entry;

#[derive(Clone, Debug)]
pub struct MemStorage {
    segment: i64,
    entries: Vec<Entry>,
    /// Index of `entries[0]`.
    begin: i64,
    write_pos: i64,
    committed: i64,
    hard: HardState,
    /// Bumped on every log change.
    pub version: u64,
    /// Lowest index written since [`MemStorage::take_dirty`].
    dirty_from: Option<i64>,
}

impl MemStorage {
    pub fn new(segment: i64) -> Self {
        MemStorage {
            segment,
            entries: Vec::new(),
            begin: 0,
            write_pos: 0,
            committed: -1,
            hard: HardState::default(),
            version: 0,
            dirty_from: None,
        }
    }

    /// Where an entry of `size` bytes lands when the log ends at `write_pos`.
    pub fn place(segment: i64, write_pos: i64, size: i64) -> i64 {
        let remaining = segment - write_pos % segment;
        if size + 8 > remaining {
            write_pos + remaining
        } else {
            write_pos
        }
    }

    /// The whole log, in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Lowest index changed since the last call.
    pub fn take_dirty(&mut self) -> Option<i64> {
        self.dirty_from.take()
    }

    fn mark(&mut self, index: i64) {
        self.version += 1;
        self.dirty_from = Some(self.dirty_from.map_or(index, |d| d.min(index)));
    }

    fn end(&self) -> i64 {
        if self.entries.is_empty() {
            -1
        } else {
            self.begin + self.entries.len() as i64 - 1
        }
    }
}

impl Storage for MemStorage {
    fn begin_index(&self) -> i64 {
        if self.entries.is_empty() {
            -1
        } else {
            self.begin
        }
    }

    fn end_index(&self) -> i64 {
        self.end()
    }

    fn end_term(&self) -> i64 {
        self.entries.last().map_or(-1, |e| e.term)
    }

    fn committed_index(&self) -> i64 {
        self.committed
    }

    fn get(&self, index: i64) -> Result<Entry, StorageError> {
        if self.entries.is_empty() || index > self.end() || index < 0 {
            return Err(StorageError::IndexOutOfRange {
                index,
                begin: self.begin_index(),
                end: self.end(),
            });
        }
        if index < self.begin {
            return Err(StorageError::BelowBegin {
                index,
                begin: self.begin,
            });
        }
        Ok(self.entries[(index - self.begin) as usize].clone())
    }

    fn append_leader(&mut self, term: i64, body: Bytes) -> Result<Entry, StorageError> {
        let mut e = Entry::new(body);
        e.index = self.end() + 1;
        e.term = term;
        e.pos = Self::place(self.segment, self.write_pos, e.size() as i64);
        self.write_pos = e.pos + e.size() as i64;
        self.entries.push(e.clone());
        self.mark(e.index);
        Ok(e)
    }

    fn append_follower(&mut self, entry: &Entry) -> Result<(), StorageError> {
        if entry.index != self.end() + 1 {
            return Err(StorageError::NotNextIndex {
                index: entry.index,
                end: self.end(),
            });
        }
        let at = Self::place(self.segment, self.write_pos, entry.size() as i64);
        if at != entry.pos {
            return Err(StorageError::PosMismatch {
                index: entry.index,
                expected: entry.pos,
                actual: at,
            });
        }
        self.write_pos = at + entry.size() as i64;
        self.entries.push(entry.clone());
        self.mark(entry.index);
        Ok(())
    }

    fn truncate(&mut self, entry: &Entry) -> Result<(), StorageError> {
        let keep = self
            .get(entry.index)
            .map(|l| l.same_as(entry))
            .unwrap_or(false);
        if entry.index < self.begin || entry.index > self.end() + 1 || self.entries.is_empty() {
            // Start afresh at this entry (what the mmap store does).
            self.entries.clear();
            self.begin = entry.index;
        }
        let off = (entry.index - self.begin) as usize;
        self.entries.truncate(off);
        self.entries.push(entry.clone());
        self.write_pos = entry.pos + entry.size() as i64;
        if !keep {
            self.mark(entry.index);
        } else {
            self.version += 1;
        }
        Ok(())
    }

    fn set_committed(&mut self, term: i64, index: i64) {
        let end = self.end();
        if index == -1
            || end == -1
            || term < self.hard.term
            || index <= self.committed
            || index < self.begin
        {
            return;
        }
        self.committed = index.min(end);
    }

    fn hard_state(&self) -> HardState {
        self.hard.clone()
    }

    fn save_hard_state(&mut self, state: &HardState) -> Result<(), StorageError> {
        self.hard = state.clone();
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn entries_never_straddle_a_segment() {
        let mut s = MemStorage::new(256);
        let a = s.append_leader(1, Bytes::from(vec![0u8; 100])).unwrap(); // 148 bytes
        assert_eq!(a.pos, 0);
        // 108 + 8 > 256 - 148 = 108 → next segment.
        let b = s.append_leader(1, Bytes::from(vec![0u8; 60])).unwrap(); // 108 bytes
        assert_eq!(b.pos, 256);
        // size + 8 == remaining fits: remaining 148, size 140.
        let c = s.append_leader(1, Bytes::from(vec![0u8; 92])).unwrap();
        assert_eq!(c.pos, 364);
        let mut f = MemStorage::new(256);
        f.append_follower(&a).unwrap();
        f.append_follower(&b).unwrap();
        let mut wrong = c.clone();
        wrong.pos = 512;
        assert!(matches!(
            f.append_follower(&wrong),
            Err(StorageError::PosMismatch { .. })
        ));
    }
}
