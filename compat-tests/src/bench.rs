//! Pieces shared by the `bench_*` binaries: a latency histogram and what
//! `/proc` says about a process and the machine.

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
