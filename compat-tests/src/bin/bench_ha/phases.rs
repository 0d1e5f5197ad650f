//! The measured phases per side (SYNC_MASTER, ASYNC lag, catch-up) and the disk speed probe.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compat_tests::bench::{clk_tck, cpu_ticks, OnExit, Res, Results};

use crate::ha_status::{lag_series, mean, no_slave_pct, quantile, HaClient, Poller};
use crate::nodes::Bench;
use crate::{log, FILL_BODY, GIB, TOPIC};

/// Sequential write speed of the filesystem holding `dir`: `bytes` in
/// 4 MiB `write`s, then `fsync` (clock stops after it); bytes/s.
pub(crate) fn disk_write_speed(dir: &Path, bytes: u64) -> Res<f64> {
    use std::io::Write;
    let path = dir.join("disk-speed.tmp");
    let _rm = {
        let p = path.clone();
        OnExit::new(move || {
            let _ = std::fs::remove_file(&p);
        })
    };
    let mut f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let chunk = vec![0x5au8; 4 << 20];
    let t0 = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])
            .map_err(|e| format!("write {}: {e}", path.display()))?;
        left -= n as u64;
    }
    f.sync_all()
        .map_err(|e| format!("fsync {}: {e}", path.display()))?;
    Ok(bytes as f64 / t0.elapsed().as_secs_f64())
}

impl Bench {
    // ------------------------------------------------------------ phases

