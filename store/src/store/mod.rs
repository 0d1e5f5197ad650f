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

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::channel::oneshot;
use smallvec::SmallVec;

use crate::checkpoint::{Checkpoint, CheckpointData};
use crate::commitlog::CommitLog;
use crate::config::{FlushDiskType, StoreConfig};
use crate::consumequeue::{ConsumeQueue, CqEntry, CQ_UNIT};
use crate::error::StoreError;
use crate::index::{IndexService, QueryResult};
use crate::mmap::MappedFile;
use crate::msgid::create_offset_message_id;
use crate::properties;
use crate::record::{self, RecordHeader, RecordView, ScanItem};
use crate::replicated::{AppendOutcome, PendingAppend, ReplicatedLog};

/// `TopicValidator.RMQ_SYS_SCHEDULE_TOPIC`: its consume-queue tags slot holds
/// the delivery time.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";

/// Java `maxFilterMessageSize` default: bytes of consume queue examined per get.
const MAX_FILTER_MESSAGE_SIZE: i64 = 16_000;
/// `writer_epoch` of a replicated store that may not write.
const NOT_WRITER: i64 = -1;

/// One message to append.
#[derive(Debug, Clone)]
pub struct MessageToStore {
    pub topic: String,
    pub queue_id: i32,
    pub flag: i32,
    pub body: Bytes,
    /// Already-encoded properties string (`name\x01value\x02...`).
    pub properties: String,
    /// The IPv6 host bits are set by the store from the addresses.
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
}

/// A SEND_BATCH_MESSAGE: each inner message becomes its own record.
#[derive(Debug, Clone)]
pub struct BatchToStore {
    pub topic: String,
    pub queue_id: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_host: SocketAddr,
    /// Batch encoding (messages.md §6).
    pub body: Bytes,
    /// Batch-level properties, appended to every inner message's properties
    /// as Java's `MessageExtEncoder.encode(MessageExtBatch)` does.
    pub properties: String,
}

/// Java's `PutMessageStatus` for a put that stored its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutStatus {
    PutOk,
    /// SYNC_FLUSH: stored, but not known flushed within `syncFlushTimeout`
    /// (the broker answers FLUSH_DISK_TIMEOUT).
    FlushDiskTimeout,
}

/// What one retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub commit_log_files: usize,
    pub consume_queue_files: usize,
    pub index_files: usize,
    /// The commit log's start after the pass (-1 when empty).
    pub commit_log_min_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    pub status: PutStatus,
    /// Commit-log offset of the first record.
    pub commit_log_offset: i64,
    /// Queue offset of the first record; the rest follow consecutively.
    pub queue_offset: i64,
    /// Commit-log offset of every record, in order (inline for one record:
    /// no allocation for a single send).
    pub commit_log_offsets: SmallVec<[i64; 1]>,
    pub store_timestamp: i64,
    pub count: usize,
    /// Bytes appended (all records).
    pub wrote_bytes: usize,
    /// Every record's store host, for [`PutResult::msg_ids`].
    store_hosts: SmallVec<[SocketAddr; 1]>,
}

impl PutResult {
    /// One offset message id per record (store host + commit-log offset),
    /// made on request: the broker builds its own answer from
    /// [`PutResult::commit_log_offsets`].
    pub fn msg_ids(&self) -> Vec<String> {
        (0..self.commit_log_offsets.len())
            .filter_map(|i| self.msg_id(i))
            .collect()
    }

    /// The offset message id of record `i`.
    pub fn msg_id(&self, i: usize) -> Option<String> {
        let offset = *self.commit_log_offsets.get(i)?;
        Some(create_offset_message_id(*self.store_hosts.get(i)?, offset))
    }
}

/// Java's `GetMessageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    Found,
    NoMessageInQueue,
    NoMatchedMessage,
    /// Entries point at commit-log bytes that are gone (Java
    /// `MESSAGE_WAS_REMOVING`; the broker answers PULL_RETRY_IMMEDIATELY).
    MessageWasRemoving,
    OffsetTooSmall,
    OffsetOverflowOne,
    OffsetOverflowBadly,
    OffsetFoundNull,
    NoMatchedLogicQueue,
}

#[derive(Debug, Clone)]
pub struct GetResult {
    pub status: GetStatus,
    /// Whole stored records, sliced from the mapped files (no copy).
    pub messages: Vec<Bytes>,
    pub next_begin_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
}

impl GetResult {
    pub fn buffer_total_size(&self) -> usize {
        self.messages.iter().map(Bytes::len).sum()
    }
}

/// Called after each dispatch with (topic, queue id, new max offset).
pub type ArrivalListener = Arc<dyn Fn(&str, i32, i64) + Send + Sync>;

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

/// SYNC_FLUSH group commit (Java `GroupCommitService`): putters publish the
/// end offset they need on disk and wait; one flusher thread msyncs up to the
/// commit log's current end, which covers every put appended meanwhile, and
/// wakes them all. Nothing is flushed under the writer lock.
struct GroupCommit {
    state: Mutex<GroupState>,
    /// The flusher waits here for requests (and for the next deadline).
    wake: Condvar,
}

#[derive(Default)]
struct GroupState {
    requested: i64,
    flushed: i64,
    stop: bool,
    /// Puts waiting for `flushed` to pass their end.
    waiters: Vec<FlushWaiter>,
}

/// A put waiting for its bytes to be flushed.
struct FlushWaiter {
    end: i64,
    deadline: Instant,
    done: oneshot::Sender<bool>,
}

impl GroupState {
    /// Answers the waiters whose end is flushed (true) or whose deadline
    /// has passed (false).
    fn settle(&mut self, now: Instant) {
        let flushed = self.flushed;
        if self
            .waiters
            .iter()
            .all(|w| w.end > flushed && now < w.deadline)
        {
            return;
        }
        let (settled, waiting): (Vec<FlushWaiter>, Vec<FlushWaiter>) =
            std::mem::take(&mut self.waiters)
                .into_iter()
                .partition(|w| w.end <= flushed || now >= w.deadline);
        self.waiters = waiting;
        for w in settled {
            let _ = w.done.send(w.end <= flushed);
        }
    }
}

impl GroupCommit {
    fn new() -> GroupCommit {
        GroupCommit {
            state: Mutex::new(GroupState::default()),
            wake: Condvar::new(),
        }
    }

    fn stop(&self) {
        lock(&self.state).stop = true;
        self.wake.notify_all();
    }

