//! The command-line options the side-by-side benchmarks share (`CommonOpts`).

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

/// `--threads` of the send benchmarks: a comma-separated list of positive
/// counts; spaces around an item are allowed ("16, 64").
pub fn thread_counts(list: &str) -> Result<Vec<u64>, String> {
    list.split(',')
        .map(|t| t.trim().parse::<u64>().ok().filter(|n| *n > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("--threads: bad value '{list}'"))
}

#[cfg(test)]
mod thread_count_tests {
    use super::thread_counts;

    #[test]
    fn lists_with_or_without_spaces_and_bad_items() {
        assert_eq!(thread_counts("16,64"), Ok(vec![16, 64]));
        assert_eq!(thread_counts("16, 64"), Ok(vec![16, 64]));
        assert!(thread_counts("4,x").is_err());
        assert!(thread_counts("0").is_err());
        assert!(thread_counts("").is_err());
    }
}
