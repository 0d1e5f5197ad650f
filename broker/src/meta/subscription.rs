//! Subscription group configs (`SubscriptionGroupManager`), persisted to
//! `<root>/config/subscriptionGroup.json`; each change is one record in
//! `subscriptionGroup.json.log` (fsynced as `flushDiskType` says), folded into the file as for topics
//! ([`crate::meta::journal`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use remoting::body::DataVersion;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::meta::journal::{self, FlushDisk, Journal};
use crate::meta::topic::read_json;

/// One record of `subscriptionGroup.json.log`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
enum GroupChange {
    Put {
        config: Box<SubscriptionGroupConfig>,
        dv: DataVersion,
    },
    Delete {
        group: String,
        dv: DataVersion,
    },
}

/// Java `SubscriptionGroupConfig`; fields we do not use survive a round trip
/// through `other`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupConfig {
    pub group_name: String,
    pub consume_enable: bool,
    pub consume_from_min_enable: bool,
    pub consume_broadcast_enable: bool,
    pub consume_message_orderly: bool,
    pub retry_queue_nums: i32,
    pub retry_max_times: i32,
    pub broker_id: i64,
    pub which_broker_when_consume_slowly: i64,
    pub notify_consumer_ids_changed_enable: bool,
    pub group_sys_flag: i32,
    pub consume_timeout_minute: i32,
    pub attributes: BTreeMap<String, String>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl Default for SubscriptionGroupConfig {
    fn default() -> Self {
        let mut other = serde_json::Map::new();
        other.insert(
            "groupRetryPolicy".into(),
            serde_json::json!({"type": "CUSTOMIZED"}),
        );
        SubscriptionGroupConfig {
            group_name: String::new(),
            consume_enable: true,
            consume_from_min_enable: true,
            consume_broadcast_enable: true,
            consume_message_orderly: false,
            retry_queue_nums: 1,
            retry_max_times: 16,
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
            group_sys_flag: 0,
            consume_timeout_minute: 15,
            attributes: BTreeMap::new(),
            other,
        }
    }
}

impl SubscriptionGroupConfig {
    pub fn named(group: &str) -> Self {
        SubscriptionGroupConfig {
            group_name: group.to_owned(),
            ..Default::default()
        }
    }
}

/// `SubscriptionGroupWrapper`: the file and the GET_ALL_SUBSCRIPTIONGROUP_CONFIG body.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupWrapper {
    pub subscription_group_table: BTreeMap<String, SubscriptionGroupConfig>,
    pub forbidden_table: BTreeMap<String, BTreeMap<String, i32>>,
    pub data_version: DataVersion,
}

pub struct SubscriptionGroupManager {
    state: RwLock<SubscriptionGroupWrapper>,
    path: PathBuf,
    journal: Arc<Journal>,
    auto_create: bool,
}

const SYSTEM_GROUPS: &[(&str, bool)] = &[
    ("TOOLS_CONSUMER", false),
    ("FILTERSRV_CONSUMER", false),
    ("SELF_TEST_C_GROUP", false),
    ("CID_ONS-HTTP-PROXY", true),
    ("CID_ONSAPI_PULL", true),
    ("CID_ONSAPI_PERMISSION", true),
    ("CID_ONSAPI_OWNER", true),
    ("CID_RMQ_SYS_TRANS", true),
];

impl SubscriptionGroupManager {
    pub fn open(config_dir: PathBuf, auto_create: bool, flush: FlushDisk) -> std::io::Result<Self> {
        let path = config_dir.join("subscriptionGroup.json");
        let mut state = SubscriptionGroupWrapper {
            data_version: DataVersion::now(),
            ..Default::default()
        };
        for (g, broadcast) in SYSTEM_GROUPS {
            let mut c = SubscriptionGroupConfig::named(g);
            c.consume_broadcast_enable = *broadcast || c.consume_broadcast_enable;
            state.subscription_group_table.insert((*g).to_owned(), c);
        }
        if let Some(saved) = read_json::<SubscriptionGroupWrapper>(&path)? {
            state
                .subscription_group_table
                .extend(saved.subscription_group_table);
            state.forbidden_table = saved.forbidden_table;
            state.data_version = saved.data_version;
        }
        let (journal, payloads) = Journal::open(
            &journal::log_path(&path),
            &path,
            journal::DEFAULT_MIN_COMPACT,
            flush,
        )
        .map_err(std::io::Error::other)?;
        let replayed = payloads.len();
        for p in payloads {
            match serde_json::from_slice::<GroupChange>(&p) {
                Ok(GroupChange::Put { config, dv }) => {
                    state
                        .subscription_group_table
                        .insert(config.group_name.clone(), *config);
                    state.data_version = dv;
                }
                Ok(GroupChange::Delete { group, dv }) => {
                    state.subscription_group_table.remove(&group);
                    state.data_version = dv;
                }
                Err(e) => warn!(error = %e, "group journal: unreadable record skipped"),
            }
        }
        let mgr = SubscriptionGroupManager {
            state: RwLock::new(state),
            path,
            journal: Arc::new(journal),
            auto_create,
        };
        if replayed > 0 || !mgr.path.exists() {
            mgr.compact_now();
        }
        Ok(mgr)
    }

