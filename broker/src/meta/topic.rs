//! Topic configs: in memory, persisted to `<root>/config/topics.json` in
//! Java's `TopicConfigSerializeWrapper` format, with the system topics Java's
//! `TopicConfigManager.init` creates.
//!
//! A change is not a rewrite of `topics.json`: it is one record appended to
//! `topics.json.log` (the metadata journal) before the caller answers, and
//! fsynced before the answer or soon after it as `flushDiskType` says; the
//! journal is folded into `topics.json` in the background when
//! it outgrows the file, at start and on a clean shutdown.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use remoting::body::{perm, DataVersion, TopicConfig, TopicConfigSerializeWrapper};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::config::BrokerConfig;
use crate::meta::journal::{self, FlushDisk, Journal};

pub const AUTO_CREATE_TOPIC: &str = "TBW102";
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
pub const BENCHMARK_TOPIC: &str = "BenchmarkTest";
pub const TRANS_HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
pub const TRANS_OP_HALF_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
pub const TRANS_CHECK_MAX_TIME_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
pub const SELF_TEST_TOPIC: &str = "SELF_TEST_TOPIC";
pub const OFFSET_MOVED_EVENT: &str = "OFFSET_MOVED_EVENT";
pub const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";
pub const RETRY_PREFIX: &str = "%RETRY%";
pub const DLQ_PREFIX: &str = "%DLQ%";

/// Java `TopicValidator.isNotAllowedSendTopic`.
pub fn is_not_allowed_send_topic(topic: &str) -> bool {
    matches!(
        topic,
        SCHEDULE_TOPIC
            | TRANS_HALF_TOPIC
            | TRANS_OP_HALF_TOPIC
            | TRANS_CHECK_MAX_TIME_TOPIC
            | SELF_TEST_TOPIC
            | OFFSET_MOVED_EVENT
    )
}

/// Java `TopicValidator.validateTopic`: `^[%|a-zA-Z0-9_-]+$`, at most 127
/// characters (retry and DLQ names may reach 255).
pub fn validate_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("The specified topic is blank.".into());
    }
    let max = if topic.starts_with(RETRY_PREFIX) || topic.starts_with(DLQ_PREFIX) {
        255
    } else {
        127
    };
    if topic.len() > max {
        return Err(format!(
            "The specified topic is longer than topic max length {max}."
        ));
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-'))
    {
        return Err(format!("The specified topic[{topic}] contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"));
    }
    Ok(())
}

pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_PREFIX}{group}")
}

struct State {
    table: BTreeMap<String, TopicConfig>,
    data_version: DataVersion,
}

/// One record of `topics.json.log`: idempotent (a whole config, a delete,
/// the data version after the change).
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
enum TopicChange {
    Put {
        config: TopicConfig,
        dv: DataVersion,
    },
    Delete {
        topic: String,
        dv: DataVersion,
    },
    Version {
        dv: DataVersion,
    },
}

impl State {
    fn apply(&mut self, change: TopicChange) {
        match change {
            TopicChange::Put { config, dv } => {
                self.table.insert(config.topic_name.clone(), config);
                self.data_version = dv;
            }
            TopicChange::Delete { topic, dv } => {
                self.table.remove(&topic);
                self.data_version = dv;
            }
            TopicChange::Version { dv } => self.data_version = dv,
        }
    }
}

/// The broker's topic table. Every change bumps the data version, is written
/// to disk and pokes the name-server registration task.
pub struct TopicConfigManager {
    state: RwLock<State>,
    path: PathBuf,
    journal: Arc<Journal>,
    system_topics: HashSet<String>,
    changed: Arc<Notify>,
    auto_create_enabled: bool,
}

