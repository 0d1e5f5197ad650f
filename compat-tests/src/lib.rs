//! Harness for the compatibility suite: builds and starts our `mqnamesrv` and
//! `mqbroker` on free loopback ports with a fresh store folder, runs the
//! official Java clients, mqadmin and the Go client against them, and stops
//! everything it started. Server logs are printed when a test fails.
//!
//! Client versions are named, not hard-coded: `java_client("4.9.8")` prepares
//! (with Maven) and runs the drivers against that version of the official jars.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

pub mod acl_driver;
pub mod bench;
pub mod controller;
pub mod dledger_files;
pub mod dledger_group;
pub mod fault_rounds;
pub mod ha_pair;
pub mod invariant;
pub mod matrix;
pub mod prometheus;
pub mod proxy;
pub use invariant::{check_acks, AckCheck};
pub use proxy::{FaultProxy, Mode as ProxyMode, ProxyMesh};

mod cluster;
mod driver_output;
mod grpc_driver;
mod java_broker;
mod java_client;
mod java_proxy;
mod namesrv;
mod our_proxy;
mod process;
pub use cluster::{
    cluster_info, dledger_term, remoting_call, request_body, Cluster, StandaloneBroker,
};
pub use driver_output::{
    acked, file_tail, go_driver, message_lines, socket, tail_lines, text, wait_delivered,
};
pub use grpc_driver::{grpc_driver_command, prepare_grpc_driver};
pub use java_broker::{client_home_in, jdk_opens, reference_libs, JavaBroker};
pub use java_client::{
    assert_single_broker_route, java_client, java_client_with_classes, JavaClient,
};
pub use java_proxy::{proxy_libs, JavaProxy, JavaProxyMode};
pub use namesrv::{JavaNamesrv, OurNamesrv};
pub use our_proxy::OurProxy;
pub use process::{free_broker_port, free_port, run_with_timeout, wait_until, BrokerProcess, Proc};

/// The Java client versions every run covers.
pub const JAVA_VERSIONS: [&str; 2] = ["4.9.8", "5.3.3"];

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn compat_dir() -> PathBuf {
    workspace_root().join("compat-tests")
}

/// One cluster at a time: the machine has two cores and every scenario starts
/// JVMs. Tests take this lock for their whole run.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

// --------------------------------------------------------------- broker keys

/// Keys in every test broker's configuration, ours and Java's: topics and groups
/// created on demand, and no segment deleted because the machine's disk is full: Java
/// (and we, alike) delete commit-log segments whatever their age once the disk is 85 %
/// used (`cleanFileForciblyEnable`), which on a busy CI disk would remove a test's
/// messages under it. (Java also refuses writes above 90 % used; that cannot be turned off.)
pub const TEST_BROKER_KEYS: &str =
    "autoCreateTopicEnable=true\nautoCreateSubscriptionGroup=true\ncleanFileForciblyEnable=false\n";

// ------------------------------------------------------------------ binaries

/// Where `mqnamesrv`, `mqbroker`, `dledger`, `mqcontroller` and `mqproxy` are: `$MQ_BIN_DIR`, else the release
/// target folder, built there first if missing.
pub fn bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Ok(dir) = std::env::var("MQ_BIN_DIR") {
            return PathBuf::from(dir);
        }
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| workspace_root().join("target"));
        let release = target.join("release");
        if [
            "mqnamesrv",
            "mqbroker",
            "dledger",
            "mqcontroller",
            "mqproxy",
        ]
        .iter()
        .all(|b| release.join(b).exists())
        {
            return release;
        }
        // `cargo test` holds the lock on its own target folder, so build elsewhere.
        let own = target.join("compat-bins");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "-p",
                "nameserver",
                "-p",
                "broker",
                "-p",
                "dledger",
                "-p",
                "controller",
                "-p",
                "proxy",
                "--bins",
            ])
            .env("CARGO_TARGET_DIR", &own)
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "building mqnamesrv/mqbroker/dledger/mqcontroller/mqproxy failed"
        );
        own.join("release")
    })
    .clone()
}
