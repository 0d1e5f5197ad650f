//! Store errors. Request-level failures (a message too large, a bad batch) are
//! apart from I/O failures that mean the store cannot go on.

use std::path::PathBuf;

use crate::record::RecordError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Body longer than `max_message_size`, or a record that cannot fit in
    /// one commit-log segment.
    #[error("message of {size} bytes exceeds the maximum of {max}")]
    MessageTooLarge { size: usize, max: usize },
    /// The properties string is longer than the int16 length allows.
    #[error("properties of {size} bytes exceed the maximum of {max}")]
    PropertiesTooLarge { size: usize, max: usize },
    /// Empty, too long, or not usable as a directory name.
    #[error("invalid topic {0:?}")]
    InvalidTopic(String),
    #[error("invalid queue id {0}")]
    InvalidQueueId(i32),
    /// `put_messages` got messages for more than one topic or queue.
    #[error("messages of one put must share topic and queue")]
    MixedBatch,
    #[error("invalid batch body: {0}")]
    BadBatch(RecordError),
    /// ENOSPC while creating a segment; nothing of the request was written.
    #[error("disk full")]
    DiskFull,
    #[error("store is shut down")]
    ShutDown,
    /// Replicated mode: this store is not the log's writer (not master, or
    /// not yet: its queues are still being rebuilt); nothing was written.
    #[error("not the master of its replicated log (yet)")]
    NotWriter,
    /// The log is too busy to take the put now (Java OS_PAGE_CACHE_BUSY,
    /// e.g. DLedger 503); the client may retry.
    #[error("[PC_SYNCHRONIZED]broker busy, start flow control for a while")]
    Busy,
    /// A slave's local commit log takes only what its master ships (Java's
    /// store refuses puts in slave mode); nothing was written.
    #[error("message store is slave mode, so putMessage is forbidden")]
    SlaveMode,
    /// Fewer in-sync replicas than the put needs (Java
    /// IN_SYNC_REPLICAS_NOT_ENOUGH); nothing was written.
    #[error("in-sync replicas not enough")]
    InSyncReplicasNotEnough,
    /// Replica side: bytes offered at an offset other than the log's end.
    #[error("replica data offered at {offered}, but the commit log ends at {expected}")]
    ReplicaOffset { offered: i64, expected: i64 },
    #[error("store directory is locked by another process: {0}")]
    Locked(PathBuf),
    #[error("corrupt store file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(transparent)]
    Io(std::io::Error),
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::StorageFull {
            StoreError::DiskFull
        } else {
            StoreError::Io(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_disk_full() {
        let e = std::io::Error::from_raw_os_error(28); // ENOSPC
        assert!(matches!(StoreError::from(e), StoreError::DiskFull));
        let e = std::io::Error::from(rustix::io::Errno::NOSPC);
        assert!(matches!(StoreError::from(e), StoreError::DiskFull));
        let e = std::io::Error::from_raw_os_error(5); // EIO
        assert!(matches!(StoreError::from(e), StoreError::Io(_)));
    }
}
