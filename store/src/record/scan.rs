//! The recovery scan over a commit-log segment: a record, the blank
//! end-of-segment marker, never-written zeros, or the end of the valid log.

use super::{crc32, decode, RecordError, RecordView, BLANK_MAGIC_CODE};

/// What the recovery scan finds at a position of a commit-log segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanItem<'a> {
    /// A valid record (magic, size, body CRC, physical offset all check).
    Record(RecordView<'a>),
    /// The blank marker filling the rest of the segment.
    Blank,
    /// Zero TOTALSIZE: nothing was ever written here.
    End,
    /// Anything else: the valid log ends here.
    Invalid(RecordError),
}

/// Check the bytes at the start of `rest` (the remainder of a segment) for the
/// record expected at commit-log offset `physical_offset`. Stricter than Java:
/// the physical offset must match, the topic must be storable and the blank
/// marker must span exactly the rest of the segment, so stale bytes beyond a
/// truncation never pass. Topic and properties bytes have no checksum in this
/// format: damage there (other than to their lengths) goes unnoticed, as in
/// Java.
pub fn scan(rest: &[u8], physical_offset: i64, check_crc: bool) -> ScanItem<'_> {
    if rest.len() < 8 {
        return if rest.iter().all(|b| *b == 0) {
            ScanItem::End
        } else {
            ScanItem::Invalid(RecordError::Truncated {
                need: 8,
                have: rest.len(),
            })
        };
    }
    let size = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let magic = i32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if size == 0 && magic == 0 {
        return ScanItem::End;
    }
    if magic == BLANK_MAGIC_CODE {
        return if i64::from(size) == rest.len() as i64 {
            ScanItem::Blank
        } else {
            ScanItem::Invalid(RecordError::SizeMismatch {
                declared: i64::from(size),
                actual: rest.len() as i64,
            })
        };
    }
    match decode(rest) {
        Err(e) => ScanItem::Invalid(e),
        Ok(v) if v.physical_offset != physical_offset => {
            ScanItem::Invalid(RecordError::PhysicalOffset {
                stored: v.physical_offset,
                expected: physical_offset,
            })
        }
        Ok(v) if !is_storable_topic(v.topic) => ScanItem::Invalid(RecordError::BadTopic),
        Ok(v) if check_crc && !v.body_crc_ok() => ScanItem::Invalid(RecordError::BodyCrc {
            stored: v.body_crc,
            computed: crc32(v.body),
        }),
        Ok(v) => ScanItem::Record(v),
    }
}

/// Whether a topic can name a consume-queue directory: not empty, not `.` or
/// `..`, no `/`, `\\` or NUL. Java's `TopicValidator` is stricter still.
pub fn is_storable_topic(topic: &str) -> bool {
    !(topic.is_empty() || topic == "." || topic == ".." || topic.contains(['/', '\\', '\0']))
}

/// The blank end-of-segment marker for `len` remaining bytes.
pub fn blank_marker(len: usize) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&(len as i32).to_be_bytes());
    b[4..].copy_from_slice(&BLANK_MAGIC_CODE.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use crate::record::*;

    use crate::record::test_header as header;

    #[test]
    fn scan_rejects_damage() {
        let mut out = Vec::new();
        encode_into(&mut out, &header(), b"body", "T", b"").expect("encode");
        let phys = header().physical_offset;
        let mut bad = out.clone();
        bad[90] ^= 1; // body byte
        assert!(matches!(
            scan(&bad, phys, true),
            ScanItem::Invalid(RecordError::BodyCrc { .. })
        ));
        let mut bad = out.clone();
        bad[3] += 1; // total size
        assert!(matches!(scan(&bad, phys, true), ScanItem::Invalid(_)));
        assert!(matches!(
            scan(&out[..out.len() - 1], phys, true),
            ScanItem::Invalid(_)
        ));
        assert_eq!(scan(&[0u8; 100], phys, true), ScanItem::End);
        let mut blank = vec![0u8; 40];
        blank[..8].copy_from_slice(&blank_marker(40));
        assert_eq!(scan(&blank, phys, true), ScanItem::Blank);
        assert!(matches!(
            scan(&blank[..39], phys, true),
            ScanItem::Invalid(_)
        ));
    }
}
