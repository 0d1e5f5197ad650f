//! The load generator: pre-encoded route requests, in-place answer parsing, per-connection drivers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use compat_tests::bench::{rss_kib, Histogram};
use remoting::code::response_code;

use crate::opts::Opts;
use crate::servers::{route_request, topic_name};
use crate::{MAX_REQUESTS_PER_CONN, REQUEST_TIMEOUT};

// The generator must cost as little CPU per request as possible: on a small
// machine it shares the cores with the server, so its own cost caps the
// throughput of both servers alike. Each connection is one task on a
// current-thread runtime (one OS thread for the whole load) that keeps P
// requests in flight: the request frames are encoded once per topic with the
// `remoting` codec and only the opaque's digits are patched per request; all
// requests that can be sent go out in one write, and every read is parsed in
// place for as many whole frames as it holds, reading only the frame length,
// the header's `code` and `opaque`, and the body length (a sample is fully
// decoded and checked as a route, see `check_sample`).

/// Opaques are kept at 10 decimal digits so a pre-encoded frame can be
/// patched in place: BASE..BASE + SPAN.
pub(crate) const OPAQUE_BASE: u32 = 1_000_000_000;
pub(crate) const OPAQUE_SPAN: u32 = 1_000_000_000;
pub(crate) const OPAQUE_DIGITS: usize = 10;
/// Largest answer frame accepted (a route body is a few hundred bytes).
pub(crate) const MAX_ANSWER_FRAME: usize = 1 << 20;
/// Fully decode one answer in this many (and the first on each connection).
pub(crate) const SAMPLE_EVERY: u64 = 4096;

/// One pre-encoded GET_ROUTEINFO_BY_TOPIC frame per topic and where its
/// opaque digits are.
pub(crate) struct Templates {
    pub(crate) frames: Vec<Vec<u8>>,
    pub(crate) opaque_at: Vec<usize>,
}

