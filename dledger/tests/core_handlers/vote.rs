//! §2.5 vote handling.

use super::*;

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
