//! A RocketMQ-compatible broker: the request processors, topic and group
//! metadata, consumer offsets, long polling and name-server registration
//! around the `store` crate.
//!
//! [`run`] serves one broker until a cancellation token fires; the `mqbroker`
//! binary and in-process tests both use it (or [`Broker::start`] to learn
//! when the broker is ready).

mod client;
mod config;
mod dledger;
mod error;
mod filter;
mod lock;
mod message;
mod namesrv;
mod offsets;
mod processor;
mod schedule;
mod server;
mod slave_sync;
mod stats;
mod store;
mod subscription;
mod timer;
mod topic;
mod transaction;

pub use config::{BrokerConfig, BrokerRole, ConfigError};
pub use error::BrokerError;
pub use server::{bind_vip, run, Broker};
