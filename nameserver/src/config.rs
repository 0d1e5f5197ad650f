//! The name server's configuration: Java's `NamesrvConfig` and
//! `NettyServerConfig` keys, read from a `.properties` file.
//!
//! Java fills both objects from the same file by setter name
//! (`MixAll.properties2Object`) and silently drops unknown keys and bad values.
//! Here an unknown key is logged and kept (Java keeps every file property in its
//! `Configuration` and returns it from GET_NAMESRV_CONFIG), and a bad value is
//! an error naming the key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use remoting::properties::InvalidProperty;
use tracing::warn;

/// A configuration value that failed to parse, or a file that failed to load.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value {value:?} for config key {key}: expected {expected}")]
    InvalidValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write config file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<InvalidProperty> for ConfigError {
    fn from(e: InvalidProperty) -> Self {
        ConfigError::InvalidValue {
            key: e.key,
            value: e.value,
            expected: e.expected,
        }
    }
}

remoting::properties_struct! {
    /// Every key of Java's `NamesrvConfig` followed by `NettyServerConfig`.
    /// Most thread-pool and socket keys have no effect here; they are kept so
    /// that Java config files load unchanged and `-p` prints the same keys.
    pub struct NamesrvConfig {
    // NamesrvConfig
    rocketmq_home: String = "rocketmqHome", String::new();
    kv_config_path: String = "kvConfigPath", String::new();
    config_store_path: String = "configStorePath", String::new();
    product_env_name: String = "productEnvName", "center".to_owned();
    cluster_test: bool = "clusterTest", false;
    /// Routes carry `orderTopicConf` from KV namespace ORDER_TOPIC_CONFIG.
    order_message_enable: bool = "orderMessageEnable", false;
    return_order_topic_config_to_broker: bool = "returnOrderTopicConfigToBroker", true;
    client_request_thread_pool_nums: i32 = "clientRequestThreadPoolNums", 8;
    default_thread_pool_nums: i32 = "defaultThreadPoolNums", 16;
    client_request_thread_pool_queue_capacity: i32 = "clientRequestThreadPoolQueueCapacity", 50000;
    default_thread_pool_queue_capacity: i32 = "defaultThreadPoolQueueCapacity", 10000;
    /// Milliseconds between liveness scans.
    scan_not_active_broker_interval: i64 = "scanNotActiveBrokerInterval", 5000;
    un_register_broker_queue_capacity: i32 = "unRegisterBrokerQueueCapacity", 3000;
    support_acting_master: bool = "supportActingMaster", false;
    enable_all_topic_list: bool = "enableAllTopicList", true;
    enable_topic_list: bool = "enableTopicList", true;
    notify_min_broker_id_changed: bool = "notifyMinBrokerIdChanged", false;
    enable_controller_in_namesrv: bool = "enableControllerInNamesrv", false;
    need_wait_for_service: bool = "needWaitForService", false;
    wait_seconds_for_service: i32 = "waitSecondsForService", 45;
    delete_topic_with_broker_registration: bool = "deleteTopicWithBrokerRegistration", false;
    config_black_list: String = "configBlackList", "configBlackList;configStorePath;kvConfigPath".to_owned();
    // NettyServerConfig
    /// Address to listen on; Java's `NettyServerConfig.bindAddress`.
    bind_address: String = "bindAddress", "0.0.0.0".to_owned();
    /// `NamesrvStartup` sets 9876 before reading the file.
    listen_port: i32 = "listenPort", 9876;
    server_worker_threads: i32 = "serverWorkerThreads", 8;
    server_callback_executor_threads: i32 = "serverCallbackExecutorThreads", 0;
    server_selector_threads: i32 = "serverSelectorThreads", 3;
    server_oneway_semaphore_value: i32 = "serverOnewaySemaphoreValue", 256;
    server_async_semaphore_value: i32 = "serverAsyncSemaphoreValue", 64;
    server_channel_max_idle_time_seconds: i32 = "serverChannelMaxIdleTimeSeconds", 120;
    server_socket_snd_buf_size: i32 = "serverSocketSndBufSize", 0;
    server_socket_rcv_buf_size: i32 = "serverSocketRcvBufSize", 0;
    write_buffer_high_water_mark: i32 = "writeBufferHighWaterMark", 0;
    write_buffer_low_water_mark: i32 = "writeBufferLowWaterMark", 0;
    server_socket_backlog: i32 = "serverSocketBacklog", 1024;
    server_netty_worker_group_enable: bool = "serverNettyWorkerGroupEnable", true;
    server_pooled_byte_buf_allocator_enable: bool = "serverPooledByteBufAllocatorEnable", true;
    enable_shutdown_gracefully: bool = "enableShutdownGracefully", false;
    shutdown_wait_time_seconds: i32 = "shutdownWaitTimeSeconds", 30;
    use_epoll_native_selector: bool = "useEpollNativeSelector", false;
    }
}

