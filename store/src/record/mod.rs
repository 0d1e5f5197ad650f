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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;

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

/// Java `UtilAll.crc32`: CRC32 (zlib polynomial) masked to 31 bits.
pub fn crc32(data: &[u8]) -> i32 {
    (crc32fast::hash(data) & 0x7FFF_FFFF) as i32
}

/// Java `String.hashCode()`: `h = 31 * h + unit` over the UTF-16 code units,
/// wrapping. The one implementation; the tag code and the index key hash
/// are built on it.
pub fn java_string_hash(s: &str) -> i32 {
    java_hash_continue(0, s)
}

/// [`java_string_hash`] of `prefix + s` given the hash `h` of `prefix`:
/// ASCII bytes are UTF-16 code units as they are; from the first non-ASCII
/// character on, the text is hashed as UTF-16.
pub(crate) fn java_hash_continue(mut h: i32, s: &str) -> i32 {
    for (i, &c) in s.as_bytes().iter().enumerate() {
        if c >= 0x80 {
            // Everything before `i` is ASCII, so `i` is a char boundary.
            return s.get(i..).map_or(h, |rest| {
                rest.encode_utf16()
                    .fold(h, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
            });
        }
        h = h.wrapping_mul(31).wrapping_add(i32::from(c));
    }
    h
}

/// Java `String.hashCode()` of the tags, sign-extended: the consume queue's
/// tag code (docs/protocol/messages.md §3). `""` hashes to 0, as does "no tags".
pub fn tags_hash_code(tags: &str) -> i64 {
    i64::from(java_string_hash(tags))
}

fn host_len(sys_flag: i32, v6_flag: i32) -> usize {
    if sys_flag & v6_flag != 0 {
        20
    } else {
        8
    }
}

/// Offset of STORETIMESTAMP for a record with this sysFlag.
pub fn store_timestamp_pos(sys_flag: i32) -> usize {
    POS_BORN_HOST + host_len(sys_flag, BORNHOST_V6_FLAG)
}

/// sysFlag with the IPv6 host bits set from the addresses, as the Java broker
/// does before encoding.
pub fn with_host_flags(sys_flag: i32, born_host: &SocketAddr, store_host: &SocketAddr) -> i32 {
    let mut f = sys_flag & !(BORNHOST_V6_FLAG | STOREHOSTADDRESS_V6_FLAG);
    if born_host.is_ipv6() {
        f |= BORNHOST_V6_FLAG;
    }
    if store_host.is_ipv6() {
        f |= STOREHOSTADDRESS_V6_FLAG;
    }
    f
}

/// Length of a record with these field sizes (`CommitLog.calMsgLength`).
pub fn record_len(sys_flag: i32, body_len: usize, topic_len: usize, props_len: usize) -> usize {
    let topic_len_size = if topic_len > MAX_V1_TOPIC_LEN { 2 } else { 1 };
    4 + 4
        + 4
        + 4
        + 4
        + 8
        + 8
        + 4
        + 8
        + host_len(sys_flag, BORNHOST_V6_FLAG)
        + 8
        + host_len(sys_flag, STOREHOSTADDRESS_V6_FLAG)
        + 4
        + 8
        + 4
        + body_len
        + topic_len_size
        + topic_len
        + 2
        + props_len
}

/// Everything in a record except body, topic and properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub physical_offset: i64,
    /// The IPv6 host bits are recomputed from the addresses.
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
}

fn put_host(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&i32::from(addr.port()).to_be_bytes());
}

