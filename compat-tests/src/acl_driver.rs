//! The Java side of the ACL suites (`acl_v1`, `acl_v2`): a client version's
//! jars snapshotted under a test's root, a home holding the logback files and
//! mqadmin's `conf/tools.yml` credentials, and a cases driver compiled once
//! into that home and run against one broker at a time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{java_client, run_with_timeout, workspace_root};

/// A client version's jars and a home to run its JVMs in.
pub struct AclDriver {
    /// The snapshot of the client's jars (`classes/`, `lib/`).
    pub dir: PathBuf,
    /// `user.home`, `ROCKETMQ_HOME`; the compiled driver is in `driver/`.
    pub home: PathBuf,
}

impl AclDriver {
    /// `version`'s client jars hard-linked under `root` (so that another
    /// test re-running `prepare.sh` cannot take them away meanwhile), and a
    /// home `root/<home_name>` whose `conf/tools.yml` signs mqadmin with
    /// `access_key`/`secret_key`.
    pub fn new(
        root: &Path,
        version: &str,
        home_name: &str,
        access_key: &str,
        secret_key: &str,
    ) -> AclDriver {
        let _ = java_client(version).snapshot(root);
        let dir = root.join(format!("java-{version}"));
        let home = root.join(home_name);
        std::fs::create_dir_all(home.join("conf")).expect("tool home");
        let conf = workspace_root().join("compat-tests/java/conf");
        for f in [
            "logback_tools.xml",
            "logback_broker.xml",
            "logback_namesrv.xml",
        ] {
            let _ = std::fs::copy(conf.join(f), home.join("conf").join(f));
        }
        std::fs::write(
            home.join("conf/tools.yml"),
            format!("accessKey: {access_key}\nsecretKey: {secret_key}\n"),
        )
        .expect("tools.yml");
        AclDriver { dir, home }
    }

    /// A JVM running `main` with the driver, the client's classes and jars.
    pub fn java(&self, main: &str, args: &[&str]) -> Command {
        let home = &self.home;
        let mut c = Command::new("java");
        c.arg("-Xmx256m")
            .arg("-XX:+UseSerialGC")
            .arg("-XX:TieredStopAtLevel=1")
            .arg(format!("-Duser.home={}", home.display()))
            .arg(format!("-Drocketmq.home.dir={}", home.display()))
            .arg(format!(
                "-Drocketmq.client.logRoot={}",
                home.join("logs").display()
            ))
            .arg("-Drocketmq.client.logLevel=WARN")
            .arg("-Drmq.logback.configurationFile=rmq.tools.logback.xml")
            .arg("-cp")
            .arg(format!(
                "{}:{}:{}/*",
                home.join("driver").display(),
                self.dir.join("classes").display(),
                self.dir.join("lib").display()
            ))
            .arg(main)
            .args(args)
            .env("ROCKETMQ_HOME", home)
            .env_remove("NAMESRV_ADDR");
        c
    }

    /// Compiles the Java `source` of class `class` into the home's `driver/`,
    /// once.
    pub fn compile(&self, class: &str, source: &str) {
        if self
            .home
            .join("driver")
            .join(format!("{class}.class"))
            .is_file()
        {
            return;
        }
        let file = self.home.join(format!("{class}.java"));
        std::fs::write(&file, source).expect("write driver");
        let mut c = Command::new("javac");
        c.arg("-nowarn")
            .arg("-cp")
            .arg(format!("{}/*", self.dir.join("lib").display()))
            .arg("-d")
            .arg(self.home.join("driver"))
            .arg(&file);
        let out = run_with_timeout(c, Duration::from_secs(120));
        assert!(
            out.status.success(),
            "javac {class}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs the compiled driver `class` over `cases` against the broker
    /// `broker_name` at `addr` (`side` names it in files and messages), with
    /// `wait_s` seconds for rules to take effect first; returns its
    /// `CASE name => outcome` lines without the prefix.
    pub fn run_cases(
        &self,
        class: &str,
        side: &str,
        addr: &str,
        broker_name: &str,
        cases: &str,
        wait_s: u64,
    ) -> Vec<String> {
        let file = self.home.join(format!("cases-{side}-{}.txt", cases.len()));
        std::fs::write(&file, cases).expect("write cases");
        let file = file.display().to_string();
        let out = run_with_timeout(
            self.java(class, &[addr, broker_name, &file, &wait_s.to_string()]),
            Duration::from_secs(120 + wait_s),
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "driver against {side} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix("CASE ").map(str::to_owned))
            .collect()
    }
}
