//! Handler tests for the Raft core: set a state, feed one input, assert the
//! exact outputs (the tables of docs/protocol/dledger.md §2.3–§2.12, Java
//! DLedger 0.3.1.2; the § numbers in the section rules below refer to it).

#![allow(clippy::unwrap_used)]

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

// ----- §2.5 vote handling --------------------------------------------------

#[test]
fn vote_server_layer_checks() {
    let mut n = node_with(passive(cfg("n1", 3)), log(&[], 1, None));
    let mut r = vote_req("n0", "n2", 1, -1, -1);
    let v = vote(&mut n, r.clone());
    assert_eq!((v.header.code, v.vote_result), (401, VoteResult::Unknown));
    if let Request::Vote(v) = &mut r {
        v.header.remote_id = Some("n1".into());
        v.header.group = Some("other".into());
    }
    let v = vote(&mut n, r);
    assert_eq!((v.header.code, v.vote_result), (400, VoteResult::Unknown));
}

#[test]
fn vote_table_rows() {
    // 1: candidate not a peer.
    let mut n = node_with(passive(cfg("n1", 3)), log(&[1, 1], 2, None));
    let v = vote(&mut n, vote_req("x9", "n1", 2, 1, 1));
    assert_eq!(
        (v.vote_result, v.header.term),
        (VoteResult::RejectUnknownLeader, 2)
    );
    // 2: candidate is the voter itself.
    let v = vote(&mut n, vote_req("n1", "n1", 2, 1, 1));
    assert_eq!(v.vote_result, VoteResult::RejectUnexpectedLeader);
    // 3: older ledger end term — even with a higher vote term, no term adoption.
    let v = vote(&mut n, vote_req("n0", "n1", 9, 5, 0));
    assert_eq!(
        (v.vote_result, v.header.term),
        (VoteResult::RejectExpiredLedgerTerm, 2)
    );
    assert_eq!(n.term(), 2);
    assert!(!n.need_increase_term_immediately());
    // 3b: same ledger end term, shorter log.
    let v = vote(&mut n, vote_req("n0", "n1", 9, 0, 1));
    assert_eq!(v.vote_result, VoteResult::RejectSmallLedgerEndIndex);
    // 4: older vote term.
    let v = vote(&mut n, vote_req("n0", "n1", 1, 1, 1));
    assert_eq!(
        (v.vote_result, v.header.term),
        (VoteResult::RejectExpiredVoteTerm, 2)
    );
    // 7: accept, persisted, role unchanged.
    let v = vote(&mut n, vote_req("n0", "n1", 2, 1, 1));
    assert_eq!((v.vote_result, v.header.term), (VoteResult::Accept, 2));
    assert_eq!(n.storage().hard_state().vote.as_deref(), Some("n0"));
    assert_eq!(n.role(), Role::Candidate);
    // 4b: same term, already voted for the same candidate → accept again.
    let v = vote(&mut n, vote_req("n0", "n1", 2, 1, 1));
    assert_eq!(v.vote_result, VoteResult::Accept);
    // 4b: voted for someone else, no leader known → ALREADY_VOTED.
    let v = vote(&mut n, vote_req("n2", "n1", 2, 1, 1));
    assert_eq!(v.vote_result, VoteResult::RejectAlreadyVoted);
    // 4b: … with a leader known → ALREADY_HAS_LEADER.
    assert_eq!(beat(&mut n, hb("n0", "n1", 2), T0).code, 200);
    let v = vote(&mut n, vote_req("n2", "n1", 2, 1, 1));
    assert_eq!(v.vote_result, VoteResult::RejectAlreadyHasLeader);
    // 4c: higher term → step down, TERM_NOT_READY with the old term.
    let v = vote(&mut n, vote_req("n2", "n1", 5, 1, 1));
    assert_eq!(
        (v.vote_result, v.header.term),
        (VoteResult::RejectTermNotReady, 2)
    );
    assert_eq!(n.role(), Role::Candidate);
    assert_eq!(n.leader_id(), None);
    assert!(n.need_increase_term_immediately());
    assert_eq!(n.known_max_term_in_group(), 5);
    assert_eq!(
        n.term(),
        2,
        "the term is adopted by the maintainer, not here"
    );
}

#[test]
fn vote_term_small_than_ledger_answers_ledger_end_term() {
    // Log end term 5 but currTerm 3 (possible after a restart with a lagging term file).
    let mut n = node_with(passive(cfg("n1", 3)), log(&[5], 3, None));
    let v = vote(&mut n, vote_req("n0", "n1", 3, 0, 5));
    assert_eq!(
        (v.vote_result, v.header.term),
        (VoteResult::RejectTermSmallThanLedger, 5)
    );
}

#[test]
fn vote_rejected_while_taking_leadership() {
    let mut c = passive(cfg("n1", 3));
    c.preferred_leader_ids = Some(vec!["n1".into()]);
    c.enable_leader_elector = true;
    let mut n = node_with(c, log(&[1, 1], 2, None));
    n.tick(T0); // votes at term 2; the round fails at once
    for (id, _, _) in sends(&n.drain_actions()) {
        n.handle_send_failure(id, T0);
    }
    assert_eq!(beat(&mut n, hb("n0", "n1", 2), T0).code, 200);
    n.handle_request(
        InboundId(5),
        Request::LeadershipTransfer(LeadershipTransferRequest {
            header: hdr("n0", "n1", "n0", 2),
            transfer_id: Some("n0".into()),
            transferee_id: Some("n1".into()),
            take_leadership_ledger_index: 1,
        }),
        T0,
    );
    n.tick(T0 + 1); // adopts term 3 (needIncreaseTermImmediately)
    assert_eq!(n.term(), 3);
    let v = vote(&mut n, vote_req("n2", "n1", 3, 1, 1));
    assert_eq!(v.vote_result, VoteResult::RejectTakingLeadership);
}

// ----- §2.6 heartbeat handling -----------------------------------------------

