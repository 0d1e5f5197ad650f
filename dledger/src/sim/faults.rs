//! The network model and the fault schedule: per-link loss, duplication,
//! delay and FIFO order, partitions, crash-restart keeping the disk, clock
//! jumps, and the heal that ends the fault phase.

use std::collections::HashSet;

use crate::core::message::Role;
use crate::core::Node;

use super::{cfg_for, MemStorage, Sim};

pub(super) struct Net {
    pub(super) drop: u64, // per mille
    pub(super) dup: u64,  // per mille
    pub(super) max_delay: u64,
    pub(super) blocked: HashSet<(usize, usize)>,
}

impl Sim {
    pub(super) fn heal(&mut self) -> Result<(), String> {
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

    pub(super) fn fault(&mut self) -> Result<(), String> {
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

    /// Delivery time of a message on link `from → to`.
    pub(super) fn arrival(&mut self, from: usize, to: usize) -> u64 {
        let at = self.now + 1 + self.rng.below(self.net.max_delay);
        if !self.opts.fifo {
            return at;
        }
        let last = self.link_last.entry((from, to)).or_insert(0);
        let at = at.max(*last);
        *last = at;
        at
    }
}
