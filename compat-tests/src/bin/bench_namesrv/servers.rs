//! Starting both name servers, waiting until they answer, and the fake broker registration.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compat_tests::{bin_dir, free_port, jdk_opens, workspace_root, Proc};
use remoting::body::{
    to_json, DataVersion, RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper,
};
use remoting::code::{request_code, response_code};
use remoting::header::GetRouteInfoRequestHeader;
use remoting::{Connection, RemotingCommand, Router};

use crate::{BOOT_TIMEOUT, REQUEST_TIMEOUT};

/// `UtilAll.crc32`: CRC-32 (IEEE) masked to 31 bits.
pub(crate) fn crc32_masked(data: &[u8]) -> i32 {
    (crc32fast::hash(data) & 0x7FFF_FFFF) as i32
}

// ----------------------------------------------------------------- servers

pub(crate) struct Server {
    pub(crate) label: String,
    pub(crate) proc: Proc,
    pub(crate) addr: String,
    pub(crate) _dir: tempfile::TempDir,
}

pub(crate) fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

pub(crate) fn spawn_ours() -> Server {
    let bins = bin_dir();
    let exe = bins.join("mqnamesrv");
    assert!(
        exe.exists(),
        "{} missing (run scripts/bench-namesrv.sh)",
        exe.display()
    );
    let dir = tempdir("rmq-bench-ours-");
    let port = free_port();
    let conf = dir.path().join("namesrv.properties");
    std::fs::write(
        &conf,
        format!(
            "listenPort={port}\nbindAddress=127.0.0.1\nkvConfigPath={}\n",
            dir.path().join("namesrv/kvConfig.json").display()
        ),
    )
    .expect("write config");
    let mut cmd = Command::new(exe);
    cmd.arg("-c").arg(&conf).env("HOME", dir.path());
    let proc = Proc::spawn("mqnamesrv", cmd, dir.path().join("namesrv.log"));
    Server {
        label: "ours (mqnamesrv)".into(),
        proc,
        addr: format!("127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// The official name server, launched as `compat-tests/java/reference-cluster.sh` does.
pub(crate) fn spawn_java(version: &str, libs: &Path) -> Server {
    let dir = tempdir("rmq-bench-java-");
    let d = dir.path();
    let port = free_port();
    let home = d.join("home");
    std::fs::create_dir_all(home.join("conf")).expect("home/conf");
    let confs = workspace_root().join("compat-tests/java/conf");
    for f in [
        "logback_namesrv.xml",
        "logback_broker.xml",
        "logback_tools.xml",
    ] {
        let _ = std::fs::copy(confs.join(f), home.join("conf").join(f));
    }
    let bind = if version.starts_with("4.") {
        String::new()
    } else {
        "bindAddress=127.0.0.1\n".to_owned()
    };
    let conf = d.join("namesrv.properties");
    std::fs::write(
        &conf,
        format!(
            "listenPort={port}\n{bind}kvConfigPath={}\nconfigStorePath={}\n",
            d.join("namesrv/kvConfig.json").display(),
            d.join("namesrv/namesrv.properties").display()
        ),
    )
    .expect("write config");
    let mut cmd = Command::new("java");
    cmd.args(["-Xms256m", "-Xmx256m", "-XX:MaxMetaspaceSize=128m"])
        .args(jdk_opens(version));
    cmd.arg("-XX:+UseG1GC")
        .arg(format!("-Duser.home={}", home.display()))
        .arg(format!("-Drocketmq.home.dir={}", home.display()))
        .arg("-Dfile.encoding=UTF-8")
        .arg("-Drmq.logback.configurationFile=rmq.namesrv.logback.xml")
        .arg("-cp")
        .arg(format!("{}/*", libs.display()))
        .arg("org.apache.rocketmq.namesrv.NamesrvStartup")
        .arg("-c")
        .arg(&conf)
        .env("ROCKETMQ_HOME", &home);
    let proc = Proc::spawn("java-namesrv", cmd, d.join("namesrv.out"));
    Server {
        label: format!("Java {version} (NamesrvStartup)"),
        proc,
        addr: format!("127.0.0.1:{port}"),
        _dir: dir,
    }
}

pub(crate) fn route_request(topic: &str) -> RemotingCommand {
    RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_header(
        &GetRouteInfoRequestHeader {
            topic: topic.to_owned(),
            accept_standard_json_only: None,
        },
    )
}

pub(crate) fn topic_name(i: usize) -> String {
    format!("BenchTopic-{i}")
}

/// Waits for the first TCP connect, then the first answer to 105 (any
/// response code: "topic not exist" is an answer). Times from `t0`.
pub(crate) async fn wait_ready(server: &mut Server, t0: Instant) -> (f64, f64) {
    let deadline = t0 + BOOT_TIMEOUT;
    let mut connect = None;
    while connect.is_none() {
        assert!(
            Instant::now() < deadline,
            "{}: no TCP connect within {BOOT_TIMEOUT:?}\n{}",
            server.label,
            server.proc.log_text()
        );
        assert!(
            server.proc.is_running(),
            "{} exited during start-up:\n{}",
            server.label,
            server.proc.log_text()
        );
        if tokio::net::TcpStream::connect(&server.addr).await.is_ok() {
            connect = Some(t0.elapsed());
        } else {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    loop {
        assert!(
            Instant::now() < deadline,
            "{}: no answer to 105 within {BOOT_TIMEOUT:?}\n{}",
            server.label,
            server.proc.log_text()
        );
        assert!(
            server.proc.is_running(),
            "{} exited during start-up:\n{}",
            server.label,
            server.proc.log_text()
        );
        if let Ok(conn) = Connection::connect(&server.addr, Arc::new(Router::new())).await {
            if conn
                .request(route_request("BenchProbe"), Duration::from_secs(2))
                .await
                .is_ok()
            {
                let answer = t0.elapsed();
                conn.close();
                let ms = |d: Duration| d.as_secs_f64() * 1e3;
                return (ms(connect.unwrap_or_default()), ms(answer));
            }
            conn.close();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// REGISTER_BROKER (103) of a fake master with `topics` topics; returns the
/// connection, kept open as a broker would.
pub(crate) async fn register_fake_broker(addr: &str, topics: usize) -> (Connection, usize) {
    let conn = Connection::connect(addr, Arc::new(Router::new()))
        .await
        .expect("connect to register broker");
    let broker_port = free_port();
    let mut table = BTreeMap::new();
    for i in 0..topics {
        let t = topic_name(i);
        table.insert(t.clone(), TopicConfig::new(t, 8, 8, 6));
    }
    let body = to_json(&RegisterBrokerBody {
        topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
            topic_config_table: table,
            data_version: DataVersion::now(),
            ..Default::default()
        },
        filter_server_list: Vec::new(),
    });
    let crc = crc32_masked(&body);
    let req = RemotingCommand::request(request_code::REGISTER_BROKER)
        .with_ext("brokerName", "bench-broker-a")
        .with_ext("brokerAddr", format!("127.0.0.1:{broker_port}"))
        .with_ext("clusterName", "BenchCluster")
        .with_ext("haServerAddr", format!("127.0.0.1:{}", broker_port + 1))
        .with_ext("brokerId", "0")
        .with_ext("heartbeatTimeoutMillis", "600000")
        .with_ext("compressed", "false")
        .with_ext("bodyCrc32", crc.to_string())
        .with_body(body);
    let resp = conn
        .request(req, REQUEST_TIMEOUT)
        .await
        .expect("REGISTER_BROKER answered");
    assert_eq!(
        resp.code,
        response_code::SUCCESS,
        "REGISTER_BROKER failed: {:?}",
        resp.remark
    );
    // The route must now exist.
    let r = conn
        .request(route_request(&topic_name(0)), REQUEST_TIMEOUT)
        .await
        .expect("route answered");
    assert_eq!(
        r.code,
        response_code::SUCCESS,
        "route after register: {:?}",
        r.remark
    );
    assert!(!r.body.is_empty(), "empty route body");
    let len = r.body.len();
    (conn, len)
}