/// Append one record to `out`; returns its length. Body CRC is computed here.
pub fn encode_into(
    out: &mut Vec<u8>,
    h: &RecordHeader,
    body: &[u8],
    topic: &str,
    properties: &[u8],
) -> Result<usize, RecordError> {
    if topic.len() > i16::MAX as usize {
        return Err(RecordError::TopicTooLong(topic.len()));
    }
    if properties.len() > properties::MAX_PROPERTIES_LEN {
        return Err(RecordError::PropertiesTooLong(properties.len()));
    }
    let sys_flag = with_host_flags(h.sys_flag, &h.born_host, &h.store_host);
    let len = record_len(sys_flag, body.len(), topic.len(), properties.len());
    let v2 = topic.len() > MAX_V1_TOPIC_LEN;
    out.reserve(len);
    let start = out.len();
    out.extend_from_slice(&(len as i32).to_be_bytes());
    let magic = if v2 {
        MESSAGE_MAGIC_CODE_V2
    } else {
        MESSAGE_MAGIC_CODE_V1
    };
    out.extend_from_slice(&magic.to_be_bytes());
    out.extend_from_slice(&crc32(body).to_be_bytes());
    out.extend_from_slice(&h.queue_id.to_be_bytes());
    out.extend_from_slice(&h.flag.to_be_bytes());
    out.extend_from_slice(&h.queue_offset.to_be_bytes());
    out.extend_from_slice(&h.physical_offset.to_be_bytes());
    out.extend_from_slice(&sys_flag.to_be_bytes());
    out.extend_from_slice(&h.born_timestamp.to_be_bytes());
    put_host(out, &h.born_host);
    out.extend_from_slice(&h.store_timestamp.to_be_bytes());
    put_host(out, &h.store_host);
    out.extend_from_slice(&h.reconsume_times.to_be_bytes());
    out.extend_from_slice(&h.prepared_transaction_offset.to_be_bytes());
    out.extend_from_slice(&(body.len() as i32).to_be_bytes());
    out.extend_from_slice(body);
    if v2 {
        out.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    } else {
        out.push(topic.len() as u8);
    }
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(&(properties.len() as i16).to_be_bytes());
    out.extend_from_slice(properties);
    debug_assert_eq!(out.len() - start, len);
    Ok(len)
}

/// A decoded record: the fixed fields, and its body, topic and properties
/// as `B` and `S` — borrowed ([`RecordView`]) or owned ([`StoredMessage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<B, S> {
    pub total_size: i32,
    pub magic_code: i32,
    pub body_crc: i32,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub physical_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: B,
    pub topic: S,
    pub properties: S,
}

/// A decoded record borrowing its variable parts.
pub type RecordView<'a> = Record<&'a [u8], &'a str>;

/// An owned decoded record; the body shares the input [`Bytes`].
pub type StoredMessage = Record<Bytes, String>;

impl<B, S> Record<B, S> {
    /// The same fixed fields with other variable parts.
    fn with_parts<B2, S2>(self, body: B2, topic: S2, properties: S2) -> Record<B2, S2> {
        Record {
            total_size: self.total_size,
            magic_code: self.magic_code,
            body_crc: self.body_crc,
            queue_id: self.queue_id,
            flag: self.flag,
            queue_offset: self.queue_offset,
            physical_offset: self.physical_offset,
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp,
            born_host: self.born_host,
            store_timestamp: self.store_timestamp,
            store_host: self.store_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: self.prepared_transaction_offset,
            body,
            topic,
            properties,
        }
    }
}

impl RecordView<'_> {
    pub fn body_crc_ok(&self) -> bool {
        crc32(self.body) == self.body_crc
    }

    /// The `TAGS` property.
    pub fn tags(&self) -> Option<&str> {
        properties::get(self.properties, properties::TAGS)
    }

    pub fn header(&self) -> RecordHeader {
        RecordHeader {
            queue_id: self.queue_id,
            flag: self.flag,
            queue_offset: self.queue_offset,
            physical_offset: self.physical_offset,
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp,
            born_host: self.born_host,
            store_timestamp: self.store_timestamp,
            store_host: self.store_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: self.prepared_transaction_offset,
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self.pos.checked_add(n).ok_or(RecordError::Truncated {
            need: usize::MAX,
            have: self.buf.len(),
        })?;
        let s = self.buf.get(self.pos..end).ok_or(RecordError::Truncated {
            need: end,
            have: self.buf.len(),
        })?;
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn len(&mut self, n: i64) -> Result<&'a [u8], RecordError> {
        let n = usize::try_from(n).map_err(|_| RecordError::NegativeLength(n))?;
        self.take(n)
    }
    fn host(&mut self, v6: bool) -> Result<SocketAddr, RecordError> {
        let ip = if v6 {
            IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))
        };
        // Java writes the int port; only the low 16 bits are meaningful.
        let port = self.i32()? as u16;
        Ok(SocketAddr::new(ip, port))
    }
}

