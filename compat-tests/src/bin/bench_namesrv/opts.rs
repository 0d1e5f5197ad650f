//! Command-line options of `bench_namesrv`: flags, defaults and usage.

use compat_tests::bench::CommonOpts;

#[derive(Debug, Clone)]
pub(crate) struct Opts {
    pub(crate) common: CommonOpts,
    /// Requests per write syscall at most (0 = all that are ready).
    pub(crate) per_write: usize,
    pub(crate) topics: usize,
}

impl std::ops::Deref for Opts {
    type Target = CommonOpts;
    fn deref(&self) -> &CommonOpts {
        &self.common
    }
}

pub(crate) fn usage(why: &str) -> ! {
    eprintln!(
        "bench_namesrv: {why}\nusage: bench_namesrv [--duration SECS] [--warmup SECS] [--conns C] \
         [--inflight P] [--topics N] [--settle SECS] [--rounds R] [--per-write N] \
         [--java-version V] [--only ours|java]"
    );
    std::process::exit(2)
}

pub(crate) fn parse_args() -> Opts {
    let mut common = CommonOpts::new(8, 16);
    let (mut per_write, mut topics) = (0, 16);
    let parsed = common.parse(std::env::args().skip(1), |flag, value| {
        let mut num = || {
            value()
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag} needs a number above 0"))
        };
        match flag {
            "--per-write" => per_write = num()?,
            "--topics" => topics = num()?,
            _ => return Ok(false),
        }
        Ok(true)
    });
    if let Err(e) = parsed {
        usage(&e);
    }
    Opts {
        common,
        per_write,
        topics,
    }
}
