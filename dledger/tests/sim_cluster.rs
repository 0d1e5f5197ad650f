//! Deterministic cluster simulation (see `dledger::sim` for the fault model
//! and the invariants). `SIM_SEEDS=<n>` sets the number of seeds per
//! configuration (release default: 2000 for 3 nodes, 1000 for 5 nodes, per
//! commit rule), `SIM_SEED=<s>` replays one, `SIM_NET=chaos|fifo` overrides
//! the network model, `SIM_KEEP_GOING=1` counts failing seeds.

use dledger::config::OUR_TIMERS;
use dledger::sim::{run, SimOptions};

fn seeds(default: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("SIM_SEED") {
        return vec![s.parse().expect("SIM_SEED is a number")];
    }
    let n = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        // Debug builds are ~10x slower: fewer seeds unless SIM_SEEDS says otherwise.
        .unwrap_or(if cfg!(debug_assertions) {
            default / 20
        } else {
            default
        });
    (1..=n).collect()
}

fn sweep(name: &str, nodes: usize, strict: bool, default: u64) {
    sweep_with(name, nodes, strict, default, |_| {});
}

fn sweep_with(name: &str, nodes: usize, strict: bool, default: u64, tune: fn(&mut SimOptions)) {
    let mut overwrites = 0;
    let mut worst_recovery = 0;
    let mut max_term = 0;
    let list = seeds(default);
    // SIM_KEEP_GOING=1: count failing seeds instead of stopping at the first.
    let mut failures = 0u64;
    for &seed in &list {
        let mut opts = SimOptions::new(seed, nodes, strict);
        tune(&mut opts);
        // SIM_NET=chaos|fifo overrides the network model (default: fifo for
        // the Java rule, chaos for strict).
        match std::env::var("SIM_NET").as_deref() {
            Ok("chaos") => opts.fifo = false,
            Ok("fifo") => opts.fifo = true,
            _ => {}
        }
        match run(opts) {
            Ok(r) => {
                overwrites += r.committed_overwrites;
                worst_recovery = worst_recovery.max(r.recovery_ms);
                max_term = max_term.max(r.max_term);
            }
            Err(e) if std::env::var("SIM_KEEP_GOING").is_ok() => {
                eprintln!("{name}: seed {seed}: {e}");
                failures += 1;
            }
            Err(e) => panic!(
                "{name}: seed {seed}: {e}\nreplay: SIM_SEED={seed} cargo test --release -p dledger --test sim_cluster {name}"
            ),
        }
    }
    assert_eq!(failures, 0, "{name}: {failures} failing seeds");
    eprintln!(
        "{name}: {} seeds ok; committed-then-overwritten indexes (Java rule): {overwrites}; worst recovery {worst_recovery} ms; max term {max_term}",
        list.len()
    );
}

#[test]
fn java_rule_3_nodes() {
    sweep("java_rule_3_nodes", 3, false, 2000);
}

#[test]
fn java_rule_5_nodes() {
    sweep("java_rule_5_nodes", 5, false, 1000);
}

#[test]
fn strict_rule_3_nodes() {
    sweep("strict_rule_3_nodes", 3, true, 2000);
}

#[test]
fn strict_rule_5_nodes() {
    sweep("strict_rule_5_nodes", 5, true, 1000);
}

/// Our defaults: short election timers and batch pushes from the leader.
#[test]
fn our_defaults_3_nodes() {
    sweep_with("our_defaults_3_nodes", 3, false, 1000, |o| {
        o.timers = OUR_TIMERS;
        o.batch_push = true;
    });
}

#[test]
fn our_defaults_strict_5_nodes() {
    sweep_with("our_defaults_strict_5_nodes", 5, true, 500, |o| {
        o.timers = OUR_TIMERS;
        o.batch_push = true;
    });
}
