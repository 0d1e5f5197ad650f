//! The topic -> queues table in compact form, and the only code that
//! changes it.
//!
//! At 100k topics x 10 brokers the table has a million queue entries; a
//! tree of `QueueData` per topic (each entry with its own copy of the
//! broker name, keyed by another copy) cost ~150 bytes an entry. Here an
//! entry is 20 bytes (a broker index and four integers), a topic's entries
//! form one list ordered by broker name, and equal lists are stored once
//! and shared through an `Arc` (topics of the same brokers with the same
//! queue counts, usually most of them), so a topic costs its name and a
//! pointer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use remoting::body::QueueData;

use super::RouteTable;

/// Index of a broker name in [`BrokerNames`].
pub(super) type BrokerIdx = u32;

/// Broker names of queue entries, each stored once. A name stays once
/// seen: brokers come back under the same names, and a name is a few bytes.
#[derive(Debug, Default)]
pub(super) struct BrokerNames {
    names: Vec<Box<str>>,
    index: HashMap<Box<str>, BrokerIdx>,
}

impl BrokerNames {
    pub(super) fn get(&self, name: &str) -> Option<BrokerIdx> {
        self.index.get(name).copied()
    }

    pub(super) fn intern(&mut self, name: &str) -> BrokerIdx {
        if let Some(i) = self.get(name) {
            return i;
        }
        // Far fewer than 2^32 broker names ever exist.
        let i = self.names.len() as BrokerIdx;
        self.names.push(name.into());
        self.index.insert(name.into(), i);
        i
    }

    pub(super) fn name(&self, i: BrokerIdx) -> &str {
        self.names.get(i as usize).map_or("", |n| n)
    }
}

/// One broker's queues of one topic (`QueueData` without the name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct QueueEntry {
    pub broker: BrokerIdx,
    pub perm: i32,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub topic_sys_flag: i32,
}

impl QueueEntry {
    pub(super) fn to_queue_data(self, names: &BrokerNames) -> QueueData {
        QueueData {
            broker_name: names.name(self.broker).to_owned(),
            perm: self.perm,
            read_queue_nums: self.read_queue_nums,
            topic_sys_flag: self.topic_sys_flag,
            write_queue_nums: self.write_queue_nums,
        }
    }
}

/// A topic's queue entries, ordered by broker name, never empty; shared
/// by every topic with the same entries.
pub(super) type Queues = Arc<[QueueEntry]>;

/// topic -> its queues.
pub(super) type TopicQueueTable = BTreeMap<Box<str>, Queues>;

/// The distinct queue lists in use.
#[derive(Debug, Default)]
pub(super) struct QueueSets {
    sets: HashSet<Queues>,
}

impl QueueSets {
    fn intern(&mut self, entries: &[QueueEntry]) -> Queues {
        if let Some(set) = self.sets.get(entries) {
            return set.clone();
        }
        let set: Queues = entries.into();
        self.sets.insert(set.clone());
        set
    }

    /// Drops a list a topic no longer uses, and forgets it when it was the
    /// last user. Only topics and this set hold lists (nothing outside the
    /// table keeps one), so two owners left means the caller's and ours.
    fn release(&mut self, old: Queues) {
        if Arc::strong_count(&old) == 2 {
            self.sets.remove(&*old);
        }
    }

    /// Number of distinct lists (for tests).
    pub(super) fn len(&self) -> usize {
        self.sets.len()
    }
}

/// What [`RouteTable::put_queue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Put {
    /// The topic did not exist.
    NewTopic,
    /// The topic existed without this broker.
    Added,
    /// The broker's entry was the same already.
    Unchanged,
    /// The broker's entry was this one.
    Replaced(QueueEntry),
}

impl RouteTable {
    /// Identity of a topic's queue list, or `None` for an unknown topic.
    pub(super) fn queues_identity(&self, topic: &str) -> Option<usize> {
        self.topic_queue_table
            .get(topic)
            .map(|q| Arc::as_ptr(q) as *const QueueEntry as usize)
    }

