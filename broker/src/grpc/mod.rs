//! Local proxy mode (Java `mqbroker --enable-proxy`): the gRPC
//! `MessagingService` of the `proxy` crate served by the broker itself.
//!
//! [`LocalBackend`] implements `proxy::Backend` over the broker's own
//! request table: each gRPC client gets an in-memory remoting connection
//! (a `tokio::io::duplex` pair, no socket) to the broker's router, so sends,
//! pops, acks, transactions and client registration go through exactly the
//! processors remoting clients use (send path, `PopService`, the
//! transaction services, the producer and consumer tables). The broker's
//! CHECK_TRANSACTION_STATE on such a connection is handed to the gRPC
//! service, which asks a live producer with RecoverOrphanedTransactionCommand.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use proxy::{
    Backend, BrokerQueues, ClientContext, ClientInfo, ClientKind, EndTransaction, Filter,
    GroupInfo, OutgoingMessage, ProxyError, ReceiptHandle, ReceiveRequest, SendReceipt,
    StoredMessage, TopicMessageType, TopicRoute, TransactionCheck, TransactionCheckSink,
};
use remoting::body::{ConsumerData, HeartbeatData, ProducerData, SubscriptionData};
use remoting::code::{request_code as rq, response_code as rc};
use remoting::header::{SendMessageRequestHeader, SendMessageResponseHeader};
use remoting::{Connection, RemotingCommand, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::meta::subscription::SubscriptionGroupManager;
use crate::meta::topic::TopicConfigManager;
use crate::processor::pop::header::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, ChangeInvisibleTimeResponseHeader,
    PopMessageRequestHeader, PopMessageResponseHeader,
};
use crate::processor::pop::records::ExtraInfo;
use crate::processor::send::ConsumerSendMsgBackRequestHeader;
use crate::processor::transaction::EndTransactionRequestHeader;
use crate::processor::{read_config, SharedConfig};
use crate::services::transaction::CheckTransactionStateRequestHeader;

/// Bytes buffered each way on a loopback connection.
const LOOPBACK_BUFFER: usize = 1 << 20;
/// A request to the own router that takes longer than this failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A client's loopback connection is closed after this long without a
/// heartbeat or request (Java's `channelExpiredInSeconds` is 60 + 60 idle).
const CLIENT_IDLE: Duration = Duration::from_secs(120);
/// Java `ConsumeInitMode.MAX`: where a new group's pop starts (Java's proxy
/// pops with it).
const INIT_MODE_MAX: i32 = 1;
/// Java `MessageSysFlag` transaction bits for END_TRANSACTION.
const TRANSACTION_COMMIT_TYPE: i32 = 0x8;
const TRANSACTION_ROLLBACK_TYPE: i32 = 0xC;

