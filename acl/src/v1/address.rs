//! ACL 1.0 remote-address patterns (spec acl.md §2.3), decided as Java's
//! `RemoteAddressStrategyFactory` decides them, quirks included.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::V1Error;

/// One parsed `whiteRemoteAddress` / `globalWhiteRemoteAddresses` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressPattern {
    /// Blank or absent: matches nothing.
    Blank,
    /// `*`, `*.*.*.*`, `*:*:*:*:*:*:*:*`: matches everything.
    Any,
    /// `a.b.c.{1,2}`, `1050::{1,2}` or `a,b`: the listed addresses (IPv6 expanded).
    Multiple(HashSet<String>),
    /// One exact address (stored expanded, upper case).
    One(String),
    /// A fixed prefix, then one segment in `[start, end]`.
    Range(Range),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// `None` when Java never found a range segment (its matcher then fails
    /// on every address; we match nothing).
    head: Option<String>,
    start: i64,
    end: i64,
    index: usize,
    v6: bool,
}

fn bad(what: impl Into<String>) -> V1Error {
    V1Error::Acl(what.into())
}

fn is_v4(s: &str) -> bool {
    s.parse::<Ipv4Addr>().is_ok()
}

fn is_v6(s: &str) -> bool {
    s.parse::<Ipv6Addr>().is_ok()
}

/// `StringUtils.split(s, sep)`: tokens between separators, empty ones dropped.
fn split(s: &str, sep: char) -> Vec<&str> {
    s.split(sep).filter(|t| !t.is_empty()).collect()
}

fn java_int(s: &str, radix: u32) -> Result<i64, V1Error> {
    i64::from_str_radix(s, radix)
        .ok()
        .filter(|v| i32::try_from(*v).is_ok())
        .ok_or_else(|| bad(format!("For input string: \"{s}\"")))
}

/// `AclUtils.expandIP`: upper-case, `::` expanded to reach `part` groups,
/// every group left-padded to 4 characters with `0`.
pub fn expand_ip(addr: &str, part: usize) -> String {
    let mut addr = addr.to_uppercase();
    let colons = addr.matches(':').count();
    if part > colons {
        let pad = ":".repeat(part - colons + 1);
        addr = addr.replace("::", &pad);
    }
    addr.split(':')
        .map(|g| {
            if g.chars().count() < 4 {
                format!("{}{g}", "0".repeat(4 - g.chars().count()))
            } else {
                g.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// The client address as Java prints it (`InetAddress.getHostAddress`): IPv4
/// dotted, IPv6 as eight lower-case groups without compression.
pub fn java_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6
                .segments()
                .iter()
                .map(|s| format!("{s:x}"))
                .collect::<Vec<_>>()
                .join(":"),
        },
    }
}

impl AddressPattern {
    pub fn parse(pattern: Option<&str>) -> Result<Self, V1Error> {
        let p = match pattern {
            Some(p) if !p.trim().is_empty() => p,
            _ => return Ok(AddressPattern::Blank),
        };
        if matches!(p, "*" | "*.*.*.*" | "*:*:*:*:*:*:*:*") {
            return Ok(AddressPattern::Any);
        }
        if p.ends_with('}') {
            let sep = if p.contains(':') { ':' } else { '.' };
            let parts = split(p, sep);
            if sep == '.' && parts.len() < 4 {
                return Err(bad(format!(
                    "MultipleRemoteAddressStrategy has got a/some wrong format IP(s): {p} "
                )));
            }
            let last = parts.last().copied().unwrap_or("");
            if !last.starts_with('{') {
                return Err(bad(format!(
                    "MultipleRemoteAddressStrategy netAddress examine scope Exception netAddress: {p}"
                )));
            }
            let inner = &last[1..last.len() - 1];
            let prefix = &p[..p.find('{').unwrap_or(0)];
            let list: Vec<String> = split(inner, ',')
                .into_iter()
                .map(|s| format!("{prefix}{s}"))
                .collect();
            return Self::multiple(list.iter().map(String::as_str));
        }
        if p.contains(',') {
            return Self::multiple(split(p, ','));
        }
        if p.contains('*') || p.contains('-') {
            return Range::parse(p).map(AddressPattern::Range);
        }
        if !(is_v4(p) || is_v6(p)) {
            return Err(bad(format!(
                "NetAddress examine Exception netAddress is {p}"
            )));
        }
        Ok(AddressPattern::One(expand_ip(p, 8).to_uppercase()))
    }

    fn multiple<'a>(list: impl IntoIterator<Item = &'a str>) -> Result<Self, V1Error> {
        let mut set = HashSet::new();
        for a in list {
            if is_v4(a) {
                set.insert(a.to_owned());
            } else if is_v6(a) {
                set.insert(expand_ip(a, 8));
            } else {
                return Err(bad(format!(
                    "NetAddress examine Exception netAddress is {a}"
                )));
            }
        }
        Ok(AddressPattern::Multiple(set))
    }

    /// Whether `host` (the client address with the port stripped, as
    /// [`java_host`] prints it) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            AddressPattern::Blank => false,
            AddressPattern::Any => true,
            AddressPattern::Multiple(set) => {
                if is_v6(host) {
                    set.contains(&expand_ip(host, 8))
                } else {
                    set.contains(host)
                }
            }
            AddressPattern::One(net) => expand_ip(host, 8).to_uppercase() == *net,
            AddressPattern::Range(r) => r.matches(host),
        }
    }
}

