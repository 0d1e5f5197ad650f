//! Request processors, one per area, each holding only the services it uses.

pub mod admin;
pub mod client;
pub mod ha_status;
pub mod pop;
pub mod pull;
pub mod query;
pub mod relay;
pub mod send;
pub mod table;
pub mod transaction;

use std::sync::{Arc, RwLock};

use crate::config::BrokerConfig;

/// The live configuration; UPDATE_BROKER_CONFIG changes it at runtime.
pub type SharedConfig = Arc<RwLock<BrokerConfig>>;

pub(crate) fn read_config(c: &SharedConfig) -> std::sync::RwLockReadGuard<'_, BrokerConfig> {
    c.read().unwrap_or_else(|p| p.into_inner())
}
