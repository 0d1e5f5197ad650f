//! Master/slave replication (Java's classic HA) through the official Java
//! 5.3.3 client, with our brokers and the official Java 5.3.3 broker on
//! either side. Every pair is one `brokerName` registered with our name
//! server: the master (`brokerId=0`, `SYNC_MASTER`, `inSyncReplicas=2`, so
//! a send is acknowledged only once the slave holds it) and the slave
//! (`brokerId=1`, `SLAVE`, `slaveReadEnable=true`, no `haMasterAddress`:
//! it learns the master's HA address from the name server's
//! REGISTER_BROKER answer). Commit-log files are 1 MiB
//! (`mappedFileSizeCommitLog=1048576`) so the messages straddle files.
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

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use compat_tests::{
    check_acks, cluster_info, free_broker_port, java_client, request_body, serial, tail_lines,
    text, BrokerProcess, JavaBroker, JavaClient, OurNamesrv, TEST_BROKER_KEYS,
};
use remoting::code::request_code;

const VERSION: &str = "5.3.3";
const CLUSTER: &str = "HaCluster";
const NAME: &str = "ha-a";
const FILE_SIZE: u64 = 1024 * 1024;
/// compat.StoreDriver bodies are ~3 KiB: 1100 of them fill more than three
/// 1 MiB files.
const MESSAGES: usize = 1100;

/// The keys every broker of a pair shares.
fn pair_keys() -> String {
    format!(
        "brokerClusterName={CLUSTER}\nbrokerName={NAME}\nmappedFileSizeCommitLog={FILE_SIZE}\n\
         brokerIP2=127.0.0.1\n"
    )
}

fn master_keys(extra: &str) -> String {
    format!(
        "{}brokerId=0\nbrokerRole=SYNC_MASTER\ninSyncReplicas=2\n{extra}",
        pair_keys()
    )
}

fn slave_keys() -> String {
    format!(
        "{}brokerId=1\nbrokerRole=SLAVE\nslaveReadEnable=true\n",
        pair_keys()
    )
}

/// One broker of a pair.
enum Broker {
    Ours(BrokerProcess),
    Java(Box<JavaBroker>),
}

struct Node {
    addr: String,
    broker: Broker,
}

impl Node {
    /// Our `mqbroker` in `dir` with `keys`, started.
    fn ours(name: &str, dir: PathBuf, ns: &str, keys: &str) -> Node {
        std::fs::create_dir_all(&dir).expect("broker dir");
        let port = free_broker_port();
        std::fs::write(
            dir.join("broker.conf"),
            format!(
                "listenPort={port}\nnamesrvAddr={ns}\nbrokerIP1=127.0.0.1\n\
                 bindAddress=127.0.0.1\nstorePathRootDir={}\nmaxHashSlotNum=50000\n\
                 maxIndexNum=200000\nflushDiskType=ASYNC_FLUSH\n{TEST_BROKER_KEYS}{keys}",
                dir.join("store").display()
            ),
        )
        .expect("write broker.conf");
        let mut b = BrokerProcess::new(name, dir);
        b.start();
        Node {
            addr: format!("127.0.0.1:{port}"),
            broker: Broker::Ours(b),
        }
    }

    /// The official Java broker with `keys`, started.
    fn java(version: &str, ns: &str, keys: &str) -> Node {
        let jb = JavaBroker::launch(version, ns, keys);
        Node {
            addr: jb.addr.clone(),
            broker: Broker::Java(Box::new(jb)),
        }
    }

    fn commit_log_dir(&self) -> PathBuf {
        match &self.broker {
            Broker::Ours(b) => b.dir.join("store").join("commitlog"),
            Broker::Java(b) => b.dir.path().join("store").join("commitlog"),
        }
    }

    fn signal(&self, signal: i32) {
        match &self.broker {
            Broker::Ours(b) => b.signal(signal),
            Broker::Java(b) => b.proc.signal(signal),
        }
    }

    fn is_running(&mut self) -> bool {
        match &mut self.broker {
            Broker::Ours(b) => b.proc.as_mut().is_some_and(|p| p.is_running()),
            Broker::Java(b) => b.proc.is_running(),
        }
    }

    fn kill(&mut self) {
        match &mut self.broker {
            Broker::Ours(b) => b.kill(),
            Broker::Java(b) => {
                b.proc.signal(libc::SIGKILL);
                b.proc.stop(Duration::from_secs(10));
            }
        }
    }

    /// SIGTERM; ours must exit with status 0 (Java's JVM exits with 143
    /// after its shutdown hooks).
    fn stop(&mut self) -> Result<(), String> {
        match &mut self.broker {
            Broker::Ours(b) => b.stop_cleanly(Duration::from_secs(20)),
            Broker::Java(b) => {
                b.proc.stop(Duration::from_secs(30));
                Ok(())
            }
        }
    }

    fn restart(&mut self) {
        match &mut self.broker {
            Broker::Ours(b) => b.start(),
            Broker::Java(b) => b.restart(),
        }
    }

