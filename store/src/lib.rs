//! A RocketMQ-compatible message store whose files are laid out and encoded
//! exactly like Java's `DefaultMessageStore` (see `store/mod.rs` for the
//! directory layout, `record/mod.rs` for the record bytes).
//!
//! * [`MessageStore`]: open/recover, put (single and batch), get by queue
//!   offset, offsets and times, view by commit-log offset, shutdown.
//! * [`record`]: stored record encode/decode/validate, batch bodies, Java's
//!   string hash (tags code).
//! * [`properties`]: the `name\x01value\x02` properties string and every
//!   property name.
//! * [`msgid`]: offset message ids and unique ids.
//!
//! These three are the message model's one home: the broker uses them.
//!
//! No network code. `unsafe` lives only in the private `mmap` module.

mod checkpoint;
mod commitlog;
mod config;
mod consumequeue;
pub mod epoch;
mod error;
mod files;
mod index;
mod mmap;
pub mod msgid;
mod offset;
pub mod properties;
pub mod record;
pub mod replicated;
pub mod replication;
mod store;

pub use config::{FlushDiskType, StoreConfig, DEFAULT_MESSAGE_DELAY_LEVEL};
pub use epoch::{EpochEntry, EpochFile, EpochList, EpochRange};
pub use error::StoreError;
pub use index::{build_key, index_key_hash, QueryResult, MAX_MSGS_NUM_BATCH};
pub use msgid::{create_offset_message_id, decode_offset_message_id, new_uniq_id};
pub use offset::{CommitLogOffset, QueueOffset};
pub use record::{java_string_hash, tags_hash_code, StoredMessage};
pub use replicated::{AppendOutcome, PendingAppend, ReplicatedAppendError, ReplicatedLog};
pub use store::{
    ArrivalListener, BatchToStore, ColdReadHook, GetResult, GetStatus, MessageStore,
    MessageToStore, PendingPut, PutResult, PutStatus, ReadLimitListener, RetentionReport,
    SCHEDULE_TOPIC,
};
