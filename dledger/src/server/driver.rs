//! The task that owns the [`Node`]: feeds it inputs, runs its timers and
//! carries out its actions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::FutureExt;
use smallvec::SmallVec;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::peer::PeerClient;
use super::{Ledger, RoleState, ServerOptions};
use crate::core::message as m;
use crate::core::message::{ResponseCode, Role};
use crate::core::{Action, InboundId, Node, OutboundId, Storage, StorageError};
use crate::entry::Entry;
use crate::ids::{EntryPos, LogIndex, Term};
use crate::protocol::convert::{decode_response, encode_request};
use crate::store::DLedgerStore;

pub(super) enum Input {
    /// A request from a peer; `None` as the answer means "never answered".
    Peer {
        request: m::Request,
        reply: oneshot::Sender<Option<m::Response>>,
    },
    /// The answer to (or failure of) one of our outbound requests.
    Outbound {
        id: OutboundId,
        result: Option<m::Response>,
    },
    /// Client or local append; `header` is the request's base (for errors).
    /// `in_term`: refused with NOT_LEADER unless the node is in that term.
    Append {
        header: m::Header,
        bodies: Vec<Bytes>,
        in_term: Option<Term>,
        reply: oneshot::Sender<Appended>,
    },
    /// Client GET (leader only).
    Get {
        index: i64,
        reply: oneshot::Sender<Result<Entry, ResponseCode>>,
    },
    ReadCommitted {
        index: LogIndex,
        reply: oneshot::Sender<Option<Entry>>,
    },
    ReadCommittedRange {
        from: LogIndex,
        max: usize,
        reply: oneshot::Sender<Vec<Entry>>,
    },
    Ledger {
        reply: oneshot::Sender<Ledger>,
    },
    Transfer {
        transferee: String,
        reply: oneshot::Sender<ResponseCode>,
    },
}

/// Monotonic milliseconds on Java's scale (wall clock at start + elapsed).
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
    base_ms: u64,
}

impl Clock {
    fn new() -> Self {
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock {
            start: Instant::now(),
            base_ms,
        }
    }

    fn now(&self) -> u64 {
        self.base_ms + self.start.elapsed().as_millis() as u64
    }

    fn instant_of(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms.saturating_sub(self.base_ms))
    }
}

/// What the driver publishes after every step, readable without asking it.
pub(super) struct Published {
    clock: Clock,
    /// [`Node::leader_lease_until`] on the driver's clock; `i64::MIN` when
    /// not leader. A paused leader learns it was replaced only when its
    /// driver runs again, but its lease has lapsed by the clock as soon as
    /// it resumes.
    lease_until: AtomicI64,
    /// The store's committed end (`committedPos`), for
    /// [`CommittedReader`](crate::store::CommittedReader)s.
    pub(super) committed_end: Arc<AtomicI64>,
    /// Read-only figures for metrics: the ledger's end and committed index.
    pub(super) end_index: AtomicI64,
    pub(super) committed_index: AtomicI64,
    /// Each other peer's acknowledged index as the leader sees it (`-1`
    /// while this member is not leader); the peer set is fixed at start.
    pub(super) peer_watermarks: Vec<(String, AtomicI64)>,
}

impl Published {
    pub(super) fn holds_lease(&self) -> bool {
        let until = self.lease_until.load(Ordering::Acquire);
        until != i64::MIN && (self.clock.now() as i64) < until
    }
}

/// One single-body append of a burst: its request base, body, term fence
/// and answer.
type SingleAppend = (m::Header, Bytes, Option<Term>, oneshot::Sender<Appended>);

/// The answer to an append: Java's response (the last entry's index and
/// position, or the failure code) and, once committed, the data-log
/// position of every entry it appended, in order.
#[derive(Debug)]
pub struct Appended {
    pub response: m::AppendEntryResponse,
    pub positions: SmallVec<[EntryPos; 1]>,
}

impl Appended {
    fn failed(response: m::AppendEntryResponse) -> Appended {
        Appended {
            response,
            positions: SmallVec::new(),
        }
    }
}

struct AppendWaiter {
    group: Option<String>,
    reply: oneshot::Sender<Appended>,
    /// Every entry's position, the answered (last) one included.
    positions: SmallVec<[EntryPos; 1]>,
}

type LinkItem = (OutboundId, m::Request, Instant);

/// Most inputs taken from the channel per driver iteration.
const MAX_BURST: usize = 256;

