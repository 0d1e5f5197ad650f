//! Live counters, as Java's `BrokerStatsManager` keeps them:
//! - broker totals plus per-second samples for the "10 s 60 s 600 s" TPS
//!   triples of GET_BROKER_RUNTIME_INFO (`clusterList -m`, `brokerStatus`);
//! - per topic and per (topic, group): messages and bytes put and got, with
//!   minute/hour/day windows for VIEW_BROKER_STATS_DATA (`statsAll`);
//! - what the metrics exporter (`crate::metrics`) reads at scrape time:
//!   messages in by message type, the message size histogram, DLQ sends.
//!
//! The send and pull paths only look a topic up in a concurrent map and add
//! to atomics; the windows are a `Mutex` touched by the once-a-second
//! sampler and by readers, never by a send or a pull.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;

#[derive(Default)]
pub struct BrokerStats {
    pub put_count: AtomicU64,
    pub put_bytes: AtomicU64,
    pub put_failed: AtomicU64,
    pub get_found: AtomicU64,
    pub get_miss: AtomicU64,
    pub get_transferred: AtomicU64,
    samples: Mutex<VecDeque<(Instant, [u64; 4])>>,
    topics: DashMap<String, Arc<TopicStats>>,
    /// When each of the minute/hour/day lists was last sampled, for every
    /// item at once, as Java's `StatsItemSet` timers (first at start).
    item_ticks: Mutex<[Option<Instant>; 3]>,
    /// Whether a metrics exporter reads the by-message-type counters (set
    /// once at start): without one a send does not work out its type.
    metrics: AtomicBool,
}

/// Java's `TopicMessageType` as a metrics label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Normal = 0,
    Fifo = 1,
    Delay = 2,
    Transaction = 3,
}

impl MessageType {
    pub const ALL: [MessageType; 4] = [
        MessageType::Normal,
        MessageType::Fifo,
        MessageType::Delay,
        MessageType::Transaction,
    ];

    pub fn label(self) -> &'static str {
        match self {
            MessageType::Normal => "normal",
            MessageType::Fifo => "fifo",
            MessageType::Delay => "delay",
            MessageType::Transaction => "transaction",
        }
    }

    /// Java `BrokerMetricsManager.getMessageType`, over the raw property
    /// string (`k\u{1}v\u{2}` pairs) without building a map: one pass over
    /// the bytes, looking only at names that can matter (they start with
    /// `T`, `_` or `D`); the rest of a pair is skipped to its separator.
    pub fn of_properties(raw: &str) -> MessageType {
        let b = raw.as_bytes();
        let mut sharding = false;
        let mut delay = false;
        let mut i = 0;
        while i < b.len() {
            let end = next_separator(b, i);
            if matches!(b[i], b'T' | b'_' | b'D') {
                let pair = &b[i..end];
                if let Some(eq) = pair.iter().position(|&c| c == 1) {
                    let (k, v) = (&pair[..eq], &pair[eq + 1..]);
                    match k {
                        b"TRAN_MSG" if v.eq_ignore_ascii_case(b"true") => {
                            return MessageType::Transaction
                        }
                        b"__SHARDINGKEY" => sharding = true,
                        b"__STARTDELIVERTIME"
                        | b"DELAY"
                        | b"TIMER_DELIVER_MS"
                        | b"TIMER_DELAY_SEC"
                        | b"TIMER_DELAY_MS" => delay = true,
                        _ => {}
                    }
                }
            }
            i = end + 1;
        }
        if sharding {
            MessageType::Fifo
        } else if delay {
            MessageType::Delay
        } else {
            MessageType::Normal
        }
    }
}

/// The index of the next pair separator (`\u{2}`) at or after `from`, or
/// `b.len()`: eight bytes at a time (the lowest byte the zero-byte test
/// flags is always a real match).
fn next_separator(b: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let x = u64::from_le_bytes(w) ^ (2 * ONES);
        let hit = x.wrapping_sub(ONES) & !x & HIGHS;
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    b[i.min(b.len())..]
        .iter()
        .position(|&c| c == 2)
        .map_or(b.len(), |n| i + n)
}

/// Upper bounds of Java's `rocketmq_message_size` buckets (bytes): 1 KiB,
/// 4 KiB, 512 KiB, 1 MiB, 2 MiB, 4 MiB, then +Inf.
pub const MESSAGE_SIZE_BUCKETS: [u64; 6] = [
    1024,
    4 * 1024,
    512 * 1024,
    1024 * 1024,
    2 * 1024 * 1024,
    4 * 1024 * 1024,
];

