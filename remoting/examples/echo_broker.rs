//! `echo_broker` (example of the `remoting` crate): the ceiling for `scripts/bench-broker.sh`. A bare frame
//! server on the `remoting` transport that registers with a name server as a
//! master broker serving the given topics, then answers every send
//! (SEND_MESSAGE 10, SEND_MESSAGE_V2 310, SEND_BATCH_MESSAGE 320) with a
//! canned SUCCESS carrying the header fields the Java client requires
//! (`msgId`, `queueId`, `queueOffset`), and HEART_BEAT / UNREGISTER_CLIENT
//! with an empty SUCCESS. Nothing is stored: it measures what the client,
//! the transport and the machine allow, not a broker.
//!
//! Usage: echo_broker --namesrv ADDR [--port P] [--topics T1,T2] [--queues N]
//! (default topics BenchTopic,BenchConsume, 8 queues). Register at least two
//! topics: our name server, like Java's, refuses a broker's first
//! registration when it carries a single topic (it takes that for the
//! one-topic update a broker sends after `updateTopic`). Prints `listening 127.0.0.1:P` once bound, exits on SIGTERM/SIGINT.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use remoting::body::{
    to_json, DataVersion, RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper,
};
use remoting::code::{request_code, response_code};
use remoting::header::{SendHeaderRef, SendMessageResponseHeader};
use remoting::transport::{serve, shutdown_signal, ServerConfig};
use remoting::{Connection, RemotingCommand, Router};
use tokio_util::sync::CancellationToken;

const CLUSTER: &str = "EchoCluster";
const BROKER_NAME: &str = "echo-broker-a";
/// Re-registration period (the name server drops a silent broker after 120 s).
const REGISTER_EVERY: Duration = Duration::from_secs(20);

struct Opts {
    namesrv: String,
    port: u16,
    topics: Vec<String>,
    queues: i32,
}

fn usage() -> ! {
    eprintln!("usage: echo_broker --namesrv ADDR [--port P] [--topics T1,T2] [--queues N]");
    std::process::exit(2)
}

fn parse_args() -> Opts {
    let mut o = Opts {
        namesrv: String::new(),
        port: 0,
        topics: vec!["BenchTopic".to_owned(), "BenchConsume".to_owned()],
        queues: 8,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let val = args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--namesrv" => o.namesrv = val,
            "--port" => o.port = val.parse().unwrap_or_else(|_| usage()),
            "--topics" => {
                o.topics = val
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            "--queues" => o.queues = val.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    if o.namesrv.is_empty() || o.topics.is_empty() || o.queues <= 0 {
        usage();
    }
    o
}

/// `UtilAll.crc32`: CRC-32 (IEEE) masked to 31 bits.
fn crc32_masked(data: &[u8]) -> i32 {
    let mut crc: u32 = 0xFFFF_FFFF;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    ((!crc) & 0x7FFF_FFFF) as i32
}

fn register_request(o: &Opts, addr: &str) -> RemotingCommand {
    let table: BTreeMap<String, TopicConfig> = o
        .topics
        .iter()
        .map(|t| {
            (
                t.clone(),
                TopicConfig::new(t.clone(), o.queues, o.queues, 6),
            )
        })
        .collect();
    let body = to_json(&RegisterBrokerBody {
        topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
            topic_config_table: table,
            data_version: DataVersion::now(),
            ..Default::default()
        },
        filter_server_list: Vec::new(),
    });
    RemotingCommand::request(request_code::REGISTER_BROKER)
        .with_ext("brokerName", BROKER_NAME)
        .with_ext("brokerAddr", addr)
        .with_ext("clusterName", CLUSTER)
        .with_ext("haServerAddr", addr)
        .with_ext("brokerId", "0")
        .with_ext("heartbeatTimeoutMillis", "120000")
        .with_ext("compressed", "false")
        .with_ext("bodyCrc32", crc32_masked(&body).to_string())
        .with_body(body)
}

/// Registers now and every [`REGISTER_EVERY`] until `stop`, reconnecting as needed.
async fn keep_registered(o: Arc<Opts>, addr: String, stop: CancellationToken) {
    let mut conn: Option<Connection> = None;
    loop {
        if conn.as_ref().is_none_or(Connection::is_closed) {
            conn = Connection::connect(&o.namesrv, Arc::new(Router::new()))
                .await
                .ok();
        }
        if let Some(c) = &conn {
            match c
                .request(register_request(&o, &addr), Duration::from_secs(5))
                .await
            {
                Ok(r) if r.code == response_code::SUCCESS => {}
                Ok(r) => eprintln!("echo_broker: REGISTER_BROKER refused: {:?}", r.remark),
                Err(e) => eprintln!("echo_broker: REGISTER_BROKER failed: {e}"),
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(REGISTER_EVERY) => {}
        }
    }
}

fn main() {
    let o = Arc::new(parse_args());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", o.port))
            .await
            .unwrap_or_else(|e| {
                eprintln!("echo_broker: bind 127.0.0.1:{}: {e}", o.port);
                std::process::exit(1)
            });
        let local = listener.local_addr().expect("local address");
        let addr = local.to_string();
        // msgId as Java's offset id: 127.0.0.1, the port, the "offset".
        let id_prefix = format!("7F000001{:08X}", local.port());
        let next_offset = Arc::new(AtomicI64::new(0));
        let send = move |_conn: Connection, req: RemotingCommand| {
            let offset = next_offset.fetch_add(1, Ordering::Relaxed);
            let id = format!("{id_prefix}{offset:016X}");
            async move {
                let queue_id = SendHeaderRef::from_command(&req)
                    .map(|h| h.queue_id)
                    .unwrap_or(0);
                Ok(
                    RemotingCommand::success().with_header(&SendMessageResponseHeader {
                        msg_id: id,
                        queue_id,
                        queue_offset: offset,
                        transaction_id: None,
                        batch_uniq_id: None,
                    }),
                )
            }
        };
        let ok =
            |_conn: Connection, _req: RemotingCommand| async { Ok(RemotingCommand::success()) };
        let router = Router::new()
            .route(request_code::SEND_MESSAGE, send.clone())
            .route(request_code::SEND_MESSAGE_V2, send.clone())
            .route(request_code::SEND_BATCH_MESSAGE, send)
            .route(request_code::HEART_BEAT, ok)
            .route(request_code::UNREGISTER_CLIENT, ok);
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            Arc::new(router),
            ServerConfig::default(),
            stop.clone(),
        ));
        tokio::spawn(keep_registered(o.clone(), addr.clone(), stop.clone()));
        println!("listening {addr}");
        shutdown_signal().await;
        stop.cancel();
        let _ = server.await;
    });
}
