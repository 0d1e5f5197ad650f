//! Transactional messages (`TransactionalMessageServiceImpl`,
//! `TransactionalMessageCheckService`, Java's layout):
//!
//! - half messages live in `RMQ_SYS_TRANS_HALF_TOPIC` queue 0 (written by the
//!   send processor);
//! - a resolved half message (commit or rollback) gets an op record in
//!   `RMQ_SYS_TRANS_OP_HALF_TOPIC` queue 0, tag `d`, body = its half-queue
//!   offset followed by `,`;
//! - check progress is the consumer offset of group `CID_RMQ_SYS_TRANS` on
//!   the half queue (every half offset below it is resolved or re-appended),
//!   and on the op queue (ops below it only name half offsets below the half
//!   progress), both in `consumerOffset.json`, so a restart rebuilds the set
//!   of resolved offsets from the op queue and keeps checking.
//! - every `transactionCheckInterval` half messages older than
//!   `transactionTimeOut` without an op are re-appended with
//!   `TRANSACTION_CHECK_TIMES` + 1 and the producer group is asked
//!   (CHECK_TRANSACTION_STATE, one-way) about the copy; after
//!   `transactionCheckMax` checks a message is moved to
//!   `TRANS_CHECK_MAX_TIME_TOPIC` and abandoned.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use remoting::code::request_code;
pub use remoting::headers::CheckTransactionStateRequestHeader;
use remoting::RemotingCommand;
use store::{properties, CommitLogOffset, MessageToStore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::message;
use crate::meta::client::ClientManager;
use crate::meta::offsets::ConsumerOffsetManager;
use crate::meta::topic;
use crate::processor::{read_config, SharedConfig};
use crate::services::schedule::{read_entry, Entry};
use crate::store::BrokerStore;

/// Java `TransactionalMessageUtil.buildConsumerGroup()`.
pub const SYS_TRANS_GROUP: &str = "CID_RMQ_SYS_TRANS";
pub const REMOVE_TAG: &str = "d";
/// Half messages looked at per check round, at most.
const MAX_PER_ROUND: usize = 10_000;

#[derive(Default)]
struct State {
    /// Half offsets resolved (op seen or re-appended), at or above progress.
    done: BTreeSet<i64>,
    /// Next op-queue offset to read.
    op_scan: i64,
    /// (op offset, highest half offset it names), op offsets above the op progress.
    op_refs: VecDeque<(i64, i64)>,
    loaded: bool,
    /// Transactions resolved since start: a re-appended copy of one of them
    /// is not checked again (its original was resolved while it was copied).
    resolved_ids: HashSet<String>,
}

pub struct TransactionService {
    pub config: SharedConfig,
    pub store: Arc<BrokerStore>,
    pub clients: Arc<ClientManager>,
    pub offsets: Arc<ConsumerOffsetManager>,
    pub store_host: SocketAddr,
    state: Mutex<State>,
}

/// What END_TRANSACTION asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Commit,
    Rollback,
}

