//! Admin requests the broker answers by talking to its connected consumers
//! (`Broker2Client`): reset offset (INVOKE_BROKER_TO_RESET_OFFSET 222, pushing
//! RESET_CONSUMER_CLIENT_OFFSET 220), and the calls relayed to one client and
//! answered with the client's own response (GET_CONSUMER_RUNNING_INFO 307,
//! CONSUME_MESSAGE_DIRECTLY 309).

use std::sync::Arc;
use std::time::Duration;

use remoting::body::MessageQueue;
use remoting::code::{request_code as rq, response_code as rc, LanguageCode};
use remoting::{command_header, RemotingCommand};
use store::CommitLogOffset;
use tracing::{info, warn};

use crate::error::BrokerError;
use crate::meta::client::{ClientChannel, ClientManager};
use crate::meta::offsets::ConsumerOffsetManager;
use crate::meta::topic::TopicConfigManager;
use crate::processor::{read_config, SharedConfig};
use crate::store::BrokerStore;

/// Java's `Broker2Client.callClient` waits this long for the client.
const CALL_CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Java's `Broker2Client.getConsumeStatus` waits this long per client (and
/// `resetOffset` this long for each one-way push).
const CALL_CLIENT_STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// `MQVersion.Version.V3_0_7_SNAPSHOT.ordinal()`: older clients cannot reset.
const V3_0_7_SNAPSHOT: i32 = 28;

command_header! {
    /// `ResetOffsetRequestHeader`; 5.x adds `queueId` (-1 = every queue) and
    /// `offset` (-1 or absent = by timestamp).
    pub struct ResetOffsetRequestHeader {
        pub topic: String = "topic",
        pub group: String = "group",
        pub timestamp: i64 = "timestamp",
        pub is_force: Option<bool> = "isForce",
        pub queue_id: Option<i32> = "queueId",
        pub offset: Option<i64> = "offset",
    }
}

command_header! {
    /// GET_CONSUMER_RUNNING_INFO (307) and CONSUME_MESSAGE_DIRECTLY (309)
    /// address one client of a group.
    pub struct ClientOfGroupHeader {
        pub consumer_group: String = "consumerGroup",
        pub client_id: String = "clientId",
    }
}

command_header! {
    pub struct ConsumeMessageDirectlyHeader {
        pub msg_id: Option<String> = "msgId",
    }
}

command_header! {
    /// INVOKE_BROKER_TO_GET_CONSUMER_STATUS (223); `clientAddr` is a client
    /// id (all clients when empty).
    pub struct GetConsumerStatusRequestHeader {
        pub topic: String = "topic",
        pub group: String = "group",
        pub client_addr: Option<String> = "clientAddr",
    }
}

/// The raw JSON text of `key`'s value in a JSON object `text` (fastjson
/// object-key maps are not JSON, so they are carried over as text).
fn raw_json_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!("\"{key}\":");
    let start = text.find(&needle)? + needle.len();
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                if depth == 0 {
                    return Some(text[start..i].trim());
                }
                depth -= 1;
                if depth == 0 {
                    return Some(text[start..=i].trim());
                }
            }
            b',' if depth == 0 => return Some(text[start..i].trim()),
            _ => {}
        }
    }
    None
}

pub struct RelayProcessor {
    pub config: SharedConfig,
    pub topics: Arc<TopicConfigManager>,
    pub clients: Arc<ClientManager>,
    pub offsets: Arc<ConsumerOffsetManager>,
    pub store: Arc<BrokerStore>,
}

/// `ResetOffsetBody`: `{"offsetTable":{{mq}:offset,...}}` in fastjson's
/// object-key form.
fn reset_offset_body(entries: &[(MessageQueue, i64)]) -> Vec<u8> {
    let mut out = String::from("{\"offsetTable\":{");
    for (i, (mq, offset)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(mq).unwrap_or_default());
        out.push(':');
        out.push_str(&offset.to_string());
    }
    out.push_str("}}");
    out.into_bytes()
}

