//! Typed numbers at the crate's border (as openraft's `LogId`/`Vote`): a
//! term, a log index and an entry's position are all `i64` on the wire and
//! on disk, and easy to swap by mistake in between.
//!
//! - [`Term`]: a Raft term.
//! - [`LogIndex`]: an entry's index in the log; `-1` = none (an empty log,
//!   nothing committed).
//! - [`EntryPos`]: the byte position of an entry's header in the data log.
//!   Not the broker's commit-log offset: that is the body's position,
//!   [`EntryPos::body_pos`] (`pos + BODY_OFFSET`).
//!
//! Each is `Copy`, ordered, and shown as its number; `.0` or `get()` gives
//! the `i64`. The JSON bodies and the core keep plain `i64` (they mirror
//! Java's fields); conversion happens where a value crosses the border.

use std::fmt;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub i64);

        impl $name {
            /// The number.
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id! {
    /// A Raft term.
    Term
}

id! {
    /// An entry's index in the log; `LogIndex::NONE` (-1) when there is none.
    LogIndex
}

id! {
    /// The byte position of an entry (its header) in the data log; the same
    /// on every replica.
    EntryPos
}

impl Term {
    /// The term after this one.
    pub const fn next(self) -> Term {
        Term(self.0 + 1)
    }
}

impl LogIndex {
    /// No entry: the end of an empty log, the committed index before any commit.
    pub const NONE: LogIndex = LogIndex(-1);

    /// The index after this one.
    pub const fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The index `n` entries after this one.
    pub const fn plus(self, n: i64) -> LogIndex {
        LogIndex(self.0 + n)
    }
}

impl EntryPos {
    /// Data-log position of the body of this entry (`pos + BODY_OFFSET`): a
    /// broker message's physical (commit-log) offset.
    pub const fn body_pos(self) -> i64 {
        self.0 + crate::entry::BODY_OFFSET as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_number_and_order_is_numeric() {
        assert_eq!(Term(3).to_string(), "3");
        assert_eq!(format!("{}", LogIndex::NONE), "-1");
        assert_eq!(format!("{:>4}", EntryPos(48)), "  48");
        assert!(LogIndex(-1) < LogIndex(0));
        assert_eq!(LogIndex(4).next(), LogIndex(5));
        assert_eq!(LogIndex(4).plus(-2), LogIndex(2));
        assert_eq!(Term(7).next().get(), 8);
        assert_eq!(EntryPos(100).body_pos(), 148);
    }
}
