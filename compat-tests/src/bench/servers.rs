//! What `bench_broker` and `bench_ha` share besides the drivers: files, our
//! name server, broker.conf keys, and the official broker from its jars.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{copy_dir, free_port_block, output_within, Kid, OnExit};

// ------------------------------------------------ Java drivers and brokers
//
// What `bench_broker` and `bench_ha` share: the official client's drivers
// (compat-tests/java) and mqadmin, the official broker's jars, our name
// server, the broker.conf keys both sides get, and the drivers' `RESULT`
// lines.

pub type Res<T> = Result<T, String>;

const LISTEN_TIMEOUT: Duration = Duration::from_secs(120);
pub(super) const MQADMIN_TIMEOUT: Duration = Duration::from_secs(120);
pub const MAVEN_TIMEOUT: Duration = Duration::from_secs(1200);

pub(super) fn log(msg: &str) {
    eprintln!("[bench] {msg}");
}

pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            let f = d.join(tool);
            std::fs::metadata(&f).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

pub fn write_file(path: &Path, text: &str) -> Res<()> {
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

pub fn mkdir(path: &Path) -> Res<()> {
    std::fs::create_dir_all(path).map_err(|e| format!("mkdir {}: {e}", path.display()))
}

/// Where the benchmarked binaries are: `$BENCH_BINS` (relative to `root`),
/// else the release folder of `$CARGO_TARGET_DIR` (default `target`).
pub fn bench_bins(root: &Path) -> PathBuf {
    match std::env::var_os("BENCH_BINS").filter(|v| !v.is_empty()) {
        Some(dir) => root.join(dir),
        None => root
            .join(std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into()))
            .join("release"),
    }
}

/// The work folder: `root/<keep>` when `--keep` names one, else a fresh
/// temporary folder `<prefix>...`. The guard, `Some` only for the temporary
/// folder, removes it when dropped and also on a signal; hold it for the
/// whole run.
pub fn work_dir(root: &Path, keep: Option<&Path>, prefix: &str) -> Res<(PathBuf, Option<OnExit>)> {
    let work = match keep {
        Some(k) => {
            let w = root.join(k);
            mkdir(&w)?;
            w
        }
        None => tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?
            .keep(),
    };
    let remove = keep.is_none().then(|| {
        let w = work.clone();
        OnExit::new(move || {
            let _ = std::fs::remove_dir_all(&w);
        })
    });
    Ok((work, remove))
}

