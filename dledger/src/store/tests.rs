use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::coder::IndexRecord;
use super::*;
use crate::core::Storage;
use crate::entry::Entry;

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

#[test]
fn roll_rule_at_the_exact_boundary() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(dir.path());
    // len + 8 == remaining: the entry still fits.
    assert_eq!(s.append_leader(1, body(500, 1)).expect("a").pos, 0);
    assert_eq!(s.append_leader(1, body(516, 2)).expect("b").pos, 500);
    assert_eq!(s.data_max_offset(), 1016);
    // 8 bytes left: any entry rolls, leaving a blank record of 8.
    let c = s.append_leader(1, body(48, 3)).expect("c");
    assert_eq!(c.pos, 1024);
    let f0 = std::fs::read(data_file(dir.path(), 0)).expect("read");
    assert_eq!(&f0[1016..1024], &[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 8]);
    // len + 8 == remaining + 1: rolls, the blank fills the rest.
    let d = s.append_leader(1, body(900, 4)).expect("d");
    assert_eq!(d.pos, 1072);
    // 76 bytes remain in file 1024: an entry of 69 (69 + 8 = 77) rolls.
    let e = s.append_leader(1, body(69, 5)).expect("e");
    assert_eq!(e.pos, 2048);
    let f1 = std::fs::read(data_file(dir.path(), 1024)).expect("read");
    assert_eq!(&f1[1972 - 1024..1976 - 1024], &[0xFF; 4]);
    assert_eq!(&f1[1976 - 1024..1980 - 1024], &76i32.to_be_bytes());
    assert!(f1[1980 - 1024..].iter().all(|&b| b == 0));
    for (i, want) in [0i64, 500, 1024, 1072, 2048].iter().enumerate() {
        assert_eq!(s.get(i as i64).expect("get").pos, *want);
    }
}

#[test]
fn too_large_entries_are_refused_without_writing() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(dir.path());
    assert!(s.append_leader(1, body(DATA - 7, 0)).is_err());
    assert_eq!(s.end_index(), -1);
    assert_eq!(s.append_leader(1, body(DATA - 8, 0)).expect("fits").pos, 0);
}

#[test]
fn entry_and_index_bytes_on_disk() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(dir.path());
    s.append_leader(2, Bytes::from_static(b"ab")).expect("a");
    s.append_leader(3, Bytes::from_static(b"xyz")).expect("b");
    s.flush().expect("flush");
    let d = std::fs::read(data_file(dir.path(), 0)).expect("data");
    assert_eq!(d.len(), DATA);
    let mut e1 = Entry::new(Bytes::from_static(b"xyz"));
    e1.index = 1;
    e1.term = 3;
    e1.pos = 50;
    assert_eq!(&d[50..101], &coder::encode_entry(&e1)[..]);
    assert!(d[101..].iter().all(|&b| b == 0));
    let ix = std::fs::read(cfg(dir.path()).index_path().join(file_name(0))).expect("index");
    assert_eq!(ix.len(), INDEX);
    let rec = IndexRecord {
        magic: 1,
        pos: 50,
        size: 51,
        index: 1,
        term: 3,
    };
    assert_eq!(&ix[32..64], &rec.encode());
    assert!(ix[64..].iter().all(|&b| b == 0));
}

#[test]
fn index_files_roll_and_reads_cross_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(dir.path());
    for i in 0..20u8 {
        s.append_leader(1, Bytes::from(vec![i; i as usize]))
            .expect("append");
    }
    assert!(cfg(dir.path()).index_path().join(file_name(256)).exists());
    assert!(cfg(dir.path()).index_path().join(file_name(512)).exists());
    drop(s);
    let s = open(dir.path());
    assert_eq!((s.begin_index(), s.end_index(), s.end_term()), (0, 19, 1));
    for i in 0..20u8 {
        assert_eq!(s.get(i64::from(i)).expect("get").body, vec![i; i as usize]);
    }
}

