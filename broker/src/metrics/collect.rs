//! What one scrape reads: the live counters (`crate::stats`, [`RpcStats`])
//! and gauges computed from the broker's tables and store at that moment, as
//! Java's `BrokerMetricsManager`, `RemotingMetricsManager` and
//! `DefaultStoreMetricsManager` observe them. Names, units and label keys
//! are Java 5.3.3's (docs/OPERATIONS.md, "Observability").

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use store::QueueOffset;

use super::codes::{request_code_desc, response_code_desc};
use super::rpc::{CreateHistogram, RpcStats, CREATE_TIME_BUCKETS_MS, RPC_LATENCY_BUCKETS_MS};
use crate::meta::client::ClientManager;
use crate::meta::offsets::ConsumerOffsetManager;
use crate::meta::subscription::SubscriptionGroupManager;
use crate::meta::topic::TopicConfigManager;
use crate::processor::{read_config, SharedConfig};
use crate::stats::{BrokerStats, MessageType, MESSAGE_SIZE_BUCKETS};
use crate::store::BrokerStore;

/// Java's thread-pool queues behind `rocketmq_processor_watermark`.
const PROCESSORS: [&str; 12] = [
    "send",
    "async_put",
    "pull",
    "ack",
    "query_message",
    "client_manager",
    "heartbeat",
    "lite_pull",
    "transaction",
    "consumer_manager",
    "admin",
    "reply",
];

/// Everything a scrape reads.
pub(crate) struct Sources {
    pub config: SharedConfig,
    pub stats: Arc<BrokerStats>,
    pub rpc: Arc<RpcStats>,
    pub topics: Arc<TopicConfigManager>,
    pub groups: Arc<SubscriptionGroupManager>,
    pub clients: Arc<ClientManager>,
    pub offsets: Arc<ConsumerOffsetManager>,
    pub store: Arc<BrokerStore>,
    /// HA, controller-mode or DLedger replication, for its figures.
    pub replicas: super::replication::Replicas,
    /// Labels on every series: `otel_scope_name`, `metricsLabel` pairs,
    /// `aggregation` (with `metricsInDelta`), `node_type`, `cluster`, `node_id`.
    pub common: Vec<(String, String)>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").finish_non_exhaustive()
    }
}

/// A sample's labels: the common ones, then its own.
pub(super) type Labels<'a> = Vec<(&'a str, &'a str)>;

fn bool_label(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// Java `MQVersion.getVersionDesc` in lower case. From 4.0.0 on the
/// enumeration is regular (a SNAPSHOT then the release, 10 patch levels, 10
/// minor versions per major); older ordinals are given as numbers.
pub fn version_desc(ordinal: i32) -> String {
    const V4_0_0_SNAPSHOT: i32 = 213;
    const HIGHER_VERSION: i32 = 613;
    if ordinal >= HIGHER_VERSION {
        return "higher_version".into();
    }
    if ordinal < V4_0_0_SNAPSHOT {
        return ordinal.to_string();
    }
    let k = ordinal - V4_0_0_SNAPSHOT;
    let (minor_index, rest) = (k / 20, k % 20);
    let snapshot = if rest % 2 == 0 { "_snapshot" } else { "" };
    format!(
        "v{}_{}_{}{snapshot}",
        4 + minor_index / 10,
        minor_index % 10,
        rest / 2
    )
}

/// Java `MixAll.isSysConsumerGroup` plus the broker's own groups.
fn is_system_group(group: &str) -> bool {
    group.starts_with("CID_RMQ_SYS_")
        || matches!(
            group,
            "TOOLS_CONSUMER"
                | "FILTERSRV_CONSUMER"
                | "__MONITOR_CONSUMER"
                | "CLIENT_INNER_PRODUCER"
                | "SELF_TEST_P_GROUP"
                | "SELF_TEST_C_GROUP"
                | "CID_ONS-HTTP-PROXY"
                | "CID_ONSAPI_PERMISSION"
                | "CID_ONSAPI_OWNER"
                | "CID_ONSAPI_PULL"
                | "CID_RMQ_SYS_TRANS"
                | "CID_SYS_RMQ_TRANS"
        )
}

fn is_retry_or_dlq(topic: &str) -> bool {
    topic.starts_with("%RETRY%") || topic.starts_with("%DLQ%")
}

/// Java's `ConsumeType.getTypeCN()` in lower case.
fn consume_mode(consume_type: &str) -> &'static str {
    match consume_type {
        "CONSUME_ACTIVELY" => "pull",
        "CONSUME_POP" => "pop",
        _ => "push",
    }
}

