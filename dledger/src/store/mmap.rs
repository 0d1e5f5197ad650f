//! One fixed-size data or index segment mapped read-write: the only module of
//! the DLedger store allowed `unsafe` (creating a mapping).
//!
//! Soundness: the store owns its segments exclusively (`&mut self` for every
//! write, reads copy bytes out), the file is created or checked to be exactly
//! `size` bytes before it is mapped, and it is never shrunk while mapped
//! ([`Segment::zero_from`] unmaps first). Blocks are reserved with
//! `fallocate`, so writing through the mapping cannot hit ENOSPC (a SIGBUS).
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use memmap2::{MmapMut, MmapOptions};

/// Reserve `[0, size)` of `file`. Filesystems without `fallocate` get a
/// sparse file, as Java's `RandomAccessFile` + map does.
pub(crate) fn allocate(file: &File, size: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, size) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::NOSPC => Err(io::Error::from(e)),
        Err(_) => file.set_len(size),
    }
}

/// Whether an I/O error means "no space left".
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error())
        || e.kind() == io::ErrorKind::StorageFull
}

pub(crate) struct Segment {
    path: PathBuf,
    /// Absolute offset of byte 0 (the file name).
    pub(crate) base: i64,
    size: usize,
    /// End of written bytes (Java's wrotePosition), relative.
    pub(crate) wrote: usize,
    /// First live byte (Java's startPosition, in memory only), relative.
    pub(crate) start: usize,
    flushed: usize,
    /// Pages of the file are in the page cache up to here ([`Segment::take_warm`]).
    warmed: usize,
    map: MmapMut,
    file: File,
}

/// How far ahead of `wrote` [`Segment::take_warm`] keeps the file's pages
/// in the page cache, and the step in which that window moves.
const WARM_AHEAD: usize = 4 * 1024 * 1024;
const WARM_STEP: usize = 1024 * 1024;

/// A range of a segment file to read into the page cache off the append path.
#[derive(Debug)]
pub(crate) struct WarmRange {
    pub(crate) file: File,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

impl WarmRange {
    /// Brings the range into the page cache on the calling thread, so the
    /// first write to a page through the store's mapping is a minor fault
    /// instead of a read-ahead with zero-fill of the preallocated blocks
    /// inside an append. `MADV_POPULATE_READ` on a read-only
    /// mapping of just this range (the whole range; `fadvise(WILLNEED)` is
    /// capped at the device's read-ahead size and is only the fallback for
    /// kernels before 5.14). Best effort.
    pub(crate) fn run(self) {
        let Ok(len) = usize::try_from(self.len) else {
            return;
        };
        if len == 0 {
            return;
        }
        // SAFETY: a read-only mapping whose bytes are never dereferenced
        // here: it only serves as the address range for madvise, which
        // reports (EFAULT) rather than signals a page past EOF should the
        // store cut the file meanwhile ([`Segment::zero_from`]).
        let map = unsafe {
            MmapOptions::new()
                .offset(self.offset)
                .len(len)
                .map(&self.file)
        };
        let populated = map.and_then(|m| m.advise(memmap2::Advice::PopulateRead));
        if let Err(e) = populated {
            tracing::debug!(error = %e, "pre-faulting a DLedger segment failed; fadvise instead");
            if let Err(e) = rustix::fs::fadvise(
                &self.file,
                self.offset,
                std::num::NonZeroU64::new(self.len),
                rustix::fs::Advice::WillNeed,
            ) {
                tracing::debug!(error = %e, "pre-reading a DLedger segment failed");
            }
        }
    }
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("path", &self.path)
            .field("wrote", &self.wrote)
            .field("start", &self.start)
            .finish()
    }
}

fn map(file: &File, size: usize) -> io::Result<MmapMut> {
    // SAFETY: the file is exactly `size` bytes (checked or set by the caller),
    // it is not shrunk while this mapping lives (module doc), and no other
    // process is expected to write the store's files while it is open.
    unsafe { MmapOptions::new().len(size).map_mut(file) }
}

