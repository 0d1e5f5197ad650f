//! Controller mode's epoch file (Java `EpochFileCache` over
//! `CheckpointFile`): which master epoch wrote which part of the commit log.
//! Each entry says "epoch *e* starts at offset *s*"; an entry ends where the
//! next starts, the last one at the log's end. AutoSwitch HA compares the
//! lists of a slave and its master to find where their logs agree.
//!
//! File format (text, `\n` line ends as Java on Linux):
//!
//! ```text
//! 2\n            number of entries
//! 1234567890\n   crc32 of the entry lines (incl. '\n') & 0x7FFFFFFF; 0 = unchecked
//! 1-0\n          <epoch>-<startOffset>, ascending
//! 2-900\n
//! ```
//!
//! Every write first copies the previous content to `<path>.bak`; a read
//! falls back to it when the main file is missing, empty or invalid. Writing
//! an empty list does nothing (Java), so the file survives a truncation that
//! removes every entry; the in-memory list is what counts until the next
//! non-empty write.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::StoreError;

/// One epoch as the file and the HA handshake carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// An entry with its derived end (the next entry's start, or the end given
/// for the last one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochRange {
    pub epoch: i32,
    pub start_offset: i64,
    pub end_offset: i64,
}

/// The entries alone, without a file (Java `EpochFileCache` without a
/// checkpoint): ascending in both epoch and start offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochList {
    entries: Vec<EpochEntry>,
}

impl EpochList {
    /// Entries as received (a master's handshake): kept as given, sorted by
    /// epoch, a repeated epoch keeps its last entry (Java's map).
    pub fn from_entries(mut entries: Vec<EpochEntry>) -> EpochList {
        entries.sort_by_key(|e| e.epoch);
        let mut out: Vec<EpochEntry> = Vec::with_capacity(entries.len());
        for e in entries {
            match out.last_mut() {
                Some(last) if last.epoch == e.epoch => *last = e,
                _ => out.push(e),
            }
        }
        EpochList { entries: out }
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn first(&self) -> Option<EpochEntry> {
        self.entries.first().copied()
    }

    pub fn last(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The last epoch, -1 without entries (Java `lastEpoch`).
    pub fn last_epoch(&self) -> i32 {
        self.last().map_or(-1, |e| e.epoch)
    }

    /// Every entry with its end; the last ends at `log_end`.
    pub fn ranges(&self, log_end: i64) -> Vec<EpochRange> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| EpochRange {
                epoch: e.epoch,
                start_offset: e.start_offset,
                end_offset: self.entries.get(i + 1).map_or(log_end, |n| n.start_offset),
            })
            .collect()
    }

    /// The entry of `epoch`, with its end (`log_end` for the last).
    pub fn range_of(&self, epoch: i32, log_end: i64) -> Option<EpochRange> {
        self.ranges(log_end).into_iter().find(|r| r.epoch == epoch)
    }

    /// The entry whose `[start, end)` holds `offset`, the last one ending at
    /// `log_end` (Java `findEpochEntryByOffset`).
    pub fn range_containing(&self, offset: i64, log_end: i64) -> Option<EpochRange> {
        self.ranges(log_end)
            .into_iter()
            .find(|r| r.start_offset <= offset && offset < r.end_offset)
    }

    /// The first entry with an epoch above `epoch` (Java `nextEntry`).
    pub fn next_after(&self, epoch: i32, log_end: i64) -> Option<EpochRange> {
        self.ranges(log_end).into_iter().find(|r| r.epoch > epoch)
    }

    /// Appends `e` if its epoch and start offset are both above the last
    /// entry's (Java `appendEntry`); whether it was appended.
    pub fn append(&mut self, e: EpochEntry) -> bool {
        if let Some(last) = self.last() {
            if last.epoch >= e.epoch || last.start_offset >= e.start_offset {
                return false;
            }
        }
        self.entries.push(e);
        true
    }

    /// Removes the entries starting at or after `offset` (Java
    /// `truncateSuffixByOffset`).
    pub fn truncate_suffix_from_offset(&mut self, offset: i64) {
        self.entries.retain(|e| e.start_offset < offset);
    }

