//! Request and response bodies as fastjson writes and reads them (spec
//! controller.md §3): keys sorted, nulls left out, `brokerAddrs` keys
//! unquoted.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::event::json_long;

fn quote(s: &str) -> String {
    Value::from(s).to_string()
}

fn ids(set: &BTreeSet<i64>) -> String {
    let items: Vec<String> = set.iter().map(|i| i.to_string()).collect();
    format!("[{}]", items.join(","))
}

/// `SyncStateSet`: `{"syncStateSet":[1,2],"syncStateSetEpoch":3}`.
pub fn sync_state_set(set: &BTreeSet<i64>, epoch: i32) -> Vec<u8> {
    format!(
        "{{\"syncStateSet\":{},\"syncStateSetEpoch\":{epoch}}}",
        ids(set)
    )
    .into_bytes()
}

/// Parses a `SyncStateSet` body (1001's request); missing fields read as
/// empty / 0 as fastjson leaves them.
pub fn parse_sync_state_set(body: &[u8]) -> Result<(BTreeSet<i64>, i32), String> {
    let v: Value = remoting::body::from_fastjson(body).map_err(|e| e.to_string())?;
    let Value::Object(obj) = v else {
        return Err("not a JSON object".into());
    };
    let mut set = BTreeSet::new();
    match obj.get("syncStateSet") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                set.insert(json_long(item).ok_or("syncStateSet: not a number")?);
            }
        }
        Some(_) => return Err("syncStateSet: not an array".into()),
    }
    let epoch = match obj.get("syncStateSetEpoch") {
        None | Some(Value::Null) => 0,
        Some(v) => json_long(v)
            .and_then(|e| i32::try_from(e).ok())
            .ok_or("syncStateSetEpoch: not an int")?,
    };
    Ok((set, epoch))
}

/// Parses 1006's request body: a JSON array of broker names.
pub fn parse_name_list(body: &[u8]) -> Result<Vec<String>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Array(items) = v else {
        return Err("not a JSON array".into());
    };
    Ok(items
        .into_iter()
        .filter_map(|i| match i {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect())
}

/// `BrokerMemberGroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberGroup {
    pub cluster: Option<String>,
    pub broker_name: String,
    pub broker_addrs: BTreeMap<i64, String>,
}

fn member_group(g: &MemberGroup) -> String {
    let addrs: Vec<String> = g
        .broker_addrs
        .iter()
        .map(|(id, a)| format!("{id}:{}", quote(a)))
        .collect();
    let mut out = format!(
        "{{\"brokerAddrs\":{{{}}},\"brokerName\":{}",
        addrs.join(","),
        quote(&g.broker_name)
    );
    if let Some(c) = &g.cluster {
        out.push_str(&format!(",\"cluster\":{}", quote(c)));
    }
    out.push('}');
    out
}

/// `ElectMasterResponseBody`: the member group (absent on 2011) and a set.
pub fn elect_master_body(group: Option<&MemberGroup>, set: &BTreeSet<i64>) -> Vec<u8> {
    let mut out = String::from("{");
    if let Some(g) = group {
        out.push_str("\"brokerMemberGroup\":");
        out.push_str(&member_group(g));
        out.push(',');
    }
    out.push_str("\"syncStateSet\":");
    out.push_str(&ids(set));
    out.push('}');
    out.into_bytes()
}

/// `BrokerReplicasInfo.ReplicaIdentity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaIdentity {
    pub broker_name: String,
    pub broker_id: i64,
    pub broker_address: Option<String>,
    pub alive: bool,
}

/// `BrokerReplicasInfo.ReplicasInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicasInfoBody {
    pub master_broker_id: Option<i64>,
    pub master_address: Option<String>,
    pub master_epoch: i32,
    pub sync_state_set_epoch: i32,
    pub in_sync: Vec<ReplicaIdentity>,
    pub not_in_sync: Vec<ReplicaIdentity>,
}

fn replica_identity(r: &ReplicaIdentity) -> String {
    let mut out = format!("{{\"alive\":{}", r.alive);
    if let Some(a) = &r.broker_address {
        out.push_str(&format!(",\"brokerAddress\":{}", quote(a)));
    }
    out.push_str(&format!(
        ",\"brokerId\":{},\"brokerName\":{}}}",
        r.broker_id,
        quote(&r.broker_name)
    ));
    out
}

