//! `MessageStore::truncate_to` / `truncate_torn_tail` (Java `truncateFiles`,
//! `truncateInvalidMsg`): the commit log cut at a record boundary, the
//! consume queues cut with it, writes continuing there, and a restart
//! recovering the same state.

mod common;

use store::{CommitLogOffset, MessageStore};

use common::{msg, open, read_queue, PutNow, SEG};

/// Puts `n` messages over two queues; each message's (queue id, commit-log
/// offset) in put order.
fn fill(s: &MessageStore, n: usize, tag: u8) -> Vec<(i32, i64)> {
    (0..n)
        .map(|i| {
            let body = vec![tag; 700 + (i * 53) % 900];
            let q = (i % 2) as i32;
            let r = s.put_now(&msg("T", q, &body, None)).expect("put");
            (q, r.commit_log_offset.get())
        })
        .collect()
}

fn segment_names(dir: &std::path::Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir.join("commitlog"))
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// Queue contents as (queue offset, commit-log offset, first body byte).
fn contents(s: &MessageStore, q: i32) -> Vec<(i64, i64, u8)> {
    read_queue(s, "T", q)
        .iter()
        .map(|m| (m.queue_offset, m.physical_offset, m.body[0]))
        .collect()
}

fn check_cut(s: &MessageStore, puts: &[(i32, i64)], k: usize) {
    let cut = puts[k].1;
    assert_eq!(s.commit_log_max_offset().get(), cut);
    assert_eq!(s.dispatched_offset().get(), cut);
    for q in 0..2 {
        let kept: Vec<i64> = puts[..k]
            .iter()
            .filter(|(qq, _)| *qq == q)
            .map(|p| p.1)
            .collect();
        assert_eq!(s.max_offset("T", q).get(), kept.len() as i64, "queue {q}");
        let got: Vec<i64> = contents(s, q).iter().map(|c| c.1).collect();
        assert_eq!(got, kept, "queue {q}");
    }
    // A record past the cut is gone, one before it readable.
    assert!(s.message_at(CommitLogOffset(cut)).is_none());
    assert!(s.message_at(CommitLogOffset(puts[k - 1].1)).is_some());
}

#[test]
fn truncate_in_a_segment_and_across_segments_then_write_on_and_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = open(dir.path());
    let puts = fill(&s, 400, b'a');
    let end = s.commit_log_max_offset().get();
    assert!(end > 4 * SEG as i64, "spans files: {end}");
    let seg = SEG as i64;

    // 1. Inside the last segment.
    let k = puts
        .iter()
        .rposition(|p| p.1 % seg > 1000 && p.1 / seg == (end - 1) / seg)
        .expect("a record inside the last segment");
    assert_eq!(
        s.truncate_to(CommitLogOffset(puts[k].1)).expect("t").get(),
        puts[k].1
    );
    check_cut(&s, &puts, k);

    // 2. Back across two segments, into the middle of one.
    let k = puts
        .iter()
        .position(|p| p.1 / seg == 2 && p.1 % seg > seg / 2)
        .expect("a record mid segment 2");
    s.truncate_to(CommitLogOffset(puts[k].1)).expect("truncate");
    check_cut(&s, &puts, k);
    assert_eq!(segment_names(dir.path()), vec![0, SEG, 2 * SEG]);
    // At or past the end: nothing happens.
    s.truncate_to(CommitLogOffset(puts[k].1 + 10_000))
        .expect("noop");
    check_cut(&s, &puts, k);

    // 3. Writes continue at the cut; queue offsets follow on.
    let more = fill(&s, 100, b'z');
    assert_eq!(more[0].1, puts[k].1);
    let mut all: Vec<(i32, i64)> = puts[..k].to_vec();
    all.extend(&more);
    for q in 0..2 {
        let c = contents(&s, q);
        let want: Vec<i64> = all.iter().filter(|p| p.0 == q).map(|p| p.1).collect();
        assert_eq!(c.iter().map(|c| c.1).collect::<Vec<_>>(), want);
        assert!(c.iter().enumerate().all(|(i, c)| c.0 == i as i64));
        assert_eq!(c.last().map(|c| c.2), Some(b'z'));
    }
    let before: Vec<_> = (0..2).map(|q| contents(&s, q)).collect();
    let end = s.commit_log_max_offset();

    // 4. Crash-free restart recovers the same.
    s.shutdown();
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.commit_log_max_offset(), end);
    assert_eq!((0..2).map(|q| contents(&s, q)).collect::<Vec<_>>(), before);

    // 5. Cut exactly at a segment start: that segment stays, empty.
    let k = all
        .iter()
        .position(|p| p.1 >= seg)
        .expect("a record in segment 1");
    let first_in_1 = all[k].1;
    // The first record of segment 1 starts at its base (the previous one
    // was closed by a blank record).
    assert_eq!(first_in_1, seg);
    s.truncate_to(CommitLogOffset(seg)).expect("truncate");
    assert_eq!(s.commit_log_max_offset().get(), seg);
    assert_eq!(segment_names(dir.path()), vec![0, SEG]);
    let again = fill(&s, 3, b'q');
    assert_eq!(again[0].1, seg);
    drop(s);
    // Even after a crash (no shutdown), the reopened store agrees.
    let s = open(dir.path());
    let q0 = contents(&s, 0);
    assert_eq!(q0.last().map(|c| (c.1, c.2)), Some((again[2].1, b'q')));
}