/// Decode the record at the start of `buf` (which may continue past it).
/// Checks the magic code and that TOTALSIZE equals the sum of the fields, as
/// Java's `checkMessageAndReturnSize` does; not the body CRC (see
/// [`RecordView::body_crc_ok`]). A blank marker is `Err(Blank)`.
pub fn decode(buf: &[u8]) -> Result<RecordView<'_>, RecordError> {
    let mut r = Reader { buf, pos: 0 };
    let total_size = r.i32()?;
    let magic_code = r.i32()?;
    let v2 = match magic_code {
        MESSAGE_MAGIC_CODE_V1 => false,
        MESSAGE_MAGIC_CODE_V2 => true,
        BLANK_MAGIC_CODE => return Err(RecordError::Blank),
        m => return Err(RecordError::BadMagic(m)),
    };
    if total_size < MIN_RECORD_LEN as i32 {
        return Err(RecordError::SizeMismatch {
            declared: i64::from(total_size),
            actual: MIN_RECORD_LEN as i64,
        });
    }
    // Do not read past the declared record.
    let declared = total_size as usize;
    if declared > buf.len() {
        return Err(RecordError::Truncated {
            need: declared,
            have: buf.len(),
        });
    }
    r.buf = &buf[..declared];
    let body_crc = r.i32()?;
    let queue_id = r.i32()?;
    let flag = r.i32()?;
    let queue_offset = r.i64()?;
    let physical_offset = r.i64()?;
    let sys_flag = r.i32()?;
    let born_timestamp = r.i64()?;
    let born_host = r.host(sys_flag & BORNHOST_V6_FLAG != 0)?;
    let store_timestamp = r.i64()?;
    let store_host = r.host(sys_flag & STOREHOSTADDRESS_V6_FLAG != 0)?;
    let reconsume_times = r.i32()?;
    let prepared_transaction_offset = r.i64()?;
    let mismatch = |e: RecordError| match e {
        RecordError::Truncated { need, .. } => RecordError::SizeMismatch {
            declared: i64::from(total_size),
            actual: need as i64,
        },
        e => e,
    };
    let body_len = r.i32().map_err(mismatch)?;
    let body = r.len(i64::from(body_len)).map_err(mismatch)?;
    let topic_len = if v2 {
        i64::from(r.i16().map_err(mismatch)?)
    } else {
        i64::from(r.i8().map_err(mismatch)?)
    };
    let topic = r.len(topic_len).map_err(mismatch)?;
    let props_len = r.i16().map_err(mismatch)?;
    let props = r.len(i64::from(props_len)).map_err(mismatch)?;
    if r.pos != declared {
        return Err(RecordError::SizeMismatch {
            declared: i64::from(total_size),
            actual: r.pos as i64,
        });
    }
    let topic = std::str::from_utf8(topic).map_err(|_| RecordError::BadUtf8)?;
    let properties = std::str::from_utf8(props).map_err(|_| RecordError::BadUtf8)?;
    Ok(RecordView {
        total_size,
        magic_code,
        body_crc,
        queue_id,
        flag,
        queue_offset,
        physical_offset,
        sys_flag,
        born_timestamp,
        born_host,
        store_timestamp,
        store_host,
        reconsume_times,
        prepared_transaction_offset,
        body,
        topic,
        properties,
    })
}

