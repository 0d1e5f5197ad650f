//! The node-local broker liveness table (Java's
//! `DefaultBrokerHeartbeatManager`, spec controller.md §4.9). Not replicated:
//! every controller judges liveness from the heartbeats it received itself.
//! The clock is passed in; `C` is whatever identifies the broker's channel.

use std::collections::HashMap;

/// `BrokerHeartbeatManager.DEFAULT_BROKER_CHANNEL_EXPIRED_TIME`.
pub const DEFAULT_TIMEOUT_MS: i64 = 10_000;

/// (clusterName, brokerName, brokerId): `BrokerIdentityInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerKey {
    pub cluster_name: String,
    pub broker_name: String,
    pub broker_id: i64,
}

/// One BROKER_HEARTBEAT (904) as received; `None` = header field absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heartbeat {
    pub cluster_name: String,
    pub broker_name: String,
    pub broker_addr: String,
    pub broker_id: Option<i64>,
    pub epoch: Option<i32>,
    pub max_offset: Option<i64>,
    pub confirm_offset: Option<i64>,
    pub heartbeat_timeout_ms: Option<i64>,
    pub election_priority: Option<i32>,
}

/// `BrokerLiveInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerLiveInfo<C> {
    pub broker_addr: String,
    pub broker_id: i64,
    pub last_update_ms: i64,
    pub timeout_ms: i64,
    pub channel: C,
    pub epoch: i32,
    pub max_offset: i64,
    pub confirm_offset: i64,
    pub election_priority: i32,
}

#[derive(Debug, Clone)]
pub struct HeartbeatTable<C> {
    live: HashMap<BrokerKey, BrokerLiveInfo<C>>,
}

impl<C> Default for HeartbeatTable<C> {
    fn default() -> Self {
        HeartbeatTable {
            live: HashMap::new(),
        }
    }
}

impl<C: Clone + PartialEq> HeartbeatTable<C> {
    /// `onBrokerHeartbeat`: timestamp, timeout and priority always; epoch,
    /// max offset and confirm offset only when they advance (a higher epoch,
    /// or the same epoch with a larger max offset).
    pub fn on_heartbeat(&mut self, hb: &Heartbeat, channel: C, now_ms: i64) {
        let key = BrokerKey {
            cluster_name: hb.cluster_name.clone(),
            broker_name: hb.broker_name.clone(),
            broker_id: hb.broker_id.unwrap_or(-1),
        };
        let epoch = hb.epoch.unwrap_or(-1);
        let max_offset = hb.max_offset.unwrap_or(-1);
        let confirm_offset = hb.confirm_offset.unwrap_or(-1);
        let timeout_ms = hb.heartbeat_timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        let priority = hb.election_priority.unwrap_or(i32::MAX);
        match self.live.get_mut(&key) {
            Some(prev) => {
                prev.last_update_ms = now_ms;
                prev.timeout_ms = timeout_ms;
                prev.election_priority = priority;
                if epoch > prev.epoch || (epoch == prev.epoch && max_offset > prev.max_offset) {
                    prev.epoch = epoch;
                    prev.max_offset = max_offset;
                    prev.confirm_offset = confirm_offset;
                }
            }
            None => {
                self.live.insert(
                    key.clone(),
                    BrokerLiveInfo {
                        broker_addr: hb.broker_addr.clone(),
                        broker_id: key.broker_id,
                        last_update_ms: now_ms,
                        timeout_ms,
                        channel,
                        epoch,
                        max_offset,
                        confirm_offset,
                        election_priority: priority,
                    },
                );
            }
        }
    }

    /// `isBrokerActive`: `lastUpdate + timeout >= now`.
    pub fn is_alive(&self, cluster: &str, name: &str, id: i64, now_ms: i64) -> bool {
        self.info(cluster, name, id)
            .is_some_and(|i| i.last_update_ms.saturating_add(i.timeout_ms) >= now_ms)
    }

