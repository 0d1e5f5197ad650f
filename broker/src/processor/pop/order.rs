//! Orderly pop state per topic@group@queue (Java `ConsumerOrderInfoManager`,
//! kept in memory only): the batch last popped, which of it is acked and
//! until when the queue is blocked. A queue is popped again only once every
//! message of its batch is acked or the batch's invisible time is over;
//! then it starts from the committed offset, so un-acked messages come
//! again in order with their delivery count (`orderCountInfo`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

#[derive(Debug, Default)]
struct OrderInfo {
    attempt_id: Option<String>,
    pop_time: i64,
    next_visible: i64,
    offsets: Vec<i64>,
    acked: BTreeSet<i64>,
    /// Deliveries before this one, per offset.
    counts: HashMap<i64, i32>,
}

impl OrderInfo {
    fn pending(&self) -> bool {
        self.offsets.iter().any(|o| !self.acked.contains(o))
    }
}

#[derive(Default)]
pub struct OrderTable {
    inner: Mutex<HashMap<String, OrderInfo>>,
}

fn key(topic: &str, group: &str, queue_id: i32) -> String {
    format!("{topic}@{group}@{queue_id}")
}

impl OrderTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, OrderInfo>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Java `checkBlock`: a batch is out, not all acked and still
    /// invisible. The same attempt id (a client retrying its pop) is not
    /// blocked.
    pub fn blocked(
        &self,
        topic: &str,
        group: &str,
        queue_id: i32,
        attempt: Option<&str>,
        now: i64,
    ) -> bool {
        let t = self.lock();
        let Some(i) = t.get(&key(topic, group, queue_id)) else {
            return false;
        };
        if let (Some(a), Some(b)) = (attempt, i.attempt_id.as_deref()) {
            if !a.is_empty() && a == b {
                return false;
            }
        }
        i.pending() && now < i.next_visible
    }

    /// A new batch; returns each message's earlier delivery count.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &self,
        topic: &str,
        group: &str,
        queue_id: i32,
        attempt_id: Option<String>,
        pop_time: i64,
        invisible_time: i64,
        offsets: &[i64],
    ) -> Vec<i32> {
        let mut t = self.lock();
        let i = t.entry(key(topic, group, queue_id)).or_default();
        let counts: Vec<i32> = offsets
            .iter()
            .map(|o| i.counts.get(o).map_or(0, |c| c + 1))
            .collect();
        i.counts = offsets
            .iter()
            .copied()
            .zip(counts.iter().copied())
            .collect();
        i.attempt_id = attempt_id;
        i.pop_time = pop_time;
        i.next_visible = pop_time.saturating_add(invisible_time);
        i.offsets = offsets.to_vec();
        i.acked.clear();
        counts
    }

    /// Java `commitAndNext`: marks `offset` acked and returns the offset to
    /// commit (the first un-acked one, or past the batch).
    pub fn ack(&self, topic: &str, group: &str, queue_id: i32, offset: i64) -> Option<i64> {
        let mut t = self.lock();
        let i = t.get_mut(&key(topic, group, queue_id))?;
        if !i.offsets.contains(&offset) {
            return None;
        }
        i.acked.insert(offset);
        match i.offsets.iter().find(|o| !i.acked.contains(o)) {
            Some(first) => Some(*first),
            None => i.offsets.iter().max().map(|m| m + 1),
        }
    }

    /// Java `updateNextVisibleTime`.
    pub fn set_next_visible(
        &self,
        topic: &str,
        group: &str,
        queue_id: i32,
        pop_time: i64,
        next_visible: i64,
    ) {
        let mut t = self.lock();
        if let Some(i) = t.get_mut(&key(topic, group, queue_id)) {
            if i.pop_time == pop_time {
                i.next_visible = next_visible;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_blocks_until_acked_or_invisible_time_is_over() {
        let t = OrderTable::default();
        assert!(!t.blocked("T", "g", 0, None, 0));
        assert_eq!(
            t.update("T", "g", 0, None, 1000, 500, &[3, 4, 5]),
            vec![0, 0, 0]
        );
        assert!(t.blocked("T", "g", 0, None, 1200));
        assert!(!t.blocked("T", "g", 0, None, 1500));
        assert_eq!(t.ack("T", "g", 0, 4), Some(3));
        assert_eq!(t.ack("T", "g", 0, 3), Some(5));
        assert!(t.blocked("T", "g", 0, None, 1200));
        assert_eq!(t.ack("T", "g", 0, 5), Some(6));
        assert!(!t.blocked("T", "g", 0, None, 1200));
        // Re-delivery after the invisible time counts up.
        assert_eq!(t.update("T", "g", 0, None, 2000, 500, &[6, 7]), vec![0, 0]);
        assert_eq!(
            t.update("T", "g", 0, Some("a".into()), 3000, 500, &[6, 7]),
            vec![1, 1]
        );
        assert!(!t.blocked("T", "g", 0, Some("a"), 3100));
        assert!(t.blocked("T", "g", 0, Some("b"), 3100));
        t.set_next_visible("T", "g", 0, 3000, 3050);
        assert!(!t.blocked("T", "g", 0, None, 3100));
    }
}
