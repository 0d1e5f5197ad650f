//! The route table: the name server's only shared state, with no I/O.
//! Callers pass the time and the id of the connection a request came on.
//!
//! Behaviour follows Java's `RouteInfoManager` (5.3.3): which registrations
//! rewrite topic queue data, the slave / acting-master rules, what an
//! unregistration removes, and how routes are assembled.

use std::collections::{BTreeMap, BTreeSet};

use remoting::body::{
    perm, BrokerData, ClusterInfo, DataVersion, QueueData, TopicConfig, TopicList,
};
use serde_json::Value;
use tracing::{info, warn};

use crate::register_body::RegisterPayload;

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
    pub payload: RegisterPayload,
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

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// topic -> broker name -> queues.
    topic_queue_table: BTreeMap<String, BTreeMap<String, QueueData>>,
    /// broker name -> addresses by id.
    broker_addr_table: BTreeMap<String, BrokerData>,
    /// cluster -> broker names.
    cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
    broker_live_table: BTreeMap<BrokerAddrInfo, BrokerLiveInfo>,
    filter_server_table: BTreeMap<BrokerAddrInfo, Vec<String>>,
    /// topic -> broker name -> `TopicQueueMappingInfo`.
    topic_queue_mapping_info_table: BTreeMap<String, BTreeMap<String, Value>>,
}

