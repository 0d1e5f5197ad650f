//! The DLedger commit log (`enableDLegerCommitLog=true`, spec dledger.md §4):
//! the broker's records live in a DLedger group, one message per entry.
//!
//! - [`DLedgerLog`] is the store's [`ReplicatedLog`]: a put appends through
//!   the DLedger leader's local append and returns once the entry is
//!   committed by a quorum (or failed); reads go to the data files,
//!   cut at the end of the last dispatched (committed) entry.
//! - [`dispatch_loop`] feeds every committed entry, in index order, to
//!   [`MessageStore::dispatch_replicated`]: message offset = `entry.pos + 48`,
//!   size = entry size − 48. It starts at the log's first entry on every start.
//! - [`role_loop`] follows DLedger role changes as Java's
//!   `DLedgerRoleChangeHandler`: LEADER → wait for `ledgerEnd ==
//!   committedIndex` and dispatch caught up, then master with broker id 0;
//!   FOLLOWER / CANDIDATE → slave with broker id = selfId number + 1. Each
//!   change re-registers with every name server at once.
//!
//! Known gap: `dledger::server` gives the broker no append hook, so the
//! PHYSICALOFFSET field (record byte 28) is stored as 0 in the entry and
//! patched to `pos + 48` when read ([`DLedgerLog::read`]); a Java replica
//! reading our entries would see 0 there.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use dledger::config::DLedgerConfig;
use dledger::core::message::Role;
use dledger::server::{DLedgerServer, ServerOptions};
use dledger::store::{file_name, StoreConfig as DLedgerStoreConfig};
use store::{MessageStore, ReplicatedAppendError, ReplicatedLog, StoreError};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::BrokerConfig;
use crate::namesrv::NamesrvClient;
use crate::processor::SharedConfig;
use crate::topic::TopicConfigManager;

/// Bytes of the DLedger entry header before the message record.
pub const ENTRY_HEADER: i64 = 48;
/// Java's polling period while a new leader waits to become master.
const LEADER_WAIT_POLL: Duration = Duration::from_millis(100);

/// `n2` → 2: the number after the first character of `dLegerSelfId`.
pub fn self_id_number(self_id: &str) -> Option<i64> {
    let mut chars = self_id.chars();
    chars.next()?;
    chars.as_str().parse().ok()
}

/// DLedger server options from the broker's keys (spec §4.1).
pub fn server_options(config: &BrokerConfig) -> anyhow::Result<ServerOptions> {
    let self_id = config.d_leger_self_id.trim();
    if self_id_number(self_id).is_none() {
        anyhow::bail!("dLegerSelfId {self_id:?} must be one letter and a number (e.g. n0)");
    }
    let group = if config.d_leger_group.is_empty() {
        config.broker_name.clone()
    } else {
        config.d_leger_group.clone()
    };
    let mut dl = DLedgerConfig::new(&group, self_id, &config.d_leger_peers)
        .context("dLegerPeers / dLegerSelfId")?;
    if !config.preferred_leader_id.trim().is_empty() {
        dl.preferred_leader_ids = Some(
            config
                .preferred_leader_id
                .split(';')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        );
    }
    let mut st = DLedgerStoreConfig::new(config.store_root(), self_id);
    st.mapped_file_size_for_entry_data =
        usize::try_from(config.mapped_file_size_commit_log).context("mappedFileSizeCommitLog")?;
    st.file_reserved_hours = (config.file_reserved_time.max(0) as u64) + 1;
    let mut opts = ServerOptions::new(dl, st);
    if let Ok(ip) = config.bind_address.parse() {
        if config.bind_address != "0.0.0.0" {
            opts.bind = Some(ip);
        }
    }
    Ok(opts)
}

/// Shared between the log adapter, the dispatcher and the role handler.
#[derive(Debug)]
pub struct DispatchState {
    /// End (exclusive, data-log position) of the last dispatched entry: the
    /// broker's committed position.
    committed_end: AtomicI64,
    /// Index of the last dispatched entry (-1 = none).
    dispatched_index: AtomicI64,
}

/// The store's view of the DLedger log.
pub struct DLedgerLog {
    server: Arc<DLedgerServer>,
    runtime: tokio::runtime::Handle,
    data_dir: PathBuf,
    file_size: i64,
    state: Arc<DispatchState>,
    files: Mutex<HashMap<i64, Arc<File>>>,
}

