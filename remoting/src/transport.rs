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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite};
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
        tokio::spawn(write_loop(writer, rx, closed, peer));
        tokio::spawn(read_loop(reader, conn.clone(), router));
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

async fn write_loop<W: AsyncWrite + Unpin>(
    writer: W,
    mut rx: mpsc::Receiver<RemotingCommand>,
    closed: CancellationToken,
    peer: SocketAddr,
) {
    let mut framed = FramedWrite::new(writer, RemotingCodec::default());
    'outer: loop {
        let first = tokio::select! {
            biased;
            _ = closed.cancelled() => break,
            cmd = rx.recv() => match cmd { Some(cmd) => cmd, None => break },
        };
        let mut next = Some(first);
        // Write everything already queued, then flush once. Before flushing,
        // step aside once so that tasks about to queue frames (e.g. many
        // callers each sending one request) can join this write.
        let mut yielded = false;
        loop {
            while let Some(cmd) = next {
                match framed.feed(cmd).await {
                    Ok(()) => {}
                    Err(RemotingError::Io(e)) => {
                        debug!(%peer, error = %e, "write failed");
                        break 'outer;
                    }
                    // Nothing was written for this command; the connection stays usable.
                    Err(e) => warn!(%peer, error = %e, "dropping a command that cannot be encoded"),
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
        if let Err(e) = SinkExt::<RemotingCommand>::flush(&mut framed).await {
            debug!(%peer, error = %e, "flush failed");
            break;
        }
    }
    closed.cancel();
}

async fn read_loop<R: AsyncRead + Unpin>(reader: R, conn: Connection, router: Arc<Router>) {
    let mut framed = FramedRead::new(reader, RemotingCodec::default());
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_CONNECTION));
    let peer = conn.peer();
    loop {
        let next = tokio::select! {
            biased;
            _ = conn.shared.closed.cancelled() => break,
            frame = framed.next() => frame,
        };
        let cmd = match next {
            None => break,
            Some(Err(e)) => {
                warn!(%peer, error = %e, "closing connection after a bad frame");
                break;
            }
            Some(Ok(cmd)) => cmd,
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
        let permit = tokio::select! {
            _ = conn.shared.closed.cancelled() => break,
            p = in_flight.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let oneway = cmd.is_oneway();
        let opaque = cmd.opaque;
        let serialize_type = cmd.serialize_type;
        let reply = router.dispatch(conn.clone(), cmd);
        let conn = conn.clone();
        let mut respond = Box::pin(async move {
            let mut response = reply.await;
            drop(permit);
            if oneway {
                return;
            }
            response.opaque = opaque;
            response.flag = (response.flag | FLAG_RESPONSE) & !FLAG_ONEWAY;
            response.serialize_type = serialize_type;
            let _ = conn.send_raw(response).await;
        });
        // Most answers are ready at once (route lookups, offsets, sends): finish
        // those here rather than paying for a task; only waiting ones (held
        // pulls, callbacks to the peer) get their own task.
        if futures::FutureExt::now_or_never(&mut respond).is_none() {
            tokio::spawn(respond);
        }
    }
    conn.shared.closed.cancel();
    conn.shared
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    debug!(%peer, id = conn.id(), "connection closed");
    for hook in &router.on_close {
        hook(&conn);
    }
}

/// Limits of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 16 * 1024,
        }
    }
}

/// Accepts connections until `shutdown` is cancelled, then closes them all
/// and returns once every connection task has finished.
pub async fn serve(
    listener: TcpListener,
    router: Arc<Router>,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let tracker = TaskTracker::new();
    info!(%local, "accepting connections");
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                warn!(%local, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let local_addr = stream.local_addr().unwrap_or(local);
        let (r, w) = stream.into_split();
        let conn = Connection::spawn(r, w, peer, local_addr, router.clone(), shutdown.clone());
        debug!(%peer, id = conn.id(), "connection accepted");
        tracker.spawn(async move {
            conn.closed().await;
            drop(permit);
        });
    }
    tracker.close();
    tracker.wait().await;
    info!(%local, "server stopped");
    Ok(())
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
