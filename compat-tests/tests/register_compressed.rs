//! `compressedRegister` across implementations: our broker registers its
//! topics with Java's `RegisterBrokerBody` zlib body, and the Java 5.3.3 name
//! server inflates it (every topic listed and routable there, as on ours);
//! the Java 5.3.3 broker with `compressedRegister=true` registers with our
//! name server (Java sends that body with `compressed=false` in the header,
//! which Java's own name server cannot parse; ours recognises the zlib
//! stream).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use compat_tests::{remoting_call, serial, JavaBroker, JavaNamesrv, OurNamesrv, StandaloneBroker};
use remoting::body::{from_fastjson, TopicConfig, TopicList, TopicRouteData};
use remoting::code::{request_code as rq, response_code as rc};
use remoting::RemotingCommand;

const VERSION: &str = "5.3.3";
const TOPICS: usize = 5_000;
const BATCH: usize = 500;

fn call(addr: &str, req: RemotingCommand) -> Option<RemotingCommand> {
    remoting_call(addr, req, Duration::from_secs(10))
}

fn all_topics(namesrv: &str) -> BTreeSet<String> {
    call(
        namesrv,
        RemotingCommand::request(rq::GET_ALL_TOPIC_LIST_FROM_NAMESERVER),
    )
    .filter(|r| r.code == rc::SUCCESS)
    .and_then(|r| from_fastjson::<TopicList>(&r.body).ok())
    .map(|l| l.topic_list.into_iter().collect())
    .unwrap_or_default()
}

fn route(namesrv: &str, topic: &str) -> Option<TopicRouteData> {
    call(
        namesrv,
        RemotingCommand::request(rq::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic),
    )
    .filter(|r| r.code == rc::SUCCESS)
    .and_then(|r| from_fastjson(&r.body).ok())
}

fn wait_for(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
    logs: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}\n{}", logs());
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn topic_name(i: usize) -> String {
    format!("Compressed-{i:05}")
}

#[test]
fn compressed_registration_between_ours_and_java_5_3_3() {
    let _one_at_a_time = serial();
    let java_ns = JavaNamesrv::start(VERSION);
    let our_ns = OurNamesrv::start();

    // Our broker, compressed, registered with both name servers.
    let broker = StandaloneBroker::start(
        &format!("{};{}", java_ns.addr, our_ns.addr),
        "compressedRegister=true\nregisterBrokerTimeoutMills=10000\n",
    );
    let logs = || format!("{}\n{}\n{}", broker.logs(), java_ns.logs(), our_ns.logs());
    for start in (0..TOPICS).step_by(BATCH) {
        let list: Vec<TopicConfig> = (start..(start + BATCH).min(TOPICS))
            .map(|i| TopicConfig::new(topic_name(i), 8, 8, 6))
            .collect();
        let body =
            serde_json::to_vec(&serde_json::json!({ "topicConfigList": list })).expect("json");
        let resp = call(
            &broker.addr,
            RemotingCommand::request(rq::UPDATE_AND_CREATE_TOPIC_LIST).with_body(body),
        )
        .expect("topic list created");
        assert_eq!(resp.code, rc::SUCCESS, "{:?}\n{}", resp.remark, logs());
    }
    let wanted: BTreeSet<String> = (0..TOPICS).map(topic_name).collect();
    for ns in [&java_ns.addr, &our_ns.addr] {
        wait_for(
            &format!("{ns} never listed all {TOPICS} topics"),
            Duration::from_secs(60),
            || all_topics(ns).is_superset(&wanted),
            logs,
        );
        for i in (0..TOPICS).step_by(97) {
            let r = route(ns, &topic_name(i)).unwrap_or_else(|| panic!("no route {i} on {ns}"));
            assert_eq!(r.broker_datas.len(), 1);
            assert_eq!(r.broker_datas[0].broker_addrs.get(&0), Some(&broker.addr));
            let q = &r.queue_datas[0];
            assert_eq!((q.read_queue_nums, q.write_queue_nums, q.perm), (8, 8, 6));
        }
    }

    // The Java broker, compressed, registers with ours; a topic created on
    // it is routable there.
    let mut java_broker =
        JavaBroker::start_with(VERSION, &our_ns.addr, "compressedRegister=true\n");
    let jlogs = || format!("{}\n{}", java_broker.logs(), our_ns.logs());
    let resp = call(
        &java_broker.addr,
        RemotingCommand::request(rq::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", "CompressedFromJava")
            .with_ext("defaultTopic", "TBW102")
            .with_ext("readQueueNums", "4")
            .with_ext("writeQueueNums", "4")
            .with_ext("perm", "6")
            .with_ext("topicFilterType", "SINGLE_TAG"),
    )
    .expect("topic created on the Java broker");
    assert_eq!(resp.code, rc::SUCCESS, "{:?}\n{}", resp.remark, jlogs());
    wait_for(
        "the Java broker's topic never became routable on our name server",
        Duration::from_secs(60),
        || {
            route(&our_ns.addr, "CompressedFromJava").is_some_and(|r| {
                r.broker_datas
                    .iter()
                    .any(|b| b.broker_addrs.get(&0) == Some(&java_broker.addr))
            })
        },
        jlogs,
    );
    // Its full (compressed) registration carried its system topics too.
    assert!(
        route(&our_ns.addr, &java_broker.broker_name).is_some(),
        "{}",
        jlogs()
    );
    java_broker.wait_registered(&our_ns.addr, Duration::from_secs(10));
}
