//! Counters behind GET_BROKER_RUNTIME_INFO: totals plus per-second samples
//! for the "10 s 60 s 600 s" TPS triples `clusterList` prints.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct BrokerStats {
    pub put_count: AtomicU64,
    pub put_bytes: AtomicU64,
    pub put_failed: AtomicU64,
    pub get_found: AtomicU64,
    pub get_miss: AtomicU64,
    pub get_transferred: AtomicU64,
    samples: Mutex<VecDeque<(Instant, [u64; 4])>>,
}

const WINDOWS: [u64; 3] = [10, 60, 600];

impl BrokerStats {
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
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        s.push_back((Instant::now(), self.snapshot()));
        while s.len() > 602 {
            s.pop_front();
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
}
