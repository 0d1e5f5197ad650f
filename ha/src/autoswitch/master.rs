//! The AutoSwitch master: the HA port, one task per slave connection, the
//! SyncStateSet bookkeeping and the store's replication hook (Java
//! `AutoSwitchHAService` master side, `AutoSwitchHAConnection`).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use store::replication::{Admission, ReplicaAck, ReplicaWait, Replication};
use store::{CommitLogOffset, EpochFile, EpochRange};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::frame::{self, MasterHandshake, SlaveMessage, TransferHeader};
use super::{lock, AutoSwitchConfig, AutoSwitchLog};
use crate::now_ms;

/// `Admission::Wait` acks meaning "every SyncStateSet member" (Java
/// `MixAll.ALL_ACK_IN_SYNC_STATE_SET`).
const ALL_ACK: u32 = u32::MAX;

/// How often (in waiting puts, a power of two) timed-out waits are dropped.
const PRUNE_EVERY: usize = 1024;

/// One slave connection as `GET_BROKER_HA_STATUS` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaveConnectionInfo {
    pub addr: SocketAddr,
    /// The slave's controller broker id from its handshake (-1 before it).
    pub slave_id: i64,
    /// Its last report (-1 before the first).
    pub slave_ack_offset: CommitLogOffset,
    /// Where the next frame starts (-1 before the first report).
    pub transfer_from: CommitLogOffset,
    /// A member of the local (confirmed) SyncStateSet.
    pub in_sync: bool,
    pub async_learner: bool,
}

/// The master side of AutoSwitch HA (see the module docs).
pub struct AutoSwitchMaster {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Confirmed by the controller (Java `syncStateSet`).
    confirmed: BTreeSet<i64>,
    /// Proposed and not yet answered (Java `remoteSyncStateSet`).
    proposed: BTreeSet<i64>,
    pending: bool,
}

struct Shared {
    log: Arc<dyn AutoSwitchLog>,
    epochs: Arc<EpochFile>,
    cfg: AutoSwitchConfig,
    local_id: i64,
    conns: Mutex<Vec<Arc<Conn>>>,
    end: watch::Sender<CommitLogOffset>,
    waiters: Mutex<Vec<Waiter>>,
    sync: Mutex<SyncState>,
    /// Last caught-up time (monotonic ms) per slave id; kept when a
    /// connection closes (Java `connectionCaughtUpTimeTable`).
    caught_up: Mutex<HashMap<i64, u64>>,
    /// Java `confirmOffset` (all-ack mode); -1 until first computed.
    confirm: AtomicI64,
    proposals: watch::Sender<Option<BTreeSet<i64>>>,
    shutdown: CancellationToken,
}

struct Conn {
    addr: SocketAddr,
    slave_id: AtomicI64,
    async_learner: AtomicBool,
    sync_from_last_file: AtomicBool,
    /// A handshake arrived and awaits its reply.
    handshake: AtomicBool,
    ack: AtomicI64,
    /// The first report (Java `slaveRequestOffset`).
    request: AtomicI64,
    transfer_from: AtomicI64,
    /// Master max offset / time at the last data frame (Java
    /// `lastMasterMaxOffset`, `lastTransferTimeMs`).
    last_master_max: AtomicI64,
    last_transfer_ms: AtomicU64,
    wake: Notify,
}

struct Waiter {
    end: CommitLogOffset,
    acks: u32,
    done: oneshot::Sender<()>,
}

