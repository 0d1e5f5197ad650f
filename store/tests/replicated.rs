//! The commit-log seam (`replicated.rs`): a store whose records live in a
//! log it does not own. A fake DLedger-like log with 48-byte entry headers
//! stands in for the broker's DLedger adapter.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use store::record::{self, StoredMessage};
use store::{CommitLogOffset, QueueOffset};

use store::{
    GetStatus, MessageStore, PendingAppend, ReplicatedAppendError, ReplicatedLog, StoreError,
};

const HEADER: i64 = 48;

/// Entries as (pos, record); `fail` makes the next append fail.
#[derive(Default)]
struct FakeLog {
    entries: Mutex<Vec<(i64, Vec<u8>)>>,
    fail: Mutex<Option<bool>>,
    /// The epoch of every append call, in order.
    epochs: Mutex<Vec<i64>>,
}

impl FakeLog {
    fn end(&self) -> i64 {
        self.entries
            .lock()
            .unwrap()
            .last()
            .map_or(0, |(p, r)| p + HEADER + r.len() as i64)
    }
}

impl ReplicatedLog for FakeLog {
    fn append(
        &self,
        records: Vec<Bytes>,
        epoch: i64,
    ) -> Result<PendingAppend, ReplicatedAppendError> {
        self.epochs.lock().unwrap().push(epoch);
        let fail = self.fail.lock().unwrap().take();
        if fail == Some(false) {
            return Err(ReplicatedAppendError {
                written: false,
                error: StoreError::ShutDown,
            });
        }
        let mut out = Vec::new();
        for r in records {
            let pos = self.end();
            self.entries.lock().unwrap().push((pos, r.to_vec()));
            out.push(CommitLogOffset(pos + HEADER));
        }
        let outcome = match fail {
            None => Ok(out),
            Some(written) => Err(ReplicatedAppendError {
                written,
                error: StoreError::ShutDown,
            }),
        };
        Ok(Box::pin(std::future::ready(outcome)))
    }

    fn read(&self, offset: CommitLogOffset, len: usize) -> Option<Bytes> {
        let offset = offset.get();
        let entries = self.entries.lock().unwrap();
        let (pos, rec) = entries.iter().find(|(p, _)| p + HEADER == offset)?;
        let _ = pos;
        let mut b = rec.get(..len)?.to_vec();
        if len >= 36 {
            b[28..36].copy_from_slice(&offset.to_be_bytes());
        }
        Some(Bytes::from(b))
    }

    fn min_offset(&self) -> CommitLogOffset {
        CommitLogOffset(HEADER)
    }
}

fn dispatch_all(s: &MessageStore, log: &FakeLog, from: usize) -> usize {
    let entries = log.entries.lock().unwrap().clone();
    for (pos, rec) in &entries[from..] {
        s.dispatch_replicated(CommitLogOffset(pos + HEADER), rec)
            .expect("dispatch");
    }
    entries.len()
}

#[test]
fn puts_reach_queues_only_through_dispatch_with_entry_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(FakeLog::default());
    let s = MessageStore::open_replicated(config(dir.path()), log.clone()).expect("open");
    assert!(s.is_replicated());
    // Not the writer yet (queues not rebuilt): refused, nothing appended.
    assert!(matches!(
        s.put_now(&msg("T", 1, b"early", None)),
        Err(StoreError::NotWriter)
    ));
    assert!(log.entries.lock().unwrap().is_empty());
    s.become_writer(3);
    let r1 = s.put_now(&msg("T", 1, b"one", Some("A"))).expect("put");
    let r2 = s.put_now(&msg("T", 1, b"two", Some("B"))).expect("put");
    assert_eq!((r1.queue_offset.get(), r2.queue_offset.get()), (0, 1));
    assert_eq!(r1.commit_log_offset.get(), HEADER);
    assert_eq!(
        r2.commit_log_offset.get(),
        HEADER + r1.wrote_bytes as i64 + HEADER
    );
    // Nothing dispatched yet: the queue is empty and the max offset is 0.
    assert_eq!(s.max_offset("T", 1).get(), 0);
    assert_eq!(s.commit_log_max_offset().get(), 0);

    let n = dispatch_all(&s, &log, 0);
    assert_eq!(s.max_offset("T", 1).get(), 2);
    assert_eq!(s.commit_log_max_offset().get(), log.end());
    let g = s.get_messages("T", 1, QueueOffset(0), 32, 1 << 20, &all);
    assert_eq!(g.status, GetStatus::Found);
    let d: Vec<StoredMessage> = g
        .messages
        .iter()
        .map(|m| StoredMessage::decode(m).expect("decode"))
        .collect();
    assert_eq!(&d[1].body[..], b"two");
    assert_eq!(d[1].queue_offset, 1);
    assert_eq!(d[1].physical_offset, r2.commit_log_offset.get());
    assert_eq!(d[1].offset_msg_id(), r2.msg_ids()[0]);
    assert!(s.message_at(r2.commit_log_offset).is_some());

    // A failure that wrote the entry uses its queue offset; one that did not
    // does not.
    *log.fail.lock().unwrap() = Some(true);
    assert!(s.put_now(&msg("T", 1, b"maybe", None)).is_err());
    *log.fail.lock().unwrap() = Some(false);
    assert!(s.put_now(&msg("T", 1, b"never", None)).is_err());
    let r = s.put_now(&msg("T", 1, b"three", None)).expect("put");
    assert_eq!(r.queue_offset.get(), 3);
    dispatch_all(&s, &log, n);
    assert_eq!(s.max_offset("T", 1).get(), 4);

    // A batch: one entry per message, consecutive queue offsets.
    let batch = vec![msg("T", 2, b"b0", None), msg("T", 2, b"b1", None)];
    let r = s.put_messages_now(&batch).expect("batch");
    assert_eq!(r.commit_log_offsets.len(), 2);
    assert_eq!(
        r.commit_log_offsets[1] - r.commit_log_offsets[0],
        r.wrote_bytes as i64 / 2 + HEADER
    );
    // Every append was fenced to the writer's epoch.
    let epochs = log.epochs.lock().unwrap().clone();
    assert!(
        !epochs.is_empty() && epochs.iter().all(|e| *e == 3),
        "{epochs:?}"
    );
    // After stop_writing, puts are refused again and nothing is appended.
    let appended = log.entries.lock().unwrap().len();
    s.stop_writing();
    assert!(matches!(
        s.put_now(&msg("T", 1, b"late", None)),
        Err(StoreError::NotWriter)
    ));
    assert_eq!(log.entries.lock().unwrap().len(), appended);
    let _ = record::MIN_RECORD_LEN;
}

