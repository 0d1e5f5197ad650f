//! A RocketMQ-compatible broker: the request processors, topic and group
//! metadata, consumer offsets, long polling and name-server registration
//! around the `store` crate.
//!
//! [`run`] serves one broker until a cancellation token fires; the `mqbroker`
//! binary and in-process tests both use it (or [`Broker::start`] to learn
//! when the broker is ready).
//!
//! The rooms:
//! * `access/`: ACL 1.0 and Auth 2.0, checked before each request.
//! * `server`: start-up, background tasks, shutdown; `processor/table.rs`
//!   is the request table (code → processor, and what a slave does with it).
//! * `processor/`: the request processors, one per area.
//! * `meta/`: topics, subscription groups, consumer offsets, queue locks,
//!   live clients.
//! * `services/`: delay levels, delivery times, transactions.
//! * `replication/`: the DLedger commit log, slave sync, name-server
//!   registration.
//! * `filter/`: SQL92 message filters; `store`, `message`, `stats`,
//!   `config`, `error`: the store seen from the broker, the properties map,
//!   TPS counters, `broker.conf`, errors and their response codes.

mod access;
mod config;
mod error;
mod filter;
mod grpc;
mod message;
mod meta;
mod metrics;
mod processor;
mod replication;
mod server;
mod services;
mod stats;
mod store;

pub use config::{BrokerConfig, BrokerRole, ConfigError};
pub use error::BrokerError;
pub use server::{bind_vip, run, Broker};
