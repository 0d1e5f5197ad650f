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

use std::fmt;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use tokio_util::codec::{Decoder, Encoder};

use crate::code::LanguageCode;
use crate::command::{ExtFields, Field, RemotingCommand, SerializeType};
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

// ---------------------------------------------------------------- JSON header

fn encode_json_header(cmd: &RemotingCommand) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_json_header(cmd, &mut out);
    out
}

/// Writes the header as fastjson does for `RemotingCommand`: compact, keys in
/// name order, null fields left out, `extFields` in map order.
fn write_json_header(cmd: &RemotingCommand, out: &mut impl BufMut) {
    out.put_slice(b"{\"code\":");
    put_int(out, cmd.code);
    if let Some(ext) = &cmd.ext_fields {
        out.put_slice(b",\"extFields\":{");
        for (i, (k, v)) in ext.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            write_json_string(out, k);
            out.put_u8(b':');
            write_json_string(out, v);
        }
        out.put_u8(b'}');
    }
    out.put_slice(b",\"flag\":");
    put_int(out, cmd.flag);
    out.put_slice(b",\"language\":\"");
    out.put_slice(cmd.language.name().as_bytes());
    out.put_slice(b"\",\"opaque\":");
    put_int(out, cmd.opaque);
    if let Some(remark) = &cmd.remark {
        out.put_slice(b",\"remark\":");
        write_json_string(out, remark);
    }
    out.put_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    put_int(out, cmd.version);
    out.put_u8(b'}');
}

/// An `i32` in decimal, without going through `fmt`.
fn put_int(out: &mut impl BufMut, n: i32) {
    let mut digits = [0u8; 11];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        at -= 1;
        digits[at] = b'-';
    }
    out.put_slice(&digits[at..]);
}

/// fastjson's escaping for double-quoted strings: short escapes for the usual
/// control characters, `\uXXXX` (upper-case hex) for the rest of C0, for
/// 0x7F–0x9F and for U+2028/U+2029; everything else as raw UTF-8.
fn write_json_string(out: &mut impl BufMut, s: &str) {
    out.put_u8(b'"');
    // Printable ASCII other than `"` and `\` never needs an escape: the
    // common string (keys, ids, numbers) is copied whole after a byte scan.
    let plain = s
        .bytes()
        .position(|b| !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\')
        .unwrap_or(s.len());
    if plain == s.len() {
        out.put_slice(s.as_bytes());
        out.put_u8(b'"');
        return;
    }
    // Runs of characters that need no escape are copied in one go.
    let mut run_start = 0;
    for (i, c) in s[plain..].char_indices().map(|(i, c)| (i + plain, c)) {
        let short = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\u{8}' => "\\b",
            '\t' => "\\t",
            '\n' => "\\n",
            '\u{c}' => "\\f",
            '\r' => "\\r",
            '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' => "",
            _ => continue,
        };
        out.put_slice(&s.as_bytes()[run_start..i]);
        if short.is_empty() {
            out.put_slice(format!("\\u{:04X}", c as u32).as_bytes());
        } else {
            out.put_slice(short.as_bytes());
        }
        run_start = i + c.len_utf8();
    }
    out.put_slice(&s.as_bytes()[run_start..]);
    out.put_u8(b'"');
}

fn decode_json_header(header: &[u8]) -> Result<RemotingCommand, RemotingError> {
    if let Some(cmd) = fast_json::decode(header) {
        return Ok(cmd);
    }
    decode_json_header_serde(header)
}

