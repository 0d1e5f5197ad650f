//! The request table: request code → processor method, with what a slave
//! does with it (Java's per-processor `rejectRequest`) as data, applied in
//! one place ([`Table::route`]).

use std::future::{ready, Future, Ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures::future::Either;
use remoting::code::{request_code as rq, response_code};
use remoting::{CommandError, Connection, RemotingCommand, Router};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::meta::client::ClientManager;
use crate::meta::lock::RebalanceLockManager;
use crate::meta::offsets::ConsumerOffsetManager;
use crate::meta::subscription::SubscriptionGroupManager;
use crate::meta::topic::TopicConfigManager;
use crate::processor::admin::AdminProcessor;
use crate::processor::client::ClientProcessor;
use crate::processor::pull::{ArrivalNotifier, PullProcessor};
use crate::processor::query::QueryProcessor;
use crate::processor::relay::RelayProcessor;
use crate::processor::send::{SendProcessor, Started};
use crate::processor::transaction::EndTransactionProcessor;
use crate::processor::{read_config, SharedConfig};
use crate::services::schedule::ScheduleService;
use crate::services::timer::TimerService;
use crate::services::transaction::TransactionService;
use crate::stats::BrokerStats;
use crate::store::BrokerStore;

/// What a broker whose `brokerRole` is SLAVE does with a request.
#[derive(Clone, Copy)]
pub(crate) enum OnSlave {
    Allow,
    /// Refused with SYSTEM_BUSY unless the config switch is on.
    RejectUnless(fn(&BrokerConfig) -> bool),
}

impl OnSlave {
    /// Java `SendMessageProcessor.rejectRequest`: a slave takes sends only
    /// as acting master.
    const SEND: OnSlave = OnSlave::RejectUnless(|c| c.enable_slave_acting_master);
    /// Java `PullMessageProcessor.rejectRequest`: a slave serves pulls only
    /// with `slaveReadEnable`.
    const PULL: OnSlave = OnSlave::RejectUnless(|c| c.slave_read_enable);
    /// POP writes checkpoints and acks: a slave refuses it (Java's pop
    /// processors run on a master; a slave's revive service is off).
    const POP: OnSlave = OnSlave::RejectUnless(|_| false);

    fn rejects(self, c: &BrokerConfig) -> bool {
        match self {
            OnSlave::Allow => false,
            OnSlave::RejectUnless(allowed) => c.broker_role.is_slave() && !allowed(c),
        }
    }
}

/// Java's answer to a request a processor rejects.
fn rejected() -> CommandError {
    CommandError::new(
        response_code::SYSTEM_BUSY,
        "[REJECTREQUEST]system busy, start flow control for a while",
    )
}

/// The services the processors share.
pub(crate) struct Services {
    pub config: SharedConfig,
    pub topics: Arc<TopicConfigManager>,
    pub groups: Arc<SubscriptionGroupManager>,
    pub clients: Arc<ClientManager>,
    pub offsets: Arc<ConsumerOffsetManager>,
    pub locks: Arc<RebalanceLockManager>,
    pub store: Arc<BrokerStore>,
    pub arrivals: Arc<ArrivalNotifier>,
    pub stats: Arc<BrokerStats>,
    pub register_now: Arc<Notify>,
    pub store_host: SocketAddr,
    pub shutdown: CancellationToken,
    pub schedule: Arc<ScheduleService>,
    pub timer: Arc<TimerService>,
    pub transactions: Arc<TransactionService>,
    /// POP consumption (processor/pop) and the per-group request modes.
    pub pop: Arc<crate::processor::pop::PopService>,
    pub request_modes: Arc<crate::meta::request_mode::RequestModeManager>,
    /// Master/slave replication of a local commit log (not with DLedger).
    pub replication: Option<Arc<crate::replication::ha::Replication>>,
    /// Controller mode: where NOTIFY_BROKER_ROLE_CHANGED goes and what
    /// GET_BROKER_EPOCH_CACHE reads.
    pub controller: Option<Arc<crate::replication::controller::ControllerHandle>>,
    /// ACL 1.0 rules when `aclEnable=true`.
    pub acl_v1: Option<Arc<crate::access::v1::PlainAcl>>,
    /// Auth 2.0 users and ACLs, when configured.
    pub auth: Option<Arc<crate::access::v2::Auth>>,
    /// Request latencies for `rocketmq_rpc_latency`, when metrics are on.
    pub rpc_metrics: Option<Arc<crate::metrics::RpcStats>>,
}

/// Builds the [`Router`] one row at a time, each row under its slave rule.
struct Table {
    router: Router,
    config: SharedConfig,
}

type Answer = Result<RemotingCommand, BrokerError>;
type Reply = Result<RemotingCommand, CommandError>;
/// A send's reply: at once, or once its put completes.
type SendReply = Either<Ready<Reply>, futures::future::BoxFuture<'static, Reply>>;

impl Table {
    /// `handler` runs on the connection's read loop, as `Router` does; the
    /// slave rule is checked there first, against the live config.
    fn route<F, Fut>(mut self, code: i32, on_slave: OnSlave, handler: F) -> Self
    where
        F: Fn(Connection, RemotingCommand) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self.router = match on_slave {
            OnSlave::Allow => self.router.route(code, handler),
            rule => {
                let config = self.config.clone();
                self.router.route(code, move |conn, req| {
                    if rule.rejects(&read_config(&config)) {
                        Either::Left(ready(Err(rejected())))
                    } else {
                        Either::Right(handler(conn, req))
                    }
                })
            }
        };
        self
    }
}

