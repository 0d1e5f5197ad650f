//! SYNC_FLUSH group commit: putters wait for one flusher thread to msync
//! past their end offset.

use std::sync::{Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::channel::oneshot;

use super::{lock, Inner};

/// SYNC_FLUSH group commit (Java `GroupCommitService`): putters publish the
/// end offset they need on disk and wait; one flusher thread msyncs up to the
/// commit log's current end, which covers every put appended meanwhile, and
/// wakes them all. Nothing is flushed under the writer lock.
pub(super) struct GroupCommit {
    state: Mutex<GroupState>,
    /// The flusher waits here for requests (and for the next deadline).
    wake: Condvar,
}

#[derive(Default)]
struct GroupState {
    requested: i64,
    flushed: i64,
    stop: bool,
    /// Puts waiting for `flushed` to pass their end.
    waiters: Vec<FlushWaiter>,
}

/// A put waiting for its bytes to be flushed.
struct FlushWaiter {
    end: i64,
    deadline: Instant,
    done: oneshot::Sender<bool>,
}

impl GroupState {
    /// Answers the waiters whose end is flushed (true) or whose deadline
    /// has passed (false).
    fn settle(&mut self, now: Instant) {
        let flushed = self.flushed;
        if self
            .waiters
            .iter()
            .all(|w| w.end > flushed && now < w.deadline)
        {
            return;
        }
        let (settled, waiting): (Vec<FlushWaiter>, Vec<FlushWaiter>) =
            std::mem::take(&mut self.waiters)
                .into_iter()
                .partition(|w| w.end <= flushed || now >= w.deadline);
        self.waiters = waiting;
        for w in settled {
            let _ = w.done.send(w.end <= flushed);
        }
    }
}

impl GroupCommit {
    pub(super) fn new() -> GroupCommit {
        GroupCommit {
            state: Mutex::new(GroupState::default()),
            wake: Condvar::new(),
        }
    }

    pub(super) fn stop(&self) {
        lock(&self.state).stop = true;
        self.wake.notify_all();
    }

    /// Asks for everything below `end` to be flushed: the receiver gets
    /// true once it is, false after `timeout` or when the flusher stopped
    /// first. Nothing blocks: the flusher thread answers.
    pub(super) fn request_flush(&self, end: i64, timeout: Duration) -> oneshot::Receiver<bool> {
        let (done, rx) = oneshot::channel();
        let mut st = lock(&self.state);
        if st.flushed >= end || st.stop {
            let _ = done.send(st.flushed >= end);
            return rx;
        }
        st.requested = st.requested.max(end);
        st.waiters.push(FlushWaiter {
            end,
            deadline: Instant::now() + timeout,
            done,
        });
        drop(st);
        self.wake.notify_one();
        rx
    }

    pub(super) fn run(&self, inner: &Weak<Inner>) {
        loop {
            let stopping = {
                let mut st = lock(&self.state);
                loop {
                    let now = Instant::now();
                    st.settle(now);
                    if st.stop || st.requested > st.flushed {
                        break;
                    }
                    st = match st.waiters.iter().map(|w| w.deadline).min() {
                        Some(d) => {
                            self.wake
                                .wait_timeout(st, d.saturating_duration_since(now))
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .0
                        }
                        None => self
                            .wake
                            .wait(st)
                            .unwrap_or_else(std::sync::PoisonError::into_inner),
                    };
                }
                st.stop
            };
            let result = match inner.upgrade() {
                Some(inner) => inner.commit_log.flush(),
                None => Err(std::io::Error::other("store dropped")),
            };
            let mut st = lock(&self.state);
            match result {
                Ok(end) => st.flushed = st.flushed.max(end),
                Err(e) => {
                    tracing::error!(error = %e, "group commit flush failed");
                    if !stopping {
                        // Back off before retrying; waiters time out meanwhile.
                        st = self
                            .wake
                            .wait_timeout(st, Duration::from_millis(10))
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .0;
                    }
                }
            }
            st.settle(Instant::now());
            if stopping {
                // Whatever is still waiting will not be flushed by us.
                for w in st.waiters.drain(..) {
                    let _ = w.done.send(false);
                }
                return;
            }
        }
    }
}