    /// Asks for everything below `end` to be flushed: the receiver gets
    /// true once it is, false after `timeout` or when the flusher stopped
    /// first. Nothing blocks: the flusher thread answers.
    fn request_flush(&self, end: i64, timeout: Duration) -> oneshot::Receiver<bool> {
        let (done, rx) = oneshot::channel();
        let mut st = lock(&self.state);
        if st.flushed >= end || st.stop {
            let _ = done.send(st.flushed >= end);
            return rx;
        }
        st.requested = st.requested.max(end);
        st.waiters.push(FlushWaiter {
            end,
            deadline: Instant::now() + timeout,
            done,
        });
        drop(st);
        self.wake.notify_one();
        rx
    }

    fn run(&self, inner: &Weak<Inner>) {
        loop {
            let stopping = {
                let mut st = lock(&self.state);
                loop {
                    let now = Instant::now();
                    st.settle(now);
                    if st.stop || st.requested > st.flushed {
                        break;
                    }
                    st = match st.waiters.iter().map(|w| w.deadline).min() {
                        Some(d) => {
                            self.wake
                                .wait_timeout(st, d.saturating_duration_since(now))
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .0
                        }
                        None => self
                            .wake
                            .wait(st)
                            .unwrap_or_else(std::sync::PoisonError::into_inner),
                    };
                }
                st.stop
            };
            let result = match inner.upgrade() {
                Some(inner) => inner.commit_log.flush(),
                None => Err(std::io::Error::other("store dropped")),
            };
            let mut st = lock(&self.state);
            match result {
                Ok(end) => st.flushed = st.flushed.max(end),
                Err(e) => {
                    tracing::error!(error = %e, "group commit flush failed");
                    if !stopping {
                        // Back off before retrying; waiters time out meanwhile.
                        st = self
                            .wake
                            .wait_timeout(st, Duration::from_millis(10))
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .0;
                    }
                }
            }
            st.settle(Instant::now());
            if stopping {
                // Whatever is still waiting will not be flushed by us.
                for w in st.waiters.drain(..) {
                    let _ = w.done.send(false);
                }
                return;
            }
        }
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
    /// Replicated mode: end of the last dispatched record.
    dispatched_end: AtomicI64,
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

/// One encoded record inside a put's buffer.
struct Item {
    pos: usize,
    len: usize,
    sys_flag: i32,
    /// The properties bytes inside the buffer.
    props_range: (usize, usize),
    store_host: SocketAddr,
}

/// A put in progress, resolving to its result. Everything that orders it
/// happened when the put was made: its records are in the local commit log
/// (with their queue offsets), or queued on the replicated log under the
/// writer lock. What is left to await is the flush of a `SyncFlush` store
/// or the replicated log's outcome; otherwise it is ready at once
/// ([`PendingPut::ready`]). Runtime-agnostic: the group-commit thread or
/// the replicated log wakes it.
#[must_use = "a put's outcome is only known by awaiting it"]
pub struct PendingPut(PutState);

enum PutState {
    Ready(Option<Result<PutResult, StoreError>>),
    /// Stored; acknowledged once flushed up to `end` (else FLUSH_DISK_TIMEOUT).
    Flushing {
        result: Option<PutResult>,
        end: i64,
        flushed: oneshot::Receiver<bool>,
    },
    /// Queued on the replicated log; the outcome turns into the result.
    Replicated {
        pending: PendingAppend,
        finish: Option<FinishPut>,
    },
}

impl PendingPut {
    /// A put that failed before anything was stored.
    pub fn failed(error: StoreError) -> PendingPut {
        PendingPut(PutState::Ready(Some(Err(error))))
    }

    fn ready(result: Result<PutResult, StoreError>) -> PendingPut {
        PendingPut(PutState::Ready(Some(result)))
    }

    /// The result without waiting, when nothing is left to await (a local
    /// store without `SyncFlush`, or a failure); `None` otherwise, and the
    /// put stays awaitable.
    pub fn now(&mut self) -> Option<Result<PutResult, StoreError>> {
        match &mut self.0 {
            PutState::Ready(r) => r.take(),
            _ => None,
        }
    }
}

impl Future for PendingPut {
    type Output = Result<PutResult, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            // Polled again after it completed: nothing more to give.
            PutState::Ready(r) => Poll::Ready(r.take().unwrap_or(Err(StoreError::ShutDown))),
            PutState::Flushing {
                result,
                end,
                flushed,
            } => {
                let ok = match Pin::new(flushed).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r.unwrap_or(false),
                };
                let Some(mut r) = result.take() else {
                    return Poll::Ready(Err(StoreError::ShutDown));
                };
                if !ok {
                    tracing::warn!(end = *end, "sync flush timed out");
                    r.status = PutStatus::FlushDiskTimeout;
                }
                Poll::Ready(Ok(r))
            }
            PutState::Replicated { pending, finish } => {
                let outcome = match pending.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(o) => o,
                };
                Poll::Ready(match finish.take() {
                    Some(f) => f.complete(outcome),
                    None => Err(StoreError::ShutDown),
                })
            }
        }
    }
}

/// What turns a replicated append's outcome into the put's result.
struct FinishPut {
    inner: Arc<Inner>,
    key: (String, i32),
    q0: i64,
    end: i64,
    store_ts: i64,
    store_hosts: SmallVec<[SocketAddr; 1]>,
    wrote_bytes: usize,
}

impl FinishPut {
    fn complete(self, outcome: AppendOutcome) -> Result<PutResult, StoreError> {
        let inner = Arc::clone(&self.inner);
        let r = self.finish(outcome);
        inner.note_write(&r);
        r
    }

    fn finish(self, outcome: AppendOutcome) -> Result<PutResult, StoreError> {
        let offsets = match outcome {
            Ok(offsets) => offsets,
            Err(e) => {
                if !e.written {
                    // Refused before it reached the log: give the queue
                    // offsets back unless a later put already took more.
                    let _writer = lock(&self.inner.writer);
                    let mut table = lock(&self.inner.queue_table);
                    if table.get(&self.key) == Some(&self.end) {
                        table.insert(self.key, self.q0);
                    }
                }
                return Err(e.error);
            }
        };
        let phys0 = offsets.first().copied().unwrap_or(-1);
        Ok(PutResult {
            status: PutStatus::PutOk,
            commit_log_offset: phys0,
            queue_offset: self.q0,
            commit_log_offsets: SmallVec::from_vec(offsets),
            store_timestamp: self.store_ts,
            count: self.store_hosts.len(),
            wrote_bytes: self.wrote_bytes,
            store_hosts: self.store_hosts,
        })
    }
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
            dispatched_end: AtomicI64::new(0),
            writer_epoch: AtomicI64::new(NOT_WRITER),
            disk_full: AtomicBool::new(false),
            over_ratio: AtomicBool::new(false),
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

