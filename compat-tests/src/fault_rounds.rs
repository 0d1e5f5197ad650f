//! Pieces of the seeded controller-mode fault rounds
//! (`tests/controller_fault_rounds.rs`):
//!
//! - [`XorShift`]: a tiny seeded PRNG (xorshift64*), so a seed replays the
//!   same fault schedule; [`seed_from_env`] reads `CTL_FAULT_SEED`.
//! - [`Sender`]: a bounded raw SEND_MESSAGE (10) client on its own thread
//!   that follows the master through the name server's route (id 0 of
//!   [`BROKER_NAME`](crate::controller::BROKER_NAME)), retries on any
//!   failure, and records (queue, offset, offsetMsgId, key) of every send
//!   answered SEND_OK as an `ACK` line of [`crate::invariant`]'s format.
//! - [`dump_topic`]: pulls (PULL_MESSAGE, 11) every queue of a topic from
//!   one broker and prints the `MSG` lines [`crate::check_acks`] reads,
//!   ending with `DUMPED n`; the records are parsed here (no store crate).
//! - [`check_bodies`]: every acknowledged key's stored body is the one sent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use remoting::{Connection, RemotingCommand, Router};

use crate::controller::route;

// ------------------------------------------------------------------- PRNG

/// xorshift64* (Vigna): enough for picking faults and delays.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator for `seed` (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0; 0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A duration uniform in `[lo_ms, hi_ms]`.
    pub fn millis(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        Duration::from_millis(lo_ms + self.below(hi_ms.saturating_sub(lo_ms) + 1))
    }

    /// An index picked by `weights` (all zero: 0).
    pub fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        let mut r = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            if r < *w {
                return i;
            }
            r -= w;
        }
        0
    }
}