pub(super) struct Driver {
    node: Node<DLedgerStore>,
    clock: Clock,
    published: Arc<Published>,
    group: String,
    self_id: String,
    inbound: HashMap<u64, oneshot::Sender<Option<m::Response>>>,
    next_inbound: u64,
    appends: HashMap<(Term, LogIndex), AppendWaiter>,
    links: HashMap<String, mpsc::UnboundedSender<LinkItem>>,
    role_tx: watch::Sender<RoleState>,
    committed_tx: watch::Sender<LogIndex>,
    shutdown: CancellationToken,
    flush_interval: Duration,
    checkpoint_interval: Duration,
    rpc_timeout: Duration,
    flushed_end: i64,
    /// The flush running on a blocking thread (at most one, like Java's
    /// flush service), so the driver never waits for the disk.
    flush_job: Option<tokio::task::JoinHandle<Result<(), StorageError>>>,
}

impl Driver {
    pub(super) fn new(
        opts: &ServerOptions,
        store: DLedgerStore,
        inputs: mpsc::UnboundedSender<Input>,
        shutdown: CancellationToken,
    ) -> (
        Driver,
        watch::Receiver<RoleState>,
        watch::Receiver<LogIndex>,
        Arc<Published>,
    ) {
        let clock = Clock::new();
        let published = Arc::new(Published {
            clock,
            lease_until: AtomicI64::new(i64::MIN),
            committed_end: Arc::new(AtomicI64::new(store.committed_pos())),
            end_index: AtomicI64::new(store.end_index()),
            committed_index: AtomicI64::new(store.committed_index()),
            peer_watermarks: opts
                .config
                .peers
                .iter()
                .filter(|p| p.id != opts.config.self_id)
                .map(|p| (p.id.clone(), AtomicI64::new(-1)))
                .collect(),
        });
        let seed = clock.base_ms
            ^ (u64::from(std::process::id()) << 32)
            ^ clock.start.elapsed().as_nanos() as u64;
        let committed = store.committed_index();
        let flushed_end = store.end_index();
        let node = Node::new(opts.config.clone(), store, seed, clock.now());
        let (role_tx, role_rx) = watch::channel(RoleState {
            term: Term(node.term()),
            role: node.role(),
            leader_id: node.leader_id().map(str::to_owned),
        });
        let (committed_tx, committed_rx) = watch::channel(LogIndex(committed));
        let mut links = HashMap::new();
        for p in &opts.config.peers {
            if p.id == opts.config.self_id {
                continue;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(link(
                p.id.clone(),
                PeerClient::new(p.addr.clone()),
                rx,
                inputs.clone(),
                shutdown.clone(),
            ));
            links.insert(p.id.clone(), tx);
        }
        let driver = Driver {
            node,
            clock,
            published: published.clone(),
            group: opts.config.group.clone(),
            self_id: opts.config.self_id.clone(),
            inbound: HashMap::new(),
            next_inbound: 1,
            appends: HashMap::new(),
            links,
            role_tx,
            committed_tx,
            shutdown,
            flush_interval: opts.flush_interval,
            checkpoint_interval: opts.checkpoint_interval,
            rpc_timeout: opts.rpc_timeout,
            flushed_end,
            flush_job: None,
        };
        (driver, role_rx, committed_rx, published)
    }

    pub(super) async fn run(mut self, mut inputs: mpsc::UnboundedReceiver<Input>) {
        let now = self.clock.now();
        self.node.tick(now);
        self.after_input();
        // Periodic work runs from explicit deadlines checked on every loop
        // iteration, so a busy input channel or an always-due core timer
        // cannot starve flush and checkpoint (a biased select! would).
        let mut next_flush = Instant::now() + self.flush_interval;
        let mut next_checkpoint = Instant::now() + self.checkpoint_interval;
        let mut last_tick_ms = now;
        let mut warned_stuck_timer = false;
        loop {
            let at = Instant::now();
            if at >= next_flush {
                self.flush();
                next_flush = at + self.flush_interval;
            }
            if at >= next_checkpoint {
                if let Err(e) = self.node.storage().persist_checkpoint() {
                    warn!(error = %e, "checkpoint failed");
                }
                next_checkpoint = at + self.checkpoint_interval;
            }
            let core = self.node.poll_timeout();
            let mut wake = core
                .map(|t| self.clock.instant_of(t))
                .unwrap_or_else(|| at + Duration::from_secs(3600));
            if let Some(t) = core.filter(|t| *t <= last_tick_ms) {
                // The last tick did not move the core's timer past its own
                // time: never busy-loop on it.
                if !warned_stuck_timer {
                    warned_stuck_timer = true;
                    warn!(id = %self.self_id, timeout = t, now = last_tick_ms,
                        "DLedger core timer did not advance after a tick; throttling to 1 ms");
                }
                wake = wake.max(at + Duration::from_millis(1));
            }
            let wake = wake.min(next_flush).min(next_checkpoint);
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break,
                input = inputs.recv() => match input {
                    Some(input) => self.handle_burst(input, &mut inputs),
                    None => break,
                },
                _ = tokio::time::sleep_until(wake) => {
                    let now = self.clock.now();
                    if self.node.poll_timeout().is_some_and(|t| t <= now) {
                        self.node.tick(now);
                        last_tick_ms = now;
                    }
                }
            }
            self.after_input();
        }
        // Waiters see their channel closed; the store is flushed and checkpointed.
        self.appends.clear();
        self.inbound.clear();
        if let Some(job) = self.flush_job.take() {
            let _ = job.await;
        }
        if let Err(e) = self.node.storage_mut().shutdown() {
            warn!(error = %e, "store shutdown failed");
        }
        debug!(id = %self.self_id, "driver stopped");
    }