    /// Append one message: stored (local commit log, its consume queue
    /// entry built) or queued on the replicated log before this returns;
    /// the result is known once the returned put is awaited (ready at once
    /// without `SyncFlush` or replication, see [`PendingPut`]).
    pub fn put(&self, msg: &MessageToStore) -> PendingPut {
        self.put_messages(std::slice::from_ref(msg))
    }

    /// Append messages of one topic and queue as consecutive records (one
    /// segment, consecutive queue offsets), like a batch that is already
    /// split; see [`put`](Self::put).
    pub fn put_messages(&self, msgs: &[MessageToStore]) -> PendingPut {
        match (self.encode_messages(msgs), msgs.first()) {
            (Ok((buf, items)), Some(first)) => {
                self.append(&first.topic, first.queue_id, buf, items)
            }
            (Err(e), _) => PendingPut::failed(e),
            (Ok(_), None) => PendingPut::failed(StoreError::MixedBatch),
        }
    }

    /// The records of `msgs` (one topic and queue), encoded one after
    /// another; an empty slice is a bad batch.
    fn encode_messages(&self, msgs: &[MessageToStore]) -> Result<(Vec<u8>, Vec<Item>), StoreError> {
        let Some(first) = msgs.first() else {
            return Err(StoreError::BadBatch(record::RecordError::Truncated {
                need: 1,
                have: 0,
            }));
        };
        validate_topic(&first.topic)?;
        let max = self.inner.config.max_message_size;
        let mut buf = Vec::new();
        let mut items = Vec::with_capacity(msgs.len());
        for msg in msgs {
            if msg.topic != first.topic || msg.queue_id != first.queue_id {
                return Err(StoreError::MixedBatch);
            }
            if msg.body.len() > max {
                return Err(StoreError::MessageTooLarge {
                    size: msg.body.len(),
                    max,
                });
            }
            check_props_len(msg.properties.len())?;
            let header = RecordHeader {
                queue_id: msg.queue_id,
                flag: msg.flag,
                queue_offset: 0,
                physical_offset: 0,
                sys_flag: msg.sys_flag,
                born_timestamp: msg.born_timestamp,
                born_host: msg.born_host,
                store_timestamp: 0,
                store_host: msg.store_host,
                reconsume_times: msg.reconsume_times,
                prepared_transaction_offset: msg.prepared_transaction_offset,
            };
            let pos = buf.len();
            let len = record::encode_into(
                &mut buf,
                &header,
                &msg.body,
                &msg.topic,
                msg.properties.as_bytes(),
            )
            .map_err(map_record_error)?;
            items.push(Item {
                pos,
                len,
                sys_flag: record::with_host_flags(msg.sys_flag, &msg.born_host, &msg.store_host),
                props_range: (pos + len - msg.properties.len(), pos + len),
                store_host: msg.store_host,
            });
        }
        Ok((buf, items))
    }

    /// Append the messages of a batch as consecutive records (one segment,
    /// consecutive queue offsets); see [`put`](Self::put).
    pub fn put_batch(&self, batch: &BatchToStore) -> PendingPut {
        match self.encode_batch(batch) {
            Ok((buf, items)) => self.append(&batch.topic, batch.queue_id, buf, items),
            Err(e) => PendingPut::failed(e),
        }
    }

    /// The records of a batch's inner messages, encoded one after another.
    fn encode_batch(&self, batch: &BatchToStore) -> Result<(Vec<u8>, Vec<Item>), StoreError> {
        validate_topic(&batch.topic)?;
        let max = self.inner.config.max_message_size;
        if batch.body.len() > max {
            return Err(StoreError::MessageTooLarge {
                size: batch.body.len(),
                max,
            });
        }
        let inner_msgs = record::decode_batch(&batch.body).map_err(StoreError::BadBatch)?;
        if inner_msgs.is_empty() {
            return Err(StoreError::BadBatch(record::RecordError::Truncated {
                need: 20,
                have: 0,
            }));
        }
        let batch_props = batch.properties.as_bytes();
        let sys_flag = record::with_host_flags(batch.sys_flag, &batch.born_host, &batch.store_host);
        let mut buf = Vec::new();
        let mut items = Vec::with_capacity(inner_msgs.len());
        let mut props = Vec::new();
        for m in &inner_msgs {
            props.clear();
            props.extend_from_slice(m.properties);
            if !m.properties.is_empty()
                && !batch_props.is_empty()
                && m.properties.last() != Some(&(properties::PROPERTY_SEPARATOR as u8))
            {
                props.push(properties::PROPERTY_SEPARATOR as u8);
            }
            props.extend_from_slice(batch_props);
            check_props_len(props.len())?;
            if std::str::from_utf8(&props).is_err() {
                return Err(StoreError::BadBatch(record::RecordError::BadUtf8));
            }
            let header = RecordHeader {
                queue_id: batch.queue_id,
                flag: m.flag,
                queue_offset: 0,
                physical_offset: 0,
                sys_flag,
                born_timestamp: batch.born_timestamp,
                born_host: batch.born_host,
                store_timestamp: 0,
                store_host: batch.store_host,
                reconsume_times: 0,
                prepared_transaction_offset: 0,
            };
            let pos = buf.len();
            let len = record::encode_into(&mut buf, &header, m.body, &batch.topic, &props)
                .map_err(map_record_error)?;
            items.push(Item {
                pos,
                len,
                sys_flag,
                props_range: (pos + len - props.len(), pos + len),
                store_host: batch.store_host,
            });
        }
        Ok((buf, items))
    }

    /// The one append path: the records stored in the local commit log, or
    /// queued on the replicated log, in queue-offset order, now; what is
    /// left to await (a sync flush, a replication outcome) in the result.
    fn append(&self, topic: &str, queue_id: i32, buf: Vec<u8>, items: Vec<Item>) -> PendingPut {
        if queue_id < 0 {
            return PendingPut::failed(StoreError::InvalidQueueId(queue_id));
        }
        if let Some(log) = self.inner.replicated.clone() {
            return match self.queue_replicated(log, topic, queue_id, buf, items) {
                Ok(p) => p,
                Err(e) => {
                    let r = Err(e);
                    self.inner.note_write(&r);
                    PendingPut(PutState::Ready(Some(r)))
                }
            };
        }
        let r = self.append_local(topic, queue_id, buf, items);
        self.inner.note_write(&r);
        match r {
            Ok((result, None)) => PendingPut::ready(Ok(result)),
            Ok((result, Some(end))) => {
                let timeout = Duration::from_millis(self.inner.config.sync_flush_timeout_ms.max(1));
                PendingPut(PutState::Flushing {
                    result: Some(result),
                    end,
                    flushed: self.inner.group.request_flush(end, timeout),
                })
            }
            Err(e) => PendingPut::failed(e),
        }
    }

