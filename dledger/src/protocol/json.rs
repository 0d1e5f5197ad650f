//! fastjson 1.x conventions, as DLedger 0.3.1.2 serialises its bodies with
//! `JSON.toJSONBytes` and parses them with `JSON.parseObject`:
//!
//! - output: keys sorted alphabetically (fastjson's default `SortField`),
//!   nulls omitted, `byte[]` as standard Base64 with `=` padding, enums by name;
//! - input: unknown keys ignored, a missing or `null` primitive keeps the Java
//!   default, numbers may arrive as strings, enums by name or ordinal.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use serde::de::{self, Deserializer};
use serde::Serializer;
use serde_json::Value;

/// Base64 as fastjson writes it (standard alphabet, padded); on input the
/// padding is optional, as in fastjson's decoder. This engine is the
/// reference for what we accept; the SIMD codec below is the fast path.
const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Padded standard Base64 (the same bytes as [`B64`], about 3-4 times faster
/// on entry bodies with AVX2, detected at run time).
pub fn encode_base64(bytes: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(bytes)
}

/// Appends the padded standard Base64 of `bytes` to `out`.
pub fn encode_base64_into(bytes: &[u8], out: &mut Vec<u8>) {
    base64_simd::STANDARD.encode_append(bytes, out);
}

pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    decode_base64_bytes(text.as_bytes())
}

/// Decodes exactly what [`B64`] decodes, to the same bytes: the SIMD decoder
/// (padded when the length is a multiple of 4, unpadded otherwise) accepts a
/// subset of it with the same output (tests check it), and whatever it
/// refuses (partial padding such as `QQ=`, bad input) goes to [`B64`] for
/// the final word.
pub fn decode_base64_bytes(text: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    let fast = if text.len().is_multiple_of(4) {
        base64_simd::STANDARD.decode_to_vec(text)
    } else {
        base64_simd::STANDARD_NO_PAD.decode_to_vec(text)
    };
    match fast {
        Ok(v) => Ok(v),
        Err(_) => B64.decode(text),
    }
}

/// Serialises `value` and re-emits every object with its keys sorted, which is
/// the byte order fastjson produces for DLedger's beans.
pub fn to_sorted_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let v = serde_json::to_value(value)?;
    serde_json::to_vec(&Sorted(&v))
}

/// Like [`to_sorted_json`] for a value already built.
pub fn value_to_sorted_json(value: &Value) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&Sorted(value))
}

/// Writes one JSON object (nested objects and arrays allowed) key by key,
/// compact, with serde_json's escaping of strings; the caller gives the keys
/// in sorted order. For the hot PUSH body, instead of a `Value` tree.
pub struct ObjectWriter {
    out: Vec<u8>,
    /// Per open object or array: nothing written in it yet.
    first: Vec<bool>,
}

impl ObjectWriter {
    pub fn with_capacity(cap: usize) -> Self {
        let mut out = Vec::with_capacity(cap);
        out.push(b'{');
        ObjectWriter {
            out,
            first: vec![true],
        }
    }

    fn separator(&mut self) {
        if let Some(first) = self.first.last_mut() {
            if !std::mem::replace(first, false) {
                self.out.push(b',');
            }
        }
    }

    fn string(&mut self, s: &str) {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.out, s);
    }

    pub fn key(&mut self, key: &str) {
        self.separator();
        if key.bytes().all(|c| c.is_ascii_alphanumeric()) {
            // DLedger's property names: nothing to escape.
            self.out.push(b'"');
            self.out.extend_from_slice(key.as_bytes());
            self.out.push(b'"');
        } else {
            self.string(key);
        }
        self.out.push(b':');
    }

    pub fn int(&mut self, key: &str, v: i64) {
        self.key(key);
        let _ = serde_json::to_writer(&mut self.out, &v);
    }

    pub fn bool(&mut self, key: &str, v: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
    }

    /// Nothing for `None` (fastjson omits nulls).
    pub fn opt_str(&mut self, key: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.key(key);
            self.string(v);
        }
    }

    /// Bytes as padded standard Base64 text (never needs escaping).
    pub fn base64(&mut self, key: &str, bytes: &[u8]) {
        self.key(key);
        self.out.push(b'"');
        encode_base64_into(bytes, &mut self.out);
        self.out.push(b'"');
    }

    pub fn begin_object(&mut self) {
        self.out.push(b'{');
        self.first.push(true);
    }

    pub fn end_object(&mut self) {
        self.out.push(b'}');
        self.first.pop();
    }

    pub fn begin_array(&mut self) {
        self.out.push(b'[');
        self.first.push(true);
    }

    /// Before each element of the open array.
    pub fn array_item(&mut self) {
        self.separator();
    }

    pub fn end_array(&mut self) {
        self.out.push(b']');
        self.first.pop();
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}

