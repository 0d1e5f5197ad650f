//! [`Store`] over the `store` crate's `MessageStore`.

use std::sync::{Arc, RwLock};

use bytes::Bytes;
use store::{FlushDiskType, MessageStore, StoreConfig};
use tracing::warn;

use crate::config::BrokerConfig;
use crate::store::{
    ArrivalListener, BatchToStore, GetResult, GetStatus, MessageToStore, PutResult, Store,
    StoreError,
};

/// The open store. `shutdown` drops the handle so the directory lock is
/// released even while requests still hold this adapter.
pub struct DiskStore {
    inner: RwLock<Option<MessageStore>>,
}

/// The store's configuration from the broker's (Java reads both from one file).
pub fn store_config(config: &BrokerConfig) -> StoreConfig {
    StoreConfig {
        store_path_root_dir: config.store_root(),
        mapped_file_size_commit_log: config.mapped_file_size_commit_log,
        mapped_file_size_consume_queue: config.mapped_file_size_consume_queue,
        flush_disk_type: if config.is_sync_flush() {
            FlushDiskType::SyncFlush
        } else {
            FlushDiskType::AsyncFlush
        },
        flush_interval_commit_log_ms: config.flush_interval_commit_log.max(1) as u64,
        max_message_size: config.max_message_size.max(0) as usize,
        max_transfer_bytes_on_message_in_memory: config
            .max_transfer_bytes_on_message_in_memory
            .max(1) as usize,
        max_transfer_count_on_message_in_memory: config
            .max_transfer_count_on_message_in_memory
            .max(1) as usize,
        message_delay_level: config.message_delay_level.clone(),
        ..StoreConfig::default()
    }
}

pub fn open(config: &BrokerConfig) -> anyhow::Result<Arc<dyn Store>> {
    if !config.store_path_commit_log.is_empty()
        && config.commit_log_dir() != config.store_root().join("commitlog")
    {
        warn!(storePathCommitLog = %config.store_path_commit_log, "storePathCommitLog is not supported; using <storePathRootDir>/commitlog");
    }
    let store = MessageStore::open(store_config(config))?;
    Ok(Arc::new(DiskStore {
        inner: RwLock::new(Some(store)),
    }))
}

fn map_error(e: store::StoreError) -> StoreError {
    use store::StoreError as E;
    match e {
        E::MessageTooLarge { size, max } => StoreError::MessageTooLarge { size, max },
        E::PropertiesTooLarge { size, .. } => StoreError::PropertiesTooLarge { size },
        E::InvalidTopic(_) | E::InvalidQueueId(_) | E::MixedBatch | E::BadBatch(_) => {
            StoreError::Illegal(e.to_string())
        }
        E::DiskFull => StoreError::DiskFull,
        E::ShutDown => StoreError::ShutDown,
        e @ (E::Locked(_) | E::Corrupt { .. } | E::Io(_)) => StoreError::Io(e.to_string()),
    }
}

fn to_store_message(m: &MessageToStore) -> store::MessageToStore {
    store::MessageToStore {
        topic: m.topic.clone(),
        queue_id: m.queue_id,
        flag: m.flag,
        body: m.body.clone(),
        properties: m.properties.clone(),
        sys_flag: m.sys_flag,
        born_timestamp: m.born_timestamp,
        born_host: m.born_host,
        store_host: m.store_host,
        reconsume_times: m.reconsume_times,
        prepared_transaction_offset: m.prepared_transaction_offset,
    }
}

fn put_result(r: store::PutResult) -> PutResult {
    PutResult {
        commit_log_offsets: r.commit_log_offsets,
        queue_offset: r.queue_offset,
    }
}

