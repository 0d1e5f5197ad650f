//! The master-only services (delay levels, timer, transaction check):
//! started on becoming master, stopped and waited for on becoming slave.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

/// Starts the services Java runs only on a master (delay levels, timer,
/// transaction check) on a tracker and a token it is handed.
pub type StartServices = Box<dyn Fn(&TaskTracker, &CancellationToken) + Send + Sync>;

/// The master-only services of a DLedger broker: running while master,
/// stopped (their tasks finished and state persisted) while slave.
pub struct MasterServices {
    start: StartServices,
    parent: CancellationToken,
    running: Option<(CancellationToken, TaskTracker)>,
}

impl MasterServices {
    /// Nothing runs until [`MasterServices::run`]; `parent` stops them too.
    pub fn new(start: StartServices, parent: CancellationToken) -> MasterServices {
        MasterServices {
            start,
            parent,
            running: None,
        }
    }

    #[cfg(test)]
    fn is_running(&self) -> bool {
        self.running.is_some()
    }

    pub(crate) fn run(&mut self) {
        if self.running.is_none() {
            let (token, tasks) = (self.parent.child_token(), TaskTracker::new());
            (self.start)(&tasks, &token);
            self.running = Some((token, tasks));
            info!("master services (delay, timer, transaction check) started");
        }
    }

    pub(crate) async fn stop(&mut self) {
        if let Some((token, tasks)) = self.running.take() {
            token.cancel();
            tasks.close();
            tasks.wait().await;
            info!("master services (delay, timer, transaction check) stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    use super::*;

    /// Master-only services start once, stop (their tasks finished) on
    /// stop, and can start again; the parent token stops them too.
    #[tokio::test]
    async fn master_services_run_and_stop() {
        let live = Arc::new(AtomicI64::new(0));
        let starts = Arc::new(AtomicI64::new(0));
        let (l, st) = (live.clone(), starts.clone());
        let parent = CancellationToken::new();
        let mut m = MasterServices::new(
            Box::new(move |tasks: &TaskTracker, stop: &CancellationToken| {
                st.fetch_add(1, Ordering::SeqCst);
                let (l, stop) = (l.clone(), stop.clone());
                l.fetch_add(1, Ordering::SeqCst);
                tasks.spawn(async move {
                    stop.cancelled().await;
                    l.fetch_sub(1, Ordering::SeqCst);
                });
            }),
            parent.clone(),
        );
        assert!(!m.is_running());
        m.run();
        m.run();
        assert!(m.is_running());
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        m.stop().await;
        assert!(!m.is_running());
        assert_eq!(live.load(Ordering::SeqCst), 0, "stop waits for the tasks");
        m.run();
        assert_eq!(live.load(Ordering::SeqCst), 1);
        parent.cancel();
        m.stop().await;
        assert_eq!(live.load(Ordering::SeqCst), 0);
        assert_eq!(starts.load(Ordering::SeqCst), 2);
    }
}
