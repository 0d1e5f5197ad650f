//! The seam between the gRPC service and whatever stores messages.
//!
//! [`Backend`] is what [`crate::service::MessagingServer`] calls for every
//! RPC, in our own types (no protobuf): the service validates the request,
//! converts the message to the remoting form (topic, body, flag, Java
//! `MessageConst` properties, sys flag) and maps the outcome back to
//! `apache.rocketmq.v2` responses and codes. Two implementations exist:
//! the broker's local mode (`broker::grpc`), which calls the in-process
//! send path and `PopService`, and the cluster mode of `mqproxy`
//! (`proxy::cluster`), which speaks remoting to any broker.
//!
//! Every method returns a future that is `Send`, so a generic
//! `MessagingServer<B>` can run on tonic's multi-threaded server;
//! implementors may write `async fn`.

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::ProxyError;
use crate::receipt::ReceiptHandle;

/// Who is calling: filled from the gRPC metadata (`x-mq-client-id`,
/// `x-mq-namespace`, `x-mq-language`, `x-mq-client-version`) and the peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientContext {
    pub client_id: String,
    pub namespace: String,
    pub language: String,
    pub version: String,
    pub remote: Option<SocketAddr>,
}

/// Java `TopicMessageType` (the topic attribute `message.type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TopicMessageType {
    #[default]
    Unspecified,
    Normal,
    Fifo,
    Delay,
    Transaction,
    Mixed,
}

impl TopicMessageType {
    /// From the value of the topic attribute `message.type` (Java's names).
    pub fn from_attribute(v: Option<&str>) -> TopicMessageType {
        match v.map(|s| s.to_ascii_uppercase()).as_deref() {
            Some("NORMAL") => TopicMessageType::Normal,
            Some("FIFO") => TopicMessageType::Fifo,
            Some("DELAY") => TopicMessageType::Delay,
            Some("TRANSACTION") => TopicMessageType::Transaction,
            Some("MIXED") => TopicMessageType::Mixed,
            _ => TopicMessageType::Unspecified,
        }
    }
}

/// One master broker's share of a topic (Java `QueueData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerQueues {
    pub broker_name: String,
    pub read_queues: i32,
    pub write_queues: i32,
    /// Java `PermName` bits: 4 read, 2 write, 1 inherit.
    pub perm: i32,
}

/// A topic's route as the gRPC service needs it. Endpoints are not part of
/// it: clients always talk to the proxy, so the service answers with the
/// proxy's own address for every broker (as Java's proxy does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicRoute {
    pub brokers: Vec<BrokerQueues>,
    pub message_type: TopicMessageType,
}

/// What the service needs of a subscription group (Java
/// `SubscriptionGroupConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// `retryMaxTimes`: max delivery attempts = this + 1.
    pub retry_max_times: i32,
    /// `consumeMessageOrderly`: FIFO delivery per message group.
    pub orderly: bool,
}

/// A message to store, in remoting form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub topic: String,
    /// The queue the service chose (-1: let the backend choose).
    pub queue_id: i32,
    /// Broker that owns `queue_id` (empty: any).
    pub broker_name: String,
    /// Producer group (Java's gRPC proxy uses the topic name).
    pub producer_group: String,
    pub body: Bytes,
    pub flag: i32,
    /// Java `MessageConst` properties (TAGS, KEYS, UNIQ_KEY, TRAN_MSG, ...).
    pub properties: Vec<(String, String)>,
    /// Java `MessageSysFlag` bits (compression, transaction prepared).
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: Option<SocketAddr>,
}

/// A stored message's receipt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReceipt {
    pub broker_name: String,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub commit_log_offset: i64,
    /// Java's offset message id (store host + commit log offset, hex).
    pub offset_msg_id: String,
    /// The broker's transaction id, when it gave one.
    pub transaction_id: Option<String>,
}

/// Which messages a receive takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `*` or `a || b`.
    Tag(String),
    Sql(String),
}

/// One receive (a pop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveRequest {
    pub group: String,
    pub topic: String,
    /// Empty: any broker.
    pub broker_name: String,
    /// -1: any queue.
    pub queue_id: i32,
    pub filter: Filter,
    pub max_messages: i32,
    pub invisible_ms: i64,
    /// How long to hold the request when nothing is there.
    pub poll_ms: i64,
    pub fifo: bool,
    pub attempt_id: Option<String>,
}

/// A stored message as read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredMessage {
    /// The topic the client subscribed to (not the retry topic).
    pub topic: String,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub commit_log_offset: i64,
    pub body: Bytes,
    pub flag: i32,
    pub sys_flag: i32,
    pub properties: Vec<(String, String)>,
    pub born_timestamp: i64,
    pub born_host: String,
    pub store_timestamp: i64,
    pub store_host: String,
    pub reconsume_times: i32,
    pub offset_msg_id: String,
    pub broker_name: String,
    /// Set on popped messages.
    pub receipt_handle: Option<ReceiptHandle>,
}

