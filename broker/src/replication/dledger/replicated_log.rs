//! [`DLedgerLog`], the store's [`ReplicatedLog`]: puts queued on the DLedger
//! leader's append and awaited to their quorum commit, reads from the
//! committed reader, DLedger append codes mapped to Java's put results.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use bytes::Bytes;
use dledger::server::{DLedgerServer, QueuedAppend};
use dledger::store::CommittedReader;
use dledger::{LogIndex, Term};
use store::{
    AppendOutcome, CommitLogOffset, PendingAppend, ReplicatedAppendError, ReplicatedLog, StoreError,
};

use super::DispatchState;

/// The store's view of the DLedger log.
pub struct DLedgerLog {
    server: Arc<DLedgerServer>,
    reader: CommittedReader,
    state: Arc<DispatchState>,
}

impl DLedgerLog {
    pub fn new(server: Arc<DLedgerServer>) -> DLedgerLog {
        DLedgerLog {
            reader: server.committed_reader(),
            server,
            state: Arc::new(DispatchState {
                dispatched_index: AtomicI64::new(LogIndex::NONE.get()),
            }),
        }
    }

    pub fn state(&self) -> Arc<DispatchState> {
        self.state.clone()
    }
}

fn replication_error(written: bool, remark: &str) -> ReplicatedAppendError {
    ReplicatedAppendError {
        written,
        error: StoreError::Io(std::io::Error::other(remark.to_owned())),
    }
}

/// The outcome of a queued append: the physical offset (body position) of
/// each entry once the last one is committed, or Java's put result for the
/// DLedger code.
async fn append_outcome(queued: QueuedAppend) -> AppendOutcome {
    let appended = match queued.outcome().await {
        Ok(a) => a,
        // The driver stopped: the entries may or may not be in the log.
        Err(e) => return Err(replication_error(true, &e.to_string())),
    };
    let resp = &appended.response;
    if resp.header.code != dledger::core::message::ResponseCode::Success.code() {
        return Err(put_error(resp.header.code, resp.pos >= 0));
    }
    Ok(appended
        .positions
        .iter()
        .map(|&pos| CommitLogOffset(dledger::entry::body_pos(pos)))
        .collect())
}

/// Java `DLedgerCommitLog`'s put result for a DLedger append code
/// (docs/protocol/dledger.md §4.2) and the send processor's answer to it.
fn put_error(code: i32, written: bool) -> ReplicatedAppendError {
    use dledger::core::message::ResponseCode as Dl;
    match Dl::from_code(code) {
        // Java SERVICE_NOT_AVAILABLE: nothing was written.
        Some(Dl::NotLeader | Dl::InconsistentLeader | Dl::DiskFull | Dl::LeaderNotReady) => {
            ReplicatedAppendError {
                written: false,
                error: StoreError::ShutDown,
            }
        }
        // Java IN_SYNC_REPLICAS_NOT_ENOUGH, answered SYSTEM_ERROR.
        Some(Dl::WaitQuorumAckTimeout) => replication_error(written, "in-sync replicas not enough"),
        // Java OS_PAGE_CACHE_BUSY, answered SYSTEM_BUSY.
        Some(Dl::LeaderPendingFull) => ReplicatedAppendError {
            written,
            error: StoreError::Busy,
        },
        _ => replication_error(written, "UNKNOWN_ERROR"),
    }
}

impl ReplicatedLog for DLedgerLog {
    fn append(
        &self,
        records: Vec<Bytes>,
        term: i64,
    ) -> Result<PendingAppend, ReplicatedAppendError> {
        // Queued in call order (the store's writer lock) without waiting;
        // fenced to the term the store became writer in: a leader that lost
        // and regained leadership since must rebuild its queues first.
        let queued = self
            .server
            .queue_append(records, Some(Term(term)))
            .map_err(|e| replication_error(false, &e.to_string()))?;
        Ok(Box::pin(append_outcome(queued)))
    }

