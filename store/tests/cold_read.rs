//! Gets of "in disk" messages (Java `DefaultMessageStore.getMessage` /
//! `isTheBatchFull`): the in-disk transfer caps, and cold gets, which fault
//! their pages in on their own thread (`is_cold_read`, the cold-read hook).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{all, msg, PutNow};
use store::{GetStatus, MessageStore, QueueOffset, StoreConfig, StoredMessage};

fn open(dir: &std::path::Path, tweak: impl FnOnce(&mut StoreConfig)) -> MessageStore {
    let mut cfg = StoreConfig {
        mapped_file_size_commit_log: 1024 * 1024,
        ..StoreConfig::with_root(dir)
    };
    tweak(&mut cfg);
    MessageStore::open(cfg).expect("open store")
}

fn fill(s: &MessageStore, topic: &str, n: usize, body_len: usize) {
    for i in 0..n {
        let body = vec![b'a' + (i % 26) as u8; body_len];
        s.put_now(&msg(topic, 0, &body, None)).expect("put");
    }
}

/// Ratio 0: every message before the commit log's end is in disk, so a get
/// stops at `maxTransferCountOnMessageInDisk` (8) messages; with the
/// default ratio the same queue is in memory and the get takes 32.
#[test]
fn in_disk_messages_use_the_in_disk_count_cap() {
    for (ratio, expected) in [(0, 8), (40, 32)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(dir.path(), |c| c.access_message_in_memory_max_ratio = ratio);
        fill(&s, "T", 40, 100);
        let r = s.get_messages("T", 0, QueueOffset(0), 32, 1 << 20, &all);
        assert_eq!(r.status, GetStatus::Found);
        assert_eq!(
            r.messages.len(),
            expected,
            "accessMessageInMemoryMaxRatio={ratio}"
        );
        assert_eq!(r.next_begin_offset, QueueOffset(expected as i64));
        assert_eq!(r.suggest_pulling_from_slave, ratio == 0);
    }
}

/// The byte cap: `maxTransferBytesOnMessageInDisk` stops a get before the
/// message that would pass it, never before the first one.
#[test]
fn in_disk_messages_use_the_in_disk_byte_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path(), |c| {
        c.access_message_in_memory_max_ratio = 0;
        c.max_transfer_count_on_message_in_disk = 100;
        c.max_transfer_bytes_on_message_in_disk = 1000;
    });
    fill(&s, "T", 20, 200);
    let r = s.get_messages("T", 0, QueueOffset(0), 32, 1 << 20, &all);
    let size = r.messages[0].len();
    assert!(size > 200 && size < 500, "record size {size}");
    assert_eq!(r.messages.len(), 1000 / size);
    // One record larger than the cap still comes alone.
    let s2dir = tempfile::tempdir().expect("tempdir");
    let s2 = open(s2dir.path(), |c| {
        c.access_message_in_memory_max_ratio = 0;
        c.max_transfer_bytes_on_message_in_disk = 100;
    });
    fill(&s2, "T", 3, 500);
    let r = s2.get_messages("T", 0, QueueOffset(0), 32, 1 << 20, &all);
    assert_eq!(r.messages.len(), 1);
}

/// A get from further behind the end than the cold-read window is cold: it
/// runs the hook (on the calling thread) and hands out the same bytes; a get
/// of the tail is not, and an unknown queue or offset never is.
#[test]
fn cold_gets_run_the_hook_and_read_the_same_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path(), |c| c.cold_read_window_bytes = 10_000);
    // ~3 commit-log segments of 1 MiB, so cold spans cross segment ends.
    fill(&s, "T", 3000, 1000);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let caller = std::thread::current().id();
    s.set_cold_read_hook(Some(Arc::new(move || {
        assert_eq!(std::thread::current().id(), caller);
        c.fetch_add(1, Ordering::SeqCst);
    })));
    assert!(s.is_cold_read("T", 0, QueueOffset(0)));
    assert!(!s.is_cold_read("T", 0, QueueOffset(2999)));
    assert!(!s.is_cold_read("T", 0, QueueOffset(3000)));
    assert!(!s.is_cold_read("X", 0, QueueOffset(0)));

    let mut offset = QueueOffset(0);
    let mut seen = 0usize;
    let mut cold_gets = 0usize;
    for _ in 0..1000 {
        let cold = s.is_cold_read("T", 0, offset);
        let r = s.get_messages("T", 0, offset, 32, 1 << 20, &all);
        if r.status != GetStatus::Found {
            break;
        }
        cold_gets += usize::from(cold);
        for b in &r.messages {
            let m = StoredMessage::decode(b).expect("decode");
            assert_eq!(m.queue_offset, seen as i64);
            assert_eq!(m.body.len(), 1000);
            assert!(m.body.iter().all(|x| *x == b'a' + (seen % 26) as u8));
            seen += 1;
        }
        offset = r.next_begin_offset;
    }
    assert_eq!(seen, 3000);
    assert!(cold_gets > 50, "{cold_gets} cold gets");
    assert_eq!(calls.load(Ordering::SeqCst), cold_gets);
}
