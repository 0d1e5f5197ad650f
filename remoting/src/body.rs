//! JSON bodies shared by the name server, the broker and their clients.
//!
//! Java writes these with fastjson: property names from getters, nulls left
//! out. Reading is lenient (missing fields take defaults, unknown fields are
//! ignored, and fastjson's unquoted integer map keys are accepted through
//! [`from_fastjson`]); writing is compact standard JSON.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// `PermName` bits.
pub mod perm {
    pub const PRIORITY: i32 = 8;
    pub const READ: i32 = 4;
    pub const WRITE: i32 = 2;
    pub const INHERIT: i32 = 1;

    pub fn is_readable(perm: i32) -> bool {
        perm & READ != 0
    }
    pub fn is_writeable(perm: i32) -> bool {
        perm & WRITE != 0
    }
    pub fn is_inherited(perm: i32) -> bool {
        perm & INHERIT != 0
    }
}

/// Parses a body written by fastjson, which may carry integer map keys
/// without quotes (`{0:"127.0.0.1:10911"}`).
pub fn from_fastjson<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(first) => {
            let quoted = quote_numeric_keys(bytes);
            serde_json::from_slice(&quoted).map_err(|_| first)
        }
    }
}

/// Quotes bare numeric object keys outside strings: `{0:` -> `{"0":`.
fn quote_numeric_keys(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len() + 16);
    let mut i = 0;
    let mut in_string = false;
    while i < src.len() {
        let b = src[i];
        if in_string {
            out.push(b);
            if b == b'\\' && i + 1 < src.len() {
                out.push(src[i + 1]);
                i += 1;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                out.push(b);
                i += 1;
            }
            b'{' | b',' => {
                out.push(b);
                i += 1;
                let ws_start = i;
                while i < src.len() && src[i].is_ascii_whitespace() {
                    i += 1;
                }
                out.extend_from_slice(&src[ws_start..i]);
                let key_start = i;
                if i < src.len() && src[i] == b'-' {
                    i += 1;
                }
                while i < src.len() && src[i].is_ascii_digit() {
                    i += 1;
                }
                let mut j = i;
                while j < src.len() && src[j].is_ascii_whitespace() {
                    j += 1;
                }
                if i > key_start && j < src.len() && src[j] == b':' {
                    out.push(b'"');
                    out.extend_from_slice(&src[key_start..i]);
                    out.push(b'"');
                } else {
                    out.extend_from_slice(&src[key_start..i]);
                }
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Null, a missing field and the JSON value all read as the default.
fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DataVersion {
    pub counter: i64,
    pub state_version: i64,
    pub timestamp: i64,
}

impl DataVersion {
    pub fn now() -> Self {
        DataVersion {
            counter: 0,
            state_version: 0,
            timestamp: now_millis(),
        }
    }

    /// A change: Java `DataVersion.nextVersion`.
    pub fn next(&mut self) {
        self.counter += 1;
        self.timestamp = now_millis();
    }
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfig {
    #[serde(deserialize_with = "null_default")]
    pub attributes: BTreeMap<String, String>,
    pub order: bool,
    pub perm: i32,
    pub read_queue_nums: i32,
    pub topic_filter_type: String,
    pub topic_name: String,
    pub topic_sys_flag: i32,
    pub write_queue_nums: i32,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            attributes: BTreeMap::new(),
            order: false,
            perm: perm::READ | perm::WRITE,
            read_queue_nums: 16,
            topic_filter_type: "SINGLE_TAG".to_owned(),
            topic_name: String::new(),
            topic_sys_flag: 0,
            write_queue_nums: 16,
        }
    }
}

impl TopicConfig {
    pub fn new(name: impl Into<String>, read: i32, write: i32, perm: i32) -> Self {
        TopicConfig {
            topic_name: name.into(),
            read_queue_nums: read,
            write_queue_nums: write,
            perm,
            ..Default::default()
        }
    }
}

/// `TopicConfigAndMappingSerializeWrapper` (a superset of
/// `TopicConfigSerializeWrapper`); also the format of the broker's `topics.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfigSerializeWrapper {
    #[serde(deserialize_with = "null_default")]
    pub topic_config_table: BTreeMap<String, TopicConfig>,
    pub data_version: DataVersion,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_queue_mapping_info_map: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_queue_mapping_detail_map: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping_data_version: Option<DataVersion>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegisterBrokerBody {
    pub topic_config_serialize_wrapper: TopicConfigSerializeWrapper,
    #[serde(deserialize_with = "null_default")]
    pub filter_server_list: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueueData {
    pub broker_name: String,
    pub perm: i32,
    pub read_queue_nums: i32,
    /// Go's struct spells it `topicSynFlag`; both are accepted.
    #[serde(alias = "topicSynFlag")]
    pub topic_sys_flag: i32,
    pub write_queue_nums: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerData {
    /// Broker id -> `ip:port`; id 0 is the master.
    #[serde(deserialize_with = "null_default")]
    pub broker_addrs: BTreeMap<i64, String>,
    pub broker_name: String,
    pub cluster: String,
    pub enable_acting_master: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicRouteData {
    #[serde(deserialize_with = "null_default")]
    pub broker_datas: Vec<BrokerData>,
    #[serde(deserialize_with = "null_default")]
    pub filter_server_table: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub queue_datas: Vec<QueueData>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterInfo {
    #[serde(deserialize_with = "null_default")]
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    #[serde(deserialize_with = "null_default")]
    pub cluster_addr_table: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KvTable {
    #[serde(deserialize_with = "null_default")]
    pub table: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicList {
    #[serde(deserialize_with = "null_default")]
    pub topic_list: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_addr: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageQueue {
    pub broker_name: String,
    pub queue_id: i32,
    pub topic: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HeartbeatData {
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(deserialize_with = "null_default")]
    pub producer_data_set: Vec<ProducerData>,
    #[serde(deserialize_with = "null_default")]
    pub consumer_data_set: Vec<ConsumerData>,
    #[serde(deserialize_with = "null_default")]
    pub heartbeat_fingerprint: i64,
    #[serde(deserialize_with = "null_default")]
    pub without_sub: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerData {
    pub group_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerData {
    pub group_name: String,
    #[serde(deserialize_with = "null_default")]
    pub consume_type: String,
    #[serde(deserialize_with = "null_default")]
    pub message_model: String,
    #[serde(deserialize_with = "null_default")]
    pub consume_from_where: String,
    #[serde(deserialize_with = "null_default")]
    pub subscription_data_set: Vec<SubscriptionData>,
    #[serde(deserialize_with = "null_default")]
    pub unit_mode: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionData {
    #[serde(deserialize_with = "null_default")]
    pub class_filter_mode: bool,
    pub topic: String,
    #[serde(deserialize_with = "null_default")]
    pub sub_string: String,
    #[serde(deserialize_with = "null_default")]
    pub tags_set: Vec<String>,
    /// Java sends numbers, Go sends strings.
    #[serde(deserialize_with = "lenient_i32_list")]
    pub code_set: Vec<i32>,
    #[serde(deserialize_with = "null_default")]
    pub sub_version: i64,
    /// Absent in old and sloppy clients: means TAG.
    #[serde(deserialize_with = "null_default")]
    pub expression_type: String,
}

fn lenient_i32_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i32>, D::Error> {
    let raw = Option::<Vec<serde_json::Value>>::deserialize(d)?.unwrap_or_default();
    Ok(raw
        .iter()
        .filter_map(|v| match v {
            serde_json::Value::Number(n) => n.as_i64().map(|n| n as i32),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .collect())
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LockBatchRequestBody {
    pub consumer_group: String,
    pub client_id: String,
    #[serde(deserialize_with = "null_default")]
    pub only_this_broker: bool,
    #[serde(deserialize_with = "null_default")]
    pub mq_set: Vec<MessageQueue>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LockBatchResponseBody {
    #[serde(rename = "lockOKMQSet")]
    pub lock_ok_mq_set: Vec<MessageQueue>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GetConsumerListByGroupResponseBody {
    pub consumer_id_list: Vec<String>,
}

/// Compact JSON bytes.
pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fastjson_unquoted_keys_are_accepted() {
        let text = br#"{"brokerAddrTable":{"b":{"brokerAddrs":{0:"127.0.0.1:10911",1:"127.0.0.1:10921"},"brokerName":"b","cluster":"c"}},"clusterAddrTable":{"c":["b"]}}"#;
        let info: ClusterInfo = from_fastjson(text).unwrap();
        assert_eq!(
            info.broker_addr_table["b"].broker_addrs[&1],
            "127.0.0.1:10921"
        );
        // Strings that merely look like keys are left alone.
        let kv: KvTable = from_fastjson(br#"{"table":{"a":"{0:1}"}}"#).unwrap();
        assert_eq!(kv.table["a"], "{0:1}");
    }

    #[test]
    fn route_data_is_compact_standard_json() {
        let mut addrs = BTreeMap::new();
        addrs.insert(0, "127.0.0.1:10911".to_owned());
        let route = TopicRouteData {
            broker_datas: vec![BrokerData {
                broker_addrs: addrs,
                broker_name: "b".into(),
                cluster: "c".into(),
                ..Default::default()
            }],
            queue_datas: vec![QueueData {
                broker_name: "b".into(),
                perm: 6,
                read_queue_nums: 4,
                write_queue_nums: 4,
                topic_sys_flag: 0,
            }],
            ..Default::default()
        };
        let text = String::from_utf8(to_json(&route)).unwrap();
        assert_eq!(
            text,
            r#"{"brokerDatas":[{"brokerAddrs":{"0":"127.0.0.1:10911"},"brokerName":"b","cluster":"c","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"b","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#
        );
    }

    #[test]
    fn sloppy_heartbeats_parse() {
        let go = br#"{"clientID":"127.0.0.1@1","producerDataSet":null,"consumerDataSet":[{"groupName":"g","subscriptionDataSet":[{"topic":"T","subString":"a||b","tagsSet":["a","b"],"codeSet":["97","98"],"subVersion":1}]}]}"#;
        let hb: HeartbeatData = serde_json::from_slice(go).unwrap();
        let sub = &hb.consumer_data_set[0].subscription_data_set[0];
        assert_eq!(sub.code_set, vec![97, 98]);
        assert_eq!(sub.expression_type, "");
        assert!(hb.producer_data_set.is_empty());
    }
}