/// A handler whose whole work happens on the read loop.
fn sync<P: Send + Sync + 'static>(
    p: &Arc<P>,
    f: fn(&P, &Connection, &RemotingCommand) -> Answer,
) -> impl Fn(Connection, RemotingCommand) -> Ready<Reply> {
    let p = p.clone();
    move |conn, req| ready(f(&p, &conn, &req).map_err(CommandError::from))
}

/// A handler whose work is a future of its own.
fn deferred<P, F, Fut>(
    p: &Arc<P>,
    f: F,
) -> impl Fn(Connection, RemotingCommand) -> futures::future::MapErr<Fut, fn(BrokerError) -> CommandError>
where
    P: Send + Sync + 'static,
    F: Fn(Arc<P>, Connection, RemotingCommand) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    use futures::TryFutureExt;
    let p = p.clone();
    move |conn, req| f(p.clone(), conn, req).map_err(CommandError::from as fn(_) -> _)
}

/// A send is stored or queued on the log at once (in read order); what it
/// still waits for (a DLedger quorum, a sync flush) is awaited off the
/// connection's read loop, so the sends of one connection share quorum
/// rounds and flushes.
fn send(p: &Arc<SendProcessor>) -> impl Fn(Connection, RemotingCommand) -> SendReply {
    let p = p.clone();
    move |conn, req| match p.start(&conn, &req) {
        Ok(Started::Pending(pending)) => {
            let p = p.clone();
            Either::Right(Box::pin(async move {
                p.complete(pending).await.map_err(CommandError::from)
            }))
        }
        Ok(Started::Done(response)) => Either::Left(ready(Ok(response))),
        Err(e) => Either::Left(ready(Err(CommandError::from(e)))),
    }
}

