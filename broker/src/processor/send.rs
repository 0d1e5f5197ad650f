//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310), SEND_BATCH_MESSAGE (320)
//! (`SendMessageProcessor`). The append happens on the connection's read loop
//! so one producer connection's messages keep their order. With the DLedger
//! commit log, [`SendProcessor::start`] queues the put there and the
//! connection's task awaits its quorum with [`SendProcessor::complete`].

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use remoting::body::{perm, TopicConfig};
use remoting::header::{SendHeaderRef, SendMessageResponseHeader};
pub use remoting::headers::ConsumerSendMsgBackRequestHeader;
use remoting::{Connection, RemotingCommand};
use store::PendingPut;
use store::{properties, record, CommitLogOffset, PutResult, StoreError};

use crate::error::BrokerError;
use crate::message;
use crate::meta::subscription::SubscriptionGroupManager;
use crate::meta::topic::{self, TopicConfigManager};
use crate::processor::{read_config, SharedConfig};
use crate::stats::BrokerStats;
use crate::store::BrokerStore;

const TRANSACTION_TYPE_MASK: i32 = 0xC;
const TRANSACTION_PREPARED_TYPE: i32 = 0x4;
/// Java `MQVersion.Version.V3_4_9`: from this request version on the
/// `maxReconsumeTimes` header is honoured.
const VERSION_MAX_RECONSUME_HEADER: i32 = 121;

pub struct SendProcessor {
    pub config: SharedConfig,
    pub topics: Arc<TopicConfigManager>,
    pub groups: Arc<SubscriptionGroupManager>,
    pub store: Arc<BrokerStore>,
    pub stats: Arc<BrokerStats>,
    /// `brokerIP1:listenPort`: written into every record and message id.
    pub store_host: SocketAddr,
    /// Delay levels (`DELAY`).
    pub schedule: Arc<crate::services::schedule::ScheduleService>,
    /// 5.x delivery times (`TIMER_*`).
    pub timer: Arc<crate::services::timer::TimerService>,
    pub locks: Arc<crate::meta::lock::RebalanceLockManager>,
}

/// Spreads sends that leave the queue to the broker (`queueId < 0`).
fn pick_queue(write_queues: i32) -> i32 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    if write_queues <= 0 {
        return 0;
    }
    (NEXT.fetch_add(1, Ordering::Relaxed) % write_queues as usize) as i32
}

/// A send answered at once (stored, nothing to await) or whose put's
/// outcome is still to come (a sync flush, a replication quorum).
pub enum Started {
    Done(RemotingCommand),
    Pending(PendingSend),
}

/// A send whose put is still to complete: [`SendProcessor::complete`]
/// answers.
pub struct PendingSend {
    put: PendingPut,
    answer: Answer,
}

/// What a send reads from the broker's configuration.
struct SendConfig {
    cluster_name: String,
    region_id: String,
    trace_on: bool,
    reject_transaction_message: bool,
    max_message_size: usize,
}

/// What a send's answer needs besides the put's result.
struct Answer {
    kind: AnswerKind,
    region_id: String,
    trace_on: bool,
    /// The topic's live counters, and its messages' type for
    /// `rocketmq_messages_in_total` (`None` on retry and DLQ topics).
    counters: Arc<crate::stats::TopicStats>,
    in_type: Option<crate::stats::MessageType>,
}

enum AnswerKind {
    /// `msgId` by offset; the requested queue, even when the record was
    /// parked elsewhere.
    One { queue_id: i32, uniq: String },
    /// One `msgId` per inner message, comma-joined.
    Batch {
        queue_id: i32,
        transaction_id: Option<String>,
    },
}

impl AnswerKind {
    fn header(
        self,
        store_host: SocketAddr,
        result: &PutResult,
    ) -> (SendMessageResponseHeader, u64) {
        match self {
            AnswerKind::One { queue_id, uniq } => (
                SendMessageResponseHeader {
                    msg_id: store::create_offset_message_id(store_host, first_offset(result)),
                    queue_id,
                    queue_offset: result.queue_offset.get(),
                    transaction_id: Some(uniq),
                    batch_uniq_id: None,
                },
                1,
            ),
            AnswerKind::Batch {
                queue_id,
                transaction_id,
            } => {
                let ids: Vec<String> = result
                    .commit_log_offsets
                    .iter()
                    .map(|o| store::create_offset_message_id(store_host, o.get()))
                    .collect();
                let count = ids.len() as u64;
                (
                    SendMessageResponseHeader {
                        msg_id: ids.join(","),
                        queue_id,
                        queue_offset: result.queue_offset.get(),
                        transaction_id,
                        batch_uniq_id: None,
                    },
                    count,
                )
            }
        }
    }
}

