//! Java's `DLedgerLeaderElector`: the state maintainer thread (vote
//! rounds as candidate, heartbeat rounds as leader, the election timeout as
//! follower), the answers to VOTE and HEARTBEAT, and the role changes
//! (`changeRoleTo*`, which update [`MemberState`] and report
//! [`Action::RoleChanged`]). The rounds Java waits on with latches are a
//! [`Maintainer`] state with a deadline.

use super::member::{is_quorum, MemberState};
use super::message::*;
use super::outbox::{request_header, Action, Earliest, Outbox, Outstanding};
use super::storage::Storage;
use super::transfer::Transfer;
use crate::config::DLedgerConfig;

/// Small deterministic PRNG (SplitMix64) so the core needs no RNG crate.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)`; 0 when `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// `VoteResponse.ParseResult`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseResult {
    WaitToRevote,
    RevoteImmediately,
    Passed,
    WaitToVoteNext,
}

/// A vote round in progress (the maintainer thread blocked on `voteLatch`).
#[derive(Debug)]
struct VoteRound {
    seq: u64,
    term: i64,
    /// When the requests went out: a follower that granted its vote did so
    /// after this.
    started: i64,
    deadline: i64,
    all: usize,
    valid: usize,
    accepted: usize,
    not_ready: usize,
    bigger_ledger: usize,
    already_has_leader: bool,
    known_max_term: i64,
}

/// A heartbeat round in progress (maintainer blocked on `beatLatch`).
#[derive(Debug)]
struct HeartbeatRound {
    seq: u64,
    term: i64,
    /// When the heartbeats went out: a follower that acknowledged one reset
    /// its election timer after this.
    started: i64,
    deadline: i64,
    all: usize,
    succ: usize,
    not_ready: usize,
    max_term: i64,
    inconsistent_leader: bool,
}

#[derive(Debug)]
enum Maintainer {
    Idle,
    Voting(VoteRound),
    Beating(HeartbeatRound),
}

/// The elector's state.
pub(super) struct Elector {
    rng: SplitMix64,
    last_parse_result: ParseResult,
    need_increase_term_immediately: bool,
    next_time_to_request_vote: Option<i64>,
    last_leader_heartbeat: i64,
    last_send_heartbeat: Option<i64>,
    last_succ_heartbeat: Option<i64>,
    /// Leader: start of the last round (vote or heartbeat) a quorum
    /// answered; no follower can time out before `quorum_contact` plus its
    /// election timeout (see `Node::leader_lease_until`).
    quorum_contact: i64,
    maintainer: Maintainer,
    round_seq: u64,
    /// The last `(term, role)` reported as [`Action::RoleChanged`].
    last_role_event: Option<(i64, Role)>,
}

impl Elector {
    /// `seed` feeds the vote-delay randomness.
    pub(super) fn new(seed: u64, now: i64) -> Self {
        Elector {
            rng: SplitMix64(seed),
            last_parse_result: ParseResult::WaitToRevote,
            need_increase_term_immediately: false,
            next_time_to_request_vote: None,
            last_leader_heartbeat: now,
            last_send_heartbeat: None,
            last_succ_heartbeat: None,
            quorum_contact: i64::MIN,
            maintainer: Maintainer::Idle,
            round_seq: 0,
            last_role_event: None,
        }
    }

    pub(super) fn last_parse_result(&self) -> ParseResult {
        self.last_parse_result
    }
    pub(super) fn need_increase_term_immediately(&self) -> bool {
        self.need_increase_term_immediately
    }
    pub(super) fn next_time_to_request_vote(&self) -> Option<i64> {
        self.next_time_to_request_vote
    }
    /// See `Node::leader_lease_until`; `i64::MIN` before any quorum answered.
    pub(super) fn quorum_contact(&self) -> i64 {
        self.quorum_contact
    }

