//! DLedger against the official Java DLedger 0.3.1.2 (the jar RocketMQ
//! 4.9.7+/5.x ship): the JSON bodies both ways, and mixed Raft groups of Java
//! nodes (`compat.DLedgerWire server`, built on `DLedgerServer` from the jar)
//! and our `dledger` binary on loopback.
//!
//! Run: `cargo build --release --bins && cargo test --release -p compat-tests --test dledger_java_group`.
//! `DLEDGER_NODE_LOG` sets `RUST_LOG` for our nodes (default `info`), e.g.
//! `info,dledger::server::driver=debug` to see failed peer calls.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use compat_tests::{
    bin_dir, dledger_term, file_tail, free_port, java_client, serial, text, workspace_root,
    JavaClient, Proc,
};
use dledger::core::Storage;
use dledger::protocol::*;
use dledger::server::DLedgerClient;
use dledger::store::{DLedgerStore, StoreConfig};

const JAVA: &str = "5.3.3";

fn golden_lines() -> Vec<(String, String)> {
    let path = workspace_root().join("dledger/tests/golden/protocol.tsv");
    let text = std::fs::read_to_string(&path).expect("read protocol.tsv");
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, j)| (n.to_owned(), j.to_owned()))
        .collect()
}

/// Parses `json` with our decoder for the class named by `name` (`Class[.case]`)
/// and re-encodes it with our encoder.
fn our_round_trip(name: &str, json: &[u8]) -> Vec<u8> {
    fn rt<B: Body>(json: &[u8]) -> Vec<u8> {
        B::from_json(json).expect("our decoder").to_json()
    }
    match name.split('.').next().unwrap_or_default() {
        "MetadataRequest" => rt::<MetadataRequest>(json),
        "MetadataResponse" => rt::<MetadataResponse>(json),
        "AppendEntryRequest" => rt::<AppendEntryRequest>(json),
        "AppendEntryResponse" => rt::<AppendEntryResponse>(json),
        "GetEntriesRequest" => rt::<GetEntriesRequest>(json),
        "GetEntriesResponse" => rt::<GetEntriesResponse>(json),
        "VoteRequest" => rt::<VoteRequest>(json),
        "VoteResponse" => rt::<VoteResponse>(json),
        "HeartBeatRequest" => rt::<HeartBeatRequest>(json),
        "HeartBeatResponse" => rt::<HeartBeatResponse>(json),
        "PushEntryRequest" => rt::<PushEntryRequest>(json),
        "PushEntryResponse" => rt::<PushEntryResponse>(json),
        "LeadershipTransferRequest" => rt::<LeadershipTransferRequest>(json),
        "LeadershipTransferResponse" => rt::<LeadershipTransferResponse>(json),
        other => panic!("unknown class {other}"),
    }
}

fn home(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(&p).expect("create home");
    p
}

/// Java writes every body exactly as the checked-in vectors (which our
/// encoder reproduces, `dledger/tests/protocol.rs`), and Java parses what our
/// encoder writes back into the same objects.
///
/// Run on both client classpaths: fastjson 1.2.69 (RocketMQ 4.9.x) and 1.2.83 (5.x).
#[test]
fn json_bodies_match_java_both_ways() {
    let _g = serial();
    for version in compat_tests::JAVA_VERSIONS {
        json_both_ways(java_client(version));
    }
}

