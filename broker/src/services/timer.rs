//! 5.x delivery times (`TIMER_DELIVER_MS`, `TIMER_DELAY_SEC`,
//! `TIMER_DELAY_MS`). Not Java's wheel files; same behaviour:
//!
//! - On send the message is parked in `rmq_sys_wheel_timer` queue 0 with
//!   `TIMER_OUT_MS` = due time and `REAL_TOPIC` / `REAL_QID`.
//! - A scanner reads that queue in order into an in-memory set ordered by
//!   (due time, queue offset); a deliverer re-puts what is due to the real
//!   topic.
//! - `config/timerProgress.json` holds the low-water mark (every entry below
//!   it is delivered) and the delivered offsets above it, so a restart
//!   rescans from the mark and delivers each message once (a crash between a
//!   re-put and the next progress write can deliver it twice).
//! - GET_TIMER_CHECK_POINT (60) answers Java's 56-byte `TimerCheckpoint`:
//!   `lastReadTimeMs` = every scanned entry due before it is delivered,
//!   `masterTimerQueueOffset` = entries below it are scanned. A slave (a
//!   DLedger follower) syncs it from the master and, once master itself,
//!   skips what the old master delivered: entries below that offset due
//!   before that time (Java's timer store resumes the same way). Deliveries
//!   since the last sync (3 s) may come twice; none is lost.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use store::{properties, MessageToStore, QueueOffset};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::meta::topic::{self, read_json, write_atomically};
use crate::services::schedule::{read_entry, unpark, Entry};
use crate::store::BrokerStore;

/// Java `timerMaxDelaySec` default: 3 days.
pub const MAX_DELAY_MS: i64 = 3 * 24 * 3600 * 1000;
const TICK: Duration = Duration::from_millis(50);

/// The due time a message's timer properties ask for, if any (`now` for
/// the relative ones).
pub fn requested_due(props: &IndexMap<String, String>, now: i64) -> Option<Result<i64, String>> {
    let parse = |k: &str| {
        props
            .get(k)
            .map(|v| v.parse::<i64>().map_err(|_| format!("bad {k} {v:?}")))
    };
    if let Some(v) = parse(properties::TIMER_DELIVER_MS) {
        return Some(v);
    }
    if let Some(v) = parse(properties::TIMER_DELAY_SEC) {
        return Some(v.map(|s| now.saturating_add(s.saturating_mul(1000))));
    }
    parse(properties::TIMER_DELAY_MS).map(|v| v.map(|ms| now.saturating_add(ms)))
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProgressFile {
    commit_offset: i64,
    #[serde(default)]
    delivered: Vec<i64>,
    /// The master's checkpoint last synced (slaves): see [`MasterMark`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    master: Option<MasterMark>,
}

/// What a master had delivered when a slave last synced: every entry below
/// `queue_offset` due before `read_time_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MasterMark {
    read_time_ms: i64,
    queue_offset: i64,
}

impl MasterMark {
    fn delivered(&self, due: i64, off: i64) -> bool {
        off < self.queue_offset && due < self.read_time_ms
    }
}

/// GET_TIMER_CHECK_POINT (Java 5.x `RequestCode`).
pub const GET_TIMER_CHECK_POINT: i32 = 60;
/// Java `TimerCheckpoint.encode`: four longs and a data version.
const CHECKPOINT_LEN: usize = 56;

#[derive(Default)]
struct State {
    /// Next queue offset to scan.
    scan: i64,
    /// (due ms, queue offset) not yet delivered.
    pending: BTreeSet<(i64, i64)>,
    /// Delivered offsets at or above the low-water mark.
    delivered: HashSet<i64>,
    /// Synced from the master while a slave.
    master: Option<MasterMark>,
    /// Data version counter of the checkpoint answered.
    version: i64,
    dirty: bool,
}

impl State {
    fn low_water(&self) -> i64 {
        self.pending
            .iter()
            .map(|(_, o)| *o)
            .min()
            .unwrap_or(self.scan)
            .min(self.scan)
    }
}

pub struct TimerService {
    store: Arc<BrokerStore>,
    state: Mutex<State>,
    path: PathBuf,
}

