//! `mqcontroller`: the standalone controller, flags as Java's `ControllerStartup`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use controller::{Controller, ControllerConfig};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "mqcontroller",
    version,
    about = "RocketMQ-compatible controller (DLedger)"
)]
struct Args {
    /// Controller config properties file (Java ControllerConfig keys:
    /// controllerDLegerGroup, controllerDLegerPeers, controllerDLegerSelfId,
    /// controllerStorePath, ...).
    #[arg(short = 'c', long = "configFile", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// Print all config items and exit.
    #[arg(short = 'p', long = "printConfigItem")]
    print_config: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stdout)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    match start(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqcontroller: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn start(args: Args) -> anyhow::Result<()> {
    let config = match &args.config_file {
        Some(file) => {
            let c = ControllerConfig::load_file(file)?;
            println!("load config properties file OK, {}", file.display());
            c
        }
        None => ControllerConfig::default(),
    };
    if args.print_config {
        print!("{}", config.all_configs_text());
        return Ok(());
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let handle = Controller::start(config, shutdown.clone())
            .await
            .context("starting the controller")?;
        println!(
            "The ControllerManager boot success. address {}",
            handle.local_addr()
        );
        tokio::select! {
            _ = remoting::transport::shutdown_signal() => {
                tracing::info!("shutdown signal received");
            }
            _ = handle.stopped() => {}
        }
        shutdown.cancel();
        handle.shutdown().await;
        Ok(())
    })
}
