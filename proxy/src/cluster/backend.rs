//! [`ClusterBackend`]: the gRPC service's [`Backend`] over remoting to any
//! RocketMQ brokers, ours or Java's (Java's proxy in cluster mode:
//! `ClusterMessageService`, `ClusterTopicRouteService`,
//! `ClusterMetadataService`, `ClusterTransactionService`).
//!
//! | gRPC call            | remoting request to the broker                     |
//! |----------------------|----------------------------------------------------|
//! | QueryRoute           | GET_ROUTEINFO_BY_TOPIC (name server), GET_TOPIC_CONFIG |
//! | SendMessage          | SEND_MESSAGE_V2 to a master of a writable queue    |
//! | ReceiveMessage       | POP_MESSAGE (queue -1: every queue of one broker)  |
//! | AckMessage           | ACK_MESSAGE to the broker the receipt handle names |
//! | ChangeInvisibleDuration | CHANGE_MESSAGE_INVISIBLETIME                    |
//! | ForwardMessageToDLQ  | CONSUMER_SEND_MSG_BACK (delay -1), then ACK_MESSAGE |
//! | EndTransaction       | END_TRANSACTION (one-way)                          |
//! | group settings       | GET_SUBSCRIPTIONGROUP_CONFIG to a broker of `rocketMQClusterName` |
//! | producer heartbeat   | HEART_BEAT as `rmq-proxy-producer-client`, so brokers send CHECK_TRANSACTION_STATE here |

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use remoting::body::{to_json, HeartbeatData, ProducerData};
use remoting::header::{
    SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
use remoting::{request_code, response_code, Connection, RemotingCommand, Router};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::clients::{refused, Clients};
use super::config::ClusterConfig;
use super::error::ClusterError;
use super::header::*;
use super::receipt::{create_handle, extra_infos, real_topic, PopAnswer, PoppedMessage};
use super::route::Routes;
use crate::backend::*;
use crate::error::ProxyError;
use crate::receipt::ReceiptHandle;

/// How long a broker has to answer a request (Java's proxy: 3 s default).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Java `MixAll.DEFAULT_TOPIC` / `defaultTopicQueueNums`.
const DEFAULT_TOPIC: &str = "TBW102";
/// Java `ProxyUtils.MAX_MSG_NUMS_FOR_POP_REQUEST`.
const MAX_POP_BATCH: i32 = 32;
/// Java `ClusterTransactionService.TRANS_HEARTBEAT_CLIENT_ID`.
const TRANSACTION_CLIENT_ID: &str = "rmq-proxy-producer-client";
/// Java `SubscriptionGroupConfig.retryMaxTimes` default.
const DEFAULT_RETRY_MAX_TIMES: i32 = 16;
/// Java `MessageConst.PROPERTY_PRODUCER_GROUP`.
const PROPERTY_PRODUCER_GROUP: &str = "PGROUP";
/// Java `MessageConst.PROPERTY_POP_CK`.
const PROPERTY_POP_CK: &str = "POP_CK";
/// Java `MessageConst.PROPERTY_FIRST_POP_TIME`.
const PROPERTY_FIRST_POP_TIME: &str = "1ST_POP_TIME";
/// The proxy's own send attempts when a broker cannot be reached at all.
const SEND_ATTEMPTS: usize = 3;

impl From<ClusterError> for ProxyError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::BadReceiptHandle(s) => ProxyError::InvalidReceiptHandle(s),
            ClusterError::TopicNotFound(t) => ProxyError::TopicNotFound(t),
            ClusterError::Refused { code, remark, .. } => ProxyError::Remoting { code, remark },
            ClusterError::Remoting {
                source: remoting::RemotingError::Timeout(_),
                addr,
            } => ProxyError::Timeout(format!("broker {addr} did not answer in time")),
            e => ProxyError::Internal(e.to_string()),
        }
    }
}

/// Producer groups the proxy answers transaction checks for, and their
/// clients (Java `ClusterTransactionService.groupClusterData` with the
/// `ProducerManager` online check folded in).
#[derive(Default)]
struct TransactionGroups {
    /// group -> topics published (the brokers of their routes get the
    /// heartbeat) and the clients still registered.
    groups: HashMap<String, (HashSet<String>, HashSet<String>)>,
}

