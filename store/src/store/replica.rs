//! The store's side of master/slave replication (see
//! [`crate::replication`]): the hook a master's puts consult, the bytes a
//! master ships, the bytes a slave appends, and the in-order dispatch of
//! records that replicated and replica stores share.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::StoreError;
use crate::offset::{CommitLogOffset, QueueOffset};
use crate::record::{self, RecordView};
use crate::replication::Replication;

use super::{lock, read_lock, write_lock, Inner, MessageStore};

impl MessageStore {
    /// Installs (or, with `None`, removes) the hook that puts consult about
    /// replicas; the next put sees it. Local commit log only: a replicated
    /// store ([`MessageStore::open_replicated`]) ignores it.
    pub fn set_replication(&self, hook: Option<Arc<dyn Replication>>) {
        *write_lock(&self.inner.replication) = hook;
    }

    /// Makes this store a slave's (`true`: puts are refused with
    /// [`StoreError::SlaveMode`], only [`append_replica`](Self::append_replica)
    /// writes) or a master's again. Taken under the writer lock: a put in
    /// progress finishes first.
    pub fn set_replica(&self, replica: bool) {
        let _writer = lock(&self.inner.writer);
        self.inner.replica.store(replica, Ordering::Release);
    }

    /// Master side: up to `max` bytes of the commit log from physical
    /// offset `from` to the end of its file, for an HA connection to ship
    /// (`None` when nothing is there yet). Blank end-of-file records come as
    /// they are, so a replica's files are byte-identical.
    pub fn transfer_chunk(&self, from: CommitLogOffset, max: usize) -> Option<Bytes> {
        if self.inner.replicated.is_some() {
            return None;
        }
        self.inner.commit_log.chunk(from.get(), max)
    }

    /// Replica side: appends bytes a master shipped at physical offset
    /// `offset` — the commit log's end, or a file-aligned offset in an empty
    /// store — and builds the consume-queue and index entries of every
    /// record they complete (a frame may end inside a record; the rest
    /// comes with the next). Returns the commit log's new end, which the
    /// replica reports to its master.
    pub fn append_replica(
        &self,
        offset: CommitLogOffset,
        data: &[u8],
    ) -> Result<CommitLogOffset, StoreError> {
        let offset = offset.get();
        let inner = &*self.inner;
        if inner.replicated.is_some() {
            return Err(StoreError::NotWriter);
        }
        let _writer = lock(&inner.writer);
        if inner.shut_down.load(Ordering::Acquire) {
            return Err(StoreError::ShutDown);
        }
        let was_empty = inner.commit_log.min_offset() < 0;
        let end = inner.commit_log.append_raw(offset, data);
        inner.note_write(&end);
        let end = end?;
        if was_empty {
            inner.dispatched_end.store(offset, Ordering::Release);
        }
        inner.dispatch_shipped(end)?;
        Ok(CommitLogOffset(end))
    }
}

impl MessageStore {
    /// Cuts the commit log at `offset` (Java `truncateFiles`): it must be a
    /// record boundary (an epoch's start or end, a replica's consistent
    /// point). Later commit-log segments are deleted, and every consume-queue
    /// entry of a record not wholly below `offset`; a later
    /// [`append_replica`](Self::append_replica) continues at `offset`.
    /// Index entries stay (a key query checks each hit against the record
    /// now at its offset). Nothing to do when `offset` is at or past the
    /// log's end. Returns the log's end after it.
    pub fn truncate_to(&self, offset: CommitLogOffset) -> Result<CommitLogOffset, StoreError> {
        let inner = &*self.inner;
        if inner.replicated.is_some() {
            return Err(StoreError::NotWriter);
        }
        let _writer = lock(&inner.writer);
        if inner.shut_down.load(Ordering::Acquire) {
            return Err(StoreError::ShutDown);
        }
        inner.truncate_locked(offset.get())?;
        Ok(CommitLogOffset(inner.commit_log.max_offset()))
    }

    /// Cuts a record the commit log ends inside of (a replica's last frame
    /// ended mid-record; Java `truncateInvalidMsg` before an HA client
    /// connects or a slave becomes master), so the log ends at its last
    /// whole record. Returns the log's end after it.
    pub fn truncate_torn_tail(&self) -> Result<CommitLogOffset, StoreError> {
        let inner = &*self.inner;
        if inner.replicated.is_some() {
            return Err(StoreError::NotWriter);
        }
        let _writer = lock(&inner.writer);
        let dispatched = inner.dispatched_end.load(Ordering::Acquire);
        if dispatched < inner.commit_log.max_offset() {
            tracing::warn!(
                to = dispatched,
                from = inner.commit_log.max_offset(),
                "truncating a torn last record"
            );
            inner.truncate_locked(dispatched)?;
        }
        Ok(CommitLogOffset(inner.commit_log.max_offset()))
    }

