//! Deterministic cluster simulator for the Raft core: one thread, seeded
//! PRNG, virtual time, a network that drops, delays, duplicates and
//! reorders, partitions (random splits, one-way loss, isolated leader),
//! crash-restart keeping the disk (hard state and log survive, volatile state
//! is lost), forward clock jumps, and clients proposing all the time.
//! `tests/sim_cluster.rs` runs thousands of seeds.
//!
//! Checked after every event:
//! - progress: right after `tick(now)` the node's next timeout is > now
//!   (a timer that stays due would make the driver busy-loop);
//! - at most one leader per term;
//! - log matching: an `(index, term)` pair fixes body, pos and the previous
//!   entry's term on every node;
//! - every acknowledged (200) entry is in the log of every leader of a later
//!   term, at the same index with the same body;
//! - strict mode only: committed prefixes never disagree, no node overwrites
//!   its committed prefix, every new leader holds every committed entry;
//! - liveness: after the fault phase (heal, restart everyone, clean network)
//!   a fresh proposal is acknowledged within `liveness_ms`.
//!
//! What does not hold with Java's rules (documented, not checked):
//! - Java's counting rule can commit an earlier-term entry that a later
//!   leader overwrites (Raft Figure 8; `tests/core_figure8.rs`), so
//!   "committed" is not durable; acknowledged entries are.
//! - With a fully reordering network (`fifo: false`) Java's leader can cut
//!   acknowledged entries off a follower: pipelined APPENDs that overtake a
//!   COMPARE are acked and counted, then "COMPARE 200 below the follower's
//!   end → TRUNCATE at compareIndex" removes them (`SIM_NET=chaos SIM_SEED=757
//!   cargo test --release -p dledger --test sim_cluster java_rule_3_nodes`).
//!   Java's transport (one ordered channel per peer) makes this unlikely, so
//!   Java-rule sweeps use per-link FIFO; strict mode clamps the truncate point
//!   and is swept with full reordering and duplication.
//! - After lost acks, Java's leader resends only `watermark + 1` once per
//!   `maxPushTimeOutMs`, so a follower that lost N acks is counted again only
//!   after about N seconds (recovery times in the sweep reflect this).

pub mod mem;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use bytes::Bytes;

use crate::config::{DLedgerConfig, Peer, Timers, JAVA_TIMERS};
use crate::core::message::{Request, ResponseCode, Role};
use crate::core::{Action, InboundId, Node, OutboundId, SplitMix64, Storage};
pub use mem::MemStorage;

/// One simulation's parameters.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub seed: u64,
    pub nodes: usize,
    pub strict_commit: bool,
    /// Virtual ms with faults.
    pub fault_ms: u64,
    /// Virtual ms after healing within which a proposal must be acknowledged.
    pub liveness_ms: u64,
    pub segment: i64,
    /// TCP-like links: per directed link messages arrive in send order and
    /// are never duplicated (Java's transport is one Netty channel per peer).
    /// false = any reorder and duplication.
    pub fifo: bool,
    /// Election timers of every node (Java's by default; with ours, the
    /// fault phase's delays of up to 2.5 s mostly cause election churn).
    pub timers: Timers,
    /// `enableBatchPush` on every node (Java's default: off).
    pub batch_push: bool,
}

impl SimOptions {
    pub fn new(seed: u64, nodes: usize, strict_commit: bool) -> Self {
        SimOptions {
            seed,
            nodes,
            strict_commit,
            fault_ms: 40_000,
            liveness_ms: 600_000,
            segment: 4096,
            fifo: !strict_commit,
            timers: JAVA_TIMERS,
            batch_push: false,
        }
    }
}

/// What a run observed.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    pub events: u64,
    pub elections: u64,
    pub acked: u64,
    pub max_term: i64,
    /// Java rule only: an index some node had counted committed later held a
    /// different entry somewhere's committed prefix (Raft Figure 8). Always 0
    /// with `strict_commit`.
    pub committed_overwrites: u64,
    /// Virtual ms from healing to the first acknowledged fresh proposal.
    pub recovery_ms: u64,
}

