//! POP consumption (Java 5.x `PopMessageProcessor`, `AckMessageProcessor`,
//! `ChangeInvisibleTimeProcessor`, `NotificationProcessor`,
//! `PollingInfoProcessor`, `PeekMessageProcessor`, `QueryAssignmentProcessor`).
//!
//! The broker, not the client, owns the consume offset: a pop takes up to
//! 32 messages from a queue, moves the group's offset past them at once and
//! writes a checkpoint (`ck`) to `rmq_sys_REVIVE_LOG_<cluster>`, due through
//! the timer one second before the messages become visible again. An ack
//! writes an `ack` record due at that same time. The revive service
//! (`services/revive.rs`) reads the revive queue in order, matches acks to
//! checkpoints and puts what stayed unacknowledged into the group's retry
//! topic (`%RETRY%group_topic`), which later pops read too.
//!
//! Not Java's: no in-memory merge buffer (`PopBufferMergeService`): every
//! checkpoint and ack goes to the revive topic straight away, so its
//! records are the ones Java writes when its buffer is off or full.
//! Orderly pops keep their per-queue state (`consumerOrderInfo.json` in
//! Java) in memory only: after a restart an orderly queue resumes from its
//! committed offset, so un-acked messages come again (none is lost).
//!
//! [`PopService`] is the core, callable from Rust (the gRPC service will
//! use it); the remoting handlers at the bottom decode headers and encode
//! answers.

pub mod assignment;
pub mod header;
pub mod order;
pub mod records;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use indexmap::IndexMap;
use remoting::body::perm;
use remoting::code::response_code as rc;
use remoting::RemotingCommand;
use store::{properties, GetResult, GetStatus, MessageToStore, QueueOffset};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::error::BrokerError;
use crate::filter::{self, Selector};
use crate::message;
use crate::meta::offsets::ConsumerOffsetManager;
use crate::meta::subscription::SubscriptionGroupManager;
use crate::meta::topic::TopicConfigManager;
use crate::processor::pull::ArrivalNotifier;
use crate::processor::{read_config, SharedConfig};
use crate::services::timer::TimerService;
use crate::store::BrokerStore;

use header::*;
use records::{AckMsg, ExtraInfo, PopCheckPoint};

/// Java refuses more per pop.
pub const MAX_POP_NUMS: i32 = 32;
/// Upper bound on a held pop, whatever the client asks for.
const MAX_HOLD: Duration = Duration::from_secs(300);
/// Java `ConsumeInitMode.MIN`.
const INIT_MODE_MIN: i32 = 0;

/// What one pop asks for (`PopMessageRequestHeader`).
#[derive(Debug, Clone, Default)]
pub struct PopRequest {
    pub group: String,
    pub topic: String,
    /// -1: any queue of the topic.
    pub queue_id: i32,
    pub max_msgs: i32,
    pub invisible_time: i64,
    /// How long to hold the request when nothing is there (ms).
    pub poll_time: i64,
    pub init_mode: i32,
    pub exp_type: Option<String>,
    pub exp: Option<String>,
    pub order: bool,
    pub attempt_id: Option<String>,
}

/// A pop's outcome: the messages and what the client needs to build each
/// message's `POP_CK` (`PopMessageResponseHeader`).
#[derive(Debug, Clone, Default)]
pub struct PopResult {
    /// Stored records (retry-topic ones re-encoded under the original topic
    /// with their `POP_CK`), in pop order.
    pub messages: Vec<Bytes>,
    pub pop_time: i64,
    pub invisible_time: i64,
    pub revive_qid: i32,
    pub rest_num: i64,
    pub start_offset_info: String,
    pub msg_offset_info: String,
    pub order_count_info: Option<String>,
}

/// Which messages a pop delivers.
enum PopFilter {
    All,
    Tags(Vec<i64>),
    Sql(Arc<Selector>),
}

impl PopFilter {
    fn tag_ok(&self, code: i64) -> bool {
        match self {
            PopFilter::Tags(codes) => codes.contains(&(code as i32 as i64)),
            _ => true,
        }
    }
}

pub struct PopService {
    pub config: SharedConfig,
    pub topics: Arc<TopicConfigManager>,
    pub groups: Arc<SubscriptionGroupManager>,
    pub offsets: Arc<ConsumerOffsetManager>,
    pub store: Arc<BrokerStore>,
    pub arrivals: Arc<ArrivalNotifier>,
    pub timer: Arc<TimerService>,
    pub store_host: SocketAddr,
    pub shutdown: CancellationToken,
    /// Java `QueueLockManager`: one pop at a time per topic@group@queue.
    locks: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    orders: order::OrderTable,
    /// Held pops per topic@group@queue (POLLING_INFO).
    polling: DashMap<String, Arc<AtomicI32>>,
    ck_counter: AtomicU64,
}

fn now_ms() -> i64 {
    remoting::body::now_millis()
}

fn lock_key(topic: &str, group: &str, queue_id: i32) -> String {
    format!("{topic}@{group}@{queue_id}")
}