    fn logs(&self) -> String {
        match &self.broker {
            Broker::Ours(b) => b.logs(80),
            Broker::Java(b) => b.logs(),
        }
    }
}

/// A master and its slave, our name server and the Java client. Prints
/// every server's logs when the test fails.
struct Pair {
    master: Node,
    slave: Node,
    java: JavaClient,
    home: PathBuf,
    ns: OurNamesrv,
}

impl Drop for Pair {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (role, node) in [("master", &self.master), ("slave", &self.slave)] {
                // A Java broker prints its own logs when dropped.
                if let Broker::Ours(_) = node.broker {
                    eprintln!("===== {role} {} =====\n{}", node.addr, node.logs());
                }
            }
        }
    }
}

impl Pair {
    /// Our name server; the master (ours, or the Java broker of that
    /// version), registered; then the slave (likewise), registered as id 1
    /// (registering after the master, it learns the master's HA address at
    /// once).
    fn start(java_master: Option<&str>, java_slave: Option<&str>, master_extra: &str) -> Pair {
        let ns = OurNamesrv::start();
        let java = java_client(VERSION).snapshot(ns.dir.path());
        let home = ns.client_home("java");
        let root = ns.dir.path().join("ha");
        let node = |role: &str, version: Option<&str>, keys: &str| match version {
            Some(v) => Node::java(v, &ns.addr, keys),
            None => Node::ours(role, root.join(role), &ns.addr, keys),
        };
        let mut master = node("master", java_master, &master_keys(master_extra));
        // (Until the pair exists, a failure prints the master's logs here.)
        wait_registered_alone(&ns, &mut master, 0);
        let slave = node("slave", java_slave, &slave_keys());
        let mut pair = Pair {
            master,
            slave,
            java,
            home,
            ns,
        };
        pair.wait_registered(1);
        pair
    }

    fn logs(&self) -> String {
        format!(
            "===== master {} =====\n{}\n===== slave {} =====\n{}\n{}",
            self.master.addr,
            self.master.logs(),
            self.slave.addr,
            self.slave.logs(),
            tail_lines(&self.ns.logs(), 40)
        )
    }

