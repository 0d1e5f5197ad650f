//! ACL 1.0 (`aclEnable=true`, `plain_acl.yml`) side by side: the official
//! Java 4.9.8 client with `AclClientRPCHook` (artifact `rocketmq-acl`)
//! against our broker and against the Java 4.9.7 broker (4.9.8's server jars
//! are not on Maven Central; its ACL code is the same) with the same rules.
//!
//! - `java_client_outcomes_match_java_broker`: both brokers start with an
//!   empty `plain_acl.yml` (each creates it), then the rules are written and
//!   each broker reloads them (polled: an admin `createTopic` succeeds once
//!   loaded). A Java driver (`AclCases`, compiled with `javac` against
//!   the 4.9.8 client jars) runs the case table below with
//!   `MQClientAPIImpl` straight to the broker: each outcome is `OK` or the
//!   exception class, response code and whether the remark is an
//!   `AclException`; ours must equal Java's, case by case. Then mqadmin
//!   4.9.8 (`conf/tools.yml` with the admin account) runs
//!   `updateAclConfig`, `clusterAclConfigVersion`, `deleteAclConfig` and
//!   `updateGlobalWhiteAddr` on both, each checked by a driver case after it.
//!
//! Known differences between Java 4.9.x and 5.x ACL 1.0 (we follow 5.3.2)
//! are left out of the table: an admin account skips per-resource checks in
//! 5.x only; codes 50-52 need admin in 5.x only; 4.9.x takes a SEND_V2 retry
//! topic's group from the producer group field (the driver sends with the
//! group as producer group so both read the same); 4.9.x never checks
//! SEND_BATCH_MESSAGE; 4.9.x always skips `_UNIQUE_KEY_QUERY`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use compat_tests::acl_driver::AclDriver;
use compat_tests::ha_pair::Node;
use compat_tests::{run_with_timeout, serial, Cluster, JavaBroker, OurNamesrv};

const JAVA_BROKER: &str = "4.9.7";
const CLIENT: &str = "4.9.8";

const RULES: &str = "\
globalWhiteRemoteAddresses:
  - 10.10.103.*
accounts:
  - accessKey: aclAdminUser
    secretKey: aclAdminSecret
    admin: true
  - accessKey: normalUser
    secretKey: normalSecret
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicPub=PUB
      - topicSub=SUB
      - topicBoth=PUB|SUB
      - topicDeny=DENY
    groupPerms:
      - groupDeny=DENY
      - groupPub=PUB
  - accessKey: pubOnlyUser
    secretKey: pubOnlySecret
    defaultTopicPerm: PUB
    defaultGroupPerm: DENY
  - accessKey: subOnlyUser
    secretKey: subOnlySecret
    defaultTopicPerm: SUB
    defaultGroupPerm: SUB
  - accessKey: whiteHitUser
    secretKey: whiteHitSecret
    whiteRemoteAddress: 127.0.0.*
    defaultTopicPerm: DENY
  - accessKey: whiteMissUser
    secretKey: whiteMissSecret
    whiteRemoteAddress: 10.10.10.*
    defaultTopicPerm: PUB|SUB
    defaultGroupPerm: PUB|SUB
  - accessKey: defaultsUser
    secretKey: defaultsSecret
    defaultTopicPerm: PUB|SUB
    defaultGroupPerm: PUB|SUB
";

/// Topics the admin creates first on both brokers.
const TOPICS: [&str; 6] = [
    "topicPub",
    "topicSub",
    "topicBoth",
    "topicDeny",
    "topicOther",
    "topicX",
];

