//! The two offsets the store's API carries, kept apart by type: a
//! [`CommitLogOffset`] is a byte position in the commit log, a
//! [`QueueOffset`] counts messages in one consume queue. Both are `i64` on
//! the wire (Java `long`); callers convert only there, with `.get()` or
//! `From`. `#[repr(transparent)]` newtypes: no cost over the bare `i64`.
//! `Debug` prints the bare number, as before the newtypes, so logged and
//! formatted results (`PutResult`, `GetResult`) read the same.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A byte position in the commit log (Java's physical offset).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct CommitLogOffset(pub i64);

/// A message's position in one consume queue (Java's logical offset).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct QueueOffset(pub i64);

impl CommitLogOffset {
    #[inline]
    pub const fn new(offset: i64) -> CommitLogOffset {
        CommitLogOffset(offset)
    }

    #[inline]
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl QueueOffset {
    #[inline]
    pub const fn new(offset: i64) -> QueueOffset {
        QueueOffset(offset)
    }

    #[inline]
    pub const fn get(self) -> i64 {
        self.0
    }
}

/// The offset `bytes` further on.
impl Add<i64> for CommitLogOffset {
    type Output = CommitLogOffset;

    #[inline]
    fn add(self, bytes: i64) -> CommitLogOffset {
        CommitLogOffset(self.0 + bytes)
    }
}

impl AddAssign<i64> for CommitLogOffset {
    #[inline]
    fn add_assign(&mut self, bytes: i64) {
        self.0 += bytes;
    }
}

/// Messages from `rhs` to `self`.
impl Sub for QueueOffset {
    type Output = i64;

    #[inline]
    fn sub(self, rhs: QueueOffset) -> i64 {
        self.0 - rhs.0
    }
}

/// Bytes from `rhs` to `self`.
impl Sub for CommitLogOffset {
    type Output = i64;

    #[inline]
    fn sub(self, rhs: CommitLogOffset) -> i64 {
        self.0 - rhs.0
    }
}

impl From<i64> for CommitLogOffset {
    #[inline]
    fn from(offset: i64) -> CommitLogOffset {
        CommitLogOffset(offset)
    }
}

impl From<CommitLogOffset> for i64 {
    #[inline]
    fn from(offset: CommitLogOffset) -> i64 {
        offset.0
    }
}

impl From<i64> for QueueOffset {
    #[inline]
    fn from(offset: i64) -> QueueOffset {
        QueueOffset(offset)
    }
}

impl From<QueueOffset> for i64 {
    #[inline]
    fn from(offset: QueueOffset) -> i64 {
        offset.0
    }
}

impl fmt::Debug for CommitLogOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Debug for QueueOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for CommitLogOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for QueueOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_layout_as_i64() {
        assert_eq!(std::mem::size_of::<CommitLogOffset>(), 8);
        assert_eq!(std::mem::size_of::<QueueOffset>(), 8);
        assert_eq!(
            std::mem::align_of::<QueueOffset>(),
            std::mem::align_of::<i64>()
        );
    }

    #[test]
    fn arithmetic_and_display() {
        let c = CommitLogOffset::new(100);
        assert_eq!(c + 20, CommitLogOffset(120));
        let mut d = c;
        d += 5;
        assert_eq!(d, CommitLogOffset(105));
        assert_eq!(d - c, 5);
        assert_eq!(QueueOffset(9) - QueueOffset(7), 2);
        assert_eq!(c.to_string(), "100");
        assert_eq!(format!("{:?}", [QueueOffset(4)]), "[4]");
        assert_eq!(i64::from(QueueOffset(3)), 3);
    }
}
