//! Leader and follower appends (roll rule, size limits, bytes on disk, the
//! append hook, disk full) and the committed-index rules.

use super::*;

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