impl TimerService {
    pub fn open(store: Arc<BrokerStore>, config_dir: PathBuf) -> anyhow::Result<TimerService> {
        let path = config_dir.join("timerProgress.json");
        let file = read_json::<ProgressFile>(&path)?.unwrap_or_default();
        let min = store.with(0, |s| s.min_offset(topic::TIMER_TOPIC, 0).get());
        let state = State {
            scan: file.commit_offset.max(min),
            delivered: file.delivered.into_iter().collect(),
            master: file.master,
            ..State::default()
        };
        info!(path = %path.display(), from = state.scan, "timer progress loaded");
        Ok(TimerService {
            store,
            state: Mutex::new(state),
            path,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parks `msg` until `due` (Java `HookUtils.transformTimerMessage`).
    pub fn park(&self, msg: &mut MessageToStore, props: &mut IndexMap<String, String>, due: i64) {
        props.insert(properties::TIMER_OUT_MS.to_owned(), due.to_string());
        props.insert(properties::REAL_TOPIC.to_owned(), msg.topic.clone());
        props.insert(properties::REAL_QID.to_owned(), msg.queue_id.to_string());
        msg.topic = topic::TIMER_TOPIC.to_owned();
        msg.queue_id = 0;
    }

    pub fn start(self: &Arc<Self>, tasks: &TaskTracker, shutdown: &CancellationToken) {
        let s = self.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        s.scan();
                        s.deliver_due().await;
                        s.persist();
                    }
                }
            }
            s.persist();
        });
    }

    fn scan(&self) {
        let mut st = self.lock();
        for _ in 0..10_000 {
            let off = st.scan;
            let record = match read_entry(&self.store, topic::TIMER_TOPIC, 0, off) {
                Entry::Empty => break,
                Entry::Skip(next) => {
                    st.scan = next;
                    None
                }
                Entry::Found { record, .. } => {
                    st.scan = off + 1;
                    Some(record)
                }
            };
            // The scan moved: the progress to persist changed even when
            // nothing is pending (entries delivered before, or by the master).
            st.dirty = true;
            if let Some(record) = record {
                if st.delivered.contains(&off) {
                    continue;
                }
                let due = store::record::decode(&record)
                    .ok()
                    .and_then(|v| {
                        properties::get(v.properties, properties::TIMER_OUT_MS)
                            .and_then(|d| d.parse::<i64>().ok())
                    })
                    .unwrap_or(0);
                if st.master.is_some_and(|m| m.delivered(due, off)) {
                    continue;
                }
                st.pending.insert((due, off));
            }
        }
    }

    async fn deliver_due(&self) {
        let now = remoting::body::now_millis();
        loop {
            let next = {
                let st = self.lock();
                st.pending.iter().next().copied()
            };
            let Some((due, off)) = next else { return };
            if due > now {
                return;
            }
            let Some(phys) = self.store.with(None, |s| {
                s.commit_log_offset_in_queue(topic::TIMER_TOPIC, 0, QueueOffset(off))
            }) else {
                warn!(offset = off, "timer entry vanished");
                self.done(due, off);
                continue;
            };
            let Some(record) = self.store.with(None, |s| s.message_at(phys)) else {
                self.done(due, off);
                continue;
            };
            // As Java's timer re-put: the delivery properties stay (clients
            // and proxies read the delivery time from them; `TIMER_OUT_MS`
            // keeps the send path from parking the message again), the
            // real topic and queue go, the dequeue time is added.
            let msg = match unpark(
                &record,
                &[properties::REAL_TOPIC, properties::REAL_QID],
                &[(
                    properties::TIMER_DEQUEUE_MS,
                    remoting::body::now_millis().to_string(),
                )],
            ) {
                Ok(m) => m,
                Err(e) => {
                    warn!(offset = off, error = %e, "dropping unusable timer message");
                    self.done(due, off);
                    continue;
                }
            };
            match self.store.put(&msg).await {
                Ok(_) => {
                    debug!(topic = %msg.topic, offset = off, "timer message delivered");
                    self.done(due, off);
                }
                Err(e) => {
                    warn!(offset = off, error = %e, "timer message re-put failed");
                    return;
                }
            }
        }
    }

    fn done(&self, due: i64, off: i64) {
        let mut st = self.lock();
        st.pending.remove(&(due, off));
        st.delivered.insert(off);
        let low = st.low_water();
        st.delivered.retain(|o| *o >= low);
        st.dirty = true;
    }

    fn persist(&self) {
        let bytes = {
            let mut st = self.lock();
            if !st.dirty {
                return;
            }
            st.dirty = false;
            let mut delivered: Vec<i64> = st.delivered.iter().copied().collect();
            delivered.sort_unstable();
            serde_json::to_vec(&ProgressFile {
                commit_offset: st.low_water(),
                delivered,
                master: st.master,
            })
            .unwrap_or_default()
        };
        if let Err(e) = write_atomically(&self.path, &bytes) {
            self.lock().dirty = true;
            warn!(path = %self.path.display(), error = %e, "cannot persist timer progress");
        }
    }
}

