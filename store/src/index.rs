//! Java's `IndexFile` / `IndexService`: a hash index from `topic#key` (each
//! `KEYS` word and the `UNIQ_KEY`) to commit-log offsets, for QUERY_MESSAGE.
//!
//! File layout (big-endian, byte-for-byte Java's), `<root>/index/<yyyyMMddHHmmssSSS>`:
//!
//! ```text
//! 0    header, 40 bytes: beginTimestamp i64, endTimestamp i64,
//!      beginPhyOffset i64, endPhyOffset i64, hashSlotCount i32, indexCount i32
//! 40   hashSlotNum slots of 4 bytes: newest entry number for that slot (0 = none)
//! ...  indexNum entries of 20 bytes: keyHash i32, phyOffset i64,
//!      timeDiff i32 (seconds since beginTimestamp), prevIndex i32
//! ```
//!
//! Entry numbers start at 1 (`indexCount` starts at 1; entry 0 is never
//! used). The file is preallocated like the commit log and mapped whole
//! (as Java does): indexing a message is a few stores into memory instead
//! of positional-write syscalls, which kept it off the send path's budget.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;

use crate::error::StoreError;
use crate::properties;
use crate::record::{self, java_hash_continue, java_string_hash};

pub(crate) const INDEX_HEADER_SIZE: usize = 40;
pub(crate) const HASH_SLOT_SIZE: usize = 4;
pub(crate) const INDEX_SIZE: usize = 20;
const INVALID_INDEX: i32 = 0;
/// Java `MessageStoreConfig.maxMsgsNumBatch`: the cap on one query.
pub const MAX_MSGS_NUM_BATCH: usize = 64;

/// What [`crate::MessageStore::query_by_key`] returns (Java `QueryMessageResult`).
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    /// Whole stored records, newest index entries first.
    pub messages: Vec<Bytes>,
    /// End timestamp of the newest index file (0 when there is none).
    pub index_last_update_timestamp: i64,
    /// End physical offset of the newest index file (0 when there is none).
    pub index_last_update_phyoffset: i64,
}

/// Java `IndexFile.indexKeyHashMethod`: `abs(hashCode)`, and 0 for
/// `Integer.MIN_VALUE` (whose `Math.abs` stays negative).
pub fn index_key_hash(key: &str) -> i32 {
    java_string_hash(key).checked_abs().unwrap_or(0)
}

/// The Java hash of `topic#` (see [`index_key_hash_of`]).
pub(crate) fn topic_prefix_hash(topic: &str) -> i32 {
    java_hash_continue(java_hash_continue(0, topic), "#")
}

/// `index_key_hash(&build_key(topic, key))` without building the key, from
/// [`topic_prefix_hash`]`(topic)`.
pub(crate) fn index_key_hash_of(topic_prefix_hash: i32, key: &str) -> i32 {
    java_hash_continue(topic_prefix_hash, key)
        .checked_abs()
        .unwrap_or(0)
}

/// Java `IndexService.buildKey`.
pub fn build_key(topic: &str, key: &str) -> String {
    let mut k = String::with_capacity(topic.len() + 1 + key.len());
    k.push_str(topic);
    k.push('#');
    k.push_str(key);
    k
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexHeader {
    pub begin_timestamp: i64,
    pub end_timestamp: i64,
    pub begin_phy_offset: i64,
    pub end_phy_offset: i64,
    pub hash_slot_count: i32,
    pub index_count: i32,
}

impl Default for IndexHeader {
    fn default() -> Self {
        IndexHeader {
            begin_timestamp: 0,
            end_timestamp: 0,
            begin_phy_offset: 0,
            end_phy_offset: 0,
            hash_slot_count: 0,
            index_count: 1,
        }
    }
}

impl IndexHeader {
    pub(crate) fn encode(&self) -> [u8; INDEX_HEADER_SIZE] {
        let mut b = [0u8; INDEX_HEADER_SIZE];
        b[0..8].copy_from_slice(&self.begin_timestamp.to_be_bytes());
        b[8..16].copy_from_slice(&self.end_timestamp.to_be_bytes());
        b[16..24].copy_from_slice(&self.begin_phy_offset.to_be_bytes());
        b[24..32].copy_from_slice(&self.end_phy_offset.to_be_bytes());
        b[32..36].copy_from_slice(&self.hash_slot_count.to_be_bytes());
        b[36..40].copy_from_slice(&self.index_count.to_be_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8; INDEX_HEADER_SIZE]) -> IndexHeader {
        let l = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            i64::from_be_bytes(a)
        };
        let n = |i: usize| i32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut h = IndexHeader {
            begin_timestamp: l(0),
            end_timestamp: l(8),
            begin_phy_offset: l(16),
            end_phy_offset: l(24),
            hash_slot_count: n(32),
            index_count: n(36),
        };
        // Java `IndexHeader.load`.
        if h.index_count <= 0 {
            h.index_count = 1;
        }
        h
    }
}

