//! Transport behaviour over real sockets and in-memory pipes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use remoting::code::{request_code, response_code};
use remoting::codec::encode_frame;
use remoting::RemotingCodec;
use remoting::{
    serve, CommandError, Connection, RemotingCommand, RemotingError, Router, ServerConfig,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(5);

fn echo_router() -> Router {
    Router::new()
        .route(
            request_code::GET_KV_CONFIG,
            |_conn: Connection, req: RemotingCommand| async move {
                let key = req.ext("key").unwrap_or_default().to_owned();
                Ok(RemotingCommand::success()
                    .with_ext("value", format!("v-{key}"))
                    .with_body(req.body))
            },
        )
        .route(
            request_code::PUT_KV_CONFIG,
            |_conn: Connection, _req: RemotingCommand| async move {
                Err::<RemotingCommand, _>(CommandError::system("nope"))
            },
        )
}

async fn start(
    router: Router,
) -> (
    std::net::SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(
        listener,
        Arc::new(router),
        ServerConfig::default(),
        shutdown.clone(),
    ));
    (addr, shutdown, task)
}

#[tokio::test]
async fn request_response_and_error_mapping() {
    let (addr, shutdown, task) = start(echo_router()).await;
    let client = Connection::connect(addr, Arc::new(Router::new()))
        .await
        .unwrap();

    let resp = client
        .request(
            RemotingCommand::request(request_code::GET_KV_CONFIG)
                .with_ext("key", "k")
                .with_body(&b"xyz"[..]),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert!(resp.is_response());
    assert_eq!(resp.code, response_code::SUCCESS);
    assert_eq!(resp.ext("value"), Some("v-k"));
    assert_eq!(&resp.body[..], b"xyz");

    let resp = client
        .request(
            RemotingCommand::request(request_code::PUT_KV_CONFIG),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(resp.code, response_code::SYSTEM_ERROR);
    assert_eq!(resp.remark.as_deref(), Some("nope"));

    let resp = client
        .request(RemotingCommand::request(9999), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(resp.code, response_code::REQUEST_CODE_NOT_SUPPORTED);
    assert_eq!(
        resp.remark.as_deref(),
        Some(" request type 9999 not supported")
    );

    shutdown.cancel();
    task.await.unwrap().unwrap();
    tokio::time::timeout(TIMEOUT, client.closed())
        .await
        .expect("server shutdown closes client connections");
}

#[tokio::test]
async fn many_concurrent_requests_are_matched_by_opaque() {
    let (addr, shutdown, _task) = start(echo_router()).await;
    let client = Connection::connect(addr, Arc::new(Router::new()))
        .await
        .unwrap();
    let calls = (0..200).map(|i| {
        let client = client.clone();
        async move {
            let resp = client
                .request(
                    RemotingCommand::request(request_code::GET_KV_CONFIG)
                        .with_ext("key", i.to_string()),
                    TIMEOUT,
                )
                .await
                .unwrap();
            assert_eq!(resp.ext("value"), Some(format!("v-{i}").as_str()));
        }
    });
    futures::future::join_all(calls).await;
    shutdown.cancel();
}

#[tokio::test]
async fn oneway_requests_get_no_response() {
    let seen = Arc::new(AtomicUsize::new(0));
    let seen2 = seen.clone();
    let router = echo_router().route(
        request_code::UPDATE_CONSUMER_OFFSET,
        move |_c: Connection, req: RemotingCommand| {
            let seen = seen2.clone();
            async move {
                assert!(req.is_oneway());
                seen.fetch_add(1, Ordering::SeqCst);
                Ok(RemotingCommand::success())
            }
        },
    );
    let (addr, shutdown, _task) = start(router).await;
    // A raw socket: every frame the server writes back is visible here.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    let mut oneway = RemotingCommand::request(request_code::UPDATE_CONSUMER_OFFSET);
    oneway.mark_oneway();
    oneway.opaque = 100;
    let mut normal = RemotingCommand::request(request_code::GET_KV_CONFIG);
    normal.opaque = 101;
    let mut wire = encode_frame(&oneway).unwrap();
    wire.extend_from_slice(&encode_frame(&normal).unwrap());
    raw.write_all(&wire).await.unwrap();
    let mut framed = FramedRead::new(raw, RemotingCodec::default());
    let first = tokio::time::timeout(TIMEOUT, framed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        first.opaque, 101,
        "the only response is the normal request's"
    );
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while seen.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "one-way request never handled"
        );
        tokio::task::yield_now().await;
    }
    // Nothing else arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), framed.next())
            .await
            .is_err()
    );
    shutdown.cancel();
}

