//! Start-up, the request table, background tasks and shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use remoting::code::request_code as rq;
use remoting::{serve, CommandError, Connection, RemotingCommand, Router, ServerConfig};
use store::MessageStore;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::client::ClientManager;
use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::lock::RebalanceLockManager;
use crate::namesrv::{registration_loop, NamesrvClient};
use crate::offsets::ConsumerOffsetManager;
use crate::processor::admin::AdminProcessor;
use crate::processor::client::ClientProcessor;
use crate::processor::pull::{ArrivalNotifier, PullProcessor};
use crate::processor::relay::RelayProcessor;
use crate::processor::send::SendProcessor;
use crate::processor::SharedConfig;
use crate::stats::BrokerStats;
use crate::store::BrokerStore;
use crate::subscription::SubscriptionGroupManager;
use crate::topic::TopicConfigManager;

/// How often idle client connections are looked for.
const CLIENT_SCAN_INTERVAL: Duration = Duration::from_secs(10);
/// First registration at start-up: do not hold the boot message longer.
const BOOT_REGISTER_WAIT: Duration = Duration::from_secs(5);

/// Serves a broker on `listener` until `shutdown` is cancelled, opening the
/// store described by `config`.
pub async fn run(
    listener: TcpListener,
    config: BrokerConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    Broker::start(listener, None, config, None, shutdown)
        .await?
        .wait()
        .await
}

/// A started broker; [`Broker::wait`] serves until shutdown and cleans up.
pub struct Broker {
    local_addr: SocketAddr,
    config: SharedConfig,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    namesrv: Arc<NamesrvClient>,
    offsets: Arc<ConsumerOffsetManager>,
    store: Arc<BrokerStore>,
    /// The DLedger member when `enableDLegerCommitLog=true`.
    dledger: Option<Arc<dledger::server::DLedgerServer>>,
}

struct Services {
    config: SharedConfig,
    topics: Arc<TopicConfigManager>,
    groups: Arc<SubscriptionGroupManager>,
    clients: Arc<ClientManager>,
    offsets: Arc<ConsumerOffsetManager>,
    locks: Arc<RebalanceLockManager>,
    store: Arc<BrokerStore>,
    arrivals: Arc<ArrivalNotifier>,
    stats: Arc<BrokerStats>,
    register_now: Arc<Notify>,
    store_host: SocketAddr,
    shutdown: CancellationToken,
    schedule: Arc<crate::schedule::ScheduleService>,
    timer: Arc<crate::timer::TimerService>,
    transactions: Arc<crate::transaction::TransactionService>,
}

