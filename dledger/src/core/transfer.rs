//! Leadership transfer, Java's `DLedgerLeaderElector.handleLeadershipTransfer`
//! / `TakeLeadershipTask` and `checkPreferredLeader`: on the old leader the
//! transfer request and the preferred-leader check; on the transferee the
//! wait for its log to catch up (`takeLeadershipLedgerIndex`), the target
//! term (`MemberState.termToTakeLeadership`) and the pending answer, given
//! once the election it starts ends. The transfer target itself is in
//! [`MemberState`] (`transferee`), as in Java.

use super::member::MemberState;
use super::message::*;
use super::outbox::{request_header, Action, Earliest, InboundId, Outbox, Outstanding};
use super::quorum::Watermarks;
use super::storage::Storage;
use super::PERIOD_MS;
use crate::config::DLedgerConfig;

/// The transferee waiting for its log to reach `takeLeadershipLedgerIndex`.
#[derive(Debug)]
struct TakeWait {
    id: InboundId,
    req: LeadershipTransferRequest,
    deadline: i64,
}

/// The transfer's own state, on the old leader and on the transferee.
pub(super) struct Transfer {
    /// `termToTakeLeadership`; -1 when none.
    term_to_take: i64,
    /// The transferee's LEADERSHIP_TRANSFER answered when the election ends.
    take_task: Option<InboundId>,
    take_wait: Option<TakeWait>,
    last_preferred_check: i64,
}

impl Transfer {
    pub(super) fn new(now: i64) -> Self {
        Transfer {
            term_to_take: -1,
            take_task: None,
            take_wait: None,
            last_preferred_check: now,
        }
    }

    /// `isTakingLeadership`: a preferred leader running the election to
    /// take over; it waits less between votes and refuses its vote to a
    /// candidate whose log is not longer than its own.
    pub(super) fn is_taking_leadership(&self, cfg: &DLedgerConfig, term: i64) -> bool {
        match &cfg.preferred_leader_ids {
            Some(ids) => self.term_to_take == term && ids.contains(&cfg.self_id),
            None => false,
        }
    }

    pub(super) fn poll_timeout(&self, cfg: &DLedgerConfig, member: &MemberState, t: &mut Earliest) {
        if member.role == Role::Leader && cfg.preferred_leader_ids.is_some() {
            t.at(self.last_preferred_check + PERIOD_MS);
        }
        if let Some(w) = &self.take_wait {
            t.at(w.deadline + 1);
        }
    }

    /// `TakeLeadershipTask.check` on every role change.
    pub(super) fn on_role_change(&mut self, term: i64, role: Role, out: &mut Outbox) {
        if self.term_to_take == -1 || self.take_task.is_none() {
            return;
        }
        let target = self.term_to_take;
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
        self.term_to_take = -1;
        if let Some(id) = self.take_task.take() {
            let header = Header {
                term,
                code: code.code(),
                ..Header::default()
            };
            out.respond(
                id,
                Response::LeadershipTransfer(LeadershipTransferResponse { header }),
            );
        }
    }
}

/// Transfer requests, answers and checks, with what they borrow.
pub(super) struct TransferHandler<'a, S> {
    pub(super) cfg: &'a DLedgerConfig,
    pub(super) store: &'a S,
    pub(super) member: &'a mut MemberState,
    pub(super) transfer: &'a mut Transfer,
    pub(super) watermarks: &'a mut Watermarks,
    pub(super) out: &'a mut Outbox,
}

impl<S: Storage> TransferHandler<'_, S> {
    /// The transferee's answer to our LEADERSHIP_TRANSFER (or its failure)
    /// ends the transfer, unless it succeeded after the term moved on (a
    /// later transfer may be running then); an admin's request gets the
    /// answer.
    pub(super) fn on_reply(&mut self, inbound: Option<InboundId>, term: i64, response: Response) {
        match response {
            Response::LeadershipTransfer(t) => {
                if t.header.code != ResponseCode::Success.code()
                    || (self.member.term == term && self.member.transferee.is_some())
                {
                    self.member.transferee = None;
                }
                if let Some(inb) = inbound {
                    self.out.respond(inb, Response::LeadershipTransfer(t));
                }
            }
            _ => {
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

    pub(super) fn leader_transfer_checks(
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
    pub(super) fn elector_transfer(
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
            header: request_header(self.cfg, &to, req.header.term),
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

    pub(super) fn handle_request(
        &mut self,
        id: InboundId,
        req: LeadershipTransferRequest,
        now: i64,
    ) {
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
            if let Some(old) = self
                .transfer
                .take_wait
                .replace(TakeWait { id, req, deadline })
            {
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

    /// The transferee's catch-up wait, then `handleTakeLeadership`: returns
    /// the term to become candidate at once the log has caught up (the
    /// caller, holding the elector, does that).
    pub(super) fn run_take_wait(&mut self, now: i64) -> Option<i64> {
        let Some(w) = &self.transfer.take_wait else {
            return None;
        };
        if self.store.end_index() < w.req.take_leadership_ledger_index {
            if now > w.deadline {
                let w = self.transfer.take_wait.take().expect("checked above");
                self.transfer_error(w.id, &w.req, ResponseCode::TakeLeadershipFailed);
            }
            return None;
        }
        let w = self.transfer.take_wait.take().expect("checked above");
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
            return None;
        }
        let target = w.req.header.term + 1;
        self.transfer.term_to_take = target;
        if let Some(old) = self.transfer.take_task.replace(w.id) {
            self.out.push(Action::Abandon { id: old });
        }
        Some(target)
    }

    /// `checkPreferredLeader`, every 1000 ms on the leader.
    pub(super) fn run_preferred_leader(&mut self, now: i64) {
        if now - self.transfer.last_preferred_check < PERIOD_MS {
            return;
        }
        self.transfer.last_preferred_check = now;
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