impl Range {
    fn parse(p: &str) -> Result<Self, V1Error> {
        let mut r = Range {
            head: None,
            start: 0,
            end: 0,
            index: 0,
            v6: p.contains(':'),
        };
        if r.v6 {
            ipv6_address_check(p)?;
            let parts = split(p, ':');
            for i in 1..parts.len() {
                if r.analysis(parts[i].trim(), i, 16)? {
                    verify(p, r.index.saturating_sub(1))?;
                    let head = v6_prefix(p);
                    r.index = split(&head, ':').len();
                    r.head = Some(head);
                    break;
                }
            }
        } else {
            let parts = split(p, '.');
            if parts.len() < 4 {
                return Err(bad(format!(
                    "Index {} out of bounds for length {}",
                    parts.len(),
                    parts.len()
                )));
            }
            for i in 1..=3 {
                if r.analysis(parts[i].trim(), i, 10)? {
                    verify(p, i - 1)?;
                    let head: String = parts[..i]
                        .iter()
                        .map(|s| format!("{}.", s.trim()))
                        .collect();
                    r.head = Some(head);
                    break;
                }
            }
        }
        Ok(r)
    }

    /// Java's `analysis`/`ipv6Analysis`: one segment; `start`/`end` persist
    /// across calls as in Java.
    fn analysis(&mut self, value: &str, index: usize, radix: u32) -> Result<bool, V1Error> {
        self.index = index;
        let max = if radix == 16 { 0xffff } else { 255 };
        if value == "*" {
            self.start = 0;
            self.end = max;
        } else if value.contains('-') {
            if value.starts_with('-') {
                return Err(bad(format!(
                    "RangeRemoteAddressStrategy netAddress examine scope Exception value {value} "
                )));
            }
            let bounds = split(value, '-');
            let start = java_int(bounds.first().copied().unwrap_or(""), radix)?;
            let end = java_int(bounds.get(1).copied().unwrap_or(""), radix)?;
            self.start = start;
            self.end = end;
            if !((0..=max).contains(&end) && (0..=max).contains(&start) && start <= end) {
                return Err(bad(format!(
                    "RangeRemoteAddressStrategy netAddress examine scope Exception start is {start} , end is {end}"
                )));
            }
        }
        Ok(self.end > 0)
    }

    fn matches(&self, host: &str) -> bool {
        let Some(head) = &self.head else {
            return false;
        };
        let value = if !self.v6 && is_v4(host) {
            if !host.starts_with(head.as_str()) {
                return false;
            }
            let rest = &host[head.len()..];
            // The segment right after the head.
            let seg = rest.split('.').next().unwrap_or("");
            seg.parse::<i64>().ok()
        } else if is_v6(host) {
            let full = expand_ip(host, 8).to_uppercase();
            if !full.starts_with(head.as_str()) {
                return false;
            }
            full.get(5 * self.index..5 * self.index + 4)
                .and_then(|s| i64::from_str_radix(s, 16).ok())
        } else {
            None
        };
        // Java compares IPv4 heads against IPv4 addresses only (an IPv4 head
        // ends with '.', so it never prefixes an IPv6 address and vice versa).
        matches!(value, Some(v) if v >= self.start && v <= self.end)
    }
}

fn ipv6_address_check(p: &str) -> Result<(), V1Error> {
    let err = || {
        bad(format!(
            "NetAddress examine scope Exception netAddress is {p}"
        ))
    };
    let asterisk = p.find('*');
    let minus = p.find('-');
    if let Some(a) = asterisk {
        if a != p.len() - 1 {
            return Err(err());
        }
    }
    if let Some(m) = minus {
        let last = p.rfind(':');
        let limit = match asterisk {
            None => last,
            Some(_) => last.and_then(|l| p[..l].rfind(':')),
        };
        if let Some(limit) = limit {
            if m <= limit {
                return Err(err());
            }
        }
    }
    Ok(())
}