impl RouteTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or refreshes) a broker. `None` when Java answers "register
    /// broker failed": a single-topic registration from a broker whose id is
    /// not registered yet.
    pub fn register_broker(
        &mut self,
        req: RegisterBroker,
        conn: ConnId,
        now_ms: i64,
        opts: RouteOptions,
    ) -> Option<RegisterBrokerResult> {
        let RegisterBroker {
            cluster_name,
            broker_addr,
            broker_name,
            broker_id,
            ha_server_addr,
            zone_name,
            heartbeat_timeout_millis,
            enable_acting_master,
            payload,
        } = req;
        let RegisterPayload {
            mut wrapper,
            filter_server_list,
            mapping_info,
        } = payload;
        let addr_info = BrokerAddrInfo::new(&cluster_name, &broker_addr);

        // A broker registers one new topic at once only after a full
        // registration. Java checks this after touching the cluster and
        // broker tables and so leaves an address-less broker behind; checking
        // first leaves the table as it was.
        let id_known = self
            .broker_addr_table
            .get(&broker_name)
            .is_some_and(|bd| bd.broker_addrs.contains_key(&broker_id));
        if !id_known && wrapper.topic_config_table.len() == 1 {
            warn!(broker = %broker_name, broker_id, addr = %broker_addr,
                "single-topic registration before the broker's first registration, rejected");
            return None;
        }

        self.cluster_addr_table
            .entry(cluster_name.clone())
            .or_default()
            .insert(broker_name.clone());

        let mut register_first = false;
        let bd = self
            .broker_addr_table
            .entry(broker_name.clone())
            .or_insert_with(|| {
                register_first = true;
                BrokerData {
                    cluster: cluster_name.clone(),
                    broker_name: broker_name.clone(),
                    ..Default::default()
                }
            });
        let is_old_version_broker = enable_acting_master.is_none();
        bd.enable_acting_master = enable_acting_master.unwrap_or(false);
        bd.zone_name = zone_name;

        // One address has one id: a slave promoted to master first
        // disappears under its old id.
        bd.broker_addrs
            .retain(|id, addr| !(*addr == broker_addr && *id != broker_id));

        // Another address already holds this id: the newer state version wins.
        if let Some(old_addr) = bd
            .broker_addrs
            .get(&broker_id)
            .filter(|a| **a != broker_addr)
        {
            let old_info = BrokerAddrInfo::new(&cluster_name, old_addr);
            if let Some(old_live) = self.broker_live_table.get(&old_info) {
                if old_live.data_version.state_version > wrapper.data_version.state_version {
                    warn!(
                        cluster = %cluster_name, broker = %broker_name, broker_id, old_addr = %old_info.broker_addr,
                        new_addr = %broker_addr, "registering broker conflicts with a newer one, ignored"
                    );
                    self.broker_live_table.remove(&addr_info);
                    return Some(RegisterBrokerResult::default());
                }
            }
        }

        let old_addr = bd.broker_addrs.insert(broker_id, broker_addr.clone());
        register_first |= old_addr.as_deref().unwrap_or_default().is_empty();

        let is_master = broker_id == MASTER_ID;
        let is_prime_slave = !is_old_version_broker
            && !is_master
            && bd.broker_addrs.keys().next() == Some(&broker_id);
        let acting_master = bd.enable_acting_master;

        if is_master || is_prime_slave {
            if opts.delete_topic_with_broker_registration && mapping_info.is_empty() {
                let stale: Vec<String> = self
                    .topic_queue_table
                    .iter()
                    .filter(|(topic, qds)| {
                        qds.contains_key(&broker_name)
                            && !wrapper.topic_config_table.contains_key(*topic)
                    })
                    .map(|(topic, _)| topic.clone())
                    .collect();
                for topic in stale {
                    self.remove_queue_data(&topic, &broker_name);
                }
            }

            for (key, tc) in wrapper.topic_config_table.iter_mut() {
                if tc.topic_name.is_empty() {
                    tc.topic_name = key.clone();
                }
                if register_first
                    || self.is_topic_config_changed(
                        &addr_info,
                        &wrapper.data_version,
                        &broker_name,
                        &tc.topic_name,
                    )
                {
                    // Slave acting master: the surviving slave with the lowest
                    // id serves reads only.
                    if is_prime_slave && acting_master {
                        tc.perm &= !perm::WRITE;
                    }
                    self.create_and_update_queue_data(&broker_name, tc);
                }
            }

            if register_first
                || self.is_broker_topic_config_changed(&addr_info, Some(&wrapper.data_version))
            {
                for (topic, info) in mapping_info {
                    let bname = info
                        .get("bname")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    self.topic_queue_mapping_info_table
                        .entry(topic)
                        .or_default()
                        .insert(bname, info);
                }
            }
        }

        let previous = self.broker_live_table.insert(
            addr_info.clone(),
            BrokerLiveInfo {
                last_update_ms: now_ms,
                heartbeat_timeout_ms: heartbeat_timeout_millis.unwrap_or(DEFAULT_BROKER_TIMEOUT_MS),
                data_version: wrapper.data_version,
                conn,
                ha_server_addr,
            },
        );
        if previous.is_none() {
            info!(cluster = %cluster_name, broker = %broker_name, broker_id, addr = %broker_addr, "new broker registered");
        }

        if let Some(list) = filter_server_list {
            if list.is_empty() {
                self.filter_server_table.remove(&addr_info);
            } else {
                self.filter_server_table.insert(addr_info, list);
            }
        }

        let mut result = RegisterBrokerResult::default();
        if !is_master {
            let master_addr = self
                .broker_addr_table
                .get(&broker_name)
                .and_then(|bd| bd.broker_addrs.get(&MASTER_ID));
            if let Some(master_addr) = master_addr {
                if let Some(master) = self
                    .broker_live_table
                    .get(&BrokerAddrInfo::new(&cluster_name, master_addr))
                {
                    result.ha_server_addr = Some(master.ha_server_addr.clone());
                    result.master_addr = Some(master_addr.clone());
                }
            }
        }
        Some(result)
    }

    fn is_broker_topic_config_changed(
        &self,
        addr: &BrokerAddrInfo,
        dv: Option<&DataVersion>,
    ) -> bool {
        match self.broker_live_table.get(addr) {
            None => true,
            Some(live) => Some(&live.data_version) != dv,
        }
    }

    fn is_topic_config_changed(
        &self,
        addr: &BrokerAddrInfo,
        dv: &DataVersion,
        broker_name: &str,
        topic: &str,
    ) -> bool {
        self.is_broker_topic_config_changed(addr, Some(dv))
            || !self
                .topic_queue_table
                .get(topic)
                .is_some_and(|qds| qds.contains_key(broker_name))
    }

    fn create_and_update_queue_data(&mut self, broker_name: &str, tc: &TopicConfig) {
        let qd = QueueData {
            broker_name: broker_name.to_owned(),
            perm: tc.perm,
            read_queue_nums: tc.read_queue_nums,
            topic_sys_flag: tc.topic_sys_flag,
            write_queue_nums: tc.write_queue_nums,
        };
        let qds = self
            .topic_queue_table
            .entry(tc.topic_name.clone())
            .or_default();
        match qds.insert(broker_name.to_owned(), qd.clone()) {
            None if qds.len() == 1 => {
                info!(topic = %tc.topic_name, broker = broker_name, "new topic registered")
            }
            Some(old) if old != qd => {
                info!(topic = %tc.topic_name, broker = broker_name, ?old, new = ?qd, "topic changed")
            }
            _ => {}
        }
    }

    /// Removes one broker's queues of a topic, and the topic when none remain.
    fn remove_queue_data(&mut self, topic: &str, broker_name: &str) {
        if let Some(qds) = self.topic_queue_table.get_mut(topic) {
            if qds.remove(broker_name).is_some() {
                info!(
                    topic,
                    broker = broker_name,
                    "removed a broker's queues of a topic"
                );
            }
            if qds.is_empty() {
                self.topic_queue_table.remove(topic);
            }
        }
    }

    /// UNREGISTER_BROKER, and the common end of every way a broker goes away.
    pub fn unregister_brokers(&mut self, requests: &[UnregisterBroker]) {
        let mut removed_brokers = BTreeSet::new();
        let mut reduced_brokers = BTreeSet::new();
        for req in requests {
            let addr_info = BrokerAddrInfo::new(&req.cluster_name, &req.broker_addr);
            let live = self.broker_live_table.remove(&addr_info);
            self.filter_server_table.remove(&addr_info);
            info!(cluster = %req.cluster_name, broker = %req.broker_name, addr = %req.broker_addr,
                was_live = live.is_some(), "unregister broker");

            let mut remove_broker_name = false;
            if let Some(bd) = self.broker_addr_table.get_mut(&req.broker_name) {
                bd.broker_addrs.retain(|_, addr| *addr != req.broker_addr);
                if bd.broker_addrs.is_empty() {
                    self.broker_addr_table.remove(&req.broker_name);
                    remove_broker_name = true;
                }
            }
            if remove_broker_name {
                if let Some(names) = self.cluster_addr_table.get_mut(&req.cluster_name) {
                    names.remove(&req.broker_name);
                    if names.is_empty() {
                        self.cluster_addr_table.remove(&req.cluster_name);
                    }
                }
                removed_brokers.insert(req.broker_name.clone());
            } else {
                reduced_brokers.insert(req.broker_name.clone());
            }
        }
        self.clean_topics(&removed_brokers, &reduced_brokers);
    }

    /// `cleanTopicByUnRegisterRequests`.
    fn clean_topics(&mut self, removed: &BTreeSet<String>, reduced: &BTreeSet<String>) {
        let broker_addr_table = &self.broker_addr_table;
        self.topic_queue_table.retain(|_, qds| {
            for name in removed {
                qds.remove(name);
            }
            for name in reduced {
                let Some(qd) = qds.get_mut(name) else {
                    continue;
                };
                let Some(bd) = broker_addr_table.get(name) else {
                    continue;
                };
                // The master left and a slave acts for it: no more writes.
                let no_master =
                    !matches!(bd.broker_addrs.keys().next(), Some(id) if *id <= MASTER_ID);
                if bd.enable_acting_master && no_master {
                    qd.perm &= !perm::WRITE;
                }
            }
            !qds.is_empty()
        });
    }

    /// Unregisters whatever is registered at `addr` (Java `onChannelDestroy`).
    fn destroy_broker_addr(&mut self, addr: &BrokerAddrInfo) {
        let found = self.broker_addr_table.values().find_map(|bd| {
            if bd.cluster != addr.cluster_name {
                return None;
            }
            bd.broker_addrs
                .iter()
                .find(|(_, a)| **a == addr.broker_addr)
                .map(|(id, _)| UnregisterBroker {
                    cluster_name: addr.cluster_name.clone(),
                    broker_addr: addr.broker_addr.clone(),
                    broker_name: bd.broker_name.clone(),
                    broker_id: *id,
                })
        });
        match found {
            Some(req) => self.unregister_brokers(&[req]),
            // Java would leave such an entry to expire again at every scan.
            None => {
                self.broker_live_table.remove(addr);
                self.filter_server_table.remove(addr);
            }
        }
    }

    /// The connection `conn` closed: every broker registered on it goes away
    /// at once (Java `BrokerHousekeepingService`). Returns what was removed.
    pub fn connection_closed(&mut self, conn: ConnId) -> Vec<BrokerAddrInfo> {
        let gone: Vec<BrokerAddrInfo> = self
            .broker_live_table
            .iter()
            .filter(|(_, l)| l.conn == conn)
            .map(|(k, _)| k.clone())
            .collect();
        for addr in &gone {
            info!(cluster = %addr.cluster_name, addr = %addr.broker_addr, "broker connection closed, unregistering");
            self.destroy_broker_addr(addr);
        }
        gone
    }

    /// Removes brokers not heard from within their timeout
    /// (`scanNotActiveBroker`). Returns their connections, which Java closes.
    pub fn scan_not_active(&mut self, now_ms: i64) -> Vec<ConnId> {
        let expired: Vec<(BrokerAddrInfo, ConnId, i64)> = self
            .broker_live_table
            .iter()
            .filter(|(_, l)| l.last_update_ms.saturating_add(l.heartbeat_timeout_ms) < now_ms)
            .map(|(k, l)| (k.clone(), l.conn, l.heartbeat_timeout_ms))
            .collect();
        let mut conns = Vec::with_capacity(expired.len());
        for (addr, conn, timeout_ms) in expired {
            warn!(cluster = %addr.cluster_name, addr = %addr.broker_addr, timeout_ms, "broker expired");
            self.destroy_broker_addr(&addr);
            conns.push(conn);
        }
        conns
    }

    /// Refreshes a broker's liveness (BROKER_HEARTBEAT, QUERY_DATA_VERSION).
    pub fn touch(&mut self, addr: &BrokerAddrInfo, now_ms: i64) {
        if let Some(live) = self.broker_live_table.get_mut(addr) {
            live.last_update_ms = now_ms;
        }
    }

    /// QUERY_DATA_VERSION: whether `dv` differs from what the broker last
    /// registered, and what that was. Refreshes liveness.
    pub fn query_data_version(
        &mut self,
        addr: &BrokerAddrInfo,
        dv: Option<&DataVersion>,
        now_ms: i64,
    ) -> (bool, Option<DataVersion>) {
        let changed = self.is_broker_topic_config_changed(addr, dv);
        self.touch(addr, now_ms);
        (
            changed,
            self.broker_live_table
                .get(addr)
                .map(|l| l.data_version.clone()),
        )
    }

    /// The route of `topic`, or `None` when no registered broker serves it
    /// (`pickupTopicRouteData`).
    pub fn topic_route(&self, topic: &str, opts: RouteOptions) -> Option<TopicRoute> {
        let qds = self.topic_queue_table.get(topic)?;
        let mut route = TopicRoute {
            queue_datas: qds.values().cloned().collect(),
            ..Default::default()
        };
        for name in qds.keys() {
            let Some(bd) = self.broker_addr_table.get(name) else {
                continue;
            };
            if !self.filter_server_table.is_empty() {
                for addr in bd.broker_addrs.values() {
                    if let Some(list) = self
                        .filter_server_table
                        .get(&BrokerAddrInfo::new(&bd.cluster, addr))
                    {
                        route.filter_server_table.insert(addr.clone(), list.clone());
                    }
                }
            }
            route.broker_datas.push(bd.clone());
        }
        if route.broker_datas.is_empty() {
            return None;
        }
        route.topic_queue_mapping_by_broker =
            self.topic_queue_mapping_info_table.get(topic).cloned();

        if opts.support_acting_master && !topic.starts_with(SYNC_BROKER_MEMBER_GROUP_PREFIX) {
            // A read-only broker without a master: its lowest-id slave is
            // announced as id 0 so that clients can reach it for reads.
            for bd in &mut route.broker_datas {
                if bd.broker_addrs.is_empty()
                    || bd.broker_addrs.contains_key(&MASTER_ID)
                    || !bd.enable_acting_master
                {
                    continue;
                }
                let writable = route
                    .queue_datas
                    .iter()
                    .find(|qd| qd.broker_name == bd.broker_name)
                    .map(|qd| perm::is_writeable(qd.perm));
                if writable == Some(false) {
                    if let Some((_, addr)) = bd.broker_addrs.pop_first() {
                        bd.broker_addrs.insert(MASTER_ID, addr);
                    }
                }
            }
        }
        Some(route)
    }

    pub fn cluster_info(&self) -> ClusterInfo {
        ClusterInfo {
            broker_addr_table: self.broker_addr_table.clone(),
            cluster_addr_table: self
                .cluster_addr_table
                .iter()
                .map(|(c, names)| (c.clone(), names.iter().cloned().collect()))
                .collect(),
        }
    }

    /// WIPE_WRITE_PERM_OF_BROKER / ADD_WRITE_PERM_OF_BROKER: the number of
    /// topics touched. Adding sets read+write outright, as Java does.
    pub fn set_write_perm(&mut self, broker_name: &str, writable: bool) -> i32 {
        let mut count = 0;
        for qds in self.topic_queue_table.values_mut() {
            if let Some(qd) = qds.get_mut(broker_name) {
                qd.perm = if writable {
                    perm::READ | perm::WRITE
                } else {
                    qd.perm & !perm::WRITE
                };
                count += 1;
            }
        }
        count
    }

    pub fn all_topics(&self) -> TopicList {
        TopicList {
            topic_list: self.topic_queue_table.keys().cloned().collect(),
            broker_addr: None,
        }
    }

    /// Topics with queues on any broker of `cluster` (empty for an unknown cluster).
    pub fn topics_by_cluster(&self, cluster: &str) -> TopicList {
        let mut topics = BTreeSet::new();
        if let Some(names) = self.cluster_addr_table.get(cluster) {
            for (topic, qds) in &self.topic_queue_table {
                if names.iter().any(|n| qds.contains_key(n)) {
                    topics.insert(topic.clone());
                }
            }
        }
        TopicList {
            topic_list: topics.into_iter().collect(),
            broker_addr: None,
        }
    }

    /// Cluster names and broker names (each is also a topic on Java brokers),
    /// plus the address of some broker.
    pub fn system_topics(&self) -> TopicList {
        let mut topics = Vec::new();
        for (cluster, names) in &self.cluster_addr_table {
            topics.push(cluster.clone());
            topics.extend(names.iter().cloned());
        }
        let broker_addr = self
            .broker_addr_table
            .values()
            .find_map(|bd| bd.broker_addrs.values().next().cloned());
        TopicList {
            topic_list: dedup_keep_order(topics),
            broker_addr,
        }
    }

    fn topics_where(&self, pred: impl Fn(i32) -> bool) -> TopicList {
        let topic_list = self
            .topic_queue_table
            .iter()
            .filter(|(_, qds)| {
                qds.values()
                    .next()
                    .is_some_and(|qd| pred(qd.topic_sys_flag))
            })
            .map(|(t, _)| t.clone())
            .collect();
        TopicList {
            topic_list,
            broker_addr: None,
        }
    }

    pub fn unit_topics(&self) -> TopicList {
        self.topics_where(|f| f & FLAG_UNIT != 0)
    }

    pub fn has_unit_sub_topics(&self) -> TopicList {
        self.topics_where(|f| f & FLAG_UNIT_SUB != 0)
    }

    pub fn has_unit_sub_ununit_topics(&self) -> TopicList {
        self.topics_where(|f| f & FLAG_UNIT == 0 && f & FLAG_UNIT_SUB != 0)
    }

    /// DELETE_TOPIC_IN_NAMESRV: the whole topic, or only its queues on the
    /// brokers of `cluster`.
    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) {
        match cluster {
            None => {
                self.topic_queue_table.remove(topic);
            }
            Some(cluster) => {
                let Some(names) = self.cluster_addr_table.get(cluster) else {
                    return;
                };
                for name in names.clone() {
                    self.remove_queue_data(topic, &name);
                }
            }
        }
    }

    /// REGISTER_TOPIC_IN_NAMESRV. Like Java, stops at the first queue data of
    /// an unknown broker: nothing is created for a new topic, while the
    /// entries before it are already applied to an existing one.
    pub fn register_topic(&mut self, topic: &str, queue_datas: &[QueueData]) {
        if queue_datas.is_empty() {
            return;
        }
        let existing = self.topic_queue_table.contains_key(topic);
        let mut staged = BTreeMap::new();
        for qd in queue_datas {
            if !self.broker_addr_table.contains_key(&qd.broker_name) {
                warn!(topic, broker = %qd.broker_name, "register topic names an unknown broker");
                if existing {
                    self.topic_queue_table
                        .entry(topic.to_owned())
                        .or_default()
                        .extend(staged);
                }
                return;
            }
            staged.insert(qd.broker_name.clone(), qd.clone());
        }
        self.topic_queue_table
            .entry(topic.to_owned())
            .or_default()
            .extend(staged);
        info!(topic, "topic route registered");
    }

    pub fn broker_member_group(&self, cluster: &str, broker_name: &str) -> BrokerMemberGroup {
        BrokerMemberGroup {
            cluster: cluster.to_owned(),
            broker_name: broker_name.to_owned(),
            broker_addrs: self
                .broker_addr_table
                .get(broker_name)
                .map(|bd| bd.broker_addrs.clone())
                .unwrap_or_default(),
        }
    }

    pub fn live_broker(&self, addr: &BrokerAddrInfo) -> Option<&BrokerLiveInfo> {
        self.broker_live_table.get(addr)
    }

    pub fn live_broker_count(&self) -> usize {
        self.broker_live_table.len()
    }

    pub fn queue_data(&self, topic: &str, broker_name: &str) -> Option<&QueueData> {
        self.topic_queue_table.get(topic)?.get(broker_name)
    }
}

fn dedup_keep_order(items: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    items
        .into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
