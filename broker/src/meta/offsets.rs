//! Consumer offsets ("next offset to consume") per (group, topic, queue),
//! persisted to `<root>/config/consumerOffset.json` in Java's
//! `ConsumerOffsetManager` format, keyed `topic@group`.
//!
//! Each persist interval writes only what changed since the last one: one
//! journal record (`consumerOffset.json.log`) with the changed queue offsets
//! and the removed keys; the file itself is rewritten only when the journal
//! outgrows it (in the background), at start after a replay, and on a clean
//! shutdown. A million committed offsets of which ten moved cost ten entries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use remoting::body::DataVersion;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::meta::journal::{self, FlushDisk, Journal};
use crate::meta::topic::read_json;

const TOPIC_GROUP_SEPARATOR: char = '@';

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct OffsetFile {
    offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
    data_version: DataVersion,
}

/// One persist interval's delta: keys removed first, then offsets set.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct OffsetDelta {
    removed: BTreeSet<String>,
    offsets: BTreeMap<String, BTreeMap<i32, i64>>,
    dv: DataVersion,
}

#[derive(Default)]
struct Table {
    file: OffsetFile,
    /// Changed since the last persist.
    delta: OffsetDelta,
}

pub struct ConsumerOffsetManager {
    table: Mutex<Table>,
    path: PathBuf,
    journal: Arc<Journal>,
}

fn key(topic: &str, group: &str) -> String {
    format!("{topic}{TOPIC_GROUP_SEPARATOR}{group}")
}

impl ConsumerOffsetManager {
    pub fn open(config_dir: PathBuf, flush: FlushDisk) -> std::io::Result<Self> {
        let path = config_dir.join("consumerOffset.json");
        let mut file = read_json::<OffsetFile>(&path)?.unwrap_or_default();
        let (journal, payloads) = Journal::open(
            &journal::log_path(&path),
            &path,
            journal::DEFAULT_MIN_COMPACT,
            flush,
        )
        .map_err(std::io::Error::other)?;
        let replayed = payloads.len();
        for p in payloads {
            match serde_json::from_slice::<OffsetDelta>(&p) {
                Ok(d) => {
                    for k in &d.removed {
                        file.offset_table.remove(k);
                    }
                    for (k, queues) in d.offsets {
                        file.offset_table.entry(k).or_default().extend(queues);
                    }
                    file.data_version = d.dv;
                }
                Err(e) => warn!(error = %e, "offset journal: unreadable record skipped"),
            }
        }
        debug!(path = %path.display(), entries = file.offset_table.len(), replayed, "loaded consumer offsets");
        let mgr = ConsumerOffsetManager {
            table: Mutex::new(Table {
                file,
                delta: OffsetDelta::default(),
            }),
            path,
            journal: Arc::new(journal),
        };
        if replayed > 0 {
            mgr.compact(false);
        }
        Ok(mgr)
    }

    pub fn commit(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        let mut t = self.lock();
        let k = key(topic, group);
        t.delta
            .offsets
            .entry(k.clone())
            .or_default()
            .insert(queue_id, offset);
        t.file
            .offset_table
            .entry(k)
            .or_default()
            .insert(queue_id, offset);
        t.file.data_version.counter += 1;
    }

    pub fn query(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        self.lock()
            .file
            .offset_table
            .get(&key(topic, group))
            .and_then(|q| q.get(&queue_id))
            .copied()
    }

    /// Every (group) with an offset on `topic`.
    pub fn groups_of_topic(&self, topic: &str) -> Vec<String> {
        self.lock()
            .file
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
            .file
            .offset_table
            .keys()
            .filter_map(|k| k.split_once(TOPIC_GROUP_SEPARATOR))
            .filter(|(_, g)| *g == group)
            .map(|(t, _)| t.to_owned())
            .collect()
    }

    pub fn offsets_of(&self, group: &str, topic: &str) -> BTreeMap<i32, i64> {
        self.lock()
            .file
            .offset_table
            .get(&key(topic, group))
            .cloned()
            .unwrap_or_default()
    }

    fn remove_where(&self, doomed: impl Fn(&str, &str) -> bool) {
        let mut t = self.lock();
        let keys: Vec<String> = t
            .file
            .offset_table
            .keys()
            .filter(|k| {
                k.split_once(TOPIC_GROUP_SEPARATOR)
                    .is_some_and(|(tp, g)| doomed(tp, g))
            })
            .cloned()
            .collect();
        for k in keys {
            t.file.offset_table.remove(&k);
            t.delta.offsets.remove(&k);
            t.delta.removed.insert(k);
        }
    }

    pub fn remove_topic(&self, topic: &str) {
        self.remove_where(|t, _| t == topic);
    }

    pub fn remove_group(&self, group: &str) {
        self.remove_where(|_, g| g == group);
    }

    /// The whole table as JSON (GET_ALL_CONSUMER_OFFSET).
    pub fn to_json(&self) -> Vec<u8> {
        remoting::body::to_json(&self.lock().file)
    }

