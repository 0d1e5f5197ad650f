//! Name servers under test: ours (`OurNamesrv`) and the official Java one
//! (`JavaNamesrv`).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{bin_dir, client_home_in, compat_dir, free_port, reference_libs, wait_until, Proc};

// ---------------------------------------------------------------- name server

/// Only our name server, on a fresh loopback port and folder (for scenarios
/// where the broker is someone else's, e.g. the official Java broker).
pub struct OurNamesrv {
    pub dir: tempfile::TempDir,
    pub addr: String,
    pub proc: Proc,
}

impl OurNamesrv {
    pub fn start() -> OurNamesrv {
        let bins = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("rmq-compat-ns-")
            .tempdir()
            .expect("temp dir");
        let (proc, addr) = spawn_our_namesrv_with(&bins, dir.path(), "");
        OurNamesrv { dir, addr, proc }
    }

    pub fn logs(&self) -> String {
        format!("----- mqnamesrv log -----\n{}", self.proc.log_text())
    }

    /// A folder for a client's home, logs and local offsets.
    pub fn client_home(&self, name: &str) -> PathBuf {
        client_home_in(self.dir.path(), name)
    }
}

impl Drop for OurNamesrv {
    fn drop(&mut self) {
        let stopped = self.proc.stop_cleanly(Duration::from_secs(10));
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        } else if let Err(e) = stopped {
            panic!("{e}\n{}", self.logs());
        }
    }
}

// ------------------------------------------- name-server scenarios (namesrv_*)

/// Writes a name server config with `extra` appended, starts our `mqnamesrv`
/// on it and waits until it accepts connections.
pub(crate) fn spawn_our_namesrv_with(bins: &Path, dir: &Path, extra: &str) -> (Proc, String) {
    let ns_port = free_port();
    let addr = format!("127.0.0.1:{ns_port}");
    let conf = dir.join("namesrv.properties");
    std::fs::write(
        &conf,
        format!(
            "listenPort={ns_port}\nbindAddress=127.0.0.1\nkvConfigPath={}\n{extra}",
            dir.join("namesrv/kvConfig.json").display()
        ),
    )
    .expect("write namesrv config");
    let mut cmd = Command::new(bins.join("mqnamesrv"));
    cmd.arg("-c")
        .arg(&conf)
        .env("HOME", dir)
        .env("RUST_LOG", "info");
    let mut proc = Proc::spawn("mqnamesrv", cmd, dir.join("namesrv.log"));
    wait_until("the name server to listen", Duration::from_secs(20), || {
        assert!(proc.is_running(), "mqnamesrv exited:\n{}", proc.log_text());
        TcpStream::connect(&addr).is_ok()
    });
    (proc, addr)
}

impl OurNamesrv {
    /// Like [`OurNamesrv::start`], with extra `key=value` lines in its config
    /// file (e.g. `scanNotActiveBrokerInterval=1000\n`).
    pub fn start_with(extra_properties: &str) -> OurNamesrv {
        let bins = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("rmq-compat-ns-")
            .tempdir()
            .expect("temp dir");
        let (proc, addr) = spawn_our_namesrv_with(&bins, dir.path(), extra_properties);
        OurNamesrv { dir, addr, proc }
    }
}

/// The official Java name server (`NamesrvStartup`) of one version, from the
/// reference jars, on a free 127.0.0.1 port (as `reference-cluster.sh` starts
/// it). Ready when it accepts connections and printed "boot success";
/// SIGTERM on drop.
pub struct JavaNamesrv {
    pub dir: tempfile::TempDir,
    pub version: String,
    pub addr: String,
    pub proc: Proc,
}

impl JavaNamesrv {
    pub fn start(version: &str) -> JavaNamesrv {
        let lib = reference_libs(version);
        let dir = tempfile::Builder::new()
            .prefix("rmq-compat-javans-")
            .tempdir()
            .expect("temp dir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join("conf")).expect("create name server home");
        for f in ["logback_namesrv.xml", "logback_tools.xml"] {
            let _ = std::fs::copy(
                compat_dir().join("java").join("conf").join(f),
                home.join("conf").join(f),
            );
        }
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        // 4.9.x has no bindAddress (binds the wildcard address); 5.x does.
        let (bind, jdk_opens): (&str, &[&str]) = if version.starts_with("4.") {
            (
                "",
                &[
                    "--add-opens",
                    "java.base/java.nio=ALL-UNNAMED",
                    "--add-opens",
                    "java.base/sun.nio.ch=ALL-UNNAMED",
                ],
            )
        } else {
            ("bindAddress=127.0.0.1\n", &[])
        };
        let conf = dir.path().join("namesrv.properties");
        std::fs::write(
            &conf,
            format!(
                "listenPort={port}\n{bind}kvConfigPath={}\nconfigStorePath={}\n",
                dir.path().join("namesrv/kvConfig.json").display(),
                dir.path().join("namesrv/namesrv.properties").display()
            ),
        )
        .expect("write namesrv.properties");
        let mut cmd = Command::new("java");
        cmd.args([
            "-Xms128m",
            "-Xmx256m",
            "-XX:MaxMetaspaceSize=128m",
            "-XX:+UseSerialGC",
        ])
        .args(jdk_opens)
        .arg(format!("-Duser.home={}", home.display()))
        .arg(format!("-Drocketmq.home.dir={}", home.display()))
        .arg("-Dfile.encoding=UTF-8")
        .arg("-Drmq.logback.configurationFile=rmq.namesrv.logback.xml")
        .arg("-cp")
        .arg(format!("{}/*", lib.display()))
        .arg("org.apache.rocketmq.namesrv.NamesrvStartup")
        .arg("-c")
        .arg(&conf)
        .env("ROCKETMQ_HOME", &home)
        .env_remove("NAMESRV_ADDR");
        let mut proc = Proc::spawn(
            &format!("java namesrv {version}"),
            cmd,
            dir.path().join("namesrv.out"),
        );
        wait_until(
            "the Java name server to boot",
            Duration::from_secs(90),
            || {
                assert!(
                    proc.is_running(),
                    "Java name server {version} exited:\n{}",
                    proc.log_text()
                );
                proc.log_text().contains("boot success") && TcpStream::connect(&addr).is_ok()
            },
        );
        JavaNamesrv {
            dir,
            version: version.to_owned(),
            addr,
            proc,
        }
    }

    pub fn logs(&self) -> String {
        format!(
            "----- Java name server {} stdout -----\n{}",
            self.version,
            self.proc.log_text()
        )
    }

    /// A folder for a client's home, logs and local offsets.
    pub fn client_home(&self, name: &str) -> PathBuf {
        client_home_in(self.dir.path(), name)
    }
}

impl Drop for JavaNamesrv {
    fn drop(&mut self) {
        self.proc.stop(Duration::from_secs(20));
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}
