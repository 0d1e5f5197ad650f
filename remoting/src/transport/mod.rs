//! A tokio transport for remoting commands.
//!
//! One [`Connection`] type serves both ends: either side may send requests
//! (server-initiated requests such as NOTIFY_CONSUMER_IDS_CHANGED go over the
//! client's connection), responses are matched by `opaque`, and incoming
//! requests are answered by a [`Router`]: one handler per request code, with
//! error-to-response mapping and the unknown-code answer done once, here.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use std::task::Poll;

use bytes::BytesMut;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::{Instant, Sleep};
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::code::response_code;
use crate::codec::RemotingCodec;
use crate::command::{RemotingCommand, FLAG_ONEWAY, FLAG_RESPONSE};
use crate::error::{CommandError, RemotingError};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
pub type HandlerResult = Result<RemotingCommand, CommandError>;

/// Frames queued for writing on one connection before senders wait.
const OUTBOUND_QUEUE: usize = 4096;
/// Requests from one peer being handled at once before we stop reading.
const MAX_IN_FLIGHT_PER_CONNECTION: usize = 4096;

/// Handles one request code. Implemented for `Fn(Connection, RemotingCommand) -> impl Future`.
/// The function itself runs on the connection's read loop, in arrival order;
/// only the future it returns runs concurrently with later requests.
pub trait Handler: Send + Sync + 'static {
    fn call(&self, conn: Connection, request: RemotingCommand) -> BoxFuture<HandlerResult>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Connection, RemotingCommand) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    fn call(&self, conn: Connection, request: RemotingCommand) -> BoxFuture<HandlerResult> {
        Box::pin(self(conn, request))
    }
}

type CloseHook = Arc<dyn Fn(&Connection) + Send + Sync>;

/// The request-code -> handler table, plus hooks for closed connections.
#[derive(Default, Clone)]
pub struct Router {
    handlers: HashMap<i32, Arc<dyn Handler>>,
    on_close: Vec<CloseHook>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn route(mut self, code: i32, handler: impl Handler) -> Self {
        self.handlers.insert(code, Arc::new(handler));
        self
    }

    /// Called once when a connection closes, for whatever reason.
    pub fn on_close(mut self, hook: impl Fn(&Connection) + Send + Sync + 'static) -> Self {
        self.on_close.push(Arc::new(hook));
        self
    }

    pub fn handles(&self, code: i32) -> bool {
        self.handlers.contains_key(&code)
    }

    fn dispatch(&self, conn: Connection, request: RemotingCommand) -> BoxFuture<RemotingCommand> {
        let code = request.code;
        let Some(handler) = self.handlers.get(&code) else {
            debug!(peer = %conn.peer(), code, "request code not supported");
            return Box::pin(std::future::ready(
                RemotingCommand::response(response_code::REQUEST_CODE_NOT_SUPPORTED)
                    .with_remark(format!(" request type {code} not supported")),
            ));
        };
        let peer = conn.peer();
        let fut = handler.call(conn, request);
        Box::pin(async move {
            match fut.await {
                Ok(response) => response,
                Err(e) => {
                    debug!(%peer, code, response_code = e.code, remark = %e.remark, "request failed");
                    RemotingCommand::response(e.code).with_remark(e.remark)
                }
            }
        })
    }
}

static NEXT_OPAQUE: AtomicI32 = AtomicI32::new(1);
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

fn next_opaque() -> i32 {
    NEXT_OPAQUE.fetch_add(1, Ordering::Relaxed)
}

struct Shared {
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    outbound: mpsc::Sender<RemotingCommand>,
    pending: Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>,
    closed: CancellationToken,
}

/// A handle to one live connection; cheap to clone, compared by identity.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.shared.id)
            .field("peer", &self.shared.peer)
            .finish()
    }
}

impl PartialEq for Connection {
    fn eq(&self, other: &Self) -> bool {
        self.shared.id == other.shared.id
    }
}
impl Eq for Connection {}
impl Hash for Connection {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.shared.id.hash(state)
    }
}

