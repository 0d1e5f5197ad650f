//! REGISTER_BROKER: which registrations write queue data, slaves and ids,
//! the delete-on-registration option, static topics and acting masters.

use super::*;

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
    slave.payload.data_version = dv(2);
    t.register_broker(slave, 2, T0, opts);
    assert_eq!(t.queue_data("T", "a").unwrap().perm, 4);
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