impl DLedgerLog {
    pub fn new(server: Arc<DLedgerServer>, opts: &ServerOptions) -> DLedgerLog {
        DLedgerLog {
            server,
            runtime: tokio::runtime::Handle::current(),
            data_dir: opts.store.data_path(),
            file_size: opts.store.mapped_file_size_for_entry_data as i64,
            state: Arc::new(DispatchState {
                committed_end: AtomicI64::new(0),
                dispatched_index: AtomicI64::new(-1),
            }),
            files: Mutex::new(HashMap::new()),
        }
    }

    pub fn state(&self) -> Arc<DispatchState> {
        self.state.clone()
    }

    fn file(&self, start: i64) -> Option<Arc<File>> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = files.get(&start) {
            return Some(f.clone());
        }
        let f = Arc::new(File::open(self.data_dir.join(file_name(start))).ok()?);
        files.insert(start, f.clone());
        Some(f)
    }

    /// Runs `fut` to completion from the synchronous store call.
    fn block_on<T>(&self, fut: impl std::future::Future<Output = T>) -> Result<T, StoreError> {
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                Ok(tokio::task::block_in_place(|| h.block_on(fut)))
            }
            Ok(_) => Err(StoreError::Io(std::io::Error::other(
                "DLedger append needs the multi-threaded runtime",
            ))),
            Err(_) => Ok(self.runtime.block_on(fut)),
        }
    }
}

fn replication_error(written: bool, remark: &str) -> ReplicatedAppendError {
    ReplicatedAppendError {
        written,
        error: StoreError::Io(std::io::Error::other(remark.to_owned())),
    }
}

impl ReplicatedLog for DLedgerLog {
    fn append(&self, records: Vec<Bytes>) -> Result<Vec<i64>, ReplicatedAppendError> {
        let n = records.len() as i64;
        let server = self.server.clone();
        let outcome = self
            .block_on(async move {
                let resp = if records.len() == 1 {
                    let body = records.into_iter().next().unwrap_or_default();
                    server.append(body).await
                } else {
                    server.append_batch(records).await
                };
                let resp = match resp {
                    Ok(r) => r,
                    Err(e) => return Err((false, -1, e.to_string())),
                };
                if resp.header.code != 200 {
                    return Err((resp.pos >= 0, resp.header.code, String::new()));
                }
                // One position per entry: the last is in the answer, the
                // others (a batch) are read back from the committed log.
                let mut offsets = Vec::with_capacity(n as usize);
                for i in 0..n - 1 {
                    match server.get_committed(resp.index - (n - 1) + i).await {
                        Ok(Some(e)) => offsets.push(e.pos + ENTRY_HEADER),
                        _ => return Err((true, 200, "entry position unavailable".into())),
                    }
                }
                offsets.push(resp.pos + ENTRY_HEADER);
                Ok(offsets)
            })
            .map_err(|error| ReplicatedAppendError {
                written: false,
                error,
            })?;
        outcome.map_err(|(written, code, why)| {
            // Java `DLedgerCommitLog` put result mapping (spec §4.2) and the
            // send processor's codes for it.
            match code {
                // SERVICE_NOT_AVAILABLE: not leader, leader transferring, disk full...
                404 | 409 | 415 | 505 => ReplicatedAppendError {
                    written: false,
                    error: StoreError::ShutDown,
                },
                // IN_SYNC_REPLICAS_NOT_ENOUGH → SYSTEM_ERROR.
                502 => replication_error(written, "in-sync replicas not enough"),
                // OS_PAGE_CACHE_BUSY (Java answers SYSTEM_BUSY; we SYSTEM_ERROR).
                503 => replication_error(written, "[PC_SYNCHRONIZED]broker busy"),
                -1 => replication_error(false, &why),
                _ if why.is_empty() => replication_error(written, "UNKNOWN_ERROR"),
                _ => replication_error(written, &why),
            }
        })
    }