/// Messages in of one message type on one topic.
#[derive(Default)]
pub struct InCounters {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    /// Puts per size bucket (not cumulative; the last is +Inf).
    pub size_buckets: [AtomicU64; MESSAGE_SIZE_BUCKETS.len() + 1],
    /// Puts observed (a batch is one).
    pub puts: AtomicU64,
}

/// One topic's live counters.
#[derive(Default)]
pub struct TopicStats {
    /// Java `TOPIC_PUT_NUMS` / `TOPIC_PUT_SIZE` (every put, retry topics too).
    pub put_nums: StatsItem,
    pub put_size: AtomicU64,
    /// `rocketmq_messages_in_total` and friends, by [`MessageType`].
    pub in_by_type: [InCounters; 4],
    groups: DashMap<String, Arc<GroupStats>>,
}

/// One (topic, consumer group)'s live counters.
#[derive(Default)]
pub struct GroupStats {
    /// Java `GROUP_GET_NUMS` / `GROUP_GET_SIZE`.
    pub get_nums: StatsItem,
    pub get_size: AtomicU64,
    /// `rocketmq_send_to_dlq_messages_total`.
    pub dlq: AtomicU64,
}

/// A counter with Java `StatsItem`'s minute/hour/day snapshots: every 10 s
/// (7 kept), every 10 min (7 kept), every hour (25 kept).
#[derive(Default)]
pub struct StatsItem {
    pub value: AtomicU64,
    pub times: AtomicU64,
    windows: Mutex<[VecDeque<(Instant, u64, u64)>; 3]>,
}

/// (sample every, samples kept, window) for minute, hour, day.
const ITEM_WINDOWS: [(Duration, usize); 3] = [
    (Duration::from_secs(10), 7),
    (Duration::from_secs(600), 7),
    (Duration::from_secs(3600), 25),
];

/// `BrokerStatsItem`: the sum over a window, per second, and per call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WindowFigures {
    pub sum: u64,
    pub tps: f64,
    pub avgpt: f64,
}

impl StatsItem {
    pub fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
        self.times.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a snapshot into list `i` (0 minute, 1 hour, 2 day). A list's
    /// first snapshot is preceded by a zero one an interval earlier, as
    /// Java's `StatsItem.samplingIn*`: what was counted before it shows.
    fn sample_list(&self, i: usize, now: Instant) {
        let (every, keep) = ITEM_WINDOWS[i];
        let v = self.value.load(Ordering::Relaxed);
        let t = self.times.load(Ordering::Relaxed);
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let list = &mut w[i];
        if list.is_empty() {
            list.push_back((now.checked_sub(every).unwrap_or(now), 0, 0));
        }
        list.push_back((now, v, t));
        while list.len() > keep {
            list.pop_front();
        }
    }

    /// Minute, hour and day figures as Java computes them: between the
    /// oldest and the newest snapshot of each list (zero with fewer than two).
    pub fn figures(&self) -> [WindowFigures; 3] {
        let w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = [WindowFigures::default(); 3];
        for (o, list) in out.iter_mut().zip(w.iter()) {
            if let (Some(first), Some(last)) = (list.front(), list.back()) {
                let sum = last.1.saturating_sub(first.1);
                let times = last.2.saturating_sub(first.2);
                let secs = last.0.duration_since(first.0).as_secs_f64();
                *o = WindowFigures {
                    sum,
                    tps: if secs > 0.0 { sum as f64 / secs } else { 0.0 },
                    avgpt: if times > 0 {
                        sum as f64 / times as f64
                    } else {
                        0.0
                    },
                };
            }
        }
        out
    }
}

impl TopicStats {
    /// The group's counters on this topic, created on first use.
    pub fn group(&self, group: &str) -> Arc<GroupStats> {
        if let Some(g) = self.groups.get(group) {
            return g.clone();
        }
        self.groups.entry(group.to_owned()).or_default().clone()
    }

    pub fn group_if_any(&self, group: &str) -> Option<Arc<GroupStats>> {
        self.groups.get(group).map(|g| g.clone())
    }

    pub fn groups(&self) -> Vec<(String, Arc<GroupStats>)> {
        self.groups
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }

