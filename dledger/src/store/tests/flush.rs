//! Deletion of expired data files.

use super::*;

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
