//! Java `.properties` text: configuration files (`broker.conf`,
//! `namesrv.properties`) and the config bodies mqadmin exchanges; and
//! [`properties_struct!`](crate::properties_struct), the typed config
//! struct the name server and the controller build from them.

use std::collections::BTreeSet;

use indexmap::IndexMap;

/// Parses `.properties` text as `java.util.Properties.load` does: `=`, `:` or
/// whitespace separators, `#`/`!` comment lines, backslash line
/// continuations, `\uXXXX` and the usual escapes. Later keys win.
pub fn parse(text: &str) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    let mut lines = text.lines();
    while let Some(first) = lines.next() {
        let mut logical = String::new();
        let mut line = first.trim_start_matches([' ', '\t', '\u{c}']);
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        loop {
            if ends_with_odd_backslashes(line) {
                logical.push_str(&line[..line.len() - 1]);
                match lines.next() {
                    Some(next) => line = next.trim_start_matches([' ', '\t', '\u{c}']),
                    None => break,
                }
            } else {
                logical.push_str(line);
                break;
            }
        }
        let (key, value) = split_key_value(&logical);
        out.insert(unescape(key), unescape(value));
    }
    out
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

fn split_key_value(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' | b' ' | b'\t' | b'\x0c' => break,
            _ => i += 1,
        }
    }
    let i = i.min(bytes.len());
    let key = &line[..i];
    let mut rest = line[i..].trim_start_matches([' ', '\t', '\u{c}']);
    if let Some(r) = rest.strip_prefix(['=', ':']) {
        rest = r.trim_start_matches([' ', '\t', '\u{c}']);
    }
    (key, rest)
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&hex),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Writes `key=value` lines, escaping as `Properties.store` would for the
/// characters that matter when read back.
pub fn to_text<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (k, v) in entries {
        escape_into(&mut out, k, true);
        out.push('=');
        escape_into(&mut out, v, false);
        out.push('\n');
    }
    out
}

fn escape_into(out: &mut String, s: &str, is_key: bool) {
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            '=' | ':' | '#' | '!' if is_key => {
                out.push('\\');
                out.push(c);
            }
            ' ' if is_key || i == 0 => out.push_str("\\ "),
            c => out.push(c),
        }
    }
}

/// A typed config field as Java's `MixAll.properties2Object` fills it;
/// written back with `to_string`.
pub trait PropertyValue: Sized + ToString {
    /// What a valid value looks like, for the error message.
    const EXPECTED: &'static str;
    fn parse_property(raw: &str) -> Option<Self>;
}

impl PropertyValue for String {
    const EXPECTED: &'static str = "a string";
    fn parse_property(raw: &str) -> Option<Self> {
        Some(raw.trim().to_owned())
    }
}