/// `CTL_FAULT_SEED` (decimal or `0x` hex), else one from the clock.
pub fn seed_from_env() -> u64 {
    if let Ok(s) = std::env::var("CTL_FAULT_SEED") {
        let s = s.trim();
        let parsed = match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => s.parse().ok(),
        };
        if let Some(v) = parsed {
            return v;
        }
        panic!("CTL_FAULT_SEED={s} is not a number");
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

// ----------------------------------------------------------------- sender

/// What a [`Sender`] saw, for the report.
#[derive(Clone, Debug, Default)]
pub struct SendStats {
    pub attempts: u64,
    pub acked: u64,
    /// Answers other than SEND_OK, by response code.
    pub refused: BTreeMap<i32, u64>,
    /// No answer (connect failure, timeout, closed connection).
    pub no_answer: u64,
    /// No master in the name server's route when it looked.
    pub no_route: u64,
}

/// The body sent with `key` (compared by [`check_bodies`]).
pub fn body_of(seed: u64, key: &str) -> String {
    format!("fault-round body {seed:x} {key}")
}

/// A raw SEND_MESSAGE client on its own thread, following the master.
pub struct Sender {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<String>>,
    acked: Arc<AtomicU64>,
    stats: Arc<Mutex<SendStats>>,
    thread: Option<JoinHandle<()>>,
}

/// One SEND_MESSAGE of `key` to queue `queue`.
fn send_command(topic: &str, queue: i32, key: &str, uniq: &str, body: &str) -> RemotingCommand {
    let born = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        .to_string();
    let properties = format!("KEYS\u{1}{key}\u{2}UNIQ_KEY\u{1}{uniq}\u{2}WAIT\u{1}true\u{2}");
    RemotingCommand::request(10)
        .with_ext("producerGroup", "ctl-fault-pg")
        .with_ext("topic", topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("defaultTopicQueueNums", "4")
        .with_ext("queueId", queue.to_string())
        .with_ext("sysFlag", "0")
        .with_ext("bornTimestamp", born)
        .with_ext("flag", "0")
        .with_ext("properties", properties)
        .with_ext("reconsumeTimes", "0")
        .with_ext("unitMode", "false")
        .with_ext("batch", "false")
        .with_body(body.as_bytes().to_vec())
}

impl Sender {
    /// Starts sending to `topic` (queues `0..queues` in turn) through the
    /// master name server `ns` routes, one send at a time at most every
    /// `pace`, at most `max` sends, until [`Sender::stop`].
    pub fn start(
        ns: &str,
        topic: &str,
        queues: i32,
        seed: u64,
        max: u64,
        pace: Duration,
    ) -> Sender {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(String::new()));
        let acked = Arc::new(AtomicU64::new(0));
        let stats = Arc::new(Mutex::new(SendStats::default()));
        let (ns, topic) = (ns.to_owned(), topic.to_owned());
        let (s, a, n, st) = (stop.clone(), acks.clone(), acked.clone(), stats.clone());
        let thread = std::thread::Builder::new()
            .name("ctl-fault-sender".into())
            .spawn(move || {
                let limits = (queues.max(1), max, pace);
                send_loop(&ns, &topic, limits, seed, &s, &a, &n, &st)
            })
            .expect("spawn the sender thread");
        Sender {
            stop,
            acks,
            acked,
            stats,
            thread: Some(thread),
        }
    }

    /// Sends answered SEND_OK so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// The `ACK` lines so far.
    pub fn ack_lines(&self) -> String {
        self.acks.lock().map(|a| a.clone()).unwrap_or_default()
    }

    pub fn stats(&self) -> SendStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits (at most `timeout`) until more than `than` sends are
    /// acknowledged; whether they were.
    pub fn wait_acked(&self, than: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.acked() <= than {
            if Instant::now() >= deadline || self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                return self.acked() > than;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Stops the thread (its send in flight finishes or times out first).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop();
    }
}

#[allow(clippy::too_many_arguments)]
fn send_loop(
    ns: &str,
    topic: &str,
    (queues, max, pace): (i32, u64, Duration),
    seed: u64,
    stop: &AtomicBool,
    acks: &Mutex<String>,
    acked: &AtomicU64,
    stats: &Mutex<SendStats>,
) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let mut conn: Option<(String, Connection)> = None;
    let mut seq: u64 = 0;
    let bump = |f: &dyn Fn(&mut SendStats)| {
        if let Ok(mut s) = stats.lock() {
            f(&mut s);
        }
    };
    while !stop.load(Ordering::Relaxed) && seq < max {
        if conn.as_ref().is_none_or(|(_, c)| c.is_closed()) {
            conn = None;
            let Some(master) = route(ns).get(&0).cloned() else {
                bump(&|s| s.no_route += 1);
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            let c = rt.block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(2),
                    Connection::connect(&master, Arc::new(Router::new())),
                )
                .await
            });
            match c {
                Ok(Ok(c)) => conn = Some((master, c)),
                _ => {
                    bump(&|s| s.no_answer += 1);
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
        }
        let Some((addr, c)) = conn.as_ref() else {
            continue;
        };
        let queue = (seq % queues as u64) as i32;
        std::thread::sleep(pace);
        let key = format!("k-{seq}");
        let uniq = format!("U{seed:016X}{seq:016X}");
        seq += 1;
        bump(&|s| s.attempts += 1);
        let cmd = send_command(topic, queue, &key, &uniq, &body_of(seed, &key));
        let resp = rt.block_on(c.request(cmd, Duration::from_secs(5)));
        match resp {
            Ok(r) if r.code == 0 => {
                let q = r.ext("queueId").and_then(|v| v.parse::<i32>().ok());
                let o = r.ext("queueOffset").and_then(|v| v.parse::<i64>().ok());
                let id = r.ext("msgId").unwrap_or("-").to_owned();
                let at = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0);
                if let (Some(q), Some(o)) = (q, o) {
                    if let Ok(mut a) = acks.lock() {
                        a.push_str(&format!("ACK {q} {o} {id} {uniq} {key} {at} {addr}\n"));
                    }
                    acked.fetch_add(1, Ordering::Relaxed);
                    bump(&|s| s.acked += 1);
                } else {
                    eprintln!("SEND_OK from {addr} for {key} without queueId/queueOffset");
                }
            }
            Ok(r) => {
                bump(&|s| *s.refused.entry(r.code).or_default() += 1);
                // Not the master (any more), or it cannot replicate: look again.
                c.close();
                conn = None;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(_) => {
                bump(&|s| s.no_answer += 1);
                c.close();
                conn = None;
            }
        }
    }
    if let Some((_, c)) = conn {
        c.close();
    }
}

// ------------------------------------------------------------------- dump

/// One message record as pulled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pulled {
    pub queue: i32,
    pub queue_offset: i64,
    /// `createMessageId(storeHost, physicalOffset)`, upper-case hex.
    pub offset_msg_id: String,
    pub uniq_id: String,
    pub keys: String,
    pub body: Vec<u8>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
}

const MAGIC_V1: i32 = 0xDAA3_20A7_u32 as i32;
const MAGIC_V2: i32 = 0xDAA3_20AB_u32 as i32;
const BORNHOST_V6: i32 = 1 << 4;
const STOREHOST_V6: i32 = 1 << 5;

