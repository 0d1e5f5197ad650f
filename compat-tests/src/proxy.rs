//! A fault-injecting TCP proxy for tests that need to cut links between real
//! processes on loopback: put one [`FaultProxy`] on each directed link
//! (node i dials `proxy(i->j).addr()` instead of node j's port) and switch it
//! between [`Mode::Pass`], [`Mode::Blackhole`] (a network partition) and
//! [`Mode::Reset`] (connection refused/reset). [`ProxyMesh`] builds the full
//! set of directed links for a group and isolates one member with one call.
//!
//! Each proxy runs on its own thread with a small current-thread tokio
//! runtime, so synchronous tests can use it; `set_mode` is synchronous and
//! takes effect for every byte read after it returns.
//!
//! Semantics:
//! - `Pass`: every accepted connection is dialled through to the target and
//!   bytes are copied both ways. Half-close is not forwarded: when either side
//!   closes (or fails), both sides are closed.
//! - `Blackhole`: connections are accepted and kept open, but every byte is
//!   silently dropped in both directions (nothing reaches the target for new
//!   connections: they are not dialled through). Existing connections stay
//!   open and swallow bytes too.
//! - `Reset`: existing connections are closed with a TCP reset; new ones are
//!   accepted and reset at once.
//!
//! Leaving `Blackhole` closes every connection that lost bytes (a stream with
//! a hole in it is useless to a framed protocol); new connections made after
//! the switch back to `Pass` work normally.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// What a [`FaultProxy`] does with connections and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything.
    Pass,
    /// Accept and keep connections, drop every byte both ways (a partition).
    Blackhole,
    /// Reset existing connections, accept-and-reset new ones.
    Reset,
}

/// How long a pass-through connection waits to dial the target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A TCP proxy on `127.0.0.1:0` forwarding to one target, with injectable faults.
/// Dropping it stops the proxy and closes every connection it holds.
pub struct FaultProxy {
    addr: SocketAddr,
    target: SocketAddr,
    mode: watch::Sender<Mode>,
    accepted: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy in [`Mode::Pass`] listening on a free loopback port.
    pub fn start(target: SocketAddr) -> io::Result<FaultProxy> {
        FaultProxy::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), target)
    }

    /// Starts a proxy in [`Mode::Pass`] listening on `bind` (port 0: a free
    /// one), for a peer that is told an address rather than a port, e.g.
    /// `127.0.0.2:<the target's port>` in front of a listener on 127.0.0.1.
    pub fn start_at(bind: SocketAddr, target: SocketAddr) -> io::Result<FaultProxy> {
        let std_listener = std::net::TcpListener::bind(bind)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (mode, mode_rx) = watch::channel(Mode::Pass);
        let (stop, stop_rx) = oneshot::channel();
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || {
                rt.block_on(async move {
                    let listener = match TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(_) => return,
                    };
                    tokio::select! {
                        _ = accept_loop(listener, target, mode_rx, counter) => {}
                        _ = stop_rx => {}
                    }
                });
                // Dropping the runtime cancels every connection task, which
                // closes their sockets.
                drop(rt);
            })?;
        Ok(FaultProxy {
            addr,
            target,
            mode,
            accepted,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address to dial instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// Switches the mode. New connections and every byte read after this
    /// returns follow the new mode; existing connections react at once.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// How many connections the proxy has accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    mode: watch::Receiver<Mode>,
    accepted: Arc<AtomicU64>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(_) => {
                // EMFILE and friends: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let mut rx = mode.clone();
        tokio::spawn(async move {
            let m = *rx.borrow_and_update();
            match m {
                Mode::Reset => reset(&stream),
                Mode::Blackhole => swallow(stream, rx).await,
                Mode::Pass => pass(stream, target, rx).await,
            }
        });
    }
}

/// Abortive close: the peer sees a reset.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// A connection accepted while blackholed: read and drop until the mode changes.
async fn swallow(mut stream: TcpStream, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                match *mode.borrow_and_update() {
                    Mode::Blackhole => {}
                    Mode::Reset => return reset(&stream),
                    Mode::Pass => return,
                }
            }
        }
    }
}

/// What a direction pump found out.
enum End {
    /// Closed or failed: close both sides.
    Close,
    /// Mode is Reset: reset both sides.
    Reset,
}

