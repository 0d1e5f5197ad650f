//! The Java driver of the RocketMQ 5 gRPC client (`compat-tests/java-grpc`:
//! `compat.grpc.GrpcScenarios` for the compat tests, `GrpcBench` for
//! `bench_grpc`), built by its `prepare.sh` against rocketmq-client-java.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{compat_dir, run_with_timeout, text};

/// Runs `java-grpc/prepare.sh <client_version>` (Maven, cached by a stamp)
/// and returns the prepared folder (`classes/` and `lib/`).
pub fn prepare_grpc_driver(client_version: &str) -> Result<PathBuf, String> {
    let here = compat_dir().join("java-grpc");
    let mut c = Command::new("bash");
    c.arg(here.join("prepare.sh")).arg(client_version);
    let out = run_with_timeout(c, Duration::from_secs(900));
    if !out.status.success() {
        return Err(format!(
            "java-grpc/prepare.sh {client_version} failed:\n{}",
            text(&out)
        ));
    }
    Ok(here.join("target").join(format!("client-{client_version}")))
}

/// `java <jvm> ... <class>` on the driver prepared in `dir`, its home and
/// client logs (level WARN) under `home`, without `NAMESRV_ADDR`; the caller
/// appends the class's arguments.
pub fn grpc_driver_command(dir: &Path, home: &Path, jvm: &[&str], class: &str) -> Command {
    let mut c = Command::new("java");
    c.args(jvm)
        .arg(format!("-Duser.home={}", home.display()))
        .arg(format!(
            "-Drocketmq.log.root={}",
            home.join("logs").display()
        ))
        .arg("-Drocketmq.log.level=WARN")
        .arg("-cp")
        .arg(format!(
            "{}:{}/*",
            dir.join("classes").display(),
            dir.join("lib").display()
        ))
        .arg(class)
        .env_remove("NAMESRV_ADDR");
    c
}
