//! Delay levels (`ScheduleMessageService`): a message with `DELAY` = n is
//! stored in `SCHEDULE_TOPIC_XXXX` queue n − 1 with its real topic and queue
//! in `REAL_TOPIC` / `REAL_QID`; the store writes the delivery time into the
//! consume-queue tags slot. One task per level walks its queue in order
//! (every entry of a level has the same delay, so the queue is sorted by
//! delivery time) and re-puts each message to its real topic when due.
//! Progress per level is Java's `config/delayOffset.json`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use store::{properties, GetStatus, MessageToStore, QueueOffset};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::message;
use crate::meta::topic::{self, read_json, write_atomically};
use crate::store::BrokerStore;

/// Poll period of an idle level (Java `DELAY_FOR_A_WHILE`).
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// Back-off after a failed re-put.
const FAILURE_WAIT: Duration = Duration::from_secs(1);
const PERSIST_INTERVAL: Duration = Duration::from_secs(1);

/// `messageDelayLevel` in milliseconds, index = level − 1 (`1s 5s 1m 2h 1d`).
pub fn parse_levels(s: &str) -> Result<Vec<i64>, String> {
    s.split_whitespace()
        .map(|v| {
            let cut = v.char_indices().last().map_or(0, |(i, _)| i);
            let (num, unit) = v.split_at(cut);
            let mult = match unit {
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(format!("bad delay level {v:?}")),
            };
            num.parse::<i64>()
                .map(|n| n.saturating_mul(mult))
                .map_err(|_| format!("bad delay level {v:?}"))
        })
        .collect()
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DelayOffsetFile {
    #[serde(default)]
    offset_table: BTreeMap<i32, i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data_version: Option<serde_json::Value>,
}

/// What a queue holds at an offset.
pub(crate) enum Entry {
    /// A record and its consume-queue tags code.
    Found { record: Bytes, tags_code: i64 },
    /// Nothing readable there; continue at this offset.
    Skip(i64),
    /// Nothing (yet) at or after the offset.
    Empty,
}

/// The entry at `offset` of `topic`/`queue_id`.
pub(crate) fn read_entry(store: &BrokerStore, topic: &str, queue_id: i32, offset: i64) -> Entry {
    store.with(Entry::Empty, |s| {
        let tags = Cell::new(0i64);
        let r = s.get_messages(topic, queue_id, QueueOffset(offset), 1, i32::MAX, &|t| {
            tags.set(t);
            true
        });
        match r.status {
            GetStatus::Found => match r.messages.into_iter().next() {
                Some(record) => Entry::Found {
                    record,
                    tags_code: tags.get(),
                },
                None => Entry::Empty,
            },
            _ if r.next_begin_offset.get() > offset => Entry::Skip(r.next_begin_offset.get()),
            _ => Entry::Empty,
        }
    })
}

/// The message a parked record turns into when due: real topic and queue,
/// same body, flag, properties, sys flag, born/store hosts, born time and
/// reconsume times (Java `messageTimeUp`, which stores the properties string
/// as it was, so `DELAY`, `REAL_TOPIC` and `REAL_QID` stay visible). With
/// `drop_props` or `add_props`, those properties are removed, then these set
/// (the timer wheel's re-put, Java `TimerMessageStore.convertMessage`).
pub(crate) fn unpark(
    record: &[u8],
    drop_props: &[&str],
    add_props: &[(&str, String)],
) -> Result<MessageToStore, String> {
    let view = store::record::decode(record).map_err(|e| e.to_string())?;
    let mut props = message::decode_properties(view.properties);
    let real_topic = props
        .get(properties::REAL_TOPIC)
        .cloned()
        .ok_or("no REAL_TOPIC property")?;
    let real_qid = props
        .get(properties::REAL_QID)
        .and_then(|q| q.parse::<i32>().ok())
        .unwrap_or(0);
    let properties = if drop_props.is_empty() && add_props.is_empty() {
        view.properties.to_owned()
    } else {
        for p in drop_props {
            props.shift_remove(*p);
        }
        for (k, v) in add_props {
            props.insert((*k).to_owned(), v.clone());
        }
        message::encode_properties(&props)
    };
    Ok(MessageToStore {
        topic: real_topic,
        queue_id: real_qid,
        flag: view.flag,
        body: Bytes::copy_from_slice(view.body),
        properties,
        sys_flag: view.sys_flag,
        born_timestamp: view.born_timestamp,
        born_host: view.born_host,
        store_host: view.store_host,
        reconsume_times: view.reconsume_times,
        prepared_transaction_offset: view.prepared_transaction_offset,
    })
}

pub struct ScheduleService {
    store: Arc<BrokerStore>,
    /// Delay per level in ms, index = level − 1.
    levels: Vec<i64>,
    offsets: Mutex<BTreeMap<i32, i64>>,
    path: PathBuf,
    dirty: AtomicBool,
}

impl ScheduleService {
    /// Loads `delayOffset.json` from `config_dir`, clamping offsets into the
    /// queues' current bounds (Java `correctDelayOffset`).
    pub fn open(
        store: Arc<BrokerStore>,
        config_dir: PathBuf,
        message_delay_level: &str,
    ) -> anyhow::Result<ScheduleService> {
        let levels = parse_levels(message_delay_level).map_err(anyhow::Error::msg)?;
        let path = config_dir.join("delayOffset.json");
        let file = read_json::<DelayOffsetFile>(&path)?.unwrap_or_default();
        let mut offsets = file.offset_table;
        for (level, off) in offsets.iter_mut() {
            let qid = level - 1;
            let (min, max) = store.with((0, 0), |s| {
                (
                    s.min_offset(topic::SCHEDULE_TOPIC, qid).get(),
                    s.max_offset(topic::SCHEDULE_TOPIC, qid).get(),
                )
            });
            let fixed = (*off).clamp(min, max.max(min));
            if fixed != *off {
                warn!(level, from = *off, to = fixed, "delay offset corrected");
                *off = fixed;
            }
        }
        info!(path = %path.display(), levels = levels.len(), ?offsets, "delay offsets loaded");
        Ok(ScheduleService {
            store,
            levels,
            offsets: Mutex::new(offsets),
            path,
            dirty: AtomicBool::new(false),
        })
    }

    /// Levels beyond the topic's 18 queues are not served.
    pub fn max_level(&self) -> i32 {
        (self.levels.len() as i32).min(topic_queue_limit())
    }

    /// Java `HookUtils.handleScheduleMessage`: parks `msg` in the level's
    /// queue (levels above the maximum are clamped). `props` are the message's
    /// properties; the caller encodes them afterwards.
    pub fn park(&self, msg: &mut MessageToStore, props: &mut IndexMap<String, String>, level: i32) {
        let level = level.min(self.max_level()).max(1);
        props.insert(properties::DELAY.to_owned(), level.to_string());
        props.insert(properties::REAL_TOPIC.to_owned(), msg.topic.clone());
        props.insert(properties::REAL_QID.to_owned(), msg.queue_id.to_string());
        msg.topic = topic::SCHEDULE_TOPIC.to_owned();
        msg.queue_id = level - 1;
    }

    fn offset(&self, level: i32) -> i64 {
        *self
            .offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&level)
            .unwrap_or(&0)
    }

    fn set_offset(&self, level: i32, offset: i64) {
        self.offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(level, offset);
        self.dirty.store(true, Ordering::Release);
    }

    /// Per-level offsets (level → next queue offset to deliver).
    pub fn offsets(&self) -> BTreeMap<i32, i64> {
        self.offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `delayOffset.json` as Java's `ScheduleMessageService.encode` (the
    /// GET_ALL_DELAY_OFFSET body a slave syncs from).
    pub fn encode(&self) -> Vec<u8> {
        let file = DelayOffsetFile {
            offset_table: self.offsets(),
            data_version: None,
        };
        serde_json::to_vec(&file).unwrap_or_default()
    }

    /// Slave sync: takes the master's offsets (Java
    /// `loadWhenSyncDelayOffset`) and persists them.
    pub fn sync_offsets(&self, body: &[u8]) -> Result<(), String> {
        let file: DelayOffsetFile =
            remoting::body::from_fastjson(body).map_err(|e| e.to_string())?;
        let mut offsets = self.offsets.lock().unwrap_or_else(|p| p.into_inner());
        if *offsets != file.offset_table {
            *offsets = file.offset_table;
            self.dirty.store(true, Ordering::Release);
        }
        drop(offsets);
        self.persist();
        Ok(())
    }

    pub fn persist(&self) {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let file = DelayOffsetFile {
            offset_table: self.offsets(),
            data_version: Some(serde_json::json!({
                "counter": 0, "stateVersion": 0, "timestamp": remoting::body::now_millis()
            })),
        };
        let bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        if let Err(e) = write_atomically(&self.path, &bytes) {
            self.dirty.store(true, Ordering::Release);
            warn!(path = %self.path.display(), error = %e, "cannot persist delay offsets");
        }
    }

    /// Starts one delivery task per level and the persister on `tasks`.
    pub fn start(self: &Arc<Self>, tasks: &TaskTracker, shutdown: &CancellationToken) {
        self.dirty.store(true, Ordering::Release);
        self.persist();
        for level in 1..=self.max_level() {
            let s = self.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move { s.deliver_loop(level, shutdown).await });
        }
        let s = self.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(PERSIST_INTERVAL);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => s.persist(),
                }
            }
            s.persist();
        });
    }

    async fn deliver_loop(&self, level: i32, shutdown: CancellationToken) {
        let qid = level - 1;
        let delay = self.levels[(level - 1) as usize];
        loop {
            let off = self.offset(level);
            let wait = match read_entry(&self.store, topic::SCHEDULE_TOPIC, qid, off) {
                Entry::Empty => IDLE_WAIT,
                Entry::Skip(next) => {
                    self.set_offset(level, next);
                    continue;
                }
                Entry::Found { record, tags_code } => {
                    let now = remoting::body::now_millis();
                    // Java `correctDeliverTimestamp`: never later than now + delay.
                    let due = tags_code.min(now + delay);
                    if due > now {
                        Duration::from_millis((due - now) as u64)
                    } else {
                        match self.deliver(&record).await {
                            Ok(()) => {
                                self.set_offset(level, off + 1);
                                continue;
                            }
                            Err(e) => {
                                warn!(level, offset = off, error = %e, "delayed message re-put failed");
                                FAILURE_WAIT
                            }
                        }
                    }
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn deliver(&self, record: &[u8]) -> Result<(), String> {
        let msg = match unpark(record, &[], &[]) {
            Ok(m) => m,
            Err(e) => {
                // Unusable record: skip it, as Java does.
                warn!(error = %e, "dropping unusable delayed message");
                return Ok(());
            }
        };
        let r = self.store.put(&msg).await.map_err(|e| e.to_string())?;
        debug!(topic = %msg.topic, queue = msg.queue_id, offset = r.queue_offset.get(), "delayed message delivered");
        Ok(())
    }
}

/// SCHEDULE_TOPIC_XXXX has 18 queues.
fn topic_queue_limit() -> i32 {
    18
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_java_default_levels() {
        let l = parse_levels(store::DEFAULT_MESSAGE_DELAY_LEVEL).unwrap();
        assert_eq!(l.len(), 18);
        assert_eq!(l[0], 1000);
        assert_eq!(l[2], 10_000);
        assert_eq!(l[4], 60_000);
        assert_eq!(l[17], 7_200_000);
        assert!(parse_levels("1x").is_err());
        assert!(parse_levels("1é").is_err());
        assert!(parse_levels("s").is_err());
    }

    #[test]
    fn reads_java_delay_offset_file() {
        let f: DelayOffsetFile = remoting::body::from_fastjson(
            br#"{"offsetTable":{1:3,3:7},"dataVersion":{"counter":1,"timestamp":5}}"#,
        )
        .unwrap();
        assert_eq!(f.offset_table.get(&3), Some(&7));
    }
}