    /// Journals what changed since the last call (one record, fsynced here
    /// or by the journal's flusher as `flushDiskType` says);
    /// folds the journal into `consumerOffset.json` in the background when
    /// it has outgrown the file.
    pub fn persist(&self) {
        let seq = {
            let mut t = self.lock();
            if t.delta.offsets.is_empty() && t.delta.removed.is_empty() {
                return;
            }
            t.file.data_version.timestamp = remoting::body::now_millis();
            let mut delta = std::mem::take(&mut t.delta);
            delta.dv = t.file.data_version.clone();
            let payload = serde_json::to_vec(&delta).unwrap_or_default();
            match self.journal.append(&payload) {
                Ok(seq) => seq,
                Err(e) => {
                    // Keep the delta for the next interval.
                    let newer = std::mem::replace(&mut t.delta, delta);
                    t.delta.removed.extend(newer.removed);
                    for (k, q) in newer.offsets {
                        t.delta.offsets.entry(k).or_default().extend(q);
                    }
                    warn!(path = %self.path.display(), error = %e, "cannot persist consumer offsets");
                    return;
                }
            }
        };
        if let Err(e) = self.journal.sync(seq) {
            warn!(path = %self.path.display(), error = %e, "cannot sync consumer offsets");
        }
        if self.journal.wants_compaction() {
            self.compact(true);
        }
    }

    fn compact(&self, background: bool) {
        let (c, file) = {
            let t = self.lock();
            let c = match self.journal.begin_compaction() {
                Ok(Some(c)) => c,
                Ok(None) => return,
                Err(e) => {
                    warn!(path = %self.path.display(), error = %e, "cannot compact consumer offsets");
                    return;
                }
            };
            (c, t.file.clone())
        };
        let render = move || serde_json::to_vec_pretty(&file).unwrap_or_default();
        if background {
            c.finish_in_background(render);
        } else if let Err(e) = c.finish(&render()) {
            warn!(path = %self.path.display(), error = %e, "cannot write consumer offsets");
        }
    }

    /// Persists the last changes and writes `consumerOffset.json` (clean
    /// shutdown).
    pub fn persist_and_compact(&self) {
        self.persist();
        self.journal.wait_idle(std::time::Duration::from_secs(60));
        self.compact(false);
    }

    /// Bytes the journal wrote since open (records, compactions).
    #[cfg(test)]
    fn bytes_written(&self) -> u64 {
        self.journal.bytes_written()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The last owner gone (a clean shutdown): Java's file gets everything and
/// the journal is emptied.
impl Drop for ConsumerOffsetManager {
    fn drop(&mut self) {
        self.persist_and_compact();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The broker's default: a persist is written, then fsynced by the
    /// journal's flusher.
    const FLUSH: FlushDisk = FlushDisk::Async;

    #[test]
    fn reads_java_unquoted_keys_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("consumerOffset.json"),
            r#"{"offsetTable":{"T@g":{0:5,1:7},"%RETRY%g@g":{0:0}},"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1}}"#,
        )
        .unwrap();
        let m = ConsumerOffsetManager::open(dir.path().to_path_buf(), FLUSH).unwrap();
        assert_eq!(m.query("g", "T", 1), Some(7));
        assert_eq!(m.query("g", "T", 2), None);
        m.commit("g", "T", 2, 9);
        m.persist();
        let m2 = ConsumerOffsetManager::open(dir.path().to_path_buf(), FLUSH).unwrap();
        assert_eq!(m2.query("g", "T", 2), Some(9));
        assert_eq!(m2.groups_of_topic("T"), vec!["g"]);
        let mut topics = m2.topics_of_group("g");
        topics.sort();
        assert_eq!(topics, vec!["%RETRY%g", "T"]);
    }

    #[test]
    fn a_persist_writes_only_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let m = ConsumerOffsetManager::open(dir.path().to_path_buf(), FLUSH).unwrap();
        // 200,000 committed queue offsets: 2,000 (topic, group) pairs × 100 queues.
        for k in 0..2000 {
            for q in 0..100 {
                m.commit(
                    &format!("g{}", k % 20),
                    &format!("T{k}"),
                    q,
                    1000 + q as i64,
                );
            }
        }
        m.persist();
        let full = m.bytes_written();
        // Ten offsets move: the next interval writes a few hundred bytes.
        for i in 0..10 {
            m.commit("g0", &format!("T{}", i * 20), 3, 5000 + i);
        }
        m.persist();
        let interval = m.bytes_written() - full;
        assert!(interval < 1024, "{interval} bytes for 10 offsets");
        // Nothing moved: nothing written.
        m.persist();
        assert_eq!(m.bytes_written() - full, interval);
        m.remove_group("g1");
        m.persist();
        drop(m);
        // A crash here (no clean shutdown): the journal is replayed.
        let m2 = ConsumerOffsetManager::open(dir.path().to_path_buf(), FLUSH).unwrap();
        assert_eq!(m2.query("g0", "T20", 3), Some(5001));
        assert_eq!(m2.query("g0", "T20", 4), Some(1004));
        assert_eq!(m2.query("g1", "T1", 0), None);
        assert_eq!(m2.query("g2", "T2", 99), Some(1099));
        // And folded into Java's file at that start.
        let text = std::fs::read(dir.path().join("consumerOffset.json")).unwrap();
        let f: OffsetFile = remoting::body::from_fastjson(&text).unwrap();
        assert_eq!(f.offset_table.len(), 1900);
        assert_eq!(f.offset_table["T20@g0"][&3], 5001);
        assert_eq!(
            std::fs::metadata(dir.path().join("consumerOffset.json.log"))
                .unwrap()
                .len(),
            0
        );
    }
}