/// The message records of a pull answer's body; `None` on a malformed one.
pub fn parse_records(buf: &[u8]) -> Option<Vec<Pulled>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < buf.len() {
        let mut r = Reader {
            buf: &buf[at..],
            pos: 0,
        };
        let total = usize::try_from(r.i32()?).ok()?;
        if total < 8 || total > buf.len() - at {
            return None;
        }
        r.buf = &buf[at..at + total];
        let magic = r.i32()?;
        if magic != MAGIC_V1 && magic != MAGIC_V2 {
            return None;
        }
        let _crc = r.i32()?;
        let queue = r.i32()?;
        let _flag = r.i32()?;
        let queue_offset = r.i64()?;
        let physical = r.i64()?;
        let sys_flag = r.i32()?;
        let _born = r.i64()?;
        r.take(if sys_flag & BORNHOST_V6 != 0 { 20 } else { 8 })?;
        let _stored = r.i64()?;
        let host = r.take(if sys_flag & STOREHOST_V6 != 0 { 20 } else { 8 })?;
        let _reconsume = r.i32()?;
        let _prepared = r.i64()?;
        let body_len = usize::try_from(r.i32()?).ok()?;
        let body = r.take(body_len)?.to_vec();
        let topic_len = if magic == MAGIC_V2 {
            usize::try_from(r.i16()?).ok()?
        } else {
            usize::from(*r.take(1)?.first()?)
        };
        r.take(topic_len)?;
        let props_len = usize::try_from(r.i16()?).ok()?;
        let props = String::from_utf8_lossy(r.take(props_len)?).into_owned();
        let mut id = String::with_capacity(2 * (host.len() + 8));
        for b in host.iter().chain(physical.to_be_bytes().iter()) {
            id.push_str(&format!("{b:02X}"));
        }
        let prop = |name: &str| {
            props
                .split('\u{2}')
                .filter_map(|kv| kv.split_once('\u{1}'))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
                .unwrap_or_else(|| "-".into())
        };
        out.push(Pulled {
            queue,
            queue_offset,
            offset_msg_id: id,
            uniq_id: prop("UNIQ_KEY"),
            keys: prop("KEYS").replace(' ', "|"),
            body,
        });
        at += total;
    }
    Some(out)
}

/// Pulls every message of `topic`'s queues `0..queues` from `broker`
/// (bounded: `timeout` in all); the `MSG`/`DUMPED` text of
/// [`crate::invariant`] and the records, or what failed.
pub fn dump_topic(
    broker: &str,
    topic: &str,
    queues: i32,
    timeout: Duration,
) -> Result<(String, Vec<Pulled>), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + timeout;
    rt.block_on(async {
        let conn = tokio::time::timeout(
            Duration::from_secs(3),
            Connection::connect(broker, Arc::new(Router::new())),
        )
        .await
        .map_err(|_| format!("connect {broker}: timed out"))?
        .map_err(|e| format!("connect {broker}: {e}"))?;
        let mut all = Vec::new();
        for queue in 0..queues {
            let mut offset = 0i64;
            loop {
                if Instant::now() >= deadline {
                    return Err(format!("dump of {broker} not done within {timeout:?}"));
                }
                let cmd = RemotingCommand::request(11)
                    .with_ext("consumerGroup", "ctl-fault-dump")
                    .with_ext("topic", topic)
                    .with_ext("queueId", queue.to_string())
                    .with_ext("queueOffset", offset.to_string())
                    .with_ext("maxMsgNums", "64")
                    // FLAG_SUBSCRIPTION: the subscription is in the request.
                    .with_ext("sysFlag", "4")
                    .with_ext("commitOffset", "0")
                    .with_ext("suspendTimeoutMillis", "0")
                    .with_ext("subscription", "*")
                    .with_ext("subVersion", "0")
                    .with_ext("expressionType", "TAG");
                let r = conn
                    .request(cmd, Duration::from_secs(5))
                    .await
                    .map_err(|e| format!("pull {broker} queue {queue} at {offset}: {e}"))?;
                let next = r.ext("nextBeginOffset").and_then(|v| v.parse::<i64>().ok());
                match r.code {
                    0 => {
                        let recs = parse_records(&r.body).ok_or_else(|| {
                            format!("malformed pull body from {broker} queue {queue} at {offset}")
                        })?;
                        let n = next.unwrap_or(offset + recs.len() as i64);
                        if recs.is_empty() || n <= offset {
                            return Err(format!(
                                "pull of {broker} queue {queue} at {offset} found nothing new"
                            ));
                        }
                        all.extend(recs);
                        offset = n;
                    }
                    // PULL_NOT_FOUND: the end of the queue.
                    19 => break,
                    // PULL_OFFSET_MOVED / RETRY_IMMEDIATELY: where it says.
                    20 | 21 if next.is_some_and(|n| n > offset) => {
                        offset = next.unwrap_or(offset);
                    }
                    c => {
                        return Err(format!(
                            "pull {broker} queue {queue} at {offset}: code {c} {:?}",
                            r.remark
                        ))
                    }
                }
            }
        }
        conn.close();
        let mut text = String::new();
        for p in &all {
            text.push_str(&format!(
                "MSG {} {} {} {} {}\n",
                p.queue, p.queue_offset, p.offset_msg_id, p.uniq_id, p.keys
            ));
        }
        text.push_str(&format!("DUMPED {}\n", all.len()));
        Ok((text, all))
    })
}

