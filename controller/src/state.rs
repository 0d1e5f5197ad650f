//! The replicated state (Java's `ReplicasInfoManager` tables) and the apply
//! rules of spec controller.md §1.3. Only [`ReplicasInfo::apply`] changes it,
//! on every node, in log order.

use std::collections::{BTreeMap, BTreeSet};

use tracing::warn;

use crate::event::Event;

/// `MixAll.FIRST_BROKER_CONTROLLER_ID`.
pub const FIRST_BROKER_ID: i64 = 1;

/// One registered member: address and the check code it applied with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub address: Option<String>,
    pub register_check_code: Option<String>,
}

/// `BrokerReplicaInfo`: the members of one broker set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerReplicaInfo {
    pub cluster_name: Option<String>,
    pub broker_name: String,
    /// Starts at 1 and grows by one per added member (not max + 1).
    pub next_assign_broker_id: i64,
    pub members: BTreeMap<i64, Member>,
}

impl BrokerReplicaInfo {
    pub fn address(&self, id: Option<i64>) -> Option<&str> {
        id.and_then(|id| self.members.get(&id))
            .and_then(|m| m.address.as_deref())
    }

    pub fn cluster(&self) -> &str {
        self.cluster_name.as_deref().unwrap_or("")
    }
}

/// `SyncStateInfo`: master, SyncStateSet and their epochs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncStateInfo {
    pub master_epoch: i32,
    pub sync_state_set_epoch: i32,
    pub sync_state_set: BTreeSet<i64>,
    pub master_broker_id: Option<i64>,
}

impl SyncStateInfo {
    /// `isFirstTimeForElect`.
    pub fn first_time_for_elect(&self) -> bool {
        self.master_epoch == 0
    }

    fn update_master(&mut self, master: Option<i64>) {
        self.master_broker_id = master;
        self.master_epoch = self.master_epoch.wrapping_add(1);
    }

    fn update_sync_state_set(&mut self, set: BTreeSet<i64>) {
        self.sync_state_set = set;
        self.sync_state_set_epoch = self.sync_state_set_epoch.wrapping_add(1);
    }
}

/// Both tables, keyed by broker name. A broker set "exists" only when it is
/// in both (`isContainsBroker`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicasInfo {
    pub replicas: BTreeMap<String, BrokerReplicaInfo>,
    pub sync_states: BTreeMap<String, SyncStateInfo>,
}

impl ReplicasInfo {
    pub fn contains(&self, broker_name: &str) -> bool {
        self.replicas.contains_key(broker_name) && self.sync_states.contains_key(broker_name)
    }

    /// Both halves of an existing broker set.
    pub fn get(&self, broker_name: &str) -> Option<(&BrokerReplicaInfo, &SyncStateInfo)> {
        Some((
            self.replicas.get(broker_name)?,
            self.sync_states.get(broker_name)?,
        ))
    }