#[tokio::test]
async fn server_can_call_the_client_back() {
    // The server answers HEART_BEAT by asking the client for its running info
    // over the same connection, as the broker does with NOTIFY/CHECK requests.
    let router = Router::new().route(
        request_code::HEART_BEAT,
        |conn: Connection, _req: RemotingCommand| async move {
            let answer = conn
                .request(
                    RemotingCommand::request(request_code::GET_CONSUMER_RUNNING_INFO),
                    TIMEOUT,
                )
                .await
                .map_err(|e| CommandError::system(e.to_string()))?;
            Ok(RemotingCommand::success().with_body(answer.body))
        },
    );
    let (addr, shutdown, _task) = start(router).await;
    let client_router = Router::new().route(
        request_code::GET_CONSUMER_RUNNING_INFO,
        |_c: Connection, _r: RemotingCommand| async {
            Ok(RemotingCommand::success().with_body(&b"running"[..]))
        },
    );
    let client = Connection::connect(addr, Arc::new(client_router))
        .await
        .unwrap();
    let resp = client
        .request(RemotingCommand::request(request_code::HEART_BEAT), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(&resp.body[..], b"running");
    shutdown.cancel();
}

#[tokio::test]
async fn a_bad_frame_closes_only_that_connection() {
    let closed = Arc::new(AtomicUsize::new(0));
    let closed2 = closed.clone();
    let router = echo_router().on_close(move |_c| {
        closed2.fetch_add(1, Ordering::SeqCst);
    });
    let (addr, shutdown, _task) = start(router).await;
    let good = Connection::connect(addr, Arc::new(Router::new()))
        .await
        .unwrap();

    for junk in [
        &(-7i32).to_be_bytes()[..],                            // negative length
        &[0x7f, 0xff, 0xff, 0xff][..],                         // far over 16 MiB
        &[0, 0, 0, 6, 9, 0, 0, 2, b'{', b'}'][..],             // unknown serialize type
        &[0, 0, 0, 8, 0, 0, 0, 4, b'n', b'o', b'p', b'e'][..], // header is not JSON
    ] {
        let mut bad = TcpStream::connect(addr).await.unwrap();
        bad.write_all(junk).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(TIMEOUT, tokio::io::AsyncReadExt::read(&mut bad, &mut buf))
            .await
            .expect("server closes a connection that sent a bad frame");
        assert!(
            matches!(n, Ok(0) | Err(_)),
            "nothing is written back for a bad frame"
        );
    }
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while closed.load(Ordering::SeqCst) < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "close hooks ran {} times",
            closed.load(Ordering::SeqCst)
        );
        tokio::task::yield_now().await;
    }
    let resp = good
        .request(
            RemotingCommand::request(request_code::GET_KV_CONFIG),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(resp.code, 0, "other connections keep working");
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn requests_time_out_and_fail_when_the_peer_goes_away() {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let (cr, cw) = tokio::io::split(client_io);
    let addr: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let silent = Router::new().route(
        request_code::GET_KV_CONFIG,
        |_c: Connection, _r: RemotingCommand| async {
            std::future::pending::<()>().await;
            Ok(RemotingCommand::success())
        },
    );
    let (sr, sw) = tokio::io::split(server_io);
    let server = Connection::spawn(
        sr,
        sw,
        addr,
        addr,
        Arc::new(silent),
        CancellationToken::new(),
    );
    let client = Connection::spawn(
        cr,
        cw,
        addr,
        addr,
        Arc::new(Router::new()),
        CancellationToken::new(),
    );

    let err = client
        .request(
            RemotingCommand::request(request_code::GET_KV_CONFIG),
            Duration::from_secs(3),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RemotingError::Timeout(_)), "{err}");

    let pending = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .request(
                    RemotingCommand::request(request_code::GET_KV_CONFIG),
                    Duration::from_secs(60),
                )
                .await
        })
    };
    tokio::task::yield_now().await;
    server.close();
    let err = pending.await.unwrap().unwrap_err();
    assert!(matches!(err, RemotingError::ConnectionClosed), "{err}");
    assert!(client.is_closed());
}

