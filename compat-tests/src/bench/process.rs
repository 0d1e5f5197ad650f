//! Child processes stopped however the benchmark ends (drop, panic or a
//! signal), bounded command runs, and free port blocks.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

// --------------------------------------------------------------- processes

type Cleanup = Arc<dyn Fn() + Send + Sync>;

struct Cleanups {
    /// A signal arrived: whatever registers now is cleaned up at once.
    closing: bool,
    next: u64,
    entries: Vec<(u64, Cleanup)>,
}

static CLEANUPS: Mutex<Cleanups> = Mutex::new(Cleanups {
    closing: false,
    next: 0,
    entries: Vec::new(),
});

fn cleanups() -> MutexGuard<'static, Cleanups> {
    CLEANUPS.lock().unwrap_or_else(|p| p.into_inner())
}

/// A clean-up step (stop a process, remove a folder) that runs when the
/// guard is dropped (also while a panic unwinds) or, after
/// [`cleanup_on_signals`], when SIGINT, SIGTERM or SIGHUP ends the program.
/// The step may run twice (a signal during the drop), so it must be
/// idempotent.
pub struct OnExit {
    id: Option<u64>,
    f: Cleanup,
}

impl OnExit {
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> OnExit {
        let f: Cleanup = Arc::new(f);
        let mut c = cleanups();
        if c.closing {
            drop(c);
            f();
            return OnExit { id: None, f };
        }
        let id = c.next;
        c.next += 1;
        c.entries.push((id, f.clone()));
        OnExit { id: Some(id), f }
    }
}

impl Drop for OnExit {
    fn drop(&mut self) {
        (self.f)();
        if let Some(id) = self.id {
            cleanups().entries.retain(|(i, _)| *i != id);
        }
    }
}

/// The write end of the pipe the signal handler reports to (-1: none).
static SIGNAL_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(std::sync::atomic::Ordering::Relaxed);
    let b = sig as u8;
    // SAFETY: write(2) is async-signal-safe; one byte from a local.
    #[allow(unsafe_code)]
    unsafe {
        libc::write(fd, (&b as *const u8).cast(), 1);
    }
}

/// Catches SIGINT, SIGTERM and SIGHUP (call it first thing in `main`): a
/// thread then runs every registered [`OnExit`] step, newest first, and
/// exits with 128 + the signal. The handler only writes the signal's
/// number to a pipe; child processes get the default dispositions back at
/// exec and an unchanged (empty) signal mask.
pub fn cleanup_on_signals() {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: pipe2 fills the two-element array; sigaction gets a zeroed,
    // then initialised, struct and a handler that only calls write(2).
    #[allow(unsafe_code)]
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            eprintln!("[bench] pipe2 failed: signals will not clean up");
            return;
        }
        SIGNAL_PIPE.store(fds[1], std::sync::atomic::Ordering::Relaxed);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(s, &sa, std::ptr::null_mut());
        }
    }
    // SAFETY: the read end is ours alone from here on.
    #[allow(unsafe_code)]
    let mut pipe = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[0]) };
    std::thread::spawn(move || {
        let mut b = [0u8; 1];
        if std::io::Read::read_exact(&mut pipe, &mut b).is_err() {
            return;
        }
        let sig = i32::from(b[0]);
        eprintln!("[bench] signal {sig}: stopping everything started");
        let entries = {
            let mut c = cleanups();
            c.closing = true;
            c.entries.clone()
        };
        for (_, f) in entries.iter().rev() {
            f();
        }
        std::process::exit(128 + sig);
    });
}

/// Exits with `code`, unless a signal's clean-up is under way: that one
/// exits (with 128 + the signal) when it is done.
pub fn exit(code: i32) -> ! {
    if cleanups().closing {
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    std::process::exit(code)
}

/// Ends a benchmark's `main` with the outcome of its run: 0, or 1 after
/// printing `<bin>: <error>` to stderr; exits through [`exit`].
pub fn exit_with(bin: &str, outcome: Result<(), String>) -> ! {
    let code = match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{bin}: {e}");
            1
        }
    };
    exit(code)
}