#[test]
fn append_hook_patches_body_with_pos() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(dir.path());
    s.set_append_hook(Box::new(|body: &mut [u8], body_pos: i64| {
        body[..8].copy_from_slice(&body_pos.to_be_bytes());
    }));
    let a = s.append_leader(1, Bytes::from(vec![0u8; 16])).expect("a");
    let b = s.append_leader(1, Bytes::from(vec![0u8; 16])).expect("b");
    assert_eq!(&a.body[..8], &48i64.to_be_bytes());
    assert_eq!(&b.body[..8], &(64 + 48i64).to_be_bytes());
    assert_eq!(s.get(1).expect("get").body, b.body);
}

#[test]
fn follower_appends_check_index_and_pos() {
    let dir = tempfile::tempdir().expect("tmp");
    let leader_dir = tempfile::tempdir().expect("tmp");
    let mut l = open(leader_dir.path());
    let mut f = open(dir.path());
    let e0 = l.append_leader(1, body(600, 1)).expect("e0");
    let e1 = l.append_leader(1, body(600, 2)).expect("e1");
    assert!(matches!(
        f.append_follower(&e1),
        Err(StorageError::NotNextIndex { index: 1, end: -1 })
    ));
    f.append_follower(&e0).expect("e0");
    let mut wrong = e1.clone();
    wrong.pos = 600;
    assert!(matches!(
        f.append_follower(&wrong),
        Err(StorageError::PosMismatch {
            index: 1,
            expected: 600,
            actual: 1024
        })
    ));
    assert_eq!(f.end_index(), 0);
    f.append_follower(&e1).expect("e1");
    assert!(f.get(1).expect("get").same_as(&e1));
    f.set_disk_full(true);
    let e2 = l.append_leader(1, body(60, 3)).expect("e2");
    assert!(matches!(
        f.append_follower(&e2),
        Err(StorageError::DiskFull)
    ));
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
fn truncate_keeps_an_equal_entry_and_drops_the_rest() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut s, v) = leader_log(dir.path(), 10);
    s.truncate(&v[4]).expect("truncate");
    assert_eq!((s.end_index(), s.end_term()), (4, v[4].term));
    assert_eq!(s.data_max_offset(), v[4].pos + i64::from(v[4].size()));
    assert!(s.get(5).is_err());
    assert!(s.get(4).expect("get").same_as(&v[4]));
    // The cut tail is zeroed: a reopen finds exactly the same log.
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.end_index(), 4);
    assert!(s.get(4).expect("get").same_as(&v[4]));
}

#[test]
fn truncate_overwrites_a_different_entry() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut s, v) = leader_log(dir.path(), 10);
    let mut other = Entry::new(Bytes::from_static(b"leader's"));
    other.index = 3;
    other.term = 7;
    other.pos = v[3].pos;
    s.truncate(&other).expect("truncate");
    assert_eq!((s.end_index(), s.end_term()), (3, 7));
    assert!(s.get(3).expect("get").same_as(&other));
    assert!(s.get(2).expect("get").same_as(&v[2]));
    assert_eq!(s.data_max_offset(), other.pos + i64::from(other.size()));
    drop(s);
    let s = open(dir.path());
    assert_eq!((s.begin_index(), s.end_index()), (0, 3));
    assert!(s.get(3).expect("get").same_as(&other));
}

#[test]
fn truncate_beyond_the_log_rebuilds_it_at_the_offset() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(dir.path());
    s.append_leader(1, body(100, 1)).expect("local");
    let mut e = Entry::new(Bytes::from_static(b"far"));
    e.index = 40;
    e.term = 3;
    e.pos = 5000;
    s.truncate(&e).expect("truncate");
    assert_eq!((s.begin_index(), s.end_index(), s.end_term()), (40, 40, 3));
    assert_eq!(s.data_min_offset(), 5000);
    assert!(s.get(40).expect("get").same_as(&e));
    assert!(matches!(s.get(0), Err(StorageError::BelowBegin { .. })));
    assert!(!data_file(dir.path(), 0).exists());
    assert!(data_file(dir.path(), 4096).exists());
    let mut next = Entry::new(Bytes::from_static(b"next"));
    next.index = 41;
    next.term = 3;
    next.pos = 5000 + i64::from(e.size());
    s.append_follower(&next).expect("append after rebuild");
    s.set_committed(3, 41);
    assert_eq!(s.committed_pos(), next.pos + i64::from(next.size()));
}

