//! PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361) with long polling
//! (`PullMessageProcessor`, `PullRequestHoldService`).
//!
//! A pull that finds nothing new while the SUSPEND bit is set is held until a
//! message arrives on its queue or the hold time passes, then re-run once.
//! Answering "not found" at once would make clients re-pull in a hot loop.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use dashmap::DashMap;
use remoting::body::{perm, SubscriptionData};
use remoting::code::response_code as rc;
use remoting::header::{PullMessageRequestHeader, PullMessageResponseHeader};
use remoting::RemotingCommand;
use store::{GetResult, GetStatus, QueueOffset};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::BrokerError;
use crate::filter::{self, Selector};
use crate::message;
use crate::meta::client::ClientManager;
use crate::meta::offsets::ConsumerOffsetManager;
use crate::meta::subscription::{SubscriptionGroupConfig, SubscriptionGroupManager};
use crate::meta::topic::TopicConfigManager;
use crate::processor::{read_config, SharedConfig};
use crate::stats::BrokerStats;
use crate::store::BrokerStore;

const FLAG_COMMIT_OFFSET: i32 = 0x1;
const FLAG_SUSPEND: i32 = 0x2;
const FLAG_SUBSCRIPTION: i32 = 0x4;
/// Upper bound on a hold, whatever the client asks for.
const MAX_HOLD: Duration = Duration::from_secs(300);

/// Wakes held pulls when a message reaches their queue.
#[derive(Default)]
pub struct ArrivalNotifier {
    queues: DashMap<(String, i32), Arc<Notify>>,
}

impl ArrivalNotifier {
    pub fn waiter(&self, topic: &str, queue_id: i32) -> Arc<Notify> {
        self.queues
            .entry((topic.to_owned(), queue_id))
            .or_default()
            .clone()
    }

    /// The store's arrival listener.
    pub fn arrived(&self, topic: &str, queue_id: i32) {
        if let Some(n) = self.queues.get(&(topic.to_owned(), queue_id)) {
            n.notify_waiters();
        }
    }

    /// Every held pull looks again (controller mode: the confirm offset
    /// rose, so messages stored earlier may have become readable).
    pub fn wake_all(&self) {
        for n in self.queues.iter() {
            n.value().notify_waiters();
        }
    }
}

/// Which tag codes a pull may return; `None` = all.
type TagFilter = Option<Vec<i64>>;

/// What a pull delivers (`ExpressionMessageFilter`).
enum MessageFilter {
    /// TAG subscriptions: decided on the consume queue's tag code.
    Tags(TagFilter),
    /// SQL92: decided on the stored message's properties.
    Sql(Arc<Selector>),
    /// A SQL92 subscription from a heartbeat that does not compile: Java has
    /// no filter data for it and answers FILTER_DATA_NOT_EXIST.
    NoFilterData,
}

pub struct PullProcessor {
    pub config: SharedConfig,
    pub topics: Arc<TopicConfigManager>,
    pub groups: Arc<SubscriptionGroupManager>,
    pub clients: Arc<ClientManager>,
    pub offsets: Arc<ConsumerOffsetManager>,
    pub store: Arc<BrokerStore>,
    pub arrivals: Arc<ArrivalNotifier>,
    pub stats: Arc<BrokerStats>,
    pub shutdown: CancellationToken,
}

/// The get of a pull, `tags` the selected tag codes (`None`: all).
fn store_get(
    store: &BrokerStore,
    topic: &str,
    queue_id: i32,
    offset: QueueOffset,
    max_msgs: i32,
    max_bytes: i32,
    tags: &TagFilter,
) -> GetResult {
    let accept = |code: i64| match tags {
        Some(codes) => codes.contains(&(code as i32 as i64)),
        None => true,
    };
    store.with(closed_get(), |s| {
        s.get_messages(topic, queue_id, offset, max_msgs, max_bytes, &accept)
    })
}

/// The answer for a store that is closed (or a get that did not finish).
fn closed_get() -> GetResult {
    GetResult {
        status: GetStatus::NoMatchedLogicQueue,
        messages: vec![],
        next_begin_offset: QueueOffset(0),
        min_offset: QueueOffset(0),
        max_offset: QueueOffset(0),
        suggest_pulling_from_slave: false,
    }
}

/// Codes selected by a subscription. Java hashes the tags on the client; we
/// rehash `tagsSet` here because Go hashes UTF-8 bytes rather than UTF-16.
fn subscription_filter(sub: &SubscriptionData) -> TagFilter {
    let expr = sub.sub_string.trim();
    if expr.is_empty() || expr == "*" {
        return None;
    }
    if !sub.tags_set.is_empty() {
        return Some(
            sub.tags_set
                .iter()
                .map(|t| store::tags_hash_code(t.trim()))
                .collect(),
        );
    }
    message::subscription_codes(expr)
}

