//! The AutoSwitch slave: one connection to the master's HA port at a time
//! (Java `AutoSwitchHAClient`): handshake, truncation to the consistent
//! point, then the TRANSFER stream.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use store::{CommitLogOffset, EpochEntry, EpochFile, EpochList};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::frame::{self, MasterHandshake, MasterMessage, SlaveHandshake};
use super::{lock, prepare_slave, AutoSwitchConfig, AutoSwitchLog};
use crate::now_ms;

/// Java's slave read buffer; larger frames are refused by the decoder.
const READ_BUFFER: usize = 4 * 1024 * 1024;

/// The client as `GET_BROKER_HA_STATUS` shows it on a slave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoSwitchClientStatus {
    /// The master's HA address in use, if any.
    pub master_addr: Option<String>,
    /// Connected and past the handshake.
    pub transferring: bool,
    /// Monotonic ms of the last read / write on the connection (0: never).
    pub last_read_ms: u64,
    pub last_write_ms: u64,
    /// The last offset reported to the master.
    pub reported_offset: CommitLogOffset,
    /// Where the last handshake cut the log (-1: not yet).
    pub truncated_to: CommitLogOffset,
}

/// The slave side of AutoSwitch HA (see the module docs).
pub struct AutoSwitchClient {
    shared: Arc<Shared>,
}

struct Shared {
    log: Arc<dyn AutoSwitchLog>,
    epochs: Arc<EpochFile>,
    cfg: AutoSwitchConfig,
    broker_id: i64,
    master: watch::Sender<Option<String>>,
    status: Mutex<AutoSwitchClientStatus>,
    /// `min(master's confirm offset, local max offset)`, -1 before the
    /// first frame.
    confirm: AtomicI64,
    shutdown: CancellationToken,
}

impl AutoSwitchClient {
    /// Replicates from `master` (an HA address `host:port`), or waits for
    /// one ([`update_master_address`](Self::update_master_address)), as the
    /// slave with controller broker id `broker_id`. The store must be in
    /// replica mode (`set_replica(true)`).
    pub fn start(
        log: Arc<dyn AutoSwitchLog>,
        epochs: Arc<EpochFile>,
        master: Option<String>,
        cfg: AutoSwitchConfig,
        broker_id: i64,
    ) -> AutoSwitchClient {
        let (tx, _) = watch::channel(master);
        let shared = Arc::new(Shared {
            log,
            epochs,
            cfg,
            broker_id,
            master: tx,
            status: Mutex::new(AutoSwitchClientStatus {
                truncated_to: CommitLogOffset(-1),
                ..AutoSwitchClientStatus::default()
            }),
            confirm: AtomicI64::new(-1),
            shutdown: CancellationToken::new(),
        });
        tokio::spawn(run(shared.clone()));
        AutoSwitchClient { shared }
    }

    /// The master's HA address changed (a REGISTER_BROKER answer after a
    /// role change, Java `updateHaMasterAddress`): the current connection,
    /// if to another address, is closed and the client connects anew.
    pub fn update_master_address(&self, addr: Option<String>) {
        self.shared.master.send_if_modified(|m| {
            if *m == addr {
                return false;
            }
            *m = addr;
            true
        });
    }

    pub fn status(&self) -> AutoSwitchClientStatus {
        lock(&self.shared.status).clone()
    }

    /// The confirm offset the master last sent, capped by the local log's
    /// end (Java sets the slave store's confirm offset to it); -1 before
    /// the first frame.
    pub fn confirm_offset(&self) -> CommitLogOffset {
        CommitLogOffset(self.shared.confirm.load(Ordering::Acquire))
    }

    /// Stops the client and closes its connection.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }
}

impl Drop for AutoSwitchClient {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

async fn run(shared: Arc<Shared>) {
    let mut master_rx = shared.master.subscribe();
    loop {
        let addr = master_rx.borrow_and_update().clone();
        let Some(addr) = addr else {
            tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                r = master_rx.changed() => if r.is_err() { return },
            }
            continue;
        };
        lock(&shared.status).master_addr = Some(addr.clone());
        // `changed()` marks the new address seen, so a change has to be
        // remembered here: it dials the new master at once, while a failed
        // session waits out the reconnect delay.
        let (why, address_changed) = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = master_rx.changed() => ("the master's address changed".to_owned(), true),
            r = session(&shared, &addr) => (r, false),
        };
        lock(&shared.status).transferring = false;
        info!(master = %addr, reason = %why, "AutoSwitch HA connection to the master closed");
        if address_changed || master_rx.has_changed().unwrap_or(false) {
            continue;
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = master_rx.changed() => {}
            _ = tokio::time::sleep(shared.cfg.ha.reconnect_delay) => {}
        }
    }
}

