//! The role a controller-mode broker holds and what a controller's view of
//! its broker set makes it do (Java `ReplicasManager.changeBrokerRole`), with
//! no I/O: the manager asks [`RoleState::decide`], performs the change,
//! then records it with [`RoleState::applied`].

use super::wire::{MasterInfo, SyncStateSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Not registered or no role known yet: no name-server registration,
    /// puts refused.
    Isolated,
    Master,
    Slave,
}

/// What to do about one [`MasterInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not newer than what the broker holds (or unusable): nothing.
    Ignore,
    /// This broker is the master of a strictly newer epoch.
    ToMaster {
        epoch: i32,
        /// Adopted when newer than the broker's.
        sync_state_set: Option<SyncStateSet>,
    },
    /// Another broker is the master of a strictly newer epoch.
    ToSlave {
        master_id: i64,
        master_addr: String,
        epoch: i32,
    },
    /// Same epoch, this broker is master, and the set is newer.
    AdoptSyncStateSet(SyncStateSet),
    /// A strictly newer epoch without a master: ask for an election.
    Elect,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleState {
    /// The controller-assigned id (after registration).
    pub own_id: Option<i64>,
    pub role: Role,
    pub master_epoch: i32,
    pub master_id: Option<i64>,
    pub master_addr: Option<String>,
    pub sync_state_set: SyncStateSet,
}

impl Default for RoleState {
    fn default() -> Self {
        RoleState {
            own_id: None,
            role: Role::Isolated,
            master_epoch: 0,
            master_id: None,
            master_addr: None,
            sync_state_set: SyncStateSet::default(),
        }
    }
}

impl RoleState {
    pub fn decide(&self, info: &MasterInfo) -> Decision {
        let Some(own) = self.own_id else {
            return Decision::Ignore;
        };
        if info.master_epoch > self.master_epoch {
            return match (info.master_id, &info.master_addr) {
                (Some(id), _) if id == own => Decision::ToMaster {
                    epoch: info.master_epoch,
                    sync_state_set: info.sync_state_set.clone().filter(|s| {
                        s.sync_state_set_epoch > self.sync_state_set.sync_state_set_epoch
                    }),
                },
                (Some(id), Some(addr)) => Decision::ToSlave {
                    master_id: id,
                    master_addr: addr.clone(),
                    epoch: info.master_epoch,
                },
                (Some(_), None) => Decision::Ignore,
                (None, _) => Decision::Elect,
            };
        }
        if info.master_epoch == self.master_epoch
            && self.role == Role::Master
            && info.master_id.is_none_or(|id| id == own)
        {
            if let Some(s) = &info.sync_state_set {
                if s.sync_state_set_epoch > self.sync_state_set.sync_state_set_epoch {
                    return Decision::AdoptSyncStateSet(s.clone());
                }
            }
        }
        Decision::Ignore
    }

    /// Records a performed decision.
    pub fn applied(&mut self, d: &Decision) {
        match d {
            Decision::Ignore | Decision::Elect => {}
            Decision::ToMaster {
                epoch,
                sync_state_set,
            } => {
                self.role = Role::Master;
                self.master_epoch = *epoch;
                self.master_id = self.own_id;
                self.master_addr = None;
                if let Some(s) = sync_state_set {
                    self.sync_state_set = s.clone();
                }
            }
            Decision::ToSlave {
                master_id,
                master_addr,
                epoch,
            } => {
                self.role = Role::Slave;
                self.master_epoch = *epoch;
                self.master_id = Some(*master_id);
                self.master_addr = Some(master_addr.clone());
            }
            Decision::AdoptSyncStateSet(s) => self.sync_state_set = s.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: Option<i64>, epoch: i32, set_epoch: Option<i32>) -> MasterInfo {
        MasterInfo {
            master_id: id,
            master_addr: id.map(|i| format!("127.0.0.1:{}", 10000 + i)),
            master_epoch: epoch,
            sync_state_set: set_epoch.map(|e| SyncStateSet {
                sync_state_set: id.into_iter().collect(),
                sync_state_set_epoch: e,
            }),
        }
    }

    fn registered(id: i64) -> RoleState {
        RoleState {
            own_id: Some(id),
            ..Default::default()
        }
    }

    #[test]
    fn only_strictly_newer_epochs_change_the_role() {
        let mut s = registered(1);
        let d = s.decide(&info(Some(1), 1, Some(1)));
        assert!(matches!(
            d,
            Decision::ToMaster {
                epoch: 1,
                sync_state_set: Some(_)
            }
        ));
        s.applied(&d);
        assert_eq!(s.role, Role::Master);
        assert_eq!(s.sync_state_set.sync_state_set_epoch, 1);
        // The same epoch naming another master, or an older one: ignored.
        assert_eq!(s.decide(&info(Some(2), 1, Some(2))), Decision::Ignore);
        assert_eq!(s.decide(&info(Some(2), 0, Some(2))), Decision::Ignore);
        // Same epoch, newer set: adopted while master.
        let d = s.decide(&info(Some(1), 1, Some(2)));
        assert!(matches!(d, Decision::AdoptSyncStateSet(_)));
        s.applied(&d);
        assert_eq!(s.decide(&info(Some(1), 1, Some(2))), Decision::Ignore);
        // Newer epoch naming another master: slave.
        let d = s.decide(&info(Some(2), 2, Some(3)));
        assert_eq!(
            d,
            Decision::ToSlave {
                master_id: 2,
                master_addr: "127.0.0.1:10002".into(),
                epoch: 2
            }
        );
        s.applied(&d);
        assert_eq!(s.role, Role::Slave);
        assert_eq!(s.master_epoch, 2);
        // Newer epoch without a master: elect.
        assert_eq!(s.decide(&info(None, 3, None)), Decision::Elect);
        assert_eq!(s.decide(&info(None, 2, None)), Decision::Ignore);
    }

    #[test]
    fn unregistered_or_addressless_changes_are_ignored() {
        let s = RoleState::default();
        assert_eq!(s.decide(&info(Some(1), 5, Some(1))), Decision::Ignore);
        let s = registered(1);
        let mut i = info(Some(2), 5, None);
        i.master_addr = None;
        assert_eq!(s.decide(&i), Decision::Ignore);
    }
}
