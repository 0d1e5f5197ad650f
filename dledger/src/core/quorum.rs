//! Counting acknowledgements and committing, the leader side of
//! `DLedgerEntryPusher`: the per-term watermarks (`peerWaterMarksByTerm`,
//! written by the dispatchers as followers acknowledge) and the appends
//! waiting for a quorum (`pendingAppendResponsesByTerm`), which Java's
//! `QuorumAckChecker` thread completes. Also the append itself
//! (`handleAppend` + `appendAsLeader`) and the committed-index update both
//! roles share (`updateCommittedIndex`).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::member::MemberState;
use super::message::{ResponseCode, Role};
use super::outbox::{Action, Earliest, Outbox};
use super::storage::Storage;
use super::PERIOD_MS;
use crate::config::DLedgerConfig;

/// A proposal accepted into the leader's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProposeOk {
    pub term: i64,
    pub index: i64,
    pub pos: i64,
}

/// `peerWaterMarksByTerm`: per leader term, the highest index each member
/// (self included) is known to hold as the leader does; -1 when unknown.
pub(super) struct Watermarks {
    peers: Vec<String>,
    by_term: BTreeMap<i64, HashMap<String, i64>>,
}

impl Watermarks {
    pub(super) fn new(peers: Vec<String>) -> Self {
        Watermarks {
            peers,
            by_term: BTreeMap::new(),
        }
    }

    fn term_mut(&mut self, term: i64) -> &mut HashMap<String, i64> {
        let peers = &self.peers;
        self.by_term
            .entry(term)
            .or_insert_with(|| peers.iter().map(|p| (p.clone(), -1)).collect())
    }

    /// `peer`'s watermark in `term`; starts the term's table (every member
    /// at -1) if this is its first mention, as Java's `checkTermForWaterMark`.
    pub(super) fn get(&mut self, term: i64, peer: &str) -> i64 {
        *self.term_mut(term).get(peer).unwrap_or(&-1)
    }

    /// `peer`'s watermark in `term` without starting the term's table.
    pub(super) fn peek(&self, term: i64, peer: &str) -> i64 {
        self.by_term
            .get(&term)
            .and_then(|m| m.get(peer))
            .copied()
            .unwrap_or(-1)
    }

    /// Raises `peer`'s watermark in `term` to `index` (never lowers it).
    pub(super) fn update(&mut self, term: i64, peer: &str, index: i64) {
        let e = self.term_mut(term).entry(peer.to_string()).or_insert(-1);
        if *e < index {
            *e = index;
        }
    }
}

#[derive(Debug)]
struct PendingAppend {
    pos: i64,
    created: i64,
    done: bool,
}

/// The appends waiting for a quorum, by term then index, and the
/// `QuorumAckChecker` thread's own state.
pub(super) struct Quorum {
    pending: BTreeMap<i64, BTreeMap<i64, PendingAppend>>,
    last_quorum_index: i64,
    last_leak_check: i64,
}

impl Quorum {
    pub(super) fn new(now: i64) -> Self {
        Quorum {
            pending: BTreeMap::new(),
            last_quorum_index: -1,
            last_leak_check: now,
        }
    }

    /// Number of pending (not yet completed) appends of `term`.
    pub(super) fn pending_count(&self, term: i64) -> usize {
        self.pending.get(&term).map_or(0, |m| m.len())
    }

    pub(super) fn last_quorum_index(&self) -> i64 {
        self.last_quorum_index
    }