impl StoredMessage {
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Which kind of client a heartbeat or termination is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Producer,
    PushConsumer,
    SimpleConsumer,
    PullConsumer,
}

/// A client as its settings and heartbeats describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub client_id: String,
    pub kind: ClientKind,
    /// Consumer group; empty for producers.
    pub group: String,
    /// Producer: the topics it publishes to. Consumer: (topic, filter).
    pub topics: Vec<String>,
    pub subscriptions: Vec<(String, Filter)>,
    pub language: String,
    pub version: String,
}

/// EndTransaction (END_TRANSACTION) with what the half message's send
/// receipt said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndTransaction {
    pub producer_group: String,
    pub topic: String,
    pub broker_name: String,
    /// The client's message id (UNIQ_KEY).
    pub msg_id: String,
    pub offset_msg_id: String,
    pub transaction_id: String,
    pub tran_state_offset: i64,
    pub commit_log_offset: i64,
    pub commit: bool,
    pub from_check: bool,
}

/// The backend asks the producers of `producer_group` to resolve a half
/// message (Java CHECK_TRANSACTION_STATE); the service forwards it to one
/// live client as a RecoverOrphanedTransactionCommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionCheck {
    pub producer_group: String,
    /// A specific client, when the backend knows which one sent it.
    pub client_id: Option<String>,
    pub broker_name: String,
    pub transaction_id: String,
    pub tran_state_offset: i64,
    pub commit_log_offset: i64,
    pub message: StoredMessage,
}

/// Where a backend sends transaction checks: given by the service once, at
/// start (see [`Backend::attach`]).
pub type TransactionCheckSink = mpsc::Sender<TransactionCheck>;

/// Everything the gRPC service needs from a store of messages.
pub trait Backend: Send + Sync + 'static {
    /// Called once when the service starts: where to send transaction
    /// checks. The default drops them.
    fn attach(&self, _checks: TransactionCheckSink) {}

    /// The topic's route; `TopicNotFound` when it does not exist.
    fn route(
        &self,
        ctx: &ClientContext,
        topic: &str,
    ) -> impl Future<Output = Result<TopicRoute, ProxyError>> + Send;

    /// The subscription group; `GroupNotFound` when it does not exist and
    /// the backend does not create groups automatically.
    fn group(
        &self,
        ctx: &ClientContext,
        group: &str,
    ) -> impl Future<Output = Result<GroupInfo, ProxyError>> + Send;

    /// Stores one message.
    fn send(
        &self,
        ctx: &ClientContext,
        msg: OutgoingMessage,
    ) -> impl Future<Output = Result<SendReceipt, ProxyError>> + Send;

    /// Pops up to `max_messages`, held up to `poll_ms`; empty when nothing
    /// came. Each message carries its receipt handle.
    fn receive(
        &self,
        ctx: &ClientContext,
        req: ReceiveRequest,
    ) -> impl Future<Output = Result<Vec<StoredMessage>, ProxyError>> + Send;

    /// Acknowledges one popped message.
    fn ack(
        &self,
        ctx: &ClientContext,
        group: &str,
        topic: &str,
        handle: &ReceiptHandle,
    ) -> impl Future<Output = Result<(), ProxyError>> + Send;

    /// Makes a popped message invisible for `invisible_ms` from now;
    /// returns its new receipt handle.
    fn change_invisible(
        &self,
        ctx: &ClientContext,
        group: &str,
        topic: &str,
        handle: &ReceiptHandle,
        invisible_ms: i64,
    ) -> impl Future<Output = Result<ReceiptHandle, ProxyError>> + Send;

    /// Moves a popped message to the group's DLQ (`%DLQ%group`) and acks it.
    fn forward_to_dlq(
        &self,
        ctx: &ClientContext,
        group: &str,
        topic: &str,
        handle: &ReceiptHandle,
        msg_id: &str,
        max_delivery_attempts: i32,
    ) -> impl Future<Output = Result<(), ProxyError>> + Send;

    /// Commits or rolls back a half message.
    fn end_transaction(
        &self,
        ctx: &ClientContext,
        req: EndTransaction,
    ) -> impl Future<Output = Result<(), ProxyError>> + Send;

    /// A client's heartbeat (or its settings): registers it as a producer of
    /// its topics or a consumer of its group.
    fn heartbeat(
        &self,
        ctx: &ClientContext,
        client: &ClientInfo,
    ) -> impl Future<Output = Result<(), ProxyError>> + Send;

    /// The client is gone (NotifyClientTermination or its telemetry stream
    /// closed).
    fn unregister(
        &self,
        ctx: &ClientContext,
        client: &ClientInfo,
    ) -> impl Future<Output = Result<(), ProxyError>> + Send;
}
