//! Read-only access to the committed part of the data log from outside the
//! task that owns the [`DLedgerStore`](super::DLedgerStore): a broker reads
//! message records (entry bodies) by their data-log position while the
//! driver appends. Reads go to the data files with positioned reads; they
//! never return a byte at or beyond the committed end the driver publishes,
//! so nothing a truncation could remove is ever handed out.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};

use super::list::file_name;
use crate::ids::EntryPos;

/// Reads committed bytes of one member's data log.
#[derive(Debug)]
pub struct CommittedReader {
    data_dir: PathBuf,
    file_size: i64,
    /// End (exclusive) of the committed entry, as last published; -1 when
    /// nothing is committed.
    committed_end: Arc<AtomicI64>,
    /// Open data files by start offset.
    files: Mutex<HashMap<i64, Arc<File>>>,
}

impl CommittedReader {
    pub(crate) fn new(
        data_dir: PathBuf,
        file_size: usize,
        committed_end: Arc<AtomicI64>,
    ) -> CommittedReader {
        CommittedReader {
            data_dir,
            file_size: i64::try_from(file_size).unwrap_or(i64::MAX),
            committed_end,
            files: Mutex::new(HashMap::new()),
        }
    }

    /// `len` bytes at data-log position `pos` (any byte, typically an entry's
    /// body position: [`EntryPos::body_pos`]), if all of them are committed
    /// and lie in one data file that still exists.
    pub fn read(&self, pos: i64, len: usize) -> Option<Bytes> {
        let end = pos.checked_add(i64::try_from(len).ok()?)?;
        if pos < 0 || end > self.committed_end.load(Ordering::Acquire) || self.file_size <= 0 {
            return None;
        }
        let start = pos - pos.rem_euclid(self.file_size);
        if end > start + self.file_size {
            return None;
        }
        let file = self.file(start)?;
        let mut buf = BytesMut::zeroed(len);
        file.read_exact_at(&mut buf, u64::try_from(pos - start).ok()?)
            .ok()?;
        Some(buf.freeze())
    }

    /// Start of the first data file still on disk (0 when there is none):
    /// the position of the oldest entry still readable.
    pub fn min_pos(&self) -> EntryPos {
        EntryPos(self.min_file_start())
    }

    fn min_file_start(&self) -> i64 {
        let Ok(dir) = std::fs::read_dir(&self.data_dir) else {
            return 0;
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
            .min()
            .unwrap_or(0)
    }

    fn file(&self, start: i64) -> Option<Arc<File>> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = files.get(&start) {
            return Some(f.clone());
        }
        let f = Arc::new(File::open(self.data_dir.join(file_name(start))).ok()?);
        // Files below the oldest one on disk were deleted: forget them.
        let min = self.min_file_start();
        files.retain(|s, _| *s >= min);
        files.insert(start, f.clone());
        Some(f)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::core::Storage;
    use crate::store::{DLedgerStore, StoreConfig};

    #[test]
    fn reads_only_committed_bytes_within_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = StoreConfig::new(dir.path(), "n0");
        cfg.mapped_file_size_for_entry_data = 4096;
        let mut s = DLedgerStore::open(cfg.clone()).unwrap();
        let a = s.append_leader(1, Bytes::from(vec![7u8; 100])).unwrap();
        let b = s.append_leader(1, Bytes::from(vec![9u8; 100])).unwrap();
        s.flush().unwrap();
        let end = Arc::new(AtomicI64::new(-1));
        let r = CommittedReader::new(cfg.data_path(), 4096, end.clone());
        assert_eq!(r.min_pos(), EntryPos(0));
        // Nothing committed: nothing readable.
        assert!(r.read(a.body_pos(), 100).is_none());
        end.store(b.pos, Ordering::Release);
        assert_eq!(&r.read(a.body_pos(), 100).unwrap()[..], &[7u8; 100][..]);
        assert!(r.read(b.body_pos(), 100).is_none(), "b is not committed");
        end.store(b.pos + i64::from(b.size()), Ordering::Release);
        assert_eq!(&r.read(b.body_pos(), 100).unwrap()[..], &[9u8; 100][..]);
        // Never across a file end, never before the log.
        assert!(r.read(4000, 200).is_none());
        assert!(r.read(-1, 10).is_none());
    }
}
