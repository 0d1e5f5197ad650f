//! DLedger: RocketMQ's Raft variant, compatible on the wire and on disk with
//! Java DLedger 0.3.1.2.
//!
//! - [`entry`]: the entry type shared by every layer.
//! - [`core`]: the Raft state machine with no I/O; storage is reached through
//!   the [`core::Storage`] trait, time and randomness are passed in.

pub mod core;
pub mod entry;