/// The broker's request table.
pub(crate) fn router(s: Services) -> Router {
    let send_p = Arc::new(SendProcessor {
        config: s.config.clone(),
        topics: s.topics.clone(),
        groups: s.groups.clone(),
        store: s.store.clone(),
        stats: s.stats.clone(),
        store_host: s.store_host,
        schedule: s.schedule.clone(),
        timer: s.timer.clone(),
        locks: s.locks.clone(),
    });
    let end_tx = Arc::new(EndTransactionProcessor {
        tx: s.transactions.clone(),
        schedule: s.schedule.clone(),
    });
    let pull = Arc::new(PullProcessor {
        config: s.config.clone(),
        topics: s.topics.clone(),
        groups: s.groups.clone(),
        clients: s.clients.clone(),
        offsets: s.offsets.clone(),
        store: s.store.clone(),
        arrivals: s.arrivals.clone(),
        stats: s.stats.clone(),
        shutdown: s.shutdown.clone(),
    });
    let client = Arc::new(ClientProcessor {
        config: s.config.clone(),
        topics: s.topics.clone(),
        groups: s.groups.clone(),
        clients: s.clients.clone(),
        offsets: s.offsets.clone(),
        locks: s.locks.clone(),
        store: s.store.clone(),
    });
    let admin = Arc::new(AdminProcessor {
        config: s.config.clone(),
        topics: s.topics.clone(),
        groups: s.groups.clone(),
        clients: s.clients.clone(),
        offsets: s.offsets.clone(),
        store: s.store.clone(),
        stats: s.stats.clone(),
        register_now: s.register_now.clone(),
        boot: Instant::now(),
        boot_timestamp: remoting::body::now_millis(),
        config_version: std::sync::Mutex::new(remoting::body::DataVersion::now()),
    });
    let relay = Arc::new(RelayProcessor {
        config: s.config.clone(),
        topics: s.topics.clone(),
        clients: s.clients.clone(),
        offsets: s.offsets.clone(),
        store: s.store.clone(),
    });
    let query = Arc::new(QueryProcessor {
        store: s.store.clone(),
    });

    let pop = Arc::new(crate::processor::pop::PopProcessor {
        pop: s.pop.clone(),
        modes: s.request_modes.clone(),
        clients: s.clients.clone(),
    });

    let ha_status = Arc::new((s.replication.clone(), s.store.clone(), s.controller.clone()));
    let controller = Arc::new(s.controller.clone());
    use OnSlave::Allow;
    let t = Table {
        router: Router::new(),
        config: s.config.clone(),
    };
    #[rustfmt::skip]
    let t = t
        // Messages in.
        .route(rq::SEND_MESSAGE, OnSlave::SEND, send(&send_p))
        .route(rq::SEND_MESSAGE_V2, OnSlave::SEND, send(&send_p))
        .route(rq::SEND_BATCH_MESSAGE, OnSlave::SEND, send(&send_p))
        .route(rq::CONSUMER_SEND_MSG_BACK, Allow, deferred(&send_p, |p, c, r| async move { p.send_back(&c, &r).await }))
        .route(rq::END_TRANSACTION, Allow, deferred(&end_tx, |p, c, r| async move { p.handle(&c, &r).await }))
        // Messages out.
        .route(rq::PULL_MESSAGE, OnSlave::PULL, deferred(&pull, |p, _, r| async move { p.handle(r).await }))
        .route(rq::LITE_PULL_MESSAGE, OnSlave::PULL, deferred(&pull, |p, _, r| async move { p.handle(r).await }))
        // POP (processor/pop): a slave serves none of it (Java's pop
        // processors write checkpoints and acks).
        .route(rq::POP_MESSAGE, OnSlave::POP, deferred(&pop, |p, c, r| async move { p.pop_message(&c, r).await }))
        .route(rq::PEEK_MESSAGE, OnSlave::POP, sync(&pop, |p, _, r| p.peek_message(r)))
        .route(rq::ACK_MESSAGE, OnSlave::POP, deferred(&pop, |p, _, r| async move { p.ack_message(r).await }))
        .route(rq::BATCH_ACK_MESSAGE, OnSlave::POP, deferred(&pop, |p, _, r| async move { p.batch_ack_message(r).await }))
        .route(rq::CHANGE_MESSAGE_INVISIBLETIME, OnSlave::POP, deferred(&pop, |p, _, r| async move { p.change_invisible_time(r).await }))
        .route(rq::NOTIFICATION, OnSlave::POP, deferred(&pop, |p, _, r| async move { p.notification(r).await }))
        .route(rq::POLLING_INFO, Allow, sync(&pop, |p, _, r| p.polling_info(r)))
        .route(rq::QUERY_ASSIGNMENT, Allow, sync(&pop, |p, _, r| p.query_assignment(r)))
        .route(rq::SET_MESSAGE_REQUEST_MODE, Allow, sync(&pop, |p, _, r| p.set_message_request_mode(r)))
        .route(rq::QUERY_MESSAGE, Allow, sync(&query, |p, _, r| p.query_message(r)))
        // Clients.
        .route(rq::HEART_BEAT, Allow, sync(&client, |p, c, r| p.heartbeat(c, r)))
        .route(rq::UNREGISTER_CLIENT, Allow, sync(&client, |p, c, r| p.unregister_client(c, r)))
        .route(rq::CHECK_CLIENT_CONFIG, Allow, sync(&client, |p, _, r| p.check_client_config(r)))
        .route(rq::GET_CONSUMER_LIST_BY_GROUP, Allow, sync(&client, |p, _, r| p.consumer_list(r)))
        .route(rq::QUERY_CONSUMER_OFFSET, Allow, sync(&client, |p, _, r| p.query_offset(r)))
        .route(rq::UPDATE_CONSUMER_OFFSET, Allow, sync(&client, |p, _, r| p.update_offset(r)))
        .route(rq::LOCK_BATCH_MQ, Allow, sync(&client, |p, _, r| p.lock_batch(r)))
        .route(rq::UNLOCK_BATCH_MQ, Allow, sync(&client, |p, _, r| p.unlock_batch(r)))
        // Relayed to a client.
        .route(rq::INVOKE_BROKER_TO_RESET_OFFSET, Allow, deferred(&relay, |p, _, r| async move { p.reset_offset(r).await }))
        .route(rq::GET_CONSUMER_RUNNING_INFO, Allow, deferred(&relay, |p, _, r| async move { p.consumer_running_info(r).await }))
        .route(rq::INVOKE_BROKER_TO_GET_CONSUMER_STATUS, Allow, deferred(&relay, |p, _, r| async move { p.consumer_status(r).await }))
        .route(rq::CONSUME_MESSAGE_DIRECTLY, Allow, deferred(&relay, |p, _, r| async move { p.consume_message_directly(r).await }))
        // What a slave syncs from its master (Java `getAllDelayOffset`,
        // `getTimerCheckPoint`).
        .route(crate::replication::slave_sync::GET_ALL_DELAY_OFFSET, Allow, sync(&s.schedule, |p, _, _| Ok(RemotingCommand::success().with_body(p.encode()))))
        .route(crate::services::timer::GET_TIMER_CHECK_POINT, Allow, sync(&s.timer, |p, _, _| Ok(RemotingCommand::success().with_body(p.checkpoint()))))
        // Administration (mqadmin).
        .route(rq::UPDATE_AND_CREATE_TOPIC, Allow, sync(&admin, |p, _, r| p.update_and_create_topic(r)))
        .route(rq::UPDATE_AND_CREATE_TOPIC_LIST, Allow, sync(&admin, |p, _, r| p.update_and_create_topic_list(r)))
        .route(rq::DELETE_TOPIC_IN_BROKER, Allow, sync(&admin, |p, _, r| p.delete_topic(r)))
        .route(rq::GET_ALL_TOPIC_CONFIG, Allow, sync(&admin, |p, _, _| p.all_topic_config()))
        .route(rq::GET_TOPIC_CONFIG, Allow, sync(&admin, |p, _, r| p.topic_config(r)))
        .route(rq::GET_SYSTEM_TOPIC_LIST_FROM_BROKER, Allow, sync(&admin, |p, _, _| p.system_topics()))
        .route(rq::GET_TOPIC_STATS_INFO, Allow, sync(&admin, |p, _, r| p.topic_stats(r)))
        .route(rq::QUERY_TOPIC_CONSUME_BY_WHO, Allow, sync(&admin, |p, _, r| p.topic_consumed_by(r)))
        .route(rq::CLEAN_UNUSED_TOPIC, Allow, sync(&admin, |p, _, _| p.clean_unused_topic()))
        .route(rq::GET_BROKER_RUNTIME_INFO, Allow, sync(&admin, |p, _, _| p.runtime_info()))
        .route(rq::GET_BROKER_CONFIG, Allow, sync(&admin, |p, _, _| p.broker_config()))
        .route(rq::GET_BROKER_HA_STATUS, Allow, sync(&ha_status, |h, _, _| match &h.2 {
            Some(c) => c.ha_status(),
            None => super::ha_status::ha_status(h.0.as_deref(), &h.1),
        }))
        .route(crate::replication::controller::wire::code::GET_BROKER_EPOCH_CACHE, Allow, sync(&controller, |h, _, _| crate::replication::controller::epoch_cache_answer(h.as_deref())))
        .route(crate::replication::controller::wire::code::NOTIFY_BROKER_ROLE_CHANGED, Allow, sync(&controller, |h, _, r| crate::replication::controller::notify_answer(h.as_deref(), r)))
        .route(rq::UPDATE_BROKER_CONFIG, Allow, sync(&admin, |p, _, r| p.update_broker_config(r)))
        .route(rq::VIEW_BROKER_STATS_DATA, Allow, sync(&admin, |p, _, r| p.view_broker_stats(r)))
        .route(rq::GET_BROKER_CONSUME_STATS, Allow, sync(&admin, |p, _, r| p.broker_consume_stats(r)))
        .route(rq::GET_CONSUME_STATS, Allow, sync(&admin, |p, _, r| p.consume_stats(r)))
        .route(rq::GET_CONSUMER_CONNECTION_LIST, Allow, sync(&admin, |p, _, r| p.consumer_connections(r)))
        .route(rq::GET_PRODUCER_CONNECTION_LIST, Allow, sync(&admin, |p, _, r| p.producer_connections(r)))
        .route(rq::GET_ALL_PRODUCER_INFO, Allow, sync(&admin, |p, _, _| p.all_producer_info()))
        .route(rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, Allow, sync(&admin, |p, _, _| p.all_subscription_groups()))
        .route(rq::GET_SUBSCRIPTIONGROUP_CONFIG, Allow, sync(&admin, |p, _, r| p.subscription_group(r)))
        .route(rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, Allow, sync(&admin, |p, _, r| p.update_subscription_group(r)))
        .route(rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST, Allow, sync(&admin, |p, _, r| p.update_subscription_group_list(r)))
        .route(rq::DELETE_SUBSCRIPTIONGROUP, Allow, sync(&admin, |p, _, r| p.delete_subscription_group(r)))
        .route(rq::GET_ALL_CONSUMER_OFFSET, Allow, sync(&admin, |p, _, _| p.all_consumer_offsets()))
        .route(rq::GET_MAX_OFFSET, Allow, sync(&admin, |p, _, r| p.max_offset(r)))
        .route(rq::GET_MIN_OFFSET, Allow, sync(&admin, |p, _, r| p.min_offset(r)))
        .route(rq::SEARCH_OFFSET_BY_TIMESTAMP, Allow, sync(&admin, |p, _, r| p.search_offset(r)))
        .route(rq::GET_EARLIEST_MSG_STORETIME, Allow, sync(&admin, |p, _, r| p.earliest_store_time(r)))
        .route(rq::VIEW_MESSAGE_BY_ID, Allow, sync(&admin, |p, _, r| p.view_message(r)))
        .route(rq::QUERY_CONSUME_QUEUE, Allow, sync(&admin, |p, _, r| p.query_consume_queue(r)))
        .route(rq::CLEAN_EXPIRED_CONSUMEQUEUE, Allow, sync(&admin, |p, _, _| p.clean_expired_consume_queue()));
    // Auth 2.0 admin codes (3001-3010); without a store they answer Java's
    // system error. Its check runs after ACL 1.0's.
    let auth = s.auth.clone().unwrap_or_else(crate::access::v2::Auth::absent);
    let t = crate::access::v2::code::ALL.iter().fold(t, |t, &code| {
        let auth = auth.clone();
        t.route(code, Allow, move |_, r| ready(Ok(auth.admin(&r))))
    });
    let mut t = acl_v1_routes(t, s.acl_v1.clone(), &s.config);
    if let Some(acl) = s.acl_v1.clone() {
        acl.spawn_watcher(s.shutdown.clone());
        t.router = t.router.intercept(crate::access::v1::AclV1Check(acl));
    }
    if let Some(auth) = s.auth.clone() {
        t.router = t.router.intercept(auth);
    }
    let clients = s.clients;
    let router = t
        .router
        .on_close(move |conn| clients.connection_closed(conn));
    match s.rpc_metrics {
        Some(rpc) => router.intercept(crate::metrics::RpcInterceptor(rpc)),
        None => router,
    }
}

