//! The durable home of Auth 2.0 users and ACLs on this broker.
//!
//! Java keeps them in two RocksDB databases under `authConfigPath`; we keep
//! our own files in `<authConfigPath>/auth/` (Java's RocksDB is not read):
//!
//! - `snapshot.json`: the whole metadata at some point (written to a
//!   temporary file, fsynced, renamed, directory fsynced);
//! - `changes.log`: every change since, one record each, appended and
//!   fsynced before the admin call is answered.
//!
//! ```text
//! record = len: u32 LE | crc32(payload): u32 LE | payload: JSON of acl::v2::Change
//! ```
//!
//! At open the snapshot is read, then the log is replayed up to the first
//! record that is short or fails its checksum (a write torn by a crash,
//! never acknowledged); the log is cut there. When the log holds more than
//! [`COMPACT_AFTER`] records it is folded into a new snapshot.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use acl::v2::admin::{AclInfo, UserInfo};
use acl::v2::{Change, Metadata};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

const SNAPSHOT: &str = "snapshot.json";
const LOG: &str = "changes.log";
const COMPACT_AFTER: usize = 1000;
/// Larger records are taken for corruption (a user or ACL is a few KiB).
const MAX_RECORD: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AuthStoreError {
    #[error("auth store {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("auth store snapshot {path} does not parse: {error}")]
    Snapshot { path: PathBuf, error: String },
}

#[derive(Serialize, Deserialize, Default)]
struct Snapshot {
    users: Vec<UserInfo>,
    acls: Vec<AclInfo>,
}

pub struct AuthStore {
    dir: PathBuf,
    log: File,
    records: usize,
    meta: Metadata,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuthStoreError + '_ {
    move |error| AuthStoreError::Io {
        path: path.to_owned(),
        error,
    }
}