impl PullProcessor {
    pub async fn handle(
        self: Arc<Self>,
        req: RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: PullMessageRequestHeader = req.header()?;
        let checked = self.check(&h)?;
        if let MessageFilter::NoFilterData = checked.filter {
            return Ok(
                RemotingCommand::response(rc::FILTER_DATA_NOT_EXIST).with_remark(
                    "The broker's consumer filter data is not exist!Your expression may be wrong!",
                ),
            );
        }

        // Stored on a slave too, as Java 5.x does (4.x stored it on a
        // master only).
        if h.sys_flag & FLAG_COMMIT_OFFSET != 0 {
            self.offsets
                .commit(&h.consumer_group, &h.topic, h.queue_id, h.commit_offset);
        }

        let notify = self.arrivals.waiter(&h.topic, h.queue_id);
        let notified = notify.notified();
        tokio::pin!(notified);
        // Registered before looking, so an arrival in between is not missed.
        notified.as_mut().enable();

        let mut result = self.get(&h, &checked.filter).await;
        if h.sys_flag & FLAG_SUSPEND != 0
            && response_code(&result, h.queue_offset) == rc::PULL_NOT_FOUND
        {
            let hold = {
                let cfg = read_config(&self.config);
                if cfg.long_polling_enable {
                    Duration::from_millis(h.suspend_timeout_millis.max(0) as u64)
                } else {
                    Duration::from_millis(cfg.short_polling_time_mills)
                }
            }
            .min(MAX_HOLD);
            let deadline = tokio::time::Instant::now() + hold;
            // Java's hold service re-runs a held pull only when its queue
            // has something new: a wake-up that finds nothing readable (a
            // message past the confirm offset, or not matching the filter)
            // holds on until the deadline. Each wake-up needs a store event,
            // so the loop ends by the deadline.
            loop {
                let woken = tokio::select! {
                    _ = &mut notified => true,
                    _ = tokio::time::sleep_until(deadline) => false,
                    _ = self.shutdown.cancelled() => false,
                };
                if woken {
                    notified.set(notify.notified());
                    notified.as_mut().enable();
                }
                result = self.get(&h, &checked.filter).await;
                if !woken
                    || tokio::time::Instant::now() >= deadline
                    || response_code(&result, h.queue_offset) != rc::PULL_NOT_FOUND
                {
                    break;
                }
            }
        }
        if result.status == GetStatus::Found {
            self.stats.get_found.fetch_add(1, Ordering::Relaxed);
            self.stats
                .get_transferred
                .fetch_add(result.messages.len() as u64, Ordering::Relaxed);
            self.stats
                .topic(&h.topic)
                .group(&h.consumer_group)
                .record_get(
                    result.messages.len() as u64,
                    result.buffer_total_size() as u64,
                );
        } else {
            self.stats.get_miss.fetch_add(1, Ordering::Relaxed);
        }
        let suggest = checked.brokers.suggest(
            read_config(&self.config).slave_read_enable,
            result.suggest_pulling_from_slave,
        );
        Ok(build_response(
            &h,
            result,
            suggest,
            checked.topic_sys_flag,
            checked.group_sys_flag,
        ))
    }

