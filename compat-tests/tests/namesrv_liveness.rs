//! Broker liveness as the name server sees it, with real processes: a broker
//! whose connection closes is dropped at once; a broker that stays connected
//! but goes silent is dropped after its heartbeat timeout and comes back when
//! it registers again; and a Java 5.3.3 client given two name servers keeps
//! working when the first one is gone.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compat_tests::{
    bin_dir, cluster_info, java_client, serial, text, Cluster, OurNamesrv, Proc, StandaloneBroker,
};
use remoting::code::request_code;
use remoting::{Connection, RemotingCommand, Router};

const VERSION: &str = "5.3.3";

/// Whether the name server still knows `broker_name` at all (address table
/// or cluster table).
fn knows_broker(namesrv: &str, cluster: &str, broker_name: &str) -> bool {
    let info = cluster_info(namesrv).expect("GET_BROKER_CLUSTER_INFO answered");
    info.broker_addr_table.contains_key(broker_name)
        || info
            .cluster_addr_table
            .get(cluster)
            .is_some_and(|names| names.iter().any(|n| n == broker_name))
}

/// Polls `cond` every 100 ms until it holds; panics with `what` after `timeout`.
fn poll(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

#[test]
fn killed_broker_is_dropped_when_its_connection_closes() {
    let _one_at_a_time = serial();
    let java = java_client(VERSION);
    let mut cluster = Cluster::start();
    let ns = cluster.namesrv_addr.clone();
    let home = cluster.client_home("mqadmin");
    // clusterTopicEnable: the broker registers a topic named after its cluster.
    let topic = cluster.cluster_name.clone();
    let (route, out) = java.topic_route(&home, &ns, &topic, Duration::from_secs(30));
    assert_eq!(route.broker_datas.len(), 1, "{out}");

    // SAFETY: signalling our own child process.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(cluster.broker.pid() as i32, libc::SIGKILL);
    }
    let took = poll(
        "the name server to drop the SIGKILLed broker",
        Duration::from_secs(10),
        || !knows_broker(&ns, &cluster.cluster_name, &cluster.broker_name),
    );
    eprintln!("broker dropped {took:?} after SIGKILL");
    let out = java.mqadmin(&home, &["topicRoute", "-n", &ns, "-t", &topic]);
    assert!(
        !out.contains('{') && out.contains("No topic route info"),
        "topicRoute after the broker died:\n{out}\n{}",
        cluster.logs()
    );

    // Restart the broker on the same config: it registers again (and the
    // cluster's drop then stops a live broker).
    let mut cmd = Command::new(bin_dir().join("mqbroker"));
    cmd.arg("-c")
        .arg(cluster.dir.path().join("broker.conf"))
        .arg("-n")
        .arg(&ns)
        .env("HOME", cluster.dir.path())
        .env("RUST_LOG", "info");
    let log = cluster.dir.path().join("broker-restarted.log");
    let mut dead = std::mem::replace(&mut cluster.broker, Proc::spawn("mqbroker", cmd, log));
    assert!(!dead.is_running());
    cluster.wait_broker_registered(Duration::from_secs(30));
}

