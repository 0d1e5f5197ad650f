//! The tokio driver of a DLedger member: owns the Raft [`Node`] and the
//! [`DLedgerStore`], runs the node's timers, serves the peer port (remoting
//! frames with JSON bodies, docs/protocol/dledger.md §1) and dials every peer for outbound calls.
//!
//! ```text
//!  peer/client requests ─► Router handlers ─┐            ┌─► PeerLink (one per peer) ─► remoting
//!  local append/get/...  ───────────────────┼─► driver ──┤
//!  outbound answers/failures ───────────────┘  (Node)    └─► role watch, append waiters, replies
//! ```
//!
//! One task (the driver) owns the node; everything else talks to it through
//! a channel, so the node needs no locks.

mod client;
mod driver;
mod peer;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use remoting::{Connection, RemotingCommand, Router};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use client::DLedgerClient;
pub use peer::{PeerClient, RPC_TIMEOUT};

use crate::config::DLedgerConfig;
use crate::core::message as m;
use crate::core::message::{RequestCode, ResponseCode, Role};
use crate::core::StorageError;
use crate::entry::Entry;
use crate::ids::{LogIndex, Term};
use crate::protocol::convert::{decode_request, encode_response};
use crate::protocol::{
    response_frame, AppendEntryRequest, Base, Body, EntryJson, GetEntriesRequest,
    GetEntriesResponse, MetadataRequest, MetadataResponse, ProtocolError,
};
use crate::store::{CommittedReader, DLedgerStore, StoreConfig};
pub use driver::Appended;
use driver::{Driver, Input, Published};

/// Everything a server needs to start.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub config: DLedgerConfig,
    pub store: StoreConfig,
    /// Address to bind the peer port to; `None` = every interface (Java).
    pub bind: Option<IpAddr>,
    /// Background flush of data and index (`flushFileInterval`, 10 ms).
    pub flush_interval: Duration,
    /// Checkpoint rewrite (`checkPointInterval`, 3000 ms).
    pub checkpoint_interval: Duration,
    /// Timeout of every outbound call (3000 ms in Java).
    pub rpc_timeout: Duration,
    /// Installed on the store at start ([`DLedgerStore::set_append_hook`]):
    /// patches each leader-appended body once its `pos` is known (the
    /// broker writes PHYSICALOFFSET = `pos + 48`, as Java's DLedgerCommitLog).
    pub append_hook: Option<SharedAppendHook>,
    /// Adds handlers to the peer port's router (codes and close hooks):
    /// Java's controller serves its requests on its DLedger port.
    pub extra_routes: Option<RouteExtender>,
}

/// A function that extends the peer port's router.
#[derive(Clone)]
pub struct RouteExtender(pub Arc<dyn Fn(Router) -> Router + Send + Sync>);

impl std::fmt::Debug for RouteExtender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteExtender")
    }
}

/// The hook's function: `(entry body, body position)`; the body position is
/// [`crate::EntryPos::body_pos`] of the entry being appended.
pub type AppendHookFn = dyn Fn(&mut [u8], i64) + Send + Sync;

/// An append hook that can be cloned with the options.
#[derive(Clone)]
pub struct SharedAppendHook(pub Arc<AppendHookFn>);

impl std::fmt::Debug for SharedAppendHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedAppendHook")
    }
}