    /// The store's get for a pull. A cold get (far behind the commit log's
    /// end, see `MessageStore::is_cold_read`) may wait on the disk: it runs
    /// on the blocking pool, so the connections served by this worker are
    /// not held up meanwhile.
    async fn get(&self, h: &PullMessageRequestHeader, filter: &MessageFilter) -> GetResult {
        let (max_count, max_bytes) = {
            let cfg = read_config(&self.config);
            (
                cfg.max_transfer_count_on_message_in_memory,
                cfg.max_transfer_bytes_on_message_in_memory,
            )
        };
        let max_msgs = h.max_msg_nums.clamp(1, max_count.max(1));
        let max_bytes = h
            .max_msg_bytes
            .filter(|b| *b > 0)
            .map_or(max_bytes, |b| b.min(max_bytes));
        let tags = match filter {
            MessageFilter::Tags(codes) => codes.clone(),
            _ => None,
        };
        let offset = QueueOffset(h.queue_offset);
        let cold = self
            .store
            .with(false, |s| s.is_cold_read(&h.topic, h.queue_id, offset));
        let result = if cold {
            let store = Arc::clone(&self.store);
            let (topic, queue_id) = (h.topic.clone(), h.queue_id);
            tokio::task::spawn_blocking(move || {
                store_get(&store, &topic, queue_id, offset, max_msgs, max_bytes, &tags)
            })
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cold pull get failed");
                closed_get()
            })
        } else {
            store_get(
                &self.store,
                &h.topic,
                h.queue_id,
                offset,
                max_msgs,
                max_bytes,
                &tags,
            )
        };
        match filter {
            MessageFilter::Sql(selector) => filter_by_properties(result, selector),
            _ => result,
        }
    }

    /// Java's checks, in its order; the first failure answers.
    fn check(&self, h: &PullMessageRequestHeader) -> Result<Checked, BrokerError> {
        {
            let cfg = read_config(&self.config);
            if !perm::is_readable(cfg.broker_permission) {
                return Err(BrokerError::NoPermission(format!(
                    "the broker[{}] pulling message is forbidden",
                    cfg.broker_ip1
                )));
            }
        }
        let group = self
            .groups
            .find_or_create(&h.consumer_group)
            .ok_or_else(|| BrokerError::GroupNotExist {
                group: h.consumer_group.clone(),
            })?;
        if !group.consume_enable {
            return Err(BrokerError::NoPermission(format!(
                "subscription group no permission, {}",
                h.consumer_group
            )));
        }
        let topic = self
            .topics
            .get(&h.topic)
            .ok_or_else(|| BrokerError::TopicNotExist {
                topic: h.topic.clone(),
            })?;
        if !perm::is_readable(topic.perm) {
            return Err(BrokerError::NoPermission(format!(
                "the topic[{}] pulling message is forbidden",
                h.topic
            )));
        }
        if h.queue_id < 0 || h.queue_id >= topic.read_queue_nums {
            return Err(BrokerError::InvalidParameter(format!(
                "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
                h.queue_id, h.topic, topic.read_queue_nums
            )));
        }
        let (filter, expression_type) = if h.sys_flag & FLAG_SUBSCRIPTION != 0 {
            let expression_type = h.expression_type.clone().unwrap_or_default();
            let sub_string = h.subscription.clone().unwrap_or_default();
            let filter = if filter::is_tag_type(&expression_type) {
                let sub = SubscriptionData {
                    topic: h.topic.clone(),
                    sub_string,
                    ..Default::default()
                };
                MessageFilter::Tags(subscription_filter(&sub))
            } else {
                // Java means to answer SUBSCRIPTION_PARSE_FAILED here (its
                // check is an `assert`, off in production, after which it
                // delivers everything); we answer it.
                let selector = filter::compile_cached(&expression_type, &sub_string)
                    .map_err(|e| {
                        tracing::warn!(group = %h.consumer_group, expression = %sub_string, error = %e, "bad subscription in pull");
                        BrokerError::SubscriptionParseFailed(
                            "parse the consumer's subscription failed".into(),
                        )
                    })?;
                MessageFilter::Sql(selector)
            };
            (filter, expression_type)
        } else {
            let info = self
                .clients
                .consumer_group(&h.consumer_group)
                .ok_or_else(|| {
                    BrokerError::SubscriptionNotExist(format!(
                        "the consumer's group info not exist, group: {}",
                        h.consumer_group
                    ))
                })?;
            if !group.consume_broadcast_enable && info.message_model == "BROADCASTING" {
                return Err(BrokerError::NoPermission(format!(
                    "the consumer group[{}] can not consume by broadcast way",
                    h.consumer_group
                )));
            }
            let sub = info.subscriptions.get(&h.topic).ok_or_else(|| {
                BrokerError::SubscriptionNotExist(format!(
                    "the consumer's subscription not exist, group: {}, topic: {}",
                    h.consumer_group, h.topic
                ))
            })?;
            if sub.sub_version < h.sub_version {
                return Err(BrokerError::SubscriptionNotLatest(format!(
                    "the consumer's subscription not latest, group: {}, topic: {}",
                    h.consumer_group, h.topic
                )));
            }
            let filter = if filter::is_tag_type(&sub.expression_type) {
                MessageFilter::Tags(subscription_filter(sub))
            } else {
                match filter::compile_cached(&sub.expression_type, &sub.sub_string) {
                    Ok(selector) => MessageFilter::Sql(selector),
                    Err(_) => MessageFilter::NoFilterData,
                }
            };
            if let MessageFilter::NoFilterData = filter {
                // Java checks this before enablePropertyFilter.
                return Ok(Checked {
                    filter,
                    topic_sys_flag: topic.topic_sys_flag,
                    group_sys_flag: group.group_sys_flag,
                    brokers: SuggestedBrokers::of(&group),
                });
            }
            (filter, sub.expression_type.clone())
        };
        if !filter::is_tag_type(&expression_type)
            && !read_config(&self.config).enable_property_filter
        {
            return Err(BrokerError::System(format!(
                "The broker does not support consumer to filter message by {expression_type}"
            )));
        }
        Ok(Checked {
            filter,
            topic_sys_flag: topic.topic_sys_flag,
            group_sys_flag: group.group_sys_flag,
            brokers: SuggestedBrokers::of(&group),
        })
    }
}

