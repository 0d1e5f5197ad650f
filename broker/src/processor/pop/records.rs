//! POP's persistent formats, as Java writes them: the checkpoint (`ck`),
//! ack (`ack`) and batch ack (`bAck`) messages of the revive topic
//! (`PopCheckPoint`, `AckMsg`, `BatchAckMsg`, fastjson with short names and
//! sorted fields), the `extraInfo` a client echoes back on ack
//! (`ExtraInfoUtil`), and the retry topic names (`KeyBuilder`).

use serde::{Deserialize, Serialize};

/// Java `PopAckConstants`.
pub const REVIVE_TOPIC_PREFIX: &str = "rmq_sys_REVIVE_LOG_";
pub const REVIVE_GROUP: &str = "CID_RMQ_SYS_REVIVE_GROUP";
pub const CK_TAG: &str = "ck";
pub const ACK_TAG: &str = "ack";
pub const BATCH_ACK_TAG: &str = "bAck";
/// A checkpoint lands in the revive queue this long before its revive time,
/// so the acks written for it (due at the revive time) come after it.
pub const ACK_TIME_INTERVAL: i64 = 1000;
/// Orderly pops have no checkpoints; their extraInfo names this queue.
pub const POP_ORDER_REVIVE_QUEUE: i32 = 999;
/// Java `MessageConst.PROPERTY_POP_CK` and `PROPERTY_FIRST_POP_TIME`.
pub const PROPERTY_POP_CK: &str = "POP_CK";
pub const PROPERTY_FIRST_POP_TIME: &str = "1ST_POP_TIME";
/// Java `MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX`.
pub const UNIQ_KEY: &str = "UNIQ_KEY";
const RETRY_PREFIX: &str = "%RETRY%";

pub fn revive_topic(cluster: &str) -> String {
    format!("{REVIVE_TOPIC_PREFIX}{cluster}")
}

/// `KeyBuilder.buildPopRetryTopic`: `%RETRY%group_topic` (V1) or
/// `%RETRY%group+topic` (V2, `enableRetryTopicV2`).
pub fn pop_retry_topic(topic: &str, group: &str, v2: bool) -> String {
    let sep = if v2 { '+' } else { '_' };
    format!("{RETRY_PREFIX}{group}{sep}{topic}")
}

/// `KeyBuilder.parseNormalTopic(topic, cid)`: the topic a retry topic
/// of `group` stands for.
pub fn normal_topic<'a>(topic: &'a str, group: &str) -> &'a str {
    let Some(rest) = topic.strip_prefix(RETRY_PREFIX) else {
        return topic;
    };
    let Some(rest) = rest.strip_prefix(group) else {
        return topic;
    };
    rest.strip_prefix('+')
        .or_else(|| rest.strip_prefix('_'))
        .unwrap_or(topic)
}

pub use remoting::headers::retry_flag;

/// `ExtraInfoUtil.getRealTopic(topic, cid, retry)`.
pub fn real_topic(topic: &str, group: &str, retry: &str) -> Option<String> {
    match retry {
        "0" => Some(topic.to_owned()),
        "1" => Some(pop_retry_topic(topic, group, false)),
        "2" => Some(pop_retry_topic(topic, group, true)),
        _ => None,
    }
}

/// The `extraInfo` (`POP_CK` property) of a popped message:
/// `ckOffset popTime invisibleTime reviveQid retry brokerName queueId
/// [msgOffset]`, space separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraInfo {
    pub ck_offset: i64,
    pub pop_time: i64,
    pub invisible_time: i64,
    pub revive_qid: i32,
    pub retry: String,
    pub broker_name: String,
    pub queue_id: i32,
    pub msg_offset: Option<i64>,
}

