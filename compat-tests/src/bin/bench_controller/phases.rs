//! The measured phases of one side: send TPS with `allAckInSyncStateSet`,
//! then rounds of master SIGKILL and SIGSTOP timed by `compat.BenchFailover`.

use std::path::Path;
use std::time::Duration;

use compat_tests::bench::{mkdir, output_within, write_file, Drivers, Res, Results};
use compat_tests::controller::BROKER_NAME;

use crate::cluster::{Cluster, Side};
use crate::opts::Opts;
use crate::{log, CLUSTER_WAIT, TOPIC};

/// What a fault round measured.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    /// SIGKILL/SIGSTOP → first SEND_OK, `None` if none within the timeout.
    pub(crate) ms: Option<f64>,
    /// Sends that failed before it.
    pub(crate) errors: u64,
    /// Restart (after SIGKILL) or SIGCONT → the set whole again.
    pub(crate) whole_ms: Option<f64>,
}

#[derive(Debug, Default)]
pub(crate) struct SideResult {
    pub(crate) kills: Vec<Fault>,
    pub(crate) stops: Vec<Fault>,
}

/// BenchProducer `send` on the cluster's master; RESULT lines recorded
/// under the side's name.
pub(crate) fn send_phase(
    o: &Opts,
    drv: &Drivers,
    work: &Path,
    c: &mut Cluster,
    results: &mut Results,
) -> Res<()> {
    let master = c.wait_whole(CLUSTER_WAIT)?;
    let pid = c
        .index_of(&master)
        .and_then(|i| c.pid(i))
        .ok_or("master not one of ours")?;
    let d = work.join(c.side.name());
    let n = o.thread_counts.len() as u64;
    let args = [
        "send".to_owned(),
        c.ns.clone(),
        TOPIC.into(),
        pid.to_string(),
        o.warmup.to_string(),
        o.duration.to_string(),
        o.threads.clone(),
        o.size.to_string(),
    ];
    let (ok, out) = drv.driver(
        &d.join("client"),
        "compat.BenchProducer",
        &args,
        &d.join("send.out"),
        Duration::from_secs(o.warmup + o.duration * n + 300),
    )?;
    if !ok {
        return Err(format!("{}: BenchProducer send failed", c.side.name()));
    }
    results.record(c.side.name(), &out);
    Ok(())
}

/// A `kill` first on BenchFailover's PATH: it runs `kill -KILL <pid>`;
/// this one sends `sig` instead, so both faults go through the same timed
/// call.
fn signal_shim(work: &Path, sig: &str) -> Res<std::path::PathBuf> {
    let dir = work.join(format!("signal-{sig}"));
    mkdir(&dir)?;
    let f = dir.join("kill");
    write_file(
        &f,
        &format!("#!/bin/sh\n# BenchFailover: kill -KILL <pid>\nexec /bin/kill -s {sig} \"$2\"\n"),
    )?;
    let mut c = std::process::Command::new("chmod");
    c.arg("755").arg(&f);
    match compat_tests::bench::status_within("chmod", c, Duration::from_secs(10)) {
        Some(s) if s.success() => Ok(dir),
        _ => Err(format!("chmod {} failed", f.display())),
    }
}

/// `RESULT failover ms=M errors=E old_master=ADDR`.
pub(crate) fn parse_result(out: &str) -> Option<(f64, u64, String)> {
    let line = out.lines().find(|l| l.starts_with("RESULT failover "))?;
    let mut ms = None;
    let mut errors = None;
    let mut old = None;
    for f in line.split_whitespace() {
        match f.split_once('=') {
            Some(("ms", v)) => ms = v.parse::<f64>().ok(),
            Some(("errors", v)) => errors = v.parse::<u64>().ok(),
            Some(("old_master", v)) => old = Some(v.to_owned()),
            _ => {}
        }
    }
    Some((ms?, errors?, old?))
}

