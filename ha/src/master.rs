//! The master's HA service: the HA port, one task per slave connection, and
//! the store's replication hook.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use store::replication::{Admission, ReplicaAck, ReplicaWait, Replication};
use store::CommitLogOffset;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::frame::{self, REPORT_SIZE, TRANSFER_HEADER_SIZE};
use crate::{now_ms, HaConfig, ReplicaLog, SyncRule};

/// One slave connection as `GET_BROKER_HA_STATUS` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub addr: SocketAddr,
    /// The slave's last report (-1 before the first).
    pub slave_ack_offset: CommitLogOffset,
    /// Where the next frame starts (-1 before the first report).
    pub transfer_from: CommitLogOffset,
    /// Reported, and within `haMaxGapNotInSync` of the master's end.
    pub in_sync: bool,
}

/// The master side of classic HA (see the crate docs).
pub struct HaMaster {
    shared: Arc<Shared>,
}

struct Shared {
    log: Arc<dyn ReplicaLog>,
    cfg: HaConfig,
    conns: Mutex<Vec<Arc<Conn>>>,
    /// The log's end as last appended; connections wait on it for data.
    end: watch::Sender<CommitLogOffset>,
    waiters: Mutex<Vec<Waiter>>,
    /// Highest offset any slave has reported (Java `push2SlaveMaxOffset`).
    push2slave_max: AtomicI64,
    /// Connections closed because the slave reported an offset this master
    /// does not have.
    refused: AtomicU64,
    shutdown: CancellationToken,
}

struct Conn {
    addr: SocketAddr,
    ack: AtomicI64,
    transfer_from: AtomicI64,
    reported: Notify,
}

/// How often (in waiting puts, a power of two) timed-out waits are dropped
/// without a report.
const PRUNE_EVERY: usize = 1024;

/// A put waiting for `acks` replicas (the master counted) to hold `end`.
struct Waiter {
    end: CommitLogOffset,
    acks: u32,
    done: oneshot::Sender<()>,
}

impl Shared {
    /// Every connection's last report.
    fn acks(&self) -> Vec<CommitLogOffset> {
        lock(&self.conns)
            .iter()
            .map(|c| CommitLogOffset(c.ack.load(Ordering::Acquire)))
            .collect()
    }

    /// Answers the waiters the current acknowledgements satisfy, and drops
    /// those whose put stopped waiting (timed out).
    fn settle(&self) {
        let acks = self.acks();
        let mut waiters = lock(&self.waiters);
        let pending = std::mem::take(&mut *waiters);
        for w in pending {
            if enough(&acks, w.end, w.acks) {
                let _ = w.done.send(());
            } else if !w.done.is_closed() {
                waiters.push(w);
            }
        }
    }
}