    /// Sets the queues one broker (`e.broker`) serves of `topic`.
    pub(super) fn put_queue(&mut self, topic: &str, e: QueueEntry) -> Put {
        let names = &self.broker_names;
        let Some(slot) = self.topic_queue_table.get_mut(topic) else {
            let set = self.queue_sets.intern(&[e]);
            self.topic_queue_table.insert(topic.into(), set);
            self.topic_set_changed();
            return Put::NewTopic;
        };
        let pos = slot.binary_search_by(|q| names.name(q.broker).cmp(names.name(e.broker)));
        let (put, entries) = match pos {
            Ok(i) if slot[i] == e => return Put::Unchanged,
            Ok(i) => {
                let mut v = slot.to_vec();
                let old = std::mem::replace(&mut v[i], e);
                (Put::Replaced(old), v)
            }
            Err(i) => {
                let mut v = Vec::with_capacity(slot.len() + 1);
                v.extend_from_slice(&slot[..i]);
                v.push(e);
                v.extend_from_slice(&slot[i..]);
                (Put::Added, v)
            }
        };
        let set = self.queue_sets.intern(&entries);
        let old = std::mem::replace(slot, set);
        self.queue_sets.release(old);
        put
    }

    /// Removes `broker`'s queues of `topic`, and the topic when none remain.
    /// Whether the broker had queues there.
    pub(super) fn remove_queue(&mut self, topic: &str, broker: BrokerIdx) -> bool {
        let Some(slot) = self.topic_queue_table.get_mut(topic) else {
            return false;
        };
        let Some(i) = slot.iter().position(|q| q.broker == broker) else {
            return false;
        };
        if slot.len() == 1 {
            self.remove_topic(topic);
        } else {
            let mut v = slot.to_vec();
            v.remove(i);
            let set = self.queue_sets.intern(&v);
            let old = std::mem::replace(slot, set);
            self.queue_sets.release(old);
        }
        true
    }

    /// Removes a topic with all its queues; whether it existed.
    pub(super) fn remove_topic(&mut self, topic: &str) -> bool {
        match self.topic_queue_table.remove(topic) {
            Some(old) => {
                self.queue_sets.release(old);
                self.topic_set_changed();
                true
            }
            None => false,
        }
    }

    /// Rewrites every topic's queues with `f` (`None`: leave them), calling
    /// it once per distinct list. Topics left without queues go. Returns
    /// the number of topics whose list `f` rewrote.
    pub(super) fn map_queues(
        &mut self,
        mut f: impl FnMut(&[QueueEntry]) -> Option<Vec<QueueEntry>>,
    ) -> usize {
        // Old list identity -> (the old list, kept so that the identity
        // cannot be reused meanwhile; None: unchanged, Some(None): emptied).
        let mut memo: HashMap<usize, (Queues, Option<Option<Queues>>)> = HashMap::new();
        let sets = &mut self.queue_sets;
        let before = self.topic_queue_table.len();
        let mut rewritten = 0;
        self.topic_queue_table.retain(|_, slot| {
            let id = Arc::as_ptr(slot) as *const QueueEntry as usize;
            let (_, new) = memo.entry(id).or_insert_with(|| {
                let new = f(slot).map(|v| (!v.is_empty()).then(|| sets.intern(&v)));
                (slot.clone(), new)
            });
            match new {
                None => true,
                Some(None) => {
                    rewritten += 1;
                    false
                }
                Some(Some(set)) => {
                    rewritten += 1;
                    *slot = set.clone();
                    true
                }
            }
        });
        let olds: Vec<Queues> = memo.into_values().map(|(old, _)| old).collect();
        for old in olds {
            self.queue_sets.release(old);
        }
        if self.topic_queue_table.len() != before {
            self.topic_set_changed();
        }
        rewritten
    }
}