impl AutoSwitchMaster {
    /// Serves `listener` (the HA port) as the master of broker
    /// `local_broker_id` (its controller id) until [`shutdown`]. The store
    /// should hold `(epoch, maxPhyOffset)` of this mastership in `epochs`
    /// already (see [`super::change_to_master`]). Install the returned
    /// master as the store's replication hook.
    ///
    /// [`shutdown`]: AutoSwitchMaster::shutdown
    pub fn start(
        log: Arc<dyn AutoSwitchLog>,
        epochs: Arc<EpochFile>,
        listener: TcpListener,
        cfg: AutoSwitchConfig,
        local_broker_id: i64,
    ) -> Arc<AutoSwitchMaster> {
        let (end, _) = watch::channel(log.max_offset());
        let (proposals, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            log,
            epochs,
            cfg,
            local_id: local_broker_id,
            conns: Mutex::new(Vec::new()),
            end,
            waiters: Mutex::new(Vec::new()),
            sync: Mutex::new(SyncState {
                confirmed: BTreeSet::from([local_broker_id]),
                ..SyncState::default()
            }),
            caught_up: Mutex::new(HashMap::new()),
            confirm: AtomicI64::new(-1),
            proposals,
            shutdown: CancellationToken::new(),
        });
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, broker_id = local_broker_id, "AutoSwitch HA service listening");
        }
        shared.publish_confirm();
        tokio::spawn(accept_loop(shared.clone(), listener));
        tokio::spawn(shrink_loop(shared.clone()));
        Arc::new(AutoSwitchMaster { shared })
    }

    /// Closes the HA port and every connection; waiting puts time out.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// SyncStateSet changes this master wants (expansions as slaves catch
    /// up, shrinks as they fall behind or disconnect): the broker sends
    /// each as ALTER_SYNC_STATE_SET to the controller and answers with
    /// [`set_sync_state_set`](Self::set_sync_state_set). Only the latest
    /// proposal matters; older ones are superseded.
    pub fn proposals(&self) -> watch::Receiver<Option<BTreeSet<i64>>> {
        self.shared.proposals.subscribe()
    }

    /// The SyncStateSet the controller confirmed (ALTER_SYNC_STATE_SET's
    /// answer, or a newer one from 1004/1008); ends a pending proposal.
    pub fn set_sync_state_set(&self, members: impl IntoIterator<Item = i64>) {
        let s = &self.shared;
        let members: BTreeSet<i64> = members.into_iter().collect();
        let changed = {
            let mut st = lock(&s.sync);
            let changed = st.confirmed != members;
            st.confirmed = members.clone();
            st.pending = false;
            changed
        };
        s.recompute_confirm();
        s.settle();
        if changed {
            info!(set = ?members, "SyncStateSet applied");
        } else {
            debug!(set = ?members, "SyncStateSet confirmed unchanged");
        }
    }

    /// The confirmed SyncStateSet (Java `getLocalSyncStateSet`).
    pub fn sync_state_set(&self) -> BTreeSet<i64> {
        lock(&self.shared.sync).confirmed.clone()
    }

    /// The set acknowledgements count against: the union of the confirmed
    /// and the proposed sets while a proposal is pending (Java
    /// `getSyncStateSet`).
    pub fn effective_sync_state_set(&self) -> BTreeSet<i64> {
        self.shared.effective_set()
    }

    /// Java `inSyncReplicasNums`: the set's size, the larger of the two
    /// while a proposal is pending.
    pub fn in_sync_replicas(&self) -> u32 {
        self.shared.in_sync_nums()
    }

    /// What consumers may see and slaves are told (Java `getConfirmOffset`).
    pub fn confirm_offset(&self) -> CommitLogOffset {
        CommitLogOffset(self.shared.confirm_offset())
    }

    /// The periodic SyncStateSet check (Java `maybeShrinkSyncStateSet`, run
    /// every `check_sync_state_set_period` by the master itself): the set
    /// without members that have not caught up within
    /// `haMaxTimeSlaveNotCatchup` or never connected; proposed when it
    /// differs.
    pub fn maybe_shrink_sync_state_set(&self) -> BTreeSet<i64> {
        self.shared.maybe_shrink()
    }

    pub fn connections(&self) -> Vec<SlaveConnectionInfo> {
        let set = self.sync_state_set();
        lock(&self.shared.conns)
            .iter()
            .map(|c| {
                let id = c.slave_id.load(Ordering::Acquire);
                SlaveConnectionInfo {
                    addr: c.addr,
                    slave_id: id,
                    slave_ack_offset: CommitLogOffset(c.ack.load(Ordering::Acquire)),
                    transfer_from: CommitLogOffset(c.transfer_from.load(Ordering::Acquire)),
                    in_sync: set.contains(&id),
                    async_learner: c.async_learner.load(Ordering::Acquire),
                }
            })
            .collect()
    }

    /// Puts waiting for acknowledgements (and timed-out waits not yet
    /// dropped).
    pub fn waiting_puts(&self) -> usize {
        lock(&self.shared.waiters).len()
    }
}

impl Drop for AutoSwitchMaster {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

impl Shared {
    fn effective_set(&self) -> BTreeSet<i64> {
        let st = lock(&self.sync);
        if st.pending {
            st.confirmed.union(&st.proposed).copied().collect()
        } else {
            st.confirmed.clone()
        }
    }

