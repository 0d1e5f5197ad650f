//! The broker's view of the message store.
//!
//! Processors talk to `dyn Store`; [`crate::store_adapter`] implements it
//! over the `store` crate's `MessageStore`. Offsets: a queue's max offset is
//! the next offset to be written; min the first still present.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

/// One message to append.
#[derive(Debug, Clone)]
pub struct MessageToStore {
    pub topic: String,
    pub queue_id: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_host: SocketAddr,
    pub flag: i32,
    pub body: Bytes,
    /// The encoded properties string (`name\u1value\u2...`).
    pub properties: String,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    /// Consume-queue tag code: hash of `TAGS`, 0 without tags.
    pub tags_code: i64,
}

/// Several messages for one queue, appended contiguously.
#[derive(Debug, Clone)]
pub struct BatchToStore {
    pub messages: Vec<MessageToStore>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// Commit-log offset of every appended record, in order.
    pub commit_log_offsets: Vec<i64>,
    /// Queue offset of the first record.
    pub queue_offset: i64,
}

/// Why an append failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("message too large: {size} bytes, max {max}")]
    MessageTooLarge { size: usize, max: usize },
    #[error("properties too large: {size} bytes")]
    PropertiesTooLarge { size: usize },
    #[error("disk full")]
    DiskFull,
    #[error("store not writable: {0}")]
    NotWritable(String),
    /// The request cannot be stored as given (bad batch, bad topic for the store).
    #[error("{0}")]
    Illegal(String),
    #[error("store shut down")]
    ShutDown,
    #[error("store i/o error: {0}")]
    Io(String),
}

/// `GetMessageStatus` of Java's store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    Found,
    NoMatchedMessage,
    MessageWasRemoving,
    OffsetFoundNull,
    OffsetOverflowBadly,
    OffsetOverflowOne,
    OffsetTooSmall,
    NoMatchedLogicQueue,
    NoMessageInQueue,
}

#[derive(Debug, Clone)]
pub struct GetResult {
    pub status: GetStatus,
    /// Stored records, each exactly as in the commit log.
    pub messages: Vec<Bytes>,
    pub next_begin_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
}

pub type ArrivalListener = Arc<dyn Fn(&str, i32, i64) + Send + Sync>;

/// What the broker needs from a message store.
pub trait Store: Send + Sync + 'static {
    fn put(&self, msg: &MessageToStore) -> Result<PutResult, StoreError>;
    fn put_batch(&self, batch: &BatchToStore) -> Result<PutResult, StoreError>;
    /// Reads up to `max_msgs` records / `max_bytes` from a queue, keeping
    /// those whose tag code `filter` accepts.
    fn get_messages(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max_msgs: i32,
        max_bytes: i32,
        filter: &dyn Fn(i64) -> bool,
    ) -> GetResult;
    fn max_offset(&self, topic: &str, queue_id: i32) -> i64;
    fn min_offset(&self, topic: &str, queue_id: i32) -> i64;
    /// Queue offset of the first message stored at or after `timestamp` (ms).
    fn offset_by_time(&self, topic: &str, queue_id: i32, timestamp: i64) -> i64;
    /// Store time of the queue's first message, `None` if empty.
    fn earliest_store_time(&self, topic: &str, queue_id: i32) -> Option<i64>;
    /// Store time of the message at a queue offset.
    fn store_time_at(&self, topic: &str, queue_id: i32, offset: i64) -> Option<i64>;
    /// The record at a commit-log offset.
    fn message_at(&self, commit_log_offset: i64) -> Option<Bytes>;
    /// Called after each record is dispatched to its consume queue, with the
    /// topic, queue id and the queue's new max offset.
    fn set_arrival_listener(&self, listener: ArrivalListener);
    fn commit_log_min_offset(&self) -> i64;
    fn commit_log_max_offset(&self) -> i64;
    /// Earliest store time over the whole commit log, -1 if empty.
    fn earliest_message_time(&self) -> i64;
    /// Fraction of the store disk in use (0.0..=1.0).
    fn disk_used_ratio(&self) -> f64;
    /// Drops a topic's consume queues.
    fn delete_topic(&self, topic: &str);
    fn shutdown(&self);
}