/// `ResetOffsetBodyForC`: a list of `MessageQueueForC` (C++ clients).
fn reset_offset_body_for_c(entries: &[(MessageQueue, i64)]) -> Vec<u8> {
    let list: Vec<serde_json::Value> = entries
        .iter()
        .map(|(mq, offset)| {
            serde_json::json!({
                "brokerName": mq.broker_name,
                "offset": offset,
                "queueId": mq.queue_id,
                "topic": mq.topic,
            })
        })
        .collect();
    remoting::body::to_json(&serde_json::json!({ "offsetTable": list }))
}

/// The commit-log offset inside an offset message id: the last 16 hex digits
/// (the address before it is 8 + 8 digits for IPv4, 32 + 8 for IPv6).
pub fn offset_of_message_id(id: &str) -> Option<i64> {
    if !(id.len() == 32 || id.len() == 56) || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(&id[id.len() - 16..], 16)
        .ok()
        .map(|v| v as i64)
}

impl RelayProcessor {
    /// INVOKE_BROKER_TO_RESET_OFFSET (222), as Java 4.9's `Broker2Client.resetOffset`
    /// (refused on a slave, as Java 5.x):
    /// compute the offsets by timestamp (-1 = max offset), push them to every
    /// online consumer of the group with RESET_CONSUMER_CLIENT_OFFSET (220)
    /// and answer them. With no consumer online it answers
    /// CONSUMER_NOT_ONLINE, on which mqadmin falls back to committing offsets
    /// itself (UPDATE_CONSUMER_OFFSET). The new offsets are also committed
    /// here, so consumer stats show them at once and a consumer that starts
    /// later begins from them.
    pub async fn reset_offset(&self, req: RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: ResetOffsetRequestHeader = req.header()?;
        info!(topic = %h.topic, group = %h.group, timestamp = h.timestamp, force = ?h.is_force, queue_id = ?h.queue_id, offset = ?h.offset, "reset offset requested");
        // Java 5.x (`useServerSideResetOffset`, on by default): offsets are
        // the master's; a slave (a DLedger follower too) refuses.
        if read_config(&self.config).broker_role.is_slave() {
            return Err(BrokerError::System(
                "Can not reset offset in slave broker".into(),
            ));
        }
        let Some(topic) = self.topics.get(&h.topic) else {
            return Err(BrokerError::System(format!(
                "[reset-offset] reset offset failed, no topic in this broker. topic={}",
                h.topic
            )));
        };
        let broker_name = read_config(&self.config).broker_name.clone();
        let force = h.is_force.unwrap_or(false);
        let single_queue = h.queue_id.filter(|q| *q >= 0);
        let queues: Vec<i32> = match single_queue {
            Some(q) if q < topic.write_queue_nums.max(topic.read_queue_nums) => vec![q],
            Some(q) => {
                return Err(BrokerError::InvalidParameter(format!(
                    "[reset-offset] queueId {q} is out of range for topic {}",
                    h.topic
                )))
            }
            None => (0..topic.write_queue_nums).collect(),
        };
        let mut entries = Vec::with_capacity(queues.len());
        for q in queues {
            let target = match h.offset.filter(|o| *o >= 0 && single_queue.is_some()) {
                Some(o) => o,
                None if h.timestamp == -1 => {
                    self.store.with(0, |s| s.max_offset(&h.topic, q).get())
                }
                None => self
                    .store
                    .with(0, |s| s.offset_by_time(&h.topic, q, h.timestamp).get()),
            }
            .max(0);
            let current = self.offsets.query(&h.group, &h.topic, q);
            let offset = match current {
                Some(c) if !force && single_queue.is_none() && target >= c => c,
                _ => target,
            };
            entries.push((
                MessageQueue {
                    broker_name: broker_name.clone(),
                    queue_id: q,
                    topic: h.topic.clone(),
                },
                offset,
            ));
        }

        let members: Vec<ClientChannel> = self
            .clients
            .consumer_group(&h.group)
            .map(|g| g.channels.into_values().collect())
            .unwrap_or_default();
        if members.is_empty() && single_queue.is_none() {
            return Ok(
                RemotingCommand::response(rc::CONSUMER_NOT_ONLINE).with_remark(format!(
                "Consumer not online, so can not reset offset, Group: {} Topic: {} Timestamp: {}",
                h.group, h.topic, h.timestamp
            )),
            );
        }
        if let Some(old) = members.iter().find(|m| m.version < V3_0_7_SNAPSHOT) {
            return Err(BrokerError::System(format!(
                "the client does not support this feature. version={}",
                old.version
            )));
        }

        for (mq, offset) in &entries {
            self.offsets
                .commit(&h.group, &h.topic, mq.queue_id, *offset);
        }

        let body = if req.language == LanguageCode::Cpp {
            reset_offset_body_for_c(&entries)
        } else {
            reset_offset_body(&entries)
        };
        let push = RemotingCommand::request(rq::RESET_CONSUMER_CLIENT_OFFSET)
            .with_ext("topic", h.topic.clone())
            .with_ext("group", h.group.clone())
            .with_ext("timestamp", h.timestamp.to_string())
            .with_ext("isForce", force.to_string())
            .with_body(body);
        for m in &members {
            // Java's invokeOneway gives up after 5 s as well.
            let sent =
                tokio::time::timeout(CALL_CLIENT_STATUS_TIMEOUT, m.conn.oneway(push.clone()))
                    .await
                    .unwrap_or(Err(remoting::RemotingError::Timeout(
                        CALL_CLIENT_STATUS_TIMEOUT,
                    )));
            match sent {
                Ok(()) => {
                    info!(topic = %h.topic, group = %h.group, client_id = %m.client_id, "reset offset pushed")
                }
                Err(e) => {
                    warn!(topic = %h.topic, group = %h.group, client_id = %m.client_id, error = %e, "cannot push reset offset")
                }
            }
        }
        Ok(RemotingCommand::success().with_body(reset_offset_body(&entries)))
    }

