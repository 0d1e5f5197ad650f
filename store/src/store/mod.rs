//! [`MessageStore`]: what the broker talks to. Java's `DefaultMessageStore`
//! layout under `storePathRootDir`:
//!
//! ```text
//! <root>/commitlog/00000000000000000000      records (commitlog.rs)
//! <root>/consumequeue/<topic>/<queueId>/...  20-byte entries (consumequeue.rs)
//! <root>/checkpoint                          flush timestamps (checkpoint.rs)
//! <root>/abort                               exists while running
//! <root>/lock                                flock against a second process
//! <root>/index/<yyyyMMddHHmmssSSS>           key index (index.rs)
//! ```
//!
//! Writes: one writer (the `writer` mutex) encodes nothing, it only patches
//! offsets into bytes encoded by the caller's thread, appends them to the
//! commit log and dispatches them to the consume queue before returning.
//!
//! Threads: `store-flush` (every `flushIntervalCommitLog`: msync, checkpoint),
//! `store-clean` (retention, every `cleanResourceInterval` after a minute:
//! [`MessageStore::clean_expired_files_at`]) and, with SYNC_FLUSH,
//! `store-group-commit`, which msyncs for every put waiting on it at once;
//! puts wait for it after releasing the writer lock.

mod get;
mod group_commit;
mod put;
mod recover;
mod replica;
mod replicated;
mod retention;
mod types;

pub use get::ColdReadHook;
pub use put::PendingPut;
pub use types::{
    ArrivalListener, BatchToStore, GetResult, GetStatus, MessageToStore, PutResult, PutStatus,
    ReadLimitListener, RetentionReport, SCHEDULE_TOPIC,
};

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::checkpoint::{Checkpoint, CheckpointData};
use crate::commitlog::CommitLog;
use crate::config::{FlushDiskType, StoreConfig};
use crate::consumequeue::{ConsumeQueue, CqEntry};
use crate::error::StoreError;
use crate::index::IndexService;
use crate::offset::CommitLogOffset;
use crate::properties;
use crate::record;
use crate::replicated::ReplicatedLog;
use crate::replication::Replication;

use self::group_commit::GroupCommit;
use self::recover::{open_index, recover_queues, start_by_checkpoint};
use self::replicated::NOT_WRITER;
use self::retention::{clean_loop, flush_loop};

/// Handle to an open store; cheap to clone.
#[derive(Clone)]
pub struct MessageStore {
    inner: Arc<Inner>,
    guard: Arc<Guard>,
}

/// Owns the directory lock and the flusher. Dropped with the last handle,
/// even while the flusher still holds `Inner` for a moment, so the directory
/// can be reopened at once.
struct Guard {
    stop: Arc<(Mutex<bool>, Condvar)>,
    group: Arc<GroupCommit>,
    /// Flusher, cleaner and (SYNC_FLUSH) group-commit threads.
    threads: Mutex<Vec<JoinHandle<()>>>,
    _lock: File,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Without `shutdown` this is a crash as far as the files go (the abort
        // file stays); just stop the threads.
        signal_stop(&self.stop);
        self.group.stop();
    }
}

impl std::fmt::Debug for MessageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStore")
            .field("root", &self.inner.config.store_path_root_dir)
            .finish_non_exhaustive()
    }
}

type QueueMap = HashMap<String, HashMap<i32, Arc<ConsumeQueue>>>;

