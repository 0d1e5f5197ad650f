//! An append-only change log beside a snapshot file: what keeps the cost of
//! one metadata change independent of the size of the table it changes.
//!
//! ```text
//! <log>      record* (appended before a change is acknowledged; fsynced
//!            before it (SYNC_FLUSH) or soon after it (ASYNC_FLUSH))
//! <log>.old  the previous log while a compaction writes the snapshot
//! record   = len: u32 LE | crc32(payload): u32 LE | payload (JSON)
//! ```
//!
//! A reader loads the snapshot (Java's own file for topics, groups and
//! offsets), then replays `<log>.old` and `<log>` in that order. Replay stops
//! at the first record that is short or fails its checksum (a write torn by a
//! crash, never acknowledged); the log is cut there with a warning.
//!
//! When a record counts as persisted follows the broker's `flushDiskType`
//! ([`FlushDisk`]), as for messages. SYNC_FLUSH: [`Journal::sync`] returns
//! once the record is fsynced (concurrent changes share one fsync).
//! ASYNC_FLUSH (Java's default): the record is handed to the kernel with
//! write(2) before the change is acknowledged, so killing the process loses
//! nothing acknowledged; a flusher thread per journal fsyncs what is pending
//! at most once per [`ASYNC_FLUSH_INTERVAL`], so an operating-system crash
//! loses at most the changes of that last interval (Java never fsyncs its
//! metadata files at all). A clean shutdown and every compaction fsync the
//! log.
//!
//! Compaction: when the log holds more bytes than `max(min, 2 × last
//! snapshot)`, the owner calls [`Journal::begin_compaction`] under the lock
//! that orders its changes. The log is renamed to `<log>.old` (fsynced,
//! directory fsynced) and a new log started; the owner hands a copy of its
//! table to [`Compaction::finish`] (on a background thread), which writes the
//! snapshot (temporary file, fsync, previous version kept as `.bak`, rename,
//! directory fsync) and only then removes `<log>.old`. A crash anywhere in
//! between replays records the snapshot may already hold: every record must
//! therefore be idempotent (a put, a delete or an absolute value). With the
//! threshold proportional to the snapshot, the bytes written per change stay
//! bounded by a constant multiple of its record, whatever the table size.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// Larger records are taken for corruption (a topic, group or a persist
/// interval's offsets are well below this).
pub const MAX_RECORD: usize = 64 << 20;
/// The log never compacts below this size.
pub const DEFAULT_MIN_COMPACT: u64 = 1 << 20;
/// ASYNC_FLUSH: the shortest time between two background fsyncs of one log.
/// A burst of changes shares one fsync per interval (at most 50 a second per
/// journal rather than one per change), and an operating-system crash loses
/// at most this much of acknowledged changes (plus the fsync itself). Java
/// flushes its asynchronous commit log every 500 ms and never fsyncs its
/// metadata files, so this is far stricter than what clients expect of it.
pub const ASYNC_FLUSH_INTERVAL: Duration = Duration::from_millis(20);

/// When a change counts as persisted: the broker's `flushDiskType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushDisk {
    /// SYNC_FLUSH: fsynced before the change is acknowledged.
    Sync,
    /// ASYNC_FLUSH: written before the change is acknowledged, fsynced in
    /// the background within [`ASYNC_FLUSH_INTERVAL`].
    Async,
}

impl FlushDisk {
    pub fn of(config: &crate::config::BrokerConfig) -> Self {
        if config.is_sync_flush() {
            FlushDisk::Sync
        } else {
            FlushDisk::Async
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("journal record of {len} bytes is larger than {max}")]
    TooLarge { len: usize, max: usize },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |error| JournalError::Io {
        path: path.to_owned(),
        error,
    }
}

/// Splits `bytes` into the payloads of whole, intact records and the length
/// of that valid prefix.
pub fn scan(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 8 {
        let len =
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let crc = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        if len > MAX_RECORD || bytes.len() - at - 8 < len {
            break;
        }
        let payload = &bytes[at + 8..at + 8 + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        out.push(payload);
        at += 8 + len;
    }
    (out, at)
}

/// One framed record.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(payload.len() + 8);
    r.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    r.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    r.extend_from_slice(payload);
    r
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// The journal beside a Java metadata file: `<file>.log`.
pub fn log_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".log");
    PathBuf::from(s)
}

