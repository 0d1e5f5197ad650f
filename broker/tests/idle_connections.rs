//! `serverChannelMaxIdleTimeSeconds`: the broker closes a connection with no
//! read and no write for that long, as Java's does, and keeps serving.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use remoting::code::response_code as rc;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Whether the peer closed `raw` within `within` (EOF or reset).
async fn closed_within(raw: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(within, raw.read(&mut buf)).await {
        Err(_) => false,
        Ok(Ok(0)) => true,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
        Ok(other) => panic!("unexpected read result {other:?}"),
    }
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_configured_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut short = config(&dir.path().join("short"), None);
    assert!(short.set("serverChannelMaxIdleTimeSeconds", "1").unwrap());
    assert_eq!(short.server_channel_max_idle_time_seconds, 1);
    let short = start(short).await;
    // The default (120 s), for contrast.
    let long = start(config(&dir.path().join("long"), None)).await;
    assert_eq!(
        broker::BrokerConfig::default().server_channel_max_idle_time_seconds,
        120
    );

    let started = Instant::now();
    let mut idle_short = TcpStream::connect(short.addr).await.unwrap();
    let mut idle_long = TcpStream::connect(long.addr).await.unwrap();
    let client = connect(short.addr).await;

    assert!(
        closed_within(&mut idle_short, TIMEOUT).await,
        "an idle connection was still open after {TIMEOUT:?} with serverChannelMaxIdleTimeSeconds=1"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950),
        "closed after {elapsed:?}, before the idle time"
    );
    // The other broker, at the default, keeps its idle connection.
    assert!(
        !closed_within(&mut idle_long, Duration::from_millis(200)).await,
        "the default idle time closed a connection within ~1 s"
    );

    // The idle client connection goes too; a fresh one is served.
    tokio::time::timeout(TIMEOUT, client.conn.closed())
        .await
        .expect("the idle client connection is closed by the broker");
    let fresh = connect(short.addr).await;
    assert_eq!(fresh.call(create_topic("IdleT", 2)).await.code, rc::SUCCESS);

    short.stop().await;
    long.stop().await;
}