/// `NettyClientConfig` keys: Java reads them from the same file for the name
/// server's own client. Accepted without a warning, otherwise unused.
const CLIENT_KEYS: &[&str] = &[
    "clientWorkerThreads",
    "clientCallbackExecutorThreads",
    "clientOnewaySemaphoreValue",
    "clientAsyncSemaphoreValue",
    "connectTimeoutMillis",
    "channelNotActiveInterval",
    "isScanAvailableNameSrv",
    "clientChannelMaxIdleTimeSeconds",
    "clientSocketSndBufSize",
    "clientSocketRcvBufSize",
    "clientPooledByteBufAllocatorEnable",
    "clientCloseSocketIfTimeout",
    "useTLS",
    "socksProxyConfig",
    "disableCallbackExecutor",
    "disableNettyWorkerGroup",
    "maxReconnectIntervalTimeSeconds",
    "enableReconnectForGoAway",
];

/// Keys UPDATE_NAMESRV_CONFIG may never change (`DefaultRequestProcessor.initConfigBlackList`).
const FIXED_BLACK_LIST: &[&str] = &[
    "configBlackList",
    "configStorePath",
    "kvConfigPath",
    "rocketmqHome",
];

impl Default for NamesrvConfig {
    /// Defaults with paths under `$HOME` and `rocketmqHome` from `ROCKETMQ_HOME`.
    fn default() -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut config = Self::with_home(&home);
        config.rocketmq_home = std::env::var("ROCKETMQ_HOME").unwrap_or_default();
        config
    }
}

impl NamesrvConfig {
    /// Defaults with `kvConfigPath` and `configStorePath` under `home`, as Java
    /// derives them from `user.home`.
    pub fn with_home(home: &Path) -> Self {
        let mut config = Self::defaults();
        let dir = home.join("namesrv");
        config.kv_config_path = dir.join("kvConfig.json").to_string_lossy().into_owned();
        config.config_store_path = dir
            .join("namesrv.properties")
            .to_string_lossy()
            .into_owned();
        config
    }