    fn read(&self, offset: CommitLogOffset, len: usize) -> Option<Bytes> {
        self.reader.read(offset.get(), len)
    }

    fn min_offset(&self) -> CommitLogOffset {
        CommitLogOffset(dledger::entry::body_pos(self.reader.min_pos()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use dledger::core::message::Role;
    use store::QueueOffset;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::config::BrokerConfig;
    use crate::replication::dledger::{dispatch_loop, server_options};

    /// A one-member group: the broker's put goes through the DLedger leader,
    /// is dispatched from the committed log and read back by queue offset,
    /// with PHYSICALOFFSET = entry pos + 48; a restart rebuilds the queue.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_member_put_dispatch_read_and_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = BrokerConfig::default();
        c.apply(&remoting::properties::parse(&format!(
            "brokerName=b\nenableDLegerCommitLog=true\ndLegerSelfId=n0\n\
             dLegerPeers=n0-127.0.0.1:{port}\nstorePathRootDir={}\n\
             mappedFileSizeCommitLog=65536\nmaxHashSlotNum=1000\nmaxIndexNum=4000\n\
             bindAddress=127.0.0.1\n",
            dir.path().display()
        )))
        .unwrap();
        let host: std::net::SocketAddr = "127.0.0.1:10911".parse().unwrap();
        let msg = move |body: &str| store::MessageToStore {
            topic: "T".into(),
            queue_id: 0,
            flag: 0,
            body: Bytes::copy_from_slice(body.as_bytes()),
            properties: String::new(),
            sys_flag: 0,
            born_timestamp: 1,
            born_host: host,
            store_host: host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        };
        for round in 0..2 {
            let (s, parts) = crate::store::open_dledger(&c).await.unwrap();
            let shutdown = CancellationToken::new();
            let d = tokio::spawn(dispatch_loop(
                parts.server.clone(),
                s.clone(),
                parts.state.clone(),
                shutdown.clone(),
            ));
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while parts.server.role().role != Role::Leader {
                assert!(std::time::Instant::now() < deadline, "no leader");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // As the role handler: wait until the log is dispatched, then
            // continue the queue offsets from the (rebuilt) queues.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let l = parts.server.ledger().await.unwrap();
                if parts.state.dispatched() >= l.committed_index {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "dispatch never caught up"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(s.max_offset("T", 0).get(), if round == 0 { 0 } else { 81 });
            s.become_writer(parts.server.role().term.get());
            let r = s.put(&msg(&format!("m{round}"))).await.unwrap();
            let want = if round == 0 { 1 } else { 82 };
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while s.max_offset("T", 0).get() < want {
                assert!(std::time::Instant::now() < deadline, "not dispatched");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(r.queue_offset.get(), want - 1);
            let mut seen = 0;
            let mut from = 0;
            let mut g = s.get_messages("T", 0, QueueOffset(0), 32, 1 << 20, &|_| true);
            while from < want {
                g = s.get_messages("T", 0, QueueOffset(from), 32, 1 << 20, &|_| true);
                for (k, m) in g.messages.iter().enumerate() {
                    let d = store::StoredMessage::decode(m).unwrap();
                    assert_eq!(d.queue_offset, from + k as i64);
                }
                seen += g.messages.len() as i64;
                from = g.next_begin_offset.get();
            }
            assert_eq!(seen, want);
            let last = store::StoredMessage::decode(g.messages.last().unwrap()).unwrap();
            assert_eq!(last.physical_offset, r.commit_log_offset.get());
            assert_eq!(last.queue_offset, want - 1);
            assert_eq!(
                s.commit_log_max_offset(),
                r.commit_log_offset + r.wrote_bytes as i64
            );
            if round == 0 {
                // Concurrent sends from async tasks on the 2-worker runtime
                // (each put queues its entry under the writer lock and waits for its quorum outside it).
                let bs = Arc::new(crate::store::BrokerStore::new(s.clone()));
                let tasks: Vec<_> = (0..8)
                    .map(|t| {
                        let bs = bs.clone();
                        tokio::spawn(async move {
                            for i in 0..10 {
                                bs.put(&msg(&format!("c{t}-{i}"))).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    tokio::time::timeout(Duration::from_secs(30), t)
                        .await
                        .expect("concurrent puts stuck")
                        .unwrap();
                }
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while s.max_offset("T", 0).get() < 81 {
                    assert!(std::time::Instant::now() < deadline, "not dispatched");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                // The raw data file holds Java's bytes: every entry's
                // PHYSICALOFFSET (record byte 28) = entry pos + 48.
                let data = std::fs::read(
                    server_options(&c)
                        .unwrap()
                        .store
                        .data_path()
                        .join(dledger::store::file_name(0)),
                )
                .unwrap();
                let (mut pos, mut entries) = (0usize, 0);
                while entries < 1000 && pos + 48 <= data.len() {
                    let size = i32::from_be_bytes(data[pos + 4..pos + 8].try_into().unwrap());
                    if size <= 0 {
                        break;
                    }
                    let stored_pos =
                        i64::from_be_bytes(data[pos + 24..pos + 32].try_into().unwrap());
                    assert_eq!(stored_pos, pos as i64, "entry pos field");
                    let at = pos + 48 + store::record::POS_PHYSICAL_OFFSET;
                    let phys = i64::from_be_bytes(data[at..at + 8].try_into().unwrap());
                    assert_eq!(
                        phys,
                        dledger::entry::body_pos(dledger::EntryPos(pos as i64)),
                        "PHYSICALOFFSET of entry at {pos}"
                    );
                    pos += size as usize;
                    entries += 1;
                }
                assert_eq!(entries, 81, "entries in the data file");
            } else {
                // A batch: one physical offset per entry (as DLedger
                // answers them), each the start of the record read back.
                let batch: Vec<_> = ["b0", "b1-longer", "b2"].iter().map(|b| msg(b)).collect();
                let mut p = s.put_messages(&batch);
                assert!(p.now().is_none(), "a DLedger put is never done at once");
                let r = p.await.unwrap();
                assert_eq!(r.queue_offset.get(), 82);
                assert_eq!(r.commit_log_offsets.len(), 3);
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while s.max_offset("T", 0).get() < 85 {
                    assert!(std::time::Instant::now() < deadline, "batch not dispatched");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let g = s.get_messages("T", 0, QueueOffset(82), 32, 1 << 20, &|_| true);
                assert_eq!(g.messages.len(), 3);
                for (k, m) in g.messages.iter().enumerate() {
                    let d = store::StoredMessage::decode(m).unwrap();
                    assert_eq!(
                        d.physical_offset,
                        r.commit_log_offsets[k].get(),
                        "entry {k}"
                    );
                    assert_eq!(d.queue_offset, 82 + k as i64);
                }
            }
            shutdown.cancel();
            d.await.unwrap();
            s.shutdown();
            drop(s);
            match Arc::try_unwrap(parts.server) {
                Ok(server) => server.shutdown().await,
                Err(_) => panic!("server still shared"),
            }
        }
    }

    /// Java's put results for DLedger codes and the send answers to them:
    /// 503 (leader pending full = OS_PAGE_CACHE_BUSY) is SYSTEM_BUSY.
    #[test]
    fn append_codes_map_to_java_send_answers() {
        use remoting::code::response_code as rc;
        let code = |c: i32| crate::error::BrokerError::from(put_error(c, false).error).code();
        assert_eq!(code(503), rc::SYSTEM_BUSY);
        for c in [404, 409, 415, 505] {
            assert_eq!(code(c), rc::SERVICE_NOT_AVAILABLE);
            assert!(!put_error(c, true).written, "{c} never reached the log");
        }
        assert_eq!(code(502), rc::SYSTEM_ERROR);
        assert_eq!(code(501), rc::SYSTEM_ERROR);
        assert!(put_error(502, true).written);
    }
}