impl SendProcessor {
    /// The answer of a send [`start`](Self::start)ed as pending, once its
    /// put's outcome is known (awaited, no thread blocked).
    pub async fn complete(&self, pending: PendingSend) -> Result<RemotingCommand, BrokerError> {
        let PendingSend { put, answer } = pending;
        let result = put.await;
        self.answer(answer, result)
    }

    /// The synchronous part of a send: decode, checks, and the put stored
    /// (local commit log) or queued on the replicated log (DLedger), in
    /// queue-offset order, without waiting for its outcome; answered at
    /// once when there is nothing to wait for.
    pub fn start(&self, conn: &Connection, req: &RemotingCommand) -> Result<Started, BrokerError> {
        let h = SendHeaderRef::from_command(req)?;
        // One read of the settings a send needs.
        let cfg = {
            let cfg = read_config(&self.config);
            if !perm::is_writeable(cfg.broker_permission) {
                return Err(BrokerError::NoPermission(format!(
                    "the broker[{}] sending message is forbidden",
                    cfg.broker_ip1
                )));
            }
            SendConfig {
                cluster_name: cfg.broker_cluster_name.clone(),
                region_id: cfg.region_id.clone(),
                trace_on: cfg.trace_on,
                reject_transaction_message: cfg.reject_transaction_message,
                max_message_size: cfg.max_message_size as usize,
            }
        };
        let (write_queues, read_queues) = self.check_topic(conn, &h)?;
        let mut queue_id = h.queue_id;
        if queue_id >= write_queues.max(read_queues) {
            let topic_config = self.topics.get(h.topic);
            return Err(BrokerError::InvalidParameter(format!(
                "request queueId[{queue_id}] is illegal, {topic_config:?} Producer: {}",
                conn.peer()
            )));
        }
        if queue_id < 0 {
            queue_id = pick_queue(write_queues);
        }
        if req.body.len() > cfg.max_message_size {
            return Err(BrokerError::MessageIllegal(format!(
                "the message body size over max value, MAX: {}",
                cfg.max_message_size
            )));
        }

        let batch = h.batch.unwrap_or(false);
        let put = if batch {
            self.put_batch(conn, &h, queue_id, req)
        } else {
            self.put_one(conn, &h, queue_id, &cfg, req)
        };
        let (mut put, kind) = match put {
            Ok(p) => p,
            Err(e) => {
                self.stats.put_failed.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        // The message type only feeds the metrics exporter.
        let in_type = (self.stats.metrics_on()
            && !h.topic.starts_with(topic::RETRY_PREFIX)
            && !h.topic.starts_with(topic::DLQ_PREFIX))
        .then(|| crate::stats::MessageType::of_properties(h.properties.unwrap_or("")));
        let answer = Answer {
            kind,
            region_id: cfg.region_id,
            trace_on: cfg.trace_on,
            counters: self.stats.topic(h.topic),
            in_type,
        };
        match put.now() {
            Some(result) => self.answer(answer, result).map(Started::Done),
            None => Ok(Started::Pending(PendingSend { put, answer })),
        }
    }

    /// The answer to a send whose put ended with `result`.
    fn answer(
        &self,
        answer: Answer,
        result: Result<PutResult, StoreError>,
    ) -> Result<RemotingCommand, BrokerError> {
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                self.stats.put_failed.fetch_add(1, Ordering::Relaxed);
                return Err(e.into());
            }
        };
        let (response_header, count) = answer.kind.header(self.store_host, &result);
        self.stats.put_count.fetch_add(count, Ordering::Relaxed);
        // Java counts the stored records' bytes (`wroteBytes`).
        self.stats
            .put_bytes
            .fetch_add(result.wrote_bytes as u64, Ordering::Relaxed);
        answer
            .counters
            .record_put(count, result.wrote_bytes as u64, answer.in_type);
        // Stored but not flushed or not replicated in time (or no slave in
        // reach): Java's code with the normal header (the client may resend).
        let response = {
            use remoting::code::response_code as rc;
            use store::PutStatus;
            match result.status {
                PutStatus::PutOk => RemotingCommand::success(),
                PutStatus::FlushDiskTimeout => RemotingCommand::response(rc::FLUSH_DISK_TIMEOUT),
                PutStatus::FlushSlaveTimeout => RemotingCommand::response(rc::FLUSH_SLAVE_TIMEOUT),
                PutStatus::SlaveNotAvailable => RemotingCommand::response(rc::SLAVE_NOT_AVAILABLE),
            }
        };
        Ok(response
            .with_header(&response_header)
            .with_static_ext(properties::MSG_REGION, answer.region_id)
            .with_static_ext(
                properties::TRACE_ON,
                if answer.trace_on { "true" } else { "false" },
            ))
    }

