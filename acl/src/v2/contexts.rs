//! The resources a request asks for, and with which actions (Java
//! `DefaultAuthorizationContextBuilder.build`, spec acl.md §3.3): a few codes
//! are spelled out, the rest follow their request header's
//! `@RocketMQAction`/`@RocketMQResource` annotations, kept here as a table.

use remoting::code::request_code as rq;
use remoting::RemotingCommand;

use super::decide::AuthError;
use super::model::{is_retry_topic, Action, Resource, ResourceType};

/// One resource the request needs, with the actions of which any one
/// suffices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub resource: Resource,
    pub actions: Vec<Action>,
}

fn asked(resource: Resource, actions: &[Action]) -> Asked {
    Asked {
        resource,
        actions: actions.to_vec(),
    }
}

use Action::*;
use ResourceType::{Cluster, Group, Topic};

/// A header class's annotations: the resource type of the class (only
/// Cluster yields a resource of its own), the actions, and the annotated
/// fields (wire name, type, splitter).
struct Annotated {
    code: i32,
    cluster: bool,
    actions: &'static [Action],
    fields: &'static [(&'static str, ResourceType, Option<char>)],
}

const fn ann(
    code: i32,
    cluster: bool,
    actions: &'static [Action],
    fields: &'static [(&'static str, ResourceType, Option<char>)],
) -> Annotated {
    Annotated {
        code,
        cluster,
        actions,
        fields,
    }
}

const GT: &[(&str, ResourceType, Option<char>)] =
    &[("consumerGroup", Group, None), ("topic", Topic, None)];
const T: &[(&str, ResourceType, Option<char>)] = &[("topic", Topic, None)];
const CN: &[(&str, ResourceType, Option<char>)] = &[("clusterName", Cluster, None)];
const NONE: &[(&str, ResourceType, Option<char>)] = &[];

