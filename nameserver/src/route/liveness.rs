//! How brokers stay and go: heartbeats refresh liveness, the expiry scan
//! and closed connections remove brokers, and every removal ends in
//! UNREGISTER_BROKER's cleanup of the broker, cluster and topic tables.

use std::collections::BTreeSet;

use remoting::body::{perm, DataVersion};
use tracing::{info, warn};

use super::queues::BrokerIdx;
use super::{BrokerAddrInfo, BrokerLiveInfo, ConnId, RouteTable, UnregisterBroker, MASTER_ID};

impl RouteTable {
    /// UNREGISTER_BROKER, and the common end of every way a broker goes away.
    pub fn unregister_brokers(&mut self, requests: &[UnregisterBroker]) {
        let mut removed_brokers = BTreeSet::new();
        let mut reduced_brokers = BTreeSet::new();
        for req in requests {
            let addr_info = BrokerAddrInfo::new(&req.cluster_name, &req.broker_addr);
            let live = self.broker_live_table.remove(&addr_info);
            self.filter_server_table.remove(&addr_info);
            info!(cluster = %req.cluster_name, broker = %req.broker_name, addr = %req.broker_addr,
                was_live = live.is_some(), "unregister broker");

            let mut remove_broker_name = false;
            if let Some(bd) = self.broker_addr_table.get_mut(&req.broker_name) {
                bd.broker_addrs.retain(|_, addr| *addr != req.broker_addr);
                if bd.broker_addrs.is_empty() {
                    self.broker_addr_table.remove(&req.broker_name);
                    remove_broker_name = true;
                }
            }
            if remove_broker_name {
                if let Some(names) = self.cluster_addr_table.get_mut(&req.cluster_name) {
                    names.remove(&req.broker_name);
                    if names.is_empty() {
                        self.cluster_addr_table.remove(&req.cluster_name);
                    }
                }
                removed_brokers.insert(req.broker_name.clone());
            } else {
                reduced_brokers.insert(req.broker_name.clone());
            }
        }
        self.clean_topics(&removed_brokers, &reduced_brokers);
    }

    /// `cleanTopicByUnRegisterRequests`.
    fn clean_topics(&mut self, removed: &BTreeSet<String>, reduced: &BTreeSet<String>) {
        let removed: BTreeSet<BrokerIdx> = removed
            .iter()
            .filter_map(|n| self.broker_names.get(n))
            .collect();
        // The master left and a slave acts for it: no more writes.
        let read_only: BTreeSet<BrokerIdx> = reduced
            .iter()
            .filter(|name| {
                self.broker_addr_table.get(*name).is_some_and(|bd| {
                    let no_master =
                        !matches!(bd.broker_addrs.keys().next(), Some(id) if *id <= MASTER_ID);
                    bd.enable_acting_master && no_master
                })
            })
            .filter_map(|n| self.broker_names.get(n))
            .collect();
        if removed.is_empty() && read_only.is_empty() {
            return;
        }
        self.map_queues(|qs| {
            let touched = qs
                .iter()
                .any(|q| removed.contains(&q.broker) || read_only.contains(&q.broker));
            touched.then(|| {
                qs.iter()
                    .filter(|q| !removed.contains(&q.broker))
                    .map(|q| {
                        let mut q = *q;
                        if read_only.contains(&q.broker) {
                            q.perm &= !perm::WRITE;
                        }
                        q
                    })
                    .collect()
            })
        });
    }

    /// Unregisters whatever is registered at `addr` (Java `onChannelDestroy`).
    fn destroy_broker_addr(&mut self, addr: &BrokerAddrInfo) {
        let found = self.broker_addr_table.values().find_map(|bd| {
            if bd.cluster != addr.cluster_name {
                return None;
            }
            bd.broker_addrs
                .iter()
                .find(|(_, a)| **a == addr.broker_addr)
                .map(|(id, _)| UnregisterBroker {
                    cluster_name: addr.cluster_name.clone(),
                    broker_addr: addr.broker_addr.clone(),
                    broker_name: bd.broker_name.clone(),
                    broker_id: *id,
                })
        });
        match found {
            Some(req) => self.unregister_brokers(&[req]),
            // Java would leave such an entry to expire again at every scan.
            None => {
                self.broker_live_table.remove(addr);
                self.filter_server_table.remove(addr);
            }
        }
    }

    /// The connection `conn` closed: every broker registered on it goes away
    /// at once (Java `BrokerHousekeepingService`). Returns what was removed.
    pub fn connection_closed(&mut self, conn: ConnId) -> Vec<BrokerAddrInfo> {
        let gone: Vec<BrokerAddrInfo> = self
            .broker_live_table
            .iter()
            .filter(|(_, l)| l.conn == conn)
            .map(|(k, _)| k.clone())
            .collect();
        for addr in &gone {
            info!(cluster = %addr.cluster_name, addr = %addr.broker_addr, "broker connection closed, unregistering");
            self.destroy_broker_addr(addr);
        }
        gone
    }

    /// Removes brokers not heard from within their timeout
    /// (`scanNotActiveBroker`). Returns their connections, which Java closes.
    pub fn scan_not_active(&mut self, now_ms: i64) -> Vec<ConnId> {
        let expired: Vec<(BrokerAddrInfo, ConnId, i64)> = self
            .broker_live_table
            .iter()
            .filter(|(_, l)| l.last_update_ms.saturating_add(l.heartbeat_timeout_ms) < now_ms)
            .map(|(k, l)| (k.clone(), l.conn, l.heartbeat_timeout_ms))
            .collect();
        let mut conns = Vec::with_capacity(expired.len());
        for (addr, conn, timeout_ms) in expired {
            warn!(cluster = %addr.cluster_name, addr = %addr.broker_addr, timeout_ms, "broker expired");
            self.destroy_broker_addr(&addr);
            conns.push(conn);
        }
        conns
    }

    /// Refreshes a broker's liveness (BROKER_HEARTBEAT, QUERY_DATA_VERSION).
    pub fn touch(&mut self, addr: &BrokerAddrInfo, now_ms: i64) {
        if let Some(live) = self.broker_live_table.get_mut(addr) {
            live.last_update_ms = now_ms;
        }
    }

    /// QUERY_DATA_VERSION: whether `dv` differs from what the broker last
    /// registered, and what that was. Refreshes liveness.
    pub fn query_data_version(
        &mut self,
        addr: &BrokerAddrInfo,
        dv: Option<&DataVersion>,
        now_ms: i64,
    ) -> (bool, Option<DataVersion>) {
        let changed = self.is_broker_topic_config_changed(addr, dv);
        self.touch(addr, now_ms);
        (
            changed,
            self.broker_live_table
                .get(addr)
                .map(|l| l.data_version.clone()),
        )
    }

    pub fn live_broker(&self, addr: &BrokerAddrInfo) -> Option<&BrokerLiveInfo> {
        self.broker_live_table.get(addr)
    }

    pub fn live_broker_count(&self) -> usize {
        self.broker_live_table.len()
    }
}
