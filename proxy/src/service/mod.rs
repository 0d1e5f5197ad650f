//! The tonic `MessagingService` over a [`Backend`]: Java's proxy activities
//! (`RouteActivity`, `SendMessageActivity`, `ReceiveMessageActivity`,
//! `AckMessageActivity`, `ClientActivity`, ...) in one place, with Java's
//! validation and result codes.

pub mod convert;
mod telemetry;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::Stream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::{debug, warn};

use crate::backend::*;
use crate::error::ProxyError;
use crate::pb::messaging_service_server::{MessagingService, MessagingServiceServer};
use crate::pb::{self, Code};
use crate::receipt::ReceiptHandle;

pub use telemetry::Clients;

/// Java `ProxyConfig` keys the service honours (defaults are Java's).
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// `maxMessageSize`.
    pub max_message_size: usize,
    /// `maxUserPropertySize`.
    pub max_user_property_size: usize,
    /// `userPropertyMaxNum`.
    pub user_property_max_num: usize,
    /// `maxMessageGroupSize` (0: no limit).
    pub max_message_group_size: usize,
    /// `minInvisibleTimeMillsForRecv`.
    pub min_invisible_ms_for_recv: i64,
    /// `maxInvisibleTimeMills`.
    pub max_invisible_ms: i64,
    /// `defaultInvisibleTimeMills` (push consumers, auto renew).
    pub default_invisible_ms: i64,
    /// `maxDelayTimeMills`.
    pub max_delay_ms: i64,
    /// `maxTransactionRecoverySecond`.
    pub max_transaction_recovery_secs: i64,
    /// `enableTopicMessageTypeCheck`.
    pub enable_topic_message_type_check: bool,
    /// `grpcClientProducerMaxAttempts`.
    pub producer_max_attempts: i32,
    /// `grpcClientProducerBackoffInitialMillis`.
    pub producer_backoff_initial_ms: i64,
    /// `grpcClientProducerBackoffMaxMillis`.
    pub producer_backoff_max_ms: i64,
    /// `grpcClientProducerBackoffMultiplier`.
    pub producer_backoff_multiplier: f32,
    /// `grpcClientConsumerMinLongPollingTimeoutMillis`.
    pub consumer_min_long_polling_ms: i64,
    /// `grpcClientConsumerMaxLongPollingTimeoutMillis`.
    pub consumer_max_long_polling_ms: i64,
    /// `grpcClientConsumerLongPollingBatchSize`.
    pub consumer_long_polling_batch_size: i32,
    /// `longPollingReserveTimeInMillis`.
    pub long_polling_reserve_ms: i64,
    /// The address answered in routes when the request names none.
    pub advertised: Option<SocketAddr>,
    /// TLS beside plaintext on the port (`tls.server.mode`,
    /// `tlsTestModeEnable`, `tlsKeyPath`, `tlsCertPath`).
    pub tls: crate::tls::TlsSettings,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            max_message_size: 4 * 1024 * 1024,
            max_user_property_size: 16 * 1024,
            user_property_max_num: 128,
            max_message_group_size: 64,
            min_invisible_ms_for_recv: 10_000,
            max_invisible_ms: 12 * 3600 * 1000,
            default_invisible_ms: 60_000,
            max_delay_ms: 24 * 3600 * 1000,
            max_transaction_recovery_secs: 3600,
            enable_topic_message_type_check: true,
            producer_max_attempts: 3,
            producer_backoff_initial_ms: 10,
            producer_backoff_max_ms: 1000,
            producer_backoff_multiplier: 2.0,
            consumer_min_long_polling_ms: 5_000,
            consumer_max_long_polling_ms: 20_000,
            consumer_long_polling_batch_size: 32,
            long_polling_reserve_ms: 100,
            advertised: None,
            tls: crate::tls::TlsSettings::default(),
        }
    }
}

/// Java's gRPC inbound limit (`grpcMaxInboundMessageSize`, 130 MiB): a
/// too-large body is answered with MESSAGE_BODY_TOO_LARGE, not cut off by
/// the transport.
pub const MAX_INBOUND_MESSAGE_SIZE: usize = 130 * 1024 * 1024;

/// The service; cheap to clone (all state is shared).
pub struct MessagingServer<B: Backend> {
    backend: Arc<B>,
    cfg: Arc<ServiceConfig>,
    clients: Arc<Clients>,
    round_robin: Arc<AtomicU64>,
    /// Ends telemetry streams when the server stops (a graceful shutdown
    /// waits for open streams).
    stop: CancellationToken,
}