async fn report(
    shared: &Shared,
    wr: &mut OwnedWriteHalf,
    offset: CommitLogOffset,
) -> Result<(), String> {
    // One write per report: the Java master parses whole messages only.
    wr.write_all(&frame::encode_report(offset.get()))
        .await
        .map_err(|e| format!("report failed: {e}"))?;
    let mut st = lock(&shared.status);
    st.reported_offset = offset;
    st.last_write_ms = now_ms();
    Ok(())
}

/// One connection: prepare, handshake, truncate, transfer until something
/// fails; returns why it ended.
async fn session(shared: &Shared, addr: &str) -> String {
    if let Err(e) = prepare_slave(shared.log.as_ref(), &shared.epochs) {
        return format!("could not cut the torn tail: {e}");
    }
    let stream = match tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return format!("connect failed: {e}"),
        Err(_) => return "connect timed out".into(),
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let hello = SlaveHandshake {
        sync_from_last_file: shared.cfg.sync_from_last_file,
        async_learner: shared.cfg.async_learner,
        broker_id: shared.broker_id,
    };
    if let Err(e) = wr.write_all(&hello.encode()).await {
        return format!("handshake failed: {e}");
    }
    lock(&shared.status).last_write_ms = now_ms();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let reply = match read_handshake(shared, &mut rd, &mut buf).await {
        Ok(h) => h,
        Err(e) => return e,
    };
    let start = match truncate_to_master(shared, &reply) {
        Ok(s) => s,
        Err(e) => {
            // Java waits 2 s before the connection is closed and retried.
            tokio::time::sleep(Duration::from_secs(2)).await;
            return e;
        }
    };
    {
        let mut st = lock(&shared.status);
        st.truncated_to = start;
        st.transferring = true;
    }
    info!(master = %addr, start = start.get(), "AutoSwitch HA transfer starts");
    if let Err(e) = report(shared, &mut wr, start).await {
        return e;
    }
    transfer(shared, addr, rd, wr, buf, start).await
}

async fn read_handshake(
    shared: &Shared,
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
) -> Result<MasterHandshake, String> {
    let deadline = tokio::time::Instant::now() + shared.cfg.handshake_timeout;
    loop {
        match frame::decode_master(buf) {
            Ok(Some(MasterMessage::Handshake(h))) => return Ok(h),
            Ok(Some(MasterMessage::Transfer { .. })) => {
                return Err("master sent a TRANSFER frame before its handshake".into())
            }
            Ok(None) => {}
            Err(e) => return Err(format!("bad handshake from the master: {e}")),
        }
        match tokio::time::timeout_at(deadline, rd.read_buf(buf)).await {
            Err(_) => return Err("no handshake reply within the timeout".into()),
            Ok(Ok(0)) => return Err("closed by the master".into()),
            Ok(Ok(_)) => lock(&shared.status).last_read_ms = now_ms(),
            Ok(Err(e)) => return Err(format!("read failed: {e}")),
        }
    }
}

/// Java `doTruncate`: where this slave's log agrees with the master's, cut
/// there; the offset to report first.
fn truncate_to_master(shared: &Shared, h: &MasterHandshake) -> Result<CommitLogOffset, String> {
    let local = shared.epochs.list();
    if local.is_empty() {
        info!("local epoch list is empty: a new replica, no truncation");
        return Ok(CommitLogOffset(0));
    }
    let master = EpochList::from_entries(h.entries.clone());
    let local_end = shared.log.max_offset().get();
    let local_min = shared.log.min_offset().get();
    if local_end <= 0 || local_min < 0 || local_min >= local_end {
        // No bytes to keep or cut: the local entries (say epoch 1 learnt
        // from a heartbeat of a master that died before shipping data)
        // describe nothing, and matching them against a successor's list
        // would fail forever. Start afresh from the frames' epochs. (An
        // empty list is not written to the file; the next append is.)
        info!(local = ?local.entries(), local_end,
            "local commit log is empty: epoch entries cleared, no truncation");
        shared
            .epochs
            .reset(Vec::new())
            .map_err(|e| format!("epoch file: {e}"))?;
        return Ok(CommitLogOffset(local_end.max(0)));
    }
    let Some(point) = local.consistent_point(local_end, &master, h.max_offset) else {
        warn!(local = ?local.entries(), master = ?master.entries(),
            "failed to find a consistent point with the master");
        return Err("no consistent point with the master's epochs".into());
    };
    if point < local_end {
        warn!(
            from = local_end,
            to = point,
            "truncating the log to the master's"
        );
    }
    let end = shared
        .log
        .truncate_to(CommitLogOffset(point))
        .map_err(|e| format!("truncate to {point} failed: {e}"))?;
    shared
        .epochs
        .truncate_suffix_from_offset(point)
        .map_err(|e| format!("epoch file: {e}"))?;
    Ok(end.min(CommitLogOffset(point)))
}

