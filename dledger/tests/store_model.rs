//! The DLedger store against a plain vector: random leader appends,
//! follower truncations (keeping an equal entry or replacing a different
//! one) and reopens; after every step the store holds exactly the model's
//! entries at the positions the roll rule gives.

use std::path::Path;

use bytes::Bytes;
use dledger::core::Storage;
use dledger::entry::Entry;
use dledger::store::{DLedgerStore, StoreConfig};
use proptest::prelude::*;

const DATA: i64 = 1024;

fn cfg(dir: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir, "n0");
    c.mapped_file_size_for_entry_data = DATA as usize;
    c.mapped_file_size_for_entry_index = 4 * 32;
    c
}

/// Where an entry of `size` bytes goes after a log ending at `end`.
fn next_pos(end: i64, size: i64) -> i64 {
    let rel = end % DATA;
    if size + 8 > DATA - rel {
        end - rel + DATA
    } else {
        end
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    TruncateSame(usize),
    TruncateDifferent(usize, usize),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..400).prop_map(Op::Append),
        1 => any::<usize>().prop_map(Op::TruncateSame),
        2 => (any::<usize>(), 0usize..400).prop_map(|(k, n)| Op::TruncateDifferent(k, n)),
        1 => Just(Op::Reopen),
    ]
}

fn check(s: &DLedgerStore, model: &[Entry]) {
    assert_eq!(s.end_index(), model.len() as i64 - 1);
    assert_eq!(s.end_term(), model.last().map_or(-1, |e| e.term));
    for e in model {
        let got = s.get(e.index).expect("get");
        assert!(got.same_as(e), "entry {}: {got:?} != {e:?}", e.index);
    }
    assert!(s.get(model.len() as i64).is_err());
    let end = model.last().map_or(0, |e| e.pos + i64::from(e.size()));
    assert_eq!(s.data_max_offset(), end);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn store_matches_a_vector(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = DLedgerStore::open(cfg(dir.path())).expect("open");
        let mut model: Vec<Entry> = Vec::new();
        let mut term = 1;
        for (n, op) in ops.iter().enumerate() {
            let body = Bytes::from(vec![n as u8 | 1; match op {
                Op::Append(l) | Op::TruncateDifferent(_, l) => *l,
                _ => 0,
            }]);
            match op {
                Op::Append(_) => {
                    let end = model.last().map_or(0, |e| e.pos + i64::from(e.size()));
                    let e = s.append_leader(term, body.clone()).expect("append");
                    prop_assert_eq!(e.index, model.len() as i64);
                    prop_assert_eq!(e.pos, next_pos(end, 48 + body.len() as i64));
                    model.push(e);
                }
                Op::TruncateSame(k) => {
                    if model.is_empty() {
                        continue;
                    }
                    let k = k % model.len();
                    s.truncate(&model[k].clone()).expect("truncate same");
                    model.truncate(k + 1);
                }
                Op::TruncateDifferent(k, _) => {
                    if model.is_empty() {
                        continue;
                    }
                    let k = k % model.len();
                    term += 1;
                    let prev_end = if k == 0 {
                        model[0].pos
                    } else {
                        model[k - 1].pos + i64::from(model[k - 1].size())
                    };
                    let mut e = Entry::new(body.clone());
                    e.index = k as i64;
                    e.term = term;
                    e.pos = if k == 0 { prev_end } else { next_pos(prev_end, 48 + body.len() as i64) };
                    s.truncate(&e).expect("truncate different");
                    model.truncate(k);
                    model.push(e);
                }
                Op::Reopen => {
                    drop(s);
                    s = DLedgerStore::open(cfg(dir.path())).expect("reopen");
                }
            }
            check(&s, &model);
        }
        drop(s);
        let s = DLedgerStore::open(cfg(dir.path())).expect("final reopen");
        check(&s, &model);
    }
}