    fn read(&self, offset: i64, len: usize) -> Option<Bytes> {
        let end = offset.checked_add(i64::try_from(len).ok()?)?;
        if offset < ENTRY_HEADER || end > self.state.committed_end.load(Ordering::Acquire) {
            return None;
        }
        let start = offset - offset.rem_euclid(self.file_size);
        if end > start + self.file_size {
            return None;
        }
        let file = self.file(start)?;
        let mut buf = BytesMut::zeroed(len);
        file.read_exact_at(&mut buf, (offset - start) as u64).ok()?;
        // PHYSICALOFFSET as Java's append hook would have written it.
        if len >= store::record::POS_PHYSICAL_OFFSET + 8 {
            buf[store::record::POS_PHYSICAL_OFFSET..store::record::POS_PHYSICAL_OFFSET + 8]
                .copy_from_slice(&offset.to_be_bytes());
        }
        Some(buf.freeze())
    }

    fn min_offset(&self) -> i64 {
        let Ok(dir) = std::fs::read_dir(&self.data_dir) else {
            return 0;
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
            .min()
            .map_or(0, |start| start + ENTRY_HEADER)
    }
}

/// Feeds committed entries to the store's consume queues and index, from
/// the log's first entry, until shutdown.
pub async fn dispatch_loop(
    server: Arc<DLedgerServer>,
    store: MessageStore,
    state: Arc<DispatchState>,
    shutdown: CancellationToken,
) {
    let mut committed = server.subscribe_committed();
    let mut next = match server.ledger().await {
        Ok(l) => l.begin_index.max(0),
        Err(_) => return,
    };
    loop {
        let target = *committed.borrow_and_update();
        while next <= target {
            let entry = match server.get_committed(next).await {
                Ok(Some(e)) => e,
                Ok(None) => {
                    // Below the log's start (files expired): skip ahead.
                    match server.ledger().await {
                        Ok(l) if l.begin_index > next => {
                            next = l.begin_index;
                            continue;
                        }
                        _ => break,
                    }
                }
                Err(_) => return,
            };
            let phys = entry.pos + ENTRY_HEADER;
            state
                .committed_end
                .store(phys + entry.body.len() as i64, Ordering::Release);
            let store2 = store.clone();
            let body = entry.body.clone();
            let r =
                tokio::task::spawn_blocking(move || store2.dispatch_replicated(phys, &body)).await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(index = next, pos = entry.pos, error = %e, "DLedger entry is not a message; not dispatched")
                }
                Err(_) => return,
            }
            state.dispatched_index.store(next, Ordering::Release);
            next += 1;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = committed.changed() => if r.is_err() { return },
        }
    }
}

/// Applies broker id and role, then re-registers at once.
async fn become_role(
    config: &SharedConfig,
    namesrv: &NamesrvClient,
    topics: &TopicConfigManager,
    broker_id: i64,
    role: &str,
) {
    {
        let mut c = config.write().unwrap_or_else(|p| p.into_inner());
        c.broker_id = broker_id;
        c.broker_role = role.to_owned();
    }
    namesrv.set_broker_id(broker_id);
    info!(broker_id, role, "broker role changed");
    if !namesrv.addrs().is_empty() {
        namesrv.register_all(topics).await;
    }
}

