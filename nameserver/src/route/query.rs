//! What the table answers: a topic's route (`pickupTopicRouteData`, with
//! the acting-master rewrite), cluster info, topic lists and member groups.

use std::collections::BTreeSet;

use remoting::body::{perm, ClusterInfo, QueueData, TopicList};

use super::{
    BrokerAddrInfo, BrokerMemberGroup, RouteKey, RouteOptions, RouteTable, TopicRoute, FLAG_UNIT,
    FLAG_UNIT_SUB, MASTER_ID, SYNC_BROKER_MEMBER_GROUP_PREFIX,
};

impl RouteTable {
    /// The route of `topic`, or `None` when no registered broker serves it
    /// (`pickupTopicRouteData`).
    pub fn topic_route(&self, topic: &str, opts: RouteOptions) -> Option<TopicRoute> {
        let qs = self.topic_queue_table.get(topic)?;
        let mut route = TopicRoute {
            queue_datas: qs
                .iter()
                .map(|q| q.to_queue_data(&self.broker_names))
                .collect(),
            ..Default::default()
        };
        for q in qs.iter() {
            let Some(bd) = self.broker_addr_table.get(self.broker_names.name(q.broker)) else {
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

    /// What the route of `topic` depends on besides the broker tables (see
    /// [`RouteKey`]); `None` for an unknown topic and for a static topic,
    /// whose route carries its own mapping.
    pub fn route_key(&self, topic: &str) -> Option<RouteKey> {
        if self.topic_queue_mapping_info_table.contains_key(topic) {
            return None;
        }
        Some(RouteKey {
            queues: self.queues_identity(topic)?,
            sync_member_topic: topic.starts_with(SYNC_BROKER_MEMBER_GROUP_PREFIX),
        })
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

    pub fn all_topics(&self) -> TopicList {
        TopicList {
            topic_list: self
                .topic_queue_table
                .keys()
                .map(|t| t.to_string())
                .collect(),
            broker_addr: None,
        }
    }

    /// Topics with queues on any broker of `cluster` (empty for an unknown cluster).
    pub fn topics_by_cluster(&self, cluster: &str) -> TopicList {
        let mut topics = BTreeSet::new();
        if let Some(names) = self.cluster_addr_table.get(cluster) {
            let brokers: BTreeSet<_> = names
                .iter()
                .filter_map(|n| self.broker_names.get(n))
                .collect();
            for (topic, qs) in &self.topic_queue_table {
                if qs.iter().any(|q| brokers.contains(&q.broker)) {
                    topics.insert(topic.to_string());
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
            .filter(|(_, qs)| qs.first().is_some_and(|q| pred(q.topic_sys_flag)))
            .map(|(t, _)| t.to_string())
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

    pub fn queue_data(&self, topic: &str, broker_name: &str) -> Option<QueueData> {
        let broker = self.broker_names.get(broker_name)?;
        self.topic_queue_table
            .get(topic)?
            .iter()
            .find(|q| q.broker == broker)
            .map(|q| q.to_queue_data(&self.broker_names))
    }

    /// Number of distinct queue lists the topics share (for tests).
    pub fn distinct_queue_lists(&self) -> usize {
        self.queue_sets.len()
    }
}

fn dedup_keep_order(items: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    items
        .into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect()
}