/// Keys whose record at their acknowledged (queue, offset) carries another
/// body than [`body_of`] (up to 20 examples) and how many.
pub fn check_bodies(seed: u64, ack_lines: &str, pulled: &[Pulled]) -> (usize, Vec<String>) {
    let at: BTreeMap<(i32, i64), &Pulled> = pulled
        .iter()
        .map(|p| ((p.queue, p.queue_offset), p))
        .collect();
    let mut bad = Vec::new();
    let mut n = 0;
    for a in crate::invariant::parse_acks(ack_lines) {
        let Some(p) = at.get(&(a.queue, a.offset)) else {
            continue; // reported by check_acks
        };
        if p.keys.split('|').next() == Some(a.key.as_str())
            && p.body != body_of(seed, &a.key).as_bytes()
        {
            n += 1;
            if bad.len() < 20 {
                bad.push(format!(
                    "queue {} offset {} key {}: body {:?}",
                    a.queue,
                    a.offset,
                    a.key,
                    String::from_utf8_lossy(&p.body)
                ));
            }
        }
    }
    (n, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift_replays_and_spreads() {
        let mut a = XorShift::new(42);
        let mut b = XorShift::new(42);
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut r = XorShift::new(7);
        let mut counts = [0u32; 3];
        for _ in 0..3000 {
            counts[r.weighted(&[1, 2, 0])] += 1;
        }
        assert_eq!(counts[2], 0);
        assert!(counts[1] > counts[0] * 3 / 2, "{counts:?}");
        for _ in 0..1000 {
            let d = r.millis(500, 4000);
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_millis(4000));
        }
    }

    fn record(queue: i32, qoff: i64, phys: i64, props: &str, body: &[u8]) -> Vec<u8> {
        let topic = b"T";
        let mut v = Vec::new();
        let total = 4
            + 4
            + 4
            + 4
            + 4
            + 8
            + 8
            + 4
            + 8
            + 8
            + 8
            + 8
            + 4
            + 8
            + 4
            + body.len()
            + 1
            + topic.len()
            + 2
            + props.len();
        v.extend((total as i32).to_be_bytes());
        v.extend(MAGIC_V1.to_be_bytes());
        v.extend(0i32.to_be_bytes());
        v.extend(queue.to_be_bytes());
        v.extend(0i32.to_be_bytes());
        v.extend(qoff.to_be_bytes());
        v.extend(phys.to_be_bytes());
        v.extend(0i32.to_be_bytes());
        v.extend(0i64.to_be_bytes());
        v.extend([127, 0, 0, 1, 0, 0, 0x27, 0x10]);
        v.extend(0i64.to_be_bytes());
        v.extend([127, 0, 0, 1, 0, 0, 0x2A, 0x9F]);
        v.extend(0i32.to_be_bytes());
        v.extend(0i64.to_be_bytes());
        v.extend((body.len() as i32).to_be_bytes());
        v.extend(body);
        v.push(topic.len() as u8);
        v.extend(topic);
        v.extend((props.len() as i16).to_be_bytes());
        v.extend(props.as_bytes());
        v
    }

    #[test]
    fn records_parse_and_junk_does_not() {
        let mut buf = record(2, 5, 300, "KEYS\u{1}k-1\u{2}UNIQ_KEY\u{1}U1\u{2}", b"hello");
        buf.extend(record(2, 6, 400, "", b""));
        let recs = parse_records(&buf).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(
            (recs[0].queue, recs[0].queue_offset, recs[0].keys.as_str()),
            (2, 5, "k-1")
        );
        assert_eq!(recs[0].uniq_id, "U1");
        assert_eq!(recs[0].body, b"hello");
        assert_eq!(recs[0].offset_msg_id, "7F00000100002A9F000000000000012C");
        assert_eq!(recs[1].keys, "-");
        for cut in 1..buf.len() {
            if cut != buf.len() / 2 {
                let _ = parse_records(&buf[..cut]);
            }
        }
        assert!(parse_records(&buf[..buf.len() - 1]).is_none());
        assert!(parse_records(&[0xff; 40]).is_none());
    }
}