impl<B: Backend> Clone for MessagingServer<B> {
    fn clone(&self) -> Self {
        MessagingServer {
            backend: self.backend.clone(),
            cfg: self.cfg.clone(),
            clients: self.clients.clone(),
            round_robin: self.round_robin.clone(),
            stop: self.stop.clone(),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn ok_status() -> pb::Status {
    pb::Status {
        code: Code::Ok as i32,
        message: "OK".into(),
    }
}

fn status(code: Code, msg: impl Into<String>) -> pb::Status {
    pb::Status {
        code: code as i32,
        message: msg.into(),
    }
}

fn err_status(e: &ProxyError) -> pb::Status {
    status(e.code(), e.to_string())
}

/// `grpc-timeout` (`<digits><unit>`) in milliseconds.
fn grpc_timeout_ms(md: &tonic::metadata::MetadataMap) -> Option<i64> {
    let v = md.get("grpc-timeout")?.to_str().ok()?;
    if v.len() < 2 {
        return None;
    }
    let (n, unit) = v.split_at(v.len() - 1);
    let n: i64 = n.parse().ok()?;
    Some(match unit {
        "H" => n.saturating_mul(3_600_000),
        "M" => n.saturating_mul(60_000),
        "S" => n.saturating_mul(1000),
        "m" => n,
        "u" => n / 1000,
        "n" => n / 1_000_000,
        _ => return None,
    })
}

fn header(md: &tonic::metadata::MetadataMap, k: &str) -> String {
    md.get(k)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

pub(crate) fn context<T>(req: &Request<T>) -> ClientContext {
    let md = req.metadata();
    ClientContext {
        client_id: header(md, "x-mq-client-id"),
        namespace: header(md, "x-mq-namespace"),
        language: header(md, "x-mq-language"),
        version: header(md, "x-mq-client-version"),
        remote: req.remote_addr(),
    }
}

fn resource_name(r: &Option<pb::Resource>) -> &str {
    r.as_ref().map(|r| r.name.as_str()).unwrap_or("")
}

/// Java `PermName` bits.
const PERM_READ: i32 = 4;
const PERM_WRITE: i32 = 2;

fn accept_types(t: TopicMessageType) -> Vec<i32> {
    use pb::MessageType as M;
    match t {
        TopicMessageType::Unspecified | TopicMessageType::Normal => vec![M::Normal as i32],
        TopicMessageType::Fifo => vec![M::Fifo as i32],
        TopicMessageType::Delay => vec![M::Delay as i32],
        TopicMessageType::Transaction => vec![M::Transaction as i32],
        TopicMessageType::Mixed => vec![
            M::Normal as i32,
            M::Fifo as i32,
            M::Delay as i32,
            M::Transaction as i32,
        ],
    }
}

fn permission(perm: i32) -> pb::Permission {
    match (perm & PERM_READ != 0, perm & PERM_WRITE != 0) {
        (true, true) => pb::Permission::ReadWrite,
        (true, false) => pb::Permission::Read,
        (false, true) => pb::Permission::Write,
        (false, false) => pb::Permission::None,
    }
}

/// Java `ReceiptHandle.decode` plus the expiry check of ack and change:
/// malformed, forged or expired handles are INVALID_RECEIPT_HANDLE.
fn parse_handle(s: &str, now: i64) -> Result<ReceiptHandle, ProxyError> {
    let h = ReceiptHandle::parse(s)
        .ok_or_else(|| ProxyError::InvalidReceiptHandle("receipt handle is malformed".into()))?;
    if h.next_visible_time() <= now {
        return Err(ProxyError::InvalidReceiptHandle(
            "receipt handle is expired".into(),
        ));
    }
    Ok(h)
}

impl<B: Backend> MessagingServer<B> {
    pub fn new(backend: Arc<B>, cfg: ServiceConfig) -> Self {
        let clients = Arc::new(Clients::default());
        let (tx, rx) = mpsc::channel(1024);
        backend.attach(tx);
        let server = MessagingServer {
            backend,
            cfg: Arc::new(cfg),
            clients,
            round_robin: Arc::new(AtomicU64::new(0)),
            stop: CancellationToken::new(),
        };
        tokio::spawn(telemetry::forward_checks(
            server.clients.clone(),
            rx,
            server.cfg.clone(),
        ));
        server
    }

    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.cfg
    }

    /// The tonic service, with Java's inbound size limit.
    pub fn into_service(self) -> MessagingServiceServer<Self> {
        MessagingServiceServer::new(self)
            .max_decoding_message_size(MAX_INBOUND_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_INBOUND_MESSAGE_SIZE)
    }

    /// Serves on `listener` until `shutdown`: TLS and plaintext HTTP/2 as
    /// `cfg.tls` says (by default both, a self-signed certificate).
    pub async fn serve(
        mut self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), tonic::transport::Error> {
        self.stop = shutdown.child_token();
        // TLS and plaintext on the one port, as Java's proxy (crate::tls).
        let mut mode = self.cfg.tls.mode;
        let acceptor = match self.cfg.tls.acceptor() {
            Ok(a) => a,
            Err(e) if mode == crate::tls::TlsMode::Enforcing => {
                tracing::error!(error = %e, "gRPC port not served: TLS enforced but unusable");
                return Ok(());
            }
            Err(e) => {
                tracing::error!(error = %e, "gRPC port serves plaintext only");
                mode = crate::tls::TlsMode::Disabled;
                None
            }
        };
        let incoming = crate::tls::incoming(listener, acceptor, mode, shutdown.clone());
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .add_service(self.into_service())
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
    }

    fn endpoints(&self, requested: &Option<pb::Endpoints>) -> Option<pb::Endpoints> {
        if let Some(e) = requested {
            if !e.addresses.is_empty() {
                return Some(e.clone());
            }
        }
        self.cfg.advertised.map(|a| pb::Endpoints {
            scheme: if a.is_ipv4() {
                pb::AddressScheme::IPv4 as i32
            } else {
                pb::AddressScheme::IPv6 as i32
            },
            addresses: vec![pb::Address {
                host: a.ip().to_string(),
                port: i32::from(a.port()),
            }],
        })
    }

    fn broker(&self, name: &str, endpoints: &Option<pb::Endpoints>) -> pb::Broker {
        pb::Broker {
            name: name.to_owned(),
            id: 0,
            endpoints: endpoints.clone(),
        }
    }

    /// Java `RouteActivity.genMessageQueueFromQueueData`.
    fn route_queues(
        &self,
        topic: &pb::Resource,
        route: &TopicRoute,
        endpoints: &Option<pb::Endpoints>,
    ) -> Vec<pb::MessageQueue> {
        let types = accept_types(route.message_type);
        let mut out = Vec::new();
        for b in &route.brokers {
            let readable = b.perm & PERM_READ != 0;
            let writable = b.perm & PERM_WRITE != 0;
            let (r, w, rw) = match (readable, writable) {
                (true, true) => {
                    let rw = b.read_queues.min(b.write_queues).max(0);
                    (b.read_queues - rw, b.write_queues - rw, rw)
                }
                (false, true) => (0, b.write_queues, 0),
                (true, false) => (b.read_queues, 0, 0),
                _ => (0, 0, 0),
            };
            let broker = self.broker(&b.broker_name, endpoints);
            let mut id = 0;
            for (n, p) in [
                (r, pb::Permission::Read),
                (w, pb::Permission::Write),
                (rw, pb::Permission::ReadWrite),
            ] {
                for _ in 0..n.clamp(0, 65_536) {
                    out.push(pb::MessageQueue {
                        topic: Some(topic.clone()),
                        id,
                        permission: p as i32,
                        broker: Some(broker.clone()),
                        accept_message_types: types.clone(),
                    });
                    id += 1;
                }
            }
        }
        out
    }

    /// The queue a message goes to: by message group (Java `String.hashCode`)
    /// or round robin over the writable queues.
    fn pick_queue(&self, route: &TopicRoute, group: Option<&str>) -> Option<(String, i32)> {
        let mut writable = Vec::new();
        for b in &route.brokers {
            if b.perm & PERM_WRITE == 0 {
                continue;
            }
            for q in 0..b.write_queues.clamp(0, 65_536) {
                writable.push((b.broker_name.clone(), q));
            }
        }
        if writable.is_empty() {
            return None;
        }
        let n = writable.len() as u64;
        let i = match group {
            Some(g) => u64::from(convert::java_hash(g).unsigned_abs()) % n,
            None => self.round_robin.fetch_add(1, Ordering::Relaxed) % n,
        };
        writable.into_iter().nth(i as usize)
    }

    async fn send_one(
        &self,
        ctx: &ClientContext,
        m: &pb::Message,
        now: i64,
    ) -> Result<(SendReceipt, OutgoingMessage), ProxyError> {
        let mut out = convert::outgoing(&self.cfg, m, now)?;
        out.born_host = ctx.remote;
        let route = self.backend.route(ctx, &out.topic).await?;
        let group = m
            .system_properties
            .as_ref()
            .and_then(|s| s.message_group.as_deref());
        let (broker, queue) = self.pick_queue(&route, group).ok_or_else(|| {
            ProxyError::Forbidden(format!("topic {} has no writable queue", out.topic))
        })?;
        out.broker_name = broker;
        out.queue_id = queue;
        let receipt = self.backend.send(ctx, out.clone()).await?;
        Ok((receipt, out))
    }

    async fn client_settings(&self, ctx: &ClientContext) -> Option<pb::Settings> {
        let raw = self.clients.settings(&ctx.client_id)?;
        Some(telemetry::merged_settings(&*self.backend, &self.cfg, ctx, raw).await)
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl<B: Backend> MessagingService for MessagingServer<B> {
    async fn query_route(
        &self,
        request: Request<pb::QueryRouteRequest>,
    ) -> Result<Response<pb::QueryRouteResponse>, Status> {
        let ctx = context(&request);
        let req = request.into_inner();
        let topic = resource_name(&req.topic).to_owned();
        let result = async {
            convert::validate_topic(&topic)?;
            let route = self.backend.route(&ctx, &topic).await?;
            let endpoints = self.endpoints(&req.endpoints);
            let topic_res = req.topic.clone().unwrap_or_default();
            Ok::<_, ProxyError>(self.route_queues(&topic_res, &route, &endpoints))
        }
        .await;
        Ok(Response::new(match result {
            Ok(queues) => pb::QueryRouteResponse {
                status: Some(ok_status()),
                message_queues: queues,
            },
            Err(e) => pb::QueryRouteResponse {
                status: Some(err_status(&e)),
                message_queues: vec![],
            },
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let ctx = context(&request);
        let req = request.into_inner();
        let st = async {
            if ctx.client_id.is_empty() {
                return Err(ProxyError::status(
                    Code::ClientIdRequired,
                    "x-mq-client-id is required",
                ));
            }
            let Some(info) = self.clients.info(&ctx.client_id) else {
                return Err(ProxyError::status(
                    Code::UnrecognizedClientType,
                    "cannot find client settings for this client",
                ));
            };
            if let Some(g) = req.group.as_ref() {
                if !g.name.is_empty() {
                    convert::validate_group(&g.name)?;
                }
            }
            self.clients.touch(&ctx.client_id);
            self.backend.heartbeat(&ctx, &info).await
        }
        .await;
        Ok(Response::new(pb::HeartbeatResponse {
            status: Some(match st {
                Ok(()) => ok_status(),
                Err(e) => err_status(&e),
            }),
        }))
    }

    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let ctx = context(&request);
        let req = request.into_inner();
        if req.messages.is_empty() {
            return Ok(Response::new(pb::SendMessageResponse {
                status: Some(status(Code::MessageCorrupted, "no message to send")),
                entries: vec![],
            }));
        }
        let now = now_ms();
        let mut entries = Vec::with_capacity(req.messages.len());
        let mut first_err: Option<pb::Status> = None;
        for m in &req.messages {
            let msg_id = m
                .system_properties
                .as_ref()
                .map(|s| s.message_id.clone())
                .unwrap_or_default();
            match self.send_one(&ctx, m, now).await {
                Ok((r, out)) => {
                    let tx_id = r
                        .transaction_id
                        .clone()
                        .filter(|t| !t.is_empty())
                        .unwrap_or_else(|| msg_id.clone());
                    if out.sys_flag & convert::SYS_FLAG_TRANSACTION_PREPARED != 0 {
                        self.clients.remember_transaction(
                            &out.producer_group,
                            &tx_id,
                            telemetry::TxData {
                                topic: out.topic.clone(),
                                broker_name: r.broker_name.clone(),
                                msg_id: msg_id.clone(),
                                offset_msg_id: r.offset_msg_id.clone(),
                                tran_state_offset: r.queue_offset,
                                commit_log_offset: r.commit_log_offset,
                            },
                        );
                    }
                    entries.push(pb::SendResultEntry {
                        status: Some(ok_status()),
                        message_id: msg_id,
                        transaction_id: tx_id,
                        offset: r.queue_offset,
                        recall_handle: String::new(),
                    });
                }
                Err(e) => {
                    debug!(error = %e, "grpc send failed");
                    let st = err_status(&e);
                    first_err.get_or_insert_with(|| st.clone());
                    entries.push(pb::SendResultEntry {
                        status: Some(st),
                        message_id: msg_id,
                        transaction_id: String::new(),
                        offset: 0,
                        recall_handle: String::new(),
                    });
                }
            }
        }
        let top = match first_err {
            None => ok_status(),
            Some(st) if entries.len() == 1 => st,
            Some(_) => status(Code::MultipleResults, "some messages failed"),
        };
        Ok(Response::new(pb::SendMessageResponse {
            status: Some(top),
            entries,
        }))
    }

    async fn query_assignment(
        &self,
        request: Request<pb::QueryAssignmentRequest>,
    ) -> Result<Response<pb::QueryAssignmentResponse>, Status> {
        let ctx = context(&request);
        let req = request.into_inner();
        let result = async {
            let topic = resource_name(&req.topic);
            let group = resource_name(&req.group);
            convert::validate_topic(topic)?;
            convert::validate_group(group)?;
            let route = self.backend.route(&ctx, topic).await?;
            let fifo = match self.backend.group(&ctx, group).await {
                Ok(g) => g.orderly,
                Err(ProxyError::GroupNotFound(_)) => false,
                Err(e) => return Err(e),
            };
            let endpoints = self.endpoints(&req.endpoints);
            let topic_res = req.topic.clone().unwrap_or_default();
            let mut out = Vec::new();
            for b in &route.brokers {
                if b.perm & PERM_READ == 0 || b.read_queues <= 0 {
                    continue;
                }
                let broker = self.broker(&b.broker_name, &endpoints);
                let perm = permission(b.perm) as i32;
                let ids: Vec<i32> = if fifo {
                    (0..b.read_queues.min(65_536)).collect()
                } else {
                    vec![-1]
                };
                for id in ids {
                    out.push(pb::Assignment {
                        message_queue: Some(pb::MessageQueue {
                            topic: Some(topic_res.clone()),
                            id,
                            permission: perm,
                            broker: Some(broker.clone()),
                            accept_message_types: vec![],
                        }),
                    });
                }
            }
            if out.is_empty() {
                return Err(ProxyError::Forbidden("no readable queue".into()));
            }
            Ok(out)
        }
        .await;
        Ok(Response::new(match result {
            Ok(a) => pb::QueryAssignmentResponse {
                status: Some(ok_status()),
                assignments: a,
            },
            Err(e) => pb::QueryAssignmentResponse {
                status: Some(err_status(&e)),
                assignments: vec![],
            },
        }))
    }

    type ReceiveMessageStream = BoxStream<pb::ReceiveMessageResponse>;

    async fn receive_message(
        &self,
        request: Request<pb::ReceiveMessageRequest>,
    ) -> Result<Response<Self::ReceiveMessageStream>, Status> {
        let ctx = context(&request);
        let remaining = grpc_timeout_ms(request.metadata());
        let req = request.into_inner();
        let out = match self.receive(&ctx, remaining, req).await {
            Ok(v) => v,
            Err(e) => vec![pb::ReceiveMessageResponse {
                content: Some(pb::receive_message_response::Content::Status(err_status(
                    &e,
                ))),
            }],
        };
        Ok(Response::new(Box::pin(futures::stream::iter(
            out.into_iter().map(Ok),
        ))))
    }

    async fn ack_message(
        &self,
        request: Request<pb::AckMessageRequest>,
    ) -> Result<Response<pb::AckMessageResponse>, Status> {
        let ctx = context(&request);
        let req = request.into_inner();
        let topic = resource_name(&req.topic);
        let group = resource_name(&req.group);
        if let Err(e) = convert::validate_topic(topic).and_then(|_| convert::validate_group(group))
        {
            return Ok(Response::new(pb::AckMessageResponse {
                status: Some(err_status(&e)),
                entries: vec![],
            }));
        }
        let now = now_ms();
        let mut entries = Vec::with_capacity(req.entries.len());
        let mut failed: Option<pb::Status> = None;
        for e in &req.entries {
            let r = match parse_handle(&e.receipt_handle, now) {
                Ok(h) => self.backend.ack(&ctx, group, topic, &h).await,
                Err(err) => Err(err),
            };
            let st = match r {
                Ok(()) => ok_status(),
                Err(err) => {
                    debug!(error = %err, "grpc ack failed");
                    let st = err_status(&err);
                    failed.get_or_insert_with(|| st.clone());
                    st
                }
            };
            entries.push(pb::AckMessageResultEntry {
                message_id: e.message_id.clone(),
                receipt_handle: e.receipt_handle.clone(),
                status: Some(st),
            });
        }
        let top = match failed {
            None => ok_status(),
            Some(st) if entries.len() == 1 => st,
            Some(_) => status(Code::MultipleResults, "some acks failed"),
        };
        Ok(Response::new(pb::AckMessageResponse {
            status: Some(top),
            entries,
        }))
    }

    async fn forward_message_to_dead_letter_queue(
        &self,
        request: Request<pb::ForwardMessageToDeadLetterQueueRequest>,
    ) -> Result<Response<pb::ForwardMessageToDeadLetterQueueResponse>, Status> {
        let ctx = context(&request);
        let req = request.into_inner();
        let r = async {
            let topic = resource_name(&req.topic);
            let group = resource_name(&req.group);
            convert::validate_topic(topic)?;
            convert::validate_group(group)?;
            let h = parse_handle(&req.receipt_handle, now_ms())?;
            self.backend
                .forward_to_dlq(
                    &ctx,
                    group,
                    topic,
                    &h,
                    &req.message_id,
                    req.max_delivery_attempts,
                )
                .await
        }
        .await;
        Ok(Response::new(pb::ForwardMessageToDeadLetterQueueResponse {
            status: Some(match r {
                Ok(()) => ok_status(),
                Err(e) => err_status(&e),
            }),
        }))
    }

    type PullMessageStream = BoxStream<pb::PullMessageResponse>;

    async fn pull_message(
        &self,
        _request: Request<pb::PullMessageRequest>,
    ) -> Result<Response<Self::PullMessageStream>, Status> {
        let st = status(Code::NotImplemented, "PullMessage is not implemented");
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(
            pb::PullMessageResponse {
                content: Some(pb::pull_message_response::Content::Status(st)),
            },
        )]))))
    }

    async fn update_offset(
        &self,
        _request: Request<pb::UpdateOffsetRequest>,
    ) -> Result<Response<pb::UpdateOffsetResponse>, Status> {
        Ok(Response::new(pb::UpdateOffsetResponse {
            status: Some(status(
                Code::NotImplemented,
                "UpdateOffset is not implemented",
            )),
        }))
    }

    async fn get_offset(
        &self,
        _request: Request<pb::GetOffsetRequest>,
    ) -> Result<Response<pb::GetOffsetResponse>, Status> {
        Ok(Response::new(pb::GetOffsetResponse {
            status: Some(status(Code::NotImplemented, "GetOffset is not implemented")),
            offset: 0,
        }))
    }

    async fn query_offset(
        &self,
        _request: Request<pb::QueryOffsetRequest>,
    ) -> Result<Response<pb::QueryOffsetResponse>, Status> {
        Ok(Response::new(pb::QueryOffsetResponse {
            status: Some(status(
                Code::NotImplemented,
                "QueryOffset is not implemented",
            )),
            offset: 0,
        }))
    }

    async fn end_transaction(
        &self,
        request: Request<pb::EndTransactionRequest>,
    ) -> Result<Response<pb::EndTransactionResponse>, Status> {
        let ctx = context(&request);
        let req = request.into_inner();
        let r = async {
            let topic = resource_name(&req.topic);
            convert::validate_topic(topic)?;
            if req.transaction_id.trim().is_empty() {
                return Err(ProxyError::status(
                    Code::InvalidTransactionId,
                    "transaction id cannot be blank",
                ));
            }
            let commit = match pb::TransactionResolution::try_from(req.resolution) {
                Ok(pb::TransactionResolution::Commit) => true,
                Ok(pb::TransactionResolution::Rollback) => false,
                // Unknown: leave the half message to the next check.
                _ => return Ok(()),
            };
            let data = self
                .clients
                .take_transaction(topic, &req.transaction_id)
                .ok_or_else(|| {
                    ProxyError::status(
                        Code::InvalidTransactionId,
                        "cannot find transaction data for this transaction id",
                    )
                })?;
            let end = EndTransaction {
                producer_group: topic.to_owned(),
                topic: data.topic.clone(),
                broker_name: data.broker_name.clone(),
                msg_id: if req.message_id.is_empty() {
                    data.msg_id.clone()
                } else {
                    req.message_id.clone()
                },
                offset_msg_id: data.offset_msg_id.clone(),
                transaction_id: req.transaction_id.clone(),
                tran_state_offset: data.tran_state_offset,
                commit_log_offset: data.commit_log_offset,
                commit,
                from_check: req.source == pb::TransactionSource::SourceServerCheck as i32,
            };
            let r = self.backend.end_transaction(&ctx, end).await;
            if r.is_err() {
                // Keep it for a retry of the same resolution.
                self.clients
                    .remember_transaction(topic, &req.transaction_id, data);
            }
            r
        }
        .await;
        Ok(Response::new(pb::EndTransactionResponse {
            status: Some(match r {
                Ok(()) => ok_status(),
                Err(e) => err_status(&e),
            }),
        }))
    }

    type TelemetryStream = BoxStream<pb::TelemetryCommand>;

    async fn telemetry(
        &self,
        request: Request<tonic::Streaming<pb::TelemetryCommand>>,
    ) -> Result<Response<Self::TelemetryStream>, Status> {
        let ctx = context(&request);
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(telemetry::OUTBOUND_CAPACITY);
        tokio::spawn(telemetry::run(self.clone(), ctx, inbound, tx));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn notify_client_termination(
        &self,
        request: Request<pb::NotifyClientTerminationRequest>,
    ) -> Result<Response<pb::NotifyClientTerminationResponse>, Status> {
        let ctx = context(&request);
        let r = async {
            if ctx.client_id.is_empty() {
                return Err(ProxyError::status(
                    Code::ClientIdRequired,
                    "x-mq-client-id is required",
                ));
            }
            if let Some(info) = self.clients.remove(&ctx.client_id) {
                self.backend.unregister(&ctx, &info).await?;
            }
            Ok(())
        }
        .await;
        Ok(Response::new(pb::NotifyClientTerminationResponse {
            status: Some(match r {
                Ok(()) => ok_status(),
                Err(e) => err_status(&e),
            }),
        }))
    }

    async fn change_invisible_duration(
        &self,
        request: Request<pb::ChangeInvisibleDurationRequest>,
    ) -> Result<Response<pb::ChangeInvisibleDurationResponse>, Status> {
        let ctx = context(&request);
        let req = request.into_inner();
        let r = async {
            let topic = resource_name(&req.topic);
            let group = resource_name(&req.group);
            convert::validate_topic(topic)?;
            convert::validate_group(group)?;
            let ms = req
                .invisible_duration
                .as_ref()
                .map(convert::duration_ms)
                .ok_or_else(|| {
                    ProxyError::status(Code::IllegalInvisibleTime, "invisible duration is required")
                })?;
            if ms < 0 || ms > self.cfg.max_invisible_ms {
                return Err(ProxyError::status(
                    Code::IllegalInvisibleTime,
                    format!(
                        "the invisible time must be in [0, {}] ms",
                        self.cfg.max_invisible_ms
                    ),
                ));
            }
            let h = parse_handle(&req.receipt_handle, now_ms())?;
            self.backend
                .change_invisible(&ctx, group, topic, &h, ms)
                .await
        }
        .await;
        Ok(Response::new(match r {
            Ok(h) => pb::ChangeInvisibleDurationResponse {
                status: Some(ok_status()),
                receipt_handle: h.to_string(),
            },
            Err(e) => pb::ChangeInvisibleDurationResponse {
                status: Some(err_status(&e)),
                receipt_handle: String::new(),
            },
        }))
    }

    async fn recall_message(
        &self,
        _request: Request<pb::RecallMessageRequest>,
    ) -> Result<Response<pb::RecallMessageResponse>, Status> {
        Ok(Response::new(pb::RecallMessageResponse {
            status: Some(status(
                Code::NotImplemented,
                "RecallMessage is not implemented",
            )),
            message_id: String::new(),
        }))
    }
}

impl<B: Backend> MessagingServer<B> {
    /// Java `ReceiveMessageActivity`: validation, polling time, the pop,
    /// messages past their max attempts to the DLQ, then the stream
    /// (status, messages, delivery timestamp).
    async fn receive(
        &self,
        ctx: &ClientContext,
        remaining: Option<i64>,
        req: pb::ReceiveMessageRequest,
    ) -> Result<Vec<pb::ReceiveMessageResponse>, ProxyError> {
        use pb::receive_message_response::Content;
        let group = resource_name(&req.group).to_owned();
        let mq = req.message_queue.clone().unwrap_or_default();
        let topic = resource_name(&mq.topic).to_owned();
        convert::validate_topic(&topic)?;
        convert::validate_group(&group)?;
        let settings = self.client_settings(ctx).await;
        let sub = settings.as_ref().and_then(|s| match &s.pub_sub {
            Some(pb::settings::PubSub::Subscription(sub)) => Some(sub.clone()),
            _ => None,
        });
        let info = match self.backend.group(ctx, &group).await {
            Ok(g) => Some(g),
            Err(ProxyError::GroupNotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let fifo = info.as_ref().map(|g| g.orderly).unwrap_or(false)
            || sub.as_ref().and_then(|s| s.fifo).unwrap_or(false);
        let max_attempts = info.as_ref().map(|g| g.retry_max_times + 1).unwrap_or(17);
        // Polling time, as Java bounds it by the request's deadline.
        let remaining = remaining.unwrap_or(self.cfg.consumer_max_long_polling_ms + 10_000);
        let mut poll = match req.long_polling_timeout.as_ref() {
            Some(d) => convert::duration_ms(d),
            None => remaining - self.cfg.long_polling_reserve_ms,
        };
        poll = poll.clamp(
            self.cfg.consumer_min_long_polling_ms,
            self.cfg.consumer_max_long_polling_ms,
        );
        if poll > remaining {
            if remaining >= self.cfg.consumer_min_long_polling_ms {
                poll = remaining;
            } else {
                return Err(ProxyError::status(
                    Code::IllegalPollingTime,
                    "the deadline time remaining is not enough for polling",
                ));
            }
        }
        let filter = match req.filter_expression.as_ref() {
            None => Filter::Tag("*".into()),
            Some(f) => {
                let e = f.expression.trim();
                match pb::FilterType::try_from(f.r#type) {
                    Ok(pb::FilterType::Sql) => {
                        if e.is_empty() {
                            return Err(ProxyError::IllegalFilter(
                                "SQL expression is empty".into(),
                            ));
                        }
                        Filter::Sql(e.to_owned())
                    }
                    _ => Filter::Tag(if e.is_empty() {
                        "*".into()
                    } else {
                        e.to_owned()
                    }),
                }
            }
        };
        let invisible_ms = if req.auto_renew {
            self.cfg.default_invisible_ms
        } else {
            let ms = req
                .invisible_duration
                .as_ref()
                .map(convert::duration_ms)
                .ok_or_else(|| {
                    ProxyError::status(Code::IllegalInvisibleTime, "invisible duration is required")
                })?;
            if ms < self.cfg.min_invisible_ms_for_recv || ms > self.cfg.max_invisible_ms {
                return Err(ProxyError::status(
                    Code::IllegalInvisibleTime,
                    format!(
                        "the invisible time must be in [{}, {}] ms",
                        self.cfg.min_invisible_ms_for_recv, self.cfg.max_invisible_ms
                    ),
                ));
            }
            ms
        };
        let batch = if req.batch_size <= 0 {
            self.cfg.consumer_long_polling_batch_size
        } else {
            req.batch_size.min(32)
        };
        let broker_name = mq
            .broker
            .as_ref()
            .map(|b| b.name.clone())
            .unwrap_or_default();
        let queue_id = if fifo && mq.id >= 0 { mq.id } else { -1 };
        let r = ReceiveRequest {
            group: group.clone(),
            topic: topic.clone(),
            broker_name,
            queue_id,
            filter,
            max_messages: batch,
            invisible_ms,
            poll_ms: poll,
            fifo,
            attempt_id: req.attempt_id.clone(),
        };
        let popped = self.backend.receive(ctx, r).await?;
        let mut msgs = Vec::with_capacity(popped.len());
        for m in popped {
            if m.reconsume_times.saturating_add(1) > max_attempts && !fifo {
                if let Some(h) = m.receipt_handle.as_ref() {
                    let id = m
                        .property(convert::PROPERTY_UNIQ_KEY)
                        .unwrap_or("")
                        .to_owned();
                    if let Err(e) = self
                        .backend
                        .forward_to_dlq(ctx, &group, &topic, h, &id, max_attempts)
                        .await
                    {
                        warn!(error = %e, %group, %topic, "forward to DLQ failed");
                    }
                    continue;
                }
            }
            msgs.push(m);
        }
        let mut out = Vec::with_capacity(msgs.len() + 2);
        if msgs.is_empty() {
            out.push(pb::ReceiveMessageResponse {
                content: Some(Content::Status(status(
                    Code::MessageNotFound,
                    "no new message",
                ))),
            });
        } else {
            out.push(pb::ReceiveMessageResponse {
                content: Some(Content::Status(ok_status())),
            });
            for m in &msgs {
                out.push(pb::ReceiveMessageResponse {
                    content: Some(Content::Message(convert::incoming(
                        m,
                        &ctx.namespace,
                        Some(invisible_ms),
                    ))),
                });
            }
        }
        out.push(pb::ReceiveMessageResponse {
            content: Some(Content::DeliveryTimestamp(convert::ms_timestamp(now_ms()))),
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        let mut md = tonic::metadata::MetadataMap::new();
        md.insert("grpc-timeout", "30S".parse().expect("ascii"));
        assert_eq!(grpc_timeout_ms(&md), Some(30_000));
        md.insert("grpc-timeout", "2500m".parse().expect("ascii"));
        assert_eq!(grpc_timeout_ms(&md), Some(2500));
        md.insert("grpc-timeout", "x".parse().expect("ascii"));
        assert_eq!(grpc_timeout_ms(&md), None);
    }

    #[test]
    fn expired_handle_is_invalid() {
        let h = "0 1000 1000 0 0 b 0 1 5";
        assert!(matches!(
            parse_handle(h, 5000),
            Err(ProxyError::InvalidReceiptHandle(_))
        ));
        assert!(parse_handle(h, 1500).is_ok());
    }
}
