//! The receipt handle of a popped message, in Java's string form:
//! `ckOffset popTime invisibleTime reviveQid topicType brokerName queueId
//! offset [commitLogOffset]` (space separated; `topicType` is `0` for the
//! normal topic, `1` or `2` for a retry topic). The first eight fields are
//! the broker's `POP_CK` extra info, so a handle minted by any RocketMQ
//! broker's pop is what a client sends back.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptHandle {
    pub ck_offset: i64,
    pub pop_time: i64,
    pub invisible_time: i64,
    pub revive_qid: i32,
    pub topic_type: String,
    pub broker_name: String,
    pub queue_id: i32,
    pub offset: i64,
    /// -1 when the handle has no ninth field.
    pub commit_log_offset: i64,
}

impl ReceiptHandle {
    /// Parses a handle; `None` for anything malformed (never panics).
    pub fn parse(s: &str) -> Option<ReceiptHandle> {
        if s.len() > 1024 {
            return None;
        }
        let f: Vec<&str> = s.split(' ').collect();
        if f.len() < 8 || f.len() > 9 {
            return None;
        }
        let topic_type = f[4];
        if topic_type.is_empty() || !topic_type.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let broker_name = f[5];
        if broker_name.is_empty() {
            return None;
        }
        let h = ReceiptHandle {
            ck_offset: f[0].parse().ok()?,
            pop_time: f[1].parse().ok()?,
            invisible_time: f[2].parse().ok()?,
            revive_qid: f[3].parse().ok()?,
            topic_type: topic_type.to_owned(),
            broker_name: broker_name.to_owned(),
            queue_id: f[6].parse().ok()?,
            offset: f[7].parse().ok()?,
            commit_log_offset: match f.get(8) {
                Some(v) => v.parse().ok()?,
                None => -1,
            },
        };
        if h.queue_id < 0 || h.offset < 0 || h.invisible_time < 0 || h.pop_time < 0 {
            return None;
        }
        Some(h)
    }

    /// The first eight fields: the broker's extra info for ack and
    /// change-invisible-time.
    pub fn extra_info(&self) -> String {
        format!(
            "{} {} {} {} {} {} {} {}",
            self.ck_offset,
            self.pop_time,
            self.invisible_time,
            self.revive_qid,
            self.topic_type,
            self.broker_name,
            self.queue_id,
            self.offset
        )
    }

    /// When the message becomes visible again (ms since the epoch).
    pub fn next_visible_time(&self) -> i64 {
        self.pop_time.saturating_add(self.invisible_time)
    }

    /// Whether the handle names a retry topic (`topicType` not `0`).
    pub fn is_retry(&self) -> bool {
        self.topic_type != "0"
    }
}

impl fmt::Display for ReceiptHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.extra_info(), self.commit_log_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_java_shape() {
        let s = "12 1700000000000 30000 3 0 broker-a 1 42 9876";
        let h = ReceiptHandle::parse(s).expect("valid");
        assert_eq!(h.broker_name, "broker-a");
        assert_eq!(h.queue_id, 1);
        assert_eq!(h.offset, 42);
        assert_eq!(h.commit_log_offset, 9876);
        assert_eq!(h.to_string(), s);
        assert_eq!(h.extra_info(), "12 1700000000000 30000 3 0 broker-a 1 42");
        let short = ReceiptHandle::parse("12 1700000000000 30000 3 1 b 0 7").expect("8 fields");
        assert_eq!(short.commit_log_offset, -1);
        assert!(short.is_retry());
    }

    #[test]
    fn forged_handles_are_rejected() {
        for s in [
            "",
            "x",
            "1 2 3 4 0 b 0",
            "1 2 3 4 0 b 0 x",
            "1 2 3 4 0  0 5",
            "1 2 3 4 a b 0 5",
            "1 2 3 4 0 b -1 5",
            "1 2 3 4 0 b 0 5 6 7",
            "99999999999999999999 2 3 4 0 b 0 5",
        ] {
            assert!(ReceiptHandle::parse(s).is_none(), "{s:?}");
        }
        let long = "1 ".repeat(2000);
        assert!(ReceiptHandle::parse(&long).is_none());
    }
}
