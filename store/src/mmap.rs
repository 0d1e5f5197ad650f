//! Memory-mapped, append-only files: the only module allowed `unsafe`.
//!
//! A [`MappedFile`] is a pre-sized file mapped shared and read-write. Its bytes
//! are split by one monotonically growing mark, `published`:
//!
//! ```text
//!  0                      published                         size
//!  +---------------------------+--------------------------------+
//!  | immutable, readable by    | written only by `append`,      |
//!  | anyone (`read`, `slice`)  | under `append_lock`            |
//!  +---------------------------+--------------------------------+
//! ```
//!
//! Soundness rests on three rules enforced here and nowhere else:
//! 1. `append` writes only at `published` (under a mutex) and moves the mark
//!    forward with `Release` after the copy, so a byte never changes once it
//!    is below the mark;
//! 2. readers hand out slices only below a mark loaded with `Acquire`;
//! 3. the file is never shrunk while mapped (callers truncate unmapped files).
//!
//! Slices handed out as [`Bytes`] keep an `Arc` of the mapping alive, so a
//! segment can be dropped from a list (or its file unlinked) while a pull
//! response still references it.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use memmap2::{MmapOptions, MmapRaw};

/// A mapped file of fixed size whose content grows by appends.
pub(crate) struct MappedFile {
    path: PathBuf,
    /// Logical offset of byte 0 (the number in the file name).
    base: u64,
    size: usize,
    map: MmapRaw,
    published: AtomicUsize,
    flushed: AtomicUsize,
    /// End of the range handed to the warmer (see [`MappedFile::warm_ahead`]).
    warmed: AtomicUsize,
    append_lock: Mutex<()>,
    _file: File,
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile")
            .field("path", &self.path)
            .field("base", &self.base)
            .field("size", &self.size)
            .field("published", &self.published())
            .finish()
    }
}

/// Reserve the blocks of `[0, size)` so that writes through the mapping cannot
/// hit ENOSPC later (which would be a SIGBUS, not an error). Filesystems
/// without `fallocate` get a sparse file, as Java does.
pub(crate) fn allocate(file: &File, size: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, size) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::NOSPC => Err(io::Error::from(e)),
        Err(_) => file.set_len(size),
    }
}

