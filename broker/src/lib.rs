//! broker crate.
