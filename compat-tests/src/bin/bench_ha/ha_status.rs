//! GET_BROKER_HA_STATUS (907): parsing, a polling thread and the lag series.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compat_tests::bench::Res;
use remoting::{Connection, RemotingCommand, Router};

/// What GET_BROKER_HA_STATUS (907) of a master says.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HaStatus {
    pub(crate) master_max: i64,
    /// The first slave connection's acknowledged offset and where its
    /// transfer started; `None` without a slave.
    pub(crate) slave: Option<(i64, i64)>,
    pub(crate) in_sync: i64,
}

/// The integer after `"key":` in `json`, from `from` on.
pub(crate) fn json_int(json: &str, key: &str, from: usize) -> Option<i64> {
    let pat = format!("\"{key}\":");
    let at = json[from..].find(&pat)? + from + pat.len();
    let rest = json[at..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Java's fastjson and ours print the same keys; read them by name (no
/// dependence on either side's spacing or key order).
pub(crate) fn parse_ha_status(body: &[u8]) -> Option<HaStatus> {
    let json = String::from_utf8_lossy(body);
    let master_max = json_int(&json, "masterCommitLogMaxOffset", 0)?;
    let in_sync = json_int(&json, "inSyncSlaveNums", 0).unwrap_or(0);
    let slave = json.find("\"haConnectionInfo\":[").and_then(|at| {
        let list = &json[at..];
        let end = list.find(']').unwrap_or(list.len());
        let list = &list[..end];
        Some((
            json_int(list, "slaveAckOffset", 0)?,
            json_int(list, "transferFromWhere", 0).unwrap_or(0),
        ))
    });
    Some(HaStatus {
        master_max,
        slave,
        in_sync,
    })
}

/// One connection to a master, asked for 907 on demand.
pub(crate) struct HaClient {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) addr: String,
    pub(crate) conn: Option<Connection>,
}

impl HaClient {
    pub(crate) fn new(addr: &str) -> Res<HaClient> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        Ok(HaClient {
            rt,
            addr: addr.to_owned(),
            conn: None,
        })
    }

    pub(crate) fn status(&mut self) -> Option<HaStatus> {
        let addr = self.addr.clone();
        if self.conn.is_none() {
            self.conn = self
                .rt
                .block_on(async {
                    tokio::time::timeout(
                        Duration::from_secs(3),
                        Connection::connect(addr, Arc::new(Router::new())),
                    )
                    .await
                })
                .ok()
                .and_then(|c| c.ok());
        }
        let conn = self.conn.as_ref()?;
        let resp = self.rt.block_on(conn.request(
            RemotingCommand::request(remoting::request_code::GET_BROKER_HA_STATUS),
            Duration::from_secs(3),
        ));
        match resp {
            Ok(r) if r.code == 0 => parse_ha_status(&r.body),
            Ok(_) => None,
            Err(_) => {
                if let Some(c) = self.conn.take() {
                    c.close();
                }
                None
            }
        }
    }
}

impl Drop for HaClient {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            c.close();
        }
    }
}

/// One 907 sample: when, the master's max offset, the slave's ack (-1:
/// no slave connected).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) at: Instant,
    pub(crate) master_max: i64,
    pub(crate) ack: i64,
}

/// The share of `samples` in `[from, to]` in which no slave was connected,
/// in percent (-1 without samples).
pub(crate) fn no_slave_pct(samples: &[Sample], from: Instant, to: Instant) -> f64 {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .collect();
    if inside.is_empty() {
        return -1.0;
    }
    100.0 * inside.iter().filter(|s| s.ack < 0).count() as f64 / inside.len() as f64
}

/// Polls 907 of `addr` every `every` on a thread of its own until stopped.
pub(crate) struct Poller {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) samples: Arc<Mutex<Vec<Sample>>>,
    pub(crate) thread: Option<std::thread::JoinHandle<()>>,
}