/// One fault: BenchFailover (route poll 100 ms, 1 s send timeout, no
/// retries) sends 50, signals the master it routes to, times the first
/// SEND_OK; then the old master is restarted (SIGKILL) or resumed (SIGSTOP)
/// and the set is waited for until whole.
pub(crate) fn fault(
    o: &Opts,
    drv: &Drivers,
    work: &Path,
    c: &mut Cluster,
    sig: &str,
    round: usize,
) -> Res<Fault> {
    // Java's set does not always take a third broker back into the
    // SyncStateSet within minutes; a fault then needs the master and one
    // in-sync slave (what an election needs).
    let master = match c.wait_whole(Duration::from_secs(60)) {
        Ok(m) => m,
        Err(_) => {
            log(&format!(
                "{}: SIG{sig} round {round}: only 2 brokers in sync after 60 s; going on",
                c.side.name()
            ));
            c.wait_in_sync(2, CLUSTER_WAIT)?
        }
    };
    let shim = signal_shim(work, sig)?;
    let d = work.join(c.side.name());
    let home = d.join("failover-client");
    mkdir(&home)?;
    let mut cmd = drv.java_cmd(&["-Xms256m", "-Xmx256m", "-XX:+UseG1GC"]);
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.arg(format!("-Duser.home={}", home.display()))
        .arg(format!(
            "-Drocketmq.home.dir={}",
            drv.jdir.join("home").display()
        ))
        .arg("-cp")
        .arg(&drv.cp)
        .arg("compat.BenchFailover")
        .args([
            c.ns.as_str(),
            TOPIC,
            BROKER_NAME,
            &c.pid_list(),
            &o.failover_timeout.to_string(),
        ])
        .env("PATH", format!("{}:{path}", shim.display()));
    log(&format!(
        "{}: SIG{sig} round {round}: master {master}",
        c.side.name()
    ));
    let limit = Duration::from_secs(o.failover_timeout * 2 + 120);
    let (status, out, err) = output_within("BenchFailover", cmd, limit)?;
    write_file(
        &d.join(format!("failover-{sig}-{round}.out")),
        &format!("{out}\n----- stderr -----\n{err}"),
    )?;
    let parsed = parse_result(&out);
    let old = parsed
        .as_ref()
        .map(|(_, _, a)| a.clone())
        .unwrap_or(master.clone());
    if !status.is_some_and(|s| s.success()) || parsed.is_none() {
        log(&format!(
            "{}: SIG{sig} round {round}: no acknowledged send ({})",
            c.side.name(),
            err.lines().last().unwrap_or("")
        ));
    }
    // Recovery: the old master back, then whole again.
    let i = c
        .index_of(&old)
        .ok_or_else(|| format!("old master {old} is not a broker of this set"))?;
    let back_at = std::time::Instant::now();
    if sig == "KILL" {
        c.restart(i);
    } else {
        c.resume(i);
    }
    let whole = c.wait_whole(Duration::from_secs(90));
    let f = Fault {
        ms: parsed.as_ref().map(|(ms, _, _)| *ms),
        errors: parsed.as_ref().map_or(0, |(_, e, _)| *e),
        whole_ms: whole
            .as_ref()
            .ok()
            .map(|_| back_at.elapsed().as_secs_f64() * 1e3),
    };
    log(&format!(
        "{}: SIG{sig} round {round}: first SEND_OK after {} ({} failed sends), whole {} after the restart/SIGCONT",
        c.side.name(),
        f.ms.map_or("none".into(), |m| format!("{m:.0} ms")),
        f.errors,
        f.whole_ms.map_or("never".into(), |m| format!("{m:.0} ms")),
    ));
    Ok(f)
}

/// The whole of one side: cluster, topic, send phase, fault rounds
/// (SIGKILL and SIGSTOP alternating).
pub(crate) fn run_side(
    o: &Opts,
    drv: &Drivers,
    work: &Path,
    side: Side,
    results: &mut Results,
) -> Res<SideResult> {
    mkdir(&work.join(side.name()))?;
    let mut c = Cluster::start(side, &o.ver, work)?;
    drv.update_topic(&c.ns, compat_tests::controller::CLUSTER, TOPIC)?;
    send_phase(o, drv, work, &mut c, results)?;
    let mut r = SideResult::default();
    for round in 1..=o.rounds {
        r.kills.push(fault(o, drv, work, &mut c, "KILL", round)?);
        r.stops.push(fault(o, drv, work, &mut c, "STOP", round)?);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line() {
        let out = "x\nRESULT failover ms=1234 errors=7 old_master=127.0.0.1:1000\n";
        assert_eq!(
            parse_result(out),
            Some((1234.0, 7, "127.0.0.1:1000".to_owned()))
        );
        assert_eq!(
            parse_result("RESULT failover ms=x errors=1 old_master=a"),
            None
        );
        assert_eq!(parse_result(""), None);
    }
}