impl ExtraInfo {
    /// Needs the first six fields (what ack reads); never panics.
    pub fn parse(s: &str) -> Option<ExtraInfo> {
        let f: Vec<&str> = s.split(' ').collect();
        Some(ExtraInfo {
            ck_offset: f.first()?.parse().ok()?,
            pop_time: f.get(1)?.parse().ok()?,
            invisible_time: f.get(2)?.parse().ok()?,
            revive_qid: f.get(3)?.parse().ok()?,
            retry: (*f.get(4)?).to_owned(),
            broker_name: f.get(5).map(|s| (*s).to_owned()).unwrap_or_default(),
            queue_id: f.get(6).and_then(|q| q.parse().ok()).unwrap_or(-1),
            msg_offset: f.get(7).and_then(|q| q.parse().ok()),
        })
    }

    pub fn is_order(&self) -> bool {
        self.revive_qid == POP_ORDER_REVIVE_QUEUE
    }

    /// `ExtraInfoUtil.buildExtraInfo` with the message offset.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        ck_offset: i64,
        pop_time: i64,
        invisible_time: i64,
        revive_qid: i32,
        topic: &str,
        broker_name: &str,
        queue_id: i32,
        msg_offset: i64,
    ) -> String {
        remoting::headers::build_extra_info(
            ck_offset,
            pop_time,
            invisible_time,
            revive_qid,
            topic,
            broker_name,
            queue_id,
            msg_offset,
        )
    }
}

/// `PopCheckPoint`: one pop of up to 32 messages of one queue. Fields in
/// fastjson's (sorted) order; absent ones are left out as fastjson does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PopCheckPoint {
    #[serde(rename = "bm", default)]
    pub bit_map: i32,
    #[serde(rename = "bn", default, skip_serializing_if = "Option::is_none")]
    pub broker_name: Option<String>,
    #[serde(rename = "c", default)]
    pub cid: String,
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub queue_offset_diff: Option<Vec<i32>>,
    #[serde(rename = "it", default)]
    pub invisible_time: i64,
    #[serde(rename = "n", default)]
    pub num: i8,
    #[serde(rename = "pt", default)]
    pub pop_time: i64,
    #[serde(rename = "q", default)]
    pub queue_id: i32,
    #[serde(rename = "ro", default)]
    pub revive_offset: i64,
    #[serde(rename = "rp", default, skip_serializing_if = "Option::is_none")]
    pub re_put_times: Option<String>,
    #[serde(rename = "so", default)]
    pub start_offset: i64,
    #[serde(rename = "t", default)]
    pub topic: String,
}

impl PopCheckPoint {
    pub fn revive_time(&self) -> i64 {
        self.pop_time.saturating_add(self.invisible_time)
    }

    /// `indexOfAck`: the bit of `ack_offset`, if this checkpoint holds it.
    pub fn index_of_ack(&self, ack_offset: i64) -> Option<usize> {
        if ack_offset < self.start_offset {
            return None;
        }
        let diff = ack_offset - self.start_offset;
        match &self.queue_offset_diff {
            Some(d) if !d.is_empty() => d.iter().position(|x| i64::from(*x) == diff),
            _ => (diff < i64::from(self.num)).then_some(diff as usize),
        }
    }

    /// `ackOffsetByIndex`.
    pub fn offset_at(&self, index: usize) -> i64 {
        match &self.queue_offset_diff {
            Some(d) if !d.is_empty() => {
                self.start_offset + d.get(index).copied().map_or(index as i64, i64::from)
            }
            _ => self.start_offset + index as i64,
        }
    }

    pub fn acked(&self, index: usize) -> bool {
        index < 32 && self.bit_map & (1 << index) != 0
    }

    pub fn set_acked(&mut self, index: usize) {
        if index < 32 {
            self.bit_map |= 1 << index;
        }
    }

    /// `parseRePutTimes`: unreadable counts as the most.
    pub fn re_put_times(&self) -> i32 {
        match &self.re_put_times {
            None => 0,
            Some(s) => s.parse().unwrap_or(i8::MAX as i32),
        }
    }

