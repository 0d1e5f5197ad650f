//! Pieces shared by the `bench_*` binaries: a latency histogram, what
//! `/proc` says about a process and the machine, and child processes that
//! are stopped however the benchmark ends (drop, panic, or a signal).

/// Log-linear histogram of nanosecond values: exact below 1024, then 512
/// sub-buckets per power of two (relative error < 0.2%), like HdrHistogram
/// with 3 significant digits.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    pub total: u64,
    pub max: u64,
}

const SUB_BITS: u32 = 10;
const HALF: usize = 1 << (SUB_BITS - 1);

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; (64 - SUB_BITS as usize + 2) * HALF],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < (1 << SUB_BITS) {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros();
        let shift = msb - (SUB_BITS - 1);
        shift as usize * HALF + (v >> shift) as usize
    }

    /// Middle of the bucket `idx` covers.
    fn value_of(idx: usize) -> u64 {
        if idx < 2 * HALF {
            return idx as u64;
        }
        let shift = idx / HALF - 1;
        let mant = (idx - shift * HALF) as u64;
        (mant << shift) + ((1u64 << shift) >> 1)
    }

    pub fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.total += o.total;
        self.max = self.max.max(o.max);
    }

    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let target = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Self::value_of(i).min(self.max);
            }
        }
        self.max
    }
}

/// Resident set size of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Anonymous resident memory of `pid` in KiB (`RssAnon`: heap and stacks,
/// not the mapped store files).
pub fn rss_anon_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// utime + stime of a process, in clock ticks (0 once it is gone).
pub fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the ")" that closes the command name; utime/stime are 14/15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The 1, 5 and 15 minute load averages as printed by `/proc/loadavg`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `12.3 MiB`.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

// ------------------------------------------------------------------- report

/// Latency quantiles of a histogram of nanoseconds, in microseconds.
#[derive(Debug, Default, Clone, Copy)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Latency {
    pub fn of(h: &Histogram) -> Latency {
        let us = |ns: u64| ns as f64 / 1e3;
        Latency {
            p50_us: us(h.quantile(0.50)),
            p99_us: us(h.quantile(0.99)),
            p999_us: us(h.quantile(0.999)),
            max_us: us(h.max),
        }
    }
}

/// One line of a report table: its name and a result's cell.
pub type Row<T> = (&'static str, Box<dyn Fn(&T) -> String>);

/// The p50, p99, p99.9 and max latency lines of a report table.
pub fn latency_rows<T: 'static>(lat: fn(&T) -> Latency) -> Vec<Row<T>> {
    let row = |name: &'static str, q: fn(Latency) -> f64| -> Row<T> {
        (name, Box::new(move |r: &T| format!("{:.0} us", q(lat(r)))))
    };
    vec![
        row("p50 latency", |l| l.p50_us),
        row("p99 latency", |l| l.p99_us),
        row("p99.9 latency", |l| l.p999_us),
        row("max latency", |l| l.max_us),
    ]
}

/// Prints a Markdown table: one column per result (headed by `label`), one
/// line per row; the first column `w0` wide, the others `w`.
pub fn print_table<T>(
    results: &[T],
    label: impl Fn(&T) -> &str,
    rows: &[Row<T>],
    w0: usize,
    w: usize,
) {
    print!("| {:<w0$} |", "");
    for r in results {
        print!(" {:<w$} |", label(r));
    }
    println!();
    print!("|{}|", "-".repeat(w0 + 2));
    for _ in results {
        print!("{}|", "-".repeat(w + 2));
    }
    println!();
    for (name, f) in rows {
        print!("| {name:<w0$} |");
        for r in results {
            print!(" {:<w$} |", f(r));
        }
        println!();
    }
}

