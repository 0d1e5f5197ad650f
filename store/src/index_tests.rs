use super::*;

fn read_all(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read index file")
}

fn be_i32(b: &[u8], pos: usize) -> i32 {
    i32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]])
}

fn be_i64(b: &[u8], pos: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[pos..pos + 8]);
    i64::from_be_bytes(a)
}

/// `String.hashCode` by its definition, over UTF-16 units: the reference
/// for [`java_string_hash`]'s ASCII fast path.
fn utf16_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

#[test]
fn java_hash_matches_string_hash_code() {
    // Values Java prints for "".hashCode(), "a".hashCode(), "hello".hashCode().
    assert_eq!(java_string_hash(""), 0);
    assert_eq!(java_string_hash("a"), 97);
    assert_eq!(java_string_hash("hello"), 99_162_322);
    assert_eq!(java_string_hash("TopicTest#key1"), {
        "TopicTest#key1"
            .chars()
            .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
    });
    // UTF-16 code units: a supplementary character is two units.
    let s = "\u{1F600}";
    let units: Vec<u16> = s.encode_utf16().collect();
    let expect = units
        .iter()
        .fold(0i32, |h, &c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    assert_eq!(java_string_hash(s), expect);
    // "polygenelubricants".hashCode() == Integer.MIN_VALUE; Math.abs keeps it
    // negative and Java then uses 0.
    assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    assert_eq!(index_key_hash("polygenelubricants"), 0);
    assert_eq!(index_key_hash("hello"), 99_162_322);
    // A negative hash is made positive.
    let neg = "TopicTest#ORDER_10";
    assert_eq!(index_key_hash(neg), java_string_hash(neg).abs());
}

#[test]
fn file_names_are_java_time_strings() {
    assert_eq!(file_name_of(0), "19700101000000000");
    // 2021-03-04 05:06:07.089 UTC
    assert_eq!(file_name_of(1_614_834_367_089), "20210304050607089");
    assert_eq!(file_name_of(951_782_400_000), "20000229000000000");
}

#[test]
fn header_slot_and_entry_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f");
    let (slots, max) = (10u32, 8u32);
    let mut f = IndexFile::create(&path, slots, max, 0, 0).expect("create");
    assert_eq!(std::fs::metadata(&path).expect("meta").len(), 40 + 40 + 160);
    assert!(f.put_key("T#k1", 1000, 5_000).expect("put"));
    assert!(f.put_key("T#k1", 2000, 7_500).expect("put"));
    f.flush().expect("flush");
    let b = read_all(&path);
    // Header.
    assert_eq!(be_i64(&b, 0), 5_000, "beginTimestamp");
    assert_eq!(be_i64(&b, 8), 7_500, "endTimestamp");
    assert_eq!(be_i64(&b, 16), 1000, "beginPhyOffset");
    assert_eq!(be_i64(&b, 24), 2000, "endPhyOffset");
    assert_eq!(be_i32(&b, 32), 1, "hashSlotCount");
    assert_eq!(be_i32(&b, 36), 3, "indexCount (starts at 1)");
    // Slot.
    let h = index_key_hash("T#k1");
    let slot = 40 + (h as usize % 10) * 4;
    assert_eq!(be_i32(&b, slot), 2, "slot points at the newest entry");
    // Entries 1 and 2 (entry 0 unused).
    let e = |n: usize| 40 + 10 * 4 + n * 20;
    assert_eq!(&b[e(0)..e(1)], &[0u8; 20]);
    assert_eq!(be_i32(&b, e(1)), h);
    assert_eq!(be_i64(&b, e(1) + 4), 1000);
    assert_eq!(be_i32(&b, e(1) + 12), 0, "timeDiff of the first");
    assert_eq!(be_i32(&b, e(1) + 16), 0, "no previous");
    assert_eq!(be_i32(&b, e(2)), h);
    assert_eq!(be_i64(&b, e(2) + 4), 2000);
    assert_eq!(be_i32(&b, e(2) + 12), 2, "(7500 - 5000) / 1000 seconds");
    assert_eq!(be_i32(&b, e(2) + 16), 1, "chained to entry 1");
    // Round trip of the header.
    let mut hb = [0u8; 40];
    hb.copy_from_slice(&b[..40]);
    assert_eq!(IndexHeader::decode(&hb), *f.header());
    assert_eq!(IndexHeader::decode(&hb).encode(), hb);
    // Reopen.
    drop(f);
    let f = IndexFile::open(&path, slots, max).expect("open");
    let mut out = Vec::new();
    f.select(&mut out, "T#k1", 10, 0, i64::MAX).expect("select");
    assert_eq!(out, vec![2000, 1000]);
    // Wrong geometry is refused.
    assert!(IndexFile::open(&path, 11, max).is_err());
}