pub struct ClusterBackend {
    config: ClusterConfig,
    /// Messaging requests.
    clients: Arc<Clients>,
    /// The connections brokers send CHECK_TRANSACTION_STATE on: the ones the
    /// transaction heartbeat went out on (Java's `ClusterTransaction_` client).
    tx_clients: Arc<Clients>,
    routes: Arc<Routes>,
    checks: Arc<OnceLock<TransactionCheckSink>>,
    tx_groups: Mutex<TransactionGroups>,
    topic_types: Mutex<HashMap<String, (TopicMessageType, Instant)>>,
    shutdown: CancellationToken,
}

impl ClusterBackend {
    /// A backend for `config`'s name servers; call [`ClusterBackend::start`]
    /// from within a tokio runtime to run its periodic tasks.
    pub fn new(config: ClusterConfig) -> Result<Arc<ClusterBackend>, ClusterError> {
        if config.namesrv_addr.is_empty() {
            return Err(ClusterError::NoNameServer);
        }
        let clients = Arc::new(Clients::new(Arc::new(Router::new())));
        let checks: Arc<OnceLock<TransactionCheckSink>> = Arc::new(OnceLock::new());
        let routes = Arc::new(Routes::new(
            config.namesrv_addr.clone(),
            clients.clone(),
            config.route_refresh,
            config.route_expire,
        ));
        let tx_router = {
            let checks = checks.clone();
            let routes = routes.clone();
            Router::new().route(
                request_code::CHECK_TRANSACTION_STATE,
                move |conn: Connection, req: RemotingCommand| {
                    let checks = checks.clone();
                    let routes = routes.clone();
                    async move {
                        on_check(&routes, &checks, &conn, &req).await;
                        // One-way from the broker: nothing is written back.
                        Ok(RemotingCommand::success())
                    }
                },
            )
        };
        Ok(Arc::new(ClusterBackend {
            config,
            clients,
            tx_clients: Arc::new(Clients::new(Arc::new(tx_router))),
            routes,
            checks,
            tx_groups: Mutex::new(TransactionGroups::default()),
            topic_types: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
        }))
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Starts the transaction heartbeat (every
    /// `transactionHeartbeatPeriodSecond`).
    pub fn start(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        let period = self.config.transaction_heartbeat;
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let Some(me) = me.upgrade() else { break };
                me.transaction_heartbeat(None).await;
            }
        });
    }

    /// Stops the periodic tasks and closes the broker connections.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.clients.close_all().await;
        self.tx_clients.close_all().await;
    }

    /// HEART_BEAT with the producer groups to every master serving their
    /// topics; `only` limits it to one group (a newly registered one).
    async fn transaction_heartbeat(&self, only: Option<&str>) {
        let plan: Vec<(String, Vec<String>)> = {
            let g = lock(&self.tx_groups);
            g.groups
                .iter()
                .filter(|(group, _)| match only {
                    Some(o) => o == group.as_str(),
                    None => true,
                })
                .map(|(group, (topics, _))| (group.clone(), topics.iter().cloned().collect()))
                .collect()
        };
        let mut per_broker: HashMap<String, Vec<String>> = HashMap::new();
        for (group, topics) in plan {
            for topic in topics {
                let Ok(route) = self.routes.route(&topic).await else {
                    continue;
                };
                for b in &route.broker_datas {
                    if let Some(addr) = b.broker_addrs.get(&0) {
                        let groups = per_broker.entry(addr.clone()).or_default();
                        if !groups.contains(&group) {
                            groups.push(group.clone());
                        }
                    }
                }
            }
        }
        for (addr, groups) in per_broker {
            let data = HeartbeatData {
                client_id: TRANSACTION_CLIENT_ID.to_owned(),
                producer_data_set: groups
                    .into_iter()
                    .map(|group_name| ProducerData { group_name })
                    .collect(),
                ..Default::default()
            };
            let cmd = RemotingCommand::request(request_code::HEART_BEAT).with_body(to_json(&data));
            if let Err(e) = self.tx_clients.invoke_ok(&addr, cmd, REQUEST_TIMEOUT).await {
                warn!(%addr, error = %e, "transaction heartbeat failed");
            }
        }
    }

    /// The message type of `topic` from a broker's topic config (Java
    /// `ClusterMetadataService.getTopicMessageType`), cached like routes.
    async fn topic_message_type(&self, topic: &str, addr: Option<&str>) -> TopicMessageType {
        if let Some((t, at)) = lock(&self.topic_types).get(topic) {
            if at.elapsed() < self.config.route_refresh {
                return *t;
            }
        }
        let Some(addr) = addr else {
            return TopicMessageType::Unspecified;
        };
        let cmd = RemotingCommand::request(request_code::GET_TOPIC_CONFIG).with_header(
            &GetTopicConfigRequestHeader {
                topic: topic.to_owned(),
            },
        );
        let t = match self.clients.invoke_ok(addr, cmd, REQUEST_TIMEOUT).await {
            Ok(r) => match remoting::body::from_fastjson::<Value>(&r.body) {
                Ok(v) => message_type_of(&v),
                Err(_) => TopicMessageType::Unspecified,
            },
            Err(e) => {
                debug!(%topic, error = %e, "topic config unavailable");
                TopicMessageType::Unspecified
            }
        };
        lock(&self.topic_types).insert(topic.to_owned(), (t, Instant::now()));
        t
    }

    async fn ack_inner(
        &self,
        group: &str,
        topic: &str,
        handle: &ReceiptHandle,
    ) -> Result<(), ClusterError> {
        let addr = self.routes.broker_addr(&handle.broker_name).await?;
        let header = AckMessageRequestHeader {
            consumer_group: group.to_owned(),
            topic: real_topic(handle, topic, group),
            queue_id: handle.queue_id,
            extra_info: handle.extra_info(),
            offset: handle.offset,
            broker_name: Some(handle.broker_name.clone()),
        };
        let cmd = RemotingCommand::request(request_code::ACK_MESSAGE).with_header(&header);
        self.clients.invoke_ok(&addr, cmd, REQUEST_TIMEOUT).await?;
        Ok(())
    }

    async fn send_to(
        &self,
        addr: &str,
        broker_name: &str,
        queue_id: i32,
        msg: &OutgoingMessage,
    ) -> Result<SendReceipt, ClusterError> {
        let props = store::properties::encode(&msg.properties);
        let header = SendMessageRequestHeader {
            producer_group: msg.producer_group.clone(),
            topic: msg.topic.clone(),
            default_topic: DEFAULT_TOPIC.to_owned(),
            default_topic_queue_nums: 4,
            queue_id,
            sys_flag: msg.sys_flag,
            born_timestamp: msg.born_timestamp,
            flag: msg.flag,
            properties: Some(props),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            batch: Some(false),
            max_reconsume_times: None,
            broker_name: Some(broker_name.to_owned()),
        };
        let cmd = RemotingCommand::request(request_code::SEND_MESSAGE_V2)
            .with_header(&SendMessageRequestHeaderV2::from(header))
            .with_body(msg.body.clone());
        let r = self.clients.invoke_ok(addr, cmd, REQUEST_TIMEOUT).await?;
        let h: SendMessageResponseHeader = r.header().map_err(|e| ClusterError::BadAnswer {
            addr: addr.to_owned(),
            detail: e.to_string(),
        })?;
        let commit_log_offset = store::decode_offset_message_id(&h.msg_id)
            .map(|(_, off)| off)
            .unwrap_or(-1);
        Ok(SendReceipt {
            broker_name: broker_name.to_owned(),
            queue_id: h.queue_id,
            queue_offset: h.queue_offset,
            commit_log_offset,
            offset_msg_id: h.msg_id,
            transaction_id: h.transaction_id,
        })
    }
}

