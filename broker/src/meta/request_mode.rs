//! Per topic and consumer group: PULL or POP (Java
//! `MessageRequestModeManager`, `config/messageRequestMode.json`), set by
//! SET_MESSAGE_REQUEST_MODE (`mqadmin setConsumeMode`) and answered in
//! QUERY_ASSIGNMENT. A change is one journal record
//! (`messageRequestMode.json.log`), folded into the file as for topics.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::meta::journal::{self, FlushDisk, Journal};
use crate::meta::topic::read_json;

/// `SetMessageRequestModeRequestBody`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMode {
    #[serde(default)]
    pub consumer_group: String,
    #[serde(default = "pull")]
    pub mode: String,
    #[serde(default)]
    pub pop_share_queue_num: i32,
    #[serde(default)]
    pub topic: String,
}

fn pull() -> String {
    "PULL".into()
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModeFile {
    #[serde(default)]
    message_request_mode_map: BTreeMap<String, BTreeMap<String, RequestMode>>,
}

pub struct RequestModeManager {
    path: PathBuf,
    journal: Arc<Journal>,
    map: RwLock<BTreeMap<String, BTreeMap<String, RequestMode>>>,
}

impl RequestModeManager {
    pub fn open(config_dir: PathBuf, flush: FlushDisk) -> std::io::Result<Self> {
        let path = config_dir.join("messageRequestMode.json");
        let mut file = read_json::<ModeFile>(&path)?.unwrap_or_default();
        let (journal, payloads) = Journal::open(
            &journal::log_path(&path),
            &path,
            journal::DEFAULT_MIN_COMPACT,
            flush,
        )
        .map_err(std::io::Error::other)?;
        let replayed = payloads.len();
        for p in payloads {
            match serde_json::from_slice::<RequestMode>(&p) {
                Ok(m) => {
                    file.message_request_mode_map
                        .entry(m.topic.clone())
                        .or_default()
                        .insert(m.consumer_group.clone(), m);
                }
                Err(e) => warn!(error = %e, "request mode journal: unreadable record skipped"),
            }
        }
        if !file.message_request_mode_map.is_empty() {
            info!(path = %path.display(), topics = file.message_request_mode_map.len(), "loaded message request modes");
        }
        let mgr = RequestModeManager {
            path,
            journal: Arc::new(journal),
            map: RwLock::new(file.message_request_mode_map),
        };
        if replayed > 0 {
            mgr.compact_now();
        }
        Ok(mgr)
    }

    pub fn get(&self, topic: &str, group: &str) -> Option<RequestMode> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .and_then(|g| g.get(group))
            .cloned()
    }

    pub fn set(&self, mode: RequestMode) {
        let seq = {
            let mut m = self.map.write().unwrap_or_else(|p| p.into_inner());
            let payload = serde_json::to_vec(&mode).unwrap_or_default();
            m.entry(mode.topic.clone())
                .or_default()
                .insert(mode.consumer_group.clone(), mode);
            self.journal.append(&payload)
        };
        match seq.and_then(|s| self.journal.sync(s)) {
            Ok(()) => {
                if self.journal.wants_compaction() {
                    self.compact_now();
                }
            }
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "cannot persist message request modes")
            }
        }
    }

    /// Writes `messageRequestMode.json` and empties the journal (rare: the
    /// table is small, so this runs inline).
    pub fn compact_now(&self) {
        self.journal.wait_idle(std::time::Duration::from_secs(60));
        let (c, file) = {
            let m = self.map.read().unwrap_or_else(|p| p.into_inner());
            let c = match self.journal.begin_compaction() {
                Ok(Some(c)) => c,
                Ok(None) => return,
                Err(e) => {
                    warn!(path = %self.path.display(), error = %e, "cannot compact message request modes");
                    return;
                }
            };
            (
                c,
                ModeFile {
                    message_request_mode_map: m.clone(),
                },
            )
        };
        if let Err(e) = c.finish(&serde_json::to_vec_pretty(&file).unwrap_or_default()) {
            warn!(path = %self.path.display(), error = %e, "cannot persist message request modes");
        }
    }
}

/// The last owner gone (a clean shutdown): Java's file gets everything and
/// the journal is emptied.
impl Drop for RequestModeManager {
    fn drop(&mut self) {
        self.compact_now();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn modes_persist_in_javas_file() {
        let dir = tempfile::tempdir().unwrap();
        let m = RequestModeManager::open(dir.path().to_path_buf(), FlushDisk::Async).unwrap();
        assert_eq!(m.get("T", "g"), None);
        m.set(RequestMode {
            consumer_group: "g".into(),
            mode: "POP".into(),
            pop_share_queue_num: 0,
            topic: "T".into(),
        });
        m.compact_now();
        let text = std::fs::read_to_string(dir.path().join("messageRequestMode.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["messageRequestModeMap"]["T"]["g"]["mode"], "POP");
        let again = RequestModeManager::open(dir.path().to_path_buf(), FlushDisk::Async).unwrap();
        assert_eq!(again.get("T", "g").unwrap().mode, "POP");
    }
}