/// Decrements a polling counter when a held pop ends.
struct Polling(Arc<AtomicI32>);
impl Drop for Polling {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PopService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: SharedConfig,
        topics: Arc<TopicConfigManager>,
        groups: Arc<SubscriptionGroupManager>,
        offsets: Arc<ConsumerOffsetManager>,
        store: Arc<BrokerStore>,
        arrivals: Arc<ArrivalNotifier>,
        timer: Arc<TimerService>,
        store_host: SocketAddr,
        shutdown: CancellationToken,
    ) -> Self {
        PopService {
            config,
            topics,
            groups,
            offsets,
            store,
            arrivals,
            timer,
            store_host,
            shutdown,
            locks: DashMap::new(),
            orders: order::OrderTable::default(),
            polling: DashMap::new(),
            ck_counter: AtomicU64::new(0),
        }
    }

    fn broker_name(&self) -> String {
        read_config(&self.config).broker_name.clone()
    }

    pub fn revive_topic(&self) -> String {
        records::revive_topic(&read_config(&self.config).broker_cluster_name)
    }

    fn retry_topic(&self, topic: &str, group: &str) -> String {
        records::pop_retry_topic(
            topic,
            group,
            read_config(&self.config).enable_retry_topic_v2,
        )
    }

    /// Java's checks before a pop, in its order.
    fn check_pop(&self, r: &PopRequest) -> Result<(PopFilter, i32), BrokerError> {
        let cfg = read_config(&self.config).clone();
        if !perm::is_readable(cfg.broker_permission) {
            return Err(BrokerError::NoPermission(format!(
                "the broker[{}] pop message is forbidden",
                cfg.broker_ip1
            )));
        }
        if r.max_msgs > MAX_POP_NUMS {
            return Err(BrokerError::InvalidParameter(format!(
                "the broker[{}] pop message's num is greater than 32",
                cfg.broker_ip1
            )));
        }
        if !cfg.timer_wheel_enable {
            return Err(BrokerError::System(format!(
                "the broker[{}] pop message is forbidden because timerWheelEnable is false",
                cfg.broker_ip1
            )));
        }
        let topic = self
            .topics
            .get(&r.topic)
            .ok_or_else(|| BrokerError::TopicNotExist {
                topic: r.topic.clone(),
            })?;
        if !perm::is_readable(topic.perm) {
            return Err(BrokerError::NoPermission(format!(
                "the topic[{}] peeking message is forbidden",
                r.topic
            )));
        }
        if r.queue_id >= topic.read_queue_nums {
            return Err(BrokerError::InvalidParameter(format!(
                "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
                r.queue_id, r.topic, topic.read_queue_nums
            )));
        }
        let group =
            self.groups
                .find_or_create(&r.group)
                .ok_or_else(|| BrokerError::GroupNotExist {
                    group: r.group.clone(),
                })?;
        if !group.consume_enable {
            return Err(BrokerError::NoPermission(format!(
                "subscription group no permission, {}",
                r.group
            )));
        }
        let exp = r.exp.as_deref().unwrap_or("").trim();
        let exp_type = r.exp_type.as_deref().unwrap_or("TAG");
        let f = if exp.is_empty() || exp == "*" {
            PopFilter::All
        } else if filter::is_tag_type(exp_type) {
            match message::subscription_codes(exp) {
                Some(codes) => PopFilter::Tags(codes),
                None => PopFilter::All,
            }
        } else {
            let sel = filter::compile_cached(exp_type, exp).map_err(|_| {
                BrokerError::SubscriptionParseFailed(
                    "parse the consumer's subscription failed".into(),
                )
            })?;
            PopFilter::Sql(sel)
        };
        Ok((f, topic.read_queue_nums))
    }

    /// A pop, held up to `poll_time` when nothing is there. `Ok(None)`:
    /// nothing within the poll time (POLLING_TIMEOUT), or `gone` completed
    /// (the client's connection closed): a held pop must not take messages
    /// for a client that can no longer receive them (Java's long polling
    /// drops requests whose channel is inactive).
    pub async fn pop(
        &self,
        r: &PopRequest,
        gone: impl std::future::Future<Output = ()>,
    ) -> Result<Option<PopResult>, BrokerError> {
        tokio::pin!(gone);
        let (f, read_queues) = self.check_pop(r)?;
        let retry = self.retry_topic(&r.topic, &r.group);
        let hold = Duration::from_millis(r.poll_time.max(0) as u64).min(MAX_HOLD);
        let deadline = tokio::time::Instant::now() + hold;
        let key = lock_key(&r.topic, &r.group, r.queue_id);
        let mut held: Option<Polling> = None;
        // Each round needs a wake-up or the deadline: bounded by time.
        loop {
            let waiters: Vec<Arc<tokio::sync::Notify>> = self.wake_sources(r, &retry, read_queues);
            let mut notified: Vec<_> = waiters.iter().map(|n| Box::pin(n.notified())).collect();
            for n in notified.iter_mut() {
                n.as_mut().enable();
            }
            let result = self.pop_once(r, &f, &retry, read_queues).await?;
            if !result.messages.is_empty() {
                return Ok(Some(result));
            }
            if tokio::time::Instant::now() >= deadline || self.shutdown.is_cancelled() {
                return Ok(None);
            }
            if held.is_none() {
                let c = self.polling.entry(key.clone()).or_default().clone();
                c.fetch_add(1, Ordering::Relaxed);
                held = Some(Polling(c));
            }
            let any = futures::future::select_all(notified.iter_mut().map(|n| n.as_mut()));
            tokio::select! {
                biased;
                _ = &mut gone => return Ok(None),
                _ = any => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = self.shutdown.cancelled() => {}
            }
        }
    }

    /// What wakes a held pop: its queue(s) and the retry topic's queue.
    fn wake_sources(
        &self,
        r: &PopRequest,
        retry: &str,
        read_queues: i32,
    ) -> Vec<Arc<tokio::sync::Notify>> {
        let mut v = Vec::new();
        if r.queue_id < 0 {
            for q in 0..read_queues.clamp(0, 1024) {
                v.push(self.arrivals.waiter(&r.topic, q));
            }
        } else {
            v.push(self.arrivals.waiter(&r.topic, r.queue_id));
        }
        if !r.order {
            v.push(self.arrivals.waiter(retry, 0));
        }
        // An ack of an orderly queue or a pop leaving messages behind.
        v.push(self.arrivals.waiter(&pop_wake_topic(&r.topic, &r.group), 0));
        v
    }

    /// Wakes held pops of `topic`/`group` (an orderly ack, a reset).
    pub fn wake(&self, topic: &str, group: &str) {
        self.arrivals.arrived(&pop_wake_topic(topic, group), 0);
    }

    /// One pass over the queues (Java `processRequest` without the hold).
    async fn pop_once(
        &self,
        r: &PopRequest,
        f: &PopFilter,
        retry: &str,
        read_queues: i32,
    ) -> Result<PopResult, BrokerError> {
        let (revive_num, probability) = {
            let c = read_config(&self.config);
            (c.revive_queue_num.max(1), c.pop_from_retry_probability)
        };
        let n = self.ck_counter.fetch_add(1, Ordering::Relaxed);
        let revive_qid = if r.order {
            records::POP_ORDER_REVIVE_QUEUE
        } else {
            (n % revive_num as u64) as i32
        };
        // A cheap spread for "which queue first" and "retry first".
        let random = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as i64 % 100;
        let mut out = PopResult {
            pop_time: now_ms(),
            invisible_time: r.invisible_time,
            revive_qid,
            order_count_info: r.order.then(String::new),
            ..Default::default()
        };
        let max = r.max_msgs.clamp(1, MAX_POP_NUMS);
        let need_retry = random < i64::from(probability) && !r.order;
        let retry_queues = self.topics.get(retry).map(|t| t.read_queue_nums);
        if need_retry {
            if let Some(n) = retry_queues {
                for i in 0..n {
                    let q = (random as i32 + i) % n.max(1);
                    self.pop_queue(r, f, retry, true, q, max, &mut out).await?;
                }
            }
        }
        if r.queue_id < 0 {
            for i in 0..read_queues {
                let q = (random as i32 + i) % read_queues.max(1);
                self.pop_queue(r, f, &r.topic, false, q, max, &mut out)
                    .await?;
            }
        } else {
            self.pop_queue(r, f, &r.topic, false, r.queue_id, max, &mut out)
                .await?;
        }
        if !need_retry && !r.order && (out.messages.len() as i32) < max {
            if let Some(n) = retry_queues {
                for i in 0..n {
                    let q = (random as i32 + i) % n.max(1);
                    self.pop_queue(r, f, retry, true, q, max, &mut out).await?;
                }
            }
        }
        Ok(out)
    }

    /// Java `getPopOffset` + `getInitOffset`.
    fn pop_offset(&self, topic: &str, group: &str, queue_id: i32, init_mode: i32) -> i64 {
        if let Some(o) = self
            .offsets
            .query(group, topic, queue_id)
            .filter(|o| *o >= 0)
        {
            return o;
        }
        let (min, max) = self.store.with((0, 0), |s| {
            (
                s.min_offset(topic, queue_id).get(),
                s.max_offset(topic, queue_id).get(),
            )
        });
        // Java with initPopOffsetByCheckMsgInMem: a queue still holding
        // offset 0 starts there; otherwise MAX starts at the last message.
        let offset = if init_mode == INIT_MODE_MIN || topic.starts_with("%RETRY%") || min <= 0 {
            min
        } else {
            (max - 1).max(0)
        };
        self.offsets.commit(group, topic, queue_id, offset);
        offset
    }

    fn max_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.store.with(0, |s| s.max_offset(topic, queue_id).get())
    }

    fn get(&self, topic: &str, queue_id: i32, offset: i64, n: i32, f: &PopFilter) -> GetResult {
        let closed = GetResult {
            status: GetStatus::NoMatchedLogicQueue,
            messages: vec![],
            next_begin_offset: QueueOffset(offset),
            min_offset: QueueOffset(0),
            max_offset: QueueOffset(0),
            suggest_pulling_from_slave: false,
        };
        let max_bytes = read_config(&self.config).max_transfer_bytes_on_message_in_memory;
        let tag_ok = |code: i64| f.tag_ok(code);
        let mut r = self.store.with(closed, |s| {
            s.get_messages(topic, queue_id, QueueOffset(offset), n, max_bytes, &tag_ok)
        });
        if let PopFilter::Sql(sel) = f {
            if r.status == GetStatus::Found {
                r.messages.retain(|m| match store::record::decode(m) {
                    Ok(v) => sel.matches(v.properties),
                    Err(_) => sel.matches(""),
                });
                if r.messages.is_empty() {
                    r.status = GetStatus::NoMatchedMessage;
                }
            }
        }
        r
    }

    /// Java `popMsgFromQueue`.
    #[allow(clippy::too_many_arguments)]
    async fn pop_queue(
        &self,
        r: &PopRequest,
        f: &PopFilter,
        topic: &str,
        is_retry: bool,
        queue_id: i32,
        max: i32,
        out: &mut PopResult,
    ) -> Result<(), BrokerError> {
        let key = lock_key(topic, &r.group, queue_id);
        let lock = self.locks.entry(key).or_default().clone();
        let Ok(_guard) = lock.try_lock_owned() else {
            if !r.order {
                let offset = self.offsets.query(&r.group, topic, queue_id).unwrap_or(0);
                out.rest_num += (self.max_offset(topic, queue_id) - offset).max(0);
            }
            return Ok(());
        };
        let mut offset = self.pop_offset(topic, &r.group, queue_id, r.init_mode);
        if r.order
            && self
                .orders
                .blocked(topic, &r.group, queue_id, r.attempt_id.as_deref(), now_ms())
        {
            return Ok(());
        }
        let have = out.messages.len() as i32;
        if have >= max {
            out.rest_num += (self.max_offset(topic, queue_id) - offset).max(0);
            return Ok(());
        }
        let filter_all = PopFilter::All;
        let f = if is_retry { &filter_all } else { f };
        let mut got = self.get(topic, queue_id, offset, max - have, f);
        if matches!(
            got.status,
            GetStatus::OffsetTooSmall | GetStatus::OffsetOverflowBadly | GetStatus::OffsetFoundNull
        ) && got.next_begin_offset.get() != offset
        {
            // The stored offset is outside the queue: move it, look again.
            offset = got.next_begin_offset.get();
            self.offsets.commit(&r.group, topic, queue_id, offset);
            got = self.get(topic, queue_id, offset, max - have, f);
        }
        let next = got.next_begin_offset.get();
        if got.status == GetStatus::Found && !got.messages.is_empty() {
            let offsets: Vec<i64> = got
                .messages
                .iter()
                .map(|m| store::record::decode(m).map_or(-1, |v| v.queue_offset))
                .collect();
            if r.order {
                let counts = self.orders.update(
                    topic,
                    &r.group,
                    queue_id,
                    r.attempt_id.clone(),
                    out.pop_time,
                    r.invisible_time,
                    &offsets,
                );
                if let Some(info) = out.order_count_info.as_mut() {
                    for (o, c) in offsets.iter().zip(counts) {
                        if !info.is_empty() {
                            info.push(';');
                        }
                        info.push_str(&format!(
                            "{} qo{queue_id}%{o} {c}",
                            records::retry_flag(topic)
                        ));
                    }
                }
            } else {
                let ck = PopCheckPoint {
                    bit_map: 0,
                    broker_name: Some(self.broker_name()),
                    cid: r.group.clone(),
                    queue_offset_diff: Some(offsets.iter().map(|o| (o - offset) as i32).collect()),
                    invisible_time: r.invisible_time,
                    num: offsets.len() as i8,
                    pop_time: out.pop_time,
                    queue_id,
                    revive_offset: 0,
                    re_put_times: None,
                    start_offset: offset,
                    topic: topic.to_owned(),
                };
                if let Err(e) = self.put_ck(&ck, out.revive_qid).await {
                    warn!(%topic, queue_id, error = %e, "pop: checkpoint not stored; messages stay");
                    out.rest_num += (self.max_offset(topic, queue_id) - offset).max(0);
                    return Ok(());
                }
                self.offsets.commit(&r.group, topic, queue_id, next);
            }
            push_info(
                &mut out.start_offset_info,
                topic,
                queue_id,
                &offset.to_string(),
            );
            let list: Vec<String> = offsets.iter().map(i64::to_string).collect();
            push_info(&mut out.msg_offset_info, topic, queue_id, &list.join(","));
            let broker = self.broker_name();
            for (m, o) in got.messages.into_iter().zip(offsets) {
                if is_retry {
                    let ck = ExtraInfo::build(
                        offset,
                        out.pop_time,
                        r.invisible_time,
                        out.revive_qid,
                        topic,
                        &broker,
                        queue_id,
                        o,
                    );
                    match reencode_retry(&m, &r.topic, &ck) {
                        Some(b) => out.messages.push(b),
                        None => out.messages.push(m),
                    }
                } else {
                    out.messages.push(m);
                }
            }
        } else if next > offset
            && matches!(
                got.status,
                GetStatus::NoMatchedMessage
                    | GetStatus::OffsetFoundNull
                    | GetStatus::MessageWasRemoving
                    | GetStatus::NoMatchedLogicQueue
            )
        {
            self.offsets.commit(&r.group, topic, queue_id, next);
        }
        out.rest_num += (got.max_offset.get() - next).max(0);
        Ok(())
    }

    /// A revive-topic record, parked in the timer until `due` (Java sets
    /// `TIMER_DELIVER_MS`; its timer hook parks it the same way).
    fn revive_record(
        &self,
        tag: &str,
        body: String,
        qid: i32,
        uniq: String,
        due: i64,
    ) -> MessageToStore {
        let now = now_ms();
        let mut props = IndexMap::new();
        props.insert(properties::TAGS.to_owned(), tag.to_owned());
        props.insert(records::UNIQ_KEY.to_owned(), uniq);
        let mut msg = MessageToStore {
            topic: self.revive_topic(),
            queue_id: qid,
            flag: 0,
            body: Bytes::from(body),
            properties: String::new(),
            sys_flag: 0,
            born_timestamp: now,
            born_host: self.store_host,
            store_host: self.store_host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        };
        props.insert(properties::TIMER_DELIVER_MS.to_owned(), due.to_string());
        if due > now {
            self.timer.park(&mut msg, &mut props, due);
        }
        msg.properties = message::encode_properties(&props);
        msg
    }

    /// Java `buildCkMsg`: due one second before the revive time.
    pub async fn put_ck(&self, ck: &PopCheckPoint, revive_qid: i32) -> Result<(), BrokerError> {
        let body = serde_json::to_string(ck).map_err(|e| BrokerError::System(e.to_string()))?;
        let msg = self.revive_record(
            records::CK_TAG,
            body,
            revive_qid,
            ck.unique_id(),
            ck.revive_time() - records::ACK_TIME_INTERVAL,
        );
        self.store.put(&msg).await?;
        Ok(())
    }

    async fn put_ack(&self, ack: &AckMsg, revive_qid: i32, due: i64) -> Result<(), BrokerError> {
        let tag = if ack.ack_offset_list.is_some() {
            records::BATCH_ACK_TAG
        } else {
            records::ACK_TAG
        };
        let body = serde_json::to_string(ack).map_err(|e| BrokerError::System(e.to_string()))?;
        let msg = self.revive_record(tag, body, revive_qid, ack.unique_id(), due);
        self.store.put(&msg).await?;
        Ok(())
    }

    fn check_queue(&self, topic: &str, queue_id: i32) -> Result<(), BrokerError> {
        let t = self
            .topics
            .get(topic)
            .ok_or_else(|| BrokerError::TopicNotExist {
                topic: topic.to_owned(),
            })?;
        if queue_id < 0 || queue_id >= t.read_queue_nums {
            return Err(BrokerError::MessageIllegal(format!(
                "queueId[{queue_id}] is illegal, topic:[{topic}] topicConfig.readQueueNums:[{}]",
                t.read_queue_nums
            )));
        }
        Ok(())
    }

    fn queue_bounds(&self, topic: &str, queue_id: i32) -> (i64, i64) {
        self.store.with((0, 0), |s| {
            (
                s.min_offset(topic, queue_id).get(),
                s.max_offset(topic, queue_id).get(),
            )
        })
    }

    /// ACK_MESSAGE: `topic` is the queue's real topic (a retry topic for a
    /// retried message), as the client sends it. `Ok(false)`: the offset is
    /// outside the queue (NO_MESSAGE).
    pub async fn ack(
        &self,
        group: &str,
        topic: &str,
        queue_id: i32,
        offset: i64,
        extra_info: &str,
    ) -> Result<bool, BrokerError> {
        self.check_queue(topic, queue_id)?;
        let (min, max) = self.queue_bounds(topic, queue_id);
        if offset < min || offset > max {
            return Ok(false);
        }
        let e = ExtraInfo::parse(extra_info)
            .ok_or_else(|| BrokerError::System(format!("bad extraInfo {extra_info:?}")))?;
        if e.is_order() {
            self.ack_orderly(group, topic, queue_id, offset);
            return Ok(true);
        }
        self.ack_popped(group, topic, queue_id, offset, &e).await?;
        Ok(true)
    }

    /// Writes the ack of one popped message (`offset`, from the pop that
    /// `e` describes) to the revive log, due when that pop's invisible time
    /// ends.
    async fn ack_popped(
        &self,
        group: &str,
        topic: &str,
        queue_id: i32,
        offset: i64,
        e: &ExtraInfo,
    ) -> Result<(), BrokerError> {
        let ack = AckMsg {
            ack_offset: offset,
            ack_offset_list: None,
            broker_name: Some(e.broker_name.clone()),
            consumer_group: group.to_owned(),
            pop_time: e.pop_time,
            queue_id,
            start_offset: e.ck_offset,
            topic: topic.to_owned(),
        };
        self.put_ack(
            &ack,
            e.revive_qid,
            e.pop_time.saturating_add(e.invisible_time),
        )
        .await?;
        Ok(())
    }

    /// BATCH_ACK_MESSAGE: each entry names a checkpoint and the acked
    /// offsets as a bit set.
    pub async fn batch_ack(&self, body: &records::BatchAckBody) -> Result<bool, BrokerError> {
        if body.acks.is_empty() {
            return Ok(false);
        }
        for b in &body.acks {
            let Some(topic) = records::real_topic(&b.topic, &b.consumer_group, &b.retry) else {
                continue;
            };
            let (min, max) = self.queue_bounds(&topic, b.queue_id);
            let offsets: Vec<i64> = b
                .offsets()
                .into_iter()
                .filter(|o| *o >= min && *o <= max)
                .collect();
            if offsets.is_empty() {
                continue;
            }
            if b.revive_queue_id == records::POP_ORDER_REVIVE_QUEUE {
                for o in offsets {
                    self.ack_orderly(&b.consumer_group, &topic, b.queue_id, o);
                }
                continue;
            }
            let ack = AckMsg {
                ack_offset: -1,
                ack_offset_list: Some(offsets),
                broker_name: body.broker_name.clone(),
                consumer_group: b.consumer_group.clone(),
                pop_time: b.pop_time,
                queue_id: b.queue_id,
                start_offset: b.start_offset,
                topic,
            };
            self.put_ack(
                &ack,
                b.revive_queue_id,
                b.pop_time.saturating_add(b.invisible_time),
            )
            .await?;
        }
        Ok(true)
    }

    /// Java `ackOrderly`: the committed offset moves to the first offset
    /// still unacknowledged (or past the batch).
    fn ack_orderly(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        let old = self.offsets.query(group, topic, queue_id).unwrap_or(-1);
        if offset < old {
            return;
        }
        if let Some(next) = self.orders.ack(topic, group, queue_id, offset) {
            if next > old {
                self.offsets.commit(group, topic, queue_id, next);
            }
        }
        self.wake(topic, group);
    }

    /// CHANGE_MESSAGE_INVISIBLETIME: a new one-message checkpoint due after
    /// `invisible_time`, then an ack of the old one. Returns (popTime,
    /// invisibleTime, reviveQid) for the client's new extraInfo; `None` when
    /// the offset is outside the queue (NO_MESSAGE).
    pub async fn change_invisible_time(
        &self,
        group: &str,
        topic: &str,
        queue_id: i32,
        offset: i64,
        extra_info: &str,
        invisible_time: i64,
    ) -> Result<Option<(i64, i64, i32)>, BrokerError> {
        self.check_queue(topic, queue_id)?;
        let (min, max) = self.queue_bounds(topic, queue_id);
        if offset < min || offset >= max {
            return Ok(None);
        }
        let e = ExtraInfo::parse(extra_info)
            .ok_or_else(|| BrokerError::System(format!("bad extraInfo {extra_info:?}")))?;
        let now = now_ms();
        if e.is_order() {
            let old = self.offsets.query(group, topic, queue_id).unwrap_or(-1);
            if offset < old {
                return Ok(Some((0, 0, e.revive_qid)));
            }
            let next_visible = now + invisible_time;
            self.orders
                .set_next_visible(topic, group, queue_id, e.pop_time, next_visible);
            return Ok(Some((e.pop_time, next_visible - e.pop_time, e.revive_qid)));
        }
        let ck = PopCheckPoint {
            bit_map: 0,
            broker_name: Some(e.broker_name.clone()),
            cid: group.to_owned(),
            queue_offset_diff: Some(vec![0]),
            invisible_time,
            num: 1,
            pop_time: now,
            queue_id,
            revive_offset: 0,
            re_put_times: None,
            start_offset: offset,
            topic: topic.to_owned(),
        };
        self.put_ck(&ck, e.revive_qid).await?;
        self.ack_popped(group, topic, queue_id, offset, &e).await?;
        Ok(Some((now, invisible_time, e.revive_qid)))
    }

    /// Whether a pop would find something now (NOTIFICATION).
    fn has_message(
        &self,
        group: &str,
        topic: &str,
        queue_id: i32,
        order: bool,
        attempt: Option<&str>,
    ) -> bool {
        let queues: Vec<i32> = if queue_id < 0 {
            (0..self.topics.get(topic).map_or(0, |t| t.read_queue_nums)).collect()
        } else {
            vec![queue_id]
        };
        let now = now_ms();
        let check = |t: &str, q: i32| {
            if order && self.orders.blocked(t, group, q, attempt, now) {
                return false;
            }
            let offset = self.offsets.query(group, t, q).unwrap_or(0).max(0);
            self.max_offset(t, q) > offset
        };
        if queues.iter().any(|q| check(topic, *q)) {
            return true;
        }
        let retry = self.retry_topic(topic, group);
        !order && self.topics.contains(&retry) && check(&retry, 0)
    }

    /// NOTIFICATION: whether messages are there, waiting up to `poll_time`.
    pub async fn notification(
        &self,
        group: &str,
        topic: &str,
        queue_id: i32,
        poll_time: i64,
        order: bool,
        attempt: Option<&str>,
    ) -> Result<bool, BrokerError> {
        let t = self
            .topics
            .get(topic)
            .ok_or_else(|| BrokerError::TopicNotExist {
                topic: topic.to_owned(),
            })?;
        if queue_id >= t.read_queue_nums {
            return Err(BrokerError::InvalidParameter(format!(
                "queueId[{queue_id}] is illegal, topic:[{topic}] topicConfig.readQueueNums:[{}]",
                t.read_queue_nums
            )));
        }
        let r = PopRequest {
            group: group.to_owned(),
            topic: topic.to_owned(),
            queue_id,
            order,
            ..Default::default()
        };
        let retry = self.retry_topic(topic, group);
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(poll_time.max(0) as u64).min(MAX_HOLD);
        loop {
            let waiters = self.wake_sources(&r, &retry, t.read_queue_nums);
            let mut notified: Vec<_> = waiters.iter().map(|n| Box::pin(n.notified())).collect();
            for n in notified.iter_mut() {
                n.as_mut().enable();
            }
            if self.has_message(group, topic, queue_id, order, attempt) {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline || self.shutdown.is_cancelled() {
                return Ok(false);
            }
            let any = futures::future::select_all(notified.iter_mut().map(|n| n.as_mut()));
            tokio::select! {
                _ = any => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = self.shutdown.cancelled() => {}
            }
        }
    }

    /// POLLING_INFO: pops held now for topic@group@queue.
    pub fn polling_num(&self, group: &str, topic: &str, queue_id: i32) -> i32 {
        self.polling
            .get(&lock_key(topic, group, queue_id))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// PEEK_MESSAGE: messages from the group's pop offset, without a
    /// checkpoint and without moving the offset.
    pub fn peek(
        &self,
        group: &str,
        topic: &str,
        queue_id: i32,
        max: i32,
    ) -> Result<PopResult, BrokerError> {
        let t = self
            .topics
            .get(topic)
            .ok_or_else(|| BrokerError::TopicNotExist {
                topic: topic.to_owned(),
            })?;
        let queues: Vec<i32> = if queue_id < 0 {
            (0..t.read_queue_nums).collect()
        } else {
            vec![queue_id]
        };
        let mut out = PopResult {
            pop_time: now_ms(),
            ..Default::default()
        };
        let max = max.clamp(1, MAX_POP_NUMS);
        for q in queues {
            let have = out.messages.len() as i32;
            if have >= max {
                break;
            }
            let offset = self.offsets.query(group, topic, q).unwrap_or(0).max(0);
            let got = self.get(topic, q, offset, max - have, &PopFilter::All);
            out.rest_num += (got.max_offset.get() - got.next_begin_offset.get()).max(0);
            if got.status == GetStatus::Found {
                push_info(&mut out.start_offset_info, topic, q, &offset.to_string());
                out.messages.extend(got.messages);
            }
        }
        Ok(out)
    }
}

/// The topic whose arrival notifier wakes held pops of `topic`/`group`
/// besides their queues (never stored: only a notifier key).
fn pop_wake_topic(topic: &str, group: &str) -> String {
    format!("\u{0}pop\u{0}{topic}\u{0}{group}")
}

/// `ExtraInfoUtil.buildStartOffsetInfo` / `buildMsgOffsetInfo`.
fn push_info(s: &mut String, topic: &str, queue_id: i32, value: &str) {
    if !s.is_empty() {
        s.push(';');
    }
    s.push_str(records::retry_flag(topic));
    s.push(' ');
    s.push_str(&queue_id.to_string());
    s.push(' ');
    s.push_str(value);
}

/// A retry-topic record as Java answers it: the original topic, and its
/// `POP_CK` (the client could not build it from the header's offsets).
fn reencode_retry(record: &[u8], topic: &str, ck: &str) -> Option<Bytes> {
    let v = store::record::decode(record).ok()?;
    let mut props = message::decode_properties(v.properties);
    props
        .entry(records::PROPERTY_POP_CK.to_owned())
        .or_insert_with(|| ck.to_owned());
    let props = message::encode_properties(&props);
    let h = store::record::RecordHeader {
        queue_id: v.queue_id,
        flag: v.flag,
        queue_offset: v.queue_offset,
        physical_offset: v.physical_offset,
        sys_flag: v.sys_flag,
        born_timestamp: v.born_timestamp,
        born_host: v.born_host,
        store_timestamp: v.store_timestamp,
        store_host: v.store_host,
        reconsume_times: v.reconsume_times,
        prepared_transaction_offset: v.prepared_transaction_offset,
    };
    let mut out = Vec::new();
    store::record::encode_into(&mut out, &h, v.body, topic, props.as_bytes()).ok()?;
    Some(Bytes::from(out))
}

fn concat(messages: Vec<Bytes>) -> Bytes {
    if messages.len() == 1 {
        return messages.into_iter().next().unwrap_or_default();
    }
    let mut b = Vec::with_capacity(messages.iter().map(Bytes::len).sum());
    for m in &messages {
        b.extend_from_slice(m);
    }
    Bytes::from(b)
}

/// The remoting side of [`PopService`].
pub struct PopProcessor {
    pub pop: Arc<PopService>,
    pub modes: Arc<crate::meta::request_mode::RequestModeManager>,
    pub clients: Arc<crate::meta::client::ClientManager>,
}

type Answer = Result<RemotingCommand, BrokerError>;

impl PopProcessor {
    pub async fn pop_message(&self, conn: &remoting::Connection, req: RemotingCommand) -> Answer {
        let h: PopMessageRequestHeader = req.header()?;
        let r = PopRequest {
            group: h.consumer_group,
            topic: h.topic,
            queue_id: h.queue_id,
            max_msgs: h.max_msg_nums,
            invisible_time: h.invisible_time,
            poll_time: h.poll_time,
            init_mode: h.init_mode,
            exp_type: h.exp_type,
            exp: h.exp,
            order: h.order.unwrap_or(false),
            attempt_id: h.attempt_id,
        };
        debug!(group = %r.group, topic = %r.topic, queue_id = r.queue_id, "pop");
        match self.pop.pop(&r, conn.closed()).await? {
            Some(res) => {
                let header = PopMessageResponseHeader {
                    pop_time: res.pop_time,
                    invisible_time: res.invisible_time,
                    revive_qid: res.revive_qid,
                    rest_num: Some(res.rest_num),
                    start_offset_info: Some(res.start_offset_info),
                    msg_offset_info: Some(res.msg_offset_info),
                    order_count_info: res.order_count_info,
                };
                Ok(RemotingCommand::success()
                    .with_remark("FOUND")
                    .with_header(&header)
                    .with_body(concat(res.messages)))
            }
            None => {
                let header = PopMessageResponseHeader {
                    pop_time: now_ms(),
                    invisible_time: r.invisible_time,
                    revive_qid: 0,
                    rest_num: Some(0),
                    start_offset_info: Some(String::new()),
                    msg_offset_info: Some(String::new()),
                    order_count_info: None,
                };
                Ok(RemotingCommand::response(rc::POLLING_TIMEOUT)
                    .with_remark("NO_MESSAGE_IN_QUEUE")
                    .with_header(&header))
            }
        }
    }

    pub fn peek_message(&self, req: &RemotingCommand) -> Answer {
        let h: PeekMessageRequestHeader = req.header()?;
        let res = self
            .pop
            .peek(&h.consumer_group, &h.topic, h.queue_id, h.max_msg_nums)?;
        let header = PopMessageResponseHeader {
            pop_time: res.pop_time,
            invisible_time: 0,
            revive_qid: 0,
            rest_num: Some(res.rest_num),
            start_offset_info: Some(res.start_offset_info),
            msg_offset_info: None,
            order_count_info: None,
        };
        if res.messages.is_empty() {
            return Ok(RemotingCommand::response(rc::PULL_NOT_FOUND)
                .with_remark("NO_MESSAGE_IN_QUEUE")
                .with_header(&header));
        }
        Ok(RemotingCommand::success()
            .with_header(&header)
            .with_body(concat(res.messages)))
    }

    pub async fn ack_message(&self, req: RemotingCommand) -> Answer {
        let h: AckMessageRequestHeader = req.header()?;
        let ok = self
            .pop
            .ack(
                &h.consumer_group,
                &h.topic,
                h.queue_id,
                h.offset,
                &h.extra_info,
            )
            .await?;
        if !ok {
            return Ok(
                RemotingCommand::response(rc::NO_MESSAGE).with_remark(format!(
                    "offset is illegal, key:{}@{}, commit:{}",
                    h.topic, h.queue_id, h.offset
                )),
            );
        }
        Ok(RemotingCommand::success())
    }

    pub async fn batch_ack_message(&self, req: RemotingCommand) -> Answer {
        let body: records::BatchAckBody = match remoting::body::from_fastjson(&req.body) {
            Ok(b) => b,
            Err(_) => return Ok(RemotingCommand::response(rc::NO_MESSAGE)),
        };
        if self.pop.batch_ack(&body).await? {
            Ok(RemotingCommand::success())
        } else {
            Ok(RemotingCommand::response(rc::NO_MESSAGE))
        }
    }

    pub async fn change_invisible_time(&self, req: RemotingCommand) -> Answer {
        let h: ChangeInvisibleTimeRequestHeader = req.header()?;
        match self
            .pop
            .change_invisible_time(
                &h.consumer_group,
                &h.topic,
                h.queue_id,
                h.offset,
                &h.extra_info,
                h.invisible_time,
            )
            .await?
        {
            Some((pop_time, invisible_time, revive_qid)) => Ok(RemotingCommand::success()
                .with_header(&ChangeInvisibleTimeResponseHeader {
                    pop_time,
                    invisible_time,
                    revive_qid,
                })),
            None => Ok(RemotingCommand::response(rc::NO_MESSAGE)),
        }
    }

    pub async fn notification(&self, req: RemotingCommand) -> Answer {
        let h: NotificationRequestHeader = req.header()?;
        let has = self
            .pop
            .notification(
                &h.consumer_group,
                &h.topic,
                h.queue_id,
                h.poll_time,
                h.order.unwrap_or(false),
                h.attempt_id.as_deref(),
            )
            .await?;
        Ok(
            RemotingCommand::success().with_header(&NotificationResponseHeader {
                has_msg: has,
                polling_full: Some(false),
            }),
        )
    }

    pub fn polling_info(&self, req: &RemotingCommand) -> Answer {
        let h: PollingInfoRequestHeader = req.header()?;
        let t = self
            .pop
            .topics
            .get(&h.topic)
            .ok_or_else(|| BrokerError::TopicNotExist {
                topic: h.topic.clone(),
            })?;
        if h.queue_id >= t.read_queue_nums {
            return Err(BrokerError::InvalidParameter(format!(
                "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
                h.queue_id, h.topic, t.read_queue_nums
            )));
        }
        if self.pop.groups.get(&h.consumer_group).is_none() {
            return Err(BrokerError::GroupNotExist {
                group: h.consumer_group,
            });
        }
        Ok(
            RemotingCommand::success().with_header(&PollingInfoResponseHeader {
                polling_num: self
                    .pop
                    .polling_num(&h.consumer_group, &h.topic, h.queue_id),
            }),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn info_strings_are_javas() {
        let mut s = String::new();
        push_info(&mut s, "T", 3, "100");
        push_info(&mut s, "%RETRY%g_T", 0, "5,6");
        assert_eq!(s, "0 3 100;1 0 5,6");
    }

    #[test]
    fn retry_records_carry_the_original_topic_and_pop_ck() {
        let host: SocketAddr = "127.0.0.1:10911".parse().unwrap();
        let h = store::record::RecordHeader {
            queue_id: 0,
            flag: 0,
            queue_offset: 4,
            physical_offset: 0,
            sys_flag: 0,
            born_timestamp: 1,
            born_host: host,
            store_timestamp: 2,
            store_host: host,
            reconsume_times: 1,
            prepared_transaction_offset: 0,
        };
        let mut rec = Vec::new();
        store::record::encode_into(&mut rec, &h, b"body", "%RETRY%g_T", b"a\x01b\x02").unwrap();
        let out = reencode_retry(&rec, "T", "1 2 3 0 1 b 0 4").unwrap();
        let v = store::record::decode(&out).unwrap();
        assert_eq!(v.topic, "T");
        assert_eq!(v.body, b"body");
        assert_eq!(v.reconsume_times, 1);
        assert_eq!(
            properties::get(v.properties, records::PROPERTY_POP_CK),
            Some("1 2 3 0 1 b 0 4")
        );
        assert!(reencode_retry(b"junk", "T", "x").is_none());
    }
}
