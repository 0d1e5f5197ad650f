//! §2.9 leader COMPARE decision table, and what the leader pushes:
//! batch pushes and the commit index it sends.

use super::*;

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

// ----- batch push and the commit index sent to a peer ------------------------

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