/// Per-round rates as `123 / 456`.
pub fn per_round(rates: &[f64]) -> String {
    rates
        .iter()
        .map(|q| format!("{q:.0}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// `a / b`; NaN unless `b` is positive.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

/// The per-round ratios `ours / theirs` of paired rounds, sorted, as
/// `1.23, 2.34`.
pub fn round_ratios(ours: &[f64], theirs: &[f64]) -> String {
    let mut per_round: Vec<f64> = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| ratio(*a, *b))
        .collect();
    per_round.sort_by(f64::total_cmp);
    per_round
        .iter()
        .map(|q| format!("{q:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn goal(ok: bool) -> &'static str {
    if ok {
        "meets goal"
    } else {
        "MISSES goal"
    }
}

/// The options both side-by-side benchmark binaries (`bench_namesrv`,
/// `bench_dledger`) take; each keeps its own defaults and extra flags.
#[derive(Debug, Clone)]
pub struct CommonOpts {
    pub duration: std::time::Duration,
    pub warmup: std::time::Duration,
    pub conns: usize,
    pub inflight: usize,
    pub rounds: usize,
    pub settle: std::time::Duration,
    pub java_version: String,
    /// Run our server (`--only java` clears it).
    pub ours: bool,
    /// Run Java's (`--only ours` clears it).
    pub java: bool,
}

impl CommonOpts {
    /// The defaults both binaries share: 3 rounds of 10 s after a 10 s
    /// warm-up, 3 s settle, Java 5.3.3, both servers; `conns` connections
    /// with `inflight` requests in flight each.
    pub fn new(conns: usize, inflight: usize) -> CommonOpts {
        CommonOpts {
            duration: std::time::Duration::from_secs(10),
            warmup: std::time::Duration::from_secs(10),
            conns,
            inflight,
            rounds: 3,
            settle: std::time::Duration::from_secs(3),
            java_version: "5.3.3".to_owned(),
            ours: true,
            java: true,
        }
    }

    /// Reads command-line `args`: the common flags here, any other one goes
    /// to `extra` with a way to take its value (`Ok(false)`: not one of its
    /// flags either). The first refusal, an unknown flag or `-h`/`--help` is
    /// the error.
    pub fn parse(
        &mut self,
        args: impl IntoIterator<Item = String>,
        mut extra: impl FnMut(&str, &mut dyn FnMut() -> Option<String>) -> Result<bool, String>,
    ) -> Result<(), String> {
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            if flag == "-h" || flag == "--help" {
                return Err("options".to_owned());
            }
            if !self.apply(&flag, || args.next())? && !extra(&flag, &mut || args.next())? {
                return Err(format!("unknown option {flag}"));
            }
        }
        Ok(())
    }

    /// Applies `flag` when it is one of the common ones, reading its value
    /// from `value`: `Ok(true)` if applied, `Ok(false)` if the flag is not a
    /// common one, `Err` for a missing or bad value.
    pub fn apply(
        &mut self,
        flag: &str,
        value: impl FnOnce() -> Option<String>,
    ) -> Result<bool, String> {
        let known = [
            "--duration",
            "--warmup",
            "--conns",
            "--inflight",
            "--rounds",
            "--settle",
            "--java-version",
            "--only",
        ];
        if !known.contains(&flag) {
            return Ok(false);
        }
        let v = value().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: bad value '{v}'");
        let secs = || {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(std::time::Duration::from_secs_f64)
                .ok_or_else(bad)
        };
        let count = |min: usize| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n >= min)
                .ok_or_else(bad)
        };
        match flag {
            "--duration" => self.duration = secs()?,
            "--warmup" => self.warmup = secs()?,
            "--conns" => self.conns = count(1)?,
            "--inflight" => self.inflight = count(1)?,
            "--rounds" => self.rounds = count(1)?,
            "--settle" => self.settle = secs()?,
            "--java-version" => self.java_version = v,
            _ => match v.as_str() {
                "ours" => self.java = false,
                "java" => self.ours = false,
                _ => return Err(bad()),
            },
        }
        Ok(true)
    }
}

// --------------------------------------------------------------- processes

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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

// ------------------------------------------------------------------ /proc

/// A `Key:  123 kB` field of `/proc/<pid>/status` (VmRSS, VmHWM, RssAnon,
/// RssFile, ...), in KiB.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Whether a process (any, not only a child) with `pid` exists.
pub fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid as i32, 0) };
    rc == 0
}

