//! The controller-mode harness against the official Java 5.3.3 peers only
//! (the reference the `controller_*` suites with our controller are held
//! to): three standalone Java controllers (`ControllerStartup`) in one
//! DLedger group, the Java 5.3.3 name server and two Java 5.3.3 brokers in
//! controller mode. `compat_tests::controller::failover_flow`: a master is
//! elected (SyncStateSet {1, 2}), sends go on while the master is SIGKILLed
//! (the slave becomes master: masterEpoch + 1, set {new}), the old master
//! returns as a slave, `getBrokerEpoch` shows both epochs, the controller
//! leader is SIGKILLed (a new leader, no role change), every acknowledged
//! message is consumed and `check_acks` holds.

use compat_tests::controller::{failover_flow, ControllerGroup, ControllerKind, VERSION};
use compat_tests::{serial, JavaNamesrv};

/// Tests no code of ours (it checks the harness and shows Java's timings),
/// so `.ci/run` leaves it out; run it with `--ignored`.
#[test]
#[ignore = "reference run of Java peers only: cargo test -p compat-tests --test controller_java_only -- --ignored"]
fn java_controllers_java_brokers_failover() {
    let _serial = serial();
    let ns = JavaNamesrv::start(VERSION);
    let mut group = ControllerGroup::start(&[ControllerKind::Java; 3], "");
    let t = failover_flow(&mut group, &ns.addr, &|| ns.logs());
    eprintln!("timings (Java controllers): {t:?}");
}
