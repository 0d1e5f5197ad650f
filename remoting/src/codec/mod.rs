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

mod binary;
mod json;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde_json::Value;
use tokio_util::codec::{Decoder, Encoder};

use crate::command::{RemotingCommand, SerializeType};
use crate::error::RemotingError;
use binary::{decode_binary_header, encode_binary_header};
use json::{decode_json_header, encode_json_header, write_json_header};

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

    /// Writes the header straight into `dst` and patches the lengths in
    /// afterwards; on error `dst` is left as it was.
    fn encode(&mut self, cmd: &RemotingCommand, dst: &mut BytesMut) -> Result<(), RemotingError> {
        let start = dst.len();
        dst.reserve(8 + 256 + cmd.body.len());
        dst.put_u64(0);
        write_header(cmd, dst);
        let header_len = dst.len() - start - 8;
        if header_len > MAX_HEADER_LEN {
            dst.truncate(start);
            return Err(RemotingError::FrameTooLarge {
                len: header_len,
                max: MAX_HEADER_LEN,
            });
        }
        let frame_len = 8 + header_len + cmd.body.len();
        if frame_len > self.max_frame_len {
            dst.truncate(start);
            return Err(RemotingError::FrameTooLarge {
                len: frame_len,
                max: self.max_frame_len,
            });
        }
        dst.put_slice(&cmd.body);
        let packed = ((cmd.serialize_type.as_byte() as u32) << 24) | header_len as u32;
        dst[start..start + 4].copy_from_slice(&((frame_len - 4) as i32).to_be_bytes());
        dst[start + 4..start + 8].copy_from_slice(&packed.to_be_bytes());
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

/// Appends the header bytes in the command's serialization.
fn write_header(cmd: &RemotingCommand, out: &mut impl BufMut) {
    match cmd.serialize_type {
        SerializeType::Json => write_json_header(cmd, out),
        SerializeType::RocketMq => out.put_slice(&encode_binary_header(cmd)),
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
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
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

    /// A header with thousands of `extFields` (JSON and binary) decodes to
    /// the same command, with hashed look-ups past the first few dozen.
    #[test]
    fn headers_with_many_ext_fields_decode() {
        let mut cmd = RemotingCommand::request(310);
        for i in 0..5_000 {
            cmd.set_ext(format!("key{i}"), format!("value{i}"));
        }
        cmd.set_ext("a", "letter");
        for binary in [false, true] {
            if binary {
                cmd.serialize_type = SerializeType::RocketMq;
            }
            let mut buf = encode_frame(&cmd).unwrap();
            let d = RemotingCodec::default().decode(&mut buf).unwrap().unwrap();
            assert_eq!(d, cmd);
            assert_eq!(d.ext("key4999"), Some("value4999"));
            assert_eq!(d.ext("a"), Some("letter"));
        }
    }
}
