//! The node's outputs: the queue of [`Action`]s the driver executes in
//! order, and the requests this node sent that await an answer.
//!
//! Java's threads call `DLedgerRpcService` and block on (or chain) the
//! returned futures; here a call is an [`Action::Send`] and the future is an
//! [`Outstanding`] entry under its [`OutboundId`], completed by
//! `Node::handle_response` or `Node::handle_send_failure`.

use std::collections::{HashMap, VecDeque};

use super::message::*;
use crate::config::DLedgerConfig;

/// Id of a request received from a peer, chosen by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InboundId(pub u64);

/// Id of a request this node sends, chosen by the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutboundId(pub u64);

/// What the driver must do, in order.
#[derive(Clone, Debug)]
pub enum Action {
    /// Send `request` to peer `to`; route its answer back with `id`.
    Send {
        id: OutboundId,
        to: String,
        request: Request,
    },
    /// Write `response` as the answer to inbound request `id`.
    Respond { id: InboundId, response: Response },
    /// Inbound request `id` will never be answered (Java drops it too).
    Abandon { id: InboundId },
    /// Final result of a proposal. Java's response body has `pos` -1 unless
    /// `code` is 200; `term`/`pos` here are the entry's, to find the waiter.
    AppendOutcome {
        term: i64,
        index: i64,
        pos: i64,
        code: ResponseCode,
    },
    /// The committed index moved forward (store already updated).
    CommitAdvanced { index: i64 },
    /// `RoleChangeHandler.handle(term, role)`.
    RoleChanged { term: i64, role: Role },
}

/// What an outbound id was for.
#[derive(Clone, Debug)]
pub(super) enum Outstanding {
    Vote {
        seq: u64,
    },
    HeartBeat {
        seq: u64,
        peer: String,
    },
    Compare {
        peer: String,
    },
    Truncate {
        peer: String,
    },
    /// `count` entries from `first` (more than one = a batch push).
    Append {
        peer: String,
        first: i64,
        count: i64,
    },
    Commit,
    Transfer {
        inbound: Option<InboundId>,
        term: i64,
    },
}

/// The action queue and the outstanding requests.
pub(super) struct Outbox {
    next_out: u64,
    outstanding: HashMap<u64, Outstanding>,
    actions: VecDeque<Action>,
}

impl Outbox {
    pub(super) fn new() -> Self {
        Outbox {
            next_out: 1,
            outstanding: HashMap::new(),
            actions: VecDeque::new(),
        }
    }

    /// Queues `request` to `to`, remembering what it was for.
    pub(super) fn send(&mut self, to: &str, request: Request, what: Outstanding) -> OutboundId {
        let id = OutboundId(self.next_out);
        self.next_out += 1;
        self.outstanding.insert(id.0, what);
        self.actions.push_back(Action::Send {
            id,
            to: to.to_string(),
            request,
        });
        id
    }

    pub(super) fn respond(&mut self, id: InboundId, response: Response) {
        self.actions.push_back(Action::Respond { id, response });
    }

    pub(super) fn push(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    /// The request `id` was for, if it is still awaited; it no longer is.
    pub(super) fn take(&mut self, id: OutboundId) -> Option<Outstanding> {
        self.outstanding.remove(&id.0)
    }

    /// Number of queued actions (the run loop's progress measure).
    pub(super) fn len(&self) -> usize {
        self.actions.len()
    }

    pub(super) fn drain(&mut self) -> Vec<Action> {
        self.actions.drain(..).collect()
    }
}

/// The header of a request from this node (as leader or candidate) to `to`.
pub(super) fn request_header(cfg: &DLedgerConfig, to: &str, term: i64) -> Header {
    Header {
        group: Some(cfg.group.clone()),
        remote_id: Some(to.to_string()),
        local_id: Some(cfg.self_id.clone()),
        leader_id: Some(cfg.self_id.clone()),
        term,
        code: ResponseCode::Success.code(),
    }
}

/// The earliest of several deadlines (for `Node::poll_timeout`).
#[derive(Default)]
pub(super) struct Earliest(pub(super) Option<i64>);

impl Earliest {
    pub(super) fn at(&mut self, x: i64) {
        self.0 = Some(self.0.map_or(x, |y| y.min(x)));
    }
}