/// The size of one index file.
pub(crate) fn file_size(slot_num: u32, index_num: u32) -> u64 {
    INDEX_HEADER_SIZE as u64
        + slot_num as u64 * HASH_SLOT_SIZE as u64
        + index_num as u64 * INDEX_SIZE as u64
}

/// One index file (Java `IndexFile`).
#[derive(Debug)]
pub(crate) struct IndexFile {
    path: PathBuf,
    map: memmap2::MmapMut,
    slot_num: u32,
    index_num: u32,
    header: IndexHeader,
    dirty: bool,
}

impl IndexFile {
    /// A new preallocated file; like Java, its begin/end start at the
    /// previous file's end.
    pub(crate) fn create(
        path: &Path,
        slot_num: u32,
        index_num: u32,
        end_phy_offset: i64,
        end_timestamp: i64,
    ) -> io::Result<IndexFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        let size = file_size(slot_num, index_num);
        if let Err(e) = crate::mmap::allocate(&file, size) {
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        let map = match crate::mmap::map_whole(&file, size as usize) {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
        };
        let mut header = IndexHeader::default();
        if end_phy_offset > 0 {
            header.begin_phy_offset = end_phy_offset;
            header.end_phy_offset = end_phy_offset;
        }
        if end_timestamp > 0 {
            header.begin_timestamp = end_timestamp;
            header.end_timestamp = end_timestamp;
        }
        let mut f = IndexFile {
            path: path.to_owned(),
            map,
            slot_num,
            index_num,
            header,
            dirty: true,
        };
        f.write_header();
        Ok(f)
    }