    /// Local commit log: the result, and with `SyncFlush` the end its
    /// acknowledgement waits to be flushed.
    fn append_local(
        &self,
        topic: &str,
        queue_id: i32,
        mut buf: Vec<u8>,
        items: Vec<Item>,
    ) -> Result<(PutResult, Option<i64>), StoreError> {
        let inner = &*self.inner;
        let mut last_ts = lock(&inner.writer);
        if inner.shut_down.load(Ordering::Acquire) {
            return Err(StoreError::ShutDown);
        }
        let cq = inner.queue_or_create(topic, queue_id)?;
        // Everything fallible first: nothing is written unless all fits.
        let placement = inner.commit_log.prepare(buf.len())?;
        cq.ensure_capacity(items.len())?;
        let store_ts = now_ms().max(*last_ts);
        let phys0 = placement.offset;
        let q0 = cq.max_offset();
        for (i, it) in items.iter().enumerate() {
            let r = &mut buf[it.pos..it.pos + it.len];
            r[record::POS_QUEUE_OFFSET..record::POS_QUEUE_OFFSET + 8]
                .copy_from_slice(&(q0 + i as i64).to_be_bytes());
            r[record::POS_PHYSICAL_OFFSET..record::POS_PHYSICAL_OFFSET + 8]
                .copy_from_slice(&(phys0 + it.pos as i64).to_be_bytes());
            let ts = record::store_timestamp_pos(it.sys_flag);
            r[ts..ts + 8].copy_from_slice(&store_ts.to_be_bytes());
        }
        inner.commit_log.write(placement, &buf);
        for it in &items {
            let props = std::str::from_utf8(&buf[it.props_range.0..it.props_range.1]).unwrap_or("");
            let record = (phys0 + it.pos as i64, it.len as i32);
            let ok = inner.dispatch_record(&cq, topic, props, record, store_ts, it.sys_flag);
            debug_assert!(ok, "consume queue capacity was ensured");
        }
        *last_ts = store_ts;
        inner
            .last_store_timestamp
            .store(store_ts, Ordering::Release);
        let new_max = cq.max_offset();
        drop(last_ts);

        let listener = read_lock(&inner.listener).clone();
        if let Some(l) = listener {
            l(topic, queue_id, new_max);
        }
        // SyncFlush: acknowledged once flushed up to here (see `append`).
        let flush_end = (inner.config.flush_disk_type == FlushDiskType::SyncFlush)
            .then_some(phys0 + buf.len() as i64);
        let result = PutResult {
            status: PutStatus::PutOk,
            commit_log_offset: phys0,
            queue_offset: q0,
            commit_log_offsets: items.iter().map(|it| phys0 + it.pos as i64).collect(),
            store_timestamp: store_ts,
            count: items.len(),
            wrote_bytes: buf.len(),
            store_hosts: items.iter().map(|it| it.store_host).collect(),
        };
        Ok((result, flush_end))
    }

    /// Replicated mode put, first half: queue offsets from the queue table,
    /// records queued on the log; consume queues are built later by
    /// `dispatch_replicated`. The writer lock is held while the records are
    /// queued on the log (so queue offsets and log order agree) but not
    /// while their outcome is awaited, so concurrent puts share replication
    /// rounds.
    fn queue_replicated(
        &self,
        log: Arc<dyn ReplicatedLog>,
        topic: &str,
        queue_id: i32,
        mut buf: Vec<u8>,
        items: Vec<Item>,
    ) -> Result<PendingPut, StoreError> {
        if queue_id < 0 {
            return Err(StoreError::InvalidQueueId(queue_id));
        }
        let inner = &*self.inner;
        let mut last_ts = lock(&inner.writer);
        if inner.shut_down.load(Ordering::Acquire) {
            return Err(StoreError::ShutDown);
        }
        let epoch = inner.writer_epoch.load(Ordering::Acquire);
        if epoch == NOT_WRITER {
            return Err(StoreError::NotWriter);
        }
        let key = (topic.to_owned(), queue_id);
        let known = lock(&inner.queue_table).get(&key).copied();
        let q0 =
            known.unwrap_or_else(|| inner.queue(topic, queue_id).map_or(0, |cq| cq.max_offset()));
        let store_ts = now_ms().max(*last_ts);
        let mut records = Vec::with_capacity(items.len());
        for (i, it) in items.iter().enumerate() {
            let r = &mut buf[it.pos..it.pos + it.len];
            r[record::POS_QUEUE_OFFSET..record::POS_QUEUE_OFFSET + 8]
                .copy_from_slice(&(q0 + i as i64).to_be_bytes());
            let ts = record::store_timestamp_pos(it.sys_flag);
            r[ts..ts + 8].copy_from_slice(&store_ts.to_be_bytes());
            records.push(Bytes::copy_from_slice(r));
        }
        let end = q0 + items.len() as i64;
        let pending = log.append(records, epoch).map_err(|e| e.error)?;
        lock(&inner.queue_table).insert(key.clone(), end);
        *last_ts = store_ts;
        drop(last_ts);
        Ok(PendingPut(PutState::Replicated {
            pending,
            finish: Some(FinishPut {
                inner: Arc::clone(&self.inner),
                key,
                q0,
                end,
                store_ts,
                store_hosts: items.iter().map(|it| it.store_host).collect(),
                wrote_bytes: buf.len(),
            }),
        }))
    }

    /// Replicated mode: builds the consume-queue and index entries of the
    /// committed record at physical offset `phys`. Records must come in log
    /// order; one whose queue offset is already in its queue is skipped
    /// (Java logs and ignores it), one beyond the queue's end is placed at
    /// the end with a warning. Moves the store's max physical offset.
    pub fn dispatch_replicated(&self, phys: i64, rec: &[u8]) -> Result<(), StoreError> {
        let v = record::decode(rec).map_err(StoreError::BadBatch)?;
        let inner = &*self.inner;
        let end = phys + i64::from(v.total_size);
        let cq = inner.queue_or_create(v.topic, v.queue_id)?;
        let max = cq.max_offset();
        if v.queue_offset < max {
            tracing::debug!(
                topic = v.topic,
                queue = v.queue_id,
                qo = v.queue_offset,
                max,
                "dispatch: duplicate queue offset skipped"
            );
            inner.dispatched_end.fetch_max(end, Ordering::AcqRel);
            return Ok(());
        }
        if max == 0 && cq.min_offset() == 0 && v.queue_offset > 0 {
            cq.start_at(v.queue_offset)?;
        } else if v.queue_offset > max {
            tracing::warn!(
                topic = v.topic,
                queue = v.queue_id,
                qo = v.queue_offset,
                max,
                "dispatch: queue offset gap"
            );
        }
        cq.ensure_capacity(1)?;
        let record = (phys, v.total_size);
        inner.dispatch_record(
            &cq,
            v.topic,
            v.properties,
            record,
            v.store_timestamp,
            v.sys_flag,
        );
        inner
            .last_store_timestamp
            .fetch_max(v.store_timestamp, Ordering::AcqRel);
        inner.dispatched_end.fetch_max(end, Ordering::AcqRel);
        let new_max = cq.max_offset();
        let listener = read_lock(&inner.listener).clone();
        if let Some(l) = listener {
            l(v.topic, v.queue_id, new_max);
        }
        Ok(())
    }