    /// One stored put of `messages` messages, `bytes` written, on the
    /// topic; `in_type` also counts it as messages in (Java leaves retry
    /// and DLQ topics out of `rocketmq_messages_in_total`).
    pub fn record_put(&self, messages: u64, bytes: u64, in_type: Option<MessageType>) {
        self.put_nums.add(messages);
        self.put_size.fetch_add(bytes, Ordering::Relaxed);
        if let Some(t) = in_type {
            let c = &self.in_by_type[t as usize];
            c.messages.fetch_add(messages, Ordering::Relaxed);
            c.bytes.fetch_add(bytes, Ordering::Relaxed);
            c.puts.fetch_add(1, Ordering::Relaxed);
            let b = MESSAGE_SIZE_BUCKETS
                .iter()
                .position(|&le| bytes <= le)
                .unwrap_or(MESSAGE_SIZE_BUCKETS.len());
            c.size_buckets[b].fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl GroupStats {
    /// Messages a pull handed to the group.
    pub fn record_get(&self, messages: u64, bytes: u64) {
        self.get_nums.add(messages);
        self.get_size.fetch_add(bytes, Ordering::Relaxed);
    }
}

const WINDOWS: [u64; 3] = [10, 60, 600];

impl BrokerStats {
    pub fn set_metrics(&self, on: bool) {
        self.metrics.store(on, Ordering::Relaxed);
    }

    /// Whether `rocketmq_messages_in_total` and friends are exported.
    pub fn metrics_on(&self) -> bool {
        self.metrics.load(Ordering::Relaxed)
    }

    /// The topic's counters, created on first use.
    pub fn topic(&self, topic: &str) -> Arc<TopicStats> {
        if let Some(t) = self.topics.get(topic) {
            return t.clone();
        }
        self.topics.entry(topic.to_owned()).or_default().clone()
    }

    pub fn topic_if_any(&self, topic: &str) -> Option<Arc<TopicStats>> {
        self.topics.get(topic).map(|t| t.clone())
    }

    /// Every topic with counters (a snapshot of the map).
    pub fn topics(&self) -> Vec<(String, Arc<TopicStats>)> {
        self.topics
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }

    fn snapshot(&self) -> [u64; 4] {
        [
            self.put_count.load(Ordering::Relaxed),
            self.get_found.load(Ordering::Relaxed),
            self.get_miss.load(Ordering::Relaxed),
            self.get_transferred.load(Ordering::Relaxed),
        ]
    }

    /// Called once a second by the broker's housekeeping task.
    pub fn sample(&self) {
        let now = Instant::now();
        {
            let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
            s.push_back((now, self.snapshot()));
            while s.len() > 602 {
                s.pop_front();
            }
        }
        let due: Vec<usize> = {
            let mut ticks = self.item_ticks.lock().unwrap_or_else(|p| p.into_inner());
            (0..3)
                .filter(|&i| {
                    let due = ticks[i].is_none_or(|at| now.duration_since(at) >= ITEM_WINDOWS[i].0);
                    if due {
                        ticks[i] = Some(now);
                    }
                    due
                })
                .collect()
        };
        if due.is_empty() {
            return;
        }
        for (_, t) in self.topics() {
            for &i in &due {
                t.put_nums.sample_list(i, now);
            }
            for (_, g) in t.groups() {
                for &i in &due {
                    g.get_nums.sample_list(i, now);
                }
            }
        }
    }

    /// TPS of counter `i` over each window, as "a b c" with Java's
    /// two-decimal formatting.
    fn tps(&self, i: usize) -> String {
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let now = (Instant::now(), self.snapshot());
        let rate = |window: u64| {
            let target = now.0.checked_sub(Duration::from_secs(window));
            let base = s
                .iter()
                .find(|(t, _)| target.is_none_or_before(*t))
                .or_else(|| s.front())
                .copied();
            match base {
                Some((t, v)) => {
                    let secs = now.0.duration_since(t).as_secs_f64();
                    if secs <= 0.0 {
                        0.0
                    } else {
                        (now.1[i].saturating_sub(v[i])) as f64 / secs
                    }
                }
                None => 0.0,
            }
        };
        WINDOWS
            .iter()
            .map(|w| format!("{:.2}", rate(*w)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn put_tps(&self) -> String {
        self.tps(0)
    }
    pub fn get_found_tps(&self) -> String {
        self.tps(1)
    }
    pub fn get_miss_tps(&self) -> String {
        self.tps(2)
    }
    pub fn get_transferred_tps(&self) -> String {
        self.tps(3)
    }
    pub fn get_total_tps(&self) -> String {
        let found: Vec<f64> = self
            .tps(1)
            .split(' ')
            .filter_map(|x| x.parse().ok())
            .collect();
        let miss: Vec<f64> = self
            .tps(2)
            .split(' ')
            .filter_map(|x| x.parse().ok())
            .collect();
        found
            .iter()
            .zip(miss.iter())
            .map(|(a, b)| format!("{:.2}", a + b))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

trait BeforeOrNone {
    fn is_none_or_before(&self, t: Instant) -> bool;
}

impl BeforeOrNone for Option<Instant> {
    fn is_none_or_before(&self, t: Instant) -> bool {
        match self {
            None => true,
            Some(target) => t >= *target,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tps_strings_have_three_numbers() {
        let s = BrokerStats::default();
        s.sample();
        s.put_count.fetch_add(10, Ordering::Relaxed);
        let tps = s.put_tps();
        let parts: Vec<f64> = tps.split(' ').map(|x| x.parse().unwrap()).collect();
        assert_eq!(parts.len(), 3, "{tps}");
        assert_eq!(s.get_total_tps().split(' ').count(), 3);
    }

    #[test]
    fn message_type_follows_java_precedence() {
        let p = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| format!("{k}\u{1}{v}\u{2}"))
                .collect::<String>()
        };
        assert_eq!(MessageType::of_properties(""), MessageType::Normal);
        assert_eq!(
            MessageType::of_properties(&p(&[("KEYS", "k"), ("TAGS", "t")])),
            MessageType::Normal
        );
        assert_eq!(
            MessageType::of_properties(&p(&[("DELAY", "3")])),
            MessageType::Delay
        );
        assert_eq!(
            MessageType::of_properties(&p(&[("DELAY", "3"), ("__SHARDINGKEY", "a")])),
            MessageType::Fifo
        );
        assert_eq!(
            MessageType::of_properties(&p(&[("__SHARDINGKEY", "a"), ("TRAN_MSG", "true")])),
            MessageType::Transaction
        );
        assert_eq!(
            MessageType::of_properties(&p(&[("TRAN_MSG", "false")])),
            MessageType::Normal
        );
        // No trailing separator, empty pairs, a name without a value.
        assert_eq!(
            MessageType::of_properties("TAGS\u{1}a\u{2}TRAN_MSG\u{1}TRUE"),
            MessageType::Transaction
        );
        assert_eq!(
            MessageType::of_properties("\u{2}\u{2}DELAY\u{2}T"),
            MessageType::Normal
        );
        assert_eq!(
            MessageType::of_properties("\u{2}TIMER_DELAY_MS\u{1}5\u{2}"),
            MessageType::Delay
        );
    }

    #[test]
    fn separators_are_found_at_every_position() {
        for len in 0..20 {
            for at in 0..=len {
                let mut b = vec![b'x'; len];
                if at < len {
                    b[at] = 2;
                }
                for from in 0..=at.min(len) {
                    assert_eq!(
                        next_separator(&b, from),
                        at,
                        "len {len} at {at} from {from}"
                    );
                }
            }
        }
        // A 0x03 or 0x01 before the separator is not one.
        assert_eq!(next_separator(b"\x03\x01abcdefg\x02", 0), 9);
    }

    #[test]
    fn puts_land_in_their_size_bucket() {
        let s = BrokerStats::default();
        let t = s.topic("T");
        t.record_put(1, 1024, Some(MessageType::Normal));
        t.record_put(1, 1025, Some(MessageType::Normal));
        t.record_put(3, 9 * 1024 * 1024, Some(MessageType::Normal));
        t.record_put(1, 10, None);
        let c = &t.in_by_type[0];
        let b: Vec<u64> = c
            .size_buckets
            .iter()
            .map(|x| x.load(Ordering::Relaxed))
            .collect();
        assert_eq!(b, vec![1, 1, 0, 0, 0, 0, 1]);
        assert_eq!(c.messages.load(Ordering::Relaxed), 5);
        assert_eq!(t.put_nums.value.load(Ordering::Relaxed), 6);
        assert!(Arc::ptr_eq(&t, &s.topic("T")));
    }

    #[test]
    fn item_windows_span_first_to_last_snapshot() {
        let item = StatsItem::default();
        let t0 = Instant::now() + Duration::from_secs(7200);
        item.add(10);
        // The first sampling: a zero snapshot an interval back, then now.
        item.sample_list(0, t0);
        assert_eq!(item.figures()[0].sum, 10);
        // The hour and day lists were not sampled yet: Java's zeros.
        assert_eq!(item.figures()[2], WindowFigures::default());
        item.add(30);
        item.add(30);
        item.sample_list(0, t0 + Duration::from_secs(10));
        let [minute, hour, _] = item.figures();
        assert_eq!(minute.sum, 70);
        assert!((minute.tps - 3.5).abs() < 1e-9, "{minute:?}");
        assert!((minute.avgpt - 70.0 / 3.0).abs() < 1e-9, "{minute:?}");
        assert_eq!(hour.sum, 0);
    }

    #[test]
    fn lists_are_sampled_on_broker_wide_ticks() {
        let s = BrokerStats::default();
        // The first tick, at start, finds no item.
        s.sample();
        let t = s.topic("T");
        t.record_put(40, 400, Some(MessageType::Normal));
        s.sample();
        // Neither the minute (10 s) nor the hour tick is due yet.
        assert_eq!(t.put_nums.figures()[0].sum, 0);
        assert_eq!(t.put_nums.figures()[1].sum, 0);
    }
}
