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
