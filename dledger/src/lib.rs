//! dledger crate.