// ----------------------------------------------------------------- printing

/// The current UTC time as `date -u '+%Y-%m-%d %H:%M UTC'` prints it.
pub fn utc_minute() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_minute_of(secs)
}

fn utc_minute_of(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}

/// `printf("%.<precision>g", x)` as C (and awk) print it.
pub fn format_g(x: f64, precision: usize) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let p = precision.max(1);
    if x == 0.0 {
        return "0".into();
    }
    // The exponent after rounding to p significant digits.
    let sci = format!("{:.*e}", p - 1, x);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if exp < -4 || exp >= p as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip(mant), exp.abs())
    } else {
        strip(&format!("{:.*}", (p as i32 - 1 - exp) as usize, x))
    }
}

// ------------------------------------------------ Java drivers and brokers
//
// What `bench_broker` and `bench_ha` share: the official client's drivers
// (compat-tests/java) and mqadmin, the official broker's jars, our name
// server, the broker.conf keys both sides get, and the drivers' `RESULT`
// lines.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

pub type Res<T> = Result<T, String>;

const LISTEN_TIMEOUT: Duration = Duration::from_secs(120);
const MQADMIN_TIMEOUT: Duration = Duration::from_secs(120);
pub const MAVEN_TIMEOUT: Duration = Duration::from_secs(1200);

fn log(msg: &str) {
    eprintln!("[bench] {msg}");
}

/// awk's string -> number: the longest numeric prefix, 0 without one.
pub fn awk_num(s: &str) -> f64 {
    let s = s.trim_start();
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let from = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - from
    };
    let mut n = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        n += digits(&mut i);
    }
    if n == 0 {
        return 0.0;
    }
    let mantissa_end = i;
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if digits(&mut j) > 0 {
            i = j;
        } else {
            i = mantissa_end;
        }
    }
    s[..i].parse().unwrap_or(0.0)
}

/// awk's number -> string in a concatenation (integers as such, else %.6g).
pub fn awk_str(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format_g(x, 6)
    }
}

/// `<server> <key> <value>` records, also appended to `results.txt`.
pub struct Results {
    pub file: PathBuf,
    pub v: HashMap<(String, String), f64>,
}

impl Results {
    /// Records kept in memory and appended to `file` (created empty).
    pub fn create(file: PathBuf) -> Res<Results> {
        write_file(&file, "")?;
        Ok(Results {
            file,
            v: HashMap::new(),
        })
    }

    pub fn put(&mut self, s: &str, k: &str, v: &str) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
        {
            let _ = writeln!(f, "{s} {k} {v}");
        }
        self.v.insert((s.to_owned(), k.to_owned()), awk_num(v));
    }

    /// The drivers' `RESULT <kind> k=v ...` lines as `<kind><threads>_<k>`.
    pub fn record(&mut self, s: &str, output: &str) {
        for line in output.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first() != Some(&"RESULT") || f.len() < 2 {
                continue;
            }
            let kv = |field: &str| {
                let mut it = field.split('=');
                (
                    it.next().unwrap_or("").to_owned(),
                    it.next().unwrap_or("").to_owned(),
                )
            };
            let t = f[2..]
                .iter()
                .map(|x| kv(x))
                .rfind(|(k, _)| k == "threads")
                .map(|(_, v)| v)
                .unwrap_or_default();
            for (k, v) in f[2..].iter().map(|x| kv(x)) {
                if k != "threads" {
                    self.put(s, &format!("{}{t}_{k}", f[1]), &v);
                }
            }
        }
    }

    /// The value, -1 when there is none.
    pub fn val(&self, s: &str, k: &str) -> f64 {
        self.v
            .get(&(s.to_owned(), k.to_owned()))
            .copied()
            .unwrap_or(-1.0)
    }
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