/// `name|accessKey|secretKey|op|topic|group`; `-` = no ACL hook at all.
const CASES: &str = "\
send pub topic|normalUser|normalSecret|send|topicPub|
send sub-only topic|normalUser|normalSecret|send|topicSub|
send pub-sub topic|normalUser|normalSecret|send|topicBoth|
send denied topic|normalUser|normalSecret|send|topicDeny|
send default-deny topic|normalUser|normalSecret|send|topicOther|
send wrong secret|normalUser|wrongSecret1|send|topicPub|
send unknown key|nobodyUser|nobodySecret|send|topicPub|
send no signature|-|-|send|topicPub|
pull sub topic default group|normalUser|normalSecret|pull|topicSub|groupA
pull pub-only topic|normalUser|normalSecret|pull|topicPub|groupA
pull denied group|normalUser|normalSecret|pull|topicSub|groupDeny
pull pub-only group|normalUser|normalSecret|pull|topicSub|groupPub
pull denied topic|normalUser|normalSecret|pull|topicDeny|groupA
pull wrong secret|normalUser|wrongSecret1|pull|topicSub|groupA
pull no signature|-|-|pull|topicSub|groupA
heartbeat default group|normalUser|normalSecret|heartbeat|topicSub|groupA
heartbeat denied group|normalUser|normalSecret|heartbeat|topicSub|groupDeny
heartbeat denied topic|normalUser|normalSecret|heartbeat|topicDeny|groupA
offset commit ok|normalUser|normalSecret|offset|topicBoth|groupA
offset commit denied group|normalUser|normalSecret|offset|topicBoth|groupDeny
offset commit pub-only topic|normalUser|normalSecret|offset|topicPub|groupA
consumer list denied group|normalUser|normalSecret|consumers|topicSub|groupDeny
create topic as normal user|normalUser|normalSecret|createTopic|topicNew1|
create topic as admin|aclAdminUser|aclAdminSecret|createTopic|topicNew2|
pub-only account sends|pubOnlyUser|pubOnlySecret|send|topicOther|
pub-only account pulls|pubOnlyUser|pubOnlySecret|pull|topicOther|groupB
pub-only account heartbeats|pubOnlyUser|pubOnlySecret|heartbeat|topicOther|groupB
sub-only account sends|subOnlyUser|subOnlySecret|send|topicOther|
sub-only account pulls|subOnlyUser|subOnlySecret|pull|topicOther|groupB
sub-only account commits offset|subOnlyUser|subOnlySecret|offset|topicOther|groupB
retry topic of a SUB group|normalUser|normalSecret|send|%RETRY%groupA|groupA
retry topic of a DENY group|normalUser|normalSecret|send|%RETRY%groupDeny|groupDeny
retry topic of a PUB-only group|normalUser|normalSecret|send|%RETRY%groupPub|groupPub
DLQ topic of a SUB group (default topic DENY)|normalUser|normalSecret|send|%DLQ%groupA|groupA
DLQ topic pulled (default topic DENY)|normalUser|normalSecret|pull|%DLQ%groupA|groupA
whitelist hit skips signature|whiteHitUser|badSecret123|send|topicOther|
whitelist miss checks signature|whiteMissUser|badSecret123|send|topicOther|
whitelist miss with right secret|whiteMissUser|whiteMissSecret|send|topicOther|
default perms pull|defaultsUser|defaultsSecret|pull|topicOther|groupC
default perms send|defaultsUser|defaultsSecret|send|topicOther|
";

/// The driver: one `MQClientAPIImpl` per credential, straight to the broker.
const DRIVER: &str = r#"
import java.nio.file.*;
import java.util.*;
import org.apache.rocketmq.acl.common.AclClientRPCHook;
import org.apache.rocketmq.acl.common.SessionCredentials;
import org.apache.rocketmq.client.ClientConfig;
import org.apache.rocketmq.client.exception.MQBrokerException;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.impl.ClientRemotingProcessor;
import org.apache.rocketmq.client.impl.CommunicationMode;
import org.apache.rocketmq.client.impl.MQClientAPIImpl;
import org.apache.rocketmq.common.TopicConfig;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.protocol.header.*;
import org.apache.rocketmq.common.protocol.heartbeat.*;
import org.apache.rocketmq.remoting.netty.NettyClientConfig;

public class AclCases {
    static final Map<String, MQClientAPIImpl> APIS = new HashMap<>();
    static final long TIMEOUT = 15000;

    static MQClientAPIImpl api(String ak, String sk) {
        return APIS.computeIfAbsent(ak + "/" + sk, k -> {
            AclClientRPCHook hook = ak.equals("-") ? null : new AclClientRPCHook(new SessionCredentials(ak, sk));
            MQClientAPIImpl a = new MQClientAPIImpl(new NettyClientConfig(), new ClientRemotingProcessor(null), hook, new ClientConfig());
            a.start();
            return a;
        });
    }

