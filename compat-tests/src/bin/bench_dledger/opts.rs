//! Command-line options of `bench_dledger`: flags, defaults and usage.

use compat_tests::bench::CommonOpts;

#[derive(Debug, Clone)]
pub(crate) struct Opts {
    pub(crate) common: CommonOpts,
    pub(crate) body: usize,
    pub(crate) failovers: usize,
    pub(crate) java_heap: String,
    pub(crate) java_our_timers: bool,
}

impl std::ops::Deref for Opts {
    type Target = CommonOpts;
    fn deref(&self) -> &CommonOpts {
        &self.common
    }
}

pub(crate) fn usage(why: &str) -> ! {
    eprintln!(
        "bench_dledger: {why}\nusage: bench_dledger [--duration SECS] [--warmup SECS] [--conns C] \
         [--inflight P] [--body BYTES] [--rounds R] [--failovers F] [--settle SECS] \
         [--java-version V] [--only ours|java] [--no-java-our-timers] [--java-heap SIZE]"
    );
    std::process::exit(2)
}

pub(crate) fn parse_args() -> Opts {
    let mut common = CommonOpts::new(4, 32);
    let (mut body, mut failovers) = (1024, 3);
    let (mut java_heap, mut java_our_timers) = ("1g".to_owned(), true);
    let parsed = common.parse(std::env::args().skip(1), |flag, value| {
        let mut num = || {
            value()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| format!("{flag} needs a number"))
        };
        match flag {
            "--body" => body = num()?.max(1),
            "--failovers" => failovers = num()?,
            "--java-heap" => java_heap = value().ok_or("--java-heap needs a size")?,
            "--no-java-our-timers" => java_our_timers = false,
            _ => return Ok(false),
        }
        Ok(true)
    });
    if let Err(e) = parsed {
        usage(&e);
    }
    Opts {
        java_our_timers: java_our_timers && common.java,
        common,
        body,
        failovers,
        java_heap,
    }
}
