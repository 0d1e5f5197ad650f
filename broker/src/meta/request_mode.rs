//! Per topic and consumer group: PULL or POP (Java
//! `MessageRequestModeManager`, `config/messageRequestMode.json`), set by
//! SET_MESSAGE_REQUEST_MODE (`mqadmin setConsumeMode`) and answered in
//! QUERY_ASSIGNMENT.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::meta::topic::{read_json, write_atomically};

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
    map: RwLock<BTreeMap<String, BTreeMap<String, RequestMode>>>,
}

impl RequestModeManager {
    pub fn open(config_dir: PathBuf) -> std::io::Result<Self> {
        let path = config_dir.join("messageRequestMode.json");
        let file = read_json::<ModeFile>(&path)?.unwrap_or_default();
        if !file.message_request_mode_map.is_empty() {
            info!(path = %path.display(), topics = file.message_request_mode_map.len(), "loaded message request modes");
        }
        Ok(RequestModeManager {
            path,
            map: RwLock::new(file.message_request_mode_map),
        })
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
        {
            let mut m = self.map.write().unwrap_or_else(|p| p.into_inner());
            m.entry(mode.topic.clone())
                .or_default()
                .insert(mode.consumer_group.clone(), mode);
        }
        self.persist();
    }

    fn persist(&self) {
        let file = ModeFile {
            message_request_mode_map: self.map.read().unwrap_or_else(|p| p.into_inner()).clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        if let Err(e) = write_atomically(&self.path, &bytes) {
            warn!(path = %self.path.display(), error = %e, "cannot persist message request modes");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn modes_persist_in_javas_file() {
        let dir = tempfile::tempdir().unwrap();
        let m = RequestModeManager::open(dir.path().to_path_buf()).unwrap();
        assert_eq!(m.get("T", "g"), None);
        m.set(RequestMode {
            consumer_group: "g".into(),
            mode: "POP".into(),
            pop_share_queue_num: 0,
            topic: "T".into(),
        });
        let text = std::fs::read_to_string(dir.path().join("messageRequestMode.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["messageRequestModeMap"]["T"]["g"]["mode"], "POP");
        let again = RequestModeManager::open(dir.path().to_path_buf()).unwrap();
        assert_eq!(again.get("T", "g").unwrap().mode, "POP");
    }
}