#[test]
fn truncate_below_the_first_file_rebuilds() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(dir.path());
    let mut e = Entry::new(body(600, 1));
    e.index = 10;
    e.term = 1;
    e.pos = 2048;
    s.truncate(&e).expect("first");
    let mut e0 = Entry::new(Bytes::from_static(b"zero"));
    e0.index = 0;
    e0.term = 1;
    e0.pos = 0;
    s.truncate(&e0).expect("second");
    assert_eq!((s.begin_index(), s.end_index()), (0, 0));
    assert_eq!(s.data_min_offset(), 0);
    assert!(!data_file(dir.path(), 2048).exists());
}

#[test]
fn committed_index_rules() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(dir.path());
    s.set_committed(0, 0);
    assert_eq!(s.committed_index(), -1, "empty ledger");
    s.save_hard_state(&HardState {
        term: 2,
        vote: None,
    })
    .expect("term");
    let v: Vec<Entry> = (0..5)
        .map(|i| s.append_leader(2, body(60 + i, 0)).expect("append"))
        .collect();
    s.set_committed(1, 3);
    assert_eq!(s.committed_index(), -1, "older term");
    s.set_committed(2, 2);
    assert_eq!(s.committed_index(), 2);
    assert_eq!(s.committed_pos(), v[2].pos + i64::from(v[2].size()));
    s.set_committed(2, 1);
    assert_eq!(s.committed_index(), 2, "never backwards");
    s.set_committed(2, -1);
    assert_eq!(s.committed_index(), 2);
    s.set_committed(3, 99);
    assert_eq!(s.committed_index(), 4, "clamped to the end");
    assert_eq!(s.committed_pos(), s.data_max_offset());
}

#[test]
fn read_committed_is_cut_at_committed_pos() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(dir.path());
    let a = s.append_leader(1, Bytes::from_static(b"first")).expect("a");
    let b = s
        .append_leader(1, Bytes::from_static(b"second"))
        .expect("b");
    assert!(s.read_committed(a.pos + 48, 5).is_none());
    s.set_committed(1, 0);
    assert_eq!(
        s.read_committed(a.pos + 48, 5).expect("read"),
        &b"first"[..]
    );
    assert!(s.read_committed(b.pos, 48).is_none());
    assert_eq!(
        s.read_committed_from(0, 1 << 20).expect("from").len(),
        a.size() as usize
    );
    s.set_committed(1, 1);
    let all = s.read_committed_from(0, 1 << 20).expect("from");
    assert_eq!(all.len() as i64, b.pos + i64::from(b.size()));
    assert_eq!(&all[all.len() - 6..], b"second");
    assert_eq!(s.read_committed_from(0, 10).expect("cut").len(), 10);
}

#[test]
fn checkpoint_and_term_round_trip() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(dir.path());
    let hs = HardState {
        term: 5,
        vote: Some("n1".into()),
    };
    s.save_hard_state(&hs).expect("term");
    for _ in 0..4 {
        s.append_leader(5, body(80, 9)).expect("append");
    }
    s.set_committed(5, 2);
    s.shutdown().expect("shutdown");
    let base = cfg(dir.path()).default_path();
    let term_text = std::fs::read_to_string(base.join("currterm")).expect("currterm");
    assert_eq!(term_text, "currTerm=5\nvoteLeader=n1\n");
    let cp = props::parse(&std::fs::read_to_string(base.join("checkpoint")).expect("cp"));
    assert_eq!(cp["endIndex"], "3");
    assert_eq!(cp["committedIndex"], "2");
    drop(s);
    let mut s = open(dir.path());
    assert_eq!(s.hard_state(), hs);
    assert_eq!(s.committed_index(), 2);
    assert_eq!(s.committed_pos(), 3 * 80);
    s.save_hard_state(&HardState {
        term: 6,
        vote: None,
    })
    .expect("term");
    drop(s);
    let term_text = std::fs::read_to_string(base.join("currterm")).expect("currterm");
    assert_eq!(term_text, "currTerm=6\nvoteLeader=\n");
    assert_eq!(
        std::fs::read_to_string(base.join("currterm.bak")).expect("bak"),
        "currTerm=5\nvoteLeader=n1\n"
    );
    assert_eq!(
        open(dir.path()).hard_state(),
        HardState {
            term: 6,
            vote: None
        }
    );
}

