//! Unit tests of the log store: the fixtures every file shares, then one
//! file per part of the store.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::coder::IndexRecord;
use super::*;
use crate::core::Storage;
use crate::entry::Entry;

mod flush;
mod read;
mod recover;
mod storage;
mod truncate;

const DATA: usize = 1024;
const INDEX: usize = 8 * INDEX_UNIT_SIZE;

fn cfg(dir: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir, "n0");
    c.mapped_file_size_for_entry_data = DATA;
    c.mapped_file_size_for_entry_index = INDEX;
    c
}

fn open(dir: &Path) -> DLedgerStore {
    DLedgerStore::open(cfg(dir)).expect("open")
}

/// A body giving a stored entry of exactly `size` bytes.
fn body(size: usize, fill: u8) -> Bytes {
    Bytes::from(vec![fill; size - 48])
}

fn data_file(dir: &Path, base: i64) -> PathBuf {
    cfg(dir).data_path().join(file_name(base))
}

fn leader_log(dir: &Path, n: usize) -> (DLedgerStore, Vec<Entry>) {
    let mut s = open(dir);
    let v = (0..n)
        .map(|i| {
            s.append_leader(1 + i as i64 / 4, body(100 + (37 * i) % 800, i as u8))
                .expect("append")
        })
        .collect();
    (s, v)
}

#[test]
fn the_store_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<DLedgerStore>();
}