fn old_path(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(".old");
    PathBuf::from(s)
}

/// Reads a log, cutting a torn tail; returns the intact payloads.
fn replay(path: &Path, file: &mut File) -> Result<Vec<Vec<u8>>, JournalError> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io(path))?;
    let (payloads, valid) = scan(&bytes);
    let out: Vec<Vec<u8>> = payloads.into_iter().map(<[u8]>::to_vec).collect();
    if valid < bytes.len() {
        warn!(path = %path.display(), valid, len = bytes.len(), "metadata journal: torn tail cut");
        file.set_len(valid as u64).map_err(io(path))?;
        file.sync_all().map_err(io(path))?;
    }
    Ok(out)
}

struct Inner {
    file: Arc<File>,
    /// Records appended so far (over every log file).
    seq: u64,
    /// Bytes in the current log.
    log_bytes: u64,
}

/// What the request path and the flusher thread share.
struct Core {
    log: PathBuf,
    inner: Mutex<Inner>,
    /// Highest `seq` known durable (group commit).
    synced: Mutex<u64>,
    /// fsyncs of the log done through [`Core::sync_to`].
    fsyncs: AtomicU64,
}

impl Core {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn synced(&self) -> MutexGuard<'_, u64> {
        self.synced.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fsyncs the log unless record `seq` is known durable; one fsync covers
    /// every record appended before it starts.
    fn sync_to(&self, seq: u64) -> Result<(), JournalError> {
        let mut synced = self.synced();
        if *synced >= seq {
            return Ok(());
        }
        let (file, upto) = {
            let inner = self.inner();
            (inner.file.clone(), inner.seq)
        };
        file.sync_data().map_err(io(&self.log))?;
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        *synced = upto;
        Ok(())
    }
}

/// The ASYNC_FLUSH background thread of one journal. It parks while nothing
/// is pending; [`Journal::append`] unparks it (no lock, no syscall unless it
/// is parked).
struct Flusher {
    thread: std::thread::JoinHandle<()>,
    waker: std::thread::Thread,
    stop: Arc<AtomicBool>,
}

impl Flusher {
    fn start(core: Arc<Core>) -> Result<Flusher, JournalError> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let log = core.log.clone();
        let thread = std::thread::Builder::new()
            .name("meta-flush".into())
            .spawn(move || flush_loop(&core, &s))
            .map_err(io(&log))?;
        Ok(Flusher {
            waker: thread.thread().clone(),
            thread,
            stop,
        })
    }
}

fn flush_loop(core: &Core, stop: &AtomicBool) {
    let mut done = 0;
    let mut failing = false;
    loop {
        // Read before the target: once `stop` is seen, no append can follow
        // (the journal is being dropped), so this pass covers all of them.
        let stopping = stop.load(Ordering::Acquire);
        let target = core.inner().seq;
        if target > done {
            match core.sync_to(target) {
                Ok(()) => {
                    done = target;
                    if failing {
                        info!(path = %core.log.display(), "metadata journal: fsync works again");
                        failing = false;
                    }
                }
                Err(e) => {
                    if !failing {
                        warn!(error = %e, "metadata journal: background fsync failed, retrying");
                        failing = true;
                    }
                }
            }
            if stopping {
                return;
            }
            // Changes arriving meanwhile share the next fsync.
            let until = Instant::now() + ASYNC_FLUSH_INTERVAL;
            while !stop.load(Ordering::Acquire) {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                std::thread::park_timeout(until - now);
            }
        } else if stopping {
            return;
        } else {
            // An unpark between the load of `seq` above and here is not
            // lost: it makes this park return at once.
            std::thread::park();
        }
    }
}

pub struct Journal {
    core: Arc<Core>,
    snapshot: PathBuf,
    min_compact: u64,
    flush: FlushDisk,
    /// Present with [`FlushDisk::Async`].
    flusher: Option<Flusher>,
    /// True while a compaction is between begin and finish.
    compacting: Mutex<bool>,
    idle: Condvar,
    snapshot_bytes: AtomicU64,
    bytes_written: AtomicU64,
}

