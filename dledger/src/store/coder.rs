//! Byte layouts of DLedger's data and index logs (`DL: entry/DLedgerEntryCoder.java`),
//! big-endian, docs/protocol/dledger.md §3.2–3.4. Pure functions over byte slices; nothing here
//! panics on any input.

use bytes::Bytes;

use crate::entry::{Entry, BLANK_MAGIC, BODY_OFFSET, CURRENT_MAGIC, HEADER_SIZE};

/// Size of one index record.
pub const INDEX_UNIT_SIZE: usize = 32;
/// Bytes a data segment must keep free after an entry for the blank record
/// (`MmapFileList.MIN_BLANK_LEN`).
pub const MIN_BLANK_LEN: usize = 8;
/// Offset of the `pos` field inside an entry (`DLedgerEntry.POS_OFFSET`).
pub const POS_OFFSET: usize = 24;
/// Largest encoded entry Java accepts (its thread-local encode buffer is 4 MiB).
pub const MAX_ENTRY_SIZE: usize = 4 * 1024 * 1024;

const BODY_OFFSET_USIZE: usize = BODY_OFFSET as usize;

/// Why bytes are not an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoderError {
    #[error("need {need} bytes, have {have}")]
    Short { need: usize, have: usize },
    #[error("bad entry header: {0}")]
    BadHeader(&'static str),
}

/// The fixed 48 bytes in front of every entry body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHeader {
    pub magic: i32,
    /// Total stored size, header included.
    pub size: i32,
    pub index: i64,
    pub term: i64,
    pub pos: i64,
    pub channel: i32,
    pub chain_crc: i32,
    pub body_crc: i32,
    pub body_len: i32,
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl EntryHeader {
    /// Reads the 48 header bytes at the start of `b` (no validation).
    pub fn read(b: &[u8]) -> Result<EntryHeader, CoderError> {
        if b.len() < BODY_OFFSET_USIZE {
            return Err(CoderError::Short {
                need: BODY_OFFSET_USIZE,
                have: b.len(),
            });
        }
        Ok(EntryHeader {
            magic: be_i32(b, 0),
            size: be_i32(b, 4),
            index: be_i64(b, 8),
            term: be_i64(b, 16),
            pos: be_i64(b, 24),
            channel: be_i32(b, 32),
            chain_crc: be_i32(b, 36),
            body_crc: be_i32(b, 40),
            body_len: be_i32(b, 44),
        })
    }

    /// Java's per-entry shape checks: known magic, `size > 44` and
    /// `bodyLength + 48 == size`.
    pub fn is_well_formed(&self) -> bool {
        self.magic == CURRENT_MAGIC
            && self.size > HEADER_SIZE
            && i64::from(self.body_len) + i64::from(BODY_OFFSET) == i64::from(self.size)
    }
}

/// Appends the stored form of `entry` (header + body) to `out`. The size
/// field is always `48 + body length`, like Java's `computeSizeInBytes`.
pub fn encode_entry_into(entry: &Entry, out: &mut Vec<u8>) {
    out.reserve(BODY_OFFSET_USIZE + entry.body.len());
    out.extend_from_slice(&entry.magic.to_be_bytes());
    out.extend_from_slice(&entry.size().to_be_bytes());
    out.extend_from_slice(&entry.index.to_be_bytes());
    out.extend_from_slice(&entry.term.to_be_bytes());
    out.extend_from_slice(&entry.pos.to_be_bytes());
    out.extend_from_slice(&entry.channel.to_be_bytes());
    out.extend_from_slice(&entry.chain_crc.to_be_bytes());
    out.extend_from_slice(&entry.body_crc.to_be_bytes());
    out.extend_from_slice(&(entry.body.len() as i32).to_be_bytes());
    out.extend_from_slice(&entry.body);
}

/// The stored form of `entry`.
pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    let mut v = Vec::new();
    encode_entry_into(entry, &mut v);
    v
}

/// Overwrites the `pos` field of an encoded entry (`DLedgerEntryCoder.setPos`).
pub fn set_pos(encoded: &mut [u8], pos: i64) {
    if let Some(dst) = encoded.get_mut(POS_OFFSET..POS_OFFSET + 8) {
        dst.copy_from_slice(&pos.to_be_bytes());
    }
}

/// Overwrites magic, index and term of an encoded entry (`setIndexTerm`).
pub fn set_index_term(encoded: &mut [u8], index: i64, term: i64, magic: i32) {
    if encoded.len() >= 24 {
        encoded[0..4].copy_from_slice(&magic.to_be_bytes());
        encoded[8..16].copy_from_slice(&index.to_be_bytes());
        encoded[16..24].copy_from_slice(&term.to_be_bytes());
    }
}

/// Decodes one entry from the start of `b`, which must hold the whole entry.
/// Checks the header shape (magic, size, body length) but not `pos`/index
/// continuity, which depend on where the bytes were found.
pub fn decode_entry(b: &[u8]) -> Result<Entry, CoderError> {
    let h = EntryHeader::read(b)?;
    if !h.is_well_formed() {
        return Err(CoderError::BadHeader("magic, size or body length"));
    }
    let size = h.size as usize;
    if b.len() < size {
        return Err(CoderError::Short {
            need: size,
            have: b.len(),
        });
    }
    Ok(Entry {
        index: h.index,
        term: h.term,
        magic: h.magic,
        pos: h.pos,
        channel: h.channel,
        chain_crc: h.chain_crc,
        body_crc: h.body_crc,
        body: Bytes::copy_from_slice(&b[BODY_OFFSET_USIZE..size]),
    })
}

