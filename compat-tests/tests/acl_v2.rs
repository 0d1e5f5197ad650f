//! Auth 2.0 (`authenticationEnabled`/`authorizationEnabled`, users and ACLs)
//! side by side: the official Java 5.3.3 client with `AclClientRPCHook`
//! (`SessionCredentials`) against our broker and against the Java 5.3.3
//! broker, with the same users and policies created on each through mqadmin
//! 5.3.3 (`conf/tools.yml` holds the Super user of `initAuthenticationUser`).
//!
//! `java_client_outcomes_match_java_broker`:
//! 1. both brokers start with Auth 2.0 on and the same
//!    `initAuthenticationUser` / `innerClientAuthenticationCredentials`;
//! 2. mqadmin `createUser`, `updateUser` (disable one), `createAcl` build the
//!    same users and ACLs on both; the Super user creates the topics;
//! 3. a Java driver (`Auth2Cases`, JDK source launcher, 5.3.3 client jars)
//!    runs the case table with `MQClientAPIImpl` straight to each broker:
//!    each outcome is `OK` or the exception class and response code; ours
//!    must equal Java's case by case;
//! 4. mqadmin `getUser`, `listUser`, `getAcl`, `listAcl`, `updateAcl`,
//!    `deleteAcl`, `deleteUser` print the same on both (addresses masked);
//! 5. our broker is SIGKILLed and restarted on its folder: the users and
//!    ACLs are all there (`listUser`/`listAcl` print the same as before, and
//!    the case table gives the same outcomes).

use std::process::Command;
use std::time::{Duration, Instant};

use compat_tests::acl_driver::AclDriver;
use compat_tests::{
    bin_dir, run_with_timeout, serial, wait_until, Cluster, JavaBroker, OurNamesrv, Proc,
};

const VERSION: &str = "5.3.3";

