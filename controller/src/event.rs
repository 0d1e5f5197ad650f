//! The controller's log entries (spec controller.md §1.3): a 2-byte big-endian
//! event id followed by the event as fastjson writes it.
//!
//! ```text
//! +--------+---------------------------------------------------------+
//! | id u16 | {"brokerName":"broker-a","eventType":"ELECT_MASTER_EVENT",|
//! |  BE    |  "newMasterBrokerId":1,"newMasterElected":true}          |
//! +--------+---------------------------------------------------------+
//! ```
//!
//! Java nodes bind the JSON to the events' constructor parameters by name,
//! so the keys must be exactly Java's field names; fastjson sorts them and
//! leaves nulls out, and `eventType` (a getter) carries the enum name, which
//! readers ignore.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Why an entry body could not be turned into an event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("entry body of {0} bytes is too short for an event id")]
    TooShort(usize),
    #[error("unknown event id {0}")]
    UnknownId(i16),
    #[error("event id {0} is never written to the log")]
    NotLogged(i16),
    #[error("event JSON: {0}")]
    Json(String),
    #[error("event {event}: field {field} missing or of the wrong type")]
    Field {
        event: &'static str,
        field: &'static str,
    },
}

/// One replicated state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Id 1: replace the SyncStateSet of a broker set.
    AlterSyncStateSet {
        broker_name: String,
        new_sync_state_set: BTreeSet<i64>,
    },
    /// Id 2: a broker got (or re-applied for) a controller id.
    ApplyBrokerId {
        cluster_name: Option<String>,
        broker_name: String,
        broker_address: Option<String>,
        new_broker_id: i64,
        register_check_code: Option<String>,
    },
    /// Id 3: a new master (or, not elected, no master).
    ElectMaster {
        broker_name: String,
        new_master_broker_id: Option<i64>,
        new_master_elected: bool,
    },
    /// Id 5: drop members (or, `None`/empty, the whole broker set).
    CleanBrokerData {
        broker_name: String,
        broker_id_set_to_clean: Option<BTreeSet<i64>>,
    },
    /// Id 6: a member registered from a new address.
    UpdateBrokerAddress {
        cluster_name: Option<String>,
        broker_name: String,
        broker_address: Option<String>,
        broker_id: i64,
    },
}

/// `EventType.READ_EVENT`: exists in Java but is never logged.
const READ_EVENT_ID: i16 = 4;

impl Event {
    /// `EventType.getId()`.
    pub fn id(&self) -> i16 {
        match self {
            Event::AlterSyncStateSet { .. } => 1,
            Event::ApplyBrokerId { .. } => 2,
            Event::ElectMaster { .. } => 3,
            Event::CleanBrokerData { .. } => 5,
            Event::UpdateBrokerAddress { .. } => 6,
        }
    }

