//! Message views, consume-queue queries and consume-queue cleanup.

use remoting::{command_header, RemotingCommand};
use serde::Serialize;
use store::{CommitLogOffset, QueueOffset};

use super::{success_with_json, AdminProcessor};
use crate::error::BrokerError;

command_header! {
    pub struct ViewMessageRequestHeader {
        pub offset: i64 = "offset",
        pub topic: Option<String> = "topic",
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

impl AdminProcessor {
    pub fn view_message(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: ViewMessageRequestHeader = req.header()?;
        match self
            .store
            .with(None, |s| s.message_at(CommitLogOffset(h.offset)))
        {
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
            let min = s.min_offset(&h.topic, h.queue_id).get();
            let max = s.max_offset(&h.topic, h.queue_id).get();
            let mut data = Vec::new();
            let end = h.index.saturating_add(i64::from(h.count.max(0)));
            for i in h.index.max(min)..end.min(max) {
                let Some(phys) = s.commit_log_offset_in_queue(&h.topic, h.queue_id, QueueOffset(i))
                else {
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
                    physic_offset: phys.get(),
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
}
