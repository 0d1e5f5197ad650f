//! SYNC_FLUSH group commit and retention (fileReservedTime, deleteWhen,
//! diskMaxUsedSpaceRatio, cleanFileForciblyEnable) with an explicit clock.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{msg, PutNow, SEG};
use store::{CommitLogOffset, QueueOffset};
use store::{FlushDiskType, GetStatus, MessageStore, PutStatus, StoreConfig};

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.filter_map(Result::ok).count())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn hour_of(ms: i64) -> String {
    format!("{:02}", ms.rem_euclid(86_400_000) / 3_600_000)
}

#[test]
fn sync_flush_group_commit_acknowledges_only_flushed_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = StoreConfig {
        flush_disk_type: FlushDiskType::SyncFlush,
        // The periodic flusher must not be the one doing the work.
        flush_interval_commit_log_ms: 60_000,
        ..common::config(dir.path())
    };
    let store = MessageStore::open(cfg).expect("open");
    const THREADS: usize = 8;
    const PER_THREAD: usize = 150;
    let body = vec![7u8; 1024];
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let body = body.clone();
            std::thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    let r = store
                        .put_now(&msg("GC", t as i32 % 4, &body, None))
                        .expect("put");
                    assert_eq!(r.status, PutStatus::PutOk);
                    let end = r.commit_log_offset + r.wrote_bytes as i64;
                    let flushed = store.commit_log_flushed_offset();
                    assert!(
                        flushed >= end,
                        "acknowledged before flush: flushed {flushed} < end {end}"
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer thread");
    }
    let puts = (THREADS * PER_THREAD) as u64;
    let flushes = store.commit_log_flush_count();
    eprintln!("{flushes} flushes for {puts} puts");
    assert!(flushes > 0, "nothing was flushed");
    assert!(
        flushes < puts,
        "group commit shared no flush: {flushes} flushes for {puts} puts"
    );
    let total: usize = (0..4)
        .map(|q| common::read_queue(&store, "GC", q).len())
        .sum();
    assert_eq!(total, THREADS * PER_THREAD);
    store.shutdown();
    // A put after shutdown is refused, not left waiting for a flusher.
    assert!(store.put_now(&msg("GC", 0, b"x", None)).is_err());
}

#[test]
fn async_flush_does_not_wait_for_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = StoreConfig {
        flush_interval_commit_log_ms: 60_000,
        ..common::config(dir.path())
    };
    let store = MessageStore::open(cfg).expect("open");
    for _ in 0..20 {
        let r = store.put_now(&msg("A", 0, b"abc", None)).expect("put");
        assert_eq!(r.status, PutStatus::PutOk);
    }
    assert_eq!(store.commit_log_flush_count(), 0);
    store.flush().expect("flush");
    assert_eq!(
        store.commit_log_flushed_offset(),
        store.commit_log_max_offset()
    );
}

fn retention_config(dir: &Path) -> StoreConfig {
    StoreConfig {
        max_hash_slot_num: 16,
        max_index_num: 40,
        // 50 entries per consume-queue file.
        mapped_file_size_consume_queue: 20 * 50,
        clean_resource_interval_ms: 3_600_000,
        ..common::config(dir)
    }
}

/// ~5 full commit-log segments over two queues, each message with a key.
fn fill(store: &MessageStore) -> usize {
    let body = vec![1u8; 1000];
    let mut n = 0;
    while store.commit_log_max_offset().get() < 5 * SEG as i64 + 100 {
        store
            .put_now(&msg("R", n as i32 % 2, &body, Some("T")))
            .expect("put");
        n += 1;
    }
    n
}

