//! Broker configuration: the keys of Java's `broker.conf` (its `BrokerConfig`,
//! `NettyServerConfig` and `MessageStoreConfig` share one file), typed.
//!
//! Precedence: defaults < `-c file` < command line. Unknown keys are logged and
//! kept out; a value that does not parse is an error naming the key.

use std::path::PathBuf;

use indexmap::IndexMap;
use tracing::warn;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("config key {key}: invalid value {value:?} ({why})")]
    BadValue {
        key: String,
        value: String,
        why: String,
    },
    #[error("cannot read config file {path}: {error}")]
    Read { path: String, error: String },
}

/// A value type a config key can have.
trait ConfigValue: Sized {
    fn parse(raw: &str) -> Result<Self, String>;
    fn show(&self) -> String;
}

impl ConfigValue for String {
    fn parse(raw: &str) -> Result<Self, String> {
        Ok(raw.trim().to_owned())
    }
    fn show(&self) -> String {
        self.clone()
    }
}

impl ConfigValue for bool {
    fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            r if r.eq_ignore_ascii_case("true") => Ok(true),
            r if r.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err("expected true or false".into()),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

/// `brokerRole` (Java `BrokerRole`): a master that acknowledges a send after
/// its own write, one that waits for a slave too, or a slave. Read in any
/// case; shown as Java's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerRole {
    AsyncMaster,
    SyncMaster,
    Slave,
}

impl BrokerRole {
    /// Java's name, as config files and GET_BROKER_CONFIG spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerRole::AsyncMaster => "ASYNC_MASTER",
            BrokerRole::SyncMaster => "SYNC_MASTER",
            BrokerRole::Slave => "SLAVE",
        }
    }

    pub fn is_slave(self) -> bool {
        self == BrokerRole::Slave
    }
}

impl std::fmt::Display for BrokerRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BrokerRole {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        [
            BrokerRole::AsyncMaster,
            BrokerRole::SyncMaster,
            BrokerRole::Slave,
        ]
        .into_iter()
        .find(|r| r.as_str().eq_ignore_ascii_case(raw))
        .ok_or_else(|| "expected ASYNC_MASTER, SYNC_MASTER or SLAVE".into())
    }
}

impl ConfigValue for BrokerRole {
    fn parse(raw: &str) -> Result<Self, String> {
        raw.parse()
    }
    fn show(&self) -> String {
        self.as_str().to_owned()
    }
}