/// Java `MixAll.MASTER_ID`.
const MASTER_ID: i64 = 0;

struct Checked {
    filter: MessageFilter,
    topic_sys_flag: i32,
    group_sys_flag: i32,
    brokers: SuggestedBrokers,
}

/// The subscription group's `brokerId` (where a consumer that keeps up
/// reads) and `whichBrokerWhenConsumeSlowly` (where a slow one is sent).
#[derive(Clone, Copy)]
struct SuggestedBrokers {
    keeping_up: i64,
    slow: i64,
}

impl SuggestedBrokers {
    fn of(group: &SubscriptionGroupConfig) -> Self {
        SuggestedBrokers {
            keeping_up: group.broker_id,
            slow: group.which_broker_when_consume_slowly,
        }
    }

    /// The pull answer's `suggestWhichBrokerId` (Java's pull result
    /// handler): always the master (0) unless `slaveReadEnable`; with it, the
    /// slow-consumer broker when the get reached further back than the
    /// in-memory share of the commit log, else the group's own broker id.
    fn suggest(self, slave_read_enable: bool, pulled_from_disk: bool) -> i64 {
        match (slave_read_enable, pulled_from_disk) {
            (false, _) => MASTER_ID,
            (true, true) => self.slow,
            (true, false) => self.keeping_up,
        }
    }
}

/// Drops the found messages a SQL92 selector does not match, keeping
/// `nextBeginOffset` past them (Java filters on the commit log inside
/// `getMessage`, so skipped messages advance the offset too). Nothing left is
/// NO_MATCHED_MESSAGE: the client pulls again at once from the new offset.
fn filter_by_properties(mut r: GetResult, selector: &Selector) -> GetResult {
    if r.status != GetStatus::Found {
        return r;
    }
    r.messages.retain(|m| match store::record::decode(m) {
        Ok(record) => selector.matches(record.properties),
        // Java evaluates an unreadable record against no properties.
        Err(_) => selector.matches(""),
    });
    if r.messages.is_empty() {
        r.status = GetStatus::NoMatchedMessage;
    }
    r
}

/// Store status -> response code (`DefaultPullMessageResultHandler`).
fn response_code(r: &GetResult, request_offset: i64) -> i32 {
    match r.status {
        GetStatus::Found => rc::SUCCESS,
        GetStatus::NoMatchedMessage | GetStatus::MessageWasRemoving => rc::PULL_RETRY_IMMEDIATELY,
        GetStatus::NoMatchedLogicQueue | GetStatus::NoMessageInQueue => {
            if request_offset != 0 {
                rc::PULL_OFFSET_MOVED
            } else {
                rc::PULL_NOT_FOUND
            }
        }
        GetStatus::OffsetFoundNull | GetStatus::OffsetOverflowOne => rc::PULL_NOT_FOUND,
        GetStatus::OffsetOverflowBadly | GetStatus::OffsetTooSmall => rc::PULL_OFFSET_MOVED,
    }
}

/// Where the client should pull next (docs/protocol/messages.md §8.2, on a master).
fn next_begin_offset(r: &GetResult, request_offset: QueueOffset) -> QueueOffset {
    match r.status {
        GetStatus::NoMatchedLogicQueue | GetStatus::NoMessageInQueue => QueueOffset(0),
        GetStatus::OffsetTooSmall => r.min_offset,
        GetStatus::OffsetOverflowOne => request_offset,
        GetStatus::OffsetOverflowBadly => r.max_offset,
        GetStatus::Found
        | GetStatus::NoMatchedMessage
        | GetStatus::MessageWasRemoving
        | GetStatus::OffsetFoundNull => r.next_begin_offset,
    }
}

