//! Raft paper Figure 8, built by hand on five nodes (S1..S5 = n0..n4).
//!
//! Start (after the paper's steps a–b): every log holds entry 0 of term 1;
//! n0 and n1 also hold entry 1 of term 2 (n0 led term 2, reached only n1);
//! n4 led term 3 and holds entry 1 of term 3 alone; n2, n3 voted for n4 in
//! term 3.
//! Step c: n4 is down; n0 is elected for term 4 and replicates its term-2
//! entry to n2 — a majority (n0, n1, n2) holds it.
//! Step d: n0 goes down; n4 comes back, is elected for term 5 (its last
//! entry's term 3 beats the others' 2) and overwrites index 1 everywhere.
//!
//! Java 0.3.1.2 counts the term-2 entry committed in step c (its watermarks
//! are per leader term, not entry term), so an entry that was committed is
//! later replaced — Java's documented behaviour (docs/protocol/dledger.md §2.11). No append was
//! ever *acknowledged* for it (acks are only for the leader's own-term
//! entries), so no acknowledged write is lost. With `strict_commit` the
//! term-2 entry is never counted committed.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;

use bytes::Bytes;
use dledger::config::{DLedgerConfig, Peer};
use dledger::core::message::{ResponseCode, Role};
use dledger::core::{Action, HardState, InboundId, Node, OutboundId, Storage};
use dledger::sim::MemStorage;

const N: usize = 5;

fn cfg(me: usize, strict: bool, elector: bool) -> DLedgerConfig {
    DLedgerConfig {
        group: "g".into(),
        self_id: format!("n{me}"),
        peers: (0..N)
            .map(|i| Peer {
                id: format!("n{i}"),
                addr: format!("h:{i}"),
            })
            .collect(),
        strict_commit: strict,
        // Only the node we want to lead campaigns: the others vote and
        // follow, but after their start-up round schedule the next one never.
        min_vote_interval_ms: if elector { 300 } else { 1 << 40 },
        max_vote_interval_ms: if elector { 1000 } else { 1 << 40 },
        ..DLedgerConfig::java_defaults()
    }
}

fn disk(terms: &[i64], term: i64, vote: Option<&str>) -> MemStorage {
    let mut s = MemStorage::new(4096);
    for (i, t) in terms.iter().enumerate() {
        // same body/size per (index, term) on every node → same pos
        s.append_leader(*t, Bytes::from(format!("i{i}-t{t}")))
            .unwrap();
    }
    s.save_hard_state(&HardState {
        term,
        vote: vote.map(str::to_string),
    })
    .unwrap();
    s
}

/// Synchronous network: every message is delivered at once to nodes that are up.
struct Cluster {
    nodes: Vec<Option<Node<MemStorage>>>,
    disks: Vec<Option<MemStorage>>,
    now: u64,
    strict: bool,
    acked: Vec<(i64, i64, Bytes)>,
    committed_seen: Vec<Vec<(i64, i64)>>,
}

impl Cluster {
    fn new(strict: bool, disks: Vec<MemStorage>) -> Self {
        Cluster {
            nodes: (0..N).map(|_| None).collect(),
            disks: disks.into_iter().map(Some).collect(),
            now: 1_000_000,
            strict,
            acked: Vec::new(),
            committed_seen: vec![Vec::new(); N],
        }
    }

    fn up(&mut self, i: usize, elector: bool) {
        let d = self.disks[i].take().expect("disk");
        self.nodes[i] = Some(Node::new(
            cfg(i, self.strict, elector),
            d,
            i as u64 + 1,
            self.now,
        ));
    }

    fn down(&mut self, i: usize) {
        let n = self.nodes[i].take().expect("up");
        self.disks[i] = Some(n.into_storage());
    }

    fn node(&self, i: usize) -> &Node<MemStorage> {
        self.nodes[i].as_ref().expect("up")
    }

    /// Delivers until quiet.
    fn pump(&mut self) {
        let mut q: VecDeque<(usize, Action)> = VecDeque::new();
        let mut inbound: Vec<(usize, u64, usize, OutboundId)> = Vec::new();
        let mut next_in = 1u64;
        for _ in 0..100_000 {
            for i in 0..N {
                if let Some(n) = self.nodes[i].as_mut() {
                    for a in n.drain_actions() {
                        q.push_back((i, a));
                    }
                }
            }
            let Some((i, a)) = q.pop_front() else { return };
            if std::env::var("F8_TRACE").is_ok() {
                eprintln!(
                    "n{i} {}",
                    format!("{a:?}").chars().take(200).collect::<String>()
                );
            }
            let now = self.now;
            match a {
                Action::Send { id, to, request } => {
                    let to: usize = to[1..].parse().unwrap();
                    if let Some(dst) = self.nodes[to].as_mut() {
                        inbound.push((to, next_in, i, id));
                        dst.handle_request(InboundId(next_in), request, now);
                        next_in += 1;
                    } else if let Some(src) = self.nodes[i].as_mut() {
                        src.handle_send_failure(id, now);
                    }
                }
                Action::Respond { id, response } => {
                    let p = inbound
                        .iter()
                        .position(|x| x.0 == i && x.1 == id.0)
                        .unwrap();
                    let (_, _, from, out) = inbound.remove(p);
                    if let Some(src) = self.nodes[from].as_mut() {
                        src.handle_response(out, response, now);
                    }
                }
                Action::AppendOutcome {
                    term, index, code, ..
                } => {
                    if code == ResponseCode::Success {
                        let e = self.node(i).storage().get(index).unwrap();
                        self.acked.push((term, index, e.body));
                    }
                }
                Action::CommitAdvanced { index } => {
                    let e = self.node(i).storage().get(index).unwrap();
                    self.committed_seen[i].push((index, e.term));
                }
                Action::Abandon { .. } | Action::RoleChanged { .. } => {}
            }
        }
        panic!("network did not go quiet");
    }

