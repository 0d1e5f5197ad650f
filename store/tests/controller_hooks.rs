//! The store's controller-mode hooks: the read-limit listener (long polls
//! look again when the confirm offset rises) and the epoch file's prefix
//! trimmed by retention.

mod common;

use std::sync::{Arc, Mutex};

use common::{msg, open, PutNow, SEG};
use store::{CommitLogOffset, EpochEntry, EpochFile, MessageStore, StoreConfig};

#[test]
fn read_limit_listener_fires_when_the_limit_rises_or_is_lifted() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = open(dir.path());
    let seen: Arc<Mutex<Vec<Option<i64>>>> = Arc::default();
    let log = seen.clone();
    s.set_read_limit_listener(Arc::new(move |l| {
        log.lock().expect("lock").push(l.map(CommitLogOffset::get))
    }));
    s.set_read_limit(Some(CommitLogOffset(100)));
    // Same value, then lower: nothing new is readable, no call.
    s.set_read_limit(Some(CommitLogOffset(100)));
    s.set_read_limit(Some(CommitLogOffset(50)));
    s.set_read_limit(Some(CommitLogOffset(200)));
    s.set_read_limit(None);
    s.set_read_limit(None);
    assert_eq!(*seen.lock().expect("lock"), [Some(200), None]);
}

#[test]
fn retention_drops_epoch_entries_below_the_new_min_offset() {
    let dir = tempfile::tempdir().expect("tmp");
    let later = now_ms() + 2 * 3_600_000;
    let cfg = StoreConfig {
        file_reserved_time_hours: 1,
        delete_when: format!("{:02}", later.rem_euclid(86_400_000) / 3_600_000),
        clean_resource_interval_ms: 3_600_000,
        ..common::config(dir.path())
    };
    let store = MessageStore::open(cfg).expect("open");
    let seg = SEG as i64;
    let body = vec![7u8; 1000];
    while store.commit_log_max_offset().get() < 5 * seg + 100 {
        store.put_now(&msg("R", 0, &body, None)).expect("put");
    }
    store.flush().expect("flush");
    let epochs =
        Arc::new(EpochFile::open(&dir.path().join("epochFileCheckpoint")).expect("epochs"));
    for (epoch, start) in [(1, 0), (2, seg + 10), (3, 3 * seg + 5), (4, 4 * seg + 50)] {
        assert!(epochs
            .append(EpochEntry {
                epoch,
                start_offset: start
            })
            .expect("append"));
    }
    store.set_epoch_file(Some(epochs.clone()));

    // A pass that deletes nothing leaves the entries alone.
    let r = store.clean_expired_files_at(now_ms(), 0.1).expect("clean");
    assert_eq!(r.commit_log_files, 0);
    assert_eq!(epochs.entries().len(), 4);

    // All but the active segment go: the entries that end below the new
    // minimum go with them; the last one (open-ended) starts at min - 1 as
    // Java's truncateEpochFilePrefix(minPhyOffset - 1) leaves it.
    let r = store.clean_expired_files_at(later, 0.1).expect("clean");
    assert_eq!(r.commit_log_files, 5);
    let min = store.commit_log_min_offset().get();
    assert_eq!(min, 5 * seg);
    assert_eq!(
        epochs.entries(),
        [EpochEntry {
            epoch: 4,
            start_offset: min - 1
        }]
    );
    // Written through: a reopened file agrees.
    let again = EpochFile::open(&dir.path().join("epochFileCheckpoint")).expect("reopen");
    assert_eq!(again.entries(), epochs.entries());
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
