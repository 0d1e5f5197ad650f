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
//!   are SEND_OK again; a dump of the topic then satisfies the invariant for
//!   every SEND_OK and holds every FLUSH_SLAVE_TIMEOUT send too.
//! - `java_master_and_ours_slave_then_ours_master_and_java_slave`: the same
//!   checks as the first round of the first test with the official Java
//!   broker as master, then as slave: the bytes our master ships are what
//!   a Java slave stores, and the bytes a Java master ships are what our
//!   slave stores. Before each kill, `mqadmin clusterList` and
//!   `brokerStatus` of both brokers (one compat.AdminBatch JVM); at the end
//!   the Java broker and ours are compared side by side per role: the same
//!   clusterList header, columns, cluster, broker name, id, version and (the
//!   master's) ACTIVATED, each row at its node's address; the same
//!   brokerStatus keys but for a listed few; equal version, puts counted
//!   today, failed puts, dispatch lag, commit-log min offset and
//!   brokerActive (false on a slave); the slave's commitLogMaxOffset equal to its
//!   master's. The values not compared that differ are printed.
//!   Known differences, not asserted: ours has no putLatency99/999; our
//!   slave counts no puts (putMessageTimesTotal, putTps) where Java's
//!   counts the replicated messages; TPS and sizes are formatted
//!   differently.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use compat_tests::ha_pair::{self, Pair, VERSION};
use compat_tests::{check_acks, serial, tail_lines, text};

/// compat.StoreDriver bodies are ~3 KiB: 1100 of them fill more than three
/// 1 MiB files.
const MESSAGES: usize = 1100;

/// Round 1 of every pair: topic, sends spanning three files, the slave
/// caught up, the master SIGKILLed, the topic read from the slave and
/// checked against the acknowledgements. Returns the acknowledgements and
/// what mqadmin showed of the pair before the kill.
fn replicate_kill_and_read(pair: &mut Pair, topic: &str, group: &str) -> (String, Seen) {
    pair.create_topic(topic);
    let sent = pair.produce(topic, MESSAGES);
    pair.wait_caught_up();
    pair.assert_ha_status();
    let seen = Seen::of(pair);
    pair.kill_master();
    let dump = pair.dump(topic, group);
    let check = check_acks(&sent, &dump);
    check.assert_ok("read from the slave", || pair.logs());
    (sent, seen)
}

/// `mqadmin clusterList` and `mqadmin brokerStatus` of both brokers of a
/// pair (caught up, before the kill).
struct Seen {
    list: String,
    /// clusterList's header line, and its rows by broker id (columns).
    header: String,
    rows: BTreeMap<String, Vec<String>>,
    master: BTreeMap<String, String>,
    slave: BTreeMap<String, String>,
    master_addr: String,
    slave_addr: String,
    master_out: String,
    slave_out: String,
}