impl Journal {
    /// Opens the log at `log` (creating it) whose snapshot is `snapshot`, and
    /// returns the payloads to replay over the snapshot, oldest first.
    pub fn open(
        log: &Path,
        snapshot: &Path,
        min_compact: u64,
        flush: FlushDisk,
    ) -> Result<(Journal, Vec<Vec<u8>>), JournalError> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let mut payloads = Vec::new();
        let old = old_path(log);
        match OpenOptions::new().read(true).write(true).open(&old) {
            Ok(mut f) => {
                info!(path = %old.display(), "metadata journal: replaying an unfinished compaction");
                payloads.extend(replay(&old, &mut f)?);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&old)(e)),
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(log)
            .map_err(io(log))?;
        payloads.extend(replay(log, &mut file)?);
        let log_bytes = file.metadata().map_err(io(log))?.len();
        let snapshot_bytes = std::fs::metadata(snapshot).map(|m| m.len()).unwrap_or(0);
        let core = Arc::new(Core {
            log: log.to_owned(),
            inner: Mutex::new(Inner {
                file: Arc::new(file),
                seq: 0,
                log_bytes: log_bytes + std::fs::metadata(&old).map(|m| m.len()).unwrap_or(0),
            }),
            synced: Mutex::new(0),
            fsyncs: AtomicU64::new(0),
        });
        let flusher = match flush {
            FlushDisk::Sync => None,
            FlushDisk::Async => Some(Flusher::start(core.clone())?),
        };
        let journal = Journal {
            core,
            snapshot: snapshot.to_owned(),
            min_compact,
            flush,
            flusher,
            compacting: Mutex::new(false),
            idle: Condvar::new(),
            snapshot_bytes: AtomicU64::new(snapshot_bytes),
            bytes_written: AtomicU64::new(0),
        };
        Ok((journal, payloads))
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.core.inner()
    }

    /// Appends one record with write(2): from here on it survives the
    /// process being killed, and with [`FlushDisk::Async`] the flusher will
    /// fsync it. Before acknowledging the change, call [`Journal::sync`] with
    /// the returned sequence number. Call it under the lock that orders the
    /// owner's changes, so the log holds them in the order applied.
    pub fn append(&self, payload: &[u8]) -> Result<u64, JournalError> {
        if payload.len() > MAX_RECORD {
            return Err(JournalError::TooLarge {
                len: payload.len(),
                max: MAX_RECORD,
            });
        }
        let rec = frame(payload);
        let seq = {
            let mut inner = self.inner();
            (&*inner.file).write_all(&rec).map_err(io(&self.core.log))?;
            inner.seq += 1;
            inner.log_bytes += rec.len() as u64;
            inner.seq
        };
        self.bytes_written
            .fetch_add(rec.len() as u64, Ordering::Relaxed);
        if let Some(f) = &self.flusher {
            f.waker.unpark();
        }
        Ok(seq)
    }

    /// Returns once record `seq` is as durable as the policy asks before a
    /// change is acknowledged: at once with [`FlushDisk::Async`] (the record
    /// was written by [`Journal::append`]; the flusher fsyncs it), once it
    /// is fsynced with [`FlushDisk::Sync`]. Concurrent callers share one
    /// fsync (group commit); call it outside the owner's lock.
    pub fn sync(&self, seq: u64) -> Result<(), JournalError> {
        if self.flush == FlushDisk::Async {
            return Ok(());
        }
        // Called from request handlers: on a multi-thread runtime let the
        // other tasks move to another worker while this one waits for the
        // disk, so that more changes arrive to share the next fsync.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.sync_blocking(seq))
            }
            _ => self.sync_blocking(seq),
        }
    }

    fn sync_blocking(&self, seq: u64) -> Result<(), JournalError> {
        self.core.sync_to(seq)
    }

    /// Fsyncs every record appended so far, whatever the policy.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn flush(&self) -> Result<(), JournalError> {
        let seq = self.inner().seq;
        self.core.sync_to(seq)
    }

    /// Appends and syncs one record.
    #[cfg(test)]
    pub fn commit(&self, payload: &[u8]) -> Result<(), JournalError> {
        let seq = self.append(payload)?;
        self.sync(seq)
    }

    /// Whether the log has outgrown the snapshot.
    pub fn wants_compaction(&self) -> bool {
        let snap = self.snapshot_bytes.load(Ordering::Relaxed);
        self.inner().log_bytes > self.min_compact.max(2 * snap)
    }

    /// Bytes written by this journal since open: records and snapshots
    /// (the `.bak` copy included).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    /// Starts a compaction unless one is running: the current log becomes
    /// `<log>.old` and a new log starts. Call it under the owner's lock, take
    /// the copy of the table under the same lock, and hand it to
    /// [`Compaction::finish`].
    pub fn begin_compaction(self: &Arc<Self>) -> Result<Option<Compaction>, JournalError> {
        {
            let mut c = self.compacting.lock().unwrap_or_else(|p| p.into_inner());
            if *c {
                return Ok(None);
            }
            *c = true;
        }
        match self.rotate() {
            Ok(()) => Ok(Some(Compaction {
                journal: self.clone(),
            })),
            Err(e) => {
                self.end_compaction();
                Err(e)
            }
        }
    }

    fn rotate(&self) -> Result<(), JournalError> {
        let log = &self.core.log;
        let mut inner = self.inner();
        // Everything in the old log is durable before it is renamed.
        inner.file.sync_data().map_err(io(log))?;
        let old = old_path(log);
        if old.exists() {
            // An earlier compaction did not finish: the old log keeps
            // growing (it is replayed first), so nothing is overwritten.
            let bytes = std::fs::read(log).map_err(io(log))?;
            let mut f = OpenOptions::new()
                .append(true)
                .open(&old)
                .map_err(io(&old))?;
            f.write_all(&bytes).map_err(io(&old))?;
            f.sync_data().map_err(io(&old))?;
            inner.file.set_len(0).map_err(io(log))?;
            inner.file.sync_all().map_err(io(log))?;
            inner.log_bytes = 0;
            return Ok(());
        }
        std::fs::rename(log, &old).map_err(io(&old))?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(log)
            .map_err(io(log))?;
        if let Some(dir) = log.parent() {
            sync_dir(dir)?;
        }
        inner.file = Arc::new(file);
        inner.log_bytes = 0;
        Ok(())
    }

    fn end_compaction(&self) {
        *self.compacting.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.idle.notify_all();
    }

    /// Waits until no compaction is running (bounded by `timeout`).
    pub fn wait_idle(&self, timeout: std::time::Duration) {
        let c = self.compacting.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self
            .idle
            .wait_timeout_while(c, timeout, |busy| *busy)
            .map_err(|_| ());
    }
}

