//! The invariant every fault test checks (issue 17): **every acknowledged
//! message is readable at the queue offset it was acknowledged with (same
//! offset msgId, unique id and key), and no two acknowledgements share a
//! (queue, offset)**.
//!
//! Input: the output of a Java driver that prints one line per acknowledged
//! send, `ACK <queueId> <queueOffset> <offsetMsgId> <uniqId> <key> [<ackTimeMs>]`
//! (compat.StoreDriver `produce` / `produce-until`), and the output of
//! compat.StoreDriver `dump` of the topic,
//! `MSG <queueId> <queueOffset> <offsetMsgId> <uniqId> <keys|joined> ...`
//! ending with `DUMPED n`.
//!
//! [`check_acks`] compares them; [`AckCheck::assert_ok`] panics with examples
//! of every kind of violation and the caller's logs. A key stored at more
//! than one offset (a send the client timed out and a later one of the same
//! message, or a redelivered record) and a (queue, offset) pulled twice are
//! reported in the summary, never failed.

use std::collections::{BTreeMap, HashMap};

/// One `ACK` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub queue: i32,
    pub offset: i64,
    pub offset_msg_id: String,
    pub uniq_id: String,
    pub key: String,
    /// When the driver got the acknowledgement (ms since the epoch), if the
    /// line carries it.
    pub at_ms: Option<i64>,
}

impl Ack {
    fn describe(&self) -> String {
        format!(
            "{} (uniqId {}, offsetMsgId {}{})",
            self.key,
            self.uniq_id,
            self.offset_msg_id,
            self.at_ms
                .map(|t| format!(", acked at {t}"))
                .unwrap_or_default()
        )
    }
}

/// Every well-formed `ACK` line of a driver's output, in output order
/// (duplicates kept).
pub fn parse_acks(out: &str) -> Vec<Ack> {
    out.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first() != Some(&"ACK") || f.len() < 6 {
                return None;
            }
            Some(Ack {
                queue: f[1].parse().ok()?,
                offset: f[2].parse().ok()?,
                offset_msg_id: f[3].to_owned(),
                uniq_id: f[4].to_owned(),
                key: f[5].to_owned(),
                at_ms: f.get(6).and_then(|t| t.parse().ok()),
            })
        })
        .collect()
}

/// The keys of every acknowledged send (each once per `ACK` line).
pub fn acked_keys(out: &str) -> Vec<String> {
    parse_acks(out).into_iter().map(|a| a.key).collect()
}

/// One `MSG` line of a dump: (offsetMsgId, uniqId, keys).
#[derive(Clone, Debug)]
struct Stored {
    offset_msg_id: String,
    uniq_id: String,
    keys: String,
}

/// The result of [`check_acks`].
#[derive(Debug, Default)]
pub struct AckCheck {
    /// `ACK` lines.
    pub acked: usize,
    /// Distinct (queue, offset) of the dump.
    pub stored: usize,
    /// Whether the dump ended with its `DUMPED` line.
    pub dump_complete: bool,
    /// (queue, offset) acknowledged more than once: one description each
    /// (every acknowledgement at it), in queue/offset order.
    pub shared_offsets: Vec<String>,
    /// Acknowledgements beyond the first at a shared (queue, offset).
    pub extra_acks: usize,
    /// Acknowledged messages not readable at their (queue, offset) with
    /// their ids and key: (queue, offset, description).
    pub unreadable: Vec<(i32, i64, String)>,
    /// Reported only: keys stored at more than one (queue, offset).
    pub keys_stored_twice: usize,
    /// Reported only: `MSG` lines repeating a (queue, offset).
    pub pulled_twice: usize,
    /// Reported only: stored (queue, offset) no acknowledgement names.
    pub not_acked: usize,
    /// Acknowledgements per queue.
    pub per_queue: BTreeMap<i32, usize>,
}

