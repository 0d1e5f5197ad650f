//! §2.11/§2.12 commit index and append outcomes.

use super::*;

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
