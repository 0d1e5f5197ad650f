//! Route and cluster bodies in the two JSON forms Java's name server writes.
//!
//! * Standard: `brokerAddrs` keys quoted (`{"0":"host:port"}`); what
//!   GET_ROUTEINFO_BY_TOPIC sends to version >= V4_9_4 or when asked with
//!   `acceptStandardJsonOnly=true`.
//! * Legacy: fastjson's default for a `Map<Long, String>`, keys unquoted
//!   (`{0:"host:port"}`); sent to older clients (the Go client, version 317,
//!   cuts `brokerAddrs` apart by hand and accepts either) and always for
//!   GET_BROKER_CLUSTER_INFO and GET_BROKER_MEMBER_GROUP.
//!
//! Both are compact with no whitespace, properties sorted by name like
//! fastjson, nulls left out.

use std::collections::BTreeMap;

use remoting::body::{BrokerData, ClusterInfo, QueueData};
use serde_json::Value;

use crate::route::{BrokerMemberGroup, TopicRoute};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonForm {
    Standard,
    Legacy,
}

/// `MQVersion.Version.V4_9_4`: first version answered with standard JSON.
pub const V4_9_4: i32 = 401;

struct Writer {
    out: String,
    form: JsonForm,
}

impl Writer {
    fn new(form: JsonForm) -> Self {
        Writer {
            out: String::with_capacity(256),
            form,
        }
    }

    fn str(&mut self, s: &str) {
        // serde_json escapes exactly what JSON needs; it cannot fail for a &str.
        match serde_json::to_string(s) {
            Ok(q) => self.out.push_str(&q),
            Err(_) => self.out.push_str("\"\""),
        }
    }

    fn key(&mut self, k: &str) {
        self.str(k);
        self.out.push(':');
    }

    fn long_key(&mut self, k: i64) {
        match self.form {
            JsonForm::Standard => {
                self.out.push('"');
                self.out.push_str(&k.to_string());
                self.out.push('"');
            }
            JsonForm::Legacy => self.out.push_str(&k.to_string()),
        }
        self.out.push(':');
    }

    fn value(&mut self, v: &Value) {
        self.out.push_str(&v.to_string());
    }

    fn list<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Self, &T)) {
        self.out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            each(self, item);
        }
        self.out.push(']');
    }

    /// An object of `map`'s entries, each written (key and value) by `entry`.
    fn object<K, V>(&mut self, map: &BTreeMap<K, V>, mut entry: impl FnMut(&mut Self, &K, &V)) {
        self.out.push('{');
        for (i, (k, v)) in map.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            entry(self, k, v);
        }
        self.out.push('}');
    }

    fn broker_addrs(&mut self, addrs: &BTreeMap<i64, String>) {
        self.object(addrs, |w, id, addr| {
            w.long_key(*id);
            w.str(addr);
        });
    }

    fn broker_data(&mut self, bd: &BrokerData) {
        self.out.push('{');
        self.key("brokerAddrs");
        self.broker_addrs(&bd.broker_addrs);
        self.out.push(',');
        self.key("brokerName");
        self.str(&bd.broker_name);
        self.out.push(',');
        self.key("cluster");
        self.str(&bd.cluster);
        self.out.push(',');
        self.key("enableActingMaster");
        self.out.push_str(if bd.enable_acting_master {
            "true"
        } else {
            "false"
        });
        if let Some(zone) = &bd.zone_name {
            self.out.push(',');
            self.key("zoneName");
            self.str(zone);
        }
        self.out.push('}');
    }

    fn queue_data(&mut self, qd: &QueueData) {
        self.out.push_str("{\"brokerName\":");
        self.str(&qd.broker_name);
        self.out.push_str(&format!(
            ",\"perm\":{},\"readQueueNums\":{},\"topicSysFlag\":{},\"writeQueueNums\":{}}}",
            qd.perm, qd.read_queue_nums, qd.topic_sys_flag, qd.write_queue_nums
        ));
    }

    fn finish(self) -> Vec<u8> {
        self.out.into_bytes()
    }
}