macro_rules! numeric_config_value {
    ($($t:ty),*) => {$(
        impl ConfigValue for $t {
            fn parse(raw: &str) -> Result<Self, String> {
                raw.trim().parse().map_err(|e| format!("{e}"))
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
numeric_config_value!(i32, i64, u16, u64);

macro_rules! broker_config {
    ($($(#[$doc:meta])* $field:ident : $ty:ty = $key:literal => $default:expr),* $(,)?) => {
        /// The effective broker configuration; field docs name Java's key.
        #[derive(Debug, Clone, PartialEq)]
        pub struct BrokerConfig {
            $($(#[$doc])* pub $field: $ty,)*
        }

        impl Default for BrokerConfig {
            fn default() -> Self {
                BrokerConfig { $($field: $default,)* }
            }
        }

        impl BrokerConfig {
            /// Sets one key; `Ok(false)` when the key is unknown.
            pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
                match key {
                    $($key => {
                        self.$field = <$ty as ConfigValue>::parse(value).map_err(|why| ConfigError::BadValue {
                            key: key.to_owned(),
                            value: value.to_owned(),
                            why,
                        })?;
                        Ok(true)
                    })*
                    _ => Ok(false),
                }
            }

            /// Every key with its current value, in declaration order.
            pub fn entries(&self) -> Vec<(&'static str, String)> {
                vec![$(($key, <$ty as ConfigValue>::show(&self.$field)),)*]
            }
        }
    };
}

broker_config! {
    broker_cluster_name: String = "brokerClusterName" => "DefaultCluster".into(),
    broker_name: String = "brokerName" => default_broker_name(),
    broker_id: i64 = "brokerId" => 0,
    /// Empty = none configured (`-n` and `NAMESRV_ADDR` fill it in `main`).
    namesrv_addr: String = "namesrvAddr" => String::new(),
    listen_port: u16 = "listenPort" => 10911,
    /// Our choice of key (5.x `NettyServerConfig` has it too): the host the
    /// listeners bind. Java binds every interface; tests set 127.0.0.1.
    bind_address: String = "bindAddress" => "0.0.0.0".into(),
    /// `NettyServerConfig`: a client connection with no read and no write for
    /// this long is closed (0 or less: never).
    server_channel_max_idle_time_seconds: i32 = "serverChannelMaxIdleTimeSeconds" => 120,
    /// `NettyServerConfig`: the listen backlog of the main listener (a burst
    /// of connects beyond it costs clients a 1 s SYN retransmit).
    server_socket_backlog: i32 = "serverSocketBacklog" => 1024,
    broker_ip1: String = "brokerIP1" => local_address(),
    broker_ip2: String = "brokerIP2" => local_address(),
    broker_permission: i32 = "brokerPermission" => 6,
    default_topic_queue_nums: i32 = "defaultTopicQueueNums" => 8,
    auto_create_topic_enable: bool = "autoCreateTopicEnable" => true,
    cluster_topic_enable: bool = "clusterTopicEnable" => true,
    broker_topic_enable: bool = "brokerTopicEnable" => true,
    auto_create_subscription_group: bool = "autoCreateSubscriptionGroup" => true,
    trace_topic_enable: bool = "traceTopicEnable" => false,
    msg_trace_topic_name: String = "msgTraceTopicName" => "RMQ_SYS_TRACE_TOPIC".into(),
    register_broker_to_name_server: bool = "registerBrokerToNameServer" => true,
    register_name_server_period: u64 = "registerNameServerPeriod" => 30_000,
    register_broker_timeout_mills: u64 = "registerBrokerTimeoutMills" => 24_000,
    /// Java `compressedRegister`: REGISTER_BROKER carries the zlib body
    /// (`RegisterBrokerBody.encode(true)`) instead of JSON.
    compressed_register: bool = "compressedRegister" => false,
    /// Java: with this on, REGISTER_BROKER says `enableActingMaster=true` and
    /// carries `heartbeatTimeoutMillis = brokerNotActiveTimeoutMillis`
    /// (otherwise the header is absent and the name server assumes 120 s).
    enable_slave_acting_master: bool = "enableSlaveActingMaster" => false,
    broker_not_active_timeout_millis: i64 = "brokerNotActiveTimeoutMillis" => 10_000,
    long_polling_enable: bool = "longPollingEnable" => true,
    short_polling_time_mills: u64 = "shortPollingTimeMills" => 1000,
    notify_consumer_ids_changed_enable: bool = "notifyConsumerIdsChangedEnable" => true,
    flush_consumer_offset_interval: u64 = "flushConsumerOffsetInterval" => 5000,
    channel_expired_timeout: u64 = "channelExpiredTimeout" => 120_000,
    reject_transaction_message: bool = "rejectTransactionMessage" => false,
    /// Java `BrokerConfig` transaction check keys (ms / count).
    transaction_time_out: i64 = "transactionTimeOut" => 6_000,
    transaction_check_max: i32 = "transactionCheckMax" => 15,
    transaction_check_interval: i64 = "transactionCheckInterval" => 30_000,
    region_id: String = "regionId" => "DefaultRegion".into(),
    trace_on: bool = "traceOn" => true,
    /// Metrics (docs/OPERATIONS.md, "Observability"): DISABLE, PROM or LOG
    /// (names or Java's numbers 0-3); OTLP_GRPC is read and not supported.
    metrics_exporter_type: String = "metricsExporterType" => "DISABLE".into(),
    /// Empty = `brokerIP1`, as Java.
    metrics_prom_exporter_host: String = "metricsPromExporterHost" => String::new(),
    metrics_prom_exporter_port: u16 = "metricsPromExporterPort" => 5557,
    /// `k:v,k:v` labels added to every series.
    metrics_label: String = "metricsLabel" => String::new(),
    /// Adds `aggregation=delta` to every series (the values stay cumulative).
    metrics_in_delta: bool = "metricsInDelta" => false,
    metric_logging_exporter_interval_in_mills: u64 = "metricLoggingExporterIntervalInMills" => 10_000,
    metrics_grpc_exporter_target: String = "metricsGrpcExporterTarget" => String::new(),
    revive_queue_num: i32 = "reviveQueueNum" => 8,
    /// POP (processor/pop, services/revive.rs): revive scan period (ms),
    /// the share of pops that look at the retry topic first (percent),
    /// `%RETRY%group+topic` instead of `%RETRY%group_topic`, and the mode
    /// and share count QUERY_ASSIGNMENT answers for a group never set.
    revive_interval: u64 = "reviveInterval" => 1000,
    pop_from_retry_probability: i32 = "popFromRetryProbability" => 20,
    enable_retry_topic_v2: bool = "enableRetryTopicV2" => false,
    default_message_request_mode: String = "defaultMessageRequestMode" => "PULL".into(),
    default_pop_share_queue_num: i32 = "defaultPopShareQueueNum" => -1,
    /// ACL 1.0 (access/v1.rs): check every request against
    /// `<rocketmqHome>/<rocketmq.acl.plain.file>` and `<rocketmqHome>/conf/acl/`.
    acl_enable: bool = "aclEnable" => false,
    /// Java reads the `ROCKETMQ_HOME` environment variable (or the
    /// `rocketmq.home.dir` system property); so do we, or this key.
    rocketmq_home: String = "rocketmqHome" => std::env::var("ROCKETMQ_HOME").unwrap_or_default(),
    /// Java's `-Drocketmq.acl.plain.file` system property, relative to `rocketmqHome`.
    acl_plain_file: String = "rocketmq.acl.plain.file" => "conf/plain_acl.yml".into(),
    enable_property_filter: bool = "enablePropertyFilter" => false,
    // MessageStoreConfig keys.
    store_path_root_dir: String = "storePathRootDir" => default_store_root(),
    /// Empty = `<storePathRootDir>/commitlog`.
    store_path_commit_log: String = "storePathCommitLog" => String::new(),
    mapped_file_size_commit_log: u64 = "mappedFileSizeCommitLog" => 1024 * 1024 * 1024,
    mapped_file_size_consume_queue: u64 = "mappedFileSizeConsumeQueue" => 300_000 * 20,
    flush_disk_type: String = "flushDiskType" => "ASYNC_FLUSH".into(),
    broker_role: BrokerRole = "brokerRole" => BrokerRole::AsyncMaster,
    max_message_size: i32 = "maxMessageSize" => 4 * 1024 * 1024,
    delete_when: String = "deleteWhen" => "04".into(),
    file_reserved_time: i32 = "fileReservedTime" => 72,
    disk_max_used_space_ratio: i32 = "diskMaxUsedSpaceRatio" => 75,
    clean_file_forcibly_enable: bool = "cleanFileForciblyEnable" => true,
    /// Accepted; our readers hold their own mapping, so files are unlinked at once.
    destroy_maped_file_interval_forcibly: i64 = "destroyMapedFileIntervalForcibly" => 120_000,
    clean_resource_interval: i64 = "cleanResourceInterval" => 10_000,
    delete_file_batch_max: i32 = "deleteFileBatchMax" => 10,
    sync_flush_timeout: i64 = "syncFlushTimeout" => 5_000,
    flush_interval_commit_log: i32 = "flushIntervalCommitLog" => 500,
    message_delay_level: String = "messageDelayLevel" => "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h".into(),
    max_transfer_count_on_message_in_memory: i32 = "maxTransferCountOnMessageInMemory" => 32,
    /// Percent of memory whose worth of newest commit log counts as in
    /// memory; a pull further behind suggests the slave.
    access_message_in_memory_max_ratio: i32 = "accessMessageInMemoryMaxRatio" => 40,
    max_transfer_bytes_on_message_in_memory: i32 = "maxTransferBytesOnMessageInMemory" => 256 * 1024,
    /// Caps of a get whose message lies beyond the in-memory share
    /// (`accessMessageInMemoryMaxRatio`) behind the commit log's end.
    max_transfer_bytes_on_message_in_disk: i32 = "maxTransferBytesOnMessageInDisk" => 64 * 1024,
    max_transfer_count_on_message_in_disk: i32 = "maxTransferCountOnMessageInDisk" => 8,
    max_hash_slot_num: i32 = "maxHashSlotNum" => 5_000_000,
    max_index_num: i32 = "maxIndexNum" => 20_000_000,
    timer_wheel_enable: bool = "timerWheelEnable" => true,
    /// DLedger commit log (docs/protocol/dledger.md §4.1; `broker/src/replication/dledger/`).
    enable_d_leger_commit_log: bool = "enableDLegerCommitLog" => false,
    d_leger_group: String = "dLegerGroup" => String::new(),
    d_leger_peers: String = "dLegerPeers" => String::new(),
    d_leger_self_id: String = "dLegerSelfId" => String::new(),
    preferred_leader_id: String = "preferredLeaderId" => String::new(),
    /// DLedger election timers (DLedger's own key names; 0 = our default,
    /// `dledger::config::OUR_TIMERS`). Every member of a group must run the
    /// same timers: a group with Java brokers needs Java's values, which
    /// `dLegerJavaTimers=true` sets in one go (Java's broker passes none of
    /// these keys to DLedger, so a Java member always runs 2000/3/300/1000).
    heart_beat_time_interval_ms: i64 = "heartBeatTimeIntervalMs" => 0,
    max_heart_beat_leak: i64 = "maxHeartBeatLeak" => 0,
    min_vote_interval_ms: i64 = "minVoteIntervalMs" => 0,
    max_vote_interval_ms: i64 = "maxVoteIntervalMs" => 0,
    vote_wait_base_ms: i64 = "voteWaitBaseMs" => 0,
    d_leger_java_timers: bool = "dLegerJavaTimers" => false,
    /// Accepted and ignored: our DLedger always pushes in batches.
    enable_batch_push: bool = "enableBatchPush" => false,
    /// A slave serves pulls (else it refuses them with SYSTEM_BUSY, as Java).
    slave_read_enable: bool = "slaveReadEnable" => false,
    // Master/slave replication (classic HA; `MessageStoreConfig`).
    /// The HA port every broker listens on; 0 or less: `listenPort + 1`.
    ha_listen_port: i32 = "haListenPort" => 0,
    /// A slave's master HA address (`host:port`); shorter than 6 characters:
    /// learnt from the name server's REGISTER_BROKER answer, as Java.
    ha_master_address: String = "haMasterAddress" => String::new(),
    ha_send_heartbeat_interval: i64 = "haSendHeartbeatInterval" => 5_000,
    ha_housekeeping_interval: i64 = "haHousekeepingInterval" => 20_000,
    ha_transfer_batch_size: i32 = "haTransferBatchSize" => 32 * 1024,
    ha_max_gap_not_in_sync: i64 = "haMaxGapNotInSync" => 256 * 1024 * 1024,
    /// How long a SYNC_MASTER send waits for its replicas (FLUSH_SLAVE_TIMEOUT after).
    slave_timeout: i64 = "slaveTimeout" => 3_000,
    /// 5.x: replicas (the master counted) a SYNC_MASTER send waits for; 1
    /// (Java's default) means none. 4.x waited for one slave: set 2.
    in_sync_replicas: i32 = "inSyncReplicas" => 1,
    /// Not a Java key: `5.x` (default) waits for `inSyncReplicas`; `4.x`
    /// keeps RocketMQ 4.9's SYNC_MASTER rule: wait for one slave, and answer
    /// SLAVE_NOT_AVAILABLE (the message is stored on the master only) when
    /// no slave is connected within `haMaxGapNotInSync` of the master.
    sync_master_rule: String = "syncMasterRule" => "5.x".into(),
    /// Accepted (controller mode and slave-acting-master use them).
    min_in_sync_replicas: i32 = "minInSyncReplicas" => 1,
    total_replicas: i32 = "totalReplicas" => 1,
    enable_auto_in_sync_replicas: bool = "enableAutoInSyncReplicas" => false,
    // Controller mode (docs/protocol/controller.md; README's controller-mode keys;
    // `broker/src/replication/controller/`).
    /// The broker gets its id and role from the controllers (RIP-44).
    enable_controller_mode: bool = "enableControllerMode" => false,
    /// `;`-list of controller addresses (their DLedger peer ports).
    controller_addr: String = "controllerAddr" => String::new(),
    /// Accepted; DNS look-up of `controllerAddr` is not implemented.
    fetch_controller_addr_by_dns_lookup: bool = "fetchControllerAddrByDnsLookup" => false,
    /// GET_REPLICA_INFO (1004) poll period, ms.
    sync_broker_metadata_period: u64 = "syncBrokerMetadataPeriod" => 5_000,
    /// Master: SyncStateSet shrink check period, ms.
    check_sync_state_set_period: u64 = "checkSyncStateSetPeriod" => 5_000,
    /// Controller leader refresh (1005) period, ms.
    sync_controller_metadata_period: u64 = "syncControllerMetadataPeriod" => 10_000,
    /// `heartbeatTimeoutMills` sent with every BROKER_HEARTBEAT (904): how
    /// long the controller waits for the next heartbeat before it declares
    /// this broker dead. Ours is 2000 (Java 10000), four of our 500 ms
    /// heartbeats: the broker has no GC pauses to ride out, so with the
    /// controller's 500 ms scans a hung master is replaced about 2–2.5 s
    /// after its last heartbeat instead of Java's 10–15 s. Set the key to
    /// 10000 (and `brokerHeartbeatInterval` to 1000) for Java's timing.
    controller_heart_beat_timeout_mills: i64 = "controllerHeartBeatTimeoutMills" => 2_000,
    /// BROKER_HEARTBEAT (904) period, ms. Ours is 500 (Java 1000); see
    /// `controllerHeartBeatTimeoutMills`.
    broker_heartbeat_interval: u64 = "brokerHeartbeatInterval" => 500,
    send_heartbeat_timeout_millis: u64 = "sendHeartbeatTimeoutMillis" => 1_000,
    /// Smaller wins election ties.
    broker_election_priority: i32 = "brokerElectionPriority" => i32::MAX,
    /// Store keys of controller mode (`MessageStoreConfig`).
    all_ack_in_sync_state_set: bool = "allAckInSyncStateSet" => false,
    ha_max_time_slave_not_catchup: i64 = "haMaxTimeSlaveNotCatchup" => 15_000,
    /// Empty = `<storePathRootDir>/epochFileCheckpoint`.
    store_path_epoch_file: String = "storePathEpochFile" => String::new(),
    /// Empty = `<storePathRootDir>/brokerIdentity`.
    store_path_broker_identity: String = "storePathBrokerIdentity" => String::new(),
    sync_from_last_file: bool = "syncFromLastFile" => false,
    async_learner: bool = "asyncLearner" => false,
    read_un_committed: bool = "readUnCommitted" => false,
    // Auth 2.0 (`AuthConfig`, read from the broker file as Java's
    // BrokerStartup does; docs/OPERATIONS.md "Access control").
    authentication_enabled: bool = "authenticationEnabled" => false,
    authentication_provider: String = "authenticationProvider" => String::new(),
    /// Any value opens our user store (Java: the RocksDB provider's class).
    authentication_metadata_provider: String = "authenticationMetadataProvider" => String::new(),
    authentication_strategy: String = "authenticationStrategy" => String::new(),
    /// Comma list of request codes exempt from authentication.
    authentication_whitelist: String = "authenticationWhitelist" => String::new(),
    /// JSON `{"username":..,"password":..}`: a Super user created at start.
    init_authentication_user: String = "initAuthenticationUser" => String::new(),
    /// JSON `{"accessKey":..,"secretKey":..}`: a Super user created at start,
    /// and what the broker signs its calls to other brokers with.
    inner_client_authentication_credentials: String = "innerClientAuthenticationCredentials" => String::new(),
    authorization_enabled: bool = "authorizationEnabled" => false,
    authorization_provider: String = "authorizationProvider" => String::new(),
    authorization_metadata_provider: String = "authorizationMetadataProvider" => String::new(),
    authorization_strategy: String = "authorizationStrategy" => String::new(),
    authorization_whitelist: String = "authorizationWhitelist" => String::new(),
    /// Read, not supported (ACL 1.0 files are not imported).
    migrate_auth_from_v1_enabled: bool = "migrateAuthFromV1Enabled" => false,
    /// Empty = `<storePathRootDir>/config`; our files are in its `auth/`.
    auth_config_path: String = "authConfigPath" => String::new(),
    /// Java's cache sizes and times: read and unused (no cache here).
    user_cache_max_num: i64 = "userCacheMaxNum" => 1000,
    user_cache_expired_second: i64 = "userCacheExpiredSecond" => 600,
    user_cache_refresh_second: i64 = "userCacheRefreshSecond" => 60,
    acl_cache_max_num: i64 = "aclCacheMaxNum" => 1000,
    acl_cache_expired_second: i64 = "aclCacheExpiredSecond" => 600,
    acl_cache_refresh_second: i64 = "aclCacheRefreshSecond" => 60,
    stateful_authentication_cache_max_num: i64 = "statefulAuthenticationCacheMaxNum" => 10_000,
    stateful_authentication_cache_expired_second: i64 = "statefulAuthenticationCacheExpiredSecond" => 60,
    stateful_authorization_cache_max_num: i64 = "statefulAuthorizationCacheMaxNum" => 10_000,
    stateful_authorization_cache_expired_second: i64 = "statefulAuthorizationCacheExpiredSecond" => 60,
    /// Local proxy mode: serve the RocketMQ 5 gRPC MessagingService from the
    /// broker (Java: `mqbroker --enable-proxy`; the flag sets this key).
    enable_proxy: bool = "enableProxy" => false,
    /// The gRPC port of local proxy mode (Java `rmq-proxy.json`
    /// `grpcServerPort`); 0 picks a free port.
    grpc_server_port: u16 = "grpcServerPort" => 8081,
    /// Local proxy mode, Java `ProxyConfig`: the smallest invisible time a
    /// gRPC receive may ask for (ms).
    min_invisible_time_mills_for_recv: i64 = "minInvisibleTimeMillsForRecv" => 10_000,
    /// Local proxy mode, Java `ProxyConfig`: producers check a message's
    /// type against the topic's `message.type` before sending.
    enable_topic_message_type_check: bool = "enableTopicMessageTypeCheck" => true,
    /// Local proxy mode, Java `TlsSystemConfig` `tls.server.mode`:
    /// `disabled`, `permissive` (TLS and plaintext on the gRPC port) or
    /// `enforcing`.
    tls_server_mode: String = "tls.server.mode" => "permissive".into(),
    /// Local proxy mode, Java `ProxyConfig`: without `tlsKeyPath` and
    /// `tlsCertPath`, serve TLS with a self-signed certificate.
    tls_test_mode_enable: bool = "tlsTestModeEnable" => true,
    /// Local proxy mode, Java `ProxyConfig`: the gRPC port's private key (PEM).
    tls_key_path: String = "tlsKeyPath" => String::new(),
    /// Local proxy mode, Java `ProxyConfig`: the gRPC port's certificate chain (PEM).
    tls_cert_path: String = "tlsCertPath" => String::new(),
}

impl BrokerConfig {
    /// Applies `.properties` entries: unknown keys are logged, bad values fail.
    pub fn apply(&mut self, props: &IndexMap<String, String>) -> Result<(), ConfigError> {
        for (k, v) in props {
            if !self.set(k, v)? {
                warn!(key = %k, value = %v, "unknown config key ignored");
            }
        }
        Ok(())
    }

    /// Reads a `.properties` file over the current values.
    pub fn load_file(&mut self, path: &std::path::Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            error: e.to_string(),
        })?;
        self.apply(&remoting::properties::parse(&text))
    }

    /// The configured name servers (`;`-separated), empty entries dropped.
    pub fn namesrv_addrs(&self) -> Vec<String> {
        self.namesrv_addr
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// `ip:port` the broker registers and writes into stored records.
    pub fn broker_addr(&self) -> String {
        format!("{}:{}", self.broker_ip1, self.listen_port)
    }

    /// `haListenPort`, or `listenPort + 1` when unset (Java `BrokerStartup`).
    pub fn ha_port(&self) -> u16 {
        u16::try_from(self.ha_listen_port)
            .ok()
            .filter(|p| *p > 0)
            .unwrap_or(self.listen_port.wrapping_add(1))
    }

    /// `brokerIP2:haPort`, registered as `haServerAddr`.
    pub fn ha_server_addr(&self) -> String {
        format!("{}:{}", self.broker_ip2, self.ha_port())
    }

    /// `haMasterAddress` when configured (Java: 6 characters or more).
    pub fn static_ha_master(&self) -> Option<String> {
        let a = self.ha_master_address.trim();
        (a.len() >= 6).then(|| a.to_owned())
    }

    pub fn store_root(&self) -> PathBuf {
        PathBuf::from(&self.store_path_root_dir)
    }

    pub fn commit_log_dir(&self) -> PathBuf {
        if self.store_path_commit_log.is_empty() {
            self.store_root().join("commitlog")
        } else {
            PathBuf::from(&self.store_path_commit_log)
        }
    }

    /// `storePathBrokerIdentity`, or `<storePathRootDir>/brokerIdentity`.
    pub fn broker_identity_path(&self) -> PathBuf {
        if self.store_path_broker_identity.trim().is_empty() {
            self.store_root().join("brokerIdentity")
        } else {
            PathBuf::from(self.store_path_broker_identity.trim())
        }
    }

    /// `storePathEpochFile`, or `<storePathRootDir>/epochFileCheckpoint`.
    pub fn epoch_file_path(&self) -> PathBuf {
        if self.store_path_epoch_file.trim().is_empty() {
            self.store_root().join("epochFileCheckpoint")
        } else {
            PathBuf::from(self.store_path_epoch_file.trim())
        }
    }

    /// `controllerAddr` split on `;`, empty entries dropped.
    pub fn controller_addrs(&self) -> Vec<String> {
        self.controller_addr
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub fn config_dir(&self) -> PathBuf {
        self.store_root().join("config")
    }

    pub fn is_sync_flush(&self) -> bool {
        self.flush_disk_type.eq_ignore_ascii_case("SYNC_FLUSH")
    }

    /// The `key=value` text GET_BROKER_CONFIG returns and `-p` prints.
    pub fn to_properties_text(&self) -> String {
        let entries = self.entries();
        remoting::properties::to_text(entries.iter().map(|(k, v)| (*k, v.as_str())))
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, why: &str| {
            Err(ConfigError::BadValue {
                key: key.to_owned(),
                value,
                why: why.to_owned(),
            })
        };
        if self.broker_name.is_empty() {
            return bad("brokerName", String::new(), "must not be empty");
        }
        if self.default_topic_queue_nums <= 0 {
            return bad(
                "defaultTopicQueueNums",
                self.default_topic_queue_nums.to_string(),
                "must be positive",
            );
        }
        if self.max_message_size <= 0 {
            return bad(
                "maxMessageSize",
                self.max_message_size.to_string(),
                "must be positive",
            );
        }
        if !matches!(self.flush_disk_type.as_str(), "ASYNC_FLUSH" | "SYNC_FLUSH") {
            return bad(
                "flushDiskType",
                self.flush_disk_type.clone(),
                "expected ASYNC_FLUSH or SYNC_FLUSH",
            );
        }
        if !matches!(self.sync_master_rule.as_str(), "4.x" | "5.x") {
            return bad(
                "syncMasterRule",
                self.sync_master_rule.clone(),
                "expected 4.x or 5.x",
            );
        }
        if self.enable_controller_mode && self.enable_d_leger_commit_log {
            // Java `BrokerStartup` exits with -4.
            return bad(
                "enableControllerMode",
                "true".into(),
                "the controller mode and the DLedger commit log (enableDLegerCommitLog) cannot both be enabled",
            );
        }
        if self.enable_controller_mode && self.controller_addrs().is_empty() {
            return bad(
                "controllerAddr",
                self.controller_addr.clone(),
                "controller mode needs at least one controller address",
            );
        }
        if self.listen_port < 2 {
            return bad(
                "listenPort",
                self.listen_port.to_string(),
                "the VIP port is listenPort - 2",
            );
        }
        Ok(())
    }
}

fn default_broker_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "DEFAULT_BROKER".to_owned())
}

fn default_store_root() -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".to_owned());
    PathBuf::from(home).join("store").display().to_string()
}

/// Java's `NetworkUtil.getLocalAddress`: the first non-loopback address. A
/// connected UDP socket reveals the outbound interface without sending anything.
fn local_address() -> String {
    let probe = || -> Option<String> {
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        sock.connect("192.0.2.1:9").ok()?;
        let ip = sock.local_addr().ok()?.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then(|| ip.to_string())
    };
    probe().unwrap_or_else(|| "127.0.0.1".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn java_keys_parse_and_bad_values_name_the_key() {
        let mut c = BrokerConfig::default();
        let props = remoting::properties::parse(
            "brokerClusterName=C1\nbrokerName = b1\nlistenPort:20911\nautoCreateTopicEnable=FALSE\nnoSuchKey=1\n",
        );
        c.apply(&props).unwrap();
        assert_eq!(c.broker_cluster_name, "C1");
        assert_eq!(c.broker_name, "b1");
        assert_eq!(c.listen_port, 20911);
        assert!(!c.auto_create_topic_enable);
        let err = c.set("listenPort", "x").unwrap_err();
        assert!(err.to_string().contains("listenPort"), "{err}");
        assert!(c.set("flushDiskType", "SYNC_FLUSH").unwrap());
        assert!(c.is_sync_flush());
    }

    #[test]
    fn broker_role_reads_any_case_and_shows_java_names() {
        let mut c = BrokerConfig::default();
        assert_eq!(c.broker_role, BrokerRole::AsyncMaster);
        for (raw, role, shown) in [
            ("SLAVE", BrokerRole::Slave, "SLAVE"),
            (" slave ", BrokerRole::Slave, "SLAVE"),
            ("Sync_Master", BrokerRole::SyncMaster, "SYNC_MASTER"),
            ("async_master", BrokerRole::AsyncMaster, "ASYNC_MASTER"),
        ] {
            assert!(c.set("brokerRole", raw).unwrap());
            assert_eq!(c.broker_role, role);
            let entries = c.entries();
            let (_, v) = entries.iter().find(|(k, _)| *k == "brokerRole").unwrap();
            assert_eq!(v, shown);
            assert!(c
                .to_properties_text()
                .contains(&format!("brokerRole={shown}")));
        }
        let err = c.set("brokerRole", "MASTER").unwrap_err();
        assert!(err.to_string().contains("brokerRole"), "{err}");
        assert_eq!(c.broker_role, BrokerRole::AsyncMaster);
    }

    #[test]
    fn properties_text_round_trips() {
        let c = BrokerConfig {
            namesrv_addr: "127.0.0.1:9876;127.0.0.1:9877".into(),
            ..Default::default()
        };
        let text = c.to_properties_text();
        let mut d = BrokerConfig {
            broker_name: "other".into(),
            ..Default::default()
        };
        d.apply(&remoting::properties::parse(&text)).unwrap();
        assert_eq!(c, d);
        assert_eq!(d.namesrv_addrs(), vec!["127.0.0.1:9876", "127.0.0.1:9877"]);
    }
}
