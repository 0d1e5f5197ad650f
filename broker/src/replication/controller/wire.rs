//! What the broker and the controllers exchange (controller.md §2, §3):
//! request codes, the requests the broker sends, and tolerant readers of
//! the answers and of NOTIFY_BROKER_ROLE_CHANGED. Nothing here panics on a
//! peer's bytes: a missing or unparsable field is `None` or an error.

use std::collections::BTreeSet;

use remoting::RemotingCommand;
use serde::{Deserialize, Serialize};

/// Request codes of controller mode (`RequestCode`).
pub mod code {
    pub const BROKER_HEARTBEAT: i32 = 904;
    pub const CONTROLLER_ALTER_SYNC_STATE_SET: i32 = 1001;
    pub const CONTROLLER_ELECT_MASTER: i32 = 1002;
    pub const CONTROLLER_REGISTER_BROKER: i32 = 1003;
    pub const CONTROLLER_GET_REPLICA_INFO: i32 = 1004;
    pub const CONTROLLER_GET_METADATA_INFO: i32 = 1005;
    pub const GET_BROKER_EPOCH_CACHE: i32 = 1007;
    pub const NOTIFY_BROKER_ROLE_CHANGED: i32 = 1008;
    pub const CONTROLLER_GET_NEXT_BROKER_ID: i32 = 1012;
    pub const CONTROLLER_APPLY_BROKER_ID: i32 = 1013;
}

/// Response codes of controller mode (`ResponseCode`).
pub mod response {
    pub const CONTROLLER_NOT_LEADER: i32 = 2007;
    pub const CONTROLLER_BROKER_METADATA_NOT_EXIST: i32 = 2008;
    pub const CONTROLLER_MASTER_STILL_EXIST: i32 = 2011;
}

/// `SyncStateSet` body: `{"syncStateSet":[1,2],"syncStateSetEpoch":3}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SyncStateSet {
    pub sync_state_set: BTreeSet<i64>,
    pub sync_state_set_epoch: i32,
}

/// `ElectMasterResponseBody`; only the set is read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ElectMasterBody {
    sync_state_set: BTreeSet<i64>,
}

/// One epoch of the log (`EpochEntry`): Java's key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpochEntry {
    pub end_offset: i64,
    pub epoch: i32,
    pub start_offset: i64,
}

/// GET_BROKER_EPOCH_CACHE (1007) answer body (`EpochEntryCache`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpochEntryCache {
    pub broker_id: i64,
    pub broker_name: String,
    pub cluster_name: String,
    pub epoch_list: Vec<EpochEntry>,
    pub max_offset: i64,
}

/// What a controller says about a broker set's master: from 1003, 1002,
/// 1004 answers and 1008 notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterInfo {
    pub master_id: Option<i64>,
    pub master_addr: Option<String>,
    pub master_epoch: i32,
    /// `None` when the message carries no SyncStateSet epoch (1004's header).
    pub sync_state_set: Option<SyncStateSet>,
}

fn ext_num<T: std::str::FromStr>(cmd: &RemotingCommand, key: &str) -> Option<T> {
    cmd.ext(key).and_then(|v| v.trim().parse().ok())
}