pub(crate) fn templates(topics: usize) -> Templates {
    let mut frames = Vec::with_capacity(topics);
    let mut opaque_at = Vec::with_capacity(topics);
    let needle = format!("\"opaque\":{OPAQUE_BASE}");
    for i in 0..topics {
        let mut cmd = route_request(&topic_name(i));
        cmd.opaque = OPAQUE_BASE as i32;
        let frame = remoting::codec::encode_frame(&cmd)
            .expect("encode route request")
            .to_vec();
        let at = find(&frame, needle.as_bytes()).expect("opaque in the encoded header");
        assert!(
            find(&frame[at + 1..], needle.as_bytes()).is_none(),
            "opaque found twice in the template"
        );
        opaque_at.push(at + needle.len() - OPAQUE_DIGITS);
        frames.push(frame);
    }
    Templates { frames, opaque_at }
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Writes `v` (OPAQUE_BASE..OPAQUE_BASE + OPAQUE_SPAN) as 10 ASCII digits.
pub(crate) fn patch_digits(dst: &mut [u8], mut v: u32) {
    for d in dst[..OPAQUE_DIGITS].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// The integer after `"key":` in a compact JSON header (None when absent or
/// not a number).
pub(crate) fn json_int(header: &[u8], key: &[u8]) -> Option<i64> {
    let at = find(header, key)? + key.len();
    let rest = header.get(at..)?;
    let rest = &rest[rest.iter().take_while(|b| **b == b' ').count()..];
    let (neg, digits) = match rest.first() {
        Some(b'-') => (true, &rest[1..]),
        _ => (false, rest),
    };
    let mut v: i64 = 0;
    let mut n = 0;
    for &b in digits.iter().take(19) {
        if !b.is_ascii_digit() {
            break;
        }
        v = v * 10 + i64::from(b - b'0');
        n += 1;
    }
    (n > 0).then_some(if neg { -v } else { v })
}

/// `(code, opaque, body length)` of an answer frame (the bytes after the
/// 4-byte length prefix); None if it is not a JSON-header frame with both.
pub(crate) fn parse_answer(frame: &[u8]) -> Option<(i64, i64, usize)> {
    let packed = u32::from_be_bytes(frame.get(..4)?.try_into().ok()?);
    if packed >> 24 != 0 {
        return None; // not JSON
    }
    let header_len = (packed & 0xFF_FFFF) as usize;
    let header = frame.get(4..4 + header_len)?;
    let code = json_int(header, b"\"code\":")?;
    let opaque = json_int(header, b"\"opaque\":")?;
    Some((code, opaque, frame.len() - 4 - header_len))
}

/// Full decode of one answer with the `remoting` codec: the same code and
/// opaque as the quick parse, and a route to `bench-broker-a` with 8/8 queues.
pub(crate) fn check_sample(frame: &[u8], code: i64, opaque: i64) -> Result<(), String> {
    let cmd = remoting::codec::decode_frame_body(bytes::Bytes::copy_from_slice(frame))
        .map_err(|e| format!("decode: {e}"))?;
    if i64::from(cmd.code) != code || i64::from(cmd.opaque) != opaque || !cmd.is_response() {
        return Err(format!(
            "quick parse ({code}, {opaque}) disagrees with the decoder ({}, {}, response {})",
            cmd.code,
            cmd.opaque,
            cmd.is_response()
        ));
    }
    let route: remoting::body::TopicRouteData =
        remoting::body::from_fastjson(&cmd.body).map_err(|e| format!("route body: {e}"))?;
    let broker_ok = route.broker_datas.len() == 1
        && route.broker_datas[0].broker_name == "bench-broker-a"
        && route.broker_datas[0].broker_addrs.contains_key(&0);
    let queues_ok = route.queue_datas.len() == 1
        && route.queue_datas[0].read_queue_nums == 8
        && route.queue_datas[0].write_queue_nums == 8;
    if broker_ok && queues_ok {
        Ok(())
    } else {
        Err(format!("unexpected route {route:?}"))
    }
}

/// What one load connection did.
pub(crate) struct ConnOut {
    pub(crate) hist: Histogram,
    pub(crate) errors: u64,
    /// First failed full-decode check, if any.
    pub(crate) bad_sample: Option<String>,
}

/// One connection keeping `p` requests in flight until `deadline`, then
/// draining. Every answer must be a SUCCESS with a `route_len`-byte body.
pub(crate) async fn drive_connection(
    addr: String,
    tpl: Arc<Templates>,
    p: usize,
    per_write: usize,
    first_topic: usize,
    deadline: Instant,
    route_len: usize,
) -> ConnOut {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut out = ConnOut {
        hist: Histogram::new(),
        errors: 0,
        bad_sample: None,
    };
    let mut stream = match tokio::net::TcpStream::connect(&addr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("[bench] load connection to {addr} failed: {e}");
            out.errors += 1;
            return out;
        }
    };
    let _ = stream.set_nodelay(true);
    let topics = tpl.frames.len();
    // Opaque of slot s, use g: BASE + (g * p + s) mod span, span a multiple of p.
    let span = OPAQUE_SPAN - OPAQUE_SPAN % p as u32;
    let mut uses = vec![0u32; p];
    let mut expected: Vec<Option<u32>> = vec![None; p];
    let mut sent_at = vec![Instant::now(); p];
    // (slot, end of its frame in wbuf) of the requests waiting to be written.
    let mut batch: Vec<(usize, usize)> = Vec::with_capacity(p);
    let max_frame = tpl.frames.iter().map(Vec::len).max().unwrap_or(0);
    let mut wbuf: Vec<u8> = Vec::with_capacity(p * max_frame);
    let mut rbuf = vec![0u8; 64 * 1024];
    let mut filled = 0usize;
    let mut topic = first_topic;
    let mut issued = 0u64;
    let mut answered = 0u64;
    let mut outstanding = 0usize;

    let mut queue = |slot: usize,
                     wbuf: &mut Vec<u8>,
                     expected: &mut [Option<u32>],
                     batch: &mut Vec<(usize, usize)>| {
        let t = topic % topics;
        topic += 1;
        let rel = ((u64::from(uses[slot]) * p as u64 + slot as u64) % u64::from(span)) as u32;
        uses[slot] = uses[slot].wrapping_add(1);
        let opaque = OPAQUE_BASE + rel;
        let at = wbuf.len() + tpl.opaque_at[t];
        wbuf.extend_from_slice(&tpl.frames[t]);
        patch_digits(&mut wbuf[at..], opaque);
        expected[slot] = Some(opaque);
        batch.push((slot, wbuf.len()));
    };
    for slot in 0..p {
        queue(slot, &mut wbuf, &mut expected, &mut batch);
        outstanding += 1;
        issued += 1;
    }
    loop {
        if !wbuf.is_empty() {
            let chunk = if per_write == 0 {
                batch.len()
            } else {
                per_write
            };
            let mut from = 0;
            let mut failed = false;
            for part in batch.chunks(chunk) {
                let now = Instant::now();
                for &(s, _) in part {
                    sent_at[s] = now;
                }
                let to = part.last().map_or(from, |&(_, end)| end);
                if stream.write_all(&wbuf[from..to]).await.is_err() {
                    failed = true;
                    break;
                }
                from = to;
            }
            if failed {
                out.errors += outstanding as u64;
                break;
            }
            batch.clear();
            wbuf.clear();
        }
        if outstanding == 0 {
            break;
        }
        if filled == rbuf.len() {
            rbuf.resize(rbuf.len() * 2, 0);
        }
        let n = match tokio::time::timeout(REQUEST_TIMEOUT, stream.read(&mut rbuf[filled..])).await
        {
            Ok(Ok(n)) if n > 0 => n,
            _ => {
                // Closed, failed or silent for REQUEST_TIMEOUT: the rest are lost.
                out.errors += outstanding as u64;
                break;
            }
        };
        let now = Instant::now();
        filled += n;
        let mut pos = 0;
        let mut broken = false;
        while filled - pos >= 4 {
            let len = u32::from_be_bytes([rbuf[pos], rbuf[pos + 1], rbuf[pos + 2], rbuf[pos + 3]])
                as usize;
            if len > MAX_ANSWER_FRAME {
                broken = true;
                break;
            }
            if filled - pos - 4 < len {
                break;
            }
            let frame = &rbuf[pos + 4..pos + 4 + len];
            pos += 4 + len;
            let Some((code, opaque, body_len)) = parse_answer(frame) else {
                broken = true;
                break;
            };
            let slot = match u32::try_from(opaque) {
                Ok(o) if o >= OPAQUE_BASE => ((o - OPAQUE_BASE) as usize) % p,
                _ => {
                    broken = true;
                    break;
                }
            };
            if expected[slot] != Some(opaque as u32) {
                broken = true; // an answer to nothing we asked
                break;
            }
            expected[slot] = None;
            outstanding -= 1;
            if code == i64::from(response_code::SUCCESS) && body_len == route_len {
                out.hist
                    .record(now.duration_since(sent_at[slot]).as_nanos() as u64);
            } else {
                out.errors += 1;
            }
            if answered.is_multiple_of(SAMPLE_EVERY) && out.bad_sample.is_none() {
                if let Err(e) = check_sample(frame, code, opaque) {
                    out.errors += 1;
                    out.bad_sample = Some(e);
                }
            }
            answered += 1;
            if now < deadline && issued < MAX_REQUESTS_PER_CONN {
                queue(slot, &mut wbuf, &mut expected, &mut batch);
                outstanding += 1;
                issued += 1;
            }
        }
        if broken {
            eprintln!(
                "[bench] {addr}: unparseable or unexpected answer frame; dropping the connection"
            );
            out.errors += outstanding as u64;
            break;
        }
        rbuf.copy_within(pos..filled, 0);
        filled -= pos;
    }
    out
}

pub(crate) struct LoadOut {
    pub(crate) hist: Histogram,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
    pub(crate) max_rss_kib: u64,
}

/// Closed-loop load: `conns` connections x `inflight` requests each, until
/// `dur` passes (or the per-connection cap is hit).
pub(crate) async fn run_load(
    addr: &str,
    pid: u32,
    o: &Opts,
    dur: Duration,
    route_len: usize,
) -> LoadOut {
    let tpl = Arc::new(templates(o.topics));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + dur;
    let tasks: Vec<_> = (0..o.conns)
        .map(|ci| {
            tokio::spawn(drive_connection(
                addr.to_owned(),
                tpl.clone(),
                o.inflight,
                o.per_write,
                ci * o.inflight,
                deadline,
                route_len,
            ))
        })
        .collect();
    // RSS sampler, bounded by the load's own deadline (+ slack).
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut max = 0;
            let until = deadline + Duration::from_secs(10);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                max = max.max(rss_kib(pid).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            max
        })
    };
    let mut hist = Histogram::new();
    let mut errors = 0;
    for t in tasks {
        match t.await {
            Ok(c) => {
                hist.merge(&c.hist);
                errors += c.errors;
                if let Some(e) = c.bad_sample {
                    eprintln!("[bench] {addr}: sampled answer failed its check: {e}");
                }
            }
            Err(_) => errors += 1,
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let max_rss_kib = sampler.await.unwrap_or(0);
    LoadOut {
        requests: hist.total,
        errors,
        hist,
        elapsed,
        max_rss_kib,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoting::code::request_code;
    use remoting::RemotingCommand;

    #[test]
    fn patched_template_decodes_with_the_patched_opaque() {
        let tpl = templates(12);
        for (t, frame) in tpl.frames.iter().enumerate() {
            for opaque in [OPAQUE_BASE, OPAQUE_BASE + 7, OPAQUE_BASE + OPAQUE_SPAN - 1] {
                let mut f = frame.clone();
                patch_digits(&mut f[tpl.opaque_at[t]..], opaque);
                let cmd =
                    remoting::codec::decode_frame_body(bytes::Bytes::copy_from_slice(&f[4..]))
                        .expect("patched frame decodes");
                assert_eq!(cmd.opaque as u32, opaque);
                assert_eq!(cmd.code, request_code::GET_ROUTEINFO_BY_TOPIC);
                assert_eq!(cmd.ext("topic"), Some(topic_name(t).as_str()));
            }
        }
    }

    #[test]
    fn answers_are_parsed_for_code_opaque_and_body_length() {
        let mut ok = RemotingCommand::success().with_body(vec![b'x'; 272]);
        ok.opaque = 1_234_567_890;
        let f = remoting::codec::encode_frame(&ok).expect("encode");
        assert_eq!(parse_answer(&f[4..]), Some((0, 1_234_567_890, 272)));
        let mut err = RemotingCommand::response(response_code::TOPIC_NOT_EXIST)
            .with_remark("No topic route info in name server for the topic: \"code\":0");
        err.opaque = 1_000_000_001;
        let f = remoting::codec::encode_frame(&err).expect("encode");
        let (code, opaque, len) = parse_answer(&f[4..]).expect("parsed");
        assert_eq!(
            (code, opaque, len),
            (i64::from(response_code::TOPIC_NOT_EXIST), 1_000_000_001, 0)
        );
        // Java's fastjson header order and spelling.
        let java = br#"{"code":0,"flag":1,"language":"JAVA","opaque":1000000042,"serializeTypeCurrentRPC":"JSON","version":475}"#;
        let mut frame = Vec::new();
        frame.extend_from_slice(&(java.len() as u32).to_be_bytes());
        frame.extend_from_slice(java);
        frame.extend_from_slice(&[b'y'; 5]);
        assert_eq!(parse_answer(&frame), Some((0, 1_000_000_042, 5)));
        assert_eq!(
            parse_answer(b"\x01\x00\x00\x00"),
            None,
            "binary header is refused"
        );
        assert_eq!(parse_answer(b"\x00\x00\x00\x09{\"code\":}"), None);
    }
}