    pub fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .subscription_group_table
            .get(group)
            .cloned()
    }

    /// Java `findSubscriptionGroupConfig`: auto-creates when enabled.
    pub fn find_or_create(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        if let Some(c) = self.get(group) {
            return Some(c);
        }
        if !self.auto_create {
            return None;
        }
        let c = SubscriptionGroupConfig::named(group);
        let seq = {
            let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
            if let Some(existing) = s.subscription_group_table.get(group) {
                return Some(existing.clone());
            }
            s.subscription_group_table
                .insert(group.to_owned(), c.clone());
            s.data_version.next();
            self.append(&GroupChange::Put {
                config: Box::new(c.clone()),
                dv: s.data_version.clone(),
            })
        };
        info!(%group, "auto-created subscription group");
        self.sync(seq);
        Some(c)
    }

    pub fn update(&self, config: SubscriptionGroupConfig) {
        let seq = {
            let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
            s.subscription_group_table
                .insert(config.group_name.clone(), config.clone());
            s.data_version.next();
            self.append(&GroupChange::Put {
                config: Box::new(config),
                dv: s.data_version.clone(),
            })
        };
        self.sync(seq);
    }

    pub fn delete(&self, group: &str) -> bool {
        let seq = {
            let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
            if s.subscription_group_table.remove(group).is_none() {
                return false;
            }
            s.data_version.next();
            self.append(&GroupChange::Delete {
                group: group.to_owned(),
                dv: s.data_version.clone(),
            })
        };
        self.sync(seq);
        true
    }

    pub fn wrapper(&self) -> SubscriptionGroupWrapper {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Appends a change; call under the write lock.
    fn append(&self, change: &GroupChange) -> Option<u64> {
        let payload = serde_json::to_vec(change).unwrap_or_default();
        match self.journal.append(&payload) {
            Ok(seq) => Some(seq),
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "cannot journal a group change");
                None
            }
        }
    }

    fn sync(&self, seq: Option<u64>) {
        if let Some(seq) = seq {
            if let Err(e) = self.journal.sync(seq) {
                warn!(path = %self.path.display(), error = %e, "cannot sync the group journal");
            }
        }
        if self.journal.wants_compaction() {
            self.compact(true);
        }
    }

    fn compact(&self, background: bool) {
        let (c, wrapper) = {
            let s = self.state.read().unwrap_or_else(|p| p.into_inner());
            let c = match self.journal.begin_compaction() {
                Ok(Some(c)) => c,
                Ok(None) => return,
                Err(e) => {
                    warn!(path = %self.path.display(), error = %e, "cannot compact the group journal");
                    return;
                }
            };
            (c, s.clone())
        };
        let render = move || serde_json::to_vec_pretty(&wrapper).unwrap_or_default();
        if background {
            c.finish_in_background(render);
        } else if let Err(e) = c.finish(&render()) {
            warn!(path = %self.path.display(), error = %e, "cannot write subscription groups");
        }
    }

    /// Writes `subscriptionGroup.json` now and empties the journal (start,
    /// clean shutdown).
    pub fn compact_now(&self) {
        self.journal.wait_idle(std::time::Duration::from_secs(60));
        self.compact(false);
    }
}

/// The last owner gone (a clean shutdown): Java's file gets everything and
/// the journal is emptied.
impl Drop for SubscriptionGroupManager {
    fn drop(&mut self) {
        self.compact_now();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn auto_create_persist_and_keep_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let m = SubscriptionGroupManager::open(dir.path().to_path_buf(), true, FlushDisk::Async)
            .unwrap();
        assert!(m.get("TOOLS_CONSUMER").is_some());
        let g = m.find_or_create("g1").unwrap();
        assert_eq!(g.retry_queue_nums, 1);
        let mut custom: SubscriptionGroupConfig =
            serde_json::from_str(r#"{"groupName":"g2","retryMaxTimes":3,"futureField":[1]}"#)
                .unwrap();
        assert!(custom.consume_enable);
        custom.retry_queue_nums = 2;
        m.update(custom);
        let m2 = SubscriptionGroupManager::open(dir.path().to_path_buf(), false, FlushDisk::Sync)
            .unwrap();
        assert!(m2.get("g1").is_some());
        let g2 = m2.get("g2").unwrap();
        assert_eq!((g2.retry_max_times, g2.retry_queue_nums), (3, 2));
        assert_eq!(g2.other["futureField"], serde_json::json!([1]));
        assert!(m2.find_or_create("g3").is_none());
    }
}
