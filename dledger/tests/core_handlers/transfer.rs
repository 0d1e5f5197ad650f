//! §2.8 leadership transfer.

use super::*;

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
