//! The local put: encoding messages and batches into records, appending
//! them to the commit log, and the [`PendingPut`] a put resolves through.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::oneshot;

use crate::config::FlushDiskType;
use crate::error::StoreError;
use crate::offset::{CommitLogOffset, QueueOffset};
use crate::properties;
use crate::record::{self, RecordHeader};
use crate::replicated::PendingAppend;
use crate::replication::{Admission, ReplicaAck, ReplicaWait, Replication};

use super::replicated::FinishPut;
use super::types::{BatchToStore, MessageToStore, PutResult, PutStatus};
use super::{lock, now_ms, read_lock, validate_topic, MessageStore};

/// One encoded record inside a put's buffer.
pub(super) struct Item {
    pub(super) pos: usize,
    pub(super) len: usize,
    pub(super) sys_flag: i32,
    /// The properties bytes inside the buffer.
    pub(super) props_range: (usize, usize),
    pub(super) store_host: SocketAddr,
}

/// A put in progress, resolving to its result. Everything that orders it
/// happened when the put was made: its records are in the local commit log
/// (with their queue offsets), or queued on the replicated log under the
/// writer lock. What is left to await is the flush of a `SyncFlush` store
/// and the slaves' acknowledgements (see [`crate::replication`]), or the
/// replicated log's outcome; otherwise it is ready at once
/// ([`PendingPut::now`]). Runtime-agnostic: the group-commit thread, the
/// replication hook or the replicated log wakes it.
#[must_use = "a put's outcome is only known by awaiting it"]
pub struct PendingPut(pub(super) PutState);

pub(super) enum PutState {
    Ready(Option<Result<PutResult, StoreError>>),
    /// Stored in the local commit log up to `end`; acknowledged once the
    /// flush (`SyncFlush`) and the replicas (a replication hook's `Wait`)
    /// answered, each awaited at most once and dropped when done. As in
    /// Java's `handleDiskFlushAndHA`, both run at once and a replica
    /// timeout overrides a flush timeout in the status.
    Local {
        result: Option<PutResult>,
        end: i64,
        flushed: Option<oneshot::Receiver<bool>>,
        replicas: Option<ReplicaWait>,
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

    pub(super) fn ready(result: Result<PutResult, StoreError>) -> PendingPut {
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
            PutState::Local {
                result,
                end,
                flushed,
                replicas,
            } => {
                let Some(r) = result.as_mut() else {
                    return Poll::Ready(Err(StoreError::ShutDown));
                };
                if let Some(f) = flushed {
                    let Poll::Ready(ok) = Pin::new(f).poll(cx) else {
                        return Poll::Pending;
                    };
                    *flushed = None;
                    if !ok.unwrap_or(false) {
                        tracing::warn!(end = *end, "sync flush timed out");
                        r.status = PutStatus::FlushDiskTimeout;
                    }
                }
                if let Some(w) = replicas {
                    let Poll::Ready(ack) = w.as_mut().poll(cx) else {
                        return Poll::Pending;
                    };
                    *replicas = None;
                    if ack == ReplicaAck::TimedOut {
                        tracing::warn!(end = *end, "replicas did not acknowledge in time");
                        r.status = PutStatus::FlushSlaveTimeout;
                    }
                }
                Poll::Ready(result.take().ok_or(StoreError::ShutDown))
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

impl MessageStore {
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
        let Some(first) = msgs.first() else {
            return PendingPut::failed(StoreError::BadBatch(record::RecordError::Truncated {
                need: 1,
                have: 0,
            }));
        };
        match self.encode_messages(first, msgs) {
            Ok((buf, items)) => self.append(&first.topic, first.queue_id, buf, items),
            Err(e) => PendingPut::failed(e),
        }
    }

    /// The records of `msgs` (all of `first`'s topic and queue), encoded
    /// one after another.
    fn encode_messages(
        &self,
        first: &MessageToStore,
        msgs: &[MessageToStore],
    ) -> Result<(Vec<u8>, Vec<Item>), StoreError> {
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
        let (mut result, end, sync_flush, replicas) = match r {
            Ok(ok) => ok,
            Err(e) => return PendingPut::failed(e),
        };
        let replicas = match replicas {
            None | Some((_, Admission::Go | Admission::Refuse)) => None,
            Some((_, Admission::StoreWithoutSlave)) => {
                result.status = PutStatus::SlaveNotAvailable;
                None
            }
            Some((hook, Admission::Wait { acks })) => Some(hook.wait(CommitLogOffset(end), acks)),
        };
        let flushed = sync_flush.then(|| {
            let timeout = Duration::from_millis(self.inner.config.sync_flush_timeout_ms.max(1));
            self.inner.group.request_flush(end, timeout)
        });
        if flushed.is_none() && replicas.is_none() {
            return PendingPut::ready(Ok(result));
        }
        PendingPut(PutState::Local {
            result: Some(result),
            end,
            flushed,
            replicas,
        })
    }

    /// Local commit log: the result, the log's end after it, whether that
    /// end must be flushed before the answer (`SyncFlush`), and the
    /// replication hook with its admission when one is installed.
    fn append_local(
        &self,
        topic: &str,
        queue_id: i32,
        mut buf: Vec<u8>,
        items: Vec<Item>,
    ) -> Result<LocalAppend, StoreError> {
        let inner = &*self.inner;
        let mut last_ts = lock(&inner.writer);
        if inner.shut_down.load(Ordering::Acquire) {
            return Err(StoreError::ShutDown);
        }
        if inner.replica.load(Ordering::Acquire) {
            return Err(StoreError::SlaveMode);
        }
        let hook = read_lock(&inner.replication).clone();
        let admission = hook.as_ref().map(|h| {
            let wait_store_ok = items.first().is_none_or(|it| {
                let props = &buf[it.props_range.0..it.props_range.1];
                let props = std::str::from_utf8(props).unwrap_or("");
                properties::get(props, properties::WAIT) != Some("false")
            });
            if wait_store_ok {
                h.admit(CommitLogOffset(inner.commit_log.max_offset()))
            } else {
                Admission::Go
            }
        });
        if admission == Some(Admission::Refuse) {
            return Err(StoreError::InSyncReplicasNotEnough);
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
        let end = phys0 + buf.len() as i64;
        inner.dispatched_end.store(end, Ordering::Release);
        if let Some(h) = &hook {
            h.appended(CommitLogOffset(end));
        }
        let new_max = cq.max_offset();
        drop(last_ts);

        let listener = read_lock(&inner.listener).clone();
        if let Some(l) = listener {
            l(topic, queue_id, QueueOffset(new_max));
        }
        // SyncFlush: acknowledged once flushed up to here (see `append`).
        let sync_flush = inner.config.flush_disk_type == FlushDiskType::SyncFlush;
        let result = PutResult {
            status: PutStatus::PutOk,
            commit_log_offset: CommitLogOffset(phys0),
            queue_offset: QueueOffset(q0),
            commit_log_offsets: items
                .iter()
                .map(|it| CommitLogOffset(phys0 + it.pos as i64))
                .collect(),
            store_timestamp: store_ts,
            count: items.len(),
            wrote_bytes: buf.len(),
            store_hosts: items.iter().map(|it| it.store_host).collect(),
        };
        Ok((result, end, sync_flush, hook.zip(admission)))
    }
}

/// What [`MessageStore::append_local`] returns (see there).
type LocalAppend = (
    PutResult,
    i64,
    bool,
    Option<(std::sync::Arc<dyn Replication>, Admission)>,
);

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