    /// End of the last whole record in the consume queues (a replica's log
    /// may end past it, inside a record still being shipped).
    pub fn dispatched_offset(&self) -> CommitLogOffset {
        CommitLogOffset(self.inner.dispatched_end.load(Ordering::Acquire))
    }
}

impl Inner {
    /// See [`MessageStore::truncate_to`]; the caller holds the writer lock.
    fn truncate_locked(&self, offset: i64) -> Result<(), StoreError> {
        if offset >= self.commit_log.max_offset() {
            return Ok(());
        }
        self.commit_log.truncate_to(offset)?;
        let queues: Vec<Arc<crate::consumequeue::ConsumeQueue>> = read_lock(&self.queues)
            .values()
            .flat_map(|m| m.values().cloned())
            .collect();
        for q in queues {
            q.truncate_phys(offset)?;
        }
        let d = self.dispatched_end.load(Ordering::Acquire).min(offset);
        self.dispatched_end.store(d, Ordering::Release);
        Ok(())
    }

    /// Dispatches every whole record between `dispatched_end` and `end` (the
    /// commit log's end after a replica append), stepping over blank
    /// end-of-file records. Stops at a record not yet complete.
    fn dispatch_shipped(&self, end: i64) -> Result<(), StoreError> {
        let seg_size = self.commit_log.seg_size() as i64;
        let mut at = self.dispatched_end.load(Ordering::Acquire);
        while at < end {
            let avail = (end - at).min(seg_size - at % seg_size) as usize;
            if avail < 8 {
                break;
            }
            let head = self
                .commit_log
                .with_bytes(at, 8, |b| {
                    (
                        i32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                        i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                    )
                })
                .ok_or_else(|| self.shipped_corrupt(at, "unreadable"))?;
            let (size, magic) = head;
            if magic == record::BLANK_MAGIC_CODE {
                if i64::from(size) != seg_size - at % seg_size {
                    return Err(self.shipped_corrupt(at, "blank record does not end its file"));
                }
                at += i64::from(size);
                self.dispatched_end.store(at, Ordering::Release);
                continue;
            }
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s >= record::MIN_RECORD_LEN)
                .ok_or_else(|| self.shipped_corrupt(at, "bad record size"))?;
            if size > avail {
                break;
            }
            let rec = self
                .commit_log
                .read(at, size)
                .ok_or_else(|| self.shipped_corrupt(at, "unreadable record"))?;
            match record::scan(&rec, at, false) {
                record::ScanItem::Record(v) => self.dispatch_in_order(at, &v)?,
                _ => return Err(self.shipped_corrupt(at, "invalid record")),
            }
            at += size as i64;
        }
        Ok(())
    }

    fn shipped_corrupt(&self, at: i64, reason: &str) -> StoreError {
        tracing::error!(
            offset = at,
            reason,
            "replicated commit-log data is not a valid log"
        );
        StoreError::Corrupt {
            path: self.config.store_path_root_dir.join("commitlog"),
            reason: format!("replicated data at {at}: {reason}"),
        }
    }

    /// Builds the consume-queue and index entries of the record at physical
    /// offset `phys`, records coming in log order (replicated dispatch and
    /// replica appends). One whose queue offset is already in its queue is
    /// skipped (Java logs and ignores it), one beyond the queue's end is
    /// placed at the end with a warning. Moves `dispatched_end`.
    pub(super) fn dispatch_in_order(
        &self,
        phys: i64,
        v: &RecordView<'_>,
    ) -> Result<(), StoreError> {
        let end = phys + i64::from(v.total_size);
        let cq = self.queue_or_create(v.topic, v.queue_id)?;
        let max = cq.max_offset();
        if v.queue_offset < max {
            tracing::debug!(
                topic = v.topic,
                queue = v.queue_id,
                qo = v.queue_offset,
                max,
                "dispatch: duplicate queue offset skipped"
            );
            self.dispatched_end.fetch_max(end, Ordering::AcqRel);
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
        self.dispatch_record(
            &cq,
            v.topic,
            v.properties,
            record,
            v.store_timestamp,
            v.sys_flag,
        );
        self.last_store_timestamp
            .fetch_max(v.store_timestamp, Ordering::AcqRel);
        self.dispatched_end.fetch_max(end, Ordering::AcqRel);
        let new_max = cq.max_offset();
        let listener = read_lock(&self.listener).clone();
        if let Some(l) = listener {
            l(v.topic, v.queue_id, QueueOffset(new_max));
        }
        Ok(())
    }
}
