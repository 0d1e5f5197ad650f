//! Property tests of the frame codec.

use bytes::BytesMut;
use proptest::prelude::*;
use remoting::codec::encode_frame;
use remoting::{LanguageCode, RemotingCodec, RemotingCommand, SerializeType};
use tokio_util::codec::Decoder;

fn command() -> impl Strategy<Value = RemotingCommand> {
    (
        any::<i16>(),
        0u8..14,
        any::<i16>(),
        any::<i32>(),
        0i32..4,
        proptest::option::of("\\PC{1,20}"),
        proptest::option::of(proptest::collection::vec(
            ("[a-zA-Z]{1,8}", "\\PC{1,30}"),
            0..6,
        )),
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
    )
        .prop_map(
            |(code, lang, version, opaque, flag, remark, ext, body, binary)| {
                let mut cmd = RemotingCommand::request(code as i32);
                cmd.language = LanguageCode::from_byte(lang);
                cmd.version = version as i32;
                cmd.opaque = opaque;
                cmd.flag = flag;
                cmd.remark = remark;
                cmd.ext_fields = ext.map(|pairs| pairs.into_iter().collect());
                cmd.body = body.into();
                cmd.serialize_type = if binary {
                    SerializeType::RocketMq
                } else {
                    SerializeType::Json
                };
                // The binary form cannot tell "no ext fields" from an empty map.
                if binary && cmd.ext_fields.as_ref().is_some_and(|e| e.is_empty()) {
                    cmd.ext_fields = None;
                }
                cmd
            },
        )
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(cmd in command()) {
        let mut buf = encode_frame(&cmd).unwrap();
        let decoded = RemotingCodec::default().decode(&mut buf).unwrap().unwrap();
        prop_assert_eq!(decoded, cmd);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn frames_split_at_every_boundary_decode_the_same(cmds in proptest::collection::vec(command(), 1..4)) {
        let mut wire = BytesMut::new();
        for c in &cmds {
            wire.extend_from_slice(&encode_frame(c).unwrap());
        }
        for split in 0..=wire.len() {
            let mut codec = RemotingCodec::default();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for chunk in [&wire[..split], &wire[split..]] {
                buf.extend_from_slice(chunk);
                while let Some(c) = codec.decode(&mut buf).unwrap() {
                    out.push(c);
                }
            }
            prop_assert_eq!(&out, &cmds);
        }
    }

    #[test]
    fn junk_never_panics(junk in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut buf = BytesMut::from(&junk[..]);
        let mut codec = RemotingCodec::default();
        // Either a frame, a need for more bytes, or an error: never a panic.
        for _ in 0..8 {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                _ => break,
            }
        }
    }

    #[test]
    fn junk_after_a_valid_prefix_header_never_panics(
        type_byte in 0u8..2,
        header in proptest::collection::vec(any::<u8>(), 0..200),
        body in proptest::collection::vec(any::<u8>(), 0..50),
    ) {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&((4 + header.len() + body.len()) as i32).to_be_bytes());
        buf.extend_from_slice(&(((type_byte as u32) << 24) | header.len() as u32).to_be_bytes());
        buf.extend_from_slice(&header);
        buf.extend_from_slice(&body);
        let _ = RemotingCodec::default().decode(&mut buf);
    }
}

// ------------------------------------------------------------------------
// Byte-exact encoding of `extFields`, whatever their origin: built by hand,
// decoded from a frame (entries pointing into the received text), then
// edited. A plain writer over an ordered list of pairs, with `IndexMap`
// semantics (a replaced key keeps its place, a removal shifts the rest),
// is the reference.

/// fastjson's escaping, one character at a time.
fn ref_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The whole frame as the Java remoting library writes it.
fn ref_frame(cmd: &RemotingCommand, ext: Option<&[(String, String)]>) -> Vec<u8> {
    let header = match cmd.serialize_type {
        SerializeType::Json => {
            let mut h = format!("{{\"code\":{}", cmd.code);
            if let Some(ext) = ext {
                h.push_str(",\"extFields\":{");
                for (i, (k, v)) in ext.iter().enumerate() {
                    if i > 0 {
                        h.push(',');
                    }
                    ref_json_string(&mut h, k);
                    h.push(':');
                    ref_json_string(&mut h, v);
                }
                h.push('}');
            }
            h.push_str(&format!(
                ",\"flag\":{},\"language\":\"{}\",\"opaque\":{}",
                cmd.flag,
                cmd.language.name(),
                cmd.opaque
            ));
            if let Some(r) = &cmd.remark {
                h.push_str(",\"remark\":");
                ref_json_string(&mut h, r);
            }
            h.push_str(&format!(
                ",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":{}}}",
                cmd.version
            ));
            h.into_bytes()
        }
        SerializeType::RocketMq => {
            let mut pairs = Vec::new();
            for (k, v) in ext.unwrap_or(&[]) {
                pairs.extend_from_slice(&(k.len() as i16).to_be_bytes());
                pairs.extend_from_slice(k.as_bytes());
                pairs.extend_from_slice(&(v.len() as i32).to_be_bytes());
                pairs.extend_from_slice(v.as_bytes());
            }
            let remark = cmd.remark.as_deref().unwrap_or("");
            let mut h = Vec::new();
            h.extend_from_slice(&(cmd.code as i16).to_be_bytes());
            h.push(cmd.language.as_byte());
            h.extend_from_slice(&(cmd.version as i16).to_be_bytes());
            h.extend_from_slice(&cmd.opaque.to_be_bytes());
            h.extend_from_slice(&cmd.flag.to_be_bytes());
            h.extend_from_slice(&(remark.len() as i32).to_be_bytes());
            h.extend_from_slice(remark.as_bytes());
            h.extend_from_slice(&(pairs.len() as i32).to_be_bytes());
            h.extend_from_slice(&pairs);
            h
        }
    };
    let mut frame = Vec::new();
    frame.extend_from_slice(&((4 + header.len() + cmd.body.len()) as i32).to_be_bytes());
    let packed = ((cmd.serialize_type.as_byte() as u32) << 24) | header.len() as u32;
    frame.extend_from_slice(&packed.to_be_bytes());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(&cmd.body);
    frame
}

