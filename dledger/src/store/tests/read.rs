//! Committed reads stop at `committedPos`.

use super::*;

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