#[derive(Debug)]
enum Msg {
    Req {
        from: usize,
        from_inc: u64,
        out: OutboundId,
        req: Request,
    },
    Resp {
        to_inc: u64,
        out: OutboundId,
        resp: crate::core::message::Response,
    },
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Ev {
    Deliver {
        to: usize,
        from: usize,
        msg: Msg,
    },
    Timeout {
        node: usize,
        inc: u64,
        out: OutboundId,
    },
    Tick {
        node: usize,
        inc: u64,
        at: u64,
    },
    Fault,
    Client,
}

struct Slot {
    node: Option<Node<MemStorage>>,
    disk: Option<MemStorage>,
    inc: u64,
    /// Local clock = global + offset (forward jumps only).
    offset: u64,
    next_tick: Option<u64>,
    outstanding: HashSet<u64>,
    inbound: HashMap<u64, (usize, u64, OutboundId)>,
    next_in: u64,
    committed_seen: i64,
}

struct Net {
    drop: u64, // per mille
    dup: u64,  // per mille
    max_delay: u64,
    blocked: HashSet<(usize, usize)>,
}

/// A simulation; [`run`] drives one to completion.
pub struct Sim {
    opts: SimOptions,
    rng: SplitMix64,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: HashMap<usize, Ev>,
    next_ev: usize,
    slots: Vec<Slot>,
    net: Net,
    ids: Vec<String>,
    // invariants
    leaders: HashMap<i64, usize>,
    log_map: HashMap<(i64, i64), (i64, Bytes, i64)>,
    acked: BTreeMap<i64, (i64, Bytes)>,
    committed: BTreeMap<i64, (i64, Bytes)>,
    report: SimReport,
    client_seq: u64,
    link_last: HashMap<(usize, usize), u64>,
    healed: bool,
    fresh: Option<(usize, i64, i64)>,
    fresh_acked: bool,
    heal_time: u64,
}

fn short(a: &Action) -> String {
    use crate::core::message::Response;
    match a {
        Action::Send {
            id,
            to,
            request: Request::Push(p),
        } => format!(
            "send#{} {to} {:?} idx={} term={}",
            id.0,
            p.kind,
            p.first_entry_index(),
            p.header.term
        ),
        Action::Respond {
            id,
            response: Response::Push(p),
        } => format!(
            "respond in#{} code={} idx={:?} end={}",
            id.0, p.header.code, p.index, p.end_index
        ),
        other => format!("{:?}", other).chars().take(120).collect(),
    }
}

fn cfg_for(opts: &SimOptions, ids: &[String], me: usize) -> DLedgerConfig {
    let mut c = DLedgerConfig {
        group: "g".into(),
        self_id: ids[me].clone(),
        peers: ids
            .iter()
            .map(|i| Peer {
                id: i.clone(),
                addr: format!("{i}:1"),
            })
            .collect(),
        strict_commit: opts.strict_commit,
        enable_batch_push: opts.batch_push,
        ..DLedgerConfig::java_defaults()
    };
    c.set_timers(opts.timers);
    c
}

/// Runs one simulation; `Err` names the broken invariant.
pub fn run(opts: SimOptions) -> Result<SimReport, String> {
    let mut sim = Sim::new(opts);
    sim.run()?;
    Ok(sim.report)
}

impl Sim {
    fn new(opts: SimOptions) -> Sim {
        let ids: Vec<String> = (0..opts.nodes).map(|i| format!("n{i}")).collect();
        let mut rng = SplitMix64(opts.seed ^ 0xD1ED_6E2A);
        let start = 1_000_000;
        let slots = (0..opts.nodes)
            .map(|i| Slot {
                node: Some(Node::new(
                    cfg_for(&opts, &ids, i),
                    MemStorage::new(opts.segment),
                    rng.next_u64(),
                    start,
                )),
                disk: None,
                inc: 0,
                offset: 0,
                next_tick: None,
                outstanding: HashSet::new(),
                inbound: HashMap::new(),
                next_in: 1,
                committed_seen: -1,
            })
            .collect();
        Sim {
            opts,
            rng,
            now: start,
            seq: 0,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            next_ev: 0,
            slots,
            net: Net {
                drop: 0,
                dup: 0,
                max_delay: 20,
                blocked: HashSet::new(),
            },
            ids,
            leaders: HashMap::new(),
            log_map: HashMap::new(),
            acked: BTreeMap::new(),
            committed: BTreeMap::new(),
            report: SimReport::default(),
            client_seq: 0,
            link_last: HashMap::new(),
            healed: false,
            fresh: None,
            fresh_acked: false,
            heal_time: 0,
        }
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        let k = self.next_ev;
        self.next_ev += 1;
        self.events.insert(k, ev);
        self.queue.push(Reverse((at, self.seq, k)));
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.rng.below(1000) < per_mille
    }