/// Whether `acks` replicas, the master counted, hold every byte below `end`
/// given the slaves' last reports.
fn enough(reports: &[CommitLogOffset], end: CommitLogOffset, acks: u32) -> bool {
    1 + reports.iter().filter(|a| **a >= end).count() as u64 >= u64::from(acks)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl HaMaster {
    /// Serves `listener` (the HA port, Java `haListenPort`) until
    /// [`HaMaster::shutdown`]. Install the returned master as the store's
    /// replication hook.
    pub fn start(log: Arc<dyn ReplicaLog>, listener: TcpListener, cfg: HaConfig) -> Arc<HaMaster> {
        let (end, _) = watch::channel(log.max_offset());
        let shared = Arc::new(Shared {
            log,
            cfg,
            conns: Mutex::new(Vec::new()),
            end,
            waiters: Mutex::new(Vec::new()),
            push2slave_max: AtomicI64::new(0),
            refused: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
        });
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, "HA service listening");
        }
        tokio::spawn(accept_loop(shared.clone(), listener));
        Arc::new(HaMaster { shared })
    }

    /// Closes the HA port and every connection; waiting puts time out.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// The slave connections now open.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let end = self.shared.log.max_offset();
        let gap = self.shared.cfg.max_gap_not_in_sync;
        lock(&self.shared.conns)
            .iter()
            .map(|c| {
                let ack = c.ack.load(Ordering::Acquire);
                ConnectionInfo {
                    addr: c.addr,
                    slave_ack_offset: CommitLogOffset(ack),
                    transfer_from: CommitLogOffset(c.transfer_from.load(Ordering::Acquire)),
                    in_sync: ack >= 0 && end.get() - ack < gap,
                }
            })
            .collect()
    }

    /// Replicas holding everything below the log's end, the master counted
    /// (Java classic `inSyncReplicasNums`: slaves within `haMaxGapNotInSync`).
    pub fn in_sync_replicas(&self) -> u32 {
        1 + self.connections().iter().filter(|c| c.in_sync).count() as u32
    }

    /// Connections closed so far because a slave reported an offset beyond
    /// this master's end (or a negative one).
    pub fn refused_slaves(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// Puts waiting for acknowledgements (and timed-out waits not yet
    /// dropped).
    pub fn waiting_puts(&self) -> usize {
        lock(&self.shared.waiters).len()
    }

    /// Java's `push2SlaveMaxOffset`.
    pub fn push_to_slave_max_offset(&self) -> CommitLogOffset {
        CommitLogOffset(self.shared.push2slave_max.load(Ordering::Acquire))
    }
}

impl Drop for HaMaster {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

impl Replication for HaMaster {
    fn admit(&self, log_end: CommitLogOffset) -> Admission {
        match self.shared.cfg.sync {
            SyncRule::Async => Admission::Go,
            SyncRule::Sync { in_sync_replicas } if in_sync_replicas <= 1 => Admission::Go,
            SyncRule::Sync { in_sync_replicas } => Admission::Wait {
                acks: in_sync_replicas,
            },
            SyncRule::SyncV4 => {
                let s = &self.shared;
                let slave_ok = !lock(&s.conns).is_empty()
                    && log_end.get() - s.push2slave_max.load(Ordering::Acquire)
                        < s.cfg.max_gap_not_in_sync;
                if slave_ok {
                    Admission::Wait { acks: 2 }
                } else {
                    Admission::StoreWithoutSlave
                }
            }
        }
    }

    fn appended(&self, log_end: CommitLogOffset) {
        // Only slave transfer loops listen, and each reads the log itself
        // before it first waits; without a slave (a lone master, the common
        // case) skip the watch's lock and wake-ups on every put.
        if self.shared.end.receiver_count() > 0 {
            self.shared.end.send_replace(log_end);
        }
    }

