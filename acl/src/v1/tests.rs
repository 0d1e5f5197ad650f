//! The decision of spec §2.5, table-driven.

use super::*;
use crate::sign::{sign_request, SessionCredentials};

const RULES: &str = r#"
globalWhiteRemoteAddresses:
  - 10.10.103.*
accounts:
  - accessKey: normalUser
    secretKey: normalSecret
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms: [topicPub=PUB, topicSub=SUB, topicBoth=PUB|SUB, topicDeny=DENY, RMQ_SYS_TRACE_TOPIC=DENY]
    groupPerms: [groupDeny=DENY, groupPub=PUB]
  - accessKey: adminUser
    secretKey: adminSecret
    admin: true
    topicPerms: [topicDeny=DENY]
  - accessKey: whiteUser
    secretKey: whiteSecret
    whiteRemoteAddress: 192.168.1.*
  - accessKey: defaultsUser
    secretKey: defaultsSecret
    defaultTopicPerm: PUB|SUB
    defaultGroupPerm: DENY
"#;

fn rules() -> Rules {
    Rules::build(&[("main".into(), file::parse("main", RULES).unwrap())]).unwrap()
}

fn req(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
    let mut r = RemotingCommand::request(code);
    for (k, v) in fields {
        r.set_ext(*k, *v);
    }
    r
}

fn signed(code: i32, fields: &[(&str, &str)], ak: &str, sk: &str) -> RemotingCommand {
    let mut r = req(code, fields);
    sign_request(&mut r, &SessionCredentials::new(ak, sk));
    r
}

const HOST: &str = "127.0.0.1";

