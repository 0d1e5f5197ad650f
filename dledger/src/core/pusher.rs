//! Java's `DLedgerEntryPusher.EntryDispatcher`, the leader side of
//! replication: one dispatcher per follower, each with its push state
//! (COMPARE → TRUNCATE → APPEND, the write index, the in-flight APPENDs and
//! the synchronous COMPARE/TRUNCATE it waits for). Acknowledged indexes go
//! into the [`Watermarks`] the quorum checker counts.

use std::collections::BTreeMap;

use super::member::MemberState;
use super::message::*;
use super::outbox::{request_header, Earliest, OutboundId, Outbox, Outstanding};
use super::quorum::Watermarks;
use super::storage::{Storage, StorageError};
use super::PERIOD_MS;
use crate::config::DLedgerConfig;
use crate::entry::Entry;

/// Java's COMPARE wait and TRUNCATE wait (`get(3, SECONDS)`).
const SYNC_PUSH_WAIT_MS: i64 = 3000;
/// Dispatcher pause after an exception.
const DISPATCHER_ERROR_PAUSE_MS: i64 = 500;
/// Per-peer in-flight APPENDs (`maxPendingSize`).
const MAX_PENDING_PUSHES: usize = 1000;
/// Most entries in one batch push (besides `maxBatchPushSize`).
const MAX_BATCH_ENTRIES: usize = 1024;
/// Per-peer in-flight batch pushes (not Java: its `maxPendingSize` counts
/// batches like single pushes). Heartbeats share the connection and queue
/// behind in-flight pushes, so a slow follower must never have more than
/// about 1 MiB (16 x 64 KiB) ahead of the next heartbeat, or it would miss
/// our short election timeout while merely catching up.
const MAX_PENDING_BATCHES: usize = 16;

/// `EntryDispatcher` for one follower.
#[derive(Debug)]
struct Dispatcher {
    peer: String,
    kind: PushType,
    compare_index: i64,
    write_index: i64,
    truncate_index: i64,
    term: i64,
    leader_id: Option<String>,
    last_push_commit: Option<i64>,
    last_check_leak: i64,
    /// first index → (send time, entry count) of in-flight APPENDs (Java's
    /// `pendingMap`, or `batchPendingMap` with batch push).
    pending: BTreeMap<i64, (i64, i64)>,
    /// The synchronous COMPARE/TRUNCATE in flight and its deadline.
    waiting: Option<(OutboundId, i64)>,
    paused_until: i64,
}

/// The dispatchers, one per follower in peer order.
pub(super) struct Pusher {
    dispatchers: Vec<Dispatcher>,
}

impl Pusher {
    pub(super) fn new(cfg: &DLedgerConfig, peers: &[String], now: i64) -> Self {
        let dispatchers = peers
            .iter()
            .filter(|p| **p != cfg.self_id)
            .map(|p| Dispatcher {
                peer: p.clone(),
                kind: PushType::Compare,
                compare_index: -1,
                write_index: -1,
                truncate_index: -1,
                term: -1,
                leader_id: None,
                last_push_commit: None,
                last_check_leak: now,
                pending: BTreeMap::new(),
                waiting: None,
                paused_until: i64::MIN,
            })
            .collect();
        Pusher { dispatchers }
    }

    /// For `Node::debug_state`: one line per dispatcher, with the peer's
    /// watermark in `term`.
    pub(super) fn describe(&self, watermarks: &Watermarks, term: i64) -> Vec<String> {
        self.dispatchers
            .iter()
            .map(|d| {
                format!(
                    "{}:{:?} ci={} wi={} inflight={} waiting={} wm={}",
                    d.peer,
                    d.kind,
                    d.compare_index,
                    d.write_index,
                    d.pending.len(),
                    d.waiting.is_some(),
                    watermarks.peek(term, &d.peer)
                )
            })
            .collect()
    }

