//! Harness for the compatibility suite: builds and starts our `mqnamesrv` and
//! `mqbroker` on free loopback ports with a fresh store folder, runs the
//! official Java clients, mqadmin and the Go client against them, and stops
//! everything it started. Server logs are printed when a test fails.
//!
//! Client versions are named, not hard-coded: `java_client("4.9.8")` prepares
//! (with Maven) and runs the drivers against that version of the official jars.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use remoting::body::{from_fastjson, ClusterInfo, TopicRouteData};
use remoting::code::request_code;
use remoting::{Connection, RemotingCommand, Router};

pub mod bench;
pub mod dledger_files;
pub mod dledger_group;
pub mod ha_pair;
pub mod invariant;
pub mod proxy;
pub use invariant::{check_acks, AckCheck};
pub use proxy::{FaultProxy, Mode as ProxyMode, ProxyMesh};

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

/// Where `mqnamesrv`, `mqbroker` and `dledger` are: `$MQ_BIN_DIR`, else the release
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
        if ["mqnamesrv", "mqbroker", "dledger"]
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
                "--bins",
            ])
            .env("CARGO_TARGET_DIR", &own)
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "building mqnamesrv/mqbroker/dledger failed"
        );
        own.join("release")
    })
    .clone()
}

// --------------------------------------------------------------------- ports

/// A free loopback port whose neighbours the broker also binds are free too
/// (listenPort - 2 for the VIP channel, listenPort + 1 for HA).
pub fn free_broker_port() -> u16 {
    for _ in 0..200 {
        let port = free_port();
        if port > 1024
            && [port - 2, port + 1]
                .iter()
                .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        {
            return port;
        }
    }
    panic!("no free port block found on 127.0.0.1");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Polls `cond` until it holds or `timeout` passes.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ------------------------------------------------------------------ processes

/// A child process killed when dropped; its output goes to a log file.
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        // SAFETY: sending a signal to our own child process id.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok();
        None
    }

    /// [`Proc::stop`], and an error unless the process exited with status 0.
    pub fn stop_cleanly(&mut self, grace: Duration) -> Result<(), String> {
        match self.stop(grace) {
            Some(status) if status.success() => Ok(()),
            _ => Err(format!("{} did not stop cleanly on SIGTERM", self.name)),
        }
    }

    /// Waits (at most `timeout`) for the process to exit by itself, e.g.
    /// after a signal sent to several processes at once; `None` if it is
    /// still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: sending a signal to our own child process id.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(
            rc,
            0,
            "kill({}, {signal}) of {}",
            self.child.id(),
            self.name
        );
    }
}

/// Our `mqbroker` on `dir/broker.conf`, which a test starts, kills and
/// restarts: start N logs to `dir/broker-N.log`, `HOME` is `dir`.
pub struct BrokerProcess {
    pub name: String,
    pub dir: PathBuf,
    pub proc: Option<Proc>,
    pub starts: usize,
}

impl BrokerProcess {
    pub fn new(name: &str, dir: PathBuf) -> BrokerProcess {
        BrokerProcess {
            name: name.to_owned(),
            dir,
            proc: None,
            starts: 0,
        }
    }

    pub fn start(&mut self) {
        self.starts += 1;
        let mut cmd = Command::new(bin_dir().join("mqbroker"));
        cmd.arg("-c")
            .arg(self.dir.join("broker.conf"))
            .env("HOME", &self.dir)
            .env("RUST_LOG", "info")
            .env_remove("NAMESRV_ADDR");
        self.proc = Some(Proc::spawn(
            &format!("mqbroker-{}", self.name),
            cmd,
            self.dir.join(format!("broker-{}.log", self.starts)),
        ));
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// Sends `signal` to the running broker.
    pub fn signal(&self, signal: i32) {
        self.proc.as_ref().expect("broker running").signal(signal);
    }

    /// SIGKILL and reap it.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(10));
        }
    }

    /// SIGTERM; an error unless it exits with status 0 within `grace`.
    pub fn stop_cleanly(&mut self, grace: Duration) -> Result<(), String> {
        match self.proc.take() {
            Some(mut p) => p.stop_cleanly(grace),
            None => Ok(()),
        }
    }

    /// After a SIGTERM sent to it (and maybe others at once): waits up to
    /// `grace` for it to exit; an error unless it exited with status 0 (one
    /// still running then is SIGKILLed and reaped).
    pub fn wait_exited_cleanly(&mut self, grace: Duration) -> Result<(), String> {
        let Some(mut p) = self.proc.take() else {
            return Ok(());
        };
        match p.wait_exit(grace) {
            Some(status) if status.success() => Ok(()),
            Some(status) => Err(format!("{} exited with {status}", p.name)),
            None => {
                p.stop(Duration::from_secs(1));
                Err(format!("{} did not exit within {grace:?}", p.name))
            }
        }
    }

    /// After a SIGKILL sent to it (and maybe others at once): reaps it.
    pub fn reap(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.wait_exit(Duration::from_secs(10));
            p.stop(Duration::from_secs(1));
        }
    }

    /// The last `lines` lines of each start's log.
    pub fn logs(&self, lines: usize) -> String {
        (1..=self.starts)
            .map(|i| {
                format!(
                    "----- {} start {i} (last {lines} lines) -----\n{}\n",
                    self.name,
                    file_tail(&self.dir.join(format!("broker-{i}.log")), lines)
                )
            })
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Runs a command to completion with a deadline; kills it when the deadline passes.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    // Drain pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout piped");
    let mut stderr = child.stderr.take().expect("stderr piped");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).ok();
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut v).ok();
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let status = child.wait().expect("wait for killed child");
            eprintln!("killed after {timeout:?}: {cmd:?}");
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

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

