//! Topic lists, zone filtering, filter servers and member groups.

use super::*;

#[test]
fn topic_lists() {
    let mut t = RouteTable::new();
    let mut p = payload(1, &[("T", 4), ("UNIT", 1), ("SUB", 1), ("BOTH", 1)]);
    p.wrapper
        .topic_config_table
        .get_mut("UNIT")
        .unwrap()
        .topic_sys_flag = 1;
    p.wrapper
        .topic_config_table
        .get_mut("SUB")
        .unwrap()
        .topic_sys_flag = 2;
    p.wrapper
        .topic_config_table
        .get_mut("BOTH")
        .unwrap()
        .topic_sys_flag = 3;
    t.register_broker(reg("a", 0, "h:1", p), 1, T0, OPTS);
    let mut other = reg("b", 0, "h:3", payload(1, &[("T", 4), ("X", 4)]));
    other.cluster_name = "C2".into();
    t.register_broker(other, 3, T0, OPTS);
    assert_eq!(t.unit_topics().topic_list, ["BOTH", "UNIT"]);
    assert_eq!(t.has_unit_sub_topics().topic_list, ["BOTH", "SUB"]);
    assert_eq!(t.has_unit_sub_ununit_topics().topic_list, ["SUB"]);
    assert_eq!(t.topics_by_cluster("C2").topic_list, ["T", "X"]);
    assert!(t.topics_by_cluster("nope").topic_list.is_empty());
    let sys = t.system_topics();
    assert_eq!(sys.topic_list, ["C2", "b", "DefaultCluster", "a"]);
    assert!(sys.broker_addr.is_some());
}

#[test]
fn zone_filter_keeps_local_and_masterless_brokers() {
    let mut t = RouteTable::new();
    let mut a = reg("a", 0, "h:1", payload(1, &[("T", 4), ("A", 4)]));
    a.zone_name = Some("z1".into());
    let mut b = reg("b", 0, "h:3", payload(1, &[("T", 4), ("B", 4)]));
    b.zone_name = Some("z2".into());
    let c = reg("c", 1, "h:5", payload(1, &[("T", 4), ("C", 4)]));
    t.register_broker(a, 1, T0, OPTS);
    t.register_broker(b, 3, T0, OPTS);
    t.register_broker(c, 5, T0, OPTS);
    let mut route = t.topic_route("T", OPTS).unwrap();
    route.filter_by_zone("Z1");
    let names: Vec<_> = route
        .broker_datas
        .iter()
        .map(|b| b.broker_name.as_str())
        .collect();
    assert_eq!(names, ["a"]);
    assert_eq!(route.queue_datas.len(), 1);
}

#[test]
fn filter_servers_appear_in_routes() {
    let mut t = RouteTable::new();
    let mut p = payload(1, &[("T", 4), ("A", 4)]);
    p.filter_server_list = Some(vec!["f:1".into()]);
    t.register_broker(reg("a", 0, "h:1", p), 1, T0, OPTS);
    assert_eq!(
        t.topic_route("T", OPTS).unwrap().filter_server_table["h:1"],
        vec!["f:1".to_owned()]
    );
    register(&mut t, "a", 0, "h:1", &[("T", 4), ("A", 4)], 1);
    assert!(t
        .topic_route("T", OPTS)
        .unwrap()
        .filter_server_table
        .is_empty());
}

#[test]
fn member_group() {
    let mut t = RouteTable::new();
    register(&mut t, "a", 0, "h:1", &[("T", 4), ("A", 4)], 1);
    register(&mut t, "a", 2, "h:2", &[("T", 4), ("A", 4)], 2);
    let g = t.broker_member_group("DefaultCluster", "a");
    assert_eq!(g.broker_addrs.keys().copied().collect::<Vec<_>>(), [0, 2]);
    assert!(t
        .broker_member_group("DefaultCluster", "zz")
        .broker_addrs
        .is_empty());
}

