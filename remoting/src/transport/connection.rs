//! [`Connection`]: a handle to one live connection, its request/response
//! matching by `opaque`, and the start of its read loop and write task.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::read_loop::read_loop;
use super::write::{write_loop, WriteSide};
use super::Router;
use crate::command::{RemotingCommand, FLAG_ONEWAY, FLAG_RESPONSE};
use crate::error::RemotingError;

/// Frames queued for writing on one connection before senders wait.
const OUTBOUND_QUEUE: usize = 4096;

static NEXT_OPAQUE: AtomicI32 = AtomicI32::new(1);
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

fn next_opaque() -> i32 {
    NEXT_OPAQUE.fetch_add(1, Ordering::Relaxed)
}

pub(super) struct Shared {
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    /// Boxed: an idle connection's channel preallocates a block of 32 slots,
    /// which would be 32 whole commands (about 5 KiB) per connection.
    outbound: mpsc::Sender<Box<RemotingCommand>>,
    pub(super) pending: Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>,
    pub(super) closed: CancellationToken,
}

/// A handle to one live connection; cheap to clone, compared by identity.
#[derive(Clone)]
pub struct Connection {
    pub(super) shared: Arc<Shared>,
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
    pub(super) fn spawn_with<R, W>(
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
                .send(Box::new(cmd))
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
            .send(Box::new(cmd))
            .await
            .map_err(|_| RemotingError::ConnectionClosed)
    }
}

/// What a server gives the connections it accepts (nothing for a client's).
pub(super) struct Accepted {
    pub(super) idle_timeout: Option<Duration>,
    /// The connection's slot of the server's limit, freed when it closes.
    pub(super) permit: Option<OwnedSemaphorePermit>,
    /// The server waits for the connection's read loop at shutdown.
    pub(super) tracker: Option<TaskTracker>,
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