    /// The `EventType` enum name fastjson writes as `eventType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::AlterSyncStateSet { .. } => "ALTER_SYNC_STATE_SET_EVENT",
            Event::ApplyBrokerId { .. } => "APPLY_BROKER_ID_EVENT",
            Event::ElectMaster { .. } => "ELECT_MASTER_EVENT",
            Event::CleanBrokerData { .. } => "CLEAN_BROKER_DATA_EVENT",
            Event::UpdateBrokerAddress { .. } => "UPDATE_BROKER_ADDRESS",
        }
    }

    pub fn broker_name(&self) -> &str {
        match self {
            Event::AlterSyncStateSet { broker_name, .. }
            | Event::ApplyBrokerId { broker_name, .. }
            | Event::ElectMaster { broker_name, .. }
            | Event::CleanBrokerData { broker_name, .. }
            | Event::UpdateBrokerAddress { broker_name, .. } => broker_name,
        }
    }

    /// The JSON text, keys sorted, nulls left out (fastjson's output).
    pub fn to_json(&self) -> String {
        let mut fields: Vec<(&str, Value)> = vec![("eventType", self.type_name().into())];
        let opt = |fields: &mut Vec<(&str, Value)>, k: &'static str, v: &Option<String>| {
            if let Some(v) = v {
                fields.push((k, Value::from(v.as_str())));
            }
        };
        match self {
            Event::AlterSyncStateSet {
                broker_name,
                new_sync_state_set,
            } => {
                fields.push(("brokerName", broker_name.as_str().into()));
                fields.push(("newSyncStateSet", ids_value(new_sync_state_set)));
            }
            Event::ApplyBrokerId {
                cluster_name,
                broker_name,
                broker_address,
                new_broker_id,
                register_check_code,
            } => {
                fields.push(("brokerName", broker_name.as_str().into()));
                opt(&mut fields, "clusterName", cluster_name);
                opt(&mut fields, "brokerAddress", broker_address);
                opt(&mut fields, "registerCheckCode", register_check_code);
                fields.push(("newBrokerId", (*new_broker_id).into()));
            }
            Event::ElectMaster {
                broker_name,
                new_master_broker_id,
                new_master_elected,
            } => {
                fields.push(("brokerName", broker_name.as_str().into()));
                if let Some(id) = new_master_broker_id {
                    fields.push(("newMasterBrokerId", (*id).into()));
                }
                fields.push(("newMasterElected", (*new_master_elected).into()));
            }
            Event::CleanBrokerData {
                broker_name,
                broker_id_set_to_clean,
            } => {
                fields.push(("brokerName", broker_name.as_str().into()));
                if let Some(ids) = broker_id_set_to_clean {
                    fields.push(("brokerIdSetToClean", ids_value(ids)));
                }
            }
            Event::UpdateBrokerAddress {
                cluster_name,
                broker_name,
                broker_address,
                broker_id,
            } => {
                fields.push(("brokerName", broker_name.as_str().into()));
                opt(&mut fields, "clusterName", cluster_name);
                opt(&mut fields, "brokerAddress", broker_address);
                fields.push(("brokerId", (*broker_id).into()));
            }
        }
        fields.sort_by(|a, b| a.0.cmp(b.0));
        let map: Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        Value::Object(map).to_string()
    }

    /// The log entry body: id then JSON (`EventSerializer.serialize`).
    pub fn encode(&self) -> Vec<u8> {
        let json = self.to_json();
        let mut out = Vec::with_capacity(2 + json.len());
        out.extend_from_slice(&self.id().to_be_bytes());
        out.extend_from_slice(json.as_bytes());
        out
    }

    /// Parses a non-empty entry body; keys in any order, `eventType` ignored.
    pub fn decode(body: &[u8]) -> Result<Event, EventError> {
        let (id, json) = match body {
            [a, b, rest @ ..] => (i16::from_be_bytes([*a, *b]), rest),
            _ => return Err(EventError::TooShort(body.len())),
        };
        let name: &'static str = match id {
            1 => "AlterSyncStateSetEvent",
            2 => "ApplyBrokerIdEvent",
            3 => "ElectMasterEvent",
            READ_EVENT_ID => return Err(EventError::NotLogged(id)),
            5 => "CleanBrokerDataEvent",
            6 => "UpdateBrokerAddressEvent",
            _ => return Err(EventError::UnknownId(id)),
        };
        let value: Value =
            serde_json::from_slice(json).map_err(|e| EventError::Json(e.to_string()))?;
        let Value::Object(obj) = value else {
            return Err(EventError::Json("not an object".into()));
        };
        let f = Fields {
            obj: &obj,
            event: name,
        };
        let broker_name = f.req_str("brokerName")?;
        Ok(match id {
            1 => Event::AlterSyncStateSet {
                broker_name,
                new_sync_state_set: f.ids("newSyncStateSet")?.unwrap_or_default(),
            },
            2 => Event::ApplyBrokerId {
                cluster_name: f.opt_str("clusterName")?,
                broker_name,
                broker_address: f.opt_str("brokerAddress")?,
                new_broker_id: f.long("newBrokerId")?.ok_or(f.missing("newBrokerId"))?,
                register_check_code: f.opt_str("registerCheckCode")?,
            },
            3 => Event::ElectMaster {
                broker_name,
                new_master_broker_id: f.long("newMasterBrokerId")?,
                new_master_elected: f.bool("newMasterElected")?.unwrap_or(false),
            },
            5 => Event::CleanBrokerData {
                broker_name,
                broker_id_set_to_clean: f.ids("brokerIdSetToClean")?,
            },
            _ => Event::UpdateBrokerAddress {
                cluster_name: f.opt_str("clusterName")?,
                broker_name,
                broker_address: f.opt_str("brokerAddress")?,
                broker_id: f.long("brokerId")?.ok_or(f.missing("brokerId"))?,
            },
        })
    }
}

fn ids_value(ids: &BTreeSet<i64>) -> Value {
    Value::Array(ids.iter().map(|i| Value::from(*i)).collect())
}

/// Lenient field access over a decoded event object.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    event: &'static str,
}

impl Fields<'_> {
    fn missing(&self, field: &'static str) -> EventError {
        EventError::Field {
            event: self.event,
            field,
        }
    }

    fn opt_str(&self, field: &'static str) -> Result<Option<String>, EventError> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(self.missing(field)),
        }
    }

    fn req_str(&self, field: &'static str) -> Result<String, EventError> {
        self.opt_str(field)?.ok_or(self.missing(field))
    }

    fn long(&self, field: &'static str) -> Result<Option<i64>, EventError> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => json_long(v).map(Some).ok_or(self.missing(field)),
        }
    }

    fn bool(&self, field: &'static str) -> Result<Option<bool>, EventError> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => Ok(Some(s.trim().eq_ignore_ascii_case("true"))),
            Some(_) => Err(self.missing(field)),
        }
    }

    fn ids(&self, field: &'static str) -> Result<Option<BTreeSet<i64>>, EventError> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| json_long(v).ok_or(self.missing(field)))
                .collect::<Result<BTreeSet<i64>, _>>()
                .map(Some),
            Some(_) => Err(self.missing(field)),
        }
    }
}