    fn flush(&mut self) {
        if let Some(job) = self.flush_job.take() {
            if !job.is_finished() {
                self.flush_job = Some(job);
                return;
            }
            match job.now_or_never() {
                Some(Ok(Err(e))) => warn!(error = %e, "flush failed"),
                Some(Err(e)) => warn!(error = %e, "flush task failed"),
                _ => {}
            }
        }
        let end = self.node.storage().end_index();
        if end != self.flushed_end {
            match self.node.storage_mut().begin_flush() {
                Ok(job) => {
                    if !job.is_empty() {
                        self.flush_job = Some(tokio::task::spawn_blocking(move || job.run()));
                    }
                }
                Err(e) => {
                    warn!(error = %e, "flush failed");
                    return;
                }
            }
            self.flushed_end = end;
        }
    }

    /// `first` and whatever else is already queued (bounded): runs of
    /// single-body appends go to the node together, so they leave in one
    /// push per follower; everything else is handled in arrival order.
    fn handle_burst(&mut self, first: Input, inputs: &mut mpsc::UnboundedReceiver<Input>) {
        let mut appends: Vec<SingleAppend> = Vec::new();
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(input) = next.take() {
            match input {
                Input::Append {
                    header,
                    mut bodies,
                    in_term,
                    reply,
                } if bodies.len() == 1 => {
                    if let Some(body) = bodies.pop() {
                        appends.push((header, body, in_term, reply));
                    }
                }
                other => {
                    self.append_each(std::mem::take(&mut appends));
                    self.handle(other);
                }
            }
            taken += 1;
            if taken < MAX_BURST {
                next = inputs.try_recv().ok();
            }
        }
        self.append_each(appends);
    }

    /// Whether an append fenced to `in_term` may go to the node now (the
    /// node's term changes only between inputs).
    fn in_term(&self, in_term: Option<Term>) -> bool {
        in_term.is_none_or(|t| t == Term(self.node.term()))
    }

    fn append_each(&mut self, appends: Vec<SingleAppend>) {
        if appends.is_empty() {
            return;
        }
        let now = self.clock.now();
        let mut bodies = Vec::with_capacity(appends.len());
        let mut waiters = Vec::with_capacity(appends.len());
        for (header, body, in_term, reply) in appends {
            if self.in_term(in_term) {
                bodies.push(body);
                waiters.push((header, reply));
            } else {
                let _ = reply.send(Appended::failed(
                    self.append_error(&header, ResponseCode::NotLeader),
                ));
            }
        }
        if bodies.is_empty() {
            return;
        }
        let results = self.node.propose_each(bodies, now);
        for ((header, reply), r) in waiters.into_iter().zip(results) {
            match r {
                Ok(ok) => {
                    self.appends.insert(
                        (Term(ok.term), LogIndex(ok.index)),
                        AppendWaiter {
                            group: Some(self.group.clone()),
                            reply,
                            positions: smallvec::smallvec![EntryPos(ok.pos)],
                        },
                    );
                }
                Err(code) => {
                    let _ = reply.send(Appended::failed(self.append_error(&header, code)));
                }
            }
        }
    }