/// The GET_ROUTEINFO_BY_TOPIC body (`TopicRouteData`).
pub fn route(route: &TopicRoute, form: JsonForm) -> Vec<u8> {
    let mut w = Writer::new(form);
    w.out.push('{');
    w.key("brokerDatas");
    w.list(&route.broker_datas, Writer::broker_data);
    w.out.push(',');
    w.key("filterServerTable");
    w.object(&route.filter_server_table, |w, addr, servers| {
        w.key(addr);
        w.list(servers, |w, s| w.str(s));
    });
    if let Some(conf) = &route.order_topic_conf {
        w.out.push(',');
        w.key("orderTopicConf");
        w.str(conf);
    }
    w.out.push(',');
    w.key("queueDatas");
    w.list(&route.queue_datas, Writer::queue_data);
    if let Some(mappings) = &route.topic_queue_mapping_by_broker {
        // Passed through as the broker sent it, in standard JSON: every
        // client parser accepts quoted keys.
        w.out.push(',');
        w.key("topicQueueMappingByBroker");
        w.object(mappings, |w, bname, info| {
            w.key(bname);
            w.value(info);
        });
    }
    w.out.push('}');
    w.finish()
}

/// The GET_BROKER_CLUSTER_INFO body; Java always writes the legacy form.
pub fn cluster_info(info: &ClusterInfo, form: JsonForm) -> Vec<u8> {
    let mut w = Writer::new(form);
    w.out.push('{');
    w.key("brokerAddrTable");
    w.object(&info.broker_addr_table, |w, name, bd| {
        w.key(name);
        w.broker_data(bd);
    });
    w.out.push(',');
    w.key("clusterAddrTable");
    w.object(&info.cluster_addr_table, |w, cluster, names| {
        w.key(cluster);
        w.list(names, |w, n| w.str(n));
    });
    w.out.push('}');
    w.finish()
}

