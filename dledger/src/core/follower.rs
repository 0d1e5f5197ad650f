//! Java's `DLedgerEntryPusher.EntryHandler`, the follower side of
//! replication: APPENDs parked by index until the log reaches them
//! (`writeRequestMap`), the queue of COMPARE/TRUNCATE/COMMIT requests
//! (`compareOrTruncateRequests`) and the fast-forward check
//! (`checkAbnormalFuture`). Its handler writes the follower's log.

use std::collections::{BTreeMap, VecDeque};

use super::member::MemberState;
use super::message::*;
use super::outbox::{Action, Earliest, InboundId, Outbox};
use super::quorum::update_committed;
use super::storage::Storage;
use super::PERIOD_MS;
use crate::config::DLedgerConfig;

/// Follower push future timeout (`TimeoutFuture(1000)`).
const FOLLOWER_PUSH_TIMEOUT_MS: i64 = 1000;
/// `compareOrTruncateRequests` capacity.
const FOLLOWER_QUEUE_CAP: usize = 1024;

#[derive(Debug)]
struct Parked {
    id: InboundId,
    req: PushEntryRequest,
    created: i64,
    answered: bool,
}

/// The entry handler's state.
pub(super) struct EntryHandler {
    /// APPENDs by first index, waiting for the log to reach them.
    parked: BTreeMap<i64, Parked>,
    queue: VecDeque<(InboundId, PushEntryRequest)>,
    last_fast_forward_check: i64,
}

impl EntryHandler {
    pub(super) fn new(now: i64) -> Self {
        EntryHandler {
            parked: BTreeMap::new(),
            queue: VecDeque::new(),
            last_fast_forward_check: now,
        }
    }

    /// For `Node::debug_state`: parked indexes, queue length, last check.
    pub(super) fn summary(&self) -> (Vec<&i64>, usize, i64) {
        (
            self.parked.keys().collect(),
            self.queue.len(),
            self.last_fast_forward_check,
        )
    }

    pub(super) fn poll_timeout(&self, member: &MemberState, t: &mut Earliest) {
        // The entry handler only runs on a follower (Java: `waitForRunning(1)`
        // otherwise); parked pushes of another role wait for that.
        if !self.parked.is_empty() && member.role == Role::Follower {
            t.at(self.last_fast_forward_check + PERIOD_MS);
        }
    }
}

/// The entry handler's thread, with what it borrows.
pub(super) struct FollowerHandler<'a, S> {
    pub(super) cfg: &'a DLedgerConfig,
    pub(super) store: &'a mut S,
    pub(super) member: &'a MemberState,
    pub(super) entries: &'a mut EntryHandler,
    pub(super) out: &'a mut Outbox,
}