/// Checks the invariant on a producer driver's output (`ACK` lines) and a
/// dump of the topic (`MSG` lines). See the module documentation.
pub fn check_acks(acks_out: &str, dump_out: &str) -> AckCheck {
    let acks = parse_acks(acks_out);
    let mut stored: BTreeMap<(i32, i64), Stored> = BTreeMap::new();
    let mut pulled_twice = 0;
    for line in dump_out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() != Some(&"MSG") || f.len() < 6 {
            continue;
        }
        let (Ok(q), Ok(o)) = (f[1].parse::<i32>(), f[2].parse::<i64>()) else {
            continue;
        };
        let s = Stored {
            offset_msg_id: f[3].to_owned(),
            uniq_id: f[4].to_owned(),
            keys: f[5].to_owned(),
        };
        if stored.insert((q, o), s).is_some() {
            pulled_twice += 1;
        }
    }
    let mut check = AckCheck {
        acked: acks.len(),
        stored: stored.len(),
        dump_complete: dump_out.lines().any(|l| l.starts_with("DUMPED ")),
        pulled_twice,
        ..AckCheck::default()
    };

    let mut at: BTreeMap<(i32, i64), Vec<&Ack>> = BTreeMap::new();
    for a in &acks {
        at.entry((a.queue, a.offset)).or_default().push(a);
        *check.per_queue.entry(a.queue).or_default() += 1;
    }
    for ((q, o), list) in &at {
        if list.len() > 1 {
            check.extra_acks += list.len() - 1;
            check.shared_offsets.push(format!(
                "queue {q} offset {o} acknowledged {} times: {}",
                list.len(),
                list.iter()
                    .map(|a| a.describe())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
    for a in &acks {
        let s = stored.get(&(a.queue, a.offset));
        // A batch's records also carry the batch's own UNIQ_KEY after their
        // own, so consumers see that one (Java's broker and ours alike): the
        // unique id is compared for single sends only.
        let batch = a.key.starts_with("batch-");
        let same = s.is_some_and(|s| {
            s.offset_msg_id == a.offset_msg_id
                && (batch || s.uniq_id == a.uniq_id)
                && s.keys.split('|').next() == Some(a.key.as_str())
        });
        if !same {
            check.unreadable.push((
                a.queue,
                a.offset,
                format!(
                    "queue {} offset {}: acknowledged {} -> stored {}",
                    a.queue,
                    a.offset,
                    a.describe(),
                    s.map_or("nothing".to_owned(), |s| format!(
                        "{} (uniqId {}, offsetMsgId {})",
                        s.keys, s.uniq_id, s.offset_msg_id
                    ))
                ),
            ));
        }
    }
    let mut keys: HashMap<&str, usize> = HashMap::new();
    for s in stored.values() {
        *keys.entry(s.keys.as_str()).or_default() += 1;
    }
    check.keys_stored_twice = keys.values().filter(|c| **c > 1).count();
    check.not_acked = stored.keys().filter(|k| !at.contains_key(k)).count();
    check
}

impl AckCheck {
    /// Whether the invariant holds (and there was something to check).
    pub fn ok(&self) -> bool {
        self.acked > 0
            && self.dump_complete
            && self.shared_offsets.is_empty()
            && self.unreadable.is_empty()
    }

    /// One line: what was checked, and the reported-only figures.
    pub fn summary(&self) -> String {
        format!(
            "invariant: {} acknowledged (per queue {:?}), {} stored ({} not acknowledged); \
             {} (queue, offset) acknowledged more than once ({} extra acks), {} acknowledged \
             messages not readable at their offset; reported only: {} keys stored twice, \
             {} offsets pulled twice{}",
            self.acked,
            self.per_queue,
            self.stored,
            self.not_acked,
            self.shared_offsets.len(),
            self.extra_acks,
            self.unreadable.len(),
            self.keys_stored_twice,
            self.pulled_twice,
            if self.dump_complete {
                ""
            } else {
                "; the dump did not complete"
            }
        )
    }

    /// What is wrong, with up to 20 examples of each violation.
    pub fn failure(&self) -> String {
        let mut s = String::new();
        if self.acked == 0 {
            s.push_str("no ACK lines: nothing was acknowledged, nothing to check\n");
        }
        if !self.dump_complete {
            s.push_str("the dump did not complete (no DUMPED line)\n");
        }
        if !self.shared_offsets.is_empty() {
            s.push_str(&format!(
                "{} sends acknowledged at a (queue, offset) already in use ({} offsets \
                 acknowledged more than once), e.g.:\n{}\n",
                self.extra_acks,
                self.shared_offsets.len(),
                self.shared_offsets
                    .iter()
                    .take(20)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        if !self.unreadable.is_empty() {
            s.push_str(&format!(
                "{} of {} acknowledged messages not readable at the offset they were \
                 acknowledged with, e.g.:\n{}\n",
                self.unreadable.len(),
                self.acked,
                self.unreadable
                    .iter()
                    .take(20)
                    .map(|u| u.2.clone())
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        s
    }

    /// Prints the summary; panics with [`AckCheck::failure`], `what` and
    /// `logs()` unless the invariant holds.
    pub fn assert_ok(&self, what: &str, logs: impl FnOnce() -> String) {
        eprintln!("{what}: {}", self.summary());
        assert!(
            self.ok(),
            "{what}: acknowledged-message invariant violated\n{}\n{}\n{}",
            self.summary(),
            self.failure(),
            logs()
        );
    }
}

/// How many acknowledgements of a driver's output name a (queue, offset)
/// an earlier one already named (a progress figure; [`check_acks`] fails
/// on them).
pub fn reacknowledged(out: &str) -> usize {
    let mut seen = std::collections::HashSet::new();
    parse_acks(out)
        .iter()
        .filter(|a| !seen.insert((a.queue, a.offset)))
        .count()
}

/// The acknowledgement times (ms) of a driver's `ACK` lines that carry one,
/// sorted.
pub fn ack_times(out: &str) -> Vec<i64> {
    let mut t: Vec<i64> = parse_acks(out).iter().filter_map(|a| a.at_ms).collect();
    t.sort_unstable();
    t
}

/// The longest stretch without an acknowledgement within `[from, to]` (ms),
/// counting from `from` to the first acknowledgement and from the last one
/// to `to`: (gap ms, where it starts).
pub fn longest_ack_gap(times: &[i64], from: i64, to: i64) -> (i64, i64) {
    let mut points = vec![from];
    points.extend(times.iter().copied().filter(|t| *t > from && *t < to));
    points.push(to);
    points
        .windows(2)
        .map(|w| (w[1] - w[0], w[0]))
        .max()
        .unwrap_or((0, from))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "MSG 0 0 OID0 U0 k-0 TagK 0 k kill-body-0\n\
                        MSG 0 1 OID1 U1 k-1 TagK 1 k kill-body-1\n\
                        MSG 1 0 OID2 U2 key-2|uk-2 Tag2 2 c2 body-2\n\
                        DUMPED 3\n";

    #[test]
    fn holds_when_every_ack_is_readable() {
        let acks = "ACK 0 0 OID0 U0 k-0 1000\nERR k-9 X\nACK 0 1 OID1 U1 k-1\nACK 1 0 OID2 U2 key-2 1005\n";
        let c = check_acks(acks, DUMP);
        assert!(c.ok(), "{}", c.failure());
        assert_eq!((c.acked, c.stored, c.not_acked), (3, 3, 0));
    }

    #[test]
    fn fails_on_two_acks_at_one_offset() {
        // k-7 acknowledged at offset 0 again (the whole-group restart bug).
        let acks = "ACK 0 0 OID0 U0 k-0\nACK 0 1 OID1 U1 k-1\nACK 0 0 OID7 U7 k-7\n";
        let c = check_acks(acks, DUMP);
        assert!(!c.ok());
        assert_eq!((c.shared_offsets.len(), c.extra_acks), (1, 1));
        assert!(c.failure().contains("already in use"), "{}", c.failure());
        assert_eq!(c.unreadable.len(), 1);
        assert_eq!(reacknowledged(acks), 1);
    }

    #[test]
    fn fails_on_a_missing_or_changed_message_and_an_incomplete_dump() {
        let c = check_acks("ACK 0 1 OID1 U9 k-1\nACK 2 0 OIDX UX k-3\n", DUMP);
        assert_eq!(c.unreadable.len(), 2);
        assert!(!c.ok());
        let c = check_acks("ACK 0 0 OID0 U0 k-0\n", "MSG 0 0 OID0 U0 k-0 TagK 0 k b\n");
        assert!(!c.dump_complete && !c.ok());
        assert!(!check_acks("", DUMP).ok());
    }

    #[test]
    fn gaps() {
        assert_eq!(longest_ack_gap(&[5, 10, 30, 31], 0, 40), (20, 10));
        assert_eq!(longest_ack_gap(&[], 0, 40), (40, 0));
        assert_eq!(longest_ack_gap(&[1, 2, 3], 0, 100), (97, 3));
    }
}
