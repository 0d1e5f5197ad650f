//! The replicated put and dispatch: puts queued on a [`ReplicatedLog`]
//! (see `crate::replicated`), committed records dispatched back, and the
//! writer epoch.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use smallvec::SmallVec;

use crate::error::StoreError;
use crate::offset::{CommitLogOffset, QueueOffset};
use crate::record;
use crate::replicated::{AppendOutcome, ReplicatedLog};

use super::put::{Item, PendingPut, PutState};
use super::types::{PutResult, PutStatus};
use super::{lock, now_ms, Inner, MessageStore};

/// `writer_epoch` of a replicated store that may not write.
pub(super) const NOT_WRITER: i64 = -1;

/// What turns a replicated append's outcome into the put's result.
pub(super) struct FinishPut {
    inner: Arc<Inner>,
    key: (String, i32),
    q0: i64,
    end: i64,
    store_ts: i64,
    store_hosts: SmallVec<[SocketAddr; 1]>,
    wrote_bytes: usize,
}

impl FinishPut {
    pub(super) fn complete(self, outcome: AppendOutcome) -> Result<PutResult, StoreError> {
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
        let phys0 = offsets.first().copied().unwrap_or(CommitLogOffset(-1));
        Ok(PutResult {
            status: PutStatus::PutOk,
            commit_log_offset: phys0,
            queue_offset: QueueOffset(self.q0),
            commit_log_offsets: SmallVec::from_vec(offsets),
            store_timestamp: self.store_ts,
            count: self.store_hosts.len(),
            wrote_bytes: self.wrote_bytes,
            store_hosts: self.store_hosts,
        })
    }
}

impl MessageStore {
    /// Replicated mode put, first half: queue offsets from the queue table,
    /// records queued on the log; consume queues are built later by
    /// `dispatch_replicated`. The writer lock is held while the records are
    /// queued on the log (so queue offsets and log order agree) but not
    /// while their outcome is awaited, so concurrent puts share replication
    /// rounds.
    pub(super) fn queue_replicated(
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
    pub fn dispatch_replicated(&self, phys: CommitLogOffset, rec: &[u8]) -> Result<(), StoreError> {
        let v = record::decode(rec).map_err(StoreError::BadBatch)?;
        self.inner.dispatch_in_order(phys.get(), &v)
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
}
