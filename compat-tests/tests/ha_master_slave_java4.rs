//! Master/slave replication (Java's classic HA) between our broker and the
//! official Java **4.x** broker, in both directions, through the Java 5.3.3
//! client: the same pair as `ha_master_slave.rs`
//! (`compat_tests::ha_pair::Pair`, one `brokerName` on our name server,
//! 1 MiB commit-log files, the slave learning the master's HA address from
//! the name server). 4.9.8's server jars are not on Maven Central, so the
//! Java peer is 4.9.7 (the same classic HA protocol). 4.x has no
//! `inSyncReplicas` (the key is ignored): its `SYNC_MASTER` waits for its
//! one slave.
//!
//! - `java_4_master_and_ours_slave`: a topic created on the 4.9.7 master
//!   reaches our slave; 1,100 sends over 3+ files all SEND_OK; the master
//!   SIGKILLed, the topic read from our slave with the shared invariant;
//!   every commit-log file of our slave byte-identical to the Java
//!   master's. (A 4.x master has no GET_BROKER_HA_STATUS: no haStatus.)
//! - `ours_master_and_java_4_slave`: the same with our master and a 4.9.7
//!   slave (which copies the topic from our master by itself, within 10 s,
//!   and refuses `updateTopic`), plus `mqadmin haStatus` of our master
//!   showing the Java slave in sync.

use std::time::Instant;

use compat_tests::ha_pair::Pair;
use compat_tests::{check_acks, serial};

/// compat.StoreDriver bodies are ~3 KiB: 1100 of them fill more than three
/// 1 MiB files.
const MESSAGES: usize = 1100;

/// The 4.x Java broker: 4.9.8's server jars are not on Maven Central,
/// 4.9.7's are.
const JAVA_4: &str = "4.9.7";

#[test]
fn java_4_master_and_ours_slave() {
    let _serial = serial();
    let started = Instant::now();
    // 4.x has no inSyncReplicas (ignored): its SYNC_MASTER waits for its
    // one slave. Nor GET_BROKER_HA_STATUS, so no haStatus here.
    let mut pair = Pair::start(Some(JAVA_4), None, "");
    pair.create_topic("HaJava4Master");
    let sent = pair.produce("HaJava4Master", MESSAGES);
    pair.wait_caught_up();
    pair.kill_master();
    let dump = pair.dump("HaJava4Master", "ha_java4_master_dump");
    check_acks(&sent, &dump).assert_ok("read from the slave", || pair.logs());
    pair.stop_and_compare(3);
    eprintln!("java_4_master_and_ours_slave took {:?}", started.elapsed());
}

#[test]
fn ours_master_and_java_4_slave() {
    let _serial = serial();
    let started = Instant::now();
    let mut pair = Pair::start(None, Some(JAVA_4), "");
    pair.create_topic("HaJava4Slave");
    let sent = pair.produce("HaJava4Slave", MESSAGES);
    pair.wait_caught_up();
    pair.assert_ha_status();
    pair.kill_master();
    let dump = pair.dump("HaJava4Slave", "ha_java4_slave_dump");
    check_acks(&sent, &dump).assert_ok("read from the slave", || pair.logs());
    pair.stop_and_compare(3);
    eprintln!("ours_master_and_java_4_slave took {:?}", started.elapsed());
}
