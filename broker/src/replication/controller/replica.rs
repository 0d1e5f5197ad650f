//! The replication side of controller mode, behind [`ControllerReplication`]:
//! what the role manager tells the store/HA layer on a role change and what
//! it reads back for heartbeats, GET_BROKER_EPOCH_CACHE and SyncStateSet
//! reports. [`LocalReplication`] is the stand-in without HA (no data moves
//! between brokers): it keeps the epoch file and reports the store's max
//! offset; the AutoSwitch HA implementation replaces it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use store::{CommitLogOffset, MessageStore};
use tracing::warn;

use super::wire::EpochEntry;
use crate::store::BrokerStore;

/// What controller mode needs from replication (Java `AutoSwitchHAService`
/// as the `ReplicasManager` uses it). Calls are short; none blocks on I/O
/// for long.
pub trait ControllerReplication: Send + Sync {
    /// This broker became master of `epoch` (append the epoch entry at the
    /// store's end, serve slaves, compute the confirm offset over `set`).
    fn change_to_master(&self, epoch: i32, sync_state_set: &BTreeSet<i64>);
    /// This broker became a slave of `master_addr` (broker port) in
    /// `epoch`; the master's HA address comes later through
    /// [`ControllerReplication::master_ha_learnt`].
    fn change_to_slave(&self, master_addr: &str, epoch: i32, own_id: i64);
    /// A REGISTER_BROKER answer from a name server named the master's HA
    /// address (`haServerAddr`).
    fn master_ha_learnt(&self, _ha_addr: &str) {}
    /// The controller confirmed a SyncStateSet (1001 answer, 1004, 1008).
    fn set_sync_state_set(&self, _set: &BTreeSet<i64>) {}
    /// Master: the set it wants the controller to confirm, if it differs
    /// from the confirmed one (expand on catch-up, shrink on lag).
    fn proposed_sync_state_set(&self) -> Option<BTreeSet<i64>> {
        None
    }
    /// Every epoch entry, oldest first; the last one's end is `i64::MAX`.
    fn epoch_entries(&self) -> Vec<EpochEntry>;
    /// The commit log's end.
    fn max_offset(&self) -> i64;
    /// The offset every in-sync replica holds.
    fn confirm_offset(&self) -> i64;
    fn shutdown(&self) {}
}

/// The stand-in: epoch file and offsets of the local store, no HA.
pub struct LocalReplication {
    store: Arc<BrokerStore>,
    epochs: Mutex<Vec<(i32, i64)>>,
    path: PathBuf,
}

impl LocalReplication {
    /// Reads the epoch file at `path` (falling back to `path.bak`).
    pub fn open(store: Arc<BrokerStore>, path: PathBuf) -> LocalReplication {
        let epochs = read_epoch_file(&path)
            .or_else(|| read_epoch_file(&bak(&path)))
            .unwrap_or_default();
        LocalReplication {
            store,
            epochs: Mutex::new(epochs),
            path,
        }
    }

    fn persist(&self, entries: &[(i32, i64)]) {
        if let Err(e) = write_epoch_file(&self.path, entries) {
            warn!(path = %self.path.display(), error = %e, "epoch file not written");
        }
    }
}

fn bak(path: &std::path::Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".bak");
    PathBuf::from(p)
}

/// `CheckpointFile` text: count, CRC32 of the entry lines (masked to 31
/// bits), then `epoch-startOffset` lines (ha.md §4.10).
pub fn encode_epoch_file(entries: &[(i32, i64)]) -> String {
    let lines: String = entries.iter().map(|(e, s)| format!("{e}-{s}\n")).collect();
    let crc = crc32fast::hash(lines.as_bytes()) & 0x7FFF_FFFF;
    format!("{}\n{}\n{}", entries.len(), crc, lines)
}

/// Parses [`encode_epoch_file`]'s format; `None` when invalid.
pub fn decode_epoch_file(text: &str) -> Option<Vec<(i32, i64)>> {
    let mut lines = text.lines();
    let n: usize = lines.next()?.trim().parse().ok()?;
    let crc: i64 = lines.next()?.trim().parse().ok()?;
    let mut entries = Vec::with_capacity(n.min(1024));
    let mut body = String::new();
    for line in lines.take(n) {
        let (e, s) = line.trim().split_once('-')?;
        entries.push((e.parse().ok()?, s.parse().ok()?));
        body.push_str(line.trim());
        body.push('\n');
    }
    if entries.len() != n {
        return None;
    }
    if crc != 0 && i64::from(crc32fast::hash(body.as_bytes()) & 0x7FFF_FFFF) != crc {
        return None;
    }
    Some(entries)
}

fn read_epoch_file(path: &std::path::Path) -> Option<Vec<(i32, i64)>> {
    let text = std::fs::read_to_string(path).ok()?;
    decode_epoch_file(&text)
}

fn write_epoch_file(path: &std::path::Path, entries: &[(i32, i64)]) -> std::io::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, encode_epoch_file(entries))?;
    if path.exists() {
        std::fs::copy(path, bak(path))?;
    }
    std::fs::rename(&tmp, path)
}

impl ControllerReplication for LocalReplication {
    fn change_to_master(&self, epoch: i32, _sync_state_set: &BTreeSet<i64>) {
        let start = self.max_offset();
        let snapshot = {
            let mut e = self.epochs.lock().unwrap_or_else(|p| p.into_inner());
            // Java: entries with an epoch >= the new one are dropped first.
            e.retain(|(ep, _)| *ep < epoch);
            e.push((epoch, start));
            e.clone()
        };
        self.persist(&snapshot);
    }

    fn change_to_slave(&self, _master_addr: &str, _epoch: i32, _own_id: i64) {}

    fn epoch_entries(&self) -> Vec<EpochEntry> {
        let e = self.epochs.lock().unwrap_or_else(|p| p.into_inner());
        e.iter()
            .enumerate()
            .map(|(i, (epoch, start))| EpochEntry {
                epoch: *epoch,
                start_offset: *start,
                end_offset: e.get(i + 1).map_or(i64::MAX, |(_, s)| *s),
            })
            .collect()
    }

    fn max_offset(&self) -> i64 {
        self.store
            .with(CommitLogOffset(0), MessageStore::commit_log_max_offset)
            .get()
    }

    fn confirm_offset(&self) -> i64 {
        self.max_offset()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn epoch_file_round_trips_and_rejects_bad_crc() {
        let entries = vec![(1, 0), (2, 1024)];
        let text = encode_epoch_file(&entries);
        assert!(text.starts_with("2\n"));
        assert!(text.ends_with("1-0\n2-1024\n"));
        assert_eq!(decode_epoch_file(&text), Some(entries));
        let tampered = text.replace("2-1024", "2-1025");
        assert_eq!(decode_epoch_file(&tampered), None);
        assert_eq!(decode_epoch_file("x"), None);
        assert_eq!(decode_epoch_file("1\n0\n3-7\n"), Some(vec![(3, 7)]));
    }
}
