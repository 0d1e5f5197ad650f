#![allow(clippy::unwrap_used)]

use super::*;
use remoting::body::TopicConfigSerializeWrapper;

const T0: i64 = 1_700_000_000_000;
const OPTS: RouteOptions = RouteOptions {
    delete_topic_with_broker_registration: false,
    support_acting_master: false,
};

fn dv(counter: i64) -> DataVersion {
    DataVersion {
        counter,
        state_version: 0,
        timestamp: T0,
    }
}

fn payload(counter: i64, topics: &[(&str, i32)]) -> RegisterPayload {
    let mut wrapper = TopicConfigSerializeWrapper {
        data_version: dv(counter),
        ..Default::default()
    };
    for (name, queues) in topics {
        wrapper.topic_config_table.insert(
            (*name).to_owned(),
            TopicConfig::new(*name, *queues, *queues, 6),
        );
    }
    RegisterPayload {
        wrapper,
        filter_server_list: Some(vec![]),
        mapping_info: BTreeMap::new(),
    }
}

fn reg(name: &str, id: i64, addr: &str, payload: RegisterPayload) -> RegisterBroker {
    RegisterBroker {
        cluster_name: "DefaultCluster".into(),
        broker_addr: addr.into(),
        broker_name: name.into(),
        broker_id: id,
        ha_server_addr: format!("{addr}-ha"),
        payload,
        ..Default::default()
    }
}

/// Broker `name`/`id` at `addr` registers `topics` at data version 1 over
/// connection `conn`, at `T0` under the default options.
fn register(
    t: &mut RouteTable,
    name: &str,
    id: i64,
    addr: &str,
    topics: &[(&str, i32)],
    conn: ConnId,
) -> Option<RegisterBrokerResult> {
    t.register_broker(reg(name, id, addr, payload(1, topics)), conn, T0, OPTS)
}

fn addr(a: &str) -> BrokerAddrInfo {
    BrokerAddrInfo::new("DefaultCluster", a)
}

#[test]
fn master_registration_creates_routes() {
    let mut t = RouteTable::new();
    let r = register(&mut t, "a", 0, "h:1", &[("T", 4), ("U", 2)], 7).unwrap();
    assert_eq!(r, RegisterBrokerResult::default());
    let route = t.topic_route("T", OPTS).unwrap();
    assert_eq!(
        route.queue_datas,
        vec![QueueData {
            broker_name: "a".into(),
            perm: 6,
            read_queue_nums: 4,
            write_queue_nums: 4,
            topic_sys_flag: 0
        }]
    );
    assert_eq!(route.broker_datas.len(), 1);
    assert_eq!(
        route.broker_datas[0].broker_addrs,
        BTreeMap::from([(0, "h:1".to_owned())])
    );
    assert_eq!(route.broker_datas[0].cluster, "DefaultCluster");
    assert!(t.topic_route("nope", OPTS).is_none());
    let info = t.cluster_info();
    assert_eq!(
        info.cluster_addr_table["DefaultCluster"],
        vec!["a".to_owned()]
    );
    let live = t.live_broker(&addr("h:1")).unwrap();
    assert_eq!(
        (live.conn, live.last_update_ms, live.heartbeat_timeout_ms),
        (7, T0, DEFAULT_BROKER_TIMEOUT_MS)
    );
}

#[test]
fn queue_data_is_rewritten_only_when_the_data_version_changes() {
    let mut t = RouteTable::new();
    register(&mut t, "a", 0, "h:1", &[("T", 4), ("X", 4)], 1);
    assert_eq!(t.set_write_perm("a", false), 2);
    assert_eq!(t.queue_data("T", "a").unwrap().perm, 4);
    // Same version: the wipe survives (mqadmin wipeWritePerm relies on this).
    t.register_broker(
        reg("a", 0, "h:1", payload(1, &[("T", 8), ("X", 4)])),
        1,
        T0 + 1,
        OPTS,
    );
    assert_eq!(t.queue_data("T", "a").unwrap().perm, 4);
    assert_eq!(t.queue_data("T", "a").unwrap().read_queue_nums, 4);
    // New version: rewritten from the topic config.
    t.register_broker(
        reg("a", 0, "h:1", payload(2, &[("T", 8), ("X", 4)])),
        1,
        T0 + 2,
        OPTS,
    );
    assert_eq!(t.queue_data("T", "a").unwrap().perm, 6);
    assert_eq!(t.queue_data("T", "a").unwrap().read_queue_nums, 8);
    assert_eq!(t.set_write_perm("a", true), 2);
    assert_eq!(t.set_write_perm("other", true), 0);
}

