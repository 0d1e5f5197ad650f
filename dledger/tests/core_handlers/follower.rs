//! §2.10 follower side.

use super::*;

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