    /// When a dispatcher of this leader next has work (waits, pauses, the
    /// periodic COMMIT, resends).
    pub(super) fn poll_timeout(
        &self,
        cfg: &DLedgerConfig,
        member: &MemberState,
        end_index: i64,
        watermarks: &Watermarks,
        t: &mut Earliest,
    ) {
        if member.role != Role::Leader {
            return;
        }
        for d in &self.dispatchers {
            if let Some((_, dl)) = d.waiting {
                t.at(dl);
                continue;
            }
            if d.paused_until > i64::MIN {
                t.at(d.paused_until);
            }
            // doCommit only runs once the dispatcher has caught up
            // (writeIndex > ledgerEnd); with a full pending map it waits
            // for acks or the resend below.
            if d.kind == PushType::Append && d.write_index > end_index {
                t.at(d.last_push_commit.map_or(i64::MIN, |t| t + PERIOD_MS + 1));
            }
            if d.kind == PushType::Append {
                let wm = watermarks.peek(member.term, &d.peer);
                if let Some((sent, _)) = d.pending.get(&(wm + 1)) {
                    t.at(sent + cfg.max_push_time_out_ms as i64 + 1);
                }
            }
        }
    }
}

/// The dispatchers' threads, with what they borrow.
pub(super) struct PushHandler<'a, S> {
    pub(super) cfg: &'a DLedgerConfig,
    pub(super) store: &'a S,
    pub(super) member: &'a MemberState,
    pub(super) pusher: &'a mut Pusher,
    pub(super) watermarks: &'a mut Watermarks,
    pub(super) out: &'a mut Outbox,
}

