//! The proxy's remoting connections: one kept-open connection per name
//! server or broker address, opened on first use and again after it closes
//! (Java's `MQClientAPIFactory` over `NettyRemotingClient`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use remoting::{response_code, Connection, RemotingCommand, Router};
use tokio::sync::Mutex;
use tracing::debug;

use super::error::ClusterError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Connections by address; requests the peers send us go to `router`
/// (CHECK_TRANSACTION_STATE from brokers on the transaction connection).
pub struct Clients {
    router: Arc<Router>,
    conns: Mutex<HashMap<String, Connection>>,
}

impl Clients {
    pub fn new(router: Arc<Router>) -> Self {
        Clients {
            router,
            conns: Mutex::new(HashMap::new()),
        }
    }

    /// The open connection to `addr`, dialled if there is none.
    pub async fn connection(&self, addr: &str) -> Result<Connection, ClusterError> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(addr) {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let connect = Connection::connect(addr.to_owned(), self.router.clone());
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(source)) => {
                conns.remove(addr);
                return Err(ClusterError::Connect {
                    addr: addr.to_owned(),
                    source,
                });
            }
            Err(_) => {
                conns.remove(addr);
                return Err(ClusterError::Connect {
                    addr: addr.to_owned(),
                    source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
                });
            }
        };
        debug!(%addr, "connected");
        conns.insert(addr.to_owned(), conn.clone());
        Ok(conn)
    }

    /// Sends `cmd` to `addr` and returns the response, whatever its code.
    pub async fn invoke(
        &self,
        addr: &str,
        cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, ClusterError> {
        let conn = self.connection(addr).await?;
        conn.request(cmd, timeout)
            .await
            .map_err(|source| ClusterError::Remoting {
                addr: addr.to_owned(),
                source,
            })
    }

    /// [`Clients::invoke`], and any code but SUCCESS is an error.
    pub async fn invoke_ok(
        &self,
        addr: &str,
        cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, ClusterError> {
        let response = self.invoke(addr, cmd, timeout).await?;
        if response.code != response_code::SUCCESS {
            return Err(refused(addr, &response));
        }
        Ok(response)
    }

    /// A one-way request (no answer awaited).
    pub async fn oneway(&self, addr: &str, cmd: RemotingCommand) -> Result<(), ClusterError> {
        let conn = self.connection(addr).await?;
        conn.oneway(cmd)
            .await
            .map_err(|source| ClusterError::Remoting {
                addr: addr.to_owned(),
                source,
            })
    }

    pub async fn close_all(&self) {
        for (_, c) in self.conns.lock().await.drain() {
            c.close();
        }
    }
}

pub fn refused(addr: &str, response: &RemotingCommand) -> ClusterError {
    ClusterError::Refused {
        addr: addr.to_owned(),
        code: response.code,
        remark: response.remark.clone().unwrap_or_default(),
    }
}