    fn run(&mut self) -> Result<(), String> {
        for i in 0..self.slots.len() {
            self.after(i)?;
        }
        self.push(self.now + 500, Ev::Fault);
        self.push(self.now + 100, Ev::Client);
        let fault_end = self.now + self.opts.fault_ms;
        let hard_end = fault_end + self.opts.liveness_ms;
        let mut steps: u64 = 0;
        while let Some(Reverse((at, _, k))) = self.queue.pop() {
            steps += 1;
            if steps > 5_000_000 {
                return Err("event budget exhausted".into());
            }
            self.now = self.now.max(at);
            if !self.healed && self.now >= fault_end {
                self.heal()?;
            }
            if self.healed && self.fresh_acked {
                self.report.recovery_ms = self.now - self.heal_time;
                break;
            }
            if self.now > hard_end {
                return Err(format!(
                    "liveness: no fresh proposal acknowledged within {} ms after healing (nodes:\n{})",
                    self.opts.liveness_ms,
                    self.roles().join("\n")
                ));
            }
            let Some(ev) = self.events.remove(&k) else {
                continue;
            };
            self.report.events += 1;
            self.handle(ev)?;
        }
        if !self.fresh_acked {
            return Err("liveness: simulation ran out of events".into());
        }
        Ok(())
    }

    fn roles(&self) -> Vec<String> {
        self.slots
            .iter()
            .map(|s| {
                s.node.as_ref().map_or("down".to_string(), |n| {
                    format!(
                        "{} poll={:?} local_now={} next_tick={:?}",
                        n.debug_state(),
                        n.poll_timeout(),
                        self.now + s.offset,
                        s.next_tick.map(|t| t + s.offset)
                    )
                })
            })
            .collect()
    }

    fn local(&self, i: usize) -> u64 {
        self.now + self.slots[i].offset
    }

    fn heal(&mut self) -> Result<(), String> {
        self.healed = true;
        self.heal_time = self.now;
        self.net.blocked.clear();
        self.net.drop = 0;
        self.net.dup = 0;
        self.net.max_delay = 20;
        for i in 0..self.slots.len() {
            if self.slots[i].node.is_none() {
                self.restart(i)?;
            }
        }
        Ok(())
    }