impl<S: Storage> PushHandler<'_, S> {
    fn dispatcher_pos(&self, peer: &str) -> Option<usize> {
        self.pusher.dispatchers.iter().position(|d| d.peer == peer)
    }

    /// `changeState(index, target)`.
    fn change_state(&mut self, di: usize, index: i64, target: PushType) {
        match target {
            PushType::Append => {
                let (term, peer) = {
                    let d = &mut self.pusher.dispatchers[di];
                    d.compare_index = -1;
                    d.write_index = index + 1;
                    (d.term, d.peer.clone())
                };
                self.watermarks.update(term, &peer, index);
            }
            PushType::Compare => {
                let d = &mut self.pusher.dispatchers[di];
                if d.kind == PushType::Append {
                    d.compare_index = -1;
                    d.pending.clear();
                }
            }
            PushType::Truncate => self.pusher.dispatchers[di].compare_index = -1,
            PushType::Commit => {}
        }
        self.pusher.dispatchers[di].kind = target;
    }

    /// `checkAndFreshState`.
    fn check_and_fresh_state(&mut self, di: usize) -> bool {
        if self.member.role != Role::Leader {
            return false;
        }
        let d = &self.pusher.dispatchers[di];
        if d.term != self.member.term || d.leader_id.as_deref() != self.member.leader_id.as_deref()
        {
            let term = self.member.term;
            let me = self.cfg.self_id.clone();
            let d = &mut self.pusher.dispatchers[di];
            d.term = term;
            d.leader_id = Some(me);
            self.change_state(di, -1, PushType::Compare);
        }
        true
    }

    pub(super) fn run(&mut self, now: i64) {
        for di in 0..self.pusher.dispatchers.len() {
            self.dispatcher_work(di, now);
        }
    }

    fn dispatcher_work(&mut self, di: usize, now: i64) {
        if let Some((id, deadline)) = self.pusher.dispatchers[di].waiting {
            if now >= deadline {
                // `get(3, SECONDS)` threw: pause and retry.
                self.out.take(id);
                let d = &mut self.pusher.dispatchers[di];
                d.waiting = None;
                d.paused_until = now + DISPATCHER_ERROR_PAUSE_MS;
            }
            return;
        }
        if now < self.pusher.dispatchers[di].paused_until {
            return;
        }
        // The pause is over: it is no longer a deadline for poll_timeout.
        self.pusher.dispatchers[di].paused_until = i64::MIN;
        if !self.check_and_fresh_state(di) {
            return;
        }
        if self.pusher.dispatchers[di].kind == PushType::Append {
            self.do_append(di, now);
        } else {
            self.do_compare(di, now);
        }
    }

    fn build_push(&self, di: usize, entry: Option<Entry>, kind: PushType) -> PushEntryRequest {
        let d = &self.pusher.dispatchers[di];
        let mut header = request_header(self.cfg, &d.peer, d.term);
        header.leader_id = d.leader_id.clone();
        let carried = entry.as_ref().map_or(-1, |e| e.index);
        PushEntryRequest {
            header,
            kind,
            commit_index: self.peer_commit_index(di, carried),
            entry,
            batch_entry: Vec::new(),
        }
    }

    /// The commit index to tell a peer. Not Java (it sends its committed
    /// index as is): never more than what the peer is known to hold like us
    /// — its watermark in this term, or the last entry this push carries
    /// (APPEND appends it, TRUNCATE cuts the follower's log right after it).
    /// A follower only clamps to its own log end, so a larger value could
    /// mark a stale tail of an earlier term committed before COMPARE and
    /// TRUNCATE replace it.
    fn peer_commit_index(&self, di: usize, carried: i64) -> i64 {
        let d = &self.pusher.dispatchers[di];
        let wm = self.watermarks.peek(d.term, &d.peer);
        self.store.committed_index().min(wm.max(carried))
    }

    /// One step of `doCompare`: send the COMPARE for the current compare index.
    fn do_compare(&mut self, di: usize, now: i64) {
        let kind = self.pusher.dispatchers[di].kind;
        if kind != PushType::Compare && kind != PushType::Truncate {
            return;
        }
        let (lb, le) = (self.store.begin_index(), self.store.end_index());
        let d = &mut self.pusher.dispatchers[di];
        if d.compare_index == -1 && le == -1 {
            return;
        }
        if d.compare_index == -1 || d.compare_index > le || d.compare_index < lb {
            d.compare_index = le;
        }
        let ci = d.compare_index;
        let entry = match self.store.get(ci) {
            Ok(e) => e,
            Err(_) => {
                self.pusher.dispatchers[di].paused_until = now + DISPATCHER_ERROR_PAUSE_MS;
                return;
            }
        };
        let req = self.build_push(di, Some(entry), PushType::Compare);
        let peer = self.pusher.dispatchers[di].peer.clone();
        let id = self.out.send(
            &peer,
            Request::Push(req),
            Outstanding::Compare { peer: peer.clone() },
        );
        self.pusher.dispatchers[di].waiting = Some((id, now + SYNC_PUSH_WAIT_MS));
    }

    pub(super) fn dispatcher_error(&mut self, peer: &str, id: OutboundId, now: i64) {
        if let Some(di) = self.dispatcher_pos(peer) {
            let d = &mut self.pusher.dispatchers[di];
            if d.waiting.map(|w| w.0) == Some(id) {
                d.waiting = None;
                d.paused_until = now + DISPATCHER_ERROR_PAUSE_MS;
            }
        }
    }

    /// The COMPARE decision table (docs/protocol/dledger.md §2.9).
    pub(super) fn on_compare_reply(
        &mut self,
        id: OutboundId,
        peer: &str,
        resp: &PushEntryResponse,
        now: i64,
    ) {
        let Some(di) = self.dispatcher_pos(peer) else {
            return;
        };
        if self.pusher.dispatchers[di].waiting.map(|w| w.0) != Some(id) {
            return;
        }
        self.pusher.dispatchers[di].waiting = None;
        let code = resp.header.code;
        if code != ResponseCode::Success.code() && code != ResponseCode::InconsistentState.code() {
            self.pusher.dispatchers[di].paused_until = now + DISPATCHER_ERROR_PAUSE_MS;
            return;
        }
        let (lb, le) = (self.store.begin_index(), self.store.end_index());
        let ci = self.pusher.dispatchers[di].compare_index;
        let mut truncate_index = -1;
        if code == ResponseCode::Success.code() {
            if ci == resp.end_index {
                self.change_state(di, ci, PushType::Append);
                self.dispatcher_work(di, now);
                return;
            }
            truncate_index = ci;
        } else if resp.end_index < lb || resp.begin_index > le || ci < resp.begin_index {
            truncate_index = lb;
        } else if ci > resp.end_index {
            self.pusher.dispatchers[di].compare_index = resp.end_index;
        } else {
            self.pusher.dispatchers[di].compare_index -= 1;
        }
        if self.pusher.dispatchers[di].compare_index < lb {
            truncate_index = lb;
        }
        if truncate_index != -1 && self.cfg.strict_commit {
            // Not Java: never cut below what this follower acknowledged in
            // this term. Java truncates at compareIndex even when the entries
            // above it were appended (and counted) meanwhile by pipelined
            // APPENDs that overtook the COMPARE, which can lose an
            // acknowledged entry (found by the simulator, see sim docs).
            let (term, p) = (
                self.pusher.dispatchers[di].term,
                self.pusher.dispatchers[di].peer.clone(),
            );
            let keep = self.watermarks.get(term, &p).min(resp.end_index).min(le);
            truncate_index = truncate_index.max(keep);
        }
        if truncate_index != -1 {
            self.change_state(di, truncate_index, PushType::Truncate);
            self.do_truncate(di, truncate_index, now);
        } else {
            // Next loop iteration of doCompare.
            if self.check_and_fresh_state(di) {
                self.do_compare(di, now);
            }
        }
    }

    fn do_truncate(&mut self, di: usize, truncate_index: i64, now: i64) {
        let entry = match self.store.get(truncate_index) {
            Ok(e) => e,
            Err(_) => {
                self.pusher.dispatchers[di].paused_until = now + DISPATCHER_ERROR_PAUSE_MS;
                return;
            }
        };
        self.pusher.dispatchers[di].truncate_index = truncate_index;
        let req = self.build_push(di, Some(entry), PushType::Truncate);
        let peer = self.pusher.dispatchers[di].peer.clone();
        let id = self.out.send(
            &peer,
            Request::Push(req),
            Outstanding::Truncate { peer: peer.clone() },
        );
        self.pusher.dispatchers[di].waiting = Some((id, now + SYNC_PUSH_WAIT_MS));
    }

    pub(super) fn on_truncate_reply(
        &mut self,
        id: OutboundId,
        peer: &str,
        resp: &PushEntryResponse,
        now: i64,
    ) {
        let Some(di) = self.dispatcher_pos(peer) else {
            return;
        };
        if self.pusher.dispatchers[di].waiting.map(|w| w.0) != Some(id) {
            return;
        }
        self.pusher.dispatchers[di].waiting = None;
        if resp.header.code != ResponseCode::Success.code() {
            self.pusher.dispatchers[di].paused_until = now + DISPATCHER_ERROR_PAUSE_MS;
            return;
        }
        self.pusher.dispatchers[di].last_push_commit = Some(now);
        let ti = self.pusher.dispatchers[di].truncate_index;
        self.change_state(di, ti, PushType::Append);
        self.dispatcher_work(di, now);
    }

    fn do_append(&mut self, di: usize, now: i64) {
        // Bounded by MAX_PENDING_PUSHES sends per call.
        for _ in 0..=MAX_PENDING_PUSHES {
            if !self.check_and_fresh_state(di)
                || self.pusher.dispatchers[di].kind != PushType::Append
            {
                return;
            }
            if self.pusher.dispatchers[di].write_index > self.store.end_index() {
                self.do_commit(di, now);
                self.do_check_append_response(di, now);
                return;
            }
            let (term, peer) = (
                self.pusher.dispatchers[di].term,
                self.pusher.dispatchers[di].peer.clone(),
            );
            let max_pending = if self.cfg.enable_batch_push {
                MAX_PENDING_BATCHES
            } else {
                MAX_PENDING_PUSHES
            };
            let d = &self.pusher.dispatchers[di];
            if d.pending.len() >= max_pending || now - d.last_check_leak > PERIOD_MS {
                let wm = self.watermarks.get(term, &peer);
                let d = &mut self.pusher.dispatchers[di];
                // Java: a single push is dropped below the watermark, a batch
                // once its last entry is at or below it.
                d.pending
                    .retain(|i, (_, n)| if *n > 1 { *i + *n - 1 > wm } else { *i >= wm });
                d.last_check_leak = now;
            }
            if self.pusher.dispatchers[di].pending.len() >= max_pending {
                self.do_check_append_response(di, now);
                return;
            }
            let wi = self.pusher.dispatchers[di].write_index;
            let last = if self.cfg.enable_batch_push {
                self.store.end_index()
            } else {
                wi
            };
            let sent = self.do_append_inner(di, wi, last, now);
            self.pusher.dispatchers[di].write_index += sent.max(1);
        }
    }

    /// Pushes entries `first..=last` (as many as fit in `maxBatchPushSize`,
    /// at least one): one entry in Java's single shape, more in the batch
    /// shape (`enableBatchPush`). Returns how many were sent.
    fn do_append_inner(&mut self, di: usize, first: i64, last: i64, now: i64) -> i64 {
        let mut entries = Vec::new();
        let mut size = 0usize;
        let mut index = first;
        while index <= last.max(first) {
            let entry = match self.store.get(index) {
                Ok(e) => e,
                Err(_) if !entries.is_empty() => break,
                Err(StorageError::BelowBegin { .. }) => {
                    self.change_state(di, -1, PushType::Compare);
                    return 0;
                }
                Err(_) => {
                    self.pusher.dispatchers[di].paused_until = now + DISPATCHER_ERROR_PAUSE_MS;
                    return 0;
                }
            };
            size += entry.body.len() + 48;
            entries.push(entry);
            index += 1;
            if size >= self.cfg.max_batch_push_size || entries.len() >= MAX_BATCH_ENTRIES {
                break;
            }
        }
        let count = entries.len() as i64;
        let req = if count == 1 {
            self.build_push(di, entries.pop(), PushType::Append)
        } else {
            let last = entries.last().map_or(-1, |e| e.index);
            let mut req = self.build_push(di, None, PushType::Append);
            req.batch_entry = entries;
            req.commit_index = self.peer_commit_index(di, last);
            req
        };
        let peer = self.pusher.dispatchers[di].peer.clone();
        self.out.send(
            &peer,
            Request::Push(req),
            Outstanding::Append {
                peer: peer.clone(),
                first,
                count,
            },
        );
        let d = &mut self.pusher.dispatchers[di];
        d.pending.insert(first, (now, count));
        d.last_push_commit = Some(now);
        count
    }

    fn do_commit(&mut self, di: usize, now: i64) {
        if self.pusher.dispatchers[di]
            .last_push_commit
            .is_none_or(|t| now - t > PERIOD_MS)
        {
            let req = self.build_push(di, None, PushType::Commit);
            let peer = self.pusher.dispatchers[di].peer.clone();
            self.out
                .send(&peer, Request::Push(req), Outstanding::Commit);
            self.pusher.dispatchers[di].last_push_commit = Some(now);
        }
    }

    fn do_check_append_response(&mut self, di: usize, now: i64) {
        let (term, peer) = (
            self.pusher.dispatchers[di].term,
            self.pusher.dispatchers[di].peer.clone(),
        );
        let wm = self.watermarks.get(term, &peer);
        if let Some((sent, count)) = self.pusher.dispatchers[di].pending.get(&(wm + 1)).copied() {
            if now - sent > self.cfg.max_push_time_out_ms as i64 {
                // The same range again (Java's doCheckBatchAppendResponse).
                self.do_append_inner(di, wm + 1, wm + count, now);
            }
        }
    }

    pub(super) fn on_append_reply(
        &mut self,
        peer: &str,
        first: i64,
        count: i64,
        resp: &PushEntryResponse,
    ) {
        let Some(di) = self.dispatcher_pos(peer) else {
            return;
        };
        match ResponseCode::from_code(resp.header.code) {
            Some(ResponseCode::Success) => {
                let index = resp.index.unwrap_or(-1);
                self.pusher.dispatchers[di].pending.remove(&index);
                // A batch acknowledges up to its last entry (Java: index + count - 1).
                let acked = if count > 1 && index == first {
                    first + count - 1
                } else {
                    index
                };
                self.watermarks.update(resp.header.term, peer, acked);
            }
            Some(ResponseCode::InconsistentState) => self.change_state(di, -1, PushType::Compare),
            _ => {}
        }
    }
}
