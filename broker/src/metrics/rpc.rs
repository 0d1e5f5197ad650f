//! `rocketmq_rpc_latency`: every request the broker answers, by request
//! code and response code, through the router's interceptor (Java records it
//! in `NettyRemotingAbstract` when the response is written).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use remoting::{Connection, Interceptor, RemotingCommand};

/// Upper bounds of Java's `rocketmq_rpc_latency` buckets (milliseconds),
/// then +Inf.
pub const RPC_LATENCY_BUCKETS_MS: [u64; 9] = [1, 3, 5, 7, 10, 100, 1000, 2000, 3000];

/// One (request code, response code)'s latency histogram.
#[derive(Default)]
pub struct RpcHistogram {
    pub count: AtomicU64,
    pub sum_ms: AtomicU64,
    /// Per bucket, not cumulative; the last is +Inf.
    pub buckets: [AtomicU64; RPC_LATENCY_BUCKETS_MS.len() + 1],
}

impl RpcHistogram {
    fn observe(&self, ms: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
        let b = RPC_LATENCY_BUCKETS_MS
            .iter()
            .position(|&le| ms <= le)
            .unwrap_or(RPC_LATENCY_BUCKETS_MS.len());
        self.buckets[b].fetch_add(1, Ordering::Relaxed);
    }
}

/// The histograms, keyed by (request code, response code). A few dozen
/// keys at most; a request only reads the map once the key exists.
#[derive(Default)]
pub struct RpcStats {
    by_code: DashMap<(i32, i32), Arc<RpcHistogram>>,
}

impl RpcStats {
    pub fn record(&self, request_code: i32, response_code: i32, elapsed: Duration) {
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let key = (request_code, response_code);
        if let Some(h) = self.by_code.get(&key) {
            h.observe(ms);
            return;
        }
        self.by_code.entry(key).or_default().observe(ms);
    }

    pub fn snapshot(&self) -> Vec<((i32, i32), Arc<RpcHistogram>)> {
        self.by_code
            .iter()
            .map(|e| (*e.key(), e.value().clone()))
            .collect()
    }
}

/// Installed on the broker's router when metrics are on.
pub struct RpcInterceptor(pub Arc<RpcStats>);

impl Interceptor for RpcInterceptor {
    fn after(&self, _conn: &Connection, code: i32, response: &RemotingCommand, elapsed: Duration) {
        self.0.record(code, response.code, elapsed);
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
}
