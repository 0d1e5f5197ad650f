//! The slave's HA client: one connection to the master's HA port at a time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use store::CommitLogOffset;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::frame::{self, TRANSFER_HEADER_SIZE};
use crate::{now_ms, HaConfig, ReplicaLog};

/// Java's slave read buffer: a frame larger than this cannot be taken.
const READ_BUFFER: usize = 4 * 1024 * 1024;

/// The client side as `GET_BROKER_HA_STATUS` shows it on a slave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStatus {
    /// The master's HA address in use, if any.
    pub master_addr: Option<String>,
    pub connected: bool,
    /// Monotonic ms of the last read / write on the connection (0: never).
    pub last_read_ms: u64,
    pub last_write_ms: u64,
    /// The last offset reported to the master.
    pub reported_offset: CommitLogOffset,
}

/// The slave side of classic HA (see the crate docs).
pub struct HaClient {
    shared: Arc<Shared>,
}

struct Shared {
    log: Arc<dyn ReplicaLog>,
    cfg: HaConfig,
    master: watch::Sender<Option<String>>,
    status: Mutex<ClientStatus>,
    shutdown: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl HaClient {
    /// Starts replicating from `master` (an HA address `host:port`), or
    /// waits for one ([`HaClient::set_master`]).
    pub fn start(log: Arc<dyn ReplicaLog>, master: Option<String>, cfg: HaConfig) -> HaClient {
        let (tx, _) = watch::channel(master);
        let shared = Arc::new(Shared {
            log,
            cfg,
            master: tx,
            status: Mutex::new(ClientStatus::default()),
            shutdown: CancellationToken::new(),
        });
        tokio::spawn(run(shared.clone()));
        HaClient { shared }
    }

    /// The master's HA address changed (a REGISTER_BROKER answer, a role
    /// change): the current connection, if to another address, is closed
    /// and the client connects to the new one.
    pub fn set_master(&self, addr: Option<String>) {
        self.shared.master.send_if_modified(|m| {
            if *m == addr {
                return false;
            }
            *m = addr;
            true
        });
    }

    pub fn status(&self) -> ClientStatus {
        lock(&self.shared.status).clone()
    }

    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }
}

impl Drop for HaClient {
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
        let why = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = master_rx.changed() => "the master's address changed".to_owned(),
            r = session(&shared, &addr) => r,
        };
        lock(&shared.status).connected = false;
        info!(master = %addr, reason = %why, "HA connection to the master closed");
        if master_rx.has_changed().unwrap_or(false) {
            continue;
        }
        // Java waits 5 s before it tries again; a new address ends the wait.
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = master_rx.changed() => {}
            _ = tokio::time::sleep(shared.cfg.reconnect_delay) => {}
        }
    }
}

async fn report(
    shared: &Shared,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    offset: CommitLogOffset,
) -> Result<(), String> {
    wr.write_all(&frame::encode_report(offset.get()))
        .await
        .map_err(|e| format!("report failed: {e}"))?;
    let mut st = lock(&shared.status);
    st.reported_offset = offset;
    st.last_write_ms = now_ms();
    Ok(())
}

/// One connection: report, then take frames until something fails.
async fn session(shared: &Shared, addr: &str) -> String {
    let stream = match tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return format!("connect failed: {e}"),
        Err(_) => return "connect timed out".into(),
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    lock(&shared.status).connected = true;
    info!(master = %addr, offset = shared.log.max_offset().get(), "HA connected to the master");
    // Report at once: the master starts shipping from here.
    let mut reported = shared.log.max_offset();
    if let Err(e) = report(shared, &mut wr, reported).await {
        return e;
    }
    let mut buf = vec![0u8; READ_BUFFER];
    let mut held = 0usize;
    let mut last_read = now_ms();
    let heartbeat = shared.cfg.heartbeat_interval;
    let housekeeping_ms =
        u64::try_from(shared.cfg.housekeeping_interval.as_millis()).unwrap_or(u64::MAX);
    loop {
        let read = tokio::time::timeout(
            heartbeat.min(Duration::from_secs(1)),
            rd.read(&mut buf[held..]),
        )
        .await;
        match read {
            Err(_) => {}
            Ok(Ok(0)) => return "closed by the master".into(),
            Ok(Ok(n)) => {
                held += n;
                last_read = now_ms();
                lock(&shared.status).last_read_ms = last_read;
            }
            Ok(Err(e)) => return format!("read failed: {e}"),
        }
        // Every complete frame in the buffer.
        let mut at = 0usize;
        while let Some((offset, size)) = frame::decode_header(&buf[at..held]) {
            let Ok(size) = usize::try_from(size) else {
                return format!("bad frame size {size}");
            };
            if TRANSFER_HEADER_SIZE + size > READ_BUFFER {
                return format!("frame of {size} bytes exceeds the read buffer");
            }
            if held - at < TRANSFER_HEADER_SIZE + size {
                break;
            }
            let local = shared.log.max_offset().get();
            if local != 0 && local != offset {
                warn!(master = %addr, offset, local, "master pushed an offset that is not this slave's end");
                return format!("master offset {offset} is not the slave's end {local}");
            }
            if size > 0 {
                let data = &buf[at + TRANSFER_HEADER_SIZE..at + TRANSFER_HEADER_SIZE + size];
                if let Err(e) = shared.log.append(CommitLogOffset(offset), data) {
                    warn!(master = %addr, offset, error = %e, "could not append replicated data");
                    return format!("append failed: {e}");
                }
            }
            at += TRANSFER_HEADER_SIZE + size;
        }
        buf.copy_within(at..held, 0);
        held -= at;
        let now = shared.log.max_offset();
        let idle_write = now_ms().saturating_sub(lock(&shared.status).last_write_ms);
        if now > reported || idle_write >= heartbeat.as_millis() as u64 {
            if let Err(e) = report(shared, &mut wr, now).await {
                return e;
            }
            reported = now;
        }
        if now_ms().saturating_sub(last_read) >= housekeeping_ms {
            return "nothing read within haHousekeepingInterval".into();
        }
    }
}
