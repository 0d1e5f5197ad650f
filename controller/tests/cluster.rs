//! Controllers in-process on loopback: the broker registration flow against
//! a 3-node group, followers' 2007, leader failover and replay, restart from
//! the store, and controller-triggered elections with 1008 to a fake broker.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use controller::{Controller, ControllerConfig, ControllerHandle};
use remoting::{Connection, RemotingCommand, Router};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const RPC: Duration = Duration::from_secs(6);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

fn config(dir: &Path, peers: &str, id: &str) -> ControllerConfig {
    let mut c = ControllerConfig::default();
    c.apply([
        ("controllerDLegerGroup", "cg"),
        ("controllerDLegerPeers", peers),
        ("controllerDLegerSelfId", id),
        ("controllerStorePath", dir.join("store").to_str().unwrap()),
        (
            "configStorePath",
            dir.join(format!("{id}.properties")).to_str().unwrap(),
        ),
        ("mappedFileSize", "1048576"),
        ("mappedFileSizeForEntryIndex", "65536"),
        ("bindAddress", "127.0.0.1"),
        ("scanNotActiveBrokerInterval", "200"),
        ("scanInactiveMasterInterval", "300"),
        ("dLegerJavaTimers", "false"),
    ])
    .unwrap();
    c
}

struct Group {
    dir: tempfile::TempDir,
    peers: String,
    ids: Vec<String>,
    nodes: Vec<Option<ControllerHandle>>,
    shutdown: CancellationToken,
}

impl Group {
    async fn start(n: usize) -> Group {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
        let peers = ids
            .iter()
            .map(|id| format!("{id}-127.0.0.1:{}", free_port()))
            .collect::<Vec<_>>()
            .join(";");
        let shutdown = CancellationToken::new();
        let mut g = Group {
            dir,
            peers,
            ids,
            nodes: Vec::new(),
            shutdown,
        };
        for i in 0..n {
            let h = g.start_node(i).await;
            g.nodes.push(Some(h));
        }
        g
    }

    async fn start_node(&self, i: usize) -> ControllerHandle {
        let c = config(self.dir.path(), &self.peers, &self.ids[i]);
        Controller::start(c, self.shutdown.clone()).await.unwrap()
    }

    /// Shuts every node down.
    async fn stop(mut self) {
        self.shutdown.cancel();
        for n in self.nodes.drain(..).flatten() {
            n.shutdown().await;
        }
    }

    fn addr(&self, i: usize) -> String {
        self.peers
            .split(';')
            .nth(i)
            .unwrap()
            .split_once('-')
            .unwrap()
            .1
            .to_owned()
    }

    /// Waits for exactly one serving leader among the running nodes.
    async fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let leaders: Vec<usize> = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.as_ref().is_some_and(|n| n.is_leader()))
                .map(|(i, _)| i)
                .collect();
            if leaders.len() == 1 {
                return leaders[0];
            }
            assert!(Instant::now() < deadline, "no single leader: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn connect(addr: &str) -> Connection {
    Connection::connect(addr, Arc::new(Router::new()))
        .await
        .unwrap()
}

fn req(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
    let mut c = RemotingCommand::request(code);
    for (k, v) in fields {
        c = c.with_ext(*k, *v);
    }
    c
}

async fn call(conn: &Connection, cmd: RemotingCommand) -> RemotingCommand {
    conn.request(cmd, RPC).await.unwrap()
}

fn body_json(r: &RemotingCommand) -> Value {
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    // Quote fastjson's bare numeric keys for serde.
    remoting::body::from_fastjson(text.as_bytes()).unwrap()
}

fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A one-way heartbeat, then a call on the same connection: requests of a
/// connection are dispatched in order, so the heartbeat has been recorded
/// when this returns.
async fn heartbeat(conn: &Connection, name: &str, id: i64, addr: &str, timeout_ms: i64) {
    send_heartbeat(conn, name, id, addr, timeout_ms).await;
    assert_eq!(call(conn, req(1005, &[])).await.code, 0);
}

