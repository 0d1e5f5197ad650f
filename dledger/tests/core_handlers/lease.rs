//! §2.4 leader heartbeats and the leader lease.

use super::*;

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
