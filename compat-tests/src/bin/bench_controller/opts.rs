//! Command-line options of `bench_controller`: flags, defaults and checks.

use std::path::PathBuf;

use compat_tests::bench::{thread_counts, Res};

#[derive(Debug, Clone)]
pub(crate) struct Opts {
    /// Seconds per thread count of the send phase.
    pub(crate) duration: u64,
    pub(crate) warmup: u64,
    pub(crate) threads: String,
    pub(crate) thread_counts: Vec<u64>,
    pub(crate) size: u64,
    /// Faults of each kind (SIGKILL, SIGSTOP) per side.
    pub(crate) rounds: usize,
    /// Longest wait for the first acknowledged send after a fault.
    pub(crate) failover_timeout: u64,
    pub(crate) only: Vec<String>,
    pub(crate) ver: String,
    pub(crate) keep: Option<PathBuf>,
}

pub(crate) const USAGE: &str =
    "usage: bench_controller [--only ours|java] [--threads 16,64] [--duration SECS]
                        [--warmup SECS] [--size BYTES] [--rounds R]
                        [--failover-timeout SECS] [--java-version V] [--keep DIR]";

pub(crate) fn parse_args(args: impl IntoIterator<Item = String>) -> Res<Opts> {
    let mut o = Opts {
        duration: 20,
        warmup: 10,
        threads: "16,64".into(),
        thread_counts: Vec::new(),
        size: 1024,
        rounds: 2,
        failover_timeout: 90,
        only: vec!["java".into(), "ours".into()],
        ver: "5.3.3".into(),
        keep: None,
    };
    let mut args = args.into_iter();
    let known = [
        "--duration",
        "--warmup",
        "--threads",
        "--size",
        "--rounds",
        "--failover-timeout",
        "--only",
        "--java-version",
        "--keep",
    ];
    // Bounded: every flag takes one value.
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err("options".into());
        }
        if !known.contains(&flag.as_str()) {
            return Err(format!("unknown option {flag}"));
        }
        let v = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: bad value '{v}'");
        let num = || v.parse::<u64>().map_err(|_| bad());
        match flag.as_str() {
            "--duration" => o.duration = num()?.max(1),
            "--warmup" => o.warmup = num()?,
            "--size" => o.size = num()?.max(1),
            "--rounds" => o.rounds = num()?.min(100) as usize,
            "--failover-timeout" => o.failover_timeout = num()?.clamp(5, 600),
            "--threads" => o.threads = v.clone(),
            "--only" => {
                o.only = match v.as_str() {
                    "ours" | "java" => vec![v.clone()],
                    "java,ours" | "ours,java" => v.split(',').map(str::to_owned).collect(),
                    _ => return Err(bad()),
                }
            }
            "--java-version" => o.ver = v,
            _ => o.keep = Some(PathBuf::from(v)),
        }
    }
    o.thread_counts = thread_counts(&o.threads)?;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(a: &[&str]) -> Res<Opts> {
        parse_args(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn options() {
        let o = parse(&[]).expect("defaults");
        assert_eq!(o.thread_counts, [16, 64]);
        assert_eq!((o.rounds, o.only.len(), o.failover_timeout), (2, 2, 90));
        let o = parse(&["--only", "ours", "--rounds", "3", "--threads", "8"]).expect("ours");
        assert_eq!(o.only, ["ours"]);
        assert_eq!((o.rounds, o.thread_counts.as_slice()), (3, &[8][..]));
        assert!(parse(&["--only", "echo"]).is_err());
        assert!(parse(&["--threads", "4,x"]).is_err());
        assert!(parse(&["--rounds"]).is_err());
        assert!(parse(&["--bogus", "1"]).is_err());
    }
}
