//! The replication hook (`store::replication`): what a master's puts ask a
//! hook and how its answers become put results, and the byte path a slave
//! replicates through (`transfer_chunk` on the master, `append_replica` on
//! the slave) — files byte-identical, every queue readable at the master's
//! offsets, frames cut anywhere.

mod common;

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use futures::channel::oneshot;
use futures::FutureExt;
use store::replication::{Admission, ReplicaAck, ReplicaWait, Replication};
use store::{properties, CommitLogOffset, MessageStore, PutStatus, StoreError};

use common::{config, msg, open, read_queue, PutNow, SEG};

/// A hook answering every put with `admission`, recording what the store
/// told it, and handing out waits the test resolves.
struct FakeHook {
    admission: Admission,
    admitted_at: Mutex<Vec<i64>>,
    appended: AtomicI64,
    appended_calls: AtomicUsize,
    waits: Mutex<Vec<(i64, u32, oneshot::Sender<ReplicaAck>)>>,
}

impl FakeHook {
    fn new(admission: Admission) -> Arc<FakeHook> {
        Arc::new(FakeHook {
            admission,
            admitted_at: Mutex::new(Vec::new()),
            appended: AtomicI64::new(-1),
            appended_calls: AtomicUsize::new(0),
            waits: Mutex::new(Vec::new()),
        })
    }

    fn answer(&self, ack: ReplicaAck) -> (i64, u32) {
        let (end, acks, tx) = self.waits.lock().expect("lock").remove(0);
        tx.send(ack).expect("put still waiting");
        (end, acks)
    }
}

impl Replication for FakeHook {
    fn admit(&self, log_end: CommitLogOffset) -> Admission {
        self.admitted_at.lock().expect("lock").push(log_end.get());
        self.admission
    }

    fn appended(&self, log_end: CommitLogOffset) {
        self.appended.store(log_end.get(), Ordering::SeqCst);
        self.appended_calls.fetch_add(1, Ordering::SeqCst);
    }

    fn wait(&self, end: CommitLogOffset, acks: u32) -> ReplicaWait {
        let (tx, rx) = oneshot::channel();
        self.waits.lock().expect("lock").push((end.get(), acks, tx));
        Box::pin(rx.map(|r| r.unwrap_or(ReplicaAck::TimedOut)))
    }
}

fn poll_once(p: &mut store::PendingPut) -> Poll<Result<store::PutResult, StoreError>> {
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    p.poll_unpin(&mut cx)
}

#[test]
fn a_waiting_put_resolves_when_the_replicas_answer() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = open(dir.path());
    let hook = FakeHook::new(Admission::Wait { acks: 2 });
    s.set_replication(Some(hook.clone()));

    let mut put = s.put(&msg("T", 0, b"one", None));
    assert!(
        poll_once(&mut put).is_pending(),
        "answered before any replica"
    );
    // Stored and visible already (Java dispatches before the HA wait).
    assert_eq!(s.max_offset("T", 0).get(), 1);
    let end = s.commit_log_max_offset().get();
    assert_eq!(*hook.admitted_at.lock().expect("lock"), vec![0]);
    assert_eq!(hook.appended.load(Ordering::SeqCst), end);
    assert_eq!(hook.answer(ReplicaAck::Acked), (end, 2));
    let r = futures::executor::block_on(put).expect("put");
    assert_eq!(r.status, PutStatus::PutOk);
    assert_eq!(r.queue_offset.get(), 0);

    // A timeout: stored, answered FLUSH_SLAVE_TIMEOUT.
    let mut put = s.put(&msg("T", 0, b"two", None));
    assert!(poll_once(&mut put).is_pending());
    assert_eq!(hook.admitted_at.lock().expect("lock")[1], end);
    hook.answer(ReplicaAck::TimedOut);
    let r = futures::executor::block_on(put).expect("put");
    assert_eq!(r.status, PutStatus::FlushSlaveTimeout);
    assert_eq!(r.queue_offset.get(), 1);
    assert_eq!(read_queue(&s, "T", 0).len(), 2);
}

#[test]
fn a_put_with_wait_false_is_not_admitted_and_does_not_wait() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = open(dir.path());
    let hook = FakeHook::new(Admission::Wait { acks: 2 });
    s.set_replication(Some(hook.clone()));
    let mut m = msg("T", 0, b"async", None);
    m.properties = properties::encode(&[(properties::WAIT, "false")]);
    let r = s.put_now(&m).expect("put");
    assert_eq!(r.status, PutStatus::PutOk);
    assert!(hook.admitted_at.lock().expect("lock").is_empty());
    assert!(hook.waits.lock().expect("lock").is_empty());
    // ... but the transfer side still hears of the new bytes.
    assert_eq!(hook.appended_calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        hook.appended.load(Ordering::SeqCst),
        s.commit_log_max_offset().get()
    );
}