/// A JSON number (or numeric string, as fastjson accepts) as a long.
pub(crate) fn json_long(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn elect_golden_bytes() {
        let e = Event::ElectMaster {
            broker_name: "broker-a".into(),
            new_master_broker_id: Some(1),
            new_master_elected: true,
        };
        let mut want = vec![0u8, 3];
        want.extend_from_slice(
            br#"{"brokerName":"broker-a","eventType":"ELECT_MASTER_EVENT","newMasterBrokerId":1,"newMasterElected":true}"#,
        );
        assert_eq!(e.encode(), want);
        assert_eq!(Event::decode(&want).unwrap(), e);
    }

    #[test]
    fn not_elected_omits_the_id() {
        let e = Event::ElectMaster {
            broker_name: "b".into(),
            new_master_broker_id: None,
            new_master_elected: false,
        };
        assert_eq!(
            e.to_json(),
            r#"{"brokerName":"b","eventType":"ELECT_MASTER_EVENT","newMasterElected":false}"#
        );
    }

    #[test]
    fn every_kind_golden_and_round_trip() {
        let cases = vec![
            (
                Event::AlterSyncStateSet {
                    broker_name: "broker-a".into(),
                    new_sync_state_set: BTreeSet::from([2, 1]),
                },
                r#"{"brokerName":"broker-a","eventType":"ALTER_SYNC_STATE_SET_EVENT","newSyncStateSet":[1,2]}"#,
            ),
            (
                Event::ApplyBrokerId {
                    cluster_name: Some("DefaultCluster".into()),
                    broker_name: "broker-a".into(),
                    broker_address: Some("127.0.0.1:30911".into()),
                    new_broker_id: 1,
                    register_check_code: Some("127.0.0.1:30911;1726700000000".into()),
                },
                r#"{"brokerAddress":"127.0.0.1:30911","brokerName":"broker-a","clusterName":"DefaultCluster","eventType":"APPLY_BROKER_ID_EVENT","newBrokerId":1,"registerCheckCode":"127.0.0.1:30911;1726700000000"}"#,
            ),
            (
                Event::CleanBrokerData {
                    broker_name: "broker-a".into(),
                    broker_id_set_to_clean: Some(BTreeSet::from([1, 3])),
                },
                r#"{"brokerIdSetToClean":[1,3],"brokerName":"broker-a","eventType":"CLEAN_BROKER_DATA_EVENT"}"#,
            ),
            (
                Event::CleanBrokerData {
                    broker_name: "broker-a".into(),
                    broker_id_set_to_clean: None,
                },
                r#"{"brokerName":"broker-a","eventType":"CLEAN_BROKER_DATA_EVENT"}"#,
            ),
            (
                Event::UpdateBrokerAddress {
                    cluster_name: Some("c".into()),
                    broker_name: "broker-a".into(),
                    broker_address: Some("10.0.0.1:1".into()),
                    broker_id: 2,
                },
                r#"{"brokerAddress":"10.0.0.1:1","brokerId":2,"brokerName":"broker-a","clusterName":"c","eventType":"UPDATE_BROKER_ADDRESS"}"#,
            ),
        ];
        for (event, json) in cases {
            assert_eq!(event.to_json(), json);
            assert_eq!(Event::decode(&event.encode()).unwrap(), event);
        }
    }

    #[test]
    fn parses_java_ordered_and_sloppy_json() {
        let mut body = vec![0u8, 2];
        body.extend_from_slice(
            br#"{"eventType":"APPLY_BROKER_ID_EVENT","registerCheckCode":"a:1;5","newBrokerId":"2","clusterName":"c","brokerName":"b","brokerAddress":"a:1","extra":1}"#,
        );
        assert_eq!(
            Event::decode(&body).unwrap(),
            Event::ApplyBrokerId {
                cluster_name: Some("c".into()),
                broker_name: "b".into(),
                broker_address: Some("a:1".into()),
                new_broker_id: 2,
                register_check_code: Some("a:1;5".into()),
            }
        );
    }

    #[test]
    fn bad_bodies_are_errors() {
        assert_eq!(Event::decode(&[0]), Err(EventError::TooShort(1)));
        assert_eq!(
            Event::decode(&[0, 4, b'{', b'}']),
            Err(EventError::NotLogged(4))
        );
        assert_eq!(
            Event::decode(&[0, 9, b'{', b'}']),
            Err(EventError::UnknownId(9))
        );
        assert_eq!(Event::decode(&[0, 0]), Err(EventError::UnknownId(0)));
        assert!(matches!(
            Event::decode(&[0, 3, b'{']),
            Err(EventError::Json(_))
        ));
        assert!(matches!(
            Event::decode(b"\x00\x03{\"newMasterElected\":true}"),
            Err(EventError::Field { .. })
        ));
        assert!(matches!(
            Event::decode(b"\x00\x01[1]"),
            Err(EventError::Json(_))
        ));
        assert!(matches!(
            Event::decode(b"\x00\x02{\"brokerName\":\"b\"}"),
            Err(EventError::Field { .. })
        ));
    }
}
