//! Raw sends to a broker set's master and the fault-test invariant over
//! them, for controller tests that change masters without a Java producer.

use std::time::Duration;

use super::request;
use crate::fault_rounds::dump_topic;

/// UPDATE_AND_CREATE_TOPIC (17) on one broker; the response code.
pub fn create_topic_on(addr: &str, topic: &str, queues: i32) -> Option<i32> {
    let q = queues.to_string();
    let r = request(
        addr,
        17,
        &[
            ("topic", topic),
            ("defaultTopic", "TBW102"),
            ("readQueueNums", q.as_str()),
            ("writeQueueNums", q.as_str()),
            ("perm", "6"),
            ("topicFilterType", "SINGLE_TAG"),
            ("topicSysFlag", "0"),
            ("order", "false"),
        ],
        None,
    )?;
    Some(r.code)
}

/// SEND_MESSAGE (10) of `body` to queue 0 of `topic`: the response code and
/// the acknowledged queue offset.
pub fn send_raw(addr: &str, topic: &str, body: &str) -> Option<(i32, Option<i64>)> {
    let r = request(
        addr,
        10,
        &[
            ("producerGroup", "ctl-pg"),
            ("topic", topic),
            ("defaultTopic", "TBW102"),
            ("defaultTopicQueueNums", "4"),
            ("queueId", "0"),
            ("sysFlag", "0"),
            ("bornTimestamp", "1700000000000"),
            ("flag", "0"),
            ("properties", ""),
            ("reconsumeTimes", "0"),
            ("unitMode", "false"),
            ("batch", "false"),
        ],
        Some(body.as_bytes().to_vec()),
    )?;
    let offset = r.ext("queueOffset").and_then(|v| v.parse().ok());
    Some((r.code, offset))
}

/// Acknowledged raw sends to queue 0: (queue offset, body).
#[derive(Debug, Default)]
pub struct RawAcks(pub Vec<(i64, String)>);

impl RawAcks {
    /// Sends `body` to `addr`; records it when acknowledged (code 0).
    pub fn send(&mut self, addr: &str, topic: &str, body: String) -> Option<(i32, Option<i64>)> {
        let r = send_raw(addr, topic, &body);
        if let Some((0, Some(offset))) = r {
            self.0.push((offset, body));
        }
        r
    }

    /// The invariant: every acknowledged send is on `master` at the queue
    /// offset it was acknowledged with, and no two share an offset. `Err`
    /// names the first violation.
    pub fn check(&self, master: &str, topic: &str) -> Result<(), String> {
        let mut offsets: Vec<i64> = self.0.iter().map(|(o, _)| *o).collect();
        offsets.sort_unstable();
        offsets.dedup();
        if offsets.len() != self.0.len() {
            return Err(format!("an offset acknowledged twice: {:?}", self.0));
        }
        let (_, pulled) = dump_topic(master, topic, 1, Duration::from_secs(30))?;
        for (offset, body) in &self.0 {
            let found = pulled
                .iter()
                .find(|p| p.queue == 0 && p.queue_offset == *offset);
            if found.map(|p| p.body.as_slice()) != Some(body.as_bytes()) {
                return Err(format!(
                    "acknowledged {body:?} at queue 0 offset {offset}: on {master} found {:?}",
                    found.map(|p| String::from_utf8_lossy(&p.body).into_owned())
                ));
            }
        }
        Ok(())
    }
}