struct Sorted<'a>(&'a Value);

impl serde::Serialize for Sorted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                let sorted: BTreeMap<&String, Sorted<'_>> =
                    map.iter().map(|(k, v)| (k, Sorted(v))).collect();
                s.collect_map(sorted)
            }
            Value::Array(items) => s.collect_seq(items.iter().map(Sorted)),
            other => other.serialize(s),
        }
    }
}

// ----------------------------------------------------------- lenient numbers

fn value_to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            // fastjson casts a decimal to the field's integer type.
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// The `Visitor` methods of a lenient optional field: null is `None`, and
/// `Some(x)` is read as `x` itself.
macro_rules! null_is_none {
    ($de:lifetime) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<$de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    };
}

/// An integer field read leniently (see [`value_to_i64`]), `None` for null,
/// straight from the deserializer (no `Value` per number).
struct LenientI64;

impl LenientI64 {
    fn f64(f: f64) -> Option<i64> {
        // fastjson casts a decimal to the field's integer type.
        Some(f)
            .filter(|f| f.is_finite() && f.abs() < 9.2e18)
            .map(|f| f as i64)
    }
}

impl<'de> de::Visitor<'de> for LenientI64 {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an integer")
    }
    null_is_none!('de);
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(i64::from(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v)
            .ok()
            .or_else(|| Self::f64(v as f64))
            .map(Some)
            .ok_or_else(|| E::custom(format!("expected an integer, got {v}")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Self::f64(v)
            .map(Some)
            .ok_or_else(|| E::custom(format!("expected an integer, got {v}")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        v.trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| E::custom(format!("expected an integer, got {v:?}")))
    }
}

fn lenient_i64<'de, D: Deserializer<'de>>(d: D, default: i64) -> Result<i64, D::Error> {
    Ok(d.deserialize_any(LenientI64)?.unwrap_or(default))
}

fn lenient_i32<'de, D: Deserializer<'de>>(d: D, default: i32) -> Result<i32, D::Error> {
    let v = lenient_i64(d, i64::from(default))?;
    i32::try_from(v).map_err(|_| de::Error::custom(format!("{v} does not fit an int")))
}

use serde::Deserialize as _;

pub fn i64_or_neg1<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    lenient_i64(d, -1)
}
pub fn i64_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    lenient_i64(d, 0)
}
pub fn i32_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    lenient_i32(d, 0)
}
pub fn i32_or_200<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    lenient_i32(d, 200)
}
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    value_to_i64(&v)
        .map(Some)
        .ok_or_else(|| de::Error::custom(format!("expected an integer, got {v}")))
}
pub fn opt_i64_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<i64>>, D::Error> {
    let v = Value::deserialize(d)?;
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                value_to_i64(i)
                    .ok_or_else(|| de::Error::custom(format!("expected an integer, got {i}")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => Err(de::Error::custom(format!("expected a list, got {other}"))),
    }
}

pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Value::deserialize(d)?;
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        // fastjson turns a scalar into its text for a String property.
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(de::Error::custom(format!("expected a string, got {other}"))),
    }
}

// ------------------------------------------------------------------- bytes

