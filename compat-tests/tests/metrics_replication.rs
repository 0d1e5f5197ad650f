//! The replication figures on `/metrics` (docs/OPERATIONS.md,
//! "Observability") move with a master/slave pair of ours: both brokers
//! export with `metricsExporterType=PROM`, scraped directly (no
//! Prometheus). The master is `SYNC_MASTER` (`compat_tests::ha_pair`),
//! `slaveTimeout=1000`; the official Java 5.3.3 client sends from one
//! thread throughout.
//!
//! - At start: the master says `rocketmq_replication_role{mode="ha",
//!   role="master"}` with one slave connection; the slave says
//!   `role="slave"` and `rocketmq_ha_master_connected` 1.
//! - The slave SIGSTOPped: sends answer FLUSH_SLAVE_TIMEOUT and the
//!   master's `rocketmq_ha_slave_ack_lag_bytes` for that slave is > 0.
//! - SIGCONT, the sends stopped: the lag is back to 0 and the slave's
//!   `rocketmq_ha_commitlog_max_offset_bytes` equals the master's.

use std::time::{Duration, Instant};

use compat_tests::ha_pair::{Pair, VERSION};
use compat_tests::prometheus::scrape;
use compat_tests::{free_port, serial, tail_lines, Proc};

fn exporter_keys(port: u16) -> String {
    format!(
        "metricsExporterType=PROM\nmetricsPromExporterHost=127.0.0.1\nmetricsPromExporterPort={port}\n"
    )
}

/// The value of the first sample named `name` whose labels contain every
/// `key="value"` of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = match series.split_once('{') {
            Some((n, rest)) => (n, rest),
            None => (series, ""),
        };
        (n == name
            && labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
        .then(|| value.parse().ok())
        .flatten()
    })
}

/// Polls `what` on the exporter at `target` until `ok` (30 s).
fn wait_metric(target: &str, what: &str, ok: impl Fn(&str) -> bool, logs: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(target).unwrap_or_default();
        if ok(&text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never held on {target}:\n{text}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ha_figures_follow_a_paused_slave() {
    let _serial = serial();
    let started = Instant::now();
    let (mp, sp) = (free_port(), free_port());
    let master_extra = format!("slaveTimeout=1000\n{}", exporter_keys(mp));
    let pair = Pair::start_with(VERSION, None, None, &master_extra, &exporter_keys(sp));
    let (m, s) = (format!("127.0.0.1:{mp}"), format!("127.0.0.1:{sp}"));
    let slave_addr = pair.slave.addr.clone();
    let logs = || pair.logs();

    wait_metric(
        &m,
        "master role, one slave connected",
        |t| {
            sample(
                t,
                "rocketmq_replication_role",
                &[("mode", "ha"), ("role", "master")],
            ) == Some(1.0)
                && sample(t, "rocketmq_ha_slave_connections", &[]) == Some(1.0)
        },
        &logs,
    );
    wait_metric(
        &s,
        "slave role, connected to its master",
        |t| {
            sample(
                t,
                "rocketmq_replication_role",
                &[("mode", "ha"), ("role", "slave")],
            ) == Some(1.0)
                && sample(t, "rocketmq_ha_master_connected", &[]) == Some(1.0)
        },
        &logs,
    );

    pair.create_topic("HaMx");
    let mut producer = pair.spawn_producer("HaMx", "60");
    let wait_for = |p: &mut Proc, what: &str, ok: &dyn Fn(&Proc) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ok(p) {
            assert!(
                p.is_running() && Instant::now() < deadline,
                "{what}: producer:\n{}\n{}",
                tail_lines(&p.log_text(), 30),
                pair.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(&mut producer, "20 acknowledgements", &|p| {
        p.count_lines("ACK ") >= 20
    });
    let any_lag = |t: &str| sample(t, "rocketmq_ha_slave_ack_lag_bytes", &[]);

    pair.slave.signal(libc::SIGSTOP);
    wait_for(&mut producer, "FLUSH_SLAVE_TIMEOUT while paused", &|p| {
        p.count_lines("NOTOK ") >= 1
    });
    wait_metric(
        &m,
        "ack lag > 0 while the slave is stopped",
        |t| any_lag(t).is_some_and(|v| v > 0.0),
        &logs,
    );
    let paused_lag = any_lag(&scrape(&m).unwrap_or_default()).unwrap_or(0.0);
    pair.slave.signal(libc::SIGCONT);
    let acks = producer.count_lines("ACK ");
    wait_for(&mut producer, "SEND_OK again after SIGCONT", &|p| {
        p.count_lines("ACK ") >= acks + 10
    });
    producer.stop(Duration::from_secs(10));

    wait_metric(
        &m,
        "ack lag back to 0 after the slave caught up",
        |t| any_lag(t) == Some(0.0),
        &logs,
    );
    let master_end = sample(
        &scrape(&m).unwrap_or_default(),
        "rocketmq_ha_commitlog_max_offset_bytes",
        &[("role", "master")],
    );
    wait_metric(
        &s,
        "the slave's commit log ends where the master's does",
        |t| {
            master_end.is_some()
                && sample(
                    t,
                    "rocketmq_ha_commitlog_max_offset_bytes",
                    &[("role", "slave")],
                ) == master_end
        },
        &logs,
    );
    // The per-slave series names the slave's HA connection (its host and
    // an ephemeral port).
    let text = scrape(&m).unwrap_or_default();
    let host = slave_addr.split(':').next().unwrap_or_default();
    assert!(
        text.lines()
            .any(|l| l.starts_with("rocketmq_ha_slave_ack_lag_bytes{")
                && l.contains(&format!("slave_addr=\"{host}:"))),
        "no lag series for the slave at {host}:\n{text}"
    );
    eprintln!(
        "metrics_replication: lag while paused {paused_lag} bytes; took {:?}",
        started.elapsed()
    );
}
