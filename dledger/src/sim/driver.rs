//! The event loop: a time-ordered queue of message deliveries, send
//! timeouts, node ticks, fault and client events; each node's actions are
//! executed, checked and turned into new events.

use std::cmp::Reverse;

use bytes::Bytes;

use crate::core::message::{Request, ResponseCode, Role};
use crate::core::{Action, InboundId, OutboundId};

use super::Sim;

#[derive(Debug)]
pub(super) enum Msg {
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
pub(super) enum Ev {
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

impl Sim {
    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        let k = self.next_ev;
        self.next_ev += 1;
        self.events.insert(k, ev);
        self.queue.push(Reverse((at, self.seq, k)));
    }

    pub(super) fn run(&mut self) -> Result<(), String> {
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

    /// Executes node `i`'s actions, checks invariants, schedules its tick.
    pub(super) fn after(&mut self, i: usize) -> Result<(), String> {
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
}
