//! A real Prometheus server (Debian's `prometheus`) on loopback, scraping
//! the exporters a test names every second, and its HTTP API
//! (`/api/v1/query`, `/api/v1/series`, `/api/v1/metadata`) read with `curl`.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::{free_port, run_with_timeout, wait_until, Proc};

pub struct Prometheus {
    /// `127.0.0.1:<port>` of its web API.
    pub addr: String,
    proc: Proc,
    _dir: tempfile::TempDir,
}

/// Whether the `prometheus` binary is on the PATH.
pub fn prometheus_available() -> bool {
    Command::new("prometheus")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Prometheus {
    /// Starts it with one scrape job per `(job, host:port)` (interval 1 s)
    /// and waits until it answers `/-/ready`.
    pub fn start(targets: &[(&str, &str)]) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("rmq-compat-prometheus-")
            .tempdir()
            .expect("temp dir");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n",
        );
        for (job, target) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            ));
        }
        let conf = dir.path().join("prometheus.yml");
        std::fs::write(&conf, config).expect("write prometheus.yml");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn");
        let mut proc = Proc::spawn("prometheus", cmd, dir.path().join("prometheus.log"));
        wait_until("prometheus ready", Duration::from_secs(30), || {
            assert!(proc.is_running(), "prometheus exited:\n{}", proc.log_text());
            curl(&addr, "/-/ready", &[]).is_some()
        });
        Prometheus {
            addr,
            proc,
            _dir: dir,
        }
    }

    pub fn logs(&self) -> String {
        format!("----- prometheus log -----\n{}", self.proc.log_text())
    }

    /// `GET <path>` with the query parameters; the API's `data`, or `None`
    /// when the request or the answer's status failed.
    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> Option<Value> {
        let body = curl(&self.addr, path, params)?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (v["status"] == "success").then(|| v["data"].clone())
    }

    /// An instant query's vector: (labels, value) per series.
    pub fn query(&self, promql: &str) -> Vec<(serde_json::Map<String, Value>, f64)> {
        let Some(data) = self.api("/api/v1/query", &[("query", promql)]) else {
            return Vec::new();
        };
        data["result"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|s| {
                        let labels = s["metric"].as_object()?.clone();
                        let v = s["value"][1].as_str()?.parse().ok()?;
                        Some((labels, v))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every series of a job (`/api/v1/series`), as label maps.
    pub fn series(&self, job: &str) -> Vec<serde_json::Map<String, Value>> {
        let matcher = format!("{{job=\"{job}\"}}");
        self.api("/api/v1/series", &[("match[]", &matcher)])
            .and_then(|d| d.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| s.as_object().cloned())
            .collect()
    }

    /// `/api/v1/targets/metadata` for one job: metric family -> (type, unit).
    pub fn metadata(&self, job: &str) -> std::collections::BTreeMap<String, (String, String)> {
        let matcher = format!("{{job=\"{job}\"}}");
        self.api("/api/v1/targets/metadata", &[("match_target", &matcher)])
            .and_then(|d| d.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                Some((
                    m["metric"].as_str()?.to_owned(),
                    (
                        m["type"].as_str().unwrap_or_default().to_owned(),
                        m["unit"].as_str().unwrap_or_default().to_owned(),
                    ),
                ))
            })
            .collect()
    }
}

/// `curl -fsG http://<addr><path> --data-urlencode k=v ...`: the body, or
/// `None` on any failure.
fn curl(addr: &str, path: &str, params: &[(&str, &str)]) -> Option<String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-fsS", "-G", "--max-time", "5"])
        .arg(format!("http://{addr}{path}"));
    for (k, v) in params {
        cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
    }
    let out = run_with_timeout(cmd, Duration::from_secs(10));
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `GET http://<addr>/metrics`: an exporter's raw exposition.
pub fn scrape(addr: &str) -> Option<String> {
    curl(addr, "/metrics", &[])
}