    fn handle(&mut self, input: Input) {
        let now = self.clock.now();
        match input {
            Input::Peer { request, reply } => {
                let id = self.next_inbound;
                self.next_inbound += 1;
                self.inbound.insert(id, reply);
                self.node.handle_request(InboundId(id), request, now);
            }
            Input::Outbound { id, result } => match result {
                Some(resp) => self.node.handle_response(id, resp, now),
                None => self.node.handle_send_failure(id, now),
            },
            Input::Append {
                header,
                bodies,
                in_term,
                reply,
            } => {
                if self.in_term(in_term) {
                    self.append(header, bodies, reply, now);
                } else {
                    let _ = reply.send(Appended::failed(
                        self.append_error(&header, ResponseCode::NotLeader),
                    ));
                }
            }
            Input::Get { index, reply } => {
                let r = if self.node.role() != Role::Leader {
                    Err(ResponseCode::NotLeader)
                } else {
                    self.node
                        .storage()
                        .get(index)
                        .map_err(|e| ResponseCode::from(&e))
                };
                let _ = reply.send(r);
            }
            Input::ReadCommitted { index, reply } => {
                let (index, s) = (index.get(), self.node.storage());
                let e = if index >= 0 && index <= s.committed_index() {
                    s.get(index).ok()
                } else {
                    None
                };
                let _ = reply.send(e);
            }
            Input::ReadCommittedRange { from, max, reply } => {
                let s = self.node.storage();
                let end = s.committed_index();
                let mut entries = Vec::new();
                let mut index = from.get().max(0);
                while index <= end && entries.len() < max {
                    match s.get(index) {
                        Ok(e) => entries.push(e),
                        Err(_) => break,
                    }
                    index += 1;
                }
                let _ = reply.send(entries);
            }
            Input::Ledger { reply } => {
                let s = self.node.storage();
                let _ = reply.send(Ledger {
                    begin_index: LogIndex(s.begin_index()),
                    end_index: LogIndex(s.end_index()),
                    end_term: Term(s.end_term()),
                    committed_index: LogIndex(s.committed_index()),
                });
            }
            Input::Transfer { transferee, reply } => {
                let r = self.node.transfer_leadership(&transferee, now);
                let _ = reply.send(r.err().unwrap_or(ResponseCode::Success));
            }
        }
    }

    fn append(
        &mut self,
        header: m::Header,
        bodies: Vec<Bytes>,
        reply: oneshot::Sender<Appended>,
        now: u64,
    ) {
        match self.node.propose_batch(bodies, now) {
            Ok(oks) => match oks.last() {
                Some(ok) => {
                    self.appends.insert(
                        (Term(ok.term), LogIndex(ok.index)),
                        AppendWaiter {
                            group: Some(self.group.clone()),
                            reply,
                            positions: oks.iter().map(|o| EntryPos(o.pos)).collect(),
                        },
                    );
                }
                None => {
                    let _ = reply.send(Appended::failed(
                        self.append_error(&header, ResponseCode::RequestWithEmptyBodys),
                    ));
                }
            },
            Err(code) => {
                let _ = reply.send(Appended::failed(self.append_error(&header, code)));
            }
        }
    }

    /// `handleAppend`'s catch: the request's base fields, the code, the known leader.
    fn append_error(&self, header: &m::Header, code: ResponseCode) -> m::AppendEntryResponse {
        let header = if code == ResponseCode::LeaderPendingFull {
            m::Header {
                group: Some(self.group.clone()),
                code: code.code(),
                term: self.node.term(),
                leader_id: Some(self.self_id.clone()),
                ..m::Header::default()
            }
        } else {
            m::Header {
                code: code.code(),
                leader_id: self.node.leader_id().map(str::to_owned),
                ..header.clone()
            }
        };
        m::AppendEntryResponse {
            header,
            index: -1,
            pos: -1,
        }
    }

    fn after_input(&mut self) {
        // Carrying out an action (a failed send) can queue more.
        loop {
            let actions = self.node.drain_actions();
            if actions.is_empty() {
                break;
            }
            for action in actions {
                self.execute(action);
            }
        }
        self.published.lease_until.store(
            self.node.leader_lease_until().unwrap_or(i64::MIN),
            Ordering::Release,
        );
        self.published
            .committed_end
            .store(self.node.storage().committed_pos(), Ordering::Release);
        let p = &self.published;
        p.end_index
            .store(self.node.storage().end_index(), Ordering::Relaxed);
        p.committed_index
            .store(self.node.storage().committed_index(), Ordering::Relaxed);
        let leader = self.node.role() == Role::Leader;
        for (peer, w) in &p.peer_watermarks {
            let v = if leader {
                self.node.peer_watermark(peer)
            } else {
                -1
            };
            w.store(v, Ordering::Relaxed);
        }
        let state = RoleState {
            term: Term(self.node.term()),
            role: self.node.role(),
            leader_id: self.node.leader_id().map(str::to_owned),
        };
        self.role_tx.send_if_modified(|cur| {
            if *cur != state {
                *cur = state;
                true
            } else {
                false
            }
        });
    }