#[test]
fn a_topic_missing_for_this_broker_is_added_even_at_the_same_version() {
    let mut t = RouteTable::new();
    register(&mut t, "a", 0, "h:1", &[("T", 4), ("U", 4)], 1);
    t.delete_topic("U", None);
    assert!(t.topic_route("U", OPTS).is_none());
    register(&mut t, "a", 0, "h:1", &[("T", 4), ("U", 4)], 1);
    assert!(t.topic_route("U", OPTS).is_some());
}

#[test]
fn slaves_learn_their_master_and_do_not_write_queue_data() {
    let mut t = RouteTable::new();
    let r = register(&mut t, "a", 1, "h:2", &[("T", 4), ("U", 4)], 2).unwrap();
    assert_eq!(r, RegisterBrokerResult::default(), "no master yet");
    assert!(
        t.topic_route("T", OPTS).is_none(),
        "an old-version slave writes no queue data"
    );
    register(&mut t, "a", 0, "h:1", &[("T", 4), ("U", 4)], 1);
    let r = register(&mut t, "a", 1, "h:2", &[("T", 4), ("U", 4)], 2).unwrap();
    assert_eq!(r.master_addr.as_deref(), Some("h:1"));
    assert_eq!(r.ha_server_addr.as_deref(), Some("h:1-ha"));
    let route = t.topic_route("T", OPTS).unwrap();
    assert_eq!(route.broker_datas[0].broker_addrs.len(), 2);
}

#[test]
fn single_topic_registration_needs_a_prior_full_registration() {
    let mut t = RouteTable::new();
    assert!(register(&mut t, "a", 0, "h:1", &[("T", 4)], 1).is_none());
    assert!(register(&mut t, "a", 0, "h:1", &[("T", 4), ("U", 1)], 1).is_some());
    assert!(t
        .register_broker(reg("a", 0, "h:1", payload(2, &[("V", 4)])), 1, T0, OPTS)
        .is_some());
    assert!(t.topic_route("V", OPTS).is_some());
}

#[test]
fn an_address_moving_to_a_new_id_is_replaced() {
    let mut t = RouteTable::new();
    register(&mut t, "a", 1, "h:2", &[("T", 4), ("U", 4)], 2);
    // The slave is promoted: same address, id 0.
    t.register_broker(
        reg("a", 0, "h:2", payload(2, &[("T", 4), ("U", 4)])),
        2,
        T0,
        OPTS,
    );
    let route = t.topic_route("T", OPTS).unwrap();
    assert_eq!(
        route.broker_datas[0].broker_addrs,
        BTreeMap::from([(0, "h:2".to_owned())])
    );
}

#[test]
fn a_newer_state_version_holds_the_id() {
    let mut t = RouteTable::new();
    let mut p = payload(1, &[("T", 4), ("U", 4)]);
    p.wrapper.data_version.state_version = 5;
    t.register_broker(reg("a", 0, "h:1", p), 1, T0, OPTS);
    let r = register(&mut t, "a", 0, "h:9", &[("T", 4), ("U", 4)], 9);
    assert_eq!(r, Some(RegisterBrokerResult::default()));
    assert_eq!(
        t.topic_route("T", OPTS).unwrap().broker_datas[0].broker_addrs[&0],
        "h:1"
    );
    assert!(t.live_broker(&addr("h:9")).is_none());
}

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
fn delete_topic_by_cluster_keeps_other_clusters() {
    let mut t = RouteTable::new();
    register(&mut t, "a", 0, "h:1", &[("T", 4), ("A", 4)], 1);
    let mut other = reg("b", 0, "h:3", payload(1, &[("T", 4), ("X", 4)]));
    other.cluster_name = "C2".into();
    t.register_broker(other, 3, T0, OPTS);
    t.delete_topic("T", Some("C2"));
    assert_eq!(t.topic_route("T", OPTS).unwrap().queue_datas.len(), 1);
    t.delete_topic("T", Some("unknown"));
    t.delete_topic("T", Some("DefaultCluster"));
    assert!(t.topic_route("T", OPTS).is_none());
}