#[test]
fn refused_puts_store_nothing_and_slave_not_available_puts_are_stored() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = open(dir.path());
    s.put_now(&msg("T", 0, b"before", None)).expect("put");
    let end = s.commit_log_max_offset().get();

    let refuse = FakeHook::new(Admission::Refuse);
    s.set_replication(Some(refuse.clone()));
    let e = s
        .put_now(&msg("T", 0, b"refused", None))
        .expect_err("refused");
    assert!(matches!(e, StoreError::InSyncReplicasNotEnough), "{e:?}");
    assert_eq!(s.commit_log_max_offset().get(), end, "nothing written");
    assert_eq!(s.max_offset("T", 0).get(), 1);
    assert_eq!(refuse.appended_calls.load(Ordering::SeqCst), 0);

    s.set_replication(Some(FakeHook::new(Admission::StoreWithoutSlave)));
    let r = s.put_now(&msg("T", 0, b"no slave", None)).expect("put");
    assert_eq!(r.status, PutStatus::SlaveNotAvailable);
    assert_eq!(r.queue_offset.get(), 1);

    s.set_replication(Some(FakeHook::new(Admission::Go)));
    let r = s.put_now(&msg("T", 0, b"go", None)).expect("put");
    assert_eq!(r.status, PutStatus::PutOk);

    s.set_replication(None);
    let r = s.put_now(&msg("T", 0, b"none", None)).expect("put");
    assert_eq!((r.status, r.queue_offset.get()), (PutStatus::PutOk, 3));
    let bodies: Vec<_> = read_queue(&s, "T", 0)
        .into_iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    assert_eq!(bodies, vec!["before", "no slave", "go", "none"]);
}

/// Fills a master over several commit-log files, in three topics/queues,
/// bodies of varying size so records straddle every cut.
fn fill(master: &MessageStore, n: usize) {
    for i in 0..n {
        let body = vec![b'a' + (i % 26) as u8; 100 + (i * 37) % 900];
        let topic = ["A", "B", "C"][i % 3];
        master
            .put_now(&msg(topic, (i % 2) as i32, &body, Some("t")))
            .expect("put");
    }
}

/// Ships everything from `from` to the master's end into the replica in
/// chunks of at most `step(i)` bytes, as an HA connection would.
fn ship(
    master: &MessageStore,
    replica: &MessageStore,
    mut from: i64,
    step: impl Fn(usize) -> usize,
) {
    let mut i = 0;
    while let Some(chunk) = master.transfer_chunk(CommitLogOffset(from), step(i)) {
        let seg = SEG as i64;
        assert!(
            from / seg == (from + chunk.len() as i64 - 1) / seg,
            "chunk at {from} of {} bytes crosses a file",
            chunk.len()
        );
        let end = replica
            .append_replica(CommitLogOffset(from), &chunk)
            .expect("append")
            .get();
        assert_eq!(end, from + chunk.len() as i64);
        from = end;
        i += 1;
    }
    assert_eq!(from, master.commit_log_max_offset().get());
}