#[test]
fn collisions_share_a_slot_and_are_told_apart_by_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One slot: every key collides on the slot.
    let mut f = IndexFile::create(&dir.path().join("f"), 1, 16, 0, 0).expect("create");
    f.put_key("T#a", 10, 1000).expect("put");
    f.put_key("T#b", 20, 1000).expect("put");
    f.put_key("T#a", 30, 1000).expect("put");
    let mut out = Vec::new();
    f.select(&mut out, "T#a", 10, 0, i64::MAX).expect("select");
    assert_eq!(out, vec![30, 10]);
    out.clear();
    f.select(&mut out, "T#b", 10, 0, i64::MAX).expect("select");
    assert_eq!(out, vec![20]);
    out.clear();
    f.select(&mut out, "T#a", 1, 0, i64::MAX).expect("select");
    assert_eq!(out, vec![30], "maxNum caps the walk");
    // Same String.hashCode: "Aa" and "BB" collide fully; the index returns both.
    f.put_key("Aa", 40, 1000).expect("put");
    f.put_key("BB", 50, 1000).expect("put");
    out.clear();
    f.select(&mut out, "Aa", 10, 0, i64::MAX).expect("select");
    assert_eq!(out, vec![50, 40]);
}

#[test]
fn time_window_uses_second_diffs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut f = IndexFile::create(&dir.path().join("f"), 7, 16, 0, 0).expect("create");
    f.put_key("T#k", 1, 100_000).expect("put");
    f.put_key("T#k", 2, 105_000).expect("put");
    f.put_key("T#k", 3, 110_000).expect("put");
    let mut out = Vec::new();
    f.select(&mut out, "T#k", 10, 104_000, 106_000)
        .expect("select");
    assert_eq!(out, vec![2]);
    assert!(f.is_time_matched(0, i64::MAX));
    assert!(f.is_time_matched(105_000, 200_000));
    assert!(!f.is_time_matched(111_000, 200_000));
    assert!(!f.is_time_matched(0, 99_999));
}

#[test]
fn service_rolls_and_queries_across_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let idx = dir.path().join("index");
    let svc = IndexService::open(&idx, 4, 4).expect("open");
    let props = |k: &str| properties::encode(&[("KEYS", k)]);
    // 3 entries per file (entry 0 unused): 7 records -> 3 files.
    for i in 0..7i64 {
        svc.build("T", &props("k"), i * 100, 1_000 + i, 0);
    }
    assert_eq!(svc.file_count(), 3);
    let (offs, ts, phy) = svc.query("T", "k", 64, 0, i64::MAX);
    assert_eq!(offs, vec![600, 500, 400, 300, 200, 100, 0]);
    assert_eq!((ts, phy), (1_006, 600));
    let (offs, _, _) = svc.query("T", "k", 2, 0, i64::MAX);
    assert_eq!(offs, vec![600, 500]);
    // Other topic, other key: nothing.
    assert!(svc.query("U", "k", 64, 0, i64::MAX).0.is_empty());
    assert!(svc.query("T", "zz", 64, 0, i64::MAX).0.is_empty());
    // File names sort in creation order and the second starts at the first's end.
    let mut names: Vec<String> = std::fs::read_dir(&idx)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 3);
    assert!(names
        .iter()
        .all(|n| n.len() == 17 && n.bytes().all(|b| b.is_ascii_digit())));
    drop(svc);
    let svc = IndexService::open(&idx, 4, 4).expect("reopen");
    assert_eq!(svc.recover_from(), Some(600));
    assert_eq!(svc.query("T", "k", 64, 0, i64::MAX).0.len(), 7);
    // Another geometry: files are dropped (rebuilt by the store).
    drop(svc);
    let svc = IndexService::open(&idx, 5, 4).expect("reopen other geometry");
    assert_eq!(svc.file_count(), 0);
    assert_eq!(svc.recover_from(), None);
}