/// Splits `bytes` into the payloads of whole, intact records and the length
/// of that valid prefix.
pub(crate) fn scan(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 8 {
        let len =
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let crc = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        if len > MAX_RECORD || bytes.len() - at - 8 < len {
            break;
        }
        let payload = &bytes[at + 8..at + 8 + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        out.push(payload);
        at += 8 + len;
    }
    (out, at)
}

fn record(change: &Change) -> Vec<u8> {
    let payload = serde_json::to_vec(change).unwrap_or_default();
    let mut r = Vec::with_capacity(payload.len() + 8);
    r.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    r.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    r.extend_from_slice(&payload);
    r
}

fn sync_dir(dir: &Path) -> Result<(), AuthStoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

impl AuthStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, AuthStoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut meta = Metadata::default();
        let snap_path = dir.join(SNAPSHOT);
        match std::fs::read(&snap_path) {
            Ok(bytes) => {
                let snap: Snapshot =
                    serde_json::from_slice(&bytes).map_err(|e| AuthStoreError::Snapshot {
                        path: snap_path.clone(),
                        error: e.to_string(),
                    })?;
                for user in snap.users {
                    meta.apply(&Change::PutUser { user });
                }
                for acl in snap.acls {
                    meta.apply(&Change::PutAcl { acl });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&snap_path)(e)),
        }
        let log_path = dir.join(LOG);
        let mut log = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        let mut bytes = Vec::new();
        log.read_to_end(&mut bytes).map_err(io(&log_path))?;
        let (payloads, valid) = scan(&bytes);
        let mut records = 0;
        for p in payloads {
            match serde_json::from_slice::<Change>(p) {
                Ok(c) => meta.apply(&c),
                Err(e) => warn!(error = %e, "auth store: unreadable change skipped"),
            }
            records += 1;
        }
        if valid < bytes.len() {
            warn!(path = %log_path.display(), valid, len = bytes.len(), "auth store: torn tail dropped");
            log.set_len(valid as u64).map_err(io(&log_path))?;
            log.sync_all().map_err(io(&log_path))?;
        }
        info!(
            users = meta.users.len(),
            acls = meta.acls.len(),
            "auth store opened"
        );
        let mut store = AuthStore {
            dir: dir.to_owned(),
            log,
            records,
            meta,
        };
        if store.records > COMPACT_AFTER {
            store.compact()?;
        }
        Ok(store)
    }

    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// Makes `changes` durable, then applies them. On an error nothing is
    /// applied in memory (a torn record is dropped at the next open).
    pub fn commit(&mut self, changes: &[Change]) -> Result<(), AuthStoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for c in changes {
            buf.extend_from_slice(&record(c));
        }
        let path = self.dir.join(LOG);
        self.log.write_all(&buf).map_err(io(&path))?;
        self.log.sync_data().map_err(io(&path))?;
        for c in changes {
            self.meta.apply(c);
        }
        self.records += changes.len();
        if self.records > COMPACT_AFTER {
            self.compact()?;
        }
        Ok(())
    }

    /// Writes the metadata as a new snapshot and empties the log. A crash in
    /// between leaves the old log over the new snapshot; replaying it again
    /// gives the same state (every change is a put or a delete of a whole
    /// user or ACL).
    fn compact(&mut self) -> Result<(), AuthStoreError> {
        let snap = Snapshot {
            users: self.meta.users.values().map(UserInfo::from).collect(),
            acls: self.meta.acls.values().map(AclInfo::from).collect(),
        };
        let tmp = self.dir.join("snapshot.json.tmp");
        let bytes = serde_json::to_vec(&snap).unwrap_or_default();
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        let snap_path = self.dir.join(SNAPSHOT);
        std::fs::rename(&tmp, &snap_path).map_err(io(&snap_path))?;
        sync_dir(&self.dir)?;
        let log_path = self.dir.join(LOG);
        self.log.set_len(0).map_err(io(&log_path))?;
        self.log.sync_all().map_err(io(&log_path))?;
        self.records = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(name: &str) -> Change {
        Change::PutUser {
            user: UserInfo {
                password: Some("secret-1".into()),
                user_status: Some("enable".into()),
                user_type: Some("Normal".into()),
                username: Some(name.into()),
            },
        }
    }

    #[test]
    fn survives_reopen_and_drops_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut s = AuthStore::open(dir.path()).expect("open");
            s.commit(&[put("u1")]).expect("commit");
            s.commit(&[put("u2")]).expect("commit");
        }
        // A torn third record: every cut of it is dropped, the rest kept.
        let full = record(&put("u3"));
        let log = dir.path().join(LOG);
        let good = std::fs::read(&log).expect("log");
        for cut in 0..full.len() {
            let mut bytes = good.clone();
            bytes.extend_from_slice(&full[..cut]);
            std::fs::write(&log, &bytes).expect("write");
            let s = AuthStore::open(dir.path()).expect("reopen");
            let names: Vec<_> = s.metadata().users.keys().cloned().collect();
            assert_eq!(names, ["u1", "u2"], "cut {cut}");
            assert_eq!(std::fs::read(&log).expect("log").len(), good.len());
        }
        // A flipped byte in the last record drops it too.
        let mut bytes = good.clone();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x40;
        std::fs::write(&log, &bytes).expect("write");
        let s = AuthStore::open(dir.path()).expect("reopen");
        assert_eq!(s.metadata().users.len(), 1);
    }

    #[test]
    fn compaction_keeps_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut s = AuthStore::open(dir.path()).expect("open");
            for i in 0..(COMPACT_AFTER + 5) {
                s.commit(&[put(&format!("u{}", i % 7))]).expect("commit");
            }
            s.commit(&[Change::DeleteUser {
                username: "u0".into(),
            }])
            .expect("commit");
        }
        let s = AuthStore::open(dir.path()).expect("reopen");
        assert_eq!(s.metadata().users.len(), 6);
        assert!(!s.metadata().users.contains_key("u0"));
        assert!(dir.path().join(SNAPSHOT).exists());
    }
}
