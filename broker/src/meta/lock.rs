//! Queue locks for orderly consumers (`RebalanceLockManager`): one owner
//! client per (group, queue); a lock not refreshed for 60 s is free again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use remoting::body::MessageQueue;

/// Java `rocketmq.broker.rebalance.lockMaxLiveTime`.
pub const LOCK_MAX_LIVE_TIME: Duration = Duration::from_secs(60);

struct LockEntry {
    client_id: String,
    last_update: Instant,
}

#[derive(Default)]
pub struct RebalanceLockManager {
    table: Mutex<HashMap<String, HashMap<MessageQueue, LockEntry>>>,
    max_live: Option<Duration>,
}

impl RebalanceLockManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// A manager with a custom expiry (tests).
    #[cfg(test)]
    fn with_max_live(max_live: Duration) -> Self {
        RebalanceLockManager {
            max_live: Some(max_live),
            ..Default::default()
        }
    }

    /// Locks what is free, expired or already ours; returns every queue of
    /// `mqs` now held by `client_id`.
    pub fn try_lock_batch(
        &self,
        group: &str,
        mqs: &[MessageQueue],
        client_id: &str,
    ) -> Vec<MessageQueue> {
        let max_live = self.max_live.unwrap_or(LOCK_MAX_LIVE_TIME);
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let locks = table.entry(group.to_owned()).or_default();
        let mut out = Vec::new();
        for mq in mqs {
            match locks.get_mut(mq) {
                Some(e) if e.client_id == client_id => {
                    e.last_update = now;
                    out.push(mq.clone());
                }
                Some(e) if now.duration_since(e.last_update) > max_live => {
                    e.client_id = client_id.to_owned();
                    e.last_update = now;
                    out.push(mq.clone());
                }
                Some(_) => {}
                None => {
                    locks.insert(
                        mq.clone(),
                        LockEntry {
                            client_id: client_id.to_owned(),
                            last_update: now,
                        },
                    );
                    out.push(mq.clone());
                }
            }
        }
        out
    }

    /// No queue of `group` is locked (Java `isLockAllExpired`).
    pub fn is_lock_all_expired(&self, group: &str) -> bool {
        let max_live = self.max_live.unwrap_or(LOCK_MAX_LIVE_TIME);
        let now = Instant::now();
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.get(group).is_none_or(|locks| {
            locks
                .values()
                .all(|e| now.duration_since(e.last_update) > max_live)
        })
    }

    /// Releases the queues `client_id` holds.
    pub fn unlock_batch(&self, group: &str, mqs: &[MessageQueue], client_id: &str) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(locks) = table.get_mut(group) {
            for mq in mqs {
                if locks.get(mq).is_some_and(|e| e.client_id == client_id) {
                    locks.remove(mq);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mq(q: i32) -> MessageQueue {
        MessageQueue {
            broker_name: "b".into(),
            queue_id: q,
            topic: "T".into(),
        }
    }

    #[test]
    fn owner_refreshes_others_wait_until_expiry() {
        let m = RebalanceLockManager::with_max_live(Duration::from_millis(0));
        let strict = RebalanceLockManager::new();
        assert_eq!(strict.try_lock_batch("g", &[mq(0), mq(1)], "c1").len(), 2);
        assert_eq!(
            strict.try_lock_batch("g", &[mq(1), mq(2)], "c2"),
            vec![mq(2)]
        );
        assert_eq!(strict.try_lock_batch("g", &[mq(1)], "c1"), vec![mq(1)]);
        strict.unlock_batch("g", &[mq(1), mq(2)], "c1");
        assert_eq!(
            strict.try_lock_batch("g", &[mq(1), mq(2)], "c2"),
            vec![mq(1), mq(2)]
        );
        // Another group is independent.
        assert_eq!(strict.try_lock_batch("g2", &[mq(0)], "c2"), vec![mq(0)]);

        m.try_lock_batch("g", &[mq(0)], "c1");
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(
            m.try_lock_batch("g", &[mq(0)], "c2"),
            vec![mq(0)],
            "expired lock is taken over"
        );
    }
}