    fn in_sync_nums(&self) -> u32 {
        let st = lock(&self.sync);
        let n = if st.pending {
            st.confirmed.len().max(st.proposed.len())
        } else {
            st.confirmed.len()
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Java `CommitLog.getConfirmOffset` on a master.
    fn confirm_offset(&self) -> i64 {
        let max = self.log.max_offset().get();
        if !self.cfg.all_ack_in_sync_state_set || lock(&self.sync).confirmed.len() <= 1 {
            return max;
        }
        if self.confirm.load(Ordering::Acquire) < 0 {
            self.recompute_confirm();
        }
        self.confirm.load(Ordering::Acquire)
    }

    /// Java `computeConfirmOffset`: the lowest ack of a connected set
    /// member (capped by the log's end); unchanged while a member has no
    /// connection (apache/rocketmq#6662).
    fn recompute_confirm(&self) {
        let set = self.effective_set();
        let mut confirm = self.log.max_offset().get();
        let conns = lock(&self.conns).clone();
        for id in &set {
            if *id != self.local_id
                && !conns
                    .iter()
                    .any(|c| c.slave_id.load(Ordering::Acquire) == *id)
            {
                // Never computed (a fresh master): start from the log's end,
                // as Java starts from the checkpoint's confirm offset.
                if self.confirm.load(Ordering::Acquire) < 0 {
                    self.confirm.store(confirm, Ordering::Release);
                }
                self.publish_confirm();
                return;
            }
        }
        for c in &conns {
            let ack = c.ack.load(Ordering::Acquire);
            if set.contains(&c.slave_id.load(Ordering::Acquire)) && ack > 0 {
                confirm = confirm.min(ack);
            }
        }
        self.confirm.store(confirm, Ordering::Release);
        self.publish_confirm();
    }

    /// The store's read limit: the confirm offset when it can lag the log
    /// (all-ack mode with other members), else none; never with
    /// `readUnCommitted`.
    fn publish_confirm(&self) {
        if self.cfg.read_uncommitted {
            return;
        }
        let gated = self.cfg.all_ack_in_sync_state_set && lock(&self.sync).confirmed.len() > 1;
        let limit = gated.then(|| CommitLogOffset(self.confirm.load(Ordering::Acquire).max(0)));
        self.log.set_read_limit(limit);
    }

    /// Marks `set` as proposed and tells the broker; false (and silent)
    /// when that very set is already pending, as on every ack of a
    /// caught-up slave until the controller answers.
    fn propose(&self, set: BTreeSet<i64>) -> bool {
        {
            let mut st = lock(&self.sync);
            if st.pending && st.proposed == set {
                return false;
            }
            st.pending = true;
            st.proposed = set.clone();
        }
        info!(proposed = ?set, "SyncStateSet change proposed");
        self.proposals.send_replace(Some(set));
        true
    }

    fn maybe_shrink(&self) -> BTreeSet<i64> {
        let mut set = lock(&self.sync).confirmed.clone();
        let now = now_ms();
        let limit =
            u64::try_from(self.cfg.max_time_slave_not_catchup.as_millis()).unwrap_or(u64::MAX);
        let caught = lock(&self.caught_up).clone();
        let before = set.len();
        set.retain(|id| {
            *id == self.local_id
                || caught
                    .get(id)
                    .is_some_and(|t| now.saturating_sub(*t) <= limit)
        });
        if set.len() != before {
            let _ = self.propose(set.clone());
        }
        set
    }

    /// A TRANSFER report from `conn` (Java `maybeExpandInSyncStateSet`).
    fn maybe_expand(&self, conn: &Conn, slave_max: i64) {
        if conn.async_learner.load(Ordering::Acquire)
            || slave_max < conn.last_master_max.load(Ordering::Acquire)
        {
            return;
        }
        let id = conn.slave_id.load(Ordering::Acquire);
        let now = now_ms();
        let t = if self.log.max_offset().get() == slave_max {
            now
        } else {
            conn.last_transfer_ms.load(Ordering::Acquire)
        };
        {
            let mut c = lock(&self.caught_up);
            let e = c.entry(id).or_insert(0);
            *e = (*e).max(t);
        }
        let mut set = lock(&self.sync).confirmed.clone();
        if set.contains(&id) || slave_max < self.confirm_offset() {
            return;
        }
        let last_start = self.epochs.last().map_or(0, |e| e.start_offset);
        if slave_max >= last_start {
            set.insert(id);
            // Logged once per proposal: later acks find it pending.
            if self.propose(set) {
                info!(
                    slave = id,
                    slave_max, "slave caught up; proposing it for the SyncStateSet"
                );
            }
        }
    }

    /// Whether the put ending at `end` has its acknowledgements.
    fn enough(&self, end: CommitLogOffset, acks: u32) -> bool {
        let conns = lock(&self.conns).clone();
        if acks == ALL_ACK {
            let set = self.effective_set();
            if set.len() <= 1 {
                return true;
            }
            let mut acked: BTreeSet<i64> = BTreeSet::from([self.local_id]);
            for c in &conns {
                let id = c.slave_id.load(Ordering::Acquire);
                if set.contains(&id) && c.ack.load(Ordering::Acquire) >= end.get() {
                    acked.insert(id);
                }
            }
            return set.iter().all(|id| acked.contains(id));
        }
        let n = 1 + conns
            .iter()
            .filter(|c| c.ack.load(Ordering::Acquire) >= end.get())
            .count() as u64;
        n >= u64::from(acks)
    }

    fn settle(&self) {
        let mut waiters = lock(&self.waiters);
        let pending = std::mem::take(&mut *waiters);
        for w in pending {
            if self.enough(w.end, w.acks) {
                let _ = w.done.send(());
            } else if !w.done.is_closed() {
                waiters.push(w);
            }
        }
    }

    /// The epoch entry holding `offset`; the last one is open-ended.
    fn epoch_at(&self, offset: i64) -> Option<EpochRange> {
        self.epochs.list().range_containing(offset, i64::MAX)
    }
}

impl Replication for AutoSwitchMaster {
    fn admit(&self, _log_end: CommitLogOffset) -> Admission {
        let s = &self.shared;
        if s.in_sync_nums() < s.cfg.min_in_sync_replicas {
            return Admission::Refuse;
        }
        if s.cfg.all_ack_in_sync_state_set {
            if s.effective_set().len() <= 1 {
                return Admission::Go;
            }
            return Admission::Wait { acks: ALL_ACK };
        }
        match s.cfg.in_sync_replicas {
            0 | 1 => Admission::Go,
            n => Admission::Wait { acks: n },
        }
    }

    fn appended(&self, log_end: CommitLogOffset) {
        if self.shared.end.receiver_count() > 0 {
            self.shared.end.send_replace(log_end);
        }
    }

    fn wait(&self, end: CommitLogOffset, acks: u32) -> ReplicaWait {
        let s = &self.shared;
        if s.enough(end, acks) {
            return Box::pin(std::future::ready(ReplicaAck::Acked));
        }
        let (done, rx) = oneshot::channel();
        {
            let mut waiters = lock(&s.waiters);
            if waiters.len() >= PRUNE_EVERY && waiters.len() & (PRUNE_EVERY - 1) == 0 {
                waiters.retain(|w| !w.done.is_closed());
            }
            waiters.push(Waiter { end, acks, done });
        }
        s.settle();
        let timeout = s.cfg.ha.slave_timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(())) => ReplicaAck::Acked,
                _ => ReplicaAck::TimedOut,
            }
        })
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, addr)) => {
                tokio::spawn(connection(shared.clone(), stream, addr));
            }
            Err(e) => {
                warn!(error = %e, "HA accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn shrink_loop(shared: Arc<Shared>) {
    let period = shared
        .cfg
        .check_sync_state_set_period
        .max(Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        shared.maybe_shrink();
    }
}

async fn connection(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(Conn {
        addr,
        slave_id: AtomicI64::new(-1),
        async_learner: AtomicBool::new(false),
        sync_from_last_file: AtomicBool::new(false),
        handshake: AtomicBool::new(false),
        ack: AtomicI64::new(-1),
        request: AtomicI64::new(-1),
        transfer_from: AtomicI64::new(-1),
        last_master_max: AtomicI64::new(-1),
        last_transfer_ms: AtomicU64::new(0),
        wake: Notify::new(),
    });
    lock(&shared.conns).push(conn.clone());
    info!(slave = %addr, "AutoSwitch HA connection from a slave");
    let (rd, wr) = stream.into_split();
    let why = tokio::select! {
        _ = shared.shutdown.cancelled() => "shutting down".to_owned(),
        r = read_slave(&shared, &conn, rd) => r,
        r = write_slave(&shared, &conn, wr) => r,
    };
    lock(&shared.conns).retain(|c| !Arc::ptr_eq(c, &conn));
    let id = conn.slave_id.load(Ordering::Acquire);
    info!(slave = %addr, slave_id = id, reason = %why, "AutoSwitch HA connection closed");
    // Java `removeConnection`: a member that left is proposed out at once.
    if !shared.shutdown.is_cancelled() {
        let mut set = lock(&shared.sync).confirmed.clone();
        if id != shared.local_id && set.remove(&id) {
            let _ = shared.propose(set);
        }
    }
}

/// Reads the slave's handshakes and reports; returns why the connection
/// ends.
async fn read_slave(
    shared: &Shared,
    conn: &Conn,
    mut rd: tokio::net::tcp::OwnedReadHalf,
) -> String {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let read = tokio::time::timeout(shared.cfg.ha.housekeeping_interval, rd.read_buf(&mut buf));
        match read.await {
            Err(_) => return "nothing read within haHousekeepingInterval".into(),
            Ok(Ok(0)) => return "closed by the slave".into(),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return format!("read failed: {e}"),
        }
        loop {
            let msg = match frame::decode_slave(&mut buf) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => return format!("bad message from the slave: {e}"),
            };
            match msg {
                SlaveMessage::Handshake(h) => {
                    debug!(slave = %conn.addr, id = h.broker_id, "slave handshake");
                    conn.slave_id.store(h.broker_id, Ordering::Release);
                    conn.async_learner.store(h.async_learner, Ordering::Release);
                    conn.sync_from_last_file
                        .store(h.sync_from_last_file, Ordering::Release);
                    conn.handshake.store(true, Ordering::Release);
                }
                SlaveMessage::Report { max_offset } => {
                    conn.ack.store(max_offset, Ordering::Release);
                    if conn.request.load(Ordering::Acquire) < 0 {
                        conn.request.store(max_offset.max(0), Ordering::Release);
                    }
                    shared.maybe_expand(conn, max_offset);
                    let id = conn.slave_id.load(Ordering::Acquire);
                    if lock(&shared.sync).confirmed.contains(&id) {
                        shared.recompute_confirm();
                    }
                    shared.settle();
                }
            }
            conn.wake.notify_one();
        }
    }
}