struct Inner {
    config: StoreConfig,
    cq_root: PathBuf,
    cq_file_size: usize,
    delay_levels: Vec<i64>,
    commit_log: CommitLog,
    queues: RwLock<QueueMap>,
    /// The single writer; holds the last store timestamp handed out.
    writer: Mutex<i64>,
    /// Store timestamp of the last dispatched record (for the checkpoint).
    last_store_timestamp: AtomicI64,
    checkpoint: Mutex<(Checkpoint, CheckpointData)>,
    listener: RwLock<Option<ArrivalListener>>,
    shut_down: AtomicBool,
    abort_path: PathBuf,
    index: IndexService,
    group: Arc<GroupCommit>,
    /// Set by [`MessageStore::open_replicated`]: records live in this log
    /// (see `replicated.rs`), `commit_log` stays empty.
    replicated: Option<Arc<dyn ReplicatedLog>>,
    /// Replicated mode: next queue offset per (topic, queue id) handed out by
    /// puts (Java `topicQueueTable`); a missing key starts at the queue's max.
    queue_table: Mutex<HashMap<(String, i32), i64>>,
    /// End of the last record with consume-queue entries: the replicated
    /// log's dispatch point, or the local commit log's end (a replica's
    /// commit log may end inside a record a master has not finished
    /// shipping).
    dispatched_end: AtomicI64,
    /// Local commit log: the hook puts consult about replicas (see
    /// [`crate::replication`]).
    replication: RwLock<Option<Arc<dyn Replication>>>,
    /// Local commit log of a slave: only shipped bytes
    /// ([`MessageStore::append_replica`]) are appended; puts are refused
    /// ([`StoreError::SlaveMode`]) so its log never diverges from the master's.
    replica: AtomicBool,
    /// Replicated mode: the epoch (DLedger term) in which this store may
    /// write, set by [`MessageStore::become_writer`] once its queues are
    /// rebuilt; [`NOT_WRITER`] until then and after
    /// [`MessageStore::stop_writing`]. Changed under the writer lock.
    writer_epoch: AtomicI64,
    /// The last write was refused for lack of disk space (`DiskFull`); only
    /// its transitions are logged (see [`Inner::note_write`]).
    disk_full: AtomicBool,
    /// The last retention pass found the disk above `diskMaxUsedSpaceRatio`.
    over_ratio: AtomicBool,
    /// Controller mode's confirm offset as a read limit (see
    /// [`MessageStore::set_read_limit`]); `i64::MAX` = none. Reads only:
    /// puts never look at it.
    read_limit: AtomicI64,
    /// Told when the read limit rises or is lifted (see
    /// [`MessageStore::set_read_limit_listener`]).
    read_limit_listener: RwLock<Option<ReadLimitListener>>,
    /// Controller mode's epoch file, trimmed when retention deletes the
    /// oldest commit-log files (see [`MessageStore::set_epoch_file`]).
    epochs: RwLock<Option<Arc<crate::epoch::EpochFile>>>,
    /// See [`MessageStore::set_cold_read_hook`].
    cold_read_hook: RwLock<Option<get::ColdReadHook>>,
}

