//! The Raft core: inputs (messages, ticks with the current time, proposals)
//! to outputs (messages to send, commit changes, role changes). No sockets,
//! no clock, no RNG inside; storage is reached through [`Storage`].
//!
//! - [`message`]: typed RPC messages, the contract with the server layer.
//! - [`Node`]: one DLedger member (`node.rs` documents the driving API and
//!   how its state is split into `member`, `elector`, `transfer`, `pusher`,
//!   `quorum`, `follower` and `outbox`).

mod elector;
mod follower;
mod member;
pub mod message;
mod node;
mod outbox;
mod pusher;
mod quorum;
mod storage;
mod transfer;

pub use elector::{ParseResult, SplitMix64};
pub use node::Node;
pub use outbox::{Action, InboundId, OutboundId};
pub use quorum::ProposeOk;
pub use storage::{HardState, Storage, StorageError};

/// Java's 1000 ms periods: COMMIT push, leak checks, fast-forward, preferred leader.
const PERIOD_MS: i64 = 1000;
