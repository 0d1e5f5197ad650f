//! POP revive (Java `PopReviveService`): puts popped messages that were not
//! acknowledged in time into the group's retry topic.
//!
//! Checkpoints (`ck`) and acks (`ack`, `bAck`) reach the revive topic
//! `rmq_sys_REVIVE_LOG_<cluster>` through the timer: a checkpoint one
//! second before its revive time (pop time + invisible time), its acks at
//! that time. Each round, per revive queue, reads from the revive offset
//! (Java's: the consumer offset of `CID_RMQ_SYS_REVIVE_GROUP` on the revive
//! topic, in `consumerOffset.json`, = the queue offset of the last
//! checkpoint handled) to the end, sets the acked bits, and revives the
//! checkpoints whose revive time is more than two seconds behind the newest
//! record seen, in revive-queue order, stopping at the first that is not.
//! Each message a checkpoint still holds un-acked goes to the retry topic
//! (`%RETRY%group_topic`, queue 0, reconsume times + 1, `1ST_POP_TIME`);
//! a message that cannot be put is re-checkpointed (`rp` + 1) later.
//!
//! Once the end of a queue is reached, "now minus one second" counts as
//! seen (Java: now, once nothing arrived for three seconds and the timer is
//! caught up), so an idle broker revives one to three seconds after the
//! revive time. A crash between a revive and the offset flush revives again
//! (at least once).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use remoting::body::TopicConfig;
use store::{properties, MessageToStore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::message;
use crate::meta::offsets::ConsumerOffsetManager;
use crate::meta::subscription::SubscriptionGroupManager;
use crate::meta::topic::TopicConfigManager;
use crate::processor::pop::records::{self, AckMsg, PopCheckPoint};
use crate::processor::pop::PopService;
use crate::processor::{read_config, SharedConfig};
use crate::services::schedule::{read_entry, Entry};
use crate::store::BrokerStore;

/// Records read per queue per round.
const MAX_SCAN: usize = 20_000;
/// Java `ckRewriteIntervalsInSeconds`.
const CK_REWRITE_INTERVALS: [i64; 17] = [
    10, 20, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200,
];

pub struct ReviveService {
    pub config: SharedConfig,
    pub topics: Arc<TopicConfigManager>,
    pub groups: Arc<SubscriptionGroupManager>,
    pub offsets: Arc<ConsumerOffsetManager>,
    pub store: Arc<BrokerStore>,
    pub pop: Arc<PopService>,
    pub store_host: SocketAddr,
}

/// What one round did on one queue.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    pub checkpoints: usize,
    pub revived_messages: usize,
    pub new_offset: i64,
}

fn now_ms() -> i64 {
    remoting::body::now_millis()
}