/// The general JSON header decoder (any valid JSON, fastjson's leniency).
fn decode_json_header_serde(header: &[u8]) -> Result<RemotingCommand, RemotingError> {
    let fields: JsonHeaderFields = serde_json::from_slice(header)
        .map_err(|e| RemotingError::malformed(format!("JSON header: {e}")))?;
    let int = |key: &str, value: &Option<Value>| -> Result<i32, RemotingError> {
        match value {
            None | Some(Value::Null) => Ok(0),
            Some(v) => json_int(v)
                .ok_or_else(|| RemotingError::malformed(format!("JSON header field {key}: {v}"))),
        }
    };
    let language = match &fields.language {
        Some(Value::String(name)) => LanguageCode::from_name(name).unwrap_or(LanguageCode::Other),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .map_or(LanguageCode::Other, LanguageCode::from_byte),
        _ => LanguageCode::Java,
    };
    let remark = match fields.remark {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    };
    let ext_fields = match fields.ext_fields {
        None | Some(ExtFieldsValue::Null) => None,
        Some(ExtFieldsValue::Object(fields)) => Some(fields),
        Some(ExtFieldsValue::Other(other)) => {
            return Err(RemotingError::malformed(format!(
                "extFields is not an object: {other}"
            )))
        }
    };
    Ok(RemotingCommand {
        code: int("code", &fields.code)?,
        language,
        version: int("version", &fields.version)?,
        opaque: int("opaque", &fields.opaque)?,
        flag: int("flag", &fields.flag)?,
        remark,
        ext_fields,
        body: Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

/// The top-level fields of a JSON header, bound in one pass without building
/// a whole `Value` tree: known keys keep their raw value (the last occurrence
/// wins, as in a map), `extFields` goes straight into [`ExtFields`], unknown
/// keys are parsed (so they are validated exactly as before) and dropped.
#[derive(Default)]
struct JsonHeaderFields {
    code: Option<Value>,
    language: Option<Value>,
    version: Option<Value>,
    opaque: Option<Value>,
    flag: Option<Value>,
    remark: Option<Value>,
    ext_fields: Option<ExtFieldsValue>,
}

/// A top-level key of the JSON header, matched without allocating.
enum HeaderKey {
    Code,
    Language,
    Version,
    Opaque,
    Flag,
    Remark,
    ExtFields,
    Other,
}

impl<'de> Deserialize<'de> for HeaderKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = HeaderKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a header field name")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<HeaderKey, E> {
                Ok(match key {
                    "code" => HeaderKey::Code,
                    "language" => HeaderKey::Language,
                    "version" => HeaderKey::Version,
                    "opaque" => HeaderKey::Opaque,
                    "flag" => HeaderKey::Flag,
                    "remark" => HeaderKey::Remark,
                    "extFields" => HeaderKey::ExtFields,
                    _ => HeaderKey::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for JsonHeaderFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HeaderVisitor;
        impl<'de> Visitor<'de> for HeaderVisitor {
            type Value = JsonHeaderFields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object header")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsonHeaderFields, A::Error> {
                let mut h = JsonHeaderFields::default();
                while let Some(key) = map.next_key::<HeaderKey>()? {
                    let slot = match key {
                        HeaderKey::Code => &mut h.code,
                        HeaderKey::Language => &mut h.language,
                        HeaderKey::Version => &mut h.version,
                        HeaderKey::Opaque => &mut h.opaque,
                        HeaderKey::Flag => &mut h.flag,
                        HeaderKey::Remark => &mut h.remark,
                        HeaderKey::ExtFields => {
                            h.ext_fields = Some(map.next_value()?);
                            continue;
                        }
                        HeaderKey::Other => {
                            map.next_value::<Value>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value()?);
                }
                Ok(h)
            }
        }
        d.deserialize_map(HeaderVisitor)
    }
}

/// The value of `extFields`: an object bound as fastjson binds it into a
/// `Map<String,String>`, or anything else (kept for the error message).
enum ExtFieldsValue {
    Null,
    Object(ExtFields),
    Other(Value),
}

impl<'de> Deserialize<'de> for ExtFieldsValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ExtFieldsVisitor)
    }
}

struct ExtFieldsVisitor;

