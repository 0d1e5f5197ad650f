//! The controller's configuration: Java's `ControllerConfig` keys (spec
//! controller.md §7.2) read from a `.properties` file, plus `bindAddress`
//! (as our name server has) and `mappedFileSizeForEntryIndex`.
//!
//! Unknown keys are logged and kept (GET_CONTROLLER_CONFIG returns them);
//! a bad value is an error naming the key.
//!
//! # DLedger election timers
//!
//! The broker's DLedger keys, with the same meaning: `dLegerJavaTimers`
//! picks the base ([`JAVA_TIMERS`] when true, [`OUR_TIMERS`] when false),
//! then each of `heartBeatTimeIntervalMs`, `maxHeartBeatLeak`,
//! `minVoteIntervalMs`, `maxVoteIntervalMs`, `voteWaitBaseMs` that is
//! positive overrides its timer (0 keeps the base). The default differs from
//! the broker's: `dLegerJavaTimers` is true here, because a controller
//! group may mix Java controllers, and a Java controller always runs Java's
//! timers (it passes none of these keys to DLedger). Every member of a group
//! must run the same timers, so an all-Rust group that wants fast failover
//! sets `dLegerJavaTimers=false` (or the five keys) on every node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use dledger::config::{Timers, JAVA_TIMERS, OUR_TIMERS};
use remoting::properties::InvalidProperty;
use tracing::warn;

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
    #[error("config key {0} is required")]
    Missing(&'static str),
    #[error("controllerType {0:?} is not supported (only DLedger)")]
    UnsupportedType(String),
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
    /// Every honoured key; see the module documentation.
    pub struct ControllerConfig {
    rocketmq_home: String = "rocketmqHome", std::env::var("ROCKETMQ_HOME").unwrap_or_default();
    config_store_path: String = "configStorePath", home().join("controller").join("controller.properties").to_string_lossy().into_owned();
    /// Only `DLedger` is supported.
    controller_type: String = "controllerType", "DLedger".to_owned();
    /// Heartbeat-expiry scan period, ms. Ours is 500 (Java 5000): with
    /// our brokers' 2 s `controllerHeartBeatTimeoutMills` a hung master is
    /// declared dead within 2.5 s of its last heartbeat. Set the key to
    /// 5000 for Java's timing.
    scan_not_active_broker_interval: i64 = "scanNotActiveBrokerInterval", 500;
    controller_thread_pool_nums: i32 = "controllerThreadPoolNums", 16;
    controller_request_thread_pool_queue_capacity: i32 = "controllerRequestThreadPoolQueueCapacity", 50000;
    /// DLedger `mappedFileSizeForEntryData`.
    mapped_file_size: i64 = "mappedFileSize", 1024 * 1024 * 1024;
    /// DLedger `storeBaseDir`; empty → `~/DLedgerController`.
    controller_store_path: String = "controllerStorePath", String::new();
    elect_master_max_retry_count: i32 = "electMasterMaxRetryCount", 3;
    enable_elect_unclean_master: bool = "enableElectUncleanMaster", false;
    process_read_event: bool = "processReadEvent", false;
    notify_broker_role_changed: bool = "notifyBrokerRoleChanged", true;
    /// Period of the re-check of broker sets whose master is dead, ms.
    /// Ours is 1000 (Java 5000), for the same fast failover; set the key
    /// to 5000 for Java's timing.
    scan_inactive_master_interval: i64 = "scanInactiveMasterInterval", 1000;
    config_black_list: String = "configBlackList", "configBlackList;configStorePath".to_owned();
    controller_d_leger_group: String = "controllerDLegerGroup", String::new();
    controller_d_leger_peers: String = "controllerDLegerPeers", String::new();
    controller_d_leger_self_id: String = "controllerDLegerSelfId", String::new();
    /// Ours: the address the DLedger/controller port binds to.
    bind_address: String = "bindAddress", "0.0.0.0".to_owned();
    /// Ours: DLedger `mappedFileSizeForEntryIndex` (Java's default).
    mapped_file_size_for_entry_index: i64 = "mappedFileSizeForEntryIndex", 32 * 5 * 1024 * 1024;
    /// Ours: DLedger election timers (see the module documentation); 0
    /// keeps the base picked by `dLegerJavaTimers`.
    heart_beat_time_interval_ms: i64 = "heartBeatTimeIntervalMs", 0;
    max_heart_beat_leak: i64 = "maxHeartBeatLeak", 0;
    min_vote_interval_ms: i64 = "minVoteIntervalMs", 0;
    max_vote_interval_ms: i64 = "maxVoteIntervalMs", 0;
    vote_wait_base_ms: i64 = "voteWaitBaseMs", 0;
    /// Ours: Java's timers as the base (default true, unlike the broker).
    d_leger_java_timers: bool = "dLegerJavaTimers", true;
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Keys a name server config file may carry next to ours without a warning.
const NAMESRV_KEYS: &[&str] = &["enableControllerInNamesrv", "listenPort", "kvConfigPath"];

/// Keys UPDATE_CONTROLLER_CONFIG always refuses.
const FIXED_BLACK_LIST: &[&str] = &["configBlackList", "configStorePath", "rocketmqHome"];

impl Default for ControllerConfig {
    fn default() -> Self {
        Self::defaults()
    }
}

impl ControllerConfig {
    /// Applies properties; unknown keys are kept in [`ControllerConfig::extra`].
    pub fn apply<'a>(
        &mut self,
        props: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), ConfigError> {
        for (key, value) in props {
            if !self.set(key, value)? {
                if !NAMESRV_KEYS.contains(&key) {
                    warn!(key, value, "unknown controller config key, kept");
                }
                self.extra.insert(key.to_owned(), value.to_owned());
            }
        }
        Ok(())
    }

    /// Defaults, then the properties text of `path`.
    pub fn load_file(path: &Path) -> Result<Self, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let props = remoting::properties::parse(&String::from_utf8_lossy(&bytes));
        let mut config = Self::default();
        config.apply(props.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        Ok(config)
    }

    /// The start-up checks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.controller_type != "DLedger" {
            return Err(ConfigError::UnsupportedType(self.controller_type.clone()));
        }
        if self.controller_d_leger_peers.trim().is_empty() {
            return Err(ConfigError::Missing("controllerDLegerPeers"));
        }
        if self.controller_d_leger_self_id.trim().is_empty() {
            return Err(ConfigError::Missing("controllerDLegerSelfId"));
        }
        self.dledger_timers()?;
        Ok(())
    }

    /// The DLedger election timers the keys ask for.
    pub fn dledger_timers(&self) -> Result<Timers, ConfigError> {
        let mut t = if self.d_leger_java_timers {
            JAVA_TIMERS
        } else {
            OUR_TIMERS
        };
        let keys: [(&'static str, i64, &mut u64); 5] = [
            (
                "heartBeatTimeIntervalMs",
                self.heart_beat_time_interval_ms,
                &mut t.heart_beat_time_interval_ms,
            ),
            (
                "maxHeartBeatLeak",
                self.max_heart_beat_leak,
                &mut t.max_heart_beat_leak,
            ),
            (
                "minVoteIntervalMs",
                self.min_vote_interval_ms,
                &mut t.min_vote_interval_ms,
            ),
            (
                "maxVoteIntervalMs",
                self.max_vote_interval_ms,
                &mut t.max_vote_interval_ms,
            ),
            (
                "voteWaitBaseMs",
                self.vote_wait_base_ms,
                &mut t.vote_wait_base_ms,
            ),
        ];
        for (key, value, slot) in keys {
            match u64::try_from(value) {
                Ok(0) => {}
                Ok(v) => *slot = v,
                Err(_) => {
                    return Err(ConfigError::InvalidValue {
                        key: key.to_owned(),
                        value: value.to_string(),
                        expected: "a positive number of milliseconds (0: the default)",
                    })
                }
            }
        }
        if t.min_vote_interval_ms > t.max_vote_interval_ms {
            return Err(ConfigError::InvalidValue {
                key: "minVoteIntervalMs".to_owned(),
                value: t.min_vote_interval_ms.to_string(),
                expected: "at most maxVoteIntervalMs",
            });
        }
        Ok(t)
    }

    /// `controllerStorePath`, or `~/DLedgerController` when empty.
    pub fn store_path(&self) -> PathBuf {
        if self.controller_store_path.trim().is_empty() {
            home().join(format!("{}Controller", self.controller_type))
        } else {
            PathBuf::from(self.controller_store_path.trim())
        }
    }

    /// `key=value` lines, sorted (GET_CONTROLLER_CONFIG and what updates persist).
    pub fn all_configs_text(&self) -> String {
        let mut all: BTreeMap<&str, String> = self
            .extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        for (k, v) in self.entries() {
            if k == "rocketmqHome" && v.is_empty() {
                continue;
            }
            all.insert(k, v);
        }
        all.into_iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }

    pub fn black_list(&self) -> BTreeSet<String> {
        remoting::properties::black_list(FIXED_BLACK_LIST, &self.config_black_list)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_defaults() {
        let mut c = ControllerConfig::default();
        // Faster than Java's 5000 (fast failure detection); the keys still
        // set Java's values.
        assert_eq!(c.scan_not_active_broker_interval, 500);
        assert_eq!(c.scan_inactive_master_interval, 1000);
        c.apply([
            ("scanNotActiveBrokerInterval", "5000"),
            ("scanInactiveMasterInterval", "5000"),
        ])
        .unwrap();
        assert_eq!(c.scan_not_active_broker_interval, 5000);
        assert_eq!(c.scan_inactive_master_interval, 5000);
        assert!(c.notify_broker_role_changed);
        assert!(c.validate().is_err());
        c.apply([
            ("controllerDLegerPeers", "n0-127.0.0.1:9878"),
            ("controllerDLegerSelfId", "n0"),
            ("enableElectUncleanMaster", "true"),
            ("metricsExporterType", "DISABLE"),
        ])
        .unwrap();
        c.validate().unwrap();
        assert!(c.enable_elect_unclean_master);
        assert_eq!(c.extra["metricsExporterType"], "DISABLE");
        assert!(c.store_path().ends_with("DLedgerController"));
        assert!(c
            .all_configs_text()
            .contains("enableElectUncleanMaster=true\n"));
        assert!(matches!(
            c.apply([("mappedFileSize", "big")]),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert!(c.black_list().contains("rocketmqHome"));
        c.update([("notifyBrokerRoleChanged", "false"), ("nope", "1")])
            .unwrap();
        assert!(!c.notify_broker_role_changed);
        assert!(!c.extra.contains_key("nope"));
    }

    fn timers(text: &str) -> Result<Timers, ConfigError> {
        let mut c = ControllerConfig::default();
        let props = remoting::properties::parse(text);
        c.apply(props.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        c.dledger_timers()
    }

    #[test]
    fn dledger_timer_keys() {
        // Java's timers unless asked otherwise (a group may mix Java nodes).
        assert_eq!(timers("").unwrap(), JAVA_TIMERS);
        assert_eq!(timers("dLegerJavaTimers=false\n").unwrap(), OUR_TIMERS);
        let t =
            timers("heartBeatTimeIntervalMs=500\nmaxHeartBeatLeak=4\nvoteWaitBaseMs=0\n").unwrap();
        assert_eq!(t.heart_beat_time_interval_ms, 500);
        assert_eq!(t.max_heart_beat_leak, 4);
        assert_eq!(t.min_vote_interval_ms, JAVA_TIMERS.min_vote_interval_ms);
        assert_eq!(t.vote_wait_base_ms, JAVA_TIMERS.vote_wait_base_ms);
        let t =
            timers("dLegerJavaTimers=false\nminVoteIntervalMs=50\nmaxVoteIntervalMs=60\n").unwrap();
        assert_eq!((t.min_vote_interval_ms, t.max_vote_interval_ms), (50, 60));
        assert_eq!(
            t.heart_beat_time_interval_ms,
            OUR_TIMERS.heart_beat_time_interval_ms
        );
        let err = |text: &str| match timers(text) {
            Err(ConfigError::InvalidValue { key, .. }) => key,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(err("maxHeartBeatLeak=-1\n"), "maxHeartBeatLeak");
        assert_eq!(err("voteWaitBaseMs=soon\n"), "voteWaitBaseMs");
        // Java's max vote interval is 1000: a larger minimum alone is refused.
        assert_eq!(err("minVoteIntervalMs=1500\n"), "minVoteIntervalMs");
        let mut c = ControllerConfig::default();
        c.apply([
            ("controllerDLegerPeers", "n0-127.0.0.1:9878"),
            ("controllerDLegerSelfId", "n0"),
            ("maxVoteIntervalMs", "-5"),
        ])
        .unwrap();
        assert!(c.validate().is_err());
        assert!(c.all_configs_text().contains("dLegerJavaTimers=true\n"));
    }
}