    /// An existing file; its size must match the configured geometry.
    pub(crate) fn open(
        path: &Path,
        slot_num: u32,
        index_num: u32,
    ) -> Result<IndexFile, StoreError> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        if len != file_size(slot_num, index_num) {
            return Err(StoreError::Corrupt {
                path: path.to_owned(),
                reason: format!(
                    "index file is {len} bytes, expected {} (maxHashSlotNum {slot_num}, maxIndexNum {index_num})",
                    file_size(slot_num, index_num)
                ),
            });
        }
        let map = crate::mmap::map_whole(&file, len as usize)?;
        let mut b = [0u8; INDEX_HEADER_SIZE];
        b.copy_from_slice(&map[..INDEX_HEADER_SIZE]);
        let header = IndexHeader::decode(&b);
        if header.index_count as i64 > index_num as i64 {
            return Err(StoreError::Corrupt {
                path: path.to_owned(),
                reason: format!(
                    "indexCount {} > maxIndexNum {index_num}",
                    header.index_count
                ),
            });
        }
        Ok(IndexFile {
            path: path.to_owned(),
            map,
            slot_num,
            index_num,
            header,
            dirty: false,
        })
    }

    #[cfg(test)]
    pub(crate) fn header(&self) -> &IndexHeader {
        &self.header
    }

    fn write_header(&mut self) {
        let h = self.header.encode();
        self.map[..INDEX_HEADER_SIZE].copy_from_slice(&h);
    }

    /// The `len` bytes at `pos`; an error (not a panic) past the end, which
    /// only a corrupt count or slot value can ask for.
    fn bytes(&self, pos: usize, len: usize) -> io::Result<&[u8]> {
        pos.checked_add(len)
            .and_then(|end| self.map.get(pos..end))
            .ok_or_else(|| out_of_file(pos))
    }

    fn bytes_mut(&mut self, pos: usize, len: usize) -> io::Result<&mut [u8]> {
        pos.checked_add(len)
            .and_then(|end| self.map.get_mut(pos..end))
            .ok_or_else(|| out_of_file(pos))
    }

    fn read_i32(&self, pos: usize) -> io::Result<i32> {
        let b = self.bytes(pos, 4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn slot_pos(&self, key_hash: i32) -> usize {
        INDEX_HEADER_SIZE + (key_hash as u64 % self.slot_num as u64) as usize * HASH_SLOT_SIZE
    }

    fn entry_pos(&self, n: i32) -> usize {
        INDEX_HEADER_SIZE + self.slot_num as usize * HASH_SLOT_SIZE + n.max(0) as usize * INDEX_SIZE
    }

    /// Java `isWriteFull`.
    pub(crate) fn is_full(&self) -> bool {
        self.header.index_count as i64 >= self.index_num as i64
    }

    /// [`IndexFile::put_hash`] of `key` (the whole `topic#key`).
    #[cfg(test)]
    pub(crate) fn put_key(
        &mut self,
        key: &str,
        phy_offset: i64,
        store_timestamp: i64,
    ) -> io::Result<bool> {
        self.put_hash(index_key_hash(key), phy_offset, store_timestamp)
    }

    /// Java `putKey` of a key whose [`index_key_hash`] is `key_hash`;
    /// `Ok(false)` when full. The header is written by
    /// [`IndexFile::write_header`] once per record (see `IndexService`).
    pub(crate) fn put_hash(
        &mut self,
        key_hash: i32,
        phy_offset: i64,
        store_timestamp: i64,
    ) -> io::Result<bool> {
        if self.is_full() {
            return Ok(false);
        }
        let slot_pos = self.slot_pos(key_hash);
        let count = self.header.index_count;
        let mut slot_value = self.read_i32(slot_pos)?;
        if slot_value <= INVALID_INDEX || slot_value > count {
            slot_value = INVALID_INDEX;
        }
        let diff = if self.header.begin_timestamp <= 0 {
            0
        } else {
            ((store_timestamp - self.header.begin_timestamp) / 1000).clamp(0, i32::MAX as i64)
        };
        let mut e = [0u8; INDEX_SIZE];
        e[0..4].copy_from_slice(&key_hash.to_be_bytes());
        e[4..12].copy_from_slice(&phy_offset.to_be_bytes());
        e[12..16].copy_from_slice(&(diff as i32).to_be_bytes());
        e[16..20].copy_from_slice(&slot_value.to_be_bytes());
        let entry_pos = self.entry_pos(count);
        self.bytes_mut(entry_pos, INDEX_SIZE)?.copy_from_slice(&e);
        self.bytes_mut(slot_pos, 4)?
            .copy_from_slice(&count.to_be_bytes());
        let h = &mut self.header;
        if h.index_count <= 1 {
            h.begin_phy_offset = phy_offset;
            h.begin_timestamp = store_timestamp;
        }
        if slot_value == INVALID_INDEX {
            h.hash_slot_count += 1;
        }
        h.index_count += 1;
        h.end_phy_offset = phy_offset;
        h.end_timestamp = store_timestamp;
        self.dirty = true;
        Ok(true)
    }

    /// Java `isTimeMatched`.
    pub(crate) fn is_time_matched(&self, begin: i64, end: i64) -> bool {
        let (hb, he) = (self.header.begin_timestamp, self.header.end_timestamp);
        (begin < hb && end > he) || (begin >= hb && begin <= he) || (end >= hb && end <= he)
    }

    /// Java `selectPhyOffset`: walk the slot's chain, newest first.
    pub(crate) fn select(
        &self,
        out: &mut Vec<i64>,
        key: &str,
        max_num: usize,
        begin: i64,
        end: i64,
    ) -> io::Result<()> {
        let key_hash = index_key_hash(key);
        let count = self.header.index_count;
        let slot_value = self.read_i32(self.slot_pos(key_hash))?;
        if slot_value <= INVALID_INDEX || slot_value > count || count <= 1 {
            return Ok(());
        }
        let mut next = slot_value;
        loop {
            if out.len() >= max_num {
                break;
            }
            let e = self.bytes(self.entry_pos(next), INDEX_SIZE)?;
            let hash_read = i32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let mut p = [0u8; 8];
            p.copy_from_slice(&e[4..12]);
            let phy_read = i64::from_be_bytes(p);
            let diff = i32::from_be_bytes([e[12], e[13], e[14], e[15]]) as i64;
            let prev = i32::from_be_bytes([e[16], e[17], e[18], e[19]]);
            if diff < 0 {
                break;
            }
            let time_read = self.header.begin_timestamp + diff * 1000;
            let time_matched = time_read >= begin && time_read <= end;
            if hash_read == key_hash && time_matched {
                out.push(phy_read);
            }
            if prev <= INVALID_INDEX || prev > count || prev == next || time_read < begin {
                break;
            }
            next = prev;
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if self.dirty {
            self.write_header();
            self.map.flush()?;
            self.dirty = false;
        }
        Ok(())
    }
}

fn out_of_file(pos: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("index position {pos} is past the end of the file"),
    )
}

/// `yyyyMMddHHmmssSSS` of a millisecond timestamp (UTC).
pub(crate) fn file_name_of(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}{milli:03}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Java `IndexService`: the list of index files, newest last.
#[derive(Debug)]
pub(crate) struct IndexService {
    dir: PathBuf,
    slot_num: u32,
    index_num: u32,
    files: Mutex<Vec<IndexFile>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl IndexService {
    /// Load `dir`'s files. Files that do not fit the configured geometry
    /// are deleted (with everything after them); the caller re-dispatches
    /// the commit log from [`IndexService::recover_from`].
    pub(crate) fn open(
        dir: &Path,
        slot_num: u32,
        index_num: u32,
    ) -> Result<IndexService, StoreError> {
        let slot_num = slot_num.max(1);
        let index_num = index_num.max(2);
        std::fs::create_dir_all(dir)?;
        let mut names: Vec<(String, PathBuf)> = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            if !e.file_type()?.is_file() {
                continue;
            }
            if let Ok(name) = e.file_name().into_string() {
                names.push((name, e.path()));
            }
        }
        names.sort();
        let mut files = Vec::new();
        let mut bad = false;
        for (_, path) in names {
            if bad {
                std::fs::remove_file(&path)?;
                continue;
            }
            match IndexFile::open(&path, slot_num, index_num) {
                Ok(f) => files.push(f),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "index file unusable; rebuilding from here");
                    std::fs::remove_file(&path)?;
                    bad = true;
                }
            }
        }
        Ok(IndexService {
            dir: dir.to_owned(),
            slot_num,
            index_num,
            files: Mutex::new(files),
        })
    }

    fn files(&self) -> std::sync::MutexGuard<'_, Vec<IndexFile>> {
        self.files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Re-dispatch records whose offset is greater than this; `None` = all.
    pub(crate) fn recover_from(&self) -> Option<i64> {
        let files = self.files();
        let any = files.iter().any(|f| f.header.index_count > 1);
        if !any {
            return None;
        }
        files.last().map(|f| f.header.end_phy_offset)
    }

    fn new_file(&self, files: &mut Vec<IndexFile>) -> io::Result<()> {
        let (end_phy, end_ts) = files.last().map_or((0, 0), |f| {
            (f.header.end_phy_offset, f.header.end_timestamp)
        });
        let mut ms = now_ms();
        let last_name = files
            .last()
            .and_then(|f| f.path.file_name().map(|n| n.to_string_lossy().into_owned()));
        let path = loop {
            let name = file_name_of(ms);
            let p = self.dir.join(&name);
            if !p.exists() && last_name.as_deref().is_none_or(|l| name.as_str() > l) {
                break p;
            }
            ms += 1;
        };
        if let Some(last) = files.last_mut() {
            last.flush()?;
        }
        files.push(IndexFile::create(
            &path,
            self.slot_num,
            self.index_num,
            end_phy,
            end_ts,
        )?);
        Ok(())
    }

    fn put_hash(
        &self,
        files: &mut Vec<IndexFile>,
        key_hash: i32,
        phy: i64,
        ts: i64,
    ) -> io::Result<()> {
        for _ in 0..2 {
            if files.last().is_none_or(IndexFile::is_full) {
                if let Some(last) = files.last_mut() {
                    last.write_header();
                }
                self.new_file(files)?;
            }
            if let Some(f) = files.last_mut() {
                if f.put_hash(key_hash, phy, ts)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Java `IndexService.buildIndex` for one stored record: its `UNIQ_KEY`
    /// and each `KEYS` word, as `topic#key`. Prepared and rolled-back
    /// transactional records are not indexed.
    pub(crate) fn build(&self, topic: &str, props: &str, phy: i64, store_ts: i64, sys_flag: i32) {
        self.build_scanned(
            topic,
            &properties::Scanned::scan(props),
            phy,
            store_ts,
            sys_flag,
        );
    }

    /// [`IndexService::build`] from the record's already scanned properties.
    pub(crate) fn build_scanned(
        &self,
        topic: &str,
        props: &properties::Scanned<'_>,
        phy: i64,
        store_ts: i64,
        sys_flag: i32,
    ) {
        let tran = sys_flag & record::TRANSACTION_ROLLBACK_TYPE;
        if tran == record::TRANSACTION_PREPARED_TYPE || tran == record::TRANSACTION_ROLLBACK_TYPE {
            return;
        }
        let uniq = props.uniq.filter(|s| !s.is_empty());
        let keys = props.keys.unwrap_or("");
        if uniq.is_none() && keys.is_empty() {
            return;
        }
        // The hash of `topic#key` is continued from the hash of `topic#`;
        // the key string itself is never built.
        let prefix = topic_prefix_hash(topic);
        let mut files = self.files();
        let r = (|| -> io::Result<()> {
            if let Some(u) = uniq {
                self.put_hash(&mut files, index_key_hash_of(prefix, u), phy, store_ts)?;
            }
            for k in keys.split(' ').filter(|k| !k.is_empty()) {
                self.put_hash(&mut files, index_key_hash_of(prefix, k), phy, store_ts)?;
            }
            if let Some(f) = files.last_mut() {
                f.write_header();
            }
            Ok(())
        })();
        if let Err(e) = r {
            tracing::error!(topic, phy, error = %e, "index write failed");
        }
    }

    /// Java `IndexService.queryOffset`: newest file first.
    pub(crate) fn query(
        &self,
        topic: &str,
        key: &str,
        max_num: usize,
        begin: i64,
        end: i64,
    ) -> (Vec<i64>, i64, i64) {
        let files = self.files();
        let mut out = Vec::new();
        let (mut last_ts, mut last_phy) = (0, 0);
        let k = build_key(topic, key);
        for (i, f) in files.iter().enumerate().rev() {
            if i + 1 == files.len() {
                last_ts = f.header.end_timestamp;
                last_phy = f.header.end_phy_offset;
            }
            if f.is_time_matched(begin, end) {
                if let Err(e) = f.select(&mut out, &k, max_num, begin, end) {
                    tracing::error!(path = %f.path.display(), error = %e, "index read failed");
                }
            }
            if f.header.begin_timestamp < begin || out.len() >= max_num {
                break;
            }
        }
        (out, last_ts, last_phy)
    }

    pub(crate) fn flush(&self) -> io::Result<()> {
        let mut files = self.files();
        if let Some(f) = files.last_mut() {
            f.flush()?;
        }
        Ok(())
    }

    /// Retention (Java `IndexService.deleteExpiredFile`): delete the files,
    /// never the last, whose entries all point below `cl_min`.
    pub(crate) fn delete_below(&self, cl_min: i64) -> io::Result<usize> {
        let removed: Vec<IndexFile> = {
            let mut files = self.files();
            let mut n = 0;
            while n + 1 < files.len() && files[n].header.end_phy_offset < cl_min {
                n += 1;
            }
            files.drain(..n).collect()
        };
        let count = removed.len();
        for f in removed {
            let path = f.path.clone();
            drop(f);
            std::fs::remove_file(&path)?;
            tracing::info!(path = %path.display(), "deleted expired index file");
        }
        Ok(count)
    }

    #[cfg(test)]
    pub(crate) fn file_count(&self) -> usize {
        self.files().len()
    }
}

/// Whether a stored record really carries `key` (hashes collide).
pub(crate) fn record_has_key(rec: &[u8], topic: &str, key: &str) -> bool {
    let Ok(v) = record::decode(rec) else {
        return false;
    };
    if v.topic != topic {
        return false;
    }
    properties::get(v.properties, properties::UNIQ_KEY) == Some(key)
        || properties::get(v.properties, properties::KEYS)
            .is_some_and(|ks| ks.split(' ').any(|k| k == key))
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