#[test]
fn heartbeat_table_rows() {
    let mut n = node_with(passive(cfg("n1", 3)), log(&[], 3, None));
    let h = beat(&mut n, hb("x", "n1", 3), T0);
    assert_eq!((h.code, h.term), (401, 3));
    let h = beat(&mut n, hb("n1", "n1", 3), T0);
    assert_eq!((h.code, h.term), (402, 3));
    let h = beat(&mut n, hb("n0", "n1", 2), T0);
    assert_eq!((h.code, h.term), (403, 3));
    // equal term, no leader → follower, success term -1.
    let h = beat(&mut n, hb("n0", "n1", 3), T0);
    assert_eq!((h.code, h.term), (200, -1));
    assert_eq!((n.role(), n.leader_id()), (Role::Follower, Some("n0")));
    let a = n.drain_actions();
    assert!(a.is_empty(), "{a:?}");
    // equal term, same leader → refresh.
    let h = beat(&mut n, hb("n0", "n1", 3), T0 + 5000);
    assert_eq!(h.code, 200);
    n.tick(T0 + 10_000);
    assert_eq!(
        n.role(),
        Role::Follower,
        "refreshed at +5000, 6 s leak not reached"
    );
    // equal term, different leader → 409.
    let h = beat(&mut n, hb("n2", "n1", 3), T0 + 10_000);
    assert_eq!((h.code, h.term), (409, 3));
    // higher term → candidate, 416 with the old term.
    let h = beat(&mut n, hb("n2", "n1", 4), T0 + 10_000);
    assert_eq!((h.code, h.term), (416, 3));
    assert_eq!(n.role(), Role::Candidate);
    assert!(n.need_increase_term_immediately());
    // group check (server layer) copies the request's base fields.
    let mut r = hb("n0", "n1", 3);
    if let Request::HeartBeat(h) = &mut r {
        h.header.group = Some("zz".into());
    }
    let h = beat(&mut n, r, T0);
    assert_eq!(
        (h.code, h.term, h.local_id.as_deref()),
        (400, 3, Some("n0"))
    );
}

#[test]
fn follower_times_out_after_fixed_six_seconds() {
    let mut c = cfg("n1", 3);
    c.enable_leader_elector = true;
    let mut n = node_with(c, log(&[], 3, Some("n0")));
    assert_eq!(beat(&mut n, hb("n0", "n1", 3), T0).code, 200);
    n.drain_actions();
    n.tick(T0 + 6000);
    assert_eq!(n.role(), Role::Follower);
    assert_eq!(n.poll_timeout(), Some(T0 + 6001));
    n.tick(T0 + 6001);
    assert_eq!(n.role(), Role::Candidate);
    assert_eq!(n.term(), 3, "same term");
    let a = n.drain_actions();
    assert!(
        matches!(
            a[0],
            Action::RoleChanged {
                term: 3,
                role: Role::Candidate
            }
        ),
        "{a:?}"
    );
}

// ----- §2.3 candidate decision table -----------------------------------------

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

#[test]
fn candidate_row1_higher_term_seen() {
    let (mut n, ids) = voting(None);
    n.handle_response(
        ids[0],
        vote_resp(VoteResult::RejectExpiredVoteTerm, 9),
        T0 + 1,
    );
    for id in &ids[1..] {
        n.handle_send_failure(*id, T0 + 1);
    }
    assert_eq!(n.last_parse_result(), ParseResultAlias::WaitToVoteNext);
    assert_eq!(n.known_max_term_in_group(), 9);
    let next = n.next_time_to_request_vote().unwrap();
    assert!(
        (T0 as i64 + 301..T0 as i64 + 1001).contains(&next),
        "{next}"
    );
    n.tick(next as u64);
    assert_eq!(n.term(), 9, "nextTerm jumps to knownMaxTermInGroup");
}

use dledger::core::ParseResult as ParseResultAlias;

#[test]
fn candidate_row2_already_has_leader() {
    let (mut n, ids) = voting(None);
    n.handle_response(
        ids[0],
        vote_resp(VoteResult::RejectAlreadyHasLeader, 4),
        T0 + 1,
    );
    // the latch trips at once
    assert_eq!(n.last_parse_result(), ParseResultAlias::WaitToRevote);
    let next = n.next_time_to_request_vote().unwrap();
    assert!(
        (T0 as i64 + 6301..T0 as i64 + 7001).contains(&next),
        "{next}"
    );
}

#[test]
fn candidate_row3_no_valid_quorum_keeps_term() {
    let (mut n, ids) = voting(None);
    for id in &ids {
        n.handle_send_failure(*id, T0 + 1);
    }
    assert_eq!(n.last_parse_result(), ParseResultAlias::WaitToRevote);
    let next = n.next_time_to_request_vote().unwrap();
    n.tick(next as u64);
    assert_eq!(n.term(), 4, "an isolated node never inflates its term");
}

#[test]
fn candidate_row4_bigger_ledgers() {
    let (mut n, ids) = voting(None);
    n.handle_response(
        ids[0],
        vote_resp(VoteResult::RejectExpiredLedgerTerm, 4),
        T0 + 1,
    );
    n.handle_response(
        ids[1],
        vote_resp(VoteResult::RejectSmallLedgerEndIndex, 4),
        T0 + 1,
    );
    n.handle_send_failure(ids[2], T0 + 1);
    n.handle_send_failure(ids[3], T0 + 1);
    assert_eq!(n.last_parse_result(), ParseResultAlias::WaitToRevote);
    let next = n.next_time_to_request_vote().unwrap();
    assert!(
        (T0 as i64 + 1301..T0 as i64 + 2001).contains(&next),
        "{next}"
    );
}

#[test]
fn candidate_row5_passed() {
    let (mut n, ids) = voting(None);
    n.handle_response(ids[0], vote_resp(VoteResult::Accept, 4), T0 + 1);
    assert_eq!(n.role(), Role::Candidate);
    n.handle_response(ids[1], vote_resp(VoteResult::Accept, 4), T0 + 1);
    assert_eq!(n.role(), Role::Leader);
    let a = n.drain_actions();
    assert!(
        matches!(
            a[0],
            Action::RoleChanged {
                term: 4,
                role: Role::Leader
            }
        ),
        "{a:?}"
    );
    // Heartbeats first: the first sends after becoming leader are heartbeats.
    let s = sends(&a);
    assert!(
        s[..4]
            .iter()
            .all(|(_, _, r)| matches!(r, Request::HeartBeat(_))),
        "{s:?}"
    );
}

#[test]
fn candidate_row6_revote_immediately() {
    let (mut n, ids) = voting(None);
    n.handle_response(ids[0], vote_resp(VoteResult::Accept, 4), T0 + 1);
    n.handle_response(ids[1], vote_resp(VoteResult::RejectTermNotReady, 3), T0 + 1);
    assert_eq!(n.last_parse_result(), ParseResultAlias::RevoteImmediately);
    n.tick(T0 + 2);
    let s = sends(&n.drain_actions());
    assert_eq!(s.len(), 4);
    assert!(s.iter().all(|(_, _, r)| r.header().term == 4), "same term");
}

#[test]
fn candidate_row7_wait_to_vote_next() {
    let (mut n, ids) = voting(None);
    for id in &ids {
        n.handle_response(*id, vote_resp(VoteResult::RejectAlreadyVoted, 4), T0 + 1);
    }
    assert_eq!(n.last_parse_result(), ParseResultAlias::WaitToVoteNext);
    let next = n.next_time_to_request_vote().unwrap();
    n.tick(next as u64);
    assert_eq!(n.term(), 5);
    assert_eq!(
        n.storage().hard_state(),
        HardState {
            term: 5,
            vote: Some("n0".into())
        }
    );
}