#[test]
fn missing_or_garbled_checkpoint_and_term_files_mean_defaults() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(dir.path());
    for _ in 0..3 {
        s.append_leader(1, body(80, 9)).expect("append");
    }
    s.flush().expect("flush");
    drop(s);
    let base = cfg(dir.path()).default_path();
    let s = open(dir.path());
    assert_eq!(s.committed_index(), -1, "no checkpoint");
    assert_eq!(s.hard_state(), HardState::default(), "no currterm");
    drop(s);
    std::fs::write(base.join("checkpoint"), b"committedIndex=x\xff\n").expect("w");
    std::fs::write(base.join("currterm"), b"\xff\x00currTerm=zz\nvoteLeader=\n").expect("w");
    let s = open(dir.path());
    assert_eq!(s.committed_index(), -1);
    assert_eq!(s.hard_state(), HardState::default());
    drop(s);
    std::fs::write(base.join("checkpoint"), b"committedIndex=100\n").expect("w");
    let s = open(dir.path());
    assert_eq!(s.committed_index(), 2, "clamped to the ledger end");
}

#[test]
fn cleanup_deletes_expired_leading_files_but_never_the_last() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(dir.path());
    let v: Vec<Entry> = (0..12)
        .map(|i| s.append_leader(1, body(400, i)).expect("append"))
        .collect();
    // Two entries per 1 KiB file: files 0..5.
    assert_eq!(v[11].pos, 5 * 1024 + 400);
    let now = SystemTime::now();
    assert_eq!(
        s.clean_expired(now, false).expect("clean"),
        0,
        "nothing old"
    );
    let old = now - Duration::from_secs(73 * 3600);
    for base in [0, 1024] {
        let f = std::fs::File::options()
            .write(true)
            .open(data_file(dir.path(), base))
            .expect("open");
        f.set_modified(old).expect("mtime");
    }
    assert_eq!(s.clean_expired(now, false).expect("clean"), 2);
    assert_eq!(s.begin_index(), 4);
    assert_eq!(s.data_min_offset(), 2048);
    assert!(matches!(s.get(3), Err(StorageError::BelowBegin { .. })));
    assert!(s.get(4).expect("get").same_as(&v[4]));
    assert_eq!(s.clean_expired(now, true).expect("force"), 3);
    assert_eq!(s.begin_index(), 10);
    assert_eq!(
        s.clean_expired(now, true).expect("force"),
        0,
        "never the last"
    );
    drop(s);
    let s = open(dir.path());
    assert_eq!((s.begin_index(), s.end_index()), (10, 11));
    assert!(s.get(11).expect("get").same_as(&v[11]));
}

#[test]
fn reopen_after_roll_with_many_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let (s, v) = leader_log(dir.path(), 30);
    drop(s);
    for _ in 0..2 {
        let s = open(dir.path());
        assert_eq!((s.begin_index(), s.end_index()), (0, 29));
        for e in &v {
            assert!(s.get(e.index).expect("get").same_as(e));
        }
    }
}

#[test]
fn lost_index_files_are_rebuilt_from_data() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut s, v) = leader_log(dir.path(), 12);
    s.flush().expect("flush");
    drop(s);
    std::fs::remove_dir_all(cfg(dir.path()).index_path()).expect("rm index");
    let s = open(dir.path());
    assert_eq!(s.end_index(), 11);
    for e in &v {
        assert!(s.get(e.index).expect("get").same_as(e));
    }
}

#[test]
fn segment_files_of_the_wrong_size_refuse_to_open() {
    let dir = tempfile::tempdir().expect("tmp");
    let (s, _) = leader_log(dir.path(), 3);
    drop(s);
    let f = std::fs::File::options()
        .write(true)
        .open(data_file(dir.path(), 0))
        .expect("open");
    f.set_len(DATA as u64 + 1).expect("grow");
    assert!(DLedgerStore::open(cfg(dir.path())).is_err());
}

