//! Replication figures an operator watches, which Java 5.3.3 does not
//! export as metrics (its `haStatus` and DLedger logs show them): our own
//! names, in Java's convention (`rocketmq_` prefix, the common labels, a
//! unit suffix). docs/OPERATIONS.md ("Observability") lists them.
//!
//! - every broker: `rocketmq_replication_role{mode, role}` = 1;
//! - master/slave and controller-mode HA: the commit log's end, the
//!   master's slave connections, in-sync slaves and per-slave ack lag, a
//!   classic slave's connection to its master;
//! - DLedger: term, leader, end and committed index, the leader's lag per
//!   peer.
//!
//! Everything is read at scrape time from what the replication code keeps
//! anyway; nothing is added to the send path.

use std::sync::Arc;

use dledger::core::message::Role;
use dledger::server::DLedgerServer;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;
use serde_json::Value;

use super::collect::{gauge, Labels};
use crate::replication::controller::ControllerReplication;
use crate::replication::ha::Replication;
use crate::store::BrokerStore;

/// The replication side of a broker, whichever kind it runs.
#[derive(Clone, Default)]
pub(crate) struct Replicas {
    /// Classic master/slave HA.
    pub ha: Option<Arc<Replication>>,
    /// Controller mode (AutoSwitch HA).
    pub controller: Option<Arc<dyn ControllerReplication>>,
    /// A DLedger commit log.
    pub dledger: Option<Arc<DLedgerServer>>,
}

/// One master's or slave's HA figures at one moment.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct HaFigures {
    pub master: bool,
    /// The local commit log's end.
    pub max_offset: i64,
    /// Master: in-sync slaves (the master not counted).
    pub in_sync_slaves: i64,
    /// Master: (slave address, bytes not yet acknowledged, in sync).
    pub slaves: Vec<(String, i64, bool)>,
    /// Classic slave: connected to its master.
    pub connected: Option<bool>,
}