    fn handle(&mut self, ev: Ev) -> Result<(), String> {
        match ev {
            Ev::Tick { node, inc, at } => {
                let s = &mut self.slots[node];
                if s.inc != inc || s.next_tick != Some(at) || s.node.is_none() {
                    return Ok(());
                }
                s.next_tick = None;
                let now = self.local(node);
                if let Some(n) = self.slots[node].node.as_mut() {
                    n.tick(now);
                    // A timer that stays due after the tick that was meant to
                    // serve it would make a real driver spin (100% CPU).
                    if let Some(t) = n.poll_timeout() {
                        if t <= now {
                            return Err(format!(
                                "n{node}: poll_timeout {t} <= now {now} right after tick: {}",
                                n.debug_state()
                            ));
                        }
                    }
                }
                self.after(node)?;
            }
            Ev::Timeout { node, inc, out } => {
                if self.slots[node].inc != inc || !self.slots[node].outstanding.remove(&out.0) {
                    return Ok(());
                }
                let now = self.local(node);
                if let Some(n) = self.slots[node].node.as_mut() {
                    n.handle_send_failure(out, now);
                }
                self.after(node)?;
            }
            Ev::Deliver { to, from, msg } => {
                if self.net.blocked.contains(&(from, to)) || self.slots[to].node.is_none() {
                    return Ok(());
                }
                let now = self.local(to);
                match msg {
                    Msg::Req {
                        from,
                        from_inc,
                        out,
                        req,
                    } => {
                        let s = &mut self.slots[to];
                        let id = s.next_in;
                        s.next_in += 1;
                        s.inbound.insert(id, (from, from_inc, out));
                        if let Some(n) = s.node.as_mut() {
                            n.handle_request(InboundId(id), req, now);
                        }
                    }
                    Msg::Resp { to_inc, out, resp } => {
                        let s = &mut self.slots[to];
                        if s.inc != to_inc || !s.outstanding.remove(&out.0) {
                            return Ok(());
                        }
                        if let Some(n) = s.node.as_mut() {
                            n.handle_response(out, resp, now);
                        }
                    }
                }
                self.after(to)?;
            }
            Ev::Fault => {
                if !self.healed {
                    self.fault()?;
                    let d = 100 + self.rng.below(1500);
                    self.push(self.now + d, Ev::Fault);
                }
            }
            Ev::Client => {
                self.client()?;
                let d = if self.healed {
                    200
                } else {
                    20 + self.rng.below(300)
                };
                self.push(self.now + d, Ev::Client);
            }
        }
        Ok(())
    }

    fn fault(&mut self) -> Result<(), String> {
        let n = self.slots.len();
        match self.rng.below(13) {
            0 | 1 => {
                // crash a random node, or (1) a leader if there is one
                let leader = (0..n).find(|&i| {
                    self.slots[i]
                        .node
                        .as_ref()
                        .is_some_and(|x| x.role() == Role::Leader)
                });
                let i = match (leader, self.rng.below(2)) {
                    (Some(l), 1) => l,
                    _ => self.rng.below(n as u64) as usize,
                };
                if let Some(node) = self.slots[i].node.take() {
                    let s = &mut self.slots[i];
                    s.disk = Some(node.into_storage());
                    s.inc += 1;
                    s.outstanding.clear();
                    s.inbound.clear();
                    s.next_tick = None;
                }
            }
            2 | 10 | 11 => {
                // restart someone down
                let i = self.rng.below(n as u64) as usize;
                if self.slots[i].node.is_none() {
                    self.restart(i)?;
                }
            }
            12 => {
                // isolate a leader
                if let Some(l) = (0..n).find(|&i| {
                    self.slots[i]
                        .node
                        .as_ref()
                        .is_some_and(|x| x.role() == Role::Leader)
                }) {
                    for j in 0..n {
                        if j != l {
                            self.net.blocked.insert((l, j));
                            self.net.blocked.insert((j, l));
                        }
                    }
                }
            }
            3 => {
                // partition: isolate a random subset
                self.net.blocked.clear();
                let mask = self.rng.below(1 << n);
                for a in 0..n {
                    for b in 0..n {
                        if (mask >> a) & 1 != (mask >> b) & 1 {
                            self.net.blocked.insert((a, b));
                        }
                    }
                }
            }
            4 => {
                // one-way link loss
                let a = self.rng.below(n as u64) as usize;
                let b = self.rng.below(n as u64) as usize;
                if a != b {
                    self.net.blocked.insert((a, b));
                }
            }
            5 => self.net.blocked.clear(),
            6 => {
                self.net.drop = self.rng.below(300);
                self.net.dup = self.rng.below(200);
            }
            7 => self.net.max_delay = [5, 50, 400, 2500][self.rng.below(4) as usize],
            8 => {
                // forward clock jump on one node
                let i = self.rng.below(n as u64) as usize;
                let jump = self.rng.below(8000);
                self.slots[i].offset += jump;
                if let Some(t) = self.slots[i].next_tick {
                    let _ = t;
                    self.slots[i].next_tick = None;
                    self.after(i)?;
                }
            }
            _ => {
                self.net.drop = 0;
                self.net.dup = 0;
            }
        }
        Ok(())
    }

