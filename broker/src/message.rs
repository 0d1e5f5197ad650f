//! The broker's map view of a message's properties string, over the
//! message model in `store` (property names and the string's format in
//! `store::properties`, ids in `store::msgid`, batch bodies and Java's hash
//! in `store::record`), and the tag codes of a subscription expression.

use indexmap::IndexMap;
use store::properties::{self, NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR};

/// Java `MessageDecoder.string2messageProperties`: pairs without a name or a
/// value are dropped; a repeated name keeps its first place and last value.
pub fn decode_properties(s: &str) -> IndexMap<String, String> {
    properties::iter(s)
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Java `MessageDecoder.messageProperties2String`.
pub fn encode_properties(props: &IndexMap<String, String>) -> String {
    let mut out = String::new();
    for (k, v) in props {
        properties::push(&mut out, k, v);
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
        if k == properties::UNIQ_KEY {
            uniq = Some(v);
        }
    }
    Some(uniq)
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
            .map(store::tags_hash_code)
            .collect(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
                    assert_eq!(uniq, map.get(properties::UNIQ_KEY).map(String::as_str));
                    let mut fast = s.to_owned();
                    properties::push(&mut fast, "CLUSTER", "c");
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
    fn subscription_expressions() {
        assert_eq!(subscription_codes("*"), None);
        assert_eq!(subscription_codes(""), None);
        assert_eq!(subscription_codes("a || b"), Some(vec![97, 98]));
    }
}
