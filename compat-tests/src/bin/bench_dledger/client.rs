//! The load generator: append/metadata requests, the timed load and the failover measure.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use compat_tests::bench::{rss_anon_kib, rss_kib, Histogram};
use dledger::protocol::{
    request_frame, AppendEntryRequest, AppendEntryResponse, Base, Body, MetadataRequest,
    MetadataResponse, RequestCode, ResponseCode,
};
use remoting::{Connection, RemotingCommand, Router};

use crate::group::Group;
use crate::opts::Opts;
use crate::{
    BOOT_TIMEOUT, FAILOVER_INFLIGHT, FAILOVER_TIMEOUT, GROUP, MAX_APPENDS_PER_TASK, REQUEST_TIMEOUT,
};

pub(crate) fn base(remote: &str) -> Base {
    Base {
        group: Some(GROUP.to_owned()),
        remote_id: Some(remote.to_owned()),
        ..Base::default()
    }
}

pub(crate) async fn connect(addr: &str) -> Option<Connection> {
    tokio::time::timeout(
        Duration::from_secs(2),
        Connection::connect(addr, Arc::new(Router::new())),
    )
    .await
    .ok()?
    .ok()
}

/// The leader `id` reports for itself... as DLedgerClient does: the first
/// member answering METADATA with a known leader.
pub(crate) async fn metadata_leader(id: &str, addr: &str) -> Option<String> {
    let conn = connect(addr).await?;
    let req = MetadataRequest { base: base(id) };
    let r = conn
        .request(
            request_frame(RequestCode::Metadata, &req),
            Duration::from_secs(1),
        )
        .await;
    conn.close();
    let m = MetadataResponse::from_json(&r.ok()?.body).ok()?;
    (m.base.code == ResponseCode::Success.code())
        .then_some(m.base.leader_id)
        .flatten()
}