fn ext_str(cmd: &RemotingCommand, key: &str) -> Option<String> {
    cmd.ext(key)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Why a controller's message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("field {0} missing or not a number")]
    Field(&'static str),
    #[error("body does not decode: {0}")]
    Body(String),
}

fn sync_state_set_body(body: &[u8]) -> Result<SyncStateSet, WireError> {
    remoting::body::from_fastjson(body).map_err(|e| WireError::Body(e.to_string()))
}

/// Master id as sent: absent or negative = none.
fn master_id(cmd: &RemotingCommand) -> Option<i64> {
    ext_num::<i64>(cmd, "masterBrokerId").filter(|id| *id >= 0)
}

/// REGISTER_BROKER (1003) answer: header master fields (only when a live
/// master exists) and the SyncStateSet body.
pub fn register_answer(resp: &RemotingCommand) -> Result<MasterInfo, WireError> {
    let set = if resp.body.is_empty() {
        None
    } else {
        Some(sync_state_set_body(&resp.body)?)
    };
    Ok(MasterInfo {
        master_id: master_id(resp),
        master_addr: ext_str(resp, "masterAddress"),
        master_epoch: ext_num(resp, "masterEpoch").unwrap_or(0),
        sync_state_set: set.map(|mut s| {
            if let Some(e) = ext_num(resp, "syncStateSetEpoch") {
                s.sync_state_set_epoch = s.sync_state_set_epoch.max(e);
            }
            s
        }),
    })
}

/// ELECT_MASTER (1002) answer (code 0 or 2011).
pub fn elect_answer(resp: &RemotingCommand) -> Result<MasterInfo, WireError> {
    let master_epoch = ext_num(resp, "masterEpoch").ok_or(WireError::Field("masterEpoch"))?;
    let set_epoch: Option<i32> = ext_num(resp, "syncStateSetEpoch");
    let set = if resp.body.is_empty() {
        None
    } else {
        let b: ElectMasterBody = remoting::body::from_fastjson(&resp.body)
            .map_err(|e| WireError::Body(e.to_string()))?;
        Some(b.sync_state_set)
    };
    Ok(MasterInfo {
        master_id: master_id(resp),
        master_addr: ext_str(resp, "masterAddress"),
        master_epoch,
        sync_state_set: match (set, set_epoch) {
            (Some(s), Some(e)) => Some(SyncStateSet {
                sync_state_set: s,
                sync_state_set_epoch: e,
            }),
            _ => None,
        },
    })
}

/// GET_REPLICA_INFO (1004) answer.
pub fn replica_info_answer(resp: &RemotingCommand) -> Result<MasterInfo, WireError> {
    let master_epoch = ext_num(resp, "masterEpoch").ok_or(WireError::Field("masterEpoch"))?;
    let set = if resp.body.is_empty() {
        None
    } else {
        Some(sync_state_set_body(&resp.body)?)
    };
    Ok(MasterInfo {
        master_id: master_id(resp),
        master_addr: ext_str(resp, "masterAddress"),
        master_epoch,
        sync_state_set: set,
    })
}

/// NOTIFY_BROKER_ROLE_CHANGED (1008): header plus SyncStateSet body.
pub fn notify_request(req: &RemotingCommand) -> Result<MasterInfo, WireError> {
    let master_epoch = ext_num(req, "masterEpoch").ok_or(WireError::Field("masterEpoch"))?;
    let set_epoch: i32 =
        ext_num(req, "syncStateSetEpoch").ok_or(WireError::Field("syncStateSetEpoch"))?;
    let mut set = if req.body.is_empty() {
        SyncStateSet::default()
    } else {
        sync_state_set_body(&req.body)?
    };
    set.sync_state_set_epoch = set_epoch;
    Ok(MasterInfo {
        master_id: master_id(req),
        master_addr: ext_str(req, "masterAddress"),
        master_epoch,
        sync_state_set: Some(set),
    })
}

/// `controllerLeaderAddress` of a GET_METADATA_INFO (1005) answer.
pub fn leader_address(resp: &RemotingCommand) -> Option<String> {
    ext_str(resp, "controllerLeaderAddress")
}

/// `nextBrokerId` of a GET_NEXT_BROKER_ID (1012) answer.
pub fn next_broker_id(resp: &RemotingCommand) -> Result<i64, WireError> {
    ext_num(resp, "nextBrokerId").ok_or(WireError::Field("nextBrokerId"))
}

fn invoke_time() -> String {
    remoting::body::now_millis().to_string()
}

pub fn get_metadata() -> RemotingCommand {
    RemotingCommand::request(code::CONTROLLER_GET_METADATA_INFO)
}

pub fn get_next_broker_id(cluster: &str, name: &str) -> RemotingCommand {
    RemotingCommand::request(code::CONTROLLER_GET_NEXT_BROKER_ID)
        .with_ext("clusterName", cluster)
        .with_ext("brokerName", name)
}

pub fn apply_broker_id(cluster: &str, name: &str, id: i64, check_code: &str) -> RemotingCommand {
    RemotingCommand::request(code::CONTROLLER_APPLY_BROKER_ID)
        .with_ext("clusterName", cluster)
        .with_ext("brokerName", name)
        .with_ext("appliedBrokerId", id.to_string())
        .with_ext("registerCheckCode", check_code)
}

pub fn register_broker(cluster: &str, name: &str, id: i64, addr: &str) -> RemotingCommand {
    RemotingCommand::request(code::CONTROLLER_REGISTER_BROKER)
        .with_ext("clusterName", cluster)
        .with_ext("brokerName", name)
        .with_ext("brokerId", id.to_string())
        .with_ext("brokerAddress", addr)
        .with_ext("invokeTime", invoke_time())
}

pub fn elect_master(cluster: &str, name: &str, id: i64) -> RemotingCommand {
    RemotingCommand::request(code::CONTROLLER_ELECT_MASTER)
        .with_ext("clusterName", cluster)
        .with_ext("brokerName", name)
        .with_ext("brokerId", id.to_string())
        .with_ext("designateElect", "false")
        .with_ext("invokeTime", invoke_time())
}

pub fn get_replica_info(name: &str) -> RemotingCommand {
    RemotingCommand::request(code::CONTROLLER_GET_REPLICA_INFO).with_ext("brokerName", name)
}

/// The fields of one BROKER_HEARTBEAT (904).
#[derive(Debug, Clone)]
pub struct Heartbeat<'a> {
    pub cluster: &'a str,
    pub name: &'a str,
    pub addr: &'a str,
    pub id: i64,
    pub epoch: i32,
    pub max_offset: i64,
    pub confirm_offset: i64,
    pub timeout_millis: i64,
    pub election_priority: i32,
}