    /// Removes the entries of `epoch` and later (Java `truncateSuffixByEpoch`).
    pub fn truncate_suffix_from_epoch(&mut self, epoch: i32) {
        self.entries.retain(|e| e.epoch < epoch);
    }

    /// Removes the entries that end at or before `offset` — never the last,
    /// which is open-ended — and moves the first remaining start up to
    /// `offset` when it lies inside it (Java `truncatePrefixByOffset`).
    pub fn truncate_prefix(&mut self, offset: i64) {
        let ends: Vec<i64> = (0..self.entries.len())
            .map(|i| self.entries.get(i + 1).map_or(i64::MAX, |n| n.start_offset))
            .collect();
        let keep: Vec<EpochEntry> = self
            .entries
            .iter()
            .zip(&ends)
            .filter(|(_, end)| **end > offset)
            .map(|(e, _)| *e)
            .collect();
        self.entries = keep;
        if let Some(first) = self.entries.first_mut() {
            if first.start_offset < offset {
                first.start_offset = offset;
            }
        }
    }

    /// Where this log (ending at `local_end`) and a master's (`master`,
    /// ending at `master_end`) last agree (Java `findConsistentPoint`): the
    /// highest local epoch the master has with the same start offset gives
    /// the smaller of the two ends of that epoch. `None` when no epoch
    /// matches.
    pub fn consistent_point(
        &self,
        local_end: i64,
        master: &EpochList,
        master_end: i64,
    ) -> Option<i64> {
        let mine = self.ranges(local_end);
        let theirs = master.ranges(master_end);
        mine.iter().rev().find_map(|l| {
            theirs
                .iter()
                .find(|m| m.epoch == l.epoch)
                .filter(|m| m.start_offset == l.start_offset)
                .map(|m| l.end_offset.min(m.end_offset))
        })
    }

    /// The file's bytes for these entries.
    pub fn encode(&self) -> String {
        let mut lines = String::new();
        for e in &self.entries {
            lines.push_str(&format!("{}-{}\n", e.epoch, e.start_offset));
        }
        let crc = crc32fast::hash(lines.as_bytes()) & 0x7FFF_FFFF;
        format!("{}\n{}\n{}", self.entries.len(), crc, lines)
    }

    /// Parses the file's bytes as Java reads them: lines that are not
    /// `<int>-<long>` are skipped (but count for the crc); the entry count
    /// and the crc (unless 0) must match. `None` when invalid.
    pub fn decode(text: &str) -> Option<EpochList> {
        let mut lines = text.lines();
        let count: usize = lines.next()?.trim().parse().ok()?;
        let crc: i32 = lines.next()?.trim().parse().ok()?;
        let mut body = String::new();
        let mut entries = Vec::new();
        for line in lines {
            body.push_str(line);
            body.push('\n');
            let mut parts = line.split('-');
            let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if let (Ok(epoch), Ok(start_offset)) = (a.parse::<i32>(), b.parse::<i64>()) {
                entries.push(EpochEntry {
                    epoch,
                    start_offset,
                });
            }
        }
        if entries.len() != count {
            return None;
        }
        let truth = (crc32fast::hash(body.as_bytes()) & 0x7FFF_FFFF) as i32;
        if crc != 0 && crc != truth {
            return None;
        }
        Some(EpochList::from_entries(entries))
    }
}

