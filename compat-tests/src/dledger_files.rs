//! Reading a DLedger member's store folder (`checkpoint`, `data/`, `index/`)
//! from a test, read-only and without opening it as a store: the folder may
//! belong to a running member, ours or Java's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dledger::{EntryPos, LogIndex};

/// The `key=value` lines of a properties file (empty if it cannot be read).
pub fn properties(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// (endIndex, committedIndex) from the checkpoint file of the DLedger
/// folder `dir`.
pub fn checkpoint(dir: &Path) -> Option<(LogIndex, LogIndex)> {
    let p = properties(&dir.join("checkpoint"));
    Some((
        LogIndex(p.get("endIndex")?.parse().ok()?),
        LogIndex(p.get("committedIndex")?.parse().ok()?),
    ))
}

/// The files of `dir` sorted by name (= by start offset).
fn sorted_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    Ok(files)
}

/// The data log of the DLedger folder `dir` as one byte string (files in
/// offset order; meant for logs that start at 0 and keep every file).
pub fn data_log(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for f in sorted_files(&dir.join("data")).unwrap_or_default() {
        out.extend(std::fs::read(f).unwrap_or_default());
    }
    out
}

/// (pos, size) of entry `index` from the index log of the DLedger folder
/// `dir` (32-byte records).
pub fn entry_pos(dir: &Path, index: LogIndex) -> Option<(EntryPos, i32)> {
    let want = (index.get() * 32) as u64;
    for f in sorted_files(&dir.join("index")).ok()? {
        let start: u64 = f.file_name()?.to_str()?.parse().ok()?;
        let len = std::fs::metadata(&f).ok()?.len();
        if want >= start && want + 32 <= start + len {
            let b = std::fs::read(&f).ok()?;
            let r = &b[(want - start) as usize..(want - start) as usize + 32];
            let pos = i64::from_be_bytes(r[4..12].try_into().ok()?);
            let size = i32::from_be_bytes(r[12..16].try_into().ok()?);
            return Some((EntryPos(pos), size));
        }
    }
    None
}

/// Checks that the data logs of the DLedger folders `dirs` (members n0,
/// n1, ...) hold the same bytes up to the end of entry `committed` and
/// returns that end; the error names the first difference.
pub fn same_committed_prefix(dirs: &[PathBuf], committed: LogIndex) -> Result<usize, String> {
    let ends: Vec<Option<(EntryPos, i32)>> = dirs.iter().map(|d| entry_pos(d, committed)).collect();
    let end = match ends.first() {
        Some(Some((pos, size))) if ends.iter().all(|e| *e == ends[0]) => {
            (pos.get() + i64::from(*size)) as usize
        }
        _ => return Err(format!("entry {committed} differs: {ends:?}")),
    };
    let logs: Vec<Vec<u8>> = dirs.iter().map(|d| data_log(d)).collect();
    for (i, l) in logs.iter().enumerate() {
        if l.len() < end {
            return Err(format!("n{i} data log shorter than {end}"));
        }
        if let Some(p) = (0..end).find(|p| l[*p] != logs[0][*p]) {
            return Err(format!(
                "n{i}'s committed prefix differs from n0's at byte {p} of {end}"
            ));
        }
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_checkpoint_data_and_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        assert_eq!(checkpoint(d), None);
        assert!(data_log(d).is_empty());
        assert_eq!(entry_pos(d, LogIndex(0)), None);

        std::fs::write(d.join("checkpoint"), "#c\nendIndex=4\ncommittedIndex = 3\n")
            .expect("test file");
        assert_eq!(checkpoint(d), Some((LogIndex(4), LogIndex(3))));

        std::fs::create_dir(d.join("data")).expect("test file");
        std::fs::write(d.join("data").join("00000000000000000004"), b"ef").expect("test file");
        std::fs::write(d.join("data").join("00000000000000000000"), b"abcd").expect("test file");
        assert_eq!(data_log(d), b"abcdef");

        // Two index files of two 32-byte records each; entry 3 is the
        // second record of the second file.
        std::fs::create_dir(d.join("index")).expect("test file");
        let rec = |pos: i64, size: i32| {
            let mut r = vec![0u8; 32];
            r[4..12].copy_from_slice(&pos.to_be_bytes());
            r[12..16].copy_from_slice(&size.to_be_bytes());
            r
        };
        let f0 = [rec(0, 10), rec(10, 20)].concat();
        let f1 = [rec(30, 5), rec(35, 7)].concat();
        std::fs::write(d.join("index").join("00000000000000000000"), f0).expect("test file");
        std::fs::write(d.join("index").join("00000000000000000064"), f1).expect("test file");
        assert_eq!(entry_pos(d, LogIndex(1)), Some((EntryPos(10), 20)));
        assert_eq!(entry_pos(d, LogIndex(3)), Some((EntryPos(35), 7)));
        assert_eq!(entry_pos(d, LogIndex(4)), None);

        // A second member; entry 1 ends at byte 30, entry 2 at 35.
        let other = tempfile::tempdir().expect("tempdir");
        let o = other.path();
        std::fs::create_dir(o.join("data")).expect("test file");
        std::fs::create_dir(o.join("index")).expect("test file");
        for f in ["00000000000000000000", "00000000000000000064"] {
            std::fs::copy(d.join("index").join(f), o.join("index").join(f)).expect("test file");
        }
        let mut data = vec![b'x'; 40];
        data[..6].copy_from_slice(b"abcdef");
        std::fs::write(o.join("data").join("00000000000000000000"), &data).expect("test file");
        let dirs = [d.to_path_buf(), o.to_path_buf()];
        // n0's log holds only 6 bytes.
        assert_eq!(
            same_committed_prefix(&dirs, LogIndex(2)),
            Err("n0 data log shorter than 35".to_owned())
        );
        let mut d0 = data.clone();
        d0[32] = b'y';
        std::fs::remove_file(d.join("data").join("00000000000000000004")).expect("test file");
        std::fs::write(d.join("data").join("00000000000000000000"), &d0).expect("test file");
        assert_eq!(
            same_committed_prefix(&dirs, LogIndex(2)),
            Err("n1's committed prefix differs from n0's at byte 32 of 35".to_owned())
        );
        assert_eq!(same_committed_prefix(&dirs, LogIndex(1)), Ok(30));
        assert!(same_committed_prefix(&dirs, LogIndex(9)).is_err());
    }
}