/// A broker asks about a half message: hand it to the service, which asks a
/// producer of the group (Java `ProxyClientRemotingProcessor`).
async fn on_check(
    routes: &Routes,
    checks: &OnceLock<TransactionCheckSink>,
    conn: &Connection,
    req: &RemotingCommand,
) {
    let Some(sink) = checks.get() else {
        debug!("transaction check with no service attached");
        return;
    };
    let header: CheckTransactionStateRequestHeader = match req.header() {
        Ok(h) => h,
        Err(e) => {
            warn!(peer = %conn.peer(), error = %e, "bad CHECK_TRANSACTION_STATE header");
            return;
        }
    };
    let stored = match store::StoredMessage::decode(&req.body) {
        Ok(m) => m,
        Err(e) => {
            warn!(peer = %conn.peer(), error = %e, "bad CHECK_TRANSACTION_STATE body");
            return;
        }
    };
    let Some(group) =
        store::properties::get(&stored.properties, PROPERTY_PRODUCER_GROUP).map(str::to_owned)
    else {
        return;
    };
    let broker_name = match header.broker_name.clone() {
        Some(b) if !b.is_empty() => b,
        _ => {
            let peer = conn.peer().to_string();
            routes
                .masters()
                .into_iter()
                .find(|(_, addr)| *addr == peer)
                .map(|(name, _)| name)
                .unwrap_or_default()
        }
    };
    let mut message = convert(&stored, &stored.topic, &broker_name);
    message.topic = stored.topic.clone();
    let check = TransactionCheck {
        producer_group: group,
        client_id: None,
        broker_name,
        transaction_id: header.transaction_id.or(header.msg_id).unwrap_or_default(),
        tran_state_offset: header.tran_state_table_offset,
        commit_log_offset: header.commit_log_offset,
        message,
    };
    if sink.try_send(check).is_err() {
        warn!("transaction check dropped: the service's queue is full or closed");
    }
}