pub mod base64_opt {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&encode_base64(b)),
            None => s.serialize_none(),
        }
    }

    /// Base64 text decoded straight from the input into the buffer the
    /// `Bytes` owns, or null, or an array of byte values. The text is asked
    /// for as bytes: serde_json then hands over the raw slice without its
    /// UTF-8 check (escapes such as fastjson's optional `\/` are still
    /// resolved), and anything that is not ASCII Base64 fails the decoder
    /// anyway, so the same inputs are accepted as when asking for a string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
        d.deserialize_option(BytesVisitor)
    }

    struct BytesVisitor;

    impl BytesVisitor {
        fn decode<E: de::Error>(text: &[u8]) -> Result<Option<Bytes>, E> {
            decode_base64_bytes(text)
                .map(|b| Some(Bytes::from(b)))
                .map_err(|e| E::custom(format!("bad base64: {e}")))
        }
    }

    impl<'de> de::Visitor<'de> for BytesVisitor {
        type Value = Option<Bytes>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("base64 text")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_bytes(self)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Self::decode(s.as_bytes())
        }
        fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Self::Value, E> {
            Self::decode(b)
        }
        // fastjson also takes a byte[] written as an array of numbers.
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
            while let Some(i) = seq.next_element::<Value>()? {
                let b = value_to_i64(&i)
                    .and_then(|n| {
                        i8::try_from(n)
                            .ok()
                            .map(|b| b as u8)
                            .or_else(|| u8::try_from(n).ok())
                    })
                    .ok_or_else(|| de::Error::custom(format!("bad byte {i}")))?;
                out.push(b);
            }
            Ok(Some(Bytes::from(out)))
        }
    }
}

/// An enum written by name and read by name or ordinal, as fastjson does; a
/// `null` keeps the Java default.
macro_rules! java_enum_serde {
    ($modname:ident, $ty:ty, $default:expr, $from_ordinal:expr) => {
        pub mod $modname {
            use super::*;

            pub fn serialize<S: Serializer>(v: &$ty, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(v.java_name())
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                let v = Value::deserialize(d)?;
                let parsed = match &v {
                    Value::Null => Some($default),
                    Value::String(s) => <$ty>::from_java_name(s),
                    Value::Number(n) => n.as_i64().and_then($from_ordinal),
                    _ => None,
                };
                parsed.ok_or_else(|| {
                    de::Error::custom(format!(concat!("not a ", stringify!($ty), ": {}"), v))
                })
            }
        }
    };
}

java_enum_serde!(
    vote_result,
    crate::core::message::VoteResult,
    crate::core::message::VoteResult::Unknown,
    crate::core::message::VoteResult::from_ordinal
);
java_enum_serde!(
    push_type,
    crate::core::message::PushType,
    crate::core::message::PushType::Append,
    |i: i64| {
        use crate::core::message::PushType;
        [
            PushType::Append,
            PushType::Commit,
            PushType::Compare,
            PushType::Truncate,
        ]
        .get(usize::try_from(i).ok()?)
        .copied()
    }
);