fn assert_same_queues(master: &MessageStore, replica: &MessageStore, from_offset: i64) {
    for (topic, qids) in master.queues() {
        for q in qids {
            let want: Vec<_> = read_queue(master, &topic, q)
                .into_iter()
                .filter(|m| m.physical_offset >= from_offset)
                .collect();
            let got = read_queue(replica, &topic, q);
            assert_eq!(got.len(), want.len(), "{topic}/{q}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(
                    (g.queue_offset, g.physical_offset, &g.body, &g.properties),
                    (w.queue_offset, w.physical_offset, &w.body, &w.properties),
                    "{topic}/{q}"
                );
            }
            assert_eq!(replica.max_offset(&topic, q), master.max_offset(&topic, q));
        }
    }
}

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("commitlog"))
        .expect("commitlog dir")
        .map(|e| {
            let p = e.expect("entry").path();
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_replica_fed_in_odd_chunks_holds_the_masters_files_and_queues() {
    let (md, rd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let master = open(md.path());
    fill(&master, 400);
    assert!(
        master.commit_log_max_offset().get() > 3 * SEG as i64,
        "spans files"
    );
    let replica = open(rd.path());
    // Chunks that cut headers, bodies and blank records anywhere.
    ship(&master, &replica, 0, |i| {
        [1, 7, 333, 4096, 65536, 13][i % 6]
    });
    assert_eq!(
        replica.commit_log_max_offset(),
        master.commit_log_max_offset()
    );
    assert_same_queues(&master, &replica, 0);

    // More puts on the master, shipped in one go per file; then both shut
    // down and the files are byte-identical (blank end-of-file records too).
    fill(&master, 50);
    ship(
        &master,
        &replica,
        replica.commit_log_max_offset().get(),
        |_| usize::MAX,
    );
    assert_same_queues(&master, &replica, 0);
    master.shutdown();
    replica.shutdown();
    drop((master, replica));
    assert_eq!(files(md.path()), files(rd.path()));

    // The replica reopens like any store.
    let (master, replica) = (open(md.path()), open(rd.path()));
    assert_same_queues(&master, &replica, 0);
}

/// A master shipping while it is being written, as an HA connection does:
/// every chunk lies below the log's end read right after it (a slave is
/// never judged ahead of its master), holds the bytes the master finally
/// has (never zeros for a record still being written), and the replica
/// ends with the master's files and queues.
#[test]
fn chunks_shipped_during_puts_hold_only_written_bytes_below_the_end() {
    let (md, rd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let master = Arc::new(open(md.path()));
    let replica = open(rd.path());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (master, done) = (Arc::clone(&master), Arc::clone(&done));
        std::thread::spawn(move || {
            fill(&master, 10_000);
            done.store(true, Ordering::Release);
        })
    };
    let mut from = 0i64;
    let mut chunks = 0usize;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let finished = done.load(Ordering::Acquire);
        match master.transfer_chunk(CommitLogOffset(from), 1024) {
            Some(chunk) => {
                let end = master.commit_log_max_offset().get();
                assert!(
                    from + chunk.len() as i64 <= end,
                    "chunk {from}+{} shipped past the log's end {end}",
                    chunk.len()
                );
                from = replica
                    .append_replica(CommitLogOffset(from), &chunk)
                    .expect("a shipped chunk is valid log data")
                    .get();
                chunks += 1;
            }
            None if finished => break,
            None => std::thread::yield_now(),
        }
        assert!(std::time::Instant::now() < deadline, "shipping never ended");
    }
    writer.join().expect("writer");
    assert_eq!(from, master.commit_log_max_offset().get());
    assert!(chunks > 100, "{chunks} chunks");
    assert_same_queues(&master, &replica, 0);
    let master = Arc::try_unwrap(master)
        .map_err(|_| "shared")
        .expect("one owner");
    master.shutdown();
    replica.shutdown();
    drop((master, replica));
    assert_eq!(files(md.path()), files(rd.path()));
}

#[test]
fn an_empty_replica_starts_at_the_masters_last_file_and_keeps_its_offsets() {
    let (md, rd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let master = open(md.path());
    fill(&master, 300);
    let end = master.commit_log_max_offset().get();
    let start = end - end % SEG as i64;
    assert!(start > 0);
    let replica = open(rd.path());
    // Not file-aligned: refused, nothing written.
    let e = replica
        .append_replica(CommitLogOffset(start + 8), b"x")
        .expect_err("unaligned start");
    assert!(matches!(e, StoreError::ReplicaOffset { .. }), "{e:?}");
    assert_eq!(replica.commit_log_min_offset().get(), -1);
    ship(&master, &replica, start, |_| 1000);
    assert_eq!(replica.commit_log_min_offset().get(), start);
    assert_same_queues(&master, &replica, start);
    // A frame that does not continue the log is refused and changes nothing.
    let at = replica.commit_log_max_offset().get();
    let e = replica
        .append_replica(CommitLogOffset(at - 1), b"x")
        .expect_err("gap");
    assert!(
        matches!(e, StoreError::ReplicaOffset { offered, expected } if offered == at - 1 && expected == at),
        "{e:?}"
    );
    assert_eq!(replica.commit_log_max_offset().get(), at);
    // Heartbeat frames carry no data.
    assert_eq!(
        replica
            .append_replica(CommitLogOffset(at), b"")
            .expect("heartbeat")
            .get(),
        at
    );
}

#[test]
fn a_replica_restarted_inside_a_record_resumes_from_the_last_whole_record() {
    let (md, rd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let master = open(md.path());
    fill(&master, 40);
    let replica = MessageStore::open(config(rd.path())).expect("open");
    let half = master.commit_log_max_offset().get() / 2;
    let mut from = 0;
    while from < half {
        let chunk = master
            .transfer_chunk(CommitLogOffset(from), (half - from) as usize)
            .expect("chunk");
        from = replica
            .append_replica(CommitLogOffset(from), &chunk)
            .expect("append")
            .get();
    }
    let before = replica.commit_log_max_offset().get();
    drop(replica);
    // Reopened after a crash (no clean shutdown): the torn record is gone
    // and the replica asks the master from the last whole record on.
    let replica = open(rd.path());
    let resumed = replica.commit_log_max_offset().get();
    assert!(resumed <= before && resumed > 0, "{resumed} vs {before}");
    ship(&master, &replica, resumed, |_| 500);
    assert_same_queues(&master, &replica, 0);
}

#[test]
fn a_replica_store_refuses_puts_and_takes_shipped_bytes() {
    let (md, rd) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let master = open(md.path());
    fill(&master, 20);
    let replica = open(rd.path());
    replica.set_replica(true);
    let e = replica
        .put_now(&msg("T", 0, b"x", None))
        .expect_err("slave mode");
    assert!(matches!(e, StoreError::SlaveMode), "{e:?}");
    assert_eq!(replica.commit_log_max_offset().get(), 0, "nothing written");
    ship(&master, &replica, 0, |_| 4096);
    assert_same_queues(&master, &replica, 0);
    // Promoted: it writes again, after the shipped records.
    replica.set_replica(false);
    let r = replica.put_now(&msg("A", 0, b"own", None)).expect("put");
    assert_eq!(r.commit_log_offset, master.commit_log_max_offset());
    assert_eq!(r.queue_offset, master.max_offset("A", 0));
}