    /// When the maintainer next has work.
    pub(super) fn poll_timeout(&self, cfg: &DLedgerConfig, member: &MemberState, t: &mut Earliest) {
        match &self.maintainer {
            Maintainer::Voting(r) => t.at(r.deadline),
            Maintainer::Beating(r) => t.at(r.deadline),
            Maintainer::Idle => {
                if cfg.enable_leader_elector {
                    match member.role {
                        Role::Candidate => {
                            if self.need_increase_term_immediately {
                                t.at(i64::MIN);
                            } else {
                                t.at(self.next_time_to_request_vote.unwrap_or(i64::MIN));
                            }
                        }
                        Role::Follower => {
                            let hb = cfg.heart_beat_time_interval_ms as i64;
                            let leak = hb * cfg.max_heart_beat_leak as i64;
                            t.at(self.last_leader_heartbeat + leak.max(2 * hb) + 1);
                        }
                        Role::Leader => t.at(self
                            .last_send_heartbeat
                            .map_or(i64::MIN, |t| t + cfg.heart_beat_time_interval_ms as i64 + 1)),
                    }
                }
            }
        }
    }
}

/// The elector's thread and answers, with what they borrow. The transfer
/// state is here for the role-change hook (`TakeLeadershipTask.check`) and
/// `isTakingLeadership`.
pub(super) struct ElectorHandler<'a, S> {
    pub(super) cfg: &'a DLedgerConfig,
    pub(super) store: &'a mut S,
    pub(super) member: &'a mut MemberState,
    pub(super) elector: &'a mut Elector,
    pub(super) transfer: &'a mut Transfer,
    pub(super) out: &'a mut Outbox,
}