impl StoredMessage {
    /// Decode one record starting at `buf[0]` (see [`decode`]).
    pub fn decode(buf: &Bytes) -> Result<StoredMessage, RecordError> {
        let v = decode(buf)?;
        let body_start = v.body.as_ptr() as usize - buf.as_ptr() as usize;
        let body = buf.slice(body_start..body_start + v.body.len());
        let (topic, properties) = (v.topic.to_owned(), v.properties.to_owned());
        Ok(v.with_parts(body, topic, properties))
    }

    /// Decode concatenated records (a pull response body).
    pub fn decode_all(buf: &Bytes) -> Result<Vec<StoredMessage>, RecordError> {
        let mut out = Vec::new();
        let mut rest = buf.clone();
        while !rest.is_empty() {
            let m = StoredMessage::decode(&rest)?;
            rest = rest.slice(m.total_size as usize..);
            out.push(m);
        }
        Ok(out)
    }

    pub fn tags(&self) -> Option<&str> {
        properties::get(&self.properties, properties::TAGS)
    }

    /// The offset message id (docs/protocol/messages.md §5.1).
    pub fn offset_msg_id(&self) -> String {
        crate::msgid::create_offset_message_id(self.store_host, self.physical_offset)
    }
}

/// What the recovery scan finds at a position of a commit-log segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanItem<'a> {
    /// A valid record (magic, size, body CRC, physical offset all check).
    Record(RecordView<'a>),
    /// The blank marker filling the rest of the segment.
    Blank,
    /// Zero TOTALSIZE: nothing was ever written here.
    End,
    /// Anything else: the valid log ends here.
    Invalid(RecordError),
}

/// Check the bytes at the start of `rest` (the remainder of a segment) for the
/// record expected at commit-log offset `physical_offset`. Stricter than Java:
/// the physical offset must match, the topic must be storable and the blank
/// marker must span exactly the rest of the segment, so stale bytes beyond a
/// truncation never pass. Topic and properties bytes have no checksum in this
/// format: damage there (other than to their lengths) goes unnoticed, as in
/// Java.
pub fn scan(rest: &[u8], physical_offset: i64, check_crc: bool) -> ScanItem<'_> {
    if rest.len() < 8 {
        return if rest.iter().all(|b| *b == 0) {
            ScanItem::End
        } else {
            ScanItem::Invalid(RecordError::Truncated {
                need: 8,
                have: rest.len(),
            })
        };
    }
    let size = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let magic = i32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if size == 0 && magic == 0 {
        return ScanItem::End;
    }
    if magic == BLANK_MAGIC_CODE {
        return if i64::from(size) == rest.len() as i64 {
            ScanItem::Blank
        } else {
            ScanItem::Invalid(RecordError::SizeMismatch {
                declared: i64::from(size),
                actual: rest.len() as i64,
            })
        };
    }
    match decode(rest) {
        Err(e) => ScanItem::Invalid(e),
        Ok(v) if v.physical_offset != physical_offset => {
            ScanItem::Invalid(RecordError::PhysicalOffset {
                stored: v.physical_offset,
                expected: physical_offset,
            })
        }
        Ok(v) if !is_storable_topic(v.topic) => ScanItem::Invalid(RecordError::BadTopic),
        Ok(v) if check_crc && !v.body_crc_ok() => ScanItem::Invalid(RecordError::BodyCrc {
            stored: v.body_crc,
            computed: crc32(v.body),
        }),
        Ok(v) => ScanItem::Record(v),
    }
}

/// Whether a topic can name a consume-queue directory: not empty, not `.` or
/// `..`, no `/`, `\\` or NUL. Java's `TopicValidator` is stricter still.
pub fn is_storable_topic(topic: &str) -> bool {
    !(topic.is_empty() || topic == "." || topic == ".." || topic.contains(['/', '\\', '\0']))
}