// ------------------------------------------------------- official Java broker

/// Lays out the official server jars for `version` in
/// `compat-tests/java/target/reference/<version>/lib` (Maven, cached with the
/// same stamp as `reference-cluster.sh`).
pub fn reference_libs(version: &str) -> PathBuf {
    let java = compat_dir().join("java");
    let out = java.join("target").join("reference").join(version);
    let script = r#"set -euo pipefail
here="$1"; ver="$2"; out="$3"
stamp="$out/.prepared"
want="$(cat "$here/reference/pom.xml" | sha256sum | cut -d' ' -f1)-$ver"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && ls "$out"/lib/*.jar >/dev/null 2>&1; then
  exit 0
fi
mkdir -p "$out"
rm -rf "$out/lib"
if ! mvn -B -q --no-transfer-progress -Dstyle.color=never -f "$here/reference/pom.xml" \
      -Drmq.version="$ver" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$out/lib" >"$out/prepare.log" 2>&1; then
  cat "$out/prepare.log" >&2
  echo "maven failed for RocketMQ $ver" >&2
  exit 1
fi
echo "$want" >"$stamp"
"#;
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(script)
        .arg("prepare-reference")
        .arg(&java)
        .arg(version)
        .arg(&out);
    let res = run_with_timeout(c, Duration::from_secs(600));
    assert!(
        res.status.success(),
        "preparing the reference server jars {version} failed:\n{}",
        text(&res)
    );
    out.join("lib")
}

/// The official Java broker (`BrokerStartup`) of one version, registered with
/// a name server of our choosing, on free loopback ports and a fresh store.
pub struct JavaBroker {
    pub dir: tempfile::TempDir,
    pub version: String,
    pub addr: String,
    pub cluster_name: String,
    pub broker_name: String,
    pub proc: Proc,
}

impl JavaBroker {
    pub fn start(version: &str, namesrv_addr: &str) -> JavaBroker {
        JavaBroker::start_with(version, namesrv_addr, "")
    }

    /// Like [`JavaBroker::start`], with `extra_properties` (`key=value`
    /// lines) appended to its `broker.properties`; later keys win, so e.g.
    /// `storePathRootDir`/`storePathCommitLog` point it at another store.
    pub fn start_with(version: &str, namesrv_addr: &str, extra_properties: &str) -> JavaBroker {
        let mut broker = JavaBroker::launch(version, namesrv_addr, extra_properties);
        broker.wait_registered(namesrv_addr, Duration::from_secs(90));
        broker
    }

    /// Like [`JavaBroker::start_with`] without waiting for its registration
    /// (e.g. a DLedger member, which registers as a slave until it leads);
    /// `brokerName`/`brokerClusterName` in `extra_properties` are reflected
    /// in the fields.
    pub fn launch(version: &str, namesrv_addr: &str, extra_properties: &str) -> JavaBroker {
        let dir = tempfile::Builder::new()
            .prefix("rmq-compat-javabroker-")
            .tempdir()
            .expect("temp dir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join("conf")).expect("create broker home");
        for f in [
            "logback_broker.xml",
            "logback_namesrv.xml",
            "logback_tools.xml",
        ] {
            let _ = std::fs::copy(
                compat_dir().join("java").join("conf").join(f),
                home.join("conf").join(f),
            );
        }
        let port = free_broker_port();
        let addr = format!("127.0.0.1:{port}");
        let cluster_name = "JavaCluster".to_owned();
        let broker_name = "java-broker-a".to_owned();
        let store = dir.path().join("store");
        let bind = if version.starts_with("4.") {
            ""
        } else {
            "bindAddress=127.0.0.1\n"
        };
        let conf = dir.path().join("broker.properties");
        std::fs::write(
            &conf,
            format!(
                "brokerClusterName={cluster_name}\nbrokerName={broker_name}\nbrokerId=0\n\
                 namesrvAddr={namesrv_addr}\nlistenPort={port}\nhaListenPort={}\n{bind}\
                 brokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\nstorePathRootDir={}\n\
                 storePathCommitLog={}\nmappedFileSizeCommitLog=67108864\nflushDiskType=ASYNC_FLUSH\n\
                 {TEST_BROKER_KEYS}{extra_properties}\n",
                port + 1,
                store.display(),
                store.join("commitlog").display()
            ),
        )
        .expect("write broker.properties");
        let proc = Proc::spawn(
            &format!("java broker {version}"),
            java_broker_command(version, dir.path()),
            dir.path().join("broker.out"),
        );
        let (mut cluster_name, mut broker_name) = (cluster_name, broker_name);
        for (k, v) in extra_properties.lines().filter_map(|l| l.split_once('=')) {
            match k.trim() {
                "brokerClusterName" => cluster_name = v.trim().to_owned(),
                "brokerName" => broker_name = v.trim().to_owned(),
                _ => {}
            }
        }
        JavaBroker {
            dir,
            version: version.to_owned(),
            addr,
            cluster_name,
            broker_name,
            proc,
        }
    }

    /// Starts it again on the same configuration and store (after a kill);
    /// its output goes to `broker-<n>.out`.
    pub fn restart(&mut self) {
        self.proc.stop(Duration::from_secs(30));
        let mut n = 2;
        while self.dir.path().join(format!("broker-{n}.out")).exists() {
            n += 1;
        }
        self.proc = Proc::spawn(
            &format!("java broker {}", self.version),
            java_broker_command(&self.version, self.dir.path()),
            self.dir.path().join(format!("broker-{n}.out")),
        );
    }

    /// Waits until `namesrv` lists this broker as the master of its cluster.
    pub fn wait_registered(&mut self, namesrv: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            assert!(
                self.proc.is_running(),
                "Java broker {} exited:\n{}",
                self.version,
                self.logs()
            );
            if let Some(info) = cluster_info(namesrv) {
                let listed = info
                    .broker_addr_table
                    .get(&self.broker_name)
                    .and_then(|b| b.broker_addrs.get(&0))
                    == Some(&self.addr);
                let in_cluster = info
                    .cluster_addr_table
                    .get(&self.cluster_name)
                    .is_some_and(|names| names.contains(&self.broker_name));
                if listed && in_cluster {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Java broker {} never registered with {namesrv}\n{}",
                self.version,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Its stdout/stderr and the tail of its own log file.
    pub fn logs(&self) -> String {
        format!(
            "----- Java broker {} stdout -----\n{}\n----- broker.log (tail) -----\n{}",
            self.version,
            self.proc.log_text(),
            file_tail(
                &self.dir.path().join("home/logs/rocketmqlogs/broker.log"),
                200
            )
        )
    }
}

/// The JVM options a RocketMQ 4.x server (broker, name server) needs on
/// Java 17 for its direct buffers; none for 5.x.
pub fn jdk_opens(version: &str) -> &'static [&'static str] {
    if version.starts_with("4.") {
        &[
            "--add-opens",
            "java.base/java.nio=ALL-UNNAMED",
            "--add-opens",
            "java.base/sun.nio.ch=ALL-UNNAMED",
            "--add-exports",
            "java.base/jdk.internal.ref=ALL-UNNAMED",
            "--add-exports",
            "java.base/sun.nio.ch=ALL-UNNAMED",
        ]
    } else {
        &[]
    }
}

/// `BrokerStartup` of `version` on `<dir>/broker.properties`, home `<dir>/home`.
fn java_broker_command(version: &str, dir: &Path) -> Command {
    let lib = reference_libs(version);
    let home = dir.join("home");
    let mut cmd = Command::new("java");
    cmd.args([
        "-Xms256m",
        "-Xmx512m",
        "-XX:MaxDirectMemorySize=512m",
        "-XX:+UseG1GC",
    ])
    .args(jdk_opens(version))
    .arg(format!("-Duser.home={}", home.display()))
    .arg(format!("-Drocketmq.home.dir={}", home.display()))
    .arg("-Dfile.encoding=UTF-8")
    .arg("-Drmq.logback.configurationFile=rmq.broker.logback.xml")
    .arg("-cp")
    .arg(format!("{}/*", lib.display()))
    .arg("org.apache.rocketmq.broker.BrokerStartup")
    .arg("-c")
    .arg(dir.join("broker.properties"))
    .env("ROCKETMQ_HOME", &home)
    .env_remove("NAMESRV_ADDR");
    cmd
}

impl Drop for JavaBroker {
    fn drop(&mut self) {
        self.proc.stop(Duration::from_secs(30));
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// `<dir>/clients/<name>`, created: a client's home, logs and local offsets.
pub fn client_home_in(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join("clients").join(name);
    std::fs::create_dir_all(&p).expect("create client home");
    p
}

// ------------------------------------------------------------------- cluster

/// Our name server and one broker, on fresh loopback ports and a fresh store.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub namesrv_addr: String,
    pub broker_addr: String,
    pub cluster_name: String,
    pub broker_name: String,
    pub namesrv: Proc,
    pub broker: Proc,
}

impl Cluster {
    pub fn start() -> Cluster {
        Cluster::start_with("")
    }

    /// [`Cluster::start`] with extra broker config lines appended.
    pub fn start_with(extra_broker_properties: &str) -> Cluster {
        let bins = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("rmq-compat-")
            .tempdir()
            .expect("temp dir");
        let (namesrv, namesrv_addr) = spawn_our_namesrv_with(&bins, dir.path(), "");

        let broker_port = free_broker_port();
        let broker_addr = format!("127.0.0.1:{broker_port}");
        let cluster_name = "CompatCluster".to_owned();
        let broker_name = "broker-a".to_owned();
        let broker_conf = dir.path().join("broker.conf");
        std::fs::write(
            &broker_conf,
            format!(
                "brokerClusterName={cluster_name}\nbrokerName={broker_name}\nbrokerId=0\nlistenPort={broker_port}\n\
                 brokerIP1=127.0.0.1\nbindAddress=127.0.0.1\nstorePathRootDir={}\nmappedFileSizeCommitLog=67108864\nmaxHashSlotNum=50000\nmaxIndexNum=200000\n\
                 {TEST_BROKER_KEYS}flushDiskType=ASYNC_FLUSH\n{extra_broker_properties}",
                dir.path().join("store").display()
            ),
        )
        .expect("write broker config");
        let mut cmd = Command::new(bins.join("mqbroker"));
        cmd.arg("-c")
            .arg(&broker_conf)
            .arg("-n")
            .arg(&namesrv_addr)
            .env("HOME", dir.path())
            .env("RUST_LOG", "info");
        let broker = Proc::spawn("mqbroker", cmd, dir.path().join("broker.log"));
        let mut cluster = Cluster {
            dir,
            namesrv_addr,
            broker_addr,
            cluster_name,
            broker_name,
            namesrv,
            broker,
        };
        cluster.wait_broker_registered(Duration::from_secs(30));
        cluster
    }

    /// Waits until the name server lists our broker as master, as upstream's
    /// `waitBrokerRegistered` does.
    pub fn wait_broker_registered(&mut self, timeout: Duration) {
        let ns = self.namesrv_addr.clone();
        let want = self.broker_addr.clone();
        let name = self.broker_name.clone();
        let deadline = Instant::now() + timeout;
        loop {
            assert!(
                self.broker.is_running(),
                "mqbroker exited:\n{}",
                self.broker.log_text()
            );
            if let Some(info) = cluster_info(&ns) {
                if info
                    .broker_addr_table
                    .get(&name)
                    .and_then(|b| b.broker_addrs.get(&0))
                    == Some(&want)
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "broker never registered with {ns}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn logs(&self) -> String {
        format!(
            "----- mqnamesrv log -----\n{}\n----- mqbroker log -----\n{}",
            self.namesrv.log_text(),
            self.broker.log_text()
        )
    }

    /// A folder for a client's home, logs and local offsets.
    pub fn client_home(&self, name: &str) -> PathBuf {
        client_home_in(self.dir.path(), name)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let stopped = [
            self.broker.stop_cleanly(Duration::from_secs(10)),
            self.namesrv.stop_cleanly(Duration::from_secs(10)),
        ];
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        } else if let Some(Err(e)) = stopped.iter().find(|r| r.is_err()) {
            panic!("{e}\n{}", self.logs());
        }
    }
}

/// GET_BROKER_CLUSTER_INFO through our own remoting client (readiness only;
/// every assertion about behaviour goes through the official tools).
pub fn cluster_info(namesrv: &str) -> Option<ClusterInfo> {
    let body = request_body(namesrv, request_code::GET_BROKER_CLUSTER_INFO)?;
    from_fastjson(&body).ok()
}

/// The current term of DLedger member `id` of `group` at `addr`, read
/// without side effects: a heartbeat from member `other` claiming term 0 is
/// answered 403 with the member's term. `None` on any other answer.
pub fn dledger_term(
    rt: &tokio::runtime::Runtime,
    addr: String,
    group: &str,
    id: String,
    other: String,
) -> Option<i64> {
    use dledger::protocol::{
        request_frame, Base, Body, HeartBeatRequest, HeartBeatResponse, RequestCode,
    };
    let req = HeartBeatRequest {
        base: Base {
            group: Some(group.into()),
            remote_id: Some(id),
            local_id: Some(other.clone()),
            leader_id: Some(other),
            term: 0,
            ..Base::default()
        },
    };
    let peer = dledger::server::PeerClient::new(addr);
    let resp = rt
        .block_on(peer.call(
            request_frame(RequestCode::HeartBeat, &req),
            Duration::from_secs(3),
        ))
        .ok()?;
    let r = HeartBeatResponse::from_json(&resp.body).ok()?;
    (r.base.code == 403).then_some(r.base.term)
}

/// Sends one request with no header to `addr` and returns the body of a
/// SUCCESS response; `None` on any failure (the caller polls).
pub fn request_body(addr: &str, code: i32) -> Option<Vec<u8>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let conn = Connection::connect(addr, Arc::new(Router::new()))
            .await
            .ok()?;
        let resp = conn
            .request(RemotingCommand::request(code), Duration::from_secs(3))
            .await
            .ok()?;
        conn.close();
        if resp.code != 0 {
            return None;
        }
        Some(resp.body.to_vec())
    })
}

// ---------------------------------------------------------------------- Java

/// The Java drivers and mqadmin built against one official client version.
pub struct JavaClient {
    pub version: String,
    dir: PathBuf,
}

/// Prepares (Maven, cached) the drivers for `version` and returns a runner.
pub fn java_client(version: &str) -> JavaClient {
    let dir = compat_dir().join("java");
    let out = run_with_timeout(
        {
            let mut c = Command::new("bash");
            c.arg(dir.join("prepare.sh")).arg(version);
            c
        },
        Duration::from_secs(1200),
    );
    assert!(
        out.status.success(),
        "prepare.sh {version} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    JavaClient {
        version: version.to_owned(),
        dir: dir.join("target").join(version),
    }
}

impl JavaClient {
    /// The prepared drivers and jars hard-linked (copied if that fails) under
    /// `dir`, so a long test keeps a working classpath even if another
    /// process re-runs `prepare.sh` meanwhile.
    pub fn snapshot(&self, dir: &Path) -> JavaClient {
        let to = dir.join(format!("java-{}", self.version));
        let copied = ["-al", "-a"].iter().any(|mode| {
            let _ = std::fs::remove_dir_all(&to);
            Command::new("cp")
                .arg(mode)
                .arg(&self.dir)
                .arg(&to)
                .status()
                .is_ok_and(|s| s.success())
        });
        assert!(copied, "copying {} to {}", self.dir.display(), to.display());
        JavaClient {
            version: self.version.clone(),
            dir: to,
        }
    }

    fn command(&self, home: &Path, jvm_args: &[&str], main: &str) -> Command {
        let mut c = Command::new("java");
        let cp = format!(
            "{}:{}/*",
            self.dir.join("classes").display(),
            self.dir.join("lib").display()
        );
        // Java DLedger (and RocketMQ's store) unmap files through internal
        // classes that Java 17 closes unless opened; harmless for clients.
        c.arg("-Xms64m")
            .args(["--add-opens", "java.base/java.nio=ALL-UNNAMED"])
            .args(["--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED"])
            .arg("-Xmx512m")
            .arg("-XX:+UseSerialGC")
            .arg("-XX:TieredStopAtLevel=1")
            .arg(format!("-Duser.home={}", home.display()))
            .arg(format!(
                "-Drocketmq.home.dir={}",
                self.dir.join("home").display()
            ))
            .arg(format!(
                "-Drocketmq.client.logRoot={}",
                home.join("logs").display()
            ))
            .arg("-Drocketmq.client.logLevel=WARN")
            .arg(format!(
                "-Drocketmq.log.root={}",
                home.join("logs").display()
            ))
            .arg("-Drocketmq.log.level=WARN")
            .arg("-cp")
            .arg(cp)
            .env("ROCKETMQ_HOME", self.dir.join("home"))
            .env_remove("NAMESRV_ADDR");
        c.args(jvm_args).arg(main);
        c
    }

    /// Runs a driver main class; returns its output.
    pub fn run(&self, home: &Path, main: &str, args: &[&str], timeout: Duration) -> Output {
        let mut c = self.command(home, &[], main);
        c.args(args);
        run_with_timeout(c, timeout)
    }

    /// Starts a driver main class in the background; its output goes to `log`.
    pub fn spawn(&self, home: &Path, main: &str, args: &[&str], log: PathBuf) -> Proc {
        let mut c = self.command(home, &[], main);
        c.args(args);
        Proc::spawn(main, c, log)
    }

    /// Runs one mqadmin subcommand. mqadmin exits 0 even when the command
    /// failed, so callers judge by the printed text.
    pub fn mqadmin(&self, home: &Path, args: &[&str]) -> String {
        // 5.x picks its tools logging from the classpath; name it anyway so a
        // client logback file on the same classpath can never win.
        let mut c = self.command(
            home,
            &["-Drmq.logback.configurationFile=rmq.tools.logback.xml"],
            "org.apache.rocketmq.tools.command.MQAdminStartup",
        );
        c.args(args);
        let out = run_with_timeout(c, Duration::from_secs(120));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl JavaClient {
    /// `mqadmin updateTopic -c <cluster>` with `queues` read and write queues;
    /// returns what mqadmin printed, or that text as the error when it does
    /// not report success on `broker_addr`.
    pub fn update_topic(
        &self,
        home: &Path,
        namesrv: &str,
        cluster: &str,
        topic: &str,
        queues: u32,
        broker_addr: &str,
    ) -> Result<String, String> {
        self.update_topic_at(home, namesrv, ("-c", cluster), topic, queues, broker_addr)
    }

    /// `mqadmin updateTopic -b <broker_addr>`: the topic on that one broker;
    /// returns like [`JavaClient::update_topic`].
    pub fn update_topic_on_broker(
        &self,
        home: &Path,
        namesrv: &str,
        topic: &str,
        queues: u32,
        broker_addr: &str,
    ) -> Result<String, String> {
        self.update_topic_at(
            home,
            namesrv,
            ("-b", broker_addr),
            topic,
            queues,
            broker_addr,
        )
    }

    /// `updateTopic` with `target` = `("-c", cluster)` or `("-b", addr)`.
    fn update_topic_at(
        &self,
        home: &Path,
        namesrv: &str,
        target: (&str, &str),
        topic: &str,
        queues: u32,
        broker_addr: &str,
    ) -> Result<String, String> {
        let q = queues.to_string();
        let out = self.mqadmin(
            home,
            &[
                "updateTopic",
                "-n",
                namesrv,
                target.0,
                target.1,
                "-t",
                topic,
                "-r",
                &q,
                "-w",
                &q,
            ],
        );
        if out.contains(&format!("create topic to {broker_addr} success")) {
            Ok(out)
        } else {
            Err(format!("mqadmin {} updateTopic:\n{out}", self.version))
        }
    }

    /// `mqadmin topicRoute`, retried until a route is printed (a broker reports
    /// a new topic to the name server right after creating it). mqadmin
    /// pretty-prints fastjson's own form, with unquoted integer keys.
    pub fn topic_route(
        &self,
        home: &Path,
        namesrv: &str,
        topic: &str,
        timeout: Duration,
    ) -> (TopicRouteData, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.mqadmin(home, &["topicRoute", "-n", namesrv, "-t", topic]);
            if let Some(start) = out.find('{') {
                let route = from_fastjson(out[start..].trim().as_bytes())
                    .unwrap_or_else(|e| panic!("topicRoute output does not parse ({e}):\n{out}"));
                return (route, out);
            }
            assert!(
                Instant::now() < deadline,
                "mqadmin {} topicRoute printed no route:\n{out}",
                self.version
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// A route served by one master: `queues` read and write queues, perm 6.
pub fn assert_single_broker_route(
    route: &TopicRouteData,
    out: &str,
    broker_name: &str,
    broker_addr: &str,
    queues: i32,
) {
    assert_eq!(route.queue_datas.len(), 1, "{out}");
    let queue = &route.queue_datas[0];
    assert_eq!(queue.broker_name, broker_name, "{out}");
    assert_eq!(
        (queue.read_queue_nums, queue.write_queue_nums, queue.perm),
        (queues, queues, 6),
        "{out}"
    );
    assert_eq!(route.broker_datas.len(), 1, "{out}");
    assert_eq!(route.broker_datas[0].broker_name, broker_name, "{out}");
    assert_eq!(
        route.broker_datas[0]
            .broker_addrs
            .get(&0)
            .map(String::as_str),
        Some(broker_addr),
        "{out}"
    );
}

// ------------------------------------------------------------------------ Go

/// Builds the Go driver (module cache as-is, downloading when needed).
pub fn go_driver() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let go = compat_dir().join("go");
        let out_dir = workspace_root().join("target").join("compat-go");
        let mut c = Command::new("bash");
        c.arg(go.join("build.sh")).arg(&out_dir);
        let out = run_with_timeout(c, Duration::from_secs(1200));
        assert!(
            out.status.success(),
            "go build failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out_dir.join("produce-consume")
    })
    .clone()
}

/// How many sends a Java driver acknowledged so far (its `ACK ` lines).
pub fn acked(driver: &Proc) -> usize {
    driver
        .log_text()
        .lines()
        .filter(|l| l.starts_with("ACK "))
        .count()
}

/// (queue, offset) → [offsetMsgId, uniqId, key] of a Java driver's `ACK` or
/// `MSG` lines (`tag queue offset offsetMsgId uniqId key`; other and partial
/// lines are skipped), and how many lines repeated a (queue, offset) seen
/// before (the last one is kept). Fault tests check acknowledgements with
/// [`invariant::check_acks`], which fails on two `ACK`s at one (queue, offset)
/// instead of keeping the last.
pub fn message_lines(
    out: &str,
    tag: &str,
) -> (std::collections::BTreeMap<(i32, i64), Vec<String>>, usize) {
    let mut m = std::collections::BTreeMap::new();
    let mut dups = 0;
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() != Some(&tag) || f.len() < 6 {
            continue;
        }
        if let (Ok(q), Ok(o)) = (f[1].parse::<i32>(), f[2].parse::<i64>()) {
            if m.insert(
                (q, o),
                vec![f[3].to_owned(), f[4].to_owned(), f[5].to_owned()],
            )
            .is_some()
            {
                dups += 1;
            }
        }
    }
    (m, dups)
}

/// Waits (at most `timeout`, and only while it runs) until a push consumer
/// driver printed a `GOT <key> ...` line for every key of `keys`; returns
/// the deliveries per key. Panics with the missing keys and `logs()`.
pub fn wait_delivered(
    consumer: &mut Proc,
    keys: &[String],
    timeout: Duration,
    logs: impl Fn() -> String,
) -> std::collections::HashMap<String, usize> {
    let mut delivered = std::collections::HashMap::new();
    let deadline = Instant::now() + timeout;
    loop {
        delivered.clear();
        for l in consumer.log_text().lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 3 && f[0] == "GOT" {
                *delivered.entry(f[1].to_owned()).or_default() += 1;
            }
        }
        let missing: Vec<&String> = keys
            .iter()
            .filter(|k| !delivered.contains_key(*k))
            .collect();
        if missing.is_empty() {
            return delivered;
        }
        assert!(
            consumer.is_running() && Instant::now() < deadline,
            "push consumer misses {} of {} acknowledged messages, e.g. {:?}\n{}",
            missing.len(),
            keys.len(),
            missing.iter().take(10).collect::<Vec<_>>(),
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `stdout + stderr` of an output, for assertion messages.
/// The last `n` lines of `text`, joined by newlines (for failure messages).
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// [`tail_lines`] of a file; empty if it cannot be read.
pub fn file_tail(path: &Path, n: usize) -> String {
    tail_lines(&std::fs::read_to_string(path).unwrap_or_default(), n)
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Parses `addr` for callers that need a socket address.
pub fn socket(addr: &str) -> SocketAddr {
    addr.parse().expect("socket address")
}

// ------------------------------------------- name-server scenarios (namesrv_*)

/// Writes a name server config with `extra` appended, starts our `mqnamesrv`
/// on it and waits until it accepts connections.
fn spawn_our_namesrv_with(bins: &Path, dir: &Path, extra: &str) -> (Proc, String) {
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

/// Our `mqbroker` alone, registered with the name servers of `namesrv_addrs`
/// (`;`-separated, as `namesrvAddr`), extra config lines appended. Cluster
/// "CompatCluster", broker "broker-a", id 0.
pub struct StandaloneBroker {
    pub dir: tempfile::TempDir,
    pub addr: String,
    pub cluster_name: String,
    pub broker_name: String,
    pub proc: Proc,
    /// Set by [`StandaloneBroker::kill`]: drop then expects no clean exit.
    killed: bool,
}

impl StandaloneBroker {
    /// Starts it and waits until every name server lists it as master.
    pub fn start(namesrv_addrs: &str, extra_properties: &str) -> StandaloneBroker {
        let bins = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("rmq-compat-broker-")
            .tempdir()
            .expect("temp dir");
        let port = free_broker_port();
        let addr = format!("127.0.0.1:{port}");
        let cluster_name = "CompatCluster".to_owned();
        let broker_name = "broker-a".to_owned();
        let conf = dir.path().join("broker.conf");
        std::fs::write(
            &conf,
            format!(
                "brokerClusterName={cluster_name}\nbrokerName={broker_name}\nbrokerId=0\n\
                 listenPort={port}\nnamesrvAddr={namesrv_addrs}\nbrokerIP1=127.0.0.1\n\
                 bindAddress=127.0.0.1\nstorePathRootDir={}\nmappedFileSizeCommitLog=67108864\nmaxHashSlotNum=50000\nmaxIndexNum=200000\n\
                 {TEST_BROKER_KEYS}\
                 flushDiskType=ASYNC_FLUSH\n{extra_properties}",
                dir.path().join("store").display()
            ),
        )
        .expect("write broker config");
        let mut cmd = Command::new(bins.join("mqbroker"));
        cmd.arg("-c")
            .arg(&conf)
            .env("HOME", dir.path())
            .env("RUST_LOG", "info")
            .env_remove("NAMESRV_ADDR");
        let proc = Proc::spawn("mqbroker", cmd, dir.path().join("broker.log"));
        let mut broker = StandaloneBroker {
            dir,
            addr,
            cluster_name,
            broker_name,
            proc,
            killed: false,
        };
        for ns in namesrv_addrs.split(';').filter(|s| !s.is_empty()) {
            broker.wait_registered(ns, Duration::from_secs(30));
        }
        broker
    }

    /// Whether `namesrv` lists this broker as master of its cluster.
    pub fn is_registered(&self, namesrv: &str) -> bool {
        cluster_info(namesrv).is_some_and(|info| {
            info.broker_addr_table
                .get(&self.broker_name)
                .and_then(|b| b.broker_addrs.get(&0))
                == Some(&self.addr)
                && info
                    .cluster_addr_table
                    .get(&self.cluster_name)
                    .is_some_and(|names| names.contains(&self.broker_name))
        })
    }

    pub fn wait_registered(&mut self, namesrv: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.is_registered(namesrv) {
            assert!(self.proc.is_running(), "mqbroker exited:\n{}", self.logs());
            assert!(
                Instant::now() < deadline,
                "broker never registered with {namesrv}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`) to the broker process.
    pub fn signal(&self, signal: i32) {
        self.proc.signal(signal);
    }

    /// SIGKILL and reap it.
    pub fn kill(&mut self) {
        self.killed = true;
        self.signal(libc::SIGKILL);
        self.proc.stop(Duration::from_secs(10));
    }

    pub fn logs(&self) -> String {
        format!("----- mqbroker log -----\n{}", self.proc.log_text())
    }
}

impl Drop for StandaloneBroker {
    fn drop(&mut self) {
        if !self.killed && self.proc.is_running() {
            // A stopped process cannot act on SIGTERM.
            self.signal(libc::SIGCONT);
        }
        let stopped = self.proc.stop_cleanly(Duration::from_secs(10));
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        } else if let (false, Err(e)) = (self.killed, stopped) {
            panic!("{e}\n{}", self.logs());
        }
    }
}

impl Cluster {
    /// Stops only the broker with SIGTERM (asserting a clean exit), then starts
    /// it again on the same config, store folder and port, and waits until it
    /// is registered with the name server again. Its new log goes to
    /// `broker.restart-<n>.log`; [`Cluster::logs`] shows the current one.
    pub fn restart_broker(&mut self) {
        if let Err(e) = self.broker.stop_cleanly(Duration::from_secs(20)) {
            panic!("{e} before the restart\n{}", self.logs());
        }
        let port: u16 = self
            .broker_addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("broker port");
        wait_until(
            "the broker port to be free",
            Duration::from_secs(20),
            || TcpListener::bind(("127.0.0.1", port)).is_ok(),
        );
        let mut n = 1;
        while self
            .dir
            .path()
            .join(format!("broker.restart-{n}.log"))
            .exists()
        {
            n += 1;
        }
        let mut cmd = Command::new(bin_dir().join("mqbroker"));
        cmd.arg("-c")
            .arg(self.dir.path().join("broker.conf"))
            .arg("-n")
            .arg(&self.namesrv_addr)
            .env("HOME", self.dir.path())
            .env("RUST_LOG", "info");
        let log = self.dir.path().join(format!("broker.restart-{n}.log"));
        self.broker = Proc::spawn("mqbroker", cmd, log);
        self.wait_broker_registered(Duration::from_secs(30));
    }
}