async fn transfer(
    shared: &Shared,
    addr: &str,
    mut rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    mut buf: BytesMut,
    start: CommitLogOffset,
) -> String {
    let mut reported = start;
    let mut received_epoch: Option<i32> = None;
    let mut last_read = now_ms();
    let heartbeat = shared.cfg.ha.heartbeat_interval;
    let heartbeat_ms = u64::try_from(heartbeat.as_millis()).unwrap_or(u64::MAX);
    let housekeeping_ms =
        u64::try_from(shared.cfg.ha.housekeeping_interval.as_millis()).unwrap_or(u64::MAX);
    loop {
        // Whole frames already buffered first (one may have come with the
        // handshake).
        loop {
            let (header, data) = match frame::decode_master(&mut buf) {
                Ok(Some(MasterMessage::Transfer { header, data })) => (header, data),
                Ok(Some(MasterMessage::Handshake(_))) => {
                    return "master sent a handshake in TRANSFER state".into()
                }
                Ok(None) => break,
                Err(e) => return format!("bad frame from the master: {e}"),
            };
            let local = shared.log.max_offset().get();
            if local != 0 && local != header.offset {
                warn!(master = %addr, offset = header.offset, local,
                    "master pushed an offset that is not this slave's end");
                return format!(
                    "master offset {} is not the slave's end {local}",
                    header.offset
                );
            }
            // Every frame, heartbeats included (Java records the epoch
            // before looking at the body): a slave that got no data yet
            // still learns the master's epoch. A master without entries
            // names epoch -1: nothing to record.
            if received_epoch != Some(header.epoch)
                && header.epoch >= 0
                && header.epoch_start_offset >= 0
            {
                received_epoch = Some(header.epoch);
                let e = EpochEntry {
                    epoch: header.epoch,
                    start_offset: header.epoch_start_offset,
                };
                match shared.epochs.append(e) {
                    Ok(true) => info!(
                        epoch = e.epoch,
                        start = e.start_offset,
                        "epoch entry appended"
                    ),
                    Ok(false) => {}
                    Err(err) => return format!("epoch file: {err}"),
                }
            }
            if !data.is_empty() {
                if let Err(e) = shared.log.append(CommitLogOffset(header.offset), &data) {
                    warn!(master = %addr, offset = header.offset, error = %e,
                        "could not append replicated data");
                    return format!("append failed: {e}");
                }
            }
            let max = shared.log.max_offset().get();
            let confirm = header.confirm_offset.min(max);
            shared.confirm.store(confirm, Ordering::Release);
            if !shared.cfg.read_uncommitted {
                shared.log.set_read_limit(Some(CommitLogOffset(confirm)));
            }
        }
        let now = shared.log.max_offset();
        let idle_write = now_ms().saturating_sub(lock(&shared.status).last_write_ms);
        if now > reported || idle_write >= heartbeat_ms {
            if let Err(e) = report(shared, &mut wr, now.max(reported)).await {
                return e;
            }
            reported = now.max(reported);
        }
        if now_ms().saturating_sub(last_read) >= housekeeping_ms {
            return "nothing read within haHousekeepingInterval".into();
        }
        if buf.capacity() - buf.len() < 64 * 1024 && buf.len() < READ_BUFFER {
            buf.reserve(64 * 1024);
        }
        let read =
            tokio::time::timeout(heartbeat.min(Duration::from_secs(1)), rd.read_buf(&mut buf))
                .await;
        match read {
            Err(_) => {}
            Ok(Ok(0)) => return "closed by the master".into(),
            Ok(Ok(_)) => {
                last_read = now_ms();
                lock(&shared.status).last_read_ms = last_read;
            }
            Ok(Err(e)) => return format!("read failed: {e}"),
        }
    }
}
