//! Directories of fixed-size files named by their 20-digit start offset, as
//! Java's `MappedFileQueue`: listing, opening and truncating them.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::StoreError;
use crate::mmap::{self, MappedFile};

/// A file's modification time in ms since the epoch (Java
/// `MappedFile.getLastModifiedTimestamp`).
pub(crate) fn modified_ms(path: &Path) -> Option<i64> {
    let t = std::fs::metadata(path).ok()?.modified().ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

pub(crate) fn file_name(base: u64) -> String {
    format!("{base:020}")
}

fn corrupt(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The files of `dir`, sorted, checked to be contiguous and at most `size`
/// bytes. Shorter files (a cut tail) are extended with zeros. Names that are
/// not 20 digits are ignored.
pub(crate) fn list(dir: &Path, size: usize) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
            tracing::warn!(path = %entry.path().display(), "ignoring unexpected file");
            continue;
        }
        let Ok(base) = name.parse::<u64>() else {
            continue;
        };
        out.push((base, entry.path()));
    }
    out.sort();
    for w in out.windows(2) {
        if w[1].0 != w[0].0 + size as u64 {
            return Err(corrupt(
                &w[1].1,
                format!("does not follow {} (file size {size})", w[0].1.display()),
            ));
        }
    }
    for (_, path) in &out {
        let len = std::fs::metadata(path)?.len();
        if len > size as u64 {
            return Err(corrupt(
                path,
                format!("length {len} exceeds the configured file size {size}"),
            ));
        }
        if len < size as u64 {
            tracing::warn!(path = %path.display(), len, size, "extending short file with zeros");
            let f = OpenOptions::new().write(true).open(path)?;
            mmap::allocate(&f, size as u64)?;
            f.set_len(size as u64)?;
        }
    }
    Ok(out)
}

/// Map all listed files with everything readable (for scanning).
pub(crate) fn open_all(
    list: &[(u64, PathBuf)],
    size: usize,
) -> Result<Vec<Arc<MappedFile>>, StoreError> {
    list.iter()
        .map(|(base, path)| Ok(Arc::new(MappedFile::open(path, *base, size, size)?)))
        .collect()
}

/// Cut the logical content at absolute offset `end`: files after the one
/// holding `end` are deleted, the bytes from `end` to the end of its file are
/// zeroed, and that file is re-mapped with `end` as its published mark. The
/// files must not be shared (recovery only).
pub(crate) fn truncate(
    files: &mut Vec<Arc<MappedFile>>,
    end: u64,
    size: usize,
) -> Result<(), StoreError> {
    if !delete_files_after(files, end, size, Deleting::Recovery)? {
        return Ok(());
    }
    let Some(f) = files.pop() else {
        return Ok(());
    };
    let (path, base) = (f.path().to_path_buf(), f.base());
    let pos = (end - base) as usize;
    // Unmap before changing the length (a mapped page past EOF is a SIGBUS).
    drop(f);
    zero_tail(&path, pos, size)?;
    files.push(Arc::new(MappedFile::open(&path, base, size, pos)?));
    Ok(())
}

/// Why [`delete_files_after`] deletes (it decides the log line).
#[derive(Clone, Copy)]
enum Deleting {
    /// Start-up recovery found the valid data ends earlier (a warning).
    Recovery,
    /// A running replica is cut to a consistent point (information).
    Live,
}

/// The shared start of both truncations: `end` below the first file is an
/// error; the files after the one holding `end` are deleted. False when
/// there is nothing to cut (no files, or `end` past the last one).
fn delete_files_after(
    files: &mut Vec<Arc<MappedFile>>,
    end: u64,
    size: usize,
    why: Deleting,
) -> Result<bool, StoreError> {
    let Some(first) = files.first() else {
        return Ok(false);
    };
    if end < first.base() {
        return Err(corrupt(
            first.path(),
            format!("truncate below start to {end}"),
        ));
    }
    let idx = ((end - first.base()) / size as u64) as usize;
    if idx >= files.len() {
        return Ok(false);
    }
    for f in files.drain(idx + 1..).rev() {
        let path = f.path().to_path_buf();
        drop(f);
        match why {
            Deleting::Recovery => {
                tracing::warn!(path = %path.display(), "deleting file beyond the recovered end")
            }
            Deleting::Live => {
                tracing::info!(path = %path.display(), "deleting file past the truncation point")
            }
        }
        std::fs::remove_file(&path)?;
    }
    Ok(true)
}

/// Zero `[pos, size)` of an unmapped file by cutting and re-extending it: O(1)
/// and nothing stale past `pos` can later be mistaken for data.
fn zero_tail(path: &Path, pos: usize, size: usize) -> Result<(), StoreError> {
    let f = OpenOptions::new().write(true).open(path)?;
    f.set_len(pos as u64)?;
    mmap::allocate(&f, size as u64)?;
    f.set_len(size as u64)?;
    f.sync_all()?;
    Ok(())
}

/// Cut live files at absolute offset `end`, like [`truncate`], while readers
/// may still hold their mappings: files after the one holding `end` are
/// unlinked (their mappings stay valid), and the one holding it is replaced
/// by a copy of its first bytes — never shrunk or rewritten in place, so a
/// byte already handed out never changes (see `mmap`). The caller holds the
/// writer lock. `end` below the first file is an error.
pub(crate) fn truncate_live(
    files: &mut Vec<Arc<MappedFile>>,
    end: u64,
    size: usize,
) -> Result<(), StoreError> {
    if !delete_files_after(files, end, size, Deleting::Live)? {
        return Ok(());
    }
    let Some(f) = files.last() else {
        return Ok(());
    };
    let (path, base) = (f.path().to_path_buf(), f.base());
    let pos = (end - base) as usize;
    if pos >= f.published() {
        return Ok(());
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".truncating");
    let tmp = PathBuf::from(tmp);
    {
        use std::io::Read;
        let mut src = std::fs::File::open(&path)?;
        let mut dst = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        std::io::copy(&mut (&mut src).take(pos as u64), &mut dst)?;
        mmap::allocate(&dst, size as u64)?;
        dst.set_len(size as u64)?;
        dst.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    let replaced = Arc::new(MappedFile::open(&path, base, size, pos)?);
    if let Some(last) = files.last_mut() {
        *last = replaced;
    }
    Ok(())
}