    /// Topic name, forbidden system topics, existence or auto-creation; the
    /// topic's write and read queue counts.
    fn check_topic(
        &self,
        conn: &Connection,
        h: &SendHeaderRef<'_>,
    ) -> Result<(i32, i32), BrokerError> {
        topic::validate_topic(h.topic).map_err(BrokerError::InvalidParameter)?;
        if topic::is_not_allowed_send_topic(h.topic) {
            return Err(BrokerError::NoPermission(format!(
                "Sending message to topic[{}] is forbidden.",
                h.topic
            )));
        }
        if let Some(nums) = self.topics.queue_nums(h.topic) {
            return Ok(nums);
        }
        let sys_flag = if h.unit_mode.unwrap_or(false) { 1 } else { 0 };
        let created = if h.topic.starts_with(topic::RETRY_PREFIX) {
            let group = &h.topic[topic::RETRY_PREFIX.len()..];
            self.groups.get(group).map(|g| {
                self.topics.create_if_absent(TopicConfig::new(
                    h.topic,
                    g.retry_queue_nums,
                    g.retry_queue_nums,
                    perm::READ | perm::WRITE,
                ))
            })
        } else {
            self.topics.create_in_send(
                h.topic,
                h.default_topic,
                h.default_topic_queue_nums,
                sys_flag,
            )
        };
        created
            .map(|t| (t.write_queue_nums, t.read_queue_nums))
            .ok_or_else(|| {
                tracing::debug!(topic = %h.topic, producer = %conn.peer(), "send to unknown topic");
                BrokerError::TopicNotExist {
                    topic: h.topic.to_owned(),
                }
            })
    }

    fn base_message(
        &self,
        conn: &Connection,
        h: &SendHeaderRef<'_>,
        topic: &str,
        queue_id: i32,
    ) -> store::MessageToStore {
        store::MessageToStore {
            topic: topic.to_owned(),
            queue_id,
            sys_flag: h.sys_flag,
            born_timestamp: h.born_timestamp,
            born_host: conn.peer(),
            store_host: self.store_host,
            flag: h.flag,
            body: Default::default(),
            properties: String::new(),
            reconsume_times: h.reconsume_times.unwrap_or(0),
            prepared_transaction_offset: 0,
        }
    }