/// The epoch list kept in a file (`storePathEpochFile`, default
/// `<storePathRootDir>/epochFileCheckpoint`); every change is written
/// through.
#[derive(Debug)]
pub struct EpochFile {
    path: PathBuf,
    list: Mutex<EpochList>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Java's file name under the store root.
pub const EPOCH_FILE_NAME: &str = "epochFileCheckpoint";

impl EpochFile {
    /// Reads `path` (or its `.bak`); a missing or unreadable file gives an
    /// empty list.
    pub fn open(path: &Path) -> Result<EpochFile, StoreError> {
        let list = match read_list(path)? {
            Some(l) if !l.is_empty() => l,
            _ => read_list(&bak_path(path))?.unwrap_or_default(),
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        Ok(EpochFile {
            path: path.to_path_buf(),
            list: Mutex::new(list),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A copy of the entries.
    pub fn list(&self) -> EpochList {
        lock(&self.list).clone()
    }

    pub fn entries(&self) -> Vec<EpochEntry> {
        lock(&self.list).entries().to_vec()
    }

    pub fn last_epoch(&self) -> i32 {
        lock(&self.list).last_epoch()
    }

    pub fn last(&self) -> Option<EpochEntry> {
        lock(&self.list).last()
    }

    /// Appends when newer in epoch and start offset (see
    /// [`EpochList::append`]) and writes the file; whether appended.
    pub fn append(&self, e: EpochEntry) -> Result<bool, StoreError> {
        self.change(|l| l.append(e))
    }

    pub fn truncate_suffix_from_offset(&self, offset: i64) -> Result<(), StoreError> {
        self.change(|l| l.truncate_suffix_from_offset(offset))
    }

    pub fn truncate_suffix_from_epoch(&self, epoch: i32) -> Result<(), StoreError> {
        self.change(|l| l.truncate_suffix_from_epoch(epoch))
    }

    pub fn truncate_prefix(&self, offset: i64) -> Result<(), StoreError> {
        self.change(|l| l.truncate_prefix(offset))
    }

    /// Replaces every entry (Java `initCacheFromEntries`).
    pub fn reset(&self, entries: Vec<EpochEntry>) -> Result<(), StoreError> {
        self.change(|l| *l = EpochList::from_entries(entries))
    }

    fn change<R>(&self, f: impl FnOnce(&mut EpochList) -> R) -> Result<R, StoreError> {
        let mut l = lock(&self.list);
        let before = l.clone();
        let r = f(&mut l);
        if *l != before {
            write_list(&self.path, &l)?;
        }
        Ok(r)
    }
}

fn bak_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".bak");
    PathBuf::from(s)
}

/// `None` for a missing or invalid file.
fn read_list(path: &Path) -> Result<Option<EpochList>, StoreError> {
    match std::fs::read(path) {
        Ok(b) => {
            let list = std::str::from_utf8(&b).ok().and_then(EpochList::decode);
            if list.is_none() {
                tracing::warn!(path = %path.display(), "invalid epoch file");
            }
            Ok(list)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Java `MixAll.string2File`: the old content to `.bak`, then the new one
/// (through a temporary file and a rename here, so a crash leaves one of
/// the two whole). An empty list is not written.
fn write_list(path: &Path, list: &EpochList) -> Result<(), StoreError> {
    if list.is_empty() {
        return Ok(());
    }
    match std::fs::read(path) {
        Ok(old) => write_synced(&bak_path(path), &old)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    write_synced(&tmp, list.encode().as_bytes())?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn write_synced(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(epoch: i32, start_offset: i64) -> EpochEntry {
        EpochEntry {
            epoch,
            start_offset,
        }
    }

    #[test]
    fn golden_file_bytes() {
        // Java's CheckpointFile javadoc example: "7-7000\n8-8000\n" has crc
        // 773307083.
        let l = EpochList::from_entries(vec![e(7, 7000), e(8, 8000)]);
        assert_eq!(l.encode(), "2\n773307083\n7-7000\n8-8000\n");
        assert_eq!(EpochList::decode("2\n773307083\n7-7000\n8-8000\n"), Some(l));
        // crc 0 is not checked; a wrong one or a wrong count is invalid.
        assert!(EpochList::decode("1\n0\n3-5\n").is_some());
        assert_eq!(EpochList::decode("1\n5\n3-5\n"), None);
        assert_eq!(EpochList::decode("2\n0\n3-5\n"), None);
        // Unparsable lines are skipped but count for the crc.
        let crc = crc32fast::hash(b"x\n3-5\n") & 0x7FFF_FFFF;
        let l = EpochList::decode(&format!("1\n{crc}\nx\n3-5\n")).expect("valid");
        assert_eq!(l.entries(), &[e(3, 5)]);
        for junk in ["", "\n", "a\nb\n", "1\n", "-1\n0\n", "1\n0\n1-2-3\n"] {
            assert_eq!(EpochList::decode(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn ranges_append_and_truncate() {
        let mut l = EpochList::default();
        assert_eq!(l.last_epoch(), -1);
        assert!(l.append(e(1, 0)));
        assert!(l.append(e(2, 900)));
        assert!(!l.append(e(2, 1000)), "same epoch");
        assert!(!l.append(e(3, 900)), "same start");
        assert!(l.append(e(4, 1200)));
        let r = l.ranges(1500);
        assert_eq!(
            r.iter()
                .map(|r| (r.epoch, r.start_offset, r.end_offset))
                .collect::<Vec<_>>(),
            vec![(1, 0, 900), (2, 900, 1200), (4, 1200, 1500)]
        );
        assert_eq!(l.range_containing(900, 1500).map(|r| r.epoch), Some(2));
        assert_eq!(l.range_containing(1500, 1500), None);
        assert_eq!(l.next_after(2, 1500).map(|r| r.epoch), Some(4));
        let mut t = l.clone();
        t.truncate_suffix_from_offset(1000);
        assert_eq!(t.entries(), &[e(1, 0), e(2, 900)]);
        let mut t = l.clone();
        t.truncate_suffix_from_epoch(2);
        assert_eq!(t.entries(), &[e(1, 0)]);
        let mut t = l.clone();
        t.truncate_prefix(950);
        assert_eq!(t.entries(), &[e(2, 950), e(4, 1200)]);
        let mut t = l;
        t.truncate_prefix(5000);
        assert_eq!(t.entries(), &[e(4, 5000)]);
    }

    #[test]
    fn consistent_point_as_in_the_spec() {
        // Old master A: epoch 1 up to 1000. New master B: (1,0),(2,900), max 1500.
        let a = EpochList::from_entries(vec![e(1, 0)]);
        let b = EpochList::from_entries(vec![e(1, 0), e(2, 900)]);
        assert_eq!(a.consistent_point(1000, &b, 1500), Some(900));
        // A slave behind its master within the same epoch.
        assert_eq!(b.consistent_point(1200, &b, 1500), Some(1200));
        // Same epoch number, different start: look further down.
        let c = EpochList::from_entries(vec![e(1, 0), e(2, 950)]);
        assert_eq!(c.consistent_point(2000, &b, 1500), Some(900));
        let d = EpochList::from_entries(vec![e(5, 0)]);
        assert_eq!(d.consistent_point(10, &b, 1500), None);
    }

    #[test]
    fn file_writes_bak_and_falls_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(EPOCH_FILE_NAME);
        let f = EpochFile::open(&path).expect("open");
        assert_eq!(f.last_epoch(), -1);
        assert!(f.append(e(1, 0)).expect("append"));
        assert_eq!(
            std::fs::read(&path).expect("read"),
            format!("1\n{}\n1-0\n", crc32fast::hash(b"1-0\n") & 0x7FFF_FFFF).into_bytes()
        );
        assert!(f.append(e(2, 900)).expect("append"));
        assert!(!f.append(e(2, 901)).expect("append"));
        let bak = bak_path(&path);
        assert_eq!(
            std::fs::read_to_string(&bak).expect("bak"),
            format!("1\n{}\n1-0\n", crc32fast::hash(b"1-0\n") & 0x7FFF_FFFF)
        );
        // An empty list is not written: the file keeps its last entries.
        f.truncate_suffix_from_offset(0).expect("truncate");
        assert!(f.entries().is_empty());
        let main = std::fs::read_to_string(&path).expect("main");
        assert!(main.ends_with("1-0\n2-900\n"), "{main:?}");
        drop(f);
        let f = EpochFile::open(&path).expect("reopen");
        assert_eq!(f.entries(), vec![e(1, 0), e(2, 900)]);
        // A corrupt main file: read the .bak.
        std::fs::write(&path, "2\n1\n1-0\n2-900\n").expect("corrupt");
        let f = EpochFile::open(&path).expect("reopen");
        assert_eq!(f.entries(), vec![e(1, 0)]);
        std::fs::remove_file(&path).expect("rm");
        let f = EpochFile::open(&path).expect("reopen");
        assert_eq!(f.entries(), vec![e(1, 0)]);
    }
}
