//! Decoding a record: [`decode`] into a borrowed [`RecordView`] over the
//! input, [`StoredMessage`] owning its parts (a pull response body).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;

use super::{
    crc32, properties, RecordError, RecordHeader, BLANK_MAGIC_CODE, BORNHOST_V6_FLAG,
    MESSAGE_MAGIC_CODE_V1, MESSAGE_MAGIC_CODE_V2, MIN_RECORD_LEN, STOREHOSTADDRESS_V6_FLAG,
};

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