/// What the write side keeps between frames.
struct Transfer {
    /// Next offset to ship (Java `nextTransferFromWhere`), once started.
    next: Option<i64>,
    /// The epoch of the bytes at `next`.
    epoch: Option<EpochRange>,
    last_write: u64,
    /// A missing epoch entry was reported; not again until one is found
    /// (the write loop retries every few hundred ms).
    warned_no_epoch: bool,
}

/// Answers handshakes and ships the commit log; returns why the connection
/// ends.
async fn write_slave(
    shared: &Shared,
    conn: &Conn,
    mut wr: tokio::net::tcp::OwnedWriteHalf,
) -> String {
    let mut end_rx = shared.end.subscribe();
    let mut t = Transfer {
        next: None,
        epoch: None,
        last_write: now_ms(),
        warned_no_epoch: false,
    };
    let heartbeat_ms =
        u64::try_from(shared.cfg.ha.heartbeat_interval.as_millis()).unwrap_or(u64::MAX);
    let batch = shared.cfg.ha.transfer_batch_size.max(1);
    let mut out = BytesMut::with_capacity(frame::TRANSFER_HEADER_SIZE + batch);
    loop {
        if conn.handshake.swap(false, Ordering::AcqRel) {
            out.clear();
            let list = shared.epochs.list();
            MasterHandshake {
                max_offset: shared.log.max_offset().get(),
                last_epoch: list.last_epoch(),
                entries: list.entries().to_vec(),
            }
            .encode(&mut out);
            if let Err(e) = wr.write_all(&out).await {
                return format!("write failed: {e}");
            }
            t.last_write = now_ms();
            continue;
        }
        let request = conn.request.load(Ordering::Acquire);
        if request < 0 {
            let _ = tokio::time::timeout(Duration::from_millis(100), conn.wake.notified()).await;
            continue;
        }
        let next = match t.next {
            Some(n) => n,
            None => match start_point(shared, conn, request, &mut t.warned_no_epoch) {
                Some((n, range)) => {
                    info!(slave = %conn.addr, request, start = n, epoch = range.epoch,
                        "AutoSwitch transfer starts");
                    t.next = Some(n);
                    t.epoch = Some(range);
                    n
                }
                None => {
                    if let Err(e) = heartbeat_if_idle(shared, &mut wr, &mut t, heartbeat_ms).await {
                        return e;
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(500), conn.wake.notified())
                        .await;
                    continue;
                }
            },
        };
        conn.transfer_from.store(next, Ordering::Release);
        if let Err(e) = heartbeat_if_idle(shared, &mut wr, &mut t, heartbeat_ms).await {
            return e;
        }
        let Some(mut chunk) = shared.log.chunk(CommitLogOffset(next), batch) else {
            {
                let id = conn.slave_id.load(Ordering::Acquire);
                let mut c = lock(&shared.caught_up);
                let e = c.entry(id).or_insert(0);
                *e = (*e).max(now_ms());
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = end_rx.changed() => {}
                _ = conn.wake.notified() => {}
            }
            continue;
        };
        // Never across an epoch: the header names the epoch of its bytes.
        let Some(range) = current_epoch(shared, &mut t, next) else {
            if !std::mem::replace(&mut t.warned_no_epoch, true) {
                warn!(slave = %conn.addr, offset = next, "no epoch entry holds the next bytes");
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), conn.wake.notified()).await;
            continue;
        };
        if next + chunk.len() as i64 > range.end_offset {
            chunk = chunk.slice(..usize::try_from(range.end_offset - next).unwrap_or(0));
        }
        t.warned_no_epoch = false;
        if chunk.is_empty() {
            continue;
        }
        conn.last_master_max
            .store(shared.log.max_offset().get(), Ordering::Release);
        conn.last_transfer_ms.store(now_ms(), Ordering::Release);
        if let Err(e) = send_frame(shared, &mut wr, &mut out, next, &range, &chunk).await {
            return e;
        }
        t.last_write = now_ms();
        t.next = Some(next + chunk.len() as i64);
    }
}

