//! `dledger`: a DLedger server and client with the commands of Java's
//! `BossCommand` (DLedger 0.3.1.2): `server`, `append`, `get`,
//! `leadershipTransfer`.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use dledger::config::DLedgerConfig;
use dledger::protocol::{Body, ResponseCode};
use dledger::server::{DLedgerClient, DLedgerServer, ServerOptions};
use dledger::store::StoreConfig;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "dledger",
    version,
    about = "DLedger (Raft) server and client, wire-compatible with Java DLedger 0.3.1.2"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Bootstrap a DLedger server.
    Server(Box<ServerArgs>),
    /// Append data through the leader.
    Append {
        #[arg(short = 'g', long, default_value = "default")]
        group: String,
        #[arg(short = 'p', long, default_value = "n0-localhost:20911")]
        peers: String,
        #[arg(short = 'd', long, default_value = "Hello")]
        data: String,
        #[arg(short = 'c', long, default_value_t = 1)]
        count: u32,
    },
    /// Get the entry at an index from the leader.
    Get {
        #[arg(short = 'g', long, default_value = "default")]
        group: String,
        #[arg(short = 'p', long, default_value = "n0-localhost:20911")]
        peers: String,
        #[arg(short = 'i', long, default_value_t = 0)]
        index: i64,
    },
    /// Ask the leader to hand leadership to another member.
    #[command(name = "leadershipTransfer")]
    LeadershipTransfer {
        #[arg(short = 'g', long, default_value = "default")]
        group: String,
        #[arg(short = 'p', long, default_value = "n0-localhost:20911")]
        peers: String,
        /// The current leader.
        #[arg(short = 'l', long)]
        leader: String,
        /// The member to become leader.
        #[arg(
            short = 't',
            long = "transfereeId",
            alias = "transferee",
            default_value = "n0"
        )]
        transferee: String,
        /// The current term.
        #[arg(long, default_value_t = 0)]
        term: i64,
    },
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// `group` [default: default].
    #[arg(short = 'g', long)]
    group: Option<String>,
    /// `selfId` [default: n0].
    #[arg(short = 'i', long = "id")]
    self_id: Option<String>,
    /// `peers` [default: n0-localhost:20911].
    #[arg(short = 'p', long)]
    peers: Option<String>,
    #[arg(
        short = 's',
        long = "store-base-dir",
        default_value = "/tmp/dledgerstore"
    )]
    store_base_dir: PathBuf,
    /// `;`-separated ids that should hold leadership.
    #[arg(long = "preferred-leader-id")]
    preferred_leader_ids: Option<String>,
    /// A `.properties` file of DLedgerConfig keys (group, selfId, peers,
    /// heartBeatTimeIntervalMs, ...), applied before the flags. Java's
    /// `--config-file` takes a YAML proxy config instead; that is not supported.
    #[arg(short = 'c', long = "config-file")]
    config_file: Option<PathBuf>,
    /// Java's push flow control (`peerPushThrottlePoint`); accepted, not implemented.
    #[arg(long = "peer-push-throttle-point")]
    peer_push_throttle_point: Option<u64>,
    /// Java's push flow control (`peerPushQuota`); accepted, not implemented.
    #[arg(long = "peer-push-quotas")]
    peer_push_quotas: Option<u64>,
    /// Java's read-only data dirs; not supported.
    #[arg(long = "read-only-data-store-dirs")]
    read_only_data_store_dirs: Option<String>,
    /// Address to bind the peer port to (default: every interface, as Java).
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Start from Java DLedger's election timers (heartbeat 2000 ms, leak 3,
    /// votes 300-1000 ms) instead of ours (200 ms, 3, 100-300 ms); every
    /// member of a group needs the same timers. Keys and flags still override.
    #[arg(long = "java-timers")]
    java_timers: bool,
    /// `heartBeatTimeIntervalMs`.
    #[arg(long = "heartbeat-interval-ms")]
    heartbeat_interval_ms: Option<u64>,
    /// `maxHeartBeatLeak`.
    #[arg(long = "max-heartbeat-leak")]
    max_heartbeat_leak: Option<u64>,
    /// `minVoteIntervalMs`.
    #[arg(long = "min-vote-interval-ms")]
    min_vote_interval_ms: Option<u64>,
    /// `maxVoteIntervalMs`.
    #[arg(long = "max-vote-interval-ms")]
    max_vote_interval_ms: Option<u64>,
    /// `maxWaitAckTimeMs`.
    #[arg(long = "max-wait-ack-time-ms")]
    max_wait_ack_time_ms: Option<u64>,
    /// `mappedFileSizeForEntryData` (must match every peer).
    #[arg(long = "data-file-size")]
    data_file_size: Option<usize>,
    /// `mappedFileSizeForEntryIndex`.
    #[arg(long = "index-file-size")]
    index_file_size: Option<usize>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dledger: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dledger: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Cmd::Server(args) => {
            server(*args).await?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Cmd::Append {
            group,
            peers,
            data,
            count,
        } => {
            let mut client = DLedgerClient::new(&group, &peers)?;
            let mut ok = true;
            for _ in 0..count {
                let r = client.append(Bytes::from(data.clone().into_bytes())).await;
                ok &= r.base.code == ResponseCode::Success.code();
                println!("Append Result:{}", String::from_utf8_lossy(&r.to_json()));
            }
            client.close().await;
            Ok(exit(ok))
        }
        Cmd::Get {
            group,
            peers,
            index,
        } => {
            let mut client = DLedgerClient::new(&group, &peers)?;
            let r = client.get(index).await;
            println!("Get Result:{}", String::from_utf8_lossy(&r.to_json()));
            for e in &r.entries {
                println!(
                    "Get Result index:{} {}",
                    e.index,
                    String::from_utf8_lossy(e.body.as_deref().unwrap_or_default())
                );
            }
            client.close().await;
            Ok(exit(r.base.code == ResponseCode::Success.code()))
        }
        Cmd::LeadershipTransfer {
            group,
            peers,
            leader,
            transferee,
            term,
        } => {
            let client = DLedgerClient::new(&group, &peers)?;
            let r = client.leadership_transfer(&leader, &transferee, term).await;
            let name = ResponseCode::from_code(r.base.code).map_or("UNKNOWN", |c| c.java_name());
            println!(
                "LeadershipTransfer code={name}, Result:{}",
                String::from_utf8_lossy(&r.to_json())
            );
            client.close().await;
            Ok(exit(r.base.code == ResponseCode::Success.code()))
        }
    }
}

