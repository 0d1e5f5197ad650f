//! Telemetry (Java `ClientActivity`): the client's settings in, the
//! server's settings out; transaction checks forwarded as
//! RecoverOrphanedTransactionCommand; the registry of clients and of
//! transactional sends awaiting EndTransaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use futures::StreamExt;
use tokio::sync::mpsc;
use tonic::Status;
use tracing::{debug, info, warn};

use crate::backend::*;
use crate::error::ProxyError;
use crate::pb::{self, Code};

use super::{convert, ServiceConfig};

/// Commands queued for one client's telemetry stream; a client that does
/// not read loses commands beyond this (checks are repeated by the broker).
pub const OUTBOUND_CAPACITY: usize = 64;
/// Transactional sends remembered for EndTransaction at most.
const MAX_TX_ENTRIES: usize = 100_000;

type Outbound = mpsc::Sender<Result<pb::TelemetryCommand, Status>>;

struct ClientState {
    settings: Option<pb::Settings>,
    info: Option<ClientInfo>,
    outbound: Option<Outbound>,
    last_seen: Instant,
}

/// What EndTransaction needs of a half message's send.
#[derive(Debug, Clone)]
pub struct TxData {
    pub topic: String,
    pub broker_name: String,
    pub msg_id: String,
    pub offset_msg_id: String,
    pub tran_state_offset: i64,
    pub commit_log_offset: i64,
}

/// Clients known to the service and pending transactions.
#[derive(Default)]
pub struct Clients {
    clients: DashMap<String, ClientState>,
    /// (producer group, transaction id) -> data, with when it was stored.
    transactions: DashMap<(String, String), (TxData, Instant)>,
}

impl Clients {
    pub fn settings(&self, client_id: &str) -> Option<pb::Settings> {
        self.clients.get(client_id).and_then(|c| c.settings.clone())
    }

    pub fn info(&self, client_id: &str) -> Option<ClientInfo> {
        self.clients.get(client_id).and_then(|c| c.info.clone())
    }