    /// Waits (90 s) until the name server lists broker `id` of the pair
    /// (0 the master, 1 the slave) at its address.
    fn wait_registered(&mut self, id: i64) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let node = if id == 0 {
                &mut self.master
            } else {
                &mut self.slave
            };
            assert!(node.is_running(), "broker {id} exited\n{}", self.logs());
            let node = if id == 0 { &self.master } else { &self.slave };
            if route(&self.ns.addr).get(&id) == Some(&node.addr) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "broker {id} {} never registered\n{}",
                node.addr,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Creates `topic` (4 queues) on the master and waits (40 s) until the
    /// slave holds it (our slave's slave sync copies it within 3 s).
    fn create_topic(&self, topic: &str) {
        if let Err(e) =
            self.java
                .update_topic_on_broker(&self.home, &self.ns.addr, topic, 4, &self.master.addr)
        {
            panic!("updateTopic {topic}: {e}\n{}", self.logs());
        }
        // A Java 5.3.3 slave copies the master's metadata first a minute
        // after its start (then every minute; 4.9.8 every 10 s): create it
        // there as well.
        if let Broker::Java(_) = self.slave.broker {
            if let Err(e) = self.java.update_topic_on_broker(
                &self.home,
                &self.ns.addr,
                topic,
                4,
                &self.slave.addr,
            ) {
                panic!(
                    "updateTopic {topic} on the Java slave: {e}\n{}",
                    self.logs()
                );
            }
        }
        let deadline = Instant::now() + Duration::from_secs(40);
        while !request_body(&self.slave.addr, request_code::GET_ALL_TOPIC_CONFIG)
            .is_some_and(|b| String::from_utf8_lossy(&b).contains(&format!("\"{topic}\"")))
        {
            assert!(
                Instant::now() < deadline,
                "the slave never got topic {topic}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// compat.StoreDriver `produce` of `count` messages; every send must be
    /// SEND_OK. Its output (`ACK` lines).
    fn produce(&self, topic: &str, count: usize) -> String {
        let started = Instant::now();
        let out = text(&self.java.run(
            &self.home,
            "compat.StoreDriver",
            &["produce", &self.ns.addr, topic, &count.to_string(), "0"],
            Duration::from_secs(150),
        ));
        assert!(
            out.contains(&format!("DONE acked={count}")),
            "produce {count} to {topic}:\n{}\n{}",
            tail_lines(&out, 40),
            self.logs()
        );
        eprintln!("{count} sends acknowledged in {:?}", started.elapsed());
        out
    }

    /// compat.StoreDriver `dump` of `topic` from offset 0 (the client asks
    /// only a master for a queue's min offset).
    fn dump(&self, topic: &str, group: &str) -> String {
        let out = text(&self.java.run(
            &self.home,
            "compat.StoreDriver",
            &["dump", &self.ns.addr, topic, group, "60", "from-zero"],
            Duration::from_secs(120),
        ));
        assert!(
            out.contains("DUMPED "),
            "dump of {topic}:\n{}\n{}",
            tail_lines(&out, 40),
            self.logs()
        );
        out
    }

    /// SIGKILLs the master and waits (30 s) until the name server routes
    /// the slave alone.
    fn kill_master(&mut self) {
        self.master.kill();
        let ns = self.ns.addr.clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = route(&ns);
            if !r.contains_key(&0) && r.get(&1) == Some(&self.slave.addr) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "after the master's kill the route is {r:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `mqadmin haStatus -b <master>` (GET_BROKER_HA_STATUS) once the slave
    /// has caught up, checked the same way for a Java master and ours: the
    /// master's address, its commit-log end, one slave, in sync, and the
    /// slave's row at that end with no gap and status OK.
    fn assert_ha_status(&self) {
        let out = self.java.mqadmin(
            &self.home,
            &["haStatus", "-n", &self.ns.addr, "-b", &self.master.addr],
        );
        let field = |k: &str| {
            out.lines().find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(k)).then(|| f.next().unwrap_or("").to_owned())
            })
        };
        let end = field("#MasterCommitLogMaxOffset").and_then(|v| v.parse::<i64>().ok());
        let rows: Vec<Vec<&str>> = out
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("#SlaveAddr"))
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|f| f.len() >= 6)
            .collect();
        let ok = field("#MasterAddr").as_deref() == Some(self.master.addr.as_str())
            && end.is_some_and(|e| e > 0)
            && field("#SlaveNum").as_deref() == Some("1")
            && field("#InSyncSlaveNum").as_deref() == Some("1")
            && rows.len() == 1
            && rows[0][1].parse::<i64>().ok() == end
            && rows[0][2] == "0"
            && rows[0][4] == "OK";
        assert!(
            ok,
            "mqadmin haStatus of {}:\n{out}\n{}",
            self.master.addr,
            self.logs()
        );
    }

    /// Waits (30 s) until the slave's commit log equals the master's.
    fn wait_caught_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let diff =
                compare_commit_logs(&self.master.commit_log_dir(), &self.slave.commit_log_dir());
            let Err(why) = diff else { return };
            assert!(
                Instant::now() < deadline,
                "the slave never caught up: {why}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops whatever still runs, then asserts the commit logs are
    /// identical and span at least `min_files` files.
    fn stop_and_compare(&mut self, min_files: usize) {
        for slave in [true, false] {
            let node = if slave {
                &mut self.slave
            } else {
                &mut self.master
            };
            if node.is_running() {
                if let Err(e) = node.stop() {
                    panic!("{e}\n{}", self.logs());
                }
            }
        }
        match compare_commit_logs(&self.master.commit_log_dir(), &self.slave.commit_log_dir()) {
            Ok(files) => assert!(
                files >= min_files,
                "the commit log spans {files} files, expected at least {min_files}"
            ),
            Err(why) => panic!("commit logs differ: {why}\n{}", self.logs()),
        }
    }
}

/// Waits (90 s) until `node` is broker `id` of the pair on the name server.
fn wait_registered_alone(ns: &OurNamesrv, node: &mut Node, id: i64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while route(&ns.addr).get(&id) != Some(&node.addr) {
        assert!(
            node.is_running() && Instant::now() < deadline,
            "broker {id} {} never registered\n{}",
            node.addr,
            node.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The pair's brokers as the name server lists them: id → address.
fn route(ns: &str) -> std::collections::BTreeMap<i64, String> {
    cluster_info(ns)
        .and_then(|info| info.broker_addr_table.get(NAME).cloned())
        .map(|bd| bd.broker_addrs)
        .unwrap_or_default()
}

/// Compares two commit-log folders: every file both hold must be
/// byte-identical, a file only one holds must be all zeros (preallocated).
/// The number of files holding data, or what differs.
fn compare_commit_logs(master: &Path, slave: &Path) -> Result<usize, String> {
    let names = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (m, s) = (names(master), names(slave));
    let mut with_data = 0;
    for name in m.union(&s) {
        let read = |dir: &Path| std::fs::read(dir.join(name)).ok();
        match (read(master), read(slave)) {
            (Some(a), Some(b)) => {
                if a != b {
                    let at = a.iter().zip(&b).position(|(x, y)| x != y);
                    return Err(format!(
                        "file {name}: master {} bytes, slave {} bytes, first difference at {at:?}",
                        a.len(),
                        b.len()
                    ));
                }
                if a.iter().any(|b| *b != 0) {
                    with_data += 1;
                }
            }
            (Some(a), None) | (None, Some(a)) => {
                if let Some(at) = a.iter().position(|b| *b != 0) {
                    let side = if m.contains(name) { "master" } else { "slave" };
                    return Err(format!("file {name} only on the {side}, with data at {at}"));
                }
            }
            (None, None) => return Err(format!("file {name} unreadable")),
        }
    }
    if with_data == 0 {
        return Err("no commit-log data".into());
    }
    Ok(with_data)
}

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
