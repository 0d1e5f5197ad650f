//! The durable home of Auth 2.0 users and ACLs on this broker.
//!
//! Java keeps them in two RocksDB databases under `authConfigPath`; we keep
//! our own files in `<authConfigPath>/auth/` (Java's RocksDB is not read):
//!
//! - `snapshot.json`: the whole metadata at some point (written to a
//!   temporary file, fsynced, renamed, directory fsynced);
//! - `changes.log`: every change since, one record each, appended and
//!   fsynced before the admin call is answered, whatever `flushDiskType`
//!   says: these are rare admin calls, so the fsync costs nothing that
//!   matters, and a deleted user or a revoked permission must not come
//!   back after an operating-system crash.
//!
//! ```text
//! record = len: u32 LE | crc32(payload): u32 LE | payload: JSON of acl::v2::Change
//! ```
//!
//! At open the snapshot is read, then the log is replayed up to the first
//! record that is short or fails its checksum (a write torn by a crash,
//! never acknowledged); the log is cut there. The framing, the cut and the
//! compaction (when the log outgrows the snapshot) are the metadata journal's
//! ([`crate::meta::journal`]); here compaction is synchronous (changes are
//! rare admin calls).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use acl::v2::admin::{AclInfo, UserInfo};
use acl::v2::{Change, Metadata};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::meta::journal::{FlushDisk, Journal, JournalError};

const SNAPSHOT: &str = "snapshot.json";
const LOG: &str = "changes.log";
/// The log is folded into the snapshot past this size (or twice the
/// snapshot's).
const COMPACT_AFTER_BYTES: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum AuthStoreError {
    #[error("auth store {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("auth store snapshot {path} does not parse: {error}")]
    Snapshot { path: PathBuf, error: String },
    #[error("auth store: {0}")]
    Journal(#[from] JournalError),
}

#[derive(Serialize, Deserialize, Default)]
struct Snapshot {
    users: Vec<UserInfo>,
    acls: Vec<AclInfo>,
}

pub struct AuthStore {
    journal: Arc<Journal>,
    meta: Metadata,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuthStoreError + '_ {
    move |error| AuthStoreError::Io {
        path: path.to_owned(),
        error,
    }
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
        let (journal, payloads) = Journal::open(
            &dir.join(LOG),
            &snap_path,
            COMPACT_AFTER_BYTES,
            FlushDisk::Sync,
        )?;
        for p in payloads {
            match serde_json::from_slice::<Change>(&p) {
                Ok(c) => meta.apply(&c),
                Err(e) => warn!(error = %e, "auth store: unreadable change skipped"),
            }
        }
        info!(
            users = meta.users.len(),
            acls = meta.acls.len(),
            "auth store opened"
        );
        let store = AuthStore {
            journal: Arc::new(journal),
            meta,
        };
        store.compact_if_due()?;
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
        let mut last = 0;
        for c in changes {
            let payload = serde_json::to_vec(c).unwrap_or_default();
            last = self.journal.append(&payload)?;
        }
        self.journal.sync(last)?;
        for c in changes {
            self.meta.apply(c);
        }
        self.compact_if_due()
    }

    /// Writes the metadata as a new snapshot and empties the log. A crash in
    /// between leaves the old log over the new snapshot; replaying it again
    /// gives the same state (every change is a put or a delete of a whole
    /// user or ACL).
    fn compact_if_due(&self) -> Result<(), AuthStoreError> {
        if !self.journal.wants_compaction() {
            return Ok(());
        }
        let Some(c) = self.journal.begin_compaction()? else {
            return Ok(());
        };
        let snap = Snapshot {
            users: self.meta.users.values().map(UserInfo::from).collect(),
            acls: self.meta.acls.values().map(AclInfo::from).collect(),
        };
        c.finish(&serde_json::to_vec(&snap).unwrap_or_default())?;
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
        let full = crate::meta::journal::frame(&serde_json::to_vec(&put("u3")).expect("json"));
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
            for i in 0..1000 {
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
