//! The cross-version compatibility matrix (`scripts/compat-matrix.sh`):
//! every client and tool version of `compat-tests/versions.txt` through the
//! scenario groups against each server pairing; writes the Markdown page.
//!
//! ```text
//! compat_matrix [--out FILE] [--ci] [--pairings ours,java-broker,java-namesrv,dledger-mixed]
//!               [--only FAMILY:VERSION,...] [--command TEXT]
//! ```
//!
//! Exit 0 when no cell failed other than those documented as Java's own
//! behaviour (`known` lines of the versions file), 1 otherwise, 2 on bad usage.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use compat_tests::matrix::{
    commit, load_versions, render, run_pairing, totals, unexpected_failures, versions_file,
    Pairing, ALL_PAIRINGS,
};

struct Args {
    out: Option<String>,
    ci: bool,
    pairings: Vec<Pairing>,
    only: Vec<String>,
    command: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        out: None,
        ci: false,
        pairings: ALL_PAIRINGS.to_vec(),
        only: Vec::new(),
        command: "scripts/compat-matrix.sh".to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--out" => a.out = Some(value()?),
            "--ci" => a.ci = true,
            "--pairings" => {
                a.pairings = value()?
                    .split(',')
                    .map(|p| Pairing::parse(p).ok_or_else(|| format!("unknown pairing {p}")))
                    .collect::<Result<_, _>>()?
            }
            "--only" => a.only = value()?.split(',').map(str::to_owned).collect(),
            "--command" => a.command = value()?,
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    Ok(a)
}

fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown date".to_owned())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("compat_matrix: {e}");
            return ExitCode::from(2);
        }
    };
    let versions = match load_versions(&versions_file()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("compat_matrix: {e}");
            return ExitCode::from(2);
        }
    };
    let entries: Vec<_> = versions
        .entries
        .iter()
        .filter(|e| !args.ci || e.ci)
        .filter(|e| {
            args.only.is_empty()
                || args
                    .only
                    .iter()
                    .any(|o| *o == format!("{}:{}", e.family.key(), e.version))
        })
        .cloned()
        .collect();
    let started = Instant::now();
    let tables: Vec<_> = args
        .pairings
        .iter()
        .map(|p| run_pairing(*p, &versions, &entries, None))
        .collect();
    let took = Duration::from_secs(started.elapsed().as_secs());
    let page = render(&tables, &versions, &today(), &commit(), took, &args.command);
    match &args.out {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &page) {
                eprintln!("compat_matrix: write {path}: {e}");
                return ExitCode::from(1);
            }
        }
        None => print!("{page}"),
    }
    let (pass, fail, known, absent) = totals(&tables);
    eprintln!(
        "compat_matrix: {pass} passed, {fail} failed, {known} Java's own, {absent} n/a in {took:?}"
    );
    let bad = unexpected_failures(&tables);
    for b in &bad {
        eprintln!("compat_matrix: FAILED {b}");
    }
    if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