#[test]
fn candidate_vote_wait_ends_after_2000_plus_random() {
    let (mut n, ids) = voting(None);
    n.handle_response(ids[0], vote_resp(VoteResult::Accept, 4), T0 + 1);
    let t = n.poll_timeout().unwrap();
    assert!((T0 + 2000..T0 + 3000).contains(&t), "{t}");
    n.tick(t);
    // valid 2 of 5: row 3
    assert_eq!(n.last_parse_result(), ParseResultAlias::WaitToRevote);
}

/// Our timers: a silent peer holds a vote round for `voteWaitBaseMs` (300 ms)
/// + random(maxVoteIntervalMs = 300), not Java's 2000 + random(1000).
#[test]
fn candidate_vote_wait_with_our_timers_is_short() {
    let mut c = cfg("n0", 5);
    c.set_timers(dledger::config::OUR_TIMERS);
    let mut n = node_with(c, log(&[1], 4, None));
    n.tick(T0);
    let ids: Vec<OutboundId> = sends(&n.drain_actions()).into_iter().map(|x| x.0).collect();
    n.handle_response(ids[0], vote_resp(VoteResult::Accept, 4), T0 + 1);
    let t = n.poll_timeout().unwrap();
    assert!((T0 + 300..T0 + 600).contains(&t), "{t}");
    n.tick(t);
    assert_eq!(n.last_parse_result(), ParseResultAlias::WaitToRevote);
}

#[test]
fn need_increase_term_adopts_without_voting() {
    let mut n = node_with(cfg("n1", 3), log(&[], 2, None));
    let v = vote(&mut n, vote_req("n0", "n1", 7, -1, -1));
    assert_eq!(v.vote_result, VoteResult::RejectTermNotReady);
    n.drain_actions();
    n.tick(T0);
    assert_eq!(n.term(), 7);
    assert!(
        sends(&n.drain_actions()).is_empty(),
        "no vote in the adopting pass"
    );
    // and now the candidate accepts at 7
    let v = vote(&mut n, vote_req("n0", "n1", 7, -1, -1));
    assert_eq!(v.vote_result, VoteResult::Accept);
}

// ----- §2.4 leader heartbeats -------------------------------------------------

#[test]
fn leader_steps_down_on_expired_term_reply() {
    let mut n = leader(3, &[1], 2, None);
    let a = n.drain_actions();
    let hbs: Vec<_> = sends(&a)
        .into_iter()
        .filter(|s| matches!(s.2, Request::HeartBeat(_)))
        .collect();
    assert_eq!(hbs.len(), 2);
    let r = |code: i32, term: i64| {
        Response::HeartBeat(HeartBeatResponse {
            header: Header {
                code,
                term,
                ..Header::default()
            },
        })
    };
    n.handle_response(hbs[0].0, r(403, 6), T0 + 1);
    n.handle_response(hbs[1].0, r(302, -1), T0 + 1);
    assert_eq!(n.role(), Role::Candidate);
    assert_eq!(n.known_max_term_in_group(), 6);
    assert_eq!(n.peer_live("n1"), Some(true));
    assert_eq!(n.peer_live("n2"), Some(false));
}

#[test]
fn fresh_leader_whose_first_round_fails_steps_down() {
    let mut n = leader(3, &[1], 2, None);
    let a = n.drain_actions();
    for (id, _, r) in sends(&a) {
        if matches!(r, Request::HeartBeat(_)) {
            n.handle_send_failure(id, T0 + 1);
        }
    }
    assert_eq!(
        n.role(),
        Role::Candidate,
        "lastSuccHeartBeatTime was never set"
    );
}

/// The leader's lease runs from the start of the last round (vote or
/// heartbeat) a quorum answered, for the shortest follower election
/// timeout (Java timers: 3 x 2000 ms); a follower has none.
#[test]
fn leader_lease_runs_from_the_last_round_a_quorum_answered() {
    let mut n = leader(3, &[1], 2, None);
    // Elected by the vote round that went out at T0.
    assert_eq!(n.leader_lease_until(), Some(T0 as i64 + 6000));
    let ok = Response::HeartBeat(HeartBeatResponse {
        header: Header {
            code: 200,
            term: 2,
            ..Header::default()
        },
    });
    let beats = |n: &mut Node<MemStorage>| -> Vec<OutboundId> {
        sends(&n.drain_actions())
            .into_iter()
            .filter(|s| matches!(s.2, Request::HeartBeat(_)))
            .map(|s| s.0)
            .collect()
    };
    // The first heartbeat round (also at T0) answered: still T0.
    let first = beats(&mut n);
    n.handle_response(first[0], ok.clone(), T0 + 5);
    assert_eq!(n.leader_lease_until(), Some(T0 as i64 + 6000));
    // The next round goes out at T0 + 2001; until a quorum answers it, the
    // lease still runs from T0.
    n.tick(T0 + 2001);
    let ids = beats(&mut n);
    assert_eq!(ids.len(), 2);
    assert_eq!(n.leader_lease_until(), Some(T0 as i64 + 6000));
    n.handle_response(ids[0], ok.clone(), T0 + 2900);
    assert_eq!(n.role(), Role::Leader);
    assert_eq!(n.leader_lease_until(), Some(T0 as i64 + 2001 + 6000));
    // A follower holds no lease.
    let f = follower("n1", 3, &[1], 2, "n0");
    assert_eq!(f.leader_lease_until(), None);
}

// ----- §2.9 leader COMPARE decision table ------------------------------------

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

fn next_push_to_n1(n: &mut Node<MemStorage>) -> (OutboundId, PushType, i64) {
    let a = n.drain_actions();
    sends(&a)
        .into_iter()
        .find_map(|(id, to, r)| match r {
            Request::Push(p) if to == "n1" => Some((id, p.kind, p.first_entry_index())),
            _ => None,
        })
        .expect("a push to n1")
}

#[test]
fn compare_starts_at_leader_end_with_full_entry() {
    let (_, _, idx) = comparing();
    assert_eq!(idx, 4);
}

#[test]
fn compare_200_at_follower_end_goes_append() {
    let (mut n, id, _) = comparing();
    n.handle_response(id, push_resp(200, 2, Some(4), 0, 4), T0 + 1);
    assert_eq!(n.peer_watermark("n1"), 4);
    let (_, kind, _) = next_push_to_n1(&mut n);
    assert_eq!(kind, PushType::Commit, "caught up: only a COMMIT push");
    n.propose(Bytes::from_static(b"x"), T0 + 2).unwrap();
    let (_, kind, idx) = next_push_to_n1(&mut n);
    assert_eq!((kind, idx), (PushType::Append, 5));
}

