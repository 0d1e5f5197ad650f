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
    map: MmapMut,
    file: File,
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

    pub(crate) fn modified(&self) -> io::Result<SystemTime> {
        self.file.metadata()?.modified()
    }
}