    fn execute(&mut self, action: Action) {
        {
            match action {
                Action::Send { id, to, request } => {
                    let deadline = Instant::now() + self.rpc_timeout;
                    match self.links.get(&to) {
                        Some(link) if link.send((id, request, deadline)).is_ok() => {}
                        _ => {
                            let now = self.clock.now();
                            self.node.handle_send_failure(id, now);
                        }
                    }
                }
                Action::Respond { id, response } => {
                    if let Some(tx) = self.inbound.remove(&id.0) {
                        let _ = tx.send(Some(response));
                    }
                }
                Action::Abandon { id } => {
                    if let Some(tx) = self.inbound.remove(&id.0) {
                        let _ = tx.send(None);
                    }
                }
                Action::AppendOutcome {
                    term,
                    index,
                    pos,
                    code,
                } => {
                    if let Some(w) = self.appends.remove(&(Term(term), LogIndex(index))) {
                        let response = self.outcome(w.group, term, index, pos, code);
                        let positions = if code == ResponseCode::Success {
                            w.positions
                        } else {
                            SmallVec::new()
                        };
                        let _ = w.reply.send(Appended {
                            response,
                            positions,
                        });
                    }
                }
                Action::CommitAdvanced { index } => {
                    self.committed_tx.send_replace(LogIndex(index));
                }
                Action::RoleChanged { term, role } => {
                    info!(id = %self.self_id, term, role = role.java_name(), "role changed");
                }
            }
        }
    }

    /// The AppendEntryResponse Java's QuorumAckChecker / term-change check builds.
    fn outcome(
        &self,
        group: Option<String>,
        term: i64,
        index: i64,
        pos: i64,
        code: ResponseCode,
    ) -> m::AppendEntryResponse {
        match code {
            ResponseCode::Success => m::AppendEntryResponse {
                header: m::Header {
                    group,
                    term,
                    leader_id: Some(self.self_id.clone()),
                    ..m::Header::default()
                },
                index,
                pos,
            },
            ResponseCode::TermChanged => m::AppendEntryResponse {
                header: m::Header {
                    group,
                    code: code.code(),
                    leader_id: self.node.leader_id().map(str::to_owned),
                    ..m::Header::default()
                },
                index,
                pos: -1,
            },
            _ => m::AppendEntryResponse {
                header: m::Header {
                    group,
                    code: code.code(),
                    term,
                    leader_id: Some(self.self_id.clone()),
                    ..m::Header::default()
                },
                index,
                pos: -1,
            },
        }
    }
}

/// Sends one peer's requests in the order the node issued them (PUSH APPENDs
/// are pipelined; Java writes them in order from one dispatcher thread) and
/// reports every answer or failure back to the driver.
async fn link(
    peer_id: String,
    peer: PeerClient,
    mut rx: mpsc::UnboundedReceiver<LinkItem>,
    inputs: mpsc::UnboundedSender<Input>,
    shutdown: CancellationToken,
) {
    loop {
        let (id, request, deadline) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            item = rx.recv() => match item { Some(i) => i, None => break },
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let code = request.code();
        let conn = if left.is_zero() {
            None
        } else {
            match peer.connection(left).await {
                Ok(c) => Some(c),
                Err(e) => {
                    debug!(peer = %peer_id, addr = peer.addr(), error = %e, "peer unreachable");
                    None
                }
            }
        };
        let Some(conn) = conn else {
            let _ = inputs.send(Input::Outbound { id, result: None });
            continue;
        };
        let cmd = encode_request(&request);
        let left = deadline.saturating_duration_since(Instant::now());
        let inputs2 = inputs.clone();
        let peer_id2 = peer_id.clone();
        let mut call = Box::pin(async move {
            let result = match conn.request(cmd, left).await {
                Ok(resp) => match decode_response(code, &resp.body) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        warn!(peer = %peer_id2, error = %e, "unreadable DLedger response");
                        None
                    }
                },
                Err(e) => {
                    debug!(peer = %peer_id2, ?code, error = %e, "peer call failed");
                    if matches!(e, remoting::RemotingError::ConnectionClosed) {
                        conn.close();
                    }
                    None
                }
            };
            let _ = inputs2.send(Input::Outbound { id, result });
        });
        // The first poll queues the frame on the connection, so frames leave in
        // issue order; the wait for the answer runs on its own task.
        if (&mut call).now_or_never().is_none() {
            tokio::spawn(call);
        }
    }
    peer.close().await;
}
