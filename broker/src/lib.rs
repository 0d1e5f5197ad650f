//! A RocketMQ-compatible broker: the request processors, topic and group
//! metadata, consumer offsets, long polling and name-server registration
//! around the `store` crate.
//!
//! [`run`] serves one broker until a cancellation token fires; the `mqbroker`
//! binary and in-process tests both use it (or [`Broker::start`] to learn
//! when the broker is ready).

pub mod client;
pub mod config;
pub mod dledger;
pub mod error;
pub mod filter;
pub mod lock;
pub mod message;
pub mod namesrv;
pub mod offsets;
pub mod processor;
pub mod schedule;
pub mod server;
pub mod slave_sync;
pub mod stats;
pub mod store;
pub mod subscription;
pub mod timer;
pub mod topic;
pub mod transaction;

pub use config::{BrokerConfig, ConfigError};
pub use error::BrokerError;
pub use server::{bind_vip, run, Broker};