/// The blank end-of-segment marker for `len` remaining bytes.
pub fn blank_marker(len: usize) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&(len as i32).to_be_bytes());
    b[4..].copy_from_slice(&BLANK_MAGIC_CODE.to_be_bytes());
    b
}

/// One message of a batch body (docs/protocol/messages.md §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem<'a> {
    pub flag: i32,
    pub body: &'a [u8],
    /// Valid UTF-8 ([`decode_batch`] checks it).
    pub properties: &'a [u8],
}

/// Split a SEND_BATCH_MESSAGE body, one item per record:
///
/// ```text
/// int32 totalSize | int32 magic (0) | int32 bodyCrc (0) | int32 flag
/// int32 bodyLen | body | int16 propLen | properties
/// ```
///
/// Each record must fit in the rest of `buf` and hold its body and
/// properties within its `totalSize`; bytes past the properties, up to
/// `totalSize`, are skipped. Magic and CRC are not checked (Java does not
/// either); properties must be UTF-8. The first bad record is the error.
pub fn decode_batch(buf: &[u8]) -> Result<Vec<BatchItem<'_>>, RecordError> {
    let mut rest = buf;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 20 {
            return Err(RecordError::BatchHeader(rest.len()));
        }
        let total = be_i32(rest, 0);
        if total < 22 || total as usize > rest.len() {
            return Err(RecordError::BatchSize(total));
        }
        let (rec, next) = rest.split_at(total as usize);
        rest = next;
        let flag = be_i32(rec, 12);
        let body_len = be_i32(rec, 16);
        let rec = &rec[20..];
        if body_len < 0 || body_len as usize > rec.len() {
            return Err(RecordError::BatchBodyLen(body_len));
        }
        let (body, rec) = rec.split_at(body_len as usize);
        if rec.len() < 2 {
            return Err(RecordError::BatchPropertiesTruncated);
        }
        let props_len = i16::from_be_bytes([rec[0], rec[1]]);
        let rec = &rec[2..];
        if props_len < 0 || props_len as usize > rec.len() {
            return Err(RecordError::BatchPropertiesLen(props_len));
        }
        let properties = &rec[..props_len as usize];
        if std::str::from_utf8(properties).is_err() {
            return Err(RecordError::BatchPropertiesUtf8);
        }
        out.push(BatchItem {
            flag,
            body,
            properties,
        });
    }
    Ok(out)
}

fn be_i32(b: &[u8], pos: usize) -> i32 {
    i32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]])
}

