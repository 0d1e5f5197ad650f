//! Consume queues: `consumequeue/<topic>/<queueId>/<20-digit byte offset>`
//! files of 20-byte entries (Java `ConsumeQueue`); entry *n* is queue offset
//! *n*:
//!
//! ```text
//! +----------------------+-------------+-------------------+
//! | commit-log offset i64| size i32    | tags code i64     |
//! +----------------------+-------------+-------------------+
//! ```
//! Appends come from the store's single writer; readers see published
//! entries only.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::StoreError;
use crate::files;
use crate::mmap::MappedFile;

pub(crate) const CQ_UNIT: usize = 20;

/// Java's filler for the part of a first file before its first real entry.
const BLANK_ENTRY: CqEntry = CqEntry {
    phys: 0,
    size: i32::MAX,
    tags_code: 0,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CqEntry {
    pub(crate) phys: i64,
    pub(crate) size: i32,
    pub(crate) tags_code: i64,
}

impl CqEntry {
    fn to_bytes(self) -> [u8; CQ_UNIT] {
        let mut b = [0u8; CQ_UNIT];
        b[..8].copy_from_slice(&self.phys.to_be_bytes());
        b[8..12].copy_from_slice(&self.size.to_be_bytes());
        b[12..].copy_from_slice(&self.tags_code.to_be_bytes());
        b
    }

    fn from_bytes(b: &[u8]) -> CqEntry {
        let mut p = [0u8; 8];
        p.copy_from_slice(&b[..8]);
        let mut s = [0u8; 4];
        s.copy_from_slice(&b[8..12]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[12..20]);
        CqEntry {
            phys: i64::from_be_bytes(p),
            size: i32::from_be_bytes(s),
            tags_code: i64::from_be_bytes(t),
        }
    }

    fn is_blank(&self) -> bool {
        *self == BLANK_ENTRY
    }
}

pub(crate) struct ConsumeQueue {
    dir: PathBuf,
    file_size: usize,
    files: RwLock<Vec<Arc<MappedFile>>>,
    min_offset: AtomicI64,
    max_offset: AtomicI64,
}

fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ConsumeQueue {
    /// An empty queue in `dir` (created), starting at queue offset 0.
    pub(crate) fn create(dir: &Path, file_size: usize) -> Result<ConsumeQueue, StoreError> {
        std::fs::create_dir_all(dir)?;
        Ok(ConsumeQueue {
            dir: dir.to_path_buf(),
            file_size,
            files: RwLock::new(Vec::new()),
            min_offset: AtomicI64::new(0),
            max_offset: AtomicI64::new(0),
        })
    }

    pub(crate) fn min_offset(&self) -> i64 {
        self.min_offset.load(Ordering::Acquire)
    }

    pub(crate) fn max_offset(&self) -> i64 {
        self.max_offset.load(Ordering::Acquire)
    }

    fn per_file(&self) -> i64 {
        (self.file_size / CQ_UNIT) as i64
    }

    /// The entry at queue offset `q`, if within `[min, max)`.
    pub(crate) fn entry(&self, q: i64) -> Option<CqEntry> {
        if q < self.min_offset() || q >= self.max_offset() {
            return None;
        }
        self.entry_unchecked(q)
    }

    fn entry_unchecked(&self, q: i64) -> Option<CqEntry> {
        let files = read_lock(&self.files);
        let first = files.first()?.base();
        let byte = u64::try_from(q).ok()? * CQ_UNIT as u64;
        let rel = byte.checked_sub(first)?;
        let f = files.get((rel / self.file_size as u64) as usize)?;
        let pos = (rel % self.file_size as u64) as usize;
        f.read(pos, CQ_UNIT).map(CqEntry::from_bytes)
    }

    /// First queue offset of the file after the one holding `q` (Java
    /// `rollNextFile`).
    pub(crate) fn roll_next_file(&self, q: i64) -> i64 {
        q + self.per_file() - q % self.per_file()
    }

    /// Make room for `n` more entries (creating files). Writer only; on
    /// failure nothing is appended.
    pub(crate) fn ensure_capacity(&self, n: usize) -> Result<(), StoreError> {
        let needed_end = (self.max_offset() as u64 + n as u64) * CQ_UNIT as u64;
        loop {
            let next_base = {
                let files = read_lock(&self.files);
                match files.last() {
                    Some(f) => f.base() + self.file_size as u64,
                    None => {
                        let start = self.max_offset() as u64 * CQ_UNIT as u64;
                        start - start % self.file_size as u64
                    }
                }
            };
            if next_base >= needed_end && !read_lock(&self.files).is_empty() {
                return Ok(());
            }
            let path = self.dir.join(files::file_name(next_base));
            let f = MappedFile::create(&path, next_base, self.file_size)?;
            write_lock(&self.files).push(Arc::new(f));
        }
    }

    /// Append one entry; capacity must have been ensured. Writer only.
    pub(crate) fn append(&self, e: CqEntry) -> bool {
        let q = self.max_offset();
        let byte = q as u64 * CQ_UNIT as u64;
        let f = {
            let files = read_lock(&self.files);
            let Some(first) = files.first() else {
                return false;
            };
            let idx = ((byte - first.base()) / self.file_size as u64) as usize;
            match files.get(idx) {
                Some(f) => Arc::clone(f),
                None => return false,
            }
        };
        if f.append(&e.to_bytes()).is_none() {
            return false;
        }
        self.max_offset.store(q + 1, Ordering::Release);
        true
    }

    /// Start an empty queue at queue offset `q0` (rebuild after the commit
    /// log's head was removed): blank entries fill its first file up to `q0`.
    pub(crate) fn start_at(&self, q0: i64) -> Result<(), StoreError> {
        debug_assert!(read_lock(&self.files).is_empty());
        let file_start = q0 - q0 % self.per_file();
        self.max_offset.store(file_start, Ordering::Release);
        self.ensure_capacity((q0 - file_start) as usize + 1)?;
        for _ in file_start..q0 {
            self.append(BLANK_ENTRY);
        }
        self.min_offset.store(q0, Ordering::Release);
        Ok(())
    }

    pub(crate) fn flush(&self) -> std::io::Result<()> {
        let files = read_lock(&self.files).clone();
        for f in files.iter().rev() {
            if f.flushed() >= f.published() && f.published() > 0 {
                break;
            }
            f.flush()?;
        }
        Ok(())
    }

    /// Open the queue in `dir`, keeping the entries that point below
    /// `cl_end`; later ones (and anything after a hole) are cut off. The min
    /// offset is the first entry at or above `cl_min`.
    pub(crate) fn load(
        dir: &Path,
        file_size: usize,
        cl_min: i64,
        cl_end: i64,
    ) -> Result<ConsumeQueue, StoreError> {
        let listed = files::list(dir, file_size)?;
        let mut fs = files::open_all(&listed, file_size)?;
        let valid = |e: &CqEntry| {
            e.is_blank() || (e.phys >= 0 && e.size > 0 && e.phys + i64::from(e.size) <= cl_end)
        };
        // Like Java, scan the last three files; if even the first of them
        // holds nothing valid, scan everything.
        let scan = |from: usize| -> u64 {
            let mut end = fs.get(from).map_or(0, |f| f.base());
            for f in &fs[from..] {
                let data = f.read(0, file_size).unwrap_or(&[]);
                for (i, chunk) in data.chunks_exact(CQ_UNIT).enumerate() {
                    if !valid(&CqEntry::from_bytes(chunk)) {
                        return f.base() + (i * CQ_UNIT) as u64;
                    }
                }
                end = f.base() + file_size as u64;
            }
            end
        };
        let from = fs.len().saturating_sub(3);
        let mut end = scan(from);
        if from > 0 && end == fs[from].base() {
            end = scan(0);
        }
        files::truncate(&mut fs, end, file_size)?;
        let max = (end / CQ_UNIT as u64) as i64;
        let mut min = max;
        if let Some(first) = fs.first() {
            let data = first.read(0, first.published()).unwrap_or(&[]);
            for (i, chunk) in data.chunks_exact(CQ_UNIT).enumerate() {
                let e = CqEntry::from_bytes(chunk);
                if !e.is_blank() && e.phys >= cl_min {
                    min = ((first.base() as usize + i * CQ_UNIT) / CQ_UNIT) as i64;
                    break;
                }
            }
        }
        Ok(ConsumeQueue {
            dir: dir.to_path_buf(),
            file_size,
            files: RwLock::new(fs),
            min_offset: AtomicI64::new(min),
            max_offset: AtomicI64::new(max),
        })
    }

    /// Retention (Java `deleteExpiredFile` + `correctMinOffset`): delete the
    /// full files (never the last) whose last entry points below the commit
    /// log's new start `cl_min`, then move the min offset to the first entry
    /// at or above it. Writer only. Returns the number of files deleted.
    pub(crate) fn delete_below(&self, cl_min: i64) -> Result<usize, StoreError> {
        let removed: Vec<Arc<MappedFile>> = {
            let mut fs = write_lock(&self.files);
            let mut n = 0;
            while n + 1 < fs.len() {
                let f = &fs[n];
                let last = f
                    .read(self.file_size - CQ_UNIT, CQ_UNIT)
                    .map(CqEntry::from_bytes);
                match last {
                    Some(e) if e.is_blank() || e.phys < cl_min => n += 1,
                    _ => break,
                }
            }
            fs.drain(..n).collect()
        };
        let count = removed.len();
        for f in removed {
            let path = f.path().to_path_buf();
            drop(f);
            std::fs::remove_file(&path)?;
        }
        let first_in_files = read_lock(&self.files)
            .first()
            .map_or(0, |f| (f.base() / CQ_UNIT as u64) as i64);
        let max = self.max_offset();
        let mut q = self.min_offset().max(first_in_files);
        while q < max {
            match self.entry_unchecked(q) {
                Some(e) if e.is_blank() || e.phys < cl_min => q += 1,
                _ => break,
            }
        }
        self.min_offset.fetch_max(q, Ordering::AcqRel);
        Ok(count)
    }

    /// Drops the entries of records that do not end at or below the commit
    /// log's new end `cl_end` (Java `truncateDirtyLogicFiles`). Writer only.
    /// Returns the new max offset.
    pub(crate) fn truncate_phys(&self, cl_end: i64) -> Result<i64, StoreError> {
        let (min, max) = (self.min_offset(), self.max_offset());
        let mut cut = max;
        while cut > min {
            match self.entry_unchecked(cut - 1) {
                Some(e) if !e.is_blank() && e.phys + i64::from(e.size) > cl_end => cut -= 1,
                _ => break,
            }
        }
        if cut == max {
            return Ok(max);
        }
        self.max_offset.store(cut, Ordering::Release);
        let mut fs = write_lock(&self.files);
        files::truncate_live(&mut fs, cut as u64 * CQ_UNIT as u64, self.file_size)?;
        Ok(cut)
    }

    /// Delete all files (before a rebuild). Recovery only.
    pub(crate) fn destroy(self) -> Result<(), StoreError> {
        let files = self
            .files
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for f in files {
            let path = f.path().to_path_buf();
            drop(f);
            std::fs::remove_file(path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_roll_reload_truncate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = ConsumeQueue::create(dir.path(), 3 * CQ_UNIT).expect("create");
        for i in 0..7 {
            q.ensure_capacity(1).expect("capacity");
            assert!(q.append(CqEntry {
                phys: i * 100,
                size: 100,
                tags_code: i,
            }));
        }
        assert_eq!(q.max_offset(), 7);
        assert_eq!(q.entry(6).map(|e| e.phys), Some(600));
        assert_eq!(q.entry(7), None);
        assert_eq!(q.roll_next_file(4), 6);
        q.flush().expect("flush");
        drop(q);
        let names: Vec<_> = files::list(dir.path(), 60)
            .expect("list")
            .into_iter()
            .map(|(b, _)| b)
            .collect();
        assert_eq!(names, vec![0, 60, 120]);
        // Commit log now ends at 450: entries 0..=3 (end 400) survive.
        let q = ConsumeQueue::load(dir.path(), 60, 0, 450).expect("load");
        assert_eq!((q.min_offset(), q.max_offset()), (0, 4));
        assert_eq!(q.entry(3).map(|e| e.tags_code), Some(3));
        q.ensure_capacity(1).expect("capacity");
        assert!(q.append(CqEntry {
            phys: 400,
            size: 50,
            tags_code: 9,
        }));
        assert_eq!(q.entry(4).map(|e| e.tags_code), Some(9));
        drop(q);
        let q = ConsumeQueue::load(dir.path(), 60, 0, 450).expect("load");
        assert_eq!(q.max_offset(), 5);
    }

    #[test]
    fn start_at_fills_blanks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = ConsumeQueue::create(dir.path(), 4 * CQ_UNIT).expect("create");
        q.start_at(6).expect("start");
        assert_eq!((q.min_offset(), q.max_offset()), (6, 6));
        q.ensure_capacity(1).expect("capacity");
        assert!(q.append(CqEntry {
            phys: 10,
            size: 5,
            tags_code: 0,
        }));
        drop(q);
        let q = ConsumeQueue::load(dir.path(), 4 * CQ_UNIT, 0, 15).expect("load");
        assert_eq!((q.min_offset(), q.max_offset()), (6, 7));
    }
}
