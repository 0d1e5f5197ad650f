//! A connection's read loop: decodes frames, hands responses to their
//! waiters, runs requests through the router and writes their answers.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder};
use tracing::{debug, info, warn};

use super::idle::IdleTimer;
use super::write::{write_now, WriteSide, PENDING_HIGH_WATER};
use super::{Connection, Router};
use crate::codec::RemotingCodec;
use crate::command::{RemotingCommand, FLAG_ONEWAY, FLAG_RESPONSE};

/// Requests from one peer being handled at once before we stop reading.
const MAX_IN_FLIGHT_PER_CONNECTION: usize = 4096;
/// Free space kept in the read buffer before each read.
const READ_SPARE: usize = 32 * 1024;

/// An answer that was not ready at once, polled by the read loop: `None`
/// for a oneway request (nothing to write).
type LaterAnswer = Pin<Box<dyn Future<Output = Option<RemotingCommand>> + Send>>;

/// Encodes an answer into the read loop's output buffer.
fn encode_answer(
    codec: &mut RemotingCodec,
    response: &RemotingCommand,
    out: &mut BytesMut,
    peer: SocketAddr,
) {
    if let Err(e) = Encoder::<&RemotingCommand>::encode(codec, response, out) {
        warn!(%peer, error = %e, "dropping a response that cannot be encoded");
    }
}

/// What the read loop does with one request: run its handler and, when the
/// answer is ready at once, encode it into `out` (written once per batch of
/// frames read); answers that take longer are polled by the read loop
/// alongside its reads and written with whatever else is ready then.
fn handle_request(
    conn: &Connection,
    router: &Router,
    cmd: RemotingCommand,
    codec: &mut RemotingCodec,
    out: &mut BytesMut,
) -> Option<LaterAnswer> {
    let oneway = cmd.is_oneway();
    let opaque = cmd.opaque;
    let serialize_type = cmd.serialize_type;
    let mut reply = router.dispatch(conn.clone(), cmd);
    let finish = move |mut response: RemotingCommand| {
        response.opaque = opaque;
        response.flag = (response.flag | FLAG_RESPONSE) & !FLAG_ONEWAY;
        response.serialize_type = serialize_type;
        response
    };
    // Most answers are ready at once (route lookups, offsets, sends).
    match futures::FutureExt::now_or_never(&mut reply) {
        Some(response) => {
            if !oneway {
                encode_answer(codec, &finish(response), out, conn.peer());
            }
            None
        }
        None if oneway => Some(Box::pin(async move {
            reply.await;
            None
        })),
        None => Some(Box::pin(async move { Some(finish(reply.await)) })),
    }
}

/// Reads what is there into `buf`. While `buf` has no allocation (before
/// the connection's first bytes), through a small stack buffer, so that idle
/// connections cost no read buffer (about 4 KiB resident each otherwise).
async fn read_some<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    if buf.capacity() != 0 {
        return reader.read_buf(buf).await;
    }
    let mut first = [0u8; 64];
    let n = reader.read(&mut first).await?;
    if n > 0 {
        buf.reserve(READ_SPARE);
        buf.extend_from_slice(&first[..n]);
    }
    Ok(n)
}