const AUTH_KEYS: &str = "\
authenticationEnabled=true
authorizationEnabled=true
authenticationProvider=org.apache.rocketmq.auth.authentication.provider.DefaultAuthenticationProvider
authenticationMetadataProvider=org.apache.rocketmq.auth.authentication.provider.LocalAuthenticationMetadataProvider
authorizationProvider=org.apache.rocketmq.auth.authorization.provider.DefaultAuthorizationProvider
authorizationMetadataProvider=org.apache.rocketmq.auth.authorization.provider.LocalAuthorizationMetadataProvider
initAuthenticationUser={\"username\":\"rocketmq\",\"password\":\"12345678\"}
innerClientAuthenticationCredentials={\"accessKey\":\"innerBroker\",\"secretKey\":\"innerSecret1\"}
";

/// mqadmin commands that build the topics, users and ACLs (`-b <addr>`
/// added), signed by the init Super user.
const SETUP: &[&[&str]] = &[
    &["updateTopic", "-t", "topicA"],
    &["updateTopic", "-t", "pubOnly"],
    &["updateTopic", "-t", "both"],
    &["updateTopic", "-t", "ordA"],
    &["updateTopic", "-t", "ordSecret"],
    &["updateTopic", "-t", "anyTopic"],
    &["updateTopic", "-t", "daveNo"],
    &["updateTopic", "-t", "lan"],
    &["updateTopic", "-t", "local"],
    &["createUser", "-u", "alice", "-p", "alicePass1"],
    &["createUser", "-u", "bob", "-p", "bobPass1"],
    &["updateUser", "-u", "bob", "-s", "disable"],
    &[
        "createUser",
        "-u",
        "root2",
        "-p",
        "root2Pass",
        "-t",
        "Super",
    ],
    &["createUser", "-u", "nopol", "-p", "nopolPass"],
    &["createUser", "-u", "carol", "-p", "carolPass"],
    &["createUser", "-u", "dave", "-p", "davePass1"],
    &[
        "createAcl",
        "-s",
        "User:alice",
        "-r",
        "Topic:pubOnly",
        "-a",
        "Pub",
        "-d",
        "Allow",
    ],
    &[
        "createAcl",
        "-s",
        "User:alice",
        "-r",
        "Topic:both,Group:g1",
        "-a",
        "Pub,Sub",
        "-d",
        "Allow",
    ],
    &[
        "createAcl",
        "-s",
        "User:alice",
        "-r",
        "Topic:ord*",
        "-a",
        "Pub,Sub",
        "-d",
        "Allow",
    ],
    &[
        "createAcl",
        "-s",
        "User:alice",
        "-r",
        "Topic:ordSecret",
        "-a",
        "Pub,Sub",
        "-d",
        "Deny",
    ],
    &[
        "createAcl",
        "-s",
        "User:alice",
        "-r",
        "Topic:lan",
        "-a",
        "Pub",
        "-i",
        "10.0.0.0/8",
        "-d",
        "Allow",
    ],
    &[
        "createAcl",
        "-s",
        "User:alice",
        "-r",
        "Topic:local",
        "-a",
        "Pub",
        "-i",
        "127.0.0.1",
        "-d",
        "Allow",
    ],
    &[
        "createAcl",
        "-s",
        "User:carol",
        "-r",
        "Topic:*",
        "-a",
        "Pub",
        "-d",
        "Allow",
    ],
    &[
        "createAcl",
        "-s",
        "User:dave",
        "-r",
        "*",
        "-a",
        "All",
        "-d",
        "Allow",
    ],
    &[
        "createAcl",
        "-s",
        "User:dave",
        "-r",
        "Topic:daveNo",
        "-a",
        "All",
        "-d",
        "Deny",
    ],
];

/// `name|user|password|op|topic|group`; `-` = no ACL hook at all.
const CASES: &str = "\
init super user sends|rocketmq|12345678|send|topicA|
right secret, Pub allowed|alice|alicePass1|send|pubOnly|
wrong secret|alice|wrongPass1|send|pubOnly|
unknown user|nobody|nobodyPass|send|pubOnly|
unsigned request|-|-|send|pubOnly|
disabled user|bob|bobPass1|send|pubOnly|
Super user made by mqadmin|root2|root2Pass|send|topicA|
Normal user without a policy|nopol|nopolPass|send|pubOnly|
Pub-only policy, consuming|alice|alicePass1|pull|pubOnly|g1
Pub and Sub, allowed group|alice|alicePass1|pull|both|g1
Pub and Sub, other group|alice|alicePass1|pull|both|g2
heartbeat allowed group|alice|alicePass1|heartbeat|both|g1
heartbeat other group|alice|alicePass1|heartbeat|both|g2
offset commit allowed|alice|alicePass1|offset|both|g1
offset commit other group|alice|alicePass1|offset|both|g2
consumer list allowed group|alice|alicePass1|consumers|both|g1
policy by prefix|alice|alicePass1|send|ordA|
literal Deny beats prefix Allow|alice|alicePass1|send|ordSecret|
policy Topic:* sends|carol|carolPass|send|anyTopic|
policy Topic:* has no Sub|carol|carolPass|pull|anyTopic|g1
policy * sends|dave|davePass1|send|anyTopic|
literal Deny beats * Allow|dave|davePass1|send|daveNo|
source IP rule miss|alice|alicePass1|send|lan|
source IP rule hit|alice|alicePass1|send|local|
retry topic of an allowed group|alice|alicePass1|send|%RETRY%g1|g1
retry topic of another group|alice|alicePass1|send|%RETRY%g2|g2
create topic as Normal user|alice|alicePass1|createTopic|newTopic1|
create topic as policy * user|dave|davePass1|createTopic|newTopic2|
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
import org.apache.rocketmq.remoting.netty.NettyClientConfig;
import org.apache.rocketmq.remoting.protocol.header.*;
import org.apache.rocketmq.remoting.protocol.heartbeat.*;

public class Auth2Cases {
    static final Map<String, MQClientAPIImpl> APIS = new HashMap<>();

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
                h.setProducerGroup(group.isEmpty() ? "authProducerGroup" : group);
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
                api.sendMessage(addr, brokerName, new Message(topic, "hello".getBytes()), h, 5000, CommunicationMode.SYNC, null, null);
                return;
            }
            case "pull": {
                PullMessageRequestHeader p = new PullMessageRequestHeader();
                p.setConsumerGroup(group);
                p.setTopic(topic);
                p.setQueueId(0);
                p.setQueueOffset(0L);
                p.setMaxMsgNums(1);
                p.setSysFlag(4); // FLAG_SUBSCRIPTION
                p.setCommitOffset(0L);
                p.setSuspendTimeoutMillis(0L);
                p.setSubscription("*");
                p.setSubVersion(0L);
                p.setExpressionType("TAG");
                api.pullMessage(addr, p, 5000, CommunicationMode.SYNC, null);
                return;
            }
            case "heartbeat": {
                HeartbeatData hb = new HeartbeatData();
                hb.setClientID("auth2-cases@" + group);
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
                api.sendHeartbeat(addr, hb, 5000);
                return;
            }
            case "offset": {
                UpdateConsumerOffsetRequestHeader o = new UpdateConsumerOffsetRequestHeader();
                o.setConsumerGroup(group);
                o.setTopic(topic);
                o.setQueueId(0);
                o.setCommitOffset(0L);
                api.updateConsumerOffset(addr, o, 5000);
                return;
            }
            case "consumers":
                api.getConsumerIdListByGroup(addr, group, 5000);
                return;
            case "createTopic": {
                TopicConfig tc = new TopicConfig(topic);
                tc.setReadQueueNums(4);
                tc.setWriteQueueNums(4);
                api.createTopic(addr, "TBW102", tc, 5000);
                return;
            }
            default:
                throw new IllegalArgumentException(op);
        }
    }

    static String outcome(Throwable e) {
        if (e == null) return "OK";
        if (e instanceof MQBrokerException) return "MQBrokerException " + ((MQBrokerException) e).getResponseCode();
        if (e instanceof MQClientException) return "MQClientException " + ((MQClientException) e).getResponseCode();
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
            while (true) {
                Throwable err = null;
                try {
                    run(api(f[1], f[2]), addr, brokerName, f[3], f[4], f[5]);
                } catch (Throwable e) {
                    err = e;
                }
                out = outcome(err);
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
}

/// Runs `cases` against `side`; returns `name => outcome` lines.
fn run_cases(d: &AclDriver, side: &Side, cases: &str, wait_s: u64) -> Vec<String> {
    d.run_cases(
        "Auth2Cases",
        side.name,
        &side.addr,
        &side.broker_name,
        cases,
        wait_s,
    )
}

/// Runs mqadmin commands (each with `-b addr` added) in one JVM through
/// `compat.AdminBatch` (`MQAdminStartup.main0` per command, signed with
/// `conf/tools.yml`); returns what each printed, `addr` masked.
fn mqadmin(d: &AclDriver, addr: &str, cmds: &[&[&str]]) -> Vec<String> {
    let mut args: Vec<&str> = Vec::new();
    for (i, c) in cmds.iter().enumerate() {
        if i > 0 {
            args.push(";;");
        }
        args.extend_from_slice(c);
        args.extend(["-b", addr]);
    }
    let out = run_with_timeout(
        d.java("compat.AdminBatch", &args),
        Duration::from_secs(60 + 10 * cmds.len() as u64),
    );
    let text = String::from_utf8_lossy(&out.stdout).replace(addr, "<broker>");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("@@@ BEGIN ") {
            current = Some(String::new());
        } else if line.starts_with("@@@ END ") {
            blocks.extend(current.take().map(|b| b.trim().to_owned()));
        } else if let Some(b) = current.as_mut() {
            b.push_str(line);
            b.push('\n');
        }
    }
    assert_eq!(
        blocks.len(),
        cmds.len(),
        "mqadmin batch against {addr}:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    blocks
}

fn compare(what: &str, ours: &[String], java: &[String], diffs: &mut Vec<String>) {
    eprintln!("--- {what}");
    eprintln!("{:<40} {:<28} java {VERSION}", "case", "ours");
    for (o, j) in ours.iter().zip(java) {
        let (name, o_res) = o.split_once(" => ").unwrap_or((o, ""));
        let j_res = j.split_once(" => ").map_or("", |x| x.1);
        eprintln!("{name:<40} {o_res:<28} {j_res}");
        if o_res != j_res {
            diffs.push(format!("{what}: {name}: ours {o_res}, java {j_res}"));
        }
    }
    if ours.len() != java.len() {
        diffs.push(format!("{what}: {} vs {} outcomes", ours.len(), java.len()));
    }
}

/// SIGKILLs our broker and starts it again on the same config and folder.
fn kill_and_restart(ours: &mut Cluster) {
    ours.broker.signal(libc::SIGKILL);
    ours.broker.stop(Duration::from_secs(10));
    let port: u16 = ours
        .broker_addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("broker port");
    wait_until(
        "the broker port to be free",
        Duration::from_secs(20),
        || std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
    );
    let dir = ours.dir.path().to_owned();
    let mut cmd = Command::new(bin_dir().join("mqbroker"));
    cmd.arg("-c")
        .arg(dir.join("broker.conf"))
        .arg("-n")
        .arg(&ours.namesrv_addr)
        .env("HOME", &dir)
        .env("RUST_LOG", "info");
    ours.broker = Proc::spawn("mqbroker", cmd, dir.join("broker.after-kill.log"));
    ours.wait_broker_registered(Duration::from_secs(30));
}

#[test]
fn java_client_outcomes_match_java_broker() {
    let _serial = serial();
    let started = Instant::now();
    let root = tempfile::Builder::new()
        .prefix("rmq-compat-auth2-")
        .tempdir()
        .expect("temp dir");
    let driver = AclDriver::new(root.path(), VERSION, "client", "rocketmq", "12345678");
    let mut ours = Cluster::start_with(AUTH_KEYS);
    let java_ns = OurNamesrv::start();
    let java = JavaBroker::start_with(VERSION, &java_ns.addr, AUTH_KEYS);
    let sides = [
        Side {
            name: "ours",
            addr: ours.broker_addr.clone(),
            broker_name: ours.broker_name.clone(),
        },
        Side {
            name: "java",
            addr: java.addr.clone(),
            broker_name: java.broker_name.clone(),
        },
    ];
    eprintln!("brokers up after {:?}", started.elapsed());

    // Topics, users and ACLs, the same on both (each side in its own thread).
    let both = |f: &(dyn Fn(&Side) -> Vec<String> + Sync)| -> [Vec<String>; 2] {
        std::thread::scope(|s| {
            let a = s.spawn(|| f(&sides[0]));
            let b = f(&sides[1]);
            [a.join().expect("ours thread"), b]
        })
    };
    driver.compile("Auth2Cases", DRIVER);
    let setup = both(&|side| mqadmin(&driver, &side.addr, SETUP));
    for ((o, j), cmd) in setup[0].iter().zip(&setup[1]).zip(SETUP) {
        assert_eq!(o, j, "mqadmin {cmd:?} printed differently");
        assert!(
            o.contains("success"),
            "mqadmin {cmd:?}: {o}\n{}\n{}",
            ours.logs(),
            java.logs()
        );
    }
    eprintln!("set up after {:?}", started.elapsed());

    let mut diffs = Vec::new();
    let [ours_out, java_out] = both(&|side| run_cases(&driver, side, CASES, 0));
    compare("cases", &ours_out, &java_out, &mut diffs);
    assert_eq!(ours_out.len(), CASES.lines().count(), "{ours_out:?}");
    assert!(ours_out.iter().filter(|l| l.ends_with("=> OK")).count() >= 8);
    assert!(ours_out.iter().filter(|l| l.ends_with(" 16")).count() >= 8);

    // mqadmin reads and edits print the same on both.
    let cmds: &[&[&str]] = &[
        &["getUser", "-u", "alice"],
        &["getUser", "-u", "bob"],
        &["listUser"],
        &["listUser", "-f", "o"],
        &["getAcl", "-s", "User:alice"],
        &["listAcl"],
        &["listAcl", "-s", "alice", "-r", "ord"],
        &[
            "updateAcl",
            "-s",
            "User:carol",
            "-r",
            "Topic:*",
            "-a",
            "Pub,Sub",
            "-d",
            "Allow",
        ],
        &["getAcl", "-s", "User:carol"],
        &["deleteAcl", "-s", "User:alice", "-r", "Topic:lan"],
        &["getAcl", "-s", "User:alice"],
        &["deleteAcl", "-s", "User:dave"],
        &["getAcl", "-s", "User:dave"],
        &["createUser", "-u", "erin", "-p", "erinPass1"],
        &["deleteUser", "-u", "erin"],
        &["getUser", "-u", "erin"],
        &["updateUser", "-u", "bob", "-s", "enable"],
        &["getUser", "-u", "bob"],
        &["listUser"],
        &["listAcl"],
    ];
    let printed = both(&|side| mqadmin(&driver, &side.addr, cmds));
    for ((o, j), cmd) in printed[0].iter().zip(&printed[1]).zip(cmds) {
        if o != j {
            diffs.push(format!("mqadmin {cmd:?}:\nours:\n{o}\njava:\n{j}"));
        }
    }
    assert!(printed[0][0].contains("alicePass1"), "{}", printed[0][0]);
    eprintln!("mqadmin compared after {:?}", started.elapsed());

    // Kill -9 ours: every user and ACL is still there.
    let lists: &[&[&str]] = &[&["listUser"], &["listAcl"]];
    let before = printed[0][cmds.len() - 2..].to_vec();
    kill_and_restart(&mut ours);
    let after = mqadmin(&driver, &sides[0].addr, lists);
    assert_eq!(
        before,
        after,
        "users or ACLs lost by kill -9\n{}",
        ours.logs()
    );
    assert!(before[0].contains("alice") && before[1].contains("Topic:ord*"));
    let [ours_again, java_again] = both(&|side| run_cases(&driver, side, CASES, 0));
    compare(
        "cases after the edits and kill -9 of ours",
        &ours_again,
        &java_again,
        &mut diffs,
    );

    assert!(
        diffs.is_empty(),
        "outcomes differ:\n{}\n{}",
        diffs.join("\n"),
        ours.logs()
    );
    eprintln!(
        "acl_v2 java_client_outcomes_match_java_broker took {:?}",
        started.elapsed()
    );
}