/// A fresh index holding one record (offset 42) of `topic` with `UNIQ_KEY`
/// `uniq` and `KEYS` `keys`; each of `words` finds it.
fn index_one(
    topic: &str,
    uniq: &str,
    keys: &str,
    words: &[&str],
) -> (tempfile::TempDir, IndexService) {
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = IndexService::open(&dir.path().join("index"), 16, 64).expect("open");
    let p = properties::encode(&[("UNIQ_KEY", uniq), ("KEYS", keys)]);
    svc.build(topic, &p, 42, 1000, 0);
    for k in words {
        assert_eq!(svc.query(topic, k, 64, 0, i64::MAX).0, vec![42], "key {k}");
    }
    (dir, svc)
}

#[test]
fn build_indexes_uniq_key_and_each_keys_word() {
    let (_dir, svc) = index_one("T", "U1", "a  b c", &["U1", "a", "b", "c"]);
    assert!(svc.query("T", "a  b c", 64, 0, i64::MAX).0.is_empty());
    // Prepared and rolled-back transactional records are not indexed.
    let p = properties::encode(&[("KEYS", "tx")]);
    svc.build("T", &p, 100, 1000, record::TRANSACTION_PREPARED_TYPE);
    svc.build("T", &p, 200, 1000, record::TRANSACTION_ROLLBACK_TYPE);
    svc.build("T", &p, 300, 1000, record::TRANSACTION_COMMIT_TYPE);
    assert_eq!(svc.query("T", "tx", 64, 0, i64::MAX).0, vec![300]);
}

mod store_level {
    use crate::{properties, MessageStore, MessageToStore, StoreConfig};
    use bytes::Bytes;
    use std::path::Path;

    fn cfg(dir: &Path) -> StoreConfig {
        StoreConfig {
            mapped_file_size_commit_log: 64 * 1024,
            max_hash_slot_num: 8,
            max_index_num: 6,
            ..StoreConfig::with_root(dir)
        }
    }

    fn msg(topic: &str, uniq: &str, keys: &str) -> MessageToStore {
        MessageToStore {
            topic: topic.to_owned(),
            queue_id: 0,
            flag: 0,
            body: Bytes::from_static(b"hello"),
            properties: properties::encode(&[("UNIQ_KEY", uniq), ("KEYS", keys)]),
            sys_flag: 0,
            born_timestamp: 1,
            born_host: "127.0.0.1:1".parse().expect("addr"),
            store_host: "127.0.0.1:10911".parse().expect("addr"),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        }
    }

