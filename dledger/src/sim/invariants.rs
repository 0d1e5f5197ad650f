//! The invariants, checked after every event: one leader per term, log
//! matching, acknowledged entries on every later leader, and (strict mode)
//! committed prefixes that never change.

use crate::core::message::Role;
use crate::core::Storage;

use super::{MemStorage, Sim};

impl Sim {
    fn store(&self, i: usize) -> Option<&MemStorage> {
        self.slots[i].node.as_ref().map(|n| n.storage())
    }

    pub(super) fn on_leader(&mut self, i: usize, term: i64) -> Result<(), String> {
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

    pub(super) fn on_ack(&mut self, i: usize, term: i64, index: i64) -> Result<(), String> {
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

    pub(super) fn on_commit(&mut self, i: usize, index: i64) -> Result<(), String> {
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
    pub(super) fn check_log(&mut self, i: usize) -> Result<(), String> {
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
