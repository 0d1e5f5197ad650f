//! QUERY_MESSAGE through mqadmin: messages sent with keys are found by
//! `queryMsgByKey` (4.9.8 and 5.3.3 tools) and by their unique key
//! (`queryMsgByUniqueKey`, 5.3.3 `queryMsgById -t`); a missing key prints
//! "no message".

use compat_tests::{java_client, serial, Cluster, JavaClient, JAVA_VERSIONS};

const TOPIC: &str = "QueryByKeyTopic";

fn update_topic(cluster: &Cluster, java: &JavaClient) {
    let home = cluster.client_home("mqadmin-5.3.3");
    java.update_topic(
        &home,
        &cluster.namesrv_addr,
        &cluster.cluster_name,
        TOPIC,
        4,
        &cluster.broker_addr,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
}

/// `mqadmin sendMessage -k key`; returns the printed message id (UNIQ_KEY).
fn send_with_key(cluster: &Cluster, java: &JavaClient, body: &str, key: &str) -> String {
    let home = cluster.client_home("mqadmin-5.3.3");
    for _ in 0..10 {
        let out = java.mqadmin(
            &home,
            &[
                "sendMessage",
                "-n",
                &cluster.namesrv_addr,
                "-t",
                TOPIC,
                "-p",
                body,
                "-k",
                key,
            ],
        );
        if let Some(line) = out.lines().find(|l| l.contains("SEND_OK")) {
            let id = line
                .split_whitespace()
                .last()
                .unwrap_or_default()
                .to_owned();
            // 32 hex digits, or 56 when the client address is IPv6.
            assert!(
                id.len() >= 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "message id in {line:?}"
            );
            return id;
        }
        // The route may not have reached the client yet.
        std::thread::sleep(std::time::Duration::from_secs(1));
        eprintln!("sendMessage retry:\n{out}");
    }
    panic!("sendMessage never succeeded\n{}", cluster.logs());
}

#[test]
fn query_msg_by_key_and_unique_key() {
    let _serial = serial();
    let cluster = Cluster::start();
    let java5 = java_client("5.3.3");
    update_topic(&cluster, &java5);
    let id1 = send_with_key(&cluster, &java5, "body-one", "key1");
    let id2 = send_with_key(&cluster, &java5, "body-two", "key2");
    let id3 = send_with_key(&cluster, &java5, "body-three", "key1");
    let ns = cluster.namesrv_addr.as_str();

    for version in JAVA_VERSIONS {
        let java = java_client(version);
        let home = cluster.client_home(&format!("mqadmin-{version}"));

        let out = java.mqadmin(
            &home,
            &["queryMsgByKey", "-n", ns, "-t", TOPIC, "-k", "key1"],
        );
        assert!(
            out.contains("#Message ID") && out.contains("#QID") && out.contains("#Offset"),
            "{version} queryMsgByKey header:\n{out}\n{}",
            cluster.logs()
        );
        let rows: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|c| {
                c.len() == 3 && c[0].len() >= 32 && c[0].bytes().all(|b| b.is_ascii_hexdigit())
            })
            .collect();
        let mut ids: Vec<&str> = rows.iter().map(|c| c[0]).collect();
        ids.sort_unstable();
        let mut want = vec![id1.as_str(), id3.as_str()];
        want.sort_unstable();
        assert_eq!(ids, want, "{version} queryMsgByKey key1:\n{out}");
        for c in &rows {
            let qid: i32 = c[1].parse().expect("queue id");
            assert!((0..4).contains(&qid), "{out}");
            c[2].parse::<i64>().expect("queue offset");
        }

        let out = java.mqadmin(
            &home,
            &["queryMsgByKey", "-n", ns, "-t", TOPIC, "-k", "key2"],
        );
        assert!(out.contains(&id2), "{version} queryMsgByKey key2:\n{out}");
        assert!(!out.contains(&id1), "{version} queryMsgByKey key2:\n{out}");

        let out = java.mqadmin(
            &home,
            &["queryMsgByKey", "-n", ns, "-t", TOPIC, "-k", "no-such-key"],
        );
        assert!(
            out.contains("no message"),
            "{version} queryMsgByKey missing key:\n{out}"
        );

        let out = java.mqadmin(
            &home,
            &["queryMsgByUniqueKey", "-n", ns, "-t", TOPIC, "-i", &id2],
        );
        assert!(
            out.contains(&id2) && out.contains("key2") && out.contains(TOPIC),
            "{version} queryMsgByUniqueKey:\n{out}\n{}",
            cluster.logs()
        );
    }

    let home = cluster.client_home("mqadmin-5.3.3");
    let out = java5.mqadmin(&home, &["queryMsgById", "-n", ns, "-t", TOPIC, "-i", &id3]);
    assert!(
        out.contains(&id3) && out.contains("key1"),
        "5.3.3 queryMsgById by unique key:\n{out}\n{}",
        cluster.logs()
    );
}
