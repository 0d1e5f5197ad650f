//! Handler tests for the Raft core: set a state, feed one input, assert the
//! exact outputs (the tables of docs/protocol/dledger.md §2.3–§2.12, Java
//! DLedger 0.3.1.2; the § numbers in the module docs refer to it). One
//! module per table; the set-ups they share live here.

#![allow(clippy::unwrap_used)]

mod candidate;
mod follower;
mod heartbeat;
mod lease;
mod push;
mod quorum;
mod timers;
mod transfer;
mod vote;

use bytes::Bytes;
use dledger::config::{DLedgerConfig, Peer};
use dledger::core::message::*;
use dledger::core::{Action, HardState, InboundId, Node, OutboundId, Storage};
use dledger::sim::MemStorage;

const T0: u64 = 1_000_000;

fn cfg(me: &str, n: usize) -> DLedgerConfig {
    DLedgerConfig {
        group: "g".into(),
        self_id: me.into(),
        peers: (0..n)
            .map(|i| Peer {
                id: format!("n{i}"),
                addr: format!("h:{i}"),
            })
            .collect(),
        ..DLedgerConfig::java_defaults()
    }
}

/// A log whose entry `i` has term `terms[i]`, body `e<i>`.
fn log(terms: &[i64], hard_term: i64, vote: Option<&str>) -> MemStorage {
    let mut s = MemStorage::new(4096);
    for (i, t) in terms.iter().enumerate() {
        s.append_leader(*t, Bytes::from(format!("e{i}"))).unwrap();
    }
    s.save_hard_state(&HardState {
        term: hard_term,
        vote: vote.map(str::to_string),
    })
    .unwrap();
    s
}

fn node_with(cfg: DLedgerConfig, store: MemStorage) -> Node<MemStorage> {
    Node::new(cfg, store, 7, T0)
}

fn passive(mut c: DLedgerConfig) -> DLedgerConfig {
    c.enable_leader_elector = false;
    c
}

fn hdr(from: &str, to: &str, leader: &str, term: i64) -> Header {
    Header {
        group: Some("g".into()),
        remote_id: Some(to.into()),
        local_id: Some(from.into()),
        leader_id: Some(leader.into()),
        term,
        code: 200,
    }
}

fn vote_req(cand: &str, to: &str, term: i64, le_index: i64, le_term: i64) -> Request {
    Request::Vote(VoteRequest {
        header: hdr(cand, to, cand, term),
        ledger_end_index: le_index,
        ledger_end_term: le_term,
    })
}

fn hb(leader: &str, to: &str, term: i64) -> Request {
    Request::HeartBeat(HeartBeatRequest {
        header: hdr(leader, to, leader, term),
    })
}

fn response(actions: &[Action], id: u64) -> Response {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Respond { id: i, response } if i.0 == id => Some(response.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no response for {id} in {actions:?}"))
}

fn vote(n: &mut Node<MemStorage>, req: Request) -> VoteResponse {
    n.handle_request(InboundId(1), req, T0);
    match response(&n.drain_actions(), 1) {
        Response::Vote(v) => v,
        other => panic!("{other:?}"),
    }
}

fn beat(n: &mut Node<MemStorage>, req: Request, now: u64) -> Header {
    n.handle_request(InboundId(1), req, now);
    response(&n.drain_actions(), 1).header().clone()
}

fn sends(actions: &[Action]) -> Vec<(OutboundId, String, Request)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { id, to, request } => Some((*id, to.clone(), request.clone())),
            _ => None,
        })
        .collect()
}

fn vote_resp(result: VoteResult, term: i64) -> Response {
    Response::Vote(VoteResponse {
        header: Header {
            term,
            ..Header::default()
        },
        vote_result: result,
    })
}

/// Follower `me` of `leader` at `term`.
fn follower(me: &str, n: usize, terms: &[i64], term: i64, leader: &str) -> Node<MemStorage> {
    let mut node = node_with(passive(cfg(me, n)), log(terms, term, None));
    assert_eq!(beat(&mut node, hb(leader, me, term), T0).code, 200);
    assert_eq!(node.role(), Role::Follower);
    node
}

/// Leader `n0` at `term` (votes granted by everyone); actions drained.
fn leader(n: usize, terms: &[i64], term: i64, c: Option<DLedgerConfig>) -> Node<MemStorage> {
    let c = c.unwrap_or_else(|| cfg("n0", n));
    let mut node = node_with(c, log(terms, term, None));
    node.tick(T0);
    for (id, _, _) in sends(&node.drain_actions()) {
        node.handle_response(id, vote_resp(VoteResult::Accept, term), T0);
    }
    assert_eq!(node.role(), Role::Leader);
    assert_eq!(node.term(), term);
    node
}

// ----- set-ups shared by several tables ---------------------------------------

/// A 5-node candidate n0 at term 4 that has just sent its vote requests.
fn voting(persisted_vote: Option<&str>) -> (Node<MemStorage>, Vec<OutboundId>) {
    let mut n = node_with(cfg("n0", 5), log(&[1], 4, persisted_vote));
    n.tick(T0);
    let s = sends(&n.drain_actions());
    assert_eq!(s.len(), 4);
    for (_, _, r) in &s {
        assert_eq!(r.header().term, 4, "start-up votes at the persisted term");
    }
    (n, s.into_iter().map(|x| x.0).collect())
}

fn push_resp(code: i32, term: i64, index: Option<i64>, begin: i64, end: i64) -> Response {
    Response::Push(PushEntryResponse {
        header: Header {
            code,
            term,
            ..Header::default()
        },
        index,
        count: 1,
        begin_index: begin,
        end_index: end,
    })
}

/// Leader n0 (3 nodes, log 0..=4 of term 1, term 2) and its COMPARE to n1.
fn comparing() -> (Node<MemStorage>, OutboundId, i64) {
    let mut n = leader(3, &[1, 1, 1, 1, 1], 2, None);
    let a = n.drain_actions();
    let (id, _, r) = sends(&a)
        .into_iter()
        .find(|(_, to, r)| {
            to == "n1" && matches!(r, Request::Push(p) if p.kind == PushType::Compare)
        })
        .expect("compare to n1");
    let Request::Push(p) = r else { unreachable!() };
    (n, id, p.entry.expect("full entry").index)
}

fn outcomes(a: &[Action]) -> Vec<(i64, i64, ResponseCode)> {
    a.iter()
        .filter_map(|x| match x {
            Action::AppendOutcome {
                term, index, code, ..
            } => Some((*term, *index, *code)),
            _ => None,
        })
        .collect()
}

/// A leader whose dispatcher for n1 (and n2) is in APPEND state at `end`.
fn appending(
    n_peers: usize,
    terms: &[i64],
    term: i64,
    c: Option<DLedgerConfig>,
) -> Node<MemStorage> {
    let mut n = leader(n_peers, terms, term, c);
    let end = terms.len() as i64 - 1;
    for (id, _, r) in sends(&n.drain_actions()) {
        match &r {
            Request::Push(p) if p.kind == PushType::Compare => {
                n.handle_response(id, push_resp(200, term, Some(end), 0, end), T0 + 1)
            }
            Request::HeartBeat(_) => n.handle_response(
                id,
                Response::HeartBeat(HeartBeatResponse {
                    header: Header::default(),
                }),
                T0 + 1,
            ),
            _ => {}
        }
    }
    n
}