    fn restart(&mut self, i: usize) -> Result<(), String> {
        let disk = self.slots[i]
            .disk
            .take()
            .unwrap_or_else(|| MemStorage::new(self.opts.segment));
        let seed = self.rng.next_u64();
        let now = self.local(i);
        let cfg = cfg_for(&self.opts, &self.ids, i);
        let s = &mut self.slots[i];
        s.inc += 1;
        s.node = Some(Node::new(cfg, disk, seed, now));
        s.outstanding.clear();
        s.inbound.clear();
        s.next_tick = None;
        self.after(i)
    }

    fn client(&mut self) -> Result<(), String> {
        let n = self.slots.len();
        // Propose on whichever nodes think they lead (stale leaders included).
        for i in 0..n {
            let Some(node) = self.slots[i].node.as_mut() else {
                continue;
            };
            if node.role() != Role::Leader {
                continue;
            }
            self.client_seq += 1;
            let pad = (self.rng.below(200)) as usize;
            let body = format!(
                "s{}-c{}-{}",
                self.opts.seed,
                self.client_seq,
                "x".repeat(pad)
            );
            let now = self.now + self.slots[i].offset;
            let node = self.slots[i].node.as_mut().expect("checked");
            if let Ok(ok) = node.propose(Bytes::from(body), now) {
                if self.healed && self.fresh.is_none() {
                    self.fresh = Some((i, ok.term, ok.index));
                }
            }
            self.after(i)?;
        }
        if self.healed && self.fresh.is_some() && !self.fresh_acked {
            // A proposal that ended 501/502 is retried on the next leader.
            if let Some((i, _, _)) = self.fresh {
                if self.slots[i].node.as_ref().map(|n| n.role()) != Some(Role::Leader) {
                    self.fresh = None;
                }
            }
        }
        Ok(())
    }

    /// Delivery time of a message on link `from → to`.
    fn arrival(&mut self, from: usize, to: usize) -> u64 {
        let at = self.now + 1 + self.rng.below(self.net.max_delay);
        if !self.opts.fifo {
            return at;
        }
        let last = self.link_last.entry((from, to)).or_insert(0);
        let at = at.max(*last);
        *last = at;
        at
    }