    pub fn touch(&self, client_id: &str) {
        if let Some(mut c) = self.clients.get_mut(client_id) {
            c.last_seen = Instant::now();
        }
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    pub fn remove(&self, client_id: &str) -> Option<ClientInfo> {
        self.clients.remove(client_id).and_then(|(_, c)| c.info)
    }

    fn set(&self, client_id: &str, settings: pb::Settings, info: ClientInfo, outbound: Outbound) {
        self.clients.insert(
            client_id.to_owned(),
            ClientState {
                settings: Some(settings),
                info: Some(info),
                outbound: Some(outbound),
                last_seen: Instant::now(),
            },
        );
    }

    /// The stream closed: the client can no longer take commands.
    fn detach(&self, client_id: &str, outbound: &Outbound) {
        if let Some(mut c) = self.clients.get_mut(client_id) {
            if c.outbound
                .as_ref()
                .is_some_and(|o| o.same_channel(outbound))
            {
                c.outbound = None;
            }
        }
    }

    pub fn remember_transaction(&self, group: &str, tx_id: &str, data: TxData) {
        if self.transactions.len() >= MAX_TX_ENTRIES {
            let horizon = Instant::now() - Duration::from_secs(3600);
            self.transactions.retain(|_, (_, at)| *at > horizon);
            if self.transactions.len() >= MAX_TX_ENTRIES {
                // Still full: forget the oldest half.
                let mut ages: Vec<Instant> =
                    self.transactions.iter().map(|e| e.value().1).collect();
                ages.sort();
                let cut = ages[ages.len() / 2];
                self.transactions.retain(|_, (_, at)| *at > cut);
            }
        }
        self.transactions
            .insert((group.to_owned(), tx_id.to_owned()), (data, Instant::now()));
    }

    pub fn take_transaction(&self, group: &str, tx_id: &str) -> Option<TxData> {
        self.transactions
            .remove(&(group.to_owned(), tx_id.to_owned()))
            .map(|(_, (d, _))| d)
    }

    /// A live producer of `group` (Java's gRPC producers use the topic as
    /// their group), preferring `client_id`.
    fn producer_outbound(&self, group: &str, client_id: Option<&str>) -> Option<Outbound> {
        if let Some(id) = client_id {
            if let Some(c) = self.clients.get(id) {
                if let Some(o) = c.outbound.as_ref().filter(|o| !o.is_closed()) {
                    return Some(o.clone());
                }
            }
        }
        self.clients.iter().find_map(|c| {
            let info = c.info.as_ref()?;
            if info.kind != ClientKind::Producer || !info.topics.iter().any(|t| t == group) {
                return None;
            }
            c.outbound.as_ref().filter(|o| !o.is_closed()).cloned()
        })
    }
}

fn client_kind(t: i32) -> Option<ClientKind> {
    match pb::ClientType::try_from(t).ok()? {
        pb::ClientType::Producer => Some(ClientKind::Producer),
        pb::ClientType::PushConsumer => Some(ClientKind::PushConsumer),
        pb::ClientType::SimpleConsumer => Some(ClientKind::SimpleConsumer),
        pb::ClientType::PullConsumer => Some(ClientKind::PullConsumer),
        pb::ClientType::Unspecified => None,
    }
}

/// The client described by its settings, validated as Java does.
fn client_info(ctx: &ClientContext, s: &pb::Settings) -> Result<ClientInfo, ProxyError> {
    let kind = s.client_type.and_then(client_kind).ok_or_else(|| {
        ProxyError::status(Code::UnrecognizedClientType, "unrecognized client type")
    })?;
    let mut info = ClientInfo {
        client_id: ctx.client_id.clone(),
        kind,
        group: String::new(),
        topics: vec![],
        subscriptions: vec![],
        language: ctx.language.clone(),
        version: ctx.version.clone(),
    };
    match (&s.pub_sub, kind) {
        (Some(pb::settings::PubSub::Publishing(p)), ClientKind::Producer) => {
            for t in &p.topics {
                convert::validate_topic(&t.name)?;
                info.topics.push(t.name.clone());
            }
        }
        (None, ClientKind::Producer) => {}
        (Some(pb::settings::PubSub::Subscription(sub)), _) if kind != ClientKind::Producer => {
            let group = sub.group.as_ref().map(|g| g.name.as_str()).unwrap_or("");
            convert::validate_group(group)?;
            info.group = group.to_owned();
            for e in &sub.subscriptions {
                let topic = e.topic.as_ref().map(|t| t.name.as_str()).unwrap_or("");
                convert::validate_topic(topic)?;
                let f = match e.expression.as_ref() {
                    Some(x) if x.r#type == pb::FilterType::Sql as i32 => {
                        Filter::Sql(x.expression.clone())
                    }
                    Some(x) if !x.expression.trim().is_empty() => Filter::Tag(x.expression.clone()),
                    _ => Filter::Tag("*".into()),
                };
                info.topics.push(topic.to_owned());
                info.subscriptions.push((topic.to_owned(), f));
            }
        }
        _ => {
            return Err(ProxyError::status(
                Code::UnrecognizedClientType,
                "settings do not match the client type",
            ))
        }
    }
    Ok(info)
}

fn ms(v: i64) -> Option<prost_types::Duration> {
    Some(convert::ms_duration(v))
}

/// Java's default customized retry policy (1s 5s 10s 30s 1m ... 2h).
const DEFAULT_RETRY_NEXT_MS: [i64; 18] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000,
    480_000, 540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];

/// Java `GrpcClientSettingsManager.getClientSettings`: the client's own
/// settings with the server's backoff, limits and consumer parameters.
pub async fn merged_settings<B: Backend>(
    backend: &B,
    cfg: &ServiceConfig,
    ctx: &ClientContext,
    mut s: pb::Settings,
) -> pb::Settings {
    match &mut s.pub_sub {
        Some(pb::settings::PubSub::Publishing(p)) => {
            p.validate_message_type = cfg.enable_topic_message_type_check;
            p.max_body_size = i32::try_from(cfg.max_message_size).unwrap_or(i32::MAX);
            s.backoff_policy = Some(pb::RetryPolicy {
                max_attempts: cfg.producer_max_attempts,
                strategy: Some(pb::retry_policy::Strategy::ExponentialBackoff(
                    pb::ExponentialBackoff {
                        initial: ms(cfg.producer_backoff_initial_ms),
                        max: ms(cfg.producer_backoff_max_ms),
                        multiplier: cfg.producer_backoff_multiplier,
                    },
                )),
            });
        }
        Some(pb::settings::PubSub::Subscription(sub)) => {
            let group = sub
                .group
                .as_ref()
                .map(|g| g.name.clone())
                .unwrap_or_default();
            let info = match backend.group(ctx, &group).await {
                Ok(g) => g,
                Err(e) => {
                    debug!(error = %e, %group, "group lookup for settings");
                    GroupInfo {
                        retry_max_times: 16,
                        orderly: false,
                    }
                }
            };
            sub.receive_batch_size = Some(cfg.consumer_long_polling_batch_size);
            sub.long_polling_timeout = ms(cfg.consumer_max_long_polling_ms);
            sub.fifo = Some(info.orderly);
            s.backoff_policy = Some(pb::RetryPolicy {
                max_attempts: info.retry_max_times.saturating_add(1),
                strategy: Some(pb::retry_policy::Strategy::CustomizedBackoff(
                    pb::CustomizedBackoff {
                        next: DEFAULT_RETRY_NEXT_MS
                            .iter()
                            .map(|v| convert::ms_duration(*v))
                            .collect(),
                    },
                )),
            });
        }
        None => {}
    }
    s.metric = Some(pb::Metric {
        on: false,
        endpoints: None,
    });
    s
}

