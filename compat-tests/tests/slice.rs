//! The first end-to-end slice, judged by the official clients: mqadmin creates
//! a topic on our broker and sees it in the cluster and route; the Java
//! (per version) and Go clients send 1,000 messages synchronously and a push
//! consumer receives every one exactly once.

use std::time::Duration;

use compat_tests::{
    assert_single_broker_route, go_driver, java_client, run_with_timeout, serial, text, Cluster,
    JavaClient, JAVA_VERSIONS,
};

const MESSAGES: &str = "1000";

/// `updateTopic` then `clusterList` and `topicRoute`, as an operator would.
fn create_topic_with_mqadmin(cluster: &Cluster, java: &JavaClient, topic: &str) {
    let home = cluster.client_home(&format!("mqadmin-{}", java.version));
    let ns = cluster.namesrv_addr.as_str();

    java.update_topic(
        &home,
        ns,
        &cluster.cluster_name,
        topic,
        4,
        &cluster.broker_addr,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));

    let out = java.mqadmin(&home, &["clusterList", "-n", ns]);
    let row = out
        .lines()
        .find(|l| l.contains(&cluster.broker_addr))
        .unwrap_or_else(|| {
            panic!(
                "mqadmin {} clusterList does not show our broker:\n{out}",
                java.version
            )
        });
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cols[..4],
        &[
            cluster.cluster_name.as_str(),
            cluster.broker_name.as_str(),
            "0",
            cluster.broker_addr.as_str()
        ],
        "{out}"
    );

    let (route, out) = java.topic_route(&home, ns, topic, Duration::from_secs(30));
    assert_single_broker_route(&route, &out, &cluster.broker_name, &cluster.broker_addr, 4);
}

fn java_round_trip(version: &str) {
    let _one_at_a_time = serial();
    let java = java_client(version);
    let cluster = Cluster::start();
    let topic = format!("SliceJava{}", version.replace('.', ""));
    create_topic_with_mqadmin(&cluster, &java, &topic);

    let home = cluster.client_home(&format!("java-{version}"));
    let group = format!("slice_java_{}", version.replace('.', "_"));
    let out = java.run(
        &home,
        "compat.ProduceConsume",
        &[&cluster.namesrv_addr, &topic, MESSAGES, &group, "150"],
        Duration::from_secs(240),
    );
    let out = text(&out);
    assert!(
        out.contains("sent=1000 received=1000 duplicates=0 missing=0"),
        "Java {version} produce/consume:\n{out}\n{}",
        cluster.logs()
    );
}

#[test]
fn java_4_9_8_producer_and_push_consumer() {
    java_round_trip(JAVA_VERSIONS[0]);
}

#[test]
fn java_5_3_3_producer_and_push_consumer() {
    java_round_trip(JAVA_VERSIONS[1]);
}

#[test]
fn go_producer_and_push_consumer() {
    let _one_at_a_time = serial();
    let driver = go_driver();
    let java = java_client(JAVA_VERSIONS[1]);
    let cluster = Cluster::start();
    let topic = "SliceGo";
    create_topic_with_mqadmin(&cluster, &java, topic);

    let home = cluster.client_home("go");
    let mut cmd = std::process::Command::new(driver);
    cmd.args([
        "-namesrv",
        &cluster.namesrv_addr,
        "-topic",
        topic,
        "-count",
        MESSAGES,
        "-group",
        "slice_go",
        "-timeout",
        "150s",
    ])
    .env("HOME", &home)
    .env("rocketmq.client.localOffsetStoreDir", home.join("offsets"));
    let out = text(&run_with_timeout(cmd, Duration::from_secs(240)));
    assert!(
        out.contains("sent=1000 received=1000 duplicates=0 missing=0"),
        "Go produce/consume:\n{out}\n{}",
        cluster.logs()
    );
}