    /// Advances time in 10 ms steps, ticking every node, for `ms`.
    fn run_for(&mut self, ms: u64) {
        for _ in 0..ms / 10 {
            self.now += 10;
            for i in 0..N {
                if let Some(n) = self.nodes[i].as_mut() {
                    n.tick(self.now);
                }
            }
            self.pump();
        }
    }

    fn entry_term(&self, node: usize, index: i64) -> i64 {
        let st = match &self.nodes[node] {
            Some(n) => n.storage(),
            None => self.disks[node].as_ref().unwrap(),
        };
        st.get(index).map(|e| e.term).unwrap_or(-1)
    }
}

fn figure8(strict: bool) -> Cluster {
    let disks = vec![
        disk(&[1, 2], 2, Some("n0")),
        disk(&[1, 2], 2, Some("n0")),
        disk(&[1], 3, Some("n4")),
        disk(&[1], 3, Some("n4")),
        disk(&[1, 3], 3, Some("n4")),
    ];
    let mut c = Cluster::new(strict, disks);
    // Step c: n4 down, n0 campaigns.
    c.up(0, true);
    for i in 1..4 {
        c.up(i, false);
    }
    c.pump();
    c.run_for(15_000);
    assert_eq!(c.node(0).role(), Role::Leader);
    assert_eq!(c.node(0).term(), 4);
    for i in 0..3 {
        assert_eq!(
            c.entry_term(i, 1),
            2,
            "n{i} holds the term-2 entry at index 1"
        );
    }
    c
}

fn step_d(c: &mut Cluster) {
    c.down(0);
    // The voters restart too so they forget n0 as leader (volatile state);
    // their disks keep term 4 and the vote for n0.
    for i in 1..4 {
        c.down(i);
        c.up(i, false);
    }
    c.up(4, true);
    c.pump();
    c.run_for(20_000);
    assert_eq!(c.node(4).role(), Role::Leader);
    assert!(c.node(4).term() >= 5, "term {}", c.node(4).term());
}

#[test]
fn java_rule_commits_earlier_term_entry_that_is_later_overwritten() {
    let mut c = figure8(false);
    // Java counts the term-2 entry committed in term 4 …
    assert_eq!(c.node(0).storage().committed_index(), 1);
    assert!(
        c.committed_seen[0].contains(&(1, 2)),
        "{:?}",
        c.committed_seen[0]
    );
    step_d(&mut c);
    // … and n4 overwrites it with its own term-3 entry on the majority.
    for i in 1..5 {
        assert_eq!(c.entry_term(i, 1), 3, "n{i} index 1");
    }
    // A committed index that a Java follower (n1) also applied now holds another entry.
    assert!(
        c.committed_seen[1].iter().any(|&(i, t)| i == 1 && t == 2),
        "{:?}",
        c.committed_seen[1]
    );
    // Nothing was acknowledged for the overwritten entry: acks are own-term only.
    assert!(c.acked.is_empty());
    // A write acknowledged by the new leader is then on a majority and kept.
    let ok = c.nodes[4]
        .as_mut()
        .unwrap()
        .propose(Bytes::from_static(b"after"), c.now)
        .unwrap();
    c.pump();
    c.run_for(100);
    assert_eq!(c.acked.len(), 1);
    assert_eq!((c.acked[0].0, c.acked[0].1), (ok.term, ok.index));
}

#[test]
fn strict_rule_does_not_count_the_earlier_term_entry() {
    let mut c = figure8(true);
    assert_eq!(
        c.node(0).storage().committed_index(),
        -1,
        "term-2 entry not committed by counting"
    );
    assert!(c.committed_seen.iter().all(|v| v.is_empty()));
    // Committing needs an entry of term 4; once it is on a majority, n4 can no
    // longer win (its log is behind) — the Raft §5.4.2 argument.
    let ok = c.nodes[0]
        .as_mut()
        .unwrap()
        .propose(Bytes::from_static(b"t4"), c.now)
        .unwrap();
    c.pump();
    c.run_for(100);
    assert_eq!(c.node(0).storage().committed_index(), ok.index);
    assert_eq!(c.acked.len(), 1);
    c.down(0);
    for i in 1..4 {
        c.down(i);
        c.up(i, false);
    }
    c.up(4, true);
    c.pump();
    c.run_for(20_000);
    assert_ne!(c.node(4).role(), Role::Leader, "a stale log cannot win");
    for i in 1..3 {
        assert_eq!(c.entry_term(i, 1), 2);
        assert_eq!(c.entry_term(i, 2), 4);
    }
}