fn status(s: store::GetStatus) -> GetStatus {
    use store::GetStatus as S;
    match s {
        S::Found => GetStatus::Found,
        S::NoMessageInQueue => GetStatus::NoMessageInQueue,
        S::NoMatchedMessage => GetStatus::NoMatchedMessage,
        S::MessageWasRemoving => GetStatus::MessageWasRemoving,
        S::OffsetTooSmall => GetStatus::OffsetTooSmall,
        S::OffsetOverflowOne => GetStatus::OffsetOverflowOne,
        S::OffsetOverflowBadly => GetStatus::OffsetOverflowBadly,
        S::OffsetFoundNull => GetStatus::OffsetFoundNull,
        S::NoMatchedLogicQueue => GetStatus::NoMatchedLogicQueue,
    }
}

impl DiskStore {
    fn with<T>(&self, default: T, f: impl FnOnce(&MessageStore) -> T) -> T {
        match self
            .inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(s) => f(s),
            None => default,
        }
    }
}

impl Store for DiskStore {
    fn put(&self, msg: &MessageToStore) -> Result<PutResult, StoreError> {
        self.with(Err(StoreError::ShutDown), |s| {
            s.put(&to_store_message(msg))
                .map(put_result)
                .map_err(map_error)
        })
    }

    fn put_batch(&self, batch: &BatchToStore) -> Result<PutResult, StoreError> {
        let msgs: Vec<store::MessageToStore> =
            batch.messages.iter().map(to_store_message).collect();
        self.with(Err(StoreError::ShutDown), |s| {
            s.put_messages(&msgs).map(put_result).map_err(map_error)
        })
    }

    fn get_messages(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max_msgs: i32,
        max_bytes: i32,
        filter: &dyn Fn(i64) -> bool,
    ) -> GetResult {
        let none = GetResult {
            status: GetStatus::NoMatchedLogicQueue,
            messages: vec![],
            next_begin_offset: 0,
            min_offset: 0,
            max_offset: 0,
        };
        self.with(none, |s| {
            let r = s.get_messages(topic, queue_id, offset, max_msgs, max_bytes, filter);
            GetResult {
                status: status(r.status),
                messages: r.messages,
                next_begin_offset: r.next_begin_offset,
                min_offset: r.min_offset,
                max_offset: r.max_offset,
            }
        })
    }

    fn max_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.with(0, |s| s.max_offset(topic, queue_id))
    }

    fn min_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.with(0, |s| s.min_offset(topic, queue_id))
    }

    fn offset_by_time(&self, topic: &str, queue_id: i32, timestamp: i64) -> i64 {
        self.with(0, |s| s.offset_by_time(topic, queue_id, timestamp))
    }

    fn earliest_store_time(&self, topic: &str, queue_id: i32) -> Option<i64> {
        self.with(None, |s| s.earliest_store_time(topic, queue_id))
    }

    fn store_time_at(&self, topic: &str, queue_id: i32, offset: i64) -> Option<i64> {
        self.with(None, |s| s.store_time_at(topic, queue_id, offset))
    }

    fn message_at(&self, commit_log_offset: i64) -> Option<Bytes> {
        self.with(None, |s| s.message_at(commit_log_offset))
    }

    fn set_arrival_listener(&self, listener: ArrivalListener) {
        self.with((), |s| s.set_arrival_listener(listener))
    }

    fn commit_log_min_offset(&self) -> i64 {
        self.with(-1, MessageStore::commit_log_min_offset)
    }

    fn commit_log_max_offset(&self) -> i64 {
        self.with(0, MessageStore::commit_log_max_offset)
    }

    fn earliest_message_time(&self) -> i64 {
        self.with(-1, |s| s.earliest_message_time().unwrap_or(-1))
    }

    fn disk_used_ratio(&self) -> f64 {
        self.with(-1.0, MessageStore::disk_used_ratio)
    }

    fn delete_topic(&self, topic: &str) {
        self.with((), |s| {
            if let Err(e) = s.delete_topic(topic) {
                warn!(%topic, error = %e, "cannot delete the topic's consume queues");
            }
        })
    }

    fn shutdown(&self) {
        if let Some(s) = self.inner.write().unwrap_or_else(|p| p.into_inner()).take() {
            s.shutdown();
        }
    }
}
