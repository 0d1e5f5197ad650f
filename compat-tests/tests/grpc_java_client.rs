//! The official RocketMQ 5 gRPC Java client (rocketmq-client-java 5.0.8)
//! against (a) the Java 5.3.3 broker with its proxy in local mode (the
//! reference), (b) the Java 5.3.3 proxy in cluster mode in front of our name
//! server and broker, (c) our broker's own gRPC port.

use std::time::Duration;

use compat_tests::{serial, JavaNamesrv, JavaProxy, OurNamesrv, StandaloneBroker};

/// The harness alone: a Java broker + proxy in local mode starts, registers
/// and opens its gRPC port; a Java proxy in cluster mode starts in front of
/// our name server and broker.
#[test]
fn java_proxy_harness_starts() {
    let _serial = serial();
    let ns = JavaNamesrv::start("5.3.3");
    let local = JavaProxy::start_local("5.3.3", &ns.addr, "");
    assert!(local.proc.log_text().contains("startup successfully"));
    drop(local);
    let ours = OurNamesrv::start();
    let broker = StandaloneBroker::start(&ours.addr, "");
    let mut cluster = JavaProxy::start_cluster("5.3.3", &ours.addr, &broker.cluster_name, &[]);
    assert!(cluster.proc.is_running());
    cluster.proc.stop(Duration::from_secs(20));
}
