//! The binary (ROCKETMQ) header.

use bytes::{Buf, BufMut, Bytes};

use crate::code::LanguageCode;
use crate::command::{ExtFields, RemotingCommand, SerializeType};
use crate::error::RemotingError;

// -------------------------------------------------------------- binary header
//
// off  size  field
// 0    2     code        i16
// 2    1     language    u8
// 3    2     version     i16
// 5    4     opaque      i32
// 9    4     flag        i32
// 13   4     remark len  i32, then remark bytes
// ..   4     ext len     i32 (bytes), then pairs: key len i16 + key, value len i32 + value

pub(super) fn encode_binary_header(cmd: &RemotingCommand) -> Vec<u8> {
    let mut ext = Vec::new();
    if let Some(fields) = &cmd.ext_fields {
        for (k, v) in fields {
            ext.put_i16(k.len() as i16);
            ext.put_slice(k.as_bytes());
            ext.put_i32(v.len() as i32);
            ext.put_slice(v.as_bytes());
        }
    }
    let remark = cmd.remark.as_deref().unwrap_or("");
    let mut out = Vec::with_capacity(21 + remark.len() + ext.len());
    out.put_i16(cmd.code as i16);
    out.put_u8(cmd.language.as_byte());
    out.put_i16(cmd.version as i16);
    out.put_i32(cmd.opaque);
    out.put_i32(cmd.flag);
    out.put_i32(remark.len() as i32);
    out.put_slice(remark.as_bytes());
    out.put_i32(ext.len() as i32);
    out.put_slice(&ext);
    out
}

pub(super) fn decode_binary_header(header: &[u8]) -> Result<RemotingCommand, RemotingError> {
    let mut buf = header;
    let need = |buf: &[u8], n: usize, what: &str| {
        if buf.len() < n {
            Err(RemotingError::malformed(format!(
                "binary header truncated in {what}"
            )))
        } else {
            Ok(())
        }
    };
    need(buf, 17, "fixed fields")?;
    let code = buf.get_i16() as i32;
    let language = LanguageCode::from_byte(buf.get_u8());
    let version = buf.get_i16() as i32;
    let opaque = buf.get_i32();
    let flag = buf.get_i32();
    let remark = read_str(&mut buf, 4, header.len(), "remark")?;
    need(buf, 4, "ext length")?;
    let ext_len = buf.get_i32();
    let ext_fields = if ext_len > 0 {
        let ext_len = ext_len as usize;
        if ext_len > buf.len() {
            return Err(RemotingError::malformed(format!(
                "ext length {ext_len} exceeds the header"
            )));
        }
        let (mut pairs, _) = buf.split_at(ext_len);
        let mut fields = ExtFields::new();
        while !pairs.is_empty() {
            let key = read_str(&mut pairs, 2, header.len(), "ext key")?;
            let value = read_str(&mut pairs, 4, header.len(), "ext value")?;
            // Java's readStr turns empty strings into null; null pairs vanish.
            if let (Some(k), Some(v)) = (key, value) {
                fields.insert(k, v);
            }
        }
        Some(fields)
    } else {
        None
    };
    Ok(RemotingCommand {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext_fields,
        body: Bytes::new(),
        serialize_type: SerializeType::RocketMq,
    })
}

/// A length-prefixed UTF-8 string; length 0 reads as `None` (Java `readStr`).
fn read_str(
    buf: &mut &[u8],
    len_size: usize,
    limit: usize,
    what: &str,
) -> Result<Option<String>, RemotingError> {
    if buf.len() < len_size {
        return Err(RemotingError::malformed(format!(
            "binary header truncated in {what} length"
        )));
    }
    let len = if len_size == 2 {
        buf.get_i16() as i64
    } else {
        buf.get_i32() as i64
    };
    if len < 0 || len as usize > limit || len as usize > buf.len() {
        return Err(RemotingError::malformed(format!(
            "{what} length {len} exceeds the header"
        )));
    }
    if len == 0 {
        return Ok(None);
    }
    let (s, rest) = buf.split_at(len as usize);
    *buf = rest;
    String::from_utf8(s.to_vec())
        .map(Some)
        .map_err(|_| RemotingError::malformed(format!("{what} is not UTF-8")))
}
