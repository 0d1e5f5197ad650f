//! A DLedger broker group for the fault tests (`dledger_failover`,
//! `dledger_group_restart`, `dledger_broker_java`): three members in one
//! DLedger group (`enableDLegerCommitLog=true`), each our `mqbroker` or the
//! official Java broker, registered with our name server, and the official
//! Java client to drive them.
//!
//! [`Group::start`] writes every member's configuration from a [`Spec`]
//! (member `n` is DLedger member `n<n>`; the DLedger links are direct or go
//! through a [`ProxyMesh`]) and starts them; the rest waits on the name
//! server's route (one master, id 0; slaves at selfId number + 1), moves
//! DLedger leadership, runs the Java drivers and stops the members. Every
//! wait polls against a deadline and fails with [`Group::logs`]: the last
//! lines of every start of every member and of the name server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dledger::server::DLedgerClient;
use dledger::LogIndex;
use remoting::code::request_code;

use crate::invariant::acked_keys;
use crate::{
    acked, cluster_info, dledger_files, dledger_term, free_broker_port, free_port, java_client,
    request_body, tail_lines, text, wait_delivered, wait_until, BrokerProcess, JavaBroker,
    JavaClient, OurNamesrv, Proc, ProxyMesh, TEST_BROKER_KEYS,
};

/// Members in a group.
pub const MEMBERS: usize = 3;

/// What a group is made of; [`Spec::new`] gives the defaults.
pub struct Spec {
    pub cluster: &'static str,
    /// The brokerName of every member, and the DLedger group.
    pub name: &'static str,
    /// Version of the Java client (and of the Java members).
    pub version: &'static str,
    /// DLedger data segment (= mappedFileSizeCommitLog), the same on every
    /// member (a follower's entry must land at the leader's position).
    pub segment: u64,
    /// mappedFileSizeConsumeQueue.
    pub consume_queue_size: u64,
    /// `java[n]`: member n is the official Java broker, else ours.
    pub java: [bool; MEMBERS],
    /// Every DLedger link between members goes through a [`ProxyMesh`]
    /// proxy (member n's `dLegerPeers` names the proxies of its outgoing
    /// links), so a test can cut them.
    pub mesh: bool,
    /// `key=value` lines added to our members' broker.conf.
    pub ours_extra: String,
    /// How long [`Group::wait_master`] waits.
    pub master_timeout: Duration,
    /// How long [`Group::wait_slave`] waits.
    pub slave_timeout: Duration,
    /// Lines of each of our members' logs per start in [`Group::logs`].
    pub log_lines: usize,
}

impl Spec {
    /// Three of ours on direct links with the Java 5.3.3 client,
    /// consume-queue files of 6000 bytes, 60 s for a master or a slave.
    pub fn new(cluster: &'static str, name: &'static str, segment: u64) -> Spec {
        Spec {
            cluster,
            name,
            version: "5.3.3",
            segment,
            consume_queue_size: 6000,
            java: [false; MEMBERS],
            mesh: false,
            ours_extra: String::new(),
            master_timeout: Duration::from_secs(60),
            slave_timeout: Duration::from_secs(60),
            log_lines: 60,
        }
    }

    /// The group's keys for member `n` with DLedger peers `peers` (a Java
    /// member gets these alone, next to its own defaults).
    fn dledger_keys(&self, n: usize, peers: &str) -> String {
        format!(
            "brokerClusterName={cluster}\nbrokerName={name}\nmappedFileSizeCommitLog={segment}\n\
             mappedFileSizeConsumeQueue={cq}\nenableDLegerCommitLog=true\ndLegerGroup={name}\n\
             dLegerPeers={peers}\ndLegerSelfId=n{n}\n",
            cluster = self.cluster,
            name = self.name,
            segment = self.segment,
            cq = self.consume_queue_size,
        )
    }
}

/// One member's broker.
pub enum Kind {
    Java(JavaBroker),
    Ours(BrokerProcess),
}

/// Member `n` (DLedger id `n<n>`) and its broker address.
pub struct Node {
    pub n: usize,
    pub addr: String,
    pub kind: Kind,
    log_lines: usize,
}

impl Node {
    /// Its DLedger id.
    pub fn id(&self) -> String {
        format!("n{}", self.n)
    }

    pub fn is_java(&self) -> bool {
        matches!(self.kind, Kind::Java(_))
    }

