//! Client management and consumer bookkeeping (`ClientManageProcessor`,
//! `ConsumerManageProcessor`, the lock part of `AdminBrokerProcessor`):
//! HEART_BEAT, UNREGISTER_CLIENT, CHECK_CLIENT_CONFIG,
//! GET_CONSUMER_LIST_BY_GROUP, QUERY/UPDATE_CONSUMER_OFFSET,
//! LOCK_BATCH_MQ / UNLOCK_BATCH_MQ.

use std::sync::Arc;

use remoting::body::{
    from_fastjson, perm, to_json, GetConsumerListByGroupResponseBody, HeartbeatData,
    LockBatchRequestBody, LockBatchResponseBody, SubscriptionData, TopicConfig,
};
use remoting::{command_header, Connection, RemotingCommand};
use serde::Deserialize;
use store::{CommitLogOffset, QueueOffset};

use crate::error::BrokerError;
use crate::meta::client::{ClientChannel, ClientManager, ConsumerRegistration};
use crate::meta::lock::RebalanceLockManager;
use crate::meta::offsets::ConsumerOffsetManager;
use crate::meta::subscription::SubscriptionGroupManager;
use crate::meta::topic::{self, TopicConfigManager};
use crate::processor::{read_config, SharedConfig};
use crate::store::BrokerStore;

command_header! {
    pub struct UnregisterClientRequestHeader {
        pub client_id: String = "clientID",
        pub producer_group: Option<String> = "producerGroup",
        pub consumer_group: Option<String> = "consumerGroup",
    }
}

command_header! {
    pub struct ConsumerGroupHeader {
        pub consumer_group: String = "consumerGroup",
    }
}

command_header! {
    pub struct QueryConsumerOffsetRequestHeader {
        pub consumer_group: String = "consumerGroup",
        pub topic: String = "topic",
        pub queue_id: i32 = "queueId",
        pub set_zero_if_not_found: Option<bool> = "setZeroIfNotFound",
    }
}

command_header! {
    pub struct UpdateConsumerOffsetRequestHeader {
        pub consumer_group: String = "consumerGroup",
        pub topic: String = "topic",
        pub queue_id: i32 = "queueId",
        pub commit_offset: i64 = "commitOffset",
    }
}

/// `CheckClientRequestBody`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct CheckClientRequestBody {
    client_id: String,
    group: String,
    subscription_data: Option<SubscriptionData>,
}

pub struct ClientProcessor {
    pub config: SharedConfig,
    pub topics: Arc<TopicConfigManager>,
    pub groups: Arc<SubscriptionGroupManager>,
    pub clients: Arc<ClientManager>,
    pub offsets: Arc<ConsumerOffsetManager>,
    pub locks: Arc<RebalanceLockManager>,
    pub store: Arc<BrokerStore>,
}

impl ClientProcessor {
    pub fn heartbeat(
        &self,
        conn: &Connection,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let data: HeartbeatData = from_fastjson(&req.body)
            .map_err(|e| BrokerError::BadBody(format!("bad heartbeat body: {e}")))?;
        let channel = ClientChannel::new(
            conn.clone(),
            data.client_id.clone(),
            req.language,
            req.version,
        );
        let notify_enabled = read_config(&self.config).notify_consumer_ids_changed_enable;
        for consumer in &data.consumer_data_set {
            let mut notify = notify_enabled;
            if let Some(group) = self.groups.find_or_create(&consumer.group_name) {
                notify &= group.notify_consumer_ids_changed_enable;
                let retry_name = topic::retry_topic(&consumer.group_name);
                // Every heartbeat lands here: a read lock when the retry
                // topic exists (the common case), the write lock only to
                // create it.
                if !self.topics.contains(&retry_name) {
                    let sys_flag = if consumer.unit_mode { 2 } else { 0 };
                    let mut retry = TopicConfig::new(
                        retry_name,
                        group.retry_queue_nums,
                        group.retry_queue_nums,
                        perm::READ | perm::WRITE,
                    );
                    retry.topic_sys_flag = sys_flag;
                    self.topics.create_if_absent(retry);
                }
            }
            self.clients.register_consumer(ConsumerRegistration {
                group: &consumer.group_name,
                channel: channel.clone(),
                consume_type: &consumer.consume_type,
                message_model: &consumer.message_model,
                consume_from_where: &consumer.consume_from_where,
                subscriptions: &consumer.subscription_data_set,
                notify,
            });
        }
        for producer in &data.producer_data_set {
            self.clients
                .register_producer(&producer.group_name, channel.clone());
        }
        Ok(RemotingCommand::success()
            .with_ext("IS_SUPPORT_HEART_BEAT_V2", "true")
            .with_ext("IS_SUB_CHANGE", "true"))
    }

