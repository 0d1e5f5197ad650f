//! The RocketMQ 5.x controller (RIP-44) in DLedger state-machine mode,
//! wire-compatible with Java 5.1.1+ controllers, brokers and mqadmin
//! (spec controller.md).
//!
//! * Sans-IO core: [`event`] (log entries), [`state`] (the replicated
//!   tables and their apply rules), [`policy`] (master election),
//!   [`heartbeat`] (node-local liveness), [`compute`] (request handlers as
//!   pure functions), [`body`] (fastjson bodies).
//! * Runtime: [`Controller::start`] runs a DLedger member, replays and
//!   applies its committed log, and serves the controller codes on the
//!   DLedger peer port.

pub mod body;
pub mod compute;
pub mod config;
pub mod event;
pub mod heartbeat;
mod notify;
pub mod policy;
mod runtime;
pub mod state;

pub use config::ControllerConfig;
pub use runtime::{Controller, ControllerError, ControllerHandle};