    /// Executes node `i`'s actions, checks invariants, schedules its tick.
    fn after(&mut self, i: usize) -> Result<(), String> {
        let Some(node) = self.slots[i].node.as_mut() else {
            return Ok(());
        };
        let actions = node.drain_actions();
        let inc = self.slots[i].inc;
        if std::env::var("SIM_TRACE").is_ok() {
            for a in &actions {
                eprintln!("t={} n{i}: {}", self.now, short(a));
            }
        }
        for a in actions {
            match a {
                Action::Send { id, to, request } => {
                    let Some(to) = self.ids.iter().position(|x| *x == to) else {
                        return Err(format!("send to unknown peer {to}"));
                    };
                    self.slots[i].outstanding.insert(id.0);
                    self.push(
                        self.now + 3000,
                        Ev::Timeout {
                            node: i,
                            inc,
                            out: id,
                        },
                    );
                    if self.net.blocked.contains(&(i, to)) || self.chance(self.net.drop) {
                        continue;
                    }
                    let dup = !self.opts.fifo && self.chance(self.net.dup);
                    for _ in 0..1 + usize::from(dup) {
                        let at = self.arrival(i, to);
                        let msg = Msg::Req {
                            from: i,
                            from_inc: inc,
                            out: id,
                            req: request.clone(),
                        };
                        self.push(at, Ev::Deliver { to, from: i, msg });
                    }
                }
                Action::Respond { id, response } => {
                    let Some((from, from_inc, out)) = self.slots[i].inbound.remove(&id.0) else {
                        return Err(format!("n{i} answered unknown inbound id {}", id.0));
                    };
                    if self.net.blocked.contains(&(i, from)) || self.chance(self.net.drop) {
                        continue;
                    }
                    let at = self.arrival(i, from);
                    let msg = Msg::Resp {
                        to_inc: from_inc,
                        out,
                        resp: response,
                    };
                    self.push(
                        at,
                        Ev::Deliver {
                            to: from,
                            from: i,
                            msg,
                        },
                    );
                }
                Action::Abandon { id } => {
                    if self.slots[i].inbound.remove(&id.0).is_none() {
                        return Err(format!("n{i} abandoned unknown inbound id {}", id.0));
                    }
                }
                Action::AppendOutcome {
                    term, index, code, ..
                } => {
                    if code == ResponseCode::Success {
                        self.on_ack(i, term, index)?;
                    } else if self.fresh == Some((i, term, index)) {
                        // Indeterminate: propose again.
                        self.fresh = None;
                    }
                }
                Action::CommitAdvanced { index } => self.on_commit(i, index)?,
                Action::RoleChanged { term, role } => {
                    self.report.max_term = self.report.max_term.max(term);
                    if role == Role::Leader {
                        self.on_leader(i, term)?;
                    }
                }
            }
        }
        self.check_log(i)?;
        // schedule the next tick
        let Some(node) = self.slots[i].node.as_ref() else {
            return Ok(());
        };
        if let Some(t) = node.poll_timeout() {
            let global = t.saturating_sub(self.slots[i].offset).max(self.now + 1);
            if self.slots[i].next_tick.is_none_or(|x| global < x) {
                self.slots[i].next_tick = Some(global);
                self.push(
                    global,
                    Ev::Tick {
                        node: i,
                        inc,
                        at: global,
                    },
                );
            }
        }
        Ok(())
    }

    fn store(&self, i: usize) -> Option<&MemStorage> {
        self.slots[i].node.as_ref().map(|n| n.storage())
    }