impl PropertyValue for bool {
    const EXPECTED: &'static str = "true or false";
    /// Java's `Boolean.parseBoolean` reads anything but "true" as false; a
    /// typo there silently flips a switch, so only true/false are accepted.
    fn parse_property(raw: &str) -> Option<Self> {
        match raw.trim() {
            r if r.eq_ignore_ascii_case("true") => Some(true),
            r if r.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }
}

impl PropertyValue for i32 {
    const EXPECTED: &'static str = "a 32-bit integer";
    fn parse_property(raw: &str) -> Option<Self> {
        raw.trim().parse().ok()
    }
}

impl PropertyValue for i64 {
    const EXPECTED: &'static str = "a 64-bit integer";
    fn parse_property(raw: &str) -> Option<Self> {
        raw.trim().parse().ok()
    }
}

/// A config value that does not parse as its key's type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid value {value:?} for config key {key}: expected {expected}")]
pub struct InvalidProperty {
    pub key: String,
    pub value: String,
    pub expected: &'static str,
}

/// `value` parsed as `key`'s type.
pub fn parse_value<T: PropertyValue>(key: &str, value: &str) -> Result<T, InvalidProperty> {
    T::parse_property(value).ok_or_else(|| InvalidProperty {
        key: key.to_owned(),
        value: value.to_owned(),
        expected: T::EXPECTED,
    })
}

/// The keys a runtime config update may never change: `fixed` plus the
/// `;`-separated entries of the `configBlackList` value (Java's
/// `initConfigBlackList`).
pub fn black_list(fixed: &[&str], configured: &str) -> BTreeSet<String> {
    fixed
        .iter()
        .map(|s| (*s).to_owned())
        .chain(
            configured
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        )
        .collect()
}

#[doc(hidden)]
pub fn warn_unknown_update(key: &str) {
    tracing::warn!(key, "config update for an unknown key ignored");
}

/// Declares a config struct from `field: Type = "javaKey", default;` rows
/// (doc comments allowed on rows), plus `extra`, the file's keys that are
/// none of those. Generated: `KEYS` (in row order), `defaults()`,
/// `set(key, value)` (`Ok(false)` for a key not ours), `entries()` (known
/// keys and values in row order) and `update(props)`, a runtime update as
/// Java's `Configuration.update` does it: known keys change, keys kept in
/// `extra` change, others are ignored with a warning; all or nothing.
/// Field types implement [`PropertyValue`].
#[macro_export]
macro_rules! properties_struct {
    (
        $(#[$smeta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $key:literal, $default:expr; )*
        }
    ) => {
        $(#[$smeta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// Keys from the config file that are none of the above; Java
            /// keeps them and reports them with the rest of the config.
            pub extra: ::std::collections::BTreeMap<String, String>,
        }

        impl $name {
            /// The keys above, in declaration order.
            pub const KEYS: &'static [&'static str] = &[$($key),*];

            fn defaults() -> Self {
                $name { $( $field: $default, )* extra: ::std::collections::BTreeMap::new() }
            }

            /// Sets one known key; `Ok(false)` when the key is not ours.
            pub fn set(
                &mut self,
                key: &str,
                value: &str,
            ) -> Result<bool, $crate::properties::InvalidProperty> {
                match key {
                    $( $key => {
                        self.$field = $crate::properties::parse_value::<$ty>(key, value)?;
                        Ok(true)
                    } )*
                    _ => Ok(false),
                }
            }

            /// `key=value` pairs of the known keys, in declaration order.
            pub fn entries(&self) -> Vec<(&'static str, String)> {
                vec![ $( ($key, self.$field.to_string()), )* ]
            }

            /// A runtime update: see [`properties_struct!`]. A bad value
            /// leaves `self` unchanged.
            pub fn update<'a>(
                &mut self,
                props: impl IntoIterator<Item = (&'a str, &'a str)>,
            ) -> Result<(), $crate::properties::InvalidProperty> {
                let mut next = self.clone();
                for (key, value) in props {
                    if next.set(key, value)? {
                        continue;
                    }
                    if let Some(slot) = next.extra.get_mut(key) {
                        *slot = value.to_owned();
                    } else {
                        $crate::properties::warn_unknown_update(key);
                    }
                }
                *self = next;
                Ok(())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_properties_forms() {
        let text = "# comment\n! also\n  brokerName = broker-a\nlistenPort:10911\nbrokerIP1 127.0.0.1\n\
                    messageDelayLevel=1s 5s \\\n    10s\nunicode=\\u4e2d\\u6587\nempty=\nkey\\=x=y\n";
        let p = parse(text);
        assert_eq!(p["brokerName"], "broker-a");
        assert_eq!(p["listenPort"], "10911");
        assert_eq!(p["brokerIP1"], "127.0.0.1");
        assert_eq!(p["messageDelayLevel"], "1s 5s 10s");
        assert_eq!(p["unicode"], "中文");
        assert_eq!(p["empty"], "");
        assert_eq!(p["key=x"], "y");
        assert_eq!(p.len(), 7);
    }

    #[test]
    fn text_round_trips() {
        let text = to_text([("a b", " lead"), ("k", "x=y:z"), ("path", "C:\\dir")]);
        let p = parse(&text);
        assert_eq!(p["a b"], " lead");
        assert_eq!(p["k"], "x=y:z");
        assert_eq!(p["path"], "C:\\dir");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod struct_tests {
    use super::*;

    crate::properties_struct! {
        /// A test config.
        pub struct Demo {
            /// A port.
            port: i32 = "listenPort", 9876;
            on: bool = "enableThing", false;
            list: String = "configBlackList", "a;b".to_owned();
        }
    }

    #[test]
    fn generated_struct_sets_updates_and_lists_keys() {
        let mut d = Demo::defaults();
        assert_eq!(Demo::KEYS, ["listenPort", "enableThing", "configBlackList"]);
        assert!(d.set("listenPort", " 10911 ").unwrap());
        assert!(!d.set("other", "1").unwrap());
        let err = d.set("enableThing", "yes").unwrap_err();
        assert_eq!(err.key, "enableThing");
        assert_eq!(err.expected, "true or false");
        d.extra.insert("kept".into(), "1".into());
        d.update([("enableThing", "TRUE"), ("kept", "2"), ("unknown", "3")])
            .unwrap();
        assert!(d.on);
        assert_eq!(d.extra["kept"], "2");
        assert!(!d.extra.contains_key("unknown"));
        let before = d.clone();
        assert!(d
            .update([("listenPort", "1"), ("enableThing", "x")])
            .is_err());
        assert_eq!(d, before, "all or nothing");
        assert_eq!(
            d.entries(),
            vec![
                ("listenPort", "10911".to_owned()),
                ("enableThing", "true".to_owned()),
                ("configBlackList", "a;b".to_owned()),
            ]
        );
        let black = black_list(&["rocketmqHome"], &d.list);
        assert_eq!(
            black.into_iter().collect::<Vec<_>>(),
            ["a", "b", "rocketmqHome"]
        );
    }
}
