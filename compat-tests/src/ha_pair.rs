//! A classic master/slave pair (Java's HAService) for the `ha_*` suites:
//! one `brokerName` registered with our name server, the master
//! (`brokerId=0`, `SYNC_MASTER`, `inSyncReplicas=2`: a send is acknowledged
//! only once the slave holds it) and the slave (`brokerId=1`, `SLAVE`,
//! `slaveReadEnable=true`, no `haMasterAddress`: it learns the master's HA
//! address from the name server's REGISTER_BROKER answer), each ours or the
//! official Java broker, with 1 MiB commit-log files
//! (`mappedFileSizeCommitLog=1048576`). [`Pair`] starts them with the Java
//! client, creates topics, produces and dumps with compat.StoreDriver,
//! SIGKILLs and restarts the master, checks `mqadmin haStatus` and compares
//! the commit-log files; every wait has a deadline and a failure prints
//! every server's logs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use remoting::code::request_code;

use crate::{
    cluster_info, free_broker_port, java_client, request_body, tail_lines, text, BrokerProcess,
    JavaBroker, JavaClient, OurNamesrv, Proc, TEST_BROKER_KEYS,
};

/// The official Java version of the client and of Java peers by default.
pub const VERSION: &str = "5.3.3";
pub const CLUSTER: &str = "HaCluster";
pub const NAME: &str = "ha-a";
/// Commit-log file size of every broker of a pair (1 MiB).
pub const FILE_SIZE: u64 = 1024 * 1024;

/// The keys every broker of a pair shares.
pub fn pair_keys() -> String {
    format!(
        "brokerClusterName={CLUSTER}\nbrokerName={NAME}\nmappedFileSizeCommitLog={FILE_SIZE}\n\
         brokerIP2=127.0.0.1\n"
    )
}

pub fn master_keys(extra: &str) -> String {
    format!(
        "{}brokerId=0\nbrokerRole=SYNC_MASTER\ninSyncReplicas=2\n{extra}",
        pair_keys()
    )
}

pub fn slave_keys(extra: &str) -> String {
    format!(
        "{}brokerId=1\nbrokerRole=SLAVE\nslaveReadEnable=true\n{extra}",
        pair_keys()
    )
}

/// One broker of a pair.
pub enum Broker {
    Ours(BrokerProcess),
    Java(Box<JavaBroker>),
}

pub struct Node {
    pub addr: String,
    pub broker: Broker,
}