impl Connection {
    /// Connects to a remoting server; requests the server sends us are
    /// answered by `router`.
    pub async fn connect(
        addr: impl ToSocketAddrs,
        router: Arc<Router>,
    ) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr()?;
        let local = stream.local_addr()?;
        let (r, w) = stream.into_split();
        Ok(Self::spawn(
            r,
            w,
            peer,
            local,
            router,
            CancellationToken::new(),
        ))
    }

    /// Runs a connection over any byte stream (tests use `tokio::io::duplex`).
    pub fn spawn<R, W>(
        reader: R,
        writer: W,
        peer: SocketAddr,
        local: SocketAddr,
        router: Arc<Router>,
        shutdown: CancellationToken,
    ) -> Connection
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        Self::spawn_with(
            reader,
            writer,
            peer,
            local,
            router,
            shutdown,
            Accepted::none(),
        )
    }

    /// [`Connection::spawn`] with what a server adds to the connections it
    /// accepts: an idle timeout and a slot of its connection limit.
    fn spawn_with<R, W>(
        reader: R,
        writer: W,
        peer: SocketAddr,
        local: SocketAddr,
        router: Arc<Router>,
        shutdown: CancellationToken,
        accepted: Accepted,
    ) -> Connection
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (outbound, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let closed = shutdown.child_token();
        let conn = Connection {
            shared: Arc::new(Shared {
                id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
                peer,
                local,
                outbound,
                pending: Mutex::new(HashMap::new()),
                closed: closed.clone(),
            }),
        };
        let side = Arc::new(WriteSide::new(writer, accepted.idle_timeout.is_some()));
        tokio::spawn(write_loop(side.clone(), rx, closed, peer));
        let read = read_loop(reader, conn.clone(), router, side, accepted.idle_timeout);
        let permit = accepted.permit;
        let read = async move {
            read.await;
            drop(permit);
        };
        match accepted.tracker {
            Some(tracker) => tokio::spawn(tracker.track_future(read)),
            None => tokio::spawn(read),
        };
        conn
    }

    pub fn id(&self) -> u64 {
        self.shared.id
    }

    pub fn peer(&self) -> SocketAddr {
        self.shared.peer
    }

    pub fn local(&self) -> SocketAddr {
        self.shared.local
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Resolves when the connection has closed.
    pub async fn closed(&self) {
        self.shared.closed.cancelled().await
    }

    pub fn close(&self) {
        self.shared.closed.cancel()
    }

    /// Sends a request and waits for its response.
    pub async fn request(
        &self,
        mut cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, RemotingError> {
        let opaque = next_opaque();
        cmd.opaque = opaque;
        cmd.flag &= !(FLAG_RESPONSE | FLAG_ONEWAY);
        let (tx, rx) = oneshot::channel();
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(opaque, tx);
        let _forget = PendingGuard {
            shared: &self.shared,
            opaque,
        };
        if self.is_closed() {
            return Err(RemotingError::ConnectionClosed);
        }
        let exchange = async {
            self.shared
                .outbound
                .send(cmd)
                .await
                .map_err(|_| RemotingError::ConnectionClosed)?;
            rx.await.map_err(|_| RemotingError::ConnectionClosed)
        };
        tokio::select! {
            result = tokio::time::timeout(timeout, exchange) => result.unwrap_or(Err(RemotingError::Timeout(timeout))),
            _ = self.shared.closed.cancelled() => Err(RemotingError::ConnectionClosed),
        }
    }

    /// Sends a request flagged one-way; no response is expected.
    pub async fn oneway(&self, mut cmd: RemotingCommand) -> Result<(), RemotingError> {
        cmd.opaque = next_opaque();
        cmd.flag = (cmd.flag & !FLAG_RESPONSE) | FLAG_ONEWAY;
        self.send_raw(cmd).await
    }

    /// Queues a command exactly as given (used for responses).
    async fn send_raw(&self, cmd: RemotingCommand) -> Result<(), RemotingError> {
        if self.is_closed() {
            return Err(RemotingError::ConnectionClosed);
        }
        self.shared
            .outbound
            .send(cmd)
            .await
            .map_err(|_| RemotingError::ConnectionClosed)
    }
}

/// What a server gives the connections it accepts (nothing for a client's).
struct Accepted {
    idle_timeout: Option<Duration>,
    /// The connection's slot of the server's limit, freed when it closes.
    permit: Option<OwnedSemaphorePermit>,
    /// The server waits for the connection's read loop at shutdown.
    tracker: Option<TaskTracker>,
}

impl Accepted {
    fn none() -> Self {
        Accepted {
            idle_timeout: None,
            permit: None,
            tracker: None,
        }
    }
}

/// Milliseconds since the first call, read once per read or write batch of
/// a server's connection (a vDSO clock read, no syscall) to spot idle ones.
fn coarse_now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// When a connection last read or wrote something, for the idle timeout of
/// server connections (Java's `IdleStateHandler` on all-idle). Not kept for
/// client connections.
struct Activity {
    tracked: bool,
    last_ms: AtomicU64,
}

impl Activity {
    fn new(tracked: bool) -> Self {
        Activity {
            tracked,
            last_ms: AtomicU64::new(if tracked { coarse_now_ms() } else { 0 }),
        }
    }

    #[inline]
    fn touch(&self) {
        if self.tracked {
            self.last_ms.store(coarse_now_ms(), Ordering::Relaxed);
        }
    }
}

/// One timer per server connection, re-armed from the last activity when it
/// fires; never fires for a connection without an idle timeout.
struct IdleTimer {
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    fn new(limit: Option<Duration>) -> Self {
        IdleTimer {
            limit: limit.unwrap_or_default(),
            sleep: limit.map(|d| Box::pin(tokio::time::sleep(d))),
        }
    }

    /// Resolves once the connection has neither read nor written for the
    /// limit. Cancel-safe: the deadline lives in `self`.
    async fn expired(&mut self, activity: &Activity) {
        let Some(sleep) = self.sleep.as_mut() else {
            return std::future::pending().await;
        };
        let limit_ms = u64::try_from(self.limit.as_millis()).unwrap_or(u64::MAX);
        loop {
            sleep.as_mut().await;
            let idle_ms = coarse_now_ms().saturating_sub(activity.last_ms.load(Ordering::Relaxed));
            if idle_ms >= limit_ms {
                return;
            }
            let deadline = Instant::now() + Duration::from_millis(limit_ms - idle_ms);
            sleep.as_mut().reset(deadline);
        }
    }
}

/// Drops a waiting request's slot however the wait ends.
struct PendingGuard<'a> {
    shared: &'a Shared,
    opaque: i32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.opaque);
    }
}

