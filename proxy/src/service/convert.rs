//! gRPC messages to and from the remoting form (Java's `GrpcConverter` and
//! `SendMessageActivity.buildMessage`): system properties become Java
//! `MessageConst` properties, and back.

use std::collections::HashMap;

use bytes::Bytes;

use crate::backend::{OutgoingMessage, StoredMessage};
use crate::error::ProxyError;
use crate::pb::{self, Code};

use super::ServiceConfig;

pub const PROPERTY_KEYS: &str = "KEYS";
pub const PROPERTY_TAGS: &str = "TAGS";
pub const PROPERTY_UNIQ_KEY: &str = "UNIQ_KEY";
pub const PROPERTY_TRANSACTION_PREPARED: &str = "TRAN_MSG";
pub const PROPERTY_PRODUCER_GROUP: &str = "PGROUP";
pub const PROPERTY_SHARDING_KEY: &str = "__SHARDINGKEY";
pub const PROPERTY_TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
pub const PROPERTY_TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
/// Set by the broker's timer when it delivers a timed message (its due time).
pub const PROPERTY_TIMER_OUT_MS: &str = "TIMER_OUT_MS";
pub const PROPERTY_DELAY_TIME_LEVEL: &str = "DELAY";
pub const PROPERTY_START_DELIVER_TIME: &str = "__STARTDELIVERTIME";
pub const PROPERTY_CHECK_IMMUNITY_TIME: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
pub const PROPERTY_TRACE_CONTEXT: &str = "TRACE_CONTEXT";
pub const PROPERTY_RECONSUME_TIME: &str = "RECONSUME_TIME";

/// Java `MessageSysFlag.COMPRESSED_FLAG`.
pub const SYS_FLAG_COMPRESSED: i32 = 0x1;
/// Java `MessageSysFlag.TRANSACTION_PREPARED_TYPE`.
pub const SYS_FLAG_TRANSACTION_PREPARED: i32 = 0x1 << 2;

/// Java `MessageConst.STRING_HASH_SET`: keys a user property may not use,
/// and that are not handed back as user properties.
pub const RESERVED_KEYS: &[&str] = &[
    "KEYS",
    "TAGS",
    "WAIT",
    "DELAY",
    "RETRY_TOPIC",
    "REAL_TOPIC",
    "REAL_QID",
    "TRAN_MSG",
    "PGROUP",
    "MIN_OFFSET",
    "MAX_OFFSET",
    "BUYER_ID",
    "ORIGIN_MESSAGE_ID",
    "TRANSFER_FLAG",
    "CORRECTION_FLAG",
    "MQ2_FLAG",
    "RECONSUME_TIME",
    "MSG_REGION",
    "TRACE_ON",
    "UNIQ_KEY",
    "MAX_RECONSUME_TIMES",
    "CONSUME_START_TIME",
    "POP_CK",
    "POP_CK_OFFSET",
    "1ST_POP_TIME",
    "TRAN_PREPARED_QUEUE_OFFSET",
    "DUP_INFO",
    "EXTEND_UNIQ_INFO",
    "INSTANCE_ID",
    "CORRELATION_ID",
    "REPLY_TO_CLIENT",
    "TTL",
    "ARRIVE_TIME",
    "PUSH_REPLY_TIME",
    "CLUSTER",
    "MSG_TYPE",
    "INNER_MULTI_QUEUE_OFFSET",
    "TIMER_DELAY_LEVEL",
    "TIMER_DELIVER_MS",
    "TIMER_DELAY_SEC",
    "TIMER_DELAY_MS",
    "TIMER_OUT_MS",
    "TIMER_ENQUEUE_MS",
    "TIMER_DEQUEUE_MS",
    "TIMER_ROLL_TIMES",
    "TIMER_DEL_UNIQKEY",
    "__SHARDINGKEY",
    "CHECK_IMMUNITY_TIME_IN_SECONDS",
    "TRAN_MSG_CHECK_TIMES",
    "__STARTDELIVERTIME",
    "bname",
    "INNER_NUM",
    "INNER_BASE",
    "TRACE_CONTEXT",
];

pub fn is_reserved(key: &str) -> bool {
    RESERVED_KEYS.contains(&key)
}

fn bad(code: Code, msg: impl Into<String>) -> ProxyError {
    ProxyError::status(code, msg)
}

fn has_control_char(s: &str) -> bool {
    s.chars().any(|c| c.is_control())
}

