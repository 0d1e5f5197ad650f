//! Admin and query requests mqadmin and clients send
//! (`AdminBrokerProcessor`, `QueryMessageProcessor`).
//!
//! The handlers are split by concern: `topics` (the topic table),
//! `groups` (subscription groups, consumer and producer connections),
//! `offsets` (queue offsets and consumer offsets), `stats` (topic and
//! consume stats), `config` (broker config and runtime info) and
//! `messages` (message views and consume-queue queries and cleanup).

mod config;
mod groups;
mod messages;
mod offsets;
mod stats;
mod topics;

use std::sync::Arc;
use std::time::Instant;

use remoting::body::{to_json, DataVersion};
use remoting::{command_header, RemotingCommand};
use serde::Serialize;
use tokio::sync::Notify;

use crate::meta::client::ClientManager;
use crate::meta::offsets::ConsumerOffsetManager;
use crate::meta::subscription::SubscriptionGroupManager;
use crate::meta::topic::TopicConfigManager;
use crate::processor::SharedConfig;
use crate::stats::BrokerStats;
use crate::store::BrokerStore;

command_header! {
    pub struct TopicHeader {
        pub topic: String = "topic",
    }
}

pub struct AdminProcessor {
    pub config: SharedConfig,
    pub topics: Arc<TopicConfigManager>,
    pub groups: Arc<SubscriptionGroupManager>,
    pub clients: Arc<ClientManager>,
    pub offsets: Arc<ConsumerOffsetManager>,
    pub store: Arc<BrokerStore>,
    pub stats: Arc<BrokerStats>,
    /// Pokes the name-server registration (broker permission changes).
    pub register_now: Arc<Notify>,
    pub boot: Instant,
    pub boot_timestamp: i64,
    pub config_version: std::sync::Mutex<DataVersion>,
}

fn success_with_json<T: Serialize>(value: &T) -> RemotingCommand {
    RemotingCommand::success().with_body(to_json(value))
}