#[test]
fn compare_200_below_follower_end_truncates_there() {
    let (mut n, id, _) = comparing();
    n.handle_response(id, push_resp(200, 2, Some(4), 0, 7), T0 + 1);
    let (_, k, i) = next_push_to_n1(&mut n);
    assert_eq!((k, i), (PushType::Truncate, 4));
}

#[test]
fn compare_406_rows() {
    // no overlap: follower empty → TRUNCATE at leader begin
    let (mut n, id, _) = comparing();
    n.handle_response(id, push_resp(406, 2, Some(4), -1, -1), T0 + 1);
    let (_, k, i) = next_push_to_n1(&mut n);
    assert_eq!((k, i), (PushType::Truncate, 0));
    // no overlap: follower begins after the leader's end
    let (mut n, id, _) = comparing();
    n.handle_response(id, push_resp(406, 2, Some(4), 10, 12), T0 + 1);
    assert_eq!(next_push_to_n1(&mut n).1, PushType::Truncate);
    // compareIndex > follower end → compare at follower end
    let (mut n, id, _) = comparing();
    n.handle_response(id, push_resp(406, 2, Some(4), 0, 2), T0 + 1);
    let (id2, k, i) = next_push_to_n1(&mut n);
    assert_eq!((k, i), (PushType::Compare, 2));
    // then compareIndex < follower begin (overlapping ranges) → TRUNCATE at leader begin
    n.handle_response(id2, push_resp(406, 2, Some(2), 3, 3), T0 + 2);
    let (_, k, i) = next_push_to_n1(&mut n);
    assert_eq!((k, i), (PushType::Truncate, 0));
    // otherwise → compareIndex - 1
    let (mut n, id, _) = comparing();
    n.handle_response(id, push_resp(406, 2, Some(4), 0, 4), T0 + 1);
    let (_, k, i) = next_push_to_n1(&mut n);
    assert_eq!((k, i), (PushType::Compare, 3));
}

#[test]
fn compare_falling_below_begin_truncates_and_truncate_200_appends() {
    let mut n = leader(3, &[1], 2, None);
    let (id, _, _) = sends(&n.drain_actions())
        .into_iter()
        .find(|(_, to, r)| to == "n1" && matches!(r, Request::Push(_)))
        .unwrap();
    n.handle_response(id, push_resp(406, 2, Some(0), 0, 0), T0 + 1);
    let (tid, k, i) = next_push_to_n1(&mut n);
    assert_eq!((k, i), (PushType::Truncate, 0));
    n.handle_response(tid, push_resp(200, 2, Some(0), 0, 0), T0 + 2);
    assert_eq!(n.peer_watermark("n1"), 0);
}

#[test]
fn compare_other_code_pauses_500ms_then_retries() {
    let (mut n, id, _) = comparing();
    n.handle_response(id, push_resp(405, 2, Some(4), 0, 4), T0 + 1);
    assert!(sends(&n.drain_actions()).iter().all(|s| s.1 != "n1"));
    n.tick(T0 + 400);
    assert!(sends(&n.drain_actions()).iter().all(|s| s.1 != "n1"));
    n.tick(T0 + 501);
    let (_, k, i) = next_push_to_n1(&mut n);
    assert_eq!((k, i), (PushType::Compare, 4));
}

#[test]
fn append_resend_after_max_push_timeout() {
    let (mut n, id, _) = comparing();
    n.handle_response(id, push_resp(200, 2, Some(4), 0, 4), T0 + 1);
    n.drain_actions();
    n.propose(Bytes::from_static(b"x"), T0 + 2).unwrap();
    let (_, k, i) = next_push_to_n1(&mut n);
    assert_eq!((k, i), (PushType::Append, 5));
    n.tick(T0 + 1002);
    assert!(sends(&n.drain_actions())
        .iter()
        .all(|s| !(s.1 == "n1" && matches!(&s.2, Request::Push(p) if p.kind == PushType::Append))));
    n.tick(T0 + 1003);
    let s = sends(&n.drain_actions());
    assert!(
        s.iter().any(|x| x.1 == "n1" && matches!(&x.2, Request::Push(p) if p.kind == PushType::Append && p.first_entry_index() == 5)),
        "{s:?}"
    );
}

// ----- §2.10 follower side ------------------------------------------------------

fn push(
    kind: PushType,
    from: &str,
    to: &str,
    term: i64,
    entry: Option<dledger::entry::Entry>,
    commit: i64,
) -> Request {
    Request::Push(PushEntryRequest {
        header: hdr(from, to, from, term),
        kind,
        commit_index: commit,
        entry,
        batch_entry: Vec::new(),
    })
}

/// The leader's entries for terms `terms`.
fn leader_entries(terms: &[i64]) -> Vec<dledger::entry::Entry> {
    let s = log(terms, 0, None);
    (0..terms.len() as i64).map(|i| s.get(i).unwrap()).collect()
}

fn push_code(
    n: &mut Node<MemStorage>,
    id: u64,
    req: Request,
    now: u64,
) -> Option<PushEntryResponse> {
    n.handle_request(InboundId(id), req, now);
    n.drain_actions().into_iter().find_map(|a| match a {
        Action::Respond {
            id: i,
            response: Response::Push(p),
        } if i.0 == id => Some(p),
        _ => None,
    })
}

#[test]
fn follower_append_preconditions() {
    let e = leader_entries(&[1, 1, 2, 2]);
    let mut f = follower("n1", 3, &[1, 1], 2, "n0");
    // good append; commit index applied (clamped to own end)
    let r = push_code(
        &mut f,
        1,
        push(PushType::Append, "n0", "n1", 2, Some(e[2].clone()), 9),
        T0,
    )
    .unwrap();
    assert_eq!(
        (r.header.code, r.index, r.end_index, r.header.term),
        (200, Some(2), 2, 2)
    );
    assert_eq!(f.storage().committed_index(), 2);
    // wrong term → 406
    let r = push_code(
        &mut f,
        2,
        push(PushType::Append, "n0", "n1", 3, Some(e[3].clone()), -1),
        T0,
    )
    .unwrap();
    assert_eq!(
        (r.header.code, r.header.term),
        (406, 3),
        "term echoes the request"
    );
    // wrong leader → 406
    let r = push_code(
        &mut f,
        3,
        push(PushType::Append, "n2", "n1", 2, Some(e[3].clone()), -1),
        T0,
    )
    .unwrap();
    assert_eq!(r.header.code, 406);
    // wrong pos → 406
    let mut bad = e[3].clone();
    bad.pos += 8;
    let r = push_code(
        &mut f,
        4,
        push(PushType::Append, "n0", "n1", 2, Some(bad), -1),
        T0,
    )
    .unwrap();
    assert_eq!(r.header.code, 406);
    assert_eq!(f.storage().end_index(), 2);
}