    fn put_one(
        &self,
        conn: &Connection,
        h: &SendHeaderRef<'_>,
        queue_id: i32,
        cfg: &SendConfig,
        req: &RemotingCommand,
    ) -> Result<(PendingPut, AnswerKind), BrokerError> {
        let raw = h.properties.unwrap_or("");
        if let Some((properties, uniq)) = self.plain_properties(h, raw, cfg) {
            let mut msg = self.base_message(conn, h, h.topic, queue_id);
            msg.properties = properties;
            msg.body = req.body.clone();
            return self.store_one(&msg, queue_id, uniq);
        }
        let mut props = message::decode_properties(raw);
        let uniq = match props.get(properties::UNIQ_KEY) {
            Some(u) => u.clone(),
            None => {
                let u = store::new_uniq_id(self.store_host.ip());
                props.insert(properties::UNIQ_KEY.to_owned(), u.clone());
                u
            }
        };
        props.insert(properties::CLUSTER.to_owned(), cfg.cluster_name.clone());
        // Java's `buildMsgContext` stores the region and trace switch in every
        // message; 5.x trace dispatchers skip consumer records without them.
        props.insert(properties::MSG_REGION.to_owned(), cfg.region_id.clone());
        props.insert(properties::TRACE_ON.to_owned(), cfg.trace_on.to_string());

        let (mut topic, mut queue) = (h.topic.to_owned(), queue_id);
        let mut dead_letter = false;
        if topic.starts_with(topic::RETRY_PREFIX) {
            if let Some(dlq) = self.dead_letter_target(h, req.version)? {
                topic = dlq;
                queue = 0;
                dead_letter = true;
            }
        }

        let mut msg = self.base_message(conn, h, &topic, queue);
        if h.sys_flag & TRANSACTION_TYPE_MASK == TRANSACTION_PREPARED_TYPE {
            if cfg.reject_transaction_message {
                return Err(BrokerError::NoPermission(format!(
                    "the broker[{}] sending transaction message is forbidden",
                    self.store_host
                )));
            }
            // Java `TransactionalMessageBridge.parseHalfMessageInner`: park the
            // half message until END_TRANSACTION.
            props.insert(properties::REAL_TOPIC.to_owned(), topic.clone());
            props.insert(properties::REAL_QID.to_owned(), queue.to_string());
            props.insert(properties::TRANSACTION_ID.to_owned(), uniq.clone());
            msg.sys_flag &= !TRANSACTION_TYPE_MASK;
            msg.topic = topic::TRANS_HALF_TOPIC.to_owned();
            msg.queue_id = 0;
        } else if !dead_letter {
            self.park_if_delayed(&mut msg, &mut props)?;
        }
        msg.properties = message::encode_properties(&props);
        msg.body = req.body.clone();
        self.store_one(&msg, queue_id, uniq)
    }

    /// The properties `put_one` stores for the common send (not a half
    /// message, not a retry, no delay or timer, the client's string in
    /// canonical form), built by appending the broker's pairs to the
    /// client's string: the same bytes the map path gives, without the map.
    /// `None` sends the message down the map path.
    fn plain_properties(
        &self,
        h: &SendHeaderRef<'_>,
        raw: &str,
        cfg: &SendConfig,
    ) -> Option<(String, String)> {
        if h.sys_flag & TRANSACTION_TYPE_MASK == TRANSACTION_PREPARED_TYPE
            || h.topic.starts_with(topic::RETRY_PREFIX)
        {
            return None;
        }
        let uniq = message::scan_canonical(
            raw,
            &[
                properties::CLUSTER,
                properties::MSG_REGION,
                properties::TRACE_ON,
                properties::DELAY,
                properties::TIMER_DELIVER_MS,
                properties::TIMER_DELAY_SEC,
                properties::TIMER_DELAY_MS,
            ],
        )?;
        let mut props = String::with_capacity(raw.len() + 128);
        props.push_str(raw);
        let uniq = match uniq {
            Some(u) => u.to_owned(),
            None => {
                let u = store::new_uniq_id(self.store_host.ip());
                properties::push(&mut props, properties::UNIQ_KEY, &u);
                u
            }
        };
        properties::push(&mut props, properties::CLUSTER, &cfg.cluster_name);
        properties::push(&mut props, properties::MSG_REGION, &cfg.region_id);
        properties::push(
            &mut props,
            properties::TRACE_ON,
            if cfg.trace_on { "true" } else { "false" },
        );
        Some((props, uniq))
    }

    /// Stores (or queues, DLedger) one message; the answer is by offset.
    fn store_one(
        &self,
        msg: &store::MessageToStore,
        queue_id: i32,
        uniq: String,
    ) -> Result<(PendingPut, AnswerKind), BrokerError> {
        Ok((self.store.put(msg), AnswerKind::One { queue_id, uniq }))
    }

