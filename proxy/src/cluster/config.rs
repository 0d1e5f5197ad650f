//! `rmq-proxy.json`: the keys of Java's `ProxyConfig` that cluster mode
//! reads, with Java's defaults. Like Java, unknown keys are ignored (we log
//! them); a key with a value of the wrong type is an error that names it.

use std::time::Duration;

use serde_json::{Map, Value};
use tracing::debug;

use super::error::ClusterError;
use crate::service::ServiceConfig;

/// Java `ProxyConfig` keys honoured by `mqproxy`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// `rocketMQClusterName`: the brokers' cluster (metadata reads and the
    /// transaction heartbeats go to its brokers).
    pub cluster_name: String,
    /// `proxyName`, reported in logs.
    pub proxy_name: String,
    /// `namesrvAddr`: `host:port` list separated by `;`.
    pub namesrv_addr: Vec<String>,
    /// `proxyMode`: only `cluster` here.
    pub proxy_mode: String,
    /// `grpcServerPort` (8081).
    pub grpc_port: u16,
    /// `remotingListenPort` (8080).
    pub remoting_port: u16,
    /// `topicRouteServiceCacheRefreshSeconds` (20).
    pub route_refresh: Duration,
    /// `topicRouteServiceCacheExpiredSeconds` (300).
    pub route_expire: Duration,
    /// `transactionHeartbeatPeriodSecond` (20): how often the proxy tells
    /// the brokers which producer groups it answers transaction checks for.
    pub transaction_heartbeat: Duration,
    /// `grpcClientIdleTimeMills`, `channelExpiredTimeout`... : everything
    /// else, for the gRPC service's own settings.
    pub raw: Map<String, Value>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            cluster_name: "DefaultCluster".into(),
            proxy_name: "DEFAULT_PROXY".into(),
            namesrv_addr: Vec::new(),
            proxy_mode: "cluster".into(),
            grpc_port: 8081,
            remoting_port: 8080,
            route_refresh: Duration::from_secs(20),
            route_expire: Duration::from_secs(300),
            transaction_heartbeat: Duration::from_secs(20),
            raw: Map::new(),
        }
    }
}

pub fn split_namesrv(s: &str) -> Vec<String> {
    s.split(';')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

fn string(v: &Value, key: &str) -> Result<String, ClusterError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(ClusterError::Config(format!("{key}: expected a string"))),
    }
}

/// Java's JSON binding accepts numbers as strings too.
fn integer(v: &Value, key: &str) -> Result<i64, ClusterError> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| ClusterError::Config(format!("{key}: expected an integer, got {v}")))
}

fn port(v: &Value, key: &str) -> Result<u16, ClusterError> {
    let n = integer(v, key)?;
    u16::try_from(n).map_err(|_| ClusterError::Config(format!("{key}: {n} is not a port")))
}

fn seconds(v: &Value, key: &str) -> Result<Duration, ClusterError> {
    let n = integer(v, key)?;
    u64::try_from(n)
        .ok()
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| ClusterError::Config(format!("{key}: {n} is not a positive number")))
}

