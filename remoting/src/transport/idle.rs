//! The idle timeout of server connections: last activity and one timer.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

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
pub(super) struct Activity {
    tracked: bool,
    last_ms: AtomicU64,
}

impl Activity {
    pub(super) fn new(tracked: bool) -> Self {
        Activity {
            tracked,
            last_ms: AtomicU64::new(if tracked { coarse_now_ms() } else { 0 }),
        }
    }

    #[inline]
    pub(super) fn touch(&self) {
        if self.tracked {
            self.last_ms.store(coarse_now_ms(), Ordering::Relaxed);
        }
    }
}

/// One timer per server connection, re-armed from the last activity when it
/// fires; never fires for a connection without an idle timeout.
pub(super) struct IdleTimer {
    pub(super) limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    pub(super) fn new(limit: Option<Duration>) -> Self {
        IdleTimer {
            limit: limit.unwrap_or_default(),
            sleep: limit.map(|d| Box::pin(tokio::time::sleep(d))),
        }
    }

    /// Resolves once the connection has neither read nor written for the
    /// limit. Cancel-safe: the deadline lives in `self`.
    pub(super) async fn expired(&mut self, activity: &Activity) {
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