/// Where a slave's transfer starts (Java's write loop, first round), with
/// the epoch holding it; `None` while the master has nothing to ship from.
/// Warns of a missing entry only when `warned` is not yet set.
fn start_point(
    shared: &Shared,
    conn: &Conn,
    request: i64,
    warned: &mut bool,
) -> Option<(i64, EpochRange)> {
    let start = if request == 0 {
        if conn.sync_from_last_file.load(Ordering::Acquire) {
            let max = shared.log.max_offset().get();
            (max - max % shared.log.file_size().max(1)).max(0)
        } else {
            shared.log.min_offset().get()
        }
    } else {
        request
    };
    if start < 0 {
        return None;
    }
    match shared.epoch_at(start) {
        Some(r) => {
            *warned = false;
            Some((start, r))
        }
        None => {
            if !std::mem::replace(warned, true) {
                warn!(slave = %conn.addr, start, "no epoch entry holds the slave's start offset");
            }
            None
        }
    }
}

/// The epoch of the bytes at `next`, moving on to the next entry at an
/// epoch's end; the last entry is open-ended.
fn current_epoch(shared: &Shared, t: &mut Transfer, next: i64) -> Option<EpochRange> {
    let list = shared.epochs.list();
    let fresh = t.epoch.and_then(|e| list.range_of(e.epoch, i64::MAX));
    let r = match fresh {
        Some(r) if r.start_offset <= next && next < r.end_offset => r,
        _ => list.range_containing(next, i64::MAX)?,
    };
    t.epoch = Some(r);
    Some(r)
}