    fn on_leader(&mut self, i: usize, term: i64) -> Result<(), String> {
        self.report.elections += 1;
        if let Some(&other) = self.leaders.get(&term) {
            if other != i {
                return Err(format!("two leaders in term {term}: n{other} and n{i}"));
            }
        }
        self.leaders.insert(term, i);
        let st = self.store(i).expect("leader is up");
        for (idx, (t, body)) in &self.acked {
            if *t < term {
                match st.get(*idx) {
                    Ok(e) if e.term == *t && e.body == *body => {}
                    other => {
                        return Err(format!(
                            "acknowledged entry {idx} (term {t}) missing from new leader n{i} of term {term}: {:?}",
                            other.map(|e| (e.term, e.index))
                        ))
                    }
                }
            }
        }
        if self.opts.strict_commit {
            for (idx, (t, body)) in &self.committed {
                match st.get(*idx) {
                    Ok(e) if e.term == *t && e.body == *body => {}
                    _ => {
                        return Err(format!(
                            "committed entry {idx} missing from new leader n{i} term {term}"
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    fn on_ack(&mut self, i: usize, term: i64, index: i64) -> Result<(), String> {
        let st = self.store(i).expect("acker is up");
        let e = st
            .get(index)
            .map_err(|e| format!("n{i} acked {index} it does not hold: {e}"))?;
        if e.term != term {
            return Err(format!(
                "n{i} acked {index} with term {term} but holds term {}",
                e.term
            ));
        }
        self.report.acked += 1;
        if let Some((t, b)) = self.acked.get(&index) {
            if *t != e.term || *b != e.body {
                return Err(format!(
                    "index {index} acknowledged twice with different entries"
                ));
            }
        }
        // Every current leader of a later term must already hold it.
        for j in 0..self.slots.len() {
            if let Some(n) = self.slots[j].node.as_ref() {
                if n.role() == Role::Leader && n.term() > term {
                    match n.storage().get(index) {
                        Ok(x) if x.same_as(&e) => {}
                        _ => {
                            return Err(format!(
                                "acked {index}/{term} missing on leader n{j} of term {}",
                                n.term()
                            ))
                        }
                    }
                }
            }
        }
        self.acked.insert(index, (e.term, e.body.clone()));
        if self.healed {
            if let Some((fi, ft, fx)) = self.fresh {
                if fi == i && ft == term && fx == index {
                    self.fresh_acked = true;
                }
            }
        }
        Ok(())
    }

    fn on_commit(&mut self, i: usize, index: i64) -> Result<(), String> {
        let from = self.slots[i].committed_seen + 1;
        self.slots[i].committed_seen = index;
        let st = self.store(i).expect("up");
        let mut overwrites = 0;
        let mut news = Vec::new();
        for idx in from..=index {
            let e = st
                .get(idx)
                .map_err(|e| format!("n{i} committed {idx} it does not hold: {e}"))?;
            match self.committed.get(&idx) {
                Some((t, b)) if *t == e.term && *b == e.body => {}
                Some(_) => {
                    if self.opts.strict_commit {
                        return Err(format!("n{i} committed a different entry at {idx}"));
                    }
                    overwrites += 1;
                    news.push((idx, e.term, e.body.clone()));
                }
                None => news.push((idx, e.term, e.body.clone())),
            }
        }
        self.report.committed_overwrites += overwrites;
        for (idx, t, b) in news {
            self.committed.insert(idx, (t, b));
        }
        Ok(())
    }

    /// Log matching: an (index, term) pair fixes the body, pos and the
    /// previous entry's term on every node. Strict mode: a node's committed
    /// prefix never changes.
    fn check_log(&mut self, i: usize) -> Result<(), String> {
        let strict = self.opts.strict_commit;
        let seen = self.slots[i].committed_seen;
        let Some(node) = self.slots[i].node.as_mut() else {
            return Ok(());
        };
        let Some(from) = node.storage_mut().take_dirty() else {
            return Ok(());
        };
        let st = node.storage();
        let entries = st.entries();
        let begin = entries.first().map_or(0, |e| e.index);
        for e in entries.iter().skip((from - begin).max(0) as usize) {
            let prev = if e.index > begin {
                entries[(e.index - begin - 1) as usize].term
            } else {
                -1
            };
            if e.index != begin + (e.index - begin) {
                return Err("index gap".into());
            }
            match self.log_map.get(&(e.index, e.term)) {
                Some((pos, body, pt)) => {
                    if *pos != e.pos || *body != e.body || *pt != prev {
                        return Err(format!(
                            "log matching broken on n{i} at index {} term {}: pos {} vs {}, prev term {} vs {}",
                            e.index, e.term, e.pos, pos, prev, pt
                        ));
                    }
                }
                None => {
                    self.log_map
                        .insert((e.index, e.term), (e.pos, e.body.clone(), prev));
                }
            }
            if strict && e.index <= seen {
                match self.committed.get(&e.index) {
                    Some((t, b)) if *t == e.term && *b == e.body => {}
                    _ => return Err(format!("n{i} overwrote its committed entry {}", e.index)),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A few seeds as a smoke test; `tests/sim_cluster.rs` runs the sweep.
    #[test]
    fn smoke() {
        let n: u64 = std::env::var("SIM_SMOKE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3);
        let list: Vec<u64> = match std::env::var("SIM_SEED") {
            Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
            Err(_) => (1..=n).collect(),
        };
        for seed in list {
            for (nodes, strict) in [(3, false), (5, false), (3, true), (5, true)] {
                match run(SimOptions::new(seed, nodes, strict)) {
                    Err(e) => panic!("seed {seed} nodes {nodes} strict {strict}: {e}"),
                    Ok(r) => {
                        if std::env::var("SIM_DEBUG").is_ok() {
                            eprintln!("seed {seed} nodes {nodes} strict {strict}: {r:?}");
                        }
                    }
                }
            }
        }
    }
}