fn command(status: pb::Status, c: Option<pb::telemetry_command::Command>) -> pb::TelemetryCommand {
    pb::TelemetryCommand {
        status: Some(status),
        command: c,
    }
}

/// One client's telemetry stream until it ends.
pub async fn run<B: Backend>(
    server: super::MessagingServer<B>,
    ctx: ClientContext,
    mut inbound: tonic::Streaming<pb::TelemetryCommand>,
    out: Outbound,
) {
    use pb::telemetry_command::Command;
    loop {
        let next = tokio::select! {
            n = inbound.next() => n,
            _ = out.closed() => None,
            _ = server.stop.cancelled() => None,
        };
        let cmd = match next {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                debug!(client = %ctx.client_id, error = %e, "telemetry stream error");
                break;
            }
            None => break,
        };
        match cmd.command {
            Some(Command::Settings(s)) => {
                let reply = if ctx.client_id.is_empty() {
                    command(
                        super::status(Code::ClientIdRequired, "x-mq-client-id is required"),
                        None,
                    )
                } else {
                    match client_info(&ctx, &s) {
                        Ok(info) => {
                            if let Err(e) = server.backend.heartbeat(&ctx, &info).await {
                                command(super::err_status(&e), None)
                            } else {
                                info!(client = %ctx.client_id, kind = ?info.kind, group = %info.group, "grpc client settings");
                                server
                                    .clients
                                    .set(&ctx.client_id, s.clone(), info, out.clone());
                                let merged =
                                    merged_settings(&*server.backend, &server.cfg, &ctx, s).await;
                                command(super::ok_status(), Some(Command::Settings(merged)))
                            }
                        }
                        Err(e) => command(super::err_status(&e), None),
                    }
                };
                if out.send(Ok(reply)).await.is_err() {
                    break;
                }
            }
            // Answers to our commands (thread stack, verify): nothing to do.
            Some(_) | None => {}
        }
    }
    server.clients.detach(&ctx.client_id, &out);
}

/// Forwards the backend's transaction checks to a live producer.
pub async fn forward_checks(
    clients: Arc<Clients>,
    mut rx: mpsc::Receiver<TransactionCheck>,
    _cfg: Arc<ServiceConfig>,
) {
    while let Some(c) = rx.recv().await {
        let Some(out) = clients.producer_outbound(&c.producer_group, c.client_id.as_deref()) else {
            debug!(group = %c.producer_group, tx = %c.transaction_id, "no live producer for a transaction check");
            continue;
        };
        clients.remember_transaction(
            &c.producer_group,
            &c.transaction_id,
            TxData {
                topic: c.message.topic.clone(),
                broker_name: c.broker_name.clone(),
                msg_id: c
                    .message
                    .property(convert::PROPERTY_UNIQ_KEY)
                    .unwrap_or_default()
                    .to_owned(),
                offset_msg_id: c.message.offset_msg_id.clone(),
                tran_state_offset: c.tran_state_offset,
                commit_log_offset: c.commit_log_offset,
            },
        );
        let cmd = pb::TelemetryCommand {
            status: Some(super::ok_status()),
            command: Some(
                pb::telemetry_command::Command::RecoverOrphanedTransactionCommand(
                    pb::RecoverOrphanedTransactionCommand {
                        message: Some(convert::incoming(&c.message, "", None)),
                        transaction_id: c.transaction_id.clone(),
                    },
                ),
            ),
        };
        if out.try_send(Ok(cmd)).is_err() {
            warn!(group = %c.producer_group, "telemetry stream full or closed: check dropped");
        }
    }
}
