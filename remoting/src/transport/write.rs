//! The write half of a connection: writes without waiting from the read
//! loop, and the write task for everything else.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use tokio_util::codec::Encoder;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::idle::Activity;
use crate::codec::RemotingCodec;
use crate::command::RemotingCommand;

/// The write half of a connection, shared by the read loop, which writes its
/// answers straight to the socket (no task hop; one write per batch of
/// requests read, or per batch of waiting answers that became ready
/// together), and the write task, which writes everything else (requests we
/// send) and whatever the read loop could not write without waiting.
///
/// Whoever writes takes `io` out for the duration; the other side then
/// appends whole frames to `pending` instead. Whoever puts `io` back checks
/// `pending` under the same lock, so no frame is lost or interleaved with
/// another; frames may leave in a different order than they were produced,
/// which RocketMQ allows (responses are matched by `opaque`).
pub(super) struct WriteSide<W> {
    state: Mutex<WriteState<W>>,
    /// The write task has work: bytes in `pending` or a flush owed.
    wake: Notify,
    /// The write task emptied `pending` (for a read loop over the high mark).
    pub(super) drained: Notify,
    /// Last read or write, for the idle timeout.
    pub(super) activity: Activity,
}

pub(super) struct WriteState<W> {
    /// `None` while the read loop or the write task is writing.
    io: Option<W>,
    /// Whole encoded frames waiting for the write task.
    pub(super) pending: BytesMut,
    /// Bytes were written without a completed flush.
    flush_owed: bool,
}

impl<W> WriteSide<W> {
    pub(super) fn new(io: W, track_activity: bool) -> Self {
        WriteSide {
            state: Mutex::new(WriteState {
                io: Some(io),
                pending: BytesMut::new(),
                flush_owed: false,
            }),
            wake: Notify::new(),
            drained: Notify::new(),
            activity: Activity::new(track_activity),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, WriteState<W>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `pending` grows past this only while the peer does not read; the read
/// loop then stops reading until the write task has caught up.
pub(super) const PENDING_HIGH_WATER: usize = 8 * 1024 * 1024;

/// Writes `buf` without waiting for the socket: as much as it takes now; the
/// rest goes to the write task. Clears `buf`. Returns the number of bytes
/// left waiting in `pending`.
pub(super) async fn write_now<W: AsyncWrite + Unpin>(
    side: &WriteSide<W>,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    let mut io = {
        let mut st = side.lock();
        match st.io.take() {
            Some(io) if st.pending.is_empty() => io,
            other => {
                // Someone else is writing (or the write task is about to):
                // queue behind them.
                let idle = other.is_some();
                st.io = other;
                st.pending.extend_from_slice(buf);
                buf.clear();
                if idle {
                    side.wake.notify_one();
                }
                return Ok(st.pending.len());
            }
        }
    };
    let mut written = 0;
    // Poll once: what the socket takes now, no waiting.
    let result = std::future::poll_fn(|cx| {
        while written < buf.len() {
            match Pin::new(&mut io).poll_write(cx, &buf[written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Ready(Ok(false)),
            }
        }
        match Pin::new(&mut io).poll_flush(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(true)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Ready(Ok(false)),
        }
    })
    .await;
    if written > 0 {
        side.activity.touch();
    }
    let mut st = side.lock();
    let done = match result {
        Ok(done) => done,
        Err(e) => {
            buf.clear();
            return Err(e);
        }
    };
    if !done {
        // The unwritten tail of a frame must go out before anything else.
        let mut rest = BytesMut::with_capacity(buf.len() - written + st.pending.len());
        rest.extend_from_slice(&buf[written..]);
        rest.extend_from_slice(&st.pending);
        st.pending = rest;
        st.flush_owed = true;
    }
    st.io = Some(io);
    if !st.pending.is_empty() || st.flush_owed {
        side.wake.notify_one();
    }
    buf.clear();
    Ok(st.pending.len())
}

pub(super) async fn write_loop<W: AsyncWrite + Unpin>(
    side: Arc<WriteSide<W>>,
    mut rx: mpsc::Receiver<Box<RemotingCommand>>,
    closed: CancellationToken,
    peer: SocketAddr,
) {
    let mut codec = RemotingCodec::default();
    let mut buf = BytesMut::new();
    'outer: loop {
        let first = tokio::select! {
            biased;
            _ = closed.cancelled() => break,
            cmd = rx.recv() => match cmd { Some(cmd) => Some(cmd), None => break },
            _ = side.wake.notified() => None,
        };
        let mut next = first;
        // Encode everything already queued. Before writing, step aside once
        // so that tasks about to queue frames (e.g. many callers each sending
        // one request) can join this write.
        let mut yielded = next.is_none();
        loop {
            while let Some(cmd) = next {
                if let Err(e) = Encoder::<&RemotingCommand>::encode(&mut codec, &*cmd, &mut buf) {
                    // Nothing was written for this command; the connection stays usable.
                    warn!(%peer, error = %e, "dropping a command that cannot be encoded");
                }
                next = rx.try_recv().ok();
            }
            if yielded {
                break;
            }
            tokio::task::yield_now().await;
            yielded = true;
            next = rx.try_recv().ok();
        }
        let mut io = {
            let mut st = side.lock();
            match st.io.take() {
                Some(io) => io,
                None => {
                    // The read loop is writing; it wakes us when it is done.
                    st.pending.extend_from_slice(&buf);
                    buf.clear();
                    continue;
                }
            }
        };
        loop {
            {
                let mut st = side.lock();
                if !st.pending.is_empty() {
                    if buf.is_empty() {
                        std::mem::swap(&mut buf, &mut st.pending);
                    } else {
                        // The pending bytes may start with the tail of a
                        // frame partly written: they go first.
                        let mut all = std::mem::take(&mut st.pending);
                        all.extend_from_slice(&buf);
                        buf = all;
                    }
                }
                st.flush_owed = false;
            }
            let written = async {
                io.write_all(&buf).await?;
                io.flush().await
            };
            let result = tokio::select! {
                biased;
                _ = closed.cancelled() => break 'outer,
                r = written => r,
            };
            buf.clear();
            if let Err(e) = result {
                debug!(%peer, error = %e, "write failed");
                break 'outer;
            }
            side.activity.touch();
            let mut st = side.lock();
            if st.pending.is_empty() && !st.flush_owed {
                st.io = Some(io);
                break;
            }
        }
        side.drained.notify_waiters();
    }
    closed.cancel();
    side.drained.notify_waiters();
}