impl TopicConfigManager {
    /// System topics first, then what `topics.json` holds on top (Java's
    /// `init()` then `load()`).
    pub fn open(config: &BrokerConfig, changed: Arc<Notify>) -> std::io::Result<Self> {
        let mut table = BTreeMap::new();
        let mut system_topics = HashSet::new();
        let mut add = |t: TopicConfig| {
            system_topics.insert(t.topic_name.clone());
            table.insert(t.topic_name.clone(), t);
        };
        let rw = perm::READ | perm::WRITE;
        add(TopicConfig::new(SELF_TEST_TOPIC, 1, 1, rw));
        if config.auto_create_topic_enable {
            let n = config.default_topic_queue_nums;
            add(TopicConfig::new(
                AUTO_CREATE_TOPIC,
                n,
                n,
                perm::INHERIT | rw,
            ));
        }
        add(TopicConfig::new(BENCHMARK_TOPIC, 1024, 1024, rw));
        let cluster_perm = perm::INHERIT | if config.cluster_topic_enable { rw } else { 0 };
        add(TopicConfig::new(
            &config.broker_cluster_name,
            16,
            16,
            cluster_perm,
        ));
        let broker_perm = perm::INHERIT | if config.broker_topic_enable { rw } else { 0 };
        add(TopicConfig::new(&config.broker_name, 1, 1, broker_perm));
        add(TopicConfig::new(OFFSET_MOVED_EVENT, 1, 1, rw));
        add(TopicConfig::new(SCHEDULE_TOPIC, 18, 18, rw));
        if config.trace_topic_enable {
            add(TopicConfig::new(&config.msg_trace_topic_name, 1, 1, rw));
        }
        add(TopicConfig::new(
            format!("{}_REPLY_TOPIC", config.broker_cluster_name),
            1,
            1,
            rw,
        ));
        let revive = config.revive_queue_num;
        add(TopicConfig::new(
            format!("rmq_sys_REVIVE_LOG_{}", config.broker_cluster_name),
            revive,
            revive,
            rw,
        ));
        add(TopicConfig::new(
            format!("rmq_sys_SYNC_BROKER_MEMBER_{}", config.broker_name),
            1,
            1,
            perm::INHERIT,
        ));
        add(TopicConfig::new(TRANS_HALF_TOPIC, 1, 1, rw));
        add(TopicConfig::new(TRANS_OP_HALF_TOPIC, 1, 1, rw));
        if config.timer_wheel_enable {
            add(TopicConfig::new(TIMER_TOPIC, 1, 1, rw));
        }

        let path = config.config_dir().join("topics.json");
        let mut data_version = DataVersion::now();
        if let Some(saved) = read_json::<TopicConfigSerializeWrapper>(&path)? {
            info!(path = %path.display(), topics = saved.topic_config_table.len(), "loaded topic configs");
            table.extend(saved.topic_config_table);
            data_version = saved.data_version;
        }
        let (journal, payloads) = Journal::open(
            &journal::log_path(&path),
            &path,
            journal::DEFAULT_MIN_COMPACT,
            FlushDisk::of(config),
        )
        .map_err(std::io::Error::other)?;
        let mut state = State {
            table,
            data_version,
        };
        let replayed = payloads.len();
        for p in payloads {
            match serde_json::from_slice::<TopicChange>(&p) {
                Ok(c) => state.apply(c),
                Err(e) => warn!(error = %e, "topic journal: unreadable record skipped"),
            }
        }
        if replayed > 0 {
            info!(
                records = replayed,
                topics = state.table.len(),
                "replayed the topic journal"
            );
        }
        let mgr = TopicConfigManager {
            state: RwLock::new(state),
            path,
            journal: Arc::new(journal),
            system_topics,
            changed,
            auto_create_enabled: config.auto_create_topic_enable,
        };
        // Java's file holds everything from the start on (and the system
        // topics, as Java's `init` + `persist` leave it).
        mgr.compact_now();
        Ok(mgr)
    }

