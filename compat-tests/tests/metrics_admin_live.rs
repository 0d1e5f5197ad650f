//! `mqadmin clusterList -m` and `mqadmin brokerStatus` (5.3.3) move with a
//! live workload on our broker as on the Java 5.3.3 broker (the
//! reference), both run side by side, each behind its own name server of
//! ours. Per broker: a topic, then the official Java client sending from
//! one thread for [`SEND_SECS`] (compat.StoreDriver produce-until).
//! The looks "during" the sends are checked to be so: they counted fewer
//! puts than the final total.
//!
//! - During the sends: brokerStatus's putTps (10 s figure) > 0 and
//!   clusterList -m's InTotalToday > 0.
//! - After them, the topic read once by a pull consumer (compat.StoreDriver
//!   dump): brokerStatus's getTransferredTps (5.x's key; ours also prints
//!   4.x's getTransferedTps) > 0; on ours
//!   msgPutTotalTodayNow, msgGetTotalTodayNow, clusterList -m's
//!   InTotalToday and OutTotalToday all equal the acknowledged count N (the
//!   broker saw nothing else today). Java's figures are printed beside and
//!   asserted to be at least N.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use compat_tests::{java_client, serial, JavaBroker, JavaClient, OurNamesrv, StandaloneBroker};

const VERSION: &str = "5.3.3";
const TOPIC: &str = "AdminLive";
const SEND_SECS: u64 = 20;

struct Side {
    job: &'static str,
    ns: String,
    addr: String,
    name: String,
    home: PathBuf,
}

/// brokerStatus's `key : value` lines.
fn broker_status(java: &JavaClient, s: &Side) -> BTreeMap<String, String> {
    java.mqadmin(&s.home, &["brokerStatus", "-n", &s.ns, "-b", &s.addr])
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The first number of a TPS triple ("10 s, 60 s, 600 s").
fn tps10(status: &BTreeMap<String, String>, key: &str) -> f64 {
    status
        .get(key)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn int(status: &BTreeMap<String, String>, key: &str) -> Option<u64> {
    status.get(key).and_then(|v| v.parse().ok())
}

/// clusterList -m's row of the broker: InTotalYest, OutTotalYest,
/// InTotalToday, OutTotalToday.
fn totals(java: &JavaClient, s: &Side) -> (Option<[u64; 4]>, String) {
    let out = java.mqadmin(&s.home, &["clusterList", "-m", "-n", &s.ns]);
    let row = out.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 6 || f[1] != s.name {
            return None;
        }
        let n: Vec<u64> = f[f.len() - 4..]
            .iter()
            .filter_map(|x| x.parse().ok())
            .collect();
        <[u64; 4]>::try_from(n).ok()
    });
    (row, out)
}

fn acked(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("ACK "))
        .count()
}