    fn put_batch(
        &self,
        conn: &Connection,
        h: &SendHeaderRef<'_>,
        queue_id: i32,
        req: &RemotingCommand,
    ) -> Result<(PendingPut, AnswerKind), BrokerError> {
        if h.topic.starts_with(topic::RETRY_PREFIX) {
            return Err(BrokerError::MessageIllegal(
                "batch request does not support retry group".into(),
            ));
        }
        let items = record::decode_batch(&req.body)
            .map_err(|e| BrokerError::MessageIllegal(e.to_string()))?;
        if items.is_empty() {
            return Err(BrokerError::MessageIllegal("empty batch".into()));
        }
        let messages = items
            .into_iter()
            .map(|item| {
                let mut m = self.base_message(conn, h, h.topic, queue_id);
                m.flag = item.flag;
                m.body = req.body.slice_ref(item.body);
                // decode_batch checked the properties are UTF-8.
                m.properties = String::from_utf8_lossy(item.properties).into_owned();
                m
            })
            .collect::<Vec<_>>();
        // Split here so every inner message keeps its own UNIQ_KEY.
        let put = self.store.put_messages(&messages);
        let batch_props = message::decode_properties(h.properties.unwrap_or(""));
        let transaction_id = batch_props.get(properties::UNIQ_KEY).cloned();
        Ok((
            put,
            AnswerKind::Batch {
                queue_id,
                transaction_id,
            },
        ))
    }

    /// Delay level (`DELAY` > 0) or 5.x delivery time (`TIMER_*`, unless
    /// `DELAY` is also set): parks the message until it is due (Java
    /// `HookUtils.handleScheduleMessage` / `transformTimerMessage`).
    fn park_if_delayed(
        &self,
        msg: &mut store::MessageToStore,
        props: &mut indexmap::IndexMap<String, String>,
    ) -> Result<(), BrokerError> {
        if let Some(level) = props.get(properties::DELAY) {
            let level = level.trim().parse::<i32>().unwrap_or(0);
            for k in [
                properties::TIMER_DELIVER_MS,
                properties::TIMER_DELAY_SEC,
                properties::TIMER_DELAY_MS,
            ] {
                props.shift_remove(k);
            }
            if level > 0 {
                self.schedule.park(msg, props, level);
            }
            return Ok(());
        }
        // A message that already went through the timer (it carries
        // `TIMER_OUT_MS` and keeps its delivery properties) is not parked
        // again (Java `HookUtils.checkIfTimerMessage`).
        if props.contains_key(properties::TIMER_OUT_MS) {
            return Ok(());
        }
        let now = remoting::body::now_millis();
        let Some(due) = crate::services::timer::requested_due(props, now) else {
            return Ok(());
        };
        let due = due.map_err(BrokerError::MessageIllegal)?;
        if !read_config(&self.config).timer_wheel_enable {
            return Err(BrokerError::System(
                "accurate timer message is not enabled, timerWheelEnable is false".into(),
            ));
        }
        if due.saturating_sub(now) > crate::services::timer::MAX_DELAY_MS {
            return Err(BrokerError::MessageIllegal(format!(
                "timer message illegal, the delay time should not be bigger than the max delay {}ms",
                crate::services::timer::MAX_DELAY_MS
            )));
        }
        if due > now {
            self.timer.park(msg, props, due);
        }
        Ok(())
    }

    /// Java `handleRetryAndDLQ`: a retry message that exhausted its
    /// reconsume budget goes to `%DLQ%<group>`.
    fn dead_letter_target(
        &self,
        h: &SendHeaderRef<'_>,
        version: i32,
    ) -> Result<Option<String>, BrokerError> {
        let group = &h.topic[topic::RETRY_PREFIX.len()..];
        let Some(config) = self.groups.get(group) else {
            return Err(BrokerError::GroupNotExist {
                group: group.to_owned(),
            });
        };
        let max = match h.max_reconsume_times {
            Some(m) if version >= VERSION_MAX_RECONSUME_HEADER => m,
            _ => config.retry_max_times,
        };
        if h.reconsume_times.unwrap_or(0) <= max && self.locks.is_lock_all_expired(group) {
            return Ok(None);
        }
        let dlq = format!("{}{group}", topic::DLQ_PREFIX);
        self.topics
            .create_if_absent(TopicConfig::new(&dlq, 1, 1, perm::READ | perm::WRITE));
        Ok(Some(dlq))
    }
}

