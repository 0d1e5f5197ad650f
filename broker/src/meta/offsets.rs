//! Consumer offsets ("next offset to consume") per (group, topic, queue),
//! persisted to `<root>/config/consumerOffset.json` in Java's
//! `ConsumerOffsetManager` format, keyed `topic@group`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use remoting::body::DataVersion;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::meta::topic::{read_json, write_atomically};

const TOPIC_GROUP_SEPARATOR: char = '@';

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct OffsetFile {
    offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
    data_version: DataVersion,
}

pub struct ConsumerOffsetManager {
    table: Mutex<OffsetFile>,
    dirty: AtomicBool,
    path: PathBuf,
}

fn key(topic: &str, group: &str) -> String {
    format!("{topic}{TOPIC_GROUP_SEPARATOR}{group}")
}

impl ConsumerOffsetManager {
    pub fn open(config_dir: PathBuf) -> std::io::Result<Self> {
        let path = config_dir.join("consumerOffset.json");
        let table = read_json::<OffsetFile>(&path)?.unwrap_or_default();
        debug!(path = %path.display(), entries = table.offset_table.len(), "loaded consumer offsets");
        Ok(ConsumerOffsetManager {
            table: Mutex::new(table),
            dirty: AtomicBool::new(false),
            path,
        })
    }

    pub fn commit(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        let mut t = self.lock();
        t.offset_table
            .entry(key(topic, group))
            .or_default()
            .insert(queue_id, offset);
        t.data_version.counter += 1;
        self.dirty.store(true, Ordering::Release);
    }

    pub fn query(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        self.lock()
            .offset_table
            .get(&key(topic, group))
            .and_then(|q| q.get(&queue_id))
            .copied()
    }

    /// Every (group) with an offset on `topic`.
    pub fn groups_of_topic(&self, topic: &str) -> Vec<String> {
        self.lock()
            .offset_table
            .keys()
            .filter_map(|k| k.split_once(TOPIC_GROUP_SEPARATOR))
            .filter(|(t, _)| *t == topic)
            .map(|(_, g)| g.to_owned())
            .collect()
    }

    /// Every topic `group` has offsets on.
    pub fn topics_of_group(&self, group: &str) -> Vec<String> {
        self.lock()
            .offset_table
            .keys()
            .filter_map(|k| k.split_once(TOPIC_GROUP_SEPARATOR))
            .filter(|(_, g)| *g == group)
            .map(|(t, _)| t.to_owned())
            .collect()
    }

    pub fn offsets_of(&self, group: &str, topic: &str) -> BTreeMap<i32, i64> {
        self.lock()
            .offset_table
            .get(&key(topic, group))
            .cloned()
            .unwrap_or_default()
    }

    pub fn remove_topic(&self, topic: &str) {
        let mut t = self.lock();
        let before = t.offset_table.len();
        t.offset_table
            .retain(|k, _| k.split_once(TOPIC_GROUP_SEPARATOR).map(|(t, _)| t) != Some(topic));
        if t.offset_table.len() != before {
            self.dirty.store(true, Ordering::Release);
        }
    }

    pub fn remove_group(&self, group: &str) {
        let mut t = self.lock();
        t.offset_table
            .retain(|k, _| k.split_once(TOPIC_GROUP_SEPARATOR).map(|(_, g)| g) != Some(group));
        self.dirty.store(true, Ordering::Release);
    }

    /// The whole table as JSON (GET_ALL_CONSUMER_OFFSET).
    pub fn to_json(&self) -> Vec<u8> {
        remoting::body::to_json(&*self.lock())
    }

    /// Writes the file if anything changed since the last write.
    pub fn persist(&self) {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let bytes = {
            let mut t = self.lock();
            t.data_version.timestamp = remoting::body::now_millis();
            serde_json::to_vec_pretty(&*t).unwrap_or_default()
        };
        if let Err(e) = write_atomically(&self.path, &bytes) {
            self.dirty.store(true, Ordering::Release);
            warn!(path = %self.path.display(), error = %e, "cannot persist consumer offsets");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OffsetFile> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_java_unquoted_keys_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("consumerOffset.json"),
            r#"{"offsetTable":{"T@g":{0:5,1:7},"%RETRY%g@g":{0:0}},"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1}}"#,
        )
        .unwrap();
        let m = ConsumerOffsetManager::open(dir.path().to_path_buf()).unwrap();
        assert_eq!(m.query("g", "T", 1), Some(7));
        assert_eq!(m.query("g", "T", 2), None);
        m.commit("g", "T", 2, 9);
        m.persist();
        let m2 = ConsumerOffsetManager::open(dir.path().to_path_buf()).unwrap();
        assert_eq!(m2.query("g", "T", 2), Some(9));
        assert_eq!(m2.groups_of_topic("T"), vec!["g"]);
        let mut topics = m2.topics_of_group("g");
        topics.sort();
        assert_eq!(topics, vec!["%RETRY%g", "T"]);
    }
}
