//! A directory of fixed-size segments forming one virtual byte log
//! (`DL: store/file/MmapFileList.java`): file names are the 20-digit start
//! offset, adjacent files differ by exactly one file size.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::core::StorageError;

use super::coder::{blank_record, MIN_BLANK_LEN};
use super::mmap::{self, Segment};

/// Most files one cleanup pass deletes (`DELETE_FILES_BATCH_MAX`).
const DELETE_FILES_BATCH_MAX: usize = 10;

pub(crate) fn io_err(what: impl std::fmt::Display, e: std::io::Error) -> StorageError {
    if mmap::is_no_space(&e) {
        StorageError::DiskFull
    } else {
        StorageError::Io(format!("{what}: {e}"))
    }
}

/// Zero-padded 20-digit file name of a segment starting at `offset`.
pub fn file_name(offset: i64) -> String {
    format!("{offset:020}")
}

#[derive(Debug)]
pub(crate) struct SegmentList {
    dir: PathBuf,
    file_size: usize,
    pub(crate) segs: Vec<Segment>,
}

impl SegmentList {
    /// Maps every segment of `dir` (created if missing), each marked full,
    /// as Java's `load`. A file longer than `file_size`, a name gap or an
    /// unreadable file is an error; a shorter file (torn creation) is
    /// extended with zeros.
    pub(crate) fn load(dir: &Path, file_size: usize) -> Result<SegmentList, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir.display(), e))?;
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir.display(), e))? {
            let entry = entry.map_err(|e| io_err(dir.display(), e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(base) = name.parse::<i64>() else {
                continue;
            };
            names.push((base, entry.path()));
        }
        names.sort();
        let mut segs = Vec::with_capacity(names.len());
        for (base, path) in names {
            let len = std::fs::metadata(&path)
                .map_err(|e| io_err(path.display(), e))?
                .len();
            if len > file_size as u64 {
                return Err(StorageError::Io(format!(
                    "{}: length {len} does not match the configured file size {file_size}",
                    path.display()
                )));
            }
            if len < file_size as u64 {
                tracing::warn!(path = %path.display(), len, file_size, "extending short segment with zeros");
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| io_err(path.display(), e))?;
                mmap::allocate(&f, file_size as u64).map_err(|e| io_err(path.display(), e))?;
                f.set_len(file_size as u64)
                    .map_err(|e| io_err(path.display(), e))?;
            }
            segs.push(
                Segment::open(&path, base, file_size).map_err(|e| io_err(path.display(), e))?,
            );
        }
        let list = SegmentList {
            dir: dir.to_path_buf(),
            file_size,
            segs,
        };
        if !list.check_self() {
            return Err(StorageError::Io(format!(
                "{}: segment files are not contiguous (file size {file_size})",
                dir.display()
            )));
        }
        Ok(list)
    }

    pub(crate) fn file_size(&self) -> usize {
        self.file_size
    }

    pub(crate) fn check_self(&self) -> bool {
        self.segs
            .windows(2)
            .all(|w| w[1].base - w[0].base == self.file_size as i64)
    }

    /// End of written data (`getMaxWrotePosition`); 0 when there are no files.
    pub(crate) fn max_wrote(&self) -> i64 {
        self.segs.last().map_or(0, |s| s.base + s.wrote as i64)
    }

    /// First live byte (`getMinOffset`); 0 when there are no files.
    pub(crate) fn min_offset(&self) -> i64 {
        self.segs.first().map_or(0, |s| s.base + s.start as i64)
    }

    fn rel(&self, offset: i64) -> i64 {
        offset.rem_euclid(self.file_size as i64)
    }

    fn create(&mut self, base: i64) -> Result<(), StorageError> {
        let path = self.dir.join(file_name(base));
        let seg =
            Segment::create(&path, base, self.file_size).map_err(|e| io_err(path.display(), e))?;
        self.segs.push(seg);
        Ok(())
    }

    /// The segment appends go to, created if there is none or the last is full.
    fn writable(&mut self) -> Result<&mut Segment, StorageError> {
        let next = match self.segs.last() {
            None => Some(0),
            Some(s) if s.is_full() => Some(s.base + self.file_size as i64),
            Some(_) => None,
        };
        if let Some(base) = next {
            self.create(base)?;
        }
        self.segs
            .last_mut()
            .ok_or_else(|| StorageError::Io("no writable segment".into()))
    }

    /// Where `len` bytes would be written, after rolling to a new file (with a
    /// blank record filling the old one) when `len + 8 > remaining`. Without
    /// `use_blank` (index log) a record that does not fit is an error.
    pub(crate) fn pre_append(&mut self, len: usize, use_blank: bool) -> Result<i64, StorageError> {
        let blank = if use_blank { MIN_BLANK_LEN } else { 0 };
        let seg = self.writable()?;
        if len + blank > seg.remaining() {
            if !use_blank {
                return Err(StorageError::Io(format!(
                    "record of {len} bytes does not fit the segment"
                )));
            }
            let filler = blank_record(seg.remaining());
            if !seg.append(&filler) {
                return Err(StorageError::Io("blank record does not fit".into()));
            }
            let seg = self.writable()?;
            return Ok(seg.base + seg.wrote as i64);
        }
        Ok(seg.base + seg.wrote as i64)
    }

    /// Appends `data` (rolling first if needed); returns its absolute offset.
    pub(crate) fn append(&mut self, data: &[u8], use_blank: bool) -> Result<i64, StorageError> {
        let pos = self.pre_append(data.len(), use_blank)?;
        let seg = self.writable()?;
        if !seg.append(data) {
            return Err(StorageError::Io(format!(
                "{} bytes do not fit a segment of {}",
                data.len(),
                seg.size()
            )));
        }
        Ok(pos)
    }

    fn find(&self, offset: i64) -> Option<&Segment> {
        let first = self.segs.first()?;
        if offset < first.base {
            return None;
        }
        let i = usize::try_from((offset - first.base) / self.file_size as i64).ok()?;
        self.segs.get(i).filter(|s| s.base <= offset)
    }

    /// Written bytes `[offset, offset + len)`, if they lie in one segment.
    pub(crate) fn read(&self, offset: i64, len: usize) -> Option<&[u8]> {
        let seg = self.find(offset)?;
        seg.read(usize::try_from(offset - seg.base).ok()?, len)
    }

    /// Written bytes from `offset` to the end of written data in its segment.
    pub(crate) fn read_to_end_of_file(&self, offset: i64) -> Option<&[u8]> {
        let seg = self.find(offset)?;
        let rel = usize::try_from(offset - seg.base).ok()?;
        seg.read(rel, seg.wrote.checked_sub(rel)?)
    }

    fn delete(seg: Segment) -> Result<(), StorageError> {
        let path = seg.path().to_path_buf();
        drop(seg);
        std::fs::remove_file(&path).map_err(|e| io_err(path.display(), e))
    }

    /// Java's `truncateOffset`: the file holding `offset` is cut there (its
    /// tail zeroed, unlike Java, so nothing stale can be recovered later);
    /// files starting after `offset` are deleted.
    pub(crate) fn truncate_offset(&mut self, offset: i64) -> Result<(), StorageError> {
        while let Some(last) = self.segs.last() {
            if last.base > offset {
                if let Some(seg) = self.segs.pop() {
                    Self::delete(seg)?;
                }
            } else {
                break;
            }
        }
        let rel = self.rel(offset);
        if let Some(seg) = self.segs.last_mut() {
            if offset < seg.base + seg.size() as i64 {
                let path = seg.path().to_path_buf();
                seg.zero_from(rel as usize)
                    .map_err(|e| io_err(path.display(), e))?;
            }
        }
        Ok(())
    }

    /// Java's `resetOffset`: files wholly below `offset` are deleted, the one
    /// holding it starts there.
    pub(crate) fn reset_offset(&mut self, offset: i64) -> Result<(), StorageError> {
        let fs = self.file_size as i64;
        while self.segs.len() > 1 && self.segs[0].base + fs <= offset {
            let seg = self.segs.remove(0);
            Self::delete(seg)?;
        }
        if let Some(first) = self.segs.first_mut() {
            if first.base <= offset && offset < first.base + fs {
                first.start = (offset - first.base) as usize;
            }
        }
        Ok(())
    }

    /// Java's `rebuildWithPos`: drop every file and start an empty log at `pos`.
    pub(crate) fn rebuild_with_pos(&mut self, pos: i64) -> Result<(), StorageError> {
        if pos < 0 {
            return Err(StorageError::Io(format!(
                "rebuild at negative offset {pos}"
            )));
        }
        while let Some(seg) = self.segs.pop() {
            Self::delete(seg)?;
        }
        let rel = self.rel(pos);
        self.create(pos - rel)?;
        if let Some(seg) = self.segs.last_mut() {
            seg.wrote = rel as usize;
            seg.start = rel as usize;
        }
        Ok(())
    }

    /// [`Segment::take_sync`] of every segment, into `out`.
    pub(crate) fn take_sync(
        &mut self,
        out: &mut Vec<(PathBuf, std::fs::File)>,
    ) -> Result<(), StorageError> {
        for seg in &mut self.segs {
            if let Some(f) = seg
                .take_sync()
                .map_err(|e| io_err(seg.path().display(), e))?
            {
                out.push((seg.path().to_path_buf(), f));
            }
        }
        Ok(())
    }

    /// [`Segment::take_warm`] of the segment being written, into `out`.
    pub(crate) fn take_warm(&mut self, out: &mut Vec<super::mmap::WarmRange>) {
        if let Some(seg) = self.segs.last_mut() {
            match seg.take_warm() {
                Ok(Some(w)) => out.push(w),
                Ok(None) => {}
                Err(e) => tracing::debug!(path = %seg.path().display(), error = %e, "no pre-read"),
            }
        }
    }

    pub(crate) fn flush(&mut self) -> Result<(), StorageError> {
        for seg in &mut self.segs {
            let path = seg.path().to_path_buf();
            seg.flush().map_err(|e| io_err(path.display(), e))?;
        }
        Ok(())
    }

    /// Deletes leading files (never the last) whose mtime is at least
    /// `reserved` before `now`, or all of them but the last when `force`;
    /// stops at the first one kept and after 10. Returns how many went.
    pub(crate) fn delete_expired_by_time(
        &mut self,
        now: SystemTime,
        reserved: Duration,
        force: bool,
    ) -> Result<usize, StorageError> {
        let mut count = 0;
        while self.segs.len() > 1 && count < DELETE_FILES_BATCH_MAX {
            let expired = force
                || match self.segs[0].modified() {
                    Ok(m) => m + reserved <= now,
                    Err(_) => false,
                };
            if !expired {
                break;
            }
            let seg = self.segs.remove(0);
            Self::delete(seg)?;
            count += 1;
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_space_is_disk_full_other_errors_are_io() {
        let nospc = std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        assert!(matches!(io_err("f", nospc), StorageError::DiskFull));
        let eio = std::io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
        assert!(matches!(io_err("f", eio), StorageError::Io(_)));
    }
}