#[test]
fn silent_broker_expires_and_comes_back() {
    let _one_at_a_time = serial();
    let ns = OurNamesrv::start_with("scanNotActiveBrokerInterval=1000\n");
    // Java sends heartbeatTimeoutMillis (= brokerNotActiveTimeoutMillis) in
    // REGISTER_BROKER only with enableSlaveActingMaster; without it the name
    // server assumes 120 s.
    let broker = StandaloneBroker::start(
        &ns.addr,
        "enableSlaveActingMaster=true\nbrokerNotActiveTimeoutMillis=4000\nregisterNameServerPeriod=1000\n",
    );
    let logs = || format!("{}\n{}", ns.logs(), broker.logs());
    assert!(broker.is_registered(&ns.addr), "{}", logs());

    broker.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    let expired = Duration::from_secs(20);
    while knows_broker(&ns.addr, &broker.cluster_name, &broker.broker_name) {
        assert!(
            stopped.elapsed() < expired,
            "silent broker still listed after {expired:?}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = stopped.elapsed();
    eprintln!("silent broker dropped {took:?} after SIGSTOP");
    // Not before its own timeout (4 s): it was dropped for silence.
    assert!(
        took >= Duration::from_millis(3500),
        "dropped too early: {took:?}"
    );

    broker.signal(libc::SIGCONT);
    let took = poll(
        "the resumed broker to register again",
        Duration::from_secs(20),
        || broker.is_registered(&ns.addr),
    );
    eprintln!("resumed broker registered again {took:?} after SIGCONT");
}

/// Messages stored in queues `0..queues` of `topic` (GET_MAX_OFFSET to the broker).
fn stored_messages(broker: &str, topic: &str, queues: i32) -> i64 {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return 0;
    };
    rt.block_on(async {
        let Ok(conn) = Connection::connect(broker, Arc::new(Router::new())).await else {
            return 0;
        };
        let mut total = 0;
        for q in 0..queues {
            let req = RemotingCommand::request(request_code::GET_MAX_OFFSET)
                .with_ext("topic", topic)
                .with_ext("queueId", q.to_string());
            if let Ok(resp) = conn.request(req, Duration::from_secs(3)).await {
                total += resp
                    .ext("offset")
                    .and_then(|o| o.parse::<i64>().ok())
                    .unwrap_or(0);
            }
        }
        conn.close();
        total
    })
}

/// Two of our name servers, the broker registered with both, the Java 5.3.3
/// ProduceConsume driver given `ns1;ns2`. The first name server is stopped
/// once the client is up and has sent (the producer's first message is
/// stored): from then on every name-server call of the client (route polls
/// every second) must fail over to the second, and the run must complete.
///
/// Why not stop ns1 before the client starts: the 5.3.3 client picks its
/// first name server at random (`NettyRemotingClient.namesrvIndex`) and its
/// very first call to a refused address throws `RemotingConnectException:
/// connect to null failed` out of `DefaultMQPushConsumer.start()` instead of
/// trying the next address -- about half the runs, with the Java name server
/// just as with ours. After one successful call a closed name-server channel
/// makes the client move to the next address deterministically.
#[test]
fn java_client_fails_over_to_the_second_namesrv() {
    let _one_at_a_time = serial();
    let java = java_client(VERSION);
    let mut ns1 = OurNamesrv::start();
    let ns2 = OurNamesrv::start();
    let both = format!("{};{}", ns1.addr, ns2.addr);
    let broker = StandaloneBroker::start(&both, "");
    macro_rules! logs {
        () => {
            format!("{}\n{}\n{}", ns1.logs(), ns2.logs(), broker.logs())
        };
    }

    let topic = "NsFailover";
    let home = ns2.client_home("mqadmin");
    java.update_topic(
        &home,
        &ns2.addr,
        &broker.cluster_name,
        topic,
        4,
        &broker.addr,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", logs!()));
    java.topic_route(&home, &ns2.addr, topic, Duration::from_secs(30));

    let home = ns2.client_home("java");
    let out = std::thread::scope(|scope| {
        let run = scope.spawn(|| {
            text(&java.run(
                &home,
                "compat.ProduceConsume",
                &[&both, topic, "200", "ns_failover", "120"],
                Duration::from_secs(150),
            ))
        });
        let start = Instant::now();
        while stored_messages(&broker.addr, topic, 4) == 0 && !run.is_finished() {
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "the Java client stored nothing in 90 s\n{}",
                logs!()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let stored = stored_messages(&broker.addr, topic, 4);
        let status = ns1.proc.stop(Duration::from_secs(10));
        assert!(status.is_some_and(|s| s.success()), "{}", logs!());
        eprintln!(
            "ns1 stopped {:?} after the client started, {stored} messages stored",
            start.elapsed()
        );
        run.join().expect("ProduceConsume thread")
    });
    assert!(
        out.contains("sent=200 received=200 duplicates=0 missing=0"),
        "Java {VERSION} produce/consume with the first name server stopped:\n{out}\n{}",
        logs!()
    );
}
