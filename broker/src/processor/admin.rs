//! Admin and query requests mqadmin and clients send
//! (`AdminBrokerProcessor`, `QueryMessageProcessor`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use remoting::body::{to_json, DataVersion, KvTable, MessageQueue, TopicConfig, TopicList};
use remoting::{command_header, RemotingCommand};
use serde::Serialize;
use store::MessageStore;
use tokio::sync::Notify;

use crate::error::BrokerError;
use crate::meta::client::{ClientChannel, ClientManager};
use crate::meta::offsets::ConsumerOffsetManager;
use crate::meta::subscription::{SubscriptionGroupConfig, SubscriptionGroupManager};
use crate::meta::topic::{self, TopicConfigManager};
use crate::processor::{read_config, SharedConfig};
use crate::stats::BrokerStats;
use crate::store::BrokerStore;

command_header! {
    pub struct CreateTopicRequestHeader {
        pub topic: String = "topic",
        pub default_topic: Option<String> = "defaultTopic",
        pub read_queue_nums: i32 = "readQueueNums",
        pub write_queue_nums: i32 = "writeQueueNums",
        pub perm: i32 = "perm",
        pub topic_filter_type: Option<String> = "topicFilterType",
        pub topic_sys_flag: Option<i32> = "topicSysFlag",
        pub order: Option<bool> = "order",
        pub attributes: Option<String> = "attributes",
        pub force: Option<bool> = "force",
    }
}

command_header! {
    pub struct TopicHeader {
        pub topic: String = "topic",
    }
}

command_header! {
    pub struct TopicQueueHeader {
        pub topic: String = "topic",
        pub queue_id: i32 = "queueId",
    }
}

command_header! {
    pub struct SearchOffsetRequestHeader {
        pub topic: String = "topic",
        pub queue_id: i32 = "queueId",
        pub timestamp: i64 = "timestamp",
        pub boundary_type: Option<String> = "boundaryType",
    }
}

command_header! {
    pub struct ViewMessageRequestHeader {
        pub offset: i64 = "offset",
        pub topic: Option<String> = "topic",
    }
}

command_header! {
    pub struct GroupHeader {
        pub consumer_group: String = "consumerGroup",
    }
}

command_header! {
    pub struct ProducerGroupHeader {
        pub producer_group: String = "producerGroup",
    }
}

command_header! {
    pub struct GetConsumeStatsRequestHeader {
        pub consumer_group: String = "consumerGroup",
        pub topic: Option<String> = "topic",
    }
}

command_header! {
    pub struct DeleteSubscriptionGroupRequestHeader {
        pub group_name: String = "groupName",
        pub remove_offset: Option<bool> = "removeOffset",
        pub clean_offset: Option<bool> = "cleanOffset",
    }
}

command_header! {
    pub struct ViewBrokerStatsDataRequestHeader {
        pub stats_name: String = "statsName",
        pub stats_key: String = "statsKey",
    }
}

command_header! {
    pub struct GetConsumeStatsInBrokerHeader {
        pub is_order: Option<bool> = "isOrder",
    }
}

command_header! {
    pub struct QueryConsumeQueueRequestHeader {
        pub topic: String = "topic",
        pub queue_id: i32 = "queueId",
        pub index: i64 = "index",
        pub count: i32 = "count",
        pub consumer_group: Option<String> = "consumerGroup",
    }
}

/// `ConsumeQueueData`: one consume-queue unit as QUERY_CONSUME_QUEUE shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConsumeQueueData {
    physic_offset: i64,
    physic_size: i32,
    tags_code: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    extend_data_json: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bit_map: Option<String>,
    eval: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg: Option<String>,
}

/// `QueryConsumeQueueResponseBody` (`filterData` is null: no class filters).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryConsumeQueueResponseBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_data: Option<remoting::body::SubscriptionData>,
    queue_data: Vec<ConsumeQueueData>,
    max_queue_index: i64,
    min_queue_index: i64,
}

/// `BrokerStatsItem`.
#[derive(Serialize)]
struct BrokerStatsItem {
    avgpt: f64,
    sum: i64,
    tps: f64,
}

/// Windows of `BrokerStatsData`: minute, hour, day.
const STATS_WINDOWS_SECS: [i64; 3] = [60, 3600, 86400];

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

