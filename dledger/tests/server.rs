//! Three of our DLedger servers on loopback: election, replication through the
//! client API, leader failover with no acknowledged entry lost, and the
//! peer-port error paths.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dledger::config::DLedgerConfig;
use dledger::core::message::{ResponseCode, Role};
use dledger::protocol::{
    request_frame, AppendEntryRequest, AppendEntryResponse, Base, Body, GetEntriesRequest,
    GetEntriesResponse, MetadataRequest, MetadataResponse, RequestCode,
};
use dledger::server::{DLedgerClient, DLedgerServer, PeerClient, ServerOptions};
use dledger::store::StoreConfig;
use dledger::{EntryPos, LogIndex};
use remoting::RemotingCommand;

const GROUP: &str = "g1";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

struct Group {
    dir: tempfile::TempDir,
    peers: String,
    ids: Vec<String>,
    servers: BTreeMap<String, DLedgerServer>,
    fast: bool,
}

impl Group {
    async fn start(n: usize, fast: bool) -> Group {
        let ids: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
        let peers = ids
            .iter()
            .map(|id| format!("{id}-127.0.0.1:{}", free_port()))
            .collect::<Vec<_>>()
            .join(";");
        let mut g = Group {
            dir: tempfile::tempdir().expect("temp dir"),
            peers,
            ids: ids.clone(),
            servers: BTreeMap::new(),
            fast,
        };
        for id in ids {
            g.start_node(&id).await;
        }
        g
    }

    async fn start_node(&mut self, id: &str) {
        // `fast`: our default timers; otherwise Java's.
        let mut config = DLedgerConfig::new(GROUP, id, &self.peers).expect("config");
        if !self.fast {
            config.use_java_timers();
        }
        let mut store = StoreConfig::new(self.dir.path(), id);
        store.mapped_file_size_for_entry_data = 1 << 20;
        store.mapped_file_size_for_entry_index = 32 * 4096;
        let mut opts = ServerOptions::new(config, store);
        opts.bind = Some("127.0.0.1".parse().expect("ip"));
        let server = DLedgerServer::start(opts).await.expect("start server");
        self.servers.insert(id.to_owned(), server);
    }

    async fn stop(&mut self, id: &str) {
        if let Some(s) = self.servers.remove(id) {
            s.shutdown().await;
        }
    }