/// 5.3.3's annotated request headers (codes handled by the explicit cases
/// below are left out).
const ANNOTATED: &[Annotated] = &[
    ann(200051, false, &[Sub], GT),   // ACK_MESSAGE
    ann(902, true, &[Update], NONE),  // ADD_BROKER
    ann(327, true, &[Update], NONE),  // ADD_WRITE_PERM_OF_BROKER
    ann(3001, true, &[Update], NONE), // AUTH_CREATE_USER
    ann(3002, true, &[Update], NONE), // AUTH_UPDATE_USER
    ann(3003, true, &[Update], NONE), // AUTH_DELETE_USER
    ann(3004, true, &[Get], NONE),    // AUTH_GET_USER
    ann(3005, true, &[Get], NONE),    // AUTH_LIST_USER
    ann(3006, true, &[Update], NONE), // AUTH_CREATE_ACL
    ann(3007, true, &[Update], NONE), // AUTH_UPDATE_ACL
    ann(3008, true, &[Update], NONE), // AUTH_DELETE_ACL
    ann(3009, true, &[Get], NONE),    // AUTH_GET_ACL
    ann(3010, true, &[Get], NONE),    // AUTH_LIST_ACL
    ann(904, true, &[Update], CN),    // BROKER_HEARTBEAT
    ann(200053, false, &[Sub], GT),   // CHANGE_MESSAGE_INVISIBLETIME
    ann(354, false, &[Get], T),       // CHECK_ROCKSDB_CQ_WRITE_PROGRESS
    ann(39, false, &[Pub], T),        // CHECK_TRANSACTION_STATE
    ann(1011, true, &[Update], CN),   // CLEAN_BROKER_DATA
    ann(
        314,
        false,
        &[Update],
        &[("destGroup", Group, None), ("topic", Topic, None)],
    ), // CLONE_GROUP_OFFSET
    ann(309, false, &[Sub], GT),      // CONSUME_MESSAGE_DIRECTLY
    ann(1001, true, &[Update], NONE), // CONTROLLER_ALTER_SYNC_STATE_SET
    ann(1013, true, &[Update], CN),   // CONTROLLER_APPLY_BROKER_ID
    ann(1002, true, &[Update], CN),   // CONTROLLER_ELECT_MASTER
    ann(1012, true, &[Get], CN),      // CONTROLLER_GET_NEXT_BROKER_ID
    ann(1004, true, &[Get], NONE),    // CONTROLLER_GET_REPLICA_INFO
    ann(1003, true, &[Update], CN),   // CONTROLLER_REGISTER_BROKER
    ann(102, true, &[Update], NONE),  // DELETE_KV_CONFIG
    ann(207, false, &[Delete], &[("groupName", Group, None)]), // DELETE_SUBSCRIPTIONGROUP
    ann(215, false, &[Delete], T),    // DELETE_TOPIC_IN_BROKER
    ann(216, true, &[Update], CN),    // DELETE_TOPIC_IN_NAMESRV
    ann(906, true, &[Update], NONE),  // EXCHANGE_BROKER_HA_INFO
    ann(355, true, &[Get], NONE),     // EXPORT_ROCKSDB_CONFIG_TO_JSON
    ann(328, true, &[Get], NONE),     // GET_ALL_PRODUCER_INFO
    ann(317, true, &[Get], NONE),     // GET_BROKER_CONSUME_STATS
    ann(901, false, &[Get], CN),      // GET_BROKER_MEMBER_GROUP
    ann(203, false, &[Get], &[("consumerGroup", Group, None)]), // GET_CONSUMER_CONNECTION_LIST
    ann(307, false, &[Get], &[("consumerGroup", Group, None)]), // GET_CONSUMER_RUNNING_INFO
    ann(
        208,
        false,
        &[Get],
        &[
            ("consumerGroup", Group, None),
            ("topic", Topic, None),
            ("topicList", Topic, Some(';')),
        ],
    ), // GET_CONSUME_STATS
    ann(32, false, &[Get], T),        // GET_EARLIEST_MSG_STORETIME
    ann(219, true, &[Get], NONE),     // GET_KVLIST_BY_NAMESPACE
    ann(101, true, &[Get], NONE),     // GET_KV_CONFIG
    ann(30, false, &[Get], T),        // GET_MAX_OFFSET
    ann(31, false, &[Get], T),        // GET_MIN_OFFSET
    ann(204, true, &[Get], NONE),     // GET_PRODUCER_CONNECTION_LIST
    ann(352, false, &[Get], &[("group", Group, None)]), // GET_SUBSCRIPTIONGROUP_CONFIG
    ann(351, false, &[Get], T),       // GET_TOPIC_CONFIG
    ann(202, false, &[Get], T),       // GET_TOPIC_STATS_INFO
    ann(
        223,
        false,
        &[Get],
        &[("topic", Topic, None), ("group", Group, None)],
    ), // INVOKE_BROKER_TO_GET_CONSUMER_STATUS
    ann(
        222,
        false,
        &[Update],
        &[("group", Group, None), ("topic", Topic, None)],
    ), // INVOKE_BROKER_TO_RESET_OFFSET
    ann(200054, false, &[Sub], GT),   // NOTIFICATION
    ann(1008, true, &[Update], NONE), // NOTIFY_BROKER_ROLE_CHANGED
    ann(40, false, &[Sub], &[("consumerGroup", Group, None)]), // NOTIFY_CONSUMER_IDS_CHANGED
    ann(905, true, &[Update], NONE),  // NOTIFY_MIN_BROKER_ID_CHANGE
    ann(200052, false, &[Sub], GT),   // PEEK_MESSAGE
    ann(200055, false, &[Get], GT),   // POLLING_INFO
    ann(200050, false, &[Sub], GT),   // POP_MESSAGE
    ann(
        326,
        false,
        &[Sub],
        &[("producerGroup", Group, None), ("topic", Topic, None)],
    ), // PUSH_REPLY_MESSAGE_TO_CLIENT
    ann(100, true, &[Update], NONE),  // PUT_KV_CONFIG
    ann(321, false, &[Get], GT),      // QUERY_CONSUME_QUEUE
    ann(
        303,
        false,
        &[Get],
        &[("topic", Topic, None), ("group", Group, None)],
    ), // QUERY_CONSUME_TIME_SPAN
    ann(
        308,
        false,
        &[Get],
        &[
            ("filterGroups", Group, Some(',')),
            ("compareGroup", Group, None),
            ("topic", Topic, None),
        ],
    ), // QUERY_CORRECTION_OFFSET
    ann(322, true, &[Get], CN),       // QUERY_DATA_VERSION
    ann(
        345,
        false,
        &[Get],
        &[("group", Group, None), ("topic", Topic, None)],
    ), // QUERY_SUBSCRIPTION_BY_CONSUMER
    ann(343, false, &[Get], &[("group", Group, None)]), // QUERY_TOPICS_BY_CONSUMER
    ann(300, false, &[Get], T),       // QUERY_TOPIC_CONSUME_BY_WHO
    ann(103, true, &[Update], CN),    // REGISTER_BROKER
    ann(217, true, &[Update], NONE),  // REGISTER_TOPIC_IN_NAMESRV
    ann(
        903,
        true,
        &[Update],
        &[("brokerClusterName", Cluster, None)],
    ), // REMOVE_BROKER
    ann(908, true, &[Update], NONE),  // RESET_MASTER_FLUSH_OFFSET
    ann(323, false, &[Update], T),    // RESUME_CHECK_HALF_MESSAGE
    ann(29, false, &[Get], T),        // SEARCH_OFFSET_BY_TIMESTAMP
    ann(104, true, &[Update], CN),    // UNREGISTER_BROKER
    ann(17, false, &[Create], T),     // UPDATE_AND_CREATE_TOPIC
    ann(
        353,
        false,
        &[Update],
        &[("group", Group, None), ("topic", Topic, None)],
    ), // UPDATE_AND_GET_GROUP_FORBIDDEN
    ann(315, true, &[Get], NONE),     // VIEW_BROKER_STATS_DATA
    ann(33, false, &[Get], T),        // VIEW_MESSAGE_BY_ID
    ann(205, true, &[Update], NONE),  // WIPE_WRITE_PERM_OF_BROKER
];