/// SIGTERM, then SIGKILL if the child has not exited within `grace`.
fn stop_child(child: &Mutex<Child>, grace: Duration) -> Option<ExitStatus> {
    let mut child = child.lock().unwrap_or_else(|p| p.into_inner());
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    // SAFETY: a signal to our own, not yet reaped, child.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A child process stopped (SIGTERM, SIGKILL after its grace period) when
/// dropped or when a signal ends the program (see [`OnExit`]).
pub struct Kid {
    pub name: String,
    pid: u32,
    child: Arc<Mutex<Child>>,
    grace: Duration,
    _stop: OnExit,
}

impl Kid {
    /// Starts `cmd` as it is set up (stdio included).
    pub fn spawn(name: &str, mut cmd: Command, grace: Duration) -> Result<Kid, String> {
        let child = cmd.spawn().map_err(|e| format!("start {name}: {e}"))?;
        let pid = child.id();
        let child = Arc::new(Mutex::new(child));
        let c = child.clone();
        Ok(Kid {
            name: name.to_owned(),
            pid,
            child,
            grace,
            _stop: OnExit::new(move || {
                stop_child(&c, grace);
            }),
        })
    }

    /// Starts `cmd` with stdin from /dev/null and stdout and stderr to `log`.
    pub fn spawn_logged(
        name: &str,
        mut cmd: Command,
        log: &std::path::Path,
        grace: Duration,
    ) -> Result<Kid, String> {
        let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        Kid::spawn(name, cmd, grace)
    }

    fn lock(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn is_running(&self) -> bool {
        matches!(self.lock().try_wait(), Ok(None))
    }

    /// The child's stdout, when it was piped (once).
    pub fn take_stdout(&self) -> Option<std::process::ChildStdout> {
        self.lock().stdout.take()
    }

    /// The child's stderr, when it was piped (once).
    pub fn take_stderr(&self) -> Option<std::process::ChildStderr> {
        self.lock().stderr.take()
    }

    /// Waits at most `timeout` for the child to exit by itself.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.lock().try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, SIGKILL after the grace period; `None` if it had to be killed.
    pub fn stop(&self) -> Option<ExitStatus> {
        stop_child(&self.child, self.grace)
    }
}

/// Runs `cmd` (stdin /dev/null, stdout and stderr captured) for at most
/// `timeout`: its exit status (`None`: killed past the timeout), stdout and
/// stderr.
pub fn output_within(
    name: &str,
    mut cmd: Command,
    timeout: Duration,
) -> Result<(Option<ExitStatus>, String, String), String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let kid = Kid::spawn(name, cmd, Duration::from_secs(5))?;
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            let _ = tx.send(String::from_utf8_lossy(&v).into_owned());
        });
        rx
    };
    let out = drain(kid.take_stdout().map(|r| Box::new(r) as _));
    let err = drain(kid.take_stderr().map(|r| Box::new(r) as _));
    let status = kid.wait_timeout(timeout);
    if status.is_none() {
        eprintln!("[bench] {name}: killed after {timeout:?}");
        kid.stop();
    }
    // A grandchild holding the pipes open must not hang us either.
    let got = |rx: std::sync::mpsc::Receiver<String>| {
        rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default()
    };
    Ok((status, got(out), got(err)))
}

/// Runs `cmd` (stdin /dev/null, stdout to our stderr, stderr inherited) for
/// at most `timeout`; killed past it (`None`).
pub fn status_within(name: &str, mut cmd: Command, timeout: Duration) -> Option<ExitStatus> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()));
    let kid = match Kid::spawn(name, cmd, Duration::from_secs(5)) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("[bench] {e}");
            return None;
        }
    };
    let status = kid.wait_timeout(timeout);
    if status.is_none() {
        eprintln!("[bench] {name}: killed after {timeout:?}");
        kid.stop();
    }
    status
}

// -------------------------------------------------------------------- ports

/// A loopback port `p` in `lo..hi` with `p - 2` (a broker's VIP channel),
/// `p` and `p + 1` (HA) free, none of them handed out before by this
/// process.
pub fn free_port_block(lo: u16, hi: u16) -> Option<u16> {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ (u64::from(std::process::id()) << 32)
        | 1;
    for _ in 0..200 {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let p = lo.max(3) + (x % u64::from(hi - lo.max(3))) as u16;
        let block = [p - 2, p - 1, p, p + 1];
        if block.iter().any(|q| given.contains(q)) {
            continue;
        }
        if [p - 2, p, p + 1]
            .iter()
            .all(|q| std::net::TcpListener::bind(("127.0.0.1", *q)).is_ok())
        {
            given.extend(block);
            return Some(p);
        }
    }
    None
}