    fn uniqs(s: &MessageStore, topic: &str, key: &str) -> Vec<String> {
        let mut v: Vec<String> = s
            .query_by_key(topic, key, 64, 0, i64::MAX)
            .messages
            .iter()
            .map(|r| {
                let v = crate::record::decode(r).expect("record");
                properties::get(v.properties, "UNIQ_KEY")
                    .expect("uniq")
                    .to_owned()
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn query_by_key_verifies_rolls_and_recovers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = MessageStore::open(cfg(dir.path())).expect("open");
        // 8 slots: many keys collide on slots; results are verified.
        for i in 0..10 {
            futures::executor::block_on(s.put(&msg(
                "T",
                &format!("U{i}"),
                &format!("k{} all", i % 3),
            )))
            .expect("put");
        }
        futures::executor::block_on(s.put(&msg("Other", "X1", "k0 all"))).expect("put");
        assert_eq!(uniqs(&s, "T", "k0"), ["U0", "U3", "U6", "U9"]);
        assert_eq!(uniqs(&s, "T", "all").len(), 10);
        assert_eq!(uniqs(&s, "T", "U4"), ["U4"]);
        assert_eq!(uniqs(&s, "Other", "k0"), ["X1"]);
        assert!(uniqs(&s, "T", "nope").is_empty());
        let r = s.query_by_key("T", "all", 3, 0, i64::MAX);
        assert_eq!(r.messages.len(), 3);
        assert!(r.index_last_update_timestamp > 0);
        assert!(r.index_last_update_phyoffset > 0);
        // Time window in the future: nothing.
        assert!(s
            .query_by_key("T", "all", 64, i64::MAX - 1, i64::MAX)
            .messages
            .is_empty());
        let files = std::fs::read_dir(dir.path().join("index"))
            .expect("dir")
            .count();
        assert!(files > 3, "small files roll: {files}");
        s.shutdown();
        drop(s);

        // Clean restart: nothing duplicated.
        let s = MessageStore::open(cfg(dir.path())).expect("reopen");
        let all = s.query_by_key("T", "all", 64, 0, i64::MAX).messages.len();
        assert_eq!(all, 10);
        futures::executor::block_on(s.put(&msg("T", "U10", "k1"))).expect("put");
        assert_eq!(uniqs(&s, "T", "k1"), ["U1", "U10", "U4", "U7"]);
        drop(s); // crash: no shutdown

        // Index lost: rebuilt from the commit log.
        std::fs::remove_dir_all(dir.path().join("index")).expect("rm index");
        let s = MessageStore::open(cfg(dir.path())).expect("reopen");
        assert_eq!(uniqs(&s, "T", "k1"), ["U1", "U10", "U4", "U7"]);
        assert_eq!(uniqs(&s, "Other", "X1"), ["X1"]);
        drop(s);

        // Index behind the commit log (newest file lost): the tail is re-indexed.
        let mut names: Vec<_> = std::fs::read_dir(dir.path().join("index"))
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .collect();
        names.sort();
        std::fs::remove_file(names.last().expect("a file")).expect("rm");
        let s = MessageStore::open(cfg(dir.path())).expect("reopen");
        assert_eq!(uniqs(&s, "T", "k1"), ["U1", "U10", "U4", "U7"]);
        assert_eq!(uniqs(&s, "T", "all").len(), 10);
        assert_eq!(uniqs(&s, "Other", "X1"), ["X1"]);
    }
}

#[test]
fn incremental_key_hash_matches_built_key_table() {
    let cases = [
        ("TopicTest", "key1"),
        ("T", ""),
        ("", "k"),
        ("", ""),
        ("TopicTest", "ORDER_10"),
        ("TopicTest", "7F0000010B8418B4AAC2"),
        ("主题", "键"),
        ("TopicTest", "clé é"),
        ("T", "\u{1F600}"),
        ("T\u{1F600}x", "a\u{10FFFF}b\u{80}"),
        ("%RETRY%g", "ключ-𝄞"),
    ];
    for (topic, key) in cases {
        let expect = index_key_hash(&build_key(topic, key));
        assert_eq!(
            index_key_hash_of(topic_prefix_hash(topic), key),
            expect,
            "{topic:?} {key:?}"
        );
        let mut whole = build_key(topic, key);
        assert_eq!(java_hash_continue(0, &whole), utf16_hash(&whole));
        assert_eq!(java_string_hash(&whole), utf16_hash(&whole));
        whole.push('é');
        assert_eq!(java_hash_continue(0, &whole), utf16_hash(&whole));
        assert_eq!(java_string_hash(&whole), utf16_hash(&whole));
    }
    // Integer.MIN_VALUE maps to 0 here as well.
    assert_eq!(java_hash_continue(0, "polygenelubricants"), i32::MIN);
    assert_eq!(index_key_hash_of(0, "polygenelubricants"), 0);
}

#[test]
fn build_indexes_non_ascii_keys_findable_by_query() {
    let (_dir, svc) = index_one("主题", "ü\u{1F600}", "键 clé", &["ü\u{1F600}", "键", "clé"]);
    // The entries carry the hash of the built key, byte for byte.
    let files = svc.files();
    let f = files.last().expect("file");
    let mut out = Vec::new();
    f.select(&mut out, &build_key("主题", "键"), 64, 0, i64::MAX)
        .expect("select");
    assert_eq!(out, vec![42]);
}

proptest::proptest! {
    #[test]
    fn incremental_key_hash_matches_built_key(topic in ".{0,12}", key in ".{0,12}") {
        proptest::prop_assert_eq!(
            index_key_hash_of(topic_prefix_hash(&topic), &key),
            index_key_hash(&build_key(&topic, &key))
        );
    }
}
