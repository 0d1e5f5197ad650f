//! The official Java broker 5.3.3 registers with OUR name server, and the
//! official clients find it through our name server: mqadmin creates a topic
//! on the cluster and sees the Java broker in the route; the Java 5.3.3 and Go
//! clients send 300 messages each and a push consumer receives every one
//! exactly once.

use std::time::Duration;

use compat_tests::{
    assert_single_broker_route, go_driver, java_client, run_with_timeout, serial, text, JavaBroker,
    JavaClient, OurNamesrv,
};

const VERSION: &str = "5.3.3";
const MESSAGES: &str = "300";

fn logs(ns: &OurNamesrv, broker: &JavaBroker) -> String {
    format!("{}\n{}", ns.logs(), broker.logs())
}

/// `updateTopic -c <cluster>` then `topicRoute`, which must show the Java broker.
fn create_topic_with_mqadmin(ns: &OurNamesrv, broker: &JavaBroker, java: &JavaClient, topic: &str) {
    let home = ns.client_home("mqadmin");
    java.update_topic(
        &home,
        &ns.addr,
        &broker.cluster_name,
        topic,
        4,
        &broker.addr,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(ns, broker)));

    let (route, out) = java.topic_route(&home, &ns.addr, topic, Duration::from_secs(30));
    assert_single_broker_route(&route, &out, &broker.broker_name, &broker.addr, 4);
    assert_eq!(route.broker_datas[0].cluster, broker.cluster_name, "{out}");
}

#[test]
fn java_broker_5_3_3_registers_with_our_namesrv_and_clients_round_trip() {
    let _one_at_a_time = serial();
    let java = java_client(VERSION);
    let driver = go_driver();
    // Declared first, dropped last: the broker stops before the name server.
    let ns = OurNamesrv::start();
    let broker = JavaBroker::start(VERSION, &ns.addr);

    // Java 5.3.3 client.
    let topic = "JavaBrokerOurNsJava";
    create_topic_with_mqadmin(&ns, &broker, &java, topic);
    let home = ns.client_home("java");
    let out = text(&java.run(
        &home,
        "compat.ProduceConsume",
        &[&ns.addr, topic, MESSAGES, "java_broker_our_ns_java", "150"],
        Duration::from_secs(180),
    ));
    assert!(
        out.contains("sent=300 received=300 duplicates=0 missing=0"),
        "Java {VERSION} produce/consume through our name server:\n{out}\n{}",
        logs(&ns, &broker)
    );

    // Go client, another topic.
    let topic = "JavaBrokerOurNsGo";
    create_topic_with_mqadmin(&ns, &broker, &java, topic);
    let home = ns.client_home("go");
    let mut cmd = std::process::Command::new(driver);
    cmd.args([
        "-namesrv",
        &ns.addr,
        "-topic",
        topic,
        "-count",
        MESSAGES,
        "-group",
        "java_broker_our_ns_go",
        "-timeout",
        "150s",
    ])
    .env("HOME", &home)
    .env("rocketmq.client.localOffsetStoreDir", home.join("offsets"));
    let out = text(&run_with_timeout(cmd, Duration::from_secs(180)));
    assert!(
        out.contains("sent=300 received=300 duplicates=0 missing=0"),
        "Go produce/consume through our name server:\n{out}\n{}",
        logs(&ns, &broker)
    );
}