pub fn heartbeat(h: &Heartbeat<'_>) -> RemotingCommand {
    RemotingCommand::request(code::BROKER_HEARTBEAT)
        .with_ext("clusterName", h.cluster)
        .with_ext("brokerAddr", h.addr)
        .with_ext("brokerName", h.name)
        .with_ext("brokerId", h.id.to_string())
        .with_ext("epoch", h.epoch.to_string())
        .with_ext("maxOffset", h.max_offset.to_string())
        .with_ext("confirmOffset", h.confirm_offset.to_string())
        .with_ext("heartbeatTimeoutMills", h.timeout_millis.to_string())
        .with_ext("electionPriority", h.election_priority.to_string())
}

/// ALTER_SYNC_STATE_SET (1001): the proposed set with the **current** epoch.
pub fn alter_sync_state_set(
    name: &str,
    master_id: i64,
    master_epoch: i32,
    proposed: &SyncStateSet,
) -> RemotingCommand {
    RemotingCommand::request(code::CONTROLLER_ALTER_SYNC_STATE_SET)
        .with_ext("brokerName", name)
        .with_ext("masterBrokerId", master_id.to_string())
        .with_ext("masterEpoch", master_epoch.to_string())
        .with_ext("invokeTime", invoke_time())
        .with_body(remoting::body::to_json(proposed))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_java_key_order() {
        let s = SyncStateSet {
            sync_state_set: [2, 1].into_iter().collect(),
            sync_state_set_epoch: 3,
        };
        assert_eq!(
            String::from_utf8(remoting::body::to_json(&s)).unwrap(),
            r#"{"syncStateSet":[1,2],"syncStateSetEpoch":3}"#
        );
        let c = EpochEntryCache {
            broker_id: 0,
            broker_name: "broker-a".into(),
            cluster_name: "DefaultCluster".into(),
            epoch_list: vec![EpochEntry {
                end_offset: i64::MAX,
                epoch: 1,
                start_offset: 0,
            }],
            max_offset: 2048,
        };
        assert_eq!(
            String::from_utf8(remoting::body::to_json(&c)).unwrap(),
            r#"{"brokerId":0,"brokerName":"broker-a","clusterName":"DefaultCluster","epochList":[{"endOffset":9223372036854775807,"epoch":1,"startOffset":0}],"maxOffset":2048}"#
        );
    }

    #[test]
    fn notify_reads_header_and_body_and_rejects_junk() {
        let req = RemotingCommand::request(code::NOTIFY_BROKER_ROLE_CHANGED)
            .with_ext("masterAddress", "127.0.0.1:10911")
            .with_ext("masterEpoch", "4")
            .with_ext("syncStateSetEpoch", "5")
            .with_ext("masterBrokerId", "2")
            .with_body(&b"{\"syncStateSet\":[2],\"syncStateSetEpoch\":5}"[..]);
        let info = notify_request(&req).unwrap();
        assert_eq!(info.master_id, Some(2));
        assert_eq!(info.master_epoch, 4);
        assert_eq!(info.master_addr.as_deref(), Some("127.0.0.1:10911"));
        let set = info.sync_state_set.unwrap();
        assert_eq!(set.sync_state_set, [2].into_iter().collect());
        assert_eq!(set.sync_state_set_epoch, 5);

        let bad_epoch = req.clone().with_ext("masterEpoch", "x");
        assert_eq!(
            notify_request(&bad_epoch),
            Err(WireError::Field("masterEpoch"))
        );
        let bad_body = req.with_body(&b"{\"syncStateSet\":[\"a\"]"[..]);
        assert!(matches!(notify_request(&bad_body), Err(WireError::Body(_))));
    }

    #[test]
    fn heartbeat_uses_java_keys() {
        let h = heartbeat(&Heartbeat {
            cluster: "c",
            name: "b",
            addr: "127.0.0.1:1",
            id: 2,
            epoch: 3,
            max_offset: 4,
            confirm_offset: 5,
            timeout_millis: 10_000,
            election_priority: i32::MAX,
        });
        for (k, v) in [
            ("clusterName", "c"),
            ("brokerAddr", "127.0.0.1:1"),
            ("brokerName", "b"),
            ("brokerId", "2"),
            ("epoch", "3"),
            ("maxOffset", "4"),
            ("confirmOffset", "5"),
            ("heartbeatTimeoutMills", "10000"),
            ("electionPriority", "2147483647"),
        ] {
            assert_eq!(h.ext(k), Some(v), "{k}");
        }
    }
}
