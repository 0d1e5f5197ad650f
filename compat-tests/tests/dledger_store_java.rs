//! DLedger's on-disk format against the real Java DLedger 0.3.1.2 store
//! (`DLedgerMmapFileStore`, driven by `compat.DLedgerStore`): small segments
//! so data and index files roll; Java writes and we read, we write and Java
//! reads, the same appends give byte-identical files, and the same damaged
//! log recovers to the same ledger in both.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use compat_tests::{java_client, serial, text, JavaClient, JAVA_VERSIONS};
use dledger::core::{HardState, Storage};
use dledger::store::{DLedgerStore, StoreConfig};

const DATA: usize = 64 * 1024;
const INDEX: usize = 64 * 32;
const COUNT: usize = 200;

/// The driver's body for entry `i` (`DLedgerStore.body` in Java).
fn body(i: usize) -> Vec<u8> {
    let len = if i.rem_euclid(9) == 0 {
        0
    } else {
        (i * 7919) % 3000
    };
    (0..len).map(|j| (i * 31 + j * 17) as u8).collect()
}

fn term_of(i: usize) -> i64 {
    1 + (i / 50) as i64
}

fn cfg(base: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(base, "n0");
    c.mapped_file_size_for_entry_data = DATA;
    c.mapped_file_size_for_entry_index = INDEX;
    c
}

/// What the Java driver printed.
#[derive(Debug, PartialEq)]
struct View {
    /// begin, end, end term
    ledger: (i64, i64, i64),
    /// index, term, pos, size, body
    entries: Vec<(i64, i64, i64, i64, Vec<u8>)>,
    /// committed index, committed pos
    committed: (i64, i64),
    /// term, vote
    term: (i64, String),
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn run(java: &JavaClient, home: &Path, args: &[&str]) -> View {
    let out = java.run(home, "compat.DLedgerStore", args, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "Java DLedgerStore {args:?} failed:\n{}",
        text(&out)
    );
    parse(&String::from_utf8_lossy(&out.stdout))
}

fn parse(stdout: &str) -> View {
    let mut v = View {
        ledger: (0, 0, 0),
        entries: Vec::new(),
        committed: (0, 0),
        term: (0, String::new()),
    };
    let num = |s: &str| s.parse::<i64>().expect("number");
    for line in stdout.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f[0] {
            "L" => v.ledger = (num(f[1]), num(f[2]), num(f[3])),
            "E" => v.entries.push((
                num(f[1]),
                num(f[2]),
                num(f[3]),
                num(f[4]),
                unhex(f.get(5).copied().unwrap_or("")),
            )),
            "C" => v.committed = (num(f[1]), num(f[2])),
            "T" => v.term = (num(f[1]), f.get(2).copied().unwrap_or("").to_owned()),
            _ => {}
        }
    }
    v
}

fn java_args<'a>(mode: &'a str, base: &'a str, n: &'a str) -> Vec<&'a str> {
    vec![mode, base, "n0", "65536", "2048", n]
}

/// Our store's view in the driver's terms.
fn our_view(s: &DLedgerStore) -> View {
    let mut entries = Vec::new();
    if s.end_index() >= 0 {
        for i in s.begin_index()..=s.end_index() {
            let e = s.get(i).expect("get");
            entries.push((e.index, e.term, e.pos, i64::from(e.size()), e.body.to_vec()));
        }
    }
    let hs = s.hard_state();
    View {
        ledger: (s.begin_index(), s.end_index(), s.end_term()),
        entries,
        committed: (s.committed_index(), s.committed_pos()),
        term: (hs.term, hs.vote.unwrap_or_default()),
    }
}

/// Same appends as the Java driver's `write`.
fn write_ours(base: &Path) {
    let mut s = DLedgerStore::open(cfg(base)).expect("open");
    for i in 0..COUNT {
        let e = s.append_leader(term_of(i), body(i).into()).expect("append");
        assert_eq!(e.index, i as i64);
    }
    let last = term_of(COUNT - 1);
    s.set_committed(last, COUNT as i64 - 5);
    s.save_hard_state(&HardState {
        term: last,
        vote: Some("n0".into()),
    })
    .expect("currterm");
    s.shutdown().expect("shutdown");
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect()
}

