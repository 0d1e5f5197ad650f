//! `mqnamesrv`: the name server binary, flags as Java's `NamesrvStartup`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use nameserver::NamesrvConfig;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "mqnamesrv", version, about = "RocketMQ-compatible name server")]
struct Args {
    /// Name server config properties file (Java NamesrvConfig and
    /// NettyServerConfig keys: listenPort, bindAddress, kvConfigPath, ...).
    #[arg(short = 'c', long = "configFile", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// Print all config items and exit.
    #[arg(short = 'p', long = "printConfigItem")]
    print_config: bool,
    /// Name server address list; accepted like Java's, not used.
    #[arg(
        short = 'n',
        long = "namesrvAddr",
        env = "NAMESRV_ADDR",
        value_name = "ADDRS"
    )]
    namesrv_addr: Option<String>,
    /// Address to listen on; overrides `bindAddress` (default 0.0.0.0).
    #[arg(long = "bindAddress", value_name = "ADDR")]
    bind_address: Option<String>,
    /// Port to listen on; overrides `listenPort` (default 9876).
    #[arg(long = "listenPort", value_name = "PORT")]
    listen_port: Option<u16>,
}

fn load_config(args: &Args) -> anyhow::Result<NamesrvConfig> {
    let mut config = NamesrvConfig::default();
    if let Some(file) = &args.config_file {
        config.apply_file(file)?;
        println!("load config properties file OK, {}", file.display());
    }
    if let Some(addr) = &args.bind_address {
        config.bind_address = addr.clone();
    }
    if let Some(port) = args.listen_port {
        config.listen_port = i32::from(port);
    }
    if u16::try_from(config.listen_port).is_err() {
        anyhow::bail!(
            "invalid value {} for config key listenPort: expected 0..=65535",
            config.listen_port
        );
    }
    Ok(config)
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
            eprintln!("mqnamesrv: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn start(args: Args) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    if args.print_config {
        print!("{}", config.print_text());
        return Ok(());
    }
    // Java's NamesrvStartup.controllerManagerMain: the same file feeds the
    // controller, which listens on its DLedger port.
    let controller_config = if config.enable_controller_in_namesrv {
        let file = args.config_file.as_deref().context(
            "enableControllerInNamesrv=true needs the controller keys in a -c config file",
        )?;
        Some(controller::ControllerConfig::load_file(file)?)
    } else {
        None
    };
    // As Java's start scripts (`ulimit -n`): the connection cap is derived
    // from this limit.
    remoting::limits::raise_and_log_file_limit();
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(serve(config, controller_config))
}

async fn serve(
    config: NamesrvConfig,
    controller_config: Option<controller::ControllerConfig>,
) -> anyhow::Result<()> {
    let bind_address = config.bind_address.clone();
    let listener = nameserver::server::bind(&config).await.with_context(|| {
        format!(
            "cannot listen on {}:{}",
            config.bind_address, config.listen_port
        )
    })?;
    let ns = std::sync::Arc::new(nameserver::Namesrv::new(config)?);
    let local = listener.local_addr()?;
    println!(
        "The Name Server boot success. serializeType=JSON, address {}:{}",
        bind_address,
        local.port()
    );

    let shutdown = CancellationToken::new();
    let controller = match controller_config {
        Some(cc) => {
            let handle = controller::Controller::start(cc, shutdown.clone())
                .await
                .context("starting the controller (enableControllerInNamesrv)")?;
            println!(
                "The ControllerManager boot success. address {}",
                handle.local_addr()
            );
            Some(handle)
        }
        None => None,
    };
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        remoting::transport::shutdown_signal().await;
        tracing::info!("shutdown signal received");
        on_signal.cancel();
    });
    let served = nameserver::run_with(listener, ns, shutdown.clone()).await;
    shutdown.cancel();
    if let Some(handle) = controller {
        handle.shutdown().await;
    }
    served?;
    Ok(())
}
