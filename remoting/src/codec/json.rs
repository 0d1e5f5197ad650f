//! The JSON header: written as fastjson writes it, read by a fast decoder
//! for the common shapes and a general serde one for everything else.

use std::fmt;
use std::sync::Arc;

use bytes::{BufMut, Bytes};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::code::LanguageCode;
use crate::command::{ExtFields, Field, RemotingCommand, SerializeType};
use crate::error::RemotingError;

// ---------------------------------------------------------------- JSON header

pub(super) fn encode_json_header(cmd: &RemotingCommand) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_json_header(cmd, &mut out);
    out
}

/// Writes the header as fastjson does for `RemotingCommand`: compact, keys in
/// name order, null fields left out, `extFields` in map order.
pub(super) fn write_json_header(cmd: &RemotingCommand, out: &mut impl BufMut) {
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

pub(super) fn decode_json_header(header: &[u8]) -> Result<RemotingCommand, RemotingError> {
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
mod fast_json;

#[cfg(test)]
mod tests {
    use super::*;

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
}
