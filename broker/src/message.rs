//! Message-level helpers the broker needs around the store: the properties
//! string, tag hash codes, message ids and the batch body.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};

use bytes::{Buf, Bytes};
use indexmap::IndexMap;

pub const PROPERTY_UNIQ_KEY: &str = "UNIQ_KEY";
pub const PROPERTY_TAGS: &str = "TAGS";
pub const PROPERTY_CLUSTER: &str = "CLUSTER";
pub const PROPERTY_KEYS: &str = "KEYS";
pub const PROPERTY_TRANSACTION_PREPARED: &str = "TRAN_MSG";
pub const PROPERTY_DELAY: &str = "DELAY";

const NAME_VALUE_SEPARATOR: char = '\u{1}';
const PROPERTY_SEPARATOR: char = '\u{2}';

/// Java `MessageDecoder.string2messageProperties`: pairs without a name or a
/// value are dropped.
pub fn decode_properties(s: &str) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    for pair in s.split(PROPERTY_SEPARATOR) {
        if let Some((k, v)) = pair.split_once(NAME_VALUE_SEPARATOR) {
            if !k.is_empty() && !v.is_empty() {
                out.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    out
}

/// Java `MessageDecoder.messageProperties2String`.
pub fn encode_properties(props: &IndexMap<String, String>) -> String {
    let mut out = String::new();
    for (k, v) in props {
        out.push_str(k);
        out.push(NAME_VALUE_SEPARATOR);
        out.push_str(v);
        out.push(PROPERTY_SEPARATOR);
    }
    out
}

/// For the common send, whose properties string is already what
/// [`encode_properties`]`(&`[`decode_properties`]`(s))` gives back (every pair
/// with a name and a value, no name twice, a separator after each pair) and
/// names none of `reject`: `Some(UNIQ_KEY's value, if any)`, so the caller
/// can append its pairs to `s` instead of building a map. `None` otherwise.
pub fn scan_canonical<'a>(s: &'a str, reject: &[&str]) -> Option<Option<&'a str>> {
    if s.is_empty() {
        return Some(None);
    }
    let body = s.strip_suffix(PROPERTY_SEPARATOR)?;
    let mut uniq = None;
    let mut names: [&str; 16] = [""; 16];
    for (i, pair) in body.split(PROPERTY_SEPARATOR).enumerate() {
        let (k, v) = pair.split_once(NAME_VALUE_SEPARATOR)?;
        if k.is_empty() || v.is_empty() || i >= names.len() || reject.contains(&k) {
            return None;
        }
        if names[..i].contains(&k) {
            return None;
        }
        names[i] = k;
        if k == PROPERTY_UNIQ_KEY {
            uniq = Some(v);
        }
    }
    Some(uniq)
}

/// Appends one `name value` pair as [`encode_properties`] writes it.
pub fn push_property(out: &mut String, k: &str, v: &str) {
    out.push_str(k);
    out.push(NAME_VALUE_SEPARATOR);
    out.push_str(v);
    out.push(PROPERTY_SEPARATOR);
}

/// Java `String.hashCode` over UTF-16 units, as the consume queue's tag code.
pub fn tags_hash_code(tags: &str) -> i64 {
    let mut h: i32 = 0;
    for unit in tags.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    h as i64
}

/// The offset message id: store host address, port and commit-log offset in
/// upper-case hex (`MessageDecoder.createMessageId`).
pub fn offset_message_id(store_host: SocketAddr, commit_log_offset: i64) -> String {
    let mut bytes = Vec::with_capacity(28);
    match store_host.ip() {
        IpAddr::V4(ip) => bytes.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => bytes.extend_from_slice(&ip.octets()),
    }
    bytes.extend_from_slice(&(store_host.port() as i32).to_be_bytes());
    bytes.extend_from_slice(&commit_log_offset.to_be_bytes());
    hex_upper(&bytes)
}

