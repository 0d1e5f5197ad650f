//! Receipt handles and the pop "extra info" text (Java `ReceiptHandle`,
//! `ExtraInfoUtil`): how a popped message names the broker, queue and
//! checkpoint an ack or an invisible-time change must go back to.
//!
//! ```text
//! extra info (POP_CK):  ckOffset popTime invisibleTime reviveQid topicType brokerName queueId queueOffset
//! receipt handle:       <extra info> commitLogOffset
//! ```
//!
//! Fields are separated by one space (`MessageConst.KEY_SEPARATOR`);
//! `topicType` is `0` (the topic itself), `1` (`%RETRY%group_topic`) or `2`
//! (`%RETRY%group+topic`, the 5.x pop retry topic).

use std::collections::HashMap;

use crate::receipt::ReceiptHandle;

const SEPARATOR: char = ' ';
pub const RETRY_PREFIX: &str = "%RETRY%";
const RETRY_TOPIC_V1: &str = "1";
const RETRY_TOPIC_V2: &str = "2";

/// The topic a popped message was read from (Java
/// `ReceiptHandle.getRealTopic`): acks and invisible-time changes name it,
/// not the consumer's topic.
pub fn real_topic(handle: &ReceiptHandle, topic: &str, group: &str) -> String {
    match handle.topic_type.as_str() {
        RETRY_TOPIC_V1 => format!("{RETRY_PREFIX}{group}_{topic}"),
        RETRY_TOPIC_V2 => format!("{RETRY_PREFIX}{group}+{topic}"),
        _ => topic.to_owned(),
    }
}

pub use remoting::headers::{build_extra_info, retry_flag as topic_type};

/// The topic type a message's own `POP_CK` names, else its topic's.
fn topic_type_of(topic: &str, pop_ck: Option<&str>) -> String {
    match pop_ck.and_then(|ck| ck.split(SEPARATOR).nth(4)) {
        Some(t) => t.to_owned(),
        None => topic_type(topic).to_owned(),
    }
}

/// The receipt handle a gRPC client gets: the extra info and the commit log
/// offset (Java proxy `ConsumerProcessor.createHandle`).
pub fn create_handle(extra_info: &str, commit_log_offset: i64) -> String {
    format!("{extra_info}{SEPARATOR}{commit_log_offset}")
}

/// `startOffsetInfo`, `msgOffsetInfo`, `orderCountInfo` of a pop response:
/// `type queueId value` entries joined by `;`, keyed `type@queueId`.
/// Malformed entries are skipped (a peer's text must not fail the pop).
pub fn parse_offset_info(text: Option<&str>) -> HashMap<String, Vec<i64>> {
    let mut out = HashMap::new();
    for one in text.unwrap_or("").split(';').filter(|s| !s.is_empty()) {
        let parts: Vec<&str> = one.split(SEPARATOR).collect();
        if parts.len() != 3 {
            continue;
        }
        let values: Option<Vec<i64>> = parts[2].split(',').map(|v| v.parse().ok()).collect();
        if let Some(values) = values {
            out.insert(format!("{}@{}", parts[0], parts[1]), values);
        }
    }
    out
}

/// What a popped message needs to get its handle (Java
/// `MQClientAPIImpl.processPopResponse`).
pub struct PoppedMessage<'a> {
    pub topic: &'a str,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub pop_ck: Option<&'a str>,
}

/// The pop response header's fields the handles are built from.
pub struct PopAnswer<'a> {
    pub pop_time: i64,
    pub invisible_time: i64,
    pub revive_qid: i32,
    pub start_offset_info: Option<&'a str>,
    pub msg_offset_info: Option<&'a str>,
    pub order_count_info: Option<&'a str>,
}

