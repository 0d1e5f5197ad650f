//! compat-tests crate.
