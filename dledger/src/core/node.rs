//! One DLedger member as a sans-IO state machine (Java's
//! `DLedgerLeaderElector`, `DLedgerEntryPusher` and the parts of
//! `DLedgerServer`/`MemberState` that decide things).
//!
//! # Driving a node
//!
//! - Create with [`Node::new`] (config, storage, RNG seed, `now`). It starts
//!   as CANDIDATE and votes at its persisted term on the first [`Node::tick`].
//! - Inbound peer request: pick a fresh [`InboundId`], call
//!   [`Node::handle_request`]. The answer comes out as
//!   [`Action::Respond`] with that id — usually already queued when the call
//!   returns, but PUSH and LEADERSHIP_TRANSFER may be answered later, and
//!   some PUSH requests get [`Action::Abandon`] (Java never answers those;
//!   the sender times out). The group/remoteId checks (400/401) are done here.
//! - Outbound: [`Action::Send`] carries an [`OutboundId`]. Deliver the answer
//!   with [`Node::handle_response`]; on connect failure or after the 3000 ms
//!   RPC timeout call [`Node::handle_send_failure`] (it synthesises Java's
//!   NETWORK_ERROR / vote UNKNOWN). Late or unknown ids are ignored.
//! - Client APPEND (50001): [`Node::propose`] returns the assigned
//!   `(term, index, pos)` or a code (404, 503, 506, storage codes). The final
//!   result arrives later as [`Action::AppendOutcome`] keyed by
//!   `(term, index)`: 200, 502 (not acked within maxWaitAckTimeMs) or 501
//!   (term changed). 501/502 are indeterminate, not failures.
//! - Time: call [`Node::tick`] at or after [`Node::poll_timeout`] (and
//!   whenever convenient; extra ticks are harmless). `now` is monotonic ms.
//! - After every call drain [`Node::drain_actions`] and execute in order.
//!
//! Java runs this logic on several threads (state maintainer, one
//! dispatcher per follower, quorum-ack checker, follower entry handler);
//! here each of them is a piece of state plus timers, and "run every 1 ms"
//! becomes "run after every input". Waits on futures become a recorded
//! outstanding request with a deadline.

use bytes::Bytes;

use super::follower::{EntryHandler, FollowerHandler};
use super::member::{is_quorum, MemberState};
use super::message::*;
use super::outbox::{request_header, Earliest, Outbox, Outstanding};
pub use super::outbox::{Action, InboundId, OutboundId};
use super::pusher::{PushHandler, Pusher};
pub use super::quorum::ProposeOk;
use super::quorum::{Quorum, QuorumHandler, Watermarks};
use super::storage::Storage;
use super::PERIOD_MS;
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

/// The transferee waiting for its log to reach `takeLeadershipLedgerIndex`.
#[derive(Debug)]
struct TakeWait {
    id: InboundId,
    req: LeadershipTransferRequest,
    deadline: i64,
}

/// One DLedger member. See the module documentation for the driving API.
pub struct Node<S: Storage> {
    cfg: DLedgerConfig,
    store: S,
    rng: SplitMix64,
    member: MemberState,
    term_to_take_leadership: i64,
    // DLedgerLeaderElector
    last_parse_result: ParseResult,
    need_increase_term_immediately: bool,
    next_time_to_request_vote: Option<i64>,
    last_leader_heartbeat: i64,
    last_send_heartbeat: Option<i64>,
    last_succ_heartbeat: Option<i64>,
    /// Leader: start of the last round (vote or heartbeat) a quorum
    /// answered; no follower can time out before `quorum_contact` plus its
    /// election timeout (see [`Node::leader_lease_until`]).
    quorum_contact: i64,
    maintainer: Maintainer,
    round_seq: u64,
    take_task: Option<InboundId>,
    take_wait: Option<TakeWait>,
    last_preferred_check: i64,
    /// The last `(term, role)` reported as [`Action::RoleChanged`].
    last_role_event: Option<(i64, Role)>,
    // DLedgerEntryPusher (leader side)
    pusher: Pusher,
    watermarks: Watermarks,
    quorum: Quorum,
    entries: EntryHandler,
    out: Outbox,
}

