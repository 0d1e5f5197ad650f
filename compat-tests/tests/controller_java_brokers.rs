//! Our controller embedded in our name server with the official Java 5.3.3
//! brokers: three `mqnamesrv` with `enableControllerInNamesrv=true` form
//! one controller DLedger group, two Java 5.3.3 brokers in controller mode
//! (one `brokerName`) register with those name servers and controllers,
//! and `compat_tests::controller::failover_flow` runs: a master elected
//! (SyncStateSet {1, 2}), the official producer sending and a push consumer
//! reading throughout; the master SIGKILLed → the other becomes master
//! (masterEpoch + 1, set {new}) and sends go on; the old master restarts as
//! a slave; `getSyncStateSet` and `getBrokerEpoch` (epoch list) through
//! mqadmin; the controller leader SIGKILLed → a new leader, the brokers keep
//! their roles, sends go on; every acknowledged message consumed and
//! `check_acks` holds. `controller_java_only` is the same run on Java peers
//! (`CTL_OURS_AS_JAVA=1` runs this file with Java name servers instead).

use compat_tests::controller::{failover_flow, ControllerGroup, ControllerKind};
use compat_tests::serial;

#[test]
fn our_embedded_controllers_java_brokers_failover() {
    let _serial = serial();
    let mut group = ControllerGroup::start(&[ControllerKind::OursInNamesrv; 3], "");
    let ns = group.namesrv_addrs();
    let t = failover_flow(&mut group, &ns, &String::new);
    eprintln!("timings (our controllers in our name servers): {t:?}");
}