/// Java `DLedgerRoleChangeHandler`, one change at a time.
pub async fn role_loop(
    server: Arc<DLedgerServer>,
    store: MessageStore,
    state: Arc<DispatchState>,
    config: SharedConfig,
    namesrv: Arc<NamesrvClient>,
    topics: Arc<TopicConfigManager>,
    shutdown: CancellationToken,
) {
    let mut roles = server.subscribe_role();
    let slave_id = {
        let c = config.read().unwrap_or_else(|p| p.into_inner());
        self_id_number(c.d_leger_self_id.trim()).unwrap_or(0) + 1
    };
    loop {
        let rs = roles.borrow_and_update().clone();
        match rs.role {
            Role::Leader => {
                // Wait until every earlier entry is committed and dispatched.
                loop {
                    let now = server.role();
                    if now.role != Role::Leader || now.term != rs.term {
                        break;
                    }
                    let Ok(l) = server.ledger().await else { return };
                    let caught_up = l.end_index < 0
                        || (l.end_index == l.committed_index
                            && state.dispatched_index.load(Ordering::Acquire) >= l.committed_index);
                    if caught_up {
                        let s = store.clone();
                        let _ = tokio::task::spawn_blocking(move || s.reset_queue_offsets()).await;
                        become_role(&config, &namesrv, &topics, 0, "SYNC_MASTER").await;
                        break;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(LEADER_WAIT_POLL) => {}
                    }
                }
            }
            Role::Follower | Role::Candidate => {
                let is_slave = {
                    let c = config.read().unwrap_or_else(|p| p.into_inner());
                    c.broker_role == "SLAVE" && c.broker_id == slave_id
                };
                if !is_slave {
                    become_role(&config, &namesrv, &topics, slave_id, "SLAVE").await;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = roles.changed() => if r.is_err() { return },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
                if parts.state.dispatched_index.load(Ordering::Acquire) >= l.committed_index {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "dispatch never caught up"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(s.max_offset("T", 0), if round == 0 { 0 } else { 81 });
            let s2 = s.clone();
            let r = tokio::task::spawn_blocking(move || {
                s2.reset_queue_offsets();
                s2.put(&msg(&format!("m{round}")))
            })
            .await
            .unwrap()
            .unwrap();
            let want = if round == 0 { 1 } else { 82 };
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while s.max_offset("T", 0) < want {
                assert!(std::time::Instant::now() < deadline, "not dispatched");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(r.queue_offset, want - 1);
            let mut seen = 0;
            let mut from = 0;
            let mut g = s.get_messages("T", 0, 0, 32, 1 << 20, &|_| true);
            while from < want {
                g = s.get_messages("T", 0, from, 32, 1 << 20, &|_| true);
                for (k, m) in g.messages.iter().enumerate() {
                    let d = store::StoredMessage::decode(m).unwrap();
                    assert_eq!(d.queue_offset, from + k as i64);
                }
                seen += g.messages.len() as i64;
                from = g.next_begin_offset;
            }
            assert_eq!(seen, want);
            let last = store::StoredMessage::decode(g.messages.last().unwrap()).unwrap();
            assert_eq!(last.physical_offset, r.commit_log_offset);
            assert_eq!(last.queue_offset, want - 1);
            assert_eq!(
                s.commit_log_max_offset(),
                r.commit_log_offset + r.wrote_bytes as i64
            );
            if round == 0 {
                // Concurrent sends from async tasks on the 2-worker runtime
                // (each put waits for its quorum under the writer lock).
                let bs = Arc::new(crate::store::BrokerStore::new(s.clone()));
                let tasks: Vec<_> = (0..8)
                    .map(|t| {
                        let bs = bs.clone();
                        tokio::spawn(async move {
                            for i in 0..10 {
                                bs.with(Err(StoreError::ShutDown), |s| {
                                    s.put(&msg(&format!("c{t}-{i}")))
                                })
                                .unwrap();
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
                while s.max_offset("T", 0) < 81 {
                    assert!(std::time::Instant::now() < deadline, "not dispatched");
                    tokio::time::sleep(Duration::from_millis(20)).await;
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

    #[test]
    fn self_id_numbers() {
        assert_eq!(self_id_number("n0"), Some(0));
        assert_eq!(self_id_number("n12"), Some(12));
        assert_eq!(self_id_number("n"), None);
        assert_eq!(self_id_number("n-1x"), None);
    }

    #[test]
    fn options_from_broker_keys() {
        let mut c = BrokerConfig::default();
        c.apply(&remoting::properties::parse(
            "brokerName=b\nenableDLegerCommitLog=true\ndLegerGroup=g\ndLegerSelfId=n1\n\
             dLegerPeers=n0-127.0.0.1:40911;n1-127.0.0.1:40912;n2-127.0.0.1:40913\n\
             storePathRootDir=/tmp/x\nmappedFileSizeCommitLog=65536\npreferredLeaderId=n2\n",
        ))
        .unwrap();
        let o = server_options(&c).unwrap();
        assert_eq!(o.config.group, "g");
        assert_eq!(o.config.self_id, "n1");
        assert_eq!(o.config.peers.len(), 3);
        assert_eq!(o.config.preferred_leader_ids, Some(vec!["n2".to_owned()]));
        assert_eq!(o.store.mapped_file_size_for_entry_data, 65536);
        assert_eq!(o.store.default_path(), PathBuf::from("/tmp/x/dledger-n1"));
        c.d_leger_self_id = "x".into();
        assert!(server_options(&c).is_err());
    }
}
