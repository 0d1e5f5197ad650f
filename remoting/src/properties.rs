//! Java `.properties` text: configuration files (`broker.conf`,
//! `namesrv.properties`) and the config bodies mqadmin exchanges.

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