/// One (group, topic) of `ConsumerLagCalculator`.
struct Lag {
    group: String,
    topic: String,
    is_retry: bool,
    lag: i64,
    earliest_unconsumed_ms: i64,
}

impl Sources {
    fn labels<'a>(&'a self, own: &[(&'a str, &'a str)]) -> Labels<'a> {
        let mut l: Labels<'a> = self
            .common
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        l.extend_from_slice(own);
        l
    }

    /// Groups with a consumer online, each topic it subscribes but its retry
    /// topic (Java `ConsumerLagCalculator.processAllGroup`; only POP
    /// consumers, which we do not serve here, get retry-topic figures).
    /// A queue without a committed offset counts as fully consumed, as Java.
    fn lags(&self) -> Vec<Lag> {
        let mut out = Vec::new();
        let groups = self.groups.wrapper().subscription_group_table;
        for group in groups.keys() {
            let Some(info) = self.clients.consumer_group(group) else {
                continue;
            };
            if info.channels.is_empty() {
                continue;
            }
            let topics = info
                .subscriptions
                .keys()
                .filter(|t| !t.starts_with("%RETRY%"));
            for topic in topics {
                let Some((write_queues, _)) = self.topics.queue_nums(topic) else {
                    continue;
                };
                let committed = self.offsets.offsets_of(group, topic);
                let mut lag = 0i64;
                let mut earliest = 0i64;
                for q in 0..write_queues {
                    let (min, max) = self.store.with((0, 0), |s| {
                        (s.min_offset(topic, q).get(), s.max_offset(topic, q).get())
                    });
                    let consumed = committed.get(&q).copied().unwrap_or(max).max(min);
                    if max > consumed {
                        lag += max - consumed;
                        let t = self
                            .store
                            .with(None, |s| s.store_time_at(topic, q, QueueOffset(consumed)))
                            .unwrap_or(0);
                        if t > 0 && (earliest == 0 || t < earliest) {
                            earliest = t;
                        }
                    }
                }
                out.push(Lag {
                    group: group.clone(),
                    topic: topic.clone(),
                    is_retry: false,
                    lag,
                    earliest_unconsumed_ms: earliest,
                });
            }
        }
        out
    }
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels<'_>, u64)],
) -> Result<(), std::fmt::Error> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in samples {
        m.encode_family(labels)?
            .encode_counter::<NoLabelSet, u64, u64>(v, None)?;
    }
    Ok(())
}

pub(super) fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: &[(Labels<'_>, i64)],
) -> Result<(), std::fmt::Error> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, v) in samples {
        m.encode_family(labels)?.encode_gauge(v)?;
    }
    Ok(())
}

fn create_histogram(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels<'_>, Arc<CreateHistogram>)],
) -> Result<(), std::fmt::Error> {
    if samples.is_empty() {
        return Ok(());
    }
    let ms = Unit::Other("milliseconds".into());
    let mut m = enc.encode_descriptor(name, help, Some(&ms), MetricType::Histogram)?;
    for (labels, h) in samples {
        let counts: Vec<u64> = h
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        m.encode_family(labels)?.encode_histogram::<NoLabelSet>(
            h.sum_ms.load(Ordering::Relaxed) as f64,
            h.count.load(Ordering::Relaxed),
            &buckets(&CREATE_TIME_BUCKETS_MS, &counts),
            None,
        )?;
    }
    Ok(())
}

/// Bucket counts (per bucket, not cumulative, +Inf last) as the encoder
/// takes them: finite upper bounds only, the encoder adds +Inf = count.
fn buckets(bounds: &[u64], counts: &[u64]) -> Vec<(f64, u64)> {
    bounds
        .iter()
        .zip(counts)
        .map(|(le, c)| (*le as f64, *c))
        .collect()
}

impl Collector for Sources {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let permission = read_config(&self.config).broker_permission;

