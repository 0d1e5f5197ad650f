//! Delivery of NOTIFY_BROKER_ROLE_CHANGED (1008) and the retries of a
//! controller-triggered election, as Java's `ControllerManager` does them.
//!
//! * [`Notifier`]: one pending send per broker address; a notification
//!   with a greater `masterEpoch` cancels an older one still pending for
//!   the same address (Java's `NotifyService`), so a broker stuck behind a
//!   slow connect is not told about a master that is already gone. A
//!   notification with an epoch not greater than the pending one is sent
//!   as well and cancels nothing.
//! * [`retry_election`]: `triggerElectMaster`, up to
//!   `electMasterMaxRetryCount` attempts, each given at most 3 s.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::AbortHandle;
use tracing::{debug, warn};

/// How long one controller-triggered election attempt is waited for
/// (`triggerElectMaster0(..).get(3, SECONDS)`).
pub(crate) const ELECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

struct Pending {
    master_epoch: i32,
    id: u64,
    task: AbortHandle,
}

/// The pending 1008 sends, by broker address.
#[derive(Default)]
pub(crate) struct Notifier {
    pending: Mutex<HashMap<String, Pending>>,
    next_id: AtomicU64,
}

impl Notifier {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `send` (one 1008 to `addr` for `master_epoch`) in its own task.
    /// Must be called inside a tokio runtime.
    pub(crate) fn notify<F>(self: &Arc<Self>, addr: &str, master_epoch: i32, send: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // The lock is held until the new entry is in, so the task cannot
        // finish and clean up before it is registered.
        let mut pending = self.lock();
        if let Some(old) = pending.get(addr) {
            if master_epoch > old.master_epoch && !old.task.is_finished() {
                debug!(%addr, old = old.master_epoch, new = master_epoch, "older role-change notification cancelled");
                old.task.abort();
            }
        }
        let me = Arc::clone(self);
        let key = addr.to_owned();
        let task = tokio::spawn(async move {
            send.await;
            let mut pending = me.lock();
            if pending.get(&key).is_some_and(|p| p.id == id) {
                pending.remove(&key);
            }
        });
        pending.insert(
            addr.to_owned(),
            Pending {
                master_epoch,
                id,
                task: task.abort_handle(),
            },
        );
    }

    /// Cancels every pending send (shutdown).
    pub(crate) fn abort_all(&self) {
        for (_, p) in self.lock().drain() {
            p.task.abort();
        }
    }

    #[cfg(test)]
    fn pending_len(&self) -> usize {
        self.lock().len()
    }
}

/// One election attempt's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Code 0: a master was elected (and brokers notified).
    Elected,
    /// Any other answer, or the append failed: try again.
    Failed,
    /// This node no longer serves as leader: stop.
    NotLeader,
}

/// `triggerElectMaster`: up to `max_attempts` (at least one), each
/// abandoned after `per_attempt`; stops at the first [`Attempt::Elected`]
/// or [`Attempt::NotLeader`]. Java retries on every answer but success,
/// 2004 included (each 2004 logs another "no master" event). Returns the
/// attempts made and the last result.
pub(crate) async fn retry_election<F, Fut>(
    broker_name: &str,
    max_attempts: i32,
    per_attempt: Duration,
    mut attempt: F,
) -> (u32, Attempt)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt>,
{
    let max = u32::try_from(max_attempts).unwrap_or(0).max(1);
    let mut last = Attempt::Failed;
    for n in 0..max {
        last = match tokio::time::timeout(per_attempt, attempt(n)).await {
            Ok(result) => result,
            Err(_) => {
                warn!(%broker_name, attempt = n, "controller-triggered election timed out");
                Attempt::Failed
            }
        };
        if last != Attempt::Failed {
            return (n + 1, last);
        }
    }
    (max, last)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    /// A send that completes when told to, and reports whether it finished
    /// or was dropped (cancelled).
    fn gated_send() -> (
        impl Future<Output = ()> + Send + 'static,
        oneshot::Sender<()>,
        oneshot::Receiver<bool>,
    ) {
        let (go_tx, go_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel::<bool>();
        let fut = async move {
            let _ = go_rx.await;
            let _ = done_tx.send(true);
        };
        (fut, go_tx, done_rx)
    }

    #[tokio::test]
    async fn newer_epoch_cancels_older_pending_send() {
        let n = Arc::new(Notifier::default());
        let (old, _old_go, old_done) = gated_send();
        n.notify("a:1", 2, old);
        let (new, new_go, new_done) = gated_send();
        n.notify("a:1", 3, new);
        // The older send was dropped without finishing.
        assert!(old_done.await.is_err());
        new_go.send(()).unwrap();
        assert!(new_done.await.unwrap());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while n.pending_len() != 0 {
            assert!(tokio::time::Instant::now() < deadline, "entry not removed");
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn older_or_equal_epoch_and_other_addresses_cancel_nothing() {
        let n = Arc::new(Notifier::default());
        let (high, high_go, high_done) = gated_send();
        n.notify("a:1", 5, high);
        let (low, low_go, low_done) = gated_send();
        n.notify("a:1", 4, low);
        let (same, same_go, same_done) = gated_send();
        n.notify("a:1", 4, same);
        let (other, other_go, other_done) = gated_send();
        n.notify("b:1", 9, other);
        for go in [high_go, low_go, same_go, other_go] {
            go.send(()).unwrap();
        }
        for done in [high_done, low_done, same_done, other_done] {
            assert!(done.await.unwrap());
        }
    }

    #[tokio::test]
    async fn abort_all_cancels_pending_sends() {
        let n = Arc::new(Notifier::default());
        let (s, _go, done) = gated_send();
        n.notify("a:1", 1, s);
        n.abort_all();
        assert!(done.await.is_err());
        assert_eq!(n.pending_len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn election_retries_each_waited_three_seconds() {
        let start = tokio::time::Instant::now();
        // Every attempt hangs: three attempts, 3 s each.
        let mut seen = Vec::new();
        let (n, last) = retry_election("b", 3, ELECT_ATTEMPT_TIMEOUT, |i| {
            seen.push(i);
            std::future::pending::<Attempt>()
        })
        .await;
        assert_eq!((n, last), (3, Attempt::Failed));
        assert_eq!(seen, [0, 1, 2]);
        assert_eq!(start.elapsed(), Duration::from_secs(9));

        // Failed answers are retried; success stops.
        let (n, last) = retry_election("b", 3, ELECT_ATTEMPT_TIMEOUT, |i| async move {
            if i < 1 {
                Attempt::Failed
            } else {
                Attempt::Elected
            }
        })
        .await;
        assert_eq!((n, last), (2, Attempt::Elected));
        // Losing leadership stops at once; a count below 1 still tries once.
        let (n, last) = retry_election("b", 3, ELECT_ATTEMPT_TIMEOUT, |_| async {
            Attempt::NotLeader
        })
        .await;
        assert_eq!((n, last), (1, Attempt::NotLeader));
        let (n, _) =
            retry_election("b", 0, ELECT_ATTEMPT_TIMEOUT, |_| async { Attempt::Failed }).await;
        assert_eq!(n, 1);
    }
}