    /// `ReplicasInfoManager.applyEvent`.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::AlterSyncStateSet {
                broker_name,
                new_sync_state_set,
            } => {
                if self.contains(broker_name) {
                    if let Some(s) = self.sync_states.get_mut(broker_name) {
                        s.update_sync_state_set(new_sync_state_set.clone());
                    }
                }
            }
            Event::ApplyBrokerId {
                cluster_name,
                broker_name,
                broker_address,
                new_broker_id,
                register_check_code,
            } => {
                let member = Member {
                    address: broker_address.clone(),
                    register_check_code: register_check_code.clone(),
                };
                if self.contains(broker_name) {
                    if let Some(r) = self.replicas.get_mut(broker_name) {
                        if !r.members.contains_key(new_broker_id) {
                            r.members.insert(*new_broker_id, member);
                            r.next_assign_broker_id += 1;
                        }
                    }
                } else {
                    let mut r = BrokerReplicaInfo {
                        cluster_name: cluster_name.clone(),
                        broker_name: broker_name.clone(),
                        next_assign_broker_id: FIRST_BROKER_ID,
                        members: BTreeMap::new(),
                    };
                    r.members.insert(*new_broker_id, member);
                    r.next_assign_broker_id += 1;
                    self.replicas.insert(broker_name.clone(), r);
                    self.sync_states
                        .insert(broker_name.clone(), SyncStateInfo::default());
                }
            }
            Event::ElectMaster {
                broker_name,
                new_master_broker_id,
                new_master_elected,
            } => {
                if !self.contains(broker_name) {
                    warn!(%broker_name, "elect-master event for an unknown broker set");
                    return;
                }
                if let Some(s) = self.sync_states.get_mut(broker_name) {
                    if *new_master_elected {
                        s.update_master(*new_master_broker_id);
                        s.update_sync_state_set(new_master_broker_id.iter().copied().collect());
                    } else {
                        s.update_master(None);
                    }
                }
            }
            Event::CleanBrokerData {
                broker_name,
                broker_id_set_to_clean,
            } => {
                let ids = match broker_id_set_to_clean {
                    Some(ids) if !ids.is_empty() => ids,
                    _ => {
                        self.replicas.remove(broker_name);
                        self.sync_states.remove(broker_name);
                        return;
                    }
                };
                if !self.contains(broker_name) {
                    return;
                }
                let mut drop_replicas = false;
                if let Some(r) = self.replicas.get_mut(broker_name) {
                    for id in ids {
                        r.members.remove(id);
                    }
                    drop_replicas = r.members.is_empty();
                }
                let mut drop_sync = false;
                if let Some(s) = self.sync_states.get_mut(broker_name) {
                    for id in ids {
                        s.sync_state_set.remove(id);
                    }
                    drop_sync = s.sync_state_set.is_empty();
                }
                if drop_replicas {
                    self.replicas.remove(broker_name);
                }
                if drop_sync {
                    self.sync_states.remove(broker_name);
                }
            }
            Event::UpdateBrokerAddress {
                broker_name,
                broker_address,
                broker_id,
                ..
            } => {
                if let Some(m) = self
                    .replicas
                    .get_mut(broker_name)
                    .and_then(|r| r.members.get_mut(broker_id))
                {
                    m.address = broker_address.clone();
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    pub(crate) fn apply_id(s: &mut ReplicasInfo, name: &str, id: i64, addr: &str) {
        s.apply(&Event::ApplyBrokerId {
            cluster_name: Some("c".into()),
            broker_name: name.into(),
            broker_address: Some(addr.into()),
            new_broker_id: id,
            register_check_code: Some(format!("{addr};1")),
        });
    }

    #[test]
    fn apply_id_creates_both_tables_and_counts_adds() {
        let mut s = ReplicasInfo::default();
        apply_id(&mut s, "b", 1, "a:1");
        assert!(s.contains("b"));
        assert_eq!(s.replicas["b"].next_assign_broker_id, 2);
        // Same id again: ignored, no increment.
        apply_id(&mut s, "b", 1, "a:9");
        assert_eq!(s.replicas["b"].next_assign_broker_id, 2);
        assert_eq!(s.replicas["b"].members[&1].address.as_deref(), Some("a:1"));
        // A gap: nextAssignBrokerId is a counter, not max + 1.
        apply_id(&mut s, "b", 5, "a:5");
        assert_eq!(s.replicas["b"].next_assign_broker_id, 3);
        assert_eq!(s.sync_states["b"], SyncStateInfo::default());
    }

    #[test]
    fn elect_and_alter_epochs() {
        let mut s = ReplicasInfo::default();
        apply_id(&mut s, "b", 1, "a:1");
        apply_id(&mut s, "b", 2, "a:2");
        s.apply(&Event::ElectMaster {
            broker_name: "b".into(),
            new_master_broker_id: Some(1),
            new_master_elected: true,
        });
        let st = &s.sync_states["b"];
        assert_eq!((st.master_epoch, st.sync_state_set_epoch), (1, 1));
        assert_eq!(st.sync_state_set, BTreeSet::from([1]));
        s.apply(&Event::AlterSyncStateSet {
            broker_name: "b".into(),
            new_sync_state_set: BTreeSet::from([1, 2]),
        });
        assert_eq!(s.sync_states["b"].sync_state_set_epoch, 2);
        s.apply(&Event::ElectMaster {
            broker_name: "b".into(),
            new_master_broker_id: None,
            new_master_elected: false,
        });
        let st = &s.sync_states["b"];
        assert_eq!(st.master_broker_id, None);
        assert_eq!((st.master_epoch, st.sync_state_set_epoch), (2, 2));
        assert_eq!(st.sync_state_set, BTreeSet::from([1, 2]));
        // Unknown set: nothing happens.
        s.apply(&Event::AlterSyncStateSet {
            broker_name: "x".into(),
            new_sync_state_set: BTreeSet::from([1]),
        });
        assert!(!s.contains("x"));
    }

    #[test]
    fn clean_rules() {
        let mut s = ReplicasInfo::default();
        apply_id(&mut s, "b", 1, "a:1");
        apply_id(&mut s, "b", 2, "a:2");
        s.apply(&Event::ElectMaster {
            broker_name: "b".into(),
            new_master_broker_id: Some(1),
            new_master_elected: true,
        });
        s.apply(&Event::CleanBrokerData {
            broker_name: "b".into(),
            broker_id_set_to_clean: Some(BTreeSet::from([2])),
        });
        assert_eq!(s.replicas["b"].members.len(), 1);
        assert!(s.contains("b"));
        // Removing the last SyncStateSet member drops that table, so the
        // set no longer "exists" although a member is left in the other.
        s.apply(&Event::CleanBrokerData {
            broker_name: "b".into(),
            broker_id_set_to_clean: Some(BTreeSet::from([1])),
        });
        assert!(!s.replicas.contains_key("b"));
        assert!(!s.sync_states.contains_key("b"));
        apply_id(&mut s, "c", 1, "a:1");
        s.apply(&Event::CleanBrokerData {
            broker_name: "c".into(),
            broker_id_set_to_clean: None,
        });
        assert_eq!(s, ReplicasInfo::default());
    }

    #[test]
    fn update_address_keeps_check_code() {
        let mut s = ReplicasInfo::default();
        apply_id(&mut s, "b", 1, "a:1");
        s.apply(&Event::UpdateBrokerAddress {
            cluster_name: Some("c".into()),
            broker_name: "b".into(),
            broker_address: Some("z:1".into()),
            broker_id: 1,
        });
        let m = &s.replicas["b"].members[&1];
        assert_eq!(m.address.as_deref(), Some("z:1"));
        assert_eq!(m.register_check_code.as_deref(), Some("a:1;1"));
        // Unknown id: ignored.
        s.apply(&Event::UpdateBrokerAddress {
            cluster_name: None,
            broker_name: "b".into(),
            broker_address: Some("z:2".into()),
            broker_id: 7,
        });
        assert_eq!(s.replicas["b"].members.len(), 1);
    }
}
