//! The reduced compatibility matrix `.ci/run` runs: the rows of
//! `compat-tests/versions.txt` marked `ci` (the oldest and newest version of
//! each family: Java 4.3.0 and 5.5.0, mqadmin 5.5.0, the newest Go build,
//! ali-ons) through the send/consume and admin groups against our name
//! server and broker. Fails on any failed cell not documented (a `known`
//! line) as the Java servers' own behaviour. The whole matrix is
//! `scripts/compat-matrix.sh` (compat-tests/README.md).

use std::time::{Duration, Instant};

use compat_tests::matrix::{
    load_versions, render, run_pairing, unexpected_failures, versions_file, Cell, Family, Group,
    Pairing,
};
use compat_tests::serial;

#[test]
fn oldest_and_newest_of_each_family_send_consume_and_admin() {
    let _one_at_a_time = serial();
    let versions = load_versions(&versions_file()).unwrap_or_else(|e| panic!("{e}"));
    let entries: Vec<_> = versions.entries.iter().filter(|e| e.ci).cloned().collect();
    for f in [Family::Java, Family::Mqadmin, Family::Go, Family::AliOns] {
        assert!(
            entries.iter().any(|e| e.family == f),
            "no ci row of {f:?} in versions.txt"
        );
    }
    let started = Instant::now();
    let table = run_pairing(
        Pairing::Ours,
        &versions,
        &entries,
        Some(&[Group::SendConsume, Group::Admin]),
    );
    let took = started.elapsed();
    let tables = [table];
    eprintln!(
        "{}",
        render(
            &tables,
            &versions,
            "(this run)",
            "(this checkout)",
            Duration::from_secs(took.as_secs()),
            "cargo test -p compat-tests --test compat_matrix_ci",
        )
    );
    let bad = unexpected_failures(&tables);
    assert!(bad.is_empty(), "failed cells:\n{}", bad.join("\n"));
    // Every row ran: a client that has the API passes, no cell is "n/a".
    for row in &tables[0].rows {
        for (g, c) in &row.cells {
            assert!(
                !matches!(c, Cell::Absent(_)),
                "{} / {}: {c:?}",
                row.entry.label(),
                g.key()
            );
        }
        assert!(
            row.cells.iter().any(|(_, c)| matches!(c, Cell::Pass)),
            "{}: nothing ran: {:?}",
            row.entry.label(),
            row.cells
        );
    }
}
