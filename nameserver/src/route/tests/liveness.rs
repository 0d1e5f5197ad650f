//! Brokers going away (unregister, closed connection, expiry) and
//! QUERY_DATA_VERSION.

use super::*;

#[test]
fn unregister_removes_the_broker_and_its_orphaned_topics() {
    let mut t = RouteTable::new();
    register(&mut t, "a", 0, "h:1", &[("T", 4), ("A", 4)], 1);
    register(&mut t, "b", 0, "h:3", &[("T", 4), ("B", 4)], 3);
    t.unregister_brokers(&[UnregisterBroker {
        cluster_name: "DefaultCluster".into(),
        broker_addr: "h:1".into(),
        broker_name: "a".into(),
        broker_id: 0,
    }]);
    assert!(t.topic_route("A", OPTS).is_none());
    let route = t.topic_route("T", OPTS).unwrap();
    assert_eq!(
        route
            .broker_datas
            .iter()
            .map(|b| b.broker_name.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
    assert_eq!(route.queue_datas.len(), 1);
    assert_eq!(
        t.cluster_info().cluster_addr_table["DefaultCluster"],
        vec!["b".to_owned()]
    );
    assert!(t.live_broker(&addr("h:1")).is_none());
    assert_eq!(t.all_topics().topic_list, ["B", "T"]);
}

#[test]
fn connection_close_removes_only_brokers_registered_on_it() {
    let mut t = RouteTable::new();
    register(&mut t, "a", 0, "h:1", &[("T", 4), ("A", 4)], 1);
    register(&mut t, "b", 0, "h:3", &[("T", 4), ("B", 4)], 3);
    assert!(t.connection_closed(99).is_empty());
    // A re-registration on a new connection takes over the liveness entry.
    register(&mut t, "a", 0, "h:1", &[("T", 4), ("A", 4)], 11);
    assert!(t.connection_closed(1).is_empty());
    assert_eq!(t.connection_closed(11), vec![addr("h:1")]);
    assert!(t.topic_route("A", OPTS).is_none());
    assert!(t.topic_route("B", OPTS).is_some());
    assert_eq!(t.live_broker_count(), 1);
}

#[test]
fn expiry_uses_each_brokers_timeout_and_refreshes() {
    let mut t = RouteTable::new();
    let mut short = reg("a", 0, "h:1", payload(1, &[("T", 4), ("A", 4)]));
    short.heartbeat_timeout_millis = Some(1_000);
    t.register_broker(short, 1, T0, OPTS);
    register(&mut t, "b", 0, "h:3", &[("T", 4), ("B", 4)], 3);
    assert!(
        t.scan_not_active(T0 + 1_000).is_empty(),
        "not yet: expiry is strictly after the timeout"
    );
    t.touch(&addr("h:1"), T0 + 500);
    assert!(t.scan_not_active(T0 + 1_500).is_empty());
    assert_eq!(t.scan_not_active(T0 + 1_501), vec![1]);
    assert!(t.topic_route("A", OPTS).is_none());
    let (changed, stored) = t.query_data_version(&addr("h:3"), Some(&dv(1)), T0 + 100_000);
    assert!(!changed);
    assert_eq!(stored, Some(dv(1)));
    assert!(
        t.scan_not_active(T0 + 120_001).is_empty(),
        "query data version refreshed b"
    );
    assert_eq!(t.scan_not_active(T0 + 220_001), vec![3]);
    assert!(t.topic_route("T", OPTS).is_none());
    assert!(t.cluster_info().broker_addr_table.is_empty());
}

#[test]
fn query_data_version_reports_changes() {
    let mut t = RouteTable::new();
    assert_eq!(
        t.query_data_version(&addr("h:1"), Some(&dv(1)), T0),
        (true, None)
    );
    register(&mut t, "a", 0, "h:1", &[("T", 4), ("A", 4)], 1);
    assert_eq!(
        t.query_data_version(&addr("h:1"), Some(&dv(2)), T0),
        (true, Some(dv(1)))
    );
    assert_eq!(
        t.query_data_version(&addr("h:1"), None, T0),
        (true, Some(dv(1)))
    );
}