impl<S: Storage> Node<S> {
    /// A node at start-up: CANDIDATE at the persisted term, voting at once.
    /// `seed` feeds the vote-delay randomness.
    pub fn new(cfg: DLedgerConfig, store: S, seed: u64, now: u64) -> Self {
        let now = now as i64;
        let hs = store.hard_state();
        let peers = cfg.peer_ids();
        let pusher = Pusher::new(&cfg, &peers, now);
        Node {
            cfg,
            store,
            rng: SplitMix64(seed),
            member: MemberState::new(peers.clone(), hs),
            term_to_take_leadership: -1,
            last_parse_result: ParseResult::WaitToRevote,
            need_increase_term_immediately: false,
            next_time_to_request_vote: None,
            last_leader_heartbeat: now,
            last_send_heartbeat: None,
            last_succ_heartbeat: None,
            quorum_contact: i64::MIN,
            maintainer: Maintainer::Idle,
            round_seq: 0,
            take_task: None,
            take_wait: None,
            last_preferred_check: now,
            last_role_event: None,
            pusher,
            watermarks: Watermarks::new(peers),
            quorum: Quorum::new(now),
            entries: EntryHandler::new(now),
            out: Outbox::new(),
        }
    }

    // ----- accessors -------------------------------------------------------

    pub fn id(&self) -> &str {
        &self.cfg.self_id
    }
    pub fn role(&self) -> Role {
        self.member.role
    }
    pub fn term(&self) -> i64 {
        self.member.term
    }

