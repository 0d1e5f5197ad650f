//! Many heartbeating clients: a heartbeat that changes nothing notifies
//! nobody, and a join storm costs each member a bounded number of
//! NOTIFY_CONSUMER_IDS_CHANGED (they are coalesced per group).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use remoting::code::request_code as rq;
use remoting::code::response_code as rc;
use remoting::{Connection, RemotingCommand, Router};

/// `broker::meta::client::NOTIFY_COALESCE_WINDOW`.
const NOTIFY_COALESCE_WINDOW: Duration = Duration::from_millis(1000);

/// Each member's notifications for changes spread over `span`: one at the
/// start, one per window and one trailing.
fn per_member_bound(span: Duration) -> u64 {
    let windows = span.as_millis() / NOTIFY_COALESCE_WINDOW.as_millis() + 1;
    2 + windows as u64
}

/// A client connection counting the notifications it receives.
struct Counted {
    conn: Connection,
    notified: Arc<AtomicU64>,
}

async fn connect_counted(addr: std::net::SocketAddr) -> Counted {
    let notified = Arc::new(AtomicU64::new(0));
    let n = notified.clone();
    let router = Router::new().route(
        rq::NOTIFY_CONSUMER_IDS_CHANGED,
        move |_c: Connection, _req: RemotingCommand| {
            n.fetch_add(1, Ordering::Relaxed);
            async move { Ok(RemotingCommand::success()) }
        },
    );
    let conn = Connection::connect(addr, Arc::new(router)).await.unwrap();
    Counted { conn, notified }
}

fn total(clients: &[Counted]) -> u64 {
    clients
        .iter()
        .map(|c| c.notified.load(Ordering::Relaxed))
        .sum()
}

/// Sends every client's heartbeat, 100 at a time.
async fn heartbeat_round(clients: &[Counted], group_of: impl Fn(usize) -> String) {
    for (chunk_no, chunk) in clients.chunks(100).enumerate() {
        let calls = chunk.iter().enumerate().map(|(j, c)| {
            let i = chunk_no * 100 + j;
            let req = heartbeat(&format!("cid-{i}"), &group_of(i), "HBS", "*");
            async move { c.conn.request(req, TIMEOUT).await.unwrap().code }
        });
        for code in futures::future::join_all(calls).await {
            assert_eq!(code, rc::SUCCESS);
        }
    }
}

/// Waits until no notification arrived for two coalescing windows (every
/// trailing notification is then out), bounded by a deadline.
async fn settle(clients: &[Counted]) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let quiet = NOTIFY_COALESCE_WINDOW * 2;
    let mut last = total(clients);
    let mut since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = total(clients);
        if now != last {
            last = now;
            since = tokio::time::Instant::now();
        } else if since.elapsed() >= quiet {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "notifications never settled"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_heartbeats_of_2000_clients_notify_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(config(dir.path(), None)).await;
    let admin = connect(b.addr).await;
    assert_eq!(admin.call(create_topic("HBS", 4)).await.code, rc::SUCCESS);

    const CLIENTS: usize = 2000;
    const GROUPS: usize = 200;
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        clients.push(connect_counted(b.addr).await);
    }
    let group_of = |i: usize| format!("hbs-group-{}", i % GROUPS);

    let started = tokio::time::Instant::now();
    heartbeat_round(&clients, group_of).await;
    let bound = per_member_bound(started.elapsed());
    let first = settle(&clients).await;
    // Each of the 200 groups of 10 changed 10 times; every member is told
    // at least once (the last notification carries the final membership)
    // and at most once per window its group was changing.
    for (i, c) in clients.iter().enumerate() {
        let n = c.notified.load(Ordering::Relaxed);
        assert!(
            (1..=bound).contains(&n),
            "client {i} got {n} notifications (bound {bound})"
        );
    }

    // The second round changes nothing: no notification at all.
    heartbeat_round(&clients, group_of).await;
    let second = settle(&clients).await;
    assert_eq!(second, first, "a repeated heartbeat notified someone");

    let ids: remoting::body::GetConsumerListByGroupResponseBody = serde_json::from_slice(
        &admin
            .call(
                RemotingCommand::request(rq::GET_CONSUMER_LIST_BY_GROUP)
                    .with_ext("consumerGroup", "hbs-group-7"),
            )
            .await
            .body,
    )
    .unwrap();
    assert_eq!(ids.consumer_id_list.len(), CLIENTS / GROUPS);

    for c in &clients {
        c.conn.close();
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_storm_of_1000_notifies_each_member_a_bounded_number_of_times() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(config(dir.path(), None)).await;
    let admin = connect(b.addr).await;
    assert_eq!(admin.call(create_topic("HBS", 4)).await.code, rc::SUCCESS);

    const MEMBERS: usize = 1000;
    let mut clients = Vec::with_capacity(MEMBERS);
    for _ in 0..MEMBERS {
        clients.push(connect_counted(b.addr).await);
    }
    let started = tokio::time::Instant::now();
    heartbeat_round(&clients, |_| "storm-group".to_owned()).await;
    let storm = started.elapsed();
    let all = settle(&clients).await;

    // Java sends every member one notification per later join (about
    // 500,000 here); coalesced, a member gets one at its window's start,
    // one per window the storm lasts and one at the end.
    let bound = per_member_bound(storm);
    for (i, c) in clients.iter().enumerate() {
        let n = c.notified.load(Ordering::Relaxed);
        assert!(
            (1..=bound).contains(&n),
            "member {i} got {n} notifications (bound {bound}, storm {storm:?})"
        );
    }
    assert!(all <= MEMBERS as u64 * bound);

    // One member leaves: everybody else hears of it once.
    clients[0].conn.close();
    let before: Vec<u64> = clients
        .iter()
        .map(|c| c.notified.load(Ordering::Relaxed))
        .collect();
    settle(&clients).await;
    for (i, c) in clients.iter().enumerate().skip(1) {
        let n = c.notified.load(Ordering::Relaxed) - before[i];
        assert_eq!(n, 1, "member {i} got {n} notifications for one leave");
    }

    for c in &clients {
        c.conn.close();
    }
    b.stop().await;
}
