//! Write at random, damage the commit log (cut the last segment or flip a
//! byte), reopen: the store holds exactly the longest valid prefix and the
//! consume queues agree with it.

mod common;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::Path;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use store::{CommitLogOffset, QueueOffset};
use store::{MessageStore, StoreConfig, StoredMessage};

const TOPICS: [&str; 2] = ["A", "B"];

#[derive(Debug, Clone)]
struct Put {
    topic: usize,
    queue: i32,
    body: Vec<u8>,
    tags: Option<String>,
}

#[derive(Debug, Clone)]
enum Damage {
    /// Cut the last segment file at this fraction of its size.
    Cut(f64),
    /// XOR one byte chosen among interesting positions.
    Flip { pick: usize, xor: u8 },
}

fn put_strategy() -> impl Strategy<Value = Put> {
    (
        0..TOPICS.len(),
        0..3i32,
        prop::collection::vec(any::<u8>(), 0..2500),
        prop::option::of("[a-z]{1,6}"),
    )
        .prop_map(|(topic, queue, body, tags)| Put {
            topic,
            queue,
            body,
            tags,
        })
}

fn damage_strategy() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0..1.0f64).prop_map(Damage::Cut),
        (any::<usize>(), 1..=255u8).prop_map(|(pick, xor)| Damage::Flip { pick, xor }),
    ]
}

fn cfg(dir: &Path) -> StoreConfig {
    StoreConfig {
        // Keep the checkpoint at zero so a crash recovery scans every segment.
        flush_interval_commit_log_ms: 3_600_000,
        ..config(dir)
    }
}

/// A stored record as written.
#[derive(Debug, Clone)]
struct Rec {
    topic: &'static str,
    queue: i32,
    phys: u64,
    bytes: Vec<u8>,
}

/// What flipping a byte does to recovery.
enum Effect {
    /// The log ends at this offset (records from there on are lost).
    EndsAt(u64),
    /// Recovered as is, with the flipped byte.
    Benign,
}

fn classify(rel: usize, body_len: usize, topic_len: usize) -> Option<bool> {
    // Some(true): detected; Some(false): carried along; None: not a candidate.
    let body_end = 88 + body_len;
    match rel {
        0..=11 | 28..=35 => Some(true), // size, magic, body CRC, physical offset
        16..=19 | 40..=83 => Some(false), // flag, born/store time and host, reconsume, tx
        r if (84..body_end).contains(&r) => Some(true), // body length and body
        r if r == body_end => Some(true), // topic length
        r if r == body_end + 1 + topic_len || r == body_end + 2 + topic_len => Some(true), // props length
        _ => None,
    }
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("commitlog"))
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

fn check_store(s: &MessageStore, survivors: &[Rec], end: u64) -> Result<(), TestCaseError> {
    prop_assert_eq!(s.commit_log_max_offset().get(), end as i64);
    let mut by_queue: BTreeMap<(&str, i32), Vec<&Rec>> = BTreeMap::new();
    for r in survivors {
        by_queue.entry((r.topic, r.queue)).or_default().push(r);
    }
    for topic in TOPICS {
        for q in 0..3 {
            let want = by_queue.get(&(topic, q)).cloned().unwrap_or_default();
            prop_assert_eq!(s.max_offset(topic, q).get(), want.len() as i64);
            prop_assert_eq!(s.min_offset(topic, q).get(), 0);
            let mut offset = 0;
            let mut got = Vec::new();
            loop {
                let r = s.get_messages(topic, q, QueueOffset(offset), 32, 1 << 20, &all);
                if r.status != store::GetStatus::Found {
                    break;
                }
                got.extend(r.messages.iter().map(|b| b.to_vec()));
                offset = r.next_begin_offset.get();
            }
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                prop_assert_eq!(g, &w.bytes);
            }
            for w in &want {
                prop_assert_eq!(
                    s.message_at(CommitLogOffset(w.phys as i64))
                        .map(|b| b.to_vec()),
                    Some(w.bytes.clone())
                );
            }
        }
    }
    Ok(())
}