    /// When the checker or the orphan expiry next has work.
    pub(super) fn poll_timeout(&self, cfg: &DLedgerConfig, member: &MemberState, t: &mut Earliest) {
        if member.role == Role::Leader {
            t.at(self.last_leak_check + PERIOD_MS + 1);
        }
        let wait = cfg.max_wait_ack_time_ms as i64;
        if member.role == Role::Leader {
            // The 502 scan walks consecutive indexes above the quorum index.
            if let Some(m) = self.pending.get(&member.term) {
                let mut i = self.last_quorum_index + 1;
                while let Some(p) = m.get(&i) {
                    if !p.done {
                        t.at(p.created + wait);
                        break;
                    }
                    i += 1;
                }
            }
        } else {
            for m in self.pending.values() {
                if let Some(p) = m.values().map(|p| p.created).min() {
                    t.at(p + wait);
                }
            }
        }
    }
}

/// `updateCommittedIndex` guards (docs/protocol/dledger.md §2.11), then the store. `current` is
/// the member's term.
pub(super) fn update_committed<S: Storage>(
    store: &mut S,
    out: &mut Outbox,
    current: i64,
    term: i64,
    index: i64,
) {
    let committed = store.committed_index();
    let le = store.end_index();
    if index == -1 || le == -1 || term < current || index == committed {
        return;
    }
    if index < committed || index < store.begin_index() {
        return;
    }
    store.set_committed(term, index.min(le));
    let after = store.committed_index();
    if after > committed {
        out.push(Action::CommitAdvanced { index: after });
    }
}

/// The quorum checker and the leader's append, with what they borrow.
pub(super) struct QuorumHandler<'a, S> {
    pub(super) cfg: &'a DLedgerConfig,
    pub(super) store: &'a mut S,
    pub(super) member: &'a MemberState,
    pub(super) quorum: &'a mut Quorum,
    pub(super) watermarks: &'a mut Watermarks,
    pub(super) out: &'a mut Outbox,
}

