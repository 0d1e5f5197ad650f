//! DLedger: RocketMQ's Raft variant, compatible on the wire and on disk with
//! Java DLedger 0.3.1.2.
//!
//! - [`entry`]: the entry type shared by every layer.
//! - [`Term`], [`LogIndex`], [`EntryPos`]: the typed numbers of the
//!   [`server`] API (the core and the JSON bodies keep Java's plain `i64`).
//! - [`core`]: the Raft state machine with no I/O; storage is reached through
//!   the [`core::Storage`] trait, time and randomness are passed in.
//! - [`store`]: the mmap log, byte-compatible with Java's `DLedgerMmapFileStore`.
//! - [`protocol`]: DLedger's JSON bodies exactly as fastjson writes them, and
//!   the core's typed messages to and from remoting frames.
//! - [`server`]: the tokio driver (peer port, outbound calls, timers, role
//!   watch, local append/read) and a client; the `dledger` binary wraps both.

pub mod config;
pub mod core;
pub mod entry;
mod ids;
pub mod protocol;
pub mod server;
pub mod sim;
pub mod store;

pub use ids::{EntryPos, LogIndex, Term};
