//! Server connection limits: idle connections are closed after the idle time
//! (Java's `serverChannelMaxIdleTimeSeconds`), and a server at its connection
//! cap serves new clients again as soon as connections close.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use remoting::code::{request_code, response_code};
use remoting::{serve, Connection, RemotingCommand, RemotingError, Router, ServerConfig};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(10);

fn echo_router() -> Router {
    Router::new().route(
        request_code::GET_KV_CONFIG,
        |_conn: Connection, req: RemotingCommand| async move {
            let key = req.ext("key").unwrap_or_default().to_owned();
            Ok(RemotingCommand::success().with_ext("value", format!("v-{key}")))
        },
    )
}

async fn start(router: Router, config: ServerConfig) -> (SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(listener, Arc::new(router), config, shutdown.clone()));
    (addr, shutdown)
}

async fn round_trip(conn: &Connection, key: &str, timeout: Duration) -> Result<(), RemotingError> {
    let resp = conn
        .request(
            RemotingCommand::request(request_code::GET_KV_CONFIG).with_ext("key", key),
            timeout,
        )
        .await?;
    assert_eq!(resp.code, response_code::SUCCESS);
    assert_eq!(resp.ext("value"), Some(format!("v-{key}").as_str()));
    Ok(())
}

/// Reads from `raw` until EOF; panics if the server keeps it open past `within`.
async fn expect_eof(raw: &mut TcpStream, within: Duration, what: &str) {
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(within, raw.read(&mut buf))
        .await
        .unwrap_or_else(|_| {
            panic!("{what}: the server did not close the connection in {within:?}")
        });
    match n {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("{what}: expected EOF, got {other:?}"),
    }
}

#[tokio::test]
async fn idle_connections_are_closed_busy_ones_stay_open() {
    let closed_by_server = Arc::new(AtomicUsize::new(0));
    let counter = closed_by_server.clone();
    let router = echo_router().on_close(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let idle = Duration::from_secs(1);
    let (addr, shutdown) = start(router, ServerConfig::default().with_idle_seconds(1)).await;

    // A raw socket that never sends anything.
    let started = Instant::now();
    let mut idle_raw = TcpStream::connect(addr).await.unwrap();
    // A client that sends a request every 300 ms for 3 idle periods.
    let busy = Connection::connect(addr, Arc::new(Router::new()))
        .await
        .unwrap();
    let busy_task = {
        let busy = busy.clone();
        tokio::spawn(async move {
            let until = Instant::now() + 3 * idle;
            let mut i = 0;
            while Instant::now() < until {
                round_trip(&busy, &i.to_string(), TIMEOUT).await.unwrap();
                i += 1;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            i
        })
    };

    expect_eof(&mut idle_raw, TIMEOUT, "idle raw connection").await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= idle - Duration::from_millis(50),
        "closed after {elapsed:?}, before the idle time of {idle:?}"
    );

    let sent = busy_task.await.unwrap();
    assert!(sent >= 5, "only {sent} requests in three idle periods");
    assert!(!busy.is_closed(), "a connection in use was closed as idle");
    round_trip(&busy, "after", TIMEOUT).await.unwrap();
    assert_eq!(
        closed_by_server.load(Ordering::SeqCst),
        1,
        "exactly the idle connection was closed (close hooks run)"
    );

    // Once it stops sending, the busy connection is closed as well; the
    // client side notices.
    tokio::time::timeout(TIMEOUT, busy.closed())
        .await
        .expect("the server closes a connection that went idle");
    shutdown.cancel();
}

#[tokio::test]
async fn idle_timeout_zero_never_closes_and_clients_have_none() {
    // serverChannelMaxIdleTimeSeconds=0 turns the timeout off, as in Java.
    let (addr, shutdown) = start(echo_router(), ServerConfig::default().with_idle_seconds(0)).await;
    let client = Connection::connect(addr, Arc::new(Router::new()))
        .await
        .unwrap();
    round_trip(&client, "a", TIMEOUT).await.unwrap();

    // A second server with a 1 s timeout closes its idle connection; by then
    // `client` has been idle as long, and neither its server (timeout off)
    // nor its own side (connections made with `connect` have no timeout)
    // closed it.
    let (addr2, shutdown2) =
        start(echo_router(), ServerConfig::default().with_idle_seconds(1)).await;
    let short = Connection::connect(addr2, Arc::new(Router::new()))
        .await
        .unwrap();
    round_trip(&short, "b", TIMEOUT).await.unwrap();
    tokio::time::timeout(TIMEOUT, short.closed())
        .await
        .expect("closed by the 1 s server");

    assert!(!client.is_closed());
    round_trip(&client, "c", TIMEOUT).await.unwrap();
    shutdown.cancel();
    shutdown2.cancel();
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_and_are_served_after_closes() {
    const CAP: usize = 50;
    let config = ServerConfig::default()
        .with_idle_seconds(0)
        .with_max_connections(CAP);
    let (addr, shutdown) = start(echo_router(), config).await;

    let mut clients = Vec::new();
    for i in 0..CAP {
        let c = Connection::connect(addr, Arc::new(Router::new()))
            .await
            .unwrap();
        round_trip(&c, &i.to_string(), TIMEOUT).await.unwrap();
        clients.push(c);
    }

    // The 51st connects (the kernel's backlog takes it) but is not served.
    let extra = Connection::connect(addr, Arc::new(Router::new()))
        .await
        .unwrap();
    let refused = round_trip(&extra, "extra", Duration::from_millis(500)).await;
    assert!(
        matches!(refused, Err(RemotingError::Timeout(_))),
        "a client past the cap was served: {refused:?}"
    );
    // Everyone below the cap still is.
    round_trip(&clients[0], "still", TIMEOUT).await.unwrap();

    // Close five: the waiting client and a brand new one are served.
    for c in clients.drain(..5) {
        c.close();
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match round_trip(&extra, "extra", Duration::from_millis(500)).await {
            Ok(()) => break,
            Err(RemotingError::Timeout(_)) if Instant::now() < deadline => {}
            Err(e) => panic!("the waiting client was not served after closes: {e}"),
        }
    }
    let fresh = Connection::connect(addr, Arc::new(Router::new()))
        .await
        .unwrap();
    round_trip(&fresh, "fresh", TIMEOUT).await.unwrap();
    for (i, c) in clients.iter().enumerate() {
        round_trip(c, &format!("after-{i}"), TIMEOUT).await.unwrap();
    }
    shutdown.cancel();
}
