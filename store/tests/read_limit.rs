//! `MessageStore::set_read_limit`: controller mode's confirm offset holds
//! consumers back from records past it; puts go on as before.

mod common;

use store::{CommitLogOffset, GetStatus, QueueOffset};

use common::{all, msg, open, read_queue, PutNow};

#[test]
fn records_past_the_limit_are_not_readable_until_it_moves() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = open(dir.path());
    let mut ends = Vec::new();
    for i in 0..10 {
        let r = s
            .put_now(&msg("T", 0, &[b'a' + i as u8; 100], None))
            .expect("put");
        ends.push(r.commit_log_offset.get() + r.wrote_bytes as i64);
    }
    assert_eq!(s.read_limit(), None);
    assert_eq!(read_queue(&s, "T", 0).len(), 10);

    // Confirmed up to the end of the fourth record: queue offsets 0..=3.
    s.set_read_limit(Some(CommitLogOffset(ends[3])));
    assert_eq!(s.read_limit(), Some(CommitLogOffset(ends[3])));
    assert_eq!(s.max_offset("T", 0), QueueOffset(4));
    assert_eq!(read_queue(&s, "T", 0).len(), 4);
    let r = s.get_messages("T", 0, QueueOffset(4), 32, 1 << 20, &all);
    assert_eq!(r.status, GetStatus::OffsetOverflowOne);
    assert!(r.messages.is_empty());
    // A limit inside a record hides that record too.
    s.set_read_limit(Some(CommitLogOffset(ends[5] - 1)));
    assert_eq!(s.max_offset("T", 0), QueueOffset(5));
    // Puts still append and answer with their real queue offsets.
    let r = s.put_now(&msg("T", 0, b"late", None)).expect("put");
    assert_eq!(r.queue_offset, QueueOffset(10));
    assert_eq!(s.max_offset("T", 0), QueueOffset(5));
    s.set_read_limit(Some(s.commit_log_max_offset()));
    assert_eq!(s.max_offset("T", 0), QueueOffset(11));
    s.set_read_limit(None);
    assert_eq!(read_queue(&s, "T", 0).len(), 11);
}