/// A clean shutdown: the flusher fsyncs what is pending and stops.
impl Drop for Journal {
    fn drop(&mut self) {
        if let Some(f) = self.flusher.take() {
            f.stop.store(true, Ordering::Release);
            f.waker.unpark();
            let _ = f.thread.join();
        }
    }
}

/// A started compaction: the log is rotated, the snapshot not yet written.
pub struct Compaction {
    journal: Arc<Journal>,
}

impl Compaction {
    /// Writes `bytes` as the snapshot, then drops `<log>.old`. On an error
    /// the old log stays and is replayed at the next open.
    pub fn finish(self, bytes: &[u8]) -> Result<(), JournalError> {
        let j = &self.journal;
        let r = (|| {
            let copied = write_snapshot(&j.snapshot, bytes)?;
            let old = old_path(&j.core.log);
            std::fs::remove_file(&old).map_err(io(&old))?;
            if let Some(dir) = j.core.log.parent() {
                sync_dir(dir)?;
            }
            j.snapshot_bytes
                .store(bytes.len() as u64, Ordering::Relaxed);
            j.bytes_written
                .fetch_add(bytes.len() as u64 + copied, Ordering::Relaxed);
            Ok(())
        })();
        if let Err(e) = &r {
            warn!(error = %e, "metadata journal: compaction failed, the log is kept");
        }
        j.end_compaction();
        r
    }

    /// Runs [`Compaction::finish`] on a background thread; `render` turns the
    /// copied table into the snapshot's bytes there.
    pub fn finish_in_background<F>(self, render: F)
    where
        F: FnOnce() -> Vec<u8> + Send + 'static,
    {
        let spawned = std::thread::Builder::new()
            .name("meta-compact".into())
            .spawn(move || {
                let bytes = render();
                let _ = self.finish(&bytes);
            });
        if let Err(e) = spawned {
            // The compaction (moved into the closure) is dropped with it:
            // the old log stays and is replayed at the next open.
            warn!(error = %e, "metadata journal: cannot start the compaction thread");
        }
    }
}