    /// Replicated mode, on becoming the writer (DLedger leader in term
    /// `epoch`, once every committed record is dispatched): forget handed-out
    /// queue offsets so the next puts continue from the consume queues (Java
    /// rebuilds `topicQueueTable`), then accept puts, each appended to the
    /// log only while it is still in `epoch`. Until the first call, puts are
    /// refused with [`StoreError::NotWriter`]: queue offsets handed out
    /// before the queues are rebuilt would repeat ones already in use.
    pub fn become_writer(&self, epoch: i64) {
        let _writer = lock(&self.inner.writer);
        lock(&self.inner.queue_table).clear();
        self.inner
            .writer_epoch
            .store(epoch.max(0), Ordering::Release);
    }

    /// Replicated mode: refuse puts ([`StoreError::NotWriter`]) from now on,
    /// until [`become_writer`](Self::become_writer). Waits for a put that is
    /// queueing records on the log.
    pub fn stop_writing(&self) {
        let _writer = lock(&self.inner.writer);
        self.inner.writer_epoch.store(NOT_WRITER, Ordering::Release);
    }

    /// True when records live in a replicated log.
    pub fn is_replicated(&self) -> bool {
        self.inner.replicated.is_some()
    }

    /// Up to `max_msgs` records from queue offset `offset` whose tags code
    /// passes `filter`, with Java's status and next-offset rules
    /// (`DefaultMessageStore.getMessage`, messages.md §8.2).
    pub fn get_messages(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max_msgs: i32,
        max_bytes: i32,
        filter: &dyn Fn(i64) -> bool,
    ) -> GetResult {
        let inner = &*self.inner;
        let Some(cq) = inner.queue(topic, queue_id) else {
            return GetResult {
                status: GetStatus::NoMatchedLogicQueue,
                messages: Vec::new(),
                next_begin_offset: 0,
                min_offset: 0,
                max_offset: 0,
            };
        };
        let (min, max) = (cq.min_offset(), cq.max_offset());
        let mut r = GetResult {
            status: GetStatus::NoMatchedMessage,
            messages: Vec::new(),
            next_begin_offset: offset,
            min_offset: min,
            max_offset: max,
        };
        if max == 0 {
            r.status = GetStatus::NoMessageInQueue;
            r.next_begin_offset = 0;
            return r;
        }
        if offset < min {
            r.status = GetStatus::OffsetTooSmall;
            r.next_begin_offset = min;
            return r;
        }
        if offset == max {
            r.status = GetStatus::OffsetOverflowOne;
            return r;
        }
        if offset > max {
            r.status = GetStatus::OffsetOverflowBadly;
            r.next_begin_offset = max;
            return r;
        }
        let max_msgs = max_msgs.max(1) as usize;
        let max_pull = max_bytes.max(100) as usize;
        let max_filter = MAX_FILTER_MESSAGE_SIZE.max(max_msgs as i64 * CQ_UNIT as i64);
        let cfg = &inner.config;
        let mut total = 0usize;
        let mut next_phy_file_start = i64::MIN;
        let mut q = offset;
        while q < max {
            if (q - offset) * CQ_UNIT as i64 > max_filter {
                break;
            }
            let Some(e) = cq.entry(q) else {
                if r.messages.is_empty() {
                    r.status = GetStatus::OffsetFoundNull;
                    r.next_begin_offset = cq.roll_next_file(q);
                }
                break;
            };
            let size = e.size.max(0) as usize;
            let count = r.messages.len();
            // Java `isTheBatchFull`: never full before the first message.
            if total > 0
                && count > 0
                && (count + 1 > max_msgs
                    || total + size > max_pull
                    || total + size > cfg.max_transfer_bytes_on_message_in_memory
                    || count + 1 > cfg.max_transfer_count_on_message_in_memory)
            {
                break;
            }
            if total >= max_pull {
                break;
            }
            q += 1;
            r.next_begin_offset = q;
            if next_phy_file_start != i64::MIN && e.phys < next_phy_file_start {
                continue;
            }
            if !filter(e.tags_code) {
                if total == 0 {
                    r.status = GetStatus::NoMatchedMessage;
                }
                continue;
            }
            match inner.log_read(e.phys, size) {
                Some(b) => {
                    total += size;
                    r.messages.push(b);
                    r.status = GetStatus::Found;
                    next_phy_file_start = i64::MIN;
                }
                None => {
                    if total == 0 {
                        r.status = GetStatus::MessageWasRemoving;
                    }
                    let seg = inner.commit_log.seg_size() as i64;
                    next_phy_file_start = e.phys + seg - e.phys.rem_euclid(seg);
                }
            }
        }
        r
    }