impl Segment {
    /// Creates (or replaces) a zero-filled file of `size` bytes.
    pub(crate) fn create(path: &Path, base: i64, size: usize) -> io::Result<Segment> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let res = allocate(&file, size as u64)
            .and_then(|()| file.set_len(size as u64))
            .and_then(|()| map(&file, size));
        match res {
            Ok(map) => Ok(Segment {
                path: path.to_path_buf(),
                base,
                size,
                wrote: 0,
                start: 0,
                flushed: 0,
                warmed: 0,
                map,
                file,
            }),
            Err(e) => {
                drop(file);
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    /// Maps an existing file of exactly `size` bytes, everything marked written.
    pub(crate) fn open(path: &Path, base: i64, size: usize) -> io::Result<Segment> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        if len != size as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: length {len}, expected {size}", path.display()),
            ));
        }
        let map = map(&file, size)?;
        Ok(Segment {
            path: path.to_path_buf(),
            base,
            size,
            wrote: size,
            start: 0,
            flushed: 0,
            warmed: 0,
            map,
            file,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn remaining(&self) -> usize {
        self.size - self.wrote
    }

    pub(crate) fn is_full(&self) -> bool {
        self.wrote >= self.size
    }

    /// Writes `data` at `wrote`; false (nothing written) if it does not fit.
    pub(crate) fn append(&mut self, data: &[u8]) -> bool {
        if data.len() > self.remaining() {
            return false;
        }
        self.map[self.wrote..self.wrote + data.len()].copy_from_slice(data);
        self.wrote += data.len();
        true
    }

    /// Bytes `[pos, pos + len)` if all are below `wrote`.
    pub(crate) fn read(&self, pos: usize, len: usize) -> Option<&[u8]> {
        let end = pos.checked_add(len)?;
        if end > self.wrote {
            return None;
        }
        Some(&self.map[pos..end])
    }

    /// Every byte of the file regardless of `wrote` (recovery scans).
    pub(crate) fn all(&self) -> &[u8] {
        &self.map[..]
    }

    /// Zeroes `[pos, size)` and moves `wrote` (and the flush mark) to `pos`.
    /// Small tails are zeroed through the mapping; large ones by cutting and
    /// re-extending the unmapped file (O(1), no page faults).
    pub(crate) fn zero_from(&mut self, pos: usize) -> io::Result<()> {
        let pos = pos.min(self.size);
        let dirty_end = self.wrote.max(pos);
        if dirty_end - pos <= 64 * 1024 {
            self.map[pos..dirty_end].fill(0);
        } else {
            // Unmap before changing the length (a mapped page past EOF is a SIGBUS).
            if pos > 0 {
                self.map.flush_range(0, pos)?;
            }
            let placeholder = MmapOptions::new().len(1).map_anon()?;
            drop(std::mem::replace(&mut self.map, placeholder));
            self.file.set_len(pos as u64)?;
            allocate(&self.file, self.size as u64)?;
            self.file.set_len(self.size as u64)?;
            self.map = map(&self.file, self.size)?;
        }
        self.wrote = pos;
        self.flushed = self.flushed.min(pos);
        self.warmed = self.warmed.min(pos);
        Ok(())
    }

    /// msync the written bytes not flushed yet.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if self.wrote > self.flushed {
            self.map
                .flush_range(self.flushed, self.wrote - self.flushed)?;
            self.flushed = self.wrote;
        }
        Ok(())
    }

    /// A second handle on the file for syncing from another thread when
    /// bytes were written since the last flush; they count as flushed from
    /// now on (the caller syncs the handle). On Linux `msync(MS_SYNC)` is an
    /// fsync of the range, so `sync_data` on the handle covers them.
    pub(crate) fn take_sync(&mut self) -> io::Result<Option<File>> {
        if self.wrote > self.flushed {
            let f = self.file.try_clone()?;
            self.flushed = self.wrote;
            Ok(Some(f))
        } else {
            Ok(None)
        }
    }

    /// The next range to pre-read ahead of `wrote` (see [`WarmRange::run`]),
    /// when `wrote` has come within [`WARM_AHEAD`] - [`WARM_STEP`] of what
    /// was pre-read; it counts as pre-read from now on.
    pub(crate) fn take_warm(&mut self) -> io::Result<Option<WarmRange>> {
        if self.warmed >= self.size || self.wrote + WARM_AHEAD - WARM_STEP <= self.warmed {
            return Ok(None);
        }
        let from = self.warmed.max(self.wrote);
        let to = (self.wrote + WARM_AHEAD).min(self.size);
        self.warmed = to;
        if from >= to {
            return Ok(None);
        }
        Ok(Some(WarmRange {
            file: self.file.try_clone()?,
            offset: from as u64,
            len: (to - from) as u64,
        }))
    }

    pub(crate) fn modified(&self) -> io::Result<SystemTime> {
        self.file.metadata()?.modified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn warm_window_moves_ahead_of_the_write_position_in_steps() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut seg = Segment::create(&dir.path().join("0"), 0, 6 * MIB).expect("create");
        let w = seg.take_warm().expect("warm").expect("first window");
        assert_eq!((w.offset, w.len), (0, WARM_AHEAD as u64));
        w.run();
        // Within the window less one step: nothing new.
        assert!(seg.take_warm().expect("warm").is_none());
        assert!(seg.append(&vec![7u8; WARM_STEP]));
        assert!(seg.take_warm().expect("warm").is_none());
        assert!(seg.append(&[7u8; 1]));
        let w = seg.take_warm().expect("warm").expect("second window");
        // From the end of the first window to WARM_AHEAD past the write position.
        assert_eq!(
            (w.offset, w.len),
            (WARM_AHEAD as u64, (WARM_STEP + 1) as u64)
        );
        w.run();
        assert!(seg.take_warm().expect("warm").is_none());
        assert!(seg.append(&vec![7u8; 2 * MIB]));
        let w = seg.take_warm().expect("warm").expect("third window");
        // Cut at the file's end.
        let from = (WARM_AHEAD + WARM_STEP + 1) as u64;
        assert_eq!((w.offset, w.len), (from, 6 * MIB as u64 - from));
        w.run();
        assert!(seg.take_warm().expect("warm").is_none());
        // Pre-reading never changes bytes.
        let wrote = 3 * MIB + 1;
        assert_eq!(seg.read(0, wrote).expect("read"), &vec![7u8; wrote][..]);
        assert!(seg.all()[wrote..].iter().all(|b| *b == 0));
        // A cut tail is pre-read again.
        seg.zero_from(0).expect("zero");
        let w = seg.take_warm().expect("warm").expect("after the cut");
        assert_eq!(w.offset, 0);
    }

    #[test]
    fn opened_segments_are_pre_read_from_their_end_and_a_cut_file_is_no_fault() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("0");
        drop(Segment::create(&path, 0, 2 * MIB).expect("create"));
        let mut seg = Segment::open(&path, 0, 2 * MIB).expect("open");
        assert!(seg.take_warm().expect("warm").is_none());
        // The last file after recovery: from its recovered end on.
        let mut seg = Segment::open(&path, 0, 2 * MIB).expect("open");
        seg.wrote = 5000;
        let w = seg.take_warm().expect("warm").expect("window");
        assert_eq!((w.offset, w.len), (5000, (2 * MIB - 5000) as u64));
        // A range past the end of the file (the store cut it meanwhile):
        // madvise reports it, nothing is signalled.
        let mut fresh = Segment::create(&dir.path().join("1"), 0, 2 * MIB).expect("create");
        let w = fresh.take_warm().expect("warm").expect("window");
        w.file.set_len(4096).expect("cut");
        w.run();
    }
}