/// Waits until every running member names the same leader; its index.
pub(crate) async fn wait_leader(g: &mut Group, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        g.check_running();
        let mut named = Vec::new();
        for m in g.members.iter().filter(|m| m.proc.is_some()) {
            named.push(metadata_leader(&m.id, &m.addr).await);
        }
        if let Some(Some(l)) = named.first() {
            if named.iter().all(|n| n.as_deref() == Some(l.as_str())) {
                if let Some(i) = g
                    .members
                    .iter()
                    .position(|m| m.id == *l && m.proc.is_some())
                {
                    return i;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{}: no agreed leader within {timeout:?}: {named:?}\n{}",
            g.label,
            g.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn append_frame(leader: &str, body: &Bytes) -> RemotingCommand {
    request_frame(
        RequestCode::Append,
        &AppendEntryRequest {
            base: base(leader),
            body: Some(body.clone()),
        },
    )
}

#[derive(Default)]
pub(crate) struct Terms {
    pub(crate) min: AtomicI64,
    pub(crate) max: AtomicI64,
}

impl Terms {
    pub(crate) fn new() -> Terms {
        Terms {
            min: AtomicI64::new(i64::MAX),
            max: AtomicI64::new(i64::MIN),
        }
    }
    pub(crate) fn see(&self, t: i64) {
        self.min.fetch_min(t, Ordering::Relaxed);
        self.max.fetch_max(t, Ordering::Relaxed);
    }
}

pub(crate) struct LoadOut {
    pub(crate) hist: Histogram,
    pub(crate) errors: u64,
    /// DLedger response code (or -1: no answer) -> count.
    pub(crate) error_codes: BTreeMap<i32, u64>,
    pub(crate) elapsed: Duration,
    pub(crate) max_rss_kib: u64,
    pub(crate) max_anon_kib: u64,
}

/// Closed-loop load on the leader: `conns` connections x `inflight` tasks,
/// each appending back-to-back until `dur` passes.
pub(crate) async fn run_load(
    g: &Group,
    leader: usize,
    o: &Opts,
    dur: Duration,
    payload: &Bytes,
    terms: &Arc<Terms>,
) -> LoadOut {
    let (id, addr) = g.addrs()[leader].clone();
    let mut conns = Vec::with_capacity(o.conns);
    for _ in 0..o.conns {
        conns.push(connect(&addr).await.expect("connect to the leader"));
    }
    let frame = append_frame(&id, payload);
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    for conn in &conns {
        for _ in 0..o.inflight {
            let conn = conn.clone();
            let errors = errors.clone();
            let frame = frame.clone();
            let terms = terms.clone();
            tasks.push(tokio::spawn(async move {
                let mut h = Histogram::new();
                let mut codes: BTreeMap<i32, u64> = BTreeMap::new();
                let mut n = 0u64;
                while n < MAX_APPENDS_PER_TASK && Instant::now() < deadline {
                    n += 1;
                    let t = Instant::now();
                    let code = match conn.request(frame.clone(), REQUEST_TIMEOUT).await {
                        Ok(r) => match AppendEntryResponse::from_json(&r.body) {
                            Ok(a) => {
                                if a.base.code == ResponseCode::Success.code() {
                                    terms.see(a.base.term);
                                }
                                a.base.code
                            }
                            Err(_) => -1,
                        },
                        Err(_) => -1,
                    };
                    if code == ResponseCode::Success.code() {
                        h.record(t.elapsed().as_nanos() as u64);
                    } else {
                        *codes.entry(code).or_default() += 1;
                        errors.fetch_add(1, Ordering::Relaxed);
                        if conn.is_closed() {
                            break;
                        }
                        // Not the leader any more, or overloaded: back off a little.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                (h, codes)
            }));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let pids = g.pids();
        tokio::spawn(async move {
            let (mut max, mut anon) = (0, 0);
            let until = deadline + Duration::from_secs(10);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                max = max.max(pids.iter().filter_map(|p| rss_kib(*p)).sum());
                anon = anon.max(pids.iter().filter_map(|p| rss_anon_kib(*p)).sum());
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            (max, anon)
        })
    };
    let mut hist = Histogram::new();
    let mut error_codes = BTreeMap::new();
    for t in tasks {
        if let Ok((h, codes)) = t.await {
            hist.merge(&h);
            for (c, n) in codes {
                *error_codes.entry(c).or_default() += n;
            }
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (max_rss_kib, max_anon_kib) = sampler.await.unwrap_or((0, 0));
    for c in &conns {
        c.close();
    }
    LoadOut {
        hist,
        errors: errors.load(Ordering::Relaxed),
        error_codes,
        elapsed,
        max_rss_kib,
        max_anon_kib,
    }
}

/// One failover: appends in flight, SIGKILL the leader, time until another
/// member acknowledges an append; restart the killed member and wait until
/// the group agrees on a leader again. `None` = no acknowledgement within
/// [`FAILOVER_TIMEOUT`].
pub(crate) async fn failover(g: &mut Group, payload: &Bytes) -> Option<Duration> {
    let leader = wait_leader(g, BOOT_TIMEOUT).await;
    let nodes = Arc::new(g.addrs());
    let killed = Arc::new(AtomicU64::new(u64::MAX)); // index of the killed member
    let t0 = Instant::now();
    // ns after t0 of the kill, and of the first acknowledgement after it by a survivor.
    let kill_at = Arc::new(AtomicU64::new(u64::MAX));
    let first_ack = Arc::new(AtomicU64::new(u64::MAX));
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..FAILOVER_INFLIGHT {
        let (nodes, killed, kill_at, first_ack, stop, acks) = (
            nodes.clone(),
            killed.clone(),
            kill_at.clone(),
            first_ack.clone(),
            stop.clone(),
            acks.clone(),
        );
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut current: Option<(usize, Connection, RemotingCommand)> = None;
            let hard_stop = Instant::now() + FAILOVER_TIMEOUT + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < hard_stop {
                let Some((i, conn, frame)) = current.as_ref() else {
                    // DLedgerClient's metadata refresh: ask each member in turn.
                    let mut found = None;
                    for (id, addr) in nodes.iter() {
                        if let Some(l) = metadata_leader(id, addr).await {
                            found = nodes.iter().position(|(nid, _)| *nid == l);
                            break;
                        }
                    }
                    if let Some(i) = found {
                        if let Some(conn) = connect(&nodes[i].1).await {
                            let frame = append_frame(&nodes[i].0, &payload);
                            current = Some((i, conn, frame));
                            continue;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let r = conn.request(frame.clone(), REQUEST_TIMEOUT).await;
                let ok = matches!(&r, Ok(r) if AppendEntryResponse::from_json(&r.body)
                    .is_ok_and(|a| a.base.code == ResponseCode::Success.code()));
                if ok {
                    acks.fetch_add(1, Ordering::Relaxed);
                    let at = t0.elapsed().as_nanos() as u64;
                    if *i as u64 != killed.load(Ordering::SeqCst)
                        && kill_at.load(Ordering::SeqCst) != u64::MAX
                    {
                        first_ack.fetch_min(at, Ordering::SeqCst);
                    }
                } else {
                    conn.close();
                    current = None;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }));
    }
    // Steady appends first, then the kill.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acks.load(Ordering::Relaxed) < 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    killed.store(leader as u64, Ordering::SeqCst);
    kill_at.store(t0.elapsed().as_nanos() as u64, Ordering::SeqCst);
    let kill_instant = Instant::now();
    g.kill(leader);
    eprintln!(
        "[bench] {}: SIGKILLed leader {}",
        g.label, g.members[leader].id
    );
    while first_ack.load(Ordering::SeqCst) == u64::MAX && kill_instant.elapsed() < FAILOVER_TIMEOUT
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let first = first_ack.load(Ordering::SeqCst);
    let result = (first != u64::MAX)
        .then(|| Duration::from_nanos(first.saturating_sub(kill_at.load(Ordering::SeqCst))));
    match result {
        Some(d) => eprintln!(
            "[bench] {}: failover {:.0} ms",
            g.label,
            d.as_secs_f64() * 1e3
        ),
        None => eprintln!(
            "[bench] {}: no failover within {FAILOVER_TIMEOUT:?}",
            g.label
        ),
    }
    g.launch(leader);
    // The group is whole again when all three agree on a leader.
    wait_leader(g, BOOT_TIMEOUT).await;
    result
}