/// A `null` (or absent, with `#[serde(default)]`) value keeps the Java default.
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the SIMD path must agree with: the `base64` engine alone.
    fn reference(text: &[u8]) -> Option<Vec<u8>> {
        B64.decode(text).ok()
    }

    /// A byte alphabet for hand-made Base64 text: valid characters, padding,
    /// other alphabets' characters, whitespace, an escape, non-ASCII.
    const CHARS: &[u8] = b"AQBgw/+=-_* \n\\\x80";

    #[test]
    fn short_texts_decode_exactly_as_the_base64_engine() {
        // Every text of up to 5 characters over CHARS, alone and after a
        // valid run of 64 characters (which the SIMD loop takes in bulk).
        let prefix = B64.encode([0xA5u8; 48]);
        let mut seen = 0;
        for len in 0..=5u32 {
            for mut k in 0..CHARS.len().pow(len) {
                let mut tail = Vec::new();
                for _ in 0..len {
                    tail.push(CHARS[k % CHARS.len()]);
                    k /= CHARS.len();
                }
                for text in [tail.clone(), [prefix.as_bytes(), &tail].concat()] {
                    assert_eq!(
                        decode_base64_bytes(&text).ok(),
                        reference(&text),
                        "{:?}",
                        String::from_utf8_lossy(&text)
                    );
                    seen += 1;
                }
            }
        }
        assert!(seen > 2_000_000 / 2, "{seen}");
    }

    #[test]
    fn padded_unpadded_and_invalid_examples() {
        let ok: &[(&str, &[u8])] = &[
            ("", b""),
            ("YQ==", b"a"),
            ("YQ", b"a"),
            ("YWI=", b"ab"),
            ("YWI", b"ab"),
            ("YWJj", b"abc"),
            // Partial padding: the engine takes it, so do we (fallback).
            ("YQ=", b"a"),
            ("+/+/", &[0xFB, 0xFF, 0xBF]),
        ];
        for (text, bytes) in ok {
            assert_eq!(decode_base64(text).ok().as_deref(), Some(*bytes), "{text}");
            assert_eq!(
                reference(text.as_bytes()).as_deref(),
                Some(*bytes),
                "{text}"
            );
        }
        for bad in [
            "Y", "YQ===", "YR==", "YWJ=", "YQ==YQ==", "Y Q==", "YQ==\n", "-_-_", "YQ=a", "=", "é",
            "YWJj\0",
        ] {
            assert!(decode_base64(bad).is_err(), "{bad:?}");
            assert!(reference(bad.as_bytes()).is_none(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn encoding_is_the_base64_engines(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let text = encode_base64(&bytes);
            prop_assert_eq!(&text, &B64.encode(&bytes));
            let mut out = b"x".to_vec();
            encode_base64_into(&bytes, &mut out);
            prop_assert_eq!(&out[1..], text.as_bytes());
            prop_assert_eq!(decode_base64(&text).ok(), Some(bytes.clone()));
            let unpadded = text.trim_end_matches('=');
            prop_assert_eq!(decode_base64(unpadded).ok(), Some(bytes));
        }

        /// Valid text with edits anywhere: same result (bytes or error).
        #[test]
        fn edited_texts_decode_exactly_as_the_base64_engine(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            unpad in any::<bool>(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..CHARS.len(), 0..3u8), 0..3),
            cut in 0..4usize,
        ) {
            let mut text = B64.encode(&bytes).into_bytes();
            if unpad {
                while text.last() == Some(&b'=') {
                    text.pop();
                }
            }
            for (at, c, how) in edits {
                let c = CHARS[c];
                match how {
                    0 if !text.is_empty() => {
                        let i = at.index(text.len());
                        text[i] = c;
                    }
                    1 => text.insert(at.index(text.len() + 1), c),
                    _ if !text.is_empty() => {
                        text.remove(at.index(text.len()));
                    }
                    _ => {}
                }
            }
            text.truncate(text.len().saturating_sub(cut));
            prop_assert_eq!(decode_base64_bytes(&text).ok(), reference(&text));
        }

        /// The serde path takes and refuses the same JSON values as before
        /// (when it read a `&str` through `deserialize_any`).
        #[test]
        fn body_field_accepts_what_it_accepted(
            parts in proptest::collection::vec(prop::sample::select(vec![
                "QUJD", "YQ", "YQ==", "=", "+", "/", "\\/", "\\u0041", "\\u00e9", "\\n", "\\\\",
                "\\\"", "\u{e9}", "\u{1}", " ", "-", "_", "*",
            ]), 0..6),
            shape in 0..6u8,
        ) {
            let text: String = parts.concat();
            let json = match shape {
                0 => "null".to_string(),
                1 => format!("[{}]", parts.len()),
                2 => parts.len().to_string(),
                3 => "{}".to_string(),
                4 => "true".to_string(),
                _ => format!("\"{text}\""),
            };
            let mut de = serde_json::Deserializer::from_str(&json);
            let new = base64_opt::deserialize(&mut de).and_then(|v| de.end().map(|()| v));
            let old = serde_json::from_str::<Value>(&json).ok().and_then(|v| match v {
                Value::Null => Some(None),
                Value::String(s) => reference(s.as_bytes()).map(|b| Some(Bytes::from(b))),
                Value::Array(a) => Some(Some(a.iter().map(|i| value_to_i64(i).unwrap_or(0) as u8).collect())),
                _ => None,
            });
            prop_assert_eq!(new.ok(), old, "{}", json);
        }
    }

    #[test]
    fn escaped_slash_from_fastjson_still_decodes() {
        // "+/8=" is [0xFB, 0xFF]; a writer may escape the slash.
        for json in [r#""+/8=""#, r#""+\/8=""#, r#""+\u002f8""#] {
            let mut de = serde_json::Deserializer::from_str(json);
            let v = base64_opt::deserialize(&mut de).expect(json);
            assert_eq!(v.as_deref(), Some(&[0xFB, 0xFF][..]), "{json}");
        }
    }
}
