//! Micro-benchmark of the PUSH body codec: what the leader spends writing one
//! PUSH request (per follower) and a follower reading it, for typical entry
//! sizes. `cargo run --release -p dledger --example push_codec_bench [scale]
//! [encode|decode]` (scale multiplies the iterations; for `perf`, one side).

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use dledger::core::message::{Header, PushEntryRequest, PushType, Request, RequestCode};
use dledger::entry::Entry;
use dledger::protocol::convert::{decode_request, request_body};

fn entry(index: i64, size: usize) -> Entry {
    let body: Vec<u8> = (0..size).map(|i| (i * 31 + i / 7) as u8).collect();
    Entry {
        index,
        term: 3,
        magic: -26,
        pos: index * (size as i64 + 48),
        channel: 0,
        chain_crc: 0,
        body_crc: 0,
        body: Bytes::from(body),
    }
}

fn push(size: usize, count: usize) -> Request {
    let mut entries: Vec<Entry> = (0..count).map(|i| entry(1000 + i as i64, size)).collect();
    let single = count == 1;
    Request::Push(PushEntryRequest {
        header: Header {
            group: Some("broker-a".into()),
            remote_id: Some("n1".into()),
            local_id: Some("n0".into()),
            leader_id: Some("n0".into()),
            term: 3,
            code: 200,
        },
        kind: PushType::Append,
        commit_index: 999,
        entry: if single { entries.pop() } else { None },
        batch_entry: if single { Vec::new() } else { entries },
    })
}

fn main() {
    let scale: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let only = std::env::args().nth(2).unwrap_or_default();
    println!("shape                 encode ns   decode ns   (decode = body -> core request)");
    for (size, count) in [(1024, 1), (2048, 1), (4096, 1), (1024, 8), (4096, 8)] {
        let req = push(size, count);
        let body = request_body(&req);
        let iters = (scale * 40_000_000 / (size * count) as u64).max(10);
        let t = Instant::now();
        let mut n = 0usize;
        for _ in 0..iters {
            if only != "decode" {
                n += request_body(black_box(&req)).len();
            }
        }
        let enc = t.elapsed().as_nanos() as f64 / iters as f64;
        let t = Instant::now();
        for _ in 0..iters {
            if only == "encode" {
                break;
            }
            match decode_request(RequestCode::Push, black_box(&body)) {
                Some(Ok(Request::Push(p))) => n += p.batch_entry.len(),
                other => panic!("decode failed: {other:?}"),
            }
        }
        let dec = t.elapsed().as_nanos() as f64 / iters as f64;
        println!(
            "{count} x {size:4} B ({:6} B)  {enc:9.0}   {dec:9.0}   ({n})",
            body.len()
        );
    }
}