    static void run(MQClientAPIImpl api, String addr, String brokerName, String op, String topic, String group) throws Exception {
        switch (op) {
            case "send": {
                SendMessageRequestHeader h = new SendMessageRequestHeader();
                h.setProducerGroup(group.isEmpty() ? "aclProducerGroup" : group);
                h.setTopic(topic);
                h.setDefaultTopic("TBW102");
                h.setDefaultTopicQueueNums(4);
                h.setQueueId(0);
                h.setSysFlag(0);
                h.setBornTimestamp(System.currentTimeMillis());
                h.setFlag(0);
                h.setProperties("");
                h.setReconsumeTimes(0);
                h.setUnitMode(false);
                h.setBatch(false);
                api.sendMessage(addr, brokerName, new Message(topic, "hello".getBytes()), h, TIMEOUT, CommunicationMode.SYNC, null, null);
                return;
            }
            case "pull": {
                PullMessageRequestHeader p = new PullMessageRequestHeader();
                p.setConsumerGroup(group);
                p.setTopic(topic);
                p.setQueueId(0);
                p.setQueueOffset(0L);
                p.setMaxMsgNums(1);
                p.setSysFlag(4); // FLAG_SUBSCRIPTION: the subscription is in the header
                p.setCommitOffset(0L);
                p.setSuspendTimeoutMillis(0L);
                p.setSubscription("*");
                p.setSubVersion(0L);
                p.setExpressionType("TAG");
                api.pullMessage(addr, p, TIMEOUT, CommunicationMode.SYNC, null);
                return;
            }
            case "heartbeat": {
                HeartbeatData hb = new HeartbeatData();
                hb.setClientID("acl-cases@" + group);
                ConsumerData cd = new ConsumerData();
                cd.setGroupName(group);
                cd.setConsumeType(ConsumeType.CONSUME_PASSIVELY);
                cd.setMessageModel(MessageModel.CLUSTERING);
                cd.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET);
                SubscriptionData sd = new SubscriptionData();
                sd.setTopic(topic);
                sd.setSubString("*");
                cd.getSubscriptionDataSet().add(sd);
                hb.getConsumerDataSet().add(cd);
                api.sendHeartbeat(addr, hb, TIMEOUT);
                return;
            }
            case "offset": {
                UpdateConsumerOffsetRequestHeader o = new UpdateConsumerOffsetRequestHeader();
                o.setConsumerGroup(group);
                o.setTopic(topic);
                o.setQueueId(0);
                o.setCommitOffset(0L);
                api.updateConsumerOffset(addr, o, TIMEOUT);
                return;
            }
            case "pullFound": {
                PullMessageRequestHeader p = new PullMessageRequestHeader();
                p.setConsumerGroup(group);
                p.setTopic(topic);
                p.setQueueId(0);
                p.setQueueOffset(0L);
                p.setMaxMsgNums(32);
                p.setSysFlag(4);
                p.setCommitOffset(0L);
                p.setSuspendTimeoutMillis(0L);
                p.setSubscription("*");
                p.setSubVersion(0L);
                p.setExpressionType("TAG");
                org.apache.rocketmq.client.consumer.PullResult r = api.pullMessage(addr, p, TIMEOUT, CommunicationMode.SYNC, null);
                if (r.getPullStatus() != org.apache.rocketmq.client.consumer.PullStatus.FOUND) {
                    throw new IllegalStateException("pull " + r.getPullStatus());
                }
                return;
            }
            case "consumers":
                api.getConsumerIdListByGroup(addr, group, TIMEOUT);
                return;
            case "createTopic": {
                TopicConfig tc = new TopicConfig(topic);
                tc.setReadQueueNums(4);
                tc.setWriteQueueNums(4);
                api.createTopic(addr, "TBW102", tc, TIMEOUT);
                return;
            }
            default:
                throw new IllegalArgumentException(op);
        }
    }

    static String outcome(Throwable e) {
        if (e == null) return "OK";
        String acl = String.valueOf(e.getMessage()).contains("AclException") ? "acl" : "other";
        if (e instanceof MQBrokerException) return "MQBrokerException " + ((MQBrokerException) e).getResponseCode() + " " + acl;
        if (e instanceof MQClientException) return "MQClientException " + ((MQClientException) e).getResponseCode() + " " + acl;
        return e.getClass().getSimpleName();
    }

    // args: brokerAddr brokerName casesFile [waitSeconds]
    public static void main(String[] args) throws Exception {
        String addr = args[0], brokerName = args[1];
        long wait = args.length > 3 ? Long.parseLong(args[3]) : 0;
        for (String line : Files.readAllLines(Paths.get(args[2]))) {
            if (line.trim().isEmpty()) continue;
            String[] f = line.split("\\|", -1);
            long deadline = System.currentTimeMillis() + wait * 1000;
            String out;
            int tries = 0;
            while (true) {
                Throwable err = null;
                try {
                    run(api(f[1], f[2]), addr, brokerName, f[3], f[4], f[5]);
                } catch (Throwable e) {
                    err = e;
                }
                out = outcome(err);
                // A transport hiccup (a loaded machine) is not an outcome.
                boolean transport = out.startsWith("Remoting");
                if (transport && tries++ < 3) continue;
                if (out.equals("OK") || System.currentTimeMillis() > deadline) break;
                Thread.sleep(200);
            }
            System.out.println("CASE " + f[0] + " => " + out);
        }
        for (MQClientAPIImpl a : APIS.values()) a.shutdown();
        System.exit(0);
    }
}
"#;