/// Our message type from a topic config's `attributes` (`message.type`;
/// Java: NORMAL when absent).
fn message_type_of(config: &Value) -> TopicMessageType {
    let attr = config
        .get("attributes")
        .and_then(|a| a.get("message.type").or_else(|| a.get("+message.type")))
        .and_then(Value::as_str);
    match attr {
        None => TopicMessageType::Normal,
        v => TopicMessageType::from_attribute(v),
    }
}

/// A stored record as the service wants it.
fn convert(m: &store::StoredMessage, topic: &str, broker_name: &str) -> StoredMessage {
    StoredMessage {
        topic: topic.to_owned(),
        queue_id: m.queue_id,
        queue_offset: m.queue_offset,
        commit_log_offset: m.physical_offset,
        body: m.body.clone(),
        flag: m.flag,
        sys_flag: m.sys_flag,
        properties: store::properties::decode(&m.properties),
        born_timestamp: m.born_timestamp,
        born_host: m.born_host.to_string(),
        store_timestamp: m.store_timestamp,
        store_host: m.store_host.to_string(),
        reconsume_times: m.reconsume_times,
        offset_msg_id: m.offset_msg_id(),
        broker_name: broker_name.to_owned(),
        receipt_handle: None,
    }
}

fn now_ms() -> i64 {
    remoting::body::now_millis()
}

impl Backend for ClusterBackend {
    fn attach(&self, checks: TransactionCheckSink) {
        let _ = self.checks.set(checks);
    }

    async fn route(&self, _ctx: &ClientContext, topic: &str) -> Result<TopicRoute, ProxyError> {
        let route = self.routes.route(topic).await?;
        let brokers: Vec<BrokerQueues> = route
            .queue_datas
            .iter()
            .filter(|q| {
                route
                    .broker_datas
                    .iter()
                    .any(|b| b.broker_name == q.broker_name && b.broker_addrs.contains_key(&0))
            })
            .map(|q| BrokerQueues {
                broker_name: q.broker_name.clone(),
                read_queues: q.read_queue_nums,
                write_queues: q.write_queue_nums,
                perm: q.perm,
            })
            .collect();
        let addr = route
            .broker_datas
            .iter()
            .find_map(|b| b.broker_addrs.get(&0).cloned());
        let message_type = self.topic_message_type(topic, addr.as_deref()).await;
        Ok(TopicRoute {
            brokers,
            message_type,
        })
    }

