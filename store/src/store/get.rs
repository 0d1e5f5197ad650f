//! Reads and queries: messages by queue offset, queue and commit-log
//! offsets and times, records by commit-log offset, key queries.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::consumequeue::CQ_UNIT;
use crate::index::QueryResult;
use crate::offset::{CommitLogOffset, QueueOffset};

use super::types::{GetResult, GetStatus};
use super::{record_store_timestamp, MessageStore};

/// Java `maxFilterMessageSize` default: bytes of consume queue examined per get.
const MAX_FILTER_MESSAGE_SIZE: i64 = 16_000;

/// How far past the end of a cold get the kernel is asked to read ahead, so
/// the disk works on the next pull's bytes while this one is sent.
pub(super) const COLD_READ_AHEAD: i64 = 2 * 1024 * 1024;

/// Test hook run by cold gets (see [`MessageStore::set_cold_read_hook`]).
pub type ColdReadHook = std::sync::Arc<dyn Fn() + Send + Sync>;

/// Java `isTheBatchFull`: whether a get holding `count` messages of `total`
/// bytes stops before the next one of `size` bytes. Never full before the
/// first message; the caller's caps, then the in-memory or in-disk caps of
/// the next message.
pub(crate) fn is_the_batch_full(
    cfg: &crate::StoreConfig,
    size: usize,
    max_msgs: usize,
    max_pull: usize,
    total: usize,
    count: usize,
    in_memory: bool,
) -> bool {
    if total == 0 || count == 0 {
        return false;
    }
    if count + 1 > max_msgs || total + size > max_pull {
        return true;
    }
    let (max_bytes, max_count) = if in_memory {
        (
            cfg.max_transfer_bytes_on_message_in_memory,
            cfg.max_transfer_count_on_message_in_memory,
        )
    } else {
        (
            cfg.max_transfer_bytes_on_message_in_disk,
            cfg.max_transfer_count_on_message_in_disk,
        )
    };
    total + size > max_bytes || count + 1 > max_count
}