    pub fn unregister_client(
        &self,
        conn: &Connection,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: UnregisterClientRequestHeader = req.header()?;
        if let Some(g) = h.producer_group.as_deref().filter(|g| !g.is_empty()) {
            self.clients.unregister_producer(g, conn);
        }
        if let Some(g) = h.consumer_group.as_deref().filter(|g| !g.is_empty()) {
            let notify = read_config(&self.config).notify_consumer_ids_changed_enable
                && self
                    .groups
                    .get(g)
                    .is_none_or(|c| c.notify_consumer_ids_changed_enable);
            self.clients.unregister_consumer(g, conn, notify);
        }
        Ok(RemotingCommand::success())
    }

    /// Java answers TAG subscriptions with success and refuses SQL92 unless
    /// `enablePropertyFilter`.
    pub fn check_client_config(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let body: CheckClientRequestBody = if req.body.is_empty() {
            CheckClientRequestBody::default()
        } else {
            from_fastjson(&req.body)
                .map_err(|e| BrokerError::BadBody(format!("bad check-client body: {e}")))?
        };
        tracing::debug!(client_id = %body.client_id, group = %body.group, "check client config");
        if let Some(sub) = body.subscription_data {
            let t = sub.expression_type;
            if !crate::filter::is_tag_type(&t) {
                if !read_config(&self.config).enable_property_filter {
                    return Err(BrokerError::System(format!(
                        "The broker does not support consumer to filter message by {t}"
                    )));
                }
                crate::filter::compile_cached(&t, &sub.sub_string)
                    .map_err(|e| BrokerError::SubscriptionParseFailed(e.to_string()))?;
            }
        }
        Ok(RemotingCommand::success())
    }

    pub fn consumer_list(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: ConsumerGroupHeader = req.header()?;
        let ids = self.clients.consumer_ids(&h.consumer_group);
        if ids.is_empty() {
            return Err(BrokerError::System(format!(
                "no consumer for this group, {}",
                h.consumer_group
            )));
        }
        Ok(
            RemotingCommand::success().with_body(to_json(&GetConsumerListByGroupResponseBody {
                consumer_id_list: ids,
            })),
        )
    }

    /// docs/protocol/messages.md §8.3.
    pub fn query_offset(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: QueryConsumerOffsetRequestHeader = req.header()?;
        let (g, t, q) = (&h.consumer_group, &h.topic, h.queue_id);
        if let Some(offset) = self.offsets.query(g, t, q) {
            tracing::debug!(group = %g, topic = %t, queue = q, offset, "query offset: committed");
            return Ok(RemotingCommand::success().with_ext("offset", offset.to_string()));
        }
        let not_found = |why: &str, remark: &str| {
            tracing::debug!(group = %g, topic = %t, queue = q, why, "query offset: QUERY_NOT_FOUND");
            Ok(
                RemotingCommand::response(remoting::response_code::QUERY_NOT_FOUND)
                    .with_remark(remark),
            )
        };
        // Java 5.x `setZeroIfNotFound`: absent means true.
        if h.set_zero_if_not_found == Some(false) {
            return not_found(
                "setZeroIfNotFound=false",
                "Not found, do not set to zero, maybe this group boot first",
            );
        }
        // Java 4.9.x: 0 unless the queue was truncated or its first message
        // is no longer in memory. A queue that never held a message answers
        // 0 too, so a consumer starting from the last offset cannot miss a
        // message stored between this answer and its GET_MAX_OFFSET.
        let state = self.store.with(None, |s| {
            Some((
                s.min_offset(t, q).get(),
                s.commit_log_offset_in_queue(t, q, QueueOffset(0))
                    .map(CommitLogOffset::get),
                s.commit_log_max_offset().get(),
                s.config().in_memory_bytes(),
            ))
        });
        let Some((min, first, log_max, memory_limit)) = state else {
            return not_found("store shut down", "Not found, the store is shut down");
        };
        if start_at_zero(min, first, log_max, memory_limit) {
            tracing::debug!(group = %g, topic = %t, queue = q, "query offset: none committed, 0");
            return Ok(RemotingCommand::success().with_ext("offset", "0"));
        }
        not_found(
            "queue truncated or its first message is on disk only",
            "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
        )
    }