struct Side {
    name: &'static str,
    addr: String,
    broker_name: String,
    acl_file: PathBuf,
}

/// Runs `cases` against `side`; returns `name => outcome` lines.
fn run_cases(d: &AclDriver, side: &Side, cases: &str, wait_s: u64) -> Vec<String> {
    d.compile("AclCases", DRIVER);
    d.run_cases(
        "AclCases",
        side.name,
        &side.addr,
        &side.broker_name,
        cases,
        wait_s,
    )
}

fn mqadmin(d: &AclDriver, args: &[&str]) -> String {
    let out = run_with_timeout(
        d.java("org.apache.rocketmq.tools.command.MQAdminStartup", args),
        Duration::from_secs(120),
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn java_client_outcomes_match_java_broker() {
    let _serial = serial();
    let started = Instant::now();
    let root = tempfile::Builder::new()
        .prefix("rmq-compat-acl-")
        .tempdir()
        .expect("temp dir");
    let driver = AclDriver::new(
        root.path(),
        CLIENT,
        "client",
        "aclAdminUser",
        "aclAdminSecret",
    );
    let our_home = root.path().join("our-home");
    std::fs::create_dir_all(our_home.join("conf")).expect("our home");

    let ours = Cluster::start_with(&format!(
        "aclEnable=true\nrocketmqHome={}\n",
        our_home.display()
    ));
    let java_ns = OurNamesrv::start();
    let java = JavaBroker::start_with(JAVA_BROKER, &java_ns.addr, "aclEnable=true\n");
    let sides = [
        Side {
            name: "ours",
            addr: ours.broker_addr.clone(),
            broker_name: ours.broker_name.clone(),
            acl_file: our_home.join("conf/plain_acl.yml"),
        },
        Side {
            name: "java",
            addr: java.addr.clone(),
            broker_name: java.broker_name.clone(),
            acl_file: java.dir.path().join("home/conf/plain_acl.yml"),
        },
    ];
    let logs = || format!("{}\n{}", ours.broker.log_text(), java.logs());

    // Both brokers created an empty file at start; now the rules arrive and
    // each reloads them: the admin's createTopic passes once they are in.
    for side in &sides {
        assert!(
            side.acl_file.is_file(),
            "{} did not create {}",
            side.name,
            side.acl_file.display()
        );
        std::fs::write(&side.acl_file, RULES).expect("write rules");
        // A modification time clearly apart from the creation's, whatever
        // the clock granularity the watchers see.
        let f = std::fs::File::options()
            .write(true)
            .open(&side.acl_file)
            .expect("open rules");
        f.set_modified(std::time::SystemTime::now() + Duration::from_secs(2))
            .expect("set mtime");
    }
    let setup: String = TOPICS
        .iter()
        .map(|t| format!("create {t}|aclAdminUser|aclAdminSecret|createTopic|{t}|\n"))
        .collect();
    for side in &sides {
        let got = run_cases(&driver, side, &setup, 30);
        assert!(
            got.iter().all(|l| l.ends_with("=> OK")),
            "{}: rules never loaded: {got:?}\n{}",
            side.name,
            logs()
        );
    }

    let ours_out = run_cases(&driver, &sides[0], CASES, 0);
    let java_out = run_cases(&driver, &sides[1], CASES, 0);
    assert_eq!(ours_out.len(), CASES.lines().count(), "{ours_out:?}");
    eprintln!("{:<48} {:<36} {}", "case", "ours", "java 4.9.7");
    let mut diffs = Vec::new();
    for (o, j) in ours_out.iter().zip(&java_out) {
        let (name, o_res) = o.split_once(" => ").unwrap_or((o, ""));
        let j_res = j.split_once(" => ").map_or("", |x| x.1);
        eprintln!("{name:<48} {o_res:<36} {j_res}");
        if o_res != j_res {
            diffs.push(format!("{name}: ours {o_res}, java {j_res}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "outcomes differ:\n{}\n{}",
        diffs.join("\n"),
        logs()
    );
    // Refusals are really exercised: the table has both kinds.
    assert!(ours_out.iter().any(|l| l.ends_with("acl")));
    assert!(ours_out.iter().filter(|l| l.ends_with("=> OK")).count() >= 10);

    // mqadmin 4.9.8 round trips, each followed by a driver case on both.
    let new_user_send = "new user sends|newAclUser1|newAclSecret1|send|topicPub|\n";
    let unsigned_send = "unsigned send|-|-|send|topicPub|\n";
    let mut after: Vec<(String, Vec<String>)> = Vec::new();
    for side in &sides {
        let out = mqadmin(
            &driver,
            &[
                "updateAclConfig",
                "-b",
                &side.addr,
                "-a",
                "newAclUser1",
                "-s",
                "newAclSecret1",
                "-t",
                "topicPub=PUB",
                "-i",
                "DENY",
                "-u",
                "SUB",
            ],
        );
        let created = run_cases(&driver, side, new_user_send, 10);
        let version = mqadmin(&driver, &["clusterAclConfigVersion", "-b", &side.addr]);
        let out2 = mqadmin(
            &driver,
            &["deleteAclConfig", "-b", &side.addr, "-a", "newAclUser1"],
        );
        let deleted = run_cases(&driver, side, new_user_send, 0);
        let out3 = mqadmin(
            &driver,
            &[
                "updateGlobalWhiteAddr",
                "-b",
                &side.addr,
                "-g",
                "127.0.0.1,10.10.103.*",
            ],
        );
        let white = run_cases(&driver, side, unsigned_send, 10);
        for (what, text) in [
            ("updateAclConfig", &out),
            ("deleteAclConfig", &out2),
            ("updateGlobalWhiteAddr", &out3),
        ] {
            assert!(
                text.contains("success") && !text.contains("Exception"),
                "{} mqadmin {what}:\n{text}\n{}",
                side.name,
                logs()
            );
        }
        assert!(
            !version.contains("Exception") && version.contains(&side.addr),
            "{} clusterAclConfigVersion:\n{version}",
            side.name
        );
        let file = std::fs::read_to_string(&side.acl_file).unwrap_or_default();
        assert!(file.contains("127.0.0.1"), "{}: {file}", side.name);
        assert!(!file.contains("newAclUser1"), "{}: {file}", side.name);
        after.push((side.name.to_owned(), [created, deleted, white].concat()));
    }
    eprintln!("after mqadmin: {after:?}");
    assert_eq!(after[0].1, after[1].1, "mqadmin round trips differ");
    assert_eq!(
        after[0].1,
        [
            "new user sends => OK",
            "new user sends => MQBrokerException 1 acl",
            "unsigned send => OK"
        ]
    );
    eprintln!(
        "acl_v1 java_client_outcomes_match_java_broker took {:?}",
        started.elapsed()
    );
}

/// Our master and our slave (classic HA) with ACL on and no whitelist: the
/// slave signs its metadata sync with `innerClientAuthenticationCredentials`
/// (the admin account), so it learns a topic created on the master only,
/// and serves the messages replicated to it (`slaveReadEnable`).
#[test]
fn our_master_and_slave_replicate_with_acl_on() {
    let _serial = serial();
    let started = Instant::now();
    let root = tempfile::Builder::new()
        .prefix("rmq-compat-acl-ha-")
        .tempdir()
        .expect("temp dir");
    let driver = AclDriver::new(
        root.path(),
        CLIENT,
        "client",
        "aclAdminUser",
        "aclAdminSecret",
    );
    let ns = OurNamesrv::start();
    let mut keys = Vec::new();
    for (name, extra) in [
        ("master", "brokerId=0\nbrokerRole=ASYNC_MASTER\n"),
        (
            "slave",
            "brokerId=1\nbrokerRole=SLAVE\nslaveReadEnable=true\n",
        ),
    ] {
        let home = root.path().join(format!("{name}-home"));
        std::fs::create_dir_all(home.join("conf")).expect("home");
        std::fs::write(home.join("conf/plain_acl.yml"), RULES).expect("rules");
        keys.push(format!(
            "brokerClusterName=AclHaCluster\nbrokerName=acl-ha\nbrokerIP2=127.0.0.1\n{extra}aclEnable=true\n\
             rocketmqHome={}\ninnerClientAuthenticationCredentials=\
             {{\"accessKey\":\"aclAdminUser\",\"secretKey\":\"aclAdminSecret\"}}\n",
            home.display()
        ));
    }
    let master = Node::ours("acl-master", root.path().join("master"), &ns.addr, &keys[0]);
    // The slave is told its master's HA port: learning it from the name
    // server can take a registration period (30 s) when the slave registers
    // first.
    let master_port: u16 = master
        .addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("master port");
    let slave_keys = format!("{}haMasterAddress=127.0.0.1:{}\n", keys[1], master_port + 1);
    let slave = Node::ours(
        "acl-slave",
        root.path().join("slave"),
        &ns.addr,
        &slave_keys,
    );
    let logs = || {
        let of = |n: &Node| match &n.broker {
            compat_tests::ha_pair::Broker::Ours(b) => b.logs(200),
            compat_tests::ha_pair::Broker::Java(b) => b.logs(),
        };
        format!("{}\n{}\n{}", of(&master), of(&slave), ns.logs())
    };
    let on = |addr: &str| Side {
        name: "ha",
        addr: addr.to_owned(),
        broker_name: "acl-ha".to_owned(),
        acl_file: PathBuf::new(),
    };
    // Outcomes other than OK are only looked at once (no waiting).
    let mut got = run_cases(
        &driver,
        &on(&master.addr),
        "create|aclAdminUser|aclAdminSecret|createTopic|aclHaTopic|\n\
         send 1|aclAdminUser|aclAdminSecret|send|aclHaTopic|\n\
         send 2|aclAdminUser|aclAdminSecret|send|aclHaTopic|\n",
        30,
    );
    got.extend(run_cases(
        &driver,
        &on(&master.addr),
        "unsigned send refused|-|-|send|aclHaTopic|\n",
        0,
    ));
    // The slave knows the topic only through its signed sync, and holds the
    // messages only through HA.
    got.extend(run_cases(
        &driver,
        &on(&slave.addr),
        "read from slave|aclAdminUser|aclAdminSecret|pullFound|aclHaTopic|aclHaGroup\n",
        40,
    ));
    got.extend(run_cases(
        &driver,
        &on(&slave.addr),
        "unsigned read refused|-|-|pull|aclHaTopic|aclHaGroup\n",
        0,
    ));
    assert_eq!(
        got,
        [
            "create => OK",
            "send 1 => OK",
            "send 2 => OK",
            "unsigned send refused => MQBrokerException 1 acl",
            "read from slave => OK",
            "unsigned read refused => MQBrokerException 1 acl"
        ],
        "{}",
        logs()
    );
    eprintln!(
        "acl_v1 our_master_and_slave_replicate_with_acl_on took {:?}",
        started.elapsed()
    );
}