fn replica_list(list: &[ReplicaIdentity]) -> String {
    let items: Vec<String> = list.iter().map(replica_identity).collect();
    format!("[{}]", items.join(","))
}

/// `BrokerReplicasInfo`: `{"replicasInfoTable":{name:{...}}}`.
pub fn broker_replicas_info(table: &[(String, ReplicasInfoBody)]) -> Vec<u8> {
    let entries: Vec<String> = table
        .iter()
        .map(|(name, info)| {
            let mut out = format!("{}:{{\"inSyncReplicas\":", quote(name));
            out.push_str(&replica_list(&info.in_sync));
            if let Some(a) = &info.master_address {
                out.push_str(&format!(",\"masterAddress\":{}", quote(a)));
            }
            if let Some(id) = info.master_broker_id {
                out.push_str(&format!(",\"masterBrokerId\":{id}"));
            }
            out.push_str(&format!(
                ",\"masterEpoch\":{},\"notInSyncReplicas\":{},\"syncStateSetEpoch\":{}}}",
                info.master_epoch,
                replica_list(&info.not_in_sync),
                info.sync_state_set_epoch
            ));
            out
        })
        .collect();
    format!("{{\"replicasInfoTable\":{{{}}}}}", entries.join(",")).into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sync_state_set_golden_and_parse() {
        let b = sync_state_set(&BTreeSet::from([2, 1]), 3);
        assert_eq!(b, br#"{"syncStateSet":[1,2],"syncStateSetEpoch":3}"#);
        assert_eq!(
            parse_sync_state_set(&b).unwrap(),
            (BTreeSet::from([1, 2]), 3)
        );
        assert_eq!(parse_sync_state_set(b"{}").unwrap(), (BTreeSet::new(), 0));
        assert!(parse_sync_state_set(b"[").is_err());
        assert!(parse_sync_state_set(br#"{"syncStateSet":["x"]}"#).is_err());
    }

    #[test]
    fn elect_body_golden() {
        let g = MemberGroup {
            cluster: Some("DefaultCluster".into()),
            broker_name: "broker-a".into(),
            broker_addrs: BTreeMap::from([
                (1, "10.0.0.1:30911".to_owned()),
                (2, "10.0.0.2:30921".to_owned()),
            ]),
        };
        assert_eq!(
            String::from_utf8(elect_master_body(Some(&g), &BTreeSet::from([1]))).unwrap(),
            r#"{"brokerMemberGroup":{"brokerAddrs":{1:"10.0.0.1:30911",2:"10.0.0.2:30921"},"brokerName":"broker-a","cluster":"DefaultCluster"},"syncStateSet":[1]}"#
        );
        assert_eq!(
            elect_master_body(None, &BTreeSet::from([1, 2])),
            br#"{"syncStateSet":[1,2]}"#
        );
    }

    #[test]
    fn replicas_info_golden() {
        let r = |id, alive| ReplicaIdentity {
            broker_name: "broker-a".into(),
            broker_id: id,
            broker_address: Some(format!("10.0.0.{id}:30911")),
            alive,
        };
        let body = broker_replicas_info(&[(
            "broker-a".into(),
            ReplicasInfoBody {
                master_broker_id: Some(1),
                master_address: Some("10.0.0.1:30911".into()),
                master_epoch: 2,
                sync_state_set_epoch: 3,
                in_sync: vec![r(1, true)],
                not_in_sync: vec![r(2, false)],
            },
        )]);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"replicasInfoTable":{"broker-a":{"inSyncReplicas":[{"alive":true,"brokerAddress":"10.0.0.1:30911","brokerId":1,"brokerName":"broker-a"}],"masterAddress":"10.0.0.1:30911","masterBrokerId":1,"masterEpoch":2,"notInSyncReplicas":[{"alive":false,"brokerAddress":"10.0.0.2:30911","brokerId":2,"brokerName":"broker-a"}],"syncStateSetEpoch":3}}}"#
        );
        assert_eq!(broker_replicas_info(&[]), br#"{"replicasInfoTable":{}}"#);
    }

    #[test]
    fn name_list() {
        assert_eq!(
            parse_name_list(br#"["broker-a","b"]"#).unwrap(),
            vec!["broker-a".to_owned(), "b".to_owned()]
        );
        assert!(parse_name_list(b"{}").is_err());
    }
}