async fn send_heartbeat(conn: &Connection, name: &str, id: i64, addr: &str, timeout_ms: i64) {
    let id = id.to_string();
    let t = timeout_ms.to_string();
    let cmd = req(
        904,
        &[
            ("clusterName", "c1"),
            ("brokerName", name),
            ("brokerAddr", addr),
            ("brokerId", &id),
            ("epoch", "0"),
            ("maxOffset", "0"),
            ("heartbeatTimeoutMills", &t),
        ],
    );
    conn.oneway(cmd).await.unwrap();
}

/// GET_NEXT_BROKER_ID → APPLY_BROKER_ID → REGISTER_BROKER for one broker.
async fn register(leader: &Connection, name: &str, addr: &str, want_id: i64) -> RemotingCommand {
    let r = call(
        leader,
        req(1012, &[("clusterName", "c1"), ("brokerName", name)]),
    )
    .await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert_eq!(r.ext("nextBrokerId"), Some(want_id.to_string().as_str()));
    let id = want_id.to_string();
    let check = format!("{addr};1726700000000");
    let r = call(
        leader,
        req(
            1013,
            &[
                ("clusterName", "c1"),
                ("brokerName", name),
                ("appliedBrokerId", &id),
                ("registerCheckCode", &check),
            ],
        ),
    )
    .await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let r = call(
        leader,
        req(
            1003,
            &[
                ("clusterName", "c1"),
                ("brokerName", name),
                ("brokerId", &id),
                ("brokerAddress", addr),
            ],
        ),
    )
    .await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    r
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_flow_failover_and_replay() {
    init_log();
    let mut g = Group::start(3).await;
    let l = g.leader().await;
    let f = (l + 1) % 3;
    let leader = connect(&g.addr(l)).await;
    let follower = connect(&g.addr(f)).await;

    // 1005 from any node names the leader.
    let md = call(&follower, req(1005, &[])).await;
    assert_eq!(md.code, 0);
    assert_eq!(md.ext("group"), Some("cg"));
    assert_eq!(md.ext("isLeader"), Some("false"));
    assert_eq!(md.ext("controllerLeaderAddress"), Some(g.addr(l).as_str()));
    assert_eq!(md.ext("controllerLeaderId"), Some(g.ids[l].as_str()));
    let want_peers: String = (0..3).map(|i| format!("n{i}:{};", g.addr(i))).collect();
    assert_eq!(md.ext("peers"), Some(want_peers.as_str()));
    assert_eq!(
        call(&leader, req(1005, &[])).await.ext("isLeader"),
        Some("true")
    );

    // Followers refuse leader-only codes, reads included.
    for code in [1012, 1004, 1006, 1002, 1011] {
        let r = call(&follower, req(code, &[("brokerName", "broker-a")])).await;
        assert_eq!(r.code, 2007, "code {code}");
        assert_eq!(
            r.remark.as_deref(),
            Some("The controller is not in leader state")
        );
    }

    // Broker 1: id, register (no master yet), heartbeat, elect.
    let r = register(&leader, "broker-a", "127.0.0.1:30911", 1).await;
    assert_eq!(
        r.body.as_ref(),
        br#"{"syncStateSet":[],"syncStateSetEpoch":0}"#
    );
    assert_eq!(r.ext("masterBrokerId"), None);
    // Heartbeats go to every controller (liveness is node-local).
    let mut hb = Vec::new();
    for i in 0..3 {
        hb.push(connect(&g.addr(i)).await);
    }
    for c in &hb {
        heartbeat(c, "broker-a", 1, "127.0.0.1:30911", 10_000).await;
    }
    // A heartbeat without brokerId is 2005 (visible when not one-way).
    let r = call(
        &leader,
        req(904, &[("clusterName", "c1"), ("brokerName", "broker-a")]),
    )
    .await;
    assert_eq!(r.code, 2005);
    let r = call(
        &leader,
        req(
            1002,
            &[
                ("clusterName", "c1"),
                ("brokerName", "broker-a"),
                ("brokerId", "1"),
                ("designateElect", "false"),
            ],
        ),
    )
    .await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert_eq!(r.ext("masterBrokerId"), Some("1"));
    assert_eq!(r.ext("masterEpoch"), Some("1"));
    assert_eq!(r.ext("syncStateSetEpoch"), Some("1"));
    assert_eq!(
        r.body.as_ref(),
        &br#"{"brokerMemberGroup":{"brokerAddrs":{1:"127.0.0.1:30911"},"brokerName":"broker-a","cluster":"c1"},"syncStateSet":[1]}"#[..]
    );
    let r = call(&leader, req(1004, &[("brokerName", "broker-a")])).await;
    assert_eq!(r.code, 0);
    assert_eq!(r.ext("masterBrokerId"), Some("1"));
    assert_eq!(r.ext("masterAddress"), Some("127.0.0.1:30911"));
    assert_eq!(r.ext("masterEpoch"), Some("1"));
    assert_eq!(
        r.body.as_ref(),
        br#"{"syncStateSet":[1],"syncStateSetEpoch":1}"#
    );

    // Broker 2 registers and sees the live master; then the SyncStateSet grows.
    let r = register(&leader, "broker-a", "127.0.0.1:30921", 2).await;
    assert_eq!(r.ext("masterBrokerId"), Some("1"));
    assert_eq!(r.ext("masterAddress"), Some("127.0.0.1:30911"));
    for c in &hb {
        heartbeat(c, "broker-a", 2, "127.0.0.1:30921", 10_000).await;
    }
    let alter = req(
        1001,
        &[
            ("brokerName", "broker-a"),
            ("masterBrokerId", "1"),
            ("masterEpoch", "1"),
            ("invokeTime", "0"),
        ],
    )
    .with_body(&br#"{"syncStateSet":[1,2],"syncStateSetEpoch":1}"#[..]);
    let r = call(&leader, alter).await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert_eq!(r.ext("newSyncStateSetEpoch"), Some("2"));
    assert_eq!(
        r.body.as_ref(),
        br#"{"syncStateSet":[1,2],"syncStateSetEpoch":2}"#
    );
    // A malformed request gets an error, not a crash.
    let bad = req(1001, &[("brokerName", "broker-a")]).with_body(&b"{not json"[..]);
    assert_eq!(call(&leader, bad).await.code, 1);
    let bad = req(
        1013,
        &[("brokerName", "broker-a"), ("appliedBrokerId", "x")],
    );
    assert_eq!(call(&leader, bad).await.code, 1);

    let sync_data = req(1006, &[]).with_body(&br#"["broker-a"]"#[..]);
    let r = call(&leader, sync_data.clone()).await;
    assert_eq!(r.code, 0);
    let v = body_json(&r);
    let info = &v["replicasInfoTable"]["broker-a"];
    assert_eq!(info["masterBrokerId"], 1);
    assert_eq!(info["masterEpoch"], 1);
    assert_eq!(info["syncStateSetEpoch"], 2);
    assert_eq!(info["inSyncReplicas"].as_array().unwrap().len(), 2);
    assert_eq!(info["inSyncReplicas"][1]["alive"], true);
    assert_eq!(call(&leader, req(1006, &[])).await.code, 1);

    // Every node applied the same log.
    let want = g.nodes[l].as_ref().unwrap().state();
    wait_until("followers caught up", || {
        g.nodes.iter().all(|n| n.as_ref().unwrap().state() == want)
    })
    .await;

    // The leader goes away: another takes over, replays, serves the same data.
    let old = g.nodes[l].take().unwrap();
    old.shutdown().await;
    let l2 = g.leader().await;
    assert_ne!(l2, l);
    let leader2 = connect(&g.addr(l2)).await;
    let r = call(&leader2, sync_data.clone()).await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let v2 = body_json(&r);
    assert_eq!(v2, v, "1006 after failover");
    assert_eq!(g.nodes[l2].as_ref().unwrap().state(), want);
    // The new leader keeps allocating from the replayed state.
    let r = call(
        &leader2,
        req(1012, &[("clusterName", "c1"), ("brokerName", "broker-a")]),
    )
    .await;
    assert_eq!(r.ext("nextBrokerId"), Some("3"));

    // The old leader restarts from its store and replays to the same state.
    let restarted = g.start_node(l).await;
    g.nodes[l] = Some(restarted);
    wait_until("restarted node replayed", || {
        g.nodes[l].as_ref().unwrap().state() == want
    })
    .await;

    g.shutdown.cancel();
    for n in g.nodes.drain(..).flatten() {
        n.shutdown().await;
    }
}

/// A listening fake broker that records NOTIFY_BROKER_ROLE_CHANGED.
async fn fake_broker(
    stop: CancellationToken,
) -> (String, mpsc::UnboundedReceiver<RemotingCommand>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    let router = Router::new().route(1008, move |_c, cmd: RemotingCommand| {
        let _ = tx.send(cmd);
        async { Ok(RemotingCommand::success()) }
    });
    tokio::spawn(remoting::serve(
        listener,
        Arc::new(router),
        remoting::ServerConfig::default(),
        stop,
    ));
    (addr, rx)
}

async fn next_notify(rx: &mut mpsc::UnboundedReceiver<RemotingCommand>) -> RemotingCommand {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a 1008 in time")
        .expect("fake broker running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_master_is_replaced_and_brokers_notified() {
    init_log();
    let mut g = Group::start(1).await;
    let stop = CancellationToken::new();
    let l = g.leader().await;
    let leader = connect(&g.addr(l)).await;

    // broker-a: the master's channel closes.
    let (a1, _a1_rx) = fake_broker(stop.clone()).await;
    let (a2, mut a2_rx) = fake_broker(stop.clone()).await;
    register(&leader, "broker-a", &a1, 1).await;
    register(&leader, "broker-a", &a2, 2).await;
    let hb1 = connect(&g.addr(l)).await;
    let hb2 = connect(&g.addr(l)).await;
    heartbeat(&hb1, "broker-a", 1, &a1, 60_000).await;
    heartbeat(&hb2, "broker-a", 2, &a2, 60_000).await;
    let elect = |id: &'static str| {
        req(
            1002,
            &[
                ("clusterName", "c1"),
                ("brokerName", "broker-a"),
                ("brokerId", id),
            ],
        )
    };
    let r = call(&leader, elect("1")).await;
    assert_eq!(r.code, 0);
    // The first election notifies the members alive here (both).
    let n = next_notify(&mut a2_rx).await;
    assert_eq!(n.ext("masterBrokerId"), Some("1"));
    // Re-electing with a live master: 2011.
    assert_eq!(call(&leader, elect("2")).await.code, 2011);
    let alter = req(
        1001,
        &[
            ("brokerName", "broker-a"),
            ("masterBrokerId", "1"),
            ("masterEpoch", "1"),
        ],
    )
    .with_body(&br#"{"syncStateSet":[1,2],"syncStateSetEpoch":1}"#[..]);
    assert_eq!(call(&leader, alter).await.code, 0);
    hb1.close();
    let n = next_notify(&mut a2_rx).await;
    assert_eq!(n.ext("masterBrokerId"), Some("2"));
    assert_eq!(n.ext("masterAddress"), Some(a2.as_str()));
    assert_eq!(n.ext("masterEpoch"), Some("2"));
    assert_eq!(n.ext("syncStateSetEpoch"), Some("3"));
    assert_eq!(
        n.body.as_ref(),
        br#"{"syncStateSet":[2],"syncStateSetEpoch":3}"#
    );
    let r = call(&leader, req(1004, &[("brokerName", "broker-a")])).await;
    assert_eq!(r.ext("masterBrokerId"), Some("2"));

    // broker-b: the master's heartbeats stop (short timeout), the slave's go on.
    let (b1, _b1_rx) = fake_broker(stop.clone()).await;
    let (b2, mut b2_rx) = fake_broker(stop.clone()).await;
    register(&leader, "broker-b", &b1, 1).await;
    register(&leader, "broker-b", &b2, 2).await;
    // One channel per broker: an expired broker's channel is closed.
    let hb_b1 = connect(&g.addr(l)).await;
    let hb_b = connect(&g.addr(l)).await;
    heartbeat(&hb_b1, "broker-b", 1, &b1, 800).await;
    heartbeat(&hb_b, "broker-b", 2, &b2, 800).await;
    let r = call(
        &leader,
        req(
            1002,
            &[
                ("clusterName", "c1"),
                ("brokerName", "broker-b"),
                ("brokerId", "1"),
            ],
        ),
    )
    .await;
    assert_eq!(r.code, 0);
    assert_eq!(
        next_notify(&mut b2_rx).await.ext("masterBrokerId"),
        Some("1")
    );
    let alter = req(
        1001,
        &[
            ("brokerName", "broker-b"),
            ("masterBrokerId", "1"),
            ("masterEpoch", "1"),
        ],
    )
    .with_body(&br#"{"syncStateSet":[1,2],"syncStateSetEpoch":1}"#[..]);
    assert_eq!(call(&leader, alter).await.code, 0);
    // Only broker 2 keeps beating, until its notification arrives.
    let beat_stop = CancellationToken::new();
    let beating = {
        let hb_b = hb_b.clone();
        let b2 = b2.clone();
        let beat_stop = beat_stop.clone();
        tokio::spawn(async move {
            for _ in 0..400 {
                send_heartbeat(&hb_b, "broker-b", 2, &b2, 800).await;
                tokio::select! {
                    _ = beat_stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        })
    };
    let n = next_notify(&mut b2_rx).await;
    assert_eq!(n.ext("masterBrokerId"), Some("2"));
    assert_eq!(n.ext("masterEpoch"), Some("2"));
    beat_stop.cancel();
    beating.await.unwrap();

    // Config: 1010 on any node, 1009 refuses the black list and persists.
    let r = call(&leader, req(1010, &[])).await;
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(text.contains("enableElectUncleanMaster=false\n"), "{text}");
    let r = call(
        &leader,
        req(1009, &[]).with_body(&b"configStorePath=/tmp/x"[..]),
    )
    .await;
    assert_eq!(r.code, 16);
    assert_eq!(
        r.remark.as_deref(),
        Some("Can not update config in black list.")
    );
    let r = call(
        &leader,
        req(1009, &[]).with_body(&b"enableElectUncleanMaster=true"[..]),
    )
    .await;
    assert_eq!(r.code, 0);
    assert!(
        g.nodes[l]
            .as_ref()
            .unwrap()
            .config()
            .enable_elect_unclean_master
    );
    let stored = std::fs::read_to_string(g.dir.path().join("n0.properties")).unwrap();
    assert!(stored.contains("enableElectUncleanMaster=true"));

    stop.cancel();
    g.shutdown.cancel();
    for n in g.nodes.drain(..).flatten() {
        n.shutdown().await;
    }
}

/// The timer keys come from the config file: a 3-node group on our fast
/// timers (`dLegerJavaTimers=false`) elects a leader and replaces it well
/// within Java's 6 s of missed heartbeats (3 x 2000 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_timers_from_the_config_file() {
    init_log();
    let dir = tempfile::tempdir().unwrap();
    let ids = ["n0", "n1", "n2"];
    let peers = ids
        .iter()
        .map(|id| format!("{id}-127.0.0.1:{}", free_port()))
        .collect::<Vec<_>>()
        .join(";");
    let shutdown = CancellationToken::new();
    let mut nodes = Vec::new();
    for id in ids {
        let file = dir.path().join(format!("{id}.conf"));
        let store = dir.path().join("store");
        std::fs::write(
            &file,
            format!(
                "controllerDLegerGroup=cg\ncontrollerDLegerPeers={peers}\n\
                 controllerDLegerSelfId={id}\ncontrollerStorePath={}\n\
                 mappedFileSize=1048576\nmappedFileSizeForEntryIndex=65536\n\
                 bindAddress=127.0.0.1\ndLegerJavaTimers=false\n\
                 heartBeatTimeIntervalMs=200\nmaxHeartBeatLeak=3\n",
                store.display()
            ),
        )
        .unwrap();
        let c = ControllerConfig::load_file(&file).unwrap();
        assert_eq!(c.dledger_timers().unwrap(), dledger::config::OUR_TIMERS);
        nodes.push(Some(Controller::start(c, shutdown.clone()).await.unwrap()));
    }
    let mut g = Group {
        dir,
        peers,
        ids: ids.iter().map(|s| s.to_string()).collect(),
        nodes,
        shutdown,
    };
    let l = g.leader().await;
    let old = g.nodes[l].take().unwrap();
    old.shutdown().await;
    let lost = Instant::now();
    let l2 = g.leader().await;
    let took = lost.elapsed();
    assert_ne!(l2, l);
    assert!(
        took < Duration::from_secs(5),
        "failover took {took:?}: not the fast timers"
    );
    g.stop().await;
}

/// 1005 says `isLeader=true` only once the node serves leader-only codes:
/// polled on every node while a group forms, a node that claims leadership
/// answers 1012 with something other than 2007.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_leader_only_when_serving() {
    init_log();
    let g = Group::start(3).await;
    let mut conns = Vec::new();
    for i in 0..3 {
        conns.push(connect(&g.addr(i)).await);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut claims = 0;
    while claims < 20 {
        assert!(Instant::now() < deadline, "no node claimed leadership");
        for (i, c) in conns.iter().enumerate() {
            let md = call(c, req(1005, &[])).await;
            assert_eq!(md.code, 0);
            if md.ext("isLeader") != Some("true") {
                continue;
            }
            claims += 1;
            assert_eq!(md.ext("controllerLeaderId"), Some(g.ids[i].as_str()));
            let r = call(c, req(1012, &[("clusterName", "c1"), ("brokerName", "b")])).await;
            assert_eq!(r.code, 0, "node {i} claimed leadership: {:?}", r.remark);
        }
    }
    g.stop().await;
}

/// A DLedger peer that grants every vote and acknowledges heartbeats but
/// never accepts an entry: a member it votes for becomes DLedger leader and
/// can never commit.
async fn fake_voter(stop: CancellationToken) -> String {
    use dledger::core::message::{
        HeartBeatResponse, Request, RequestCode, Response, VoteResponse, VoteResult,
    };
    use dledger::protocol::convert::{decode_request, encode_response};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let answer = |code: RequestCode| {
        move |_c, cmd: RemotingCommand| {
            let resp = match decode_request(code, &cmd.body) {
                Some(Ok(Request::Vote(v))) => encode_response(&Response::Vote(VoteResponse {
                    header: v.header.clone(),
                    vote_result: VoteResult::Accept,
                })),
                Some(Ok(Request::HeartBeat(h))) => {
                    encode_response(&Response::HeartBeat(HeartBeatResponse {
                        header: h.header.clone(),
                    }))
                }
                // A push gets an answer that is no push response.
                _ => RemotingCommand::response(1).with_remark("no"),
            };
            async move { Ok(resp) }
        }
    };
    let router = Router::new()
        .route(RequestCode::Vote.code(), answer(RequestCode::Vote))
        .route(
            RequestCode::HeartBeat.code(),
            answer(RequestCode::HeartBeat),
        )
        .route(RequestCode::Push.code(), answer(RequestCode::Push));
    tokio::spawn(remoting::serve(
        listener,
        Arc::new(router),
        remoting::ServerConfig::default(),
        stop,
    ));
    addr
}

/// A DLedger leader whose empty entry cannot be applied names itself in
/// `controllerLeaderId` (DLedger's view) but answers `isLeader=false`, and
/// refuses leader-only codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dledger_leader_not_serving_is_not_leader() {
    init_log();
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let voter = fake_voter(stop.clone()).await;
    let own = format!("127.0.0.1:{}", free_port());
    let absent = format!("127.0.0.1:{}", free_port());
    let peers = format!("n0-{own};n1-{voter};n2-{absent}");
    let node = Controller::start(config(dir.path(), &peers, "n0"), stop.clone())
        .await
        .unwrap();
    wait_until("n0 is DLedger leader", || {
        node.dledger().role().role == dledger::core::message::Role::Leader
    })
    .await;
    let conn = connect(&own).await;
    // Several heartbeat periods: the empty entry never commits.
    for _ in 0..10 {
        let md = call(&conn, req(1005, &[])).await;
        assert_eq!(md.ext("controllerLeaderId"), Some("n0"));
        assert_eq!(md.ext("controllerLeaderAddress"), Some(own.as_str()));
        assert_eq!(md.ext("isLeader"), Some("false"));
        assert!(!node.is_leader());
        let r = call(&conn, req(1012, &[("brokerName", "b")])).await;
        assert_eq!(r.code, 2007);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    node.shutdown().await;
}

/// Fast failure detection: with `scanNotActiveBrokerInterval=200` a broker
/// that sent `heartbeatTimeoutMills=1500` and went silent (its channel
/// left open) is dropped, and its channel closed, 1.5-1.7 s after its last
/// heartbeat: right after start-up (the first scan comes after 200 ms, not
/// Java's 2 s) and in steady state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_broker_detected_after_its_timeout() {
    init_log();
    let g = Group::start(1).await;
    let addr = g.addr(0);
    let window = Duration::from_millis(1500)..Duration::from_millis(1850);

    // At start-up: one heartbeat, then silence.
    let early = connect(&addr).await;
    let sent = Instant::now();
    heartbeat(&early, "broker-x", 1, "127.0.0.1:30911", 1500).await;
    tokio::time::timeout(Duration::from_secs(10), early.closed())
        .await
        .expect("silent broker detected");
    let took = sent.elapsed();
    assert!(window.contains(&took), "start-up detection after {took:?}");

    // Steady state: beats every 300 ms for a while, then silence.
    let conn = connect(&addr).await;
    let mut last = Instant::now();
    for _ in 0..8 {
        last = Instant::now();
        heartbeat(&conn, "broker-y", 1, "127.0.0.1:30921", 1500).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!conn.is_closed(), "a beating broker was dropped");
    }
    tokio::time::timeout(Duration::from_secs(10), conn.closed())
        .await
        .expect("silent broker detected");
    let took = last.elapsed();
    assert!(window.contains(&took), "detection after {took:?}");
    g.stop().await;
}

/// Java's `triggerElectMaster` retries every answer but success: a dead
/// master with no eligible replacement gets `electMasterMaxRetryCount` (3)
/// attempts, each answered 2004 and logging a "no master" event, so the
/// master epoch goes from 1 to 4 and then stays (sets without a master are
/// not rescanned).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_master_without_candidate_gets_every_attempt() {
    init_log();
    let g = Group::start(1).await;
    let addr = g.addr(0);
    g.leader().await;
    let leader = connect(&addr).await;
    register(&leader, "broker-c", "127.0.0.1:30931", 1).await;
    register(&leader, "broker-c", "127.0.0.1:30932", 2).await;
    let hb1 = connect(&addr).await;
    let hb2 = connect(&addr).await;
    heartbeat(&hb1, "broker-c", 1, "127.0.0.1:30931", 60_000).await;
    heartbeat(&hb2, "broker-c", 2, "127.0.0.1:30932", 60_000).await;
    let r = call(
        &leader,
        req(
            1002,
            &[
                ("clusterName", "c1"),
                ("brokerName", "broker-c"),
                ("brokerId", "1"),
            ],
        ),
    )
    .await;
    assert_eq!(r.code, 0);
    // Broker 2 is alive but outside the SyncStateSet {1}.
    hb1.close();
    let epoch = || async {
        let r = call(&leader, req(1004, &[("brokerName", "broker-c")])).await;
        assert_eq!(r.code, 0);
        assert_eq!(r.ext("masterBrokerId"), None);
        r.ext("masterEpoch").map(str::to_owned)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = call(&leader, req(1004, &[("brokerName", "broker-c")])).await;
        if r.ext("masterEpoch") == Some("4") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "masterEpoch {:?}",
            r.ext("masterEpoch")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Several inactive-master scan periods (300 ms) later: still 4.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(epoch().await.as_deref(), Some("4"));
    g.stop().await;
}