/// For each popped message: its `POP_CK` extra info and, for an orderly pop,
/// the reconsume count the broker reported. A message that already carries
/// `POP_CK` keeps it.
pub fn extra_infos(
    answer: &PopAnswer<'_>,
    broker_name: &str,
    order: bool,
    msgs: &[PoppedMessage<'_>],
) -> Vec<(String, Option<i32>)> {
    let start = parse_offset_info(answer.start_offset_info);
    let offsets = parse_offset_info(answer.msg_offset_info);
    let counts = parse_offset_info(answer.order_count_info);
    // Java sorts by the order of arrival per key: the n-th message of a
    // queue takes the n-th offset of msgOffsetInfo.
    let mut sorted: HashMap<String, Vec<i64>> = HashMap::new();
    for m in msgs {
        let key = format!("{}@{}", topic_type_of(m.topic, m.pop_ck), m.queue_id);
        sorted.entry(key).or_default().push(m.queue_offset);
    }
    let mut first_ck: HashMap<String, String> = HashMap::new();
    msgs.iter()
        .map(|m| {
            if let Some(ck) = m.pop_ck {
                return (ck.to_owned(), None);
            }
            let ttype = topic_type_of(m.topic, None);
            let key = format!("{ttype}@{}", m.queue_id);
            if start.is_empty() {
                // An old broker: one checkpoint per queue at the first offset.
                let base = first_ck.entry(key).or_insert_with(|| {
                    format!(
                        "{} {} {} {} {ttype} {broker_name} {}",
                        m.queue_offset,
                        answer.pop_time,
                        answer.invisible_time,
                        answer.revive_qid,
                        m.queue_id
                    )
                });
                return (format!("{base} {}", m.queue_offset), None);
            }
            let ck_offset = start.get(&key).and_then(|v| v.first().copied());
            let index = sorted
                .get(&key)
                .and_then(|v| v.iter().position(|o| *o == m.queue_offset));
            let msg_offset = index
                .and_then(|i| offsets.get(&key).and_then(|v| v.get(i).copied()))
                .unwrap_or(m.queue_offset);
            let info = build_extra_info(
                ck_offset.unwrap_or(m.queue_offset),
                answer.pop_time,
                answer.invisible_time,
                answer.revive_qid,
                m.topic,
                broker_name,
                m.queue_id,
                msg_offset,
            );
            let count = if order {
                let qo_key = format!("{ttype}@qo{}%{}", m.queue_id, m.queue_offset);
                counts
                    .get(&qo_key)
                    .or_else(|| counts.get(&key))
                    .and_then(|v| v.first().copied())
                    .filter(|c| *c > 0)
                    .map(|c| c as i32)
            } else {
                None
            };
            (info, count)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_topics() {
        let h =
            ReceiptHandle::parse("12 1700000000000 30000 3 2 broker-a 1 14 8812").expect("valid");
        assert_eq!(real_topic(&h, "T", "G"), "%RETRY%G+T");
        let v1 = ReceiptHandle::parse("1 2 3 4 1 b 0 5").expect("eight fields");
        assert_eq!(real_topic(&v1, "T", "G"), "%RETRY%G_T");
        let n = ReceiptHandle::parse("1 2 3 4 0 b 0 5").expect("eight fields");
        assert_eq!(real_topic(&n, "T", "G"), "T");
    }

    #[test]
    fn topic_types() {
        assert_eq!(topic_type("T"), "0");
        assert_eq!(topic_type("%RETRY%G_T"), "1");
        assert_eq!(topic_type("%RETRY%G+T"), "2");
    }

    #[test]
    fn extra_info_from_offset_info() {
        let answer = PopAnswer {
            pop_time: 1000,
            invisible_time: 60000,
            revive_qid: 2,
            start_offset_info: Some("0 1 10;2 0 3"),
            msg_offset_info: Some("0 1 10,11;2 0 3"),
            order_count_info: None,
        };
        let msgs = [
            PoppedMessage {
                topic: "T",
                queue_id: 1,
                queue_offset: 10,
                pop_ck: None,
            },
            PoppedMessage {
                topic: "T",
                queue_id: 1,
                queue_offset: 11,
                pop_ck: None,
            },
            PoppedMessage {
                topic: "%RETRY%G+T",
                queue_id: 0,
                queue_offset: 3,
                pop_ck: None,
            },
        ];
        let infos = extra_infos(&answer, "bk", false, &msgs);
        assert_eq!(infos[0].0, "10 1000 60000 2 0 bk 1 10");
        assert_eq!(infos[1].0, "10 1000 60000 2 0 bk 1 11");
        assert_eq!(infos[2].0, "3 1000 60000 2 2 bk 0 3");
        let h = ReceiptHandle::parse(&create_handle(&infos[1].0, 77)).expect("handle");
        assert_eq!((h.offset, h.commit_log_offset), (11, 77));
    }

    #[test]
    fn order_counts_and_old_brokers() {
        let answer = PopAnswer {
            pop_time: 5,
            invisible_time: 6,
            revive_qid: 999,
            start_offset_info: Some("0 0 4"),
            msg_offset_info: Some("0 0 4"),
            order_count_info: Some("0 qo0%4 2"),
        };
        let msgs = [PoppedMessage {
            topic: "T",
            queue_id: 0,
            queue_offset: 4,
            pop_ck: None,
        }];
        assert_eq!(extra_infos(&answer, "b", true, &msgs)[0].1, Some(2));
        let old = PopAnswer {
            start_offset_info: None,
            msg_offset_info: None,
            order_count_info: None,
            ..answer
        };
        let msgs = [
            PoppedMessage {
                topic: "T",
                queue_id: 0,
                queue_offset: 4,
                pop_ck: None,
            },
            PoppedMessage {
                topic: "T",
                queue_id: 0,
                queue_offset: 5,
                pop_ck: None,
            },
        ];
        let infos = extra_infos(&old, "b", false, &msgs);
        assert_eq!(infos[1].0, "4 5 6 999 0 b 0 5");
        assert!(parse_offset_info(Some("garbage;0 1 x;0 2 3")).contains_key("0@2"));
    }
}
