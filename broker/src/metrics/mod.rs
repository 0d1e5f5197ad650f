//! RocketMQ 5's broker metrics: the names, types, units and labels of Java
//! 5.3.3's OpenTelemetry metrics (`BrokerMetricsManager`,
//! `RemotingMetricsManager`, `DefaultStoreMetricsManager`), served in the
//! Prometheus text format (`metricsExporterType=PROM`) or written to the log
//! (`LOG`). docs/OPERATIONS.md ("Observability") lists what is exported.
//!
//! The send and pull paths add to atomics in `crate::stats`; the request
//! latencies come from a router [`RpcInterceptor`]; everything else is read
//! when scraped ([`collect::Sources`]). The exposition itself is
//! `prometheus-client`'s.

mod codes;
mod collect;
mod http;
mod replication;
mod rpc;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub(crate) use collect::Sources;
pub(crate) use replication::Replicas;
pub(crate) use rpc::{RpcInterceptor, RpcStats};

use crate::config::BrokerConfig;

/// Java `MetricsExporterType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExporterType {
    Disable,
    OtlpGrpc,
    Prom,
    Log,
}

impl ExporterType {
    /// Java accepts the name or the number.
    pub fn parse(raw: &str) -> Option<ExporterType> {
        match raw.trim().to_ascii_uppercase().as_str() {
            "DISABLE" | "0" | "" => Some(ExporterType::Disable),
            "OTLP_GRPC" | "1" => Some(ExporterType::OtlpGrpc),
            "PROM" | "2" => Some(ExporterType::Prom),
            "LOG" | "3" => Some(ExporterType::Log),
            _ => None,
        }
    }

    /// What the broker does with `metricsExporterType`: `None` when nothing
    /// is collected (unknown values are logged and read as DISABLE, as Java
    /// falls back to DISABLE).
    pub fn of_config(config: &BrokerConfig) -> Option<ExporterType> {
        match ExporterType::parse(&config.metrics_exporter_type) {
            Some(ExporterType::Disable) => None,
            Some(ExporterType::OtlpGrpc) => {
                warn!(
                    target = %config.metrics_grpc_exporter_target,
                    "metricsExporterType=OTLP_GRPC is not supported; no metrics are exported (use PROM or LOG)"
                );
                None
            }
            Some(t) => Some(t),
            None => {
                warn!(value = %config.metrics_exporter_type, "unknown metricsExporterType; metrics stay off");
                None
            }
        }
    }
}

/// The labels every series carries, in Java's order: the scope, then
/// `metricsLabel` pairs (`k:v,k:v`), `aggregation=delta` with
/// `metricsInDelta`, `node_type`, `cluster`, `node_id`.
pub fn common_labels(config: &BrokerConfig) -> Vec<(String, String)> {
    let mut l = vec![("otel_scope_name".to_owned(), "broker-meter".to_owned())];
    for item in config.metrics_label.split(',').filter(|s| !s.is_empty()) {
        match item.split(':').collect::<Vec<_>>().as_slice() {
            [k, v] => l.push(((*k).to_owned(), (*v).to_owned())),
            _ => warn!(metrics_label = %config.metrics_label, "metricsLabel is not valid"),
        }
    }
    if config.metrics_in_delta {
        l.push(("aggregation".into(), "delta".into()));
    }
    l.push(("node_type".into(), "broker".into()));
    l.push(("cluster".into(), config.broker_cluster_name.clone()));
    l.push(("node_id".into(), config.broker_name.clone()));
    l
}

pub(crate) fn registry(sources: Sources) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(collect::ScopeInfo));
    r.register_collector(Box::new(sources));
    r
}

/// One exposition of everything, in the Prometheus text format.
pub(crate) fn render(registry: &Registry) -> String {
    let mut out = String::with_capacity(16 * 1024);
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, registry) {
        warn!(error = %e, "metrics exposition failed");
    }
    out
}

/// Starts the exporter `kind` on `tasks`: the HTTP endpoint for PROM, a
/// periodic log line for LOG. A port that cannot be bound is logged and the
/// broker goes on, as Java's does.
pub(crate) async fn start(
    kind: ExporterType,
    config: &BrokerConfig,
    registry: Registry,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) {
    let registry = Arc::new(registry);
    match kind {
        ExporterType::Prom => {
            let host = if config.metrics_prom_exporter_host.is_empty() {
                config.broker_ip1.clone()
            } else {
                config.metrics_prom_exporter_host.clone()
            };
            let port = config.metrics_prom_exporter_port;
            match tokio::net::TcpListener::bind((host.as_str(), port)).await {
                Ok(listener) => {
                    info!(%host, port, "metrics exporter listening");
                    tasks.spawn(http::serve(listener, registry, shutdown));
                }
                Err(e) => warn!(%host, port, error = %e, "cannot bind the metrics exporter port"),
            }
        }
        ExporterType::Log => {
            let every =
                Duration::from_millis(config.metric_logging_exporter_interval_in_mills.max(1000));
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => break,
                        _ = tick.tick() => info!(target: "broker_metrics", metrics = %render(&registry), "metrics"),
                    }
                }
            });
        }
        ExporterType::Disable | ExporterType::OtlpGrpc => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporter_type_takes_names_and_numbers() {
        assert_eq!(ExporterType::parse("PROM"), Some(ExporterType::Prom));
        assert_eq!(ExporterType::parse("prom"), Some(ExporterType::Prom));
        assert_eq!(ExporterType::parse("2"), Some(ExporterType::Prom));
        assert_eq!(ExporterType::parse("3"), Some(ExporterType::Log));
        assert_eq!(ExporterType::parse(""), Some(ExporterType::Disable));
        assert_eq!(ExporterType::parse("nope"), None);
    }

    #[test]
    fn common_labels_in_java_order() {
        let mut c = BrokerConfig::default();
        c.broker_cluster_name = "C".into();
        c.broker_name = "b".into();
        c.metrics_label = "env:test,bad,region:x".into();
        c.metrics_in_delta = true;
        let keys: Vec<String> = common_labels(&c).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            vec![
                "otel_scope_name",
                "env",
                "region",
                "aggregation",
                "node_type",
                "cluster",
                "node_id"
            ]
        );
    }
}