async fn heartbeat_if_idle(
    shared: &Shared,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    t: &mut Transfer,
    heartbeat_ms: u64,
) -> Result<(), String> {
    if now_ms().saturating_sub(t.last_write) < heartbeat_ms {
        return Ok(());
    }
    // Java names the current transfer epoch, or the first entry.
    let (epoch, start) = match t.epoch {
        Some(r) => (r.epoch, r.start_offset),
        None => shared
            .epochs
            .list()
            .first()
            .map_or((-1, -1), |e| (e.epoch, e.start_offset)),
    };
    let h = TransferHeader {
        body_size: 0,
        offset: t.next.unwrap_or(-1),
        epoch,
        epoch_start_offset: start,
        confirm_offset: shared.confirm_offset(),
    };
    wr.write_all(&h.encode())
        .await
        .map_err(|e| format!("write failed: {e}"))?;
    t.last_write = now_ms();
    Ok(())
}

async fn send_frame(
    shared: &Shared,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    out: &mut BytesMut,
    offset: i64,
    range: &EpochRange,
    data: &Bytes,
) -> Result<(), String> {
    let h = TransferHeader {
        body_size: data.len() as u32,
        offset,
        epoch: range.epoch,
        epoch_start_offset: range.start_offset,
        confirm_offset: shared.confirm_offset(),
    };
    out.clear();
    out.extend_from_slice(&h.encode());
    out.extend_from_slice(data);
    wr.write_all(out)
        .await
        .map_err(|e| format!("write failed: {e}"))
}