        // ------------------------------------------------ messages in / out
        let topics = self.stats.topics();
        let mut in_msgs = Vec::new();
        let mut in_bytes = Vec::new();
        let mut sizes = Vec::new();
        let mut out_msgs = Vec::new();
        let mut out_bytes = Vec::new();
        let mut dlq = Vec::new();
        // Owned label values live here while the samples borrow them.
        let systems: Vec<bool> = topics
            .iter()
            .map(|(t, _)| self.topics.is_system_topic(t))
            .collect();
        let group_lists: Vec<Vec<(String, Arc<crate::stats::GroupStats>)>> =
            topics.iter().map(|(_, t)| t.groups()).collect();
        for (((topic, t), is_system), groups) in topics.iter().zip(&systems).zip(&group_lists) {
            if !is_retry_or_dlq(topic) {
                for ty in MessageType::ALL {
                    let c = &t.in_by_type[ty as usize];
                    let n = c.messages.load(Ordering::Relaxed);
                    if n == 0 {
                        continue;
                    }
                    let labels = self.labels(&[
                        ("topic", topic),
                        ("message_type", ty.label()),
                        ("is_system", bool_label(*is_system)),
                    ]);
                    let counts: Vec<u64> = c
                        .size_buckets
                        .iter()
                        .map(|b| b.load(Ordering::Relaxed))
                        .collect();
                    in_msgs.push((labels.clone(), n));
                    in_bytes.push((labels.clone(), c.bytes.load(Ordering::Relaxed)));
                    sizes.push((
                        labels,
                        c.bytes.load(Ordering::Relaxed),
                        c.puts.load(Ordering::Relaxed),
                        counts,
                    ));
                }
            }
            for (group, g) in groups {
                let system = bool_label(*is_system || is_system_group(group));
                let n = g.get_nums.value.load(Ordering::Relaxed);
                if n > 0 && !is_retry_or_dlq(topic) {
                    let labels = self.labels(&[
                        ("topic", topic),
                        ("consumer_group", group),
                        ("is_system", system),
                    ]);
                    out_msgs.push((labels.clone(), n));
                    out_bytes.push((labels, g.get_size.load(Ordering::Relaxed)));
                }
                let d = g.dlq.load(Ordering::Relaxed);
                if d > 0 {
                    let labels = self.labels(&[
                        ("consumer_group", group),
                        ("topic", topic),
                        ("is_system", system),
                    ]);
                    dlq.push((labels, d));
                }
            }
        }
        counter(
            &mut enc,
            "rocketmq_messages_in",
            "Total number of incoming messages",
            &in_msgs,
        )?;
        counter(
            &mut enc,
            "rocketmq_throughput_in",
            "Total traffic of incoming messages",
            &in_bytes,
        )?;
        counter(
            &mut enc,
            "rocketmq_messages_out",
            "Total number of outgoing messages",
            &out_msgs,
        )?;
        counter(
            &mut enc,
            "rocketmq_throughput_out",
            "Total traffic of outgoing messages",
            &out_bytes,
        )?;
        counter(
            &mut enc,
            "rocketmq_send_to_dlq_messages",
            "Consumer send to DLQ messages",
            &dlq,
        )?;
        if !sizes.is_empty() {
            let mut m = enc.encode_descriptor(
                "rocketmq_message_size",
                "Incoming messages size",
                None,
                MetricType::Histogram,
            )?;
            for (labels, sum, count, counts) in &sizes {
                m.encode_family(labels)?.encode_histogram::<NoLabelSet>(
                    *sum as f64,
                    *count,
                    &buckets(&MESSAGE_SIZE_BUCKETS, counts),
                    None,
                )?;
            }
        }

