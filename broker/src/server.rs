//! Start-up, the request table, background tasks and shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use remoting::{serve, ServerConfig};
use store::MessageStore;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::{BrokerConfig, BrokerRole};
use crate::meta::client::ClientManager;
use crate::meta::lock::RebalanceLockManager;
use crate::meta::offsets::ConsumerOffsetManager;
use crate::meta::subscription::SubscriptionGroupManager;
use crate::meta::topic::TopicConfigManager;
use crate::processor::pull::ArrivalNotifier;
use crate::processor::table::Services;
use crate::processor::SharedConfig;
use crate::replication::namesrv::{registration_loop, NamesrvClient};
use crate::stats::BrokerStats;
use crate::store::BrokerStore;

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
    /// Master/slave replication of a local commit log.
    replication: Option<Arc<crate::replication::ha::Replication>>,
    /// The gRPC port in local proxy mode.
    grpc_addr: Option<SocketAddr>,
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
        // ACL 1.0: bad rules refuse the start (Java's validator throws
        // while the broker is built).
        let acl_v1 = match config.acl_enable {
            true => Some(crate::access::v1::PlainAcl::open(&config)?),
            false => None,
        };
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
        let controller_mode = config.enable_controller_mode;
        if controller_mode {
            // Java refuses identity files of another broker set.
            crate::replication::controller::identity::IdentityFiles::new(
                config.broker_identity_path(),
                &config.broker_cluster_name,
                &config.broker_name,
            )
            .check()?;
        }
        // Controller mode: AutoSwitch HA behind `ControllerReplication`.
        let controller_replication: Option<
            Arc<dyn crate::replication::controller::ControllerReplication>,
        > = if controller_mode {
            Some(Arc::new(
                crate::replication::controller::AutoSwitchReplication::open(
                    &config,
                    store.clone(),
                )?,
            ))
        } else {
            None
        };
        // A local commit log replicates master -> slaves (classic HA).
        let replication = if dledger_parts.is_none() && !controller_mode {
            match crate::replication::ha::Replication::start(&config, store.clone()).await {
                Ok(r) => Some(Arc::new(r)),
                Err(e) if config.broker_role == BrokerRole::SyncMaster => return Err(e),
                Err(e) => {
                    error!(error = %format!("{e:#}"), "no HA port: slaves cannot replicate from this broker");
                    None
                }
            }
        } else {
            None
        };
        let is_slave = config.broker_role.is_slave() && !controller_mode;
        let register_now = Arc::new(Notify::new());
        let topics = Arc::new(TopicConfigManager::open(&config, register_now.clone())?);
        let meta_flush = crate::meta::journal::FlushDisk::of(&config);
        let groups = Arc::new(SubscriptionGroupManager::open(
            config_dir.clone(),
            config.auto_create_subscription_group,
            meta_flush,
        )?);
        let offsets = Arc::new(ConsumerOffsetManager::open(config_dir, meta_flush)?);
        let clients = Arc::new(ClientManager::new(
            config.notify_consumer_ids_changed_enable,
        ));
        let arrivals = Arc::new(ArrivalNotifier::default());
        {
            let arrivals = arrivals.clone();
            store.with((), |s| {
                let woken = arrivals.clone();
                s.set_read_limit_listener(Arc::new(move |_limit| woken.wake_all()));
                s.set_arrival_listener(Arc::new(move |topic, queue_id, _max| {
                    arrivals.arrived(topic, queue_id)
                }))
            });
        }
        let namesrv = Arc::new(NamesrvClient::new(&config));
        if let Some(r) = controller_replication.clone() {
            namesrv.on_register_answer(Box::new(move |ha_addr, master| {
                if let Some(a) = ha_addr.filter(|a| !a.is_empty()) {
                    r.master_ha_learnt(&a, master.as_deref());
                }
            }));
        }
        if let Some(r) = replication.clone() {
            let c = config.clone();
            namesrv.on_register_answer(Box::new(move |ha_addr, _master| {
                r.master_learnt(&c, ha_addr)
            }));
        }
        let register_enabled = config.register_broker_to_name_server;
        let register_period = Duration::from_millis(config.register_name_server_period);
        let flush_interval = Duration::from_millis(config.flush_consumer_offset_interval.max(100));
        let channel_expiry = Duration::from_millis(config.channel_expired_timeout);
        let schedule = Arc::new(crate::services::schedule::ScheduleService::open(
            store.clone(),
            config.config_dir(),
            &config.message_delay_level,
        )?);
        let timer = Arc::new(crate::services::timer::TimerService::open(
            store.clone(),
            config.config_dir(),
        )?);
        let server_config = ServerConfig::default()
            .with_idle_seconds(config.server_channel_max_idle_time_seconds.into());
        let shared: SharedConfig = Arc::new(RwLock::new(config));
        let transactions = Arc::new(crate::services::transaction::TransactionService::new(
            shared.clone(),
            store.clone(),
            clients.clone(),
            offsets.clone(),
            store_host,
        ));

        let request_modes = Arc::new(crate::meta::request_mode::RequestModeManager::open(
            shared
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .config_dir(),
            meta_flush,
        )?);
        let pop = Arc::new(crate::processor::pop::PopService::new(
            shared.clone(),
            topics.clone(),
            groups.clone(),
            offsets.clone(),
            store.clone(),
            arrivals.clone(),
            timer.clone(),
            store_host,
            shutdown.clone(),
        ));
        let revive = Arc::new(crate::services::revive::ReviveService {
            config: shared.clone(),
            topics: topics.clone(),
            groups: groups.clone(),
            offsets: offsets.clone(),
            store: store.clone(),
            pop: pop.clone(),
            store_host,
        });
        let start_master_services = {
            let (schedule, timer, transactions, revive) = (
                schedule.clone(),
                timer.clone(),
                transactions.clone(),
                revive.clone(),
            );
            move |tasks: &TaskTracker, stop: &CancellationToken| {
                schedule.start(tasks, stop);
                timer.start(tasks, stop);
                transactions.start(tasks, stop);
                revive.start(tasks, stop);
            }
        };
        let controller_for_metrics = controller_replication.clone();
        let (controller_manager, controller_handle) = match controller_replication {
            Some(replication) => {
                let (m, h) = crate::replication::controller::ControllerManager::new(
                    crate::replication::controller::Parts {
                        config: shared.clone(),
                        replication,
                        namesrv: namesrv.clone(),
                        topics: topics.clone(),
                        store: store.clone(),
                        services: crate::replication::dledger::MasterServices::new(
                            Box::new(start_master_services.clone()),
                            shutdown.clone(),
                        ),
                    },
                );
                (Some(m), Some(h))
            }
            None => (None, None),
        };
        let mut services = Services {
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
            pop,
            request_modes,
            replication: replication.clone(),
            controller: controller_handle,
            acl_v1,
            auth: crate::access::v2::Auth::open(&crate::processor::read_config(&shared))?,
            rpc_metrics: None,
        };
        // One copy of the settings the exporter starts with.
        let metrics_config = crate::processor::read_config(&shared).clone();
        let metrics_kind = crate::metrics::ExporterType::of_config(&metrics_config);
        let metrics_registry = metrics_kind.map(|_| {
            let rpc = Arc::new(crate::metrics::RpcStats::default());
            services.rpc_metrics = Some(rpc.clone());
            services.stats.set_metrics(true);
            crate::metrics::registry(crate::metrics::Sources {
                config: shared.clone(),
                stats: services.stats.clone(),
                rpc,
                topics: topics.clone(),
                groups: groups.clone(),
                clients: clients.clone(),
                offsets: offsets.clone(),
                store: store.clone(),
                replicas: crate::metrics::Replicas {
                    ha: replication.clone(),
                    controller: controller_for_metrics.clone(),
                    dledger: dledger_parts.as_ref().map(|p| p.server.clone()),
                },
                common: crate::metrics::common_labels(&metrics_config),
            })
        });
        let stats = services.stats.clone();
        let router = Arc::new(crate::processor::table::router(services));

        let tasks = TaskTracker::new();
        if let (Some(kind), Some(registry)) = (metrics_kind, metrics_registry) {
            crate::metrics::start(kind, &metrics_config, registry, &tasks, shutdown.clone()).await;
        }
        // DLedger and controller mode: only while master (the role handler
        // starts and stops them); a slave of a local commit log never writes.
        if dledger_parts.is_none() && !is_slave && !controller_mode {
            start_master_services(&tasks, &shutdown);
        }
        // Local proxy mode (`--enable-proxy`): the gRPC MessagingService
        // over this broker's own request table.
        let grpc_addr = {
            let c = crate::processor::read_config(&shared).clone();
            match c.enable_proxy {
                true => {
                    let backend = crate::grpc::LocalBackend::new(
                        router.clone(),
                        topics.clone(),
                        groups.clone(),
                        shared.clone(),
                        store_host,
                        shutdown.clone(),
                    );
                    let addr = crate::grpc::start(&c, backend, &tasks, shutdown.clone())
                        .await
                        .with_context(|| {
                            format!(
                                "binding the gRPC port {}:{}",
                                c.bind_address, c.grpc_server_port
                            )
                        })?;
                    Some(addr)
                }
                false => None,
            }
        };
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
                tasks.spawn(crate::replication::dledger::dispatch_loop(
                    parts.server.clone(),
                    raw.clone(),
                    parts.state.clone(),
                    shutdown.clone(),
                ));
                tasks.spawn(crate::replication::dledger::role_loop(
                    parts.server.clone(),
                    raw,
                    parts.state,
                    shared.clone(),
                    namesrv.clone(),
                    topics.clone(),
                    crate::replication::dledger::MasterServices::new(
                        Box::new(start_master_services),
                        shutdown.clone(),
                    ),
                    shutdown.clone(),
                ));
            }
            let leader = parts.server.clone();
            namesrv.set_master_claim(Box::new(move || leader.holds_leader_lease()));
            dledger_server = Some(parts.server);
        }
        if let Some(m) = controller_manager {
            tasks.spawn(m.run(shutdown.clone()));
        }
        if dledger_server.is_some() || is_slave || controller_mode {
            let sync = crate::replication::slave_sync::SlaveSync {
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
            replication,
            grpc_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the gRPC MessagingService listens (local proxy mode only).
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_addr
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
        if let Some(r) = &self.replication {
            r.shutdown();
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
