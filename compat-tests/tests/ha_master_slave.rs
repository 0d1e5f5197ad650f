//! Master/slave replication (Java's classic HA) through the official Java
//! 5.3.3 client, with our brokers and the official Java 5.3.3 broker on
//! either side. Every pair is a `compat_tests::ha_pair::Pair`: one
//! `brokerName` registered with our name server, the master `SYNC_MASTER`
//! with `inSyncReplicas=2` (a send is acknowledged only once the slave
//! holds it), the slave `slaveReadEnable=true` learning the master's HA
//! address from the name server. Commit-log files are 1 MiB so the
//! messages straddle files.
//!
//! - `ours_master_and_ours_slave`: a topic created on the master reaches
//!   the slave (slave sync); compat.StoreDriver `produce` spans at least
//!   three commit-log files, every send SEND_OK; the master is SIGKILLed
//!   and the Java pull consumer reads the topic from the slave: every
//!   acknowledged message at its queue offset with its ids and key, no
//!   offset acknowledged twice (`compat_tests::invariant`); every
//!   commit-log file of the slave is byte-identical to the master's of the
//!   same name (a file only one side has must be all zeros: a
//!   preallocated next file). Both restart (master first), the slave
//!   resumes where it stopped: more sends, the invariant over both rounds,
//!   identical files again.
//! - `sync_master_answers_flush_slave_timeout_while_the_slave_is_paused`:
//!   with the slave SIGSTOPped a send answers FLUSH_SLAVE_TIMEOUT (the
//!   message is stored, the acknowledgement is missing); after SIGCONT sends
//!   are SEND_OK again.
//! - `java_master_and_ours_slave`, `ours_master_and_java_slave`: the same
//!   checks as the first round of the first test with the official Java
//!   broker as master or as slave: the bytes our master ships are what a
//!   Java slave stores, and the bytes a Java master ships are what our
//!   slave stores.

use std::time::{Duration, Instant};

use compat_tests::ha_pair::{Pair, VERSION};
use compat_tests::{check_acks, serial, tail_lines};

/// compat.StoreDriver bodies are ~3 KiB: 1100 of them fill more than three
/// 1 MiB files.
const MESSAGES: usize = 1100;

/// Round 1 of every pair: topic, sends spanning three files, the slave
/// caught up, the master SIGKILLed, the topic read from the slave and
/// checked against the acknowledgements. Returns the acknowledgements.
fn replicate_kill_and_read(pair: &mut Pair, topic: &str, group: &str) -> String {
    pair.create_topic(topic);
    let sent = pair.produce(topic, MESSAGES);
    pair.wait_caught_up();
    pair.assert_ha_status();
    pair.kill_master();
    let dump = pair.dump(topic, group);
    let check = check_acks(&sent, &dump);
    check.assert_ok("read from the slave", || pair.logs());
    sent
}

#[test]
fn ours_master_and_ours_slave() {
    let _serial = serial();
    let started = Instant::now();
    let mut pair = Pair::start(None, None, "");
    let sent = replicate_kill_and_read(&mut pair, "HaOurs", "ha_ours_dump");
    pair.stop_and_compare(3);

    // Restart, master first: the slave resumes at its end.
    pair.master.restart();
    pair.wait_registered(0);
    pair.slave.restart();
    pair.wait_registered(1);
    let more = pair.produce("HaOurs", 300);
    pair.wait_caught_up();
    let dump = pair.dump("HaOurs", "ha_ours_dump_2");
    let check = check_acks(&format!("{sent}{more}"), &dump);
    check.assert_ok("after the restart", || pair.logs());
    pair.stop_and_compare(4);
    eprintln!("ours_master_and_ours_slave took {:?}", started.elapsed());
}

#[test]
fn sync_master_answers_flush_slave_timeout_while_the_slave_is_paused() {
    let _serial = serial();
    let started = Instant::now();
    // The slave wait must end before the client's 3 s send timeout.
    let mut pair = Pair::start(None, None, "slaveTimeout=1000\n");
    pair.create_topic("HaPause");
    let mut producer = pair.java.spawn(
        &pair.home,
        "compat.StoreDriver",
        &["produce-until", &pair.ns.addr, "HaPause", "90"],
        pair.ns.dir.path().join("producer.out"),
    );
    let count = |p: &compat_tests::Proc, prefix: &str| {
        p.log_text()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count()
    };
    let wait_for = |p: &mut compat_tests::Proc, what: &str, ok: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = p.log_text();
            if ok(&out) {
                return;
            }
            assert!(
                p.is_running() && Instant::now() < deadline,
                "{what}: producer:\n{}\n{}",
                tail_lines(&out, 30),
                pair.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(&mut producer, "20 acknowledgements", &|o| {
        o.lines().filter(|l| l.starts_with("ACK ")).count() >= 20
    });
    assert_eq!(count(&producer, "NOTOK "), 0, "{}", producer.log_text());

    pair.slave.signal(libc::SIGSTOP);
    wait_for(&mut producer, "FLUSH_SLAVE_TIMEOUT while paused", &|o| {
        o.lines()
            .filter(|l| l.starts_with("NOTOK ") && l.ends_with(" FLUSH_SLAVE_TIMEOUT"))
            .count()
            >= 2
    });
    pair.slave.signal(libc::SIGCONT);
    let notok = count(&producer, "NOTOK ");
    let errors = count(&producer, "ERR ");
    let acks = count(&producer, "ACK ");
    // Sends stored while the slave was paused reach it once it runs: the
    // next acknowledgements (each waits for everything before it) follow.
    wait_for(&mut producer, "SEND_OK again after SIGCONT", &|o| {
        o.lines().filter(|l| l.starts_with("ACK ")).count() >= acks + 20
    });
    producer.stop(Duration::from_secs(10));
    let out = producer.log_text();
    // At most the send in flight at SIGCONT answers FLUSH_SLAVE_TIMEOUT
    // afterwards; then only SEND_OK.
    let tail: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("ACK ") || l.starts_with("NOTOK ") || l.starts_with("ERR "))
        .collect();
    let last_bad = tail.iter().rposition(|l| !l.starts_with("ACK "));
    assert!(
        count(&producer, "NOTOK ") <= notok + 1,
        "FLUSH_SLAVE_TIMEOUT after SIGCONT:\n{}",
        tail_lines(&out, 40)
    );
    assert!(
        last_bad.is_none_or(|i| tail.len() - i > 20),
        "failed sends after SIGCONT:\n{}",
        tail_lines(&out, 40)
    );
    eprintln!(
        "{acks} acknowledged before SIGCONT, {notok} FLUSH_SLAVE_TIMEOUT, {errors} errors; took {:?}",
        started.elapsed()
    );
    // The slave holds everything, the unacknowledged sends too.
    pair.wait_caught_up();
    pair.stop_and_compare(1);
}

#[test]
fn java_master_and_ours_slave() {
    let _serial = serial();
    let started = Instant::now();
    let mut pair = Pair::start(Some(VERSION), None, "");
    replicate_kill_and_read(&mut pair, "HaJavaMaster", "ha_java_master_dump");
    pair.stop_and_compare(3);
    eprintln!("java_master_and_ours_slave took {:?}", started.elapsed());
}

#[test]
fn ours_master_and_java_slave() {
    let _serial = serial();
    let started = Instant::now();
    let mut pair = Pair::start(None, Some(VERSION), "");
    replicate_kill_and_read(&mut pair, "HaJavaSlave", "ha_java_slave_dump");
    pair.stop_and_compare(3);
    eprintln!("ours_master_and_java_slave took {:?}", started.elapsed());
}
