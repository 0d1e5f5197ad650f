//! mqadmin 5.3.3 side by side against the official Java 5.3.3 name server and
//! ours, with ONE broker (our `mqbroker`, `namesrvAddr=ours;java`) registered
//! with both: every name-server-facing command is run against each name
//! server and the printed text must be equal once the name server's own
//! address (and a few values that legitimately differ, each commented) are
//! normalised. State-changing commands are applied to each name server and
//! the follow-up observation is compared too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use compat_tests::{java_client, serial, JavaClient, JavaNamesrv, OurNamesrv, StandaloneBroker};

const VERSION: &str = "5.3.3";
const TOPIC: &str = "NsSideBySide";

/// One name server as mqadmin sees it.
struct Side {
    name: &'static str,
    addr: String,
    home: PathBuf,
}

struct Env<'a> {
    java: &'a JavaClient,
    ours: Side,
    theirs: Side,
    logs: &'a (dyn Fn() -> String + Sync),
}

impl Env<'_> {
    /// Runs `args` (with `-n <addr>` appended) against both name servers at
    /// once; returns (ours, java), each normalised.
    fn both(&self, args: &[&str]) -> (String, String) {
        let run = |side: &Side| {
            let mut a: Vec<&str> = args.to_vec();
            a.extend(["-n", side.addr.as_str()]);
            let raw = self.java.mqadmin(&side.home, &a);
            normalise(&raw, &side.addr)
        };
        let t0 = Instant::now();
        let both = std::thread::scope(|s| {
            let t = s.spawn(|| run(&self.theirs));
            let o = run(&self.ours);
            (o, t.join().expect("mqadmin thread"))
        });
        eprintln!("[{:>5.1?}] mqadmin {args:?}:\n{}", t0.elapsed(), both.0);
        both
    }

    /// Runs `args` against both and asserts equal output; returns it.
    fn same(&self, args: &[&str]) -> String {
        let (o, j) = self.both(args);
        assert_eq!(
            o,
            j,
            "mqadmin {args:?}: our name server (left) vs Java {VERSION} (right)\n{}",
            (self.logs)()
        );
        o
    }

    /// Sequentially (ours, then Java), for commands that also act on the
    /// shared broker.
    fn one(&self, side: &Side, args: &[&str]) -> String {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["-n", side.addr.as_str()]);
        let t0 = Instant::now();
        let out = normalise(&self.java.mqadmin(&side.home, &a), &side.addr);
        eprintln!(
            "[{:>5.1?}] mqadmin {args:?} ({}):\n{out}",
            t0.elapsed(),
            side.name
        );
        out
    }
}