impl<'de> Visitor<'de> for ExtFieldsVisitor {
    type Value = ExtFieldsValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ExtFieldsValue, A::Error> {
        let mut fields = ExtFields::with_capacity(map.size_hint().unwrap_or(0));
        // Null values vanish, but as in a JSON map a repeated key keeps its
        // first position: a null holds the key's place until the end.
        let mut nulls: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match map.next_value::<Value>()? {
                Value::Null => {
                    if !nulls.contains(&key) {
                        nulls.push(key.clone());
                    }
                    fields.insert(key, String::new());
                }
                value => {
                    nulls.retain(|k| *k != key);
                    fields.insert(key, json_to_ext_string(value));
                }
            }
        }
        for key in &nulls {
            fields.shift_remove(key);
        }
        Ok(ExtFieldsValue::Object(fields))
    }

    fn visit_unit<E: de::Error>(self) -> Result<ExtFieldsValue, E> {
        Ok(ExtFieldsValue::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<ExtFieldsValue, E> {
        Ok(ExtFieldsValue::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ExtFieldsValue, E> {
        Ok(ExtFieldsValue::Other(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ExtFieldsValue, E> {
        Ok(ExtFieldsValue::Other(Value::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ExtFieldsValue, E> {
        Ok(ExtFieldsValue::Other(Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ExtFieldsValue, E> {
        Ok(ExtFieldsValue::Other(Value::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ExtFieldsValue, E> {
        Ok(ExtFieldsValue::Other(Value::from(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ExtFieldsValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(ExtFieldsValue::Other(Value::Array(items)))
    }
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

/// fastjson binds any non-null JSON value into a `Map<String,String>` by its text.
fn json_to_ext_string(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// A single-pass decoder for the JSON headers clients actually send: one
/// object with each known key at most once, integer numbers, strings (with
/// any JSON escapes), `extFields` an object of string values or `null`.
/// It builds the command directly, without serde's intermediate values.
/// Anything else (unknown or repeated keys, numbers as strings, non-string
/// ext values, bad UTF-8 or escapes, trailing bytes) returns `None` and the
/// general decoder decides, so results and errors are exactly the same.
mod fast_json {
    use super::*;

    struct Scan<'a> {
        /// The whole header, checked to be UTF-8 up front.
        t: &'a str,
        b: &'a [u8],
        i: usize,
    }

    /// The one-letter keys of SEND_MESSAGE_V2 and friends, stored statically.
    const LETTERS: [&str; 26] = [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r",
        "s", "t", "u", "v", "w", "x", "y", "z",
    ];

    impl<'a> Scan<'a> {
        fn ws(&mut self) {
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
                self.i += 1;
            }
        }

        fn next(&mut self) -> Option<u8> {
            let c = *self.b.get(self.i)?;
            self.i += 1;
            Some(c)
        }

        fn eat(&mut self, c: u8) -> Option<()> {
            (self.next()? == c).then_some(())
        }

        fn eat_word(&mut self, w: &[u8]) -> bool {
            if self.b[self.i..].starts_with(w) {
                self.i += w.len();
                true
            } else {
                false
            }
        }

        /// A JSON integer that fits an `i32`.
        fn int(&mut self) -> Option<i32> {
            let start = self.i;
            if self.b.get(self.i) == Some(&b'-') {
                self.i += 1;
            }
            let digits = self.i;
            while let Some(b'0'..=b'9') = self.b.get(self.i) {
                self.i += 1;
            }
            let n = self.i - digits;
            if n == 0 || n > 10 || (n > 1 && self.b[digits] == b'0') {
                return None;
            }
            if let Some(b'.' | b'e' | b'E') = self.b.get(self.i) {
                return None;
            }
            let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
            text.parse::<i64>().ok().and_then(|v| i32::try_from(v).ok())
        }

        /// A string's raw bytes when it has no escapes (a key).
        fn plain(&mut self) -> Option<&'a [u8]> {
            self.eat(b'"')?;
            let start = self.i;
            loop {
                match *self.b.get(self.i)? {
                    b'"' => break,
                    b'\\' => return None,
                    c if c < 0x20 => return None,
                    _ => self.i += 1,
                }
            }
            let s = &self.b[start..self.i];
            self.i += 1;
            Some(s)
        }

        fn string(&mut self) -> Option<String> {
            self.eat(b'"')?;
            // Size the result once: the raw length bounds the decoded one.
            let rest = &self.b[self.i..];
            let mut out = match rest
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            {
                Some(n) if rest[n] == b'"' => {
                    let s = self.t.get(self.i..self.i + n)?;
                    self.i += n + 1;
                    return Some(s.to_owned());
                }
                Some(n) if rest[n] < 0x20 => return None,
                Some(_) => {
                    let end = rest.iter().rposition(|&c| c == b'"')?;
                    String::with_capacity(end)
                }
                None => return None,
            };
            let mut run = self.i;
            loop {
                match *self.b.get(self.i)? {
                    b'"' => {
                        out.push_str(self.t.get(run..self.i)?);
                        self.i += 1;
                        return Some(out);
                    }
                    b'\\' => {
                        out.push_str(self.t.get(run..self.i)?);
                        self.i += 1;
                        let c = match self.next()? {
                            b'"' => '"',
                            b'\\' => '\\',
                            b'/' => '/',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            b'u' => {
                                let hi = self.hex4()?;
                                let code = match hi {
                                    0xD800..=0xDBFF => {
                                        if !self.eat_word(b"\\u") {
                                            return None;
                                        }
                                        let lo = self.hex4()?;
                                        if !(0xDC00..=0xDFFF).contains(&lo) {
                                            return None;
                                        }
                                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                    }
                                    0xDC00..=0xDFFF => return None,
                                    c => c,
                                };
                                char::from_u32(code)?
                            }
                            _ => return None,
                        };
                        out.push(c);
                        run = self.i;
                    }
                    c if c < 0x20 => return None,
                    _ => self.i += 1,
                }
            }
        }

        fn hex4(&mut self) -> Option<u32> {
            let h = self.b.get(self.i..self.i + 4)?;
            let mut v = 0;
            for &c in h {
                v = v * 16 + (c as char).to_digit(16)?;
            }
            self.i += 4;
            Some(v)
        }

        /// A string as an [`ExtFields`] entry: a span of the text from
        /// `base` when it has no escapes, else the decoded string.
        fn field(&mut self, base: usize) -> Option<Field> {
            let start = self.i;
            match self.plain() {
                Some(raw) => {
                    let from = start + 1 - base;
                    Some(Field::Span(
                        u32::try_from(from).ok()?,
                        u32::try_from(from + raw.len()).ok()?,
                    ))
                }
                None => {
                    self.i = start;
                    self.string().map(Field::Owned)
                }
            }
        }

        fn ext_fields(&mut self) -> Option<Option<ExtFields>> {
            if self.eat_word(b"null") {
                return Some(None);
            }
            let base = self.i;
            self.eat(b'{')?;
            let mut entries: Vec<(Field, Field)> = Vec::with_capacity(16);
            // One bit per one-letter key seen; other keys are compared.
            let mut letters = 0u32;
            let mut spans = false;
            self.ws();
            if self.b.get(self.i) == Some(&b'}') {
                self.i += 1;
                return Some(Some(ExtFields::new()));
            }
            loop {
                self.ws();
                let key_at = self.i + 1;
                let raw = self.plain()?;
                let key = match raw {
                    [c @ b'a'..=b'z'] => {
                        let bit = 1 << (c - b'a');
                        if letters & bit != 0 {
                            return None;
                        }
                        letters |= bit;
                        Field::Static(LETTERS[(c - b'a') as usize])
                    }
                    // Many keys: the general decoder (hashed look-ups) takes
                    // it rather than a quadratic duplicate check here.
                    _ if entries.len() >= crate::command::LINEAR_MAX => return None,
                    _ => {
                        let text = self.b;
                        let seen = |f: &Field| match f {
                            Field::Span(a, b) => {
                                text.get(base + *a as usize..base + *b as usize) == Some(raw)
                            }
                            Field::Static(s) => s.as_bytes() == raw,
                            Field::Owned(s) => s.as_bytes() == raw,
                        };
                        if entries.iter().any(|(k, _)| seen(k)) {
                            return None;
                        }
                        spans = true;
                        let from = key_at - base;
                        Field::Span(
                            u32::try_from(from).ok()?,
                            u32::try_from(from + raw.len()).ok()?,
                        )
                    }
                };
                self.ws();
                self.eat(b':')?;
                self.ws();
                let value = self.field(base)?;
                spans |= matches!(value, Field::Span(..));
                entries.push((key, value));
                self.ws();
                match self.next()? {
                    b',' => {}
                    b'}' => break,
                    _ => return None,
                }
            }
            // Only the extFields object is kept, and only when entries point into it.
            let text: Option<Arc<str>> = if spans {
                Some(Arc::from(self.t.get(base..self.i)?))
            } else {
                None
            };
            Some(Some(ExtFields::from_decoded(text, entries)))
        }
    }

    fn once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
        if slot.is_some() {
            return None;
        }
        *slot = Some(v);
        Some(())
    }

    pub(super) fn decode(header: &[u8]) -> Option<RemotingCommand> {
        let text = std::str::from_utf8(header).ok()?;
        let mut p = Scan {
            t: text,
            b: header,
            i: 0,
        };
        let (mut code, mut flag, mut opaque, mut version) = (None, None, None, None);
        let (mut language, mut remark, mut ext, mut rpc) = (None, None, None, None);
        p.ws();
        p.eat(b'{')?;
        loop {
            p.ws();
            let key = p.plain()?;
            p.ws();
            p.eat(b':')?;
            p.ws();
            match key {
                b"code" => once(&mut code, p.int()?)?,
                b"flag" => once(&mut flag, p.int()?)?,
                b"opaque" => once(&mut opaque, p.int()?)?,
                b"version" => once(&mut version, p.int()?)?,
                b"language" => {
                    // The name has no escapes in practice: read it in place.
                    let start = p.i;
                    let code = match p.plain() {
                        Some(raw) => LanguageCode::from_name(std::str::from_utf8(raw).ok()?),
                        None => {
                            p.i = start;
                            LanguageCode::from_name(&p.string()?)
                        }
                    };
                    once(&mut language, code.unwrap_or(LanguageCode::Other))?
                }
                b"remark" => {
                    let r = if p.eat_word(b"null") {
                        None
                    } else {
                        Some(p.string()?)
                    };
                    once(&mut remark, r)?
                }
                // Checked, not kept: no need to build the string.
                b"serializeTypeCurrentRPC" => once(&mut rpc, p.field(0)?)?,
                b"extFields" => once(&mut ext, p.ext_fields()?)?,
                _ => return None,
            }
            p.ws();
            match p.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        p.ws();
        if p.i != header.len() {
            return None;
        }
        Some(RemotingCommand {
            code: code.unwrap_or(0),
            language: language.unwrap_or(LanguageCode::Java),
            version: version.unwrap_or(0),
            opaque: opaque.unwrap_or(0),
            flag: flag.unwrap_or(0),
            remark: remark.flatten(),
            ext_fields: ext.flatten(),
            body: Bytes::new(),
            serialize_type: SerializeType::Json,
        })
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

    /// Whenever the fast JSON header decoder answers, the general one agrees.
    fn fast_agrees(header: &[u8]) -> bool {
        match fast_json::decode(header) {
            Some(fast) => {
                let slow = decode_json_header_serde(header).expect("general decoder accepts");
                assert_eq!(fast, slow, "{}", String::from_utf8_lossy(header));
                true
            }
            None => false,
        }
    }

    #[test]
    fn fast_json_header_agrees_with_the_general_decoder() {
        let taken = [
            // Java 5.3.3 SEND_MESSAGE_V2, properties with \u0001/\u0002 separators.
            &br#"{"code":310,"extFields":{"a":"pg","b":"BenchTopic","c":"TBW102","d":"4","e":"3","f":"0","g":"1764118093000","h":"0","i":"UNIQ_KEY\u00017F0000011F8A\u0002WAIT\u0001true\u0002TAGS\u0001TagA\u0002","j":"0","k":"false","m":"false","n":"broker-a"},"flag":0,"language":"JAVA","opaque":12,"serializeTypeCurrentRPC":"JSON","version":479}"#[..],
            br#"{"code":34,"language":"GO","version":317,"opaque":1,"flag":0,"remark":"","extFields":null}"#,
            br#" { "code" : -5 , "remark" : null , "extFields" : { } } "#,
            br#"{"code":1,"extFields":{"k":"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00\u2028"}}"#,
            "{\"code\":2,\"remark\":\"标签\",\"language\":\"cpp\"}".as_bytes(),
            br#"{"code":2147483647,"opaque":-2147483648,"language":"NOPE"}"#,
            // A language name with an escape (read by the general string path).
            br#"{"code":3,"language":"J\u0041VA"}"#,
            br#"{"code":3,"language":"\u0067o"}"#,
        ];
        for h in taken {
            assert!(fast_agrees(h), "{}", String::from_utf8_lossy(h));
        }
        let left_to_serde = [
            &br#"{"code":"105"}"#[..],
            br#"{"code":1,"code":2}"#,
            br#"{"code":1.0}"#,
            br#"{"code":2147483648}"#,
            br#"{"code":01}"#,
            br#"{"extFields":{"n":null,"q":1}}"#,
            br#"{"extFields":{"a":"1","a":"2"}}"#,
            br#"{"remark":"\uDE00"}"#,
            br#"{"remark":"\uD83D"}"#,
            br#"{"other":[1,2]}"#,
            br#"{"code":1} x"#,
            br#"{}"#,
            b"{\"remark\":\"\x01\"}",
            b"{\"remark\":\"\xff\"}",
        ];
        for h in left_to_serde {
            assert!(!fast_agrees(h), "{}", String::from_utf8_lossy(h));
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_json_header_never_disagrees(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "{", "}", ",", ":", " ", "\"code\"", "\"opaque\"", "\"remark\"",
                    "\"language\"", "\"extFields\"", "\"k\"", "\"i\"", "12", "-3", "0",
                    "null", "\"JAVA\"", "\"v\"", "\"a\\u0001b\\u0002\"", "\"\\uD83D\\uDE00\"",
                    "\"\\\"\"", "1e3", "\"x\\q\"", "[", "]", "true",
                ]),
                0..40,
            )
        ) {
            let h = parts.concat();
            let _ = fast_agrees(h.as_bytes());
            // And a well-formed header built from the same pieces.
            let wrapped = format!("{{\"code\":1,\"extFields\":{{\"k\":{}}}}}", parts.concat());
            let _ = fast_agrees(wrapped.as_bytes());
        }
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
