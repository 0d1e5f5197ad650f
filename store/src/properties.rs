//! The message properties string (docs/protocol/messages.md §2,
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

// The property names (Java `MessageConst.PROPERTY_*`); the one list, for
// the store and the broker alike.
pub const TAGS: &str = "TAGS";
pub const KEYS: &str = "KEYS";
pub const UNIQ_KEY: &str = "UNIQ_KEY";
pub const WAIT: &str = "WAIT";
pub const DELAY: &str = "DELAY";
pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
/// When the timer wheel took a message out (Java `PROPERTY_TIMER_OUT_MS`).
pub const TIMER_OUT_MS: &str = "TIMER_OUT_MS";
/// When the timer wheel re-put a due message (Java `TimerState.TIMER_DEQUEUE_MS`).
pub const TIMER_DEQUEUE_MS: &str = "TIMER_DEQUEUE_MS";
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
/// Also a send response's ext field (Java `PROPERTY_MSG_REGION`).
pub const MSG_REGION: &str = "MSG_REGION";
/// Also a send response's ext field (Java `PROPERTY_TRACE_SWITCH`).
pub const TRACE_ON: &str = "TRACE_ON";

/// Encode pairs as Java does. Pairs with an empty value are kept here (Java
/// skips only null values); Java readers will drop them.
pub fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut s = String::new();
    for (k, v) in pairs {
        push(&mut s, k.as_ref(), v.as_ref());
    }
    s
}

/// Appends one `name value` pair as [`encode`] writes it.
pub fn push(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push(NAME_VALUE_SEPARATOR);
    out.push_str(value);
    out.push(PROPERTY_SEPARATOR);
}

/// Decode as Java does: split on U+0002; keep a segment only if its first
/// U+0001 is neither its first nor its last character (so empty names and
/// empty values are dropped). Order is kept; duplicates are kept (Java's map
/// keeps the last one, see [`get`]).
pub fn decode(s: &str) -> Vec<(String, String)> {
    iter(s).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// Borrowing form of [`decode`].
pub fn iter(s: &str) -> Iter<'_> {
    Iter { s, pos: 0 }
}

/// The pairs of a properties string, Java's drop rules applied (see
/// [`decode`]). Searches bytes: U+0001 and U+0002 are single bytes in UTF-8
/// and never occur inside a multi-byte character.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    s: &'a str,
    /// Start of the next segment; past `s.len()` when done.
    pos: usize,
}

const NV: u8 = NAME_VALUE_SEPARATOR as u8;
const PS: u8 = PROPERTY_SEPARATOR as u8;

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let b = self.s.as_bytes();
        // `split` yields a (possibly empty) segment after the last separator.
        while self.pos <= b.len() {
            let start = self.pos;
            let rest = &b[start..];
            match memchr::memchr2(NV, PS, rest) {
                None => {
                    // Last segment without a name/value separator.
                    self.pos = b.len() + 1;
                }
                Some(i) if rest[i] == PS => {
                    self.pos = start + i + 1;
                }
                Some(i) => {
                    let sep = start + i;
                    let end = memchr::memchr(PS, &b[sep + 1..]).map_or(b.len(), |j| sep + 1 + j);
                    self.pos = end + 1;
                    // Java: skip when the first U+0001 is the first or the
                    // last character of the segment.
                    if i == 0 || sep + 1 >= end {
                        continue;
                    }
                    if let (Some(k), Some(v)) = (self.s.get(start..sep), self.s.get(sep + 1..end)) {
                        return Some((k, v));
                    }
                }
            }
        }
        None
    }
}

/// The value Java's `HashMap` would hold for `name` (the last occurrence).
pub fn get<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    iter(s).filter(|(k, _)| *k == name).last().map(|(_, v)| v)
}

/// The properties the store itself reads from every record it indexes, found
/// in one pass: each is what [`get`] returns for that name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scanned<'a> {
    pub tags: Option<&'a str>,
    pub keys: Option<&'a str>,
    pub uniq: Option<&'a str>,
    pub delay: Option<&'a str>,
}

