//! Java's `MemberState`: what this member believes about the group — its
//! role, the current term and vote (persisted as `currterm`), the leader,
//! the largest term seen, the leadership-transfer target, and which peers
//! answered the last heartbeats. The elector changes role and term; every
//! other part reads them.

use std::collections::HashMap;

use super::message::Role;
use super::storage::{HardState, Storage};

/// More than half of `peers` (`MemberState.isQuorum`).
pub(super) fn is_quorum(n: usize, peers: usize) -> bool {
    n > peers / 2
}

pub(super) struct MemberState {
    /// Every member's id, self included (`peerMap`).
    pub(super) peers: Vec<String>,
    pub(super) role: Role,
    pub(super) term: i64,
    pub(super) vote_for: Option<String>,
    /// The known leader (self when leader).
    pub(super) leader_id: Option<String>,
    pub(super) known_max_term: i64,
    /// Current transfer target while a leadership transfer runs.
    pub(super) transferee: Option<String>,
    /// `peersLiveTable`: who answered the last heartbeat (leader only).
    pub(super) peers_live: HashMap<String, bool>,
}

impl MemberState {
    /// At start-up: CANDIDATE at the persisted term and vote.
    pub(super) fn new(peers: Vec<String>, hs: HardState) -> Self {
        MemberState {
            peers,
            role: Role::Candidate,
            term: hs.term,
            vote_for: hs.vote,
            leader_id: None,
            known_max_term: -1,
            transferee: None,
            peers_live: HashMap::new(),
        }
    }

    pub(super) fn is_peer(&self, id: Option<&str>) -> bool {
        id.is_some_and(|id| self.peers.iter().any(|p| p == id))
    }

    pub(super) fn quorum(&self, n: usize) -> bool {
        is_quorum(n, self.peers.len())
    }

    pub(super) fn persist<S: Storage>(&self, store: &mut S) {
        // Java's persistState logs a failure and carries on; so do we.
        let _ = store.save_hard_state(&HardState {
            term: self.term,
            vote: self.vote_for.clone(),
        });
    }

    /// `MemberState.nextTerm()`.
    pub(super) fn next_term<S: Storage>(&mut self, store: &mut S) -> i64 {
        if self.known_max_term > self.term {
            self.term = self.known_max_term;
        } else {
            self.term += 1;
        }
        self.vote_for = None;
        self.persist(store);
        self.term
    }
}