    /// INVOKE_BROKER_TO_GET_CONSUMER_STATUS (223, `getConsumerStatus`): asks
    /// each online consumer of the group (or the one named) for its offsets on
    /// the topic with GET_CONSUMER_STATUS_FROM_CLIENT (221) and answers
    /// `GetConsumerStatusBody` with `consumerTable` keyed by client id.
    pub async fn consumer_status(
        &self,
        req: RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: GetConsumerStatusRequestHeader = req.header()?;
        let only = h.client_addr.filter(|c| !c.trim().is_empty());
        let members: Vec<ClientChannel> = self
            .clients
            .consumer_group(&h.group)
            .map(|g| g.channels.into_values().collect())
            .unwrap_or_default();
        if members.is_empty() {
            return Err(BrokerError::System(format!(
                "No Any Consumer online in the consumer group: [{}]",
                h.group
            )));
        }
        let ask = RemotingCommand::request(rq::GET_CONSUMER_STATUS_FROM_CLIENT)
            .with_ext("topic", h.topic.clone())
            .with_ext("group", h.group.clone());
        let mut tables = Vec::new();
        for m in members {
            if m.version < V3_0_7_SNAPSHOT {
                return Err(BrokerError::System(format!(
                    "the client does not support this feature. version={}",
                    m.version
                )));
            }
            if only.as_deref().is_some_and(|c| c != m.client_id) {
                continue;
            }
            match m
                .conn
                .request(ask.clone(), CALL_CLIENT_STATUS_TIMEOUT)
                .await
            {
                Ok(resp) if resp.code == rc::SUCCESS && !resp.body.is_empty() => {
                    let text = String::from_utf8_lossy(&resp.body);
                    if let Some(table) = raw_json_field(&text, "messageQueueTable") {
                        tables.push(format!(
                            "{}:{}",
                            serde_json::to_string(&m.client_id).unwrap_or_default(),
                            table
                        ));
                    }
                }
                Ok(resp) => {
                    warn!(client_id = %m.client_id, code = resp.code, "consumer status not returned")
                }
                Err(e) => warn!(client_id = %m.client_id, error = %e, "cannot get consumer status"),
            }
            if only.is_some() {
                break;
            }
        }
        let body = format!(
            "{{\"consumerTable\":{{{}}},\"messageQueueTable\":{{}}}}",
            tables.join(",")
        );
        Ok(RemotingCommand::success().with_body(body.into_bytes()))
    }

