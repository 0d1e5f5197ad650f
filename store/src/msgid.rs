//! Message ids.
//!
//! * Offset message ids (docs/protocol/messages.md §5.1,
//!   `MessageDecoder.createMessageId`): store-host address (4 or 16 bytes) +
//!   int32 port + int64 commit-log offset, upper-case hex: 32 chars for IPv4,
//!   56 for IPv6.
//! * Unique ids ([`new_uniq_id`]) for messages that arrive without `UNIQ_KEY`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};

pub fn create_offset_message_id(store_host: SocketAddr, commit_log_offset: i64) -> String {
    let mut bytes = [0u8; 28];
    let addr_len = match store_host.ip() {
        IpAddr::V4(ip) => {
            bytes[..4].copy_from_slice(&ip.octets());
            4
        }
        IpAddr::V6(ip) => {
            bytes[..16].copy_from_slice(&ip.octets());
            16
        }
    };
    bytes[addr_len..addr_len + 4].copy_from_slice(&i32::from(store_host.port()).to_be_bytes());
    bytes[addr_len + 4..addr_len + 12].copy_from_slice(&commit_log_offset.to_be_bytes());
    hex_upper(&bytes[..addr_len + 12])
}

fn hex_upper(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xF)] as char);
    }
    s
}

/// A unique message id for messages that arrive without `UNIQ_KEY`, in the
/// shape of Java's `MessageClientIDSetter` (ip, pid, a per-process random,
/// time, counter), 32 hex characters.
pub fn new_uniq_id(ip: IpAddr) -> String {
    static COUNTER: AtomicU16 = AtomicU16::new(0);
    let mut bytes = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => bytes[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => bytes[..4].copy_from_slice(&v6.octets()[12..]),
    }
    bytes[4..6].copy_from_slice(&(std::process::id() as u16).to_be_bytes());
    bytes[6..10].copy_from_slice(&process_nonce().to_be_bytes());
    bytes[10..14].copy_from_slice(&(now_millis() as i32).to_be_bytes());
    bytes[14..16].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    hex_upper(&bytes)
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn process_nonce() -> i32 {
    use std::hash::{BuildHasher, Hasher};
    static NONCE: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *NONCE.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(now_millis() as u64);
        h.finish() as i32
    })
}

/// Parse an offset message id (either case). `None` unless it is 32 or 56 hex
/// characters with a port in 0..=65535.
pub fn decode_offset_message_id(id: &str) -> Option<(SocketAddr, i64)> {
    let raw = id.as_bytes();
    if raw.len() != 32 && raw.len() != 56 {
        return None;
    }
    let mut bytes = Vec::with_capacity(raw.len() / 2);
    for pair in raw.chunks(2) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        bytes.push((hi * 16 + lo) as u8);
    }
    let addr_len = bytes.len() - 12;
    let ip = if addr_len == 4 {
        IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(&bytes[..4]).ok()?))
    } else {
        IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[..16]).ok()?))
    };
    let port = i32::from_be_bytes(bytes[addr_len..addr_len + 4].try_into().ok()?);
    let port = u16::try_from(port).ok()?;
    let offset = i64::from_be_bytes(bytes[addr_len + 4..].try_into().ok()?);
    Some((SocketAddr::new(ip, port), offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_and_round_trip() {
        let addr: SocketAddr = "10.0.0.5:10911".parse().expect("addr");
        let id = create_offset_message_id(addr, 8000);
        assert_eq!(id, "0A00000500002A9F0000000000001F40");
        assert_eq!(decode_offset_message_id(&id), Some((addr, 8000)));
        assert_eq!(
            decode_offset_message_id(&id.to_lowercase()),
            Some((addr, 8000))
        );
        let v6: SocketAddr = "[2001:db8::7]:10911".parse().expect("addr");
        let id = create_offset_message_id(v6, i64::MAX);
        assert_eq!(id.len(), 56);
        assert_eq!(decode_offset_message_id(&id), Some((v6, i64::MAX)));
        assert_eq!(decode_offset_message_id("XYZ"), None);
        assert_eq!(
            decode_offset_message_id("0A000005FFFFFFFF0000000000001F40"),
            None
        );
    }

    #[test]
    fn uniq_ids_are_32_hex_and_distinct() {
        let ip: IpAddr = "10.0.0.5".parse().expect("ip");
        let a = new_uniq_id(ip);
        let b = new_uniq_id(ip);
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)));
        assert!(a.starts_with("0A000005"));
        assert_ne!(a, b);
    }
}
