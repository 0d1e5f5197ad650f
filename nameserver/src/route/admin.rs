//! Admin edits: write permission of a broker's topics, and topics deleted
//! or registered by name (DELETE_TOPIC_IN_NAMESRV,
//! REGISTER_TOPIC_IN_NAMESRV).

use std::collections::BTreeMap;

use remoting::body::{perm, QueueData};
use tracing::{info, warn};

use super::RouteTable;

impl RouteTable {
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

    /// DELETE_TOPIC_IN_NAMESRV: the whole topic, or only its queues on the
    /// brokers of `cluster`.
    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) {
        match cluster {
            None => {
                if self.topic_queue_table.remove(topic).is_some() {
                    self.topic_set_changed();
                }
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
        if !existing {
            self.topic_set_changed();
        }
        info!(topic, "topic route registered");
    }
}
