//! `conn_memory`: resident memory per idle client connection of a broker,
//! ours (`target/release/mqbroker`) and, optionally, the official Java
//! broker (`BrokerStartup`, jars fetched with Maven like the compat tests).
//!
//! For each broker: start it on a fresh store (idle timeout raised to 600 s
//! so nothing closes during the run), settle, sample RSS; open N plain TCP
//! connections that send nothing, wait until the broker holds N more file
//! descriptors and its RSS is steady, sample again; then send one small
//! request on every connection (answered with REQUEST_CODE_NOT_SUPPORTED,
//! which touches the read and write paths) and sample a third time. Prints
//! the growth per connection after each step.
//!
//! Usage: conn_memory [--conns N] [--java] [--java-only] [--java-version V]
//! Defaults: 5000 connections, ours only, Java 5.3.3. Run it as
//! `cargo run --release -p compat-tests --bin conn_memory -- --java`; our
//! binary is found like the compat tests find it (`$MQ_BIN_DIR`, else
//! `target/release`, built first if missing). The Java broker runs with the
//! compat harness's heap (-Xms256m -Xmx512m): its RSS growth is heap and
//! direct memory first touched, including garbage not yet collected.
//! The kernel's socket buffers are not in a process's RSS; they are the same
//! for both brokers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use compat_tests::bench::{rss_anon_kib, rss_kib};
use compat_tests::{bin_dir, free_broker_port, JavaBroker, OurNamesrv, Proc, TEST_BROKER_KEYS};
use remoting::codec::encode_frame;
use remoting::RemotingCommand;

const IDLE_KEY: &str = "serverChannelMaxIdleTimeSeconds=600\n";

struct Opts {
    conns: usize,
    ours: bool,
    java: bool,
    java_version: String,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        conns: 5000,
        ours: true,
        java: false,
        java_version: "5.3.3".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--conns" => o.conns = args.next().and_then(|v| v.parse().ok()).expect("--conns N"),
            "--java" => o.java = true,
            "--java-only" => {
                o.java = true;
                o.ours = false;
            }
            "--java-version" => o.java_version = args.next().expect("--java-version V"),
            other => {
                eprintln!("unknown argument {other}\nusage: conn_memory [--conns N] [--java] [--java-only] [--java-version V]");
                std::process::exit(2);
            }
        }
    }
    o
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[derive(Clone, Copy)]
struct Sample {
    rss: u64,
    anon: u64,
}

fn sample(pid: u32) -> Sample {
    Sample {
        rss: rss_kib(pid).unwrap_or(0),
        anon: rss_anon_kib(pid).unwrap_or(0),
    }
}

/// RSS once two samples a second apart differ by less than 0.5 %.
fn steady_sample(pid: u32) -> Sample {
    let mut last = sample(pid);
    for _ in 0..30 {
        std::thread::sleep(Duration::from_secs(1));
        let now = sample(pid);
        if now.rss.abs_diff(last.rss) * 200 < last.rss.max(1) {
            return now;
        }
        last = now;
    }
    last
}

fn wait_port(addr: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} never accepted");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `pid` holds at least `want` descriptors (accepted sockets).
fn wait_fds(name: &str, pid: u32, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while open_fds(pid) < want {
        assert!(
            Instant::now() < deadline,
            "{name} holds only {} of {want} descriptors",
            open_fds(pid)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn measure(name: &str, pid: u32, addr: &str, n: usize) -> String {
    wait_port(addr, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(3));
    let fds0 = open_fds(pid);
    let base = steady_sample(pid);

    let started = Instant::now();
    let mut socks = Vec::with_capacity(n);
    for i in 0..n {
        match TcpStream::connect(addr) {
            Ok(s) => socks.push(s),
            Err(e) => panic!("connection {i} of {n} to {name} failed: {e}"),
        }
        // Paced so the listen backlog (1024 for both) never overflows: a
        // dropped SYN costs the client a 1 s retransmit.
        if (i + 1) % 256 == 0 {
            wait_fds(name, pid, fds0 + i + 1 - 256);
        }
    }
    wait_fds(name, pid, fds0 + n);
    let connect_time = started.elapsed();
    let idle = steady_sample(pid);

    // One request each: code 9999 is answered REQUEST_CODE_NOT_SUPPORTED.
    let frame = encode_frame(&RemotingCommand::request(9999)).expect("encode");
    for s in &mut socks {
        s.write_all(&frame).expect("write request");
    }
    let mut buf = [0u8; 4096];
    for s in &mut socks {
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let got = s.read(&mut buf).expect("read answer");
        assert!(got > 0, "{name} closed a connection instead of answering");
    }
    let used = steady_sample(pid);
    drop(socks);

    let per = |a: u64, b: u64| (a as f64 - b as f64) * 1024.0 / n as f64;
    format!(
        "{name:<14} base RSS {:>7.1} MiB (anon {:>6.1}) | +{n} idle conns: {:>7.0} B/conn RSS, {:>7.0} B/conn anon \
         | after 1 request each: {:>7.0} B/conn RSS, {:>7.0} B/conn anon | {n} connects in {:.1} s",
        base.rss as f64 / 1024.0,
        base.anon as f64 / 1024.0,
        per(idle.rss, base.rss),
        per(idle.anon, base.anon),
        per(used.rss, base.rss),
        per(used.anon, base.anon),
        connect_time.as_secs_f64(),
    )
}

fn ours(n: usize, dir: &Path) -> String {
    let port = free_broker_port();
    let addr = format!("127.0.0.1:{port}");
    let conf = dir.join("broker.conf");
    std::fs::write(
        &conf,
        format!(
            "brokerClusterName=MemCluster\nbrokerName=mem-broker\nbrokerId=0\nlistenPort={port}\n\
             bindAddress=127.0.0.1\nbrokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\n\
             storePathRootDir={}\nmappedFileSizeCommitLog=67108864\n{TEST_BROKER_KEYS}{IDLE_KEY}",
            dir.join("store").display()
        ),
    )
    .expect("write broker.conf");
    let mut cmd = Command::new(bin_dir().join("mqbroker"));
    cmd.arg("-c")
        .arg(&conf)
        .env("HOME", dir)
        .env("RUST_LOG", "info")
        .env_remove("NAMESRV_ADDR");
    let mut proc = Proc::spawn("mqbroker", cmd, dir.join("broker.log"));
    let line = measure("ours", proc.pid(), &addr, n);
    let _ = proc.stop_cleanly(Duration::from_secs(30));
    line
}

fn java(n: usize, version: &str) -> String {
    let ns = OurNamesrv::start();
    let broker = JavaBroker::start_with(version, &ns.addr, IDLE_KEY);
    measure(
        &format!("java {version}"),
        broker.proc.pid(),
        &broker.addr,
        n,
    )
}

fn main() {
    let o = parse_args();
    // Room for N client sockets in this process.
    if let Err(e) = remoting::limits::raise_file_limit() {
        eprintln!("cannot raise the open-file limit: {e}");
    }
    let mut lines = Vec::new();
    if o.ours {
        let dir = tempfile::Builder::new()
            .prefix("rmq-conn-memory-")
            .tempdir()
            .expect("temp dir");
        lines.push(ours(o.conns, dir.path()));
    }
    if o.java {
        lines.push(java(o.conns, &o.java_version));
    }
    println!("memory per connection ({} connections, loopback):", o.conns);
    for l in lines {
        println!("{l}");
    }
}