impl Poller {
    pub(crate) fn start(addr: &str, every: Duration) -> Res<Poller> {
        let mut client = HaClient::new(addr)?;
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            let mut next = Instant::now();
            while !s.load(Ordering::Relaxed) {
                if let Some(st) = client.status() {
                    v.lock().unwrap_or_else(|p| p.into_inner()).push(Sample {
                        at: Instant::now(),
                        master_max: st.master_max,
                        ack: st.slave.map_or(-1, |(ack, _)| ack),
                    });
                }
                next += every;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        });
        Ok(Poller {
            stop,
            samples,
            thread: Some(thread),
        })
    }

    pub(crate) fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Bytes and milliseconds behind, per sample in `[from, to]`: the ms are
/// the sample's time minus when the master's max offset (linear between
/// two samples) reached the slave's acknowledged offset.
pub(crate) fn lag_series(samples: &[Sample], from: Instant, to: Instant) -> (Vec<f64>, Vec<f64>) {
    let (mut bytes, mut ms) = (Vec::new(), Vec::new());
    for (i, s) in samples.iter().enumerate() {
        if s.at < from || s.at > to || s.ack < 0 {
            continue;
        }
        let behind = (s.master_max - s.ack).max(0);
        bytes.push(behind as f64);
        if behind == 0 {
            ms.push(0.0);
            continue;
        }
        // The last earlier sample whose max offset is at most the ack.
        let Some(j) = (0..i).rev().find(|&j| samples[j].master_max <= s.ack) else {
            continue; // behind since before the first sample: unknown
        };
        let (a, b) = (samples[j], samples[j + 1]);
        let span = (b.master_max - a.master_max).max(1) as f64;
        let frac = ((s.ack - a.master_max) as f64 / span).clamp(0.0, 1.0);
        let reached = a.at + (b.at - a.at).mul_f64(frac);
        ms.push(s.at.saturating_duration_since(reached).as_secs_f64() * 1e3);
    }
    (bytes, ms)
}

pub(crate) fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return -1.0;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

pub(crate) fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return -1.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    s[i]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn ha_status_of_both_sides() {
        let ours = br#"{"haClientRuntimeInfo":{"maxOffset":0},"haConnectionInfo":[{"addr":"127.0.0.1:5","diff":10,"inSync":true,"slaveAckOffset":90,"transferFromWhere":0,"transferredByteInSecond":0}],"inSyncSlaveNums":1,"master":true,"masterCommitLogMaxOffset":100}"#;
        let st = parse_ha_status(ours).expect("ours");
        assert_eq!(
            (st.master_max, st.slave, st.in_sync),
            (100, Some((90, 0)), 1)
        );
        let none = br#"{"haConnectionInfo":[],"inSyncSlaveNums":0,"master":true,"masterCommitLogMaxOffset":7}"#;
        let st = parse_ha_status(none).expect("none");
        assert_eq!((st.master_max, st.slave), (7, None));
    }

    #[test]
    fn lag_is_interpolated_on_the_master_series() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let s = [
            Sample {
                at: at(0),
                master_max: 0,
                ack: 0,
            },
            Sample {
                at: at(10),
                master_max: 1000,
                ack: 500,
            },
            Sample {
                at: at(20),
                master_max: 2000,
                ack: 2000,
            },
        ];
        let (bytes, ms) = lag_series(&s, t0, at(20));
        assert_eq!(bytes, [0.0, 500.0, 0.0]);
        assert_eq!(ms.len(), 3);
        assert!((ms[1] - 5.0).abs() < 0.01, "{ms:?}");
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
        let gap = [s[0], Sample { ack: -1, ..s[1] }, s[2]];
        assert_eq!(lag_series(&gap, t0, at(20)).0, [0.0, 0.0]);
        assert!((no_slave_pct(&gap, t0, at(20)) - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(mean(&[]), -1.0);
    }
}
