//! The server: limits, the accept loop, binding and shutdown signals.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, TryAcquireError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::connection::Accepted;
use super::{Connection, Router};

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