    pub fn update_offset(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: UpdateConsumerOffsetRequestHeader = req.header()?;
        if self.groups.get(&h.consumer_group).is_none() {
            return Err(BrokerError::GroupNotExist {
                group: h.consumer_group,
            });
        }
        if !self.topics.contains(&h.topic) {
            return Err(BrokerError::TopicNotExist { topic: h.topic });
        }
        self.offsets
            .commit(&h.consumer_group, &h.topic, h.queue_id, h.commit_offset);
        Ok(RemotingCommand::success())
    }

    pub fn lock_batch(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let body: LockBatchRequestBody = from_fastjson(&req.body)
            .map_err(|e| BrokerError::BadBody(format!("bad lock body: {e}")))?;
        let locked = self
            .locks
            .try_lock_batch(&body.consumer_group, &body.mq_set, &body.client_id);
        Ok(
            RemotingCommand::success().with_body(to_json(&LockBatchResponseBody {
                lock_ok_mq_set: locked,
            })),
        )
    }

    pub fn unlock_batch(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let body: LockBatchRequestBody = from_fastjson(&req.body)
            .map_err(|e| BrokerError::BadBody(format!("bad unlock body: {e}")))?;
        self.locks
            .unlock_batch(&body.consumer_group, &body.mq_set, &body.client_id);
        Ok(RemotingCommand::success())
    }
}

/// Java 4.9.x `queryConsumerOffset` for a group without a committed offset:
/// start at 0 when the queue was never truncated (`min <= 0`) and its first
/// message is not "in disk" (`checkInDiskByConsumeOffset(topic, queue, 0)`:
/// more than `memory_limit` bytes behind (`accessMessageInMemoryMaxRatio`) the commit log's end). A queue that
/// never held a message has no first message, so it is not in disk either.
fn start_at_zero(min: i64, first_phys: Option<i64>, log_max: i64, memory_limit: u64) -> bool {
    let in_disk = first_phys
        .is_some_and(|p| u64::try_from(log_max.saturating_sub(p)).unwrap_or(0) > memory_limit);
    min <= 0 && !in_disk
}

#[cfg(test)]
mod tests {
    use super::start_at_zero;

    #[test]
    fn start_at_zero_follows_java_4_9() {
        // Never written: 0.
        assert!(start_at_zero(0, None, 0, 1 << 30));
        assert!(start_at_zero(0, None, 1 << 40, 1 << 30));
        // First message still within the in-memory window: 0.
        assert!(start_at_zero(0, Some(0), 1000, 1 << 30));
        assert!(start_at_zero(0, Some(100), 100 + (1 << 30), 1 << 30));
        // First message further behind than the window: not found.
        assert!(!start_at_zero(0, Some(0), (1 << 30) + 1, 1 << 30));
        // Truncated queue: not found.
        assert!(!start_at_zero(5, Some(4096), 8192, 1 << 30));
        assert!(!start_at_zero(5, None, 0, u64::MAX));
    }
}