#[test]
fn follower_parks_out_of_order_appends_and_fast_forwards() {
    let e = leader_entries(&[1, 1, 1, 1, 1, 1]);
    let mut f = follower("n1", 3, &[1], 1, "n0");
    // index 3 arrives before 1 and 2: parked, no answer
    assert!(push_code(
        &mut f,
        1,
        push(PushType::Append, "n0", "n1", 1, Some(e[3].clone()), -1),
        T0
    )
    .is_none());
    // a second APPEND for parked index 3 → 413
    let r = push_code(
        &mut f,
        2,
        push(PushType::Append, "n0", "n1", 1, Some(e[3].clone()), -1),
        T0,
    )
    .unwrap();
    assert_eq!(r.header.code, 413);
    // index 5 parked too; nothing starts at end+1 → after 1000 ms the oldest timed-out is answered 406
    assert!(push_code(
        &mut f,
        3,
        push(PushType::Append, "n0", "n1", 1, Some(e[5].clone()), -1),
        T0 + 10
    )
    .is_none());
    f.tick(T0 + 999);
    assert!(f.drain_actions().is_empty());
    f.tick(T0 + 1010);
    let a = f.drain_actions();
    assert!(
        matches!(&a[..], [Action::Respond { id: InboundId(1), response: Response::Push(p) }] if p.header.code == 406),
        "{a:?}"
    );
    // index 1, 2 arrive: 1, 2 and the parked 3 (already answered) are appended
    let r = push_code(
        &mut f,
        4,
        push(PushType::Append, "n0", "n1", 1, Some(e[1].clone()), -1),
        T0 + 1100,
    )
    .unwrap();
    assert_eq!(r.header.code, 200);
    let r = push_code(
        &mut f,
        5,
        push(PushType::Append, "n0", "n1", 1, Some(e[2].clone()), -1),
        T0 + 1100,
    )
    .unwrap();
    assert_eq!(r.header.code, 200);
    assert_eq!(f.storage().end_index(), 3);
    // a duplicate of an already stored index is answered 200 by the periodic check
    assert!(push_code(
        &mut f,
        6,
        push(PushType::Append, "n0", "n1", 1, Some(e[2].clone()), -1),
        T0 + 1100
    )
    .is_none());
    f.tick(T0 + 2100);
    let a = f.drain_actions();
    assert!(a.iter().any(|x| matches!(x, Action::Respond { id: InboundId(6), response: Response::Push(p) } if p.header.code == 200)), "{a:?}");
}

#[test]
fn follower_compare_truncate_commit() {
    let e = leader_entries(&[1, 2, 2]);
    let mut f = follower("n1", 3, &[1, 1, 1, 1], 2, "n0");
    // a parked append is dropped unanswered by a COMPARE
    assert!(push_code(
        &mut f,
        1,
        push(PushType::Append, "n0", "n1", 2, Some(e[2].clone()), -1),
        T0
    )
    .is_none());
    f.handle_request(
        InboundId(2),
        push(PushType::Compare, "n0", "n1", 2, Some(e[1].clone()), -1),
        T0,
    );
    let a = f.drain_actions();
    assert!(
        matches!(a[0], Action::Abandon { id: InboundId(1) }),
        "{a:?}"
    );
    assert!(
        matches!(&a[1], Action::Respond { id: InboundId(2), response: Response::Push(p) } if p.header.code == 406 && p.end_index == 3)
    );
    let r = push_code(
        &mut f,
        3,
        push(PushType::Compare, "n0", "n1", 2, Some(e[0].clone()), -1),
        T0,
    )
    .unwrap();
    assert_eq!(r.header.code, 200);
    let r = push_code(
        &mut f,
        4,
        push(PushType::Truncate, "n0", "n1", 2, Some(e[1].clone()), 1),
        T0,
    )
    .unwrap();
    assert_eq!((r.header.code, r.end_index), (200, 1));
    assert_eq!(f.storage().get(1).unwrap().term, 2);
    assert_eq!(f.storage().committed_index(), 1);
    // COMMIT: index omitted, clamped to own end
    let r = push_code(
        &mut f,
        5,
        push(PushType::Commit, "n0", "n1", 2, None, 7),
        T0,
    )
    .unwrap();
    assert_eq!((r.header.code, r.index, r.count), (200, None, 0));
    // a COMPARE with no entry → 411
    let r = push_code(
        &mut f,
        6,
        push(PushType::Compare, "n0", "n1", 2, None, -1),
        T0,
    )
    .unwrap();
    assert_eq!(r.header.code, 411);
}

#[test]
fn not_follower_answers_queue_405_and_keeps_appends() {
    let e = leader_entries(&[1, 1]);
    let mut n = node_with(passive(cfg("n1", 3)), log(&[1], 1, None));
    let r = push_code(
        &mut n,
        1,
        push(PushType::Compare, "n0", "n1", 1, Some(e[0].clone()), -1),
        T0,
    )
    .unwrap();
    assert_eq!(r.header.code, 405);
    assert!(push_code(
        &mut n,
        2,
        push(PushType::Append, "n0", "n1", 1, Some(e[1].clone()), -1),
        T0
    )
    .is_none());
    // becoming follower lets the parked append through
    n.handle_request(InboundId(3), hb("n0", "n1", 1), T0);
    let a = n.drain_actions();
    assert!(a.iter().any(|x| matches!(x, Action::Respond { id: InboundId(2), response: Response::Push(p) } if p.header.code == 200)), "{a:?}");
}

// ----- §2.11/§2.12 commit index and append outcomes ----------------------------

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

#[test]
fn propose_commits_on_quorum_and_answers_200() {
    let mut n = appending(3, &[1], 2, None);
    n.drain_actions();
    let ok = n.propose(Bytes::from_static(b"hello"), T0 + 10).unwrap();
    assert_eq!((ok.term, ok.index), (2, 1));
    let a = n.drain_actions();
    let app: Vec<_> = sends(&a)
        .into_iter()
        .filter(|s| matches!(&s.2, Request::Push(p) if p.kind == PushType::Append))
        .collect();
    assert_eq!(app.len(), 2);
    n.handle_response(app[0].0, push_resp(200, 2, Some(1), 0, 1), T0 + 11);
    let a = n.drain_actions();
    assert_eq!(outcomes(&a), vec![(2, 1, ResponseCode::Success)]);
    assert!(a
        .iter()
        .any(|x| matches!(x, Action::CommitAdvanced { index: 1 })));
}

