//! `mqbroker`: flags as Java's `BrokerStartup` (`-c`, `-n`, `-p`, `-m`) plus
//! `--bind` for the listen address.

use std::path::PathBuf;

use anyhow::Context;
use broker::{bind_vip, Broker, BrokerConfig};
use clap::Parser;
use tokio_util::sync::CancellationToken;

// mimalloc: ~5 % less CPU per message on a DLedger master (malloc/free were
// ~17 % of it under load); `no_thp` keeps idle RSS within 0.5 MiB of glibc's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "mqbroker", about = "RocketMQ-compatible broker")]
struct Args {
    /// Broker config file (Java .properties, e.g. broker.conf).
    #[arg(short = 'c', long = "configFile")]
    config_file: Option<PathBuf>,
    /// Name server address list, e.g. '192.168.0.1:9876;192.168.0.2:9876'.
    #[arg(short = 'n', long = "namesrvAddr")]
    namesrv_addr: Option<String>,
    /// Print all config items and exit.
    #[arg(short = 'p', long = "printConfigItem")]
    print_config: bool,
    /// Print important config items and exit.
    #[arg(short = 'm', long = "printImportantConfig")]
    print_important: bool,
    /// Address to bind (overrides the `bindAddress` key; default 0.0.0.0).
    #[arg(long = "bind")]
    bind: Option<String>,
    /// Java's `--enable-proxy`: also serve the RocketMQ 5 gRPC proxy in local
    /// mode (the `enableProxy` key).
    #[arg(long = "enable-proxy")]
    enable_proxy: bool,
    /// Java's proxy config (`rmq-proxy.json`, `-pc` in Java); its
    /// `grpcServerPort`, `minInvisibleTimeMillsForRecv` and
    /// `enableTopicMessageTypeCheck` are honoured.
    #[arg(long = "proxyConfigPath")]
    proxy_config: Option<PathBuf>,
}

const IMPORTANT: &[&str] = &[
    "brokerClusterName",
    "brokerName",
    "brokerId",
    "namesrvAddr",
    "listenPort",
    "brokerIP1",
    "storePathRootDir",
    "flushDiskType",
    "brokerRole",
];

fn load_config(args: &Args) -> anyhow::Result<BrokerConfig> {
    let mut config = BrokerConfig::default();
    if let Some(path) = &args.config_file {
        config.load_file(path)?;
    }
    if let Some(ns) = &args.namesrv_addr {
        config.namesrv_addr = ns.clone();
    } else if config.namesrv_addr.is_empty() {
        if let Ok(ns) = std::env::var("NAMESRV_ADDR") {
            config.namesrv_addr = ns;
        }
    }
    if let Some(bind) = &args.bind {
        config.bind_address = bind.clone();
    }
    if args.enable_proxy {
        config.enable_proxy = true;
    }
    if let Some(path) = &args.proxy_config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if let Some(p) = json
            .get("grpcServerPort")
            .and_then(serde_json::Value::as_u64)
        {
            config.grpc_server_port =
                u16::try_from(p).with_context(|| format!("grpcServerPort {p} is not a port"))?;
        }
        if let Some(v) = json
            .get("minInvisibleTimeMillsForRecv")
            .and_then(serde_json::Value::as_i64)
        {
            config.min_invisible_time_mills_for_recv = v;
        }
        if let Some(v) = json
            .get("enableTopicMessageTypeCheck")
            .and_then(serde_json::Value::as_bool)
        {
            config.enable_topic_message_type_check = v;
        }
        if let Some(v) = json
            .get("tlsTestModeEnable")
            .and_then(serde_json::Value::as_bool)
        {
            config.tls_test_mode_enable = v;
        }
        for (key, field) in [
            ("tlsKeyPath", &mut config.tls_key_path),
            ("tlsCertPath", &mut config.tls_cert_path),
            ("tls.server.mode", &mut config.tls_server_mode),
        ] {
            if let Some(v) = json.get(key).and_then(serde_json::Value::as_str) {
                *field = v.to_owned();
            }
        }
    }
    if config.enable_controller_mode && config.enable_d_leger_commit_log {
        // Java `BrokerStartup`: "The config enableControllerMode and
        // enableDLegerCommitLog cannot both be true." and exit(-4).
        eprintln!("The config enableControllerMode and enableDLegerCommitLog cannot both be true.");
        std::process::exit(-4);
    }
    config.validate()?;
    Ok(config)
}

/// `RMQ_BROKER_WORKER_THREADS`: the number of tokio worker threads. Unset,
/// empty or 0 keeps tokio's default (one per core).
const WORKER_THREADS_ENV: &str = "RMQ_BROKER_WORKER_THREADS";

fn worker_threads(value: Option<&str>) -> anyhow::Result<Option<usize>> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match v.parse::<usize>() {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(_) => anyhow::bail!("{WORKER_THREADS_ENV}={v:?} is not a number of threads"),
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stdout)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let args = Args::parse();
    let config = load_config(&args)?;
    if args.print_config || args.print_important {
        for (k, v) in config.entries() {
            if args.print_config || IMPORTANT.contains(&k) {
                println!("{k}={v}");
            }
        }
        return Ok(());
    }
    // As Java's start scripts (`ulimit -n`): the connection cap of each
    // listener is derived from this limit.
    remoting::limits::raise_and_log_file_limit();
    // Always the multi-thread flavour, even with one worker: DLedger puts
    // hand their worker over with `block_in_place`, which needs it.
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads(std::env::var(WORKER_THREADS_ENV).ok().as_deref())? {
        runtime.worker_threads(n);
    }
    runtime.enable_all().build()?.block_on(run(config))
}

async fn run(config: BrokerConfig) -> anyhow::Result<()> {
    let backlog = u32::try_from(config.server_socket_backlog).unwrap_or(1024);
    let listener = remoting::transport::bind(&config.bind_address, config.listen_port, backlog)
        .await
        .with_context(|| format!("binding {}:{}", config.bind_address, config.listen_port))?;
    let vip = bind_vip(&config.bind_address, config.listen_port).await;
    let shutdown = CancellationToken::new();
    let broker = Broker::start(listener, vip, config.clone(), None, shutdown.clone()).await?;

    let mut tip = format!(
        "The broker[{}, {}] boot success. serializeType=JSON",
        config.broker_name,
        config.broker_addr()
    );
    if !config.namesrv_addr.is_empty() {
        tip.push_str(&format!(" and name server is {}", config.namesrv_addr));
    }
    println!("{tip}");

    tokio::spawn(async move {
        remoting::transport::shutdown_signal().await;
        shutdown.cancel();
    });
    broker.wait().await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::worker_threads;

    #[test]
    fn worker_threads_setting() {
        assert_eq!(worker_threads(None).unwrap(), None);
        assert_eq!(worker_threads(Some("")).unwrap(), None);
        assert_eq!(worker_threads(Some("0")).unwrap(), None);
        assert_eq!(worker_threads(Some(" 1 ")).unwrap(), Some(1));
        assert_eq!(worker_threads(Some("4")).unwrap(), Some(4));
        assert!(worker_threads(Some("two")).is_err());
        assert!(worker_threads(Some("-1")).is_err());
    }
}
