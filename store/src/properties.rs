//! The message properties string (messages.md §2,
//! `MessageDecoder.messageProperties2String` / `string2messageProperties`).
//!
//! ```text
//! name U+0001 value U+0002 name U+0001 value U+0002 ...
//! ```

/// Separates a name from its value.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Ends every pair, the last one included.
pub const PROPERTY_SEPARATOR: char = '\u{2}';
/// The properties region of a record has an int16 length.
pub const MAX_PROPERTIES_LEN: usize = i16::MAX as usize;

pub const TAGS: &str = "TAGS";
pub const KEYS: &str = "KEYS";
pub const UNIQ_KEY: &str = "UNIQ_KEY";
pub const WAIT: &str = "WAIT";
pub const DELAY: &str = "DELAY";
pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
pub const TRAN_MSG: &str = "TRAN_MSG";
pub const PGROUP: &str = "PGROUP";
pub const TRANSACTION_ID: &str = "__transactionId__";
pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
pub const CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
pub const TRAN_PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
pub const REAL_TOPIC: &str = "REAL_TOPIC";
pub const REAL_QID: &str = "REAL_QID";
pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
pub const CLUSTER: &str = "CLUSTER";
pub const MIN_OFFSET: &str = "MIN_OFFSET";
pub const MAX_OFFSET: &str = "MAX_OFFSET";
pub const INSTANCE_ID: &str = "INSTANCE_ID";
pub const SHARDING_KEY: &str = "__SHARDINGKEY";
pub const MSG_TYPE: &str = "MSG_TYPE";
pub const CORRELATION_ID: &str = "CORRELATION_ID";
pub const REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
pub const TRACE_CONTEXT: &str = "TRACE_CONTEXT";
pub const DLQ_ORIGIN_TOPIC: &str = "DLQ_ORIGIN_TOPIC";
pub const DLQ_ORIGIN_MESSAGE_ID: &str = "DLQ_ORIGIN_MESSAGE_ID";

/// Encode pairs as Java does. Pairs with an empty value are kept here (Java
/// skips only null values); Java readers will drop them.
pub fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut s = String::new();
    for (k, v) in pairs {
        s.push_str(k.as_ref());
        s.push(NAME_VALUE_SEPARATOR);
        s.push_str(v.as_ref());
        s.push(PROPERTY_SEPARATOR);
    }
    s
}

/// Decode as Java does: split on U+0002; keep a segment only if its first
/// U+0001 is neither its first nor its last character (so empty names and
/// empty values are dropped). Order is kept; duplicates are kept (Java's map
/// keeps the last one, see [`get`]).
pub fn decode(s: &str) -> Vec<(String, String)> {
    iter(s).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// Borrowing form of [`decode`].
pub fn iter(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split(PROPERTY_SEPARATOR).filter_map(|kv| {
        let i = kv.find(NAME_VALUE_SEPARATOR)?;
        if i == 0 || i + NAME_VALUE_SEPARATOR.len_utf8() >= kv.len() {
            return None;
        }
        Some((&kv[..i], &kv[i + NAME_VALUE_SEPARATOR.len_utf8()..]))
    })
}

/// The value Java's `HashMap` would hold for `name` (the last occurrence).
pub fn get<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    iter(s).filter(|(k, _)| *k == name).last().map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_java_drop_rules() {
        let s = encode(&[("TAGS", "TagA"), ("KEYS", "k1 k2")]);
        assert_eq!(s, "TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2\u{2}");
        assert_eq!(
            decode(&s),
            vec![
                ("TAGS".to_owned(), "TagA".to_owned()),
                ("KEYS".to_owned(), "k1 k2".to_owned())
            ]
        );
        // empty value, empty name, no separator: dropped like Java.
        let s = "A\u{1}\u{2}\u{1}x\u{2}junk\u{2}B\u{1}b\u{2}B\u{1}c";
        assert_eq!(
            decode(s),
            vec![
                ("B".to_owned(), "b".to_owned()),
                ("B".to_owned(), "c".to_owned())
            ]
        );
        assert_eq!(get(s, "B"), Some("c"));
        assert_eq!(get(s, "A"), None);
        // value containing U+0001 keeps it (first separator splits).
        assert_eq!(get("K\u{1}a\u{1}b\u{2}", "K"), Some("a\u{1}b"));
    }
}
