//! The commit-log seam (`replicated.rs`): a store whose records live in a
//! log it does not own. A fake DLedger-like log with 48-byte entry headers
//! stands in for the broker's DLedger adapter.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use store::record::{self, StoredMessage};
use store::{GetStatus, MessageStore, ReplicatedAppendError, ReplicatedLog, StoreError};

const HEADER: i64 = 48;

/// Entries as (pos, record); `fail` makes the next append fail.
#[derive(Default)]
struct FakeLog {
    entries: Mutex<Vec<(i64, Vec<u8>)>>,
    fail: Mutex<Option<bool>>,
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
    fn append(&self, records: Vec<Bytes>) -> Result<Vec<i64>, ReplicatedAppendError> {
        let fail = self.fail.lock().unwrap().take();
        let mut out = Vec::new();
        for r in records {
            let pos = self.end();
            if fail != Some(false) {
                self.entries.lock().unwrap().push((pos, r.to_vec()));
            }
            out.push(pos + HEADER);
        }
        match fail {
            None => Ok(out),
            Some(written) => Err(ReplicatedAppendError {
                written,
                error: StoreError::ShutDown,
            }),
        }
    }

    fn read(&self, offset: i64, len: usize) -> Option<Bytes> {
        let entries = self.entries.lock().unwrap();
        let (pos, rec) = entries.iter().find(|(p, _)| p + HEADER == offset)?;
        let _ = pos;
        let mut b = rec.get(..len)?.to_vec();
        if len >= 36 {
            b[28..36].copy_from_slice(&offset.to_be_bytes());
        }
        Some(Bytes::from(b))
    }

    fn min_offset(&self) -> i64 {
        HEADER
    }
}

fn dispatch_all(s: &MessageStore, log: &FakeLog, from: usize) -> usize {
    let entries = log.entries.lock().unwrap().clone();
    for (pos, rec) in &entries[from..] {
        s.dispatch_replicated(pos + HEADER, rec).expect("dispatch");
    }
    entries.len()
}

#[test]
fn puts_reach_queues_only_through_dispatch_with_entry_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(FakeLog::default());
    let s = MessageStore::open_replicated(config(dir.path()), log.clone()).expect("open");
    assert!(s.is_replicated());
    let r1 = s.put(&msg("T", 1, b"one", Some("A"))).expect("put");
    let r2 = s.put(&msg("T", 1, b"two", Some("B"))).expect("put");
    assert_eq!((r1.queue_offset, r2.queue_offset), (0, 1));
    assert_eq!(r1.commit_log_offset, HEADER);
    assert_eq!(
        r2.commit_log_offset,
        HEADER + r1.wrote_bytes as i64 + HEADER
    );
    // Nothing dispatched yet: the queue is empty and the max offset is 0.
    assert_eq!(s.max_offset("T", 1), 0);
    assert_eq!(s.commit_log_max_offset(), 0);

    let n = dispatch_all(&s, &log, 0);
    assert_eq!(s.max_offset("T", 1), 2);
    assert_eq!(s.commit_log_max_offset(), log.end());
    let g = s.get_messages("T", 1, 0, 32, 1 << 20, &all);
    assert_eq!(g.status, GetStatus::Found);
    let d: Vec<StoredMessage> = g
        .messages
        .iter()
        .map(|m| StoredMessage::decode(m).expect("decode"))
        .collect();
    assert_eq!(&d[1].body[..], b"two");
    assert_eq!(d[1].queue_offset, 1);
    assert_eq!(d[1].physical_offset, r2.commit_log_offset);
    assert_eq!(d[1].offset_msg_id(), r2.msg_ids[0]);
    assert!(s.message_at(r2.commit_log_offset).is_some());

    // A failure that wrote the entry uses its queue offset; one that did not
    // does not.
    *log.fail.lock().unwrap() = Some(true);
    assert!(s.put(&msg("T", 1, b"maybe", None)).is_err());
    *log.fail.lock().unwrap() = Some(false);
    assert!(s.put(&msg("T", 1, b"never", None)).is_err());
    let r = s.put(&msg("T", 1, b"three", None)).expect("put");
    assert_eq!(r.queue_offset, 3);
    dispatch_all(&s, &log, n);
    assert_eq!(s.max_offset("T", 1), 4);

    // A batch: one entry per message, consecutive queue offsets.
    let batch = vec![msg("T", 2, b"b0", None), msg("T", 2, b"b1", None)];
    let r = s.put_messages(&batch).expect("batch");
    assert_eq!(r.commit_log_offsets.len(), 2);
    assert_eq!(
        r.commit_log_offsets[1] - r.commit_log_offsets[0],
        r.wrote_bytes as i64 / 2 + HEADER
    );
    let _ = record::MIN_RECORD_LEN;
}

#[test]
fn reopen_rebuilds_queues_from_the_log_and_skips_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(FakeLog::default());
    {
        let s = MessageStore::open_replicated(config(dir.path()), log.clone()).expect("open");
        for i in 0..5 {
            s.put(&msg("T", 0, format!("m{i}").as_bytes(), None))
                .expect("put");
        }
        dispatch_all(&s, &log, 0);
        assert_eq!(s.max_offset("T", 0), 5);
        s.shutdown();
    }
    let s = MessageStore::open_replicated(config(dir.path()), log.clone()).expect("reopen");
    assert_eq!(s.max_offset("T", 0), 0, "queues are rebuilt by dispatch");
    dispatch_all(&s, &log, 0);
    // The same entries again (a re-dispatch) change nothing.
    dispatch_all(&s, &log, 0);
    assert_eq!(s.max_offset("T", 0), 5);
    let g = s.get_messages("T", 0, 0, 32, 1 << 20, &all);
    assert_eq!(g.messages.len(), 5);
    // A new writer continues after the dispatched queue.
    s.reset_queue_offsets();
    let r = s.put(&msg("T", 0, b"next", None)).expect("put");
    assert_eq!(r.queue_offset, 5);
}