#[test]
fn cluster_list_and_broker_status_follow_the_load() {
    let _one_at_a_time = serial();
    let started = Instant::now();
    let java = java_client(VERSION);
    let ns_ours = OurNamesrv::start();
    let ns_java = OurNamesrv::start();
    let ours = StandaloneBroker::start(&ns_ours.addr, "");
    let jb = JavaBroker::start(VERSION, &ns_java.addr);
    let sides = [
        Side {
            job: "ours",
            ns: ns_ours.addr.clone(),
            addr: ours.addr.clone(),
            name: ours.broker_name.clone(),
            home: ns_ours.client_home("admin-live"),
        },
        Side {
            job: "java",
            ns: ns_java.addr.clone(),
            addr: jb.addr.clone(),
            name: jb.broker_name.clone(),
            home: ns_java.client_home("admin-live"),
        },
    ];
    let logs = || format!("{}\n{}", ours.logs(), jb.logs());

    let results: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = sides
            .iter()
            .map(|s| {
                let java = &java;
                let logs = &logs;
                scope.spawn(move || {
                    if let Err(e) = java.update_topic_on_broker(&s.home, &s.ns, TOPIC, 4, &s.addr)
                    {
                        panic!("{}: updateTopic: {e}\n{}", s.job, logs());
                    }
                    let log = s.home.join("producer.out");
                    let secs = SEND_SECS.to_string();
                    let mut producer = java.spawn(
                        &s.home,
                        "compat.StoreDriver",
                        &["produce-until", &s.ns, TOPIC, &secs],
                        log.clone(),
                    );
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while acked(&log) < 50 {
                        assert!(
                            producer.is_running() && Instant::now() < deadline,
                            "{}: no 50 acknowledgements:\n{}\n{}",
                            s.job,
                            producer.log_text(),
                            logs()
                        );
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    // During the load.
                    // (The two mqadmin runs side by side: both while sending.)
                    // Java's putTps is empty until its store has taken more
                    // than 10 one-second samples since it started: ask again
                    // while the load goes on (bounded: half the send time).
                    let asked = Instant::now();
                    let (during, (during_totals, list)) = loop {
                        let look = std::thread::scope(|inner| {
                            let status = inner.spawn(|| broker_status(java, s));
                            let list = totals(java, s);
                            match status.join() {
                                Ok(st) => (st, list),
                                Err(e) => std::panic::resume_unwind(e),
                            }
                        });
                        if tps10(&look.0, "putTps") > 0.0
                            || !producer.is_running()
                            || asked.elapsed() > Duration::from_secs(SEND_SECS / 2)
                        {
                            break look;
                        }
                        std::thread::sleep(Duration::from_millis(500));
                    };
                    assert!(
                        tps10(&during, "putTps") > 0.0,
                        "{}: putTps during the load: {during:?}",
                        s.job
                    );
                    assert!(
                        during_totals.is_some_and(|t| t[2] > 0),
                        "{}: clusterList -m InTotalToday during the load:\n{list}",
                        s.job
                    );
                    let exit = producer.wait_exit(Duration::from_secs(SEND_SECS + 30));
                    assert!(
                        exit.is_some_and(|e| e.success()),
                        "{}: producer {exit:?}:\n{}",
                        s.job,
                        producer.log_text()
                    );
                    let n = acked(&log) as u64;
                    // Both looks were taken while the sends went on: they
                    // counted fewer than the final total.
                    let put_during = int(&during, "msgPutTotalTodayNow");
                    assert!(
                        put_during.is_some_and(|p| p < n)
                            && during_totals.is_some_and(|t| t[2] < n),
                        "{}: not looked at during the load: brokerStatus {put_during:?}, \
                         clusterList -m {during_totals:?}, {n} sent in all",
                        s.job
                    );
                    let dump = java.run(
                        &s.home,
                        "compat.StoreDriver",
                        &["dump", &s.ns, TOPIC, "AdminLiveReader", "60"],
                        Duration::from_secs(90),
                    );
                    let dumped = String::from_utf8_lossy(&dump.stdout)
                        .lines()
                        .filter(|l| l.starts_with("MSG "))
                        .count() as u64;
                    assert_eq!(dumped, n, "{}: messages read back", s.job);
                    // After the load.
                    let after = broker_status(java, s);
                    let (after_totals, list) = totals(java, s);
                    assert!(
                        tps10(&after, "getTransferredTps") > 0.0,
                        "{}: getTransferredTps after the read: {after:?}",
                        s.job
                    );
                    let put = int(&after, "msgPutTotalTodayNow");
                    let get = int(&after, "msgGetTotalTodayNow");
                    if s.job == "ours" {
                        assert_eq!(
                            (put, get),
                            (Some(n), Some(n)),
                            "ours: brokerStatus today's puts and gets, {n} sent: {after:?}"
                        );
                        assert_eq!(
                            after_totals.map(|t| (t[2], t[3])),
                            Some((n, n)),
                            "ours: clusterList -m today's in/out, {n} sent:\n{list}"
                        );
                    } else {
                        assert!(
                            put.is_some_and(|p| p >= n) && get.is_some_and(|g| g >= n),
                            "java: brokerStatus today's puts {put:?} gets {get:?}, {n} sent"
                        );
                    }
                    format!(
                        "{}: sent {n}; during: putTps {:?}, msgPutTotalTodayNow {put_during:?}, \
                         clusterList -m {during_totals:?}; after: putTps {:?} getTransferredTps {:?} \
                         msgPutTotalTodayNow {put:?} msgGetTotalTodayNow {get:?}, clusterList -m {after_totals:?}",
                        s.job,
                        during.get("putTps"),
                        after.get("putTps"),
                        after.get("getTransferredTps"),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(e) => std::panic::resume_unwind(e),
            })
            .collect()
    });
    for r in results {
        eprintln!("{r}");
    }
    eprintln!("metrics_admin_live took {:?}", started.elapsed());
}