/// Polls a TCP connect to 127.0.0.1:`port` every 2 ms, 120 s at most.
pub fn wait_listen(port: u16, mut alive: impl FnMut() -> bool, what: &str) -> Res<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
            return Ok(());
        }
        if !alive() {
            return Err(format!("{what} exited during start-up"));
        }
        if Instant::now() >= deadline {
            return Err(format!("{what} not listening after 120 s"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A name server of ours on a free port block.
pub struct Ns {
    pub kid: Kid,
    pub addr: String,
}

/// Starts `mqnamesrv` (at `bin`) with its files in `d`, listening on a
/// free loopback port.
pub fn start_our_namesrv(bin: &Path, d: &Path) -> Res<Ns> {
    let port = free_port_block(15000, 30000).ok_or("no free port block")?;
    mkdir(d)?;
    let props = d.join("namesrv.properties");
    write_file(
        &props,
        &format!(
            "listenPort={port}\nbindAddress=127.0.0.1\nkvConfigPath={}\n",
            d.join("kvConfig.json").display()
        ),
    )?;
    let mut c = Command::new(bin);
    c.arg("-c").arg(&props).env("HOME", d);
    let kid = Kid::spawn_logged("mqnamesrv", c, &d.join("namesrv.log"), STOP_GRACE)?;
    wait_listen(port, || kid.is_running(), "mqnamesrv")?;
    Ok(Ns {
        kid,
        addr: format!("127.0.0.1:{port}"),
    })
}

/// SIGTERM -> SIGKILL for the servers.
pub const STOP_GRACE: Duration = Duration::from_secs(20);

/// The broker.conf lines every benchmarked broker gets (ours and Java's
/// alike): the name server, loopback ports (HA on `port + 1`, advertised
/// as brokerIP2), the store, async flush, 64 MiB commit-log files,
/// auto-created topics and groups.
pub fn broker_conf_base(ns: &str, port: u16, store: &Path) -> String {
    let s = store.display();
    format!(
        "namesrvAddr={ns}\nlistenPort={port}\nhaListenPort={}\nbindAddress=127.0.0.1\n\
         brokerIP1=127.0.0.1\nbrokerIP2=127.0.0.1\nstorePathRootDir={s}\n\
         storePathCommitLog={s}/commitlog\nmappedFileSizeCommitLog=67108864\n\
         flushDiskType=ASYNC_FLUSH\nautoCreateTopicEnable=true\n\
         autoCreateSubscriptionGroup=true\ncleanFileForciblyEnable=false\n",
        port + 1
    )
}

/// The official broker's jars for `ver` (compat-tests/java/target/reference,
/// fetched with Maven when missing), snapshotted into `work/reflib`, which
/// is returned.
pub fn reference_broker_libs(root: &Path, ver: &str, work: &Path) -> Res<PathBuf> {
    let out = root.join("compat-tests/java/target/reference").join(ver);
    let have = std::fs::read_dir(out.join("lib")).is_ok_and(|mut it| {
        it.any(|e| {
            e.is_ok_and(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("rocketmq-broker-") && n.ends_with(".jar")
            })
        })
    });
    if !have {
        mkdir(&out)?;
        let log_path = work.join("reference-prepare.log");
        let mut c = Command::new("mvn");
        c.args([
            "-B",
            "-q",
            "--no-transfer-progress",
            "-Dstyle.color=never",
            "-f",
        ])
        .arg(root.join("compat-tests/java/reference/pom.xml"))
        .arg(format!("-Drmq.version={ver}"))
        .args(["dependency:copy-dependencies", "-DincludeScope=runtime"])
        .arg(format!("-DoutputDirectory={}", out.join("lib").display()))
        .current_dir(root);
        let (status, o, e) = output_within("mvn", c, MAVEN_TIMEOUT)?;
        let _ = std::fs::write(&log_path, format!("{o}{e}"));
        if !status.is_some_and(|s| s.success()) {
            eprint!("{o}{e}");
            return Err(format!("maven failed for the RocketMQ {ver} broker jars"));
        }
    }
    let reflib = work.join("reflib");
    let _ = std::fs::remove_dir_all(&reflib);
    copy_dir(&out.join("lib"), &reflib)?;
    Ok(reflib)
}

/// Starts the official `BrokerStartup` from the jars in `reflib` with
/// `conf`, its home (logback configuration, logs) in `dir/home`, its
/// output in `dir/broker.out`; `heap` are the JVM's memory options.
pub fn spawn_java_broker(
    root: &Path,
    reflib: &Path,
    dir: &Path,
    conf: &Path,
    heap: &[&str],
) -> Res<Kid> {
    let home = dir.join("home");
    mkdir(&home.join("conf"))?;
    let confs = root.join("compat-tests/java/conf");
    for e in std::fs::read_dir(&confs).map_err(|e| format!("{}: {e}", confs.display()))? {
        let e = e.map_err(|e| e.to_string())?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("logback_") && name.ends_with(".xml") {
            std::fs::copy(e.path(), home.join("conf").join(&name))
                .map_err(|e| format!("copy {name}: {e}"))?;
        }
    }
    let mut c = Command::new("java");
    c.args(heap)
        .arg("-XX:+UseG1GC")
        .arg(format!("-Duser.home={}", home.display()))
        .arg(format!("-Drocketmq.home.dir={}", home.display()))
        .arg("-Dfile.encoding=UTF-8")
        .arg("-Drmq.logback.configurationFile=rmq.broker.logback.xml")
        .arg("-cp")
        .arg(format!("{}/*", reflib.display()))
        .arg("org.apache.rocketmq.broker.BrokerStartup")
        .arg("-c")
        .arg(conf)
        .env("ROCKETMQ_HOME", &home)
        .current_dir(root);
    Kid::spawn_logged("BrokerStartup", c, &dir.join("broker.out"), STOP_GRACE)
}