fn status_name(s: GetStatus) -> &'static str {
    match s {
        GetStatus::Found => "FOUND",
        GetStatus::NoMatchedMessage => "NO_MATCHED_MESSAGE",
        GetStatus::MessageWasRemoving => "MESSAGE_WAS_REMOVING",
        GetStatus::OffsetFoundNull => "OFFSET_FOUND_NULL",
        GetStatus::OffsetOverflowBadly => "OFFSET_OVERFLOW_BADLY",
        GetStatus::OffsetOverflowOne => "OFFSET_OVERFLOW_ONE",
        GetStatus::OffsetTooSmall => "OFFSET_TOO_SMALL",
        GetStatus::NoMatchedLogicQueue => "NO_MATCHED_LOGIC_QUEUE",
        GetStatus::NoMessageInQueue => "NO_MESSAGE_IN_QUEUE",
    }
}

fn build_response(
    h: &PullMessageRequestHeader,
    r: GetResult,
    suggest_which_broker_id: i64,
    topic_sys_flag: i32,
    group_sys_flag: i32,
) -> RemotingCommand {
    let code = response_code(&r, h.queue_offset);
    let header = PullMessageResponseHeader {
        suggest_which_broker_id,
        next_begin_offset: next_begin_offset(&r, QueueOffset(h.queue_offset)).get(),
        min_offset: r.min_offset.get(),
        max_offset: r.max_offset.get(),
        topic_sys_flag: Some(topic_sys_flag),
        group_sys_flag: Some(group_sys_flag),
        ..Default::default()
    };
    let mut resp = RemotingCommand::response(code)
        .with_remark(status_name(r.status))
        .with_header(&header);
    if code == rc::SUCCESS {
        resp.body = match r.messages.len() {
            1 => r.messages.into_iter().next().unwrap_or_default(),
            _ => {
                let mut body = BytesMut::with_capacity(r.messages.iter().map(|m| m.len()).sum());
                for m in &r.messages {
                    body.put_slice(m);
                }
                body.freeze()
            }
        };
    }
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use store::record::{encode_into, RecordHeader};

    fn record(offset: i64, properties: &str) -> Bytes {
        let host = "127.0.0.1:10911".parse().unwrap();
        let h = RecordHeader {
            queue_id: 0,
            flag: 0,
            queue_offset: offset,
            physical_offset: 0,
            sys_flag: 0,
            born_timestamp: 1,
            born_host: host,
            store_timestamp: 2,
            store_host: host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        };
        let mut out = Vec::new();
        encode_into(&mut out, &h, b"body", "T", properties.as_bytes()).unwrap();
        Bytes::from(out)
    }

    fn found(messages: Vec<Bytes>) -> GetResult {
        GetResult {
            status: GetStatus::Found,
            messages,
            next_begin_offset: QueueOffset(7),
            min_offset: QueueOffset(0),
            max_offset: QueueOffset(9),
            suggest_pulling_from_slave: false,
        }
    }

    #[test]
    fn suggested_broker_follows_slave_read_enable_and_lag() {
        let b = SuggestedBrokers {
            keeping_up: 0,
            slow: 1,
        };
        assert_eq!(b.suggest(false, true), MASTER_ID);
        assert_eq!(b.suggest(false, false), MASTER_ID);
        assert_eq!(b.suggest(true, true), 1);
        assert_eq!(b.suggest(true, false), 0);
        let custom = SuggestedBrokers {
            keeping_up: 2,
            slow: 3,
        };
        assert_eq!(custom.suggest(true, false), 2);
        assert_eq!(custom.suggest(true, true), 3);
    }

    #[test]
    fn sql_filter_keeps_matching_records_and_the_offset() {
        let selector = filter::compile(filter::SQL92, "a > 1").unwrap();
        let r = filter_by_properties(
            found(vec![
                record(4, "a\u{1}1\u{2}"),
                record(5, "a\u{1}2\u{2}"),
                record(6, "b\u{1}9\u{2}"),
            ]),
            &selector,
        );
        assert_eq!(r.status, GetStatus::Found);
        assert_eq!(r.messages.len(), 1);
        let kept = store::record::decode(&r.messages[0]).unwrap();
        assert_eq!(kept.queue_offset, 5);
        assert_eq!(r.next_begin_offset, QueueOffset(7));

        // Nothing matches: NO_MATCHED_MESSAGE (PULL_RETRY_IMMEDIATELY) past the
        // examined entries, so the client moves on instead of waiting.
        let r = filter_by_properties(found(vec![record(4, "a\u{1}0\u{2}")]), &selector);
        assert_eq!(r.status, GetStatus::NoMatchedMessage);
        assert!(r.messages.is_empty());
        assert_eq!(response_code(&r, 4), rc::PULL_RETRY_IMMEDIATELY);
        assert_eq!(next_begin_offset(&r, QueueOffset(4)), QueueOffset(7));
    }
}