    pub fn info(&self, cluster: &str, name: &str, id: i64) -> Option<&BrokerLiveInfo<C>> {
        self.live.get(&BrokerKey {
            cluster_name: cluster.to_owned(),
            broker_name: name.to_owned(),
            broker_id: id,
        })
    }

    /// The expiry scan: removes and returns every expired broker.
    pub fn expire(&mut self, now_ms: i64) -> Vec<(BrokerKey, BrokerLiveInfo<C>)> {
        self.remove_where(|i| i.last_update_ms.saturating_add(i.timeout_ms) < now_ms)
    }

    /// A broker's channel closed: removes and returns its entries.
    pub fn on_channel_close(&mut self, channel: &C) -> Vec<(BrokerKey, BrokerLiveInfo<C>)> {
        self.remove_where(|i| &i.channel == channel)
    }

    fn remove_where(
        &mut self,
        pred: impl Fn(&BrokerLiveInfo<C>) -> bool,
    ) -> Vec<(BrokerKey, BrokerLiveInfo<C>)> {
        let keys: Vec<BrokerKey> = self
            .live
            .iter()
            .filter(|(_, i)| pred(i))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out: Vec<_> = keys
            .into_iter()
            .filter_map(|k| self.live.remove(&k).map(|i| (k, i)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hb(id: i64, epoch: i32, max_offset: i64) -> Heartbeat {
        Heartbeat {
            cluster_name: "c".into(),
            broker_name: "b".into(),
            broker_addr: format!("a:{id}"),
            broker_id: Some(id),
            epoch: Some(epoch),
            max_offset: Some(max_offset),
            confirm_offset: Some(max_offset),
            heartbeat_timeout_ms: Some(1000),
            election_priority: None,
        }
    }

    #[test]
    fn epoch_and_offset_only_advance() {
        let mut t = HeartbeatTable::default();
        t.on_heartbeat(&hb(1, 2, 100), 7u64, 0);
        t.on_heartbeat(&hb(1, 1, 500), 7, 10);
        let i = t.info("c", "b", 1).unwrap();
        assert_eq!((i.epoch, i.max_offset, i.last_update_ms), (2, 100, 10));
        assert_eq!(i.election_priority, i32::MAX);
        t.on_heartbeat(&hb(1, 2, 50), 7, 20);
        assert_eq!(t.info("c", "b", 1).unwrap().max_offset, 100);
        t.on_heartbeat(&hb(1, 2, 150), 7, 30);
        assert_eq!(t.info("c", "b", 1).unwrap().max_offset, 150);
        t.on_heartbeat(&hb(1, 3, 0), 7, 40);
        let i = t.info("c", "b", 1).unwrap();
        assert_eq!((i.epoch, i.max_offset), (3, 0));
    }

    #[test]
    fn defaults_for_missing_fields() {
        let mut t = HeartbeatTable::default();
        let h = Heartbeat {
            cluster_name: "c".into(),
            broker_name: "b".into(),
            broker_id: Some(1),
            ..Heartbeat::default()
        };
        t.on_heartbeat(&h, 1u64, 0);
        let i = t.info("c", "b", 1).unwrap();
        assert_eq!((i.epoch, i.max_offset, i.timeout_ms), (-1, -1, 10_000));
    }

    #[test]
    fn alive_until_timeout_then_expired() {
        let mut t = HeartbeatTable::default();
        t.on_heartbeat(&hb(1, 0, 0), 1u64, 1000);
        t.on_heartbeat(&hb(2, 0, 0), 2u64, 1500);
        assert!(t.is_alive("c", "b", 1, 2000));
        assert!(!t.is_alive("c", "b", 1, 2001));
        assert!(!t.is_alive("x", "b", 1, 1000));
        let gone = t.expire(2001);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0.broker_id, 1);
        let gone = t.on_channel_close(&2);
        assert_eq!(gone[0].0.broker_id, 2);
        assert!(t.is_empty());
    }
}