impl MappedFile {
    /// Create a new zero-filled file of `size` bytes and map it. Fails if the
    /// file exists. On failure the file is removed again.
    pub(crate) fn create(path: &Path, base: u64, size: usize) -> io::Result<MappedFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        let res = allocate(&file, size as u64)
            .and_then(|()| file.set_len(size as u64))
            .and_then(|()| Self::map(path, file, base, size, 0));
        if res.is_err() {
            let _ = std::fs::remove_file(path);
        }
        res
    }

    /// Map an existing file that is exactly `size` bytes long. Bytes below
    /// `published` become readable; appends continue from there. The caller
    /// guarantees the file is not written by anyone else.
    pub(crate) fn open(
        path: &Path,
        base: u64,
        size: usize,
        published: usize,
    ) -> io::Result<MappedFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        if len != size as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: length {len}, expected {size}", path.display()),
            ));
        }
        Self::map(path, file, base, size, published.min(size))
    }

    fn map(
        path: &Path,
        file: File,
        base: u64,
        size: usize,
        published: usize,
    ) -> io::Result<MappedFile> {
        let map = MmapOptions::new().len(size).map_raw(&file)?;
        Ok(MappedFile {
            path: path.to_path_buf(),
            base,
            size,
            map,
            published: AtomicUsize::new(published),
            // After a process crash the page cache may hold bytes the disk
            // lacks: the first flush after opening syncs everything.
            flushed: AtomicUsize::new(0),
            warmed: AtomicUsize::new(published),
            append_lock: Mutex::new(()),
            _file: file,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// End of the immutable, readable prefix (relative to the file start).
    pub(crate) fn published(&self) -> usize {
        self.published.load(Ordering::Acquire)
    }

    /// Append `data` at the published mark; returns the position written.
    /// `None` (nothing written) if it does not fit.
    pub(crate) fn append(&self, data: &[u8]) -> Option<usize> {
        let _guard = self
            .append_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pos = self.published.load(Ordering::Acquire);
        if data.len() > self.size - pos {
            return None;
        }
        // SAFETY: `pos + data.len() <= size`, the mapping is `size` bytes and
        // the file is never shrunk while mapped (module rule 3). Bytes at or
        // above `published` are never handed to readers (rule 2) and only this
        // function writes them, serialized by `append_lock` (rule 1), so no
        // other reference to the destination range exists.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.map.as_mut_ptr().add(pos),
                data.len(),
            );
        }
        self.published.store(pos + data.len(), Ordering::Release);
        Some(pos)
    }

    /// Keeps the pages just ahead of the append position faulted in, from a
    /// background thread (Java's `warmMappedFileEnable` does the whole file
    /// at allocation; a window is enough and keeps idle memory low). The
    /// first write to a page of a fresh, preallocated file otherwise pays a
    /// page fault with kernel read-ahead and zero-fill on the appender's
    /// thread, i.e. inside a send's latency. `MADV_POPULATE_WRITE` faults
    /// the pages in without touching their bytes, so it cannot race with
    /// `append`; where the kernel lacks it (before 5.14) this does nothing.
    pub(crate) fn warm_ahead(self: &Arc<Self>) {
        let end = self.published();
        if end + WARM_AHEAD - WARM_STEP <= self.warmed.load(Ordering::Relaxed) {
            return;
        }
        let target = (end + WARM_AHEAD).min(self.size);
        let prev = self.warmed.fetch_max(target, Ordering::AcqRel);
        if prev < target {
            warmer::request(Arc::downgrade(self), prev.max(end), target);
        }
    }

    /// The published bytes `[pos, pos + len)`, or `None` if not all published.
    pub(crate) fn read(&self, pos: usize, len: usize) -> Option<&[u8]> {
        let end = pos.checked_add(len)?;
        if end > self.published() {
            return None;
        }
        // SAFETY: the range is inside the mapping and below `published`, so it
        // is never written again while `self` lives (rule 1).
        Some(unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(pos), len) })
    }

    /// Like [`read`](Self::read) but as a [`Bytes`] that keeps the mapping
    /// alive without copying.
    pub(crate) fn slice(self: &Arc<Self>, pos: usize, len: usize) -> Option<Bytes> {
        self.read(pos, len)?;
        Some(Bytes::from_owner(MappedSlice {
            file: Arc::clone(self),
            pos,
            len,
        }))
    }

    /// Faults the published pages of `[pos, pos + len)` in now, on the
    /// calling thread, so that whoever copies them later (the connection
    /// writing a pull response) does not wait on the disk. One
    /// `MADV_POPULATE_READ` per call; kernels without it (before 5.14) get
    /// one byte read per page instead. Out-of-range parts are ignored.
    pub(crate) fn populate_read(&self, pos: usize, len: usize) {
        let end = pos.saturating_add(len).min(self.published());
        if pos >= end {
            return;
        }
        if !NO_POPULATE_READ.load(Ordering::Relaxed) {
            match self
                .map
                .advise_range(memmap2::Advice::PopulateRead, pos, end - pos)
            {
                Ok(()) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "MADV_POPULATE_READ failed; touching pages instead");
                    NO_POPULATE_READ.store(true, Ordering::Relaxed);
                }
            }
        }
        if let Some(bytes) = self.read(pos, end - pos) {
            let mut sum = 0u8;
            for b in bytes.iter().step_by(PAGE) {
                sum = sum.wrapping_add(*b);
            }
            std::hint::black_box(sum);
        }
    }

    /// Asks the kernel to start reading `[pos, pos + len)` (clipped to the
    /// published bytes) in the background (`MADV_WILLNEED`); returns at once.
    pub(crate) fn will_need(&self, pos: usize, len: usize) {
        let end = pos.saturating_add(len).min(self.published());
        if pos < end {
            if let Err(e) = self
                .map
                .advise_range(memmap2::Advice::WillNeed, pos, end - pos)
            {
                tracing::debug!(error = %e, "MADV_WILLNEED failed");
            }
        }
    }

    /// msync the published bytes not yet flushed. Returns the flushed mark.
    pub(crate) fn flush(&self) -> io::Result<usize> {
        let published = self.published();
        let flushed = self.flushed.load(Ordering::Acquire);
        if published > flushed {
            self.map.flush_range(flushed, published - flushed)?;
            self.flushed.fetch_max(published, Ordering::AcqRel);
        }
        Ok(published)
    }

    pub(crate) fn flushed(&self) -> usize {
        self.flushed.load(Ordering::Acquire)
    }
}