fn exit(ok: bool) -> std::process::ExitCode {
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    // As Java's start scripts: `ulimit -n` up to the hard limit.
    remoting::limits::raise_and_log_file_limit();
    if args.peer_push_throttle_point.is_some() || args.peer_push_quotas.is_some() {
        tracing::warn!("--peer-push-throttle-point/--peer-push-quotas are accepted but push flow control is not implemented");
    }
    if args.read_only_data_store_dirs.is_some() {
        anyhow::bail!("--read-only-data-store-dirs is not supported");
    }
    // Our defaults (or Java's timers) < the config file < the flags.
    let mut props: std::collections::HashMap<String, String> = match &args.config_file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            remoting::properties::parse(&text).into_iter().collect()
        }
        None => Default::default(),
    };
    for (key, value) in [
        ("group", &args.group),
        ("selfId", &args.self_id),
        ("peers", &args.peers),
    ] {
        if let Some(v) = value {
            props.insert(key.to_owned(), v.clone());
        }
    }
    let mut config = DLedgerConfig::default();
    if args.java_timers {
        config.use_java_timers();
    }
    config.apply_properties(&props)?;
    if let Some(ids) = &args.preferred_leader_ids {
        config.preferred_leader_ids = Some(ids.split(';').map(|s| s.trim().to_owned()).collect());
    }
    if let Some(v) = args.heartbeat_interval_ms {
        config.heart_beat_time_interval_ms = v;
    }
    if let Some(v) = args.max_heartbeat_leak {
        config.max_heart_beat_leak = v;
    }
    if let Some(v) = args.min_vote_interval_ms {
        config.min_vote_interval_ms = v;
    }
    if let Some(v) = args.max_vote_interval_ms {
        config.max_vote_interval_ms = v;
    }
    if let Some(v) = args.max_wait_ack_time_ms {
        config.max_wait_ack_time_ms = v;
    }
    let mut store = StoreConfig::new(&args.store_base_dir, &config.self_id);
    if let Some(v) = args.data_file_size {
        store.mapped_file_size_for_entry_data = v;
    }
    if let Some(v) = args.index_file_size {
        store.mapped_file_size_for_entry_index = v;
    }
    let config_id = config.self_id.clone();
    let mut opts = ServerOptions::new(config, store);
    opts.bind = args.bind;
    let server = DLedgerServer::start(opts)
        .await
        .context("starting the DLedger server")?;
    println!(
        "DLedger server {} started on {}",
        config_id,
        server.local_addr()
    );
    remoting::transport::shutdown_signal().await;
    server.shutdown().await;
    Ok(())
}
