//! The stored message record (docs/protocol/messages.md §1), sans I/O: encode, decode,
//! validate. The same bytes are a commit-log record and an element of a pull
//! response body.
//!
//! ```text
//!  off  size  field                      (IPv4 hosts; IPv6 host = 20 bytes)
//!    0     4  TOTALSIZE
//!    4     4  MAGICCODE       V1 0xDAA320A7 (1-byte topic len) / V2 0xDAA320AB
//!    8     4  BODYCRC         crc32(body) & 0x7FFFFFFF
//!   12     4  QUEUEID
//!   16     4  FLAG
//!   20     8  QUEUEOFFSET     logical consume-queue index
//!   28     8  PHYSICALOFFSET  commit-log byte offset of this record
//!   36     4  SYSFLAG
//!   40     8  BORNTIMESTAMP
//!   48   8|20 BORNHOST        addr + int32 port
//!   56     8  STORETIMESTAMP  (68 with an IPv6 born host)
//!   64   8|20 STOREHOST
//!   72     4  RECONSUMETIMES
//!   76     8  PREPARED TRANSACTION OFFSET
//!   84   4+B  BODY
//!    .   1+T  TOPIC           (2+T with V2)
//!    .   2+P  PROPERTIES
//! ```
//! End of a commit-log segment: `[size = rest of file][0xCBD43194]` and
//! zeros (Java's blank filler).

mod batch;
mod encode;
mod hash;
mod scan;
mod view;

pub use batch::{decode_batch, encode_batch, BatchItem};
pub use encode::{encode_into, record_len, store_timestamp_pos, with_host_flags, RecordHeader};
pub(crate) use hash::java_hash_continue;
pub use hash::{crc32, java_string_hash, tags_hash_code};
pub use scan::{blank_marker, is_storable_topic, scan, ScanItem};
pub use view::{decode, Record, RecordView, StoredMessage};

use crate::properties;

pub const MESSAGE_MAGIC_CODE_V1: i32 = 0xDAA3_20A7_u32 as i32;
pub const MESSAGE_MAGIC_CODE_V2: i32 = 0xDAA3_20AB_u32 as i32;
pub const BLANK_MAGIC_CODE: i32 = 0xCBD4_3194_u32 as i32;
/// A record must leave room for a blank marker (size + magic) in its segment.
pub const END_FILE_MIN_BLANK_LENGTH: usize = 8;

pub const COMPRESSED_FLAG: i32 = 0x1;
pub const MULTI_TAGS_FLAG: i32 = 0x2;
pub const TRANSACTION_NOT_TYPE: i32 = 0x0;
pub const TRANSACTION_PREPARED_TYPE: i32 = 0x4;
pub const TRANSACTION_COMMIT_TYPE: i32 = 0x8;
pub const TRANSACTION_ROLLBACK_TYPE: i32 = 0xC;
pub const BORNHOST_V6_FLAG: i32 = 0x10;
pub const STOREHOSTADDRESS_V6_FLAG: i32 = 0x20;

pub const POS_QUEUE_ID: usize = 12;
pub const POS_FLAG: usize = 16;
pub const POS_QUEUE_OFFSET: usize = 20;
pub const POS_PHYSICAL_OFFSET: usize = 28;
pub const POS_SYS_FLAG: usize = 36;
pub const POS_BORN_TIMESTAMP: usize = 40;
pub const POS_BORN_HOST: usize = 48;

/// Smallest possible record: IPv4 hosts, empty body, topic and properties.
pub const MIN_RECORD_LEN: usize = 91;
/// Topics longer than this get the V2 magic (2-byte topic length), as Java's
/// `autoMessageVersionOnTopicLen`.
pub const MAX_V1_TOPIC_LEN: usize = i8::MAX as usize;

/// Why bytes are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("bad magic code {0:#010x}")]
    BadMagic(i32),
    #[error("blank end-of-file marker")]
    Blank,
    #[error("TOTALSIZE {declared} but fields add up to {actual}")]
    SizeMismatch { declared: i64, actual: i64 },
    #[error("negative length {0}")]
    NegativeLength(i64),
    #[error("body crc {stored:#x}, computed {computed:#x}")]
    BodyCrc { stored: i32, computed: i32 },
    #[error("physical offset {stored}, expected {expected}")]
    PhysicalOffset { stored: i64, expected: i64 },
    #[error("topic or properties not UTF-8")]
    BadUtf8,
    #[error("topic not usable as a directory name")]
    BadTopic,
    #[error("topic length {0} exceeds {max}", max = i16::MAX)]
    TopicTooLong(usize),
    #[error("properties length {0} exceeds {max}", max = properties::MAX_PROPERTIES_LEN)]
    PropertiesTooLong(usize),
    // Batch bodies ([`decode_batch`]); the texts are the broker's remarks.
    #[error("truncated batch record header ({0} bytes left)")]
    BatchHeader(usize),
    #[error("bad batch record size {0}")]
    BatchSize(i32),
    #[error("bad batch body length {0}")]
    BatchBodyLen(i32),
    #[error("truncated batch properties length")]
    BatchPropertiesTruncated,
    #[error("bad batch properties length {0}")]
    BatchPropertiesLen(i16),
    #[error("batch properties are not UTF-8")]
    BatchPropertiesUtf8,
}

/// The header the submodules' tests encode: every field set, IPv4 hosts.
#[cfg(test)]
fn test_header() -> RecordHeader {
    RecordHeader {
        queue_id: 3,
        flag: 7,
        queue_offset: 5,
        physical_offset: 0x1122,
        sys_flag: 0,
        born_timestamp: 0x0102_0304_0506_0708,
        born_host: "10.0.0.1:5555".parse().expect("addr"),
        store_timestamp: 0x1112_1314_1516_1718,
        store_host: "10.0.0.5:10911".parse().expect("addr"),
        reconsume_times: 2,
        prepared_transaction_offset: 9,
    }
}