/// `cp -r from to` (bounded).
pub fn copy_dir(from: &Path, to: &Path) -> Res<()> {
    let mut c = Command::new("cp");
    c.arg("-r").arg(from).arg(to);
    match status_within("cp", c, Duration::from_secs(300)) {
        Some(s) if s.success() => Ok(()),
        _ => Err(format!("cp -r {} {} failed", from.display(), to.display())),
    }
}

/// The drivers, snapshotted into the work dir: a test run elsewhere may
/// re-run prepare.sh (which replaces target/<version>/lib) while the
/// benchmark is going.
pub fn snapshot_drivers(root: &Path, ver: &str, work: &Path) -> Res<PathBuf> {
    let jdir = work.join("drivers");
    for attempt in 1..=3 {
        let mut c = Command::new("bash");
        c.arg(root.join("compat-tests/java/prepare.sh"))
            .arg(ver)
            .current_dir(root);
        match status_within("prepare.sh", c, MAVEN_TIMEOUT) {
            Some(s) if s.success() => {}
            _ => return Err(format!("compat-tests/java/prepare.sh {ver} failed")),
        }
        let _ = std::fs::remove_dir_all(&jdir);
        mkdir(&jdir)?;
        let src = root.join("compat-tests/java/target").join(ver);
        let mut c = Command::new("cp");
        c.arg("-r")
            .args(["classes", "lib", "home"].map(|d| src.join(d)))
            .arg(&jdir)
            .stderr(Stdio::null());
        let copied = status_within("cp", c, Duration::from_secs(300)).is_some_and(|s| s.success())
            && jdir.join("classes/compat/BenchProducer.class").is_file()
            && jdir
                .join(format!("lib/rocketmq-client-{ver}.jar"))
                .is_file()
            && jdir.join(format!("lib/rocketmq-tools-{ver}.jar")).is_file();
        if copied {
            return Ok(jdir);
        }
        if attempt == 3 {
            break;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    Err("could not snapshot the Java drivers".into())
}

/// The drivers' snapshot (see [`snapshot_drivers`]) and what runs them.
pub struct Drivers {
    pub root: PathBuf,
    /// The work folder (mqadmin's home goes under it).
    pub work: PathBuf,
    /// The snapshot: classes, lib, home.
    pub jdir: PathBuf,
    /// Its classpath.
    pub cp: String,
}

impl Drivers {
    /// Compiles the drivers for client `ver` (Maven on the first run) and
    /// snapshots them into `work`.
    pub fn prepare(root: &Path, ver: &str, work: &Path) -> Res<Drivers> {
        let jdir = snapshot_drivers(root, ver, work)?;
        let cp = format!(
            "{}:{}/*",
            jdir.join("classes").display(),
            jdir.join("lib").display()
        );
        Ok(Drivers {
            root: root.to_owned(),
            work: work.to_owned(),
            jdir,
            cp,
        })
    }

    /// `java` with `heap` options, in the workspace root.
    pub fn java_cmd(&self, heap: &[&str]) -> Command {
        let mut c = Command::new("java");
        c.current_dir(&self.root).args(heap);
        c
    }

    /// `java_run`: a driver main class on the client classpath; its stdout
    /// to `out` and to our stderr as it comes, for at most `timeout`.
    /// Whether it exited 0, and its stdout.
    pub fn driver(
        &self,
        home: &Path,
        main: &str,
        args: &[String],
        out: &Path,
        timeout: Duration,
    ) -> Res<(bool, String)> {
        self.driver_with(home, main, args, out, timeout, |_| {})
    }

    /// [`Drivers::driver`], calling `on_line` with every line the driver
    /// prints (stdout and stderr, as they come; its stderr is passed on to
    /// ours): phase boundaries for whoever samples the servers meanwhile.
    pub fn driver_with(
        &self,
        home: &Path,
        main: &str,
        args: &[String],
        out: &Path,
        timeout: Duration,
        on_line: impl FnMut(&str) + Send + 'static,
    ) -> Res<(bool, String)> {
        mkdir(home)?;
        let mut c = self.java_cmd(&["-Xms512m", "-Xmx512m", "-XX:+UseG1GC"]);
        c.arg(format!("-Dbench.clkTck={}", clk_tck() as u64))
            .arg(format!("-Duser.home={}", home.display()))
            .arg(format!(
                "-Drocketmq.home.dir={}",
                self.jdir.join("home").display()
            ))
            .arg("-cp")
            .arg(&self.cp)
            .arg(main)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut file =
            std::fs::File::create(out).map_err(|e| format!("create {}: {e}", out.display()))?;
        let kid = Kid::spawn(main, c, Duration::from_secs(5))?;
        let on_line = Arc::new(Mutex::new(on_line));
        let stderr = kid.take_stderr();
        let cb = on_line.clone();
        std::thread::spawn(move || {
            if let Some(stderr) = stderr {
                let mut r = std::io::BufReader::new(stderr);
                let mut line = Vec::new();
                while r.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                    let _ = std::io::stderr().write_all(&line);
                    (cb.lock().unwrap_or_else(|p| p.into_inner()))(&String::from_utf8_lossy(&line));
                    line.clear();
                }
            }
        });
        let stdout = kid.take_stdout();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(stdout) = stdout {
                let mut r = std::io::BufReader::new(stdout);
                let mut line = Vec::new();
                while r.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                    let _ = std::io::stderr().write_all(&line);
                    let _ = file.write_all(&line);
                    (on_line.lock().unwrap_or_else(|p| p.into_inner()))(&String::from_utf8_lossy(
                        &line,
                    ));
                    text.extend_from_slice(&line);
                    line.clear();
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&text).into_owned());
        });
        let status = kid.wait_timeout(timeout);
        if status.is_none() {
            log(&format!(
                "{main}: still running after {timeout:?}, stopping it"
            ));
            kid.stop();
        }
        let text = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        Ok((status.is_some_and(|s| s.success()), text))
    }

    /// A driver that must succeed (the script ran with `set -o pipefail`).
    pub fn driver_ok(
        &self,
        home: &Path,
        main: &str,
        args: &[String],
        out: &Path,
        t: Duration,
    ) -> Res<String> {
        match self.driver(home, main, args, out, t)? {
            (true, text) => Ok(text),
            (false, _) => Err(format!(
                "{main} {} failed",
                args.first().map_or("", |a| a.as_str())
            )),
        }
    }

    /// The Java mqadmin tool (the reference version's jars): stdout, stderr.
    pub fn mqadmin(&self, args: &[&str]) -> (String, String) {
        let admin = self.work.join("admin");
        let mut c = self.java_cmd(&[
            "-Xms64m",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
        ]);
        c.arg(format!("-Duser.home={}", admin.display()))
            .arg(format!(
                "-Drocketmq.home.dir={}",
                self.jdir.join("home").display()
            ))
            .arg(format!(
                "-Drocketmq.log.root={}",
                admin.join("logs").display()
            ))
            .arg("-Drocketmq.log.level=WARN")
            .arg("-Drmq.logback.configurationFile=rmq.tools.logback.xml")
            .arg("-cp")
            .arg(&self.cp)
            .arg("org.apache.rocketmq.tools.command.MQAdminStartup")
            .args(args);
        match output_within("mqadmin", c, MQADMIN_TIMEOUT) {
            Ok((_, out, err)) => (out, err),
            Err(e) => (String::new(), e),
        }
    }

    /// `updateTopic -c`: a broker listening may not have registered with the
    /// name server yet (the cluster is then unknown): retried for up to 30 s.
    pub fn update_topic(&self, ns: &str, cluster: &str, topic: &str) -> Res<()> {
        let mut out = String::new();
        let attempts = 15;
        for _ in 0..attempts {
            let (o, e) = self.mqadmin(&[
                "updateTopic",
                "-n",
                ns,
                "-c",
                cluster,
                "-t",
                topic,
                "-r",
                "8",
                "-w",
                "8",
            ]);
            out = o + &e;
            if out.contains("success") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        Err(format!(
            "updateTopic {topic} failed ({attempts} attempts):\n{out}"
        ))
    }

    pub fn update_topic_b(&self, ns: &str, broker: &str, topic: &str) -> bool {
        let (o, e) = self.mqadmin(&[
            "updateTopic",
            "-n",
            ns,
            "-b",
            broker,
            "-t",
            topic,
            "-r",
            "8",
            "-w",
            "8",
        ]);
        o.contains("success") || e.contains("success")
    }

    /// The address the name server lists as broker id 0 of `cluster`.
    pub fn master_of(&self, ns: &str, cluster: &str) -> Option<String> {
        let (out, _) = self.mqadmin(&["clusterList", "-n", ns]);
        out.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&cluster) && f.get(2) == Some(&"0"))
                .then(|| f.get(3).map(|a| a.to_string()))
                .flatten()
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn histogram_quantiles_within_bucket_error() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for (q, want) in [(0.5, 50_000_000f64), (0.99, 99_000_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.003, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.max, 100_000_000);
        assert!(h.quantile(1.0) <= h.max && h.quantile(1.0) >= 99_700_000);
        assert_eq!(h.total, 100_000);
    }

    #[test]
    fn format_g_prints_like_c() {
        for (x, want) in [
            (1.0, "1"),
            (2.5, "2.5"),
            (0.123456, "0.123"),
            (12.345, "12.3"),
            (123.4, "123"),
            (1234.5, "1.23e+03"),
            (999.7, "1e+03"),
            (0.00012345, "0.000123"),
            (0.000012345, "1.23e-05"),
            (0.0, "0"),
        ] {
            assert_eq!(format_g(x, 3), want, "{x}");
        }
    }

    #[test]
    fn utc_minute_of_known_instants() {
        assert_eq!(utc_minute_of(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute_of(951_782_400 + 3_661), "2000-02-29 01:01 UTC");
        assert_eq!(utc_minute_of(1_796_640_000), "2026-12-07 10:40 UTC");
    }

    #[test]
    fn common_flags_apply_and_bad_values_are_refused() {
        let mut o = CommonOpts::new(4, 32);
        assert_eq!(o.apply("--duration", || Some("2.5".into())), Ok(true));
        assert_eq!(o.duration, Duration::from_millis(2500));
        assert_eq!(o.apply("--conns", || Some("8".into())), Ok(true));
        assert_eq!(o.conns, 8);
        assert_eq!(o.apply("--only", || Some("ours".into())), Ok(true));
        assert!(o.ours && !o.java);
        assert_eq!(o.apply("--body", || Some("1".into())), Ok(false));
        assert!(o.apply("--conns", || Some("0".into())).is_err());
        assert!(o.apply("--rounds", || None).is_err());
        assert!(o.apply("--only", || Some("both".into())).is_err());
        assert!(o.apply("--warmup", || Some("-1".into())).is_err());
        assert_eq!(o.conns, 8, "a refused value changes nothing");
    }

    #[test]
    fn parse_hands_other_flags_to_the_caller() {
        let mut o = CommonOpts::new(4, 32);
        let mut body = 0;
        let args = ["--rounds", "5", "--body", "2048", "--only", "java"].map(String::from);
        let r = o.parse(args, |flag, value| match flag {
            "--body" => {
                body = value().and_then(|v| v.parse().ok()).ok_or("bad body")?;
                Ok(true)
            }
            _ => Ok(false),
        });
        assert_eq!(r, Ok(()));
        assert_eq!((o.rounds, body, o.ours, o.java), (5, 2048, false, true));
        let r = o.parse(["--nope".to_owned()], |flag, _| {
            Err(format!("unknown option {flag}"))
        });
        assert_eq!(r, Err("unknown option --nope".to_owned()));
    }
}