impl MessageStore {
    /// Up to `max_msgs` records from queue offset `offset` whose tags code
    /// passes `filter`, with Java's status and next-offset rules
    /// (`DefaultMessageStore.getMessage`, docs/protocol/messages.md §8.2).
    pub fn get_messages(
        &self,
        topic: &str,
        queue_id: i32,
        offset: QueueOffset,
        max_msgs: i32,
        max_bytes: i32,
        filter: &dyn Fn(i64) -> bool,
    ) -> GetResult {
        let offset = offset.get();
        let inner = &*self.inner;
        let Some(cq) = inner.queue(topic, queue_id) else {
            return GetResult {
                status: GetStatus::NoMatchedLogicQueue,
                messages: Vec::new(),
                next_begin_offset: QueueOffset(0),
                min_offset: QueueOffset(0),
                max_offset: QueueOffset(0),
                suggest_pulling_from_slave: false,
            };
        };
        let (min, max) = (cq.min_offset(), cq.max_offset());
        let max = inner.readable_end(&cq, min, max);
        let mut r = GetResult {
            status: GetStatus::NoMatchedMessage,
            messages: Vec::new(),
            next_begin_offset: QueueOffset(offset),
            min_offset: QueueOffset(min),
            max_offset: QueueOffset(max),
            suggest_pulling_from_slave: false,
        };
        if max == 0 {
            r.status = GetStatus::NoMessageInQueue;
            r.next_begin_offset = QueueOffset(0);
            return r;
        }
        if offset < min {
            r.status = GetStatus::OffsetTooSmall;
            r.next_begin_offset = QueueOffset(min);
            return r;
        }
        if offset == max {
            r.status = GetStatus::OffsetOverflowOne;
            return r;
        }
        if offset > max {
            r.status = GetStatus::OffsetOverflowBadly;
            r.next_begin_offset = QueueOffset(max);
            return r;
        }
        let max_msgs = max_msgs.max(1) as usize;
        let max_pull = max_bytes.max(100) as usize;
        let max_filter = MAX_FILTER_MESSAGE_SIZE.max(max_msgs as i64 * CQ_UNIT as i64);
        let cfg = &inner.config;
        // Java `maxOffsetPy`: each message is "in memory" or "in disk" by
        // its distance from the commit log's end at the start of the get.
        let max_phys = self.commit_log_max_offset().get();
        let in_memory = cfg.in_memory_bytes();
        let mut cold = None;
        // Commit-log span of the messages read: [first start, last end).
        let mut span = (i64::MAX, i64::MIN);
        let mut total = 0usize;
        let mut next_phy_file_start = i64::MIN;
        // Java `maxPhyOffsetPulling`: where the last examined record starts.
        let mut last_phys = 0i64;
        let mut q = offset;
        while q < max {
            if (q - offset) * CQ_UNIT as i64 > max_filter {
                break;
            }
            let Some(e) = cq.entry(q) else {
                if r.messages.is_empty() {
                    r.status = GetStatus::OffsetFoundNull;
                    r.next_begin_offset = QueueOffset(cq.roll_next_file(q));
                }
                break;
            };
            let size = e.size.max(0) as usize;
            last_phys = e.phys;
            let behind = u64::try_from(max_phys.saturating_sub(e.phys)).unwrap_or(0);
            cold.get_or_insert_with(|| behind > cfg.cold_read_bytes());
            if is_the_batch_full(
                cfg,
                size,
                max_msgs,
                max_pull,
                total,
                r.messages.len(),
                behind <= in_memory,
            ) {
                break;
            }
            if total >= max_pull {
                break;
            }
            q += 1;
            r.next_begin_offset = QueueOffset(q);
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
                    span = (span.0.min(e.phys), span.1.max(e.phys + size as i64));
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
        if cold == Some(true) && span.0 < span.1 && inner.replicated.is_none() {
            inner.prefault(span.0, span.1);
        }
        let behind = max_phys.saturating_sub(last_phys);
        r.suggest_pulling_from_slave = u64::try_from(behind).unwrap_or(0) > cfg.in_memory_bytes();
        r
    }

    /// Whether a get from `offset` is cold: its first message lies further
    /// behind the commit log's end than [`StoreConfig::cold_read_bytes`], so
    /// its pages are likely not in memory and the get may wait on the disk.
    /// Such a get faults its pages in before it returns (so that the bytes
    /// it hands out are resident) and asks the kernel to read on ahead; a
    /// caller serving many connections from few threads should run it where
    /// blocking is fine (e.g. tokio's `spawn_blocking`).
    ///
    /// [`StoreConfig::cold_read_bytes`]: crate::StoreConfig::cold_read_bytes
    pub fn is_cold_read(&self, topic: &str, queue_id: i32, offset: QueueOffset) -> bool {
        let Some(e) = self
            .inner
            .queue(topic, queue_id)
            .and_then(|cq| cq.entry(offset.get()))
        else {
            return false;
        };
        let behind = self.commit_log_max_offset().get().saturating_sub(e.phys);
        u64::try_from(behind).unwrap_or(0) > self.inner.config.cold_read_bytes()
    }

    /// Test hook: called by every cold get (see [`is_cold_read`]) on its own
    /// thread before it faults its pages in, e.g. to hold it there and check
    /// that other requests are served meanwhile. `None` removes it.
    ///
    /// [`is_cold_read`]: Self::is_cold_read
    #[doc(hidden)]
    pub fn set_cold_read_hook(&self, hook: Option<ColdReadHook>) {
        *self
            .inner
            .cold_read_hook
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = hook;
    }

    /// Next queue offset to be written (0 for an unknown queue).
    /// With a read limit ([`set_read_limit`](Self::set_read_limit)), the
    /// offset of the first entry past it.
    pub fn max_offset(&self, topic: &str, queue_id: i32) -> QueueOffset {
        QueueOffset(self.inner.queue(topic, queue_id).map_or(0, |q| {
            self.inner.readable_end(&q, q.min_offset(), q.max_offset())
        }))
    }

    /// Controller mode (Java's confirm offset): consumers see a record only
    /// once it ends at or below `limit` — every SyncStateSet member holds it
    /// (master with `allAckInSyncStateSet`), or the master said so (slave).
    /// Java holds back the dispatch itself; our puts dispatch at once, so
    /// the limit applies where queues are read: [`get_messages`] and
    /// [`max_offset`] stop before the first entry of a record past it.
    /// `None` (the default, and `readUnCommitted`) reads everything. Puts
    /// never look at it. Arrival listeners still fire at dispatch: a long
    /// poll woken early finds nothing new and waits again; when the limit
    /// rises (or is lifted) the read-limit listener
    /// ([`set_read_limit_listener`](Self::set_read_limit_listener)) fires,
    /// so the broker can wake its long polls then.
    ///
    /// [`get_messages`]: Self::get_messages
    /// [`max_offset`]: Self::max_offset
    pub fn set_read_limit(&self, limit: Option<CommitLogOffset>) {
        let v = limit.map_or(i64::MAX, |l| l.get());
        let old = self.inner.read_limit.swap(v, Ordering::AcqRel);
        if v > old {
            let listener = self
                .inner
                .read_limit_listener
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            if let Some(f) = listener {
                f(limit);
            }
        }
    }

    /// The read limit in force, if any.
    pub fn read_limit(&self) -> Option<CommitLogOffset> {
        let v = self.inner.read_limit.load(Ordering::Acquire);
        (v != i64::MAX).then_some(CommitLogOffset(v))
    }

    /// First queue offset still present (0 for an unknown queue).
    pub fn min_offset(&self, topic: &str, queue_id: i32) -> QueueOffset {
        QueueOffset(
            self.inner
                .queue(topic, queue_id)
                .map_or(0, |q| q.min_offset()),
        )
    }

    /// First queue offset whose store time is at or after `timestamp_ms`
    /// (Java `getOffsetInQueueByTime`, boundary LOWER); the max offset if all
    /// are older; 0 for an unknown or empty queue.
    pub fn offset_by_time(&self, topic: &str, queue_id: i32, timestamp_ms: i64) -> QueueOffset {
        let Some(cq) = self.inner.queue(topic, queue_id) else {
            return QueueOffset(0);
        };
        let (mut lo, mut hi) = (cq.min_offset(), cq.max_offset());
        if hi == 0 {
            return QueueOffset(0);
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.inner.store_time_of(&cq, mid) {
                Some(t) if t >= timestamp_ms => hi = mid,
                _ => lo = mid + 1,
            }
        }
        QueueOffset(lo)
    }

    /// Store time of the first message still in the queue.
    pub fn earliest_store_time(&self, topic: &str, queue_id: i32) -> Option<i64> {
        let cq = self.inner.queue(topic, queue_id)?;
        self.inner.store_time_of(&cq, cq.min_offset())
    }

    /// Store time of the message at `queue_offset` (Java
    /// `getMessageStoreTimeStamp`).
    pub fn store_time_at(
        &self,
        topic: &str,
        queue_id: i32,
        queue_offset: QueueOffset,
    ) -> Option<i64> {
        let cq = self.inner.queue(topic, queue_id)?;
        self.inner.store_time_of(&cq, queue_offset.get())
    }

    /// Commit-log offset of the message at `queue_offset`.
    pub fn commit_log_offset_in_queue(
        &self,
        topic: &str,
        queue_id: i32,
        queue_offset: QueueOffset,
    ) -> Option<CommitLogOffset> {
        self.inner
            .queue(topic, queue_id)?
            .entry(queue_offset.get())
            .map(|e| CommitLogOffset(e.phys))
    }

    /// The whole record at a commit-log offset (VIEW_MESSAGE_BY_ID), if a
    /// record starts there.
    pub fn message_at(&self, commit_log_offset: CommitLogOffset) -> Option<Bytes> {
        self.inner.log_record_at(commit_log_offset.get())
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
    pub fn commit_log_max_offset(&self) -> CommitLogOffset {
        if self.inner.replicated.is_some() {
            return CommitLogOffset(self.inner.dispatched_end.load(Ordering::Acquire));
        }
        CommitLogOffset(self.inner.commit_log.max_offset())
    }

    /// Start of the first commit-log segment; -1 before the first write (Java).
    pub fn commit_log_min_offset(&self) -> CommitLogOffset {
        if let Some(r) = &self.inner.replicated {
            return r.min_offset();
        }
        CommitLogOffset(self.inner.commit_log.min_offset())
    }

    /// Store time of the first record in the commit log (Java
    /// `getEarliestMessageTime()`), `None` while empty.
    pub fn earliest_message_time(&self) -> Option<i64> {
        if let Some(r) = &self.inner.replicated {
            let rec = self.inner.log_record_at(r.min_offset().get())?;
            return record_store_timestamp(&rec);
        }
        let log = &self.inner.commit_log;
        let min = log.min_offset();
        let size = log.with_bytes(min, 4, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))?;
        log.store_timestamp_at(min, size)
    }

    /// Commit-log offset below which everything is known to be on disk.
    pub fn commit_log_flushed_offset(&self) -> CommitLogOffset {
        CommitLogOffset(self.inner.commit_log.flushed_offset())
    }

    /// How many msync rounds wrote commit-log bytes so far (with SYNC_FLUSH,
    /// fewer than the puts when group commit shares flushes).
    pub fn commit_log_flush_count(&self) -> u64 {
        self.inner.commit_log.flush_calls()
    }
}

impl super::Inner {
    /// The queue's end as readers may see it: `max`, or with a read limit
    /// the first queue offset in `[min, max)` whose record does not end at
    /// or below it (entries ascend in commit-log offset; binary search).
    fn readable_end(&self, cq: &crate::consumequeue::ConsumeQueue, min: i64, max: i64) -> i64 {
        let limit = self.read_limit.load(Ordering::Acquire);
        if limit == i64::MAX {
            return max;
        }
        let (mut lo, mut hi) = (min, max);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let within = cq.entry(mid).is_some_and(|e| {
                // Gap fillers (phys 0, size i32::MAX) count as readable.
                e.size == i32::MAX || e.phys.saturating_add(i64::from(e.size)) <= limit
            });
            if within {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}
