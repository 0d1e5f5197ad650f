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
//!
//! Layout: this file holds the options, the report and the simulation's
//! state; `driver` is the event loop (events, clients, executing a node's
//! actions), `faults` the network model and the fault schedule, `invariants`
//! the checks above, and `mem` the in-memory storage whose disk survives a
//! crash.

mod driver;
mod faults;
mod invariants;
pub mod mem;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use bytes::Bytes;

use crate::config::{DLedgerConfig, Peer, Timers, JAVA_TIMERS};
use crate::core::{Node, OutboundId, SplitMix64};
use driver::Ev;
use faults::Net;
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

    pub(super) fn chance(&mut self, per_mille: u64) -> bool {
        self.rng.below(1000) < per_mille
    }

    pub(super) fn roles(&self) -> Vec<String> {
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

    pub(super) fn local(&self, i: usize) -> u64 {
        self.now + self.slots[i].offset
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