    /// While leader: the time until which no other member can have been
    /// elected, i.e. the start of the last round a quorum answered plus the
    /// shortest follower election timeout (`maintainAsFollower` waits more
    /// than both 2 and `maxHeartBeatLeak` heartbeat intervals). `None` when
    /// not leader. A leader that was paused past this time may already
    /// have been replaced without knowing it yet.
    pub fn leader_lease_until(&self) -> Option<i64> {
        if self.member.role != Role::Leader || self.quorum_contact == i64::MIN {
            return None;
        }
        let hb = self.cfg.heart_beat_time_interval_ms as i64;
        let timeout = hb.saturating_mul((self.cfg.max_heart_beat_leak as i64).max(2));
        Some(self.quorum_contact.saturating_add(timeout))
    }
    pub fn vote_for(&self) -> Option<&str> {
        self.member.vote_for.as_deref()
    }
    /// The known leader (self when leader).
    pub fn leader_id(&self) -> Option<&str> {
        self.member.leader_id.as_deref()
    }
    pub fn config(&self) -> &DLedgerConfig {
        &self.cfg
    }
    pub fn storage(&self) -> &S {
        &self.store
    }
    /// Direct storage access (tests, and the server for reads). Writing the
    /// log behind the core's back breaks its invariants.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.store
    }
    /// The storage, for a restart (volatile state is dropped).
    pub fn into_storage(self) -> S {
        self.store
    }
    pub fn last_parse_result(&self) -> ParseResult {
        self.last_parse_result
    }
    pub fn need_increase_term_immediately(&self) -> bool {
        self.need_increase_term_immediately
    }
    pub fn known_max_term_in_group(&self) -> i64 {
        self.member.known_max_term
    }
    pub fn next_time_to_request_vote(&self) -> Option<i64> {
        self.next_time_to_request_vote
    }
    /// Current transfer target while a leadership transfer runs.
    pub fn transferee(&self) -> Option<&str> {
        self.member.transferee.as_deref()
    }
    /// `peersLiveTable`: who answered the last heartbeat (leader only).
    pub fn peer_live(&self, peer: &str) -> Option<bool> {
        self.member.peers_live.get(peer).copied()
    }
    /// The leader's acknowledged index for `peer` in the current term.
    pub fn peer_watermark(&self, peer: &str) -> i64 {
        self.watermarks.peek(self.member.term, peer)
    }
    /// Number of pending (not yet completed) appends of the current term.
    pub fn pending_append_count(&self) -> usize {
        self.quorum.pending_count(self.member.term)
    }

    /// A one-line summary of the volatile state, for logs and test failures.
    pub fn debug_state(&self) -> String {
        let (parked, queue, last_ff) = self.entries.summary();
        let d = self.pusher.describe(&self.watermarks, self.member.term);
        format!(
            "{} {:?} term={} leader={:?} end={} committed={} pending={} parked={:?} queue={} lastQuorum={} lastFF={} [{}]",
            self.cfg.self_id,
            self.member.role,
            self.member.term,
            self.member.leader_id,
            self.store.end_index(),
            self.store.committed_index(),
            self.pending_append_count(),
            parked,
            queue,
            self.quorum.last_quorum_index(),
            last_ff,
            d.join("; ")
        )
    }

    /// Takes all queued actions.
    pub fn drain_actions(&mut self) -> Vec<Action> {
        self.out.drain()
    }

    // ----- handlers: each borrows the state it needs ------------------------

    fn quorum_handler(&mut self) -> QuorumHandler<'_, S> {
        QuorumHandler {
            cfg: &self.cfg,
            store: &mut self.store,
            member: &self.member,
            quorum: &mut self.quorum,
            watermarks: &mut self.watermarks,
            out: &mut self.out,
        }
    }

    fn pusher_handler(&mut self) -> PushHandler<'_, S> {
        PushHandler {
            cfg: &self.cfg,
            store: &self.store,
            member: &self.member,
            pusher: &mut self.pusher,
            watermarks: &mut self.watermarks,
            out: &mut self.out,
        }
    }

    fn follower(&mut self) -> FollowerHandler<'_, S> {
        FollowerHandler {
            cfg: &self.cfg,
            store: &mut self.store,
            member: &self.member,
            entries: &mut self.entries,
            out: &mut self.out,
        }
    }

    // ----- inputs ----------------------------------------------------------

    /// Advances timers; call at or after [`Node::poll_timeout`].
    pub fn tick(&mut self, now: u64) {
        self.run(now as i64);
    }

    /// A request from a peer (or admin). The answer is queued as
    /// [`Action::Respond`] (or [`Action::Abandon`]) with `id`.
    pub fn handle_request(&mut self, id: InboundId, request: Request, now: u64) {
        let now = now as i64;
        let h = request.header().clone();
        let err = if h.remote_id.as_deref() != Some(self.cfg.self_id.as_str()) {
            Some(ResponseCode::UnknownMember)
        } else if h.group.as_deref() != Some(self.cfg.group.as_str()) {
            Some(ResponseCode::UnknownGroup)
        } else {
            None
        };
        if let Some(code) = err {
            let mut rh = h.clone();
            rh.code = code.code();
            rh.leader_id = self.member.leader_id.clone();
            let response = match request {
                Request::Vote(_) => Response::Vote(VoteResponse {
                    header: rh,
                    vote_result: VoteResult::Unknown,
                }),
                Request::HeartBeat(_) => Response::HeartBeat(HeartBeatResponse { header: rh }),
                Request::Push(r) => Response::Push(PushEntryResponse {
                    header: rh,
                    index: None,
                    count: r.count(),
                    begin_index: self.store.begin_index(),
                    end_index: self.store.end_index(),
                }),
                Request::LeadershipTransfer(_) => {
                    Response::LeadershipTransfer(LeadershipTransferResponse { header: rh })
                }
            };
            self.out.push(Action::Respond { id, response });
            self.run(now);
            return;
        }
        match request {
            Request::Vote(r) => {
                let resp = self.handle_vote(&r, false);
                self.out.respond(id, Response::Vote(resp));
            }
            Request::HeartBeat(r) => {
                let resp = self.handle_heartbeat(&r, now);
                self.out.respond(id, Response::HeartBeat(resp));
            }
            Request::Push(r) => self.follower().handle_push(id, r, now),
            Request::LeadershipTransfer(r) => self.handle_transfer_request(id, r, now),
        }
        self.run(now);
    }

    /// The answer to our request `id`.
    pub fn handle_response(&mut self, id: OutboundId, response: Response, now: u64) {
        let now = now as i64;
        if let Some(what) = self.out.take(id) {
            self.on_response(id, what, response, now);
        }
        self.run(now);
    }

    /// Our request `id` failed or timed out: Java's synthesised
    /// NETWORK_ERROR (vote: result UNKNOWN).
    pub fn handle_send_failure(&mut self, id: OutboundId, now: u64) {
        let now = now as i64;
        if let Some(what) = self.out.take(id) {
            let header = Header {
                code: ResponseCode::NetworkError.code(),
                ..Header::default()
            };
            let response = match &what {
                Outstanding::Vote { .. } => Response::Vote(VoteResponse {
                    header: Header::default(),
                    vote_result: VoteResult::Unknown,
                }),
                Outstanding::HeartBeat { .. } => Response::HeartBeat(HeartBeatResponse { header }),
                Outstanding::Transfer { .. } => {
                    Response::LeadershipTransfer(LeadershipTransferResponse { header })
                }
                _ => Response::Push(PushEntryResponse {
                    header,
                    index: None,
                    count: 0,
                    begin_index: -1,
                    end_index: -1,
                }),
            };
            self.on_response(id, what, response, now);
        }
        self.run(now);
    }

    /// Client append (`handleAppend`): on success the entry is in the local
    /// log and its outcome will be an [`Action::AppendOutcome`].
    pub fn propose(&mut self, body: Bytes, now: u64) -> Result<ProposeOk, ResponseCode> {
        let r = self.propose_batch(vec![body], now);
        r.map(|mut v| v.remove(0))
    }

    /// Several client appends at once (as many `handleAppend`s): one entry
    /// and one outcome per body, in order; the dispatchers run once after
    /// all of them, so followers get them in one batch push.
    pub fn propose_each(
        &mut self,
        bodies: Vec<Bytes>,
        now: u64,
    ) -> Vec<Result<ProposeOk, ResponseCode>> {
        let now = now as i64;
        let out = bodies
            .into_iter()
            .map(|b| {
                self.quorum_handler()
                    .append_as_leader(vec![b], now)
                    .and_then(|v| {
                        v.first()
                            .copied()
                            .ok_or(ResponseCode::RequestWithEmptyBodys)
                    })
            })
            .collect();
        self.run(now);
        out
    }

    /// Local batch append (broker message batches): one entry per body, only
    /// the **last** entry gets an outcome. Empty → 420.
    pub fn propose_batch(
        &mut self,
        bodies: Vec<Bytes>,
        now: u64,
    ) -> Result<Vec<ProposeOk>, ResponseCode> {
        let now = now as i64;
        let r = self.quorum_handler().append_as_leader(bodies, now);
        self.run(now);
        r
    }

    /// Admin/local leadership transfer to `transferee` (as if an admin sent
    /// LEADERSHIP_TRANSFER to this leader); the answer is dropped.
    pub fn transfer_leadership(&mut self, transferee: &str, now: u64) -> Result<(), ResponseCode> {
        let now = now as i64;
        let req = LeadershipTransferRequest {
            header: Header {
                term: self.member.term,
                ..Header::default()
            },
            transfer_id: Some(self.cfg.self_id.clone()),
            transferee_id: Some(transferee.to_string()),
            take_leadership_ledger_index: 0,
        };
        let r = self
            .leader_transfer_checks(&req)
            .and_then(|_| self.elector_transfer(None, &req));
        self.run(now);
        r
    }

    /// The earliest time at which [`Node::tick`] has work to do.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut t = Earliest::default();
        match &self.maintainer {
            Maintainer::Voting(r) => t.at(r.deadline),
            Maintainer::Beating(r) => t.at(r.deadline),
            Maintainer::Idle => {
                if self.cfg.enable_leader_elector {
                    match self.member.role {
                        Role::Candidate => {
                            if self.need_increase_term_immediately {
                                t.at(i64::MIN);
                            } else {
                                t.at(self.next_time_to_request_vote.unwrap_or(i64::MIN));
                            }
                        }
                        Role::Follower => {
                            let hb = self.cfg.heart_beat_time_interval_ms as i64;
                            let leak = hb * self.cfg.max_heart_beat_leak as i64;
                            t.at(self.last_leader_heartbeat + leak.max(2 * hb) + 1);
                        }
                        Role::Leader => t.at(self.last_send_heartbeat.map_or(i64::MIN, |t| {
                            t + self.cfg.heart_beat_time_interval_ms as i64 + 1
                        })),
                    }
                }
            }
        }
        if self.member.role == Role::Leader {
            if self.cfg.preferred_leader_ids.is_some() {
                t.at(self.last_preferred_check + PERIOD_MS);
            }
        }
        self.pusher.poll_timeout(
            &self.cfg,
            &self.member,
            self.store.end_index(),
            &self.watermarks,
            &mut t,
        );
        self.quorum.poll_timeout(&self.cfg, &self.member, &mut t);
        self.entries.poll_timeout(&self.member, &mut t);
        if let Some(w) = &self.take_wait {
            t.at(w.deadline + 1);
        }
        t.0.map(|x| x.max(0) as u64)
    }

    // ----- helpers ---------------------------------------------------------

    fn handle_role_change(&mut self, term: i64, role: Role) {
        self.take_leadership_check(term, role);
        // Java calls the handler on every changeRoleTo*; repeats with the same
        // term and role (a burst of higher-term requests after a pause) carry
        // no news, so only real changes are reported.
        if self.last_role_event == Some((term, role)) {
            return;
        }
        self.last_role_event = Some((term, role));
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
        self.last_parse_result = ParseResult::WaitToRevote;
        self.member.role = Role::Follower;
        self.member.leader_id = Some(leader.to_string());
        self.member.transferee = None;
        self.last_leader_heartbeat = now;
        self.handle_role_change(term, Role::Follower);
    }

    /// `changeRoleToLeader(term)`: only if the term has not moved.
    fn change_role_to_leader(&mut self, term: i64) {
        if self.member.term == term {
            self.member.role = Role::Leader;
            self.member.leader_id = Some(self.cfg.self_id.clone());
            self.member.peers_live.clear();
            self.last_send_heartbeat = None;
            self.handle_role_change(term, Role::Leader);
        }
    }

    fn is_taking_leadership(&self) -> bool {
        match &self.cfg.preferred_leader_ids {
            Some(ids) => {
                self.term_to_take_leadership == self.member.term && ids.contains(&self.cfg.self_id)
            }
            None => false,
        }
    }

    fn next_vote_time(&mut self, now: i64) -> i64 {
        let (min, max) = if self.is_taking_leadership() {
            (
                self.cfg.min_take_leadership_vote_interval_ms,
                self.cfg.max_take_leadership_vote_interval_ms,
            )
        } else {
            (self.cfg.min_vote_interval_ms, self.cfg.max_vote_interval_ms)
        };
        now + min as i64 + self.rng.below(max.saturating_sub(min)) as i64
    }

    // ----- vote (handleVote, spec §2.5) --------------------------------------

    fn handle_vote(&mut self, req: &VoteRequest, self_vote: bool) -> VoteResponse {
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
            self.need_increase_term_immediately = true;
            return VoteResult::RejectTermNotReady;
        }
        if rt < le_term {
            return VoteResult::RejectTermSmallThanLedger;
        }
        if !self_vote
            && self.is_taking_leadership()
            && req.ledger_end_term == le_term
            && le_index >= req.ledger_end_index
        {
            return VoteResult::RejectTakingLeadership;
        }
        self.member.vote_for = Some(cand);
        self.member.persist(&mut self.store);
        VoteResult::Accept
    }

    // ----- heartbeat (handleHeartBeat, spec §2.6) ----------------------------

    fn handle_heartbeat(&mut self, req: &HeartBeatRequest, now: i64) -> HeartBeatResponse {
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
                    self.last_leader_heartbeat = now;
                    code(ResponseCode::Success, -1)
                }
                Some(_) => code(ResponseCode::InconsistentLeader, self.member.term),
            }
        } else {
            self.change_role_to_candidate(rt);
            self.need_increase_term_immediately = true;
            code(ResponseCode::TermNotReady, self.member.term)
        }
    }

    // ----- responses ---------------------------------------------------------

    fn on_response(&mut self, id: OutboundId, what: Outstanding, response: Response, now: i64) {
        match (what, response) {
            (Outstanding::Vote { seq }, Response::Vote(v)) => self.on_vote_reply(seq, &v, now),
            (Outstanding::HeartBeat { seq, peer }, Response::HeartBeat(h)) => {
                self.on_heartbeat_reply(seq, &peer, &h.header, now)
            }
            (Outstanding::Compare { peer }, Response::Push(p)) => {
                self.pusher_handler().on_compare_reply(id, &peer, &p, now)
            }
            (Outstanding::Truncate { peer }, Response::Push(p)) => {
                self.pusher_handler().on_truncate_reply(id, &peer, &p, now)
            }
            (Outstanding::Append { peer, first, count }, Response::Push(p)) => self
                .pusher_handler()
                .on_append_reply(&peer, first, count, &p),
            (Outstanding::Commit, _) => {}
            (Outstanding::Transfer { inbound, term }, Response::LeadershipTransfer(t)) => {
                if t.header.code != ResponseCode::Success.code()
                    || (self.member.term == term && self.member.transferee.is_some())
                {
                    self.member.transferee = None;
                }
                if let Some(inb) = inbound {
                    self.out.respond(inb, Response::LeadershipTransfer(t));
                }
            }
            // A response of the wrong shape: treat as a failed call.
            (Outstanding::Vote { seq }, _) => self.on_vote_reply(
                seq,
                &VoteResponse {
                    header: Header::default(),
                    vote_result: VoteResult::Unknown,
                },
                now,
            ),
            (Outstanding::HeartBeat { seq, peer }, _) => {
                let h = Header {
                    code: ResponseCode::NetworkError.code(),
                    ..Header::default()
                };
                self.on_heartbeat_reply(seq, &peer, &h, now)
            }
            (Outstanding::Compare { peer }, _) | (Outstanding::Truncate { peer }, _) => {
                self.pusher_handler().dispatcher_error(&peer, id, now)
            }
            (Outstanding::Append { .. }, _) => {}
            (Outstanding::Transfer { inbound, .. }, _) => {
                self.member.transferee = None;
                if let Some(inb) = inbound {
                    let header = Header {
                        code: ResponseCode::NetworkError.code(),
                        ..Header::default()
                    };
                    self.out.respond(
                        inb,
                        Response::LeadershipTransfer(LeadershipTransferResponse { header }),
                    );
                }
            }
        }
    }

    // ----- candidate (maintainAsCandidate, spec §2.3) ------------------------

    fn maintain_as_candidate(&mut self, now: i64) {
        let due = self.next_time_to_request_vote.is_none_or(|t| now >= t);
        if !due && !self.need_increase_term_immediately {
            return;
        }
        if self.member.role != Role::Candidate {
            return;
        }
        let term = if self.last_parse_result == ParseResult::WaitToVoteNext
            || self.need_increase_term_immediately
        {
            let t = self.member.next_term(&mut self.store);
            self.last_parse_result = ParseResult::WaitToRevote;
            t
        } else {
            self.member.term
        };
        let (le_index, le_term) = (self.store.end_index(), self.store.end_term());
        if self.need_increase_term_immediately {
            self.next_time_to_request_vote = Some(self.next_vote_time(now));
            self.need_increase_term_immediately = false;
            return;
        }
        self.round_seq += 1;
        let seq = self.round_seq;
        // Java: 2000 + rand[0, maxVoteIntervalMs) (`voteWaitBaseMs` here).
        let wait = self.cfg.vote_wait_base_ms as i64
            + self.rng.below(self.cfg.max_vote_interval_ms) as i64;
        self.maintainer = Maintainer::Voting(VoteRound {
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
            let mut header = request_header(&self.cfg, p, term);
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

    fn on_vote_reply(&mut self, seq: u64, v: &VoteResponse, now: i64) {
        let peers = self.member.peers.len();
        let Maintainer::Voting(r) = &mut self.maintainer else {
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

    /// The decision table of spec §2.3, run when the latch trips or the wait ends.
    fn finish_vote_round(&mut self, now: i64) {
        let Maintainer::Voting(r) = std::mem::replace(&mut self.maintainer, Maintainer::Idle)
        else {
            return;
        };
        let hb_leak = (self.cfg.heart_beat_time_interval_ms * self.cfg.max_heart_beat_leak) as i64;
        let result = if r.known_max_term > r.term {
            self.next_time_to_request_vote = Some(self.next_vote_time(now));
            self.change_role_to_candidate(r.known_max_term);
            ParseResult::WaitToVoteNext
        } else if r.already_has_leader {
            self.next_time_to_request_vote = Some(self.next_vote_time(now) + hb_leak);
            ParseResult::WaitToRevote
        } else if !self.member.quorum(r.valid) {
            self.next_time_to_request_vote = Some(self.next_vote_time(now));
            ParseResult::WaitToRevote
        } else if !self.member.quorum(r.valid - r.bigger_ledger) {
            self.next_time_to_request_vote =
                Some(self.next_vote_time(now) + self.cfg.max_vote_interval_ms as i64);
            ParseResult::WaitToRevote
        } else if self.member.quorum(r.accepted) {
            ParseResult::Passed
        } else if self.member.quorum(r.accepted + r.not_ready) {
            ParseResult::RevoteImmediately
        } else {
            self.next_time_to_request_vote = Some(self.next_vote_time(now));
            ParseResult::WaitToVoteNext
        };
        self.last_parse_result = result;
        if result == ParseResult::Passed {
            self.quorum_contact = r.started;
            self.change_role_to_leader(r.term);
        }
    }

    // ----- leader heartbeats (maintainAsLeader / sendHeartbeats, spec §2.4) ---

    fn maintain_as_leader(&mut self, now: i64) {
        let due = self
            .last_send_heartbeat
            .is_none_or(|t| now - t > self.cfg.heart_beat_time_interval_ms as i64);
        if !due || self.member.role != Role::Leader {
            return;
        }
        let term = self.member.term;
        self.last_send_heartbeat = Some(now);
        self.round_seq += 1;
        let seq = self.round_seq;
        self.maintainer = Maintainer::Beating(HeartbeatRound {
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
                header: request_header(&self.cfg, &p, term),
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

    fn on_heartbeat_reply(&mut self, seq: u64, peer: &str, h: &Header, now: i64) {
        // The live table is updated even after the round is over.
        let live = h.code != ResponseCode::NetworkError.code();
        self.member.peers_live.insert(peer.to_string(), live);
        let peers = self.member.peers.len();
        let Maintainer::Beating(r) = &mut self.maintainer else {
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
        let Maintainer::Beating(r) = std::mem::replace(&mut self.maintainer, Maintainer::Idle)
        else {
            return;
        };
        let leak = (self.cfg.heart_beat_time_interval_ms * self.cfg.max_heart_beat_leak) as i64;
        if self.member.quorum(r.succ) {
            self.last_succ_heartbeat = Some(now);
            self.quorum_contact = self.quorum_contact.max(r.started);
        } else if self.member.quorum(r.succ + r.not_ready) {
            self.last_send_heartbeat = None;
        } else if r.max_term > r.term {
            self.change_role_to_candidate(r.max_term);
        } else if r.inconsistent_leader || self.last_succ_heartbeat.is_none_or(|t| now - t > leak) {
            self.change_role_to_candidate(r.term);
        }
    }

    fn maintain_as_follower(&mut self, now: i64) {
        let hb = self.cfg.heart_beat_time_interval_ms as i64;
        let elapsed = now - self.last_leader_heartbeat;
        if elapsed > 2 * hb
            && elapsed > self.cfg.max_heart_beat_leak as i64 * hb
            && self.member.role == Role::Follower
        {
            let t = self.member.term;
            self.change_role_to_candidate(t);
        }
    }

    // ----- the "threads" ------------------------------------------------------

    fn run(&mut self, now: i64) {
        // Bounded: each pass either makes progress or stops.
        for _ in 0..64 {
            let before = (
                self.out.len(),
                self.member.role,
                self.member.term,
                self.store.end_index(),
            );
            self.run_maintainer(now);
            self.run_take_wait(now);
            self.run_preferred_leader(now);
            self.pusher_handler().run(now);
            self.quorum_handler().run(now);
            self.follower().run(now);
            self.quorum_handler().expire_orphans(now);
            let after = (
                self.out.len(),
                self.member.role,
                self.member.term,
                self.store.end_index(),
            );
            // A pass can end a maintainer round (vote/heartbeat wait) without
            // touching the tuple above; whatever that made due runs in the
            // next pass, so a tick never leaves a timer at or before `now`.
            let due = self.poll_timeout().is_some_and(|t| t as i64 <= now);
            if before == after && !due {
                break;
            }
        }
    }

    fn run_maintainer(&mut self, now: i64) {
        if !self.cfg.enable_leader_elector {
            return;
        }
        match &self.maintainer {
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

    // ----- leadership transfer (spec §2.8) -------------------------------------

    fn transfer_error(
        &mut self,
        id: InboundId,
        req: &LeadershipTransferRequest,
        code: ResponseCode,
    ) {
        let mut header = req.header.clone();
        header.code = code.code();
        header.leader_id = self.member.leader_id.clone();
        self.out.respond(
            id,
            Response::LeadershipTransfer(LeadershipTransferResponse { header }),
        );
    }

    fn leader_transfer_checks(
        &mut self,
        req: &LeadershipTransferRequest,
    ) -> Result<(), ResponseCode> {
        if !self.member.is_peer(req.transferee_id.as_deref()) {
            return Err(ResponseCode::UnknownMember);
        }
        if self.member.term != req.header.term {
            return Err(ResponseCode::InconsistentTerm);
        }
        if self.member.role != Role::Leader {
            return Err(ResponseCode::NotLeader);
        }
        let t = req.transferee_id.clone().unwrap_or_default();
        let behind = self.store.end_index() - self.watermarks.get(req.header.term, &t);
        if behind >= self.cfg.max_leadership_transfer_wait_index {
            return Err(ResponseCode::FallBehindTooMuch);
        }
        Ok(())
    }

    /// `DLedgerLeaderElector.handleLeadershipTransfer`.
    fn elector_transfer(
        &mut self,
        inbound: Option<InboundId>,
        req: &LeadershipTransferRequest,
    ) -> Result<(), ResponseCode> {
        if self.member.term != req.header.term {
            return Err(ResponseCode::InconsistentTerm);
        }
        if self.member.role != Role::Leader {
            return Err(ResponseCode::NotLeader);
        }
        if self.member.transferee.is_some() {
            return Err(ResponseCode::LeaderTransferring);
        }
        let to = req.transferee_id.clone().unwrap_or_default();
        self.member.transferee = Some(to.clone());
        let take = LeadershipTransferRequest {
            header: request_header(&self.cfg, &to, req.header.term),
            transfer_id: Some(self.cfg.self_id.clone()),
            transferee_id: Some(to.clone()),
            take_leadership_ledger_index: self.store.end_index(),
        };
        self.out.send(
            &to,
            Request::LeadershipTransfer(take),
            Outstanding::Transfer {
                inbound,
                term: req.header.term,
            },
        );
        Ok(())
    }

    fn handle_transfer_request(&mut self, id: InboundId, req: LeadershipTransferRequest, now: i64) {
        let me = Some(self.cfg.self_id.as_str());
        if req.transfer_id.as_deref() == me {
            if let Err(code) = self.leader_transfer_checks(&req) {
                return self.transfer_error(id, &req, code);
            }
            if let Err(code) = self.elector_transfer(Some(id), &req) {
                let header = Header {
                    term: self.member.term,
                    code: code.code(),
                    ..Header::default()
                };
                self.out.respond(
                    id,
                    Response::LeadershipTransfer(LeadershipTransferResponse { header }),
                );
            }
        } else if req.transferee_id.as_deref() == me {
            if req.transfer_id.is_none() || req.transfer_id != self.member.leader_id {
                return self.transfer_error(id, &req, ResponseCode::InconsistentLeader);
            }
            let deadline = now + self.cfg.leadership_transfer_wait_timeout as i64;
            if let Some(old) = self.take_wait.replace(TakeWait { id, req, deadline }) {
                self.out.push(Action::Abandon { id: old.id });
            }
        } else {
            let header = Header {
                term: self.member.term,
                code: ResponseCode::UnexpectedArgument.code(),
                ..Header::default()
            };
            self.out.respond(
                id,
                Response::LeadershipTransfer(LeadershipTransferResponse { header }),
            );
        }
    }

    /// The transferee's catch-up wait, then `handleTakeLeadership`.
    fn run_take_wait(&mut self, now: i64) {
        let Some(w) = &self.take_wait else { return };
        if self.store.end_index() < w.req.take_leadership_ledger_index {
            if now > w.deadline {
                let w = self.take_wait.take().expect("checked above");
                self.transfer_error(w.id, &w.req, ResponseCode::TakeLeadershipFailed);
            }
            return;
        }
        let w = self.take_wait.take().expect("checked above");
        if self.member.term != w.req.header.term {
            let header = Header {
                term: self.member.term,
                code: ResponseCode::InconsistentTerm.code(),
                ..Header::default()
            };
            self.out.respond(
                w.id,
                Response::LeadershipTransfer(LeadershipTransferResponse { header }),
            );
            return;
        }
        let target = w.req.header.term + 1;
        self.term_to_take_leadership = target;
        if let Some(old) = self.take_task.replace(w.id) {
            self.out.push(Action::Abandon { id: old });
        }
        self.change_role_to_candidate(target);
        self.need_increase_term_immediately = true;
    }

    /// `TakeLeadershipTask.check` on every role change.
    fn take_leadership_check(&mut self, term: i64, role: Role) {
        if self.term_to_take_leadership == -1 || self.take_task.is_none() {
            return;
        }
        let target = self.term_to_take_leadership;
        let code = if term > target {
            ResponseCode::ExpiredTerm
        } else if term == target {
            match role {
                Role::Leader => ResponseCode::Success,
                Role::Follower => ResponseCode::TakeLeadershipFailed,
                Role::Candidate => return,
            }
        } else {
            match role {
                Role::Follower => ResponseCode::TakeLeadershipFailed,
                _ => ResponseCode::InternalError,
            }
        };
        self.term_to_take_leadership = -1;
        if let Some(id) = self.take_task.take() {
            let header = Header {
                term,
                code: code.code(),
                ..Header::default()
            };
            self.out.respond(
                id,
                Response::LeadershipTransfer(LeadershipTransferResponse { header }),
            );
        }
    }

    /// `checkPreferredLeader`, every 1000 ms on the leader.
    fn run_preferred_leader(&mut self, now: i64) {
        if now - self.last_preferred_check < PERIOD_MS {
            return;
        }
        self.last_preferred_check = now;
        if self.member.role != Role::Leader {
            return;
        }
        let Some(ids) = self.cfg.preferred_leader_ids.clone() else {
            return;
        };
        if ids.contains(&self.cfg.self_id) || self.member.transferee.is_some() {
            return;
        }
        let le = self.store.end_index();
        let term = self.member.term;
        let mut best: Option<(i64, String)> = None;
        for id in ids {
            if !self.member.is_peer(Some(&id)) || self.member.peers_live.get(&id) != Some(&true) {
                continue;
            }
            let behind = le - self.watermarks.get(term, &id);
            if best.as_ref().is_none_or(|(b, _)| behind < *b) {
                best = Some((behind, id));
            }
        }
        if let Some((behind, id)) = best {
            if behind < self.cfg.max_leadership_transfer_wait_index {
                let req = LeadershipTransferRequest {
                    header: Header {
                        term,
                        ..Header::default()
                    },
                    transfer_id: Some(self.cfg.self_id.clone()),
                    transferee_id: Some(id),
                    take_leadership_ledger_index: 0,
                };
                let _ = self.elector_transfer(None, &req);
            }
        }
    }
}