impl SendProcessor {
    /// CONSUMER_SEND_MSG_BACK (`AbstractSendMessageProcessor.consumerSendMsgBack`):
    /// a message the consumer failed goes to `%RETRY%<group>` with
    /// `reconsumeTimes + 1`, or to `%DLQ%<group>` once its budget is spent.
    /// The retry is parked for delay level `delayLevel` (or, when 0,
    /// 3 + reconsumeTimes) first, as Java does.
    pub async fn send_back(
        &self,
        conn: &Connection,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: ConsumerSendMsgBackRequestHeader = req.header()?;
        let group =
            self.groups
                .find_or_create(&h.group)
                .ok_or_else(|| BrokerError::GroupNotExist {
                    group: h.group.clone(),
                })?;
        {
            let cfg = read_config(&self.config);
            if !perm::is_writeable(cfg.broker_permission) {
                return Err(BrokerError::NoPermission(format!(
                    "the broker[{}] sending message is forbidden",
                    cfg.broker_ip1
                )));
            }
        }
        if group.retry_queue_nums <= 0 {
            return Ok(RemotingCommand::success());
        }
        let retry = topic::retry_topic(&h.group);
        self.topics.create_if_absent(TopicConfig::new(
            &retry,
            group.retry_queue_nums,
            group.retry_queue_nums,
            perm::READ | perm::WRITE,
        ));
        let record = self
            .store
            .with(None, |s| s.message_at(CommitLogOffset(h.offset)))
            .ok_or_else(|| {
                BrokerError::System(format!("look message by offset failed, {}", h.offset))
            })?;
        let view = store::record::decode(&record).map_err(|e| {
            BrokerError::System(format!("look message by offset failed, {}: {e}", h.offset))
        })?;
        let mut props = message::decode_properties(view.properties);
        props
            .entry(properties::RETRY_TOPIC.to_owned())
            .or_insert_with(|| view.topic.to_owned());
        let max = match h.max_reconsume_times {
            Some(m) if req.version >= VERSION_MAX_RECONSUME_HEADER => m,
            _ => group.retry_max_times,
        };
        let (target, queue_id, delay_level) = if view.reconsume_times >= max || h.delay_level < 0 {
            let dlq = format!("{}{}", topic::DLQ_PREFIX, h.group);
            self.topics
                .create_if_absent(TopicConfig::new(&dlq, 1, 1, perm::READ | perm::WRITE));
            (dlq, 0, 0)
        } else {
            let level = if h.delay_level == 0 {
                3 + view.reconsume_times
            } else {
                h.delay_level
            };
            (retry, pick_queue(group.retry_queue_nums), level)
        };
        let origin = h
            .origin_msg_id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| {
                store::create_offset_message_id(view.store_host, view.physical_offset)
            });
        props
            .entry(properties::ORIGIN_MESSAGE_ID.to_owned())
            .or_insert(origin);
        let mut msg = store::MessageToStore {
            topic: target.clone(),
            queue_id,
            sys_flag: view.sys_flag & !0x30,
            born_timestamp: view.born_timestamp,
            born_host: view.born_host,
            store_host: self.store_host,
            flag: view.flag,
            body: record.slice_ref(view.body),
            properties: String::new(),
            reconsume_times: view.reconsume_times + 1,
            prepared_transaction_offset: 0,
        };
        if delay_level > 0 {
            self.schedule.park(&mut msg, &mut props, delay_level);
        }
        msg.properties = message::encode_properties(&props);
        // Java counts a message sent back neither in the broker's puts nor
        // in the retry or DLQ topic's (`brokerStatus`, `statsAll`).
        self.store.put(&msg).await?;
        if target.starts_with(topic::DLQ_PREFIX) {
            let origin_topic = h.origin_topic.as_deref().unwrap_or(view.topic);
            self.stats
                .topic(origin_topic)
                .group(&h.group)
                .dlq
                .fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(group = %h.group, topic = %target, from = %conn.peer(), "message sent back");
        Ok(RemotingCommand::success())
    }
}

fn first_offset(r: &PutResult) -> i64 {
    r.commit_log_offsets.first().map_or(0, |o| o.get())
}