/// ACL 1.0 admin codes 50–53 (answered with Java's refusal when
/// `aclEnable=false`).
fn acl_v1_routes(
    t: Table,
    acl: Option<Arc<crate::access::v1::PlainAcl>>,
    config: &SharedConfig,
) -> Table {
    use crate::access::v1::{self as v1, PlainAcl};
    type Edit = fn(&PlainAcl, &RemotingCommand) -> RemotingCommand;
    let edits: [(i32, Edit); 3] = [
        (v1::UPDATE_AND_CREATE_ACL_CONFIG, PlainAcl::update_account),
        (v1::DELETE_ACL_CONFIG, PlainAcl::delete_account),
        (v1::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG, PlainAcl::update_global_white),
    ];
    let mut t = t;
    for (code, f) in edits {
        let acl = acl.clone();
        t = t.route(code, OnSlave::Allow, move |_, req: RemotingCommand| {
            let acl = acl.clone();
            async move {
                Ok(match acl {
                    // File I/O off the read loop.
                    Some(acl) => tokio::task::spawn_blocking(move || f(&acl, &req))
                        .await
                        .unwrap_or_else(|_| {
                            RemotingCommand::response(response_code::SYSTEM_ERROR)
                        }),
                    None => v1::not_enabled(code),
                })
            }
        });
    }
    let config = config.clone();
    t.route(v1::GET_BROKER_CLUSTER_ACL_INFO, OnSlave::Allow, move |_, _| {
        let answer = match &acl {
            Some(acl) => acl.versions(&read_config(&config)),
            None => v1::not_enabled(v1::GET_BROKER_CLUSTER_ACL_INFO),
        };
        ready(Ok(answer))
    })
}
