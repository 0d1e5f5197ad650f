//! §2.3 candidate decision table.

use super::*;
use dledger::core::ParseResult as ParseResultAlias;

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
