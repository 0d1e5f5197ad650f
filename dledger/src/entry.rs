//! A DLedger entry as stored and as sent in PUSH requests (`DL: entry/DLedgerEntry.java`).

use bytes::Bytes;

use crate::ids::EntryPos;

/// The magic Java writes for every entry (`CURRENT_MAGIC`).
pub const CURRENT_MAGIC: i32 = 1;
/// Magic of the blank record that fills the end of a data segment.
pub const BLANK_MAGIC: i32 = -1;
/// Bytes before the body length field; Java's validity check is `size > HEADER_SIZE`.
pub const HEADER_SIZE: i32 = 44;
/// Offset of the body inside a stored entry; a broker message's physical
/// offset is `pos + BODY_OFFSET`.
pub const BODY_OFFSET: i32 = 48;

/// Data-log position of the body of the entry at `pos`: a broker message's
/// physical (commit-log) offset.
pub fn body_pos(pos: EntryPos) -> i64 {
    pos.body_pos()
}

/// One log entry. `index` and `pos` are absolute; `-1` means "not assigned".
#[derive(Clone, Debug)]
pub struct Entry {
    pub index: i64,
    pub term: i64,
    pub magic: i32,
    /// Absolute byte position of the entry in the data log; identical on every replica.
    pub pos: i64,
    pub channel: i32,
    /// Always 0 in 0.3.1.2: never computed, never checked.
    pub chain_crc: i32,
    /// Always 0 in 0.3.1.2: never computed, never checked.
    pub body_crc: i32,
    pub body: Bytes,
}

impl Entry {
    /// A new entry for `body`, index, term and position still to be assigned.
    pub fn new(body: Bytes) -> Self {
        Entry {
            index: -1,
            term: -1,
            magic: CURRENT_MAGIC,
            pos: -1,
            channel: 0,
            chain_crc: 0,
            body_crc: 0,
            body,
        }
    }

    /// Data-log position of the body (`pos + BODY_OFFSET`): a broker
    /// message's physical offset.
    pub fn body_pos(&self) -> i64 {
        body_pos(EntryPos(self.pos))
    }

    /// Stored size: header plus body.
    pub fn size(&self) -> i32 {
        BODY_OFFSET + self.body.len() as i32
    }

    /// DLedger's entry equality (COMPARE, TRUNCATE, follower dedup): every
    /// field but the two CRCs.
    pub fn same_as(&self, other: &Entry) -> bool {
        self.index == other.index
            && self.term == other.term
            && self.magic == other.magic
            && self.pos == other.pos
            && self.channel == other.channel
            && self.body == other.body
    }
}
