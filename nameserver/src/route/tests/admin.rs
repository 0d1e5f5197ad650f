//! DELETE_TOPIC_IN_NAMESRV and REGISTER_TOPIC_IN_NAMESRV.

use super::*;

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