#[test]
fn java_rule_commits_inherited_entries_by_counting_strict_does_not() {
    // Leader of term 3 inheriting entries of term 1; one follower matches.
    let mut n = appending(3, &[1, 1, 1], 3, None);
    n.tick(T0 + 1100); // leak check refreshes the leader's own watermark
    assert_eq!(n.storage().committed_index(), 2);

    let mut c = cfg("n0", 3);
    c.strict_commit = true;
    let mut n = appending(3, &[1, 1, 1], 3, Some(c));
    n.tick(T0 + 1100);
    assert_eq!(n.storage().committed_index(), -1);
    // a current-term entry commits everything before it
    n.drain_actions();
    n.propose(Bytes::from_static(b"x"), T0 + 1200).unwrap();
    let (id, _, _) = sends(&n.drain_actions())
        .into_iter()
        .find(|s| s.1 == "n1")
        .unwrap();
    n.handle_response(id, push_resp(200, 3, Some(3), 0, 3), T0 + 1201);
    assert_eq!(n.storage().committed_index(), 3);
}

#[test]
fn append_times_out_502_and_is_not_acked_later() {
    let mut n = appending(3, &[1], 2, None);
    n.drain_actions();
    n.propose(Bytes::from_static(b"x"), T0 + 10).unwrap();
    let app: Vec<_> = sends(&n.drain_actions())
        .into_iter()
        .filter(|s| s.1 == "n1")
        .collect();
    n.tick(T0 + 10 + 2499);
    assert!(outcomes(&n.drain_actions()).is_empty());
    n.tick(T0 + 10 + 2500);
    assert_eq!(
        outcomes(&n.drain_actions()),
        vec![(2, 1, ResponseCode::WaitQuorumAckTimeout)]
    );
    n.handle_response(app[0].0, push_resp(200, 2, Some(1), 0, 1), T0 + 2600);
    let a = n.drain_actions();
    assert!(
        outcomes(&a).is_empty(),
        "a 502 is final for the future: {a:?}"
    );
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::CommitAdvanced { index: 1 })),
        "but the entry commits"
    );
}

#[test]
fn append_term_change_gives_501() {
    let mut n = appending(3, &[1], 2, None);
    n.drain_actions();
    n.propose(Bytes::from_static(b"x"), T0 + 10).unwrap();
    n.drain_actions();
    // a higher-term heartbeat deposes it; it then wins term 3
    n.handle_request(InboundId(1), hb("n1", "n0", 3), T0 + 20);
    n.tick(T0 + 21); // adopts term 3
    n.drain_actions();
    let next = n.next_time_to_request_vote().unwrap() as u64;
    n.tick(next);
    for (id, _, r) in sends(&n.drain_actions()) {
        if matches!(r, Request::Vote(_)) {
            n.handle_response(id, vote_resp(VoteResult::Accept, 3), next);
        }
    }
    assert_eq!((n.role(), n.term()), (Role::Leader, 3));
    assert_eq!(
        outcomes(&n.drain_actions()),
        vec![(2, 1, ResponseCode::TermChanged)]
    );
}

#[test]
fn propose_errors() {
    let mut f = follower("n1", 3, &[], 1, "n0");
    assert_eq!(f.propose(Bytes::new(), T0), Err(ResponseCode::NotLeader));
    let mut c = cfg("n0", 3);
    c.max_pending_requests_num = 2;
    let mut n = appending(3, &[1], 2, Some(c));
    for i in 0..3 {
        assert!(n.propose(Bytes::from(vec![i]), T0 + 5).is_ok());
    }
    assert_eq!(
        n.propose(Bytes::from_static(b"z"), T0 + 5),
        Err(ResponseCode::LeaderPendingFull)
    );
    assert_eq!(
        n.propose_batch(vec![], T0 + 5),
        Err(ResponseCode::RequestWithEmptyBodys)
    );
    n.transfer_leadership("n1", T0 + 6).unwrap();
    assert_eq!(
        n.propose(Bytes::from_static(b"z"), T0 + 6),
        Err(ResponseCode::LeaderTransferring)
    );
}

#[test]
fn single_node_group_acks_at_once() {
    let mut n = leader(1, &[], 1, None);
    n.drain_actions();
    let ok = n.propose(Bytes::from_static(b"a"), T0 + 1).unwrap();
    let a = n.drain_actions();
    assert_eq!(outcomes(&a), vec![(1, ok.index, ResponseCode::Success)]);
    assert_eq!(n.storage().committed_index(), 0);
}

// ----- §2.8 leadership transfer ---------------------------------------------------

#[test]
fn leadership_transfer_leader_checks_and_forward() {
    let mut n = appending(3, &[1], 2, None);
    n.drain_actions();
    let req = |transferee: &str, term: i64| {
        Request::LeadershipTransfer(LeadershipTransferRequest {
            header: hdr("admin", "n0", "n0", term),
            transfer_id: Some("n0".into()),
            transferee_id: Some(transferee.into()),
            take_leadership_ledger_index: 0,
        })
    };
    let code = |n: &mut Node<MemStorage>, id: u64, r: Request| {
        n.handle_request(InboundId(id), r, T0 + 5);
        let a = n.drain_actions();
        a.iter().find_map(|x| match x {
            Action::Respond { id: i, response } if i.0 == id => Some(response.code()),
            _ => None,
        })
    };
    assert_eq!(code(&mut n, 1, req("zz", 2)), Some(401));
    assert_eq!(code(&mut n, 2, req("n1", 1)), Some(407));
    // accepted: forwarded to n1, answer deferred
    n.handle_request(InboundId(3), req("n1", 2), T0 + 5);
    let a = n.drain_actions();
    let fwd = sends(&a)
        .into_iter()
        .find(|s| matches!(s.2, Request::LeadershipTransfer(_)))
        .unwrap();
    let Request::LeadershipTransfer(t) = &fwd.2 else {
        unreachable!()
    };
    assert_eq!(
        (
            t.transfer_id.as_deref(),
            t.take_leadership_ledger_index,
            fwd.1.as_str()
        ),
        (Some("n0"), 0, "n1")
    );
    assert_eq!(code(&mut n, 4, req("n2", 2)), Some(506));
    // the transferee's answer is relayed to the admin
    n.handle_response(
        fwd.0,
        Response::LeadershipTransfer(LeadershipTransferResponse {
            header: Header {
                code: 418,
                ..Header::default()
            },
        }),
        T0 + 6,
    );
    let a = n.drain_actions();
    assert!(a.iter().any(
        |x| matches!(x, Action::Respond { id: InboundId(3), response } if response.code() == 418)
    ));
    assert_eq!(n.transferee(), None);
}