    /// The revive map key (`PopReviveService.consumeReviveMessage`).
    pub fn merge_key(&self) -> String {
        format!(
            "{}{}{}{}{}{}",
            self.topic,
            self.cid,
            self.queue_id,
            self.start_offset,
            self.pop_time,
            self.broker_name.as_deref().unwrap_or("null")
        )
    }

    /// `genCkUniqueId`.
    pub fn unique_id(&self) -> String {
        format!(
            "{}@{}@{}@{}@{}@{}@{CK_TAG}",
            self.topic,
            self.queue_id,
            self.start_offset,
            self.cid,
            self.pop_time,
            self.broker_name.as_deref().unwrap_or("null")
        )
    }
}

/// `AckMsg` and `BatchAckMsg` (the latter with `aol`). Java reads the long
/// names too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckMsg {
    #[serde(rename = "ao", alias = "ackOffset", default)]
    pub ack_offset: i64,
    #[serde(
        rename = "aol",
        alias = "ackOffsetList",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ack_offset_list: Option<Vec<i64>>,
    #[serde(
        rename = "bn",
        alias = "brokerName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub broker_name: Option<String>,
    #[serde(rename = "c", alias = "consumerGroup", default)]
    pub consumer_group: String,
    #[serde(rename = "pt", alias = "popTime", default)]
    pub pop_time: i64,
    #[serde(rename = "q", alias = "queueId", default)]
    pub queue_id: i32,
    #[serde(rename = "so", alias = "startOffset", default)]
    pub start_offset: i64,
    #[serde(rename = "t", alias = "topic", default)]
    pub topic: String,
}

impl AckMsg {
    /// The checkpoint this ack belongs to; Java falls back to its own
    /// broker name when the ack has none.
    pub fn merge_key(&self, own_broker: &str) -> String {
        let bn = match self.broker_name.as_deref() {
            Some(b) if !b.trim().is_empty() => b,
            _ => own_broker,
        };
        format!(
            "{}{}{}{}{}{}",
            self.topic, self.consumer_group, self.queue_id, self.start_offset, self.pop_time, bn
        )
    }

    /// `genAckUniqueId` / `genBatchAckUniqueId`.
    pub fn unique_id(&self) -> String {
        match &self.ack_offset_list {
            None => format!(
                "{}@{}@{}@{}@{}@{}@{ACK_TAG}",
                self.topic,
                self.queue_id,
                self.ack_offset,
                self.consumer_group,
                self.pop_time,
                self.broker_name.as_deref().unwrap_or("null")
            ),
            Some(list) => {
                let list: Vec<String> = list.iter().map(i64::to_string).collect();
                format!(
                    "{}@{}@[{}]@{}@{}@{BATCH_ACK_TAG}",
                    self.topic,
                    self.queue_id,
                    list.join(", "),
                    self.consumer_group,
                    self.pop_time
                )
            }
        }
    }
}

/// One entry of BATCH_ACK_MESSAGE's body (`BatchAck`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BatchAck {
    #[serde(rename = "c", alias = "consumerGroup", default)]
    pub consumer_group: String,
    #[serde(rename = "t", alias = "topic", default)]
    pub topic: String,
    #[serde(rename = "r", alias = "retry", default)]
    pub retry: String,
    #[serde(rename = "so", alias = "startOffset", default)]
    pub start_offset: i64,
    #[serde(rename = "q", alias = "queueId", default)]
    pub queue_id: i32,
    #[serde(rename = "rq", alias = "reviveQueueId", default)]
    pub revive_queue_id: i32,
    #[serde(rename = "pt", alias = "popTime", default)]
    pub pop_time: i64,
    #[serde(rename = "it", alias = "invisibleTime", default)]
    pub invisible_time: i64,
    /// `BitSet.toByteArray()` as fastjson writes a byte array: base64.
    #[serde(rename = "b", alias = "bitSet", default)]
    pub bit_set: Option<String>,
}

