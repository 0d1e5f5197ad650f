//! Frame codec: bytes <-> [`RemotingCommand`], no I/O.
//!
//! ```text
//! 0      4                 5           8            8+H
//! +------+-----------------+-----------+------------+--------+
//! | len  | serialize type  | header    | header     | body   |
//! | i32  | u8              | len (u24) | (H bytes)  |        |
//! +------+-----------------+-----------+------------+--------+
//! len = 4 + H + body length (the prefix does not count itself)
//! ```
//!
//! Java's `NettyDecoder` limits a frame to 16 MiB *including* the 4-byte
//! prefix and closes the connection on any violation; so do we.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde_json::Value;
use tokio_util::codec::{Decoder, Encoder};

use crate::code::LanguageCode;
use crate::command::{ExtFields, RemotingCommand, SerializeType};
use crate::error::RemotingError;

/// Java's default `com.rocketmq.remoting.frameMaxLength`, prefix included.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;
const MAX_HEADER_LEN: usize = 0xFF_FFFF;

/// The tokio-util codec for remoting frames.
#[derive(Debug, Clone)]
pub struct RemotingCodec {
    max_frame_len: usize,
}

impl Default for RemotingCodec {
    fn default() -> Self {
        RemotingCodec {
            max_frame_len: MAX_FRAME_LEN,
        }
    }
}

impl RemotingCodec {
    /// `max_frame_len` counts the 4-byte length prefix.
    pub fn with_max_frame_len(max_frame_len: usize) -> Self {
        RemotingCodec { max_frame_len }
    }
}

impl Decoder for RemotingCodec {
    type Item = RemotingCommand;
    type Error = RemotingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RemotingCommand>, RemotingError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let declared = i32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        // The length must at least cover the packed serialize-type/header-length int.
        if declared < 4 {
            return Err(RemotingError::malformed(format!("frame length {declared}")));
        }
        let frame_len = declared as usize + 4;
        if frame_len > self.max_frame_len {
            return Err(RemotingError::FrameTooLarge {
                len: frame_len,
                max: self.max_frame_len,
            });
        }
        if src.len() < frame_len {
            src.reserve(frame_len - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(frame_len);
        frame.advance(4);
        decode_frame_body(frame.freeze()).map(Some)
    }
}

/// Decodes the bytes after the length prefix: packed type/length, header, body.
pub fn decode_frame_body(mut frame: Bytes) -> Result<RemotingCommand, RemotingError> {
    if frame.len() < 4 {
        return Err(RemotingError::malformed(
            "frame shorter than its header length field",
        ));
    }
    let packed = frame.get_u32();
    let type_byte = (packed >> 24) as u8;
    let header_len = (packed & 0xFF_FFFF) as usize;
    if header_len > frame.len() {
        return Err(RemotingError::malformed(format!(
            "header length {header_len} exceeds the {} bytes left in the frame",
            frame.len()
        )));
    }
    let header = frame.split_to(header_len);
    let body = frame;
    let serialize_type = SerializeType::from_byte(type_byte)
        .ok_or(RemotingError::UnknownSerializeType(type_byte))?;
    let mut cmd = match serialize_type {
        SerializeType::Json => decode_json_header(&header)?,
        SerializeType::RocketMq => decode_binary_header(&header)?,
    };
    cmd.serialize_type = serialize_type;
    cmd.body = body;
    Ok(cmd)
}

impl Encoder<RemotingCommand> for RemotingCodec {
    type Error = RemotingError;

    fn encode(&mut self, cmd: RemotingCommand, dst: &mut BytesMut) -> Result<(), RemotingError> {
        self.encode(&cmd, dst)
    }
}

impl Encoder<&RemotingCommand> for RemotingCodec {
    type Error = RemotingError;

