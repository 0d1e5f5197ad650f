//! The Raft core: inputs (messages, ticks with the current time, proposals)
//! to outputs (messages to send, commit changes, role changes). No sockets,
//! no clock, no RNG inside; storage is reached through [`Storage`].

mod storage;

pub use storage::{HardState, Storage, StorageError};
