//! Committed-entry dispatch: every committed entry, in index order, to the
//! store's consume queues and index, and how far that has got.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use dledger::server::DLedgerServer;
use dledger::LogIndex;
use store::{CommitLogOffset, MessageStore};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Most committed entries handed to one blocking dispatch call.
const DISPATCH_BATCH: usize = 256;

/// Shared between the dispatcher and the role handler.
#[derive(Debug)]
pub struct DispatchState {
    /// Index of the last dispatched entry (-1 = none).
    pub(super) dispatched_index: AtomicI64,
}

impl DispatchState {
    /// The last dispatched entry ([`LogIndex::NONE`] = none yet).
    pub(super) fn dispatched(&self) -> LogIndex {
        LogIndex(self.dispatched_index.load(Ordering::Acquire))
    }

    fn set_dispatched(&self, index: LogIndex) {
        self.dispatched_index.store(index.get(), Ordering::Release);
    }
}

/// Feeds committed entries to the store's consume queues and index, from
/// the log's first entry, until shutdown.
pub async fn dispatch_loop(
    server: Arc<DLedgerServer>,
    store: MessageStore,
    state: Arc<DispatchState>,
    shutdown: CancellationToken,
) {
    let mut committed = server.subscribe_committed();
    let mut next = match server.ledger().await {
        Ok(l) => l.begin_index.max(LogIndex(0)),
        Err(_) => return,
    };
    loop {
        let target = *committed.borrow_and_update();
        while next <= target {
            // Up to DISPATCH_BATCH committed entries, then one blocking
            // call dispatches them all (in index order).
            let entries = match server.get_committed_range(next, DISPATCH_BATCH).await {
                Ok(e) => e,
                Err(_) => return,
            };
            if entries.is_empty() {
                // Below the log's start (files expired): skip ahead.
                match server.ledger().await {
                    Ok(l) if l.begin_index > next => {
                        next = l.begin_index;
                        continue;
                    }
                    _ => break,
                }
            }
            next = next.plus(entries.len() as i64);
            let Some(last_index) = entries.last().map(|e| LogIndex(e.index)) else {
                break;
            };
            let store2 = store.clone();
            let r = tokio::task::spawn_blocking(move || {
                for e in &entries {
                    if let Err(err) = store2.dispatch_replicated(CommitLogOffset(e.body_pos()), &e.body) {
                        warn!(index = e.index, pos = e.pos, error = %err, "DLedger entry is not a message; not dispatched");
                    }
                }
            })
            .await;
            if r.is_err() {
                return;
            }
            state.set_dispatched(last_index);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = committed.changed() => if r.is_err() { return },
        }
    }
}
