//! Command-line options of `bench_broker`: flags, defaults, usage and their checks.

use std::path::PathBuf;
use std::time::Duration;

use compat_tests::bench::{thread_counts, Res};

#[derive(Debug, Clone)]
pub(crate) struct Opts {
    /// As given (passed on to the drivers and printed).
    pub(crate) duration: u64,
    pub(crate) warmup: u64,
    pub(crate) threads: String,
    pub(crate) thread_counts: Vec<u64>,
    pub(crate) size: u64,
    pub(crate) consume: u64,
    pub(crate) consume_mode: String,
    pub(crate) settle: Duration,
    pub(crate) only: Vec<String>,
    pub(crate) ver: String,
    pub(crate) keep: Option<PathBuf>,
    pub(crate) dledger: bool,
}

pub(crate) const USAGE: &str = "usage: bench_broker [--duration SECS] [--warmup SECS] [--threads 4,16,64]
                    [--size BYTES] [--consume N] [--consume-mode push|push-batch|pull|pull-direct] [--settle SECS]
                    [--only java,ours,echo] [--java-version V] [--keep DIR]
       bench_broker --dledger [--duration SECS] [--warmup SECS] [--threads 8,64]
                    [--size BYTES] [--only java,ours] [--keep DIR]";

pub(crate) fn usage(why: &str) -> ! {
    eprintln!("bench_broker: {why}\n{USAGE}");
    std::process::exit(2)
}

pub(crate) fn parse_args(args: impl IntoIterator<Item = String>) -> Res<Opts> {
    let mut o = Opts {
        duration: 20,
        warmup: 10,
        threads: "4,16,64".into(),
        thread_counts: Vec::new(),
        size: 1024,
        consume: 200_000,
        consume_mode: "push".into(),
        settle: Duration::from_secs(3),
        only: Vec::new(),
        ver: "5.3.3".into(),
        keep: None,
        dledger: false,
    };
    let (mut threads_set, mut only) = (false, None);
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--dledger" {
            o.dledger = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err("options".into());
        }
        let known = [
            "--duration",
            "--warmup",
            "--threads",
            "--size",
            "--consume",
            "--consume-mode",
            "--settle",
            "--only",
            "--java-version",
            "--keep",
        ];
        if !known.contains(&flag.as_str()) {
            return Err(format!("unknown option {flag}"));
        }
        let v = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: bad value '{v}'");
        let num = || v.parse::<u64>().map_err(|_| bad());
        match flag.as_str() {
            "--duration" => o.duration = num()?,
            "--warmup" => o.warmup = num()?,
            "--size" => o.size = num()?,
            "--consume" => o.consume = num()?,
            "--threads" => {
                o.threads = v.clone();
                threads_set = true;
            }
            "--consume-mode" => {
                if !["push", "push-batch", "pull", "pull-direct"].contains(&v.as_str()) {
                    return Err(bad());
                }
                o.consume_mode = v;
            }
            "--settle" => {
                o.settle = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(bad)?
            }
            "--only" => only = Some(v),
            "--java-version" => o.ver = v,
            _ => o.keep = Some(PathBuf::from(v)),
        }
    }
    if o.dledger {
        if !threads_set {
            o.threads = "8,64".into();
        }
        o.ver = "5.3.3".into();
    }
    let only = only.unwrap_or_else(|| {
        if o.dledger {
            "java,ours"
        } else {
            "java,ours,echo"
        }
        .to_owned()
    });
    let allowed: &[&str] = if o.dledger {
        &["java", "ours"]
    } else {
        &["java", "ours", "echo"]
    };
    for s in only.split(',').filter(|s| !s.is_empty()) {
        if !allowed.contains(&s) {
            return Err(format!("--only: unknown server '{s}'"));
        }
        o.only.push(s.to_owned());
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
    fn defaults_and_dledger_defaults() {
        let o = parse(&[]).expect("defaults");
        assert_eq!(
            (o.duration, o.warmup, o.size, o.consume),
            (20, 10, 1024, 200_000)
        );
        assert_eq!((o.threads.as_str(), o.ver.as_str()), ("4,16,64", "5.3.3"));
        assert_eq!(o.only, ["java", "ours", "echo"]);
        let o = parse(&["--java-version", "4.9.8", "--dledger"]).expect("dledger");
        assert_eq!((o.threads.as_str(), o.ver.as_str()), ("8,64", "5.3.3"));
        assert_eq!(o.only, ["java", "ours"]);
        let o = parse(&["--dledger", "--threads", "4", "--only", "ours"]).expect("dledger");
        assert_eq!(
            (o.thread_counts.as_slice(), o.only.as_slice()),
            (&[4][..], &["ours".to_owned()][..])
        );
        assert!(parse(&["--dledger", "--only", "echo"]).is_err());
        assert!(parse(&["--threads", "4,x"]).is_err());
        assert!(parse(&["--duration"]).is_err());
        assert!(parse(&["--nope", "1"]).is_err());
    }
}