/// Answers written by the read loop (ready at once) and by the write task
/// (ready later) share one small pipe: writes are partial, yet every frame
/// arrives whole and matches its request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_and_late_answers_through_a_tiny_pipe_stay_whole() {
    let (client_io, server_io) = tokio::io::duplex(333);
    let addr: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let router = echo_router().route(
        request_code::GET_ROUTEINFO_BY_TOPIC,
        |_c: Connection, req: RemotingCommand| async move {
            tokio::task::yield_now().await;
            Ok(RemotingCommand::success().with_body(req.body))
        },
    );
    let (sr, sw) = tokio::io::split(server_io);
    let _server = Connection::spawn(
        sr,
        sw,
        addr,
        addr,
        Arc::new(router),
        CancellationToken::new(),
    );
    let (cr, cw) = tokio::io::split(client_io);
    let client = Connection::spawn(
        cr,
        cw,
        addr,
        addr,
        Arc::new(Router::new()),
        CancellationToken::new(),
    );
    let calls = (0..300usize).map(|i| {
        let client = client.clone();
        async move {
            let code = if i % 3 == 0 {
                request_code::GET_ROUTEINFO_BY_TOPIC
            } else {
                request_code::GET_KV_CONFIG
            };
            let body: Vec<u8> = (0..(i * 37) % 5000).map(|b| (b + i) as u8).collect();
            let resp = client
                .request(
                    RemotingCommand::request(code)
                        .with_ext("key", i.to_string())
                        .with_body(body.clone()),
                    TIMEOUT,
                )
                .await
                .unwrap();
            assert_eq!(resp.code, response_code::SUCCESS);
            assert_eq!(&resp.body[..], &body[..], "request {i}");
        }
    });
    futures::future::join_all(calls).await;
}

/// Counts what it sees and refuses GET_KV_CONFIG for the key "secret".
#[derive(Default)]
struct Gate {
    seen: std::sync::Mutex<Vec<(i32, i32)>>,
}

impl remoting::Interceptor for Gate {
    fn before(&self, _conn: &Connection, request: &RemotingCommand) -> Result<(), CommandError> {
        if request.ext("key") == Some("secret") {
            return Err(CommandError::new(response_code::NO_PERMISSION, "no"));
        }
        Ok(())
    }

    fn after(&self, _conn: &Connection, code: i32, response: &RemotingCommand, _elapsed: Duration) {
        self.seen.lock().unwrap().push((code, response.code));
    }
}

#[tokio::test]
async fn interceptors_refuse_before_the_handler_and_see_every_answer() {
    let gate = Arc::new(Gate::default());
    let (addr, shutdown, task) = start(echo_router().intercept(gate.clone())).await;
    let client = Connection::connect(addr, Arc::new(Router::new()))
        .await
        .unwrap();
    let ask = |key: &str| {
        RemotingCommand::request(request_code::GET_KV_CONFIG).with_ext("key", key.to_owned())
    };
    let ok = client.request(ask("k"), TIMEOUT).await.unwrap();
    assert_eq!(ok.code, response_code::SUCCESS);
    let refused = client.request(ask("secret"), TIMEOUT).await.unwrap();
    assert_eq!(refused.code, response_code::NO_PERMISSION);
    assert_eq!(refused.remark.as_deref(), Some("no"));
    assert_eq!(refused.ext("value"), None, "the handler must not run");
    let failed = client
        .request(
            RemotingCommand::request(request_code::PUT_KV_CONFIG),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(failed.code, response_code::SYSTEM_ERROR);
    let unknown = client
        .request(RemotingCommand::request(-77), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(unknown.code, response_code::REQUEST_CODE_NOT_SUPPORTED);
    assert_eq!(
        *gate.seen.lock().unwrap(),
        vec![
            (request_code::GET_KV_CONFIG, response_code::SUCCESS),
            (request_code::GET_KV_CONFIG, response_code::NO_PERMISSION),
            (request_code::PUT_KV_CONFIG, response_code::SYSTEM_ERROR),
            (-77, response_code::REQUEST_CODE_NOT_SUPPORTED),
        ]
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