fn properties(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .expect("read properties")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn java_writes_we_read_then_java_reads_our_appends() {
    let _one_at_a_time = serial();
    let java = java_client(JAVA_VERSIONS[1]);
    let dir = tempfile::tempdir().expect("tmp");
    let base = dir.path().join("store");
    let base_s = base.to_str().expect("utf-8");
    let count = COUNT.to_string();
    let written = run(&java, dir.path(), &java_args("write", base_s, &count));
    assert_eq!(written.entries.len(), COUNT);
    for (i, e) in written.entries.iter().enumerate() {
        assert_eq!(
            (e.0, e.1, &e.4),
            (i as i64, term_of(i), &body(i)),
            "Java wrote entry {i}"
        );
    }
    assert!(
        std::fs::read_dir(cfg(&base).data_path())
            .expect("ls")
            .count()
            > 3,
        "data files rolled"
    );

    let mut ours = DLedgerStore::open(cfg(&base)).expect("open Java's store");
    assert_eq!(our_view(&ours), written, "we read what Java wrote");

    // Continue Java's log with our appends, across more file rolls.
    for i in 0..60usize {
        let term = 5 + (i / 30) as i64;
        ours.append_leader(term, body(i * 7 + 3).into())
            .expect("append");
    }
    // A follower-style truncate that overwrites entry 250 (and drops 251..)
    // with a different entry at the same position, then more appends.
    let mut other = ours.get(250).expect("entry 250");
    other.term = 7;
    other.body = body(11).into();
    ours.truncate(&other).expect("truncate");
    for i in 0..10usize {
        ours.append_leader(7, body(i + 100).into()).expect("append");
    }
    ours.set_committed(7, ours.end_index() - 2);
    ours.save_hard_state(&HardState {
        term: 7,
        vote: Some("n2".into()),
    })
    .expect("currterm");
    ours.shutdown().expect("shutdown");
    let expected = our_view(&ours);
    drop(ours);
    assert_eq!(expected.ledger, (0, 260, 7));
    assert_eq!(expected.entries[250].4, body(11));

    let read = run(&java, dir.path(), &java_args("read", base_s, "0"));
    assert_eq!(read, expected, "Java reads our appends");
}

#[test]
fn we_write_java_reads_and_the_same_appends_give_identical_files() {
    let _one_at_a_time = serial();
    let java = java_client(JAVA_VERSIONS[1]);
    let dir = tempfile::tempdir().expect("tmp");
    let ours_base = dir.path().join("ours");
    let java_base = dir.path().join("java");
    write_ours(&ours_base);
    let count = COUNT.to_string();
    let java_wrote = run(
        &java,
        dir.path(),
        &java_args("write", java_base.to_str().expect("utf-8"), &count),
    );

    let (oc, jc) = (cfg(&ours_base), cfg(&java_base));
    let (od, jd) = (files(&oc.data_path()), files(&jc.data_path()));
    assert_eq!(od.keys().collect::<Vec<_>>(), jd.keys().collect::<Vec<_>>());
    for (name, bytes) in &od {
        assert!(bytes == &jd[name], "data file {name} differs from Java's");
    }
    let (oi, ji) = (files(&oc.index_path()), files(&jc.index_path()));
    assert_eq!(oi.keys().collect::<Vec<_>>(), ji.keys().collect::<Vec<_>>());
    for (name, bytes) in &oi {
        assert!(bytes == &ji[name], "index file {name} differs from Java's");
    }
    for f in ["checkpoint", "currterm"] {
        assert_eq!(
            properties(&oc.default_path().join(f)),
            properties(&jc.default_path().join(f)),
            "{f}"
        );
    }

    let read = run(
        &java,
        dir.path(),
        &java_args("read", ours_base.to_str().expect("utf-8"), "0"),
    );
    assert_eq!(read, java_wrote, "Java reads our store as it reads its own");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("ls") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// Damage applied identically to a copy for Java and a copy for us.
enum Damage {
    /// Zero the data log from this absolute offset and delete later files
    /// (file lengths stay as configured: Java refuses shorter files).
    ZeroFrom(i64),
    /// XOR one byte of the data log.
    Flip(i64, u8),
}

fn damage(base: &Path, d: &Damage) {
    let data = cfg(base).data_path();
    let at = match d {
        Damage::ZeroFrom(at) | Damage::Flip(at, _) => *at,
    };
    let file = at - at % DATA as i64;
    let path = data.join(dledger::store::file_name(file));
    let mut bytes = std::fs::read(&path).expect("read");
    let rel = (at - file) as usize;
    match d {
        Damage::ZeroFrom(_) => {
            bytes[rel..].fill(0);
            for f in files(&data).keys() {
                if f.parse::<i64>().expect("name") > file {
                    std::fs::remove_file(data.join(f)).expect("rm");
                }
            }
        }
        Damage::Flip(_, x) => bytes[rel] ^= x,
    }
    std::fs::write(&path, bytes).expect("write");
}

/// Differential recovery: the same torn or corrupted log recovered by Java
/// and by us gives the same ledger, committed index and term (or both
/// refuse to start).
#[test]
fn java_and_we_recover_damaged_logs_identically() {
    let _one_at_a_time = serial();
    let java = java_client(JAVA_VERSIONS[1]);
    let dir = tempfile::tempdir().expect("tmp");
    let pristine = dir.path().join("pristine");
    let count = COUNT.to_string();
    let written = run(
        &java,
        dir.path(),
        &java_args("write", pristine.to_str().expect("utf-8"), &count),
    );
    let pos = |i: usize| written.entries[i].2;
    let end = pos(COUNT - 1) + written.entries[COUNT - 1].3;
    let mut cases: Vec<Damage> = (0..8)
        .map(|k| Damage::ZeroFrom(end * (2 * k + 1) / 16))
        .collect();
    for off in [0, 1, 8, 40, 47, 48, 49] {
        cases.push(Damage::ZeroFrom(pos(150) + off));
    }
    cases.push(Damage::ZeroFrom(pos(COUNT - 1) + 48));
    cases.push(Damage::Flip(pos(170), 0x01)); // magic
    cases.push(Damage::Flip(pos(185) + 7, 0x10)); // size
    cases.push(Damage::Flip(pos(190) + 31, 0x08)); // pos
    cases.push(Damage::Flip(pos(195) + 15, 0x01)); // index
    cases.push(Damage::Flip(pos(120) + 31, 0x08)); // pos, far back: safety stop
    cases.push(Damage::Flip(pos(160) + 40, 0x7F)); // body crc: not checked
    let mut ends = Vec::new();
    for (n, d) in cases.iter().enumerate() {
        let (jb, ob) = (
            dir.path().join(format!("j{n}")),
            dir.path().join(format!("o{n}")),
        );
        copy_dir(&pristine, &jb);
        copy_dir(&pristine, &ob);
        damage(&jb, d);
        damage(&ob, d);
        let out = java.run(
            dir.path(),
            "compat.DLedgerStore",
            &java_args("read", jb.to_str().expect("utf-8"), "0"),
            Duration::from_secs(120),
        );
        match DLedgerStore::open(cfg(&ob)) {
            Ok(s) => {
                assert!(
                    out.status.success(),
                    "case {n}: we recovered, Java did not:\n{}",
                    text(&out)
                );
                let java_view = parse(&String::from_utf8_lossy(&out.stdout));
                assert_eq!(
                    our_view(&s),
                    java_view,
                    "case {n}: recovered ledgers differ"
                );
                ends.push(Some(s.end_index()));
            }
            Err(e) => {
                assert!(
                    !out.status.success(),
                    "case {n}: Java recovered, we refused: {e}\n{}",
                    text(&out)
                );
                ends.push(None);
            }
        }
    }
    // The damage did what it was meant to (so the agreement above is not vacuous).
    let n = ends.len();
    assert_eq!(ends[n - 6], Some(169), "bad magic ends the log before it");
    assert_eq!(ends[n - 5], Some(184), "bad size");
    assert_eq!(ends[n - 4], Some(189), "bad pos");
    assert_eq!(ends[n - 3], Some(194), "bad index");
    assert_eq!(ends[n - 2], None, "both refuse to start");
    assert_eq!(ends[n - 1], Some(COUNT as i64 - 1), "CRCs are not checked");
    assert!(ends[..7].iter().all(Option::is_some), "{ends:?}");
    assert!(ends[0] < ends[7], "{ends:?}");
}
