//! Golden vectors: frames encoded by the official Java remoting library
//! (4.9.8 and 5.3.3, see `golden/README.md`) decode to what Java itself
//! decodes them to, and re-encode to the very same bytes.
//!
//! Byte-for-byte re-encoding holds even where Java's `extFields` order comes
//! from a `HashMap`, because our decoder keeps the order it read.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use remoting::codec::encode_frame;
use remoting::codec::logical_json as logical;
use remoting::RemotingCodec;
use serde_json::Value;
use tokio_util::codec::Decoder;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn hex_decode(s: &str) -> Vec<u8> {
    let s = s.trim();
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

use remoting::codec::hex as hex_encode;

fn check_version(version: &str) -> usize {
    let dir = golden_dir().join(version);
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "hex"))
        .collect();
    entries.sort();
    for hex_path in entries {
        let name = hex_path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name")
            .to_owned();
        let wire = hex_decode(&std::fs::read_to_string(&hex_path).expect("read hex"));
        let mut buf = BytesMut::from(&wire[..]);
        let cmd = RemotingCodec::default()
            .decode(&mut buf)
            .unwrap_or_else(|e| panic!("{version}/{name}: {e}"))
            .unwrap_or_else(|| panic!("{version}/{name}: incomplete frame"));
        assert!(buf.is_empty(), "{version}/{name}: trailing bytes");

        let expect_path = hex_path.with_file_name(name.replace(".hex", ".expect.json"));
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(&expect_path).expect("read expect.json"))
                .expect("expect.json is JSON");
        assert_eq!(
            logical(&cmd),
            expected,
            "{version}/{name}: decoded fields differ from Java's"
        );

        let again = encode_frame(&cmd).expect("encode");
        assert_eq!(
            hex_encode(&again),
            hex_encode(&wire),
            "{version}/{name}: re-encoded bytes differ"
        );
        checked += 1;
    }
    checked
}

#[test]
fn java_4_9_8_frames_decode_and_reencode_exactly() {
    assert!(
        check_version("4.9.8") >= 20,
        "too few golden vectors for 4.9.8"
    );
}

#[test]
fn java_5_3_3_frames_decode_and_reencode_exactly() {
    assert!(
        check_version("5.3.3") >= 20,
        "too few golden vectors for 5.3.3"
    );
}