/// The GET_BROKER_MEMBER_GROUP body (`GetBrokerMemberGroupResponseBody`).
pub fn broker_member_group(group: &BrokerMemberGroup, form: JsonForm) -> Vec<u8> {
    let mut w = Writer::new(form);
    w.out.push_str("{\"brokerMemberGroup\":{");
    w.key("brokerAddrs");
    w.broker_addrs(&group.broker_addrs);
    w.out.push(',');
    w.key("brokerName");
    w.str(&group.broker_name);
    w.out.push(',');
    w.key("cluster");
    w.str(&group.cluster);
    w.out.push_str("}}");
    w.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use remoting::body::{from_fastjson, TopicRouteData};

    fn sample() -> TopicRoute {
        let mut addrs = BTreeMap::new();
        addrs.insert(0, "127.0.0.1:10911".to_owned());
        addrs.insert(1, "127.0.0.1:10921".to_owned());
        TopicRoute {
            broker_datas: vec![
                BrokerData {
                    broker_addrs: addrs,
                    broker_name: "b\"a".into(),
                    cluster: "c".into(),
                    ..Default::default()
                },
                BrokerData {
                    broker_addrs: BTreeMap::from([(0, "h:1".to_owned())]),
                    broker_name: "z".into(),
                    cluster: "c".into(),
                    enable_acting_master: true,
                    zone_name: Some("zone1".into()),
                },
            ],
            queue_datas: vec![QueueData {
                broker_name: "b\"a".into(),
                perm: 6,
                read_queue_nums: 4,
                write_queue_nums: 2,
                topic_sys_flag: 1,
            }],
            order_topic_conf: Some("b:4".into()),
            ..Default::default()
        }
    }

    fn as_route_data(r: &TopicRoute) -> TopicRouteData {
        TopicRouteData {
            broker_datas: r.broker_datas.clone(),
            filter_server_table: r.filter_server_table.clone(),
            order_topic_conf: r.order_topic_conf.clone(),
            queue_datas: r.queue_datas.clone(),
        }
    }

    #[test]
    fn standard_form_is_what_serde_writes() {
        let r = sample();
        assert_eq!(
            String::from_utf8(route(&r, JsonForm::Standard)).unwrap(),
            String::from_utf8(remoting::body::to_json(&as_route_data(&r))).unwrap()
        );
    }

    #[test]
    fn legacy_form_has_bare_integer_keys_and_no_whitespace() {
        let r = sample();
        let text = String::from_utf8(route(&r, JsonForm::Legacy)).unwrap();
        assert!(
            text.contains(r#""brokerAddrs":{0:"127.0.0.1:10911",1:"127.0.0.1:10921"}"#),
            "{text}"
        );
        assert!(!text.contains(' ') && !text.contains('\n'), "{text}");
        let back: TopicRouteData = from_fastjson(text.as_bytes()).unwrap();
        assert_eq!(back, as_route_data(&r));
    }

    #[test]
    fn go_client_string_surgery_works_on_both_forms() {
        // Go: take the raw brokerAddrs object, drop the braces, split on ',',
        // split each at the first ':', strip '"', parse the key as an integer.
        for form in [JsonForm::Standard, JsonForm::Legacy] {
            let text = String::from_utf8(route(&sample(), form)).unwrap();
            let start = text.find("\"brokerAddrs\":").unwrap() + "\"brokerAddrs\":".len();
            let end = start + text[start..].find('}').unwrap();
            let inner = &text[start + 1..end];
            let parsed: Vec<(i64, String)> = inner
                .split(',')
                .map(|kv| {
                    let (k, v) = kv.split_once(':').unwrap();
                    (k.replace('"', "").parse().unwrap(), v.replace('"', ""))
                })
                .collect();
            assert_eq!(
                parsed,
                vec![
                    (0, "127.0.0.1:10911".to_owned()),
                    (1, "127.0.0.1:10921".to_owned())
                ]
            );
        }
    }

    #[test]
    fn cluster_info_legacy() {
        let r = sample();
        let info = ClusterInfo {
            broker_addr_table: r
                .broker_datas
                .iter()
                .map(|b| (b.broker_name.clone(), b.clone()))
                .collect(),
            cluster_addr_table: BTreeMap::from([(
                "c".to_owned(),
                vec!["b\"a".to_owned(), "z".to_owned()],
            )]),
        };
        let text = String::from_utf8(cluster_info(&info, JsonForm::Legacy)).unwrap();
        assert!(
            text.starts_with(r#"{"brokerAddrTable":{"b\"a":{"brokerAddrs":{0:"#),
            "{text}"
        );
        assert_eq!(from_fastjson::<ClusterInfo>(text.as_bytes()).unwrap(), info);
        let std = cluster_info(&info, JsonForm::Standard);
        assert_eq!(std, remoting::body::to_json(&info));
    }

    #[test]
    fn member_group_and_mappings() {
        let g = BrokerMemberGroup {
            cluster: "c".into(),
            broker_name: "b".into(),
            broker_addrs: BTreeMap::from([(0, "h:1".to_owned()), (2, "h:2".to_owned())]),
        };
        assert_eq!(
            String::from_utf8(broker_member_group(&g, JsonForm::Legacy)).unwrap(),
            r#"{"brokerMemberGroup":{"brokerAddrs":{0:"h:1",2:"h:2"},"brokerName":"b","cluster":"c"}}"#
        );
        let mut r = sample();
        r.topic_queue_mapping_by_broker = Some(BTreeMap::from([(
            "b".to_owned(),
            serde_json::json!({"bname":"b","epoch":1}),
        )]));
        let v: Value = serde_json::from_slice(&route(&r, JsonForm::Standard)).unwrap();
        assert_eq!(v["topicQueueMappingByBroker"]["b"]["epoch"], 1);
    }
}
