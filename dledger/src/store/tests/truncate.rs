//! Truncation: equal and different entries, cuts outside the written log,
//! and leader positions our roll rule would not produce.

use super::*;

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
