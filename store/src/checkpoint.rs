//! The `checkpoint` file (Java `StoreCheckpoint`): one OS page holding
//!
//! ```text
//!  0  physicMsgTimestamp   i64  store time of the last flushed commit-log record
//!  8  logicsMsgTimestamp   i64  same for consume queues
//! 16  indexMsgTimestamp    i64  same for the index (0 until the index exists)
//! 24  masterFlushedOffset  i64  (5.x; 0 here)
//! 32  confirmPhyOffset     i64  (5.x; commit-log offset known flushed)
//! ```
//! After a crash, recovery starts at the last segment whose first record is
//! no newer than `min(physic, logics) - 3 s` (Java `getMinTimestamp`).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::StoreError;

const FILE_SIZE: u64 = 4096;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CheckpointData {
    pub(crate) physic_msg_timestamp: i64,
    pub(crate) logics_msg_timestamp: i64,
    pub(crate) index_msg_timestamp: i64,
    pub(crate) master_flushed_offset: i64,
    pub(crate) confirm_phy_offset: i64,
}

impl CheckpointData {
    fn to_bytes(self) -> [u8; 40] {
        let mut b = [0u8; 40];
        for (i, v) in [
            self.physic_msg_timestamp,
            self.logics_msg_timestamp,
            self.index_msg_timestamp,
            self.master_flushed_offset,
            self.confirm_phy_offset,
        ]
        .into_iter()
        .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
        }
        b
    }

    fn from_bytes(b: &[u8; 40]) -> Self {
        let at = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i * 8..i * 8 + 8]);
            i64::from_be_bytes(x)
        };
        CheckpointData {
            physic_msg_timestamp: at(0),
            logics_msg_timestamp: at(1),
            index_msg_timestamp: at(2),
            master_flushed_offset: at(3),
            confirm_phy_offset: at(4),
        }
    }

    /// Java `StoreCheckpoint.getMinTimestamp`.
    pub(crate) fn min_timestamp(&self) -> i64 {
        (self.physic_msg_timestamp.min(self.logics_msg_timestamp) - 3000).max(0)
    }
}

pub(crate) struct Checkpoint {
    file: File,
}

impl Checkpoint {
    pub(crate) fn open(path: &Path) -> Result<(Checkpoint, CheckpointData), StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if file.metadata()?.len() < FILE_SIZE {
            file.set_len(FILE_SIZE)?;
        }
        let mut b = [0u8; 40];
        file.read_exact_at(&mut b, 0)?;
        Ok((Checkpoint { file }, CheckpointData::from_bytes(&b)))
    }

    pub(crate) fn write(&self, data: CheckpointData) -> Result<(), StoreError> {
        self.file.write_all_at(&data.to_bytes(), 0)?;
        self.file.sync_data()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("checkpoint");
        let (cp, d) = Checkpoint::open(&path).expect("open");
        assert_eq!(d, CheckpointData::default());
        let d = CheckpointData {
            physic_msg_timestamp: 0x0102,
            logics_msg_timestamp: 5000,
            index_msg_timestamp: 3,
            master_flushed_offset: 0,
            confirm_phy_offset: 77,
        };
        cp.write(d).expect("write");
        drop(cp);
        let raw = std::fs::read(&path).expect("read");
        assert_eq!(raw.len(), 4096);
        assert_eq!(&raw[..8], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(&raw[32..40], &77i64.to_be_bytes());
        let (_, back) = Checkpoint::open(&path).expect("open");
        assert_eq!(back, d);
        assert_eq!(back.min_timestamp(), 0);
    }
}
