//! nameserver crate.