    async fn group(&self, _ctx: &ClientContext, group: &str) -> Result<GroupInfo, ProxyError> {
        let defaults = GroupInfo {
            retry_max_times: DEFAULT_RETRY_MAX_TIMES,
            orderly: false,
        };
        // Java asks one broker of the cluster (the route of the topic named
        // after the cluster).
        let addr = match self.routes.route(&self.config.cluster_name).await {
            Ok(r) => r
                .broker_datas
                .iter()
                .find_map(|b| b.broker_addrs.get(&0).cloned()),
            Err(_) => None,
        };
        let addr = match addr {
            Some(a) => a,
            None => match self.routes.masters().into_iter().next() {
                Some((_, a)) => a,
                None => return Ok(defaults),
            },
        };
        let cmd = RemotingCommand::request(GET_SUBSCRIPTIONGROUP_CONFIG).with_header(
            &GetSubscriptionGroupConfigRequestHeader {
                group: group.to_owned(),
            },
        );
        let r = self
            .clients
            .invoke(&addr, cmd, REQUEST_TIMEOUT)
            .await
            .map_err(ProxyError::from)?;
        match r.code {
            response_code::SUCCESS => {
                let v: Value = remoting::body::from_fastjson(&r.body).unwrap_or(Value::Null);
                Ok(GroupInfo {
                    retry_max_times: v
                        .get("retryMaxTimes")
                        .and_then(Value::as_i64)
                        .map_or(DEFAULT_RETRY_MAX_TIMES, |n| n as i32),
                    orderly: v
                        .get("consumeMessageOrderly")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                })
            }
            response_code::SUBSCRIPTION_GROUP_NOT_EXIST => {
                Err(ProxyError::GroupNotFound(group.to_owned()))
            }
            // A broker without the request (older ones): its own defaults.
            response_code::REQUEST_CODE_NOT_SUPPORTED => Ok(defaults),
            _ => Err(refused(&addr, &r).into()),
        }
    }

