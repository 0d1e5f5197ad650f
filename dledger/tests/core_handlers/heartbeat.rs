//! §2.6 heartbeat handling.

use super::*;

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
