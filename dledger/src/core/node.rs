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
//!
//! # Layout
//!
//! `Node` owns one piece of state per Java object or thread and routes each
//! input to a short-lived handler that borrows only the pieces it needs (as
//! openraft's `VoteHandler<'st>` does):
//!
//! | state | module | Java | handler borrows mutably |
//! |---|---|---|---|
//! | `MemberState` | `member` | `MemberState` | — (read by all) |
//! | `Elector` | `elector` | `DLedgerLeaderElector` | member, storage, transfer, outbox |
//! | `Transfer` | `transfer` | `handleLeadershipTransfer`, `TakeLeadershipTask` | member, watermarks, outbox |
//! | `Pusher` | `pusher` | `EntryDispatcher` per follower | watermarks, outbox |
//! | `Watermarks`, `Quorum` | `quorum` | `peerWaterMarksByTerm`, `QuorumAckChecker` | storage, outbox |
//! | `EntryHandler` | `follower` | `EntryHandler` | storage, outbox |
//! | `Outbox` | `outbox` | the RPC futures | — |
//!
//! The modules form a chain without cycles: `outbox` and `member` import
//! nothing of the others; `quorum` builds on them, `follower`, `pusher` and
//! `transfer` on `quorum`, `elector` on `transfer`, and only `node` sees
//! them all.

use bytes::Bytes;

use super::elector::{Elector, ElectorHandler, ParseResult};
use super::follower::{EntryHandler, FollowerHandler};
use super::member::MemberState;
use super::message::*;
use super::outbox::{Action, Earliest, InboundId, OutboundId, Outbox, Outstanding};
use super::pusher::{PushHandler, Pusher};
use super::quorum::{ProposeOk, Quorum, QuorumHandler, Watermarks};
use super::storage::Storage;
use super::transfer::{Transfer, TransferHandler};
use crate::config::DLedgerConfig;

/// One DLedger member. See the module documentation for the driving API.
pub struct Node<S: Storage> {
    cfg: DLedgerConfig,
    store: S,
    member: MemberState,
    elector: Elector,
    transfer: Transfer,
    // DLedgerEntryPusher: dispatchers and quorum on the leader, the entry
    // handler on a follower.
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
            member: MemberState::new(peers.clone(), hs),
            elector: Elector::new(seed, now),
            transfer: Transfer::new(now),
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
        if self.member.role != Role::Leader || self.elector.quorum_contact() == i64::MIN {
            return None;
        }
        let hb = self.cfg.heart_beat_time_interval_ms as i64;
        let timeout = hb.saturating_mul((self.cfg.max_heart_beat_leak as i64).max(2));
        Some(self.elector.quorum_contact().saturating_add(timeout))
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
        self.elector.last_parse_result()
    }
    pub fn need_increase_term_immediately(&self) -> bool {
        self.elector.need_increase_term_immediately()
    }
    pub fn known_max_term_in_group(&self) -> i64 {
        self.member.known_max_term
    }
    pub fn next_time_to_request_vote(&self) -> Option<i64> {
        self.elector.next_time_to_request_vote()
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

    fn elector_handler(&mut self) -> ElectorHandler<'_, S> {
        ElectorHandler {
            cfg: &self.cfg,
            store: &mut self.store,
            member: &mut self.member,
            elector: &mut self.elector,
            transfer: &mut self.transfer,
            out: &mut self.out,
        }
    }

    fn transfer_handler(&mut self) -> TransferHandler<'_, S> {
        TransferHandler {
            cfg: &self.cfg,
            store: &self.store,
            member: &mut self.member,
            transfer: &mut self.transfer,
            watermarks: &mut self.watermarks,
            out: &mut self.out,
        }
    }

    fn follower_handler(&mut self) -> FollowerHandler<'_, S> {
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
                let resp = self.elector_handler().handle_vote(&r, false);
                self.out.respond(id, Response::Vote(resp));
            }
            Request::HeartBeat(r) => {
                let resp = self.elector_handler().handle_heartbeat(&r, now);
                self.out.respond(id, Response::HeartBeat(resp));
            }
            Request::Push(r) => self.follower_handler().handle_push(id, r, now),
            Request::LeadershipTransfer(r) => self.transfer_handler().handle_request(id, r, now),
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
        let mut h = self.transfer_handler();
        let r = h
            .leader_transfer_checks(&req)
            .and_then(|_| h.elector_transfer(None, &req));
        self.run(now);
        r
    }

    /// The earliest time at which [`Node::tick`] has work to do.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut t = Earliest::default();
        self.elector.poll_timeout(&self.cfg, &self.member, &mut t);
        self.transfer.poll_timeout(&self.cfg, &self.member, &mut t);
        self.pusher.poll_timeout(
            &self.cfg,
            &self.member,
            self.store.end_index(),
            &self.watermarks,
            &mut t,
        );
        self.quorum.poll_timeout(&self.cfg, &self.member, &mut t);
        self.entries.poll_timeout(&self.member, &mut t);
        t.0.map(|x| x.max(0) as u64)
    }

    // ----- responses ---------------------------------------------------------

    fn on_response(&mut self, id: OutboundId, what: Outstanding, response: Response, now: i64) {
        match (what, response) {
            (Outstanding::Vote { seq }, Response::Vote(v)) => {
                self.elector_handler().on_vote_reply(seq, &v, now)
            }
            (Outstanding::HeartBeat { seq, peer }, Response::HeartBeat(h)) => self
                .elector_handler()
                .on_heartbeat_reply(seq, &peer, &h.header, now),
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
            (Outstanding::Transfer { inbound, term }, response) => {
                self.transfer_handler().on_reply(inbound, term, response)
            }
            // A response of the wrong shape: treat as a failed call.
            (Outstanding::Vote { seq }, _) => self.elector_handler().on_vote_reply(
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
                self.elector_handler()
                    .on_heartbeat_reply(seq, &peer, &h, now)
            }
            (Outstanding::Compare { peer }, _) | (Outstanding::Truncate { peer }, _) => {
                self.pusher_handler().dispatcher_error(&peer, id, now)
            }
            (Outstanding::Append { .. }, _) => {}
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
            self.elector_handler().run(now);
            if let Some(term) = self.transfer_handler().run_take_wait(now) {
                self.elector_handler().take_leadership(term);
            }
            self.transfer_handler().run_preferred_leader(now);
            self.pusher_handler().run(now);
            self.quorum_handler().run(now);
            self.follower_handler().run(now);
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
}
