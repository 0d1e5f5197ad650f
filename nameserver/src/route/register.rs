//! REGISTER_BROKER: the cluster, broker and liveness entries, and which
//! registrations rewrite a topic's queue data (new broker, changed data
//! version, topic missing for this broker), including the slave
//! acting-master rules.

use remoting::body::{perm, BrokerData, DataVersion};
use serde_json::Value;
use std::collections::HashSet;

use tracing::{debug, info, warn};

use super::queues::{Put, QueueEntry};
use super::{
    BrokerAddrInfo, BrokerLiveInfo, ConnId, RegisterBroker, RegisterBrokerResult, RouteOptions,
    RouteTable, DEFAULT_BROKER_TIMEOUT_MS, MASTER_ID,
};
use crate::register_body::RoutePayload;

impl RouteTable {
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
        let RoutePayload {
            data_version,
            topics,
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
        if !id_known && topics.has_one_key() {
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
                if old_live.data_version.state_version > data_version.state_version {
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
            let broker = self.broker_names.intern(&broker_name);
            if opts.delete_topic_with_broker_registration && mapping_info.is_empty() {
                let keys: HashSet<&str> = topics.iter().map(|t| &*t.key).collect();
                let stale: Vec<Box<str>> = self
                    .topic_queue_table
                    .iter()
                    .filter(|(topic, qs)| {
                        qs.iter().any(|q| q.broker == broker) && !keys.contains(&***topic)
                    })
                    .map(|(topic, _)| topic.clone())
                    .collect();
                drop(keys);
                for topic in stale {
                    self.remove_queue_data(&topic, &broker_name);
                }
            }

            // The same for every topic: the broker's data version.
            let broker_changed = register_first
                || self.is_broker_topic_config_changed(&addr_info, Some(&data_version));
            let mut new_topics = 0usize;
            for tq in topics.iter() {
                let topic = tq.name();
                if broker_changed || !self.has_queue_of(topic, broker) {
                    let mut perm = tq.perm;
                    // Slave acting master: the surviving slave with the lowest
                    // id serves reads only.
                    if is_prime_slave && acting_master {
                        perm &= !perm::WRITE;
                    }
                    let e = QueueEntry {
                        broker,
                        perm,
                        read_queue_nums: tq.read_queue_nums,
                        write_queue_nums: tq.write_queue_nums,
                        topic_sys_flag: tq.topic_sys_flag,
                    };
                    if self.create_and_update_queue_data(topic, &broker_name, e) {
                        new_topics += 1;
                    }
                }
            }
            drop(topics);
            if new_topics > 0 {
                info!(broker = %broker_name, new_topics, "new topics registered");
            }

            if broker_changed {
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
                data_version,
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

    pub(super) fn is_broker_topic_config_changed(
        &self,
        addr: &BrokerAddrInfo,
        dv: Option<&DataVersion>,
    ) -> bool {
        match self.broker_live_table.get(addr) {
            None => true,
            Some(live) => Some(&live.data_version) != dv,
        }
    }

    /// Whether `broker` has queues of `topic`.
    fn has_queue_of(&self, topic: &str, broker: super::queues::BrokerIdx) -> bool {
        self.topic_queue_table
            .get(topic)
            .is_some_and(|qs| qs.iter().any(|q| q.broker == broker))
    }

    /// Whether the topic is new.
    fn create_and_update_queue_data(
        &mut self,
        topic: &str,
        broker_name: &str,
        e: QueueEntry,
    ) -> bool {
        match self.put_queue(topic, e) {
            Put::NewTopic => {
                // One line per topic at 100k topics is too much for info.
                debug!(topic, broker = broker_name, "new topic registered");
                true
            }
            Put::Replaced(old) => {
                let names = &self.broker_names;
                info!(topic, broker = broker_name, old = ?old.to_queue_data(names),
                    new = ?e.to_queue_data(names), "topic changed");
                false
            }
            Put::Added | Put::Unchanged => false,
        }
    }

    /// Removes one broker's queues of a topic, and the topic when none remain.
    pub(super) fn remove_queue_data(&mut self, topic: &str, broker_name: &str) {
        let Some(broker) = self.broker_names.get(broker_name) else {
            return;
        };
        if self.remove_queue(topic, broker) {
            info!(
                topic,
                broker = broker_name,
                "removed a broker's queues of a topic"
            );
        }
    }
}
