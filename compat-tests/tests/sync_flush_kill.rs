//! SYNC_FLUSH durability across SIGKILL (issue 4): our broker with
//! `flushDiskType=SYNC_FLUSH` takes continuous sends from the official Java
//! 5.3.3 producer (a driver printing every acknowledged message's queue,
//! offset and ids). The broker is killed with SIGKILL three times, each time
//! after a pseudo-random number of further acknowledgements, and restarted
//! on the same store and port. At the end every acknowledged message is
//! pulled back at its queue offset with its offset msgId and unique id, and
//! no two acknowledgements share a (queue, offset) ([`check_acks`]).
//!
//! A process kill leaves the page cache intact, so this proves recovery
//! (torn tail, consume queues rebuilt past the checkpoint) keeps every
//! acknowledged record; that acknowledgements wait for the flush itself is
//! asserted in the store's `sync_flush_group_commit_acknowledges_only_flushed_bytes`.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use compat_tests::{
    acked, bin_dir, check_acks, java_client, serial, text, wait_until, OurNamesrv, Proc,
    StandaloneBroker,
};

const VERSION: &str = "5.3.3";
const TOPIC: &str = "SyncFlushKill";
const KILLS: usize = 3;

/// A number in `lo..hi` that differs from run to run.
fn pseudo_random(lo: usize, hi: usize, salt: usize) -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as usize);
    lo + (nanos / 7 + salt * 7919) % (hi - lo)
}

#[test]
fn sync_flush_broker_keeps_every_acknowledged_message_across_sigkill() {
    let _serial = serial();
    let java = java_client(VERSION);
    let ns = OurNamesrv::start();
    let mut broker = StandaloneBroker::start(
        &ns.addr,
        "flushDiskType=SYNC_FLUSH\nmappedFileSizeCommitLog=1048576\nmappedFileSizeConsumeQueue=2000\n",
    );
    let home = ns.client_home("java");
    java.update_topic(
        &home,
        &ns.addr,
        &broker.cluster_name,
        TOPIC,
        4,
        &broker.addr,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", broker.logs()));
    let port: u16 = broker
        .addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("broker port");

    let mut producer = java.spawn(
        &home,
        "compat.StoreDriver",
        &["produce-until", &ns.addr, TOPIC, "240"],
        ns.dir.path().join("producer.out"),
    );
    let mut restart_logs = Vec::new();
    for round in 0..KILLS {
        let target = acked(&producer) + pseudo_random(30, 400, round);
        wait_until(
            &format!("{target} acknowledged sends before kill {}", round + 1),
            Duration::from_secs(90),
            || {
                assert!(
                    producer.is_running(),
                    "producer exited:\n{}",
                    producer.log_text()
                );
                acked(&producer) >= target
            },
        );
        broker.kill();
        restart_logs.push(broker.logs());
        wait_until(
            "the broker port to be free",
            Duration::from_secs(20),
            || TcpListener::bind(("127.0.0.1", port)).is_ok(),
        );
        let mut cmd = Command::new(bin_dir().join("mqbroker"));
        cmd.arg("-c")
            .arg(broker.dir.path().join("broker.conf"))
            .env("HOME", broker.dir.path())
            .env("RUST_LOG", "info")
            .env_remove("NAMESRV_ADDR");
        broker.proc = Proc::spawn(
            "mqbroker",
            cmd,
            broker
                .dir
                .path()
                .join(format!("broker.restart-{}.log", round + 1)),
        );
        broker.wait_registered(&ns.addr, Duration::from_secs(30));
        // It really crashed: the abort file made it recover abnormally.
        assert!(
            broker.logs().contains("last_exit_ok=false"),
            "restart {} did not recover from a crash:\n{}",
            round + 1,
            broker.logs()
        );
    }
    let target = acked(&producer) + 100;
    wait_until(
        "100 acknowledged sends after the last restart",
        Duration::from_secs(90),
        || acked(&producer) >= target,
    );
    producer.stop(Duration::from_secs(10));
    let sent = producer.log_text();
    let acks = acked(&producer);
    assert!(acks >= target, "{acks} acks:\n{sent}");

    let out = text(&java.run(
        &home,
        "compat.StoreDriver",
        &["dump", &ns.addr, TOPIC, "sync_flush_kill_check", "90"],
        Duration::from_secs(150),
    ));
    assert!(out.contains("DUMPED "), "dump:\n{out}\n{}", broker.logs());
    let errors = sent.lines().filter(|l| l.starts_with("ERR ")).count();
    eprintln!("{acks} acknowledged, {errors} failed sends while the broker was down");
    // Every acknowledged message at its queue offset with its offset msgId,
    // unique id and key; no two acknowledgements at one offset.
    check_acks(&sent, &out).assert_ok(&format!("after {KILLS} SIGKILLs"), || {
        format!("{}\n{}", restart_logs.join("\n"), broker.logs())
    });
    if let Err(e) = broker.proc.stop_cleanly(Duration::from_secs(20)) {
        panic!("{e}\n{}", broker.logs());
    }
}
