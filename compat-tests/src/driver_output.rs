//! The Go driver build, and parsing of driver and process output for
//! assertions.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{compat_dir, run_with_timeout, workspace_root, Proc};

// ------------------------------------------------------------------------ Go

/// Builds the Go driver (module cache as-is, downloading when needed).
pub fn go_driver() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let go = compat_dir().join("go");
        let out_dir = workspace_root().join("target").join("compat-go");
        let mut c = Command::new("bash");
        c.arg(go.join("build.sh")).arg(&out_dir);
        let out = run_with_timeout(c, Duration::from_secs(1200));
        assert!(
            out.status.success(),
            "go build failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out_dir.join("produce-consume")
    })
    .clone()
}

/// How many sends a Java driver acknowledged so far (its `ACK ` lines).
pub fn acked(driver: &Proc) -> usize {
    driver
        .log_text()
        .lines()
        .filter(|l| l.starts_with("ACK "))
        .count()
}

/// (queue, offset) → [offsetMsgId, uniqId, key] of a Java driver's `ACK` or
/// `MSG` lines (`tag queue offset offsetMsgId uniqId key`; other and partial
/// lines are skipped), and how many lines repeated a (queue, offset) seen
/// before (the last one is kept). Fault tests check acknowledgements with
/// [`crate::invariant::check_acks`], which fails on two `ACK`s at one (queue, offset)
/// instead of keeping the last.
pub fn message_lines(
    out: &str,
    tag: &str,
) -> (std::collections::BTreeMap<(i32, i64), Vec<String>>, usize) {
    let mut m = std::collections::BTreeMap::new();
    let mut dups = 0;
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() != Some(&tag) || f.len() < 6 {
            continue;
        }
        if let (Ok(q), Ok(o)) = (f[1].parse::<i32>(), f[2].parse::<i64>()) {
            if m.insert(
                (q, o),
                vec![f[3].to_owned(), f[4].to_owned(), f[5].to_owned()],
            )
            .is_some()
            {
                dups += 1;
            }
        }
    }
    (m, dups)
}

/// Waits (at most `timeout`, and only while it runs) until a push consumer
/// driver printed a `GOT <key> ...` line for every key of `keys`; returns
/// the deliveries per key. Panics with the missing keys and `logs()`.
pub fn wait_delivered(
    consumer: &mut Proc,
    keys: &[String],
    timeout: Duration,
    logs: impl Fn() -> String,
) -> std::collections::HashMap<String, usize> {
    let mut delivered = std::collections::HashMap::new();
    let deadline = Instant::now() + timeout;
    loop {
        delivered.clear();
        for l in consumer.log_text().lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 3 && f[0] == "GOT" {
                *delivered.entry(f[1].to_owned()).or_default() += 1;
            }
        }
        let missing: Vec<&String> = keys
            .iter()
            .filter(|k| !delivered.contains_key(*k))
            .collect();
        if missing.is_empty() {
            return delivered;
        }
        assert!(
            consumer.is_running() && Instant::now() < deadline,
            "push consumer misses {} of {} acknowledged messages, e.g. {:?}\n{}",
            missing.len(),
            keys.len(),
            missing.iter().take(10).collect::<Vec<_>>(),
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `stdout + stderr` of an output, for assertion messages.
/// The last `n` lines of `text`, joined by newlines (for failure messages).
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// [`tail_lines`] of a file; empty if it cannot be read.
pub fn file_tail(path: &Path, n: usize) -> String {
    tail_lines(&std::fs::read_to_string(path).unwrap_or_default(), n)
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Parses `addr` for callers that need a socket address.
pub fn socket(addr: &str) -> SocketAddr {
    addr.parse().expect("socket address")
}