impl BatchAck {
    /// The offsets the bit set acknowledges (bit i = `startOffset + i`).
    pub fn offsets(&self) -> Vec<i64> {
        let bytes = self
            .bit_set
            .as_deref()
            .and_then(base64_decode)
            .unwrap_or_default();
        let mut out = Vec::new();
        for (i, b) in bytes.iter().enumerate() {
            for bit in 0..8 {
                if b & (1 << bit) != 0 {
                    out.push(self.start_offset + (i * 8 + bit) as i64);
                }
            }
        }
        out
    }
}

/// `BatchAckMessageRequestBody`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchAckBody {
    #[serde(default)]
    pub broker_name: Option<String>,
    #[serde(default)]
    pub acks: Vec<BatchAck>,
}

/// Standard base64 (with or without padding); `None` on a bad character.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            b' ' | b'\n' | b'\r' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_json_is_javas() {
        let ck = PopCheckPoint {
            bit_map: 0,
            broker_name: Some("b1".into()),
            cid: "g".into(),
            queue_offset_diff: Some(vec![0, 1, 3]),
            invisible_time: 60000,
            num: 3,
            pop_time: 1700000000000,
            queue_id: 2,
            revive_offset: 0,
            re_put_times: None,
            start_offset: 10,
            topic: "T".into(),
        };
        let json = serde_json::to_string(&ck).unwrap();
        assert_eq!(
            json,
            r#"{"bm":0,"bn":"b1","c":"g","d":[0,1,3],"it":60000,"n":3,"pt":1700000000000,"q":2,"ro":0,"so":10,"t":"T"}"#
        );
        let back: PopCheckPoint = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ck);
        assert_eq!(ck.index_of_ack(13), Some(2));
        assert_eq!(ck.index_of_ack(12), None);
        assert_eq!(ck.offset_at(2), 13);
        assert_eq!(ck.unique_id(), "T@2@10@g@1700000000000@b1@ck");
    }

    #[test]
    fn ack_reads_long_and_short_names() {
        let a: AckMsg = serde_json::from_str(
            r#"{"ackOffset":5,"startOffset":4,"consumerGroup":"g","topic":"T","queueId":1,"popTime":7}"#,
        )
        .unwrap();
        assert_eq!(a.ack_offset, 5);
        assert_eq!(a.merge_key("b"), "Tg147b");
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"{"ao":5,"c":"g","pt":7,"q":1,"so":4,"t":"T"}"#);
    }

    #[test]
    fn extra_info_round_trip_and_retry_names() {
        let s = ExtraInfo::build(10, 20, 30, 1, "%RETRY%g_T", "b", 3, 12);
        assert_eq!(s, "10 20 30 1 1 b 3 12");
        let e = ExtraInfo::parse(&s).unwrap();
        assert_eq!(e.msg_offset, Some(12));
        assert_eq!(real_topic("T", "g", &e.retry).unwrap(), "%RETRY%g_T");
        assert_eq!(ExtraInfo::parse("x 1"), None);
        assert_eq!(ExtraInfo::parse(""), None);
        assert_eq!(normal_topic("%RETRY%g+T", "g"), "T");
        assert_eq!(normal_topic("%RETRY%g_T", "g"), "T");
        assert_eq!(normal_topic("T", "g"), "T");
        assert_eq!(retry_flag("%RETRY%g+T"), "2");
    }

    #[test]
    fn batch_ack_bit_set() {
        // BitSet {0, 2, 9}: bytes [0b101, 0b10] = "BQI=".
        let b: BatchAckBody = serde_json::from_str(
            r#"{"acks":[{"c":"g","t":"T","r":"0","so":100,"q":0,"rq":1,"pt":5,"it":6,"b":"BQI="}],"brokerName":"b"}"#,
        )
        .unwrap();
        assert_eq!(b.acks[0].offsets(), vec![100, 102, 109]);
        let junk: BatchAck = serde_json::from_str(r#"{"b":"**"}"#).unwrap();
        assert!(junk.offsets().is_empty());
    }
}