    /// SYNC_MASTER: TPS, latency, master and slave CPU per thread count.
    pub(crate) fn sync_phase(&mut self, kind: &str) -> Res<()> {
        log(&format!("{kind}: SYNC_MASTER pair"));
        let (ns, master, slave) = self.start_pair(
            kind,
            "sync",
            "brokerRole=SYNC_MASTER\ninSyncReplicas=2\n",
            64 << 20,
            true,
        )?;
        let slave = slave.ok_or("no slave")?;
        Self::wait_slave(&master.addr, true, Duration::from_secs(120))?;
        let spid = slave.kid.pid();
        // Whether the slave stays connected (10 Hz, light on both sides).
        let poller = Poller::start(&master.addr, Duration::from_millis(100))?;
        let sync_from = Instant::now();
        // Slave CPU at each phase boundary: the end of the warm-up, then
        // every RESULT line.
        let marks: Arc<Mutex<Vec<(String, u64)>>> = Arc::new(Mutex::new(Vec::new()));
        let m = marks.clone();
        let warm = self.o.warmup > 0;
        if !warm {
            m.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(("start".into(), cpu_ticks(spid)));
        }
        let out = self.send(
            kind,
            "sync",
            &ns.addr,
            master.kid.pid(),
            self.o.warmup,
            self.o.duration,
            &self.o.threads.clone(),
            move |line| {
                if line.starts_with("[bench] warm-up") || line.starts_with("RESULT send") {
                    m.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((line.to_owned(), cpu_ticks(spid)));
                }
            },
        )?;
        let samples = poller.finish();
        let pct = no_slave_pct(&samples, sync_from, Instant::now());
        if pct >= 0.0 {
            self.results
                .put(kind, "sync_no_slave_pct", &format!("{pct:.1}"));
        }
        self.results
            .record(kind, &out.replace("RESULT send", "RESULT sync"));
        let marks = marks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for w in marks.windows(2) {
            let line = &w[1].0;
            let field = |k: &str| {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(k))
                    .and_then(|v| v.parse::<f64>().ok())
            };
            if let (Some(t), Some(sent)) = (field("threads="), field("sent=")) {
                let us = (w[1].1 - w[0].1) as f64 / clk_tck() * 1e6;
                if sent > 0.0 {
                    self.results.put(
                        kind,
                        &format!("sync{t}_slave_cpu_us_per_msg"),
                        &format!("{:.2}", us / sent),
                    );
                }
            }
        }
        slave.kid.stop();
        master.kid.stop();
        ns.kid.stop();
        Ok(())
    }

    /// ASYNC_MASTER: bytes and ms behind during the measured phase.
    pub(crate) fn lag_phase(&mut self, kind: &str) -> Res<()> {
        let t = *self.o.thread_counts.iter().max().unwrap_or(&64);
        log(&format!("{kind}: ASYNC_MASTER pair, lag at {t} threads"));
        let (ns, master, slave) =
            self.start_pair(kind, "async", "brokerRole=ASYNC_MASTER\n", 64 << 20, true)?;
        let slave = slave.ok_or("no slave")?;
        Self::wait_slave(&master.addr, false, Duration::from_secs(120))?;
        let poller = Poller::start(&master.addr, self.o.poll)?;
        let marks: Arc<Mutex<Vec<(String, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
        let m = marks.clone();
        let started = Instant::now();
        let out = self.send(
            kind,
            "async",
            &ns.addr,
            master.kid.pid(),
            self.o.warmup,
            self.o.lag_duration,
            &t.to_string(),
            move |line| {
                if line.starts_with("[bench] warm-up") || line.starts_with("RESULT send") {
                    m.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((line.to_owned(), Instant::now()));
                }
            },
        )?;
        let samples = poller.finish();
        self.results
            .record(kind, &out.replace("RESULT send", "RESULT async"));
        let marks = marks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let from = marks
            .iter()
            .find(|(l, _)| l.starts_with("[bench] warm-up"))
            .map_or(started, |(_, at)| *at);
        let to = marks
            .iter()
            .find(|(l, _)| l.starts_with("RESULT send"))
            .map_or(Instant::now(), |(_, at)| *at);
        let (bytes, ms) = lag_series(&samples, from, to);
        log(&format!(
            "{kind}: {} samples of 907 in the measured phase ({} in all)",
            bytes.len(),
            samples.len()
        ));
        let put = |r: &mut Results, k: &str, v: f64, prec: usize| {
            if v >= 0.0 {
                r.put(kind, k, &format!("{v:.prec$}"));
            }
        };
        put(&mut self.results, "lag_samples", bytes.len() as f64, 0);
        put(&mut self.results, "lag_bytes_mean", mean(&bytes), 0);
        put(&mut self.results, "lag_bytes_p50", quantile(&bytes, 0.5), 0);
        put(&mut self.results, "lag_ms_p50", quantile(&ms, 0.5), 2);
        put(
            &mut self.results,
            "lag_no_slave_pct",
            no_slave_pct(&samples, from, to),
            1,
        );
        put(
            &mut self.results,
            "lag_bytes_p99",
            quantile(&bytes, 0.99),
            0,
        );
        put(&mut self.results, "lag_bytes_max", quantile(&bytes, 1.0), 0);
        put(&mut self.results, "lag_ms_mean", mean(&ms), 2);
        put(&mut self.results, "lag_ms_p99", quantile(&ms, 0.99), 2);
        put(&mut self.results, "lag_ms_max", quantile(&ms, 1.0), 2);
        let zero = bytes.iter().filter(|b| **b == 0.0).count();
        if !bytes.is_empty() {
            put(
                &mut self.results,
                "lag_zero_pct",
                100.0 * zero as f64 / bytes.len() as f64,
                1,
            );
        }
        slave.kid.stop();
        master.kid.stop();
        ns.kid.stop();
        Ok(())
    }

    /// Catch-up of an empty slave from a filled master.
    pub(crate) fn catchup_phase(&mut self, kind: &str) -> Res<()> {
        let target = (self.o.catchup_gib * GIB) as u64;
        // One file holds it all: a new slave gets the master's last file.
        let file_size = ((target + target / 4 + (64 << 20)) >> 20) << 20;
        log(&format!(
            "{kind}: catch-up of {:.2} GiB (commit-log files of {} MiB)",
            self.o.catchup_gib,
            file_size >> 20
        ));
        let (ns, master, _) = self.start_pair(
            kind,
            "catchup",
            "brokerRole=ASYNC_MASTER\n",
            file_size,
            false,
        )?;
        let mut ha = HaClient::new(&master.addr)?;
        let d = self.work.join(kind);
        let fill_started = Instant::now();
        let mut max = 0;
        for round in 0..4 {
            let left = target.saturating_sub(max as u64);
            if left == 0 {
                break;
            }
            let count = left.div_ceil(FILL_BODY + 64).max(32);
            let out = self.drv.driver(
                &d.join("client"),
                "compat.BenchProducer",
                &[
                    "fill".into(),
                    ns.addr.clone(),
                    TOPIC.into(),
                    count.to_string(),
                    FILL_BODY.to_string(),
                ],
                &d.join(format!("fill-{round}.out")),
                Duration::from_secs(1800),
            )?;
            if !out.0 {
                return Err(format!("{kind}: fill failed"));
            }
            max = ha
                .status()
                .ok_or_else(|| format!("{kind}: no 907 answer from the master"))?
                .master_max;
        }
        log(&format!(
            "{kind}: master filled to {max} bytes in {:.1} s",
            fill_started.elapsed().as_secs_f64()
        ));
        let disk = disk_write_speed(&d, target.max(256 << 20))?;
        self.results
            .put(kind, "disk_mbps", &format!("{:.1}", disk / 1e6));
        log(&format!(
            "{kind}: disk sequential write {:.1} MB/s",
            disk / 1e6
        ));
        // Settle: the fill's dirty pages written back before the copy.
        std::thread::sleep(Duration::from_secs(3));
        let spawned = Instant::now();
        let slave =
            self.start_slave(kind, &d.join("catchup").join("slave"), &ns.addr, file_size)?;
        let spid = slave.kid.pid();
        let limit = Duration::from_secs(120) + Duration::from_secs_f64(target as f64 / 5e6);
        // (when, slave CPU, acknowledged offset) at the first 907 row.
        let mut first = None;
        let done = loop {
            if spawned.elapsed() > limit {
                return Err(format!("{kind}: slave not caught up after {limit:?}"));
            }
            if !slave.kid.is_running() {
                return Err(format!("{kind}: slave exited during catch-up"));
            }
            if let Some(st) = ha.status() {
                if let Some((ack, _)) = st.slave {
                    if first.is_none() {
                        first = Some((Instant::now(), cpu_ticks(spid), ack));
                    }
                    if ack >= st.master_max {
                        break (Instant::now(), cpu_ticks(spid), st.master_max);
                    }
                }
            }
            std::thread::sleep(self.o.poll);
        };
        let (t_first, ticks_first, ack_first) = first.unwrap_or((spawned, 0, 0));
        let (t_done, ticks_done, end) = done;
        // Copied: from the start of the master's last (here: only) file.
        let bytes = (end - end % file_size as i64).max(0);
        let bytes = (end - bytes) as f64;
        // The rate over the polled window: what was acknowledged in it.
        let secs = (t_done - t_first).as_secs_f64().max(1e-3);
        let rate = (end - ack_first).max(0) as f64 / secs;
        let cpu_s = (ticks_done.saturating_sub(ticks_first)) as f64 / clk_tck();
        let r = &mut self.results;
        r.put(kind, "catchup_mib", &format!("{:.1}", bytes / 1048576.0));
        r.put(kind, "catchup_ms", &format!("{:.0}", secs * 1e3));
        r.put(
            kind,
            "catchup_wall_ms",
            &format!("{:.0}", (t_done - spawned).as_secs_f64() * 1e3),
        );
        r.put(kind, "catchup_mbps", &format!("{:.1}", rate / 1e6));
        r.put(
            kind,
            "catchup_pct_disk",
            &format!("{:.1}", 100.0 * rate / disk),
        );
        r.put(
            kind,
            "catchup_slave_cpu_s_per_gib",
            &format!("{:.2}", cpu_s / ((end - ack_first) as f64 / GIB).max(1e-9)),
        );
        log(&format!(
            "{kind}: slave copied {:.1} MiB in {:.2} s ({:.1} MB/s, {:.0} % of the disk), \
             {:.2} s from its spawn",
            bytes / 1048576.0,
            secs,
            rate / 1e6,
            100.0 * rate / disk,
            (t_done - spawned).as_secs_f64()
        ));
        drop(ha);
        slave.kid.stop();
        master.kid.stop();
        ns.kid.stop();
        Ok(())
    }

    pub(crate) fn run_side(&mut self, kind: &str) -> Res<()> {
        self.sync_phase(kind)?;
        self.lag_phase(kind)?;
        if self.o.catchup_gib > 0.0 {
            self.catchup_phase(kind)?;
        }
        // Stores of a finished side are not needed any more (GiBs).
        let _ = std::fs::remove_dir_all(self.work.join(kind).join("catchup"));
        Ok(())
    }
}