#[test]
fn reopen_rebuilds_queues_from_the_log_and_skips_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(FakeLog::default());
    {
        let s = MessageStore::open_replicated(config(dir.path()), log.clone()).expect("open");
        s.become_writer(1);
        for i in 0..5 {
            s.put_now(&msg("T", 0, format!("m{i}").as_bytes(), None))
                .expect("put");
        }
        dispatch_all(&s, &log, 0);
        assert_eq!(s.max_offset("T", 0).get(), 5);
        s.shutdown();
    }
    let s = MessageStore::open_replicated(config(dir.path()), log.clone()).expect("reopen");
    assert_eq!(
        s.max_offset("T", 0).get(),
        0,
        "queues are rebuilt by dispatch"
    );
    // Before the rebuild a put would reuse queue offset 0: it is refused.
    assert!(matches!(
        s.put_now(&msg("T", 0, b"early", None)),
        Err(StoreError::NotWriter)
    ));
    dispatch_all(&s, &log, 0);
    // The same entries again (a re-dispatch) change nothing.
    dispatch_all(&s, &log, 0);
    assert_eq!(s.max_offset("T", 0).get(), 5);
    let g = s.get_messages("T", 0, QueueOffset(0), 32, 1 << 20, &all);
    assert_eq!(g.messages.len(), 5);
    // A new writer continues after the dispatched queue.
    s.become_writer(2);
    let r = s.put_now(&msg("T", 0, b"next", None)).expect("put");
    assert_eq!(r.queue_offset.get(), 5);
}

/// A log whose outcomes are known only once `want` entries are in it.
struct GateLog {
    inner: Arc<FakeLog>,
    want: usize,
}

impl ReplicatedLog for GateLog {
    fn append(
        &self,
        records: Vec<Bytes>,
        epoch: i64,
    ) -> Result<PendingAppend, ReplicatedAppendError> {
        let outcome = self.inner.append(records, epoch)?;
        let (log, want) = (self.inner.clone(), self.want);
        // Polled by the putting thread after the put returned (outside the
        // store's writer lock); it waits there for the other put's entry.
        Ok(Box::pin(async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while log.entries.lock().unwrap().len() < want {
                if std::time::Instant::now() > deadline {
                    return Err(ReplicatedAppendError {
                        written: true,
                        error: StoreError::ShutDown,
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            outcome.await
        }))
    }

    fn read(&self, offset: CommitLogOffset, len: usize) -> Option<Bytes> {
        self.inner.read(offset, len)
    }

    fn min_offset(&self) -> CommitLogOffset {
        CommitLogOffset(HEADER)
    }
}

/// A put waits for its outcome without the writer lock: the first put's
/// outcome needs the second put's entry, which another thread appends
/// meanwhile; both get consecutive queue offsets in log order.
#[test]
fn puts_wait_for_outcomes_outside_the_writer_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(GateLog {
        inner: Arc::new(FakeLog::default()),
        want: 2,
    });
    let s = MessageStore::open_replicated(config(dir.path()), log.clone()).expect("open");
    s.become_writer(1);
    let s1 = s.clone();
    let first = std::thread::spawn(move || s1.put_now(&msg("T", 0, b"first", None)));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while log.inner.entries.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "first put never appended"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let second = s
        .put_now(&msg("T", 0, b"second", None))
        .expect("second put");
    let first = first.join().unwrap().expect("first put");
    assert_eq!(
        (first.queue_offset.get(), second.queue_offset.get()),
        (0, 1)
    );
    assert!(first.commit_log_offset < second.commit_log_offset);
    dispatch_all(&s, &log.inner, 0);
    assert_eq!(s.max_offset("T", 0).get(), 2);
}