impl Node {
    /// Our `mqbroker` in `dir` with `keys`, started.
    pub fn ours(name: &str, dir: PathBuf, ns: &str, keys: &str) -> Node {
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
    pub fn java(version: &str, ns: &str, keys: &str) -> Node {
        let jb = JavaBroker::launch(version, ns, keys);
        Node {
            addr: jb.addr.clone(),
            broker: Broker::Java(Box::new(jb)),
        }
    }

    pub fn commit_log_dir(&self) -> PathBuf {
        match &self.broker {
            Broker::Ours(b) => b.dir.join("store").join("commitlog"),
            Broker::Java(b) => b.dir.path().join("store").join("commitlog"),
        }
    }

    pub fn signal(&self, signal: i32) {
        match &self.broker {
            Broker::Ours(b) => b.signal(signal),
            Broker::Java(b) => b.proc.signal(signal),
        }
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.broker {
            Broker::Ours(b) => b.proc.as_mut().is_some_and(|p| p.is_running()),
            Broker::Java(b) => b.proc.is_running(),
        }
    }

    pub fn kill(&mut self) {
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
    pub fn stop(&mut self) -> Result<(), String> {
        match &mut self.broker {
            Broker::Ours(b) => b.stop_cleanly(Duration::from_secs(20)),
            Broker::Java(b) => {
                b.proc.stop(Duration::from_secs(30));
                Ok(())
            }
        }
    }

    pub fn restart(&mut self) {
        match &mut self.broker {
            Broker::Ours(b) => b.start(),
            Broker::Java(b) => b.restart(),
        }
    }

    pub fn logs(&self) -> String {
        match &self.broker {
            Broker::Ours(b) => b.logs(80),
            Broker::Java(b) => b.logs(),
        }
    }
}

/// A master and its slave, our name server and the Java client. Prints
/// every server's logs when the test fails.
pub struct Pair {
    pub master: Node,
    pub slave: Node,
    pub java: JavaClient,
    pub home: PathBuf,
    pub ns: OurNamesrv,
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
    /// once). The Java client is [`VERSION`].
    pub fn start(java_master: Option<&str>, java_slave: Option<&str>, master_extra: &str) -> Pair {
        Pair::start_with(VERSION, java_master, java_slave, master_extra, "")
    }

    /// [`Pair::start`] with the Java client of `client` and `slave_extra`
    /// appended to the slave's keys.
    pub fn start_with(
        client: &str,
        java_master: Option<&str>,
        java_slave: Option<&str>,
        master_extra: &str,
        slave_extra: &str,
    ) -> Pair {
        let ns = OurNamesrv::start();
        let java = java_client(client).snapshot(ns.dir.path());
        let home = ns.client_home("java");
        let root = ns.dir.path().join("ha");
        let node = |role: &str, version: Option<&str>, keys: &str| match version {
            Some(v) => Node::java(v, &ns.addr, keys),
            None => Node::ours(role, root.join(role), &ns.addr, keys),
        };
        let mut master = node("master", java_master, &master_keys(master_extra));
        // (Until the pair exists, a failure prints the master's logs here.)
        wait_registered_alone(&ns, &mut master, 0);
        let slave = node("slave", java_slave, &slave_keys(slave_extra));
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

    /// `compat.StoreDriver produce-until` sending to `topic` for `secs`
    /// seconds through the pair's name server; one `ACK `/`NOTOK `/`ERR `
    /// line a send in `<ns dir>/producer.out`.
    pub fn spawn_producer(&self, topic: &str, secs: &str) -> Proc {
        self.java.spawn(
            &self.home,
            "compat.StoreDriver",
            &["produce-until", &self.ns.addr, topic, secs],
            self.ns.dir.path().join("producer.out"),
        )
    }

    pub fn logs(&self) -> String {
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
    pub fn wait_registered(&mut self, id: i64) {
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
    pub fn create_topic(&self, topic: &str) {
        if let Err(e) =
            self.java
                .update_topic_on_broker(&self.home, &self.ns.addr, topic, 4, &self.master.addr)
        {
            panic!("updateTopic {topic}: {e}\n{}", self.logs());
        }
        // A Java 5.3.3 slave copies the master's metadata first a minute
        // after its start (then every minute): create it there as well. A
        // 4.x slave copies it every 10 s (and refuses updateTopic).
        if let Broker::Java(b) = &self.slave.broker {
            if b.version.starts_with("4.") {
                // Copied within the wait below.
            } else if let Err(e) = self.java.update_topic_on_broker(
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
    pub fn produce(&self, topic: &str, count: usize) -> String {
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
    pub fn dump(&self, topic: &str, group: &str) -> String {
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
    pub fn kill_master(&mut self) {
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
    pub fn assert_ha_status(&self) {
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
    pub fn wait_caught_up(&self) {
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
    pub fn stop_and_compare(&mut self, min_files: usize) {
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
pub fn wait_registered_alone(ns: &OurNamesrv, node: &mut Node, id: i64) {
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
pub fn route(ns: &str) -> std::collections::BTreeMap<i64, String> {
    cluster_info(ns)
        .and_then(|info| info.broker_addr_table.get(NAME).cloned())
        .map(|bd| bd.broker_addrs)
        .unwrap_or_default()
}

/// Compares two commit-log folders: every file both hold must be
/// byte-identical, a file only one holds must be all zeros (preallocated).
/// The number of files holding data, or what differs.
pub fn compare_commit_logs(master: &Path, slave: &Path) -> Result<usize, String> {
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