impl TimerService {
    /// The GET_TIMER_CHECK_POINT body (Java `TimerCheckpoint.encode`). Every
    /// scanned entry due before the earliest pending one is delivered (with
    /// none pending: before now); a slave that has not scanned past its
    /// synced master mark answers that mark.
    pub fn checkpoint(&self) -> Vec<u8> {
        let mut st = self.lock();
        let (read_time_ms, queue_offset) = match st.master {
            Some(m) if st.scan < m.queue_offset => (m.read_time_ms, m.queue_offset),
            _ => (
                st.pending
                    .iter()
                    .next()
                    .map_or_else(remoting::body::now_millis, |(due, _)| *due),
                st.scan,
            ),
        };
        st.version += 1;
        let fields = [
            read_time_ms,
            0, // lastTimerLogFlushPos: no timer log here
            queue_offset,
            queue_offset,
            0, // data version: state version, timestamp, counter
            remoting::body::now_millis(),
            st.version,
        ];
        fields.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    /// Takes the master's GET_TIMER_CHECK_POINT answer (slave sync): what
    /// it delivered is dropped from this broker's pending set now and
    /// skipped by its scans later.
    pub fn sync_from_master(&self, body: &[u8]) -> Result<(), String> {
        if body.len() < CHECKPOINT_LEN {
            return Err(format!("timer checkpoint of {} bytes", body.len()));
        }
        let long = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[at..at + 8]);
            i64::from_be_bytes(b)
        };
        let mark = MasterMark {
            read_time_ms: long(0),
            queue_offset: long(24),
        };
        {
            let mut st = self.lock();
            if st.master == Some(mark) {
                return Ok(());
            }
            st.master = Some(mark);
            st.pending.retain(|(due, off)| !mark.delivered(*due, *off));
            st.dirty = true;
        }
        self.persist();
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn master_mark_covers_entries_below_its_offset_due_before_its_time() {
        let m = MasterMark {
            read_time_ms: 1000,
            queue_offset: 10,
        };
        assert!(m.delivered(999, 9));
        assert!(!m.delivered(1000, 9), "due at the read time: maybe not yet");
        assert!(!m.delivered(5, 10), "not scanned by the master");
        let file: ProgressFile =
            serde_json::from_str(r#"{"commitOffset":3,"delivered":[5]}"#).unwrap();
        assert_eq!(file.master, None, "files written before the mark existed");
    }

    #[test]
    fn due_time_from_properties() {
        let mut p = IndexMap::new();
        assert!(requested_due(&p, 100).is_none());
        p.insert(properties::TIMER_DELAY_SEC.to_owned(), "3".to_owned());
        assert_eq!(requested_due(&p, 100).unwrap().unwrap(), 3100);
        p.insert(properties::TIMER_DELIVER_MS.to_owned(), "5000".to_owned());
        assert_eq!(requested_due(&p, 100).unwrap().unwrap(), 5000);
        p.insert(properties::TIMER_DELIVER_MS.to_owned(), "x".to_owned());
        assert!(requested_due(&p, 100).unwrap().is_err());
    }
}