/// `+key=value,-key` (5.x `AttributeParser`) applied over `current`.
fn apply_attributes(current: &mut BTreeMap<String, String>, spec: &str) {
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(kv) = item.strip_prefix('+') {
            if let Some((k, v)) = kv.split_once('=') {
                current.insert(k.to_owned(), v.to_owned());
            }
        } else if let Some(k) = item.strip_prefix('-') {
            current.remove(k);
        }
    }
}

/// fastjson writes `Map<MessageQueue, V>` with the object itself as the key:
/// `{{"brokerName":"b","queueId":0,"topic":"t"}:{...}}`. Java tools parse it
/// back; so must we emit it.
fn object_key_map<V: Serialize>(entries: &[(MessageQueue, V)]) -> String {
    let mut out = String::from("{");
    for (i, (mq, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(mq).unwrap_or_default());
        out.push(':');
        out.push_str(&serde_json::to_string(v).unwrap_or_default());
    }
    out.push('}');
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TopicOffset {
    last_update_timestamp: i64,
    max_offset: i64,
    min_offset: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OffsetWrapper {
    broker_offset: i64,
    consumer_offset: i64,
    last_timestamp: i64,
    pull_offset: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Connection {
    client_addr: String,
    client_id: String,
    language: String,
    version: i32,
}

impl From<&ClientChannel> for Connection {
    fn from(c: &ClientChannel) -> Self {
        Connection {
            client_addr: c.conn.peer().to_string(),
            client_id: c.client_id.clone(),
            language: c.language.name().to_owned(),
            version: c.version,
        }
    }
}

fn success_with_json<T: Serialize>(value: &T) -> RemotingCommand {
    RemotingCommand::success().with_body(to_json(value))
}

impl AdminProcessor {
    pub fn update_and_create_topic(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: CreateTopicRequestHeader = req.header()?;
        topic::validate_topic(&h.topic).map_err(BrokerError::System)?;
        if self.topics.is_system_topic(&h.topic) && !self.topics.contains(&h.topic) {
            return Err(BrokerError::System(format!(
                "The topic[{}] is conflict with system topic.",
                h.topic
            )));
        }
        if h.topic == read_config(&self.config).broker_cluster_name {
            return Err(BrokerError::System(format!(
                "The topic[{}] is conflict with system topic.",
                h.topic
            )));
        }
        let mut config = self
            .topics
            .get(&h.topic)
            .unwrap_or_else(|| TopicConfig::new(&h.topic, 0, 0, 0));
        config.read_queue_nums = h.read_queue_nums;
        config.write_queue_nums = h.write_queue_nums;
        config.perm = h.perm;
        if let Some(t) = h.topic_filter_type.filter(|t| !t.is_empty()) {
            config.topic_filter_type = t;
        }
        config.topic_sys_flag = h.topic_sys_flag.unwrap_or(0);
        config.order = h.order.unwrap_or(false);
        if let Some(a) = h.attributes.as_deref() {
            apply_attributes(&mut config.attributes, a);
        }
        self.topics.update(config);
        Ok(RemotingCommand::success())
    }

    /// UPDATE_AND_CREATE_TOPIC_LIST (18, 5.x): body `{"topicConfigList":[TopicConfig...]}`.
    pub fn update_and_create_topic_list(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        #[derive(serde::Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Body {
            topic_config_list: Vec<TopicConfig>,
        }
        let body: Body = remoting::body::from_fastjson(&req.body)
            .map_err(|e| BrokerError::BadBody(format!("bad topic list body: {e}")))?;
        for t in &body.topic_config_list {
            topic::validate_topic(&t.topic_name).map_err(BrokerError::System)?;
            if self.topics.is_system_topic(&t.topic_name) && !self.topics.contains(&t.topic_name) {
                return Err(BrokerError::System(format!(
                    "The topic[{}] is conflict with system topic.",
                    t.topic_name
                )));
            }
        }
        for t in body.topic_config_list {
            self.topics.update(t);
        }
        Ok(RemotingCommand::success())
    }

    pub fn delete_topic(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: TopicHeader = req.header()?;
        topic::validate_topic(&h.topic).map_err(BrokerError::System)?;
        if self.topics.is_system_topic(&h.topic) {
            return Err(BrokerError::System(format!(
                "The topic[{}] is conflict with system topic.",
                h.topic
            )));
        }
        self.topics.delete(&h.topic);
        self.offsets.remove_topic(&h.topic);
        self.store.with((), |s| {
            if let Err(e) = s.delete_topic(&h.topic) {
                tracing::warn!(topic = %h.topic, error = %e, "cannot delete the topic's consume queues");
            }
        });
        Ok(RemotingCommand::success())
    }

    pub fn all_topic_config(&self) -> Result<RemotingCommand, BrokerError> {
        let mut wrapper = self.topics.wrapper();
        wrapper.topic_queue_mapping_info_map = Some(Default::default());
        wrapper.topic_queue_mapping_detail_map = Some(Default::default());
        wrapper.mapping_data_version = Some(DataVersion::default());
        Ok(success_with_json(&wrapper))
    }

    /// GET_TOPIC_CONFIG (351): body `TopicConfigAndQueueMapping`, which is a
    /// TopicConfig plus a `mappingDetail` that is null (left out) for normal topics.
    pub fn topic_config(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: TopicHeader = req.header()?;
        match self.topics.get(&h.topic) {
            Some(t) => Ok(success_with_json(&t)),
            None => Ok(
                RemotingCommand::response(remoting::response_code::TOPIC_NOT_EXIST)
                    .with_remark(format!("No topic in this broker. topic: {}", h.topic)),
            ),
        }
    }

    pub fn topic_stats(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: TopicHeader = req.header()?;
        let t = self
            .topics
            .get(&h.topic)
            .ok_or_else(|| BrokerError::TopicNotExist {
                topic: h.topic.clone(),
            })?;
        let broker_name = read_config(&self.config).broker_name.clone();
        let entries: Vec<(MessageQueue, TopicOffset)> = (0..t.write_queue_nums)
            .map(|q| {
                let max = self.store.with(0, |s| s.max_offset(&h.topic, q));
                let min = self.store.with(0, |s| s.min_offset(&h.topic, q));
                let last = if max > 0 {
                    self.store
                        .with(None, |s| s.store_time_at(&h.topic, q, max - 1))
                        .unwrap_or(0)
                } else {
                    0
                };
                (
                    MessageQueue {
                        broker_name: broker_name.clone(),
                        queue_id: q,
                        topic: h.topic.clone(),
                    },
                    TopicOffset {
                        last_update_timestamp: last,
                        max_offset: max,
                        min_offset: min,
                    },
                )
            })
            .collect();
        let body = format!("{{\"offsetTable\":{}}}", object_key_map(&entries));
        Ok(RemotingCommand::success().with_body(body.into_bytes()))
    }

    pub fn consume_stats(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: GetConsumeStatsRequestHeader = req.header()?;
        let group = &h.consumer_group;
        let topics: Vec<String> = match h.topic.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => vec![t.to_owned()],
            None => {
                let mut ts = self.offsets.topics_of_group(group);
                if let Some(info) = self.clients.consumer_group(group) {
                    ts.extend(info.subscriptions.keys().cloned());
                }
                ts.sort();
                ts.dedup();
                ts
            }
        };
        let mut entries = Vec::new();
        for topic_name in topics {
            let offsets = self.offsets.offsets_of(group, &topic_name);
            let online_sub = self.clients.subscription(group, &topic_name).is_some();
            if offsets.is_empty() && !online_sub {
                continue;
            }
            entries.extend(self.consume_entries(group, &topic_name));
        }
        let body = format!(
            "{{\"consumeTps\":0.0,\"offsetTable\":{}}}",
            object_key_map(&entries)
        );
        Ok(RemotingCommand::success().with_body(body.into_bytes()))
    }

    /// One `ConsumeStats.offsetTable`'s entries for (group, topic); empty when
    /// the topic does not exist.
    fn consume_entries(&self, group: &str, topic_name: &str) -> Vec<(MessageQueue, OffsetWrapper)> {
        let Some(t) = self.topics.get(topic_name) else {
            return Vec::new();
        };
        let broker_name = read_config(&self.config).broker_name.clone();
        let offsets = self.offsets.offsets_of(group, topic_name);
        (0..t.write_queue_nums)
            .map(|q| {
                let broker_offset = self.store.with(0, |s| s.max_offset(topic_name, q)).max(0);
                let consumer_offset = offsets.get(&q).copied().unwrap_or(0).max(0);
                let last = if consumer_offset > 0 {
                    self.store
                        .with(None, |s| {
                            s.store_time_at(topic_name, q, consumer_offset - 1)
                        })
                        .unwrap_or(0)
                } else {
                    0
                };
                (
                    MessageQueue {
                        broker_name: broker_name.clone(),
                        queue_id: q,
                        topic: topic_name.to_owned(),
                    },
                    OffsetWrapper {
                        broker_offset,
                        consumer_offset,
                        last_timestamp: last,
                        pull_offset: consumer_offset,
                    },
                )
            })
            .collect()
    }

    /// GET_BROKER_CONSUME_STATS (317, `brokerConsumeStats`): a `ConsumeStats`
    /// per (subscription group, topic it has offsets on), as Java's
    /// `fetchAllConsumeStatsInBroker`.
    pub fn broker_consume_stats(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: GetConsumeStatsInBrokerHeader = req.header()?;
        let only_order = h.is_order.unwrap_or(false);
        let mut groups_json = Vec::new();
        let mut total_diff = 0i64;
        for group in self.groups.wrapper().subscription_group_table.keys() {
            let mut stats = Vec::new();
            let mut topics = self.offsets.topics_of_group(group);
            topics.sort();
            topics.dedup();
            let online = self.clients.consumer_group(group);
            for topic_name in topics {
                let Some(t) = self.topics.get(&topic_name) else {
                    continue;
                };
                if only_order && !t.order {
                    continue;
                }
                if let Some(info) = &online {
                    if !info.subscriptions.is_empty()
                        && !info.subscriptions.contains_key(&topic_name)
                    {
                        continue;
                    }
                }
                let entries = self.consume_entries(group, &topic_name);
                total_diff += entries
                    .iter()
                    .map(|(_, w)| w.broker_offset - w.consumer_offset)
                    .sum::<i64>();
                stats.push(format!(
                    "{{\"consumeTps\":0.0,\"offsetTable\":{}}}",
                    object_key_map(&entries)
                ));
            }
            groups_json.push(format!(
                "{{{}:[{}]}}",
                serde_json::to_string(group).unwrap_or_default(),
                stats.join(",")
            ));
        }
        let broker_addr = read_config(&self.config).broker_addr();
        let body = format!(
            "{{\"brokerAddr\":{},\"consumeStatsList\":[{}],\"totalDiff\":{total_diff},\"totalInflightDiff\":0}}",
            serde_json::to_string(&broker_addr).unwrap_or_default(),
            groups_json.join(",")
        );
        Ok(RemotingCommand::success().with_body(body.into_bytes()))
    }

    /// VIEW_BROKER_STATS_DATA (315, `statsAll`). `TOPIC_PUT_NUMS` (key topic)
    /// counts the messages stored in the last minute/hour/day, found through
    /// the consume queues' store times; `GROUP_GET_NUMS` (key `topic@group`)
    /// counts those of them the group's committed offset has passed. Other
    /// stats are not kept: Java's "not exist" answer.
    pub fn view_broker_stats(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: ViewBrokerStatsDataRequestHeader = req.header()?;
        let not_exist = || {
            BrokerError::System(format!(
                "The stats <{}> <{}> not exist",
                h.stats_name, h.stats_key
            ))
        };
        let (topic_name, group) = match h.stats_name.as_str() {
            "TOPIC_PUT_NUMS" => (h.stats_key.clone(), None),
            "GROUP_GET_NUMS" => match h.stats_key.split_once('@') {
                Some((t, g)) => (t.to_owned(), Some(g.to_owned())),
                None => return Err(not_exist()),
            },
            _ => return Err(not_exist()),
        };
        let t = self.topics.get(&topic_name).ok_or_else(not_exist)?;
        let consumed = match &group {
            Some(g) => {
                let offsets = self.offsets.offsets_of(g, &topic_name);
                if offsets.is_empty() {
                    return Err(not_exist());
                }
                Some(offsets)
            }
            None => None,
        };
        let now = remoting::body::now_millis();
        let items: Vec<BrokerStatsItem> = STATS_WINDOWS_SECS
            .iter()
            .map(|&secs| {
                let since = now - secs * 1000;
                let mut sum = 0i64;
                for q in 0..t.write_queue_nums {
                    let (min, max, start) = self.store.with((0, 0, 0), |s| {
                        (
                            s.min_offset(&topic_name, q),
                            s.max_offset(&topic_name, q),
                            s.offset_by_time(&topic_name, q, since),
                        )
                    });
                    let start = start.max(min);
                    let end = match &consumed {
                        Some(c) => c.get(&q).copied().unwrap_or(0).min(max),
                        None => max,
                    };
                    sum += (end - start).max(0);
                }
                BrokerStatsItem {
                    avgpt: 0.0,
                    sum,
                    tps: sum as f64 / secs as f64,
                }
            })
            .collect();
        let [minute, hour, day] = <[BrokerStatsItem; 3]>::try_from(items)
            .map_err(|_| BrokerError::System("stats windows".into()))?;
        Ok(success_with_json(&serde_json::json!({
            "statsDay": day,
            "statsHour": hour,
            "statsMinute": minute,
        })))
    }

    pub fn consumer_connections(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: GroupHeader = req.header()?;
        let info = self
            .clients
            .consumer_group(&h.consumer_group)
            .ok_or_else(|| BrokerError::ConsumerNotOnline {
                group: h.consumer_group.clone(),
            })?;
        let connections: Vec<Connection> = info.channels.values().map(Connection::from).collect();
        let body = serde_json::json!({
            "connectionSet": connections,
            "consumeFromWhere": info.consume_from_where,
            "consumeType": info.consume_type,
            "messageModel": info.message_model,
            "subscriptionTable": info.subscriptions,
        });
        Ok(success_with_json(&body))
    }

    pub fn producer_connections(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: ProducerGroupHeader = req.header()?;
        let members = self.clients.producer_group(&h.producer_group);
        if members.is_empty() {
            return Err(BrokerError::System(format!(
                "the producer group[{}] not exist",
                h.producer_group
            )));
        }
        let connections: Vec<Connection> = members.iter().map(Connection::from).collect();
        Ok(success_with_json(
            &serde_json::json!({ "connectionSet": connections }),
        ))
    }

    /// GET_ALL_PRODUCER_INFO (328, 5.x `producer -b`): `ProducerTableInfo`,
    /// `{"data":{group:[ProducerInfo...]}}`.
    pub fn all_producer_info(&self) -> Result<RemotingCommand, BrokerError> {
        let now_ms = remoting::body::now_millis();
        let data: BTreeMap<String, Vec<serde_json::Value>> = self
            .clients
            .producer_groups()
            .into_iter()
            .map(|(group, members)| {
                let infos = members
                    .iter()
                    .map(|c| {
                        let age = c.last_update.elapsed().as_millis() as i64;
                        serde_json::json!({
                            "clientId": c.client_id,
                            "language": c.language.name(),
                            "lastUpdateTimestamp": now_ms - age,
                            "remoteIP": c.conn.peer().to_string(),
                            "version": c.version,
                        })
                    })
                    .collect();
                (group, infos)
            })
            .collect();
        Ok(success_with_json(&serde_json::json!({ "data": data })))
    }

    pub fn topic_consumed_by(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: TopicHeader = req.header()?;
        let mut groups = self.clients.groups_subscribing(&h.topic);
        groups.extend(self.offsets.groups_of_topic(&h.topic));
        groups.sort();
        groups.dedup();
        Ok(success_with_json(
            &serde_json::json!({ "groupList": groups }),
        ))
    }

    pub fn all_subscription_groups(&self) -> Result<RemotingCommand, BrokerError> {
        Ok(success_with_json(&self.groups.wrapper()))
    }

    pub fn update_subscription_group(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let config: SubscriptionGroupConfig = remoting::body::from_fastjson(&req.body)
            .map_err(|e| BrokerError::BadBody(format!("bad subscription group body: {e}")))?;
        if config.group_name.is_empty() {
            return Err(BrokerError::System("the group name is empty".into()));
        }
        self.groups.update(config);
        Ok(RemotingCommand::success())
    }

    /// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST (225, 5.x `updateSubGroupList`):
    /// body `{"groupConfigList":[SubscriptionGroupConfig...]}`.
    pub fn update_subscription_group_list(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        #[derive(serde::Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Body {
            group_config_list: Vec<SubscriptionGroupConfig>,
        }
        let body: Body = remoting::body::from_fastjson(&req.body)
            .map_err(|e| BrokerError::BadBody(format!("bad subscription group list body: {e}")))?;
        if body
            .group_config_list
            .iter()
            .any(|g| g.group_name.is_empty())
        {
            return Err(BrokerError::System("the group name is empty".into()));
        }
        for g in body.group_config_list {
            self.groups.update(g);
        }
        Ok(RemotingCommand::success())
    }

    pub fn delete_subscription_group(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: DeleteSubscriptionGroupRequestHeader = req.header()?;
        self.groups.delete(&h.group_name);
        if h.remove_offset.or(h.clean_offset).unwrap_or(false) {
            self.offsets.remove_group(&h.group_name);
        }
        Ok(RemotingCommand::success())
    }

    pub fn all_consumer_offsets(&self) -> Result<RemotingCommand, BrokerError> {
        Ok(RemotingCommand::success().with_body(self.offsets.to_json()))
    }

    pub fn system_topics(&self) -> Result<RemotingCommand, BrokerError> {
        let list: Vec<String> = self
            .topics
            .topic_names()
            .into_iter()
            .filter(|t| self.topics.is_system_topic(t))
            .collect();
        Ok(success_with_json(&TopicList {
            topic_list: list,
            broker_addr: None,
        }))
    }

    pub fn max_offset(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: TopicQueueHeader = req.header()?;
        let offset = self.store.with(0, |s| s.max_offset(&h.topic, h.queue_id));
        Ok(RemotingCommand::success().with_ext("offset", offset.to_string()))
    }

    pub fn min_offset(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: TopicQueueHeader = req.header()?;
        let offset = self.store.with(0, |s| s.min_offset(&h.topic, h.queue_id));
        Ok(RemotingCommand::success().with_ext("offset", offset.to_string()))
    }

    pub fn search_offset(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: SearchOffsetRequestHeader = req.header()?;
        let offset = self
            .store
            .with(0, |s| s.offset_by_time(&h.topic, h.queue_id, h.timestamp));
        Ok(RemotingCommand::success().with_ext("offset", offset.to_string()))
    }

    pub fn earliest_store_time(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: TopicQueueHeader = req.header()?;
        let ts = self
            .store
            .with(None, |s| s.earliest_store_time(&h.topic, h.queue_id))
            .unwrap_or(-1);
        Ok(RemotingCommand::success().with_ext("timestamp", ts.to_string()))
    }

    pub fn view_message(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: ViewMessageRequestHeader = req.header()?;
        match self.store.with(None, |s| s.message_at(h.offset)) {
            Some(rec) => Ok(RemotingCommand::success().with_body(rec)),
            None => Err(BrokerError::System(format!(
                "can not find message by the offset, {}",
                h.offset
            ))),
        }
    }

    /// QUERY_CONSUME_QUEUE (321, `queryCq`): the units `[index, index+count)`
    /// of one queue with the queue's min/max index, and the group's
    /// subscription when a group is given and subscribes the topic.
    pub fn query_consume_queue(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: QueryConsumeQueueRequestHeader = req.header()?;
        let Some(t) = self.topics.get(&h.topic) else {
            return Ok(
                RemotingCommand::response(remoting::response_code::TOPIC_NOT_EXIST)
                    .with_remark(format!("{} topic not exist!", h.topic)),
            );
        };
        if h.queue_id < 0 || h.queue_id >= t.write_queue_nums {
            return Err(BrokerError::System(format!(
                "{} is out of bound, max write queue num: {}",
                h.queue_id, t.write_queue_nums
            )));
        }
        let subscription_data = h
            .consumer_group
            .as_deref()
            .filter(|g| !g.is_empty())
            .and_then(|g| self.clients.subscription(g, &h.topic));
        let (min, max, queue_data) = self.store.with((0, 0, Vec::new()), |s| {
            let min = s.min_offset(&h.topic, h.queue_id);
            let max = s.max_offset(&h.topic, h.queue_id);
            let mut data = Vec::new();
            let end = h.index.saturating_add(i64::from(h.count.max(0)));
            for i in h.index.max(min)..end.min(max) {
                let Some(phys) = s.commit_log_offset_in_queue(&h.topic, h.queue_id, i) else {
                    break;
                };
                let (size, tags_code) = match s
                    .message_at(phys)
                    .map(|rec| store::StoredMessage::decode(&rec))
                {
                    Some(Ok(m)) => (m.total_size, m.tags().map_or(0, store::tags_hash_code)),
                    _ => (0, 0),
                };
                data.push(ConsumeQueueData {
                    physic_offset: phys,
                    physic_size: size,
                    tags_code,
                    extend_data_json: None,
                    bit_map: None,
                    eval: false,
                    msg: None,
                });
            }
            (min, max, data)
        });
        Ok(success_with_json(&QueryConsumeQueueResponseBody {
            subscription_data,
            queue_data,
            max_queue_index: max,
            min_queue_index: min,
        }))
    }

    /// Drops the consume queues of store topics absent from the topic table
    /// (system and schedule topics are kept); returns the topics dropped.
    fn drop_unknown_topic_queues(&self) -> Vec<String> {
        let known = self.topics.topic_names();
        let stale: Vec<String> = self
            .store
            .with(Vec::new(), |s| s.queues())
            .into_iter()
            .map(|(t, _)| t)
            .filter(|t| {
                !known.contains(t)
                    && !self.topics.is_system_topic(t)
                    && t != store::SCHEDULE_TOPIC
                    && !t.starts_with("%LMQ%")
            })
            .collect();
        for t in &stale {
            self.store.with((), |s| {
                if let Err(e) = s.delete_topic(t) {
                    tracing::warn!(topic = %t, error = %e, "cannot delete the topic's consume queues");
                }
            });
        }
        stale
    }

    /// CLEAN_EXPIRED_CONSUMEQUEUE (306, `cleanExpiredCQ`). Java drops the
    /// consume queues whose entries all point below the commit log's start;
    /// our retention pass already deletes consume-queue files wholly below
    /// it, so there is nothing left to remove here.
    pub fn clean_expired_consume_queue(&self) -> Result<RemotingCommand, BrokerError> {
        tracing::info!("cleanExpiredConsumeQueue: expired queue files go with retention");
        Ok(RemotingCommand::success())
    }

    /// CLEAN_UNUSED_TOPIC (316, `cleanUnusedTopic`): removes the consume
    /// queues of topics absent from the topic table (Java `cleanUnusedTopic`).
    pub fn clean_unused_topic(&self) -> Result<RemotingCommand, BrokerError> {
        let dropped = self.drop_unknown_topic_queues();
        tracing::info!(?dropped, "cleanUnusedTopic");
        Ok(RemotingCommand::success())
    }

    pub fn broker_config(&self) -> Result<RemotingCommand, BrokerError> {
        let text = read_config(&self.config).to_properties_text();
        let version = self
            .config_version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Ok(RemotingCommand::success()
            .with_ext(
                "version",
                String::from_utf8_lossy(&to_json(&version)).into_owned(),
            )
            .with_body(text.into_bytes()))
    }

    /// Keys that cannot change at runtime (Java `configBlackList`) are refused.
    pub fn update_broker_config(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let text = String::from_utf8_lossy(&req.body);
        let props = remoting::properties::parse(&text);
        const FIXED: &[&str] = &[
            "brokerConfigPath",
            "configBlackList",
            "storePathRootDir",
            "storePathCommitLog",
            "listenPort",
            "brokerName",
            "brokerClusterName",
            "brokerId",
        ];
        if let Some(k) = props.keys().find(|k| FIXED.contains(&k.as_str())) {
            return Err(BrokerError::NoPermission(format!(
                "Can not update config in black list: {k}"
            )));
        }
        {
            let mut cfg = self.config.write().unwrap_or_else(|p| p.into_inner());
            let mut updated = cfg.clone();
            for (k, v) in &props {
                match updated.set(k, v) {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(key = %k, "update broker config: unknown key ignored")
                    }
                    Err(e) => return Err(BrokerError::System(e.to_string())),
                }
            }
            *cfg = updated;
        }
        self.config_version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next();
        tracing::info!(keys = ?props.keys().collect::<Vec<_>>(), "broker config updated");
        self.register_now.notify_one();
        Ok(RemotingCommand::success())
    }

    pub fn runtime_info(&self) -> Result<RemotingCommand, BrokerError> {
        let s = &self.stats;
        let load = |a: &std::sync::atomic::AtomicU64| {
            a.load(std::sync::atomic::Ordering::Relaxed).to_string()
        };
        let puts = load(&s.put_count);
        let gets = load(&s.get_transferred);
        let elapsed = self.boot.elapsed().as_secs();
        let runtime = format!(
            "[ {} days, {} hours, {} minutes, {} seconds ]",
            elapsed / 86400,
            elapsed % 86400 / 3600,
            elapsed % 3600 / 60,
            elapsed % 60
        );
        let ratio = self.store.with(-1.0, MessageStore::disk_used_ratio);
        let put_count = s.put_count.load(std::sync::atomic::Ordering::Relaxed);
        let put_bytes = s.put_bytes.load(std::sync::atomic::Ordering::Relaxed);
        let put_tps = s.put_tps();
        let transferred_tps = s.get_transferred_tps();
        let mut t = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            t.insert(k.to_owned(), v);
        };
        put("brokerVersionDesc", "V5_3_3".into());
        put("brokerVersion", remoting::CURRENT_VERSION.to_string());
        put("brokerActive", "true".into());
        put("msgPutTotalYesterdayMorning", "0".into());
        put("msgPutTotalTodayMorning", "0".into());
        put("msgPutTotalTodayNow", puts);
        put("msgGetTotalYesterdayMorning", "0".into());
        put("msgGetTotalTodayMorning", "0".into());
        put("msgGetTotalTodayNow", gets);
        for (pool, cap) in [
            ("send", 10000),
            ("pull", 100000),
            ("litePull", 100000),
            ("ack", 100000),
            ("query", 20000),
        ] {
            put(&format!("{pool}ThreadPoolQueueSize"), "0".into());
            put(&format!("{pool}ThreadPoolQueueCapacity"), cap.to_string());
            put(
                &format!("{pool}ThreadPoolQueueHeadWaitTimeMills"),
                "0".into(),
            );
        }
        put("EndTransactionQueueSize", "0".into());
        put("EndTransactionThreadPoolQueueCapacity", "100000".into());
        put("dispatchBehindBytes", "0".into());
        put("pageCacheLockTimeMills", "0".into());
        put(
            "earliestMessageTimeStamp",
            self.store
                .with(-1, |s| s.earliest_message_time().unwrap_or(-1))
                .to_string(),
        );
        put("startAcceptSendRequestTimeStamp", "0".into());
        put("remainTransientStoreBufferNumbs", "0".into());
        put("remainHowManyDataToCommit", "0".into());
        put("remainHowManyDataToFlush", "0".into());
        put(
            "commitLogDirCapacity",
            "Total : 0 B, Free : 0 B.".to_owned(),
        );
        put("timerReadBehind", "0".into());
        put("timerOffsetBehind", "0".into());
        put("timerCongestNum", "0".into());
        put("timerEnqueueTps", "0.0".into());
        put("timerDequeueTps", "0.0".into());
        put("bootTimestamp", self.boot_timestamp.to_string());
        put("runtime", runtime);
        put("putMessageEntireTimeMax", "0".into());
        put("putMessageTimesTotal", put_count.to_string());
        put("putMessageFailedTimes", load(&s.put_failed));
        put("putMessageSizeTotal", put_bytes.to_string());
        put("putMessageDistributeTime", "".into());
        put(
            "putMessageAverageSize",
            format!(
                "{}",
                if put_count == 0 {
                    0.0
                } else {
                    put_bytes as f64 / put_count as f64
                }
            ),
        );
        put("dispatchMaxBuffer", "0".into());
        put("getMessageEntireTimeMax", "0".into());
        put("putTps", put_tps);
        put("getFoundTps", s.get_found_tps());
        put("getMissTps", s.get_miss_tps());
        put("getTotalTps", s.get_total_tps());
        put("getTransferredTps", transferred_tps.clone());
        put("getTransferedTps", transferred_tps);
        put("commitLogDiskRatio", format!("{ratio}"));
        put("consumeQueueDiskRatio", format!("{ratio}"));
        put(
            "commitLogMinOffset",
            self.store
                .with(-1, MessageStore::commit_log_min_offset)
                .to_string(),
        );
        put(
            "commitLogMaxOffset",
            self.store
                .with(0, MessageStore::commit_log_max_offset)
                .to_string(),
        );
        Ok(success_with_json(&KvTable { table: t }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_are_fastjson_shaped() {
        let mq = MessageQueue {
            broker_name: "b".into(),
            queue_id: 0,
            topic: "t".into(),
        };
        let text = object_key_map(&[(
            mq,
            TopicOffset {
                last_update_timestamp: 1,
                max_offset: 2,
                min_offset: 0,
            },
        )]);
        assert_eq!(
            text,
            r#"{{"brokerName":"b","queueId":0,"topic":"t"}:{"lastUpdateTimestamp":1,"maxOffset":2,"minOffset":0}}"#
        );
    }

    #[test]
    fn attribute_spec() {
        let mut a = BTreeMap::new();
        apply_attributes(&mut a, "+message.type=NORMAL,+x=1");
        apply_attributes(&mut a, "-x");
        assert_eq!(a.len(), 1);
        assert_eq!(a["message.type"], "NORMAL");
    }
}