    /// GET_CONSUMER_RUNNING_INFO (307): relayed to the named client.
    pub async fn consumer_running_info(
        &self,
        req: RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: ClientOfGroupHeader = req.header()?;
        self.call_consumer(rq::GET_CONSUMER_RUNNING_INFO, &h, req)
            .await
    }

    /// CONSUME_MESSAGE_DIRECTLY (309): the message named by `msgId` (an offset
    /// message id) is read from the store and handed to the named client,
    /// whose `ConsumeMessageDirectlyResult` is the answer.
    pub async fn consume_message_directly(
        &self,
        mut req: RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: ClientOfGroupHeader = req.header()?;
        let m: ConsumeMessageDirectlyHeader = req.header()?;
        let id = m.msg_id.unwrap_or_default();
        let offset = offset_of_message_id(&id)
            .ok_or_else(|| BrokerError::System(format!("bad message id: {id}")))?;
        let record = self
            .store
            .with(None, |s| s.message_at(CommitLogOffset(offset)))
            .ok_or_else(|| {
                BrokerError::System(format!("can not find message by the offset, {offset}"))
            })?;
        let broker_name = read_config(&self.config).broker_name.clone();
        req.set_ext("brokerName", broker_name);
        req.body = record;
        self.call_consumer(rq::CONSUME_MESSAGE_DIRECTLY, &h, req)
            .await
    }

    /// Java `callConsumer`: same code, same header fields and body, sent over
    /// the client's own connection; the client's code, remark and body come
    /// back unchanged.
    async fn call_consumer(
        &self,
        code: i32,
        h: &ClientOfGroupHeader,
        req: RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let channel = self
            .clients
            .consumer_group(&h.consumer_group)
            .and_then(|g| {
                g.channels
                    .into_values()
                    .find(|c| c.client_id == h.client_id)
            })
            .ok_or_else(|| {
                BrokerError::System(format!(
                    "The Consumer <{}> <{}> not online",
                    h.consumer_group, h.client_id
                ))
            })?;
        let mut call = RemotingCommand::request(code);
        call.ext_fields = req.ext_fields;
        call.body = req.body;
        match channel.conn.request(call, CALL_CLIENT_TIMEOUT).await {
            Ok(resp) => {
                let mut out = RemotingCommand::response(resp.code).with_body(resp.body);
                out.remark = resp.remark;
                Ok(out)
            }
            Err(e) => Err(BrokerError::System(format!(
                "invoke consumer <{}> <{}> Exception: {e}",
                h.consumer_group, h.client_id
            ))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn message_id_offsets() {
        assert_eq!(
            offset_of_message_id("7F00000100002A9F0000000000000BB8"),
            Some(3000)
        );
        assert_eq!(offset_of_message_id("xyz"), None);
        assert_eq!(
            offset_of_message_id("7F00000100002A9F000000000000BB8"),
            None
        );
    }

    #[test]
    fn raw_fields() {
        let t = r#"{"consumerTable":{},"messageQueueTable":{{"brokerName":"b","queueId":0,"topic":"t}"}:5},"x":"a,b"}"#;
        assert_eq!(
            raw_json_field(t, "messageQueueTable"),
            Some(r#"{{"brokerName":"b","queueId":0,"topic":"t}"}:5}"#)
        );
        assert_eq!(raw_json_field(t, "consumerTable"), Some("{}"));
        assert_eq!(raw_json_field(t, "x"), Some(r#""a,b""#));
        assert_eq!(raw_json_field(t, "missing"), None);
        assert_eq!(raw_json_field(r#"{"a":{"#, "a"), None);
    }

    #[test]
    fn reset_bodies() {
        let mq = MessageQueue {
            broker_name: "b".into(),
            queue_id: 1,
            topic: "t".into(),
        };
        assert_eq!(
            String::from_utf8(reset_offset_body(&[(mq.clone(), 5)])).unwrap(),
            r#"{"offsetTable":{{"brokerName":"b","queueId":1,"topic":"t"}:5}}"#
        );
        let c = String::from_utf8(reset_offset_body_for_c(&[(mq, 5)])).unwrap();
        assert!(c.contains(r#""offset":5"#), "{c}");
    }
}
