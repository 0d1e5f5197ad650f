//! Reads and positions: the committed view the broker reads through, data
//! offsets, and entry lookup through the index log.

use bytes::Bytes;

use crate::core::StorageError;
use crate::entry::Entry;

use super::coder::{self, IndexRecord, INDEX_UNIT_SIZE};
use super::{corrupt, DLedgerStore};

impl DLedgerStore {
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
    pub(super) fn index_check(&self, index: i64) -> Result<(), StorageError> {
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

    pub(super) fn index_offset(index: i64) -> Option<i64> {
        if index < 0 {
            return None;
        }
        index.checked_mul(INDEX_UNIT_SIZE as i64)
    }

    pub(super) fn index_record(&self, index: i64) -> Result<IndexRecord, StorageError> {
        let off = Self::index_offset(index)
            .ok_or_else(|| corrupt(format!("index {index} has no index offset")))?;
        let b = self
            .index
            .read(off, INDEX_UNIT_SIZE)
            .ok_or_else(|| corrupt(format!("no index record for {index}")))?;
        IndexRecord::decode(b).map_err(|e| corrupt(format!("index record {index}: {e}")))
    }

    pub(super) fn read_entry(&self, index: i64) -> Result<Entry, StorageError> {
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
}