impl<S: Storage> QuorumHandler<'_, S> {
    fn outcome(&mut self, term: i64, index: i64, pos: i64, code: ResponseCode) {
        self.out.push(Action::AppendOutcome {
            term,
            index,
            pos,
            code,
        });
    }

    /// One pass of Java's `QuorumAckChecker.doWork`.
    pub(super) fn run(&mut self, now: i64) {
        if self.member.role != Role::Leader {
            return;
        }
        let term = self.member.term;
        self.quorum.pending.entry(term).or_default();
        self.watermarks.get(term, &self.cfg.self_id);
        let old: Vec<i64> = self
            .quorum
            .pending
            .keys()
            .copied()
            .filter(|t| *t != term)
            .collect();
        for t in old {
            if let Some(m) = self.quorum.pending.remove(&t) {
                for (i, p) in m {
                    if !p.done {
                        self.outcome(t, i, p.pos, ResponseCode::TermChanged);
                    }
                }
            }
        }
        self.watermarks.by_term.retain(|t, _| *t == term);
        let mut sorted: Vec<i64> = self.watermarks.by_term[&term].values().copied().collect();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let quorum_index = sorted[sorted.len() / 2];
        self.leader_update_committed(term, quorum_index);

        let mut need_check = false;
        let mut ack_num = 0;
        let mut i = quorum_index;
        while i > self.quorum.last_quorum_index {
            let removed = self
                .quorum
                .pending
                .get_mut(&term)
                .and_then(|m| m.remove(&i));
            match removed {
                None => {
                    need_check = true;
                    break;
                }
                Some(p) => {
                    if !p.done {
                        self.outcome(term, i, p.pos, ResponseCode::Success);
                    }
                    ack_num += 1;
                }
            }
            i -= 1;
        }
        if ack_num == 0 {
            let wait = self.cfg.max_wait_ack_time_ms as i64;
            let mut timed_out = Vec::new();
            if let Some(m) = self.quorum.pending.get_mut(&term) {
                for (idx, p) in m.range_mut(quorum_index + 1..) {
                    // Java walks consecutive indexes and stops at a gap.
                    if *idx != quorum_index + 1 + timed_out.len() as i64 {
                        break;
                    }
                    if now - p.created >= wait {
                        if !p.done {
                            p.done = true;
                            timed_out.push((*idx, p.pos, true));
                        } else {
                            timed_out.push((*idx, p.pos, false));
                        }
                    } else {
                        break;
                    }
                }
            }
            for (idx, pos, emit) in timed_out {
                if emit {
                    self.outcome(term, idx, pos, ResponseCode::WaitQuorumAckTimeout);
                }
            }
        }
        if now - self.quorum.last_leak_check > PERIOD_MS || need_check {
            let le = self.store.end_index();
            self.watermarks.update(term, &self.cfg.self_id, le);
            let mut done = Vec::new();
            if let Some(m) = self.quorum.pending.get_mut(&term) {
                let keys: Vec<i64> = m.range(..=quorum_index).map(|(k, _)| *k).collect();
                for k in keys {
                    if let Some(p) = m.remove(&k) {
                        if !p.done {
                            done.push((k, p.pos));
                        }
                    }
                }
            }
            for (k, pos) in done {
                self.outcome(term, k, pos, ResponseCode::Success);
            }
            self.quorum.last_leak_check = now;
        }
        self.quorum.last_quorum_index = quorum_index;
    }

    fn leader_update_committed(&mut self, term: i64, index: i64) {
        if self.cfg.strict_commit && index >= 0 {
            // Raft §5.4.2: only an entry of the current term is committed by counting.
            match self.store.get(index.min(self.store.end_index())) {
                Ok(e) if e.term == term => {}
                _ => return,
            }
        }
        update_committed(self.store, self.out, self.member.term, term, index);
    }

    /// Not Java: a pending append left behind on a node that is no longer
    /// leader completes 502 after maxWaitAckTimeMs instead of hanging until
    /// the node leads again (Java's client sees an RPC timeout instead).
    pub(super) fn expire_orphans(&mut self, now: i64) {
        if self.member.role == Role::Leader {
            return;
        }
        let wait = self.cfg.max_wait_ack_time_ms as i64;
        let mut out = Vec::new();
        for (t, m) in self.quorum.pending.iter_mut() {
            m.retain(|i, p| {
                if now - p.created >= wait {
                    if !p.done {
                        out.push((*t, *i, p.pos));
                    }
                    false
                } else {
                    true
                }
            });
        }
        self.quorum.pending.retain(|_, m| !m.is_empty());
        for (t, i, pos) in out {
            self.outcome(t, i, pos, ResponseCode::WaitQuorumAckTimeout);
        }
    }

    /// `handleAppend` + `appendAsLeader` + `waitAck`.
    pub(super) fn append_as_leader(
        &mut self,
        bodies: Vec<Bytes>,
        now: i64,
    ) -> Result<Vec<ProposeOk>, ResponseCode> {
        if self.member.role != Role::Leader {
            return Err(ResponseCode::NotLeader);
        }
        if self.member.transferee.is_some() {
            return Err(ResponseCode::LeaderTransferring);
        }
        if bodies.is_empty() {
            return Err(ResponseCode::RequestWithEmptyBodys);
        }
        let term = self.member.term;
        if self.quorum.pending_count(term) > self.cfg.max_pending_requests_num {
            return Err(ResponseCode::LeaderPendingFull);
        }
        let mut out = Vec::with_capacity(bodies.len());
        for body in bodies {
            let e = self
                .store
                .append_leader(term, body)
                .map_err(|e| ResponseCode::from(&e))?;
            out.push(ProposeOk {
                term: e.term,
                index: e.index,
                pos: e.pos,
            });
        }
        let last = *out.last().expect("bodies is not empty");
        self.watermarks
            .update(last.term, &self.cfg.self_id, last.index);
        if self.member.peers.len() == 1 {
            self.outcome(last.term, last.index, last.pos, ResponseCode::Success);
        } else {
            self.quorum.pending.entry(last.term).or_default().insert(
                last.index,
                PendingAppend {
                    pos: last.pos,
                    created: now,
                    done: false,
                },
            );
        }
        Ok(out)
    }
}
