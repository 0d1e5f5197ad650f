//! 1005 and 1006 sent straight to a controller, parsed.

use std::sync::Arc;
use std::time::Duration;

use remoting::body::from_fastjson;
use remoting::{Connection, RemotingCommand, Router};

use super::code;

/// One request with `body` and ext fields; the response (any code).
pub fn request(
    addr: &str,
    code: i32,
    ext: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Option<RemotingCommand> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let conn = tokio::time::timeout(
            Duration::from_secs(3),
            Connection::connect(addr, Arc::new(Router::new())),
        )
        .await
        .ok()?
        .ok()?;
        let mut cmd = RemotingCommand::request(code);
        for (k, v) in ext {
            cmd = cmd.with_ext(*k, *v);
        }
        if let Some(b) = body {
            cmd = cmd.with_body(b);
        }
        let resp = conn.request(cmd, Duration::from_secs(3)).await.ok();
        conn.close();
        resp
    })
}

/// A controller's answer to CONTROLLER_GET_METADATA_INFO (1005).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub group: Option<String>,
    pub leader_id: Option<String>,
    pub leader_addr: Option<String>,
    pub is_leader: bool,
    pub peers: Option<String>,
}

/// 1005 to `addr`; `None` unless it answers 0.
pub fn metadata(addr: &str) -> Option<Metadata> {
    let r = request(addr, code::GET_METADATA_INFO, &[], None)?;
    if r.code != 0 {
        return None;
    }
    let get = |k: &str| r.ext(k).filter(|v| !v.is_empty()).map(str::to_owned);
    Some(Metadata {
        group: get("group"),
        leader_id: get("controllerLeaderId"),
        leader_addr: get("controllerLeaderAddress"),
        is_leader: r.ext("isLeader") == Some("true"),
        peers: get("peers"),
    })
}

/// One member of a broker set as 1006 lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    pub broker_id: i64,
    pub address: String,
    pub alive: bool,
}

/// A broker set's replica info (1006 `BrokerReplicasInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncState {
    pub master_broker_id: Option<i64>,
    pub master_address: Option<String>,
    pub master_epoch: i64,
    pub sync_state_set_epoch: i64,
    pub in_sync: Vec<Replica>,
    pub not_in_sync: Vec<Replica>,
}

impl SyncState {
    /// The ids of the SyncStateSet, sorted.
    pub fn in_sync_ids(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.in_sync.iter().map(|r| r.broker_id).collect();
        v.sort_unstable();
        v
    }

    /// The address of member `id`.
    pub fn address_of(&self, id: i64) -> Option<&str> {
        self.in_sync
            .iter()
            .chain(&self.not_in_sync)
            .find(|r| r.broker_id == id)
            .map(|r| r.address.as_str())
    }

    /// The id registered for `address`.
    pub fn id_of(&self, address: &str) -> Option<i64> {
        self.in_sync
            .iter()
            .chain(&self.not_in_sync)
            .find(|r| r.address == address)
            .map(|r| r.broker_id)
    }
}

/// 1006 for `broker_name` to `addr` (the leader); `None` unless it answers
/// 0 with that set.
pub fn sync_state(addr: &str, broker_name: &str) -> Option<SyncState> {
    let body = serde_json::to_vec(&[broker_name]).ok()?;
    let r = request(addr, code::GET_SYNC_STATE_DATA, &[], Some(body))?;
    if r.code != 0 {
        return None;
    }
    let v: serde_json::Value = from_fastjson(&r.body).ok()?;
    parse_replicas_info(&v, broker_name)
}

/// The `broker_name` entry of a `BrokerReplicasInfo` JSON value.
pub fn parse_replicas_info(v: &serde_json::Value, broker_name: &str) -> Option<SyncState> {
    let e = v.get("replicasInfoTable")?.get(broker_name)?;
    let replicas = |k: &str| -> Vec<Replica> {
        e.get(k)
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|r| {
                        Some(Replica {
                            broker_id: r.get("brokerId")?.as_i64()?,
                            address: r.get("brokerAddress")?.as_str()?.to_owned(),
                            alive: r.get("alive").and_then(|a| a.as_bool()).unwrap_or(false),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    Some(SyncState {
        master_broker_id: e.get("masterBrokerId").and_then(|x| x.as_i64()),
        master_address: e
            .get("masterAddress")
            .and_then(|x| x.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        master_epoch: e.get("masterEpoch")?.as_i64()?,
        sync_state_set_epoch: e.get("syncStateSetEpoch")?.as_i64()?,
        in_sync: replicas("inSyncReplicas"),
        not_in_sync: replicas("notInSyncReplicas"),
    })
}