/// Encode a batch body (what producers send); used by tests and tools.
pub fn encode_batch<P: AsRef<[u8]>, B: AsRef<[u8]>>(items: &[(i32, B, P)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (flag, body, props) in items {
        let (body, props) = (body.as_ref(), props.as_ref());
        let total = 4 + 4 + 4 + 4 + 4 + body.len() + 2 + props.len();
        out.extend_from_slice(&(total as i32).to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&flag.to_be_bytes());
        out.extend_from_slice(&(body.len() as i32).to_be_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&(props.len() as i16).to_be_bytes());
        out.extend_from_slice(props);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RecordHeader {
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

    #[test]
    fn tags_hash_matches_java() {
        assert_eq!(tags_hash_code(""), 0);
        // Java: "TagA".hashCode() == 84*31^3 + 97*31^2 + 103*31 + 65.
        assert_eq!(tags_hash_code("TagA"), 2_598_919);
        assert_eq!(tags_hash_code("a"), 97);
        // "hello world".hashCode() = 1794106052; "polygenelubricants" = MIN_VALUE.
        assert_eq!(tags_hash_code("hello world"), 1_794_106_052);
        assert_eq!(tags_hash_code("polygenelubricants"), i64::from(i32::MIN));
        // "Aa".hashCode() == "BB".hashCode() == 2112.
        assert_eq!(tags_hash_code("Aa"), 2112);
        assert_eq!(tags_hash_code("BB"), 2112);
        // Non-BMP char: UTF-16 surrogates 0xD83D 0xDE00.
        assert_eq!(tags_hash_code("\u{1F600}"), 0xD83D * 31 + 0xDE00);
        // UTF-16 units, not bytes: "中".hashCode() == 20013.
        assert_eq!(tags_hash_code("中"), 20013);
        assert_eq!(java_string_hash("中"), 20013);
    }

    #[test]
    fn encode_matches_hand_computed_bytes() {
        let mut out = Vec::new();
        let len = encode_into(&mut out, &header(), b"hi", "T", b"A\x01b\x02").expect("encode");
        assert_eq!(len, 91 + 2 + 1 + 4);
        let mut want: Vec<u8> = Vec::new();
        want.extend_from_slice(&98i32.to_be_bytes());
        want.extend_from_slice(&[0xDA, 0xA3, 0x20, 0xA7]);
        want.extend_from_slice(&crc32(b"hi").to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 3]); // queue id
        want.extend_from_slice(&[0, 0, 0, 7]); // flag
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 5]); // queue offset
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x11, 0x22]); // physical
        want.extend_from_slice(&[0, 0, 0, 0]); // sysflag
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // born ts
        want.extend_from_slice(&[10, 0, 0, 1, 0, 0, 0x15, 0xB3]); // born host
        want.extend_from_slice(&[0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]);
        want.extend_from_slice(&[10, 0, 0, 5, 0, 0, 0x2A, 0x9F]); // store host
        want.extend_from_slice(&[0, 0, 0, 2]); // reconsume
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9]); // prepared tx
        want.extend_from_slice(&[0, 0, 0, 2, b'h', b'i']);
        want.extend_from_slice(&[1, b'T']);
        want.extend_from_slice(&[0, 4, b'A', 1, b'b', 2]);
        assert_eq!(out, want);
        // crc32("hi") = 0xD8932AAC, masked = 0x58932AAC
        assert_eq!(crc32(b"hi"), 0x5893_2AAC);

        let v = decode(&out).expect("decode");
        assert_eq!(v.header(), header());
        assert_eq!(v.body, b"hi");
        assert_eq!(v.topic, "T");
        assert_eq!(v.properties, "A\u{1}b\u{2}");
        assert!(v.body_crc_ok());
        assert_eq!(store_timestamp_pos(v.sys_flag), 56);
        assert!(matches!(scan(&out, 0x1122, true), ScanItem::Record(_)));
        assert!(matches!(
            scan(&out, 0, true),
            ScanItem::Invalid(RecordError::PhysicalOffset { .. })
        ));
    }

    #[test]
    fn ipv6_hosts_and_v2_topic() {
        let mut h = header();
        h.born_host = "[::1]:1234".parse().expect("addr");
        h.store_host = "[fe80::1]:10911".parse().expect("addr");
        let topic = "t".repeat(200);
        let mut out = Vec::new();
        let len = encode_into(&mut out, &h, b"x", &topic, b"").expect("encode");
        assert_eq!(len, 91 + 12 + 12 + 1 + 1 + 200);
        let v = decode(&out).expect("decode");
        assert_eq!(v.magic_code, MESSAGE_MAGIC_CODE_V2);
        assert_eq!(v.sys_flag, BORNHOST_V6_FLAG | STOREHOSTADDRESS_V6_FLAG);
        assert_eq!(v.born_host, h.born_host);
        assert_eq!(v.store_host, h.store_host);
        assert_eq!(v.topic, topic);
        assert_eq!(store_timestamp_pos(v.sys_flag), 68);
        assert_eq!(
            &out[68..76],
            &h.store_timestamp.to_be_bytes(),
            "store timestamp at 68 with an IPv6 born host"
        );
    }

    #[test]
    fn scan_rejects_damage() {
        let mut out = Vec::new();
        encode_into(&mut out, &header(), b"body", "T", b"").expect("encode");
        let phys = header().physical_offset;
        let mut bad = out.clone();
        bad[90] ^= 1; // body byte
        assert!(matches!(
            scan(&bad, phys, true),
            ScanItem::Invalid(RecordError::BodyCrc { .. })
        ));
        let mut bad = out.clone();
        bad[3] += 1; // total size
        assert!(matches!(scan(&bad, phys, true), ScanItem::Invalid(_)));
        assert!(matches!(
            scan(&out[..out.len() - 1], phys, true),
            ScanItem::Invalid(_)
        ));
        assert_eq!(scan(&[0u8; 100], phys, true), ScanItem::End);
        let mut blank = vec![0u8; 40];
        blank[..8].copy_from_slice(&blank_marker(40));
        assert_eq!(scan(&blank, phys, true), ScanItem::Blank);
        assert!(matches!(
            scan(&blank[..39], phys, true),
            ScanItem::Invalid(_)
        ));
    }

    #[test]
    fn batch_round_trip() {
        let body = encode_batch(&[
            (1, &b"a"[..], &b"K\x01v\x02"[..]),
            (2, &b"bc"[..], &b""[..]),
        ]);
        let items = decode_batch(&body).expect("batch");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].flag, 1);
        assert_eq!(items[0].body, b"a");
        assert_eq!(items[0].properties, b"K\x01v\x02");
        assert_eq!(items[1].body, b"bc");
        assert!(decode_batch(&body[..body.len() - 1]).is_err());
    }

    #[test]
    fn batch_round_trip_and_junk() {
        let entries: [(i32, &[u8], &[u8]); 2] = [
            (1, b"hello", "UNIQ_KEY\u{1}X\u{2}".as_bytes()),
            (0, b"", b""),
        ];
        let bytes = encode_batch(&entries);
        let want = |items: &[(i32, &'static [u8], &'static [u8])]| {
            items
                .iter()
                .map(|&(flag, body, properties)| BatchItem {
                    flag,
                    body,
                    properties,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(decode_batch(&bytes).expect("batch"), want(&entries));
        let first_len = encode_batch(&entries[..1]).len();
        for cut in 1..bytes.len() {
            let r = decode_batch(&bytes[..cut]);
            if cut == first_len {
                assert_eq!(r.expect("first record"), want(&entries[..1]));
            } else {
                assert!(r.is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn batch_junk_is_named() {
        let one = encode_batch(&[(0, &b"ab"[..], &b"K\x01v\x02"[..])]);
        assert_eq!(decode_batch(&one[..19]), Err(RecordError::BatchHeader(19)));
        let mut bad = one.clone();
        bad[..4].copy_from_slice(&21i32.to_be_bytes());
        assert_eq!(decode_batch(&bad), Err(RecordError::BatchSize(21)));
        let mut bad = one.clone();
        bad[16..20].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(decode_batch(&bad), Err(RecordError::BatchBodyLen(-1)));
        let mut bad = one.clone();
        bad[22..24].copy_from_slice(&9i16.to_be_bytes());
        assert_eq!(decode_batch(&bad), Err(RecordError::BatchPropertiesLen(9)));
        let mut bad = one.clone();
        bad[24] = 0xFF;
        assert_eq!(decode_batch(&bad), Err(RecordError::BatchPropertiesUtf8));
        // Bytes past the properties but inside totalSize are skipped.
        let mut padded = one.clone();
        padded[..4].copy_from_slice(&(one.len() as i32 + 3).to_be_bytes());
        padded.extend_from_slice(&[9, 9, 9]);
        let items = decode_batch(&padded).expect("padded");
        assert_eq!((items.len(), items[0].body), (1, &b"ab"[..]));
        assert_eq!(
            RecordError::BatchSize(21).to_string(),
            "bad batch record size 21"
        );
    }
}