async fn pass(mut client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let upstream = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)) => match r {
            Ok(Ok(s)) => s,
            _ => return,
        },
        _ = mode.changed() => {
            if *mode.borrow_and_update() == Mode::Reset {
                reset(&client);
            }
            return;
        }
    };
    let mut upstream = upstream;
    let _ = upstream.set_nodelay(true);
    // Once any direction has dropped bytes, the connection is tainted and is
    // closed when the mode leaves Blackhole.
    let holed = std::sync::atomic::AtomicBool::new(false);
    let end = {
        let (cr, cw) = client.split();
        let (ur, uw) = upstream.split();
        tokio::select! {
            e = pump(cr, uw, mode.clone(), &holed) => e,
            e = pump(ur, cw, mode.clone(), &holed) => e,
        }
    };
    if let End::Reset = end {
        reset(&client);
        reset(&upstream);
    }
}

/// Copies one direction following the mode.
async fn pump<R, W>(
    mut src: R,
    mut dst: W,
    mut mode: watch::Receiver<Mode>,
    holed: &std::sync::atomic::AtomicBool,
) -> End
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            r = src.read(&mut buf) => match r {
                Ok(0) | Err(_) => return End::Close,
                Ok(n) => n,
            },
            changed = mode.changed() => {
                if changed.is_err() {
                    return End::Close;
                }
                if let Some(e) = continue_or_end(*mode.borrow_and_update(), holed) {
                    return e;
                }
                continue;
            }
        };
        // Strict: a byte read after set_mode returned follows the new mode.
        let now = *mode.borrow_and_update();
        if let Some(e) = continue_or_end(now, holed) {
            return e;
        }
        if now == Mode::Blackhole || holed.load(Ordering::Relaxed) {
            continue;
        }
        tokio::select! {
            r = dst.write_all(&buf[..n]) => if r.is_err() { return End::Close },
            changed = mode.changed() => {
                if changed.is_err() {
                    return End::Close;
                }
                // A write cut short leaves a hole: only a blackhole may go on.
                match *mode.borrow_and_update() {
                    Mode::Blackhole => holed.store(true, Ordering::Relaxed),
                    Mode::Reset => return End::Reset,
                    Mode::Pass => return End::Close,
                }
            }
        }
    }
}

/// Applies the mode to a connection: `Some` = end it.
fn continue_or_end(mode: Mode, holed: &std::sync::atomic::AtomicBool) -> Option<End> {
    match mode {
        Mode::Pass if holed.load(Ordering::Relaxed) => Some(End::Close),
        Mode::Pass => None,
        Mode::Blackhole => {
            holed.store(true, Ordering::Relaxed);
            None
        }
        Mode::Reset => Some(End::Reset),
    }
}

/// One [`FaultProxy`] per directed link of a group of `n` members: member `i`
/// dials member `j` through [`ProxyMesh::addr`]`(i, j)`. Clients that talk to
/// the members directly are not affected.
pub struct ProxyMesh {
    links: BTreeMap<(usize, usize), FaultProxy>,
    n: usize,
}

impl ProxyMesh {
    /// Starts a proxy for every ordered pair `(i, j)`, `i != j`, forwarding to
    /// `targets[j]`.
    pub fn start(targets: &[SocketAddr]) -> io::Result<ProxyMesh> {
        let mut links = BTreeMap::new();
        for i in 0..targets.len() {
            for (j, target) in targets.iter().enumerate() {
                if i != j {
                    links.insert((i, j), FaultProxy::start(*target)?);
                }
            }
        }
        Ok(ProxyMesh {
            links,
            n: targets.len(),
        })
    }

    /// The proxy on the link `from -> to`. Panics if `from == to` or out of range.
    pub fn link(&self, from: usize, to: usize) -> &FaultProxy {
        &self.links[&(from, to)]
    }

    /// The address member `from` must use for member `to`.
    pub fn addr(&self, from: usize, to: usize) -> SocketAddr {
        self.link(from, to).addr()
    }

    /// Sets `mode` on every link into and out of member `i`.
    pub fn set_member(&self, i: usize, mode: Mode) {
        for ((a, b), p) in &self.links {
            if *a == i || *b == i {
                p.set_mode(mode);
            }
        }
    }

    /// Cuts member `i` off from the others (both directions blackholed).
    pub fn isolate(&self, i: usize) {
        self.set_member(i, Mode::Blackhole);
    }