fn signal_stop(stop: &(Mutex<bool>, Condvar)) {
    let mut s = stop
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *s = true;
    stop.1.notify_all();
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn validate_topic(topic: &str) -> Result<(), StoreError> {
    if topic.len() > 255 || !record::is_storable_topic(topic) {
        Err(StoreError::InvalidTopic(topic.to_owned()))
    } else {
        Ok(())
    }
}

/// How a record's consume-queue tags code is derived (Java
/// `CommitLog.checkMessageAndReturnSize`), from its scanned properties.
fn tags_code(
    topic: &str,
    props: &properties::Scanned<'_>,
    store_timestamp: i64,
    delay_levels: &[i64],
) -> i64 {
    if topic == SCHEDULE_TOPIC {
        if let Some(level) = props.delay.and_then(|v| v.parse::<i64>().ok()) {
            let level = level.min(delay_levels.len() as i64);
            if level > 0 {
                let delay = delay_levels
                    .get((level - 1) as usize)
                    .copied()
                    .unwrap_or(1000);
                return store_timestamp + delay;
            }
        }
    }
    props.tags.map_or(0, record::tags_hash_code)
}

impl MessageStore {
    /// Open (or create) the store under `config.store_path_root_dir`,
    /// recovering the commit log and consume queues.
    pub fn open(config: StoreConfig) -> Result<MessageStore, StoreError> {
        Self::open_with(config, None)
    }

    /// Open the store with its records in `log` (the DLedger commit log):
    /// consume queues and index are deleted and rebuilt by the log's owner
    /// through [`dispatch_replicated`](Self::dispatch_replicated), which is
    /// the only way entries reach them; puts go to `log.append`.
    pub fn open_replicated(
        config: StoreConfig,
        log: Arc<dyn ReplicatedLog>,
    ) -> Result<MessageStore, StoreError> {
        Self::open_with(config, Some(log))
    }

    fn open_with(
        config: StoreConfig,
        replicated: Option<Arc<dyn ReplicatedLog>>,
    ) -> Result<MessageStore, StoreError> {
        let seg_size = usize::try_from(config.mapped_file_size_commit_log)
            .ok()
            .filter(|s| *s >= 4096 && *s <= i32::MAX as usize)
            .ok_or_else(|| StoreError::Corrupt {
                path: config.store_path_root_dir.clone(),
                reason: format!(
                    "mappedFileSizeCommitLog {} out of range 4096..=2^31-1",
                    config.mapped_file_size_commit_log
                ),
            })?;
        let root = config.store_path_root_dir.clone();
        std::fs::create_dir_all(&root)?;
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(root.join("lock"))?;
        if lock_file.try_lock().is_err() {
            return Err(StoreError::Locked(root));
        }
        if replicated.is_some() {
            for dir in ["consumequeue", "index"] {
                let d = root.join(dir);
                if d.exists() {
                    std::fs::remove_dir_all(&d)?;
                }
            }
        }
        let abort_path = root.join("abort");
        let last_exit_ok = !abort_path.exists();
        let (checkpoint, cp) = Checkpoint::open(&root.join("checkpoint"))?;
        let check_crc = config.check_crc_on_recover;
        let min_ts = cp.min_timestamp();
        let recovered = CommitLog::recover(&root.join("commitlog"), seg_size, check_crc, |segs| {
            if last_exit_ok {
                // Java `recoverNormally`: the last three files.
                segs.len().saturating_sub(3)
            } else {
                start_by_checkpoint(segs, min_ts)
            }
        })?;
        tracing::info!(root = %root.display(), last_exit_ok, "store opening");
        let cq_root = root.join("consumequeue");
        let cq_file_size = config.consume_queue_file_size();
        let delay_levels = config.delay_levels_ms();
        let queues = recover_queues(
            &recovered.log,
            &cq_root,
            cq_file_size,
            recovered.scan_from,
            &delay_levels,
        )?;
        let index = open_index(&root, &config, &recovered.log)?;
        let last_ts = cp.physic_msg_timestamp;
        let dispatched_end = if replicated.is_some() {
            0
        } else {
            recovered.log.max_offset()
        };
        File::create(&abort_path)?.sync_all()?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let group = Arc::new(GroupCommit::new());
        let inner = Arc::new(Inner {
            config,
            cq_root,
            cq_file_size,
            delay_levels,
            commit_log: recovered.log,
            queues: RwLock::new(queues),
            writer: Mutex::new(0),
            last_store_timestamp: AtomicI64::new(last_ts),
            checkpoint: Mutex::new((checkpoint, cp)),
            listener: RwLock::new(None),
            shut_down: AtomicBool::new(false),
            abort_path,
            index,
            group: Arc::clone(&group),
            replicated,
            queue_table: Mutex::new(HashMap::new()),
            dispatched_end: AtomicI64::new(dispatched_end),
            replication: RwLock::new(None),
            replica: AtomicBool::new(false),
            writer_epoch: AtomicI64::new(NOT_WRITER),
            disk_full: AtomicBool::new(false),
            over_ratio: AtomicBool::new(false),
            read_limit: AtomicI64::new(i64::MAX),
            read_limit_listener: RwLock::new(None),
            epochs: RwLock::new(None),
            cold_read_hook: RwLock::new(None),
        });
        let mut threads = Vec::new();
        let weak = Arc::downgrade(&inner);
        let interval = Duration::from_millis(inner.config.flush_interval_commit_log_ms.max(1));
        let stop2 = Arc::clone(&stop);
        threads.push(
            std::thread::Builder::new()
                .name("store-flush".into())
                .spawn(move || flush_loop(weak, stop2, interval))?,
        );
        let weak = Arc::downgrade(&inner);
        let interval = Duration::from_millis(inner.config.clean_resource_interval_ms.max(1));
        let first = Duration::from_millis(inner.config.clean_initial_delay_ms);
        let stop2 = Arc::clone(&stop);
        threads.push(
            std::thread::Builder::new()
                .name("store-clean".into())
                .spawn(move || clean_loop(weak, stop2, first, interval))?,
        );
        if inner.config.flush_disk_type == FlushDiskType::SyncFlush {
            let weak = Arc::downgrade(&inner);
            let g = Arc::clone(&group);
            threads.push(
                std::thread::Builder::new()
                    .name("store-group-commit".into())
                    .spawn(move || g.run(&weak))?,
            );
        }
        let guard = Arc::new(Guard {
            stop,
            group,
            threads: Mutex::new(threads),
            _lock: lock_file,
        });
        Ok(MessageStore { inner, guard })
    }

    /// Forget a topic's consume queues and delete their files (Java
    /// `deleteTopics`). Its records stay in the commit log until retention.
    pub fn delete_topic(&self, topic: &str) -> Result<(), StoreError> {
        validate_topic(topic)?;
        let _writer = lock(&self.inner.writer);
        let removed = write_lock(&self.inner.queues).remove(topic);
        if removed.is_some() {
            let dir = self.inner.cq_root.join(topic);
            if dir.exists() {
                std::fs::remove_dir_all(dir)?;
            }
        }
        Ok(())
    }

    /// Known (topic, queue ids), e.g. to rebuild topic configs.
    pub fn queues(&self) -> Vec<(String, Vec<i32>)> {
        let map = read_lock(&self.inner.queues);
        let mut out: Vec<(String, Vec<i32>)> = map
            .iter()
            .map(|(t, qs)| {
                let mut ids: Vec<i32> = qs.keys().copied().collect();
                ids.sort_unstable();
                (t.clone(), ids)
            })
            .collect();
        out.sort();
        out
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    pub fn set_arrival_listener(&self, f: ArrivalListener) {
        *write_lock(&self.inner.listener) = Some(f);
    }

    /// Called (with the new limit, `None` = lifted) whenever the read limit
    /// rises or is lifted, so long polls held on queues can look again:
    /// records that were stored earlier may have become readable.
    pub fn set_read_limit_listener(&self, f: ReadLimitListener) {
        *write_lock(&self.inner.read_limit_listener) = Some(f);
    }

    /// Controller mode: the epoch file whose entries describe this commit
    /// log. Retention then drops the entries that end before the oldest
    /// remaining commit-log byte (Java `truncateEpochFilePrefix(minPhyOffset
    /// - 1)`), once per pass that deleted files.
    pub fn set_epoch_file(&self, epochs: Option<Arc<crate::epoch::EpochFile>>) {
        *write_lock(&self.inner.epochs) = epochs;
    }

    /// Flush everything now and write the checkpoint.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush_all()
    }

    /// Flush, write the checkpoint and delete the abort file. Later puts
    /// fail with `ShutDown`; reads keep working. Idempotent.
    pub fn shutdown(&self) {
        let inner = &*self.inner;
        {
            let _w = lock(&inner.writer);
            if inner.shut_down.swap(true, Ordering::AcqRel) {
                return;
            }
        }
        signal_stop(&self.guard.stop);
        self.guard.group.stop();
        let threads: Vec<JoinHandle<()>> = lock(&self.guard.threads).drain(..).collect();
        for h in threads {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
        match inner.flush_all() {
            Ok(()) => {
                if let Err(e) = std::fs::remove_file(&inner.abort_path) {
                    tracing::warn!(error = %e, "could not delete the abort file");
                }
                tracing::info!(root = %inner.config.store_path_root_dir.display(), "store shut down");
            }
            Err(e) => tracing::error!(error = %e, "flush at shutdown failed; abort file kept"),
        }
    }
}

/// STORETIMESTAMP of a whole record.
fn record_store_timestamp(rec: &[u8]) -> Option<i64> {
    let sf = rec.get(record::POS_SYS_FLAG..record::POS_SYS_FLAG + 4)?;
    let sys_flag = i32::from_be_bytes([sf[0], sf[1], sf[2], sf[3]]);
    let p = record::store_timestamp_pos(sys_flag);
    let ts = rec.get(p..p + 8)?;
    let mut b = [0u8; 8];
    b.copy_from_slice(ts);
    Some(i64::from_be_bytes(b))
}

impl Inner {
    /// A stored record's consume-queue entry (its tags code from the
    /// properties) and its keys in the index, from one scan of the
    /// properties; `record` is its commit-log offset and size. Whether the
    /// queue took the entry (its capacity is the caller's to ensure).
    fn dispatch_record(
        &self,
        cq: &ConsumeQueue,
        topic: &str,
        props: &str,
        record: (i64, i32),
        store_ts: i64,
        sys_flag: i32,
    ) -> bool {
        let scanned = properties::Scanned::scan(props);
        let (phys, size) = record;
        let appended = cq.append(CqEntry {
            phys,
            size,
            tags_code: tags_code(topic, &scanned, store_ts, &self.delay_levels),
        });
        self.index
            .build_scanned(topic, &scanned, phys, store_ts, sys_flag);
        appended
    }

    fn queue(&self, topic: &str, queue_id: i32) -> Option<Arc<ConsumeQueue>> {
        read_lock(&self.queues).get(topic)?.get(&queue_id).cloned()
    }

    /// Writer only.
    fn queue_or_create(&self, topic: &str, queue_id: i32) -> Result<Arc<ConsumeQueue>, StoreError> {
        if let Some(q) = self.queue(topic, queue_id) {
            return Ok(q);
        }
        let dir = self.cq_root.join(topic).join(queue_id.to_string());
        let q = Arc::new(ConsumeQueue::create(&dir, self.cq_file_size)?);
        write_lock(&self.queues)
            .entry(topic.to_owned())
            .or_default()
            .insert(queue_id, Arc::clone(&q));
        Ok(q)
    }

    fn store_time_of(&self, cq: &ConsumeQueue, q: i64) -> Option<i64> {
        let e = cq.entry(q)?;
        if self.replicated.is_some() {
            let rec = self.log_read(e.phys, usize::try_from(e.size).ok()?)?;
            return record_store_timestamp(&rec);
        }
        self.commit_log.store_timestamp_at(e.phys, e.size)
    }

    /// Bytes of the record log (local or replicated).
    fn log_read(&self, offset: i64, len: usize) -> Option<Bytes> {
        match &self.replicated {
            Some(r) => r.read(CommitLogOffset(offset), len),
            None => self.commit_log.read(offset, len),
        }
    }

    /// The whole record starting at `offset`, checked by magic and size.
    fn log_record_at(&self, offset: i64) -> Option<Bytes> {
        let Some(r) = &self.replicated else {
            return self.commit_log.record_at(offset);
        };
        let head = r.read(CommitLogOffset(offset), 8)?;
        let size = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let magic = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if magic != record::MESSAGE_MAGIC_CODE_V1 && magic != record::MESSAGE_MAGIC_CODE_V2 {
            return None;
        }
        if size < record::MIN_RECORD_LEN as i32 {
            return None;
        }
        r.read(CommitLogOffset(offset), size as usize)
    }

    /// A cold get's bytes `[from, to)` of the local commit log: runs the
    /// test hook, faults them in, and starts reading what follows.
    fn prefault(&self, from: i64, to: i64) {
        let hook = read_lock(&self.cold_read_hook).clone();
        if let Some(h) = hook {
            h();
        }
        self.commit_log.will_need(from, to + get::COLD_READ_AHEAD);
        self.commit_log.populate_read(from, to);
    }

    fn flush_all(&self) -> Result<(), StoreError> {
        let ts = self.last_store_timestamp.load(Ordering::Acquire);
        let end = if self.replicated.is_some() {
            self.dispatched_end.load(Ordering::Acquire)
        } else {
            self.commit_log.max_offset()
        };
        self.commit_log.flush()?;
        let queues: Vec<Arc<ConsumeQueue>> = read_lock(&self.queues)
            .values()
            .flat_map(|m| m.values().cloned())
            .collect();
        for q in queues {
            q.flush()?;
        }
        self.index.flush()?;
        let mut cp = lock(&self.checkpoint);
        let data = CheckpointData {
            physic_msg_timestamp: ts,
            logics_msg_timestamp: ts,
            index_msg_timestamp: 0,
            master_flushed_offset: 0,
            confirm_phy_offset: end,
        };
        if data != cp.1 {
            cp.0.write(data)?;
            cp.1 = data;
        }
        Ok(())
    }
}