    /// Waits for one leader that every running node follows in the same term.
    async fn wait_leader(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let states: Vec<_> = self.servers.values().map(|s| s.role()).collect();
            let leaders: Vec<_> = self
                .servers
                .iter()
                .filter(|(_, s)| s.role().role == Role::Leader)
                .map(|(id, _)| id.clone())
                .collect();
            if let [leader] = leaders.as_slice() {
                let term = self.servers[leader].role().term;
                if states
                    .iter()
                    .all(|s| s.term == term && s.leader_id.as_deref() == Some(leader.as_str()))
                {
                    return leader.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no stable leader after {timeout:?}: {states:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn client(&self) -> DLedgerClient {
        // Only the running members, as an operator would list them.
        let peers = self
            .peers
            .split(';')
            .filter(|p| {
                p.split_once('-')
                    .is_some_and(|(id, _)| self.servers.contains_key(id))
            })
            .collect::<Vec<_>>()
            .join(";");
        DLedgerClient::new(GROUP, &peers).expect("client")
    }

    /// Waits until every running node has committed `upto` and holds `want`.
    async fn wait_replicated(&self, want: &[(i64, Vec<u8>)], timeout: Duration) {
        let upto = want.last().map_or(-1, |(i, _)| *i);
        let deadline = Instant::now() + timeout;
        for (id, s) in &self.servers {
            loop {
                let l = s.ledger().await.expect("ledger");
                if l.committed_index >= LogIndex(upto) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{id} stuck at {l:?}, want {upto}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            for (index, body) in want {
                let e = s
                    .get_committed(LogIndex(*index))
                    .await
                    .expect("read")
                    .unwrap_or_else(|| panic!("{id} has no committed entry {index}"));
                assert_eq!(&e.body[..], &body[..], "{id} entry {index}");
            }
        }
        // Identical entries everywhere, field by field (pos included).
        let mut first: Option<Vec<dledger::entry::Entry>> = None;
        for (id, s) in &self.servers {
            let mut entries = Vec::new();
            for i in 0..=upto {
                entries.push(
                    s.get_committed(LogIndex(i))
                        .await
                        .expect("read")
                        .expect("entry"),
                );
            }
            // The range read gives the same entries, in pieces of 3, and
            // nothing past the committed index.
            let mut ranged = Vec::new();
            while (ranged.len() as i64) <= upto {
                let piece = s
                    .get_committed_range(LogIndex(ranged.len() as i64), 3)
                    .await
                    .expect("range read");
                assert!(!piece.is_empty() && piece.len() <= 3, "{id}: {piece:?}");
                ranged.extend(piece);
            }
            for (a, b) in entries.iter().zip(&ranged) {
                assert!(a.same_as(b), "{id} range read differs at {}", a.index);
            }
            let committed = s.ledger().await.expect("ledger").committed_index;
            assert!(s
                .get_committed_range(committed.next(), 3)
                .await
                .expect("range read")
                .is_empty());
            match &first {
                None => first = Some(entries),
                Some(f) => {
                    for (a, b) in f.iter().zip(&entries) {
                        assert!(a.same_as(b), "{id} differs at {}: {a:?} vs {b:?}", a.index);
                    }
                }
            }
        }
    }
}

async fn append_n(
    client: &mut DLedgerClient,
    prefix: &str,
    n: usize,
    timeout: Duration,
) -> Vec<(i64, Vec<u8>)> {
    let mut acked = Vec::new();
    for i in 0..n {
        let body = format!("{prefix}-{i}").into_bytes();
        let deadline = Instant::now() + timeout;
        loop {
            let r = client.append(Bytes::from(body.clone())).await;
            if r.base.code == ResponseCode::Success.code() {
                assert!(r.index >= 0 && r.pos >= 0, "{r:?}");
                acked.push((r.index, body.clone()));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "append {prefix}-{i} kept failing: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_replicate_and_fail_over() {
    let mut g = Group::start(3, true).await;
    let leader = g.wait_leader(Duration::from_secs(20)).await;

    let mut client = g.client();
    let mut acked = append_n(&mut client, "a", 30, Duration::from_secs(10)).await;
    let indexes: Vec<i64> = acked.iter().map(|(i, _)| *i).collect();
    assert_eq!(
        indexes,
        (0..30).collect::<Vec<_>>(),
        "indexes are dense from 0"
    );
    g.wait_replicated(&acked, Duration::from_secs(10)).await;

    // GET answers on the leader only; the entry is the one appended.
    let c = g.client();
    let r = c.get_from(&leader, 3).await.expect("get on leader");
    assert_eq!(r.base.code, 200);
    assert_eq!(r.entries.len(), 1);
    assert_eq!(r.entries[0].body.as_deref(), Some(&b"a-3"[..]));
    let follower = g
        .ids
        .iter()
        .find(|i| **i != leader)
        .expect("follower")
        .clone();
    let r = c.get_from(&follower, 3).await.expect("get on follower");
    assert_eq!(r.base.code, ResponseCode::NotLeader.code());
    assert_eq!(r.base.leader_id.as_deref(), Some(leader.as_str()));

    // Kill the leader: the other two elect a new one and appends go on.
    g.stop(&leader).await;
    let new_leader = g.wait_leader(Duration::from_secs(20)).await;
    assert_ne!(new_leader, leader);
    let mut client = g.client();
    acked.extend(append_n(&mut client, "b", 20, Duration::from_secs(15)).await);
    g.wait_replicated(&acked, Duration::from_secs(10)).await;

    // The old leader comes back as a follower and catches up.
    g.start_node(&leader).await;
    let back = g.wait_leader(Duration::from_secs(20)).await;
    assert_eq!(g.servers.len(), 3);
    let mut client = g.client();
    acked.extend(append_n(&mut client, "c", 5, Duration::from_secs(10)).await);
    g.wait_replicated(&acked, Duration::from_secs(15)).await;
    let _ = back;
    for id in g.ids.clone() {
        g.stop(&id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_default_timers_elect_and_replicate() {
    let mut g = Group::start(3, false).await;
    let leader = g.wait_leader(Duration::from_secs(25)).await;
    let mut client = g.client();
    let mut acked = append_n(&mut client, "d", 5, Duration::from_secs(10)).await;
    g.wait_replicated(&acked, Duration::from_secs(10)).await;
    // Failover at Java's pace: 6 s without heartbeats, then a vote round.
    // The followers' last heartbeat came at most one interval (2 s) before
    // the stop, so no new leader may appear sooner than 6 - 2 = 4 s after it.
    let stopped = Instant::now();
    g.stop(&leader).await;
    let new_leader = g.wait_leader(Duration::from_secs(20)).await;
    assert_ne!(new_leader, leader);
    assert!(
        stopped.elapsed() >= Duration::from_millis(4000),
        "followers waited {:?}, less than maxHeartBeatLeak x heartBeatTimeIntervalMs",
        stopped.elapsed()
    );
    let mut client = g.client();
    acked.extend(append_n(&mut client, "e", 5, Duration::from_secs(10)).await);
    g.wait_replicated(&acked, Duration::from_secs(10)).await;
    for id in g.ids.clone() {
        g.stop(&id).await;
    }
}

async fn raw(addr: &str, code: RequestCode, body: &[u8]) -> RemotingCommand {
    let peer = PeerClient::new(addr);
    let cmd = RemotingCommand::request(code.code()).with_body(Bytes::copy_from_slice(body));
    peer.call(cmd, Duration::from_secs(3))
        .await
        .expect("answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_port_answers_like_java() {
    let mut g = Group::start(1, true).await;
    let leader = g.wait_leader(Duration::from_secs(10)).await;
    let addr = g.servers[&leader].local_addr().to_string();

    // METADATA: peers and leader; header code 200, outcome in the body.
    let req = MetadataRequest {
        base: Base {
            group: Some(GROUP.into()),
            remote_id: Some("n0".into()),
            ..Base::default()
        },
    };
    let resp = PeerClient::new(addr.clone())
        .call(
            request_frame(RequestCode::Metadata, &req),
            Duration::from_secs(3),
        )
        .await
        .expect("metadata");
    assert_eq!(resp.code, 200);
    assert!(resp.ext_fields.is_none() || resp.ext_fields.as_ref().is_some_and(|e| e.is_empty()));
    let m = MetadataResponse::from_json(&resp.body).expect("metadata body");
    assert_eq!(m.base.leader_id.as_deref(), Some("n0"));
    assert_eq!(
        m.peers.expect("peers").get("n0").map(String::as_str),
        Some(g.peers.split_once('-').expect("addr").1)
    );

    // Wrong remoteId → 401, wrong group → 400, both with header code 200.
    for (remote, group, want) in [("n9", GROUP, 401), ("n0", "other", 400)] {
        let req = AppendEntryRequest {
            base: Base {
                group: Some(group.into()),
                remote_id: Some(remote.into()),
                ..Base::default()
            },
            body: Some(Bytes::from_static(b"x")),
        };
        let resp = raw(&addr, RequestCode::Append, &req.to_json()).await;
        assert_eq!(resp.code, 200);
        let r = AppendEntryResponse::from_json(&resp.body).expect("body");
        assert_eq!(r.base.code, want);
        assert_eq!(r.base.remote_id.as_deref(), Some(remote));
    }

    // A one-node group commits at once.
    let req = AppendEntryRequest {
        base: Base {
            group: Some(GROUP.into()),
            remote_id: Some("n0".into()),
            ..Base::default()
        },
        body: Some(Bytes::from_static(b"solo")),
    };
    let r =
        AppendEntryResponse::from_json(&raw(&addr, RequestCode::Append, &req.to_json()).await.body)
            .expect("append");
    assert_eq!((r.base.code, r.index, r.pos), (200, 0, 0));
    assert_eq!(r.base.leader_id.as_deref(), Some("n0"));

    // GET beyond the end → 410.
    let req = GetEntriesRequest {
        base: Base {
            group: Some(GROUP.into()),
            remote_id: Some("n0".into()),
            ..Base::default()
        },
        begin_index: Some(5),
        ..GetEntriesRequest::default()
    };
    let r = GetEntriesResponse::from_json(&raw(&addr, RequestCode::Get, &req.to_json()).await.body)
        .expect("get");
    assert_eq!(r.base.code, ResponseCode::IndexOutOfRange.code());

    // Bad bodies: SYSTEM_ERROR with a remark, the server stays up.
    for code in [
        RequestCode::Vote,
        RequestCode::HeartBeat,
        RequestCode::Push,
        RequestCode::LeadershipTransfer,
        RequestCode::Append,
        RequestCode::Get,
        RequestCode::Metadata,
    ] {
        for body in [&b""[..], b"{", b"[1]", br#"{"term":"x"}"#, b"\xff"] {
            let resp = raw(&addr, code, body).await;
            assert_eq!(resp.code, 1, "{code:?} {body:?}");
            assert!(resp.remark.is_some());
        }
    }
    // PULL is not served (0.3.1.2's handler is unusable) → request code not supported.
    let resp = raw(&addr, RequestCode::Pull, b"{}").await;
    assert_eq!(resp.code, 3);

    // Still serving.
    let r = AppendEntryResponse::from_json(
        &raw(
            &addr,
            RequestCode::Append,
            &AppendEntryRequest {
                base: Base {
                    group: Some(GROUP.into()),
                    remote_id: Some("n0".into()),
                    ..Base::default()
                },
                body: Some(Bytes::from_static(b"again")),
            }
            .to_json(),
        )
        .await
        .body,
    )
    .expect("append");
    assert_eq!((r.base.code, r.index), (200, 1));
    g.stop("n0").await;
}

/// Local appends (the broker's path): the outcome carries every entry's
/// position, also for a batch whose last entry rolled into the next data
/// file; the committed reader returns each body at its position; an append
/// fenced to another term is refused and appends nothing; a lone leader
/// holds its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_appends_answer_every_position_and_are_fenced_to_a_term() {
    let g = Group::start(1, true).await;
    let leader = g.wait_leader(Duration::from_secs(20)).await;
    let server = &g.servers[&leader];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.holds_leader_lease() {
        assert!(
            Instant::now() < deadline,
            "a lone leader never held its lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let term = server.role().term;
    // 3 x 400 KiB in 1 MiB data files: the third entry opens the next file.
    let bodies: Vec<Bytes> = (0..3u8)
        .map(|i| Bytes::from(vec![i + 1; 400 * 1024]))
        .collect();
    let a = server
        .queue_append(bodies.clone(), Some(term))
        .expect("queue")
        .outcome()
        .await
        .expect("outcome");
    assert_eq!(a.response.header.code, 200, "{:?}", a.response);
    assert_eq!(a.positions.len(), 3);
    assert_eq!(
        a.positions[2],
        EntryPos(a.response.pos),
        "the last is Java's answer"
    );
    assert_ne!(
        a.positions[0].get() >> 20,
        a.positions[2].get() >> 20,
        "the batch spans two data files"
    );
    let reader = server.committed_reader();
    for (i, (pos, body)) in a.positions.iter().zip(&bodies).enumerate() {
        let e = server
            .get_committed(LogIndex(a.response.index - 2 + i as i64))
            .await
            .expect("get")
            .expect("committed");
        assert_eq!(EntryPos(e.pos), *pos, "entry {i}");
        let read = reader
            .read(dledger::entry::body_pos(*pos), body.len())
            .expect("committed body readable");
        assert_eq!(&read[..], &body[..], "entry {i}");
    }
    // Fenced to a term this member is not in: refused, nothing appended.
    let before = server.ledger().await.expect("ledger").end_index;
    let refused = server
        .queue_append(vec![Bytes::from_static(b"x")], Some(term.next()))
        .expect("queued")
        .outcome()
        .await
        .expect("outcome");
    assert_eq!(refused.response.header.code, ResponseCode::NotLeader.code());
    assert!(refused.positions.is_empty());
    assert_eq!(server.ledger().await.expect("ledger").end_index, before);
}

/// Polls `ok` over the figures of `id` (10 s).
async fn wait_figures(
    g: &Group,
    id: &str,
    what: &str,
    ok: impl Fn(&dledger::server::LedgerFigures) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let f = g.servers[id].figures();
        if ok(&f) {
            return;
        }
        assert!(Instant::now() < deadline, "{id}: {what}: {f:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The read-only figures the broker's metrics export: committed and end
/// index, and on the leader each peer's lag, which grows while a peer is
/// down and closes once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_follow_a_stopped_peer() {
    let mut g = Group::start(3, true).await;
    let leader = g.wait_leader(Duration::from_secs(20)).await;
    let mut client = g.client();
    let acked = append_n(&mut client, "f", 10, Duration::from_secs(10)).await;
    g.wait_replicated(&acked, Duration::from_secs(10)).await;
    wait_figures(&g, &leader, "every peer caught up", |f| {
        f.end_index == 9
            && f.committed_index == 9
            && f.peer_watermarks.len() == 2
            && f.peer_watermarks.iter().all(|(_, w)| *w == 9)
    })
    .await;
    let followers: Vec<String> = g.ids.iter().filter(|i| **i != leader).cloned().collect();
    for f in &followers {
        wait_figures(&g, f, "a follower's view", |x| {
            x.committed_index == 9 && x.peer_watermarks.iter().all(|(_, w)| *w == -1)
        })
        .await;
    }

    let down = followers[0].clone();
    g.stop(&down).await;
    let mut client = g.client();
    append_n(&mut client, "g", 10, Duration::from_secs(10)).await;
    wait_figures(
        &g,
        &leader,
        "the stopped peer lags, the other does not",
        |f| {
            f.committed_index == 19
                && f.peer_watermarks
                    .iter()
                    .all(|(id, w)| if *id == down { *w <= 9 } else { *w == 19 })
        },
    )
    .await;

    g.start_node(&down).await;
    wait_figures(&g, &leader, "the peer is back and caught up", |f| {
        f.peer_watermarks.iter().all(|(_, w)| *w == 19)
    })
    .await;
    for id in g.ids.clone() {
        g.stop(&id).await;
    }
}