impl TransactionService {
    pub fn new(
        config: SharedConfig,
        store: Arc<BrokerStore>,
        clients: Arc<ClientManager>,
        offsets: Arc<ConsumerOffsetManager>,
        store_host: SocketAddr,
    ) -> TransactionService {
        TransactionService {
            config,
            store,
            clients,
            offsets,
            store_host,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn half_progress(&self) -> i64 {
        let (min, max) = self.store.with((0, 0), |s| {
            (
                s.min_offset(topic::TRANS_HALF_TOPIC, 0).get(),
                s.max_offset(topic::TRANS_HALF_TOPIC, 0).get(),
            )
        });
        self.offsets
            .query(SYS_TRANS_GROUP, topic::TRANS_HALF_TOPIC, 0)
            .unwrap_or(min)
            .clamp(min, max.max(min))
    }

    /// Reads op records not seen yet into the resolved set.
    fn sync_ops(&self, st: &mut State) {
        if !st.loaded {
            let min = self
                .store
                .with(0, |s| s.min_offset(topic::TRANS_OP_HALF_TOPIC, 0).get());
            st.op_scan = self
                .offsets
                .query(SYS_TRANS_GROUP, topic::TRANS_OP_HALF_TOPIC, 0)
                .unwrap_or(min)
                .max(min);
            st.loaded = true;
        }
        for _ in 0..MAX_PER_ROUND {
            let off = st.op_scan;
            match read_entry(&self.store, topic::TRANS_OP_HALF_TOPIC, 0, off) {
                Entry::Empty => break,
                Entry::Skip(next) => st.op_scan = next,
                Entry::Found { record, .. } => {
                    st.op_scan = off + 1;
                    let Ok(view) = store::record::decode(&record) else {
                        continue;
                    };
                    let mut highest = -1;
                    for half in std::str::from_utf8(view.body)
                        .unwrap_or("")
                        .split(',')
                        .filter_map(|s| s.trim().parse::<i64>().ok())
                    {
                        st.done.insert(half);
                        highest = highest.max(half);
                    }
                    st.op_refs.push_back((off, highest));
                }
            }
        }
    }

    /// Whether the half message at half-queue offset `offset`, or another
    /// copy of the same transaction, was committed or rolled back.
    pub fn is_resolved(&self, offset: i64, transaction_id: &str) -> bool {
        let mut st = self.lock();
        self.sync_ops(&mut st);
        st.done.contains(&offset) || st.resolved_ids.contains(transaction_id)
    }

    /// Records the outcome of the half message at `half_offset`: the op
    /// record, and for a commit `real` (already built by the caller) first.
    pub async fn resolve(
        &self,
        half_offset: i64,
        transaction_id: &str,
        real: Option<&MessageToStore>,
    ) -> Result<(), store::StoreError> {
        if let Some(m) = real {
            self.store.put(m).await?;
        }
        let op = MessageToStore {
            topic: topic::TRANS_OP_HALF_TOPIC.to_owned(),
            queue_id: 0,
            flag: 0,
            body: Bytes::from(format!("{half_offset},")),
            properties: properties::encode(&[(properties::TAGS, REMOVE_TAG)]),
            sys_flag: 0,
            born_timestamp: remoting::body::now_millis(),
            born_host: self.store_host,
            store_host: self.store_host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        };
        self.store.put(&op).await?;
        let mut st = self.lock();
        st.done.insert(half_offset);
        if st.resolved_ids.len() > 100_000 {
            st.resolved_ids.clear();
        }
        st.resolved_ids.insert(transaction_id.to_owned());
        Ok(())
    }

    pub fn start(self: &Arc<Self>, tasks: &TaskTracker, shutdown: &CancellationToken) {
        let s = self.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            loop {
                let interval = read_config(&s.config).transaction_check_interval.max(100) as u64;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(interval)) => {
                        let s = s.clone();
                        let _ = tokio::task::spawn_blocking(move || s.check()).await;
                    }
                }
            }
        });
    }

    /// One check round (Java `TransactionalMessageServiceImpl.check`). It
    /// holds the service's state lock across its puts, so it runs on a
    /// blocking thread and waits for each put there.
    pub fn check(&self) {
        let (timeout, check_max, broker_name) = {
            let c = read_config(&self.config);
            (
                c.transaction_time_out,
                c.transaction_check_max,
                c.broker_name.clone(),
            )
        };
        let mut st = self.lock();
        self.sync_ops(&mut st);
        let mut progress = self.half_progress();
        let now = remoting::body::now_millis();
        let mut off = progress;
        // Copies appended during this round wait for the next one.
        let end = self
            .store
            .with(0, |s| s.max_offset(topic::TRANS_HALF_TOPIC, 0).get());
        for _ in 0..MAX_PER_ROUND {
            if off >= end {
                break;
            }
            if st.done.contains(&off) {
                off += 1;
                continue;
            }
            let record = match read_entry(&self.store, topic::TRANS_HALF_TOPIC, 0, off) {
                Entry::Empty => break,
                Entry::Skip(next) => {
                    off = next;
                    continue;
                }
                Entry::Found { record, .. } => record,
            };
            let Ok(view) = store::record::decode(&record) else {
                st.done.insert(off);
                off += 1;
                continue;
            };
            let props = message::decode_properties(view.properties);
            let times: i32 = props
                .get(properties::TRANSACTION_CHECK_TIMES)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let immunity = props
                .get(properties::CHECK_IMMUNITY_TIME_IN_SECONDS)
                .and_then(|v| v.parse::<i64>().ok())
                .map_or(timeout, |s| s.saturating_mul(1000));
            let id = props
                .get(properties::TRANSACTION_ID)
                .or_else(|| props.get(properties::UNIQ_KEY))
                .cloned()
                .unwrap_or_default();
            if st.resolved_ids.contains(&id) {
                st.done.insert(off);
                off += 1;
                continue;
            }
            if now.saturating_sub(view.born_timestamp) < immunity {
                break;
            }
            if times >= check_max {
                info!(
                    offset = off,
                    times, "transaction check limit reached; abandoning half message"
                );
                let mut m = base_copy(&view, &record, props.clone());
                m.topic = topic::TRANS_CHECK_MAX_TIME_TOPIC.to_owned();
                m.queue_id = 0;
                if let Err(e) = futures::executor::block_on(self.store.put(&m)) {
                    warn!(error = %e, "cannot store abandoned half message");
                    break;
                }
                st.done.insert(off);
                off += 1;
                continue;
            }
            let mut copy_props = props.clone();
            copy_props.insert(
                properties::TRANSACTION_CHECK_TIMES.to_owned(),
                (times + 1).to_string(),
            );
            let copy = base_copy(&view, &record, copy_props);
            let put = match futures::executor::block_on(self.store.put(&copy)) {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "cannot re-append half message");
                    break;
                }
            };
            st.done.insert(off);
            off += 1;
            let phys = put
                .commit_log_offsets
                .first()
                .copied()
                .unwrap_or(put.commit_log_offset);
            self.send_check(&props, phys.get(), put.queue_offset.get(), &broker_name);
        }
        while st.done.contains(&progress) {
            progress += 1;
        }
        st.done = st.done.split_off(&progress);
        self.offsets
            .commit(SYS_TRANS_GROUP, topic::TRANS_HALF_TOPIC, 0, progress);
        while let Some((_, highest)) = st.op_refs.front() {
            if *highest >= progress {
                break;
            }
            st.op_refs.pop_front();
        }
        let op_progress = st.op_refs.front().map_or(st.op_scan, |(o, _)| *o);
        self.offsets
            .commit(SYS_TRANS_GROUP, topic::TRANS_OP_HALF_TOPIC, 0, op_progress);
    }

    /// CHECK_TRANSACTION_STATE about the half message copy at `phys` to one
    /// live producer of its group (`Broker2Client.checkProducerTransactionState`).
    fn send_check(
        &self,
        props: &indexmap::IndexMap<String, String>,
        phys: i64,
        queue_offset: i64,
        broker_name: &str,
    ) {
        let Some(group) = props.get(properties::PGROUP) else {
            return;
        };
        let Some(channel) = self
            .clients
            .producer_group(group)
            .into_iter()
            .find(|c| !c.conn.is_closed())
        else {
            debug!(%group, "no live producer to check a transaction with");
            return;
        };
        let Some(record) = self
            .store
            .with(None, |s| s.message_at(CommitLogOffset(phys)))
        else {
            return;
        };
        let Some(body) = real_view(&record) else {
            return;
        };
        let uniq = props.get(properties::UNIQ_KEY).cloned();
        let header = CheckTransactionStateRequestHeader {
            topic: props.get(properties::REAL_TOPIC).cloned(),
            tran_state_table_offset: queue_offset,
            commit_log_offset: phys,
            msg_id: uniq.clone(),
            transaction_id: props.get(properties::TRANSACTION_ID).cloned().or(uniq),
            offset_msg_id: Some(store::create_offset_message_id(self.store_host, phys)),
            broker_name: Some(broker_name.to_owned()),
        };
        let cmd = RemotingCommand::request(request_code::CHECK_TRANSACTION_STATE)
            .with_header(&header)
            .with_body(body);
        let conn = channel.conn.clone();
        debug!(%group, peer = %conn.peer(), offset = queue_offset, "checking transaction state");
        tokio::spawn(async move {
            if let Err(e) = conn.oneway(cmd).await {
                debug!(peer = %conn.peer(), error = %e, "transaction check not sent");
            }
        });
    }
}

fn base_copy(
    view: &store::record::RecordView<'_>,
    record: &Bytes,
    props: indexmap::IndexMap<String, String>,
) -> MessageToStore {
    MessageToStore {
        topic: view.topic.to_owned(),
        queue_id: view.queue_id,
        flag: view.flag,
        body: record.slice_ref(view.body),
        properties: message::encode_properties(&props),
        sys_flag: view.sys_flag,
        born_timestamp: view.born_timestamp,
        born_host: view.born_host,
        store_host: view.store_host,
        reconsume_times: view.reconsume_times,
        prepared_transaction_offset: view.prepared_transaction_offset,
    }
}

/// The record re-encoded with its real topic and queue (the check body).
fn real_view(record: &[u8]) -> Option<Vec<u8>> {
    let view = store::record::decode(record).ok()?;
    let topic = properties::get(view.properties, properties::REAL_TOPIC)?;
    let mut h = view.header();
    h.queue_id = properties::get(view.properties, properties::REAL_QID)
        .and_then(|q| q.parse().ok())
        .unwrap_or(view.queue_id);
    let mut out = Vec::with_capacity(record.len() + topic.len());
    store::record::encode_into(&mut out, &h, view.body, topic, view.properties.as_bytes()).ok()?;
    Some(out)
}
