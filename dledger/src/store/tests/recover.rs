//! Reopening: checkpoint and term files, recovery across files, rebuilt
//! index files, refused configurations, zeroed cut tails.

use super::*;

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
fn multi_path_data_dirs_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut c = cfg(dir.path());
    c.data_store_path = Some(dir.path().join("a,b"));
    assert!(DLedgerStore::open(c).is_err());
}
