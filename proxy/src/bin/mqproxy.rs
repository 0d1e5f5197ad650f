//! `mqproxy`: the standalone gRPC proxy in cluster mode (Java's
//! `ProxyStartup -pm cluster`), in front of the brokers a name server lists.
//!
//! ```text
//! mqproxy [-pc rmq-proxy.json] [-n host:port;host:port] [-pm cluster]
//! ```
//!
//! Precedence as Java's: `NAMESRV_ADDR` < `rmq-proxy.json` < `-n`. Without
//! `-pc` the file is `$ROCKETMQ_HOME/conf/rmq-proxy.json` when it exists.
//! Besides gRPC (`grpcServerPort`) it serves remoting clients on
//! `remotingListenPort` ([`proxy::cluster::remoting_port`]); both bind
//! `--bindAddress` (default 0.0.0.0).
//! Local mode is the broker's own gRPC port, not this binary.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use proxy::cluster::{ClusterBackend, ClusterConfig};
use proxy::MessagingServer;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

const USAGE: &str = "usage: mqproxy [-pc|--proxyConfigPath FILE] [-n|--namesrvAddr ADDRS] \
[-pm|--proxyMode cluster] [--bindAddress ADDR]";

#[derive(Debug, Default)]
struct Args {
    config_path: Option<PathBuf>,
    namesrv: Option<String>,
    mode: Option<String>,
    bind: Option<String>,
}

/// Java's commons-cli options: `-pc`, `-pm`, `-bc` are two-letter short
/// options, which clap cannot express; `--name=value` is accepted too.
fn parse_args(mut it: impl Iterator<Item = String>) -> anyhow::Result<Option<Args>> {
    let mut a = Args::default();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> anyhow::Result<String> {
            match inline.clone().or_else(|| it.next()) {
                Some(v) => Ok(v),
                None => bail!("{name} needs a value\n{USAGE}"),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "-pc" | "--proxyConfigPath" => a.config_path = Some(value(&flag)?.into()),
            "-n" | "--namesrvAddr" => a.namesrv = Some(value(&flag)?),
            "-pm" | "--proxyMode" => a.mode = Some(value(&flag)?),
            "--bindAddress" => a.bind = Some(value(&flag)?),
            "-bc" | "--brokerConfigPath" => {
                value(&flag)?;
                bail!("-bc is for local mode; run mqbroker with the proxy enabled instead");
            }
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    Ok(Some(a))
}

fn load_config(args: &Args) -> anyhow::Result<ClusterConfig> {
    let path = match &args.config_path {
        Some(p) => Some(p.clone()),
        None => std::env::var_os("ROCKETMQ_HOME")
            .map(|h| PathBuf::from(h).join("conf").join("rmq-proxy.json"))
            .filter(|p| p.exists()),
    };
    let mut config = match &path {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let c =
                ClusterConfig::from_json(&text).with_context(|| format!("in {}", p.display()))?;
            println!("load config file OK, {}", p.display());
            c
        }
        None => ClusterConfig::default(),
    };
    if config.namesrv_addr.is_empty() {
        if let Ok(env) = std::env::var("NAMESRV_ADDR") {
            config.namesrv_addr = proxy::cluster::config::split_namesrv(&env);
        }
    }
    if let Some(n) = &args.namesrv {
        config.namesrv_addr = proxy::cluster::config::split_namesrv(n);
    }
    if let Some(m) = &args.mode {
        config.proxy_mode = m.clone();
    }
    if !config.is_cluster_mode() {
        bail!(
            "proxyMode {:?}: mqproxy runs in cluster mode only; local mode is the broker's gRPC port",
            config.proxy_mode
        );
    }
    if config.namesrv_addr.is_empty() {
        bail!("no name server: set namesrvAddr in rmq-proxy.json, -n or NAMESRV_ADDR");
    }
    Ok(config)
}

fn main() -> std::process::ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mqproxy: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stdout)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let run = || -> anyhow::Result<()> {
        let config = load_config(&args)?;
        let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
        runtime.block_on(serve(config, args.bind.as_deref().unwrap_or("0.0.0.0")))
    };
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqproxy: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(config: ClusterConfig, bind: &str) -> anyhow::Result<()> {
    let service_config = config.service_config()?;
    let grpc_addr: SocketAddr = format!("{bind}:{}", config.grpc_port)
        .parse()
        .with_context(|| format!("bad bind address {bind}"))?;
    let shutdown = CancellationToken::new();
    // The remoting port first: once the gRPC port accepts, both do.
    let (remoting_local, remoting) =
        proxy::cluster::remoting_port::start(&config, bind, shutdown.clone())
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {bind}:{} (remotingListenPort)",
                    config.remoting_port
                )
            })?;
    let listener = tokio::net::TcpListener::bind(grpc_addr)
        .await
        .with_context(|| format!("cannot listen on {grpc_addr} (grpcServerPort)"))?;
    let local = listener.local_addr()?;
    let backend = ClusterBackend::new(config.clone())?;
    backend.start();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        remoting::transport::shutdown_signal().await;
        tracing::info!("shutdown signal received");
        on_signal.cancel();
    });
    let server = MessagingServer::new(backend.clone(), service_config);
    println!(
        "The mqproxy (cluster mode) boot success. grpc {local}, remoting {remoting_local}, \
         name server {}, cluster {}",
        config.namesrv_addr.join(";"),
        config.cluster_name
    );
    let served = server.serve(listener, shutdown.clone()).await;
    shutdown.cancel();
    backend.shutdown().await;
    let remoting_served = remoting.await;
    served.context("gRPC server")?;
    remoting_served
        .context("remoting port task")?
        .context("remoting port")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> anyhow::Result<Option<Args>> {
        parse_args(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn java_style_flags() -> anyhow::Result<()> {
        let a = args(&["-pc", "x.json", "-n", "1.2.3.4:9876", "-pm", "cluster"])?
            .context("not help")?;
        assert_eq!(a.config_path, Some(PathBuf::from("x.json")));
        assert_eq!(a.namesrv.as_deref(), Some("1.2.3.4:9876"));
        assert_eq!(a.mode.as_deref(), Some("cluster"));
        let b = args(&["--proxyConfigPath=y.json"])?.context("not help")?;
        assert_eq!(b.config_path, Some(PathBuf::from("y.json")));
        assert!(args(&["-h"])?.is_none());
        assert!(args(&["-x"]).is_err());
        assert!(args(&["-n"]).is_err());
        assert!(args(&["-bc", "broker.conf"]).is_err());
        Ok(())
    }

    #[test]
    fn local_mode_is_refused() {
        let a = Args {
            mode: Some("local".into()),
            namesrv: Some("127.0.0.1:9876".into()),
            ..Default::default()
        };
        assert!(load_config(&a).is_err());
        let ok = Args {
            mode: Some("CLUSTER".into()),
            namesrv: Some("127.0.0.1:9876".into()),
            ..Default::default()
        };
        assert!(load_config(&ok).is_ok());
    }
}
