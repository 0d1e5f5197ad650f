//! A server whose accept() fails for lack of file descriptors (EMFILE)
//! keeps serving its open connections and accepts again as soon as
//! descriptors are free. Its own test binary: it lowers the process's
//! open-file limit, which would starve tests running beside it.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use remoting::code::{request_code, response_code};
use remoting::limits::file_limit;
use remoting::{serve, Connection, RemotingCommand, RemotingError, Router, ServerConfig};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(10);

#[allow(unsafe_code, clippy::unnecessary_cast)]
fn set_soft_limit(soft: u64, hard: u64) {
    let r = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: if hard == u64::MAX {
            libc::RLIM_INFINITY
        } else {
            hard as libc::rlim_t
        },
    };
    // SAFETY: setrlimit only reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
}

async fn round_trip(conn: &Connection, timeout: Duration) -> Result<(), RemotingError> {
    let resp = conn
        .request(
            RemotingCommand::request(request_code::GET_KV_CONFIG),
            timeout,
        )
        .await?;
    assert_eq!(resp.code, response_code::SUCCESS);
    Ok(())
}

#[tokio::test]
async fn accept_recovers_when_descriptors_are_freed() {
    let router = Router::new().route(
        request_code::GET_KV_CONFIG,
        |_c: Connection, _r: RemotingCommand| async move { Ok(RemotingCommand::success()) },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    // An explicit cap far above the file limit: accept() hits EMFILE first.
    let config = ServerConfig::default()
        .with_idle_seconds(0)
        .with_max_connections(1_000_000);
    tokio::spawn(serve(listener, Arc::new(router), config, shutdown.clone()));

    let before = file_limit().unwrap();
    let used = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(64);
    set_soft_limit((used + 64).min(before.soft), before.hard);

    let served = Connection::connect(addr, Arc::new(Router::new()))
        .await
        .unwrap();
    round_trip(&served, TIMEOUT).await.unwrap();

    // Take every free descriptor, then give one back: the next client's
    // socket takes it, so the server's accept() has none.
    let mut hog = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => hog.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                break;
            }
        }
    }
    assert!(!hog.is_empty());
    hog.pop();
    let waiting = Connection::connect(addr, Arc::new(Router::new()))
        .await
        .unwrap();
    let refused = round_trip(&waiting, Duration::from_millis(500)).await;
    assert!(
        matches!(refused, Err(RemotingError::Timeout(_))),
        "served without a descriptor for it? {refused:?}"
    );
    // The open connection is still served meanwhile.
    round_trip(&served, TIMEOUT).await.unwrap();

    drop(hog);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match round_trip(&waiting, Duration::from_millis(500)).await {
            Ok(()) => break,
            Err(RemotingError::Timeout(_)) if Instant::now() < deadline => {}
            Err(e) => panic!("not served after descriptors were freed: {e}"),
        }
    }
    let fresh = Connection::connect(addr, Arc::new(Router::new()))
        .await
        .unwrap();
    round_trip(&fresh, TIMEOUT).await.unwrap();

    set_soft_limit(before.soft, before.hard);
    shutdown.cancel();
}
