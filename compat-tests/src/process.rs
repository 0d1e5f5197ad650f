//! Free loopback ports, polling with a deadline, and child processes (`Proc`,
//! `BrokerProcess`) that are killed when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{bin_dir, file_tail};

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

/// A free loopback port: one the kernel picks, or with `MQ_TEST_PORTS=lo-hi`
/// (set by `scripts/test.sh` when it runs two test binaries at once, a
/// disjoint range for each) the next bindable port of that range. Ports of a
/// range are handed out 4 apart, so the neighbours a broker binds (port - 2,
/// port + 1) are never another caller's port.
pub fn free_port() -> u16 {
    if let Some(port) = std::env::var("MQ_TEST_PORTS")
        .ok()
        .and_then(|r| port_range(&r))
        .and_then(|(lo, hi)| free_port_in(lo, hi))
    {
        return port;
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// `"lo-hi"` with 1024 < lo, lo + 8 <= hi.
fn port_range(s: &str) -> Option<(u16, u16)> {
    let (lo, hi) = s.trim().split_once('-')?;
    let (lo, hi): (u16, u16) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
    (lo > 1024 && u32::from(lo) + 8 <= u32::from(hi)).then_some((lo, hi))
}

fn free_port_in(lo: u16, hi: u16) -> Option<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    // Slots of 4 ports; the first slot tried is a per-process offset so a
    // binary does not start on the ports its predecessor in the range used.
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let slots = (u32::from(hi) - u32::from(lo) - 2) / 4;
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % slots,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..slots {
        let slot = NEXT.fetch_add(1, Ordering::SeqCst) % slots;
        let port = u16::try_from(u32::from(lo) + 2 + slot * 4).ok()?;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Some(port);
        }
    }
    None
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

    /// How many lines of its output start with `prefix`.
    pub fn count_lines(&self, prefix: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count()
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