fn json_both_ways(java: JavaClient) {
    let dir = tempfile::tempdir().expect("temp dir");
    let java = java.snapshot(dir.path());
    let h = home(dir.path(), "wire");

    // Java -> vectors.
    let out = java.run(
        &h,
        "compat.DLedgerWire",
        &["golden"],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "golden failed:\n{}", text(&out));
    let java_lines: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, j)| (n.to_owned(), j.to_owned()))
        .collect();
    let golden = golden_lines();
    assert_eq!(
        java_lines, golden,
        "DLedger on the {} classpath no longer prints protocol.tsv",
        java.version
    );

    // Ours -> Java: our encoding of every case, plus minimal shapes Java must
    // read the same way (no derived keys, enums by ordinal, absent defaults).
    let mut input = String::new();
    let mut expected = Vec::new();
    for (name, json) in &golden {
        let ours = our_round_trip(name, json.as_bytes());
        assert_eq!(
            String::from_utf8_lossy(&ours),
            *json,
            "{name}: our round trip"
        );
        input.push_str(&format!("{name}\t{}\n", String::from_utf8_lossy(&ours)));
        // Java fills a received `batchEntry` through its getter, bypassing
        // addEntry, so the getter-only totalSize reads 0 on the receiver.
        let want = if name == "PushEntryRequest.batch" {
            json.replace(r#""totalSize":104"#, r#""totalSize":0"#)
        } else {
            json.clone()
        };
        expected.push((name.clone(), want));
    }
    let find = |n: &str| {
        golden
            .iter()
            .find(|(g, _)| g == n)
            .map(|(_, j)| j.clone())
            .expect("case")
    };
    let minimal = [
        (
            "PushEntryRequest.commit",
            r#"{"code":200,"commitIndex":10,"group":"g1","leaderId":"n0","localId":"n0","remoteId":"n1","term":4,"type":1}"#,
        ),
        (
            "VoteResponse",
            r#"{"group":"g1","leaderId":"n1","localId":"n1","remoteId":"n2","term":8,"voteResult":7}"#,
        ),
        ("AppendEntryResponse.default", "{}"),
    ];
    for (name, json) in minimal {
        input.push_str(&format!("{name}\t{json}\n"));
        expected.push((name.to_owned(), find(name)));
    }
    let file = dir.path().join("ours.tsv");
    std::fs::write(&file, input).expect("write input");
    let out = java.run(
        &h,
        "compat.DLedgerWire",
        &["parse", file.to_str().expect("utf-8 path")],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "parse failed:\n{}", text(&out));
    let parsed: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, j)| (n.to_owned(), j.to_owned()))
        .collect();
    assert_eq!(parsed.len(), expected.len(), "{}", text(&out));
    for ((n, got), (_, want)) in parsed.iter().zip(&expected) {
        assert_eq!(
            got, want,
            "{n}: Java ({}) read our JSON differently",
            java.version
        );
    }
}

// ------------------------------------------------------------- mixed groups

const GROUP: &str = "mixed";
/// Both implementations must roll data files at the same size (same `pos`).
const DATA_FILE_SIZE: usize = 8 << 20;
const INDEX_FILE_SIZE: usize = 32 * 16 * 1024;
/// Short heartbeats on every node so failover takes seconds, not 6+ (not
/// shorter: a loaded machine then delays heartbeats past the 3 x interval
/// follower timeout and leadership moves on its own).
const HEARTBEAT_MS: &str = "1000";

enum Impl {
    Java,
    Ours,
}

struct Node {
    id: String,
    imp: Impl,
    proc: Option<Proc>,
}

struct Mixed {
    dir: tempfile::TempDir,
    java: JavaClient,
    peers: String,
    nodes: Vec<Node>,
    rt: tokio::runtime::Runtime,
}

