//! `rocketmq_rpc_latency`: every request the broker answers, by request
//! code and response code, through the router's interceptor (Java records it
//! in `NettyRemotingAbstract` when the response is written). The same hook
//! times topic and subscription group creation (Java's
//! `rocketmq_topic_create_execution_time` and
//! `rocketmq_consumer_group_create_execution_time`, recorded in
//! `AdminBrokerProcessor`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use remoting::code::request_code as rq;
use remoting::{CommandError, Connection, Interceptor, RemotingCommand};

/// Upper bounds of Java's `rocketmq_rpc_latency` buckets (milliseconds),
/// then +Inf.
pub const RPC_LATENCY_BUCKETS_MS: [u64; 9] = [1, 3, 5, 7, 10, 100, 1000, 2000, 3000];

/// Upper bounds of Java's creation-time buckets (milliseconds), then +Inf.
pub const CREATE_TIME_BUCKETS_MS: [u64; 5] = [10, 100, 1000, 3000, 5000];

/// A histogram of milliseconds over `bounds` (`N` = bounds + 1).
pub struct MsHistogram<const N: usize> {
    pub count: AtomicU64,
    pub sum_ms: AtomicU64,
    /// Per bucket, not cumulative; the last is +Inf.
    pub buckets: [AtomicU64; N],
}