/// The write half of a connection, shared by the read loop, which writes its
/// answers straight to the socket (no task hop; one write per batch of
/// requests read, or per batch of waiting answers that became ready
/// together), and the write task, which writes everything else (requests we
/// send) and whatever the read loop could not write without waiting.
///
/// Whoever writes takes `io` out for the duration; the other side then
/// appends whole frames to `pending` instead. Whoever puts `io` back checks
/// `pending` under the same lock, so no frame is lost or interleaved with
/// another; frames may leave in a different order than they were produced,
/// which RocketMQ allows (responses are matched by `opaque`).
struct WriteSide<W> {
    state: Mutex<WriteState<W>>,
    /// The write task has work: bytes in `pending` or a flush owed.
    wake: Notify,
    /// The write task emptied `pending` (for a read loop over the high mark).
    drained: Notify,
    /// Last read or write, for the idle timeout.
    activity: Activity,
}

struct WriteState<W> {
    /// `None` while the read loop or the write task is writing.
    io: Option<W>,
    /// Whole encoded frames waiting for the write task.
    pending: BytesMut,
    /// Bytes were written without a completed flush.
    flush_owed: bool,
}

impl<W> WriteSide<W> {
    fn new(io: W, track_activity: bool) -> Self {
        WriteSide {
            state: Mutex::new(WriteState {
                io: Some(io),
                pending: BytesMut::new(),
                flush_owed: false,
            }),
            wake: Notify::new(),
            drained: Notify::new(),
            activity: Activity::new(track_activity),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WriteState<W>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `pending` grows past this only while the peer does not read; the read
/// loop then stops reading until the write task has caught up.
const PENDING_HIGH_WATER: usize = 8 * 1024 * 1024;
/// Free space kept in the read buffer before each read.
const READ_SPARE: usize = 32 * 1024;

/// Writes `buf` without waiting for the socket: as much as it takes now; the
/// rest goes to the write task. Clears `buf`. Returns the number of bytes
/// left waiting in `pending`.
async fn write_now<W: AsyncWrite + Unpin>(
    side: &WriteSide<W>,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    let mut io = {
        let mut st = side.lock();
        match st.io.take() {
            Some(io) if st.pending.is_empty() => io,
            other => {
                // Someone else is writing (or the write task is about to):
                // queue behind them.
                let idle = other.is_some();
                st.io = other;
                st.pending.extend_from_slice(buf);
                buf.clear();
                if idle {
                    side.wake.notify_one();
                }
                return Ok(st.pending.len());
            }
        }
    };
    let mut written = 0;
    // Poll once: what the socket takes now, no waiting.
    let result = std::future::poll_fn(|cx| {
        while written < buf.len() {
            match Pin::new(&mut io).poll_write(cx, &buf[written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Ready(Ok(false)),
            }
        }
        match Pin::new(&mut io).poll_flush(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(true)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Ready(Ok(false)),
        }
    })
    .await;
    if written > 0 {
        side.activity.touch();
    }
    let mut st = side.lock();
    let done = match result {
        Ok(done) => done,
        Err(e) => {
            buf.clear();
            return Err(e);
        }
    };
    if !done {
        // The unwritten tail of a frame must go out before anything else.
        let mut rest = BytesMut::with_capacity(buf.len() - written + st.pending.len());
        rest.extend_from_slice(&buf[written..]);
        rest.extend_from_slice(&st.pending);
        st.pending = rest;
        st.flush_owed = true;
    }
    st.io = Some(io);
    if !st.pending.is_empty() || st.flush_owed {
        side.wake.notify_one();
    }
    buf.clear();
    Ok(st.pending.len())
}

async fn write_loop<W: AsyncWrite + Unpin>(
    side: Arc<WriteSide<W>>,
    mut rx: mpsc::Receiver<RemotingCommand>,
    closed: CancellationToken,
    peer: SocketAddr,
) {
    let mut codec = RemotingCodec::default();
    let mut buf = BytesMut::new();
    'outer: loop {
        let first = tokio::select! {
            biased;
            _ = closed.cancelled() => break,
            cmd = rx.recv() => match cmd { Some(cmd) => Some(cmd), None => break },
            _ = side.wake.notified() => None,
        };
        let mut next = first;
        // Encode everything already queued. Before writing, step aside once
        // so that tasks about to queue frames (e.g. many callers each sending
        // one request) can join this write.
        let mut yielded = next.is_none();
        loop {
            while let Some(cmd) = next {
                if let Err(e) = Encoder::<&RemotingCommand>::encode(&mut codec, &cmd, &mut buf) {
                    // Nothing was written for this command; the connection stays usable.
                    warn!(%peer, error = %e, "dropping a command that cannot be encoded");
                }
                next = rx.try_recv().ok();
            }
            if yielded {
                break;
            }
            tokio::task::yield_now().await;
            yielded = true;
            next = rx.try_recv().ok();
        }
        let mut io = {
            let mut st = side.lock();
            match st.io.take() {
                Some(io) => io,
                None => {
                    // The read loop is writing; it wakes us when it is done.
                    st.pending.extend_from_slice(&buf);
                    buf.clear();
                    continue;
                }
            }
        };
        loop {
            {
                let mut st = side.lock();
                if !st.pending.is_empty() {
                    if buf.is_empty() {
                        std::mem::swap(&mut buf, &mut st.pending);
                    } else {
                        // The pending bytes may start with the tail of a
                        // frame partly written: they go first.
                        let mut all = std::mem::take(&mut st.pending);
                        all.extend_from_slice(&buf);
                        buf = all;
                    }
                }
                st.flush_owed = false;
            }
            let written = async {
                io.write_all(&buf).await?;
                io.flush().await
            };
            let result = tokio::select! {
                biased;
                _ = closed.cancelled() => break 'outer,
                r = written => r,
            };
            buf.clear();
            if let Err(e) = result {
                debug!(%peer, error = %e, "write failed");
                break 'outer;
            }
            side.activity.touch();
            let mut st = side.lock();
            if st.pending.is_empty() && !st.flush_owed {
                st.io = Some(io);
                break;
            }
        }
        side.drained.notify_waiters();
    }
    closed.cancel();
    side.drained.notify_waiters();
}

/// An answer that was not ready at once, polled by the read loop: `None`
/// for a oneway request (nothing to write).
type LaterAnswer = Pin<Box<dyn Future<Output = Option<RemotingCommand>> + Send>>;

/// Encodes an answer into the read loop's output buffer.
fn encode_answer(
    codec: &mut RemotingCodec,
    response: &RemotingCommand,
    out: &mut BytesMut,
    peer: SocketAddr,
) {
    if let Err(e) = Encoder::<&RemotingCommand>::encode(codec, response, out) {
        warn!(%peer, error = %e, "dropping a response that cannot be encoded");
    }
}

/// What the read loop does with one request: run its handler and, when the
/// answer is ready at once, encode it into `out` (written once per batch of
/// frames read); answers that take longer are polled by the read loop
/// alongside its reads and written with whatever else is ready then.
fn handle_request(
    conn: &Connection,
    router: &Router,
    cmd: RemotingCommand,
    codec: &mut RemotingCodec,
    out: &mut BytesMut,
) -> Option<LaterAnswer> {
    let oneway = cmd.is_oneway();
    let opaque = cmd.opaque;
    let serialize_type = cmd.serialize_type;
    let mut reply = router.dispatch(conn.clone(), cmd);
    let finish = move |mut response: RemotingCommand| {
        response.opaque = opaque;
        response.flag = (response.flag | FLAG_RESPONSE) & !FLAG_ONEWAY;
        response.serialize_type = serialize_type;
        response
    };
    // Most answers are ready at once (route lookups, offsets, sends).
    match futures::FutureExt::now_or_never(&mut reply) {
        Some(response) => {
            if !oneway {
                encode_answer(codec, &finish(response), out, conn.peer());
            }
            None
        }
        None if oneway => Some(Box::pin(async move {
            reply.await;
            None
        })),
        None => Some(Box::pin(async move { Some(finish(reply.await)) })),
    }
}

/// Reads what is there into `buf`. While `buf` has no allocation (before
/// the connection's first bytes), through a small stack buffer, so that idle
/// connections cost no read buffer (about 4 KiB resident each otherwise).
async fn read_some<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    if buf.capacity() != 0 {
        return reader.read_buf(buf).await;
    }
    let mut first = [0u8; 64];
    let n = reader.read(&mut first).await?;
    if n > 0 {
        buf.reserve(READ_SPARE);
        buf.extend_from_slice(&first[..n]);
    }
    Ok(n)
}

async fn read_loop<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut reader: R,
    conn: Connection,
    router: Arc<Router>,
    side: Arc<WriteSide<W>>,
    idle_timeout: Option<Duration>,
) {
    let mut idle = IdleTimer::new(idle_timeout);
    let mut codec = RemotingCodec::default();
    // Allocated at the first bytes read (see `read_some`): a connection
    // that never sends holds no read buffer.
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    // Answers still to come (held pulls, quorum waits, calls to the peer):
    // polled here, so the answers that become ready together (one quorum
    // round for many sends) are written together, with no task each.
    let mut waiting: FuturesUnordered<LaterAnswer> = FuturesUnordered::new();
    let peer = conn.peer();
    'read: loop {
        // Every complete frame already read, then one write for their answers.
        let mut bad_frame = false;
        loop {
            let cmd = match codec.decode(&mut buf) {
                Ok(Some(cmd)) => cmd,
                Ok(None) => break,
                Err(e) => {
                    warn!(%peer, error = %e, "closing connection after a bad frame");
                    bad_frame = true;
                    break;
                }
            };
            if cmd.is_response() {
                let waiter = conn
                    .shared
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&cmd.opaque);
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(cmd);
                    }
                    None => debug!(%peer, opaque = cmd.opaque, "response matches no request"),
                }
                continue;
            }
            let Some(later) = handle_request(&conn, &router, cmd, &mut codec, &mut out) else {
                continue;
            };
            // At most MAX_IN_FLIGHT_PER_CONNECTION waiting answers: past
            // that, no more reading until one is done.
            while waiting.len() >= MAX_IN_FLIGHT_PER_CONNECTION {
                if !out.is_empty() && write_now(&side, &mut out).await.is_err() {
                    break 'read;
                }
                tokio::select! {
                    _ = conn.shared.closed.cancelled() => break 'read,
                    _ = idle.expired(&side.activity) => {
                        log_idle(peer, idle.limit);
                        break 'read;
                    }
                    Some(answer) = waiting.next() => {
                        if let Some(answer) = answer {
                            encode_answer(&mut codec, &answer, &mut out, peer);
                        }
                    }
                }
            }
            waiting.push(later);
        }
        if !out.is_empty() {
            match write_now(&side, &mut out).await {
                Err(e) => {
                    debug!(%peer, error = %e, "write failed");
                    break;
                }
                Ok(queued) if queued > PENDING_HIGH_WATER => {
                    // The peer is not reading its answers: stop reading its
                    // requests until the write task has caught up.
                    loop {
                        let drained = side.drained.notified();
                        tokio::pin!(drained);
                        drained.as_mut().enable();
                        if side.lock().pending.len() <= PENDING_HIGH_WATER {
                            break;
                        }
                        tokio::select! {
                            _ = conn.shared.closed.cancelled() => break 'read,
                            _ = idle.expired(&side.activity) => {
                                log_idle(peer, idle.limit);
                                break 'read;
                            }
                            _ = drained => {}
                        }
                    }
                }
                Ok(_) => {}
            }
        }
        if bad_frame {
            break;
        }
        if buf.capacity() != 0 && buf.capacity() - buf.len() < READ_SPARE / 4 {
            buf.reserve(READ_SPARE);
        }
        let read = tokio::select! {
            biased;
            _ = conn.shared.closed.cancelled() => break,
            _ = idle.expired(&side.activity) => {
                log_idle(peer, idle.limit);
                break;
            }
            Some(answer) = waiting.next(), if !waiting.is_empty() => {
                // This one and every other answer ready now, then one write
                // (at the top of the loop).
                let mut answer = Some(answer);
                while let Some(a) = answer {
                    if let Some(a) = a {
                        encode_answer(&mut codec, &a, &mut out, peer);
                    }
                    answer = waiting.next().now_or_never().flatten();
                }
                continue 'read;
            }
            // Cancel-safe: bytes are only added once read.
            r = read_some(&mut reader, &mut buf) => r,
        };
        match read {
            Ok(0) => break,
            Ok(_) => side.activity.touch(),
            Err(e) => {
                debug!(%peer, error = %e, "read failed");
                break;
            }
        }
    }
    conn.shared.closed.cancel();
    conn.shared
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    if !waiting.is_empty() {
        // Their answers have nowhere to go, but their handlers finish what
        // they started (a queued put gives its queue offsets back on failure).
        tokio::spawn(async move { while waiting.next().await.is_some() {} });
    }
    debug!(%peer, id = conn.id(), "connection closed");
    for hook in &router.on_close {
        hook(&conn);
    }
}

