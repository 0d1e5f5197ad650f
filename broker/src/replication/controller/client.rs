//! The broker's connections to the controllers (Java `BrokerOuterAPI`'s
//! controller calls): leader discovery through GET_METADATA_INFO (1005) on
//! each controller, calls to the cached leader (rediscovered after
//! CONTROLLER_NOT_LEADER or a failed call), and one-way heartbeats to every
//! controller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use remoting::{Connection, RemotingCommand, Router};
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use super::wire::{self, response};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Java: every controller RPC of the broker waits at most 3 s.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a call to the controller leader failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    #[error("no controller names a leader (asked {0:?})")]
    NoLeader(Vec<String>),
    #[error("controller {addr}: {error}")]
    Transport { addr: String, error: String },
    #[error("controller {addr} answered code {code}: {remark}")]
    Refused {
        addr: String,
        code: i32,
        remark: String,
    },
}

impl ControllerError {
    /// The controller's response code, when it answered.
    pub fn code(&self) -> Option<i32> {
        match self {
            ControllerError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

pub struct ControllerClient {
    addrs: Vec<String>,
    leader: StdMutex<Option<String>>,
    conns: Mutex<HashMap<String, Connection>>,
}

impl ControllerClient {
    pub fn new(addrs: Vec<String>) -> ControllerClient {
        ControllerClient {
            addrs,
            leader: StdMutex::new(None),
            conns: Mutex::new(HashMap::new()),
        }
    }

    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// The leader address learnt last.
    pub fn leader(&self) -> Option<String> {
        self.leader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_leader(&self, addr: Option<String>) {
        *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = addr;
    }

    async fn connection(&self, addr: &str) -> Result<Connection, ControllerError> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(addr) {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let transport = |error: String| ControllerError::Transport {
            addr: addr.to_owned(),
            error,
        };
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(addr, Arc::new(Router::new())),
        )
        .await
        .map_err(|_| transport("connect timed out".into()))?
        .map_err(|e| transport(e.to_string()))?;
        conns.insert(addr.to_owned(), conn.clone());
        Ok(conn)
    }

    async fn forget(&self, addr: &str) {
        if let Some(c) = self.conns.lock().await.remove(addr) {
            c.close();
        }
    }

    /// One request to `addr`; any answer is returned.
    async fn call(
        &self,
        addr: &str,
        req: RemotingCommand,
    ) -> Result<RemotingCommand, ControllerError> {
        let conn = self.connection(addr).await?;
        match conn.request(req, CALL_TIMEOUT).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.forget(addr).await;
                Err(ControllerError::Transport {
                    addr: addr.to_owned(),
                    error: e.to_string(),
                })
            }
        }
    }

    /// GET_METADATA_INFO to each controller until one names a leader.
    pub async fn refresh_leader(&self) -> Result<String, ControllerError> {
        for addr in &self.addrs {
            match self.call(addr, wire::get_metadata()).await {
                Ok(resp) if resp.code == remoting::code::response_code::SUCCESS => {
                    if let Some(leader) = wire::leader_address(&resp) {
                        if self.leader().as_deref() != Some(leader.as_str()) {
                            info!(controller = %addr, %leader, "controller leader");
                        }
                        self.set_leader(Some(leader.clone()));
                        return Ok(leader);
                    }
                }
                Ok(resp) => debug!(controller = %addr, code = resp.code, "metadata refused"),
                Err(e) => debug!(error = %e, "controller metadata failed"),
            }
        }
        self.set_leader(None);
        Err(ControllerError::NoLeader(self.addrs.clone()))
    }

    /// Leader discovery at start-up: up to 3 rounds, 1 s apart (Java).
    pub async fn discover_leader(&self) -> Result<String, ControllerError> {
        let mut last = ControllerError::NoLeader(self.addrs.clone());
        for round in 0..3 {
            if round > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            match self.refresh_leader().await {
                Ok(l) => return Ok(l),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Sends `req` to the leader; code 0 (or one of `accept`) is Ok. After
    /// CONTROLLER_NOT_LEADER or a transport failure the leader is
    /// rediscovered and the request sent once more.
    pub async fn call_leader(
        &self,
        req: RemotingCommand,
        accept: &[i32],
    ) -> Result<RemotingCommand, ControllerError> {
        let mut last = None;
        for attempt in 0..2 {
            let leader = match (attempt, self.leader()) {
                (0, Some(l)) => l,
                _ => self.refresh_leader().await?,
            };
            match self.call(&leader, req.clone()).await {
                Ok(resp) if resp.code == 0 || accept.contains(&resp.code) => return Ok(resp),
                Ok(resp) => {
                    let e = ControllerError::Refused {
                        addr: leader.clone(),
                        code: resp.code,
                        remark: resp.remark.unwrap_or_default(),
                    };
                    if resp.code != response::CONTROLLER_NOT_LEADER {
                        return Err(e);
                    }
                    warn!(controller = %leader, "not the controller leader any more");
                    self.set_leader(None);
                    last = Some(e);
                }
                Err(e) => {
                    self.set_leader(None);
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| ControllerError::NoLeader(self.addrs.clone())))
    }

    /// One-way `req` to every controller (BROKER_HEARTBEAT); an unreachable
    /// one is skipped. Returns how many it went to.
    pub async fn oneway_all(&self, req: &RemotingCommand, timeout: Duration) -> usize {
        let sends = self.addrs.iter().map(|addr| async move {
            let send = async {
                let conn = self.connection(addr).await?;
                conn.oneway(req.clone())
                    .await
                    .map_err(|e| ControllerError::Transport {
                        addr: addr.clone(),
                        error: e.to_string(),
                    })
            };
            match tokio::time::timeout(timeout, send).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    debug!(error = %e, "heartbeat not sent");
                    self.forget(addr).await;
                    false
                }
                Err(_) => {
                    self.forget(addr).await;
                    false
                }
            }
        });
        futures::future::join_all(sends)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count()
    }

    pub async fn close(&self) {
        for (_, c) in self.conns.lock().await.drain() {
            c.close();
        }
    }
}