impl<const N: usize> Default for MsHistogram<N> {
    fn default() -> Self {
        MsHistogram {
            count: AtomicU64::new(0),
            sum_ms: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl<const N: usize> MsHistogram<N> {
    /// A copy of the counts (each read once; a scrape's view).
    fn copy(&self) -> Self {
        let load = |a: &AtomicU64| AtomicU64::new(a.load(Ordering::Relaxed));
        MsHistogram {
            count: load(&self.count),
            sum_ms: load(&self.sum_ms),
            buckets: std::array::from_fn(|i| load(&self.buckets[i])),
        }
    }

    fn observe(&self, bounds: &[u64], ms: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
        let b = bounds
            .iter()
            .position(|&le| ms <= le)
            .unwrap_or(bounds.len())
            .min(N - 1);
        self.buckets[b].fetch_add(1, Ordering::Relaxed);
    }
}

/// One (request code, response code)'s latency histogram.
pub type RpcHistogram = MsHistogram<{ RPC_LATENCY_BUCKETS_MS.len() + 1 }>;
/// One label set's creation-time histogram.
pub type CreateHistogram = MsHistogram<{ CREATE_TIME_BUCKETS_MS.len() + 1 }>;

/// Java `TopicValidator.isSystemTopic` without the cluster- and
/// broker-named topics it adds at start.
fn is_system_topic(topic: &str) -> bool {
    topic.starts_with("rmq_sys_")
        || matches!(
            topic,
            "TBW102"
                | "SCHEDULE_TOPIC_XXXX"
                | "BenchmarkTest"
                | "RMQ_SYS_TRANS_HALF_TOPIC"
                | "RMQ_SYS_TRACE_TOPIC"
                | "RMQ_SYS_TRANS_OP_HALF_TOPIC"
                | "TRANS_CHECK_MAX_TIME_TOPIC"
                | "SELF_TEST_TOPIC"
                | "OFFSET_MOVED_EVENT"
        )
}

/// Request codes below this, answered with a response code below
/// [`FAST_RESPONSE_CODES`], find their histogram by index (the sends, pulls,
/// heartbeats and admin calls); other pairs go to a concurrent map.
const FAST_REQUEST_CODES: usize = 1024;
const FAST_RESPONSE_CODES: usize = 32;

/// One request code's histograms by response code, created on first use.
type ByResponse = [OnceLock<RpcHistogram>; FAST_RESPONSE_CODES];

/// The histograms, keyed by (request code, response code). A request
/// finds a common pair's histogram without hashing or locking (two
/// `OnceLock` reads); the rare others are in a map.
pub struct RpcStats {
    fast: Box<[OnceLock<Box<ByResponse>>]>,
    by_code: DashMap<(i32, i32), Arc<RpcHistogram>>,
    /// Topic creation by (succeeded, system topic).
    pub topic_create: DashMap<(bool, bool), Arc<CreateHistogram>>,
    /// Group creation by success.
    pub group_create: DashMap<bool, Arc<CreateHistogram>>,
    /// Whether the topic of the UPDATE_AND_CREATE_TOPIC in progress on a
    /// connection is a system topic (admin tools send one at a time).
    creating: DashMap<u64, bool>,
}

impl Default for RpcStats {
    fn default() -> Self {
        RpcStats {
            fast: (0..FAST_REQUEST_CODES).map(|_| OnceLock::new()).collect(),
            by_code: DashMap::new(),
            topic_create: DashMap::new(),
            group_create: DashMap::new(),
            creating: DashMap::new(),
        }
    }
}

impl RpcStats {
    pub fn record(&self, request_code: i32, response_code: i32, elapsed: Duration) {
        let ms = millis(elapsed);
        if let (Ok(rq), Ok(rs)) = (
            usize::try_from(request_code),
            usize::try_from(response_code),
        ) {
            if rq < FAST_REQUEST_CODES && rs < FAST_RESPONSE_CODES {
                self.fast[rq].get_or_init(|| Box::new(std::array::from_fn(|_| OnceLock::new())))
                    [rs]
                    .get_or_init(RpcHistogram::default)
                    .observe(&RPC_LATENCY_BUCKETS_MS, ms);
                return;
            }
        }
        let key = (request_code, response_code);
        if let Some(h) = self.by_code.get(&key) {
            h.observe(&RPC_LATENCY_BUCKETS_MS, ms);
            return;
        }
        self.by_code
            .entry(key)
            .or_default()
            .observe(&RPC_LATENCY_BUCKETS_MS, ms);
    }

    fn record_create(&self, conn: u64, code: i32, ok: bool, elapsed: Duration) {
        let ms = millis(elapsed);
        match code {
            rq::UPDATE_AND_CREATE_TOPIC => {
                let system = self.creating.remove(&conn).is_some_and(|(_, s)| s);
                self.topic_create
                    .entry((ok, system))
                    .or_default()
                    .observe(&CREATE_TIME_BUCKETS_MS, ms);
            }
            rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
            | rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST => {
                self.group_create
                    .entry(ok)
                    .or_default()
                    .observe(&CREATE_TIME_BUCKETS_MS, ms);
            }
            _ => {}
        }
    }

    /// Every (request code, response code) seen, with a copy of its
    /// histogram.
    pub fn snapshot(&self) -> Vec<((i32, i32), Arc<RpcHistogram>)> {
        let mut out = Vec::new();
        for (rq, by_response) in self.fast.iter().enumerate() {
            let Some(by_response) = by_response.get() else {
                continue;
            };
            for (rs, h) in by_response.iter().enumerate() {
                if let Some(h) = h.get() {
                    out.push(((rq as i32, rs as i32), Arc::new(h.copy())));
                }
            }
        }
        out.extend(self.by_code.iter().map(|e| (*e.key(), e.value().clone())));
        out
    }
}

/// Installed on the broker's router when metrics are on.
pub struct RpcInterceptor(pub Arc<RpcStats>);

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Interceptor for RpcInterceptor {
    fn before(&self, conn: &Connection, request: &RemotingCommand) -> Result<(), CommandError> {
        if request.code == rq::UPDATE_AND_CREATE_TOPIC {
            let system = request.ext("topic").is_some_and(is_system_topic);
            self.0.creating.insert(conn.id(), system);
        }
        Ok(())
    }

    fn after(&self, conn: &Connection, code: i32, response: &RemotingCommand, elapsed: Duration) {
        self.0.record(code, response.code, elapsed);
        self.0
            .record_create(conn.id(), code, response.code == 0, elapsed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_java_buckets() {
        let s = RpcStats::default();
        s.record(310, 0, Duration::from_micros(900));
        s.record(310, 0, Duration::from_millis(4));
        s.record(310, 0, Duration::from_secs(5));
        s.record(11, 19, Duration::from_millis(100));
        let snap = s.snapshot();
        assert_eq!(snap.len(), 2);
        let (_, h) = snap
            .iter()
            .find(|(k, _)| *k == (310, 0))
            .expect("send histogram");
        let b: Vec<u64> = h
            .buckets
            .iter()
            .map(|x| x.load(Ordering::Relaxed))
            .collect();
        assert_eq!(b, vec![1, 0, 1, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(h.count.load(Ordering::Relaxed), 3);
        assert_eq!(h.sum_ms.load(Ordering::Relaxed), 5004);
    }

    #[test]
    fn creation_times_by_outcome() {
        let s = RpcStats::default();
        s.creating.insert(7, true);
        s.record_create(
            7,
            rq::UPDATE_AND_CREATE_TOPIC,
            true,
            Duration::from_millis(50),
        );
        s.record_create(
            8,
            rq::UPDATE_AND_CREATE_TOPIC,
            false,
            Duration::from_millis(5),
        );
        s.record_create(
            8,
            rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
            true,
            Duration::ZERO,
        );
        s.record_create(8, rq::SEND_MESSAGE, true, Duration::ZERO);
        let system_ok = s.topic_create.get(&(true, true)).expect("system topic");
        assert_eq!(system_ok.buckets[1].load(Ordering::Relaxed), 1);
        assert!(s.topic_create.contains_key(&(false, false)));
        assert_eq!(s.group_create.len(), 1);
        assert!(s.creating.is_empty());
        assert!(is_system_topic("rmq_sys_wheel_timer"));
        assert!(!is_system_topic("MxMain"));
    }
}