fn log_idle(peer: SocketAddr, limit: Duration) {
    info!(
        %peer,
        idle_seconds = limit.as_secs_f64(),
        "closing an idle connection: no read or write for serverChannelMaxIdleTimeSeconds"
    );
}

/// Java's `serverChannelMaxIdleTimeSeconds` default.
pub const DEFAULT_IDLE_SECONDS: i64 = 120;

/// Limits of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Connections open at once; past it, new ones wait in the listen
    /// backlog until one closes. `None`: derived when [`serve`] starts from
    /// the open-file limit ([`crate::limits::default_connection_cap`]).
    pub max_connections: Option<usize>,
    /// An accepted connection that neither reads nor writes for this long is
    /// closed (Java's `serverChannelMaxIdleTimeSeconds`, all-idle); `None`:
    /// never. Connections made with [`Connection::connect`] have none.
    pub idle_timeout: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: None,
            idle_timeout: None,
        }
        .with_idle_seconds(DEFAULT_IDLE_SECONDS)
    }
}

impl ServerConfig {
    /// The idle timeout as Java's `serverChannelMaxIdleTimeSeconds`: 0 or
    /// less turns it off (as netty's `IdleStateHandler`).
    pub fn with_idle_seconds(mut self, seconds: i64) -> Self {
        self.idle_timeout = u64::try_from(seconds)
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs);
        self
    }

    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }
}