    async fn send(
        &self,
        _ctx: &ClientContext,
        msg: OutgoingMessage,
    ) -> Result<SendReceipt, ProxyError> {
        if !msg.broker_name.is_empty() && msg.queue_id >= 0 {
            let addr = self.routes.broker_addr(&msg.broker_name).await?;
            return Ok(self
                .send_to(&addr, &msg.broker_name, msg.queue_id, &msg)
                .await?);
        }
        let mut avoid: Vec<String> = Vec::new();
        let mut last = None;
        for _ in 0..SEND_ATTEMPTS {
            let q = self.routes.select(&msg.topic, true, &avoid).await?;
            match self
                .send_to(&q.broker_addr, &q.broker_name, q.queue_id, &msg)
                .await
            {
                Ok(r) => return Ok(r),
                // Only a broker that was never reached is retried elsewhere:
                // after a timeout the message may be stored.
                Err(e @ ClusterError::Connect { .. }) => {
                    warn!(broker = %q.broker_name, error = %e, "send: broker unreachable");
                    self.routes.invalidate(&msg.topic);
                    avoid.push(q.broker_name);
                    last = Some(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .map(ProxyError::from)
            .unwrap_or_else(|| ProxyError::Internal("send failed".into())))
    }

    async fn receive(
        &self,
        _ctx: &ClientContext,
        req: ReceiveRequest,
    ) -> Result<Vec<StoredMessage>, ProxyError> {
        let (broker_name, addr) = if req.broker_name.is_empty() {
            let q = self.routes.select(&req.topic, false, &[]).await?;
            (q.broker_name, q.broker_addr)
        } else {
            let addr = self.routes.broker_addr(&req.broker_name).await?;
            (req.broker_name.clone(), addr)
        };
        let (exp_type, exp) = match &req.filter {
            Filter::Tag(t) => ("TAG", t.clone()),
            Filter::Sql(s) => ("SQL92", s.clone()),
        };
        let header = PopMessageRequestHeader {
            consumer_group: req.group.clone(),
            topic: req.topic.clone(),
            queue_id: req.queue_id,
            max_msg_nums: req.max_messages.clamp(1, MAX_POP_BATCH),
            invisible_time: req.invisible_ms,
            poll_time: req.poll_ms.max(0),
            born_time: now_ms(),
            init_mode: CONSUME_INIT_MODE_MAX,
            exp_type: Some(exp_type.to_owned()),
            exp: Some(exp),
            order: Some(req.fifo),
            attempt_id: req.attempt_id.clone(),
            broker_name: Some(broker_name.clone()),
        };
        let cmd = RemotingCommand::request(request_code::POP_MESSAGE).with_header(&header);
        let timeout = Duration::from_millis(req.poll_ms.max(0) as u64) + REQUEST_TIMEOUT;
        let r = self
            .clients
            .invoke(&addr, cmd, timeout)
            .await
            .map_err(ProxyError::from)?;
        match r.code {
            response_code::SUCCESS => {}
            response_code::POLLING_FULL
            | response_code::POLLING_TIMEOUT
            | response_code::PULL_NOT_FOUND
            | response_code::NO_MESSAGE => return Ok(Vec::new()),
            _ => return Err(refused(&addr, &r).into()),
        }
        let h: PopMessageResponseHeader = r
            .header()
            .map_err(|e| ProxyError::Internal(format!("pop answer from {addr}: {e}")))?;
        let records = store::StoredMessage::decode_all(&r.body)
            .map_err(|e| ProxyError::Internal(format!("pop body from {addr}: {e}")))?;
        let popped: Vec<PoppedMessage<'_>> = records
            .iter()
            .map(|m| PoppedMessage {
                topic: &m.topic,
                queue_id: m.queue_id,
                queue_offset: m.queue_offset,
                pop_ck: store::properties::get(&m.properties, PROPERTY_POP_CK),
            })
            .collect();
        let answer = PopAnswer {
            pop_time: h.pop_time,
            invisible_time: h.invisible_time,
            revive_qid: h.revive_qid,
            start_offset_info: h.start_offset_info.as_deref(),
            msg_offset_info: h.msg_offset_info.as_deref(),
            order_count_info: h.order_count_info.as_deref(),
        };
        let infos = extra_infos(&answer, &broker_name, req.fifo, &popped);
        let mut out = Vec::with_capacity(records.len());
        for (m, (info, count)) in records.iter().zip(infos) {
            let mut msg = convert(m, &req.topic, &broker_name);
            let handle = create_handle(&info, m.physical_offset);
            msg.receipt_handle = ReceiptHandle::parse(&handle);
            if msg.receipt_handle.is_none() {
                warn!(%handle, "popped message with an unusable receipt handle");
            }
            if let Some(c) = count {
                msg.reconsume_times = c;
            }
            if !msg
                .properties
                .iter()
                .any(|(k, _)| k == PROPERTY_FIRST_POP_TIME)
            {
                msg.properties
                    .push((PROPERTY_FIRST_POP_TIME.to_owned(), h.pop_time.to_string()));
            }
            msg.properties.retain(|(k, _)| k != PROPERTY_POP_CK);
            msg.properties.push((PROPERTY_POP_CK.to_owned(), handle));
            out.push(msg);
        }
        Ok(out)
    }

    async fn ack(
        &self,
        _ctx: &ClientContext,
        group: &str,
        topic: &str,
        handle: &ReceiptHandle,
    ) -> Result<(), ProxyError> {
        Ok(self.ack_inner(group, topic, handle).await?)
    }

    async fn change_invisible(
        &self,
        _ctx: &ClientContext,
        group: &str,
        topic: &str,
        handle: &ReceiptHandle,
        invisible_ms: i64,
    ) -> Result<ReceiptHandle, ProxyError> {
        let addr = self.routes.broker_addr(&handle.broker_name).await?;
        let topic = real_topic(handle, topic, group);
        let header = ChangeInvisibleTimeRequestHeader {
            consumer_group: group.to_owned(),
            topic: topic.clone(),
            queue_id: handle.queue_id,
            extra_info: handle.extra_info(),
            offset: handle.offset,
            invisible_time: invisible_ms,
            broker_name: Some(handle.broker_name.clone()),
        };
        let cmd = RemotingCommand::request(request_code::CHANGE_MESSAGE_INVISIBLETIME)
            .with_header(&header);
        let r = self
            .clients
            .invoke_ok(&addr, cmd, REQUEST_TIMEOUT)
            .await
            .map_err(ProxyError::from)?;
        let h: ChangeInvisibleTimeResponseHeader = r
            .header()
            .map_err(|e| ProxyError::Internal(format!("answer from {addr}: {e}")))?;
        // Java `MQClientAPIImpl.changeInvisibleTimeAsync`: the new checkpoint
        // covers this one message, so its offset is also the ck offset.
        let info = super::receipt::build_extra_info(
            handle.offset,
            h.pop_time,
            h.invisible_time,
            h.revive_qid,
            &topic,
            &handle.broker_name,
            handle.queue_id,
            handle.offset,
        );
        ReceiptHandle::parse(&create_handle(&info, handle.commit_log_offset)).ok_or_else(|| {
            ProxyError::Internal(format!(
                "unusable handle after changing invisible time: {info}"
            ))
        })
    }

    async fn forward_to_dlq(
        &self,
        _ctx: &ClientContext,
        group: &str,
        topic: &str,
        handle: &ReceiptHandle,
        msg_id: &str,
        _max_delivery_attempts: i32,
    ) -> Result<(), ProxyError> {
        if handle.commit_log_offset < 0 {
            return Err(ProxyError::InvalidReceiptHandle(
                "commit log offset is empty".into(),
            ));
        }
        let addr = self.routes.broker_addr(&handle.broker_name).await?;
        // Java `ProducerProcessor.forwardMessageToDeadLetterQueue`: delay
        // level -1 and max reconsume 0 send it straight to %DLQ%group.
        let header = ConsumerSendMsgBackRequestHeader {
            offset: handle.commit_log_offset,
            group: group.to_owned(),
            delay_level: -1,
            origin_msg_id: Some(msg_id.to_owned()),
            origin_topic: Some(real_topic(handle, topic, group)),
            unit_mode: Some(false),
            max_reconsume_times: Some(0),
            broker_name: Some(handle.broker_name.clone()),
        };
        let cmd =
            RemotingCommand::request(request_code::CONSUMER_SEND_MSG_BACK).with_header(&header);
        self.clients
            .invoke_ok(&addr, cmd, REQUEST_TIMEOUT)
            .await
            .map_err(ProxyError::from)?;
        Ok(self.ack_inner(group, topic, handle).await?)
    }

    async fn end_transaction(
        &self,
        _ctx: &ClientContext,
        req: EndTransaction,
    ) -> Result<(), ProxyError> {
        let addr = self.routes.broker_addr(&req.broker_name).await?;
        let header = EndTransactionRequestHeader {
            topic: Some(req.topic.clone()),
            producer_group: req.producer_group.clone(),
            tran_state_table_offset: req.tran_state_offset,
            commit_log_offset: req.commit_log_offset,
            commit_or_rollback: if req.commit {
                TRANSACTION_COMMIT_TYPE
            } else {
                TRANSACTION_ROLLBACK_TYPE
            },
            from_transaction_check: Some(req.from_check),
            msg_id: Some(if req.offset_msg_id.is_empty() {
                req.msg_id.clone()
            } else {
                req.offset_msg_id.clone()
            }),
            transaction_id: Some(req.transaction_id.clone()),
            broker_name: Some(req.broker_name.clone()),
        };
        let cmd = RemotingCommand::request(request_code::END_TRANSACTION)
            .with_header(&header)
            .with_remark("end transaction from proxy");
        // Java's proxy sends it one-way; the half message's check-back covers
        // a lost one.
        self.clients
            .oneway(&addr, cmd)
            .await
            .map_err(ProxyError::from)
    }

    async fn heartbeat(&self, _ctx: &ClientContext, client: &ClientInfo) -> Result<(), ProxyError> {
        if client.kind != ClientKind::Producer || client.topics.is_empty() {
            return Ok(());
        }
        // Java's gRPC proxy registers a producer under each topic it
        // publishes to, the topic name being the producer group.
        let mut new_groups = Vec::new();
        {
            let mut g = lock(&self.tx_groups);
            for topic in &client.topics {
                let (topics, clients) = g.groups.entry(topic.clone()).or_insert_with(|| {
                    new_groups.push(topic.clone());
                    Default::default()
                });
                topics.insert(topic.clone());
                clients.insert(client.client_id.clone());
            }
        }
        for group in new_groups {
            info!(%group, "answering transaction checks for the producer group");
            self.transaction_heartbeat(Some(&group)).await;
        }
        Ok(())
    }

    async fn unregister(
        &self,
        _ctx: &ClientContext,
        client: &ClientInfo,
    ) -> Result<(), ProxyError> {
        let mut g = lock(&self.tx_groups);
        g.groups.retain(|_, (_, clients)| {
            clients.remove(&client.client_id);
            !clients.is_empty()
        });
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_from_attributes() {
        let v: Value =
            serde_json::from_str(r#"{"attributes":{"message.type":"FIFO"}}"#).expect("json");
        assert_eq!(message_type_of(&v), TopicMessageType::Fifo);
        let v: Value = serde_json::from_str(r#"{"topicName":"T"}"#).expect("json");
        assert_eq!(message_type_of(&v), TopicMessageType::Normal);
    }
}
