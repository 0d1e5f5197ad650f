//! Timers always advance (no busy loop) and role-change reports.

use super::*;

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