    /// Applies properties over the current values. Unknown keys are logged
    /// and kept in [`NamesrvConfig::extra`]; the first bad value is an error.
    pub fn apply<'a>(
        &mut self,
        props: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), ConfigError> {
        for (key, value) in props {
            if !self.set(key, value)? {
                // With enableControllerInNamesrv the same file feeds the controller.
                if !CLIENT_KEYS.contains(&key) && !controller::ControllerConfig::KEYS.contains(&key)
                {
                    warn!(key, value, "unknown name server config key, ignored");
                }
                self.extra.insert(key.to_owned(), value.to_owned());
            }
        }
        Ok(())
    }

    /// Defaults, then the properties text of `path`; `configStorePath` becomes
    /// `path` (Java `NamesrvStartup`: config updates are written back there).
    pub fn load_file(path: &Path) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        config.apply_file(path)?;
        Ok(config)
    }

    /// Applies the properties text of `path` and makes it the store path.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let props = remoting::properties::parse(&String::from_utf8_lossy(&bytes));
        self.apply(props.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        self.config_store_path = path.to_string_lossy().into_owned();
        Ok(())
    }

    /// The effective config as Java prints it with `-p`: `key=value` lines in
    /// field order.
    pub fn print_text(&self) -> String {
        let mut out = String::new();
        for (k, v) in self.entries() {
            out.push_str(k);
            out.push('=');
            out.push_str(&v);
            out.push('\n');
        }
        out
    }

    /// Every key (ours and the file's extra ones) sorted, `key=value` per line,
    /// unescaped: Java's `Configuration.getAllConfigsFormatString`, which is
    /// both the GET_NAMESRV_CONFIG body and what updates persist.
    pub fn all_configs_text(&self) -> String {
        let mut all: BTreeMap<&str, String> = self
            .extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        for (k, v) in self.entries() {
            // Java leaves out null fields; an unset rocketmqHome is null there.
            if k == "rocketmqHome" && v.is_empty() {
                continue;
            }
            all.insert(k, v);
        }
        let mut out = String::new();
        for (k, v) in all {
            out.push_str(k);
            out.push('=');
            out.push_str(&v);
            out.push('\n');
        }
        out
    }

    /// Keys UPDATE_NAMESRV_CONFIG refuses.
    pub fn black_list(&self) -> BTreeSet<String> {
        remoting::properties::black_list(FIXED_BLACK_LIST, &self.config_black_list)
    }

    /// Writes [`NamesrvConfig::all_configs_text`] to `configStorePath`, keeping
    /// the previous file as `.bak` (Java `MixAll.string2File`).
    pub fn persist(&self) -> Result<(), ConfigError> {
        let path = PathBuf::from(&self.config_store_path);
        crate::kv::write_with_backup(&path, self.all_configs_text().as_bytes())
            .map_err(|source| ConfigError::Write { path, source })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_java() {
        let c = NamesrvConfig::with_home(Path::new("/home/u"));
        assert_eq!(c.listen_port, 9876);
        assert_eq!(c.bind_address, "0.0.0.0");
        assert_eq!(c.kv_config_path, "/home/u/namesrv/kvConfig.json");
        assert_eq!(c.config_store_path, "/home/u/namesrv/namesrv.properties");
        assert_eq!(c.scan_not_active_broker_interval, 5000);
        assert!(!c.order_message_enable);
        assert!(c.enable_all_topic_list);
        assert_eq!(NamesrvConfig::KEYS.len(), c.entries().len());
    }

    #[test]
    fn properties_apply_and_bad_values_name_the_key() {
        let mut c = NamesrvConfig::with_home(Path::new("/h"));
        c.apply([
            ("listenPort", "19876"),
            ("orderMessageEnable", "TRUE"),
            ("someFutureKey", "x"),
            ("useTLS", "false"),
        ])
        .unwrap();
        assert_eq!(c.listen_port, 19876);
        assert!(c.order_message_enable);
        assert_eq!(c.extra.get("someFutureKey").map(String::as_str), Some("x"));
        let err = c
            .apply([("scanNotActiveBrokerInterval", "5s")])
            .unwrap_err();
        assert!(
            err.to_string().contains("scanNotActiveBrokerInterval"),
            "{err}"
        );
        let err = c.apply([("enableTopicList", "yes")]).unwrap_err();
        assert!(err.to_string().contains("enableTopicList"), "{err}");
    }

    #[test]
    fn all_configs_text_is_sorted_key_value_lines() {
        let mut c = NamesrvConfig::with_home(Path::new("/h"));
        c.apply([("zzz", "1")]).unwrap();
        let text = c.all_configs_text();
        let keys: Vec<&str> = text
            .lines()
            .map(|l| l.split('=').next().unwrap_or(""))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert!(text.contains("\nlistenPort=9876\n"));
        assert!(text.ends_with("zzz=1\n"));
    }

    #[test]
    fn update_is_all_or_nothing_and_ignores_unknown_keys() {
        let mut c = NamesrvConfig::with_home(Path::new("/h"));
        c.update([("orderMessageEnable", "true"), ("nope", "1")])
            .unwrap();
        assert!(c.order_message_enable);
        assert!(!c.extra.contains_key("nope"));
        let before = c.clone();
        assert!(c
            .update([("enableTopicList", "false"), ("waitSecondsForService", "x")])
            .is_err());
        assert_eq!(c, before);
        assert!(c.black_list().contains("kvConfigPath"));
        assert!(c.black_list().contains("rocketmqHome"));
    }
}