/// Parses an offset message id back into host and commit-log offset.
pub fn decode_offset_message_id(id: &str) -> Option<(SocketAddr, i64)> {
    let bytes = unhex(id)?;
    let (ip, rest): (IpAddr, &[u8]) = match bytes.len() {
        16 => {
            let o: [u8; 4] = bytes[..4].try_into().ok()?;
            (IpAddr::from(o), &bytes[4..])
        }
        28 => {
            let o: [u8; 16] = bytes[..16].try_into().ok()?;
            (IpAddr::from(o), &bytes[16..])
        }
        _ => return None,
    };
    let port = i32::from_be_bytes(rest[..4].try_into().ok()?);
    let offset = i64::from_be_bytes(rest[4..12].try_into().ok()?);
    Some((SocketAddr::new(ip, u16::try_from(port).ok()?), offset))
}

fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xF) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A unique message id for messages that arrive without `UNIQ_KEY`, in the
/// shape of Java's `MessageClientIDSetter` (ip, pid, a per-process random,
/// time, counter), 32 hex characters.
pub fn new_uniq_id(ip: IpAddr) -> String {
    static COUNTER: AtomicU16 = AtomicU16::new(0);
    let mut bytes = Vec::with_capacity(16);
    match ip {
        IpAddr::V4(v4) => bytes.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => bytes.extend_from_slice(&v6.octets()[12..]),
    }
    bytes.extend_from_slice(&(std::process::id() as u16).to_be_bytes());
    bytes.extend_from_slice(&(process_nonce()).to_be_bytes());
    let now = remoting::body::now_millis();
    bytes.extend_from_slice(&(now as i32).to_be_bytes());
    bytes.extend_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    hex_upper(&bytes)
}

fn process_nonce() -> i32 {
    use std::hash::{BuildHasher, Hasher};
    static NONCE: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *NONCE.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(remoting::body::now_millis() as u64);
        h.finish() as i32
    })
}

/// One message inside a SEND_BATCH_MESSAGE body (`MessageDecoder.encodeMessage`).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchEntry {
    pub flag: i32,
    pub body: Bytes,
    pub properties: String,
}

/// Splits a batch body:
///
/// ```text
/// int32 totalSize | int32 magic (0) | int32 bodyCrc (0) | int32 flag
/// int32 bodyLen | body | int16 propLen | properties
/// ```
pub fn decode_batch(mut buf: Bytes) -> Result<Vec<BatchEntry>, String> {
    let mut out = Vec::new();
    while buf.has_remaining() {
        if buf.remaining() < 20 {
            return Err(format!(
                "truncated batch record header ({} bytes left)",
                buf.remaining()
            ));
        }
        let total = buf.get_i32();
        if total < 22 || (total as usize - 4) > buf.remaining() {
            return Err(format!("bad batch record size {total}"));
        }
        let mut rec = buf.split_to(total as usize - 4);
        let _magic = rec.get_i32();
        let _crc = rec.get_i32();
        let flag = rec.get_i32();
        let body_len = rec.get_i32();
        if body_len < 0 || body_len as usize > rec.remaining() {
            return Err(format!("bad batch body length {body_len}"));
        }
        let body = rec.split_to(body_len as usize);
        if rec.remaining() < 2 {
            return Err("truncated batch properties length".into());
        }
        let prop_len = rec.get_i16();
        if prop_len < 0 || prop_len as usize > rec.remaining() {
            return Err(format!("bad batch properties length {prop_len}"));
        }
        let props = rec.split_to(prop_len as usize);
        let properties = String::from_utf8(props.to_vec())
            .map_err(|_| "batch properties are not UTF-8".to_owned())?;
        out.push(BatchEntry {
            flag,
            body,
            properties,
        });
    }
    Ok(out)
}

/// Encodes a batch body (the client side; used by tests).
pub fn encode_batch(entries: &[BatchEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let total = 4 + 4 + 4 + 4 + 4 + e.body.len() + 2 + e.properties.len();
        out.extend_from_slice(&(total as i32).to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&e.flag.to_be_bytes());
        out.extend_from_slice(&(e.body.len() as i32).to_be_bytes());
        out.extend_from_slice(&e.body);
        out.extend_from_slice(&(e.properties.len() as i16).to_be_bytes());
        out.extend_from_slice(e.properties.as_bytes());
    }
    out
}