#[test]
fn a_replica_cut_in_a_torn_record_and_re_fed_from_another_master() {
    let (ad, bd, rd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let a = open(ad.path());
    let a_puts = fill(&a, 120, b'a');
    let replica = open(rd.path());
    // Ship A to the replica, ending half-way through record 100.
    let stop = a_puts[100].1 + 30;
    let mut from = 0i64;
    while from < stop {
        let c = a
            .transfer_chunk(CommitLogOffset(from), (stop - from) as usize)
            .expect("chunk");
        from = replica
            .append_replica(CommitLogOffset(from), &c)
            .expect("append")
            .get();
    }
    assert_eq!(replica.commit_log_max_offset().get(), stop);
    assert_eq!(replica.dispatched_offset().get(), a_puts[100].1);
    assert_eq!(
        replica.truncate_torn_tail().expect("torn").get(),
        a_puts[100].1
    );
    assert_eq!(replica.commit_log_max_offset().get(), a_puts[100].1);
    // Nothing more to cut.
    assert_eq!(
        replica.truncate_torn_tail().expect("torn").get(),
        a_puts[100].1
    );

    // Another master B shares A's first 60 records, then diverges.
    let b = open(bd.path());
    let mut from = 0i64;
    let common_end = a_puts[60].1;
    while from < common_end {
        let c = a
            .transfer_chunk(CommitLogOffset(from), (common_end - from) as usize)
            .expect("chunk");
        from = b
            .append_replica(CommitLogOffset(from), &c)
            .expect("append")
            .get();
    }
    fill(&b, 80, b'b');
    // The replica truncates to the common point and follows B.
    replica
        .truncate_to(CommitLogOffset(common_end))
        .expect("truncate");
    let mut from = common_end;
    while let Some(c) = b.transfer_chunk(CommitLogOffset(from), 5000) {
        from = replica
            .append_replica(CommitLogOffset(from), &c)
            .expect("append")
            .get();
    }
    assert_eq!(replica.commit_log_max_offset(), b.commit_log_max_offset());
    for q in 0..2 {
        assert_eq!(contents(&replica, q), contents(&b, q), "queue {q}");
    }
    b.shutdown();
    replica.shutdown();
    drop((b, replica));
    let bytes = |d: &std::path::Path| -> Vec<Vec<u8>> {
        let mut names = segment_names(d);
        names.sort_unstable();
        names
            .iter()
            .map(|n| std::fs::read(d.join("commitlog").join(format!("{n:020}"))).expect("read"))
            .collect()
    };
    assert_eq!(bytes(rd.path()), bytes(bd.path()));
}