    pub fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.read().table.get(topic).cloned()
    }

    /// `topic`'s write and read queue counts (the send path's look-up: no
    /// copy of the config).
    pub fn queue_nums(&self, topic: &str) -> Option<(i32, i32)> {
        let state = self.read();
        let t = state.table.get(topic)?;
        Some((t.write_queue_nums, t.read_queue_nums))
    }

    pub fn contains(&self, topic: &str) -> bool {
        self.read().table.contains_key(topic)
    }

    pub fn is_system_topic(&self, topic: &str) -> bool {
        self.system_topics.contains(topic) || topic.starts_with("rmq_sys_")
    }

    pub fn topic_names(&self) -> Vec<String> {
        self.read().table.keys().cloned().collect()
    }

    #[cfg(test)]
    fn data_version(&self) -> DataVersion {
        self.read().data_version.clone()
    }

    /// A snapshot of every topic with the data version.
    pub fn wrapper(&self) -> TopicConfigSerializeWrapper {
        let s = self.read();
        TopicConfigSerializeWrapper {
            topic_config_table: s.table.clone(),
            data_version: s.data_version.clone(),
            ..Default::default()
        }
    }

    /// Java `createTopicInSendMessageMethod`: a new topic copied from the
    /// default topic when that one carries the inherit bit. `None` when the
    /// topic cannot be created.
    pub fn create_in_send(
        &self,
        topic: &str,
        default_topic: &str,
        client_queue_nums: i32,
        topic_sys_flag: i32,
    ) -> Option<TopicConfig> {
        let created = {
            let mut s = self.write();
            if let Some(t) = s.table.get(topic) {
                return Some(t.clone());
            }
            let Some(default) = s.table.get(default_topic) else {
                warn!(%topic, %default_topic, "cannot create topic: the default topic does not exist");
                return None;
            };
            let mut default_perm = default.perm;
            if default_topic == AUTO_CREATE_TOPIC && !self.auto_create_enabled {
                default_perm = perm::READ | perm::WRITE;
            }
            if !perm::is_inherited(default_perm) {
                warn!(%topic, %default_topic, perm = default_perm, "cannot create topic: the default topic has no inherit perm");
                return None;
            }
            let queues = client_queue_nums.min(default.write_queue_nums).max(0);
            let mut t = TopicConfig::new(topic, queues, queues, default_perm & !perm::INHERIT);
            t.topic_sys_flag = topic_sys_flag;
            t.topic_filter_type = default.topic_filter_type.clone();
            s.table.insert(topic.to_owned(), t.clone());
            s.data_version.next();
            let seq = self.append(&TopicChange::Put {
                config: t.clone(),
                dv: s.data_version.clone(),
            });
            (t, seq)
        };
        let (created, seq) = created;
        info!(%topic, %default_topic, queues = created.write_queue_nums, "created topic on send");
        self.after_change(seq);
        Some(created)
    }

    /// Creates the topic when absent (retry and DLQ topics); returns the
    /// existing or new config.
    pub fn create_if_absent(&self, config: TopicConfig) -> TopicConfig {
        let seq = {
            let mut s = self.write();
            if let Some(t) = s.table.get(&config.topic_name) {
                return t.clone();
            }
            s.table.insert(config.topic_name.clone(), config.clone());
            s.data_version.next();
            self.append(&TopicChange::Put {
                config: config.clone(),
                dv: s.data_version.clone(),
            })
        };
        info!(topic = %config.topic_name, queues = config.write_queue_nums, "created topic");
        self.after_change(seq);
        config
    }

    /// A role change in controller mode (Java
    /// `dataVersion.nextVersion(masterEpoch)`): the name servers prefer the
    /// registration whose `stateVersion` is higher, so a stale master loses.
    pub fn next_version_with_state(&self, state_version: i64) {
        let seq = {
            let mut s = self.write();
            s.data_version.next();
            s.data_version.state_version = state_version;
            self.append(&TopicChange::Version {
                dv: s.data_version.clone(),
            })
        };
        self.sync(seq);
    }

    /// Admin create or update.
    pub fn update(&self, config: TopicConfig) {
        let seq = {
            let mut s = self.write();
            s.table.insert(config.topic_name.clone(), config.clone());
            s.data_version.next();
            self.append(&TopicChange::Put {
                config: config.clone(),
                dv: s.data_version.clone(),
            })
        };
        info!(topic = %config.topic_name, read = config.read_queue_nums, write = config.write_queue_nums, perm = config.perm, "topic config updated");
        self.after_change(seq);
    }

    pub fn delete(&self, topic: &str) -> bool {
        let seq = {
            let mut s = self.write();
            if s.table.remove(topic).is_none() {
                return false;
            }
            s.data_version.next();
            self.append(&TopicChange::Delete {
                topic: topic.to_owned(),
                dv: s.data_version.clone(),
            })
        };
        info!(%topic, "topic deleted");
        self.after_change(seq);
        true
    }

    /// Appends a change; call under the write lock. Failures are logged (the
    /// table stays in memory).
    fn append(&self, change: &TopicChange) -> Option<u64> {
        let payload = serde_json::to_vec(change).unwrap_or_default();
        match self.journal.append(&payload) {
            Ok(seq) => Some(seq),
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "cannot journal a topic change");
                None
            }
        }
    }

    fn sync(&self, seq: Option<u64>) {
        if let Some(seq) = seq {
            if let Err(e) = self.journal.sync(seq) {
                warn!(path = %self.path.display(), error = %e, "cannot sync the topic journal");
            }
        }
        if self.journal.wants_compaction() {
            self.compact(true);
        }
    }

    fn after_change(&self, seq: Option<u64>) {
        self.sync(seq);
        self.changed.notify_one();
    }

    /// Folds the journal into `topics.json` (Java's format): in the
    /// background, or here and now (start, clean shutdown).
    fn compact(&self, background: bool) {
        let (c, wrapper) = {
            // Under the read lock no change is appended: the copy holds
            // exactly what the rotated log holds.
            let s = self.read();
            let c = match self.journal.begin_compaction() {
                Ok(Some(c)) => c,
                Ok(None) => return,
                Err(e) => {
                    warn!(path = %self.path.display(), error = %e, "cannot compact the topic journal");
                    return;
                }
            };
            let wrapper = TopicConfigSerializeWrapper {
                topic_config_table: s.table.clone(),
                data_version: s.data_version.clone(),
                ..Default::default()
            };
            (c, wrapper)
        };
        let render = move || serde_json::to_vec_pretty(&wrapper).unwrap_or_default();
        if background {
            c.finish_in_background(render);
        } else if let Err(e) = c.finish(&render()) {
            warn!(path = %self.path.display(), error = %e, "cannot write topic configs");
        }
    }

    /// Writes `topics.json` now (after any running compaction) and empties
    /// the journal.
    pub fn compact_now(&self) {
        self.journal.wait_idle(std::time::Duration::from_secs(60));
        self.compact(false);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reads a JSON config file written by us or by Java; `None` when absent or
/// empty. A corrupt file falls back to its `.bak` copy, as Java's
/// `ConfigManager.load` does.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    for candidate in [path.to_path_buf(), path.with_extension("json.bak")] {
        match std::fs::read(&candidate) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(bytes) => match remoting::body::from_fastjson::<T>(&bytes) {
                Ok(v) => return Ok(Some(v)),
                Err(e) => {
                    warn!(path = %candidate.display(), error = %e, "cannot parse config file")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Writes via a temporary file and rename, keeping the previous version as
/// `<name>.bak`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    if path.exists() {
        let _ = std::fs::copy(path, path.with_extension("json.bak"));
    }
    std::fs::rename(&tmp, path)
}

/// The last owner gone (a clean shutdown): Java's file gets everything and
/// the journal is emptied.
impl Drop for TopicConfigManager {
    fn drop(&mut self) {
        self.compact_now();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> BrokerConfig {
        BrokerConfig {
            broker_name: "b1".into(),
            broker_cluster_name: "C1".into(),
            store_path_root_dir: dir.display().to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn system_topics_and_auto_create_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let changed = Arc::new(Notify::new());
        let m = TopicConfigManager::open(&cfg, changed.clone()).unwrap();
        let tbw = m.get(AUTO_CREATE_TOPIC).unwrap();
        assert_eq!((tbw.perm, tbw.write_queue_nums), (7, 8));
        assert_eq!(m.get("b1").unwrap().perm, 7);
        assert_eq!(m.get("C1").unwrap().read_queue_nums, 16);
        assert_eq!(m.get(SCHEDULE_TOPIC).unwrap().read_queue_nums, 18);
        let v0 = m.data_version();

        let t = m
            .create_in_send("NewTopic", AUTO_CREATE_TOPIC, 4, 0)
            .unwrap();
        assert_eq!((t.perm, t.read_queue_nums, t.write_queue_nums), (6, 4, 4));
        assert!(m.data_version().counter > v0.counter);
        assert!(m.create_in_send("Other", "NoSuchDefault", 4, 0).is_none());
        assert!(
            m.create_in_send("Other", "NewTopic", 4, 0).is_none(),
            "no inherit bit"
        );

        let m2 = TopicConfigManager::open(&cfg, changed).unwrap();
        assert_eq!(m2.get("NewTopic"), Some(t));
        assert_eq!(m2.data_version(), m.data_version());
    }

    #[test]
    fn topic_names_are_validated_like_java() {
        assert!(validate_topic("Topic_a-1%|").is_ok());
        assert!(validate_topic("").is_err());
        assert!(validate_topic("a b").is_err());
        assert!(validate_topic(&"x".repeat(128)).is_err());
        assert!(validate_topic(&format!("%RETRY%{}", "x".repeat(200))).is_ok());
    }
}
