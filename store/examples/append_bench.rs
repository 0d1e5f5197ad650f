//! In-process append throughput for 1 KiB messages (ASYNC_FLUSH and
//! SYNC_FLUSH with group commit) against the machine's sequential write
//! bandwidth, measured in the same folder in the same run.
//!
//! ```text
//! cargo run --release -p store --example append_bench -- [DIR] [MIB] [SYNC_THREADS]
//! ```
//! DIR (default `target/bench-store`) must be on the disk to measure, MIB
//! (default 512) is the data written by the sequential and async runs; the
//! sync run writes a quarter of it with SYNC_THREADS (default 16) writers.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use store::{FlushDiskType, MessageStore, MessageToStore, StoreConfig};

const BODY: usize = 1024;

fn sequential_write(dir: &Path, bytes: u64) -> std::io::Result<f64> {
    let path = dir.join("seq-write.tmp");
    let chunk = vec![0x5au8; 4 << 20];
    let start = Instant::now();
    let mut f = std::fs::File::create(&path)?;
    let mut written = 0u64;
    while written < bytes {
        f.write_all(&chunk)?;
        written += chunk.len() as u64;
    }
    f.sync_all()?;
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(written as f64 / secs)
}

fn message(queue_id: i32) -> MessageToStore {
    MessageToStore {
        topic: "BenchTopic".to_owned(),
        queue_id,
        flag: 0,
        body: Bytes::from(vec![0x42u8; BODY]),
        properties: store::properties::encode(&[
            (
                "UNIQ_KEY",
                "7F0000010001000000000000000000000000".to_owned(),
            ),
            (store::properties::TAGS, "TagA".to_owned()),
        ]),
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: "127.0.0.1:50000".parse().expect("addr"),
        store_host: "127.0.0.1:10911".parse().expect("addr"),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

struct Run {
    msgs: u64,
    bytes: u64,
    secs: f64,
}

fn run(dir: &Path, flush: FlushDiskType, total_msgs: u64, threads: u64) -> Result<Run, String> {
    let root = dir.join(match flush {
        FlushDiskType::AsyncFlush => "async",
        FlushDiskType::SyncFlush => "sync",
    });
    let _ = std::fs::remove_dir_all(&root);
    let cfg = StoreConfig {
        mapped_file_size_commit_log: 128 << 20,
        flush_disk_type: flush,
        ..StoreConfig::with_root(&root)
    };
    let store = MessageStore::open(cfg).map_err(|e| e.to_string())?;
    let per_thread = total_msgs / threads;
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || -> Result<u64, String> {
                let m = message((t % 8) as i32);
                let mut bytes = 0u64;
                for _ in 0..per_thread {
                    let r =
                        futures::executor::block_on(store.put(&m)).map_err(|e| e.to_string())?;
                    bytes += r.wrote_bytes as u64;
                }
                Ok(bytes)
            })
        })
        .collect();
    let mut bytes = 0;
    for h in handles {
        bytes += h.join().map_err(|_| "writer panicked".to_owned())??;
    }
    // Count the final flush: the data is on disk when the clock stops.
    store.flush().map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    store.shutdown();
    drop(store);
    let _ = std::fs::remove_dir_all(&root);
    Ok(Run {
        msgs: per_thread * threads,
        bytes,
        secs,
    })
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = Path::new(args.first().map_or("target/bench-store", String::as_str)).to_path_buf();
    let mib: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(512);
    let sync_threads: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    println!(
        "dir {} | {} MiB | 1 KiB bodies | {} cores",
        dir.display(),
        mib,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let seq = sequential_write(&dir, mib << 20).map_err(|e| e.to_string())?;
    println!("sequential write + fsync: {:.3} GB/s", seq / 1e9);
    let record = 1024 + 200; // ~ encoded record size, for the message count
    let async_msgs = (mib << 20) / record;
    let a = run(&dir, FlushDiskType::AsyncFlush, async_msgs, 1)?;
    let a_bw = a.bytes as f64 / a.secs;
    println!(
        "ASYNC_FLUSH 1 writer : {:>9.0} msg/s  {:.3} GB/s  ({} msgs, {:.2} s incl. final flush)  = {:.0}% of sequential",
        a.msgs as f64 / a.secs,
        a_bw / 1e9,
        a.msgs,
        a.secs,
        100.0 * a_bw / seq
    );
    let s = run(&dir, FlushDiskType::SyncFlush, async_msgs / 4, sync_threads)?;
    let s_bw = s.bytes as f64 / s.secs;
    println!(
        "SYNC_FLUSH {:>2} writers: {:>9.0} msg/s  {:.3} GB/s  ({} msgs, {:.2} s)  = {:.0}% of sequential",
        sync_threads,
        s.msgs as f64 / s.secs,
        s_bw / 1e9,
        s.msgs,
        s.secs,
        100.0 * s_bw / seq
    );
    Ok(())
}
