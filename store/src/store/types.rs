//! The store's public value types: what a put takes and returns, what a
//! get returns, what retention reports, and the arrival listener.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use smallvec::SmallVec;

use crate::msgid::create_offset_message_id;
use crate::offset::{CommitLogOffset, QueueOffset};

/// `TopicValidator.RMQ_SYS_SCHEDULE_TOPIC`: its consume-queue tags slot holds
/// the delivery time.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";

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
    /// Batch encoding (docs/protocol/messages.md §6).
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
    /// Stored, but the replicas the put waited for did not acknowledge it
    /// in time (Java FLUSH_SLAVE_TIMEOUT; see [`crate::replication`]).
    FlushSlaveTimeout,
    /// Stored, with no slave in reach to wait for (4.x SYNC_MASTER, Java
    /// SLAVE_NOT_AVAILABLE).
    SlaveNotAvailable,
}

/// What one retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub commit_log_files: usize,
    pub consume_queue_files: usize,
    pub index_files: usize,
    /// The commit log's start after the pass (-1 when empty).
    pub commit_log_min_offset: CommitLogOffset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    pub status: PutStatus,
    /// Commit-log offset of the first record.
    pub commit_log_offset: CommitLogOffset,
    /// Queue offset of the first record; the rest follow consecutively.
    pub queue_offset: QueueOffset,
    /// Commit-log offset of every record, in order (inline for one record:
    /// no allocation for a single send).
    pub commit_log_offsets: SmallVec<[CommitLogOffset; 1]>,
    pub store_timestamp: i64,
    pub count: usize,
    /// Bytes appended (all records).
    pub wrote_bytes: usize,
    /// Every record's store host, for [`PutResult::msg_ids`].
    pub(super) store_hosts: SmallVec<[SocketAddr; 1]>,
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
        Some(create_offset_message_id(
            *self.store_hosts.get(i)?,
            offset.get(),
        ))
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
    pub next_begin_offset: QueueOffset,
    pub min_offset: QueueOffset,
    pub max_offset: QueueOffset,
    /// The last record examined lies further behind the commit log's end
    /// than `accessMessageInMemoryMaxRatio` of memory (Java
    /// `isSuggestPullingFromSlave`): the consumer is slow and a slave could
    /// serve it.
    pub suggest_pulling_from_slave: bool,
}

impl GetResult {
    pub fn buffer_total_size(&self) -> usize {
        self.messages.iter().map(Bytes::len).sum()
    }
}

/// Called after each dispatch with (topic, queue id, new max offset).
pub type ArrivalListener = Arc<dyn Fn(&str, i32, QueueOffset) + Send + Sync>;

/// Told the new read limit (`None`: lifted) when it rises; see
/// `MessageStore::set_read_limit_listener`.
pub type ReadLimitListener = Arc<dyn Fn(Option<CommitLogOffset>) + Send + Sync>;
