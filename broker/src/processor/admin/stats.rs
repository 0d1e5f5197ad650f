//! Topic stats, consume stats and broker stats data.

use remoting::body::MessageQueue;
use remoting::{command_header, RemotingCommand};
use serde::Serialize;
use store::QueueOffset;

use super::{success_with_json, AdminProcessor, TopicHeader};
use crate::error::BrokerError;
use crate::processor::read_config;

command_header! {
    pub struct GetConsumeStatsRequestHeader {
        pub consumer_group: String = "consumerGroup",
        pub topic: Option<String> = "topic",
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

/// `BrokerStatsItem`.
#[derive(Serialize)]
struct BrokerStatsItem {
    avgpt: f64,
    sum: i64,
    tps: f64,
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

impl AdminProcessor {
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
                let max = self.store.with(0, |s| s.max_offset(&h.topic, q).get());
                let min = self.store.with(0, |s| s.min_offset(&h.topic, q).get());
                let last = if max > 0 {
                    self.store
                        .with(None, |s| s.store_time_at(&h.topic, q, QueueOffset(max - 1)))
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
                let broker_offset = self
                    .store
                    .with(0, |s| s.max_offset(topic_name, q).get())
                    .max(0);
                let consumer_offset = offsets.get(&q).copied().unwrap_or(0).max(0);
                let last = if consumer_offset > 0 {
                    self.store
                        .with(None, |s| {
                            s.store_time_at(topic_name, q, QueueOffset(consumer_offset - 1))
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

    /// VIEW_BROKER_STATS_DATA (315, `statsAll`): Java `BrokerStatsManager`'s
    /// live `TOPIC_PUT_NUMS` (key topic) and `GROUP_GET_NUMS` (key
    /// `topic@group`) items, each with its minute/hour/day snapshots
    /// (`crate::stats::StatsItem`). An item nothing was counted on since the
    /// broker started, or another stats name, is Java's "not exist" answer.
    pub fn view_broker_stats(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: ViewBrokerStatsDataRequestHeader = req.header()?;
        let not_exist = || {
            BrokerError::System(format!(
                "The stats <{}> <{}> not exist",
                h.stats_name, h.stats_key
            ))
        };
        let figures = match h.stats_name.as_str() {
            "TOPIC_PUT_NUMS" => self
                .stats
                .topic_if_any(&h.stats_key)
                .ok_or_else(not_exist)?
                .put_nums
                .figures(),
            "GROUP_GET_NUMS" => {
                let (topic, group) = h.stats_key.split_once('@').ok_or_else(not_exist)?;
                self.stats
                    .topic_if_any(topic)
                    .and_then(|t| t.group_if_any(group))
                    .ok_or_else(not_exist)?
                    .get_nums
                    .figures()
            }
            _ => return Err(not_exist()),
        };
        let [minute, hour, day] = figures.map(|f| BrokerStatsItem {
            avgpt: f.avgpt,
            sum: i64::try_from(f.sum).unwrap_or(i64::MAX),
            tps: f.tps,
        });
        Ok(success_with_json(&serde_json::json!({
            "statsDay": day,
            "statsHour": hour,
            "statsMinute": minute,
        })))
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
}