    fn wait(&self, end: CommitLogOffset, acks: u32) -> ReplicaWait {
        let s = &self.shared;
        if enough(&s.acks(), end, acks) {
            return Box::pin(std::future::ready(ReplicaAck::Acked));
        }
        let (done, rx) = oneshot::channel();
        {
            let mut waiters = lock(&s.waiters);
            // Waits that timed out leave their entry until the next report
            // settles them; with no slave reporting, drop them here now and
            // then so the list stays bounded by the puts still waiting.
            if waiters.len() >= PRUNE_EVERY && waiters.len() & (PRUNE_EVERY - 1) == 0 {
                waiters.retain(|w| !w.done.is_closed());
            }
            waiters.push(Waiter { end, acks, done });
        }
        // An acknowledgement between the check and the push: settle now.
        s.settle();
        let timeout = s.cfg.slave_timeout;
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

async fn connection(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(Conn {
        addr,
        ack: AtomicI64::new(-1),
        transfer_from: AtomicI64::new(-1),
        reported: Notify::new(),
    });
    lock(&shared.conns).push(conn.clone());
    info!(slave = %addr, "HA connection from a slave");
    let (rd, wr) = stream.into_split();
    let why = tokio::select! {
        _ = shared.shutdown.cancelled() => "shutting down".to_owned(),
        r = read_reports(&shared, &conn, rd) => r,
        r = ship(&shared, &conn, wr) => r,
    };
    lock(&shared.conns).retain(|c| !Arc::ptr_eq(c, &conn));
    info!(slave = %addr, reason = %why, "HA connection closed");
}

/// Reads the slave's 8-byte reports; returns why the connection ends.
async fn read_reports(
    shared: &Shared,
    conn: &Conn,
    mut rd: tokio::net::tcp::OwnedReadHalf,
) -> String {
    let mut buf = vec![0u8; 64 * 1024];
    let mut held = 0usize;
    loop {
        let n =
            match tokio::time::timeout(shared.cfg.housekeeping_interval, rd.read(&mut buf[held..]))
                .await
            {
                Err(_) => return "nothing read within haHousekeepingInterval".into(),
                Ok(Ok(0)) => return "closed by the slave".into(),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return format!("read failed: {e}"),
            };
        held += n;
        let Some(offset) = frame::last_report(&buf[..held]) else {
            continue;
        };
        let whole = held - held % REPORT_SIZE;
        buf.copy_within(whole..held, 0);
        held -= whole;
        // A slave cannot hold more than its master wrote: garbage, or a
        // slave ahead of this master (promoted from a lagging slave). Java
        // would stream this master's bytes after the slave's own tail; we
        // close instead, so neither log is changed.
        let end = shared.log.max_offset().get();
        if offset < 0 || offset > end {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            warn!(slave = %conn.addr, offset, master_end = end,
                "slave reports an offset this master does not have; closing");
            return format!("slave offset {offset} outside 0..={end}");
        }
        if conn.ack.swap(offset, Ordering::AcqRel) < 0 {
            debug!(slave = %conn.addr, offset, "first HA report");
            conn.reported.notify_one();
        }
        shared.push2slave_max.fetch_max(offset, Ordering::AcqRel);
        shared.settle();
    }
}

/// Ships the commit log to the slave from where it asked; returns why the
/// connection ends.
async fn ship(shared: &Shared, conn: &Conn, mut wr: tokio::net::tcp::OwnedWriteHalf) -> String {
    // The first report says where to start.
    let request = loop {
        let notified = conn.reported.notified();
        let a = conn.ack.load(Ordering::Acquire);
        if a >= 0 {
            break a;
        }
        notified.await;
    };
    let mut next = CommitLogOffset(if request == 0 {
        // An empty slave gets the master's last file, as in Java.
        let max = shared.log.max_offset().get();
        (max - max % shared.log.file_size().max(1)).max(0)
    } else {
        request
    });
    info!(slave = %conn.addr, request, start = next.get(), "HA transfer starts");
    let mut end_rx = shared.end.subscribe();
    let mut last_write = now_ms();
    let heartbeat_ms = u64::try_from(shared.cfg.heartbeat_interval.as_millis()).unwrap_or(u64::MAX);
    let mut out = Vec::with_capacity(TRANSFER_HEADER_SIZE + shared.cfg.transfer_batch_size);
    loop {
        conn.transfer_from.store(next.get(), Ordering::Release);
        if let Some(chunk) = shared
            .log
            .chunk(next, shared.cfg.transfer_batch_size.max(1))
        {
            out.clear();
            out.extend_from_slice(&frame::encode_header(next.get(), chunk.len() as u32));
            out.extend_from_slice(&chunk);
            if let Err(e) = wr.write_all(&out).await {
                return format!("write failed: {e}");
            }
            next += chunk.len() as i64;
            last_write = now_ms();
            continue;
        }
        if now_ms().saturating_sub(last_write) >= heartbeat_ms {
            if let Err(e) = wr.write_all(&frame::encode_header(next.get(), 0)).await {
                return format!("write failed: {e}");
            }
            last_write = now_ms();
        }
        // New data, or at most 100 ms (Java), then look again.
        let _ = tokio::time::timeout(Duration::from_millis(100), end_rx.changed()).await;
    }
}