impl HaFigures {
    /// From Java's `HARuntimeInfo` JSON (what GET_BROKER_HA_STATUS answers).
    pub fn of_runtime_info(v: &Value) -> HaFigures {
        let int = |v: Option<&Value>| v.and_then(Value::as_i64).unwrap_or(0);
        let master = v.get("master").and_then(Value::as_bool).unwrap_or(false);
        let max_offset = if master {
            int(v.get("masterCommitLogMaxOffset"))
        } else {
            int(v.pointer("/haClientRuntimeInfo/maxOffset"))
        };
        let slaves = v
            .get("haConnectionInfo")
            .and_then(Value::as_array)
            .map(|conns| {
                conns
                    .iter()
                    .map(|c| {
                        (
                            c.get("addr")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                            int(c.get("diff")).max(0),
                            c.get("inSync").and_then(Value::as_bool).unwrap_or(false),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        HaFigures {
            master,
            max_offset,
            in_sync_slaves: int(v.get("inSyncSlaveNums")),
            slaves,
            connected: None,
        }
    }

    fn of_classic(r: &Replication, store: &BrokerStore) -> HaFigures {
        let max = store.with(0, |s| s.commit_log_max_offset().get());
        match &r.client {
            Some(client) => HaFigures {
                master: false,
                max_offset: max,
                connected: Some(client.status().connected),
                ..HaFigures::default()
            },
            None => HaFigures {
                master: true,
                max_offset: max,
                in_sync_slaves: i64::from(r.master.in_sync_replicas()) - 1,
                slaves: r
                    .master
                    .connections()
                    .into_iter()
                    .map(|c| {
                        let ack = c.slave_ack_offset.get().max(0);
                        (c.addr.to_string(), (max - ack).max(0), c.in_sync)
                    })
                    .collect(),
                connected: None,
            },
        }
    }
}

fn dledger_role(r: Role) -> &'static str {
    match r {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
    }
}

fn ha_role(master: bool) -> &'static str {
    if master {
        "master"
    } else {
        "slave"
    }
}

/// The common labels, then `own`.
fn labels<'b>(common: &'b [(String, String)], own: &[(&'b str, &'b str)]) -> Labels<'b> {
    let mut l: Labels<'b> = common
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    l.extend_from_slice(own);
    l
}

/// Writes the replication series, each with the `common` labels first.
pub(crate) fn encode(
    enc: &mut DescriptorEncoder,
    replicas: &Replicas,
    store: &BrokerStore,
    common: &[(String, String)],
) -> Result<(), std::fmt::Error> {
    let ha = match (&replicas.ha, &replicas.controller) {
        (Some(r), _) => Some(("ha", HaFigures::of_classic(r, store))),
        (None, Some(c)) => c
            .ha_runtime_info()
            .map(|v| ("controller", HaFigures::of_runtime_info(&v))),
        (None, None) => None,
    };
    if let Some((mode, f)) = &ha {
        encode_ha(enc, mode, f, common)?;
    }
    if let Some(d) = &replicas.dledger {
        encode_dledger(enc, d, common)?;
    }
    Ok(())
}

fn encode_ha(
    enc: &mut DescriptorEncoder,
    mode: &'static str,
    f: &HaFigures,
    common: &[(String, String)],
) -> Result<(), std::fmt::Error> {
    let role = ha_role(f.master);
    gauge(
        enc,
        "rocketmq_replication_role",
        "Replication role of this broker (1 for the role it holds)",
        None,
        &[(labels(common, &[("mode", mode), ("role", role)]), 1)],
    )?;
    gauge(
        enc,
        "rocketmq_ha_commitlog_max_offset",
        "End of this broker's commit log",
        Some(&Unit::Bytes),
        &[(labels(common, &[("role", role)]), f.max_offset)],
    )?;
    if f.master {
        gauge(
            enc,
            "rocketmq_ha_slave_connections",
            "Slaves connected to this master's HA port",
            None,
            &[(labels(common, &[]), f.slaves.len() as i64)],
        )?;
        gauge(
            enc,
            "rocketmq_ha_in_sync_slaves",
            "Slaves in sync with this master (the master not counted)",
            None,
            &[(labels(common, &[]), f.in_sync_slaves)],
        )?;
        let lag: Vec<(Labels<'_>, i64)> = f
            .slaves
            .iter()
            .map(|(addr, diff, in_sync)| {
                let l = labels(
                    common,
                    &[
                        ("slave_addr", addr.as_str()),
                        ("in_sync", if *in_sync { "true" } else { "false" }),
                    ],
                );
                (l, *diff)
            })
            .collect();
        gauge(
            enc,
            "rocketmq_ha_slave_ack_lag",
            "Commit-log bytes the slave has not acknowledged yet",
            Some(&Unit::Bytes),
            &lag,
        )?;
    }
    if let Some(connected) = f.connected {
        gauge(
            enc,
            "rocketmq_ha_master_connected",
            "Whether this slave's HA connection to its master is up",
            None,
            &[(labels(common, &[]), i64::from(connected))],
        )?;
    }
    Ok(())
}

fn encode_dledger(
    enc: &mut DescriptorEncoder,
    d: &DLedgerServer,
    common: &[(String, String)],
) -> Result<(), std::fmt::Error> {
    let state = d.role();
    let figures = d.figures();
    let self_id = d.self_id().to_owned();
    let leader_id = state.leader_id.clone();
    let l = labels(
        common,
        &[
            ("mode", "dledger"),
            ("role", dledger_role(state.role)),
            ("dledger_self_id", self_id.as_str()),
        ],
    );
    gauge(
        enc,
        "rocketmq_replication_role",
        "Replication role of this broker (1 for the role it holds)",
        None,
        &[(l, 1)],
    )?;
    let base = || labels(common, &[("dledger_self_id", self_id.as_str())]);
    gauge(
        enc,
        "rocketmq_dledger_term",
        "Current DLedger term",
        None,
        &[(base(), state.term.0)],
    )?;
    if let Some(leader) = &leader_id {
        let mut l = base();
        l.push(("leader_id", leader.as_str()));
        gauge(
            enc,
            "rocketmq_dledger_leader",
            "The DLedger leader this member knows (1)",
            None,
            &[(l, 1)],
        )?;
    }
    gauge(
        enc,
        "rocketmq_dledger_end_index",
        "Last index of this member's ledger",
        None,
        &[(base(), figures.end_index)],
    )?;
    gauge(
        enc,
        "rocketmq_dledger_committed_index",
        "Committed index of this member",
        None,
        &[(base(), figures.committed_index)],
    )?;
    if state.role == Role::Leader {
        let lag: Vec<(Labels<'_>, i64)> = figures
            .peer_watermarks
            .iter()
            .map(|(peer, w)| {
                let mut l = base();
                l.push(("peer_id", peer.as_str()));
                (l, (figures.end_index - *w).max(0))
            })
            .collect();
        gauge(
            enc,
            "rocketmq_dledger_peer_lag",
            "Entries of the leader's ledger the peer has not acknowledged",
            Some(&Unit::Other("entries".into())),
            &lag,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runtime_info_of_a_master_and_a_slave() {
        let master = json!({
            "haClientRuntimeInfo": {"maxOffset": 0},
            "haConnectionInfo": [
                {"addr": "127.0.0.1:1", "diff": 300, "inSync": false, "slaveAckOffset": 700},
                {"addr": "127.0.0.1:2", "diff": 0, "inSync": true, "slaveAckOffset": 1000},
            ],
            "inSyncSlaveNums": 1,
            "master": true,
            "masterCommitLogMaxOffset": 1000,
        });
        assert_eq!(
            HaFigures::of_runtime_info(&master),
            HaFigures {
                master: true,
                max_offset: 1000,
                in_sync_slaves: 1,
                slaves: vec![
                    ("127.0.0.1:1".into(), 300, false),
                    ("127.0.0.1:2".into(), 0, true)
                ],
                connected: None,
            }
        );
        let slave = json!({
            "haClientRuntimeInfo": {"maxOffset": 640, "masterAddr": "x"},
            "haConnectionInfo": [],
            "inSyncSlaveNums": 0,
            "master": false,
            "masterCommitLogMaxOffset": 0,
        });
        let f = HaFigures::of_runtime_info(&slave);
        assert!(!f.master);
        assert_eq!(f.max_offset, 640);
        assert!(f.slaves.is_empty());
        // Junk is read as an idle slave, never a panic.
        assert_eq!(
            HaFigures::of_runtime_info(&json!([1, 2])),
            HaFigures::default()
        );
    }
}