#[test]
fn recovery_zeroes_a_large_cut_tail_outside_the_mapping() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut c = cfg(dir.path());
    c.mapped_file_size_for_entry_data = 256 * 1024;
    let mut s = DLedgerStore::open(c.clone()).expect("open");
    let v: Vec<Entry> = (0..3)
        .map(|i| {
            s.append_leader(1, Bytes::from(vec![7u8; 1000 * (i + 1)]))
                .expect("a")
        })
        .collect();
    s.shutdown().expect("shutdown");
    drop(s);
    let path = c.data_path().join(file_name(0));
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[v[2].pos as usize] = 9; // magic of entry 2
    bytes[200_000] = 0x55; // stale byte far beyond the end
    std::fs::write(&path, &bytes).expect("write");
    let mut s = DLedgerStore::open(c.clone()).expect("reopen");
    assert_eq!(s.end_index(), 1);
    assert!(s.get(1).expect("get").same_as(&v[1]));
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(bytes.len(), 256 * 1024);
    assert!(
        bytes[v[2].pos as usize..].iter().all(|&b| b == 0),
        "tail zeroed"
    );
    assert_eq!(&bytes[..16], &coder::encode_entry(&v[0])[..16]);
    let e = s
        .append_leader(2, Bytes::from_static(b"x"))
        .expect("append");
    assert_eq!(e.pos, v[2].pos);
    // Truncating back to entry 0 also leaves a log that reopens identically.
    s.truncate(&v[0]).expect("truncate");
    assert_eq!(s.end_index(), 0);
    drop(s);
    let s = DLedgerStore::open(c).expect("reopen");
    assert_eq!((s.end_index(), s.end_term()), (0, 1));
    assert!(s.get(0).expect("get").same_as(&v[0]));
}

#[test]
fn the_store_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<DLedgerStore>();
}

#[test]
fn multi_path_data_dirs_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut c = cfg(dir.path());
    c.data_store_path = Some(dir.path().join("a,b"));
    assert!(DLedgerStore::open(c).is_err());
}

#[test]
fn truncate_to_a_pos_our_roll_rule_cannot_produce_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut s, v) = leader_log(dir.path(), 6);
    // The leader claims entry 3 sits at 924, but after entry 2 (ending at
    // 411) our roll rule puts it at 411.
    let mut bad = Entry::new(body(600, 1));
    bad.index = 3;
    bad.term = 9;
    bad.pos = 924;
    assert_eq!(v[2].pos + i64::from(v[2].size()), 411);
    assert!(matches!(
        s.truncate(&bad),
        Err(StorageError::PosMismatch {
            index: 3,
            expected: 924,
            actual: 411
        })
    ));
    assert_eq!((s.end_index(), s.end_term()), (2, v[2].term));
    assert!(s.get(2).expect("get").same_as(&v[2]));
    assert!(s.get(3).is_err());
    assert_eq!(s.data_max_offset(), 411);
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.end_index(), 2, "nothing stale comes back");
}

#[test]
fn truncate_where_the_leader_rolled_but_we_did_not() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = open(dir.path());
    s.append_leader(1, body(500, 1)).expect("e0");
    s.append_leader(1, body(400, 2)).expect("e1");
    let ours = s.append_leader(1, body(100, 3)).expect("our e2");
    assert_eq!(ours.pos, 900);
    // The leader's entry 2 is larger: 900 + 200 + 8 > 1024, it rolled.
    let mut theirs = Entry::new(body(200, 4));
    theirs.index = 2;
    theirs.term = 2;
    theirs.pos = 1024;
    s.truncate(&theirs).expect("truncate");
    assert!(s.get(2).expect("get").same_as(&theirs));
    let f0 = std::fs::read(data_file(dir.path(), 0)).expect("read");
    assert_eq!(&f0[900..908], &[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 124]);
    drop(s);
    let s = open(dir.path());
    assert_eq!((s.end_index(), s.end_term()), (2, 2));
    assert!(s.get(2).expect("get").same_as(&theirs));
}
