//! Access control as Java's broker decides it.
//!
//! - [`sign`]: the request signature both generations share (spec acl.md §1).
//! - [`v1`]: ACL 1.0, rules from `plain_acl.yml` (§2).
//! - [`v2`]: Auth 2.0, users and policies managed at run time (§3).
//!
//! Pure decisions over plain data: no sockets, no files except where a
//! module says so, so that the broker wires them in as a
//! `remoting::Interceptor`.

pub mod sign;
pub mod v1;
pub mod v2;