/// The name server's own address becomes `<namesrv>`; trailing blanks go.
fn normalise(out: &str, ns_addr: &str) -> String {
    out.replace(ns_addr, "<namesrv>")
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `clusterList`: the header and the first five columns of each row
/// (cluster, broker name, id, address, version). The remaining columns
/// (TPS, timer progress, page-cache wait, hours, disk ratio, activated) come
/// from GET_BROKER_RUNTIME_INFO sent to the shared broker at two different
/// moments, so they legitimately differ between the runs.
fn cluster_list_view(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| {
            if l.starts_with('#') {
                l.split_whitespace().collect::<Vec<_>>().join(" ")
            } else {
                l.split_whitespace().take(5).collect::<Vec<_>>().join(" ")
            }
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// `topicList` prints a hash set: the order is the client's set iteration,
/// not something either name server controls, so compare sorted.
fn sorted_lines(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

/// Keys of a `getNamesrvConfig` block ("key = value" lines).
fn config_keys(out: &str) -> BTreeSet<String> {
    config_map(out).into_keys().collect()
}

fn config_map(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter(|l| !l.starts_with("====="))
        .filter_map(|l| {
            l.split_once(" = ")
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// Config values that are each server's own: its port and its files.
const OWN_CONFIG_VALUES: [&str; 4] = [
    "listenPort",
    "kvConfigPath",
    "configStorePath",
    "rocketmqHome",
];

/// The `"perm":N` of the single queue data in `topicRoute` output.
fn route_perm(out: &str) -> Option<i32> {
    let at = out.find("\"perm\":")? + "\"perm\":".len();
    out[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

/// Retries `topicRoute` on both until each prints a route.
fn wait_route(env: &Env, timeout: Duration) -> (String, String) {
    let deadline = Instant::now() + timeout;
    loop {
        let (o, j) = env.both(&["topicRoute", "-t", TOPIC]);
        if o.contains('{') && j.contains('{') {
            return (o, j);
        }
        assert!(
            Instant::now() < deadline,
            "no route for {TOPIC} on both name servers:\nours:\n{o}\njava:\n{j}\n{}",
            (env.logs)()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn mqadmin_prints_the_same_against_java_namesrv_and_ours() {
    let _one_at_a_time = serial();
    let started = Instant::now();
    let java = java_client(VERSION);
    // Name servers first: dropped after the broker.
    // The harness gives the Java name server ROCKETMQ_HOME (it needs its
    // logback files there), so Java reports `rocketmqHome`; both servers
    // leave the key out when it is unset. Set it on ours too, from the file.
    let ours = OurNamesrv::start_with(&format!(
        "rocketmqHome={}\n",
        std::env::temp_dir().display()
    ));
    let theirs = JavaNamesrv::start(VERSION);
    let broker = StandaloneBroker::start(&format!("{};{}", ours.addr, theirs.addr), "");
    let logs = || format!("{}\n{}\n{}", ours.logs(), theirs.logs(), broker.logs());
    let env = Env {
        java: &java,
        ours: Side {
            name: "ours",
            addr: ours.addr.clone(),
            home: ours.client_home("mqadmin"),
        },
        theirs: Side {
            name: "java",
            addr: theirs.addr.clone(),
            home: theirs.client_home("mqadmin"),
        },
        logs: &logs,
    };

    // A topic on the shared broker; the broker reports it to both.
    let out = env.one(
        &env.ours,
        &[
            "updateTopic",
            "-c",
            &broker.cluster_name,
            "-t",
            TOPIC,
            "-r",
            "4",
            "-w",
            "4",
        ],
    );
    assert!(
        out.contains(&format!("create topic to {} success", broker.addr)),
        "updateTopic:\n{out}\n{}",
        logs()
    );
    let (o, j) = wait_route(&env, Duration::from_secs(30));
    assert_eq!(o, j, "topicRoute: ours (left) vs Java (right)\n{}", logs());
    assert_eq!(route_perm(&o), Some(6), "{o}");

    // ---- read-only commands
    let (o, j) = env.both(&["clusterList"]);
    assert_eq!(
        cluster_list_view(&o),
        cluster_list_view(&j),
        "clusterList: ours (left) vs Java (right)\nours:\n{o}\njava:\n{j}"
    );
    assert!(o.contains(&broker.addr), "clusterList:\n{o}");

    let (o, j) = env.both(&["topicList"]);
    assert_eq!(sorted_lines(&o), sorted_lines(&j), "topicList ours vs Java");
    assert!(o.lines().any(|l| l == TOPIC), "topicList:\n{o}");

    let out = env.same(&["topicClusterList", "-t", TOPIC]);
    assert!(
        out.lines().any(|l| l.trim() == broker.cluster_name),
        "{out}"
    );

    // getNamesrvConfig: the key sets must match (values are each server's own
    // paths, ports and defaults).
    let (o, j) = env.both(&["getNamesrvConfig"]);
    assert!(o.contains("============<namesrv>============"), "{o}");
    assert!(j.contains("============<namesrv>============"), "{j}");
    let (ko, kj) = (config_keys(&o), config_keys(&j));
    let only_ours: Vec<_> = ko.difference(&kj).collect();
    let only_java: Vec<_> = kj.difference(&ko).collect();
    eprintln!(
        "getNamesrvConfig: {} keys ours, {} Java; only ours: {only_ours:?}; only Java: {only_java:?}",
        ko.len(),
        kj.len()
    );
    assert!(
        only_ours.is_empty() && only_java.is_empty(),
        "getNamesrvConfig key sets differ: only ours {only_ours:?}, only Java {only_java:?}\nours:\n{o}\njava:\n{j}"
    );
    // Every other value (defaults, bindAddress, configBlackList) is equal.
    let (mut vo, mut vj) = (config_map(&o), config_map(&j));
    for k in OWN_CONFIG_VALUES {
        vo.remove(k);
        vj.remove(k);
    }
    assert_eq!(
        vo, vj,
        "getNamesrvConfig values: ours (left) vs Java (right)"
    );

    // ---- KV config: write, read back (updateOrderConf -m get reads the
    // ORDER_TOPIC_CONFIG namespace), delete, read again.
    let out = env.same(&[
        "updateKvConfig",
        "-s",
        "ORDER_TOPIC_CONFIG",
        "-k",
        TOPIC,
        "-v",
        "broker-a:4",
    ]);
    assert!(
        out.contains("create or update kv config to namespace success"),
        "{out}"
    );
    let out = env.same(&["updateOrderConf", "-t", TOPIC, "-m", "get"]);
    assert!(out.contains("orderConf=[broker-a:4]"), "{out}");
    let out = env.same(&["deleteKvConfig", "-s", "ORDER_TOPIC_CONFIG", "-k", TOPIC]);
    assert!(
        out.contains("delete kv config from namespace success"),
        "{out}"
    );
    let out = env.same(&["updateOrderConf", "-t", TOPIC, "-m", "get"]);
    assert!(!out.contains("orderConf=[broker-a:4]"), "{out}");

    // ---- write permission of the broker in the name server
    let out = env.same(&["wipeWritePerm", "-b", &broker.broker_name]);
    assert!(
        out.contains("wipe write perm of broker[broker-a] in name server[<namesrv>] OK"),
        "{out}"
    );
    let out = env.same(&["topicRoute", "-t", TOPIC]);
    assert_eq!(route_perm(&out), Some(4), "after wipeWritePerm:\n{out}");
    let out = env.same(&["addWritePerm", "-b", &broker.broker_name]);
    assert!(
        out.contains("add write perm of broker[broker-a] in name server[<namesrv>] OK"),
        "{out}"
    );
    let out = env.same(&["topicRoute", "-t", TOPIC]);
    assert_eq!(route_perm(&out), Some(6), "after addWritePerm:\n{out}");

    // ---- deleteTopic: also deletes the topic on the shared broker, so one
    // name server after the other.
    let delete = [
        "deleteTopic",
        "-t",
        TOPIC,
        "-c",
        broker.cluster_name.as_str(),
    ];
    let o = env.one(&env.ours, &delete);
    let j = env.one(&env.theirs, &delete);
    assert_eq!(o, j, "deleteTopic: ours (left) vs Java (right)\n{}", logs());
    assert!(
        o.contains(&format!("delete topic [{TOPIC}] from NameServer success")),
        "{o}"
    );
    let (o, j) = env.both(&["topicList"]);
    assert_eq!(
        sorted_lines(&o),
        sorted_lines(&j),
        "topicList after deleteTopic"
    );
    assert!(!o.lines().any(|l| l == TOPIC), "{o}");
    let out = env.same(&["topicRoute", "-t", TOPIC]);
    assert!(!out.contains('{'), "route after deleteTopic:\n{out}");

    eprintln!("side by side took {:?}", started.elapsed());
}