        // ------------------------------------------------------- requests
        let rpc = self.rpc.snapshot();
        if !rpc.is_empty() {
            let ms = Unit::Other("milliseconds".into());
            let mut m = enc.encode_descriptor(
                "rocketmq_rpc_latency",
                "Rpc latency",
                Some(&ms),
                MetricType::Histogram,
            )?;
            let names: Vec<(String, String)> = rpc
                .iter()
                .map(|((rq, rs), _)| {
                    (
                        request_code_desc(*rq).into_owned(),
                        response_code_desc(*rs).into_owned(),
                    )
                })
                .collect();
            for ((_, h), (rq, rs)) in rpc.iter().zip(&names) {
                let labels = self.labels(&[
                    ("protocol_type", "remoting"),
                    ("request_code", rq),
                    ("response_code", rs),
                    ("is_long_polling", "false"),
                    ("result", "success"),
                ]);
                let counts: Vec<u64> = h
                    .buckets
                    .iter()
                    .map(|b| b.load(Ordering::Relaxed))
                    .collect();
                m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                    h.sum_ms.load(Ordering::Relaxed) as f64,
                    h.count.load(Ordering::Relaxed),
                    &buckets(&RPC_LATENCY_BUCKETS_MS, &counts),
                    None,
                )?;
            }
        }

        let topic_create: Vec<(Labels<'_>, Arc<CreateHistogram>)> = self
            .rpc
            .topic_create
            .iter()
            .map(|e| {
                let (ok, system) = *e.key();
                (
                    self.labels(&[
                        ("invocation_status", if ok { "success" } else { "failure" }),
                        ("is_system", bool_label(system)),
                    ]),
                    e.value().clone(),
                )
            })
            .collect();
        create_histogram(
            &mut enc,
            "rocketmq_topic_create_execution_time",
            "The distribution of create topic time",
            &topic_create,
        )?;
        let group_create: Vec<(Labels<'_>, Arc<CreateHistogram>)> = self
            .rpc
            .group_create
            .iter()
            .map(|e| {
                let ok = *e.key();
                (
                    self.labels(&[("invocation_status", if ok { "success" } else { "failure" })]),
                    e.value().clone(),
                )
            })
            .collect();
        create_histogram(
            &mut enc,
            "rocketmq_consumer_group_create_execution_time",
            "The distribution of create subscription time",
            &group_create,
        )?;

        // ---------------------------------------------------------- stats
        let topic_count = self.topics.topic_names().len() as i64;
        let group_count = self.groups.wrapper().subscription_group_table.len() as i64;
        gauge(
            &mut enc,
            "rocketmq_topic_number",
            "Active topic number",
            None,
            &[(self.labels(&[]), topic_count)],
        )?;
        gauge(
            &mut enc,
            "rocketmq_consumer_group_number",
            "Active subscription group number",
            None,
            &[(self.labels(&[]), group_count)],
        )?;
        gauge(
            &mut enc,
            "rocketmq_broker_permission",
            "Broker permission",
            None,
            &[(self.labels(&[]), i64::from(permission))],
        )?;
        // Requests run as tasks as soon as they are read: nothing waits in a
        // processor queue, so every watermark is 0.
        let watermarks: Vec<(Labels<'_>, i64)> = PROCESSORS
            .iter()
            .map(|p| (self.labels(&[("processor", p)]), 0))
            .collect();
        gauge(
            &mut enc,
            "rocketmq_processor_watermark",
            "Request processor watermark",
            None,
            &watermarks,
        )?;

        // ---------------------------------------------------- connections
        let mut producers: BTreeMap<(String, String), i64> = BTreeMap::new();
        for (_, channels) in self.clients.producer_groups() {
            for c in channels {
                *producers
                    .entry((c.language.name().to_lowercase(), version_desc(c.version)))
                    .or_default() += 1;
            }
        }
        let samples: Vec<(Labels<'_>, i64)> = producers
            .iter()
            .map(|((lang, ver), n)| {
                (
                    self.labels(&[
                        ("language", lang),
                        ("version", ver),
                        ("protocol_type", "remoting"),
                    ]),
                    *n,
                )
            })
            .collect();
        gauge(
            &mut enc,
            "rocketmq_producer_connections",
            "Producer connections",
            None,
            &samples,
        )?;
        let mut consumers: BTreeMap<(String, String, String, &'static str), i64> = BTreeMap::new();
        for group in self.groups.wrapper().subscription_group_table.keys() {
            let Some(info) = self.clients.consumer_group(group) else {
                continue;
            };
            for c in info.channels.values() {
                *consumers
                    .entry((
                        group.clone(),
                        c.language.name().to_lowercase(),
                        version_desc(c.version),
                        consume_mode(&info.consume_type),
                    ))
                    .or_default() += 1;
            }
        }
        let samples: Vec<(Labels<'_>, i64)> = consumers
            .iter()
            .map(|((group, lang, ver, mode), n)| {
                (
                    self.labels(&[
                        ("consumer_group", group),
                        ("language", lang),
                        ("version", ver),
                        ("consume_mode", mode),
                        ("protocol_type", "remoting"),
                        ("is_system", bool_label(is_system_group(group))),
                    ]),
                    *n,
                )
            })
            .collect();
        gauge(
            &mut enc,
            "rocketmq_consumer_connections",
            "Consumer connections",
            None,
            &samples,
        )?;

        // ------------------------------------------------------------ lag
        let lags = self.lags();
        let now = remoting::body::now_millis();
        let lag_labels: Vec<Labels<'_>> = lags
            .iter()
            .map(|l| {
                self.labels(&[
                    ("consumer_group", &l.group),
                    ("topic", &l.topic),
                    ("is_retry", bool_label(l.is_retry)),
                    (
                        "is_system",
                        bool_label(
                            self.topics.is_system_topic(&l.topic) || is_system_group(&l.group),
                        ),
                    ),
                ])
            })
            .collect();
        let ms = Unit::Other("milliseconds".into());
        let by = |f: &dyn Fn(&Lag) -> i64| -> Vec<(Labels<'_>, i64)> {
            lags.iter()
                .zip(&lag_labels)
                .map(|(l, labels)| (labels.clone(), f(l)))
                .collect()
        };
        let latency = |l: &Lag| {
            if l.earliest_unconsumed_ms > 0 {
                (now - l.earliest_unconsumed_ms).max(0)
            } else {
                0
            }
        };
        gauge(
            &mut enc,
            "rocketmq_consumer_lag_messages",
            "Consumer lag messages",
            None,
            &by(&|l| l.lag),
        )?;
        gauge(
            &mut enc,
            "rocketmq_consumer_lag_latency",
            "Consumer lag time",
            Some(&ms),
            &by(&latency),
        )?;
        // Pull offsets are not kept apart from committed offsets: nothing is
        // counted in flight, and every unconsumed message is ready.
        gauge(
            &mut enc,
            "rocketmq_consumer_inflight_messages",
            "Consumer inflight messages",
            None,
            &by(&|_| 0),
        )?;
        gauge(
            &mut enc,
            "rocketmq_consumer_queueing_latency",
            "Consumer queueing time",
            Some(&ms),
            &by(&latency),
        )?;
        gauge(
            &mut enc,
            "rocketmq_consumer_ready_messages",
            "Consumer ready messages",
            None,
            &by(&|l| l.lag),
        )?;

        // -------------------------------------------------------- storage
        let (disk, max, flushed, dispatched, earliest) =
            self.store.with((None, 0, 0, 0, None), |s| {
                (
                    s.disk_capacity(),
                    s.commit_log_max_offset().get(),
                    s.commit_log_flushed_offset().get(),
                    s.dispatched_offset().get(),
                    s.earliest_message_time(),
                )
            });
        let storage = self.labels(&[("storage_type", "local"), ("storage_medium", "disk")]);
        if let Some((total, free)) = disk {
            if total > 0 {
                gauge(
                    &mut enc,
                    "rocketmq_storage_size",
                    "Broker storage size",
                    Some(&Unit::Bytes),
                    &[(storage.clone(), total.saturating_sub(free) as i64)],
                )?;
            }
        }
        gauge(
            &mut enc,
            "rocketmq_storage_flush_behind",
            "Broker flush behind bytes",
            Some(&Unit::Bytes),
            &[(storage.clone(), (max - flushed).max(0))],
        )?;
        gauge(
            &mut enc,
            "rocketmq_storage_dispatch_behind",
            "Broker dispatch behind bytes",
            Some(&Unit::Bytes),
            &[(storage.clone(), (max - dispatched).max(0))],
        )?;
        if let Some(earliest) = earliest.filter(|t| *t > 0) {
            gauge(
                &mut enc,
                "rocketmq_storage_message_reserve_time",
                "Broker message reserve time",
                Some(&ms),
                &[(storage, (now - earliest).max(0))],
            )?;
        }

        // ---------------------------------------------------- replication
        super::replication::encode(&mut enc, &self.replicas, &self.store, &self.common)?;
        Ok(())
    }
}

/// `target_info` and `otel_scope_info`, which Java's OpenTelemetry exporter
/// puts first.
#[derive(Debug)]
pub(crate) struct ScopeInfo;

impl Collector for ScopeInfo {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        enc.encode_descriptor("target", "Target metadata", None, MetricType::Info)?
            .encode_info(&Vec::<(&str, &str)>::new())?;
        enc.encode_descriptor("otel_scope", "Scope metadata", None, MetricType::Info)?
            .encode_info(&[("otel_scope_name", "broker-meter")])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_follow_java_ordinals() {
        assert_eq!(version_desc(480), "v5_3_3");
        assert_eq!(version_desc(410), "v4_9_8");
        assert_eq!(version_desc(213), "v4_0_0_snapshot");
        assert_eq!(version_desc(10_000), "higher_version");
        assert_eq!(version_desc(5), "5");
    }
}
