//! The DLedger commit log (`enableDLegerCommitLog=true`, docs/protocol/dledger.md §4):
//! the broker's records live in a DLedger group, one message per entry.
//!
//! - [`DLedgerLog`] is the store's [`ReplicatedLog`]: a put queues its
//!   entries on the DLedger leader's local append (in the store's writer
//!   lock, so log order = queue-offset order, never waiting) and the
//!   sender's task then awaits their quorum commit (or failure), so
//!   concurrent sends share quorum rounds; reads go to DLedger's committed reader
//!   (entry bodies by data-log position, never past the committed end).
//! - [`dispatch_loop`] feeds every committed entry, in index order, to
//!   [`MessageStore::dispatch_replicated`]: message offset = the entry's
//!   body position ([`dledger::entry::Entry::body_pos`]). It starts at the
//!   log's first entry on every start.
//! - [`role_loop`] follows DLedger role changes as Java's
//!   `DLedgerRoleChangeHandler`: LEADER → wait for `ledgerEnd ==
//!   committedIndex` and dispatch caught up, then the store becomes the
//!   writer in that term ([`MessageStore::become_writer`]: appends fenced
//!   to the term) and the broker master with broker id 0; FOLLOWER /
//!   CANDIDATE → the store stops writing, then slave with broker id =
//!   selfId number + 1. Each change re-registers with every name server at
//!   once. Until the first leadership is caught up (e.g. right after a
//!   restart, while the queues are rebuilt from the log) the store refuses
//!   every put, so no queue offset already in use is handed out again.
//!
//! As Java's `DLedgerCommitLog`, an append hook run inside the leader's
//! append writes PHYSICALOFFSET (record byte 28) = the body's position
//! (`entry.pos + 48`) into the stored entry, so followers (ours or Java's)
//! store the same bytes.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use dledger::config::DLedgerConfig;
use dledger::core::message::Role;
use dledger::server::{DLedgerServer, QueuedAppend, ServerOptions, SharedAppendHook};
use dledger::store::{CommittedReader, StoreConfig as DLedgerStoreConfig};
use dledger::{LogIndex, Term};
use store::{
    AppendOutcome, CommitLogOffset, MessageStore, PendingAppend, ReplicatedAppendError,
    ReplicatedLog, StoreError,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{BrokerConfig, BrokerRole};
use crate::meta::topic::TopicConfigManager;
use crate::processor::SharedConfig;
use crate::replication::namesrv::NamesrvClient;

/// Most committed entries handed to one blocking dispatch call.
const DISPATCH_BATCH: usize = 256;
/// Java's polling period while a new leader waits to become master.
const LEADER_WAIT_POLL: Duration = Duration::from_millis(100);

/// `n2` → 2: the number after the first character of `dLegerSelfId`.
pub fn self_id_number(self_id: &str) -> Option<i64> {
    let mut chars = self_id.chars();
    chars.next()?;
    chars.as_str().parse().ok()
}

/// DLedger server options from the broker's keys (docs/protocol/dledger.md §4.1).
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
    if config.d_leger_java_timers {
        dl.use_java_timers();
    }
    let timer = |v: i64, key: &str| -> anyhow::Result<Option<u64>> {
        match v {
            0 => Ok(None),
            v if v > 0 => Ok(Some(v as u64)),
            _ => anyhow::bail!("{key} must be positive, got {v}"),
        }
    };
    if let Some(v) = timer(
        config.heart_beat_time_interval_ms,
        "heartBeatTimeIntervalMs",
    )? {
        dl.heart_beat_time_interval_ms = v;
    }
    if let Some(v) = timer(config.max_heart_beat_leak, "maxHeartBeatLeak")? {
        dl.max_heart_beat_leak = v;
    }
    if let Some(v) = timer(config.min_vote_interval_ms, "minVoteIntervalMs")? {
        dl.min_vote_interval_ms = v;
    }
    if let Some(v) = timer(config.max_vote_interval_ms, "maxVoteIntervalMs")? {
        dl.max_vote_interval_ms = v;
    }
    if let Some(v) = timer(config.vote_wait_base_ms, "voteWaitBaseMs")? {
        dl.vote_wait_base_ms = v;
    }
    if dl.min_vote_interval_ms > dl.max_vote_interval_ms {
        anyhow::bail!("minVoteIntervalMs must not exceed maxVoteIntervalMs");
    }
    let mut st = DLedgerStoreConfig::new(config.store_root(), self_id);
    st.mapped_file_size_for_entry_data =
        usize::try_from(config.mapped_file_size_commit_log).context("mappedFileSizeCommitLog")?;
    st.file_reserved_hours = (config.file_reserved_time.max(0) as u64) + 1;
    let mut opts = ServerOptions::new(dl, st);
    opts.append_hook = Some(SharedAppendHook(Arc::new(physical_offset_hook)));
    if let Ok(ip) = config.bind_address.parse() {
        if config.bind_address != "0.0.0.0" {
            opts.bind = Some(ip);
        }
    }
    Ok(opts)
}