impl ServerOptions {
    pub fn new(config: DLedgerConfig, store: StoreConfig) -> Self {
        ServerOptions {
            config,
            store,
            bind: None,
            flush_interval: Duration::from_millis(10),
            checkpoint_interval: Duration::from_millis(3000),
            rpc_timeout: RPC_TIMEOUT,
            append_hook: None,
            extra_routes: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("config: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("store: {0}")]
    Store(#[from] StorageError),
    #[error("self id {0:?} has no address in peers")]
    NoSelfAddress(String),
    #[error("bad peer address {0:?}")]
    BadAddress(String),
    #[error("bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server has stopped")]
    Stopped,
}

/// What the broker watches: `RoleChangeHandler.handle(term, role)` plus the
/// known leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleState {
    pub term: Term,
    pub role: Role,
    pub leader_id: Option<String>,
}

/// [`DLedgerServer::figures`]: what an operator watches besides the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerFigures {
    /// The last index in this member's ledger (`-1`: empty).
    pub end_index: i64,
    /// The committed index (`-1`: nothing committed).
    pub committed_index: i64,
    /// Every other peer's acknowledged index as this member, leader, last
    /// saw it; `-1` for each while not leader.
    pub peer_watermarks: Vec<(String, i64)>,
}

/// Shared, read-mostly state the request handlers need without asking the driver.
struct Shared {
    config: DLedgerConfig,
    role: watch::Receiver<RoleState>,
    published: Arc<Published>,
    store: StoreConfig,
    /// Unbounded: every producer waits for its answer (peer requests,
    /// appends) or is one per outstanding request (outbound results), so
    /// what is queued is bounded by what is in flight; a local append never
    /// waits to be queued.
    inputs: mpsc::UnboundedSender<Input>,
    shutdown: CancellationToken,
}

/// A running DLedger member.
pub struct DLedgerServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    committed: watch::Receiver<LogIndex>,
    /// Driver and peer-port tasks; [`DLedgerServer::shutdown`] takes and
    /// awaits them, from whichever holder of a shared server calls it.
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl DLedgerServer {
    /// Opens the store, binds the peer port of `self_id` and starts the member.
    pub async fn start(opts: ServerOptions) -> Result<DLedgerServer, ServerError> {
        opts.config.validate()?;
        let self_addr = opts
            .config
            .peers
            .iter()
            .find(|p| p.id == opts.config.self_id)
            .map(|p| p.addr.clone())
            .ok_or_else(|| ServerError::NoSelfAddress(opts.config.self_id.clone()))?;
        let port: u16 = self_addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .ok_or_else(|| ServerError::BadAddress(self_addr.clone()))?;
        let addr = SocketAddr::new(opts.bind.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener.local_addr().unwrap_or(addr);

        let mut store = {
            let cfg = opts.store.clone();
            tokio::task::spawn_blocking(move || DLedgerStore::open(cfg))
                .await
                .map_err(|e| ServerError::Store(StorageError::Io(e.to_string())))??
        };
        if let Some(SharedAppendHook(hook)) = opts.append_hook.clone() {
            store.set_append_hook(Box::new(move |body: &mut [u8], pos: i64| hook(body, pos)));
        }
        let shutdown = CancellationToken::new();
        let (inputs_tx, inputs_rx) = mpsc::unbounded_channel();
        let (driver, role_rx, committed_rx, published) =
            Driver::new(&opts, store, inputs_tx.clone(), shutdown.clone());
        let shared = Arc::new(Shared {
            config: opts.config.clone(),
            role: role_rx,
            published,
            store: opts.store.clone(),
            inputs: inputs_tx,
            shutdown: shutdown.clone(),
        });
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(driver.run(inputs_rx)));
        let mut router = router(shared.clone());
        if let Some(RouteExtender(extend)) = &opts.extra_routes {
            router = extend(router);
        }
        let router = Arc::new(router);
        let serve_shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = remoting::serve(
                listener,
                router,
                remoting::ServerConfig::default(),
                serve_shutdown,
            )
            .await
            {
                tracing::error!(error = %e, "DLedger peer port failed");
            }
        }));
        info!(
            group = %opts.config.group,
            id = %opts.config.self_id,
            %local_addr,
            "DLedger server started"
        );
        Ok(DLedgerServer {
            shared,
            local_addr,
            committed: committed_rx,
            tasks: std::sync::Mutex::new(tasks),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn self_id(&self) -> &str {
        &self.shared.config.self_id
    }

    /// Role, term and leader, updated on every change.
    pub fn subscribe_role(&self) -> watch::Receiver<RoleState> {
        self.shared.role.clone()
    }

    pub fn role(&self) -> RoleState {
        self.shared.role.borrow().clone()
    }

    /// True while this member is leader and, by the clock now, no other
    /// member can have been elected since a quorum last answered it (the
    /// lease of [`Node::leader_lease_until`](crate::core::Node::leader_lease_until)).
    /// False right after a long pause even before the driver has run again
    /// and stepped down: the time to stop claiming leadership to others
    /// (e.g. a broker's name-server registration as master).
    pub fn holds_leader_lease(&self) -> bool {
        self.shared.published.holds_lease()
    }

    /// A reader of this member's committed data log (entry bodies by
    /// data-log position, see [`crate::entry::Entry::body_pos`]).
    pub fn committed_reader(&self) -> CommittedReader {
        CommittedReader::new(
            self.shared.store.data_path(),
            self.shared.store.mapped_file_size_for_entry_data,
            self.shared.published.committed_end.clone(),
        )
    }

    /// The committed index, updated as it advances.
    pub fn subscribe_committed(&self) -> watch::Receiver<LogIndex> {
        self.committed.clone()
    }

    /// A read-only snapshot of the ledger for metrics, as of the driver's
    /// last step (no round trip to the driver).
    pub fn figures(&self) -> LedgerFigures {
        let p = &self.shared.published;
        LedgerFigures {
            end_index: p.end_index.load(Ordering::Relaxed),
            committed_index: p.committed_index.load(Ordering::Relaxed),
            peer_watermarks: p
                .peer_watermarks
                .iter()
                .map(|(id, w)| (id.clone(), w.load(Ordering::Relaxed)))
                .collect(),
        }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Input,
    ) -> Result<T, ServerError> {
        ask(&self.shared, make).await
    }

    /// The base of a local append request (for its error answers).
    fn local_header(&self) -> m::Header {
        m::Header {
            group: Some(self.shared.config.group.clone()),
            remote_id: Some(self.shared.config.self_id.clone()),
            ..m::Header::default()
        }
    }

    /// Appends `body` as leader and waits for its outcome (200, or 404/503/
    /// 506/… at once, or 501/502 which are indeterminate).
    pub async fn append(&self, body: Bytes) -> Result<m::AppendEntryResponse, ServerError> {
        let header = self.local_header();
        self.ask(|reply| Input::Append {
            header,
            bodies: vec![body],
            in_term: None,
            reply,
        })
        .await
        .map(|a| a.response)
    }

    /// Local batch append: one entry per body, the outcome is the last one's.
    pub async fn append_batch(
        &self,
        bodies: Vec<Bytes>,
    ) -> Result<m::AppendEntryResponse, ServerError> {
        let header = self.local_header();
        self.ask(|reply| Input::Append {
            header,
            bodies,
            in_term: None,
            reply,
        })
        .await
        .map(|a| a.response)
    }

    /// Queues a local append (one entry per body) behind every append queued
    /// before it and returns without waiting: calls made one after another
    /// append in call order (a caller may queue under a synchronous lock),
    /// and many queued appends share quorum rounds; the outcome is awaited
    /// on the returned [`QueuedAppend`]. With `in_term`, the append is
    /// refused (NOT_LEADER) unless this member is still leader in that term
    /// when the driver takes it: a writer that rebuilt its state for one
    /// term never appends in another.
    pub fn queue_append(
        &self,
        bodies: Vec<Bytes>,
        in_term: Option<Term>,
    ) -> Result<QueuedAppend, ServerError> {
        let header = self.local_header();
        let (reply, rx) = oneshot::channel();
        self.shared
            .inputs
            .send(Input::Append {
                header,
                bodies,
                in_term,
                reply,
            })
            .map_err(|_| ServerError::Stopped)?;
        Ok(QueuedAppend(rx))
    }

    /// The entry at `index` if it is committed on this node (any role).
    pub async fn get_committed(&self, index: LogIndex) -> Result<Option<Entry>, ServerError> {
        self.ask(|reply| Input::ReadCommitted { index, reply })
            .await
    }

    /// Up to `max` consecutive committed entries from `from` on (fewer at
    /// the committed index, none when `from` is not readable: below the
    /// log's start or above the committed index), in one driver round.
    pub async fn get_committed_range(
        &self,
        from: LogIndex,
        max: usize,
    ) -> Result<Vec<Entry>, ServerError> {
        self.ask(|reply| Input::ReadCommittedRange { from, max, reply })
            .await
    }

    /// Ledger begin/end and committed index of this node.
    pub async fn ledger(&self) -> Result<Ledger, ServerError> {
        self.ask(|reply| Input::Ledger { reply }).await
    }

    /// Hands leadership to `transferee` (this node must be the leader).
    pub async fn transfer_leadership(&self, transferee: &str) -> Result<ResponseCode, ServerError> {
        let transferee = transferee.to_owned();
        self.ask(|reply| Input::Transfer { transferee, reply })
            .await
    }

    /// Stops serving, stops the driver, flushes and checkpoints the store,
    /// and returns once that is done. Takes `&self` so a server shared by
    /// several owners (the broker's store, its role watcher) is still shut
    /// down completely: dropping the last handle only cancels, and a process
    /// that exits right after would lose the final checkpoint. A second call
    /// returns at once.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
        info!(id = %self.shared.config.self_id, "DLedger server stopped");
    }
}

impl Drop for DLedgerServer {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

/// An append queued by [`DLedgerServer::queue_append`].
#[derive(Debug)]
pub struct QueuedAppend(oneshot::Receiver<Appended>);

impl QueuedAppend {
    /// The outcome: Java's response for the last queued entry (as
    /// [`DLedgerServer::append`]) and, once committed, every entry's
    /// position.
    pub async fn outcome(self) -> Result<Appended, ServerError> {
        self.0.await.map_err(|_| ServerError::Stopped)
    }
}

/// Ledger positions of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ledger {
    pub begin_index: LogIndex,
    /// [`LogIndex::NONE`] for an empty log.
    pub end_index: LogIndex,
    pub end_term: Term,
    pub committed_index: LogIndex,
}

async fn ask<T>(
    shared: &Shared,
    make: impl FnOnce(oneshot::Sender<T>) -> Input,
) -> Result<T, ServerError> {
    let (tx, rx) = oneshot::channel();
    shared
        .inputs
        .send(make(tx))
        .map_err(|_| ServerError::Stopped)?;
    rx.await.map_err(|_| ServerError::Stopped)
}

// ------------------------------------------------------------------ handlers

/// How long a peer request Java would never answer is held before we give up
/// on it (well past the sender's 3000 ms timeout, so it is never read).
const ABANDONED_HOLD: Duration = Duration::from_secs(10);

fn bad_body(code: i32, e: ProtocolError) -> RemotingCommand {
    // Java: the JSON parse throws out of the processor → SYSTEM_ERROR + remark.
    tracing::debug!(code, error = %e, "bad DLedger request body");
    RemotingCommand::response(remoting::response_code::SYSTEM_ERROR)
        .with_remark(format!("DLedger request {code}: {e}"))
}

fn router(shared: Arc<Shared>) -> Router {
    let mut r = Router::new();
    for code in [
        RequestCode::Vote,
        RequestCode::HeartBeat,
        RequestCode::Push,
        RequestCode::LeadershipTransfer,
    ] {
        let shared = shared.clone();
        r = r.route(code.code(), move |_c: Connection, req: RemotingCommand| {
            let shared = shared.clone();
            async move { Ok(peer_request(&shared, code, req).await) }
        });
    }
    let s = shared.clone();
    r = r.route(
        RequestCode::Metadata.code(),
        move |_c, req: RemotingCommand| {
            let s = s.clone();
            async move { Ok(metadata(&s, &req)) }
        },
    );
    let s = shared.clone();
    r = r.route(
        RequestCode::Append.code(),
        move |_c, req: RemotingCommand| {
            let s = s.clone();
            async move { Ok(client_append(&s, req).await) }
        },
    );
    let s = shared;
    r.route(RequestCode::Get.code(), move |_c, req: RemotingCommand| {
        let s = s.clone();
        async move { Ok(client_get(&s, req).await) }
    })
}

async fn peer_request(shared: &Shared, code: RequestCode, req: RemotingCommand) -> RemotingCommand {
    let request = match decode_request(code, &req.body) {
        Some(Ok(r)) => r,
        Some(Err(e)) => return bad_body(code.code(), e),
        None => return bad_body(code.code(), ProtocolError::MissingField("code")),
    };
    match ask(shared, |reply| Input::Peer { request, reply }).await {
        Ok(Some(resp)) => encode_response(&resp),
        // Abandoned (Java never answers) or shutting down: say nothing
        // useful, late, after the sender's timeout.
        Ok(None) | Err(_) => {
            tokio::select! {
                _ = tokio::time::sleep(ABANDONED_HOLD) => {}
                _ = shared.shutdown.cancelled() => {}
            }
            RemotingCommand::response(remoting::response_code::SYSTEM_ERROR)
                .with_remark("request dropped")
        }
    }
}

/// `handleMetadata`, and the remoteId/group check every DLedger handler does.
fn check_member(shared: &Shared, base: &Base) -> Option<ResponseCode> {
    if base.remote_id.as_deref() != Some(shared.config.self_id.as_str()) {
        Some(ResponseCode::UnknownMember)
    } else if base.group.as_deref() != Some(shared.config.group.as_str()) {
        Some(ResponseCode::UnknownGroup)
    } else {
        None
    }
}

/// Java's error answer: the request's base fields, the code, our known leader.
fn error_base(shared: &Shared, request: &Base, code: ResponseCode) -> Base {
    Base {
        code: code.code(),
        leader_id: shared.role.borrow().leader_id.clone(),
        ..request.clone()
    }
}

fn metadata(shared: &Shared, req: &RemotingCommand) -> RemotingCommand {
    let request = match MetadataRequest::from_json(&req.body) {
        Ok(r) => r,
        Err(e) => return bad_body(req.code, e),
    };
    if let Some(code) = check_member(shared, &request.base) {
        return response_frame(&MetadataResponse {
            base: error_base(shared, &request.base, code),
            peers: None,
        });
    }
    let peers: BTreeMap<String, String> = shared
        .config
        .peers
        .iter()
        .map(|p| (p.id.clone(), p.addr.clone()))
        .collect();
    response_frame(&MetadataResponse {
        base: Base {
            group: Some(shared.config.group.clone()),
            leader_id: shared.role.borrow().leader_id.clone(),
            ..Base::default()
        },
        peers: Some(peers),
    })
}

async fn client_append(shared: &Shared, req: RemotingCommand) -> RemotingCommand {
    let request = match AppendEntryRequest::from_json(&req.body) {
        Ok(r) => r,
        Err(e) => return bad_body(req.code, e),
    };
    if let Some(code) = check_member(shared, &request.base) {
        return response_frame(&crate::protocol::AppendEntryResponse {
            base: error_base(shared, &request.base, code),
            ..Default::default()
        });
    }
    let Some(body) = request.body.clone() else {
        return bad_body(req.code, ProtocolError::MissingField("body"));
    };
    let header: m::Header = request.base.clone().into();
    match ask(shared, |reply| Input::Append {
        header,
        bodies: vec![body],
        in_term: None,
        reply,
    })
    .await
    {
        Ok(a) => response_frame(&crate::protocol::AppendEntryResponse::from(&a.response)),
        Err(_) => response_frame(&crate::protocol::AppendEntryResponse {
            base: error_base(shared, &request.base, ResponseCode::InternalError),
            ..Default::default()
        }),
    }
}

async fn client_get(shared: &Shared, req: RemotingCommand) -> RemotingCommand {
    let request = match GetEntriesRequest::from_json(&req.body) {
        Ok(r) => r,
        Err(e) => return bad_body(req.code, e),
    };
    if let Some(code) = check_member(shared, &request.base) {
        return response_frame(&GetEntriesResponse {
            base: error_base(shared, &request.base, code),
            entries: Vec::new(),
        });
    }
    let Some(index) = request.begin_index else {
        // Java dereferences the null Long and fails the request.
        return bad_body(req.code, ProtocolError::MissingField("beginIndex"));
    };
    match ask(shared, |reply| Input::Get { index, reply }).await {
        Ok(Ok(entry)) => response_frame(&GetEntriesResponse {
            base: Base {
                group: Some(shared.config.group.clone()),
                ..Base::default()
            },
            entries: vec![EntryJson::from(&entry)],
        }),
        Ok(Err(code)) => response_frame(&GetEntriesResponse {
            base: error_base(shared, &request.base, code),
            entries: Vec::new(),
        }),
        Err(_) => response_frame(&GetEntriesResponse {
            base: error_base(shared, &request.base, ResponseCode::InternalError),
            entries: Vec::new(),
        }),
    }
}