    /// Every link back to [`Mode::Pass`].
    pub fn heal(&self) {
        for p in self.links.values() {
            p.set_mode(Mode::Pass);
        }
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream as StdStream;
    use std::time::Instant;

    /// An echo server on loopback; returns its address. It records how many
    /// bytes it received in total.
    fn echo() -> (SocketAddr, Arc<AtomicU64>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let got = Arc::new(AtomicU64::new(0));
        let g = got.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let g = g.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                g.fetch_add(n as u64, Ordering::SeqCst);
                                if s.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        (addr, got)
    }

    fn connect(addr: SocketAddr) -> StdStream {
        let s = StdStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Writes `msg` (from another thread, so big messages cannot deadlock)
    /// and reads the echo back.
    fn roundtrip(s: &mut StdStream, msg: &[u8]) {
        let mut w = s.try_clone().unwrap();
        let owned = msg.to_vec();
        let writer = std::thread::spawn(move || w.write_all(&owned).unwrap());
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).unwrap();
        writer.join().unwrap();
        assert_eq!(back, msg);
    }

    /// Reads until EOF/reset or `timeout`; true if the connection ended.
    fn ends_within(s: &mut StdStream, timeout: Duration) -> bool {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 64];
        while Instant::now() < deadline {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return true,
            }
        }
        false
    }

    #[test]
    fn pass_forwards_both_ways() {
        let (target, got) = echo();
        let p = FaultProxy::start(target).unwrap();
        let mut s = connect(p.addr());
        roundtrip(&mut s, b"hello");
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut s2 = connect(p.addr());
        roundtrip(&mut s2, &big);
        roundtrip(&mut s, b"again");
        assert_eq!(p.accepted(), 2);
        assert_eq!(got.load(Ordering::SeqCst), 5 + 200_000 + 5);
    }

    #[test]
    fn blackhole_drops_bytes_both_ways_and_pass_recovers() {
        let (target, got) = echo();
        let p = FaultProxy::start(target).unwrap();
        let mut old = connect(p.addr());
        roundtrip(&mut old, b"before");
        let before = got.load(Ordering::SeqCst);
        p.set_mode(Mode::Blackhole);
        // Existing connection: nothing reaches the target, nothing comes back.
        old.write_all(b"lost").unwrap();
        // New connection: accepted, but nothing arrives either.
        let mut new = connect(p.addr());
        new.write_all(b"lost too").unwrap();
        old.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        new.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 16];
        assert!(old.read(&mut buf).is_err(), "blackholed bytes came back");
        assert!(new.read(&mut buf).is_err(), "blackholed bytes came back");
        assert_eq!(got.load(Ordering::SeqCst), before, "target got bytes");
        // Back to Pass: tainted connections close, new ones work.
        p.set_mode(Mode::Pass);
        assert!(ends_within(&mut old, Duration::from_secs(10)));
        assert!(ends_within(&mut new, Duration::from_secs(10)));
        let mut fresh = connect(p.addr());
        roundtrip(&mut fresh, b"after");
        assert_eq!(got.load(Ordering::SeqCst), before + 5);
    }

    #[test]
    fn reset_closes_existing_and_new_connections() {
        let (target, _) = echo();
        let p = FaultProxy::start(target).unwrap();
        let mut old = connect(p.addr());
        roundtrip(&mut old, b"x");
        p.set_mode(Mode::Reset);
        assert!(ends_within(&mut old, Duration::from_secs(10)));
        let mut new = connect(p.addr());
        let _ = new.write_all(b"y");
        assert!(ends_within(&mut new, Duration::from_secs(10)));
        p.set_mode(Mode::Pass);
        let mut fresh = connect(p.addr());
        roundtrip(&mut fresh, b"z");
    }

    #[test]
    fn mesh_isolates_one_member() {
        let (t0, g0) = echo();
        let (t1, _) = echo();
        let (t2, g2) = echo();
        let m = ProxyMesh::start(&[t0, t1, t2]).unwrap();
        m.isolate(1);
        assert_eq!(m.link(1, 0).mode(), Mode::Blackhole);
        assert_eq!(m.link(2, 1).mode(), Mode::Blackhole);
        // 0 <-> 2 still works.
        roundtrip(&mut connect(m.addr(0, 2)), b"02");
        roundtrip(&mut connect(m.addr(2, 0)), b"20");
        let mut s = connect(m.addr(1, 0));
        s.write_all(b"cut").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(s.read(&mut [0u8; 8]).is_err());
        assert_eq!(g0.load(Ordering::SeqCst), 2);
        assert_eq!(g2.load(Ordering::SeqCst), 2);
        m.heal();
        roundtrip(&mut connect(m.addr(1, 0)), b"10");
    }
}
