//! Outbound calls to one peer: one remoting connection, dialled on first use
//! and again after it breaks. Every call is bounded by a timeout (DLedger's
//! 3000 ms); the caller turns failures into synthesised responses.

use std::sync::Arc;
use std::time::Duration;

use remoting::{Connection, RemotingCommand, RemotingError, Router};
use tokio::sync::Mutex;

/// DLedger's timeout for every peer and client call (`DLedgerRpcNettyService`).
pub const RPC_TIMEOUT: Duration = Duration::from_millis(3000);

/// A lazily connected client for one address.
pub struct PeerClient {
    addr: String,
    conn: Mutex<Option<Connection>>,
    router: Arc<Router>,
}

impl PeerClient {
    pub fn new(addr: impl Into<String>) -> Self {
        PeerClient {
            addr: addr.into(),
            conn: Mutex::new(None),
            router: Arc::new(Router::new()),
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub(crate) async fn connection(&self, timeout: Duration) -> Result<Connection, RemotingError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let conn = tokio::time::timeout(
            timeout,
            Connection::connect(&self.addr, self.router.clone()),
        )
        .await
        .map_err(|_| RemotingError::Timeout(timeout))?
        .map_err(RemotingError::Io)?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Sends `cmd` and waits for the answer, connecting first if needed; the
    /// whole call takes at most `timeout`.
    pub async fn call(
        &self,
        cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, RemotingError> {
        let started = tokio::time::Instant::now();
        let conn = self.connection(timeout).await?;
        let left = timeout.saturating_sub(started.elapsed());
        let result = conn.request(cmd, left).await;
        if matches!(
            result,
            Err(RemotingError::ConnectionClosed | RemotingError::Io(_))
        ) {
            conn.close();
        }
        result
    }

    /// Closes the connection, if any.
    pub async fn close(&self) {
        if let Some(c) = self.conn.lock().await.take() {
            c.close();
        }
    }
}