    /// Our broker; panics for a Java member.
    pub fn ours(&self) -> &BrokerProcess {
        match &self.kind {
            Kind::Ours(b) => b,
            Kind::Java(_) => panic!("n{} is a Java broker", self.n),
        }
    }

    /// Our broker; panics for a Java member.
    pub fn ours_mut(&mut self) -> &mut BrokerProcess {
        match &mut self.kind {
            Kind::Ours(b) => b,
            Kind::Java(_) => panic!("n{} is a Java broker", self.n),
        }
    }

    /// Its storePathRootDir.
    pub fn store(&self) -> PathBuf {
        match &self.kind {
            Kind::Java(b) => b.dir.path().join("store"),
            Kind::Ours(b) => b.dir.join("store"),
        }
    }

    /// Its DLedger folder.
    pub fn dledger_dir(&self) -> PathBuf {
        self.store().join(format!("dledger-n{}", self.n))
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        match &self.kind {
            Kind::Java(b) => Some(b.proc.pid()),
            Kind::Ours(b) => b.pid(),
        }
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`) to the running broker.
    pub fn signal(&self, signal: i32) {
        match &self.kind {
            Kind::Java(b) => b.proc.signal(signal),
            Kind::Ours(b) => b.signal(signal),
        }
    }

    /// SIGKILL and reap it.
    pub fn kill(&mut self) {
        match &mut self.kind {
            Kind::Java(b) => {
                b.proc.signal(libc::SIGKILL);
                b.proc.stop(Duration::from_secs(10));
            }
            Kind::Ours(b) => b.kill(),
        }
    }

    /// Starts it again on its configuration and store (after a kill or a
    /// stop).
    pub fn start(&mut self) {
        match &mut self.kind {
            Kind::Java(b) => b.restart(),
            Kind::Ours(b) => b.start(),
        }
    }

    /// SIGTERM; each member writes its DLedger checkpoint on the way out.
    /// Ours must exit with status 0 within 20 s (else this panics with its
    /// logs); Java's JVM exits with 143 after its shutdown hooks (30 s).
    pub fn stop(&mut self) {
        match &mut self.kind {
            Kind::Java(b) => {
                b.proc.stop(Duration::from_secs(30));
            }
            Kind::Ours(b) => {
                if let Err(e) = b.stop_cleanly(Duration::from_secs(20)) {
                    panic!("{e}\n{}", self.logs());
                }
            }
        }
    }

    /// The last lines of each of its starts.
    pub fn logs(&self) -> String {
        match &self.kind {
            Kind::Java(b) => format!("===== n{} (Java) =====\n{}", self.n, b.logs()),
            Kind::Ours(b) => b.logs(self.log_lines),
        }
    }
}

/// A running group with its name server and Java client.
pub struct Group {
    pub nodes: Vec<Node>,
    /// The DLedger links with [`Spec::mesh`].
    pub mesh: Option<ProxyMesh>,
    pub java: JavaClient,
    /// The Java client's home.
    pub home: PathBuf,
    pub spec: Spec,
    /// Every member's own DLedger port.
    dl_ports: Vec<u16>,
    rt: tokio::runtime::Runtime,
    pub ns: OurNamesrv,
}

impl Group {
    /// Our name server and the members of `spec`, started (our members in
    /// `<name server dir>/dledger/n<n>`); waits for nothing.
    pub fn start(spec: Spec) -> Group {
        let ns = OurNamesrv::start();
        let java = java_client(spec.version).snapshot(ns.dir.path());
        let home = ns.client_home("java");
        let root = ns.dir.path().join("dledger");
        let dl_ports: Vec<u16> = (0..MEMBERS).map(|_| free_port()).collect();
        let mesh = spec.mesh.then(|| {
            ProxyMesh::start(
                &dl_ports
                    .iter()
                    .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], *p)))
                    .collect::<Vec<_>>(),
            )
            .expect("proxy mesh")
        });
        // Member n's view: itself on its own port, every peer directly or
        // through the proxy of the link n -> peer.
        let peers = |n: usize| {
            (0..MEMBERS)
                .map(|i| match &mesh {
                    Some(mesh) if i != n => format!("n{i}-{}", mesh.addr(n, i)),
                    _ => format!("n{i}-127.0.0.1:{}", dl_ports[i]),
                })
                .collect::<Vec<_>>()
                .join(";")
        };
        let mut nodes = Vec::new();
        for n in 0..MEMBERS {
            let keys = spec.dledger_keys(n, &peers(n));
            if spec.java[n] {
                let jb = JavaBroker::launch(spec.version, &ns.addr, &keys);
                assert_eq!(jb.broker_name, spec.name);
                nodes.push(Node {
                    n,
                    addr: jb.addr.clone(),
                    kind: Kind::Java(jb),
                    log_lines: spec.log_lines,
                });
                continue;
            }
            let dir = root.join(format!("n{n}"));
            std::fs::create_dir_all(&dir).expect("node dir");
            let port = free_broker_port();
            std::fs::write(
                dir.join("broker.conf"),
                format!(
                    "listenPort={port}\nnamesrvAddr={ns}\nbrokerIP1=127.0.0.1\n\
                     bindAddress=127.0.0.1\nstorePathRootDir={store}\nmaxHashSlotNum=50000\n\
                     maxIndexNum=200000\n{TEST_BROKER_KEYS}{keys}{extra}",
                    ns = ns.addr,
                    store = dir.join("store").display(),
                    extra = spec.ours_extra,
                ),
            )
            .expect("write broker.conf");
            let mut broker = BrokerProcess::new(&format!("n{n}"), dir);
            broker.start();
            nodes.push(Node {
                n,
                addr: format!("127.0.0.1:{port}"),
                kind: Kind::Ours(broker),
                log_lines: spec.log_lines,
            });
        }
        Group {
            nodes,
            mesh,
            java,
            home,
            spec,
            dl_ports,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            ns,
        }
    }

    /// The last lines of every start of every member, and the name
    /// server's.
    pub fn logs(&self) -> String {
        let mut s = self
            .nodes
            .iter()
            .map(Node::logs)
            .collect::<Vec<_>>()
            .join("\n");
        s.push_str(&format!(
            "\n----- name server (last 40 lines) -----\n{}",
            tail_lines(&self.ns.logs(), 40)
        ));
        s
    }

    /// The broker ids the name server lists for the group: id → address.
    pub fn route(&self) -> BTreeMap<i64, String> {
        cluster_info(&self.ns.addr)
            .and_then(|info| info.broker_addr_table.get(self.spec.name).cloned())
            .map(|bd| bd.broker_addrs)
            .unwrap_or_default()
    }

    /// The member the name server routes as master (id 0).
    pub fn master(&self) -> Option<usize> {
        self.master_in(&self.route())
    }

    fn master_in(&self, route: &BTreeMap<i64, String>) -> Option<usize> {
        let m = route.get(&0)?;
        self.nodes.iter().position(|n| &n.addr == m)
    }

    /// Polls the group's route until `found` returns a value, for at most
    /// `timeout`; panics with the route and the logs.
    fn wait_route<T>(
        &self,
        what: &str,
        timeout: Duration,
        found: impl Fn(&BTreeMap<i64, String>) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let route = self.route();
            if let Some(t) = found(&route) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; route {route:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits ([`Spec::master_timeout`]) until the name server routes a
    /// master accepted by `ok`; its index.
    pub fn wait_master(&self, what: &str, ok: impl Fn(usize) -> bool) -> usize {
        self.wait_master_within(what, self.spec.master_timeout, ok)
    }

    /// [`Group::wait_master`] for `timeout`.
    pub fn wait_master_within(
        &self,
        what: &str,
        timeout: Duration,
        ok: impl Fn(usize) -> bool,
    ) -> usize {
        self.wait_route(&format!("no master ({what})"), timeout, |route| {
            self.master_in(route).filter(|m| ok(*m))
        })
    }

    /// Waits ([`Spec::slave_timeout`]) until member `i` is routed as slave
    /// `i + 1` (selfId number + 1).
    pub fn wait_slave(&self, i: usize) {
        let id = i as i64 + 1;
        self.wait_route(
            &format!("n{i} never registered as slave {id}"),
            self.spec.slave_timeout,
            |route| (route.get(&id) == Some(&self.nodes[i].addr)).then_some(()),
        );
    }

    /// [`Group::wait_slave`] for every member but `master`.
    pub fn wait_slaves(&self, master: usize) {
        for i in (0..self.nodes.len()).filter(|i| *i != master) {
            self.wait_slave(i);
        }
    }

    /// Waits for a master (any member), then for the two others as slaves;
    /// the master's index.
    pub fn wait_formed(&self, what: &str) -> usize {
        let m = self.wait_master(what, |_| true);
        self.wait_slaves(m);
        m
    }

    /// Creates `topic` (4 queues) on member `on` with mqadmin.
    pub fn create_topic(&self, topic: &str, on: usize) {
        let addr = &self.nodes[on].addr;
        if let Err(e) = self
            .java
            .update_topic_on_broker(&self.home, &self.ns.addr, topic, 4, addr)
        {
            panic!("updateTopic {topic} on n{on} {addr}: {e}\n{}", self.logs());
        }
    }

    /// Waits (40 s each) until every member's topic table holds `topic`.
    pub fn wait_topic_everywhere(&self, topic: &str) {
        for node in &self.nodes {
            wait_until(
                &format!("n{} holds topic {topic}", node.n),
                Duration::from_secs(40),
                || {
                    request_body(&node.addr, request_code::GET_ALL_TOPIC_CONFIG).is_some_and(|b| {
                        String::from_utf8_lossy(&b).contains(&format!("\"{topic}\""))
                    })
                },
            );
        }
    }

    /// compat.StoreDriver `produce-until` of `topic` for `seconds` (with
    /// `threads` sender threads, else the driver's default), printing one
    /// `ACK` line per acknowledged send to `producer.out`.
    pub fn produce_until(&self, topic: &str, seconds: u32, threads: Option<usize>) -> Proc {
        let seconds = seconds.to_string();
        let threads = threads.map(|t| t.to_string());
        let mut args = vec![
            "produce-until",
            self.ns.addr.as_str(),
            topic,
            seconds.as_str(),
        ];
        args.extend(threads.as_deref());
        self.java.spawn(
            &self.home,
            "compat.StoreDriver",
            &args,
            self.ns.dir.path().join("producer.out"),
        )
    }

    /// compat.FailoverConsumer: a push consumer of `topic` in consumer
    /// group `group` for `seconds`, printing one `GOT` line per delivery to
    /// `consumer.out`.
    pub fn push_consumer(&self, topic: &str, group: &str, seconds: u32) -> Proc {
        self.java.spawn(
            &self.home,
            "compat.FailoverConsumer",
            &[&self.ns.addr, topic, group, &seconds.to_string()],
            self.ns.dir.path().join("consumer.out"),
        )
    }

    /// Waits (`timeout`) until `producer` printed `more` acknowledgements
    /// beyond its current count; it must keep running meanwhile.
    pub fn wait_acks(&self, producer: &mut Proc, more: usize, what: &str, timeout: Duration) {
        let target = acked(producer) + more;
        let deadline = Instant::now() + timeout;
        loop {
            assert!(
                producer.is_running(),
                "{what}: producer exited:\n{}\n{}",
                tail_lines(&producer.log_text(), 50),
                self.logs()
            );
            let n = acked(producer);
            if n >= target {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {n} of {target} acknowledgements after {timeout:?}; route {:?}\n\
                 producer:\n{}\n{}",
                self.route(),
                tail_lines(&producer.log_text(), 30),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// compat.StoreDriver `dump`: pulls every queue of `topic` as consumer
    /// group `group` (waiting up to `wait_secs` for the queues) through the
    /// current master; its output (`MSG` lines, `DUMPED n`).
    pub fn dump(&self, topic: &str, group: &str, wait_secs: u32, timeout: Duration) -> String {
        text(&self.java.run(
            &self.home,
            "compat.StoreDriver",
            &["dump", &self.ns.addr, topic, group, &wait_secs.to_string()],
            timeout,
        ))
    }

    /// Stops `producer` (10 s), then waits (120 s) until the push consumer
    /// got every message the producer acknowledged (redeliveries are only
    /// counted) and stops it; the producer's output and the acknowledged
    /// keys.
    pub fn stop_and_wait_delivered(
        &self,
        producer: &mut Proc,
        consumer: &mut Proc,
    ) -> (String, Vec<String>) {
        producer.stop(Duration::from_secs(10));
        let sent = producer.log_text();
        let errors = sent.lines().filter(|l| l.starts_with("ERR ")).count();
        let keys = acked_keys(&sent);
        let delivered = wait_delivered(consumer, &keys, Duration::from_secs(120), || self.logs());
        consumer.stop(Duration::from_secs(10));
        let redelivered: usize = delivered.values().map(|c| c - 1).sum();
        eprintln!(
            "{} acknowledged ({errors} failed sends); push consumer got them all: {} \
             deliveries, {redelivered} redeliveries",
            keys.len(),
            delivered.values().sum::<usize>()
        );
        (sent, keys)
    }

    /// Every member's DLedger checkpoint: (endIndex, committedIndex).
    pub fn checkpoints(&self) -> Vec<Option<(LogIndex, LogIndex)>> {
        self.nodes
            .iter()
            .map(|n| dledger_files::checkpoint(&n.dledger_dir()))
            .collect()
    }

    /// [`Node::stop`] for every member.
    pub fn stop_all(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
    }

    /// After [`Group::stop_all`]: the lowest committed index of the members'
    /// DLedger checkpoints must cover `acked` entries, and every member's
    /// data log must hold the same bytes up to the end of that entry. A
    /// member `may_lack` accepts may have left no checkpoint (it is compared
    /// on the others' committed prefix); any other must have one. Returns
    /// the committed index.
    pub fn assert_same_committed_prefix(
        &self,
        acked: usize,
        may_lack: impl Fn(usize) -> bool,
    ) -> LogIndex {
        let cps = self.checkpoints();
        eprintln!("checkpoints (endIndex, committedIndex): {cps:?}");
        for (i, cp) in cps.iter().enumerate() {
            assert!(
                cp.is_some() || may_lack(i),
                "n{i} wrote no DLedger checkpoint\n{}",
                self.logs()
            );
        }
        let committed = cps
            .iter()
            .flatten()
            .map(|c| c.1)
            .min()
            .unwrap_or(LogIndex::NONE);
        assert!(
            committed.get() + 1 >= acked as i64,
            "checkpoints {cps:?} do not cover {acked} acknowledged entries\n{}",
            self.logs()
        );
        let dirs: Vec<PathBuf> = self.nodes.iter().map(Node::dledger_dir).collect();
        let end = dledger_files::same_committed_prefix(&dirs, committed)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()));
        eprintln!(
            "committed prefix: {} entries, {end} bytes, identical on all three",
            committed.get() + 1
        );
        committed
    }

    // ------------------------------------------------- DLedger leadership

    /// `n0-127.0.0.1:port;...`: every member's own DLedger address.
    pub fn client_peers(&self) -> String {
        self.dl_ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("n{i}-127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(";")
    }

    fn dledger_client(&self) -> DLedgerClient {
        DLedgerClient::new(self.spec.name, &self.client_peers()).expect("client")
    }

    /// The DLedger leader every running member names.
    pub fn dledger_leader(&self) -> Option<usize> {
        let client = self.dledger_client();
        let views: Vec<Option<String>> = self
            .nodes
            .iter()
            .filter(|n| n.pid().is_some())
            .map(|n| {
                self.rt
                    .block_on(client.metadata(&n.id()))
                    .and_then(|m| m.base.leader_id)
            })
            .collect();
        let first = views.first()?.clone()?;
        if views.iter().all(|v| v.as_deref() == Some(first.as_str())) {
            self.nodes.iter().position(|n| n.id() == first)
        } else {
            None
        }
    }

    /// The current term of member `i`, read without side effects: a
    /// heartbeat claiming term 0 from another member is answered 403 with
    /// the term.
    pub fn term_of(&self, i: usize) -> Option<i64> {
        let other = self.nodes[(i + 1) % self.nodes.len()].id();
        dledger_term(
            &self.rt,
            format!("127.0.0.1:{}", self.dl_ports[i]),
            self.spec.name,
            self.nodes[i].id(),
            other,
        )
    }

    /// Hands DLedger leadership to `to` (LEADERSHIP_TRANSFER to the current
    /// leader, retried for 120 s: DLedger's transfer is best effort) and
    /// waits until the name server routes `to` as master.
    pub fn transfer(&self, to: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let client = self.dledger_client();
        let mut attempts = Vec::new();
        loop {
            match self.dledger_leader() {
                Some(l) if l == to => break,
                Some(l) => {
                    let term = self.term_of(l).unwrap_or(-1);
                    let r = self.rt.block_on(client.leadership_transfer(
                        &self.nodes[l].id(),
                        &self.nodes[to].id(),
                        term,
                    ));
                    attempts.push(format!("n{l}->n{to} term {term}: {}", r.base.code));
                    if r.base.code == 200 {
                        let until = Instant::now() + Duration::from_secs(10);
                        while Instant::now() < until && self.dledger_leader() != Some(to) {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        continue;
                    }
                }
                None => {}
            }
            assert!(
                Instant::now() < deadline,
                "no transfer to n{to}: {attempts:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!("leadership to n{to}: {attempts:?}");
        self.wait_master(&format!("n{to} after the transfer"), |m| m == to);
    }
}
