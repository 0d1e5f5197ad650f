//! The route table: the name server's only shared state, with no I/O.
//! Callers pass the time and the id of the connection a request came on.
//!
//! Behaviour follows Java's `RouteInfoManager` (5.3.3): which registrations
//! rewrite topic queue data, the slave / acting-master rules, what an
//! unregistration removes, and how routes are assembled.
//!
//! Layout: this file holds the table and the types it deals in;
//! `register` is REGISTER_BROKER, `liveness` how brokers stay and go
//! (heartbeats, the expiry scan, closed connections, UNREGISTER_BROKER),
//! `query` the routes and lists the table answers, `admin` the edits that
//! admin tools make.

mod admin;
mod liveness;
mod query;
mod register;

mod queues;

use std::collections::{BTreeMap, BTreeSet};

use remoting::body::{BrokerData, DataVersion, QueueData};
use serde_json::Value;

use crate::register_body::RoutePayload;
use queues::{BrokerNames, QueueSets, TopicQueueTable};

/// Identifies the connection a broker registered on.
pub type ConnId = u64;

/// `MixAll.MASTER_ID`.
pub const MASTER_ID: i64 = 0;
/// `RouteInfoManager.DEFAULT_BROKER_CHANNEL_EXPIRED_TIME`.
pub const DEFAULT_BROKER_TIMEOUT_MS: i64 = 120_000;
/// `TopicValidator.SYNC_BROKER_MEMBER_GROUP_PREFIX`: routes of these topics are
/// never rewritten for acting masters.
const SYNC_BROKER_MEMBER_GROUP_PREFIX: &str = "rmq_sys_SYNC_BROKER_MEMBER_";
/// `TopicSysFlag` bits.
const FLAG_UNIT: i32 = 0x1;
const FLAG_UNIT_SUB: i32 = 0x2;

/// Key of the liveness table: brokers are told apart by cluster and address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerAddrInfo {
    pub cluster_name: String,
    pub broker_addr: String,
}

impl BrokerAddrInfo {
    pub fn new(cluster_name: &str, broker_addr: &str) -> Self {
        BrokerAddrInfo {
            cluster_name: cluster_name.to_owned(),
            broker_addr: broker_addr.to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BrokerLiveInfo {
    pub last_update_ms: i64,
    pub heartbeat_timeout_ms: i64,
    /// The broker's topic-config version at its last registration.
    pub data_version: DataVersion,
    pub conn: ConnId,
    pub ha_server_addr: String,
}

/// A REGISTER_BROKER request: header fields plus the decoded body.
#[derive(Debug, Clone, Default)]
pub struct RegisterBroker {
    pub cluster_name: String,
    pub broker_addr: String,
    pub broker_name: String,
    pub broker_id: i64,
    pub ha_server_addr: String,
    /// Request ext field `__ZONE_NAME`.
    pub zone_name: Option<String>,
    pub heartbeat_timeout_millis: Option<i64>,
    /// `None` from brokers older than the acting-master feature.
    pub enable_acting_master: Option<bool>,
    pub payload: RoutePayload,
}

/// What a registered slave learns about its master.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterBrokerResult {
    pub ha_server_addr: Option<String>,
    pub master_addr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnregisterBroker {
    pub cluster_name: String,
    pub broker_addr: String,
    pub broker_name: String,
    pub broker_id: i64,
}

/// Switches from the name server config that change route-table behaviour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteOptions {
    pub delete_topic_with_broker_registration: bool,
    pub support_acting_master: bool,
}

/// A route as GET_ROUTEINFO_BY_TOPIC returns it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicRoute {
    pub order_topic_conf: Option<String>,
    pub queue_datas: Vec<QueueData>,
    pub broker_datas: Vec<BrokerData>,
    /// Broker address -> filter servers; Java always sends `{}` in practice.
    pub filter_server_table: BTreeMap<String, Vec<String>>,
    /// Static topics: broker name -> `TopicQueueMappingInfo`.
    pub topic_queue_mapping_by_broker: Option<BTreeMap<String, Value>>,
}

impl TopicRoute {
    /// Java's `ZoneRouteRPCHook`: keeps brokers of `zone` and brokers without
    /// a master, and the queue data of the kept brokers.
    pub fn filter_by_zone(&mut self, zone: &str) {
        let mut removed = BTreeSet::new();
        self.broker_datas.retain(|bd| {
            let keep = !bd.broker_addrs.contains_key(&MASTER_ID)
                || bd
                    .zone_name
                    .as_deref()
                    .is_some_and(|z| z.eq_ignore_ascii_case(zone));
            if !keep {
                removed.insert(bd.broker_name.clone());
                for addr in bd.broker_addrs.values() {
                    self.filter_server_table.remove(addr);
                }
            }
            keep
        });
        self.queue_datas
            .retain(|qd| !removed.contains(&qd.broker_name));
    }
}

/// `BrokerMemberGroup`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerMemberGroup {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addrs: BTreeMap<i64, String>,
}

/// What a topic's encoded route depends on besides the broker, cluster and
/// filter-server tables: topics with the same key (and no static-topic
/// mapping, no order config) have byte-identical route bodies, so one
/// cached body serves them all. Valid while the table is not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteKey {
    /// Identity of the topic's shared queue list.
    queues: usize,
    /// `rmq_sys_SYNC_BROKER_MEMBER_` topics skip the acting-master rewrite.
    sync_member_topic: bool,
}

/// The route table. Memory is dominated by the topic -> queues table (1M
/// queue entries at 100k topics x 10 brokers), so that table stores each
/// topic name once, broker names as small indices into one table, and
/// each distinct list of queue entries once, shared by all topics that
/// have it (usually most topics: same brokers, same queue counts).
#[derive(Debug, Default)]
pub struct RouteTable {
    /// topic -> queues on each broker, ordered by broker name.
    topic_queue_table: TopicQueueTable,
    /// The distinct queue lists `topic_queue_table` points to.
    queue_sets: QueueSets,
    /// Broker names of the queue entries.
    broker_names: BrokerNames,
    /// broker name -> addresses by id.
    broker_addr_table: BTreeMap<String, BrokerData>,
    /// cluster -> broker names.
    cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
    broker_live_table: BTreeMap<BrokerAddrInfo, BrokerLiveInfo>,
    filter_server_table: BTreeMap<BrokerAddrInfo, Vec<String>>,
    /// topic -> broker name -> `TopicQueueMappingInfo`.
    topic_queue_mapping_info_table: BTreeMap<String, BTreeMap<String, Value>>,
    /// Bumped whenever a topic enters or leaves `topic_queue_table`, so
    /// that the (large) topic list answer can be cached between changes.
    topic_set_version: u64,
}

impl RouteTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Changes whenever the set of topics changes (not their queue data).
    pub fn topic_set_version(&self) -> u64 {
        self.topic_set_version
    }

    /// Number of topics with a route.
    pub fn topic_count(&self) -> usize {
        self.topic_queue_table.len()
    }

    fn topic_set_changed(&mut self) {
        self.topic_set_version = self.topic_set_version.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests;