impl ClusterConfig {
    /// Reads `rmq-proxy.json` text over the defaults.
    pub fn from_json(text: &str) -> Result<ClusterConfig, ClusterError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ClusterError::Config(format!("rmq-proxy.json: {e}")))?;
        let Value::Object(map) = value else {
            return Err(ClusterError::Config(
                "rmq-proxy.json: expected a JSON object".into(),
            ));
        };
        let mut c = ClusterConfig::default();
        for (key, v) in &map {
            if v.is_null() {
                continue;
            }
            match key.as_str() {
                "rocketMQClusterName" => c.cluster_name = string(v, key)?,
                "proxyName" => c.proxy_name = string(v, key)?,
                "namesrvAddr" => c.namesrv_addr = split_namesrv(&string(v, key)?),
                "proxyMode" => c.proxy_mode = string(v, key)?,
                "grpcServerPort" => c.grpc_port = port(v, key)?,
                "remotingListenPort" => c.remoting_port = port(v, key)?,
                "topicRouteServiceCacheRefreshSeconds" => c.route_refresh = seconds(v, key)?,
                "topicRouteServiceCacheExpiredSeconds" => c.route_expire = seconds(v, key)?,
                "transactionHeartbeatPeriodSecond" => c.transaction_heartbeat = seconds(v, key)?,
                _ => debug!(%key, "rmq-proxy.json key not read by the cluster backend"),
            }
        }
        c.raw = map;
        Ok(c)
    }

    /// The gRPC service's settings from the same file (Java `ProxyConfig`
    /// keys; absent keys keep Java's defaults).
    pub fn service_config(&self) -> Result<ServiceConfig, ClusterError> {
        let mut c = ServiceConfig::default();
        let raw = &self.raw;
        let int = |key: &str| -> Result<Option<i64>, ClusterError> {
            match raw.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => integer(v, key).map(Some),
            }
        };
        let size = |key: &str| -> Result<Option<usize>, ClusterError> {
            int(key)?
                .map(|n| {
                    usize::try_from(n)
                        .map_err(|_| ClusterError::Config(format!("{key}: {n} is negative")))
                })
                .transpose()
        };
        if let Some(v) = size("maxMessageSize")? {
            c.max_message_size = v;
        }
        if let Some(v) = size("maxUserPropertySize")? {
            c.max_user_property_size = v;
        }
        if let Some(v) = size("userPropertyMaxNum")? {
            c.user_property_max_num = v;
        }
        if let Some(v) = size("maxMessageGroupSize")? {
            c.max_message_group_size = v;
        }
        for (key, slot) in [
            (
                "minInvisibleTimeMillsForRecv",
                &mut c.min_invisible_ms_for_recv,
            ),
            ("maxInvisibleTimeMills", &mut c.max_invisible_ms),
            ("defaultInvisibleTimeMills", &mut c.default_invisible_ms),
            ("maxDelayTimeMills", &mut c.max_delay_ms),
            (
                "maxTransactionRecoverySecond",
                &mut c.max_transaction_recovery_secs,
            ),
            (
                "grpcClientProducerBackoffInitialMillis",
                &mut c.producer_backoff_initial_ms,
            ),
            (
                "grpcClientProducerBackoffMaxMillis",
                &mut c.producer_backoff_max_ms,
            ),
            (
                "grpcClientConsumerMinLongPollingTimeoutMillis",
                &mut c.consumer_min_long_polling_ms,
            ),
            (
                "grpcClientConsumerMaxLongPollingTimeoutMillis",
                &mut c.consumer_max_long_polling_ms,
            ),
            (
                "longPollingReserveTimeInMillis",
                &mut c.long_polling_reserve_ms,
            ),
        ] {
            if let Some(v) = int(key)? {
                *slot = v;
            }
        }
        if let Some(v) = int("grpcClientProducerMaxAttempts")? {
            c.producer_max_attempts = v as i32;
        }
        if let Some(v) = int("grpcClientConsumerLongPollingBatchSize")? {
            c.consumer_long_polling_batch_size = v as i32;
        }
        if let Some(v) = int("grpcClientProducerBackoffMultiplier")? {
            c.producer_backoff_multiplier = v as f32;
        }
        match raw.get("enableTopicMessageTypeCheck") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => c.enable_topic_message_type_check = *b,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => {
                c.enable_topic_message_type_check = true
            }
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => {
                c.enable_topic_message_type_check = false
            }
            Some(v) => {
                return Err(ClusterError::Config(format!(
                    "enableTopicMessageTypeCheck: expected true or false, got {v}"
                )))
            }
        }
        // TLS on the gRPC port: Java's ProxyConfig and TlsSystemConfig keys.
        for (key, v) in raw {
            let text = match v {
                Value::Null => continue,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            c.tls
                .apply(key, &text)
                .map_err(|e| ClusterError::Config(e.to_string()))?;
        }
        Ok(c)
    }

    /// Java `ProxyMode.isClusterMode`: case-insensitive.
    pub fn is_cluster_mode(&self) -> bool {
        self.proxy_mode.eq_ignore_ascii_case("cluster")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_javas() {
        let c = ClusterConfig::from_json(r#"{"rocketMQClusterName": "DefaultCluster"}"#)
            .expect("the shipped rmq-proxy.json");
        assert_eq!(c.grpc_port, 8081);
        assert_eq!(c.remoting_port, 8080);
        assert_eq!(c.route_refresh, Duration::from_secs(20));
        assert!(c.is_cluster_mode());
    }

    #[test]
    fn keys_are_read_and_bad_values_named() {
        let c = ClusterConfig::from_json(
            r#"{"namesrvAddr": "127.0.0.1:9876; 127.0.0.1:9877", "grpcServerPort": "18081",
                "proxyMode": "CLUSTER", "remotingListenPort": 18080, "unknownKey": [1]}"#,
        )
        .expect("valid");
        assert_eq!(c.namesrv_addr, ["127.0.0.1:9876", "127.0.0.1:9877"]);
        assert_eq!((c.grpc_port, c.remoting_port), (18081, 18080));
        assert!(c.is_cluster_mode());
        let e = ClusterConfig::from_json(r#"{"grpcServerPort": 70000}"#).expect_err("not a port");
        assert!(e.to_string().contains("grpcServerPort"), "{e}");
        assert!(ClusterConfig::from_json("[1]").is_err());
        assert!(ClusterConfig::from_json("{").is_err());
    }

    #[test]
    fn service_keys_reach_the_service() {
        let c = ClusterConfig::from_json(
            r#"{"maxMessageSize": 1024, "minInvisibleTimeMillsForRecv": "5000",
                "enableTopicMessageTypeCheck": false}"#,
        )
        .expect("valid");
        let s = c.service_config().expect("valid service keys");
        assert_eq!(s.max_message_size, 1024);
        assert_eq!(s.min_invisible_ms_for_recv, 5000);
        assert!(!s.enable_topic_message_type_check);
        let bad = ClusterConfig::from_json(r#"{"maxMessageSize": -1}"#).expect("json");
        assert!(bad.service_config().is_err());
    }
}
