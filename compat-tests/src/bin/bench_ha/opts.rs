//! Command-line options of `bench_ha`: flags, defaults and their checks.

use std::path::PathBuf;
use std::time::Duration;

use compat_tests::bench::{thread_counts, Res};

#[derive(Debug, Clone)]
pub(crate) struct Opts {
    pub(crate) duration: u64,
    pub(crate) warmup: u64,
    pub(crate) lag_duration: u64,
    pub(crate) threads: String,
    pub(crate) thread_counts: Vec<u64>,
    pub(crate) size: u64,
    pub(crate) catchup_gib: f64,
    pub(crate) poll: Duration,
    pub(crate) only: Vec<String>,
    pub(crate) ver: String,
    pub(crate) keep: Option<PathBuf>,
}

pub(crate) const USAGE: &str =
    "usage: bench_ha [--only ours|java] [--threads 16,64] [--duration SECS] [--warmup SECS]
                [--lag-duration SECS] [--size BYTES] [--catchup-gib G] [--poll-ms MS]
                [--java-version V] [--keep DIR]";

pub(crate) fn parse_args(args: impl IntoIterator<Item = String>) -> Res<Opts> {
    let mut o = Opts {
        duration: 20,
        warmup: 10,
        lag_duration: 20,
        threads: "16,64".into(),
        thread_counts: Vec::new(),
        size: 1024,
        catchup_gib: 1.0,
        poll: Duration::from_millis(10),
        only: vec!["java".into(), "ours".into()],
        ver: "5.3.3".into(),
        keep: None,
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err("options".into());
        }
        let known = [
            "--duration",
            "--warmup",
            "--lag-duration",
            "--threads",
            "--size",
            "--catchup-gib",
            "--poll-ms",
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
            "--duration" => o.duration = num()?.max(1),
            "--warmup" => o.warmup = num()?,
            "--lag-duration" => o.lag_duration = num()?.max(1),
            "--size" => o.size = num()?.max(1),
            "--poll-ms" => o.poll = Duration::from_millis(num()?.max(1)),
            "--threads" => o.threads = v.clone(),
            "--catchup-gib" => {
                o.catchup_gib = v
                    .parse::<f64>()
                    .ok()
                    .filter(|g| g.is_finite() && (0.0..=1.5).contains(g))
                    .ok_or_else(bad)?
            }
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
        assert_eq!((o.catchup_gib, o.only.len()), (1.0, 2));
        let o = parse(&["--only", "ours", "--catchup-gib", "0.25"]).expect("ours");
        assert_eq!(
            (o.only.as_slice(), o.catchup_gib),
            (&["ours".to_owned()][..], 0.25)
        );
        assert!(parse(&["--catchup-gib", "2"]).is_err());
        assert!(parse(&["--only", "echo"]).is_err());
        assert!(parse(&["--threads", "4,x"]).is_err());
    }
}