fn parse_error() -> AuthError {
    AuthError::Authorization("parse authorization context error.".into())
}

/// The resources `request` asks for. A request without ext fields asks for
/// nothing (Java returns before looking at the code).
pub fn contexts(request: &RemotingCommand, cluster_name: &str) -> Result<Vec<Asked>, AuthError> {
    let fields = request.fields();
    if fields.is_empty() {
        return Ok(Vec::new());
    }
    let get = |k: &str| request.ext(k);
    let need = |k: &str| get(k).ok_or_else(parse_error);
    let blank = |v: Option<&str>| v.map_or(true, |v| v.trim().is_empty());
    let mut out = Vec::new();
    match request.code {
        rq::GET_ROUTEINFO_BY_TOPIC => {
            let topic = need("topic")?;
            if is_retry_topic(topic) {
                out.push(asked(Resource::group(topic), &[Sub, Get]));
            } else {
                out.push(asked(Resource::topic(topic), &[Pub, Sub, Get]));
            }
        }
        rq::SEND_MESSAGE | rq::SEND_MESSAGE_V2 | rq::SEND_BATCH_MESSAGE => {
            let (t, g) = if request.code == rq::SEND_MESSAGE {
                ("topic", "group")
            } else {
                ("b", "a")
            };
            let topic = need(t)?;
            if is_retry_topic(topic) {
                let group = if blank(get(g)) { topic } else { need(g)? };
                out.push(asked(Resource::group(group), &[Sub]));
            } else {
                out.push(asked(Resource::topic(topic), &[Pub]));
            }
        }
        370 => out.push(asked(Resource::topic(need("topic")?), &[Pub])),
        rq::END_TRANSACTION => {
            if !blank(get("topic")) {
                out.push(asked(Resource::topic(need("topic")?), &[Pub]));
            }
        }
        rq::CONSUMER_SEND_MSG_BACK => out.push(asked(Resource::group(need("group")?), &[Sub])),
        rq::PULL_MESSAGE => {
            let topic = need("topic")?;
            if !is_retry_topic(topic) {
                out.push(asked(Resource::topic(topic), &[Sub]));
            }
            out.push(asked(Resource::group(need("consumerGroup")?), &[Sub]));
        }
        rq::QUERY_MESSAGE => out.push(asked(Resource::topic(need("topic")?), &[Sub, Get])),
        rq::HEART_BEAT => heartbeat(&request.body, &mut out)?,
        rq::UNREGISTER_CLIENT => {
            if !blank(get("consumerGroup")) {
                out.push(asked(Resource::group(need("consumerGroup")?), &[Sub]));
            }
        }
        rq::GET_CONSUMER_LIST_BY_GROUP => {
            out.push(asked(Resource::group(need("consumerGroup")?), &[Sub, Get]))
        }
        rq::QUERY_CONSUMER_OFFSET | rq::UPDATE_CONSUMER_OFFSET => {
            let actions: &[Action] = if request.code == rq::QUERY_CONSUMER_OFFSET {
                &[Sub, Get]
            } else {
                &[Sub, Update]
            };
            let topic = need("topic")?;
            if !is_retry_topic(topic) {
                out.push(asked(Resource::topic(topic), actions));
            }
            out.push(asked(Resource::group(need("consumerGroup")?), actions));
        }
        rq::LOCK_BATCH_MQ | rq::UNLOCK_BATCH_MQ => lock_batch(&request.body, &mut out)?,
        code => {
            let Some(a) = ANNOTATED.iter().find(|a| a.code == code) else {
                return Ok(out);
            };
            for (name, kind, splitter) in a.fields {
                let Some(value) = get(name) else { continue };
                let values: Vec<&str> = match splitter {
                    // Commons `StringUtils.split`: empty pieces dropped.
                    Some(c) => value.split(*c).filter(|v| !v.is_empty()).collect(),
                    None => vec![value],
                };
                for v in values {
                    let resource = if *kind == Topic && is_retry_topic(v) {
                        Resource::group(v)
                    } else {
                        Resource::literal(*kind, v)
                    };
                    out.push(asked(resource, a.actions));
                }
            }
            if out.is_empty() && a.cluster {
                out.push(asked(Resource::literal(Cluster, cluster_name), a.actions));
            }
        }
    }
    Ok(out)
}