fn run(puts: Vec<Put>, damage: Damage, clean: bool) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = MessageStore::open(cfg(dir.path())).expect("open");
    let mut recs = Vec::new();
    for p in &puts {
        let r = s
            .put_now(&msg(TOPICS[p.topic], p.queue, &p.body, p.tags.as_deref()))
            .expect("put");
        let bytes = s.message_at(r.commit_log_offset).expect("record").to_vec();
        recs.push(Rec {
            topic: TOPICS[p.topic],
            queue: p.queue,
            phys: r.commit_log_offset.get() as u64,
            bytes,
        });
    }
    let end = s.commit_log_max_offset().get() as u64;
    let clean = clean && matches!(damage, Damage::Cut(_));
    if clean {
        s.shutdown();
    }
    drop(s);

    let files = segment_files(dir.path());
    let (survivors, new_end): (Vec<Rec>, u64) = match damage {
        Damage::Cut(frac) => {
            let last = files.last().expect("a segment");
            let base = (files.len() as u64 - 1) * SEG;
            let cut = (frac * SEG as f64) as u64;
            OpenOptions::new()
                .write(true)
                .open(last)
                .expect("open")
                .set_len(cut)
                .expect("cut");
            let cut_at = base + cut;
            let mut keep: Vec<Rec> = recs
                .iter()
                .filter(|r| r.phys + r.bytes.len() as u64 <= cut_at)
                .cloned()
                .collect();
            let mut new_end = recs.get(keep.len()).map_or(end, |r| r.phys);
            // Properties bytes carry no checksum: a cut inside them leaves a
            // valid record with zeros there (as Java would read it too).
            if let Some(r) = recs.get(keep.len()).filter(|r| r.phys < cut_at) {
                let props_len = StoredMessage::decode(&Bytes::from(r.bytes.clone()))
                    .expect("decode")
                    .properties
                    .len();
                let rel = (cut_at - r.phys) as usize;
                if rel >= r.bytes.len() - props_len {
                    let mut r = r.clone();
                    r.bytes[rel..].fill(0);
                    new_end = r.phys + r.bytes.len() as u64;
                    keep.push(r);
                }
            }
            (keep, new_end)
        }
        Damage::Flip { pick, xor } => {
            // Candidate positions with their effect.
            let mut cands: Vec<(u64, Effect)> = Vec::new();
            for (i, r) in recs.iter().enumerate() {
                let body_len = puts[i].body.len();
                for rel in 0..r.bytes.len() {
                    match classify(rel, body_len, r.topic.len()) {
                        Some(true) => cands.push((r.phys + rel as u64, Effect::EndsAt(r.phys))),
                        Some(false) => cands.push((r.phys + rel as u64, Effect::Benign)),
                        None => {}
                    }
                }
                let rec_end = r.phys + r.bytes.len() as u64;
                let next_seg = (r.phys / SEG + 1) * SEG;
                let last_in_seg = recs.get(i + 1).is_none_or(|n| n.phys >= next_seg);
                if last_in_seg && rec_end < end && next_seg <= end {
                    // Blank marker (detected) then filler (ignored).
                    for b in 0..8 {
                        cands.push((rec_end + b, Effect::EndsAt(rec_end)));
                    }
                    for b in 8..(next_seg - rec_end).min(24) {
                        cands.push((rec_end + b, Effect::Benign));
                    }
                }
            }
            // Zeros after the end of the log.
            let tail_end = end.div_ceil(SEG).max(1) * SEG;
            for b in end..(end + 16).min(tail_end) {
                cands.push((b, Effect::Benign));
            }
            let (at, effect) = &cands[pick % cands.len()];
            let file = &files[(at / SEG) as usize];
            let mut data = std::fs::read(file).expect("read");
            data[(at % SEG) as usize] ^= xor;
            std::fs::write(file, &data).expect("write");
            match effect {
                Effect::EndsAt(e) => (recs.iter().filter(|r| r.phys < *e).cloned().collect(), *e),
                Effect::Benign => {
                    let mut all = recs.clone();
                    for r in &mut all {
                        if (r.phys..r.phys + r.bytes.len() as u64).contains(at) {
                            r.bytes[(at - r.phys) as usize] ^= xor;
                        }
                    }
                    (all, end)
                }
            }
        }
    };

    let s = MessageStore::open(cfg(dir.path())).expect("reopen");
    check_store(&s, &survivors, new_end)?;

    // The store goes on from the recovered end, and stale bytes past it
    // never come back: write more, crash again, recover again.
    let mut survivors = survivors;
    for (i, p) in puts.iter().take(3).enumerate() {
        let r = s
            .put_now(&msg(
                TOPICS[p.topic],
                p.queue,
                &p.body[..p.body.len() / (i + 2)],
                None,
            ))
            .expect("put after recovery");
        survivors.push(Rec {
            topic: TOPICS[p.topic],
            queue: p.queue,
            phys: r.commit_log_offset.get() as u64,
            bytes: s.message_at(r.commit_log_offset).expect("record").to_vec(),
        });
    }
    let end2 = s.commit_log_max_offset().get() as u64;
    drop(s);
    let s = MessageStore::open(cfg(dir.path())).expect("reopen 2");
    check_store(&s, &survivors, end2)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn recovery_keeps_the_longest_valid_prefix(
        puts in prop::collection::vec(put_strategy(), 1..70),
        damage in damage_strategy(),
        clean in any::<bool>(),
    ) {
        run(puts, damage, clean)?;
    }
}