/// Rate limit of the "cannot accept" WARN line.
const LIMIT_WARN_INTERVAL: Duration = Duration::from_secs(60);

/// When the accept loop logs that it is limited (cap reached or out of
/// descriptors) and that it has recovered: one WARN when it enters the
/// state (at most one a minute, so a server hovering at its cap, each close
/// letting one waiting client in, does not log per connection) and one INFO
/// when it has room again, for each WARN.
struct LimitLog {
    /// Free slots needed to count as recovered (5 % of the cap).
    headroom: usize,
    limited: bool,
    warned: bool,
    last_warn: Option<Instant>,
}

impl LimitLog {
    fn new(headroom: usize) -> Self {
        LimitLog {
            headroom,
            limited: false,
            warned: false,
            last_warn: None,
        }
    }

    /// Entering (or still in) the limited state; true: log the WARN now.
    fn enter(&mut self) -> bool {
        if self.limited {
            return false;
        }
        self.limited = true;
        self.warned = match self.last_warn {
            None => true,
            Some(t) => t.elapsed() >= LIMIT_WARN_INTERVAL,
        };
        if self.warned {
            self.last_warn = Some(Instant::now());
        }
        self.warned
    }

    /// A connection was accepted with `free` slots left; true: log that the
    /// server accepts again.
    fn leave(&mut self, free: usize) -> bool {
        if !self.limited || free < self.headroom {
            return false;
        }
        self.limited = false;
        std::mem::take(&mut self.warned)
    }
}

