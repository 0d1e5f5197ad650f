//! `mqnamesrv -c f` with `enableControllerInNamesrv=true`: the controller
//! answers on its DLedger port and the name server keeps its own port.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use remoting::{Connection, RemotingCommand, Router};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Kills the child process when the test ends, however it ends.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn connect(addr: &str, deadline: Instant) -> Connection {
    loop {
        match Connection::connect(addr, Arc::new(Router::new())).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "connect {addr}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namesrv_embeds_the_controller() {
    let dir = tempfile::tempdir().unwrap();
    let ns_port = free_port();
    let ctl_port = free_port();
    let path = dir.path().join("namesrv.conf");
    let d = dir.path().display();
    std::fs::write(
        &path,
        format!(
            "listenPort={ns_port}\nbindAddress=127.0.0.1\nkvConfigPath={d}/kv.json\n\
             enableControllerInNamesrv=true\ncontrollerDLegerGroup=group1\n\
             controllerDLegerPeers=n0-127.0.0.1:{ctl_port}\ncontrollerDLegerSelfId=n0\n\
             controllerStorePath={d}/ctl\nmappedFileSize=1048576\n\
             mappedFileSizeForEntryIndex=65536\n"
        ),
    )
    .unwrap();
    let _child = Kill(
        Command::new(env!("CARGO_BIN_EXE_mqnamesrv"))
            .arg("-c")
            .arg(&path)
            .env("HOME", dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let ctl = connect(&format!("127.0.0.1:{ctl_port}"), deadline).await;
    let ns = connect(&format!("127.0.0.1:{ns_port}"), deadline).await;

    // The name server port still serves the name server.
    let r = ns
        .request(RemotingCommand::request(106), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.code, 0);

    // The controller port answers 1005 and, once this single node leads,
    // leader-only requests.
    loop {
        let md = ctl
            .request(RemotingCommand::request(1005), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(md.code, 0);
        assert_eq!(md.ext("group"), Some("group1"));
        let peers = format!("n0:127.0.0.1:{ctl_port};");
        assert_eq!(md.ext("peers"), Some(peers.as_str()));
        let next = ctl
            .request(
                RemotingCommand::request(1012)
                    .with_ext("clusterName", "c")
                    .with_ext("brokerName", "b"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        if next.code == 0 {
            let md = ctl
                .request(RemotingCommand::request(1005), Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(md.ext("isLeader"), Some("true"));
            assert_eq!(next.ext("nextBrokerId"), Some("1"));
            break;
        }
        assert_eq!(next.code, 2007);
        assert!(Instant::now() < deadline, "the controller never led");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
