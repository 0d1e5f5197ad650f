//! What the first write to fresh page-cache memory costs on this machine:
//! the work the store's `store-warm` thread does ahead of the appender, done
//! here in isolation. Each pass preallocates a file, pre-faults it through a
//! shared mapping with `MADV_POPULATE_WRITE` in 256 KiB steps (as the warm
//! thread does) and copies 1 200-byte records into it (as the appender does),
//! then removes the file, which frees its pages.
//!
//! ```text
//! cargo run --release -p store --example first_touch -- [DIR] [MIB] [PAUSE_SECS]
//! ```
//! DIR (default `target/bench-store`), MIB (default 256) per pass. Passes:
//! fresh memory; again at once (the kernel hands out the pages the previous
//! pass just freed); again after PAUSE_SECS (default 5) idle. On a virtual
//! machine whose free memory goes back to the host (e.g. free page
//! reporting), the first and the third pass pay the host's fault on every
//! page; on bare metal all three cost the same.

// Mapping a file is what is measured (the store's own mapping code is private).
#![allow(unsafe_code)]

use std::path::Path;
use std::time::Duration;

const RECORD: usize = 1200;
const POPULATE_STEP: usize = 256 * 1024;

/// This thread's CPU time, user and kernel (`/proc/thread-self/schedstat`).
fn cpu_time() -> std::io::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let ns = stat.split_whitespace().next().and_then(|n| n.parse().ok());
    ns.map(Duration::from_nanos).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("schedstat: {stat}"),
        )
    })
}

/// One pass; the CPU time it took.
fn pass(dir: &Path, bytes: usize) -> std::io::Result<Duration> {
    let path = dir.join("first-touch.tmp");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, bytes as u64)?;
    // SAFETY: a file this process just created and alone writes, of the
    // mapped length, unmapped before it is removed.
    let mut map = unsafe { memmap2::MmapOptions::new().len(bytes).map_mut(&file)? };
    let record = [0x5au8; RECORD];
    let start = cpu_time()?;
    let mut at = 0;
    while at < bytes {
        let len = POPULATE_STEP.min(bytes - at);
        map.advise_range(memmap2::Advice::PopulateWrite, at, len)?;
        at += len;
    }
    for chunk in map.chunks_exact_mut(RECORD) {
        chunk.copy_from_slice(&record);
    }
    let spent = cpu_time()? - start;
    drop(map);
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(spent)
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "target/bench-store".into());
    let mib: usize = args
        .next()
        .map_or(Ok(256), |a| a.parse())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("MIB: {e}")))?;
    let pause: u64 = args.next().map_or(Ok(5), |a| a.parse()).map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("PAUSE_SECS: {e}"))
    })?;
    std::fs::create_dir_all(&dir)?;
    let bytes = mib << 20;
    let report = |name: &str, spent: Duration| {
        let records = (bytes / RECORD) as f64;
        let pages = (bytes / 4096) as f64;
        println!(
            "{name:44} {:7.3} s CPU  {:5.2} us per {RECORD}-byte record  {:5.2} us per 4 KiB page",
            spent.as_secs_f64(),
            spent.as_secs_f64() * 1e6 / records,
            spent.as_secs_f64() * 1e6 / pages,
        );
    };
    println!("{mib} MiB per pass in {dir}");
    report("pass 1: fresh memory", pass(Path::new(&dir), bytes)?);
    report(
        "pass 2: at once (pages pass 1 freed)",
        pass(Path::new(&dir), bytes)?,
    );
    std::thread::sleep(Duration::from_secs(pause));
    report(
        &format!("pass 3: after {pause} s idle"),
        pass(Path::new(&dir), bytes)?,
    );
    Ok(())
}