    /// Next queue offset to be written (0 for an unknown queue).
    pub fn max_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.inner
            .queue(topic, queue_id)
            .map_or(0, |q| q.max_offset())
    }

    /// First queue offset still present (0 for an unknown queue).
    pub fn min_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.inner
            .queue(topic, queue_id)
            .map_or(0, |q| q.min_offset())
    }

    /// First queue offset whose store time is at or after `timestamp_ms`
    /// (Java `getOffsetInQueueByTime`, boundary LOWER); the max offset if all
    /// are older; 0 for an unknown or empty queue.
    pub fn offset_by_time(&self, topic: &str, queue_id: i32, timestamp_ms: i64) -> i64 {
        let Some(cq) = self.inner.queue(topic, queue_id) else {
            return 0;
        };
        let (mut lo, mut hi) = (cq.min_offset(), cq.max_offset());
        if hi == 0 {
            return 0;
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.inner.store_time_of(&cq, mid) {
                Some(t) if t >= timestamp_ms => hi = mid,
                _ => lo = mid + 1,
            }
        }
        lo
    }

    /// Store time of the first message still in the queue.
    pub fn earliest_store_time(&self, topic: &str, queue_id: i32) -> Option<i64> {
        let cq = self.inner.queue(topic, queue_id)?;
        self.inner.store_time_of(&cq, cq.min_offset())
    }

    /// Store time of the message at `queue_offset` (Java
    /// `getMessageStoreTimeStamp`).
    pub fn store_time_at(&self, topic: &str, queue_id: i32, queue_offset: i64) -> Option<i64> {
        let cq = self.inner.queue(topic, queue_id)?;
        self.inner.store_time_of(&cq, queue_offset)
    }

    /// Commit-log offset of the message at `queue_offset`.
    pub fn commit_log_offset_in_queue(
        &self,
        topic: &str,
        queue_id: i32,
        queue_offset: i64,
    ) -> Option<i64> {
        self.inner
            .queue(topic, queue_id)?
            .entry(queue_offset)
            .map(|e| e.phys)
    }

    /// The whole record at a commit-log offset (VIEW_MESSAGE_BY_ID), if a
    /// record starts there.
    pub fn message_at(&self, commit_log_offset: i64) -> Option<Bytes> {
        self.inner.log_record_at(commit_log_offset)
    }

    /// Messages of `topic` whose `KEYS` contain `key` or whose `UNIQ_KEY` is
    /// `key`, stored in `[begin_ts, end_ts]` (Java `queryMessage`; at most
    /// `min(max_num, 64)` index hits are examined). Each hit is checked
    /// against the record, so hash collisions are dropped.
    pub fn query_by_key(
        &self,
        topic: &str,
        key: &str,
        max_num: i32,
        begin_ts: i64,
        end_ts: i64,
    ) -> QueryResult {
        let max = (max_num.max(0) as usize).min(crate::index::MAX_MSGS_NUM_BATCH);
        let (offsets, ts, phy) = self.inner.index.query(topic, key, max, begin_ts, end_ts);
        let mut seen = HashSet::new();
        let messages = offsets
            .into_iter()
            .filter(|o| seen.insert(*o))
            .filter_map(|o| self.inner.log_record_at(o))
            .filter(|r| crate::index::record_has_key(r, topic, key))
            .collect();
        QueryResult {
            messages,
            index_last_update_timestamp: ts,
            index_last_update_phyoffset: phy,
        }
    }

    /// Next commit-log write offset.
    pub fn commit_log_max_offset(&self) -> i64 {
        if self.inner.replicated.is_some() {
            return self.inner.dispatched_end.load(Ordering::Acquire);
        }
        self.inner.commit_log.max_offset()
    }

    /// Start of the first commit-log segment; -1 before the first write (Java).
    pub fn commit_log_min_offset(&self) -> i64 {
        if let Some(r) = &self.inner.replicated {
            return r.min_offset();
        }
        self.inner.commit_log.min_offset()
    }

    /// Store time of the first record in the commit log (Java
    /// `getEarliestMessageTime()`), `None` while empty.
    pub fn earliest_message_time(&self) -> Option<i64> {
        if let Some(r) = &self.inner.replicated {
            let rec = self.inner.log_record_at(r.min_offset())?;
            return record_store_timestamp(&rec);
        }
        let log = &self.inner.commit_log;
        let min = log.min_offset();
        let size = log.with_bytes(min, 4, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))?;
        log.store_timestamp_at(min, size)
    }

    /// Whether the store is refusing writes for lack of disk space: set by
    /// the first put that fails with [`StoreError::DiskFull`] (logged once at
    /// ERROR), cleared by the next put that succeeds (logged once at INFO).
    pub fn disk_full(&self) -> bool {
        self.inner.disk_full.load(Ordering::Acquire)
    }

    /// Used fraction (0.0..=1.0) of the disk holding the store (Java
    /// `getDiskPartitionSpaceUsedPercent`: 1 - free / total).
    pub fn disk_used_ratio(&self) -> f64 {
        disk_used_ratio_of(&self.inner.config.store_path_root_dir)
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

    /// Commit-log offset below which everything is known to be on disk.
    pub fn commit_log_flushed_offset(&self) -> i64 {
        self.inner.commit_log.flushed_offset()
    }

    /// How many msync rounds wrote commit-log bytes so far (with SYNC_FLUSH,
    /// fewer than the puts when group commit shares flushes).
    pub fn commit_log_flush_count(&self) -> u64 {
        self.inner.commit_log.flush_calls()
    }

    /// One retention pass now (what the periodic cleaner runs every
    /// `cleanResourceInterval`).
    pub fn clean_expired_files(&self) -> Result<RetentionReport, StoreError> {
        self.clean_expired_files_at(now_ms(), self.disk_used_ratio())
    }

    /// One retention pass (Java `CleanCommitLogService` then
    /// `CleanConsumeQueueService`) as if the clock read `now_ms` and the
    /// disk were `disk_used_ratio` full (0.0..=1.0; negative = unknown):
    /// - at a `deleteWhen` hour, or above `diskMaxUsedSpaceRatio`, commit-log
    ///   segments last modified more than `fileReservedTime` ago are deleted,
    ///   oldest first, stopping at the first younger one; above 0.85 with
    ///   `cleanFileForciblyEnable` their age does not matter; the active
    ///   segment is never deleted, at most `deleteFileBatchMax` per pass;
    /// - then consume-queue files and index files wholly below the new
    ///   commit-log start are deleted and queue min offsets move up.
    pub fn clean_expired_files_at(
        &self,
        now_ms: i64,
        disk_used_ratio: f64,
    ) -> Result<RetentionReport, StoreError> {
        clean_pass(&self.inner, now_ms, disk_used_ratio)
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

/// Open the key index and index the records it does not hold yet.
fn open_index(
    root: &Path,
    config: &StoreConfig,
    log: &CommitLog,
) -> Result<IndexService, StoreError> {
    let index = IndexService::open(
        &root.join("index"),
        config.max_hash_slot_num,
        config.max_index_num,
    )?;
    let from = index.recover_from();
    walk(log, from.unwrap_or(0), log.max_offset(), |v| {
        if from.is_none_or(|f| v.physical_offset > f) {
            index.build(
                v.topic,
                v.properties,
                v.physical_offset,
                v.store_timestamp,
                v.sys_flag,
            );
        }
        Ok(())
    })?;
    Ok(index)
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

fn check_props_len(len: usize) -> Result<(), StoreError> {
    if len > properties::MAX_PROPERTIES_LEN {
        return Err(StoreError::PropertiesTooLarge {
            size: len,
            max: properties::MAX_PROPERTIES_LEN,
        });
    }
    Ok(())
}

fn map_record_error(e: record::RecordError) -> StoreError {
    match e {
        record::RecordError::TopicTooLong(_) => StoreError::InvalidTopic(String::new()),
        record::RecordError::PropertiesTooLong(size) => StoreError::PropertiesTooLarge {
            size,
            max: properties::MAX_PROPERTIES_LEN,
        },
        e => StoreError::BadBatch(e),
    }
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
            Some(r) => r.read(offset, len),
            None => self.commit_log.read(offset, len),
        }
    }

    /// The whole record starting at `offset`, checked by magic and size.
    fn log_record_at(&self, offset: i64) -> Option<Bytes> {
        let Some(r) = &self.replicated else {
            return self.commit_log.record_at(offset);
        };
        let head = r.read(offset, 8)?;
        let size = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let magic = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if magic != record::MESSAGE_MAGIC_CODE_V1 && magic != record::MESSAGE_MAGIC_CODE_V2 {
            return None;
        }
        if size < record::MIN_RECORD_LEN as i32 {
            return None;
        }
        r.read(offset, size as usize)
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

fn clean_pass(
    inner: &Inner,
    now_ms: i64,
    disk_used_ratio: f64,
) -> Result<RetentionReport, StoreError> {
    let cfg = &inner.config;
    if inner.replicated.is_some() {
        // The replicated log owns its own retention.
        return Ok(RetentionReport {
            commit_log_min_offset: -1,
            ..RetentionReport::default()
        });
    }
    let hour = u32::try_from(now_ms.rem_euclid(86_400_000) / 3_600_000).unwrap_or(0);
    let time_up = cfg.delete_hours().contains(&hour);
    let max_ratio = f64::from(cfg.disk_max_used_space_ratio.clamp(10, 95)) / 100.0;
    let space_full = disk_used_ratio < 0.0 || disk_used_ratio > max_ratio;
    let clean_immediately = disk_used_ratio > DISK_SPACE_CLEAN_FORCIBLY_RATIO;
    inner.note_disk_ratio(space_full, disk_used_ratio, max_ratio);
    let mut report = RetentionReport::default();
    if time_up || space_full {
        let at_once = cfg.clean_file_forcibly_enable && clean_immediately;
        let expire_ms = i64::try_from(cfg.file_reserved_time_hours)
            .unwrap_or(i64::MAX / 3_600_000)
            .saturating_mul(3_600_000);
        let _writer = lock(&inner.writer);
        if inner.shut_down.load(Ordering::Acquire) {
            return Err(StoreError::ShutDown);
        }
        report.commit_log_files = inner
            .commit_log
            .delete_expired(now_ms, expire_ms, at_once, cfg.delete_file_batch_max)?
            .len();
    }
    let cl_min = inner.commit_log.min_offset();
    report.commit_log_min_offset = cl_min;
    if cl_min > 0 {
        let queues: Vec<Arc<ConsumeQueue>> = read_lock(&inner.queues)
            .values()
            .flat_map(|m| m.values().cloned())
            .collect();
        for q in queues {
            report.consume_queue_files += q.delete_below(cl_min)?;
        }
        report.index_files = inner.index.delete_below(cl_min)?;
    }
    Ok(report)
}

/// Free (available to us) and total bytes of the filesystem holding `path`.
fn disk_space_of(path: &Path) -> Option<(u64, u64)> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some((
        st.f_bavail.saturating_mul(st.f_frsize),
        st.f_blocks.saturating_mul(st.f_frsize),
    ))
}

impl Inner {
    /// Follows a write's outcome: the first `DiskFull` after a success logs
    /// an ERROR, the first success after a `DiskFull` an INFO line; other
    /// errors leave the state alone. Only transitions log, so a full disk
    /// costs two lines however many puts it refuses.
    fn note_write<T>(&self, r: &Result<T, StoreError>) {
        match r {
            Err(StoreError::DiskFull) => {
                if self
                    .disk_full
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    let path = &self.config.store_path_root_dir;
                    let (free, total) = disk_space_of(path).unwrap_or((0, 0));
                    tracing::error!(
                        path = %path.display(),
                        free_bytes = free,
                        total_bytes = total,
                        segment_bytes = self.config.mapped_file_size_commit_log,
                        "disk full: commit log refuses writes until space is freed \
                         (clients get SERVICE_NOT_AVAILABLE; nothing stored is lost)"
                    );
                }
            }
            Ok(_) => {
                if self.disk_full.load(Ordering::Acquire)
                    && self
                        .disk_full
                        .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    let path = &self.config.store_path_root_dir;
                    let (free, total) = disk_space_of(path).unwrap_or((0, 0));
                    tracing::info!(
                        path = %path.display(),
                        free_bytes = free,
                        total_bytes = total,
                        "disk space available again: commit log accepts writes"
                    );
                }
            }
            Err(_) => {}
        }
    }

    /// Logs when the disk goes above `diskMaxUsedSpaceRatio` (retention then
    /// deletes expired files at any hour) and when it comes back below.
    fn note_disk_ratio(&self, over: bool, ratio: f64, max_ratio: f64) {
        if self
            .over_ratio
            .compare_exchange(!over, over, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let path = self.config.store_path_root_dir.display();
        if over {
            tracing::warn!(
                path = %path,
                used_ratio = ratio,
                max_ratio,
                "disk usage above diskMaxUsedSpaceRatio: retention deletes expired \
                 commit-log files at any hour"
            );
        } else {
            tracing::info!(
                path = %path,
                used_ratio = ratio,
                max_ratio,
                "disk usage back below diskMaxUsedSpaceRatio"
            );
        }
    }
}

fn disk_used_ratio_of(path: &Path) -> f64 {
    match rustix::fs::statvfs(path) {
        Ok(st) if st.f_blocks > 0 => 1.0 - (st.f_bfree as f64 / st.f_blocks as f64),
        _ => -1.0,
    }
}

/// Java `diskSpaceCleanForciblyRatio` (system property default 0.85).
const DISK_SPACE_CLEAN_FORCIBLY_RATIO: f64 = 0.85;

fn clean_loop(
    weak: Weak<Inner>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    first: Duration,
    interval: Duration,
) {
    let mut wait = first;
    loop {
        {
            let guard = lock(&stop.0);
            let (guard, _) = stop
                .1
                .wait_timeout_while(guard, std::mem::replace(&mut wait, interval), |stopped| {
                    !*stopped
                })
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *guard {
                return;
            }
        }
        let Some(inner) = weak.upgrade() else { return };
        let ratio = disk_used_ratio_of(&inner.config.store_path_root_dir);
        if let Err(e) = clean_pass(&inner, now_ms(), ratio) {
            tracing::error!(error = %e, "retention pass failed");
        }
    }
}

fn flush_loop(weak: Weak<Inner>, stop: Arc<(Mutex<bool>, Condvar)>, interval: Duration) {
    loop {
        {
            let guard = lock(&stop.0);
            let (guard, _) = stop
                .1
                .wait_timeout_while(guard, interval, |stopped| !*stopped)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *guard {
                return;
            }
        }
        let Some(inner) = weak.upgrade() else { return };
        if let Err(e) = inner.flush_all() {
            tracing::error!(error = %e, "periodic flush failed");
        }
    }
}

/// Java `recoverAbnormally`: the last segment whose first record was stored
/// no later than the checkpoint's minimum timestamp; else the first.
fn start_by_checkpoint(segs: &[Arc<MappedFile>], min_ts: i64) -> usize {
    for (i, seg) in segs.iter().enumerate().rev() {
        let Some(data) = seg.read(0, seg.size()) else {
            continue;
        };
        if let Ok(v) = record::decode(data) {
            if v.store_timestamp != 0 && v.store_timestamp <= min_ts {
                return i;
            }
        }
    }
    0
}

/// Visit the records in `[from, to)` of a recovered log.
fn walk(
    log: &CommitLog,
    from: i64,
    to: i64,
    mut f: impl FnMut(&RecordView<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let segs = log.segments();
    let Some(first) = segs.first() else {
        return Ok(());
    };
    let seg_size = log.seg_size() as i64;
    let mut off = from.max(first.base() as i64);
    while off < to {
        let idx = ((off - first.base() as i64) / seg_size) as usize;
        let Some(seg) = segs.get(idx) else { break };
        let pos = (off - seg.base() as i64) as usize;
        let data = seg.read(0, seg.published()).unwrap_or(&[]);
        match record::scan(data.get(pos..).unwrap_or(&[]), off, false) {
            ScanItem::Record(v) => {
                f(&v)?;
                off += i64::from(v.total_size);
            }
            ScanItem::Blank => off = seg.base() as i64 + seg_size,
            ScanItem::End | ScanItem::Invalid(_) => {
                tracing::warn!(offset = off, "unreadable record while re-dispatching");
                break;
            }
        }
    }
    Ok(())
}

/// Load the consume queues, cut them to the recovered commit log, and
/// re-dispatch the scanned range. Any queue that disagrees with the commit
/// log (a hole, a wrong entry) is rebuilt from the whole commit log.
fn recover_queues(
    log: &CommitLog,
    cq_root: &Path,
    file_size: usize,
    scan_from: i64,
    delay_levels: &[i64],
) -> Result<QueueMap, StoreError> {
    std::fs::create_dir_all(cq_root)?;
    let cl_min = log.min_offset().max(0);
    let cl_end = log.max_offset();
    let mut queues: HashMap<String, HashMap<i32, ConsumeQueue>> = HashMap::new();
    let mut rebuild: HashSet<(String, i32)> = HashSet::new();
    for topic_entry in std::fs::read_dir(cq_root)? {
        let topic_entry = topic_entry?;
        let Ok(topic) = topic_entry.file_name().into_string() else {
            continue;
        };
        if !topic_entry.file_type()?.is_dir() {
            continue;
        }
        for q_entry in std::fs::read_dir(topic_entry.path())? {
            let q_entry = q_entry?;
            let Some(queue_id) = q_entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            match ConsumeQueue::load(&q_entry.path(), file_size, cl_min, cl_end) {
                Ok(q) => {
                    queues.entry(topic.clone()).or_default().insert(queue_id, q);
                }
                Err(e) => {
                    tracing::warn!(%topic, queue_id, error = %e, "consume queue unreadable; rebuilding");
                    std::fs::remove_dir_all(q_entry.path())?;
                    rebuild.insert((topic.clone(), queue_id));
                }
            }
        }
    }

    let cq_dir = |topic: &str, q: i32| cq_root.join(topic).join(q.to_string());
    let tags = |v: &RecordView<'_>| {
        tags_code(
            v.topic,
            &properties::Scanned::scan(v.properties),
            v.store_timestamp,
            delay_levels,
        )
    };
    walk(log, scan_from, cl_end, |v| {
        let key = (v.topic.to_owned(), v.queue_id);
        if rebuild.contains(&key) {
            return Ok(());
        }
        let topic_map = queues.entry(key.0.clone()).or_default();
        let cq = match topic_map.entry(v.queue_id) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => slot.insert(ConsumeQueue::create(
                &cq_dir(v.topic, v.queue_id),
                file_size,
            )?),
        };
        let max = cq.max_offset();
        if v.queue_offset < max {
            let ok = cq
                .entry(v.queue_offset)
                .is_some_and(|e| e.phys == v.physical_offset && e.size == v.total_size);
            if !ok {
                rebuild.insert(key);
            }
        } else if v.queue_offset == max {
            cq.ensure_capacity(1)?;
            cq.append(CqEntry {
                phys: v.physical_offset,
                size: v.total_size,
                tags_code: tags(v),
            });
        } else {
            rebuild.insert(key);
        }
        Ok(())
    })?;

    if !rebuild.is_empty() {
        for (topic, q) in &rebuild {
            tracing::warn!(%topic, queue_id = q, "rebuilding consume queue from the commit log");
            if let Some(old) = queues.get_mut(topic).and_then(|m| m.remove(q)) {
                old.destroy()?;
            }
            queues
                .entry(topic.clone())
                .or_default()
                .insert(*q, ConsumeQueue::create(&cq_dir(topic, *q), file_size)?);
        }
        let mut started: HashSet<(String, i32)> = HashSet::new();
        walk(log, cl_min, cl_end, |v| {
            let key = (v.topic.to_owned(), v.queue_id);
            if !rebuild.contains(&key) {
                return Ok(());
            }
            let Some(cq) = queues.get_mut(v.topic).and_then(|m| m.get_mut(&v.queue_id)) else {
                return Ok(());
            };
            if started.insert(key) && v.queue_offset > 0 {
                cq.start_at(v.queue_offset)?;
            }
            let max = cq.max_offset();
            if v.queue_offset < max {
                tracing::warn!(
                    topic = v.topic,
                    queue_offset = v.queue_offset,
                    "duplicate queue offset skipped"
                );
                return Ok(());
            }
            for _ in max..v.queue_offset {
                cq.ensure_capacity(1)?;
                cq.append(CqEntry {
                    phys: 0,
                    size: i32::MAX,
                    tags_code: 0,
                });
            }
            cq.ensure_capacity(1)?;
            cq.append(CqEntry {
                phys: v.physical_offset,
                size: v.total_size,
                tags_code: tags(v),
            });
            Ok(())
        })?;
    }

    Ok(queues
        .into_iter()
        .map(|(t, m)| (t, m.into_iter().map(|(q, cq)| (q, Arc::new(cq))).collect()))
        .collect())
}
