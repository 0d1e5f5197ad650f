//! `PutResult`'s offsets and lazily made message ids, and the append path's
//! single properties scan (tags code and key index from the same pass).

mod common;

use std::net::SocketAddr;

use common::*;
use store::QueueOffset;
use store::{create_offset_message_id, decode_offset_message_id, properties, tags_hash_code};

#[test]
fn single_put_offset_and_message_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    s.put_now(&msg("T", 0, b"first", None)).expect("put");
    let r = s.put_now(&msg("T", 0, b"second", None)).expect("put");
    assert!(r.commit_log_offset.get() > 0);
    assert_eq!(r.commit_log_offsets.len(), 1);
    assert_eq!(r.commit_log_offsets.first(), Some(&r.commit_log_offset));
    assert_eq!(r.commit_log_offsets[..], [r.commit_log_offset]);
    assert_eq!(
        format!("{:?}", r.commit_log_offsets),
        format!("[{}]", r.commit_log_offset)
    );
    let id = create_offset_message_id(host(), r.commit_log_offset.get());
    assert_eq!(r.msg_ids(), vec![id.clone()]);
    assert_eq!(r.msg_id(0), Some(id));
    assert_eq!(r.msg_id(1), None);
    let got = read_queue(&s, "T", 0);
    assert_eq!(got[1].offset_msg_id(), r.msg_ids()[0]);
}

#[test]
fn message_ids_follow_each_record_store_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    let other: SocketAddr = "[2001:db8::7]:10912".parse().expect("addr");
    let mut msgs: Vec<_> = (0..3).map(|i| msg("T", 1, &[b'a' + i], None)).collect();
    msgs[1].store_host = other;
    let r = s.put_messages_now(&msgs).expect("put");
    assert_eq!(r.count, 3);
    assert_eq!(r.commit_log_offsets.len(), 3);
    let ids = r.msg_ids();
    assert_eq!(ids.len(), 3);
    for (i, o) in r.commit_log_offsets.iter().enumerate() {
        let h = if i == 1 { other } else { host() };
        assert_eq!(
            decode_offset_message_id(&ids[i]),
            Some((h, o.get())),
            "record {i}"
        );
        assert_eq!(r.msg_id(i).as_ref(), Some(&ids[i]));
    }
    let got = read_queue(&s, "T", 1);
    assert_eq!(
        got.iter().map(|m| m.offset_msg_id()).collect::<Vec<_>>(),
        ids
    );
    assert_eq!(
        got.iter().map(|m| m.physical_offset).collect::<Vec<_>>(),
        r.commit_log_offsets
            .iter()
            .map(|o| o.get())
            .collect::<Vec<_>>()
    );
}

#[test]
fn one_scan_feeds_tags_code_and_key_index_last_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    let mut m = msg("T", 0, b"x", None);
    // Duplicates: the last TAGS / KEYS / UNIQ_KEY count (Java's map); the
    // empty TAGS at the end is dropped; no trailing separator.
    m.properties = "TAGS\u{1}a\u{2}KEYS\u{1}old\u{2}UNIQ_KEY\u{1}U0\u{2}TAGS\u{1}b\u{2}\
                    KEYS\u{1}k1 ключ\u{2}UNIQ_KEY\u{1}U1\u{2}TAGS\u{1}\u{2}WAIT\u{1}true"
        .to_owned();
    let r = s.put_now(&m).expect("put");
    let code = std::cell::Cell::new(0);
    let g = s.get_messages("T", 0, QueueOffset(0), 1, 1 << 20, &|c| {
        code.set(c);
        true
    });
    assert_eq!(g.messages.len(), 1);
    assert_eq!(code.get(), tags_hash_code("b"));
    assert_eq!(
        properties::get(&m.properties, properties::TAGS),
        Some("b"),
        "same answer as get"
    );
    for k in ["k1", "ключ", "U1"] {
        let q = s.query_by_key("T", k, 64, 0, i64::MAX);
        assert_eq!(q.messages.len(), 1, "key {k}");
        assert_eq!(q.index_last_update_phyoffset, r.commit_log_offset.get());
    }
    for k in ["old", "U0", "k1 ключ"] {
        assert!(
            s.query_by_key("T", k, 64, 0, i64::MAX).messages.is_empty(),
            "key {k}"
        );
    }
}