/// Maps the first `len` bytes of `file` shared and read-write for random
/// access through an ordinary `&mut [u8]` (the index files). The caller
/// guarantees that `file` is at least `len` bytes long, is never shrunk
/// while mapped, and is not written by anyone else (rule 3 above and the
/// store's single-owner rule); the borrow checker then orders every access
/// made through the map.
pub(crate) fn map_whole(file: &File, len: usize) -> io::Result<memmap2::MmapMut> {
    let actual = file.metadata()?.len();
    if actual < len as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("file is {actual} bytes, cannot map {len}"),
        ));
    }
    // SAFETY: the length was checked above and the caller upholds the
    // no-shrink / single-writer rules documented on this function.
    unsafe { MmapOptions::new().len(len).map_mut(file) }
}

/// Set once `MADV_POPULATE_READ` failed (kernel before 5.14).
static NO_POPULATE_READ: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stride of the page-touching fallback of [`MappedFile::populate_read`]
/// (the smallest page size; touching more often costs little).
const PAGE: usize = 4096;

/// How far ahead of the append position [`MappedFile::warm_ahead`] keeps
/// pages faulted in, and the step in which it moves.
const WARM_AHEAD: usize = 4 * 1024 * 1024;
const WARM_STEP: usize = 1024 * 1024;

/// One process-wide thread that pre-faults ranges of mapped files.
mod warmer {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::{channel, Sender};
    use std::sync::{Mutex, OnceLock, Weak};

    use super::MappedFile;

    /// Bytes pre-faulted per `madvise` call.
    const WARM_CALL: usize = 256 * 1024;

    type Job = (Weak<MappedFile>, usize, usize);

    static QUEUE: OnceLock<Option<Mutex<Sender<Job>>>> = OnceLock::new();
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

    pub(super) fn request(file: Weak<MappedFile>, from: usize, to: usize) {
        if UNSUPPORTED.load(Ordering::Relaxed) {
            return;
        }
        let queue = QUEUE.get_or_init(|| {
            let (tx, rx) = channel::<Job>();
            std::thread::Builder::new()
                .name("store-warm".into())
                .spawn(move || {
                    for (file, from, to) in rx {
                        let Some(file) = file.upgrade() else { continue };
                        // Small calls: each holds the mm's mapping lock (shared)
                        // for its duration, which delays any mmap/munmap.
                        let mut at = from;
                        while at < to {
                            let len = (to - at).min(WARM_CALL);
                            if let Err(e) =
                                file.map
                                    .advise_range(memmap2::Advice::PopulateWrite, at, len)
                            {
                                // EINVAL: a kernel without MADV_POPULATE_WRITE.
                                tracing::debug!(error = %e, "pre-faulting mapped pages failed; not trying again");
                                UNSUPPORTED.store(true, Ordering::Relaxed);
                                break;
                            }
                            at += len;
                        }
                    }
                })
                .ok()
                .map(|_| Mutex::new(tx))
        });
        if let Some(q) = queue {
            let _ = q
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .send((file, from, to));
        }
    }
}

/// Owner of a zero-copy [`Bytes`] view into a [`MappedFile`].
struct MappedSlice {
    file: Arc<MappedFile>,
    pos: usize,
    len: usize,
}

impl AsRef<[u8]> for MappedSlice {
    fn as_ref(&self) -> &[u8] {
        // Checked published when built; the mark never moves backwards.
        self.file.read(self.pos, self.len).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warming_ahead_never_changes_appended_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let size = 12 * 1024 * 1024;
        let f = Arc::new(MappedFile::create(&dir.path().join("w"), 0, size).expect("create"));
        let chunk: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8 + 1).collect();
        let mut n = 0;
        while f.append(&chunk).is_some() {
            f.warm_ahead();
            n += 1;
        }
        assert_eq!(n, size / chunk.len());
        for i in 0..n {
            assert_eq!(
                f.read(i * chunk.len(), chunk.len()),
                Some(&chunk[..]),
                "chunk {i}"
            );
        }
        assert_eq!(f.warmed.load(Ordering::Relaxed), size);
    }

    #[test]
    fn append_read_slice_survive_drop_of_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let f = Arc::new(MappedFile::create(&path, 100, 64).expect("create"));
        assert_eq!(f.append(b"hello"), Some(0));
        assert_eq!(f.append(b" world"), Some(5));
        assert_eq!(f.read(0, 11), Some(&b"hello world"[..]));
        assert_eq!(f.read(0, 12), None);
        let s = f.slice(6, 5).expect("slice");
        assert_eq!(f.append(&[0u8; 60]), None);
        f.flush().expect("flush");
        drop(f);
        assert_eq!(&s[..], b"world");
        let g = MappedFile::open(&path, 100, 64, 11).expect("open");
        assert_eq!(g.read(0, 11), Some(&b"hello world"[..]));
        assert_eq!(g.base(), 100);
    }
}
