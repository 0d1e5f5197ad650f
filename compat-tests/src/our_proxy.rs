//! Our `mqproxy` (the gRPC `MessagingService` in cluster mode) in front of
//! whatever brokers a name server lists, started like an operator would:
//! `mqproxy -pc rmq-proxy.json -pm cluster` with Java's proxy keys
//! (`rocketMQClusterName`, `namesrvAddr`, `grpcServerPort`,
//! `remotingListenPort`) plus any extra keys a test gives.
//!
//! [`OurProxy::start`] returns once the gRPC port accepts connections. The
//! binary is found like the other servers ([`crate::bin_dir`]).

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{bin_dir, free_port, Proc};

pub struct OurProxy {
    pub dir: tempfile::TempDir,
    pub proc: Proc,
    pub grpc_port: u16,
    /// `127.0.0.1:<grpcServerPort>`, the endpoint gRPC clients are given.
    pub grpc_addr: String,
    /// `127.0.0.1:<remotingListenPort>`, the proxy's remoting port.
    pub remoting_addr: String,
}

impl OurProxy {
    /// Starts `mqproxy` for `cluster` behind `namesrv`; `extra` are more
    /// `rmq-proxy.json` keys (e.g. `transactionHeartbeatPeriodSecond`).
    pub fn start(namesrv: &str, cluster: &str, extra: &[(&str, serde_json::Value)]) -> OurProxy {
        let dir = tempfile::Builder::new()
            .prefix("rmq-compat-mqproxy-")
            .tempdir()
            .expect("temp dir");
        let grpc_port = free_port();
        let remoting_port = free_port();
        let mut conf = serde_json::json!({
            "rocketMQClusterName": cluster,
            "namesrvAddr": namesrv,
            "grpcServerPort": grpc_port,
            "remotingListenPort": remoting_port,
        });
        for (k, v) in extra {
            conf[*k] = v.clone();
        }
        let path = dir.path().join("rmq-proxy.json");
        std::fs::write(&path, conf.to_string()).expect("write rmq-proxy.json");
        let mut cmd = Command::new(bin_dir().join("mqproxy"));
        cmd.arg("-pc")
            .arg(&path)
            .arg("-pm")
            .arg("cluster")
            .arg("--bindAddress")
            .arg("127.0.0.1")
            .env("RUST_LOG", "info,proxy=debug")
            .env_remove("NAMESRV_ADDR");
        let mut proc = Proc::spawn("mqproxy", cmd, dir.path().join("mqproxy.log"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", grpc_port)).is_err() {
            assert!(proc.is_running(), "mqproxy exited:\n{}", proc.log_text());
            assert!(
                Instant::now() < deadline,
                "mqproxy never listened:\n{}",
                proc.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        OurProxy {
            dir,
            proc,
            grpc_port,
            grpc_addr: format!("127.0.0.1:{grpc_port}"),
            remoting_addr: format!("127.0.0.1:{remoting_port}"),
        }
    }

    /// The last lines of its log, for assertion messages.
    pub fn logs(&self) -> String {
        format!(
            "--- mqproxy ---\n{}",
            crate::tail_lines(&self.proc.log_text(), 80)
        )
    }
}