#[test]
fn retention_deletes_expired_segments_and_trims_queues_and_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let later = now_ms() + 2 * 3_600_000;
    let cfg = StoreConfig {
        file_reserved_time_hours: 1,
        delete_when: hour_of(later),
        ..retention_config(dir.path())
    };
    let store = MessageStore::open(cfg.clone()).expect("open");
    let total = fill(&store);
    store.flush().expect("flush");
    let cl_dir = dir.path().join("commitlog");
    let segs_before = count_files(&cl_dir);
    assert_eq!(segs_before, 6);
    let cq_before = count_files(&dir.path().join("consumequeue/R/0"));
    let idx_before = count_files(&dir.path().join("index"));
    assert!(
        cq_before >= 3 && idx_before >= 3,
        "{cq_before} {idx_before}"
    );

    // Not expired yet (now): nothing goes, even at a deleteWhen hour.
    let r = store.clean_expired_files_at(now_ms(), 0.1).expect("clean");
    assert_eq!(r.commit_log_files, 0);
    // Expired but outside deleteWhen and the disk is fine: nothing either.
    let other_hour = later + 3 * 3_600_000;
    let r = store
        .clean_expired_files_at(other_hour, 0.1)
        .expect("clean");
    assert_eq!(r.commit_log_files, 0);
    assert_eq!(store.commit_log_min_offset().get(), 0);

    // Expired at a deleteWhen hour: all but the active segment go.
    let r = store.clean_expired_files_at(later, 0.1).expect("clean");
    assert_eq!(r.commit_log_files, 5);
    let min = store.commit_log_min_offset();
    assert_eq!(min, CommitLogOffset(5 * SEG as i64));
    assert_eq!(r.commit_log_min_offset, min);
    assert_eq!(count_files(&cl_dir), 1);
    assert!(r.consume_queue_files > 0 && r.index_files > 0, "{r:?}");
    assert!(count_files(&dir.path().join("consumequeue/R/0")) < cq_before);
    assert!(count_files(&dir.path().join("index")) < idx_before);

    // Queue min offsets moved; below them pulls are OFFSET_TOO_SMALL.
    let mut left = 0;
    for q in 0..2 {
        let qmin = store.min_offset("R", q);
        assert!(qmin > QueueOffset(0));
        let g = store.get_messages("R", q, QueueOffset(0), 32, 1 << 20, &common::all);
        assert_eq!(g.status, GetStatus::OffsetTooSmall);
        assert_eq!(g.next_begin_offset, qmin);
        let msgs = common::read_queue(&store, "R", q);
        assert_eq!(msgs.len() as i64, store.max_offset("R", q) - qmin);
        for m in &msgs {
            assert!(m.physical_offset >= min.get());
        }
        left += msgs.len();
    }
    assert!(left > 0 && left < total);

    // Writes go on; the pass is idempotent; a restart keeps the new minimum.
    store.put_now(&msg("R", 0, b"after", None)).expect("put");
    let r = store.clean_expired_files_at(later, 0.1).expect("clean");
    assert_eq!(r.commit_log_files, 0);
    let mins: Vec<i64> = (0..2).map(|q| store.min_offset("R", q).get()).collect();
    store.shutdown();
    drop(store);
    let store = MessageStore::open(cfg).expect("reopen");
    assert_eq!(store.commit_log_min_offset(), min);
    let again: Vec<i64> = (0..2).map(|q| store.min_offset("R", q).get()).collect();
    assert_eq!(again, mins);
    let after: usize = (0..2)
        .map(|q| common::read_queue(&store, "R", q).len())
        .sum();
    assert_eq!(after, left + 1);
}

#[test]
fn retention_by_disk_ratio_and_batch_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = now_ms();
    let cfg = StoreConfig {
        file_reserved_time_hours: 72,
        // Never a deleteWhen hour for this clock.
        delete_when: hour_of(now + 12 * 3_600_000),
        disk_max_used_space_ratio: 75,
        delete_file_batch_max: 2,
        ..retention_config(dir.path())
    };
    let store = MessageStore::open(cfg).expect("open");
    fill(&store);
    // Above diskMaxUsedSpaceRatio but below the forced ratio: only expired
    // files may go, and none is.
    let r = store.clean_expired_files_at(now, 0.80).expect("clean");
    assert_eq!(r.commit_log_files, 0);
    // Over 72 h later the same ratio deletes by age (batch of 2).
    let r = store
        .clean_expired_files_at(now + 73 * 3_600_000, 0.80)
        .expect("clean");
    assert_eq!(r.commit_log_files, 2);
    assert_eq!(store.commit_log_min_offset().get(), 2 * SEG as i64);
    // Above 0.85 with cleanFileForciblyEnable: age does not matter, the
    // active segment still stays.
    for _ in 0..5 {
        store.clean_expired_files_at(now, 0.95).expect("clean");
    }
    assert_eq!(store.commit_log_min_offset().get(), 5 * SEG as i64);
    assert_eq!(count_files(&dir.path().join("commitlog")), 1);
    let r = store.clean_expired_files_at(now, 0.99).expect("clean");
    assert_eq!(r.commit_log_files, 0);
    assert!(!common::read_queue(&store, "R", 0).is_empty());
}

#[test]
fn forced_clean_can_be_disabled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = now_ms();
    let cfg = StoreConfig {
        delete_when: hour_of(now + 12 * 3_600_000),
        clean_file_forcibly_enable: false,
        ..retention_config(dir.path())
    };
    let store = Arc::new(MessageStore::open(cfg).expect("open"));
    fill(&store);
    let r = store.clean_expired_files_at(now, 0.95).expect("clean");
    assert_eq!(r.commit_log_files, 0);
    assert_eq!(store.commit_log_min_offset().get(), 0);
}

#[test]
fn periodic_cleaner_deletes_expired_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let every_hour: Vec<String> = (0..24).map(|h| format!("{h:02}")).collect();
    let cfg = StoreConfig {
        file_reserved_time_hours: 0,
        delete_when: every_hour.join(";"),
        clean_initial_delay_ms: 50,
        clean_resource_interval_ms: 50,
        ..retention_config(dir.path())
    };
    let store = MessageStore::open(cfg).expect("open");
    fill(&store);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let cl_dir = dir.path().join("commitlog");
    // The list shrinks, then the files are unlinked, then the queues are
    // trimmed: wait for all three.
    while store.commit_log_min_offset().get() < 5 * SEG as i64
        || count_files(&cl_dir) > 1
        || store.min_offset("R", 0).get() == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the cleaner never deleted the expired segments (min {})",
            store.commit_log_min_offset()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(store.min_offset("R", 0).get() > 0);
    store
        .put_now(&msg("R", 0, b"still writable", None))
        .expect("put");
}