#[test]
fn transferee_takes_leadership_and_answers_200() {
    let mut c = cfg("n1", 3);
    c.enable_leader_elector = true;
    let mut f = node_with(c, log(&[1], 2, Some("n0")));
    assert_eq!(beat(&mut f, hb("n0", "n1", 2), T0).code, 200);
    f.drain_actions();
    f.handle_request(
        InboundId(9),
        Request::LeadershipTransfer(LeadershipTransferRequest {
            header: hdr("n0", "n1", "n0", 2),
            transfer_id: Some("n0".into()),
            transferee_id: Some("n1".into()),
            take_leadership_ledger_index: 0,
        }),
        T0,
    );
    f.tick(T0 + 1);
    assert_eq!(f.term(), 3);
    f.drain_actions();
    let next = f.next_time_to_request_vote().unwrap() as u64;
    f.tick(next);
    for (id, _, r) in sends(&f.drain_actions()) {
        if matches!(r, Request::Vote(_)) {
            f.handle_response(id, vote_resp(VoteResult::Accept, 3), next);
        }
    }
    let a = f.drain_actions();
    assert!(a.iter().any(|x| matches!(x, Action::Respond { id: InboundId(9), response } if response.code() == 200)), "{a:?}");
}

/// Found by the simulator (reordering network): pipelined APPENDs that
/// overtake a COMPARE are acknowledged and counted, then Java's
/// "200 with compareIndex < follower end → TRUNCATE at compareIndex" cuts
/// them off the follower again — an acknowledged entry can end up on a
/// minority. `strict_commit` never truncates below the follower's watermark.
#[test]
fn compare_200_below_acked_watermark() {
    for strict in [false, true] {
        let mut c = cfg("n0", 3);
        c.strict_commit = strict;
        let mut n = leader(3, &[1, 1, 1, 1, 1], 2, Some(c));
        let (cmp, _, _) = sends(&n.drain_actions())
            .into_iter()
            .find(|(_, to, r)| to == "n1" && matches!(r, Request::Push(_)))
            .unwrap();
        n.handle_response(cmp, push_resp(200, 2, Some(4), 0, 4), T0 + 1);
        n.drain_actions();
        n.propose(Bytes::from_static(b"five"), T0 + 2).unwrap();
        n.propose(Bytes::from_static(b"six"), T0 + 2).unwrap();
        let app: Vec<_> = sends(&n.drain_actions())
            .into_iter()
            .filter(|s| s.1 == "n1")
            .collect();
        assert_eq!(app.len(), 2);
        // an earlier APPEND's 406 sends the dispatcher back to COMPARE
        let old = app[0].0;
        n.handle_response(old, push_resp(406, 2, Some(5), 0, 4), T0 + 3);
        let (cmp6, k, i) = next_push_to_n1(&mut n);
        assert_eq!((k, i), (PushType::Compare, 6));
        // the follower answered COMPARE 6 while its end was 4 …
        n.handle_response(cmp6, push_resp(406, 2, Some(6), 0, 4), T0 + 4);
        let (cmp4, k, i) = next_push_to_n1(&mut n);
        assert_eq!((k, i), (PushType::Compare, 4));
        // … then appended 5 and 6 (acked: quorum n0 + n1) …
        n.handle_response(app[1].0, push_resp(200, 2, Some(6), 0, 6), T0 + 5);
        n.handle_response(app[0].0, push_resp(200, 2, Some(5), 0, 6), T0 + 5);
        let a = n.drain_actions();
        assert!(
            outcomes(&a).contains(&(2, 6, ResponseCode::Success)),
            "{a:?}"
        );
        assert_eq!(n.peer_watermark("n1"), 6);
        // … and answers COMPARE 4 with 200, end 6.
        n.handle_response(cmp4, push_resp(200, 2, Some(4), 0, 6), T0 + 6);
        let (_, k, i) = next_push_to_n1(&mut n);
        if strict {
            assert_eq!(
                (k, i),
                (PushType::Truncate, 6),
                "keeps the acknowledged entries"
            );
        } else {
            assert_eq!(
                (k, i),
                (PushType::Truncate, 4),
                "Java cuts acknowledged entries 5 and 6"
            );
        }
    }
}

#[test]
fn preferred_leader_check_transfers_to_live_caught_up_peer() {
    let mut c = cfg("n0", 3);
    c.preferred_leader_ids = Some(vec!["n1".into()]);
    let mut n = appending(3, &[1], 2, Some(c));
    assert_eq!(n.peer_live("n1"), Some(true));
    n.drain_actions();
    n.tick(T0 + 999);
    assert!(sends(&n.drain_actions())
        .iter()
        .all(|s| !matches!(s.2, Request::LeadershipTransfer(_))));
    n.tick(T0 + 1000);
    let s = sends(&n.drain_actions());
    let t = s
        .iter()
        .find_map(|(_, to, r)| match r {
            Request::LeadershipTransfer(t) => Some((to.clone(), t.clone())),
            _ => None,
        })
        .expect("transfer sent");
    assert_eq!(t.0, "n1");
    assert_eq!(t.1.take_leadership_ledger_index, 0);
    assert_eq!(n.transferee(), Some("n1"));
    assert_eq!(
        n.propose(Bytes::from_static(b"x"), T0 + 1001),
        Err(ResponseCode::LeaderTransferring)
    );
}

// ----- timers always advance (no busy loop) and role-change reports -----------

/// Ticks `n` at `now` and asserts its next wake-up is in the future.
fn tick_advances(n: &mut Node<MemStorage>, now: u64) {
    n.tick(now);
    if let Some(t) = n.poll_timeout() {
        assert!(
            t > now,
            "poll_timeout {t} <= now {now} after tick: {}",
            n.debug_state()
        );
    }
}

#[test]
fn dispatcher_pause_is_not_a_deadline_once_over() {
    // The follower stops answering (send failure → 500 ms pause), then is
    // back: the leader's dispatcher goes to APPEND. The pause that ended must
    // not stay in poll_timeout (it made the driver spin at 100% CPU).
    let (mut n, id, _) = comparing();
    n.handle_send_failure(id, T0 + 1);
    n.drain_actions();
    let mut now = T0 + 1;
    for _ in 0..20 {
        // Bounded: the retry is due after 500 ms.
        now = n.poll_timeout().unwrap().max(now + 1);
        tick_advances(&mut n, now);
        let a = n.drain_actions();
        if let Some((cid, _, _)) = sends(&a).into_iter().find(|(_, to, r)| {
            to == "n1" && matches!(r, Request::Push(p) if p.kind == PushType::Compare)
        }) {
            n.handle_response(cid, push_resp(200, 2, Some(4), 0, 4), now + 1);
            break;
        }
    }
    assert_eq!(n.peer_watermark("n1"), 4, "retried COMPARE answered");
    n.drain_actions();
    // Walk a few seconds of the leader's timers: every tick moves the timer.
    let mut ticks = 0;
    while now < T0 + 5000 {
        now = n.poll_timeout().unwrap().max(now + 1);
        tick_advances(&mut n, now);
        n.drain_actions();
        ticks += 1;
    }
    assert!(ticks < 200, "{ticks} ticks in 5 virtual seconds");
}