#[test]
fn register_topic_only_for_known_brokers() {
    let mut t = RouteTable::new();
    register(&mut t, "a", 0, "h:1", &[("T", 4), ("A", 4)], 1);
    let qd = |b: &str| QueueData {
        broker_name: b.into(),
        perm: 6,
        read_queue_nums: 2,
        write_queue_nums: 2,
        topic_sys_flag: 0,
    };
    t.register_topic("N", &[qd("a"), qd("ghost")]);
    assert!(
        t.topic_route("N", OPTS).is_none(),
        "new topic with an unknown broker: nothing"
    );
    t.register_topic("N", &[qd("a")]);
    assert_eq!(
        t.topic_route("N", OPTS).unwrap().queue_datas[0].read_queue_nums,
        2
    );
    t.register_topic("E", &[]);
    assert!(t.topic_route("E", OPTS).is_none());
}

#[test]
fn delete_topic_with_broker_registration() {
    let opts = RouteOptions {
        delete_topic_with_broker_registration: true,
        ..OPTS
    };
    let mut t = RouteTable::new();
    t.register_broker(
        reg("a", 0, "h:1", payload(1, &[("T", 4), ("A", 4)])),
        1,
        T0,
        opts,
    );
    t.register_broker(
        reg("a", 0, "h:1", payload(2, &[("T", 4), ("B", 4)])),
        1,
        T0,
        opts,
    );
    assert!(t.topic_route("A", opts).is_none());
    assert!(t.topic_route("B", opts).is_some());
    // Off (the default): topics stay until the broker goes away.
    t.register_broker(
        reg("a", 0, "h:1", payload(3, &[("T", 4), ("C", 4)])),
        1,
        T0,
        OPTS,
    );
    assert!(t.topic_route("B", OPTS).is_some());
}

#[test]
fn acting_master() {
    let opts = RouteOptions {
        support_acting_master: true,
        ..OPTS
    };
    let mut t = RouteTable::new();
    let mut master = reg("a", 0, "h:1", payload(1, &[("T", 4), ("A", 4)]));
    master.enable_acting_master = Some(true);
    t.register_broker(master, 1, T0, opts);
    let mut slave = reg("a", 1, "h:2", payload(1, &[("T", 4), ("A", 4)]));
    slave.enable_acting_master = Some(true);
    t.register_broker(slave.clone(), 2, T0, opts);
    assert_eq!(
        t.queue_data("T", "a").unwrap().perm,
        6,
        "not prime while the master lives"
    );
    // The master goes: the slave's queues lose write permission and the
    // route announces the slave as id 0.
    t.connection_closed(1);
    assert_eq!(t.queue_data("T", "a").unwrap().perm, 4);
    let route = t.topic_route("T", opts).unwrap();
    assert_eq!(
        route.broker_datas[0].broker_addrs,
        BTreeMap::from([(0, "h:2".to_owned())])
    );
    let plain = t.topic_route("T", OPTS).unwrap();
    assert_eq!(
        plain.broker_datas[0].broker_addrs,
        BTreeMap::from([(1, "h:2".to_owned())])
    );
    // The prime slave re-registering with a new version stays read-only.
    slave.payload.wrapper.data_version = dv(2);
    t.register_broker(slave, 2, T0, opts);
    assert_eq!(t.queue_data("T", "a").unwrap().perm, 4);
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
fn static_topic_mappings_are_passed_through() {
    let mut t = RouteTable::new();
    let mut p = payload(1, &[("T", 4), ("S", 4)]);
    p.mapping_info.insert(
        "S".into(),
        serde_json::json!({"topic":"S","bname":"a","epoch":3}),
    );
    t.register_broker(reg("a", 0, "h:1", p), 1, T0, OPTS);
    let route = t.topic_route("S", OPTS).unwrap();
    assert_eq!(
        route.topic_queue_mapping_by_broker.unwrap()["a"]["epoch"],
        3
    );
    assert!(t
        .topic_route("T", OPTS)
        .unwrap()
        .topic_queue_mapping_by_broker
        .is_none());
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