/// One 32-byte record of the index log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexRecord {
    pub magic: i32,
    pub pos: i64,
    pub size: i32,
    pub index: i64,
    pub term: i64,
}

impl IndexRecord {
    pub fn encode(&self) -> [u8; INDEX_UNIT_SIZE] {
        let mut b = [0u8; INDEX_UNIT_SIZE];
        b[0..4].copy_from_slice(&self.magic.to_be_bytes());
        b[4..12].copy_from_slice(&self.pos.to_be_bytes());
        b[12..16].copy_from_slice(&self.size.to_be_bytes());
        b[16..24].copy_from_slice(&self.index.to_be_bytes());
        b[24..32].copy_from_slice(&self.term.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<IndexRecord, CoderError> {
        if b.len() < INDEX_UNIT_SIZE {
            return Err(CoderError::Short {
                need: INDEX_UNIT_SIZE,
                have: b.len(),
            });
        }
        Ok(IndexRecord {
            magic: be_i32(b, 0),
            pos: be_i64(b, 4),
            size: be_i32(b, 12),
            index: be_i64(b, 16),
            term: be_i64(b, 24),
        })
    }
}

/// The blank record that fills the `remaining` bytes at the end of a data
/// segment: int32 -1, int32 `remaining`, zeros. Shorter than 8 bytes only if
/// `remaining < 8` (Java would throw there; we write what fits).
pub fn blank_record(remaining: usize) -> Vec<u8> {
    let mut b = vec![0u8; remaining];
    let mut head = [0u8; 8];
    head[0..4].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
    head[4..8].copy_from_slice(&(remaining as i32).to_be_bytes());
    let n = remaining.min(8);
    b[..n].copy_from_slice(&head[..n]);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        Entry {
            index: 0x0102_0304_0506_0708,
            term: 3,
            magic: 1,
            pos: 0x1000,
            channel: 0,
            chain_crc: 0,
            body_crc: 0,
            body: Bytes::from_static(b"hi!"),
        }
    }

    #[test]
    fn entry_golden_bytes() {
        // Written by hand from docs/protocol/dledger.md §3.3.
        let expected: Vec<u8> = [
            &[0, 0, 0, 1][..],            // magic
            &[0, 0, 0, 51],               // size = 48 + 3
            &[1, 2, 3, 4, 5, 6, 7, 8],    // index
            &[0, 0, 0, 0, 0, 0, 0, 3],    // term
            &[0, 0, 0, 0, 0, 0, 0x10, 0], // pos
            &[0, 0, 0, 0],                // channel
            &[0, 0, 0, 0],                // chain crc
            &[0, 0, 0, 0],                // body crc
            &[0, 0, 0, 3],                // body length
            b"hi!",
        ]
        .concat();
        assert_eq!(encode_entry(&sample()), expected);
        let back = decode_entry(&expected).expect("decode");
        assert!(back.same_as(&sample()));
        assert_eq!(back.chain_crc, 0);
        assert_eq!(back.body_crc, 0);
    }

    #[test]
    fn empty_body_is_48_bytes() {
        let mut e = sample();
        e.body = Bytes::new();
        let b = encode_entry(&e);
        assert_eq!(b.len(), 48);
        assert_eq!(&b[4..8], &[0, 0, 0, 48]);
        assert!(decode_entry(&b).expect("decode").body.is_empty());
    }

    #[test]
    fn set_pos_and_index_term_patch_in_place() {
        let mut b = encode_entry(&sample());
        set_pos(&mut b, -2);
        set_index_term(&mut b, 9, 8, 1);
        let h = EntryHeader::read(&b).expect("header");
        assert_eq!((h.pos, h.index, h.term, h.magic), (-2, 9, 8, 1));
    }

    #[test]
    fn decode_rejects_bad_shapes_without_panicking() {
        let good = encode_entry(&sample());
        assert!(matches!(
            decode_entry(&good[..47]),
            Err(CoderError::Short { .. })
        ));
        assert!(matches!(
            decode_entry(&good[..50]),
            Err(CoderError::Short { .. })
        ));
        let mut bad = good.clone();
        bad[0..4].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(decode_entry(&bad).is_err());
        let mut bad = good.clone();
        bad[44..48].copy_from_slice(&4i32.to_be_bytes());
        assert!(decode_entry(&bad).is_err());
        let mut bad = good;
        bad[4..8].copy_from_slice(&44i32.to_be_bytes());
        bad[44..48].copy_from_slice(&(-4i32).to_be_bytes());
        assert!(decode_entry(&bad).is_err());
    }

    #[test]
    fn index_record_golden_bytes() {
        let r = IndexRecord {
            magic: 1,
            pos: 0x0A0B,
            size: 51,
            index: 7,
            term: 2,
        };
        let expected: Vec<u8> = [
            &[0, 0, 0, 1][..],
            &[0, 0, 0, 0, 0, 0, 0x0A, 0x0B],
            &[0, 0, 0, 51],
            &[0, 0, 0, 0, 0, 0, 0, 7],
            &[0, 0, 0, 0, 0, 0, 0, 2],
        ]
        .concat();
        assert_eq!(r.encode().to_vec(), expected);
        assert_eq!(IndexRecord::decode(&expected), Ok(r));
        assert!(IndexRecord::decode(&expected[..31]).is_err());
    }

    #[test]
    fn blank_record_bytes() {
        let b = blank_record(20);
        assert_eq!(
            b,
            vec![0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(blank_record(8), vec![0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 8]);
        assert_eq!(blank_record(3), vec![0xFF, 0xFF, 0xFF]);
    }
}