impl<'a> Scanned<'a> {
    pub fn scan(s: &'a str) -> Scanned<'a> {
        let mut out = Scanned::default();
        for (k, v) in iter(s) {
            match k {
                TAGS => out.tags = Some(v),
                KEYS => out.keys = Some(v),
                UNIQ_KEY => out.uniq = Some(v),
                DELAY => out.delay = Some(v),
                _ => {}
            }
        }
        out
    }
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

    /// The former `split`-based reading, kept as the reference.
    fn reference_iter(s: &str) -> Vec<(&str, &str)> {
        s.split(PROPERTY_SEPARATOR)
            .filter_map(|kv| {
                let i = kv.find(NAME_VALUE_SEPARATOR)?;
                if i == 0 || i + NAME_VALUE_SEPARATOR.len_utf8() >= kv.len() {
                    return None;
                }
                Some((&kv[..i], &kv[i + NAME_VALUE_SEPARATOR.len_utf8()..]))
            })
            .collect()
    }

    /// What `get` used to answer for each name, from the reference reading.
    fn scanned_by_get(s: &str) -> Scanned<'_> {
        let pairs = reference_iter(s);
        let last = |name: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
        };
        Scanned {
            tags: last(TAGS),
            keys: last(KEYS),
            uniq: last(UNIQ_KEY),
            delay: last(DELAY),
        }
    }

    #[test]
    fn scan_empty_and_single_pairs() {
        assert_eq!(Scanned::scan(""), Scanned::default());
        assert_eq!(iter("").count(), 0);
        // No trailing separator: the last pair still counts.
        let s = "TAGS\u{1}a\u{2}KEYS\u{1}k1 k2";
        let sc = Scanned::scan(s);
        assert_eq!(sc.tags, Some("a"));
        assert_eq!(sc.keys, Some("k1 k2"));
        assert_eq!((sc.uniq, sc.delay), (None, None));
        let s = encode(&[(UNIQ_KEY, "U1"), (DELAY, "3"), ("WAIT", "true")]);
        let sc = Scanned::scan(&s);
        assert_eq!((sc.uniq, sc.delay, sc.tags), (Some("U1"), Some("3"), None));
    }

    #[test]
    fn scan_last_occurrence_wins() {
        let s = "TAGS\u{1}a\u{2}KEYS\u{1}x\u{2}TAGS\u{1}b\u{2}KEYS\u{1}y\u{2}TAGS\u{1}\u{2}";
        let sc = Scanned::scan(s);
        // The empty third TAGS is dropped (Java), so "b" stays.
        assert_eq!((sc.tags, sc.keys), (Some("b"), Some("y")));
        assert_eq!(sc, scanned_by_get(s));
    }

    #[test]
    fn scan_java_drop_rules() {
        // First U+0001 at position 0 (empty name) or as the last character
        // (empty value): dropped; no U+0001 at all: dropped.
        let s = "\u{1}TAGS\u{2}TAGS\u{1}\u{2}TAGS\u{2}KEYS\u{1}k\u{2}\u{2}\u{2}";
        let sc = Scanned::scan(s);
        assert_eq!(sc.tags, None);
        assert_eq!(sc.keys, Some("k"));
        assert_eq!(iter(s).collect::<Vec<_>>(), vec![("KEYS", "k")]);
        // Unterminated last segment with an empty value: dropped.
        assert_eq!(Scanned::scan("TAGS\u{1}a\u{2}TAGS\u{1}").tags, Some("a"));
        // A name that only starts like a known one is another name.
        assert_eq!(Scanned::scan("TAGSX\u{1}a\u{2}TAG\u{1}b").tags, None);
    }

    #[test]
    fn scan_value_containing_name_separator() {
        let s = "TAGS\u{1}a\u{1}b\u{2}UNIQ_KEY\u{1}\u{1}\u{2}KEYS\u{1}\u{1}k";
        let sc = Scanned::scan(s);
        assert_eq!(sc.tags, Some("a\u{1}b"));
        // The first U+0001 splits: the value is the rest, even if it is
        // only separators.
        assert_eq!(sc.uniq, Some("\u{1}"));
        assert_eq!(sc.keys, Some("\u{1}k"));
        assert_eq!(sc, scanned_by_get(s));
    }

    #[test]
    fn scan_non_ascii_values() {
        let s = "TAGS\u{1}标签\u{2}KEYS\u{1}🔑 ключ\u{2}";
        let sc = Scanned::scan(s);
        assert_eq!((sc.tags, sc.keys), (Some("标签"), Some("🔑 ключ")));
    }

    proptest::proptest! {
        #[test]
        fn iter_and_scan_match_the_split_reading(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("TAGS"),
                    proptest::strategy::Just("KEYS"),
                    proptest::strategy::Just("UNIQ_KEY"),
                    proptest::strategy::Just("DELAY"),
                    proptest::strategy::Just("\u{1}"),
                    proptest::strategy::Just("\u{2}"),
                    proptest::strategy::Just("a"),
                    proptest::strategy::Just(" "),
                    proptest::strategy::Just("é"),
                    proptest::strategy::Just("𝄞"),
                ],
                0..24,
            )
        ) {
            let s: String = parts.concat();
            proptest::prop_assert_eq!(iter(&s).collect::<Vec<_>>(), reference_iter(&s));
            proptest::prop_assert_eq!(Scanned::scan(&s), scanned_by_get(&s));
        }
    }
}
