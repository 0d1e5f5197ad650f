//! The classic HA wire (Java `DefaultHAConnection` / `DefaultHAClient`):
//! no handshake, big-endian integers.
//!
//! - slave → master: an 8-byte report, the slave's commit-log max offset;
//! - master → slave: a 12-byte header (physical offset of the first data
//!   byte, data size) and that many bytes of raw commit log; size 0 is a
//!   heartbeat.

/// Master → slave header: offset (8) + size (4).
pub const TRANSFER_HEADER_SIZE: usize = 12;
/// Slave → master report: one int64.
pub const REPORT_SIZE: usize = 8;

pub fn encode_header(offset: i64, size: u32) -> [u8; TRANSFER_HEADER_SIZE] {
    let mut h = [0u8; TRANSFER_HEADER_SIZE];
    h[..8].copy_from_slice(&offset.to_be_bytes());
    h[8..].copy_from_slice(&size.to_be_bytes());
    h
}

/// A header at the start of `b`: (offset, size), or `None` when fewer than
/// 12 bytes are there. A negative size is returned as is (the caller
/// closes the connection).
pub fn decode_header(b: &[u8]) -> Option<(i64, i32)> {
    let h = b.get(..TRANSFER_HEADER_SIZE)?;
    let mut off = [0u8; 8];
    off.copy_from_slice(&h[..8]);
    let mut size = [0u8; 4];
    size.copy_from_slice(&h[8..]);
    Some((i64::from_be_bytes(off), i32::from_be_bytes(size)))
}

pub fn encode_report(offset: i64) -> [u8; REPORT_SIZE] {
    offset.to_be_bytes()
}

/// Master side: the last complete report among `buffered` bytes of the
/// stream, as Java reads them (it takes the last whole 8-byte word and
/// ignores earlier ones); `None` before the first 8 bytes.
pub fn last_report(buffered: &[u8]) -> Option<i64> {
    let whole = buffered.len() - buffered.len() % REPORT_SIZE;
    let w = buffered.get(whole.checked_sub(REPORT_SIZE)?..whole)?;
    let mut b = [0u8; 8];
    b.copy_from_slice(w);
    Some(i64::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_big_endian() {
        let h = encode_header(0x0102_0304_0506_0708, 0x0A0B_0C0D);
        assert_eq!(h, [1, 2, 3, 4, 5, 6, 7, 8, 0x0A, 0x0B, 0x0C, 0x0D]);
        assert_eq!(
            decode_header(&h),
            Some((0x0102_0304_0506_0708, 0x0A0B_0C0D))
        );
        assert_eq!(decode_header(&h[..11]), None);
        assert_eq!(decode_header(&encode_header(5, u32::MAX)), Some((5, -1)));
    }

    #[test]
    fn the_last_whole_report_wins() {
        assert_eq!(last_report(&[]), None);
        assert_eq!(last_report(&[0; 7]), None);
        let mut s = encode_report(7).to_vec();
        assert_eq!(last_report(&s), Some(7));
        s.extend_from_slice(&encode_report(1 << 40));
        s.extend_from_slice(&[9, 9, 9]);
        assert_eq!(last_report(&s), Some(1 << 40));
    }
}
