//! Admin edits: write permission of a broker's topics, and topics deleted
//! or registered by name (DELETE_TOPIC_IN_NAMESRV,
//! REGISTER_TOPIC_IN_NAMESRV).

use std::collections::BTreeMap;

use remoting::body::{perm, QueueData};
use tracing::{info, warn};

use super::queues::QueueEntry;
use super::RouteTable;

impl RouteTable {
    /// WIPE_WRITE_PERM_OF_BROKER / ADD_WRITE_PERM_OF_BROKER: the number of
    /// topics touched. Adding sets read+write outright, as Java does.
    pub fn set_write_perm(&mut self, broker_name: &str, writable: bool) -> i32 {
        let Some(broker) = self.broker_names.get(broker_name) else {
            return 0;
        };
        let touched = self.map_queues(|qs| {
            if !qs.iter().any(|q| q.broker == broker) {
                return None;
            }
            Some(
                qs.iter()
                    .map(|q| {
                        let mut q = *q;
                        if q.broker == broker {
                            q.perm = if writable {
                                perm::READ | perm::WRITE
                            } else {
                                q.perm & !perm::WRITE
                            };
                        }
                        q
                    })
                    .collect(),
            )
        });
        i32::try_from(touched).unwrap_or(i32::MAX)
    }

    /// DELETE_TOPIC_IN_NAMESRV: the whole topic, or only its queues on the
    /// brokers of `cluster`.
    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) {
        match cluster {
            None => {
                self.remove_topic(topic);
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
        let mut complete = true;
        for qd in queue_datas {
            if !self.broker_addr_table.contains_key(&qd.broker_name) {
                warn!(topic, broker = %qd.broker_name, "register topic names an unknown broker");
                complete = false;
                break;
            }
            // A later entry of the same broker wins, as in a map.
            staged.insert(qd.broker_name.clone(), qd.clone());
        }
        if !complete && !existing {
            return;
        }
        for (name, qd) in staged {
            let broker = self.broker_names.intern(&name);
            self.put_queue(
                topic,
                QueueEntry {
                    broker,
                    perm: qd.perm,
                    read_queue_nums: qd.read_queue_nums,
                    write_queue_nums: qd.write_queue_nums,
                    topic_sys_flag: qd.topic_sys_flag,
                },
            );
        }
        if complete {
            info!(topic, "topic route registered");
        }
    }
}