impl<S: Storage> ElectorHandler<'_, S> {
    /// `handleTakeLeadership` once the transferee caught up: candidate at
    /// `term`, with `needIncreaseTermImmediately` set.
    pub(super) fn take_leadership(&mut self, term: i64) {
        self.change_role_to_candidate(term);
        self.elector.need_increase_term_immediately = true;
    }

    fn handle_role_change(&mut self, term: i64, role: Role) {
        self.transfer.on_role_change(term, role, self.out);
        // Java calls the handler on every changeRoleTo*; repeats with the same
        // term and role (a burst of higher-term requests after a pause) carry
        // no news, so only real changes are reported.
        if self.elector.last_role_event == Some((term, role)) {
            return;
        }
        self.elector.last_role_event = Some((term, role));
        self.out.push(Action::RoleChanged { term, role });
    }

    /// `changeRoleToCandidate(term)`.
    fn change_role_to_candidate(&mut self, term: i64) {
        if term >= self.member.term {
            if term > self.member.known_max_term {
                self.member.known_max_term = term;
            }
            self.member.role = Role::Candidate;
            self.member.leader_id = None;
            self.member.transferee = None;
            self.handle_role_change(term, Role::Candidate);
        }
    }

    /// `changeRoleToFollower(term, leaderId)`.
    fn change_role_to_follower(&mut self, term: i64, leader: &str, now: i64) {
        self.elector.last_parse_result = ParseResult::WaitToRevote;
        self.member.role = Role::Follower;
        self.member.leader_id = Some(leader.to_string());
        self.member.transferee = None;
        self.elector.last_leader_heartbeat = now;
        self.handle_role_change(term, Role::Follower);
    }

    /// `changeRoleToLeader(term)`: only if the term has not moved.
    fn change_role_to_leader(&mut self, term: i64) {
        if self.member.term == term {
            self.member.role = Role::Leader;
            self.member.leader_id = Some(self.cfg.self_id.clone());
            self.member.peers_live.clear();
            self.elector.last_send_heartbeat = None;
            self.handle_role_change(term, Role::Leader);
        }
    }

    fn next_vote_time(&mut self, now: i64) -> i64 {
        let (min, max) = if self
            .transfer
            .is_taking_leadership(self.cfg, self.member.term)
        {
            (
                self.cfg.min_take_leadership_vote_interval_ms,
                self.cfg.max_take_leadership_vote_interval_ms,
            )
        } else {
            (self.cfg.min_vote_interval_ms, self.cfg.max_vote_interval_ms)
        };
        now + min as i64 + self.elector.rng.below(max.saturating_sub(min)) as i64
    }

    // ----- vote (handleVote, docs/protocol/dledger.md §2.5) ------------------

    pub(super) fn handle_vote(&mut self, req: &VoteRequest, self_vote: bool) -> VoteResponse {
        let result = self.vote_decision(req, self_vote);
        let mut header = req.header.clone();
        header.term = if result == VoteResult::RejectTermSmallThanLedger {
            self.store.end_term()
        } else {
            self.member.term
        };
        VoteResponse {
            header,
            vote_result: result,
        }
    }

    fn vote_decision(&mut self, req: &VoteRequest, self_vote: bool) -> VoteResult {
        let cand = req.header.leader_id.as_deref();
        if !self.member.is_peer(cand) {
            return VoteResult::RejectUnknownLeader;
        }
        let cand = cand.unwrap_or_default().to_string();
        if !self_vote && cand == self.cfg.self_id {
            return VoteResult::RejectUnexpectedLeader;
        }
        let (le_index, le_term) = (self.store.end_index(), self.store.end_term());
        if req.ledger_end_term < le_term {
            return VoteResult::RejectExpiredLedgerTerm;
        } else if req.ledger_end_term == le_term && req.ledger_end_index < le_index {
            return VoteResult::RejectSmallLedgerEndIndex;
        }
        let rt = req.header.term;
        if rt < self.member.term {
            return VoteResult::RejectExpiredVoteTerm;
        } else if rt == self.member.term {
            match &self.member.vote_for {
                None => {}
                Some(v) if *v == cand => {}
                Some(_) => {
                    return if self.member.leader_id.is_some() {
                        VoteResult::RejectAlreadyHasLeader
                    } else {
                        VoteResult::RejectAlreadyVoted
                    };
                }
            }
        } else {
            self.change_role_to_candidate(rt);
            self.elector.need_increase_term_immediately = true;
            return VoteResult::RejectTermNotReady;
        }
        if rt < le_term {
            return VoteResult::RejectTermSmallThanLedger;
        }
        if !self_vote
            && self
                .transfer
                .is_taking_leadership(self.cfg, self.member.term)
            && req.ledger_end_term == le_term
            && le_index >= req.ledger_end_index
        {
            return VoteResult::RejectTakingLeadership;
        }
        self.member.vote_for = Some(cand);
        self.member.persist(self.store);
        VoteResult::Accept
    }

    // ----- heartbeat (handleHeartBeat, docs/protocol/dledger.md §2.6) --------

    pub(super) fn handle_heartbeat(
        &mut self,
        req: &HeartBeatRequest,
        now: i64,
    ) -> HeartBeatResponse {
        let code = |c: ResponseCode, term: i64| HeartBeatResponse {
            header: Header {
                term,
                code: c.code(),
                ..Header::default()
            },
        };
        let leader = req.header.leader_id.as_deref();
        if !self.member.is_peer(leader) {
            return code(ResponseCode::UnknownMember, self.member.term);
        }
        let leader = leader.unwrap_or_default().to_string();
        if leader == self.cfg.self_id {
            return code(ResponseCode::UnexpectedMember, self.member.term);
        }
        let rt = req.header.term;
        if rt < self.member.term {
            code(ResponseCode::ExpiredTerm, self.member.term)
        } else if rt == self.member.term {
            match &self.member.leader_id {
                None => {
                    self.change_role_to_follower(rt, &leader, now);
                    code(ResponseCode::Success, -1)
                }
                Some(l) if *l == leader => {
                    self.elector.last_leader_heartbeat = now;
                    code(ResponseCode::Success, -1)
                }
                Some(_) => code(ResponseCode::InconsistentLeader, self.member.term),
            }
        } else {
            self.change_role_to_candidate(rt);
            self.elector.need_increase_term_immediately = true;
            code(ResponseCode::TermNotReady, self.member.term)
        }
    }

    // ----- candidate (maintainAsCandidate, docs/protocol/dledger.md §2.3) ----

    fn maintain_as_candidate(&mut self, now: i64) {
        let due = self
            .elector
            .next_time_to_request_vote
            .is_none_or(|t| now >= t);
        if !due && !self.elector.need_increase_term_immediately {
            return;
        }
        if self.member.role != Role::Candidate {
            return;
        }
        let term = if self.elector.last_parse_result == ParseResult::WaitToVoteNext
            || self.elector.need_increase_term_immediately
        {
            let t = self.member.next_term(self.store);
            self.elector.last_parse_result = ParseResult::WaitToRevote;
            t
        } else {
            self.member.term
        };
        let (le_index, le_term) = (self.store.end_index(), self.store.end_term());
        if self.elector.need_increase_term_immediately {
            self.elector.next_time_to_request_vote = Some(self.next_vote_time(now));
            self.elector.need_increase_term_immediately = false;
            return;
        }
        self.elector.round_seq += 1;
        let seq = self.elector.round_seq;
        // Java: 2000 + rand[0, maxVoteIntervalMs) (`voteWaitBaseMs` here).
        let wait = self.cfg.vote_wait_base_ms as i64
            + self.elector.rng.below(self.cfg.max_vote_interval_ms) as i64;
        self.elector.maintainer = Maintainer::Voting(VoteRound {
            seq,
            term,
            started: now,
            deadline: now + wait,
            all: 0,
            valid: 0,
            accepted: 0,
            not_ready: 0,
            bigger_ledger: 0,
            already_has_leader: false,
            known_max_term: term,
        });
        let peers = self.member.peers.clone();
        for p in &peers {
            let mut header = request_header(self.cfg, p, term);
            header.leader_id = Some(self.cfg.self_id.clone());
            let req = VoteRequest {
                header,
                ledger_end_index: le_index,
                ledger_end_term: le_term,
            };
            if *p == self.cfg.self_id {
                let resp = self.handle_vote(&req, true);
                self.on_vote_reply(seq, &resp, now);
            } else {
                self.out
                    .send(p, Request::Vote(req), Outstanding::Vote { seq });
            }
        }
    }

    pub(super) fn on_vote_reply(&mut self, seq: u64, v: &VoteResponse, now: i64) {
        let peers = self.member.peers.len();
        let Maintainer::Voting(r) = &mut self.elector.maintainer else {
            return;
        };
        if r.seq != seq {
            return;
        }
        if v.vote_result != VoteResult::Unknown {
            r.valid += 1;
        }
        match v.vote_result {
            VoteResult::Accept => r.accepted += 1,
            VoteResult::RejectAlreadyHasLeader => r.already_has_leader = true,
            VoteResult::RejectTermSmallThanLedger | VoteResult::RejectExpiredVoteTerm
                if v.header.term > r.known_max_term =>
            {
                r.known_max_term = v.header.term;
            }
            VoteResult::RejectExpiredLedgerTerm | VoteResult::RejectSmallLedgerEndIndex => {
                r.bigger_ledger += 1
            }
            VoteResult::RejectTermNotReady => r.not_ready += 1,
            _ => {}
        }
        r.all += 1;
        let latch = r.already_has_leader
            || is_quorum(r.accepted, peers)
            || is_quorum(r.accepted + r.not_ready, peers)
            || r.all == peers;
        if latch {
            self.finish_vote_round(now);
        }
    }

    /// The decision table of docs/protocol/dledger.md §2.3, run when the latch
    /// trips or the wait ends.
    fn finish_vote_round(&mut self, now: i64) {
        let Maintainer::Voting(r) =
            std::mem::replace(&mut self.elector.maintainer, Maintainer::Idle)
        else {
            return;
        };
        let hb_leak = (self.cfg.heart_beat_time_interval_ms * self.cfg.max_heart_beat_leak) as i64;
        let result = if r.known_max_term > r.term {
            self.elector.next_time_to_request_vote = Some(self.next_vote_time(now));
            self.change_role_to_candidate(r.known_max_term);
            ParseResult::WaitToVoteNext
        } else if r.already_has_leader {
            self.elector.next_time_to_request_vote = Some(self.next_vote_time(now) + hb_leak);
            ParseResult::WaitToRevote
        } else if !self.member.quorum(r.valid) {
            self.elector.next_time_to_request_vote = Some(self.next_vote_time(now));
            ParseResult::WaitToRevote
        } else if !self.member.quorum(r.valid - r.bigger_ledger) {
            self.elector.next_time_to_request_vote =
                Some(self.next_vote_time(now) + self.cfg.max_vote_interval_ms as i64);
            ParseResult::WaitToRevote
        } else if self.member.quorum(r.accepted) {
            ParseResult::Passed
        } else if self.member.quorum(r.accepted + r.not_ready) {
            ParseResult::RevoteImmediately
        } else {
            self.elector.next_time_to_request_vote = Some(self.next_vote_time(now));
            ParseResult::WaitToVoteNext
        };
        self.elector.last_parse_result = result;
        if result == ParseResult::Passed {
            self.elector.quorum_contact = r.started;
            self.change_role_to_leader(r.term);
        }
    }

    // ----- leader heartbeats (maintainAsLeader / sendHeartbeats) -------------
    // docs/protocol/dledger.md §2.4

    fn maintain_as_leader(&mut self, now: i64) {
        let due = self
            .elector
            .last_send_heartbeat
            .is_none_or(|t| now - t > self.cfg.heart_beat_time_interval_ms as i64);
        if !due || self.member.role != Role::Leader {
            return;
        }
        let term = self.member.term;
        self.elector.last_send_heartbeat = Some(now);
        self.elector.round_seq += 1;
        let seq = self.elector.round_seq;
        self.elector.maintainer = Maintainer::Beating(HeartbeatRound {
            seq,
            term,
            started: now,
            deadline: now + self.cfg.heart_beat_time_interval_ms as i64,
            all: 1,
            succ: 1,
            not_ready: 0,
            max_term: -1,
            inconsistent_leader: false,
        });
        let peers: Vec<String> = self
            .member
            .peers
            .iter()
            .filter(|p| **p != self.cfg.self_id)
            .cloned()
            .collect();
        for p in peers {
            let req = HeartBeatRequest {
                header: request_header(self.cfg, &p, term),
            };
            self.out.send(
                &p,
                Request::HeartBeat(req),
                Outstanding::HeartBeat {
                    seq,
                    peer: p.clone(),
                },
            );
        }
        if self.member.peers.len() == 1 {
            self.finish_heartbeat_round(now);
        }
    }

    pub(super) fn on_heartbeat_reply(&mut self, seq: u64, peer: &str, h: &Header, now: i64) {
        // The live table is updated even after the round is over.
        let live = h.code != ResponseCode::NetworkError.code();
        self.member.peers_live.insert(peer.to_string(), live);
        let peers = self.member.peers.len();
        let Maintainer::Beating(r) = &mut self.elector.maintainer else {
            return;
        };
        if r.seq != seq {
            return;
        }
        match ResponseCode::from_code(h.code) {
            Some(ResponseCode::Success) => r.succ += 1,
            Some(ResponseCode::ExpiredTerm) => r.max_term = h.term,
            Some(ResponseCode::InconsistentLeader) => r.inconsistent_leader = true,
            Some(ResponseCode::TermNotReady) => r.not_ready += 1,
            _ => {}
        }
        r.all += 1;
        if is_quorum(r.succ, peers) || is_quorum(r.succ + r.not_ready, peers) || r.all == peers {
            self.finish_heartbeat_round(now);
        }
    }

    fn finish_heartbeat_round(&mut self, now: i64) {
        let Maintainer::Beating(r) =
            std::mem::replace(&mut self.elector.maintainer, Maintainer::Idle)
        else {
            return;
        };
        let leak = (self.cfg.heart_beat_time_interval_ms * self.cfg.max_heart_beat_leak) as i64;
        if self.member.quorum(r.succ) {
            self.elector.last_succ_heartbeat = Some(now);
            self.elector.quorum_contact = self.elector.quorum_contact.max(r.started);
        } else if self.member.quorum(r.succ + r.not_ready) {
            self.elector.last_send_heartbeat = None;
        } else if r.max_term > r.term {
            self.change_role_to_candidate(r.max_term);
        } else if r.inconsistent_leader
            || self
                .elector
                .last_succ_heartbeat
                .is_none_or(|t| now - t > leak)
        {
            self.change_role_to_candidate(r.term);
        }
    }

    fn maintain_as_follower(&mut self, now: i64) {
        let hb = self.cfg.heart_beat_time_interval_ms as i64;
        let elapsed = now - self.elector.last_leader_heartbeat;
        if elapsed > 2 * hb
            && elapsed > self.cfg.max_heart_beat_leak as i64 * hb
            && self.member.role == Role::Follower
        {
            let t = self.member.term;
            self.change_role_to_candidate(t);
        }
    }

    /// One pass of the state maintainer thread.
    pub(super) fn run(&mut self, now: i64) {
        if !self.cfg.enable_leader_elector {
            return;
        }
        match &self.elector.maintainer {
            Maintainer::Voting(r) => {
                if now >= r.deadline {
                    self.finish_vote_round(now);
                }
                return;
            }
            Maintainer::Beating(r) => {
                if now >= r.deadline {
                    self.finish_heartbeat_round(now);
                }
                return;
            }
            Maintainer::Idle => {}
        }
        match self.member.role {
            Role::Leader => self.maintain_as_leader(now),
            Role::Follower => self.maintain_as_follower(now),
            Role::Candidate => self.maintain_as_candidate(now),
        }
    }
}