/// Java `TopicValidator`: at most 127 of `[%|a-zA-Z0-9_-]`.
pub fn validate_topic(topic: &str) -> Result<(), ProxyError> {
    if topic.trim().is_empty() {
        return Err(bad(Code::IllegalTopic, "topic name cannot be blank"));
    }
    if topic.len() > 127 {
        return Err(bad(Code::IllegalTopic, "topic name is too long"));
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'%' || b == b'|' || b == b'_' || b == b'-')
    {
        return Err(bad(
            Code::IllegalTopic,
            format!("topic name {topic:?} has illegal characters"),
        ));
    }
    if topic.starts_with("rmq_sys_")
        || topic == "SCHEDULE_TOPIC_XXXX"
        || topic == "RMQ_SYS_TRANS_HALF_TOPIC"
    {
        return Err(bad(
            Code::IllegalTopic,
            format!("cannot access system topic {topic}"),
        ));
    }
    Ok(())
}

/// Java `validateConsumerGroup`: at most 255 of `[%|a-zA-Z0-9_-]`.
pub fn validate_group(group: &str) -> Result<(), ProxyError> {
    if group.trim().is_empty() {
        return Err(bad(
            Code::IllegalConsumerGroup,
            "consumer group cannot be blank",
        ));
    }
    if group.len() > 255 {
        return Err(bad(
            Code::IllegalConsumerGroup,
            "consumer group is too long",
        ));
    }
    if !group
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'%' || b == b'|' || b == b'_' || b == b'-')
    {
        return Err(bad(
            Code::IllegalConsumerGroup,
            format!("consumer group {group:?} has illegal characters"),
        ));
    }
    Ok(())
}

/// Java `String.hashCode` (UTF-16 code units): the message-group queue
/// selection must agree across proxies.
pub fn java_hash(s: &str) -> i32 {
    let mut h: i32 = 0;
    for u in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(u as i32);
    }
    h
}

pub fn timestamp_ms(t: &prost_types::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(t.nanos / 1_000_000))
}

pub fn duration_ms(d: &prost_types::Duration) -> i64 {
    d.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(d.nanos / 1_000_000))
}