impl Mixed {
    fn start(java: JavaClient, kinds: &[Impl]) -> Mixed {
        let peers = (0..kinds.len())
            .map(|i| format!("n{i}-127.0.0.1:{}", free_port()))
            .collect::<Vec<_>>()
            .join(";");
        let dir = tempfile::tempdir().expect("temp dir");
        let java = java.snapshot(dir.path());
        let mut m = Mixed {
            dir,
            java,
            peers,
            nodes: Vec::new(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
        };
        for (i, k) in kinds.iter().enumerate() {
            m.nodes.push(Node {
                id: format!("n{i}"),
                imp: match k {
                    Impl::Java => Impl::Java,
                    Impl::Ours => Impl::Ours,
                },
                proc: None,
            });
            m.launch(i);
        }
        m
    }

    fn store_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("store-{}", self.nodes[i].id))
    }

    fn launch(&mut self, i: usize) {
        let id = self.nodes[i].id.clone();
        let store = self.store_dir(i);
        let log = self.dir.path().join(format!("{id}.log"));
        let proc = match self.nodes[i].imp {
            Impl::Java => {
                let h = home(self.dir.path(), &format!("home-{id}"));
                let data = DATA_FILE_SIZE.to_string();
                let index = INDEX_FILE_SIZE.to_string();
                self.java.spawn(
                    &h,
                    "compat.DLedgerWire",
                    &[
                        "server",
                        "--group",
                        GROUP,
                        "--id",
                        &id,
                        "--peers",
                        &self.peers,
                        "--store-base-dir",
                        store.to_str().expect("utf-8 path"),
                        "--heartbeat-ms",
                        HEARTBEAT_MS,
                        "--data-file-size",
                        &data,
                        "--index-file-size",
                        &index,
                    ],
                    log,
                )
            }
            Impl::Ours => {
                let mut c = Command::new(bin_dir().join("dledger"));
                c.args([
                    "server",
                    "--group",
                    GROUP,
                    "--id",
                    &id,
                    "--peers",
                    &self.peers,
                ])
                .arg("--store-base-dir")
                .arg(&store)
                // Java's timers on every member (only the heartbeat shortened).
                .args([
                    "--bind",
                    "127.0.0.1",
                    "--java-timers",
                    "--heartbeat-interval-ms",
                    HEARTBEAT_MS,
                ])
                .arg("--data-file-size")
                .arg(DATA_FILE_SIZE.to_string())
                .arg("--index-file-size")
                .arg(INDEX_FILE_SIZE.to_string())
                .env(
                    "RUST_LOG",
                    std::env::var("DLEDGER_NODE_LOG").unwrap_or_else(|_| "info".into()),
                );
                Proc::spawn(&format!("dledger {id}"), c, log)
            }
        };
        self.nodes[i].proc = Some(proc);
    }

    fn running(&mut self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].proc.as_mut().is_some_and(|p| p.is_running()))
            .collect()
    }

    fn client(&self) -> DLedgerClient {
        DLedgerClient::new(GROUP, &self.peers).expect("client")
    }

    /// Waits until every running node names the same running leader.
    fn wait_leader(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let client = self.client();
        loop {
            let running = self.running();
            let views: Vec<Option<String>> = running
                .iter()
                .map(|i| {
                    self.rt
                        .block_on(client.metadata(&self.nodes[*i].id))
                        .and_then(|m| m.base.leader_id)
                })
                .collect();
            if let Some(Some(l)) = views.first() {
                if views.iter().all(|v| v.as_deref() == Some(l.as_str())) {
                    if let Some(i) = running.iter().copied().find(|i| self.nodes[*i].id == *l) {
                        return i;
                    }
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "no agreed leader after {timeout:?}: {views:?}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Appends through `leader`; returns (term, index, pos). If leadership
    /// moved meanwhile (404 NOT_LEADER: nothing was appended) it follows the
    /// new leader; any other outcome but 200 fails the test.
    fn append_via(&mut self, leader: usize, body: &[u8]) -> (i64, i64, i64) {
        let mut leader = leader;
        for _ in 0..5 {
            let id = self.nodes[leader].id.clone();
            let req = AppendEntryRequest {
                base: Base {
                    group: Some(GROUP.into()),
                    remote_id: Some(id.clone()),
                    ..Base::default()
                },
                body: Some(body.to_vec().into()),
            };
            let peer = dledger::server::PeerClient::new(self.addr(leader));
            let resp = self
                .rt
                .block_on(peer.call(
                    request_frame(RequestCode::Append, &req),
                    Duration::from_secs(5),
                ))
                .expect("append answered");
            let r = AppendEntryResponse::from_json(&resp.body).expect("append body");
            if r.base.code == ResponseCode::NotLeader.code() {
                eprintln!("append via {id}: not leader any more");
                leader = self.wait_leader(Duration::from_secs(30));
                continue;
            }
            assert_eq!(r.base.code, 200, "append via {id}: {r:?}\n{}", self.logs());
            return (r.base.term, r.index, r.pos);
        }
        panic!("leadership kept moving\n{}", self.logs());
    }

    fn addr(&self, i: usize) -> String {
        self.peers
            .split(';')
            .nth(i)
            .and_then(|p| p.split_once('-'))
            .map(|(_, a)| a.to_owned())
            .expect("peer address")
    }

    /// GET through `leader` (DLedger serves GET on the leader only).
    fn get(&self, leader: usize, index: i64) -> Option<EntryJson> {
        let client = self.client();
        let r = self
            .rt
            .block_on(client.get_from(&self.nodes[leader].id, index))?;
        (r.base.code == 200)
            .then(|| r.entries.into_iter().next())
            .flatten()
    }

    /// The current term of node `i`, read without side effects: a heartbeat
    /// claiming term 0 from another member is answered 403 with the term.
    fn term_of(&self, i: usize) -> Option<i64> {
        let other = self.nodes[(i + 1) % self.nodes.len()].id.clone();
        dledger_term(
            &self.rt,
            self.addr(i),
            GROUP,
            self.nodes[i].id.clone(),
            other,
        )
    }

    /// GET on `node`, which must lead; if leadership moved away on its own
    /// (a late heartbeat), it is handed back first.
    fn get_on(&mut self, node: usize, index: i64) -> Option<EntryJson> {
        for _ in 0..3 {
            if let Some(e) = self.get(node, index) {
                return Some(e);
            }
            if self.wait_leader(Duration::from_secs(30)) != node {
                eprintln!("n{node} lost leadership; handing it back");
                self.transfer(node);
            }
        }
        None
    }

    /// Transfers leadership to `to` with LEADERSHIP_TRANSFER sent to the
    /// current leader, and waits until everyone agrees. DLedger's transfer
    /// is best effort (the transferee may lose its vote round, or not be up
    /// yet), so a failed attempt is retried, as an operator would.
    fn transfer(&mut self, to: usize) -> usize {
        // A stopped transferee can never take over (its leader answers 302
        // NETWORK_ERROR, as Java's does): that is a bug in the caller.
        assert!(
            self.running().contains(&to),
            "transfer to n{to}, which is not running"
        );
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut attempts = Vec::new();
        loop {
            let leader = self.wait_leader(Duration::from_secs(30));
            if leader == to {
                return to;
            }
            let term = self.term_of(leader).unwrap_or(-1);
            let client = self.client();
            let r = self.rt.block_on(client.leadership_transfer(
                &self.nodes[leader].id,
                &self.nodes[to].id,
                term,
            ));
            attempts.push(format!(
                "n{leader}->n{to} term {term}: code {}",
                r.base.code
            ));
            if r.base.code == 200 {
                let until = Instant::now() + Duration::from_secs(10);
                while Instant::now() < until {
                    if self.wait_leader(Duration::from_secs(30)) == to {
                        eprintln!("leadership transfer: {attempts:?}");
                        return to;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            assert!(
                Instant::now() < deadline,
                "no transfer to n{to}: {attempts:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.nodes[i].proc.take() {
            p.stop(Duration::ZERO);
        }
    }

    /// Stops our node `i` cleanly and reads its log from its store files.
    fn our_entries(&mut self, i: usize, upto: i64) -> Vec<dledger::entry::Entry> {
        if let Some(mut p) = self.nodes[i].proc.take() {
            p.stop_cleanly(Duration::from_secs(10))
                .expect("our node stops on SIGTERM");
        }
        let mut cfg = StoreConfig::new(self.store_dir(i), self.nodes[i].id.clone());
        cfg.mapped_file_size_for_entry_data = DATA_FILE_SIZE;
        cfg.mapped_file_size_for_entry_index = INDEX_FILE_SIZE;
        let store = DLedgerStore::open(cfg).expect("open our store");
        assert!(
            store.end_index() >= upto,
            "our store ends at {}",
            store.end_index()
        );
        (0..=upto).map(|ix| store.get(ix).expect("entry")).collect()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            out.push_str(&format!(
                "----- {} ({}) -----\n{}\n",
                n.id,
                match n.imp {
                    Impl::Java => "java",
                    Impl::Ours => "ours",
                },
                file_tail(&self.dir.path().join(format!("{}.log", n.id)), 200)
            ));
        }
        out
    }
}

fn same(java: &EntryJson, ours: &dledger::entry::Entry) -> bool {
    java.index == ours.index
        && java.term == ours.term
        && java.pos == ours.pos
        && java.magic == ours.magic
        && java.size == ours.size()
        && java.body.as_deref() == Some(&ours.body[..])
}

/// (a) two Java nodes and ours: whatever is appended through the Java leader
/// lands identically (index, term, pos, body) on our node; then the Java
/// leader is killed and the rest of the group recovers.
#[test]
fn two_java_one_ours() {
    let _g = serial();
    let java = java_client(JAVA);
    let mut m = Mixed::start(java, &[Impl::Java, Impl::Java, Impl::Ours]);
    let mut leader = m.wait_leader(Duration::from_secs(60));
    if matches!(m.nodes[leader].imp, Impl::Ours) {
        leader = m.transfer(0);
    }
    // Appended by Java's own client (DLedgerClient) through the Java leader.
    let h = home(m.dir.path(), "java-client");
    let out = m.java.run(
        &h,
        "compat.DLedgerWire",
        &[
            "append",
            "--group",
            GROUP,
            "--peers",
            &m.peers,
            "--data",
            "from-java",
            "--count",
            "20",
        ],
        Duration::from_secs(120),
    );
    let acks = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("RESULT ") && l.contains(r#""code":200"#))
        .count();
    assert_eq!(acks, 20, "Java appends:\n{}\n{}", text(&out), m.logs());
    let (_, last, _) = m.append_via(leader, b"last");

    // Kill the Java leader (n0 or n1, whichever won); the other Java node
    // and ours elect a new leader.
    let old = leader;
    assert!(matches!(m.nodes[old].imp, Impl::Java));
    let other_java = if old == 0 { 1 } else { 0 };
    eprintln!("killing the Java leader n{old}");
    m.kill(old);
    let new_leader = m.wait_leader(Duration::from_secs(60));
    assert_ne!(new_leader, old);
    let (_, mut after, _) = m.append_via(new_leader, b"after-failover");
    assert_eq!(
        after,
        last + 1,
        "no entry lost or duplicated across the failover"
    );
    // Make sure a Java leader hands over to our node below: if ours won the
    // election, pass leadership to the surviving Java node first.
    let ours = 2;
    let mut java_leader = new_leader;
    if new_leader == ours {
        java_leader = m.transfer(other_java);
        (_, after, _) = m.append_via(java_leader, b"via-java-again");
    }
    let leader_view: Vec<EntryJson> = (0..=after)
        .map(|i| {
            m.get_on(java_leader, i)
                .unwrap_or_else(|| panic!("GET {i} from n{java_leader}\n{}", m.logs()))
        })
        .collect();
    let from_java = leader_view
        .iter()
        .filter(|e| e.body.as_deref() == Some(&b"from-java"[..]))
        .count();
    assert_eq!(from_java, 20, "every entry Java acknowledged survives");

    // Our node serves the same log once the Java leader hands over to it.
    let ours = m.transfer(ours);
    for want in &leader_view {
        assert_eq!(
            m.get_on(ours, want.index).as_ref(),
            Some(want),
            "GET {} from our node",
            want.index
        );
    }
    // And its files hold exactly those entries.
    let stored = m.our_entries(ours, after);
    for (j, o) in leader_view.iter().zip(&stored) {
        assert!(
            same(j, o),
            "entry {} differs: java {j:?} ours {o:?}",
            j.index
        );
    }
}

/// (b) one Java node and two of ours: our node leads (by election or
/// transfer), entries appended through it (by Java's client) reach the Java
/// node, which then takes leadership and serves them with Java's `get`;
/// (c) the Java leader is killed and our two nodes carry on.
#[test]
fn one_java_two_ours() {
    let _g = serial();
    let java = java_client(JAVA);
    let mut m = Mixed::start(java, &[Impl::Java, Impl::Ours, Impl::Ours]);
    let mut leader = m.wait_leader(Duration::from_secs(60));
    if matches!(m.nodes[leader].imp, Impl::Java) {
        leader = m.transfer(1);
    }
    let h = home(m.dir.path(), "java-client");
    let out = m.java.run(
        &h,
        "compat.DLedgerWire",
        &[
            "append", "--group", GROUP, "--peers", &m.peers, "--data", "to-ours", "--count", "20",
        ],
        Duration::from_secs(120),
    );
    let acks = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("RESULT ") && l.contains(r#""code":200"#))
        .count();
    assert_eq!(
        acks,
        20,
        "Java client via our leader:\n{}\n{}",
        text(&out),
        m.logs()
    );
    let (_, last, _) = m.append_via(leader, b"last-from-ours");
    let ours_view: Vec<EntryJson> = (0..=last)
        .map(|i| {
            m.get_on(leader, i)
                .unwrap_or_else(|| panic!("GET {i}\n{}", m.logs()))
        })
        .collect();

    // Hand leadership to the Java node: it must hold the same log.
    let java_leader = m.transfer(0);
    // Java's own `get` command (a JVM each) for the first and last few
    // entries; our client's GET to the Java leader for all of them below.
    for want in ours_view
        .iter()
        .filter(|e| e.index < 3 || e.index + 3 > last)
    {
        let h = home(m.dir.path(), "java-get");
        let index = want.index.to_string();
        // DLedgerClient answers 500 when its RPC threw (it then refreshes its
        // metadata); like a user, try that once or twice more.
        let mut tries = Vec::new();
        let got = loop {
            let out = m.java.run(
                &h,
                "compat.DLedgerWire",
                &[
                    "get", "--group", GROUP, "--peers", &m.peers, "--index", &index,
                ],
                Duration::from_secs(60),
            );
            let line = String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("RESULT ").map(str::to_owned))
                .unwrap_or_else(|| panic!("java get printed nothing:\n{}", text(&out)));
            let got = GetEntriesResponse::from_json(line.as_bytes()).expect("GetEntriesResponse");
            tries.push(line);
            if got.base.code != ResponseCode::InternalError.code() || tries.len() == 3 {
                break got;
            }
        };
        assert_eq!(got.base.code, 200, "{tries:?}");
        if tries.len() > 1 {
            eprintln!("java get {index}: {tries:?}");
        }
        assert_eq!(
            got.entries.first(),
            Some(want),
            "entry {} on the Java node",
            want.index
        );
    }
    for want in &ours_view {
        assert_eq!(
            m.get_on(java_leader, want.index).as_ref(),
            Some(want),
            "GET {} from Java",
            want.index
        );
    }

    // Our command-line client against the Java leader.
    let cli = |args: &[&str]| {
        let mut c = Command::new(bin_dir().join("dledger"));
        c.args(args).args(["--group", GROUP, "--peers", &m.peers]);
        compat_tests::run_with_timeout(c, Duration::from_secs(30))
    };
    let out = cli(&["append", "--data", "via-our-cli", "--count", "2"]);
    assert!(out.status.success(), "dledger append:\n{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(stdout.matches(r#""code":200"#).count(), 2, "{stdout}");
    let index = (last + 2).to_string();
    let out = cli(&["get", "--index", &index]);
    assert!(out.status.success(), "dledger get:\n{}", text(&out));
    let want_line = format!("Get Result index:{index} via-our-cli");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&want_line),
        "{}",
        text(&out)
    );
    let cli_entry = m
        .get(java_leader, last + 2)
        .expect("entry appended by our CLI");

    // (c) Kill the Java leader: our two nodes elect one of themselves.
    m.kill(java_leader);
    let new_leader = m.wait_leader(Duration::from_secs(60));
    assert!(matches!(m.nodes[new_leader].imp, Impl::Ours));
    let (_, next, _) = m.append_via(new_leader, b"after-java-died");
    assert_eq!(next, last + 3);
    assert_eq!(m.get_on(new_leader, last + 2).as_ref(), Some(&cli_entry));
    for want in &ours_view {
        assert_eq!(m.get_on(new_leader, want.index).as_ref(), Some(want));
    }

    // The Java node comes back on its old store, missing the newest entries:
    // our leader brings it up to date (COMPARE, then APPEND) and it can lead.
    let mut missed = Vec::new();
    for i in 0..5 {
        let (_, index, _) = m.append_via(new_leader, format!("while-java-down-{i}").as_bytes());
        missed.push(index);
    }
    m.launch(java_leader);
    let (_, end, _) = m.append_via(new_leader, b"java-back");
    let want: Vec<EntryJson> = (last + 2..=end)
        .map(|i| m.get_on(new_leader, i).expect("entry on our leader"))
        .collect();
    let java_again = m.transfer(0);
    assert!(matches!(m.nodes[java_again].imp, Impl::Java));
    for w in &want {
        assert_eq!(
            m.get_on(java_again, w.index).as_ref(),
            Some(w),
            "entry {} on the restarted Java node",
            w.index
        );
    }
    assert!(missed.iter().all(|i| *i > next && *i < end));
}