impl Drop for Compaction {
    fn drop(&mut self) {
        self.journal.end_compaction();
    }
}

/// Java's `MixAll.string2File` habit, made durable: write `<name>.tmp`,
/// fsync, keep the previous file as `<name>.bak`, rename over, fsync the
/// directory. Returns the bytes copied into `.bak`.
pub fn write_snapshot(path: &Path, bytes: &[u8]) -> Result<u64, JournalError> {
    let dir = path.parent().map(Path::to_path_buf);
    if let Some(dir) = &dir {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let with = |ext: &str| {
        let mut s = path.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    let tmp = with(".tmp");
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    let mut copied = 0;
    if path.exists() {
        let bak = with(".bak");
        match std::fs::copy(path, &bak) {
            Ok(n) => copied = n,
            Err(e) => warn!(path = %bak.display(), error = %e, "cannot keep the previous file"),
        }
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = &dir {
        sync_dir(dir)?;
    }
    Ok(copied)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn open(dir: &Path, min: u64) -> (Arc<Journal>, Vec<Vec<u8>>) {
        open_with(dir, min, FlushDisk::Sync)
    }

    fn open_with(dir: &Path, min: u64, flush: FlushDisk) -> (Arc<Journal>, Vec<Vec<u8>>) {
        let (j, p) =
            Journal::open(&dir.join("t.json.log"), &dir.join("t.json"), min, flush).unwrap();
        (Arc::new(j), p)
    }

    fn fsyncs(j: &Journal) -> u64 {
        j.core.fsyncs.load(Ordering::Relaxed)
    }

    fn synced(j: &Journal) -> u64 {
        *j.core.synced()
    }

    /// Polls `done` for up to 30 s.
    fn eventually(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn sync_flush_fsyncs_before_sync_returns() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = open_with(dir.path(), DEFAULT_MIN_COMPACT, FlushDisk::Sync);
        assert!(j.flusher.is_none(), "no background thread");
        let seq = j.append(b"one").unwrap();
        assert_eq!((fsyncs(&j), synced(&j)), (0, 0), "append alone");
        j.sync(seq).unwrap();
        assert_eq!((fsyncs(&j), synced(&j)), (1, seq));
        // Already durable: no second fsync.
        j.sync(seq).unwrap();
        assert_eq!(fsyncs(&j), 1);
        drop(j);
        let (_, p) = open(dir.path(), DEFAULT_MIN_COMPACT);
        assert_eq!(p, vec![b"one".to_vec()]);
    }

    #[test]
    fn async_flush_answers_before_the_fsync_and_the_flusher_catches_up() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = open_with(dir.path(), DEFAULT_MIN_COMPACT, FlushDisk::Async);
        // Holding the group-commit lock makes every fsync wait for us.
        let gate = j.core.synced();
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let j = j.clone();
            std::thread::spawn(move || {
                let seq = j.append(b"one").unwrap();
                j.sync(seq).unwrap();
                tx.send(seq).unwrap();
            });
        }
        let seq = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("append and sync return while no fsync can run");
        assert_eq!(fsyncs(&j), 0);
        // Written: another reader of the file (a restart after kill -9)
        // sees the record.
        assert_eq!(
            std::fs::read(dir.path().join("t.json.log")).unwrap(),
            frame(b"one")
        );
        drop(gate);
        eventually("the flusher's fsync", || synced(&j) >= seq);
        assert!(fsyncs(&j) >= 1);
        // flush() fsyncs now, whatever the flusher is doing.
        let seq = j.append(b"two").unwrap();
        j.flush().unwrap();
        assert!(synced(&j) >= seq);
    }

    #[test]
    fn async_flush_shares_fsyncs_and_fsyncs_at_a_clean_close() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = open_with(dir.path(), DEFAULT_MIN_COMPACT, FlushDisk::Async);
        let start = Instant::now();
        let mut seq = 0;
        for i in 0..2000 {
            seq = j.append(format!("record {i}").as_bytes()).unwrap();
            j.sync(seq).unwrap();
        }
        let elapsed = start.elapsed();
        // At most one fsync when the burst starts and one per interval.
        let bound = 2 + (elapsed.as_millis() / ASYNC_FLUSH_INTERVAL.as_millis()) as u64;
        let n = fsyncs(&j);
        assert!(n <= bound, "{n} fsyncs for 2000 records in {elapsed:?}");
        eventually("the flusher's fsync", || synced(&j) >= seq);
        // A record appended while the flusher holds off its next fsync is
        // fsynced when the journal is dropped, not left to the kernel.
        let last = j.append(b"last").unwrap();
        let core = j.core.clone();
        drop(j);
        assert_eq!(*core.synced(), last);
        let (_, p) = open(dir.path(), DEFAULT_MIN_COMPACT);
        assert_eq!(p.len(), 2001);
    }

    #[test]
    fn every_cut_of_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (j, _) = open(dir.path(), DEFAULT_MIN_COMPACT);
            j.commit(b"one").unwrap();
            j.commit(b"two").unwrap();
        }
        let log = dir.path().join("t.json.log");
        let good = std::fs::read(&log).unwrap();
        let third = frame(b"three");
        for cut in 0..third.len() {
            let mut bytes = good.clone();
            bytes.extend_from_slice(&third[..cut]);
            std::fs::write(&log, &bytes).unwrap();
            let (_, p) = open(dir.path(), DEFAULT_MIN_COMPACT);
            assert_eq!(p, vec![b"one".to_vec(), b"two".to_vec()], "cut {cut}");
            assert_eq!(std::fs::read(&log).unwrap(), good);
        }
        let mut bytes = good.clone();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&log, &bytes).unwrap();
        let (_, p) = open(dir.path(), DEFAULT_MIN_COMPACT);
        assert_eq!(p, vec![b"one".to_vec()]);
    }

    #[test]
    fn compaction_rotates_and_an_unfinished_one_is_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = open(dir.path(), 10);
        j.commit(b"a-record").unwrap();
        j.commit(b"b-record").unwrap();
        assert!(j.wants_compaction());
        let c = j.begin_compaction().unwrap().unwrap();
        assert!(j.begin_compaction().unwrap().is_none(), "one at a time");
        j.commit(b"c-record").unwrap();
        // Crash before the snapshot is written: old log then new log.
        drop(c);
        let (j2, p) = open(dir.path(), 10);
        assert_eq!(
            p,
            vec![
                b"a-record".to_vec(),
                b"b-record".to_vec(),
                b"c-record".to_vec()
            ]
        );
        // A new rotation over the unfinished one keeps everything.
        drop(j2.begin_compaction().unwrap());
        let (j2, p) = open(dir.path(), 10);
        assert_eq!(
            p,
            vec![
                b"a-record".to_vec(),
                b"b-record".to_vec(),
                b"c-record".to_vec()
            ]
        );
        let c = j2.begin_compaction().unwrap().unwrap();
        c.finish(b"{\"snapshot\":1}").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("t.json")).unwrap(),
            b"{\"snapshot\":1}"
        );
        let (_, p) = open(dir.path(), 10);
        assert!(p.is_empty());
        // A second compaction keeps the first snapshot as .bak.
        let (j3, _) = open(dir.path(), 10);
        j3.commit(b"d").unwrap();
        j3.begin_compaction()
            .unwrap()
            .unwrap()
            .finish(b"{}")
            .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("t.json.bak")).unwrap(),
            b"{\"snapshot\":1}"
        );
    }

    #[test]
    fn group_commit_from_many_threads() {
        for flush in [FlushDisk::Sync, FlushDisk::Async] {
            let dir = tempfile::tempdir().unwrap();
            let (j, _) = open_with(dir.path(), DEFAULT_MIN_COMPACT, flush);
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let j = j.clone();
                    std::thread::spawn(move || {
                        for i in 0..50 {
                            j.commit(format!("{t}-{i}").as_bytes()).unwrap();
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            let (_, p) = open(dir.path(), DEFAULT_MIN_COMPACT);
            assert_eq!(p.len(), 200, "{flush:?}");
        }
    }
}