impl Seen {
    fn of(pair: &Pair) -> Seen {
        // One JVM for the three commands (compat.AdminBatch).
        let ns = pair.ns.addr.as_str();
        let (m, sl) = (pair.master.addr.as_str(), pair.slave.addr.as_str());
        let out = text(&pair.java.run(
            &pair.home,
            "compat.AdminBatch",
            &[
                "clusterList",
                "-n",
                ns,
                ";;",
                "brokerStatus",
                "-n",
                ns,
                "-b",
                m,
                ";;",
                "brokerStatus",
                "-n",
                ns,
                "-b",
                sl,
            ],
            Duration::from_secs(120),
        ));
        let section = |i: usize| {
            let begin = format!("@@@ BEGIN {i} ");
            out.lines()
                .skip_while(|l| !l.starts_with(&begin))
                .skip(1)
                .take_while(|l| !l.starts_with("@@@ END"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let (list, master_out, slave_out) = (section(0), section(1), section(2));
        let header = list
            .lines()
            .find(|l| l.starts_with("#Cluster Name"))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let rows = list
            .lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .filter(|f| f.len() > 4 && f[0] == ha_pair::CLUSTER)
            .map(|f| (f[2].clone(), f))
            .collect();
        let (master, slave) = (
            broker_status_keys(&master_out),
            broker_status_keys(&slave_out),
        );
        Seen {
            list,
            header,
            rows,
            master,
            slave,
            master_addr: pair.master.addr.clone(),
            slave_addr: pair.slave.addr.clone(),
            master_out,
            slave_out,
        }
    }
}

/// `brokerStatus` lines (`key<padding>: value`) as key → value; a key
/// carrying the store path (`commitLogDiskRatio_<path>`) loses the path.
fn broker_status_keys(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| {
            let k = k.trim();
            let k = match k.split_once('_') {
                Some((head, path)) if path.starts_with('/') => format!("{head}_<path>"),
                _ => k.to_owned(),
            };
            (k, v.trim().to_owned())
        })
        .collect()
}

/// brokerStatus keys only the Java 5.3.3 broker prints: its put-latency
/// percentiles (ours does not measure them).
const ONLY_JAVA_KEYS: [&str; 2] = ["putLatency99", "putLatency999"];
/// brokerStatus keys only ours prints: the 4.x spellings it answers with as
/// well, for the 4.9.8 tools.
const ONLY_OUR_KEYS: [&str; 2] = ["getTransferedTps", "remainHowManyDataToCommit"];
/// Values that must be equal between the Java broker and ours in the same
/// role with the same sends (1,100 each): version, puts counted, nothing
/// failed or left to dispatch, the commit log's start.
const EQUAL_VALUES: [&str; 7] = [
    "brokerActive",
    "brokerVersion",
    "brokerVersionDesc",
    "msgPutTotalTodayNow",
    "putMessageFailedTimes",
    "dispatchBehindBytes",
    "commitLogMinOffset",
];

/// `clusterList` and `brokerStatus` of the Java broker and ours side by
/// side, per role: `java` is the pair whose `role` broker is Java's, `ours`
/// the one whose `role` broker is ours.
fn compare_side_by_side(java: &Seen, ours: &Seen) {
    let context = || {
        format!(
            "Java master pair:\n{}\n{}\n{}\nour master pair:\n{}\n{}\n{}",
            java.list, java.master_out, java.slave_out, ours.list, ours.master_out, ours.slave_out
        )
    };
    assert_eq!(
        java.header,
        ours.header,
        "clusterList headers\n{}",
        context()
    );
    assert!(
        java.header
            .starts_with("#Cluster Name #Broker Name #BID #Addr #Version"),
        "clusterList header\n{}",
        context()
    );
    // Java's broker is the master of `java` and the slave of `ours`.
    let roles = [
        ("master", "0", java, ours, &java.master, &ours.master),
        ("slave", "1", ours, java, &ours.slave, &java.slave),
    ];
    for (role, id, java_pair, our_pair, java_status, our_status) in roles {
        let addr = |p: &Seen| {
            if id == "0" {
                p.master_addr.clone()
            } else {
                p.slave_addr.clone()
            }
        };
        let (j, o) = (java_pair.rows.get(id), our_pair.rows.get(id));
        let (Some(j), Some(o)) = (j, o) else {
            panic!("clusterList lacks broker id {id}\n{}", context());
        };
        // Cluster, broker name, id, address (ours: the node's), version;
        // the same number of columns.
        assert_eq!(
            j.len(),
            o.len(),
            "{role} clusterList columns\n{}",
            context()
        );
        assert_eq!(
            (&j[0], &j[1], &j[2], &j[4]),
            (&o[0], &o[1], &o[2], &o[4]),
            "{role} clusterList row\n{}",
            context()
        );
        assert_eq!(
            (j[3].as_str(), o[3].as_str()),
            (addr(java_pair).as_str(), addr(our_pair).as_str()),
            "{role} clusterList address\n{}",
            context()
        );
        // The same keys, but for each side's own.
        let only =
            |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>, allowed: &[&str]| {
                a.keys()
                    .filter(|k| !b.contains_key(*k) && !allowed.contains(&k.as_str()))
                    .cloned()
                    .collect::<Vec<_>>()
            };
        let (java_only, ours_only) = (
            only(java_status, our_status, &ONLY_JAVA_KEYS),
            only(our_status, java_status, &ONLY_OUR_KEYS),
        );
        assert!(
            java_only.is_empty() && ours_only.is_empty() && java_status.len() > 30,
            "{role} brokerStatus keys: only Java's {java_only:?}, only ours {ours_only:?}\n{}",
            context()
        );
        // Only a master is active (its schedule and transaction-check
        // services run).
        assert_eq!(j.last(), o.last(), "{role} ACTIVATED\n{}", context());
        for key in EQUAL_VALUES {
            assert_eq!(
                java_status.get(key),
                our_status.get(key),
                "{role} brokerStatus {key}\n{}",
                context()
            );
        }
        let differing: Vec<String> = java_status
            .iter()
            .filter(|(k, v)| our_status.get(*k).is_some_and(|o| o != *v))
            .map(|(k, v)| format!("{k}: Java {v:?}, ours {:?}", our_status[k]))
            .collect();
        eprintln!(
            "{role} brokerStatus values not compared that differ:\n  {}",
            differing.join("\n  ")
        );
    }
    // Within each pair the slave ends where the master does.
    for p in [java, ours] {
        assert_eq!(
            p.master.get("commitLogMaxOffset"),
            p.slave.get("commitLogMaxOffset"),
            "commitLogMaxOffset of master and slave\n{}",
            context()
        );
    }
}

#[test]
fn ours_master_and_ours_slave() {
    let _serial = serial();
    let started = Instant::now();
    let mut pair = Pair::start(None, None, "");
    let (sent, _) = replicate_kill_and_read(&mut pair, "HaOurs", "ha_ours_dump");
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
    let mut producer = pair.spawn_producer("HaPause", "90");
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
    assert_eq!(producer.count_lines("NOTOK "), 0, "{}", producer.log_text());

    pair.slave.signal(libc::SIGSTOP);
    wait_for(&mut producer, "FLUSH_SLAVE_TIMEOUT while paused", &|o| {
        o.lines()
            .filter(|l| l.starts_with("NOTOK ") && l.ends_with(" FLUSH_SLAVE_TIMEOUT"))
            .count()
            >= 2
    });
    pair.slave.signal(libc::SIGCONT);
    let notok = producer.count_lines("NOTOK ");
    let errors = producer.count_lines("ERR ");
    let acks = producer.count_lines("ACK ");
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
        producer.count_lines("NOTOK ") <= notok + 1,
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
    // Every SEND_OK at its offset; every FLUSH_SLAVE_TIMEOUT send stored
    // as well (only its acknowledgement is missing).
    let dump = pair.dump("HaPause", "ha_pause_dump");
    check_acks(&out, &dump).assert_ok("after SIGCONT", || pair.logs());
    let stored: BTreeSet<&str> = dump
        .lines()
        .filter_map(|l| l.strip_prefix("MSG "))
        .filter_map(|l| l.split_whitespace().nth(4))
        .collect();
    let timed_out: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("NOTOK ") && l.ends_with(" FLUSH_SLAVE_TIMEOUT"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    let lost: Vec<&&str> = timed_out.iter().filter(|k| !stored.contains(**k)).collect();
    assert!(
        lost.is_empty(),
        "FLUSH_SLAVE_TIMEOUT sends not stored: {lost:?}\n{}",
        pair.logs()
    );
    pair.stop_and_compare(1);
}

#[test]
fn java_master_and_ours_slave_then_ours_master_and_java_slave() {
    let _serial = serial();
    let started = Instant::now();
    let mut pair = Pair::start(Some(VERSION), None, "");
    let (_, java_master) =
        replicate_kill_and_read(&mut pair, "HaJavaMaster", "ha_java_master_dump");
    pair.stop_and_compare(3);
    drop(pair);
    eprintln!("java master and our slave took {:?}", started.elapsed());

    let started = Instant::now();
    let mut pair = Pair::start(None, Some(VERSION), "");
    let (_, our_master) = replicate_kill_and_read(&mut pair, "HaJavaSlave", "ha_java_slave_dump");
    pair.stop_and_compare(3);
    drop(pair);
    eprintln!("our master and Java slave took {:?}", started.elapsed());
    compare_side_by_side(&java_master, &our_master);
}