/// Java's DLedgerCommitLog append hook: PHYSICALOFFSET = the body's
/// data-log position (entry pos + 48).
fn physical_offset_hook(body: &mut [u8], body_pos: i64) {
    const AT: usize = store::record::POS_PHYSICAL_OFFSET;
    if let Some(field) = body.get_mut(AT..AT + 8) {
        field.copy_from_slice(&body_pos.to_be_bytes());
    }
}

/// Shared between the dispatcher and the role handler.
#[derive(Debug)]
pub struct DispatchState {
    /// Index of the last dispatched entry (-1 = none).
    dispatched_index: AtomicI64,
}

impl DispatchState {
    /// The last dispatched entry ([`LogIndex::NONE`] = none yet).
    fn dispatched(&self) -> LogIndex {
        LogIndex(self.dispatched_index.load(Ordering::Acquire))
    }

    fn set_dispatched(&self, index: LogIndex) {
        self.dispatched_index.store(index.get(), Ordering::Release);
    }
}

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
        Ok(l) => l.begin_index.max(LogIndex(0)),
        Err(_) => return,
    };
    loop {
        let target = *committed.borrow_and_update();
        while next <= target {
            // Up to DISPATCH_BATCH committed entries, then one blocking
            // call dispatches them all (in index order).
            let entries = match server.get_committed_range(next, DISPATCH_BATCH).await {
                Ok(e) => e,
                Err(_) => return,
            };
            if entries.is_empty() {
                // Below the log's start (files expired): skip ahead.
                match server.ledger().await {
                    Ok(l) if l.begin_index > next => {
                        next = l.begin_index;
                        continue;
                    }
                    _ => break,
                }
            }
            next = next.plus(entries.len() as i64);
            let Some(last_index) = entries.last().map(|e| LogIndex(e.index)) else {
                break;
            };
            let store2 = store.clone();
            let r = tokio::task::spawn_blocking(move || {
                for e in &entries {
                    if let Err(err) = store2.dispatch_replicated(CommitLogOffset(e.body_pos()), &e.body) {
                        warn!(index = e.index, pos = e.pos, error = %err, "DLedger entry is not a message; not dispatched");
                    }
                }
            })
            .await;
            if r.is_err() {
                return;
            }
            state.set_dispatched(last_index);
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
    role: BrokerRole,
) {
    {
        let mut c = config.write().unwrap_or_else(|p| p.into_inner());
        c.broker_id = broker_id;
        c.broker_role = role;
    }
    namesrv.set_broker_id(broker_id);
    info!(broker_id, %role, "broker role changed");
    if !namesrv.addrs().is_empty() {
        namesrv.register_all(topics).await;
    }
}

/// Starts the services Java runs only on a master (delay levels, timer,
/// transaction check) on a tracker and a token it is handed.
pub type StartServices = Box<dyn Fn(&TaskTracker, &CancellationToken) + Send + Sync>;

/// The master-only services of a DLedger broker: running while master,
/// stopped (their tasks finished and state persisted) while slave.
pub struct MasterServices {
    start: StartServices,
    parent: CancellationToken,
    running: Option<(CancellationToken, TaskTracker)>,
}

impl MasterServices {
    /// Nothing runs until [`MasterServices::run`]; `parent` stops them too.
    pub fn new(start: StartServices, parent: CancellationToken) -> MasterServices {
        MasterServices {
            start,
            parent,
            running: None,
        }
    }

    #[cfg(test)]
    fn is_running(&self) -> bool {
        self.running.is_some()
    }

    fn run(&mut self) {
        if self.running.is_none() {
            let (token, tasks) = (self.parent.child_token(), TaskTracker::new());
            (self.start)(&tasks, &token);
            self.running = Some((token, tasks));
            info!("master services (delay, timer, transaction check) started");
        }
    }

    async fn stop(&mut self) {
        if let Some((token, tasks)) = self.running.take() {
            token.cancel();
            tasks.close();
            tasks.wait().await;
            info!("master services (delay, timer, transaction check) stopped");
        }
    }
}

/// Java `DLedgerRoleChangeHandler`, one change at a time. The master-only
/// services run while master and are stopped (and waited for) on becoming
/// slave and on shutdown.
#[allow(clippy::too_many_arguments)]
pub async fn role_loop(
    server: Arc<DLedgerServer>,
    store: MessageStore,
    state: Arc<DispatchState>,
    config: SharedConfig,
    namesrv: Arc<NamesrvClient>,
    topics: Arc<TopicConfigManager>,
    mut services: MasterServices,
    shutdown: CancellationToken,
) {
    follow_roles(
        server,
        store,
        state,
        config,
        namesrv,
        topics,
        &mut services,
        shutdown,
    )
    .await;
    services.stop().await;
}

#[allow(clippy::too_many_arguments)]
async fn follow_roles(
    server: Arc<DLedgerServer>,
    store: MessageStore,
    state: Arc<DispatchState>,
    config: SharedConfig,
    namesrv: Arc<NamesrvClient>,
    topics: Arc<TopicConfigManager>,
    services: &mut MasterServices,
    shutdown: CancellationToken,
) {
    let mut roles = server.subscribe_role();
    let slave_id = {
        let c = config.read().unwrap_or_else(|p| p.into_inner());
        self_id_number(c.d_leger_self_id.trim()).unwrap_or(0) + 1
    };
    // The term the store accepts puts in (`None`: it refuses them, as it
    // does from the start until the first leadership is caught up).
    let mut writer_term: Option<Term> = None;
    loop {
        let rs = roles.borrow_and_update().clone();
        match rs.role {
            Role::Leader if writer_term == Some(rs.term) => {}
            Role::Leader => {
                // Leader again in another term without a follower state
                // seen in between: the queue offsets handed out in the old
                // term may not match what the log holds now.
                if writer_term.take().is_some() {
                    stop_writing(&store).await;
                    services.stop().await;
                }
                // Wait until every earlier entry is committed and dispatched.
                loop {
                    let now = server.role();
                    if now.role != Role::Leader || now.term != rs.term {
                        break;
                    }
                    let Ok(l) = server.ledger().await else { return };
                    let caught_up = l.end_index < LogIndex(0)
                        || (l.end_index == l.committed_index
                            && state.dispatched() >= l.committed_index);
                    if caught_up {
                        let (s, term) = (store.clone(), rs.term.get());
                        let _ = tokio::task::spawn_blocking(move || s.become_writer(term)).await;
                        writer_term = Some(rs.term);
                        info!(
                            term = rs.term.get(),
                            "queues rebuilt: accepting writes as master"
                        );
                        services.run();
                        become_role(&config, &namesrv, &topics, 0, BrokerRole::SyncMaster).await;
                        break;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(LEADER_WAIT_POLL) => {}
                    }
                }
            }
            Role::Follower | Role::Candidate => {
                // Refuse writes before anything else, then (Java
                // `changeToSlave`) stop the master-only services.
                if writer_term.take().is_some() {
                    stop_writing(&store).await;
                }
                services.stop().await;
                let is_slave = {
                    let c = config.read().unwrap_or_else(|p| p.into_inner());
                    c.broker_role.is_slave() && c.broker_id == slave_id
                };
                if !is_slave {
                    become_role(&config, &namesrv, &topics, slave_id, BrokerRole::Slave).await;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = roles.changed() => if r.is_err() { return },
        }
    }
}

/// [`MessageStore::stop_writing`] off the async workers (it waits for the
/// writer lock).
async fn stop_writing(store: &MessageStore) {
    let s = store.clone();
    let _ = tokio::task::spawn_blocking(move || s.stop_writing()).await;
    info!("not master: writes refused");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use store::QueueOffset;

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

    /// Master-only services start once, stop (their tasks finished) on
    /// stop, and can start again; the parent token stops them too.
    #[tokio::test]
    async fn master_services_run_and_stop() {
        let live = Arc::new(AtomicI64::new(0));
        let starts = Arc::new(AtomicI64::new(0));
        let (l, st) = (live.clone(), starts.clone());
        let parent = CancellationToken::new();
        let mut m = MasterServices::new(
            Box::new(move |tasks: &TaskTracker, stop: &CancellationToken| {
                st.fetch_add(1, Ordering::SeqCst);
                let (l, stop) = (l.clone(), stop.clone());
                l.fetch_add(1, Ordering::SeqCst);
                tasks.spawn(async move {
                    stop.cancelled().await;
                    l.fetch_sub(1, Ordering::SeqCst);
                });
            }),
            parent.clone(),
        );
        assert!(!m.is_running());
        m.run();
        m.run();
        assert!(m.is_running());
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        m.stop().await;
        assert!(!m.is_running());
        assert_eq!(live.load(Ordering::SeqCst), 0, "stop waits for the tasks");
        m.run();
        assert_eq!(live.load(Ordering::SeqCst), 1);
        parent.cancel();
        m.stop().await;
        assert_eq!(live.load(Ordering::SeqCst), 0);
        assert_eq!(starts.load(Ordering::SeqCst), 2);
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
        assert_eq!(
            o.store.default_path(),
            std::path::PathBuf::from("/tmp/x/dledger-n1")
        );
        assert_eq!(o.config.timers(), dledger::config::OUR_TIMERS);
        c.d_leger_self_id = "x".into();
        assert!(server_options(&c).is_err());
    }

    #[test]
    fn timer_keys_and_the_java_switch() {
        let base = "brokerName=b\nenableDLegerCommitLog=true\ndLegerSelfId=n0\n\
                    dLegerPeers=n0-127.0.0.1:40911;n1-127.0.0.1:40912\n";
        let opts = |extra: &str| {
            let mut c = BrokerConfig::default();
            c.apply(&remoting::properties::parse(&format!("{base}{extra}")))
                .unwrap();
            server_options(&c)
        };
        let java = opts("dLegerJavaTimers=true\n").unwrap();
        assert_eq!(java.config.timers(), dledger::config::JAVA_TIMERS);
        let keys = opts(
            "heartBeatTimeIntervalMs=2000\nmaxHeartBeatLeak=4\nminVoteIntervalMs=300\n\
             maxVoteIntervalMs=1000\nvoteWaitBaseMs=1500\n",
        )
        .unwrap();
        let t = keys.config.timers();
        assert_eq!(
            (t.heart_beat_time_interval_ms, t.max_heart_beat_leak),
            (2000, 4)
        );
        assert_eq!(
            (
                t.min_vote_interval_ms,
                t.max_vote_interval_ms,
                t.vote_wait_base_ms
            ),
            (300, 1000, 1500)
        );
        assert!(opts("heartBeatTimeIntervalMs=-5\n").is_err());
        assert!(opts("minVoteIntervalMs=900\nmaxVoteIntervalMs=100\n").is_err());
    }
}
