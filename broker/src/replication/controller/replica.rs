//! The replication side of controller mode, behind [`ControllerReplication`]:
//! what the role manager tells the store/HA layer on a role change and what
//! it reads back for heartbeats, GET_BROKER_EPOCH_CACHE and SyncStateSet
//! reports. The broker's implementation is
//! [`AutoSwitchReplication`](super::autoswitch::AutoSwitchReplication);
//! tests may plug in their own.

use std::collections::BTreeSet;

use super::wire::EpochEntry;

/// What controller mode needs from replication (Java `AutoSwitchHAService`
/// as the `ReplicasManager` uses it). Calls are short; none blocks on I/O
/// for long.
pub trait ControllerReplication: Send + Sync {
    /// This broker (controller id `own_id`) became master of `epoch`
    /// (append the epoch entry at the store's end, serve slaves, compute
    /// the confirm offset over `sync_state_set`).
    fn change_to_master(&self, epoch: i32, own_id: i64, sync_state_set: &BTreeSet<i64>);
    /// This broker became a slave of `master_addr` (broker port) in
    /// `epoch`; the master's HA address comes later through
    /// [`ControllerReplication::master_ha_learnt`].
    fn change_to_slave(&self, master_addr: &str, epoch: i32, own_id: i64);
    /// A REGISTER_BROKER answer from a name server named the master's HA
    /// address (`haServerAddr`) and the master's address (`masterAddr`), which
    /// may still be an older master's when the registration raced the new
    /// master's.
    fn master_ha_learnt(&self, _ha_addr: &str, _master_addr: Option<&str>) {}
    /// Slave: no master HA address known yet (the manager then registers
    /// with the name servers again to learn it).
    fn needs_master_ha(&self) -> bool {
        false
    }
    /// The controller confirmed a SyncStateSet (1001 answer, 1004, 1008).
    fn set_sync_state_set(&self, _set: &BTreeSet<i64>) {}
    /// Master: the set it wants the controller to confirm, if it differs
    /// from the confirmed one (expand on catch-up, shrink on lag).
    fn proposed_sync_state_set(&self) -> Option<BTreeSet<i64>> {
        None
    }
    /// Every epoch entry, oldest first; the last one's end is `i64::MAX`.
    fn epoch_entries(&self) -> Vec<EpochEntry>;
    /// The commit log's end.
    fn max_offset(&self) -> i64;
    /// The offset every in-sync replica holds.
    fn confirm_offset(&self) -> i64;
    /// GET_BROKER_HA_STATUS (907) body (`HARuntimeInfo`), if there is an
    /// HA side to describe.
    fn ha_runtime_info(&self) -> Option<serde_json::Value> {
        None
    }
    fn shutdown(&self) {}
}