/// 10 brokers x 20k topics: every topic routes to all ten, re-registering
/// the same version keeps the topic set (and so the cached topic list),
/// and only a real change of the set moves its version.
#[test]
fn ten_brokers_of_twenty_thousand_topics_route_every_topic() {
    const TOPICS: usize = 20_000;
    let names: Vec<String> = (0..TOPICS).map(|i| format!("scale-{i:05}")).collect();
    let topics: Vec<(&str, i32)> = names.iter().map(|n| (n.as_str(), 8)).collect();
    let mut t = RouteTable::new();
    for b in 0..10 {
        let name = format!("broker-{b}");
        let addr = format!("10.0.0.{b}:10911");
        assert!(register(&mut t, &name, 0, &addr, &topics, b).is_some());
    }
    assert_eq!(t.topic_count(), TOPICS);
    let version = t.topic_set_version();
    for n in &names {
        let route = t.topic_route(n, OPTS).unwrap();
        assert_eq!(
            (route.queue_datas.len(), route.broker_datas.len()),
            (10, 10)
        );
    }
    assert_eq!(t.all_topics().topic_list.len(), TOPICS);
    // Every topic has the same ten entries: one list, shared.
    assert_eq!(t.distinct_queue_lists(), 1);
    let key = t.route_key(&names[0]);
    assert!(key.is_some());
    assert_eq!(t.route_key(&names[TOPICS - 1]), key);

    // The periodic re-registration (same data version) changes nothing.
    for b in 0..10 {
        let name = format!("broker-{b}");
        let addr = format!("10.0.0.{b}:10911");
        assert!(register(&mut t, &name, 0, &addr, &topics, b).is_some());
    }
    assert_eq!(t.topic_set_version(), version);

    // A new topic on one broker, then its deletion: the set moves each time.
    let mut more = topics.clone();
    more.push(("scale-new", 4));
    t.register_broker(
        reg("broker-0", 0, "10.0.0.0:10911", payload(2, &more)),
        0,
        T0,
        OPTS,
    )
    .unwrap();
    assert_ne!(t.topic_set_version(), version);
    let v2 = t.topic_set_version();
    assert!(t.topic_route("scale-new", OPTS).is_some());
    t.delete_topic("scale-new", None);
    assert_ne!(t.topic_set_version(), v2);
    assert_eq!(t.topic_count(), TOPICS);
    assert_eq!(t.distinct_queue_lists(), 1, "the new topic's list is gone");
}

/// Lists no topic uses any more are dropped, whichever way they go.
#[test]
fn shared_queue_lists_follow_changes() {
    let mut t = RouteTable::new();
    let topics = [("A", 4), ("B", 4), ("C", 4)];
    register(&mut t, "a", 0, "h:1", &topics, 1);
    register(&mut t, "b", 0, "h:3", &topics, 3);
    assert_eq!(t.distinct_queue_lists(), 1);
    assert_ne!(t.route_key("A"), t.route_key("ZZ"));
    assert!(t.route_key("ZZ").is_none());

    // One topic differs on one broker: two lists; back again: one.
    t.register_broker(
        reg("a", 0, "h:1", payload(2, &[("A", 8), ("B", 4), ("C", 4)])),
        1,
        T0,
        OPTS,
    );
    assert_eq!(t.distinct_queue_lists(), 2);
    assert_ne!(t.route_key("A"), t.route_key("B"));
    assert_eq!(t.queue_data("A", "a").unwrap().read_queue_nums, 8);
    assert_eq!(t.queue_data("A", "b").unwrap().read_queue_nums, 4);
    t.register_broker(reg("a", 0, "h:1", payload(3, &topics)), 1, T0, OPTS);
    assert_eq!(t.distinct_queue_lists(), 1);
    assert_eq!(t.route_key("A"), t.route_key("B"));

    // A write-permission wipe rewrites the shared list once, for all.
    assert_eq!(t.set_write_perm("b", false), 3);
    assert_eq!(t.distinct_queue_lists(), 1);
    assert_eq!(t.queue_data("C", "b").unwrap().perm, 4);
    assert_eq!(t.queue_data("C", "a").unwrap().perm, 6);

    // Queues sorted by broker name whatever the registration order.
    register(&mut t, "0", 0, "h:0", &[("A", 4), ("Z", 4)], 0);
    let names: Vec<String> = t
        .topic_route("A", OPTS)
        .unwrap()
        .queue_datas
        .into_iter()
        .map(|q| q.broker_name)
        .collect();
    assert_eq!(names, ["0", "a", "b"]);
    // A: 0, a, b; B and C: a, b; Z: 0.
    assert_eq!(t.distinct_queue_lists(), 3);

    // Brokers leaving take their entries, and unused lists, with them.
    for (name, a) in [("0", "h:0"), ("b", "h:3")] {
        t.unregister_brokers(&[UnregisterBroker {
            cluster_name: "DefaultCluster".into(),
            broker_addr: a.into(),
            broker_name: name.into(),
            broker_id: 0,
        }]);
    }
    assert_eq!(t.distinct_queue_lists(), 1);
    assert!(t.topic_route("Z", OPTS).is_none());
    assert_eq!(t.topic_route("A", OPTS).unwrap().queue_datas.len(), 1);
    t.delete_topic("A", None);
    t.delete_topic("B", Some("DefaultCluster"));
    t.delete_topic("C", Some("DefaultCluster"));
    assert_eq!(t.topic_count(), 0);
    assert_eq!(t.distinct_queue_lists(), 0);
}
