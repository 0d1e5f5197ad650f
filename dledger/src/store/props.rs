//! The `checkpoint` and `currterm` files: Java `Properties` text written with
//! DLedger's `IOUtils.string2File` procedure (docs/protocol/dledger.md §3.5).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Parses `key=value` / `key:value` / `key value` lines as Java's
/// `Properties.load` does for the plain text DLedger writes: comments (`#`,
/// `!`) and blank lines skipped, whitespace around keys trimmed, simple
/// backslash escapes undone. Never fails.
pub(crate) fn parse(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim_start_matches([' ', '\t', '\u{c}']);
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let mut key = String::new();
        let mut chars = line.chars().peekable();
        let mut escaped = false;
        while let Some(&c) = chars.peek() {
            if escaped {
                key.push(c);
                escaped = false;
                chars.next();
                continue;
            }
            if c == '\\' {
                escaped = true;
                chars.next();
                continue;
            }
            if c == '=' || c == ':' || c == ' ' || c == '\t' {
                break;
            }
            key.push(c);
            chars.next();
        }
        let rest: String = chars.collect();
        let rest = rest.trim_start_matches([' ', '\t']);
        let rest = rest
            .strip_prefix('=')
            .or_else(|| rest.strip_prefix(':'))
            .unwrap_or(rest);
        let value = rest.trim_start_matches([' ', '\t']);
        let mut v = String::new();
        let mut esc = false;
        for c in value.chars() {
            if esc {
                v.push(match c {
                    't' => '\t',
                    'n' => '\n',
                    'r' => '\r',
                    'f' => '\u{c}',
                    o => o,
                });
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else {
                v.push(c);
            }
        }
        out.insert(key, v);
    }
    out
}

/// Reads `path` as properties. When it is missing (a crash between Java's
/// delete and rename), falls back to `.tmp` then `.bak` if they hold `key`.
/// `None` when nothing usable exists.
pub(crate) fn load(path: &Path, key: &str) -> Option<HashMap<String, String>> {
    let read = |p: &Path| -> Option<HashMap<String, String>> {
        let bytes = std::fs::read(p).ok()?;
        let text = String::from_utf8_lossy(&bytes);
        Some(parse(&text))
    };
    if path.exists() {
        return read(path);
    }
    for suffix in [".tmp", ".bak"] {
        if let Some(p) = read(&with_suffix(path, suffix)) {
            if p.contains_key(key) {
                return Some(p);
            }
        }
    }
    None
}

/// Java's `IOUtils.string2File`: write `<name>.tmp`, copy the old content to
/// `<name>.bak`, delete `<name>`, rename the tmp file. With `sync` the tmp
/// file and the directory are fsynced (Java never fsyncs).
pub(crate) fn store(path: &Path, pairs: &[(&str, String)], sync: bool) -> std::io::Result<()> {
    let mut text = String::new();
    for (k, v) in pairs {
        text.push_str(k);
        text.push('=');
        text.push_str(v);
        text.push('\n');
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = with_suffix(path, ".tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        if sync {
            f.sync_all()?;
        }
    }
    if let Ok(prev) = std::fs::read(path) {
        std::fs::write(with_suffix(path, ".bak"), prev)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::rename(&tmp, path)?;
    if sync {
        if let Some(parent) = path.parent() {
            if let Ok(d) = std::fs::File::open(parent) {
                let _ = d.sync_all();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_java_properties_lines() {
        let p = parse(
            "#c\n! c\n\n endIndex=5\ncommittedIndex = 3\nvoteLeader=\nk:v\nsp  x\ne=a\\=b\\\\\n",
        );
        assert_eq!(p["endIndex"], "5");
        assert_eq!(p["committedIndex"], "3");
        assert_eq!(p["voteLeader"], "");
        assert_eq!(p["k"], "v");
        assert_eq!(p["sp"], "x");
        assert_eq!(p["e"], "a=b\\");
    }

    #[test]
    fn store_keeps_bak_and_no_tmp() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("currterm");
        store(&f, &[("currTerm", "1".into())], true).expect("store");
        store(&f, &[("currTerm", "2".into())], false).expect("store");
        assert_eq!(std::fs::read_to_string(&f).expect("read"), "currTerm=2\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("currterm.bak")).expect("bak"),
            "currTerm=1\n"
        );
        assert!(!dir.path().join("currterm.tmp").exists());
        // Crash between delete and rename: the tmp file is used.
        std::fs::rename(&f, dir.path().join("currterm.tmp")).expect("mv");
        assert_eq!(load(&f, "currTerm").expect("load")["currTerm"], "2");
    }
}