/// HEART_BEAT: each consumer's group (Sub) and its non-retry subscribed
/// topics (Sub), from the JSON body.
fn heartbeat(body: &[u8], out: &mut Vec<Asked>) -> Result<(), AuthError> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| parse_error())?;
    let Some(consumers) = v.get("consumerDataSet").and_then(|c| c.as_array()) else {
        return Ok(());
    };
    for c in consumers {
        let group = c
            .get("groupName")
            .and_then(|g| g.as_str())
            .unwrap_or_default();
        out.push(asked(Resource::group(group), &[Sub]));
        let subs = c.get("subscriptionDataSet").and_then(|s| s.as_array());
        for s in subs.into_iter().flatten() {
            let topic = s.get("topic").and_then(|t| t.as_str()).unwrap_or_default();
            if !is_retry_topic(topic) {
                out.push(asked(Resource::topic(topic), &[Sub]));
            }
        }
    }
    Ok(())
}

/// LOCK/UNLOCK_BATCH_MQ: the group (Sub) and each non-retry queue topic (Sub).
fn lock_batch(body: &[u8], out: &mut Vec<Asked>) -> Result<(), AuthError> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| parse_error())?;
    let group = v
        .get("consumerGroup")
        .and_then(|g| g.as_str())
        .unwrap_or_default();
    out.push(asked(Resource::group(group), &[Sub]));
    let queues = v.get("mqSet").and_then(|m| m.as_array());
    for q in queues.into_iter().flatten() {
        let topic = q.get("topic").and_then(|t| t.as_str()).unwrap_or_default();
        if !is_retry_topic(topic) {
            out.push(asked(Resource::topic(topic), &[Sub]));
        }
    }
    Ok(())
}
