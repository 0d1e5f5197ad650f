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
/// padding is optional, as in fastjson's decoder.
const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

pub fn encode_base64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    B64.decode(text)
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

fn lenient_i64<'de, D: Deserializer<'de>>(d: D, default: i64) -> Result<i64, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(default);
    }
    value_to_i64(&v).ok_or_else(|| de::Error::custom(format!("expected an integer, got {v}")))
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

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
        let v = Value::deserialize(d)?;
        match v {
            Value::Null => Ok(None),
            Value::String(s) => decode_base64(&s)
                .map(|b| Some(Bytes::from(b)))
                .map_err(|e| de::Error::custom(format!("bad base64: {e}"))),
            // fastjson also takes a byte[] written as an array of numbers.
            Value::Array(items) => items
                .iter()
                .map(|i| {
                    value_to_i64(i)
                        .and_then(|n| {
                            i8::try_from(n)
                                .ok()
                                .map(|b| b as u8)
                                .or_else(|| u8::try_from(n).ok())
                        })
                        .ok_or_else(|| de::Error::custom(format!("bad byte {i}")))
                })
                .collect::<Result<Vec<u8>, _>>()
                .map(|b| Some(Bytes::from(b))),
            other => Err(de::Error::custom(format!(
                "expected base64 text, got {other}"
            ))),
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