fn model_insert(model: &mut Vec<(String, String)>, k: &str, v: &str) {
    match model.iter_mut().find(|(mk, _)| mk == k) {
        Some(slot) => slot.1 = v.to_owned(),
        None => model.push((k.to_owned(), v.to_owned())),
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Set(String, String),
    Remove(String),
}

/// Keys that repeat (one-letter send keys, a few names) and values with
/// and without characters fastjson escapes.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-n]",
        proptest::sample::select(vec!["topic", "queueId", "msgId", "bname", "MSG_REGION"])
            .prop_map(str::to_owned),
        "[a-zA-Z\u{e9}\u{1}\"]{1,6}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9]{0,12}",
        "[a-z\u{1}\u{2}\"\\\\/\n\u{7f}\u{e9}\u{2028}\u{1F600}]{0,12}",
        "\\PC{0,20}",
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (key(), value()).prop_map(|(k, v)| Edit::Set(k, v)),
        key().prop_map(Edit::Remove),
    ]
}

/// Strings fastjson escapes (or must not): in `remark` and in an
/// `extFields` value, the frame is the reference writer's.
#[test]
fn json_strings_escape_as_fastjson() {
    for s in [
        "",
        "AC1100017F0000011F8A",
        "a\"b",
        "\\",
        "tab\there",
        "\u{1}KEYS\u{2}",
        "\u{7f}\u{80}\u{9f}\u{a0}",
        "x\u{2028}y\u{2029}",
        "\u{6807}\u{7b7e}",
        "\u{1F600}/",
    ] {
        let pairs = vec![("k".to_owned(), s.to_owned())];
        let cmd = RemotingCommand::request(310)
            .with_remark(s)
            .with_ext("k", s);
        let frame = encode_frame(&cmd).unwrap();
        assert_eq!(frame, ref_frame(&cmd, Some(&pairs)), "{s:?}");
    }
}

proptest! {
    #[test]
    fn frames_match_a_reference_writer_before_and_after_decode_and_edits(
        pairs in proptest::option::of(proptest::collection::vec((key(), value()), 0..20)),
        edits in proptest::collection::vec(edit(), 0..8),
        remark in proptest::option::of(value()),
        opaque in any::<i32>(),
        binary in any::<bool>(),
    ) {
        let mut cmd = RemotingCommand::request(310).with_body(&b"body"[..]);
        cmd.opaque = opaque;
        cmd.remark = remark;
        if binary {
            cmd.serialize_type = SerializeType::RocketMq;
        }
        let mut model: Option<Vec<(String, String)>> = None;
        if let Some(pairs) = &pairs {
            let m = model.get_or_insert_with(Vec::new);
            for (k, v) in pairs {
                model_insert(m, k, v);
            }
            cmd.ext_fields = Some(pairs.iter().cloned().collect());
        }
        let frame = encode_frame(&cmd).unwrap();
        prop_assert_eq!(&frame[..], &ref_frame(&cmd, model.as_deref())[..]);
        // Binary frames read empty strings back as absent: edit the JSON kind only.
        if binary {
            return Ok(());
        }
        let mut decoded = RemotingCodec::default()
            .decode(&mut BytesMut::from(&frame[..]))
            .unwrap()
            .unwrap();
        prop_assert_eq!(&decoded, &cmd);
        for e in &edits {
            match e {
                Edit::Set(k, v) => {
                    decoded.set_ext(k.clone(), v.clone());
                    model_insert(model.get_or_insert_with(Vec::new), k, v);
                }
                Edit::Remove(k) => {
                    let got = decoded.ext_fields.as_mut().and_then(|f| f.shift_remove(k));
                    let m = model.as_mut();
                    let want = m.and_then(|m| {
                        let i = m.iter().position(|(mk, _)| mk == k)?;
                        Some(m.remove(i).1)
                    });
                    prop_assert_eq!(got, want);
                }
            }
        }
        if let Some(m) = &model {
            let fields = decoded.ext_fields.as_ref().unwrap();
            prop_assert_eq!(fields.len(), m.len());
            for (k, v) in m {
                prop_assert_eq!(decoded.ext(k), Some(v.as_str()));
            }
            let order: Vec<(&str, &str)> = fields.iter().collect();
            let want: Vec<(&str, &str)> = m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(order, want);
        }
        let again = encode_frame(&decoded).unwrap();
        prop_assert_eq!(&again[..], &ref_frame(&decoded, model.as_deref())[..]);
    }
}