pub struct LocalBackend {
    router: Arc<Router>,
    client_router: Arc<Router>,
    topics: Arc<TopicConfigManager>,
    groups: Arc<SubscriptionGroupManager>,
    config: SharedConfig,
    broker_addr: SocketAddr,
    shutdown: CancellationToken,
    shared: Mutex<Option<Connection>>,
    conns: DashMap<String, (Connection, Instant)>,
    checks: Arc<OnceLock<TransactionCheckSink>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> i64 {
    remoting::body::now_millis()
}

/// A broker answer other than success, as the proxy error the service maps
/// to a `Code` (Java `ResponseBuilder` mapping).
fn answer_error(resp: &RemotingCommand) -> ProxyError {
    ProxyError::Remoting {
        code: resp.code,
        remark: resp.remark.clone().unwrap_or_default(),
    }
}

fn transport(e: impl std::fmt::Display) -> ProxyError {
    ProxyError::Internal(format!("broker request failed: {e}"))
}

fn properties_string(props: &[(String, String)]) -> String {
    let mut s = String::new();
    for (k, v) in props {
        s.push_str(k);
        s.push('\u{1}');
        s.push_str(v);
        s.push('\u{2}');
    }
    s
}

fn parse_properties(s: &str) -> Vec<(String, String)> {
    crate::message::decode_properties(s).into_iter().collect()
}

/// Decompresses a body stored with `COMPRESSED_FLAG` (zlib, as Java).
fn body_of(m: &store::StoredMessage) -> Bytes {
    if m.sys_flag & 0x1 == 0 {
        return m.body.clone();
    }
    use std::io::Read;
    let mut out = Vec::new();
    let mut d = flate2::read::ZlibDecoder::new(&m.body[..]);
    match d.read_to_end(&mut out) {
        Ok(_) => Bytes::from(out),
        Err(_) => m.body.clone(),
    }
}

fn stored(m: &store::StoredMessage, topic: &str, broker_name: &str) -> StoredMessage {
    StoredMessage {
        topic: topic.to_owned(),
        queue_id: m.queue_id,
        queue_offset: m.queue_offset,
        commit_log_offset: m.physical_offset,
        body: body_of(m),
        flag: m.flag,
        sys_flag: m.sys_flag,
        properties: parse_properties(&m.properties),
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

/// `flag queueId value;...` (`startOffsetInfo`, `msgOffsetInfo`): value by
/// (topic type, queue id).
fn parse_info(s: &str) -> Vec<(String, i32, String)> {
    s.split(';')
        .filter_map(|e| {
            let mut f = e.splitn(3, ' ');
            let flag = f.next()?.to_owned();
            let q = f.next()?.parse().ok()?;
            let v = f.next()?.to_owned();
            Some((flag, q, v))
        })
        .collect()
}

/// `orderCountInfo` per message: `flag qo<queueId>%<offset> <count>`.
fn order_count(s: &str, flag: &str, queue_id: i32, offset: i64) -> Option<i32> {
    let key = format!("{flag} qo{queue_id}%{offset}");
    s.split(';').find_map(|e| {
        let (k, c) = e.rsplit_once(' ')?;
        (k == key).then(|| c.parse().ok()).flatten()
    })
}

/// The real topic of a handle (Java `ReceiptHandle.getRealTopic`).
fn real_topic(h: &ReceiptHandle, topic: &str, group: &str) -> String {
    match h.topic_type.as_str() {
        "1" => format!("%RETRY%{group}_{topic}"),
        "2" => format!("%RETRY%{group}+{topic}"),
        _ => topic.to_owned(),
    }
}

impl LocalBackend {
    pub(crate) fn new(
        router: Arc<Router>,
        topics: Arc<TopicConfigManager>,
        groups: Arc<SubscriptionGroupManager>,
        config: SharedConfig,
        broker_addr: SocketAddr,
        shutdown: CancellationToken,
    ) -> Arc<LocalBackend> {
        let checks: Arc<OnceLock<TransactionCheckSink>> = Arc::new(OnceLock::new());
        let sink = checks.clone();
        let broker_name = read_config(&config).broker_name.clone();
        let client_router = Router::new().route(
            rq::CHECK_TRANSACTION_STATE,
            move |_conn: Connection, req: RemotingCommand| {
                let sink = sink.clone();
                let broker_name = broker_name.clone();
                async move {
                    on_check(&sink, &broker_name, &req);
                    Ok(RemotingCommand::success())
                }
            },
        );
        Arc::new(LocalBackend {
            router,
            client_router: Arc::new(client_router),
            topics,
            groups,
            config,
            broker_addr,
            shutdown,
            shared: Mutex::new(None),
            conns: DashMap::new(),
            checks,
        })
    }

    fn broker_name(&self) -> String {
        read_config(&self.config).broker_name.clone()
    }

    fn loopback(&self, peer: SocketAddr) -> Connection {
        let (a, b) = tokio::io::duplex(LOOPBACK_BUFFER);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let _server = Connection::spawn(
            br,
            bw,
            peer,
            self.broker_addr,
            self.router.clone(),
            self.shutdown.clone(),
        );
        Connection::spawn(
            ar,
            aw,
            self.broker_addr,
            peer,
            self.client_router.clone(),
            self.shutdown.clone(),
        )
    }

    /// The client's own loopback connection (the broker's producer and
    /// consumer tables key channels by connection), or a shared one.
    fn conn(&self, ctx: &ClientContext) -> Connection {
        let peer = ctx
            .remote
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        if ctx.client_id.is_empty() {
            let mut g = lock(&self.shared);
            if let Some(c) = g.as_ref().filter(|c| !c.is_closed()) {
                return c.clone();
            }
            let c = self.loopback(peer);
            *g = Some(c.clone());
            return c;
        }
        if let Some(mut e) = self.conns.get_mut(&ctx.client_id) {
            if !e.0.is_closed() {
                e.1 = Instant::now();
                return e.0.clone();
            }
        }
        let c = self.loopback(peer);
        self.conns
            .insert(ctx.client_id.clone(), (c.clone(), Instant::now()));
        c
    }

    /// Closes loopback connections of clients gone quiet.
    pub(crate) fn expire_idle(&self) {
        let now = Instant::now();
        self.conns.retain(|id, (c, seen)| {
            let keep = now.duration_since(*seen) < CLIENT_IDLE && !c.is_closed();
            if !keep {
                debug!(client = %id, "grpc client idle: loopback connection closed");
                c.close();
            }
            keep
        });
    }

    async fn call(
        &self,
        ctx: &ClientContext,
        cmd: RemotingCommand,
    ) -> Result<RemotingCommand, ProxyError> {
        self.conn(ctx)
            .request(cmd, REQUEST_TIMEOUT)
            .await
            .map_err(transport)
    }

    async fn call_ok(
        &self,
        ctx: &ClientContext,
        cmd: RemotingCommand,
    ) -> Result<RemotingCommand, ProxyError> {
        let resp = self.call(ctx, cmd).await?;
        if resp.code != rc::SUCCESS {
            return Err(answer_error(&resp));
        }
        Ok(resp)
    }
}

fn on_check(sink: &OnceLock<TransactionCheckSink>, broker_name: &str, req: &RemotingCommand) {
    let Some(sink) = sink.get() else { return };
    let h: CheckTransactionStateRequestHeader = match req.header() {
        Ok(h) => h,
        Err(e) => {
            warn!(error = %e, "bad CHECK_TRANSACTION_STATE header");
            return;
        }
    };
    let m = match store::StoredMessage::decode(&req.body) {
        Ok(m) => m,
        Err(e) => {
            warn!(error = %e, "bad CHECK_TRANSACTION_STATE body");
            return;
        }
    };
    let mut msg = stored(&m, &m.topic, broker_name);
    // The half message's real topic.
    if let Some(t) = msg.property("REAL_TOPIC").map(str::to_owned) {
        msg.topic = t;
    }
    let group = msg
        .property("PGROUP")
        .map(str::to_owned)
        .unwrap_or_else(|| msg.topic.clone());
    let transaction_id = h
        .transaction_id
        .clone()
        .or_else(|| msg.property("UNIQ_KEY").map(str::to_owned))
        .unwrap_or_default();
    let check = TransactionCheck {
        producer_group: group,
        client_id: None,
        broker_name: broker_name.to_owned(),
        transaction_id,
        tran_state_offset: h.tran_state_table_offset,
        commit_log_offset: h.commit_log_offset,
        message: msg,
    };
    if sink.try_send(check).is_err() {
        debug!("transaction check queue full: dropped (the broker checks again)");
    }
}

impl Backend for LocalBackend {
    fn attach(&self, checks: TransactionCheckSink) {
        let _ = self.checks.set(checks);
    }

    async fn route(&self, _ctx: &ClientContext, topic: &str) -> Result<TopicRoute, ProxyError> {
        let t = self
            .topics
            .get(topic)
            .ok_or_else(|| ProxyError::TopicNotFound(topic.to_owned()))?;
        let perm = t.perm & read_config(&self.config).broker_permission;
        Ok(TopicRoute {
            brokers: vec![BrokerQueues {
                broker_name: self.broker_name(),
                read_queues: t.read_queue_nums,
                write_queues: t.write_queue_nums,
                perm,
            }],
            message_type: TopicMessageType::from_attribute(
                t.attributes.get("message.type").map(String::as_str),
            ),
        })
    }

    async fn group(&self, _ctx: &ClientContext, group: &str) -> Result<GroupInfo, ProxyError> {
        let g = self
            .groups
            .find_or_create(group)
            .ok_or_else(|| ProxyError::GroupNotFound(group.to_owned()))?;
        Ok(GroupInfo {
            retry_max_times: g.retry_max_times,
            orderly: g.consume_message_orderly,
        })
    }

    async fn send(
        &self,
        ctx: &ClientContext,
        msg: OutgoingMessage,
    ) -> Result<SendReceipt, ProxyError> {
        let header = SendMessageRequestHeader {
            producer_group: msg.producer_group.clone(),
            topic: msg.topic.clone(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: msg.queue_id,
            sys_flag: msg.sys_flag,
            born_timestamp: msg.born_timestamp,
            flag: msg.flag,
            properties: Some(properties_string(&msg.properties)),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            batch: Some(false),
            max_reconsume_times: None,
            broker_name: Some(msg.broker_name.clone()),
        };
        let cmd = RemotingCommand::request(rq::SEND_MESSAGE)
            .with_header(&header)
            .with_body(msg.body.clone());
        let resp = self.call(ctx, cmd).await?;
        // Java counts FLUSH_*_TIMEOUT and SLAVE_NOT_AVAILABLE as stored.
        if !matches!(resp.code, rc::SUCCESS | 10 | 11 | 12) {
            return Err(answer_error(&resp));
        }
        let h: SendMessageResponseHeader = resp
            .header()
            .map_err(|e| ProxyError::Internal(format!("bad send response: {e}")))?;
        let commit_log_offset = store::decode_offset_message_id(&h.msg_id)
            .map(|(_, o)| o)
            .unwrap_or(-1);
        Ok(SendReceipt {
            broker_name: self.broker_name(),
            queue_id: h.queue_id,
            queue_offset: h.queue_offset,
            commit_log_offset,
            offset_msg_id: h.msg_id,
            transaction_id: h.transaction_id,
        })
    }

    async fn receive(
        &self,
        ctx: &ClientContext,
        req: ReceiveRequest,
    ) -> Result<Vec<StoredMessage>, ProxyError> {
        let broker = self.broker_name();
        if !req.broker_name.is_empty() && req.broker_name != broker {
            return Err(ProxyError::Forbidden(format!(
                "broker {} is not served here",
                req.broker_name
            )));
        }
        let (exp_type, exp) = match &req.filter {
            Filter::Tag(t) => ("TAG".to_owned(), t.clone()),
            Filter::Sql(s) => ("SQL92".to_owned(), s.clone()),
        };
        let header = PopMessageRequestHeader {
            consumer_group: req.group.clone(),
            topic: req.topic.clone(),
            queue_id: req.queue_id,
            max_msg_nums: req.max_messages,
            invisible_time: req.invisible_ms,
            poll_time: req.poll_ms,
            born_time: now_ms(),
            init_mode: INIT_MODE_MAX,
            exp_type: Some(exp_type),
            exp: Some(exp),
            order: Some(req.fifo),
            attempt_id: req.attempt_id.clone(),
            broker_name: None,
        };
        let cmd = RemotingCommand::request(rq::POP_MESSAGE).with_header(&header);
        // The held pop may last the poll time: do not time it out earlier.
        let wait = Duration::from_millis(req.poll_ms.max(0) as u64) + REQUEST_TIMEOUT;
        let resp = self.conn(ctx).request(cmd, wait).await.map_err(transport)?;
        match resp.code {
            rc::SUCCESS => {}
            // POLLING_TIMEOUT / PULL_NOT_FOUND: nothing came.
            rc::POLLING_TIMEOUT | rc::PULL_NOT_FOUND => return Ok(vec![]),
            _ => return Err(answer_error(&resp)),
        }
        let h: PopMessageResponseHeader = resp
            .header()
            .map_err(|e| ProxyError::Internal(format!("bad pop response: {e}")))?;
        let starts = parse_info(h.start_offset_info.as_deref().unwrap_or(""));
        let records = store::StoredMessage::decode_all(&resp.body)
            .map_err(|e| ProxyError::Internal(format!("bad pop body: {e}")))?;
        let mut out = Vec::with_capacity(records.len());
        for m in &records {
            let mut s = stored(m, &req.topic, &broker);
            // A retried message carries its POP_CK; others are built from
            // the header, as the clients do.
            let extra = match s.property("POP_CK") {
                Some(ck) => ck.to_owned(),
                None => {
                    let flag = crate::processor::pop::records::retry_flag(&m.topic);
                    let start = starts
                        .iter()
                        .find(|(f, q, _)| f == flag && *q == m.queue_id)
                        .and_then(|(_, _, v)| v.parse::<i64>().ok())
                        .unwrap_or(m.queue_offset);
                    if let Some(c) = h
                        .order_count_info
                        .as_deref()
                        .and_then(|i| order_count(i, flag, m.queue_id, m.queue_offset))
                    {
                        s.reconsume_times = c;
                    }
                    ExtraInfo::build(
                        start,
                        h.pop_time,
                        h.invisible_time,
                        h.revive_qid,
                        &m.topic,
                        &broker,
                        m.queue_id,
                        m.queue_offset,
                    )
                }
            };
            let handle = ReceiptHandle::parse(&format!("{extra} {}", m.physical_offset))
                .ok_or_else(|| {
                    ProxyError::Internal(format!("unusable pop extra info {extra:?}"))
                })?;
            s.receipt_handle = Some(handle);
            out.push(s);
        }
        Ok(out)
    }

    async fn ack(
        &self,
        ctx: &ClientContext,
        group: &str,
        topic: &str,
        handle: &ReceiptHandle,
    ) -> Result<(), ProxyError> {
        let header = AckMessageRequestHeader {
            consumer_group: group.to_owned(),
            topic: real_topic(handle, topic, group),
            queue_id: handle.queue_id,
            extra_info: handle.extra_info(),
            offset: handle.offset,
            broker_name: None,
        };
        let resp = self
            .call(
                ctx,
                RemotingCommand::request(rq::ACK_MESSAGE).with_header(&header),
            )
            .await?;
        match resp.code {
            rc::SUCCESS => Ok(()),
            // NO_MESSAGE: the offset is gone from the queue.
            rc::PULL_NOT_FOUND => Err(ProxyError::InvalidReceiptHandle(
                "the message of this receipt handle is gone".into(),
            )),
            _ => Err(answer_error(&resp)),
        }
    }

    async fn change_invisible(
        &self,
        ctx: &ClientContext,
        group: &str,
        topic: &str,
        handle: &ReceiptHandle,
        invisible_ms: i64,
    ) -> Result<ReceiptHandle, ProxyError> {
        let header = ChangeInvisibleTimeRequestHeader {
            consumer_group: group.to_owned(),
            topic: real_topic(handle, topic, group),
            queue_id: handle.queue_id,
            extra_info: handle.extra_info(),
            offset: handle.offset,
            invisible_time: invisible_ms,
            broker_name: None,
        };
        let resp = self
            .call(
                ctx,
                RemotingCommand::request(rq::CHANGE_MESSAGE_INVISIBLETIME).with_header(&header),
            )
            .await?;
        if resp.code == rc::PULL_NOT_FOUND {
            return Err(ProxyError::InvalidReceiptHandle(
                "the message of this receipt handle is gone".into(),
            ));
        }
        if resp.code != rc::SUCCESS {
            return Err(answer_error(&resp));
        }
        let h: ChangeInvisibleTimeResponseHeader = resp
            .header()
            .map_err(|e| ProxyError::Internal(format!("bad change-invisible response: {e}")))?;
        // Java `ChangeInvisibleTimeResponse`: the new checkpoint is the
        // message's own offset (`ExtraInfoUtil.buildExtraInfo(offset, ...)`).
        let mut n = handle.clone();
        if h.revive_qid != crate::processor::pop::records::POP_ORDER_REVIVE_QUEUE {
            n.ck_offset = handle.offset;
        }
        n.pop_time = h.pop_time;
        n.invisible_time = h.invisible_time;
        n.revive_qid = h.revive_qid;
        Ok(n)
    }

    async fn forward_to_dlq(
        &self,
        ctx: &ClientContext,
        group: &str,
        topic: &str,
        handle: &ReceiptHandle,
        msg_id: &str,
        max_delivery_attempts: i32,
    ) -> Result<(), ProxyError> {
        if handle.commit_log_offset < 0 {
            return Err(ProxyError::InvalidReceiptHandle(
                "receipt handle has no commit log offset".into(),
            ));
        }
        let header = ConsumerSendMsgBackRequestHeader {
            offset: handle.commit_log_offset,
            group: group.to_owned(),
            delay_level: -1,
            origin_msg_id: Some(msg_id.to_owned()),
            origin_topic: Some(topic.to_owned()),
            unit_mode: Some(false),
            max_reconsume_times: Some(max_delivery_attempts.saturating_sub(1).max(0)),
            broker_name: None,
        };
        self.call_ok(
            ctx,
            RemotingCommand::request(rq::CONSUMER_SEND_MSG_BACK).with_header(&header),
        )
        .await?;
        // Java's proxy acks the original once it is in the DLQ.
        self.ack(ctx, group, topic, handle).await
    }

    async fn end_transaction(
        &self,
        ctx: &ClientContext,
        req: EndTransaction,
    ) -> Result<(), ProxyError> {
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
            msg_id: Some(req.offset_msg_id.clone()),
            transaction_id: Some(req.transaction_id.clone()),
            broker_name: None,
        };
        let resp = self
            .call(
                ctx,
                RemotingCommand::request(rq::END_TRANSACTION).with_header(&header),
            )
            .await?;
        if resp.code != rc::SUCCESS {
            return Err(ProxyError::status(
                proxy::pb::Code::InvalidTransactionId,
                resp.remark
                    .clone()
                    .unwrap_or_else(|| "end transaction failed".into()),
            ));
        }
        Ok(())
    }

    async fn heartbeat(&self, ctx: &ClientContext, client: &ClientInfo) -> Result<(), ProxyError> {
        let mut hb = HeartbeatData {
            client_id: client.client_id.clone(),
            ..Default::default()
        };
        match client.kind {
            ClientKind::Producer => {
                for t in &client.topics {
                    hb.producer_data_set.push(ProducerData {
                        group_name: t.clone(),
                    });
                }
            }
            _ => {
                let subs = client
                    .subscriptions
                    .iter()
                    .map(|(topic, f)| {
                        let (ty, expr) = match f {
                            Filter::Tag(t) => ("TAG", t.clone()),
                            Filter::Sql(s) => ("SQL92", s.clone()),
                        };
                        let tags: Vec<String> = if ty == "TAG" && expr.trim() != "*" {
                            expr.split("||")
                                .map(|s| s.trim().to_owned())
                                .filter(|s| !s.is_empty())
                                .collect()
                        } else {
                            vec![]
                        };
                        SubscriptionData {
                            topic: topic.clone(),
                            sub_string: expr,
                            code_set: tags.iter().map(|t| store::java_string_hash(t)).collect(),
                            tags_set: tags,
                            sub_version: now_ms(),
                            expression_type: ty.into(),
                            ..Default::default()
                        }
                    })
                    .collect();
                hb.consumer_data_set.push(ConsumerData {
                    group_name: client.group.clone(),
                    consume_type: "CONSUME_POP".into(),
                    message_model: "CLUSTERING".into(),
                    consume_from_where: "CONSUME_FROM_LAST_OFFSET".into(),
                    subscription_data_set: subs,
                    unit_mode: false,
                });
            }
        }
        let cmd = RemotingCommand::request(rq::HEART_BEAT).with_body(remoting::body::to_json(&hb));
        self.call_ok(ctx, cmd).await?;
        Ok(())
    }

    async fn unregister(&self, ctx: &ClientContext, client: &ClientInfo) -> Result<(), ProxyError> {
        debug!(client = %client.client_id, "grpc client terminated");
        // Closing the loopback connection drops its producer and consumer
        // registrations (the broker's close hook).
        if let Some((_, (c, _))) = self.conns.remove(&ctx.client_id) {
            c.close();
        }
        Ok(())
    }
}

/// Binds the gRPC port and serves the MessagingService over `backend`
/// until `shutdown`.
pub(crate) async fn start(
    c: &crate::config::BrokerConfig,
    backend: Arc<LocalBackend>,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let (bind, port) = (c.bind_address.as_str(), c.grpc_server_port);
    let advertised_ip: Option<std::net::IpAddr> = c.broker_ip1.parse().ok();
    let mut tls = proxy::tls::TlsSettings::default();
    for (key, value) in [
        ("tls.server.mode", c.tls_server_mode.clone()),
        ("tlsTestModeEnable", c.tls_test_mode_enable.to_string()),
        ("tlsKeyPath", c.tls_key_path.clone()),
        ("tlsCertPath", c.tls_cert_path.clone()),
    ] {
        tls.apply(key, &value)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    }
    // Configured key files, or TLS enforced: unusable settings stop the
    // start (the server itself would fall back to plaintext or not serve).
    if tls.mode == proxy::tls::TlsMode::Enforcing || tls.key_path.is_some() {
        if let Err(e) = tls.acceptor() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("gRPC TLS: {e}"),
            ));
        }
    }
    let listener = TcpListener::bind((bind, port)).await?;
    let addr = listener.local_addr()?;
    let cfg = proxy::ServiceConfig {
        tls,
        max_message_size: usize::try_from(c.max_message_size).unwrap_or(0),
        min_invisible_ms_for_recv: c.min_invisible_time_mills_for_recv,
        enable_topic_message_type_check: c.enable_topic_message_type_check,
        advertised: Some(SocketAddr::new(
            advertised_ip.unwrap_or(addr.ip()),
            addr.port(),
        )),
        ..Default::default()
    };
    let server = proxy::MessagingServer::new(backend.clone(), cfg);
    let stop = shutdown.clone();
    tasks.spawn(async move {
        if let Err(e) = server.serve(listener, stop).await {
            warn!(error = %e, "gRPC server stopped");
        }
    });
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = tick.tick() => backend.expire_idle(),
                _ = shutdown.cancelled() => break,
            }
        }
    });
    info!(%addr, "gRPC proxy (local mode) started");
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_and_order_counts() {
        let v = parse_info("0 3 100;1 0 5");
        assert_eq!(v[0], ("0".to_owned(), 3, "100".to_owned()));
        assert_eq!(v[1], ("1".to_owned(), 0, "5".to_owned()));
        assert_eq!(order_count("0 qo1%7 2;0 qo1%8 0", "0", 1, 7), Some(2));
        assert_eq!(order_count("0 qo1%7 2", "0", 1, 9), None);
        let h = ReceiptHandle::parse("1 2 3 4 2 b 0 7 9").expect("valid");
        assert_eq!(real_topic(&h, "T", "G"), "%RETRY%G+T");
    }
}
