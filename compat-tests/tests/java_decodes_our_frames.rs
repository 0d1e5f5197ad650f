//! The reverse of the golden vectors: frames written by our encoder are
//! decoded by the official Java `RemotingCommand.decode` (4.9.8 and 5.3.3)
//! into exactly the fields we meant.

use std::time::Duration;

use compat_tests::{java_client, serial, text, JAVA_VERSIONS};
use remoting::codec::{encode_frame, hex, logical_json};
use remoting::header::{PullMessageResponseHeader, SendMessageRequestHeaderV2};
use remoting::{LanguageCode, RemotingCommand, SerializeType};

/// A spread of commands: plain and with headers, bodies, non-ASCII text,
/// control characters, responses, one-way, negative opaque.
fn our_frames() -> Vec<RemotingCommand> {
    let mut base = vec![
        RemotingCommand::request(106),
        RemotingCommand::request(105).with_ext("topic", "TopicTest"),
        RemotingCommand::request(34)
            .with_ext("x", "y")
            .with_body(&br#"{"clientID":"127.0.0.1@1"}"#[..]),
        RemotingCommand::request(100)
            .with_ext("namespace", "命名空间")
            .with_ext("key", "键😀")
            .with_ext("value", "a\u{1}b\u{2}c \"q\" \\ / \t\n\u{7f}\u{85}\u{2028}"),
        RemotingCommand::request(310)
            .with_header(&SendMessageRequestHeaderV2 {
                a: "pg".into(),
                b: "T".into(),
                c: "TBW102".into(),
                d: 4,
                e: 2,
                f: 0,
                g: 1_700_000_000_000,
                h: 0,
                i: Some("KEYS\u{1}k-1\u{2}TAGS\u{1}TagA\u{2}".into()),
                m: Some(false),
                ..Default::default()
            })
            .with_body(&b"hello"[..]),
        RemotingCommand::response(19).with_header(&PullMessageResponseHeader {
            suggest_which_broker_id: 0,
            next_begin_offset: 10,
            min_offset: 0,
            max_offset: 10,
            ..Default::default()
        }),
        RemotingCommand::response(1).with_remark("boom: 错误"),
    ];
    let mut oneway = RemotingCommand::request(15).with_ext("commitOffset", "42");
    oneway.mark_oneway();
    base.push(oneway);
    let mut go = RemotingCommand::request(11).with_ext("topic", "T");
    go.language = LanguageCode::Go;
    go.version = 317;
    base.push(go);

    let mut frames = Vec::new();
    for (i, cmd) in base.into_iter().enumerate() {
        for st in [SerializeType::Json, SerializeType::RocketMq] {
            let mut c = cmd.clone();
            c.serialize_type = st;
            c.opaque = if i % 2 == 0 {
                i as i32 + 1
            } else {
                -(i as i32) - 1
            };
            frames.push(c);
        }
    }
    frames
}

fn java_decodes(version: &str) {
    let _one_at_a_time = serial();
    let java = java_client(version);
    let dir = tempfile::tempdir().expect("temp dir");
    let frames = our_frames();
    let input: String = frames
        .iter()
        .map(|c| hex(&encode_frame(c).expect("encode")) + "\n")
        .collect();
    let file = dir.path().join("ours.hex");
    std::fs::write(&file, input).expect("write frames");

    let out = java.run(
        dir.path(),
        "compat.GoldenVectors",
        &["decode", file.to_str().expect("utf-8 path")],
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "Java {version} failed to decode our frames:\n{}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with('{')).collect();
    assert_eq!(
        lines.len(),
        frames.len(),
        "one decoded line per frame:\n{}",
        text(&out)
    );
    for (cmd, line) in frames.iter().zip(lines) {
        let java_view: serde_json::Value = serde_json::from_str(line).expect("Java printed JSON");
        assert_eq!(
            java_view,
            logical_json(cmd),
            "Java {version} decoded {:?} frame of code {} differently",
            cmd.serialize_type,
            cmd.code
        );
    }
}

#[test]
fn java_4_9_8_decodes_our_frames() {
    java_decodes(JAVA_VERSIONS[0]);
}

#[test]
fn java_5_3_3_decodes_our_frames() {
    java_decodes(JAVA_VERSIONS[1]);
}