pub(super) async fn read_loop<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut reader: R,
    conn: Connection,
    router: Arc<Router>,
    side: Arc<WriteSide<W>>,
    idle_timeout: Option<Duration>,
) {
    let mut idle = IdleTimer::new(idle_timeout);
    let mut codec = RemotingCodec::default();
    // Allocated at the first bytes read (see `read_some`): a connection
    // that never sends holds no read buffer.
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    // Answers still to come (held pulls, quorum waits, calls to the peer):
    // polled here, so the answers that become ready together (one quorum
    // round for many sends) are written together, with no task each.
    let mut waiting: FuturesUnordered<LaterAnswer> = FuturesUnordered::new();
    let peer = conn.peer();
    'read: loop {
        // Every complete frame already read, then one write for their answers.
        let mut bad_frame = false;
        loop {
            let cmd = match codec.decode(&mut buf) {
                Ok(Some(cmd)) => cmd,
                Ok(None) => break,
                Err(e) => {
                    warn!(%peer, error = %e, "closing connection after a bad frame");
                    bad_frame = true;
                    break;
                }
            };
            if cmd.is_response() {
                let waiter = conn
                    .shared
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&cmd.opaque);
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(cmd);
                    }
                    None => debug!(%peer, opaque = cmd.opaque, "response matches no request"),
                }
                continue;
            }
            let Some(later) = handle_request(&conn, &router, cmd, &mut codec, &mut out) else {
                continue;
            };
            // At most MAX_IN_FLIGHT_PER_CONNECTION waiting answers: past
            // that, no more reading until one is done.
            while waiting.len() >= MAX_IN_FLIGHT_PER_CONNECTION {
                if !out.is_empty() && write_now(&side, &mut out).await.is_err() {
                    break 'read;
                }
                tokio::select! {
                    _ = conn.shared.closed.cancelled() => break 'read,
                    _ = idle.expired(&side.activity) => {
                        log_idle(peer, idle.limit);
                        break 'read;
                    }
                    Some(answer) = waiting.next() => {
                        if let Some(answer) = answer {
                            encode_answer(&mut codec, &answer, &mut out, peer);
                        }
                    }
                }
            }
            waiting.push(later);
        }
        if !out.is_empty() {
            match write_now(&side, &mut out).await {
                Err(e) => {
                    debug!(%peer, error = %e, "write failed");
                    break;
                }
                Ok(queued) if queued > PENDING_HIGH_WATER => {
                    // The peer is not reading its answers: stop reading its
                    // requests until the write task has caught up.
                    loop {
                        let drained = side.drained.notified();
                        tokio::pin!(drained);
                        drained.as_mut().enable();
                        if side.lock().pending.len() <= PENDING_HIGH_WATER {
                            break;
                        }
                        tokio::select! {
                            _ = conn.shared.closed.cancelled() => break 'read,
                            _ = idle.expired(&side.activity) => {
                                log_idle(peer, idle.limit);
                                break 'read;
                            }
                            _ = drained => {}
                        }
                    }
                }
                Ok(_) => {}
            }
        }
        if bad_frame {
            break;
        }
        if buf.capacity() != 0 && buf.capacity() - buf.len() < READ_SPARE / 4 {
            buf.reserve(READ_SPARE);
        }
        let read = tokio::select! {
            biased;
            _ = conn.shared.closed.cancelled() => break,
            _ = idle.expired(&side.activity) => {
                log_idle(peer, idle.limit);
                break;
            }
            Some(answer) = waiting.next(), if !waiting.is_empty() => {
                // This one and every other answer ready now, then one write
                // (at the top of the loop).
                let mut answer = Some(answer);
                while let Some(a) = answer {
                    if let Some(a) = a {
                        encode_answer(&mut codec, &a, &mut out, peer);
                    }
                    answer = waiting.next().now_or_never().flatten();
                }
                continue 'read;
            }
            // Cancel-safe: bytes are only added once read.
            r = read_some(&mut reader, &mut buf) => r,
        };
        match read {
            Ok(0) => break,
            Ok(_) => side.activity.touch(),
            Err(e) => {
                debug!(%peer, error = %e, "read failed");
                break;
            }
        }
    }
    conn.shared.closed.cancel();
    conn.shared
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    if !waiting.is_empty() {
        // Their answers have nowhere to go, but their handlers finish what
        // they started (a queued put gives its queue offsets back on failure).
        tokio::spawn(async move { while waiting.next().await.is_some() {} });
    }
    debug!(%peer, id = conn.id(), "connection closed");
    for hook in &router.on_close {
        hook(&conn);
    }
}

fn log_idle(peer: SocketAddr, limit: Duration) {
    info!(
        %peer,
        idle_seconds = limit.as_secs_f64(),
        "closing an idle connection: no read or write for serverChannelMaxIdleTimeSeconds"
    );
}