#[test]
fn decision_table() {
    let r = rules();
    let n = |code, f: &[(&str, &str)]| signed(code, f, "normalUser", "normalSecret");
    let send = |t| vec![("topic", t), ("producerGroup", "P")];
    let pull = |t, g| vec![("topic", t), ("consumerGroup", g), ("queueId", "0")];
    let cases: Vec<(&str, RemotingCommand, &str, Result<(), &str>)> = vec![
        ("PUB topic send", n(10, &send("topicPub")), HOST, Ok(())),
        (
            "SUB topic send",
            n(10, &send("topicSub")),
            HOST,
            Err("No permission for topic:topicSub"),
        ),
        (
            "PUB|SUB topic send",
            n(10, &send("topicBoth")),
            HOST,
            Ok(()),
        ),
        (
            "DENY topic send",
            n(10, &send("topicDeny")),
            HOST,
            Err("No permission for topic:topicDeny"),
        ),
        (
            "default DENY topic",
            n(10, &send("other")),
            HOST,
            Err("No default permission for topic:other"),
        ),
        (
            "pull SUB topic, default group",
            n(11, &pull("topicSub", "g1")),
            HOST,
            Ok(()),
        ),
        (
            "pull PUB topic",
            n(11, &pull("topicPub", "g1")),
            HOST,
            Err("No permission for topic:topicPub"),
        ),
        (
            "pull DENY group",
            n(11, &pull("topicSub", "groupDeny")),
            HOST,
            Err("No permission for group:groupDeny"),
        ),
        (
            "pull PUB-only group",
            n(11, &pull("topicSub", "groupPub")),
            HOST,
            Err("No permission for group:groupPub"),
        ),
        (
            "retry send is SUB on the group",
            n(10, &[("topic", "%RETRY%g1"), ("group", "g1")]),
            HOST,
            Ok(()),
        ),
        (
            "retry send DENY group",
            n(10, &[("topic", "%RETRY%groupDeny")]),
            HOST,
            Err("No permission for group:groupDeny"),
        ),
        ("send back", n(36, &[("group", "g1")]), HOST, Ok(())),
        (
            "trace topic PUB bypasses DENY",
            n(10, &send("RMQ_SYS_TRACE_TOPIC")),
            HOST,
            Ok(()),
        ),
        (
            "admin code by normal",
            n(17, &[("topic", "x")]),
            HOST,
            Err("Need admin permission for request code=17, but accessKey=normalUser is not"),
        ),
        (
            "acl admin code by normal",
            n(50, &[("accessKey", "x")]),
            HOST,
            Err("Need admin permission for request code=50, but accessKey=normalUser is not"),
        ),
        ("unchecked code", n(26, &[]), HOST, Ok(())),
        (
            "admin code by admin",
            signed(17, &[("topic", "x")], "adminUser", "adminSecret"),
            HOST,
            Ok(()),
        ),
        (
            "admin ignores DENY (5.x)",
            signed(10, &send("topicDeny"), "adminUser", "adminSecret"),
            HOST,
            Ok(()),
        ),
        (
            "wrong secret",
            signed(10, &send("topicPub"), "normalUser", "wrongSecret"),
            HOST,
            Err("Check signature failed for accessKey=normalUser"),
        ),
        (
            "unknown key",
            signed(10, &send("topicPub"), "nobodyUser", "whatever1"),
            HOST,
            Err("No acl config for nobodyUser"),
        ),
        (
            "no key",
            req(10, &send("topicPub")),
            HOST,
            Err("No accessKey is configured"),
        ),
        (
            "no ext fields",
            RemotingCommand::request(26),
            HOST,
            Err("No accessKey is configured"),
        ),
        (
            "global whitelist, no key",
            req(10, &send("topicDeny")),
            "10.10.103.7",
            Ok(()),
        ),
        (
            "global whitelist miss",
            req(10, &send("topicPub")),
            "10.10.104.7",
            Err("No accessKey is configured"),
        ),
        (
            "account whitelist skips signature",
            signed(10, &send("t"), "whiteUser", "bad-secret"),
            "192.168.1.9",
            Ok(()),
        ),
        (
            "account whitelist miss",
            signed(10, &send("t"), "whiteUser", "bad-secret"),
            HOST,
            Err("Check signature failed for accessKey=whiteUser"),
        ),
        (
            "default PUB|SUB topic",
            signed(10, &send("any"), "defaultsUser", "defaultsSecret"),
            HOST,
            Ok(()),
        ),
        (
            "default DENY group",
            signed(11, &pull("any", "g"), "defaultsUser", "defaultsSecret"),
            HOST,
            Err("No default permission for group:g"),
        ),
        (
            "missing required header field",
            n(38, &[]),
            HOST,
            Err("the custom field <consumerGroup> is null"),
        ),
    ];
    for (name, request, host, want) in cases {
        let got = r.check(&request, host);
        match (want, got) {
            (Ok(()), Ok(())) => {}
            (Err(msg), Err(d)) => assert_eq!(d.message.as_deref(), Some(msg), "{name}"),
            (want, got) => panic!("{name}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn tampered_request_fails_signature() {
    let r = rules();
    let mut req = signed(10, &[("topic", "topicPub")], "normalUser", "normalSecret");
    req.set_ext("topic", "topicBoth");
    assert!(r.check(&req, HOST).is_err());
    let mut req = signed(10, &[("topic", "topicPub")], "normalUser", "normalSecret");
    req.body = bytes::Bytes::from_static(b"changed");
    assert!(r.check(&req, HOST).is_err());
}

#[test]
fn remark_is_java_exception_text() {
    let d = rules().check(&req(10, &[]), HOST).unwrap_err();
    assert_eq!(
        d.remark(),
        "org.apache.rocketmq.acl.common.AclException: No accessKey is configured, org.apache.rocketmq.acl.plain.PlainPermissionManager.validate(PlainPermissionManager.java:604)"
    );
}

#[test]
fn load_rules_and_errors() {
    // The first file defining a key wins.
    let a = file::parse(
        "a",
        "accounts: [{accessKey: sameKey1, secretKey: secretA1}]",
    )
    .unwrap();
    let b = file::parse(
        "b",
        "accounts: [{accessKey: sameKey1, secretKey: secretB1}]",
    )
    .unwrap();
    let rules = Rules::build(&[("a".into(), a), ("b".into(), b)]).unwrap();
    assert_eq!(rules.accounts["sameKey1"].0, "a");
    assert_eq!(rules.accounts["sameKey1"].1.secret_key, "secretA1");
    assert_eq!(rules.versions.len(), 2);

    for bad in [
        "accounts: [{accessKey: short, secretKey: 12345678}]",
        "accounts: [{accessKey: longEnough, secretKey: short}]",
        "accounts: [{accessKey: longEnough, secretKey: 12345678, topicPerms: [justAName]}]",
        "accounts: [{accessKey: longEnough, secretKey: 12345678, whiteRemoteAddress: 999.1.1.1}]",
        "globalWhiteRemoteAddresses: [not-an-ip]",
    ] {
        let f = file::parse("x", bad).unwrap();
        assert!(Rules::build(&[("x".into(), f)]).is_err(), "{bad}");
    }
    // Unknown permission words are DENY, not errors.
    let f = file::parse(
        "x",
        "accounts: [{accessKey: longEnough, secretKey: 12345678, defaultTopicPerm: WRITE}]",
    )
    .unwrap();
    let rules = Rules::build(&[("x".into(), f)]).unwrap();
    assert_eq!(
        rules.accounts["longEnough"].1.default_topic_perm,
        perm::DENY
    );
}