/// `AclUtils.v6ipProcess`: the fixed part of an IPv6 range, expanded.
fn v6_prefix(p: &str) -> String {
    let (star, minus) = (p.contains('*'), p.contains('-'));
    let (part, sub) = if star && minus {
        let last = p.rfind(':').unwrap_or(0);
        let second = p[..last].rfind(':').unwrap_or(0);
        (6, &p[..second])
    } else if !star && !minus {
        (8, p)
    } else {
        (7, &p[..p.rfind(':').unwrap_or(0)])
    };
    expand_ip(sub, part)
}

/// `AclUtils.verify(p, index)`: the first `index` segments are in range.
fn verify(p: &str, index: usize) -> Result<(), V1Error> {
    let err = || {
        bad(format!(
            "NetAddress examine scope Exception netAddress is {p}"
        ))
    };
    if p.contains(':') {
        let full = expand_ip(p, 8);
        let parts = split(&full, ':');
        for s in parts.iter().take(index) {
            match i64::from_str_radix(s, 16) {
                Ok(v) if (0..=0xffff).contains(&v) => {}
                _ => return Err(err()),
            }
        }
        return Ok(());
    }
    let parts = split(p, '.');
    if parts.len() != 4 {
        return Err(err());
    }
    for s in parts.iter().take(index) {
        let v = java_int(s.trim(), 10)?;
        if !(0..=255).contains(&v) {
            return Err(err());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, host: &str) -> bool {
        AddressPattern::parse(Some(pattern))
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
            .matches(host)
    }

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "10.0.0.1", true),
            ("*.*.*.*", "127.0.0.1", true),
            ("*:*:*:*:*:*:*:*", "0:0:0:0:0:0:0:1", true),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("192.168.1.{1,2,3}", "192.168.1.2", true),
            ("192.168.1.{1,2,3}", "192.168.1.4", false),
            ("10.0.0.1,127.0.0.1", "127.0.0.1", true),
            ("10.0.0.1,10.0.0.2", "127.0.0.1", false),
            ("192.168.1.*", "192.168.1.77", true),
            ("192.168.1.*", "192.168.2.77", false),
            ("192.168.1-10.*", "192.168.5.1", true),
            ("192.168.1-10.*", "192.168.11.1", false),
            ("192.168.*.*", "192.168.200.3", true),
            ("10.*.*.*", "10.9.8.7", true),
            ("10.*.*.*", "127.0.0.1", false),
            ("127.0.0.2-200", "127.0.0.1", false),
            ("127.0.0.1-200", "127.0.0.1", true),
            ("1050::{1,2}", "1050:0:0:0:0:0:0:2", true),
            ("1050::{1,2}", "1050:0:0:0:0:0:0:3", false),
            ("::1", "0:0:0:0:0:0:0:1", true),
            ("2::ac5:78:1-200:*", "2:0:0:0:ac5:78:1ff:1", true),
            ("2::ac5:78:1-200:*", "2:0:0:0:ac5:78:201:1", false),
            ("2::ac5:78:*", "2:0:0:0:ac5:78:9:1", false),
            ("2::ac5:78:*", "2:0:0:0:0:ac5:78:9", true),
            (
                "1050:0:0:0:5:600:300c:*",
                "1050:0:0:0:5:600:300c:326b",
                true,
            ),
        ];
        for (p, host, want) in cases {
            assert_eq!(m(p, host), *want, "{p} vs {host}");
        }
        assert!(!AddressPattern::parse(None).unwrap().matches("127.0.0.1"));
        assert!(!AddressPattern::parse(Some("  "))
            .unwrap()
            .matches("127.0.0.1"));
    }

    #[test]
    fn invalid_patterns_are_refused() {
        for p in [
            "256.0.0.1",
            "abc",
            "10.0.0.1,nope",
            "192.168.{1,2}",
            "192.168.1.-5",
            "192.168.1.5-3",
            "192.168.1.1-300",
            "2::*:5",
            "1.2.3",
        ] {
            assert!(AddressPattern::parse(Some(p)).is_err(), "{p}");
        }
    }

    #[test]
    fn expand_and_java_host() {
        assert_eq!(
            expand_ip("1050::1", 8),
            "1050:0000:0000:0000:0000:0000:0000:0001"
        );
        assert_eq!(expand_ip("127.0.0.1", 8), "127.0.0.1");
        assert_eq!(java_host("::1".parse().unwrap()), "0:0:0:0:0:0:0:1");
        assert_eq!(java_host("::ffff:127.0.0.1".parse().unwrap()), "127.0.0.1");
        assert_eq!(java_host("10.1.2.3".parse().unwrap()), "10.1.2.3");
    }
}