#[test]
fn vote_round_end_runs_due_candidate_work_in_the_same_tick() {
    // While n0 waits for votes, a higher-term vote request asks it to adopt
    // that term (needIncreaseTermImmediately). The round ends with nothing
    // else changed; the same tick must still adopt the term.
    let (mut n, _ids) = voting(None);
    n.handle_request(InboundId(1), vote_req("n1", "n0", 7, 0, 1), T0 + 1);
    n.drain_actions();
    assert!(n.need_increase_term_immediately());
    let deadline = n.poll_timeout().unwrap();
    tick_advances(&mut n, deadline);
    assert_eq!(n.term(), 7);
    assert!(!n.need_increase_term_immediately());
}

#[test]
fn identical_role_changes_are_reported_once() {
    let mut n = node_with(passive(cfg("n1", 3)), log(&[], 3, None));
    let role_events = |a: &[Action]| {
        a.iter()
            .filter_map(|x| match x {
                Action::RoleChanged { term, role } => Some((*term, *role)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let mut seen = Vec::new();
    for (i, term) in [5, 5, 5, 6].into_iter().enumerate() {
        n.handle_request(InboundId(i as u64 + 1), hb("n0", "n1", term), T0);
        seen.extend(role_events(&n.drain_actions()));
    }
    assert_eq!(
        seen,
        vec![(5, Role::Candidate), (6, Role::Candidate)],
        "candidate→candidate term bumps are reported, identical repeats are not"
    );
}

/// `enableBatchPush` (our default): appends proposed together leave in one
/// batch push per follower; its 200 (index = first, count) acknowledges up to
/// the last entry, and a lost answer resends the same range.
#[test]
fn batch_push_carries_proposals_together_and_acks_the_range() {
    let mut c = cfg("n0", 3);
    c.enable_batch_push = true;
    let mut n = appending(3, &[1], 2, Some(c));
    n.drain_actions();
    let bodies: Vec<Bytes> = (0..3).map(|i| Bytes::from(format!("b{i}"))).collect();
    let oks: Vec<i64> = n
        .propose_each(bodies, T0 + 10)
        .into_iter()
        .map(|r| r.unwrap().index)
        .collect();
    assert_eq!(oks, vec![1, 2, 3]);
    let a = n.drain_actions();
    let to_n1: Vec<_> = sends(&a)
        .into_iter()
        .filter(|s| s.1 == "n1" && matches!(&s.2, Request::Push(p) if p.kind == PushType::Append))
        .collect();
    assert_eq!(to_n1.len(), 1, "{to_n1:?}");
    let Request::Push(p) = &to_n1[0].2 else {
        unreachable!()
    };
    assert!(p.is_batch() && p.entry.is_none());
    assert_eq!((p.first_entry_index(), p.count()), (1, 3));
    // No answer within maxPushTimeOutMs: the same three again.
    n.tick(T0 + 10 + 1001);
    let again: Vec<_> = sends(&n.drain_actions())
        .into_iter()
        .filter(|s| s.1 == "n1" && matches!(&s.2, Request::Push(p) if p.kind == PushType::Append))
        .collect();
    assert_eq!(again.len(), 1);
    let Request::Push(p2) = &again[0].2 else {
        unreachable!()
    };
    assert_eq!((p2.first_entry_index(), p2.count()), (1, 3));
    // The follower's 200 names the first index and the count.
    let mut r = push_resp(200, 2, Some(1), 0, 3);
    if let Response::Push(p) = &mut r {
        p.count = 3;
    }
    n.handle_response(again[0].0, r, T0 + 1020);
    assert_eq!(n.peer_watermark("n1"), 3);
    let a = n.drain_actions();
    let mut got = outcomes(&a);
    got.sort_by_key(|o| o.1); // the quorum checker walks down from the quorum index, as Java
    assert_eq!(
        got,
        vec![
            (2, 1, ResponseCode::Success),
            (2, 2, ResponseCode::Success),
            (2, 3, ResponseCode::Success)
        ]
    );
}

/// Java's default (no batch push): one push per entry.
#[test]
fn without_batch_push_each_entry_is_its_own_push() {
    let mut n = appending(3, &[1], 2, None);
    n.drain_actions();
    let bodies: Vec<Bytes> = (0..3).map(|i| Bytes::from(format!("b{i}"))).collect();
    assert!(n.propose_each(bodies, T0 + 10).iter().all(Result::is_ok));
    let firsts: Vec<i64> = sends(&n.drain_actions())
        .into_iter()
        .filter_map(|s| match &s.2 {
            Request::Push(p) if s.1 == "n1" && p.kind == PushType::Append => {
                assert!(!p.is_batch());
                Some(p.first_entry_index())
            }
            _ => None,
        })
        .collect();
    assert_eq!(firsts, vec![1, 2, 3]);
}

/// Not Java: the commit index sent to a peer never exceeds what that peer is
/// known to hold in this term (its watermark, or the entries the push
/// carries), so a follower cannot count a stale tail as committed.
#[test]
fn commit_index_sent_to_a_peer_is_clamped_to_its_watermark() {
    let mut n = appending(3, &[1], 2, None);
    n.drain_actions();
    n.propose(Bytes::from_static(b"x"), T0 + 10).unwrap();
    let a = n.drain_actions();
    let to_n1 = sends(&a)
        .into_iter()
        .find(|s| s.1 == "n1" && matches!(&s.2, Request::Push(p) if p.kind == PushType::Append))
        .expect("append to n1");
    n.handle_response(to_n1.0, push_resp(200, 2, Some(1), 0, 1), T0 + 11);
    assert_eq!(n.storage().committed_index(), 1);
    assert_eq!(n.peer_watermark("n2"), 0);
    n.drain_actions();
    // A second later both dispatchers send COMMIT: n1 holds index 1, n2 only 0.
    n.tick(T0 + 11 + 1002);
    let commits: Vec<(String, i64)> = sends(&n.drain_actions())
        .into_iter()
        .filter_map(|s| match &s.2 {
            Request::Push(p) if p.kind == PushType::Commit => Some((s.1.clone(), p.commit_index)),
            _ => None,
        })
        .collect();
    assert!(commits.contains(&("n1".to_string(), 1)), "{commits:?}");
    assert!(commits.contains(&("n2".to_string(), 0)), "{commits:?}");
}