/// Tag codes a subscription expression selects; `None` = everything.
/// `a || b` lists tags; `*` or empty selects all (`FilterAPI.buildSubscriptionData`).
pub fn subscription_codes(expression: &str) -> Option<Vec<i64>> {
    let expr = expression.trim();
    if expr.is_empty() || expr == "*" {
        return None;
    }
    Some(
        expr.split("||")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(tags_hash_code)
            .collect(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn java_string_hash() {
        assert_eq!(tags_hash_code(""), 0);
        assert_eq!(tags_hash_code("a"), 97);
        assert_eq!(tags_hash_code("TagA"), 2598919);
        // Wraps like Java: "polygenelubricants".hashCode() == Integer.MIN_VALUE
        assert_eq!(tags_hash_code("polygenelubricants"), i32::MIN as i64);
        // UTF-16 units, not bytes: "中".hashCode() == 20013
        assert_eq!(tags_hash_code("中"), 20013);
    }

    #[test]
    fn offset_id_round_trip() {
        let addr: SocketAddr = "10.0.0.5:10911".parse().unwrap();
        let id = offset_message_id(addr, 8000);
        assert_eq!(id, "0A00000500002A9F0000000000001F40");
        assert_eq!(decode_offset_message_id(&id), Some((addr, 8000)));
    }

    #[test]
    fn canonical_scan_agrees_with_the_map() {
        let reject = ["CLUSTER", "DELAY"];
        for s in [
            "",
            "UNIQ_KEY\u{1}AB\u{2}WAIT\u{1}true\u{2}TAGS\u{1}t\u{2}",
            "WAIT\u{1}true\u{2}KEYS\u{1}k1 k2\u{2}",
            "a\u{1}x\u{1}y\u{2}",
            "a\u{1}1\u{2}a\u{1}2\u{2}",
            "a\u{1}1",
            "a\u{1}\u{2}",
            "\u{2}",
            "a\u{1}1\u{2}\u{2}",
            "DELAY\u{1}3\u{2}",
            "x\u{1}1\u{2}CLUSTER\u{1}c\u{2}",
        ] {
            let map = decode_properties(s);
            match scan_canonical(s, &reject) {
                Some(uniq) => {
                    assert_eq!(encode_properties(&map), s, "{s:?}");
                    assert_eq!(uniq, map.get(PROPERTY_UNIQ_KEY).map(String::as_str));
                    let mut fast = s.to_owned();
                    push_property(&mut fast, "CLUSTER", "c");
                    let mut slow = map.clone();
                    slow.insert("CLUSTER".into(), "c".into());
                    assert_eq!(fast, encode_properties(&slow));
                }
                None => assert!(
                    encode_properties(&map) != s || reject.iter().any(|k| map.contains_key(*k)),
                    "{s:?} is canonical"
                ),
            }
        }
        let many: String = (0..20).map(|i| format!("k{i}\u{1}v\u{2}")).collect();
        assert_eq!(
            scan_canonical(&many, &reject),
            None,
            "over 16 pairs: map path"
        );
    }

    #[test]
    fn properties_drop_empty_pairs() {
        let p = decode_properties("a\u{1}1\u{2}b\u{1}\u{2}\u{1}x\u{2}c\u{1}3\u{2}");
        assert_eq!(p.len(), 2);
        assert_eq!(encode_properties(&p), "a\u{1}1\u{2}c\u{1}3\u{2}");
    }

    #[test]
    fn batch_round_trip_and_junk() {
        let entries = vec![
            BatchEntry {
                flag: 1,
                body: Bytes::from_static(b"hello"),
                properties: "UNIQ_KEY\u{1}X\u{2}".into(),
            },
            BatchEntry {
                flag: 0,
                body: Bytes::new(),
                properties: String::new(),
            },
        ];
        let bytes = encode_batch(&entries);
        assert_eq!(decode_batch(Bytes::from(bytes.clone())).unwrap(), entries);
        let first_len = encode_batch(&entries[..1]).len();
        for cut in 1..bytes.len() {
            let r = decode_batch(Bytes::copy_from_slice(&bytes[..cut]));
            if cut == first_len {
                assert_eq!(r.unwrap(), entries[..1]);
            } else {
                assert!(r.is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn subscription_expressions() {
        assert_eq!(subscription_codes("*"), None);
        assert_eq!(subscription_codes(""), None);
        assert_eq!(subscription_codes("a || b"), Some(vec![97, 98]));
    }
}
