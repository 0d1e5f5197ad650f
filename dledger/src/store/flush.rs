//! Durability and retention, run from the server's timers: flush (inline or
//! as a [`FlushJob`] off the append path), the `checkpoint` file, shutdown,
//! and deletion of expired data files.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::core::StorageError;

use super::list::io_err;
use super::{mmap, props, DLedgerStore, CHECKPOINT_FILE, COMMITTED_INDEX_KEY, END_INDEX_KEY};

impl DLedgerStore {
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