impl Broker {
    /// Opens the metadata and the store (`store` overrides the store the
    /// config describes), registers with the
    /// name servers once and starts serving on `listener` and, if given, the
    /// VIP listener. Returns when the broker is ready.
    pub async fn start(
        listener: TcpListener,
        vip_listener: Option<TcpListener>,
        mut config: BrokerConfig,
        store: Option<MessageStore>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Broker> {
        config.validate()?;
        if config.enable_d_leger_commit_log {
            // Java `BrokerStartup`: the id comes from the first DLedger role.
            config.broker_id = -1;
        }
        let local_addr = listener.local_addr()?;
        let config_dir = config.config_dir();
        std::fs::create_dir_all(&config_dir)
            .with_context(|| format!("creating {}", config_dir.display()))?;
        let store_host: SocketAddr = config
            .broker_addr()
            .parse()
            .with_context(|| format!("brokerIP1 {:?} is not an IP address", config.broker_ip1))?;
        let mut dledger_parts = None;
        let store = Arc::new(BrokerStore::new(match store {
            Some(s) => s,
            None if config.enable_d_leger_commit_log => {
                let (s, parts) = crate::store::open_dledger(&config).await?;
                dledger_parts = Some(parts);
                s
            }
            None => crate::store::open(&config)?,
        }));
        let register_now = Arc::new(Notify::new());
        let topics = Arc::new(TopicConfigManager::open(&config, register_now.clone())?);
        let groups = Arc::new(SubscriptionGroupManager::open(
            config_dir.clone(),
            config.auto_create_subscription_group,
        )?);
        let offsets = Arc::new(ConsumerOffsetManager::open(config_dir)?);
        let clients = Arc::new(ClientManager::new(
            config.notify_consumer_ids_changed_enable,
        ));
        let arrivals = Arc::new(ArrivalNotifier::default());
        {
            let arrivals = arrivals.clone();
            store.with((), |s| {
                s.set_arrival_listener(Arc::new(move |topic, queue_id, _max| {
                    arrivals.arrived(topic, queue_id)
                }))
            });
        }
        let namesrv = Arc::new(NamesrvClient::new(&config));
        let register_enabled = config.register_broker_to_name_server;
        let register_period = Duration::from_millis(config.register_name_server_period);
        let flush_interval = Duration::from_millis(config.flush_consumer_offset_interval.max(100));
        let channel_expiry = Duration::from_millis(config.channel_expired_timeout);
        let schedule = Arc::new(crate::schedule::ScheduleService::open(
            store.clone(),
            config.config_dir(),
            &config.message_delay_level,
        )?);
        let timer = Arc::new(crate::timer::TimerService::open(
            store.clone(),
            config.config_dir(),
        )?);
        let server_config = ServerConfig::default()
            .with_idle_seconds(config.server_channel_max_idle_time_seconds.into());
        let shared: SharedConfig = Arc::new(RwLock::new(config));
        let transactions = Arc::new(crate::transaction::TransactionService::new(
            shared.clone(),
            store.clone(),
            clients.clone(),
            offsets.clone(),
            store_host,
        ));

        let services = Services {
            config: shared.clone(),
            topics: topics.clone(),
            groups: groups.clone(),
            clients: clients.clone(),
            offsets: offsets.clone(),
            locks: Arc::new(RebalanceLockManager::new()),
            store: store.clone(),
            arrivals,
            stats: Arc::new(BrokerStats::default()),
            register_now: register_now.clone(),
            store_host,
            shutdown: shutdown.clone(),
            schedule: schedule.clone(),
            timer: timer.clone(),
            transactions: transactions.clone(),
        };
        let stats = services.stats.clone();
        let router = Arc::new(build_router(services));

        let tasks = TaskTracker::new();
        let start_master_services = {
            let (schedule, timer, transactions) = (schedule.clone(), timer.clone(), transactions);
            move |tasks: &TaskTracker, stop: &CancellationToken| {
                schedule.start(tasks, stop);
                timer.start(tasks, stop);
                transactions.start(tasks, stop);
            }
        };
        // DLedger: only while master (the role handler starts and stops them).
        if dledger_parts.is_none() {
            start_master_services(&tasks, &shutdown);
        }
        tasks.spawn(serve(
            listener,
            router.clone(),
            server_config.clone(),
            shutdown.clone(),
        ));
        if let Some(vip) = vip_listener {
            tasks.spawn(serve(vip, router, server_config, shutdown.clone()));
        }

        let mut dledger_server = None;
        if let Some(parts) = dledger_parts {
            let raw = store.with(None, |s| Some(s.clone()));
            if let Some(raw) = raw {
                tasks.spawn(crate::dledger::dispatch_loop(
                    parts.server.clone(),
                    raw.clone(),
                    parts.state.clone(),
                    shutdown.clone(),
                ));
                tasks.spawn(crate::dledger::role_loop(
                    parts.server.clone(),
                    raw,
                    parts.state,
                    shared.clone(),
                    namesrv.clone(),
                    topics.clone(),
                    crate::dledger::MasterServices::new(
                        Box::new(start_master_services),
                        shutdown.clone(),
                    ),
                    shutdown.clone(),
                ));
            }
            let leader = parts.server.clone();
            namesrv.set_master_claim(Box::new(move || leader.holds_leader_lease()));
            dledger_server = Some(parts.server);
            let sync = crate::slave_sync::SlaveSync {
                config: shared.clone(),
                namesrv: namesrv.clone(),
                topics: topics.clone(),
                groups: groups.clone(),
                offsets: offsets.clone(),
                schedule: schedule.clone(),
                timer: timer.clone(),
            };
            tasks.spawn(sync.run(shutdown.clone()));
        }
        if register_enabled && !namesrv.addrs().is_empty() {
            // Java registers synchronously in start(); bound the wait so a
            // missing name server does not delay the boot for long.
            let _ = tokio::time::timeout(BOOT_REGISTER_WAIT, namesrv.register_all(&topics)).await;
            tasks.spawn(registration_loop(
                namesrv.clone(),
                topics,
                register_now,
                register_period,
                shutdown.clone(),
            ));
        }
        tasks.spawn(housekeeping(
            offsets.clone(),
            clients,
            stats,
            flush_interval,
            channel_expiry,
            shutdown.clone(),
        ));
        info!(%local_addr, "broker started");
        Ok(Broker {
            local_addr,
            config: shared,
            shutdown,
            tasks,
            namesrv,
            offsets,
            store,
            dledger: dledger_server,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn config(&self) -> BrokerConfig {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Serves until shutdown, then unregisters from the name servers,
    /// flushes the consumer offsets and closes the store.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.shutdown.cancelled().await;
        info!("broker shutting down");
        let register = self
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .register_broker_to_name_server;
        if register {
            self.namesrv.unregister_all().await;
        }
        self.tasks.close();
        self.tasks.wait().await;
        self.offsets.persist();
        self.store.shutdown();
        if let Some(server) = self.dledger {
            // Other holders may still share it: shut it down through this
            // handle so the final flush and checkpoint happen before exit.
            server.shutdown().await;
        }
        info!("broker stopped");
        Ok(())
    }
}

/// Periodic chores: offset flush, idle client expiry, TPS sampling.
async fn housekeeping(
    offsets: Arc<ConsumerOffsetManager>,
    clients: Arc<ClientManager>,
    stats: Arc<BrokerStats>,
    flush_interval: Duration,
    channel_expiry: Duration,
    shutdown: CancellationToken,
) {
    let mut flush = tokio::time::interval(flush_interval);
    let mut scan = tokio::time::interval(CLIENT_SCAN_INTERVAL);
    let mut sample = tokio::time::interval(Duration::from_secs(1));
    for t in [&mut flush, &mut scan, &mut sample] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = flush.tick() => offsets.persist(),
            _ = scan.tick() => clients.expire(channel_expiry),
            _ = sample.tick() => stats.sample(),
        }
    }
}

/// A slave (a DLedger follower) refuses sends unless `enableSlaveActingMaster`.
fn rejects_sends(config: &SharedConfig) -> bool {
    let c = config.read().unwrap_or_else(|p| p.into_inner());
    c.broker_role.eq_ignore_ascii_case("SLAVE") && !c.enable_slave_acting_master
}

/// A handler whose whole work happens on the connection's read loop.
fn sync_handler<F>(
    f: F,
) -> impl Fn(Connection, RemotingCommand) -> std::future::Ready<Result<RemotingCommand, CommandError>>
where
    F: Fn(&Connection, &RemotingCommand) -> Result<RemotingCommand, BrokerError>
        + Send
        + Sync
        + 'static,
{
    move |conn, req| std::future::ready(f(&conn, &req).map_err(CommandError::from))
}

fn build_router(s: Services) -> Router {
    let send = Arc::new(SendProcessor {
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
    let end_transaction = Arc::new(crate::processor::transaction::EndTransactionProcessor {
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

    let mut router = Router::new();
    // A put is stored or queued on the log at once (in read order); what it
    // still waits for (a DLedger quorum, a sync flush) is awaited off the
    // connection's read loop, so the sends of one connection share quorum
    // rounds and flushes.
    for code in [
        rq::SEND_MESSAGE,
        rq::SEND_MESSAGE_V2,
        rq::SEND_BATCH_MESSAGE,
    ] {
        let p = send.clone();
        let cfg = s.config.clone();
        router = router.route(code, move |conn: Connection, req: RemotingCommand| {
            // Java `SendMessageProcessor.rejectRequest` on a slave.
            let r = if rejects_sends(&cfg) {
                Err(CommandError::new(
                    remoting::code::response_code::SYSTEM_BUSY,
                    "[REJECTREQUEST]system busy, start flow control for a while",
                ))
            } else {
                match p.start(&conn, &req) {
                    Ok(crate::processor::send::Started::Pending(pending)) => {
                        let p = p.clone();
                        return futures::future::Either::Right(Box::pin(async move {
                            p.complete(pending).await.map_err(CommandError::from)
                        }));
                    }
                    Ok(crate::processor::send::Started::Done(response)) => Ok(response),
                    Err(e) => Err(CommandError::from(e)),
                }
            };
            futures::future::Either::Left(std::future::ready(r))
        });
    }
    {
        // Java `getAllDelayOffset` (what a slave syncs).
        let schedule = s.schedule.clone();
        router = router.route(
            crate::slave_sync::GET_ALL_DELAY_OFFSET,
            sync_handler(move |_, _| Ok(RemotingCommand::success().with_body(schedule.encode()))),
        );
    }
    {
        // Java `getTimerCheckPoint` (what a slave syncs).
        let timer = s.timer.clone();
        router = router.route(
            crate::timer::GET_TIMER_CHECK_POINT,
            sync_handler(move |_, _| Ok(RemotingCommand::success().with_body(timer.checkpoint()))),
        );
    }
    {
        let p = send.clone();
        router = router.route(
            rq::CONSUMER_SEND_MSG_BACK,
            move |conn: Connection, req: RemotingCommand| {
                let p = p.clone();
                async move { p.send_back(&conn, &req).await.map_err(CommandError::from) }
            },
        );
    }
    router = router.route(
        rq::END_TRANSACTION,
        move |conn: Connection, req: RemotingCommand| {
            let p = end_transaction.clone();
            async move { p.handle(&conn, &req).await.map_err(CommandError::from) }
        },
    );
    for code in [rq::PULL_MESSAGE, rq::LITE_PULL_MESSAGE] {
        let p = pull.clone();
        let cfg = s.config.clone();
        router = router.route(code, move |_conn: Connection, req: RemotingCommand| {
            let p = p.clone();
            // Java `PullMessageProcessor.rejectRequest`: a slave without
            // `slaveReadEnable` refuses pulls.
            let rejected = {
                let c = cfg.read().unwrap_or_else(|p| p.into_inner());
                c.broker_role.eq_ignore_ascii_case("SLAVE") && !c.slave_read_enable
            };
            async move {
                if rejected {
                    return Err(CommandError::new(
                        remoting::code::response_code::SYSTEM_BUSY,
                        "[REJECTREQUEST]system busy, start flow control for a while",
                    ));
                }
                p.handle(req).await.map_err(CommandError::from)
            }
        });
    }

    type ClientFn =
        fn(&ClientProcessor, &Connection, &RemotingCommand) -> Result<RemotingCommand, BrokerError>;
    let client_routes: [(i32, ClientFn); 8] = [
        (rq::HEART_BEAT, |p, c, r| p.heartbeat(c, r)),
        (rq::UNREGISTER_CLIENT, |p, c, r| p.unregister_client(c, r)),
        (rq::CHECK_CLIENT_CONFIG, |p, _, r| p.check_client_config(r)),
        (rq::GET_CONSUMER_LIST_BY_GROUP, |p, _, r| p.consumer_list(r)),
        (rq::QUERY_CONSUMER_OFFSET, |p, _, r| p.query_offset(r)),
        (rq::UPDATE_CONSUMER_OFFSET, |p, _, r| p.update_offset(r)),
        (rq::LOCK_BATCH_MQ, |p, _, r| p.lock_batch(r)),
        (rq::UNLOCK_BATCH_MQ, |p, _, r| p.unlock_batch(r)),
    ];
    for (code, f) in client_routes {
        let p = client.clone();
        router = router.route(code, sync_handler(move |c, r| f(&p, c, r)));
    }

    type AdminFn = fn(&AdminProcessor, &RemotingCommand) -> Result<RemotingCommand, BrokerError>;
    let admin_routes: [(i32, AdminFn); 30] = [
        (rq::UPDATE_AND_CREATE_TOPIC, |p, r| {
            p.update_and_create_topic(r)
        }),
        (rq::DELETE_TOPIC_IN_BROKER, |p, r| p.delete_topic(r)),
        (rq::GET_ALL_TOPIC_CONFIG, |p, _| p.all_topic_config()),
        (rq::GET_TOPIC_CONFIG, |p, r| p.topic_config(r)),
        (rq::GET_BROKER_RUNTIME_INFO, |p, _| p.runtime_info()),
        (rq::GET_BROKER_CONFIG, |p, _| p.broker_config()),
        (rq::UPDATE_BROKER_CONFIG, |p, r| p.update_broker_config(r)),
        (rq::GET_TOPIC_STATS_INFO, |p, r| p.topic_stats(r)),
        (rq::GET_CONSUME_STATS, |p, r| p.consume_stats(r)),
        (rq::GET_CONSUMER_CONNECTION_LIST, |p, r| {
            p.consumer_connections(r)
        }),
        (rq::GET_PRODUCER_CONNECTION_LIST, |p, r| {
            p.producer_connections(r)
        }),
        (rq::QUERY_TOPIC_CONSUME_BY_WHO, |p, r| {
            p.topic_consumed_by(r)
        }),
        (rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, |p, _| {
            p.all_subscription_groups()
        }),
        (rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, |p, r| {
            p.update_subscription_group(r)
        }),
        (rq::DELETE_SUBSCRIPTIONGROUP, |p, r| {
            p.delete_subscription_group(r)
        }),
        (rq::GET_ALL_CONSUMER_OFFSET, |p, _| p.all_consumer_offsets()),
        (rq::GET_SYSTEM_TOPIC_LIST_FROM_BROKER, |p, _| {
            p.system_topics()
        }),
        (rq::GET_MAX_OFFSET, |p, r| p.max_offset(r)),
        (rq::GET_MIN_OFFSET, |p, r| p.min_offset(r)),
        (rq::SEARCH_OFFSET_BY_TIMESTAMP, |p, r| p.search_offset(r)),
        (rq::GET_EARLIEST_MSG_STORETIME, |p, r| {
            p.earliest_store_time(r)
        }),
        (rq::VIEW_MESSAGE_BY_ID, |p, r| p.view_message(r)),
        (rq::UPDATE_AND_CREATE_TOPIC_LIST, |p, r| {
            p.update_and_create_topic_list(r)
        }),
        (rq::VIEW_BROKER_STATS_DATA, |p, r| p.view_broker_stats(r)),
        (rq::GET_BROKER_CONSUME_STATS, |p, r| {
            p.broker_consume_stats(r)
        }),
        (rq::GET_ALL_PRODUCER_INFO, |p, _| p.all_producer_info()),
        (rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST, |p, r| {
            p.update_subscription_group_list(r)
        }),
        (rq::QUERY_CONSUME_QUEUE, |p, r| p.query_consume_queue(r)),
        (rq::CLEAN_EXPIRED_CONSUMEQUEUE, |p, _| {
            p.clean_expired_consume_queue()
        }),
        (rq::CLEAN_UNUSED_TOPIC, |p, _| p.clean_unused_topic()),
    ];
    for (code, f) in admin_routes {
        let p = admin.clone();
        router = router.route(code, sync_handler(move |_, r| f(&p, r)));
    }

    let relay = Arc::new(RelayProcessor {
        config: s.config.clone(),
        topics: s.topics.clone(),
        clients: s.clients.clone(),
        offsets: s.offsets.clone(),
        store: s.store.clone(),
    });
    {
        let p = relay.clone();
        router = router.route(
            rq::INVOKE_BROKER_TO_RESET_OFFSET,
            move |_: Connection, req| {
                let p = p.clone();
                async move { p.reset_offset(req).await.map_err(CommandError::from) }
            },
        );
        let p = relay.clone();
        router = router.route(rq::GET_CONSUMER_RUNNING_INFO, move |_: Connection, req| {
            let p = p.clone();
            async move {
                p.consumer_running_info(req)
                    .await
                    .map_err(CommandError::from)
            }
        });
        let p = relay.clone();
        router = router.route(
            rq::INVOKE_BROKER_TO_GET_CONSUMER_STATUS,
            move |_: Connection, req| {
                let p = p.clone();
                async move { p.consumer_status(req).await.map_err(CommandError::from) }
            },
        );
        let p = relay;
        router = router.route(rq::CONSUME_MESSAGE_DIRECTLY, move |_: Connection, req| {
            let p = p.clone();
            async move {
                p.consume_message_directly(req)
                    .await
                    .map_err(CommandError::from)
            }
        });
    }

    let router = crate::processor::query::register(router, s.store.clone());
    let clients = s.clients.clone();
    router.on_close(move |conn| clients.connection_closed(conn))
}

/// Binds the VIP listener (`listenPort - 2`) Java brokers also open; a
/// failure is only a warning.
pub async fn bind_vip(bind_address: &str, listen_port: u16) -> Option<TcpListener> {
    let port = listen_port.checked_sub(2)?;
    match TcpListener::bind((bind_address, port)).await {
        Ok(l) => Some(l),
        Err(e) => {
            warn!(port, error = %e, "cannot bind the VIP port; continuing without it");
            None
        }
    }
}