/// Accept errors that mean the process (or system) is out of descriptors or
/// memory: they last until connections close, so the loop backs off.
fn out_of_resources(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        )
    }
    #[cfg(not(unix))]
    {
        e.raw_os_error().is_some()
    }
}

/// Accepts connections until `shutdown` is cancelled, then closes them all
/// and returns once every connection task has finished.
///
/// At the connection limit (or when accept fails for lack of descriptors)
/// new connections wait in the listen backlog; one WARN line says so when
/// the server enters that state and one INFO line when it accepts again.
pub async fn serve(
    listener: TcpListener,
    router: Arc<Router>,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let max = config
        .max_connections
        .unwrap_or_else(crate::limits::default_connection_cap)
        .clamp(1, Semaphore::MAX_PERMITS);
    let limit = Arc::new(Semaphore::new(max));
    let open = |limit: &Semaphore| max - limit.available_permits();
    let tracker = TaskTracker::new();
    info!(
        %local,
        max_connections = max,
        idle_seconds = config.idle_timeout.map_or(0, |d| d.as_secs()),
        "accepting connections"
    );
    let mut limits = LimitLog::new((max / 20).max(1));
    loop {
        let permit = match limit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => break,
            Err(TryAcquireError::NoPermits) => {
                if limits.enter() {
                    warn!(
                        %local,
                        max_connections = max,
                        "connection limit reached: new connections wait until open ones close"
                    );
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                }
            }
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) if out_of_resources(&e) => {
                if limits.enter() {
                    warn!(
                        %local,
                        error = %e,
                        open_connections = open(&limit) - 1,
                        "cannot accept connections (out of file descriptors?): retrying until some close"
                    );
                }
                drop(permit);
                // The pending connection stays in the backlog: back off
                // instead of spinning on it.
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
            Err(e) => {
                // Per-connection failures (e.g. aborted before accept).
                debug!(%local, error = %e, "accept failed");
                continue;
            }
        };
        if limits.leave(limit.available_permits()) {
            info!(%local, open_connections = open(&limit), "accepting connections again");
        }
        let _ = stream.set_nodelay(true);
        let local_addr = stream.local_addr().unwrap_or(local);
        let (r, w) = stream.into_split();
        let conn = Connection::spawn_with(
            r,
            w,
            peer,
            local_addr,
            router.clone(),
            shutdown.clone(),
            Accepted {
                idle_timeout: config.idle_timeout,
                permit: Some(permit),
                tracker: Some(tracker.clone()),
            },
        );
        debug!(%peer, id = conn.id(), "connection accepted");
    }
    tracker.close();
    tracker.wait().await;
    info!(%local, "server stopped");
    Ok(())
}

/// Binds a listener like Java's Netty server: SO_REUSEADDR on (a restarted
/// server takes its port back at once) and a listen backlog of `backlog`
/// (Java's `serverSocketBacklog`, 1024; tokio's `TcpListener::bind` uses
/// 128, which a burst of connects overflows).
pub async fn bind(host: &str, port: u16, backlog: u32) -> std::io::Result<TcpListener> {
    let addr = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!("{host} resolves to no address"),
            )
        })?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog.max(1))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod limit_log_tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_warn_per_episode_at_most_one_a_minute() {
        let mut log = LimitLog::new(2);
        assert!(log.enter(), "the first limit is logged");
        assert!(!log.enter(), "still limited: nothing more");
        assert!(!log.leave(1), "one free slot is not recovery");
        assert!(!log.enter());
        assert!(log.leave(2), "recovery is logged once");
        assert!(!log.leave(10));
        // Hovering at the cap: limited again within the minute, silently.
        assert!(!log.enter());
        assert!(!log.leave(5), "no recovery line for an unlogged episode");
        tokio::time::advance(LIMIT_WARN_INTERVAL).await;
        assert!(log.enter(), "a minute later it is logged again");
        assert!(log.leave(3));
    }
}