impl ReviveService {
    pub fn start(self: &Arc<Self>, tasks: &TaskTracker, shutdown: &CancellationToken) {
        let s = self.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let interval = Duration::from_millis(read_config(&s.config).revive_interval.max(50));
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            info!("pop revive service started");
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        let n = read_config(&s.config).revive_queue_num.max(1);
                        for q in 0..n {
                            if shutdown.is_cancelled() {
                                break;
                            }
                            s.round(q, now_ms()).await;
                        }
                    }
                }
            }
        });
    }

    fn revive_topic(&self) -> String {
        records::revive_topic(&read_config(&self.config).broker_cluster_name)
    }

    /// One round on revive queue `qid` (`consumeReviveMessage` then
    /// `mergeAndRevive`).
    pub async fn round(&self, qid: i32, now: i64) -> RoundReport {
        let topic = self.revive_topic();
        let own_broker = read_config(&self.config).broker_name.clone();
        let committed = self
            .offsets
            .query(records::REVIVE_GROUP, &topic, qid)
            .unwrap_or(-1);
        let mut off = committed + 1;
        let mut cks: HashMap<String, PopCheckPoint> = HashMap::new();
        let mut end_time = 0i64;
        let mut reached_tail = false;
        for _ in 0..MAX_SCAN {
            let record = match read_entry(&self.store, &topic, qid, off) {
                Entry::Empty => {
                    reached_tail = true;
                    break;
                }
                Entry::Skip(next) => {
                    off = next;
                    continue;
                }
                Entry::Found { record, .. } => record,
            };
            let this = off;
            off += 1;
            let Ok(v) = store::record::decode(&record) else {
                continue;
            };
            let deliver = properties::get(v.properties, properties::TIMER_OUT_MS)
                .or_else(|| properties::get(v.properties, properties::TIMER_DELIVER_MS))
                .and_then(|d| d.parse::<i64>().ok())
                .unwrap_or(v.store_timestamp);
            end_time = end_time.max(deliver);
            let tag = properties::get(v.properties, properties::TAGS).unwrap_or("");
            let Ok(body) = std::str::from_utf8(v.body) else {
                continue;
            };
            match tag {
                records::CK_TAG => match serde_json::from_str::<PopCheckPoint>(body) {
                    Ok(mut ck) if !ck.topic.is_empty() && !ck.cid.is_empty() => {
                        ck.revive_offset = this;
                        cks.insert(ck.merge_key(), ck);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        warn!(qid, offset = this, error = %e, "revive: unreadable checkpoint")
                    }
                },
                records::ACK_TAG | records::BATCH_ACK_TAG => {
                    match serde_json::from_str::<AckMsg>(body) {
                        Ok(ack) => {
                            if let Some(ck) = cks.get_mut(&ack.merge_key(&own_broker)) {
                                let list = match &ack.ack_offset_list {
                                    Some(l) => l.clone(),
                                    None => vec![ack.ack_offset],
                                };
                                for o in list {
                                    if let Some(i) = ck.index_of_ack(o) {
                                        ck.set_acked(i);
                                    }
                                }
                            }
                        }
                        Err(e) => warn!(qid, offset = this, error = %e, "revive: unreadable ack"),
                    }
                }
                _ => {}
            }
        }
        if reached_tail {
            end_time = end_time.max(now - records::ACK_TIME_INTERVAL);
        }
        let mut sorted: Vec<PopCheckPoint> = cks.into_values().collect();
        sorted.sort_by_key(|c| c.revive_offset);
        let mut report = RoundReport {
            checkpoints: sorted.len(),
            new_offset: committed,
            ..Default::default()
        };
        for ck in &sorted {
            if end_time - ck.revive_time() <= records::ACK_TIME_INTERVAL + 1000 {
                break;
            }
            let normal = records::normal_topic(&ck.topic, &ck.cid);
            if self.topics.get(normal).is_some() && self.groups.get(&ck.cid).is_some() {
                report.revived_messages += self.revive(ck, qid).await;
            }
            report.new_offset = ck.revive_offset;
        }
        if report.new_offset > committed {
            self.offsets
                .commit(records::REVIVE_GROUP, &topic, qid, report.new_offset);
            debug!(
                qid,
                from = committed,
                to = report.new_offset,
                revived = report.revived_messages,
                "revive offset moved"
            );
        }
        report
    }

    /// Java `reviveMsgFromCk`: every un-acked message of `ck` to the retry
    /// topic; returns how many were put.
    async fn revive(&self, ck: &PopCheckPoint, qid: i32) -> usize {
        let mut n = 0;
        for j in 0..(ck.num.max(0) as usize) {
            if ck.acked(j) {
                continue;
            }
            let offset = ck.offset_at(j);
            let record = match read_entry(&self.store, &ck.topic, ck.queue_id, offset) {
                Entry::Found { record, .. } => record,
                // Gone (retention) or never there: nothing to revive.
                _ => {
                    debug!(topic = %ck.topic, queue_id = ck.queue_id, offset, "revive: message not found");
                    continue;
                }
            };
            match self.revive_one(ck, &record).await {
                Ok(()) => n += 1,
                Err(e) => {
                    warn!(topic = %ck.topic, offset, error = %e, "revive: retry put failed; checkpoint re-put");
                    self.re_put_ck(ck, offset, qid).await;
                }
            }
        }
        n
    }

    async fn revive_one(&self, ck: &PopCheckPoint, record: &Bytes) -> Result<(), String> {
        let v = store::record::decode(record).map_err(|e| e.to_string())?;
        let retry_topic = if ck.topic.starts_with("%RETRY%") {
            ck.topic.clone()
        } else {
            records::pop_retry_topic(
                &ck.topic,
                &ck.cid,
                read_config(&self.config).enable_retry_topic_v2,
            )
        };
        self.retry_topic_if_absent(&retry_topic, &ck.cid);
        let mut props = message::decode_properties(v.properties);
        if v.reconsume_times == 0 || !props.contains_key(records::PROPERTY_FIRST_POP_TIME) {
            props.insert(
                records::PROPERTY_FIRST_POP_TIME.to_owned(),
                ck.pop_time.to_string(),
            );
        }
        let msg = MessageToStore {
            topic: retry_topic,
            queue_id: 0,
            flag: v.flag,
            body: Bytes::copy_from_slice(v.body),
            properties: message::encode_properties(&props),
            sys_flag: v.sys_flag,
            born_timestamp: v.born_timestamp,
            born_host: self.store_host,
            store_host: self.store_host,
            reconsume_times: v.reconsume_times.saturating_add(1),
            prepared_transaction_offset: 0,
        };
        self.store.put(&msg).await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Java `addRetryTopicIfNotExist` + `initPopRetryOffset`.
    fn retry_topic_if_absent(&self, topic: &str, group: &str) {
        if self.topics.contains(topic) {
            return;
        }
        let mut t = TopicConfig::new(topic, 1, 1, 6);
        t.topic_filter_type = "SINGLE_TAG".into();
        self.topics.create_if_absent(t);
        if self.offsets.query(group, topic, 0).is_none() {
            self.offsets.commit(group, topic, 0, 0);
        }
    }

    /// Java `rePutCK`: a one-message checkpoint for `offset`, later each time.
    async fn re_put_ck(&self, old: &PopCheckPoint, offset: i64, qid: i32) {
        let times = old.re_put_times();
        if times as usize >= CK_REWRITE_INTERVALS.len() {
            warn!(topic = %old.topic, offset, "revive: checkpoint re-put too often; dropped");
            return;
        }
        let mut ck = PopCheckPoint {
            bit_map: 0,
            broker_name: old.broker_name.clone(),
            cid: old.cid.clone(),
            queue_offset_diff: Some(vec![0]),
            invisible_time: old.invisible_time,
            num: 1,
            pop_time: old.pop_time,
            queue_id: old.queue_id,
            revive_offset: 0,
            re_put_times: Some((times + 1).to_string()),
            start_offset: offset,
            topic: old.topic.clone(),
        };
        if old.revive_time() <= now_ms() {
            let i = (times.max(0) as usize).min(CK_REWRITE_INTERVALS.len() - 1);
            ck.invisible_time += CK_REWRITE_INTERVALS[i] * 1000;
        }
        if let Err(e) = self.pop.put_ck(&ck, qid).await {
            warn!(error = %e, "revive: checkpoint re-put failed");
        }
    }
}