pub fn ms_timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn ms_duration(ms: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: ms / 1000,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

/// A message from SendMessage, validated as Java's proxy does and turned
/// into the remoting form. `now` is the current time (ms).
pub fn outgoing(
    cfg: &ServiceConfig,
    m: &pb::Message,
    now: i64,
) -> Result<OutgoingMessage, ProxyError> {
    let topic = m.topic.as_ref().map(|t| t.name.as_str()).unwrap_or("");
    validate_topic(topic)?;
    let sp = m
        .system_properties
        .as_ref()
        .ok_or_else(|| bad(Code::MessageCorrupted, "system properties are missing"))?;
    if sp.message_id.trim().is_empty() {
        return Err(bad(Code::IllegalMessageId, "message id cannot be blank"));
    }
    if m.body.is_empty() {
        return Err(bad(Code::MessageBodyEmpty, "message body cannot be empty"));
    }
    if m.body.len() > cfg.max_message_size {
        return Err(ProxyError::BodyTooLarge {
            size: m.body.len(),
            max: cfg.max_message_size,
        });
    }
    let mut props: Vec<(String, String)> = Vec::new();
    // User properties first, as Java's proxy builds them.
    if m.user_properties.len() > cfg.user_property_max_num {
        return Err(bad(
            Code::MessagePropertiesTooLarge,
            format!(
                "too many user properties, max {}",
                cfg.user_property_max_num
            ),
        ));
    }
    let mut user_size = 0usize;
    let mut user: Vec<(&String, &String)> = m.user_properties.iter().collect();
    user.sort();
    for (k, v) in user {
        if k.is_empty() || is_reserved(k) {
            return Err(bad(
                Code::IllegalMessagePropertyKey,
                format!("property key {k:?} is reserved or empty"),
            ));
        }
        if has_control_char(k) || has_control_char(v) || k.contains('\u{1}') || k.contains('\u{2}')
        {
            return Err(bad(
                Code::IllegalMessagePropertyKey,
                format!("property {k:?} has control characters"),
            ));
        }
        user_size += k.len() + v.len();
        props.push((k.clone(), v.clone()));
    }
    if user_size > cfg.max_user_property_size {
        return Err(bad(
            Code::MessagePropertiesTooLarge,
            format!(
                "user properties too large, max {} bytes",
                cfg.max_user_property_size
            ),
        ));
    }
    if let Some(tag) = sp.tag.as_deref() {
        if tag.trim().is_empty() || tag.contains('|') || has_control_char(tag) {
            return Err(bad(
                Code::IllegalMessageTag,
                format!("tag {tag:?} is illegal"),
            ));
        }
        props.push((PROPERTY_TAGS.into(), tag.into()));
    }
    if !sp.keys.is_empty() {
        for k in &sp.keys {
            if k.trim().is_empty() || has_control_char(k) {
                return Err(bad(
                    Code::IllegalMessageKey,
                    format!("key {k:?} is illegal"),
                ));
            }
        }
        props.push((PROPERTY_KEYS.into(), sp.keys.join(" ")));
    }
    props.push((PROPERTY_UNIQ_KEY.into(), sp.message_id.clone()));
    let mut sys_flag = 0;
    if sp.body_encoding == pb::Encoding::Gzip as i32 {
        sys_flag |= SYS_FLAG_COMPRESSED;
    }
    if let Some(g) = sp.message_group.as_deref() {
        if g.trim().is_empty() || has_control_char(g) {
            return Err(bad(
                Code::IllegalMessageGroup,
                "message group is blank or has control characters",
            ));
        }
        if cfg.max_message_group_size > 0 && g.len() > cfg.max_message_group_size {
            return Err(bad(
                Code::IllegalMessageGroup,
                format!("message group too long, max {}", cfg.max_message_group_size),
            ));
        }
        props.push((PROPERTY_SHARDING_KEY.into(), g.into()));
    }
    if let Some(t) = sp.delivery_timestamp.as_ref() {
        let at = timestamp_ms(t);
        if at - now > cfg.max_delay_ms {
            return Err(bad(
                Code::IllegalDeliveryTime,
                format!("delivery time is more than {} ms away", cfg.max_delay_ms),
            ));
        }
        if at > now {
            props.push((PROPERTY_TIMER_DELIVER_MS.into(), at.to_string()));
        }
    }
    let transactional = sp.message_type == pb::MessageType::Transaction as i32;
    if transactional {
        sys_flag |= SYS_FLAG_TRANSACTION_PREPARED;
        props.push((PROPERTY_TRANSACTION_PREPARED.into(), "true".into()));
        props.push((PROPERTY_PRODUCER_GROUP.into(), topic.into()));
        if let Some(d) = sp.orphaned_transaction_recovery_duration.as_ref() {
            let secs = (duration_ms(d) / 1000).clamp(0, cfg.max_transaction_recovery_secs);
            props.push((PROPERTY_CHECK_IMMUNITY_TIME.into(), secs.to_string()));
        }
    }
    if let Some(tc) = sp.trace_context.as_deref() {
        props.push((PROPERTY_TRACE_CONTEXT.into(), tc.into()));
    }
    let born = sp.born_timestamp.as_ref().map(timestamp_ms).unwrap_or(now);
    Ok(OutgoingMessage {
        topic: topic.to_owned(),
        queue_id: -1,
        broker_name: String::new(),
        producer_group: topic.to_owned(),
        body: Bytes::copy_from_slice(&m.body),
        flag: 0,
        properties: props,
        sys_flag,
        born_timestamp: born,
        born_host: None,
    })
}

/// Java's `GrpcConverter.buildMessageType`.
pub fn message_type(m: &StoredMessage) -> pb::MessageType {
    if m.property(PROPERTY_TRANSACTION_PREPARED) == Some("true") {
        pb::MessageType::Transaction
    } else if m.property(PROPERTY_DELAY_TIME_LEVEL).is_some()
        || m.property(PROPERTY_TIMER_DELIVER_MS).is_some()
        || m.property(PROPERTY_TIMER_DELAY_SEC).is_some()
        || m.property(PROPERTY_TIMER_OUT_MS).is_some()
    {
        pb::MessageType::Delay
    } else if m.property(PROPERTY_SHARDING_KEY).is_some() {
        pb::MessageType::Fifo
    } else {
        pb::MessageType::Normal
    }
}

/// Java `CRC32` checksum as the clients compute it: upper-case hex, no
/// leading zeros.
pub fn crc32_checksum(body: &[u8]) -> String {
    format!("{:X}", crc32fast::hash(body))
}

/// A stored (popped or checked) message as the clients receive it.
pub fn incoming(m: &StoredMessage, namespace: &str, invisible_ms: Option<i64>) -> pb::Message {
    let mut user = HashMap::new();
    for (k, v) in &m.properties {
        if !is_reserved(k) {
            user.insert(k.clone(), v.clone());
        }
    }
    let message_id = m
        .property(PROPERTY_UNIQ_KEY)
        .map(str::to_owned)
        .unwrap_or_else(|| m.offset_msg_id.clone());
    let keys = m
        .property(PROPERTY_KEYS)
        .map(|k| {
            k.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    // A timed message delivered by the timer carries its due time in
    // TIMER_OUT_MS (the timer drops TIMER_DELIVER_MS when it re-puts it).
    let delivery = m
        .property(PROPERTY_TIMER_OUT_MS)
        .or_else(|| m.property(PROPERTY_TIMER_DELIVER_MS))
        .or_else(|| m.property(PROPERTY_START_DELIVER_TIME))
        .and_then(|v| v.parse::<i64>().ok())
        .map(ms_timestamp);
    let orphan = m
        .property(PROPERTY_CHECK_IMMUNITY_TIME)
        .and_then(|v| v.parse::<i64>().ok())
        .map(|s| ms_duration(s.saturating_mul(1000)));
    let sp = pb::SystemProperties {
        tag: m.property(PROPERTY_TAGS).map(str::to_owned),
        keys,
        message_id,
        body_digest: Some(pb::Digest {
            r#type: pb::DigestType::Crc32 as i32,
            checksum: crc32_checksum(&m.body),
        }),
        body_encoding: pb::Encoding::Identity as i32,
        message_type: message_type(m) as i32,
        born_timestamp: Some(ms_timestamp(m.born_timestamp)),
        born_host: m.born_host.clone(),
        store_timestamp: Some(ms_timestamp(m.store_timestamp)),
        store_host: m.store_host.clone(),
        delivery_timestamp: delivery,
        receipt_handle: m.receipt_handle.as_ref().map(|h| h.to_string()),
        queue_id: m.queue_id,
        queue_offset: Some(m.queue_offset),
        invisible_duration: invisible_ms.map(ms_duration),
        delivery_attempt: Some(m.reconsume_times.saturating_add(1)),
        message_group: m.property(PROPERTY_SHARDING_KEY).map(str::to_owned),
        trace_context: m.property(PROPERTY_TRACE_CONTEXT).map(str::to_owned),
        orphaned_transaction_recovery_duration: orphan,
        dead_letter_queue: None,
    };
    pb::Message {
        topic: Some(pb::Resource {
            resource_namespace: namespace.to_owned(),
            name: m.topic.clone(),
        }),
        user_properties: user,
        system_properties: Some(sp),
        body: m.body.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_string_hash() {
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("a"), 97);
        assert_eq!(java_hash("hello"), 99162322);
        assert_eq!(java_hash("group-with-a-long-name-0123456789"), {
            let mut h: i32 = 0;
            for c in "group-with-a-long-name-0123456789".bytes() {
                h = h.wrapping_mul(31).wrapping_add(c as i32);
            }
            h
        });
    }

    #[test]
    fn crc_matches_java_client_format() {
        assert_eq!(crc32_checksum(b"foobar"), "9EF61F95");
    }

    #[test]
    fn timer_delivered_message_keeps_its_delivery_time() {
        let m = StoredMessage {
            topic: "T".into(),
            body: Bytes::from_static(b"x"),
            properties: vec![
                ("UNIQ_KEY".into(), "ID1".into()),
                ("TIMER_OUT_MS".into(), "1700000003000".into()),
            ],
            ..Default::default()
        };
        let pm = incoming(&m, "", None);
        let sp = pm.system_properties.expect("system properties");
        assert_eq!(sp.message_type, pb::MessageType::Delay as i32);
        assert_eq!(
            sp.delivery_timestamp.map(|t| timestamp_ms(&t)),
            Some(1_700_000_003_000)
        );
        assert!(pm.user_properties.is_empty());
    }

    #[test]
    fn time_conversions() {
        assert_eq!(
            timestamp_ms(&ms_timestamp(1_700_000_000_123)),
            1_700_000_000_123
        );
        assert_eq!(duration_ms(&ms_duration(30_500)), 30_500);
    }
}