    fn encode(&mut self, cmd: &RemotingCommand, dst: &mut BytesMut) -> Result<(), RemotingError> {
        let header = encode_header(cmd);
        if header.len() > MAX_HEADER_LEN {
            return Err(RemotingError::FrameTooLarge {
                len: header.len(),
                max: MAX_HEADER_LEN,
            });
        }
        let frame_len = 8 + header.len() + cmd.body.len();
        if frame_len > self.max_frame_len {
            return Err(RemotingError::FrameTooLarge {
                len: frame_len,
                max: self.max_frame_len,
            });
        }
        dst.reserve(frame_len);
        dst.put_i32((frame_len - 4) as i32);
        dst.put_u32(((cmd.serialize_type.as_byte() as u32) << 24) | header.len() as u32);
        dst.put_slice(&header);
        dst.put_slice(&cmd.body);
        Ok(())
    }
}

/// Encodes one whole frame (prefix included).
pub fn encode_frame(cmd: &RemotingCommand) -> Result<BytesMut, RemotingError> {
    let mut buf = BytesMut::new();
    Encoder::<&RemotingCommand>::encode(&mut RemotingCodec::default(), cmd, &mut buf)?;
    Ok(buf)
}

/// The header bytes in the command's serialization.
pub fn encode_header(cmd: &RemotingCommand) -> Vec<u8> {
    match cmd.serialize_type {
        SerializeType::Json => encode_json_header(cmd),
        SerializeType::RocketMq => encode_binary_header(cmd),
    }
}

/// Lower-case hex, as the golden-vector files hold frames.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The logical content of a command as one JSON object: the form in which
/// the Java golden-vector program prints what Java decoded, so both sides can
/// be compared field by field.
pub fn logical_json(cmd: &RemotingCommand) -> Value {
    let ext = cmd.ext_fields.as_ref().map(|e| {
        e.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<serde_json::Map<_, _>>()
    });
    serde_json::json!({
        "code": cmd.code,
        "language": cmd.language.name(),
        "version": cmd.version,
        "opaque": cmd.opaque,
        "flag": cmd.flag,
        "remark": cmd.remark,
        "extFields": ext,
        "body": if cmd.body.is_empty() { Value::Null } else { Value::String(hex(&cmd.body)) },
    })
}

// ---------------------------------------------------------------- JSON header

/// Writes the header as fastjson does for `RemotingCommand`: compact, keys in
/// name order, null fields left out, `extFields` in map order.
fn encode_json_header(cmd: &RemotingCommand) -> Vec<u8> {
    let mut out = String::with_capacity(128 + cmd.ext_fields.as_ref().map_or(0, |e| e.len() * 32));
    out.push_str("{\"code\":");
    out.push_str(&cmd.code.to_string());
    if let Some(ext) = &cmd.ext_fields {
        out.push_str(",\"extFields\":{");
        for (i, (k, v)) in ext.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_json_string(&mut out, k);
            out.push(':');
            write_json_string(&mut out, v);
        }
        out.push('}');
    }
    out.push_str(",\"flag\":");
    out.push_str(&cmd.flag.to_string());
    out.push_str(",\"language\":\"");
    out.push_str(cmd.language.name());
    out.push_str("\",\"opaque\":");
    out.push_str(&cmd.opaque.to_string());
    if let Some(remark) = &cmd.remark {
        out.push_str(",\"remark\":");
        write_json_string(&mut out, remark);
    }
    out.push_str(",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    out.push_str(&cmd.version.to_string());
    out.push('}');
    out.into_bytes()
}

/// fastjson's escaping for double-quoted strings: short escapes for the usual
/// control characters, `\uXXXX` (upper-case hex) for the rest of C0, for
/// 0x7F–0x9F and for U+2028/U+2029; everything else as raw UTF-8.
fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn decode_json_header(header: &[u8]) -> Result<RemotingCommand, RemotingError> {
    let value: Value = serde_json::from_slice(header)
        .map_err(|e| RemotingError::malformed(format!("JSON header: {e}")))?;
    let Value::Object(map) = value else {
        return Err(RemotingError::malformed("JSON header is not an object"));
    };
    let int = |key: &str| -> Result<i32, RemotingError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => json_int(v)
                .ok_or_else(|| RemotingError::malformed(format!("JSON header field {key}: {v}"))),
        }
    };
    let language = match map.get("language") {
        Some(Value::String(name)) => LanguageCode::from_name(name).unwrap_or(LanguageCode::Other),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .map_or(LanguageCode::Other, LanguageCode::from_byte),
        _ => LanguageCode::Java,
    };
    let remark = match map.get("remark") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let ext_fields = match map.get("extFields") {
        None | Some(Value::Null) => None,
        Some(Value::Object(fields)) => Some(
            fields
                .iter()
                .filter_map(|(k, v)| json_to_ext_string(v).map(|v| (k.clone(), v)))
                .collect::<ExtFields>(),
        ),
        Some(other) => {
            return Err(RemotingError::malformed(format!(
                "extFields is not an object: {other}"
            )))
        }
    };
    Ok(RemotingCommand {
        code: int("code")?,
        language,
        version: int("version")?,
        opaque: int("opaque")?,
        flag: int("flag")?,
        remark,
        ext_fields,
        body: Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

/// Sloppy clients send numbers as strings or floats-without-fraction; accept
/// what fastjson's binding would.
fn json_int(v: &Value) -> Option<i32> {
    match v {
        Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// fastjson binds any JSON value into a `Map<String,String>` by its text.
fn json_to_ext_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

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

fn encode_binary_header(cmd: &RemotingCommand) -> Vec<u8> {
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

fn decode_binary_header(header: &[u8]) -> Result<RemotingCommand, RemotingError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RemotingCommand {
        RemotingCommand::request(310)
            .with_ext("a", "group")
            .with_ext("i", "KEYS\u{1}k\u{2}TAGS\u{1}标签\u{2}")
            .with_body(&b"hello"[..])
    }

    #[test]
    fn json_header_looks_like_fastjson() {
        let mut cmd = RemotingCommand::request(106);
        cmd.opaque = 7;
        let header = String::from_utf8(encode_json_header(&cmd)).unwrap();
        assert_eq!(
            header,
            r#"{"code":106,"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":479}"#
        );
        let h = String::from_utf8(encode_json_header(&sample())).unwrap();
        assert!(
            h.contains(r#""i":"KEYS\u0001k\u0002TAGS\u0001标签\u0002""#),
            "{h}"
        );
    }

    #[test]
    fn round_trip_both_serializations() {
        for st in [SerializeType::Json, SerializeType::RocketMq] {
            let mut cmd = sample().with_remark("r");
            cmd.serialize_type = st;
            cmd.opaque = -5;
            let mut buf = encode_frame(&cmd).unwrap();
            let decoded = RemotingCodec::default().decode(&mut buf).unwrap().unwrap();
            assert_eq!(decoded, cmd);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn partial_input_needs_more_bytes() {
        let full = encode_frame(&sample()).unwrap();
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert!(
                RemotingCodec::default()
                    .decode(&mut part)
                    .unwrap()
                    .is_none(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn oversized_and_malformed_frames_are_errors() {
        let mut codec = RemotingCodec::default();
        let mut big = BytesMut::from(&(16 * 1024 * 1024 - 3i32).to_be_bytes()[..]);
        assert!(matches!(
            codec.decode(&mut big),
            Err(RemotingError::FrameTooLarge { .. })
        ));
        // Exactly at the limit is fine (prefix counted): it just waits for bytes.
        let mut max = BytesMut::from(&(16 * 1024 * 1024 - 4i32).to_be_bytes()[..]);
        assert!(codec.decode(&mut max).unwrap().is_none());
        let mut neg = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert!(codec.decode(&mut neg).is_err());
        // header length larger than the frame
        let mut bad = BytesMut::new();
        bad.put_i32(8);
        bad.put_u32(100);
        bad.put_u32(0);
        assert!(codec.decode(&mut bad).is_err());
        // unknown serialize type
        let mut bad = BytesMut::new();
        bad.put_i32(6);
        bad.put_u32((5 << 24) | 2);
        bad.put_slice(b"{}");
        assert!(matches!(
            codec.decode(&mut bad),
            Err(RemotingError::UnknownSerializeType(5))
        ));
    }

    #[test]
    fn sloppy_json_headers_are_accepted() {
        let header = br#"{"code":"105","opaque":3,"extFields":{"topic":"T","queueId":1,"order":true,"n":null}}"#;
        let cmd = decode_json_header(header).unwrap();
        assert_eq!(cmd.code, 105);
        assert_eq!(cmd.language, LanguageCode::Java);
        assert_eq!(cmd.ext("queueId"), Some("1"));
        assert_eq!(cmd.ext("order"), Some("true"));
        assert_eq!(cmd.ext("n"), None);
        let go = br#"{"code":34,"language":"GO","version":317,"opaque":1,"flag":0,"remark":"","extFields":null}"#;
        let cmd = decode_json_header(go).unwrap();
        assert_eq!(cmd.language, LanguageCode::Go);
        assert_eq!(cmd.remark.as_deref(), Some(""));
        assert_eq!(cmd.ext_fields, None);
    }

    #[test]
    fn binary_empty_strings_read_as_null() {
        let mut cmd = RemotingCommand::request(1)
            .with_ext("k", "")
            .with_ext("x", "y")
            .with_remark("");
        cmd.serialize_type = SerializeType::RocketMq;
        let mut buf = encode_frame(&cmd).unwrap();
        let d = RemotingCodec::default().decode(&mut buf).unwrap().unwrap();
        assert_eq!(d.remark, None);
        assert_eq!(d.ext("k"), None);
        assert_eq!(d.ext("x"), Some("y"));
    }
}
