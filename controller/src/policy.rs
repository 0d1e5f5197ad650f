//! Master election (Java's `DefaultElectPolicy`, spec controller.md §5),
//! quirks included so decisions match Java's bit for bit.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use crate::heartbeat::{BrokerLiveInfo, HeartbeatTable};

/// What the policy knows about each broker, seen from this node.
pub trait Liveness {
    fn is_alive(&self, cluster: &str, name: &str, id: i64) -> bool;
    /// (epoch, maxOffset, electionPriority) of the latest heartbeat.
    fn rank(&self, cluster: &str, name: &str, id: i64) -> Option<Rank>;
}

/// The heartbeat values the comparator orders by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rank {
    pub epoch: i32,
    pub max_offset: i64,
    pub election_priority: i32,
}

impl<C> From<&BrokerLiveInfo<C>> for Rank {
    fn from(i: &BrokerLiveInfo<C>) -> Self {
        Rank {
            epoch: i.epoch,
            max_offset: i.max_offset,
            election_priority: i.election_priority,
        }
    }
}

/// A heartbeat table read at one instant.
pub struct LiveAt<'a, C> {
    pub table: &'a HeartbeatTable<C>,
    pub now_ms: i64,
}

impl<C: Clone + PartialEq> Liveness for LiveAt<'_, C> {
    fn is_alive(&self, cluster: &str, name: &str, id: i64) -> bool {
        self.table.is_alive(cluster, name, id, self.now_ms)
    }
    fn rank(&self, cluster: &str, name: &str, id: i64) -> Option<Rank> {
        self.table.info(cluster, name, id).map(Rank::from)
    }
}

/// Java's comparator: epoch descending, then maxOffset descending through an
/// `(int)` cast of the difference (wrong sign beyond 2^31), then priority
/// ascending (int subtraction, wrapping).
pub fn compare(x: &Rank, y: &Rank) -> Ordering {
    let v: i32 = if x.epoch == y.epoch {
        if x.max_offset == y.max_offset {
            x.election_priority.wrapping_sub(y.election_priority)
        } else {
            y.max_offset.wrapping_sub(x.max_offset) as i32
        }
    } else {
        y.epoch.wrapping_sub(x.epoch)
    };
    v.cmp(&0)
}

/// `DefaultElectPolicy.elect`: the SyncStateSet first, then (unclean
/// elections allowed) every member.
pub fn elect(
    live: &dyn Liveness,
    cluster: &str,
    name: &str,
    sync_state_set: &BTreeSet<i64>,
    all_replicas: Option<&BTreeSet<i64>>,
    old_master: Option<i64>,
    preferred: Option<i64>,
) -> Option<i64> {
    try_elect(live, cluster, name, sync_state_set, old_master, preferred).or_else(|| {
        all_replicas.and_then(|all| try_elect(live, cluster, name, all, old_master, preferred))
    })
}

fn try_elect(
    live: &dyn Liveness,
    cluster: &str,
    name: &str,
    ids: &BTreeSet<i64>,
    old_master: Option<i64>,
    preferred: Option<i64>,
) -> Option<i64> {
    // Ascending: a HashSet<Long> of small ids iterates in that order, which
    // decides which of several equal candidates the TreeSet keeps.
    let alive: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| live.is_alive(cluster, name, *id))
        .collect();
    if alive.is_empty() {
        return None;
    }
    if let Some(old) = old_master {
        if alive.contains(&old) && (preferred.is_none() || preferred == Some(old)) {
            return Some(old);
        }
    }
    if let Some(p) = preferred {
        return alive.contains(&p).then_some(p);
    }
    // TreeSet.first(): the least element; among equal ones the first added.
    let mut best: Option<(i64, Rank)> = None;
    for id in alive {
        let Some(rank) = live.rank(cluster, name, id) else {
            continue;
        };
        match &best {
            Some((_, b)) if compare(&rank, b) != Ordering::Less => {}
            _ => best = Some((id, rank)),
        }
    }
    best.map(|(id, _)| id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A hand-made liveness view for tests.
    #[derive(Default)]
    pub struct FakeLive(pub HashMap<i64, Rank>);

    impl FakeLive {
        pub fn with(mut self, id: i64, epoch: i32, max_offset: i64, priority: i32) -> Self {
            self.0.insert(
                id,
                Rank {
                    epoch,
                    max_offset,
                    election_priority: priority,
                },
            );
            self
        }
    }

    impl Liveness for FakeLive {
        fn is_alive(&self, _: &str, _: &str, id: i64) -> bool {
            self.0.contains_key(&id)
        }
        fn rank(&self, _: &str, _: &str, id: i64) -> Option<Rank> {
            self.0.get(&id).copied()
        }
    }

    fn set(ids: &[i64]) -> BTreeSet<i64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn old_master_kept_when_alive() {
        let l = FakeLive::default().with(1, 1, 0, 0).with(2, 9, 9, 0);
        assert_eq!(
            elect(&l, "c", "b", &set(&[1, 2]), None, Some(1), None),
            Some(1)
        );
    }

    #[test]
    fn best_epoch_then_offset_then_priority() {
        let l = FakeLive::default()
            .with(1, 1, 500, 0)
            .with(2, 2, 100, 5)
            .with(3, 2, 200, 5);
        assert_eq!(
            elect(&l, "c", "b", &set(&[1, 2, 3]), None, Some(9), None),
            Some(3)
        );
        let l = FakeLive::default().with(1, 2, 200, 7).with(2, 2, 200, 3);
        assert_eq!(
            elect(&l, "c", "b", &set(&[1, 2]), None, None, None),
            Some(2)
        );
    }

    #[test]
    fn ties_keep_the_smallest_id() {
        let l = FakeLive::default()
            .with(3, 1, 10, i32::MAX)
            .with(2, 1, 10, i32::MAX);
        assert_eq!(
            elect(&l, "c", "b", &set(&[2, 3]), None, None, None),
            Some(2)
        );
    }

    #[test]
    fn int_cast_of_offset_difference() {
        // 2^32 apart: the cast makes the difference 0, so they tie and the
        // smaller id wins even though id 2 is far ahead.
        let l = FakeLive::default().with(1, 1, 0, 0).with(2, 1, 1 << 32, 0);
        assert_eq!(
            elect(&l, "c", "b", &set(&[1, 2]), None, None, None),
            Some(1)
        );
        // 2^31 + 1 ahead casts to a negative number: id 2 looks behind.
        let l = FakeLive::default()
            .with(1, 1, 0, 0)
            .with(2, 1, (1 << 31) + 1, 0);
        assert_eq!(
            elect(&l, "c", "b", &set(&[1, 2]), None, None, None),
            Some(1)
        );
    }

    #[test]
    fn preferred_and_unclean() {
        let l = FakeLive::default().with(1, 1, 0, 0).with(3, 1, 0, 0);
        // Preferred not alive in the set: no fallback.
        assert_eq!(
            elect(&l, "c", "b", &set(&[1, 2]), None, None, Some(2)),
            None
        );
        assert_eq!(
            elect(&l, "c", "b", &set(&[1, 2]), None, Some(1), Some(1)),
            Some(1)
        );
        // Nobody alive in the set; unclean allowed → any alive member.
        assert_eq!(elect(&l, "c", "b", &set(&[2]), None, None, None), None);
        assert_eq!(
            elect(&l, "c", "b", &set(&[2]), Some(&set(&[1, 2, 3])), None, None),
            Some(1)
        );
    }
}