impl<S: Storage> FollowerHandler<'_, S> {
    fn push_response(&self, req: &PushEntryRequest, code: ResponseCode) -> Response {
        Response::Push(PushEntryResponse {
            header: Header {
                group: req.header.group.clone(),
                term: req.header.term,
                code: code.code(),
                ..Header::default()
            },
            index: (req.kind != PushType::Commit).then(|| req.first_entry_index()),
            count: req.count(),
            begin_index: self.store.begin_index(),
            end_index: self.store.end_index(),
        })
    }

    pub(super) fn handle_push(&mut self, id: InboundId, req: PushEntryRequest, now: i64) {
        match req.kind {
            PushType::Append => {
                if req.entries().is_empty() {
                    let r = self.push_response(&req, ResponseCode::UnexpectedArgument);
                    self.out.respond(id, r);
                    return;
                }
                let index = req.first_entry_index();
                match self.entries.parked.entry(index) {
                    std::collections::btree_map::Entry::Occupied(_) => {
                        let r = self.push_response(&req, ResponseCode::RepeatedPush);
                        self.out.respond(id, r);
                    }
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(Parked {
                            id,
                            req,
                            created: now,
                            answered: false,
                        });
                    }
                }
            }
            PushType::Commit => self.enqueue(id, req),
            PushType::Compare | PushType::Truncate => {
                if req.entry.is_none() {
                    let r = self.push_response(&req, ResponseCode::UnexpectedArgument);
                    self.out.respond(id, r);
                    return;
                }
                // Parked APPENDs are dropped unanswered; their senders time out.
                let dropped = std::mem::take(&mut self.entries.parked);
                for (_, p) in dropped {
                    if !p.answered {
                        self.out.push(Action::Abandon { id: p.id });
                    }
                }
                self.enqueue(id, req);
            }
        }
    }

    fn enqueue(&mut self, id: InboundId, req: PushEntryRequest) {
        if self.entries.queue.len() >= FOLLOWER_QUEUE_CAP {
            let r = self.push_response(&req, ResponseCode::PushRequestIsFull);
            self.out.respond(id, r);
        } else {
            self.entries.queue.push_back((id, req));
        }
    }

    /// Java's store-level checks on a follower write (`appendAsFollower`/`truncate`).
    fn follower_write_check(&self, req: &PushEntryRequest) -> Result<(), ResponseCode> {
        if self.member.role != Role::Follower {
            return Err(ResponseCode::NotFollower);
        }
        if req.header.term != self.member.term {
            return Err(ResponseCode::InconsistentTerm);
        }
        if req.header.leader_id.is_none() || req.header.leader_id != self.member.leader_id {
            return Err(ResponseCode::InconsistentLeader);
        }
        Ok(())
    }

    pub(super) fn run(&mut self, now: i64) {
        for _ in 0..(FOLLOWER_QUEUE_CAP + 4096) {
            if self.member.role != Role::Follower {
                while let Some((id, req)) = self.entries.queue.pop_front() {
                    let r = self.push_response(&req, ResponseCode::NotFollower);
                    self.out.respond(id, r);
                }
                return;
            }
            if let Some((id, req)) = self.entries.queue.pop_front() {
                let code = match req.kind {
                    PushType::Truncate => self.follower_truncate(&req),
                    PushType::Compare => self.follower_compare(&req),
                    _ => self.follower_commit(&req),
                };
                let r = self.push_response(&req, code);
                self.out.respond(id, r);
                continue;
            }
            let next = self.store.end_index() + 1;
            let Some(p) = self.entries.parked.remove(&next) else {
                self.check_abnormal_future(now);
                return;
            };
            let code = self.follower_append(next, &p.req);
            if !p.answered {
                let r = self.push_response(&p.req, code);
                self.out.respond(p.id, r);
            }
        }
    }

    fn follower_append(&mut self, write_index: i64, req: &PushEntryRequest) -> ResponseCode {
        let r = (|| {
            if req.first_entry_index() != write_index {
                return Err(ResponseCode::InconsistentState);
            }
            for e in req.entries() {
                self.follower_write_check(req)?;
                if e.index != self.store.end_index() + 1 {
                    return Err(ResponseCode::InconsistentIndex);
                }
                self.store
                    .append_follower(e)
                    .map_err(|e| ResponseCode::from(&e))?;
            }
            Ok(())
        })();
        match r {
            Ok(()) => {
                update_committed(
                    self.store,
                    self.out,
                    self.member.term,
                    req.header.term,
                    req.commit_index,
                );
                ResponseCode::Success
            }
            Err(_) => ResponseCode::InconsistentState,
        }
    }

    fn follower_truncate(&mut self, req: &PushEntryRequest) -> ResponseCode {
        let Some(e) = &req.entry else {
            return ResponseCode::InconsistentState;
        };
        if self.follower_write_check(req).is_err() {
            return ResponseCode::InconsistentState;
        }
        if self.store.truncate(e).is_err() || self.store.end_index() != e.index {
            return ResponseCode::InconsistentState;
        }
        update_committed(
            self.store,
            self.out,
            self.member.term,
            req.header.term,
            req.commit_index,
        );
        ResponseCode::Success
    }

    fn follower_compare(&mut self, req: &PushEntryRequest) -> ResponseCode {
        let Some(e) = &req.entry else {
            return ResponseCode::InconsistentState;
        };
        if self.cfg.strict_commit && self.follower_write_check(req).is_err() {
            return ResponseCode::InconsistentState;
        }
        match self.store.get(e.index) {
            Ok(local) if local.same_as(e) => ResponseCode::Success,
            _ => ResponseCode::InconsistentState,
        }
    }

    fn follower_commit(&mut self, req: &PushEntryRequest) -> ResponseCode {
        if self.cfg.strict_commit && self.follower_write_check(req).is_err() {
            return ResponseCode::Unknown;
        }
        update_committed(
            self.store,
            self.out,
            self.member.term,
            req.header.term,
            req.commit_index,
        );
        ResponseCode::Success
    }

    /// `checkAbnormalFuture`: answer parked APPENDs that fell behind, and
    /// fast-forward (406) the oldest timed-out one when nothing can proceed.
    fn check_abnormal_future(&mut self, now: i64) {
        if now - self.entries.last_fast_forward_check < PERIOD_MS {
            return;
        }
        self.entries.last_fast_forward_check = now;
        if self.entries.parked.is_empty() {
            return;
        }
        let end = self.store.end_index();
        let mut min_ff = i64::MAX;
        let keys: Vec<i64> = self.entries.parked.keys().copied().collect();
        for k in keys {
            let Some(p) = self.entries.parked.get(&k) else {
                continue;
            };
            let (first, last) = (p.req.first_entry_index(), p.req.last_entry_index());
            if last <= end {
                let same = p
                    .req
                    .entries()
                    .iter()
                    .all(|e| self.store.get(e.index).is_ok_and(|l| l.same_as(e)));
                let code = if same {
                    ResponseCode::Success
                } else {
                    ResponseCode::InconsistentState
                };
                if let Some(p) = self.entries.parked.remove(&k) {
                    if !p.answered {
                        let r = self.push_response(&p.req, code);
                        self.out.respond(p.id, r);
                    }
                }
                continue;
            }
            if first == end + 1 {
                return;
            }
            if now - p.created < FOLLOWER_PUSH_TIMEOUT_MS {
                continue;
            }
            min_ff = min_ff.min(first);
        }
        if let Some(p) = self.entries.parked.get_mut(&min_ff) {
            if !p.answered {
                p.answered = true;
                let (id, req) = (p.id, p.req.clone());
                let r = self.push_response(&req, ResponseCode::InconsistentState);
                self.out.respond(id, r);
            }
        }
    }
}
