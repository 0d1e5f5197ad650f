//! The local commit log: `commitlog/<20-digit start offset>` segments of
//! `mapped_file_size_commit_log` bytes holding records back to back; a record
//! that does not fit the rest of a segment (plus room for the 8-byte blank
//! marker) goes to the next one and the rest is marked blank (Java
//! `CommitLog.DefaultAppendMessageCallback`).
//!
//! One writer at a time (the store's writer mutex) calls `prepare`/`write`;
//! readers only see published bytes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use crate::error::StoreError;
use crate::files;
use crate::mmap::MappedFile;
use crate::record::{self, ScanItem, END_FILE_MIN_BLANK_LENGTH};

pub(crate) struct CommitLog {
    dir: PathBuf,
    seg_size: usize,
    segments: RwLock<Vec<Arc<MappedFile>>>,
    /// Next write offset; everything below it is published.
    max_offset: AtomicI64,
    /// Everything below it is known to be on disk.
    flushed_offset: AtomicI64,
    /// msync rounds that had something to write (group-commit tests, metrics).
    flush_calls: AtomicU64,
}

/// Where the next append goes, decided before anything is written.
pub(crate) struct Placement {
    /// Segment to close with a blank marker first: (segment, bytes left).
    blank: Option<(Arc<MappedFile>, usize)>,
    target: Arc<MappedFile>,
    pub(crate) offset: i64,
}

/// The outcome of scanning the commit log at open.
pub(crate) struct Recovered {
    pub(crate) log: CommitLog,
    /// Where the scan (and so the re-dispatch) started.
    pub(crate) scan_from: i64,
}

fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CommitLog {
    pub(crate) fn seg_size(&self) -> usize {
        self.seg_size
    }

    pub(crate) fn max_offset(&self) -> i64 {
        self.max_offset.load(Ordering::Acquire)
    }

    /// Start of the first segment, or -1 without segments (Java).
    pub(crate) fn min_offset(&self) -> i64 {
        read_lock(&self.segments)
            .first()
            .map_or(-1, |s| s.base() as i64)
    }

    pub(crate) fn segments(&self) -> Vec<Arc<MappedFile>> {
        read_lock(&self.segments).clone()
    }

    fn segment_for(&self, offset: i64) -> Option<Arc<MappedFile>> {
        let segs = read_lock(&self.segments);
        let first = segs.first()?.base();
        let offset = u64::try_from(offset).ok()?;
        let idx = offset.checked_sub(first)? / self.seg_size as u64;
        segs.get(usize::try_from(idx).ok()?).cloned()
    }

    /// `len` published bytes at `offset`, within one segment, zero-copy.
    pub(crate) fn read(&self, offset: i64, len: usize) -> Option<Bytes> {
        let seg = self.segment_for(offset)?;
        let pos = (offset as u64 - seg.base()) as usize;
        seg.slice(pos, len)
    }

    /// Runs `f(segment, pos, len)` over the parts of `[from, to)` in each
    /// segment.
    fn for_each_part(&self, from: i64, to: i64, f: impl Fn(&MappedFile, usize, usize)) {
        let mut at = from;
        // Bounded: each pass moves to the next segment or stops.
        while at < to {
            let Some(seg) = self.segment_for(at) else {
                return;
            };
            let pos = (at as u64 - seg.base()) as usize;
            let len = usize::try_from(to - at)
                .unwrap_or(usize::MAX)
                .min(seg.size().saturating_sub(pos));
            if len == 0 {
                return;
            }
            f(&seg, pos, len);
            at += len as i64;
        }
    }

    /// Faults the published pages of `[from, to)` in on this thread.
    pub(crate) fn populate_read(&self, from: i64, to: i64) {
        self.for_each_part(from, to, |seg, pos, len| seg.populate_read(pos, len));
    }

    /// Starts a background read of the published bytes of `[from, to)`.
    pub(crate) fn will_need(&self, from: i64, to: i64) {
        self.for_each_part(from, to, |seg, pos, len| seg.will_need(pos, len));
    }

    /// Calls `f` with the published bytes at `offset` (no refcount traffic).
    pub(crate) fn with_bytes<R>(
        &self,
        offset: i64,
        len: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let seg = self.segment_for(offset)?;
        let pos = (offset as u64 - seg.base()) as usize;
        seg.read(pos, len).map(f)
    }

    /// The whole record starting at `offset`, if one does (checked by magic
    /// code and size).
    pub(crate) fn record_at(&self, offset: i64) -> Option<Bytes> {
        let (size, magic) = self.with_bytes(offset, 8, |b| {
            (
                i32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            )
        })?;
        if magic != record::MESSAGE_MAGIC_CODE_V1 && magic != record::MESSAGE_MAGIC_CODE_V2 {
            return None;
        }
        if size < record::MIN_RECORD_LEN as i32 {
            return None;
        }
        self.read(offset, size as usize)
    }

    /// STORETIMESTAMP of the record at `offset` (Java `pickupStoreTimestamp`).
    pub(crate) fn store_timestamp_at(&self, offset: i64, size: i32) -> Option<i64> {
        let size = usize::try_from(size).ok()?;
        if size < record::MIN_RECORD_LEN {
            return None;
        }
        self.with_bytes(offset, size, |b| {
            let sys_flag = i32::from_be_bytes([b[36], b[37], b[38], b[39]]);
            let p = record::store_timestamp_pos(sys_flag);
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&b[p..p + 8]);
            i64::from_be_bytes(ts)
        })
    }

    fn segment_path(&self, base: u64) -> PathBuf {
        self.dir.join(files::file_name(base))
    }

    /// Decide where `len` bytes go, creating the next segment if needed.
    /// Writes nothing; the caller must hold the writer lock. `DiskFull`
    /// leaves the log as it was.
    pub(crate) fn prepare(&self, len: usize) -> Result<Placement, StoreError> {
        if len + END_FILE_MIN_BLANK_LENGTH > self.seg_size {
            return Err(StoreError::MessageTooLarge {
                size: len,
                max: self.seg_size - END_FILE_MIN_BLANK_LENGTH,
            });
        }
        let w = self.max_offset() as u64;
        let current = self.segment_at_or_create(w)?;
        let pos = (w - current.base()) as usize;
        debug_assert_eq!(pos, current.published(), "write offset out of sync");
        let left = self.seg_size - pos;
        if len + END_FILE_MIN_BLANK_LENGTH <= left {
            return Ok(Placement {
                blank: None,
                target: current,
                offset: w as i64,
            });
        }
        let next_base = current.base() + self.seg_size as u64;
        let next = self.segment_at_or_create(next_base)?;
        Ok(Placement {
            blank: Some((current, left)),
            target: next,
            offset: next_base as i64,
        })
    }

    /// The segment holding offset `w`, created if `w` is just past the last.
    fn segment_at_or_create(&self, w: u64) -> Result<Arc<MappedFile>, StoreError> {
        if let Some(seg) = self.segment_for(w as i64) {
            return Ok(seg);
        }
        let base = w - w % self.seg_size as u64;
        let mut segs = write_lock(&self.segments);
        if let Some(last) = segs.last() {
            if last.base() + self.seg_size as u64 != base {
                return Err(StoreError::Corrupt {
                    path: self.segment_path(base),
                    reason: format!("segment would not follow {}", last.path().display()),
                });
            }
        }
        let seg = Arc::new(MappedFile::create(
            &self.segment_path(base),
            base,
            self.seg_size,
        )?);
        tracing::debug!(path = %seg.path().display(), "created commit log segment");
        segs.push(Arc::clone(&seg));
        Ok(seg)
    }

    /// Write `data` as placed. Infallible once placed (the space exists).
    pub(crate) fn write(&self, placement: Placement, data: &[u8]) {
        if let Some((seg, left)) = placement.blank {
            let done = seg.append(&record::blank_marker(left));
            debug_assert!(done.is_some());
        }
        let done = placement.target.append(data);
        placement.target.warm_ahead();
        debug_assert_eq!(
            done.map(|p| p as u64 + placement.target.base()),
            Some(placement.offset as u64)
        );
        self.max_offset
            .store(placement.offset + data.len() as i64, Ordering::Release);
    }

    /// Replica side: append bytes shipped by a master, byte for byte, at
    /// `offset`, which must be the log's end — or, in a log without
    /// segments, any segment-aligned offset (Java's master starts an empty
    /// slave at its last file). Bytes that run past a segment's end go on in
    /// the next one. Returns the new end. The caller holds the writer lock.
    pub(crate) fn append_raw(&self, offset: i64, data: &[u8]) -> Result<i64, StoreError> {
        let empty = read_lock(&self.segments).is_empty();
        let end = self.max_offset();
        let aligned = offset >= 0 && offset % self.seg_size as i64 == 0;
        if offset != end && !(empty && aligned) {
            return Err(StoreError::ReplicaOffset {
                offered: offset,
                expected: end,
            });
        }
        if data.is_empty() {
            return Ok(end);
        }
        let mut w = offset as u64;
        let mut rest = data;
        while !rest.is_empty() {
            let seg = self.segment_at_or_create(w)?;
            let pos = (w - seg.base()) as usize;
            debug_assert_eq!(pos, seg.published(), "write offset out of sync");
            let n = rest.len().min(self.seg_size - pos);
            let done = seg.append(&rest[..n]);
            debug_assert!(done.is_some());
            seg.warm_ahead();
            w += n as u64;
            rest = &rest[n..];
            self.max_offset.store(w as i64, Ordering::Release);
        }
        Ok(w as i64)
    }

    /// Master side: up to `max` bytes from `from` to the end of the segment
    /// holding it (never across a segment: a Java slave writes each frame
    /// into one mapped file); `None` when nothing is there yet. A segment
    /// closed by a blank record counts as full, as in Java (its write
    /// position is the file size): the bytes after the 8-byte marker go as
    /// zeros, so the replica's offsets run on into the next segment.
    ///
    /// Nothing at or past the log's end goes out, even bytes a writer has
    /// already published in its segment: the end is what a master compares
    /// a slave's report with. The end is read before the segment's
    /// published mark, so every byte below the end is published when the
    /// mark is read, and a `from` past the mark but below the end can only
    /// lie in a closed segment. (Read the other way round, an append landing
    /// between the two reads made an open segment look closed and zeros
    /// were shipped for bytes being written.)
    pub(crate) fn chunk(&self, from: i64, max: usize) -> Option<Bytes> {
        let end = self.max_offset();
        if from >= end {
            return None;
        }
        let seg = self.segment_for(from)?;
        let pos = (from as u64 - seg.base()) as usize;
        let published = seg.published();
        let below_end = usize::try_from(end - from).unwrap_or(usize::MAX);
        if pos < published {
            return seg.slice(pos, (published - pos).min(max).min(below_end));
        }
        let len = self.seg_size.saturating_sub(pos).min(max);
        (len > 0).then(|| Bytes::from(vec![0u8; len]))
    }

    /// Cuts the log at `end` (Java `truncateDirtyFiles`): later segments
    /// are deleted, the one holding `end` keeps its bytes below it (see
    /// [`files::truncate_live`]). Readers see the new end first. The caller
    /// holds the writer lock and has checked `end` is a record boundary.
    pub(crate) fn truncate_to(&self, end: i64) -> Result<(), StoreError> {
        if end >= self.max_offset() {
            return Ok(());
        }
        let end_u = u64::try_from(end).map_err(|_| StoreError::Corrupt {
            path: self.dir.clone(),
            reason: format!("truncate to negative offset {end}"),
        })?;
        let mut segs = write_lock(&self.segments);
        if segs.first().is_some_and(|f| end_u < f.base()) {
            return Err(StoreError::Corrupt {
                path: self.dir.clone(),
                reason: format!("truncate to {end}, below the log's start"),
            });
        }
        self.max_offset.store(end, Ordering::Release);
        files::truncate_live(&mut segs, end_u, self.seg_size)?;
        let flushed = self.flushed_offset.load(Ordering::Acquire).min(end);
        self.flushed_offset.store(flushed, Ordering::Release);
        tracing::info!(dir = %self.dir.display(), max_offset = end, "commit log truncated");
        Ok(())
    }

    /// msync every segment with unflushed bytes. All of them, not just the
    /// last: a record in a new segment is only recoverable if the blank
    /// marker closing the previous one is on disk too. Returns the offset
    /// below which everything is now on disk.
    pub(crate) fn flush(&self) -> std::io::Result<i64> {
        let end = self.max_offset();
        let mut wrote = false;
        for seg in self.segments() {
            if seg.flushed() < seg.published() {
                seg.flush()?;
                wrote = true;
            }
        }
        if wrote {
            self.flush_calls.fetch_add(1, Ordering::Relaxed);
        }
        self.flushed_offset.fetch_max(end, Ordering::AcqRel);
        Ok(end)
    }

    pub(crate) fn flushed_offset(&self) -> i64 {
        self.flushed_offset.load(Ordering::Acquire)
    }

    pub(crate) fn flush_calls(&self) -> u64 {
        self.flush_calls.load(Ordering::Relaxed)
    }

    /// Java `MappedFileQueue.deleteExpiredFileByTime`: from the oldest
    /// segment on, remove those last modified more than `expire_ms` before
    /// `now_ms` (or any, with `at_once`), stopping at the first one kept and
    /// never touching the last (active) segment; at most `batch_max`. The
    /// caller holds the writer lock. Returns the removed segments' paths,
    /// already unlinked (readers holding slices keep their mapping).
    pub(crate) fn delete_expired(
        &self,
        now_ms: i64,
        expire_ms: i64,
        at_once: bool,
        batch_max: usize,
    ) -> Result<Vec<PathBuf>, StoreError> {
        let removed: Vec<Arc<MappedFile>> = {
            let mut segs = write_lock(&self.segments);
            let candidates = segs.len().saturating_sub(1);
            let mut n = 0;
            while n < candidates.min(batch_max.max(1)) {
                let seg = &segs[n];
                // Only whole segments the writer has left behind.
                if seg.base() + self.seg_size as u64 > self.max_offset() as u64 {
                    break;
                }
                let mtime = files::modified_ms(seg.path()).unwrap_or(i64::MAX);
                if !(at_once || now_ms >= mtime.saturating_add(expire_ms)) {
                    break;
                }
                n += 1;
            }
            segs.drain(..n).collect()
        };
        let mut paths = Vec::with_capacity(removed.len());
        for seg in removed {
            let path = seg.path().to_path_buf();
            drop(seg);
            std::fs::remove_file(&path)?;
            tracing::info!(path = %path.display(), "deleted expired commit log segment");
            paths.push(path);
        }
        Ok(paths)
    }

    /// Open and validate the segments of `dir`. The scan starts at the
    /// segment `choose_start` picks; the log ends at the first record that
    /// fails validation, and everything after it is removed.
    pub(crate) fn recover(
        dir: &Path,
        seg_size: usize,
        check_crc: bool,
        choose_start: impl FnOnce(&[Arc<MappedFile>]) -> usize,
    ) -> Result<Recovered, StoreError> {
        std::fs::create_dir_all(dir)?;
        let listed = files::list(dir, seg_size)?;
        let mut segs = files::open_all(&listed, seg_size)?;
        let start = choose_start(&segs).min(segs.len().saturating_sub(1));
        let scan_from = segs.get(start).map_or(0, |s| s.base() as i64);
        let mut end = scan_from as u64;
        'segments: for seg in segs.iter().skip(start) {
            let data = seg.read(0, seg_size).unwrap_or(&[]);
            let mut pos = 0usize;
            while pos < seg_size {
                match record::scan(&data[pos..], (seg.base() + pos as u64) as i64, check_crc) {
                    ScanItem::Record(v) => pos += v.total_size as usize,
                    ScanItem::Blank => pos = seg_size,
                    ScanItem::End => {
                        end = seg.base() + pos as u64;
                        break 'segments;
                    }
                    ScanItem::Invalid(e) => {
                        tracing::warn!(
                            path = %seg.path().display(), pos, error = %e,
                            "commit log ends at an invalid record"
                        );
                        end = seg.base() + pos as u64;
                        break 'segments;
                    }
                }
            }
            end = seg.base() + seg_size as u64;
        }
        files::truncate(&mut segs, end, seg_size)?;
        tracing::info!(dir = %dir.display(), scan_from, max_offset = end, "commit log recovered");
        Ok(Recovered {
            log: CommitLog {
                dir: dir.to_path_buf(),
                seg_size,
                segments: RwLock::new(segs),
                max_offset: AtomicI64::new(end as i64),
                flushed_offset: AtomicI64::new(0),
                flush_calls: AtomicU64::new(0),
            },
            scan_from,
        })
    }
}
