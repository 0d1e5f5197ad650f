//! The JSON bodies of DLedger 0.3.1.2 (`DL: protocol/*.java`), field for field.
//!
//! Every message carries the [`Base`] fields of `RequestOrResponse`. Structs
//! are serialised through [`to_json`], which sorts keys as fastjson does;
//! getter-only properties Java emits (PushEntryRequest's `batch`, `count`,
//! `firstEntryIndex`, `lastEntryIndex`, `totalSize`) are added there and
//! ignored on input.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::json;
use super::ProtocolError;
pub use crate::core::message::{PushType, VoteResult};
use crate::entry::Entry;

fn neg1() -> i64 {
    -1
}
fn code_success() -> i32 {
    200
}
fn vote_unknown() -> VoteResult {
    VoteResult::Unknown
}
fn push_append() -> PushType {
    PushType::Append
}

/// `RequestOrResponse`: the fields of every request and response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Base {
    #[serde(default = "code_success", deserialize_with = "json::i32_or_200")]
    pub code: i32,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "json::opt_string"
    )]
    pub group: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "json::opt_string"
    )]
    pub leader_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "json::opt_string"
    )]
    pub local_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "json::opt_string"
    )]
    pub remote_id: Option<String>,
    #[serde(default = "neg1", deserialize_with = "json::i64_or_neg1")]
    pub term: i64,
}

impl Default for Base {
    fn default() -> Self {
        Base {
            code: 200,
            group: None,
            leader_id: None,
            local_id: None,
            remote_id: None,
            term: -1,
        }
    }
}

impl Base {
    /// Java's `copyBaseInfo`.
    pub fn copy_of(other: &Base) -> Base {
        other.clone()
    }
}

/// Messages with a JSON body.
pub trait Body: Serialize + for<'de> Deserialize<'de> {
    fn base(&self) -> &Base;
    fn base_mut(&mut self) -> &mut Base;

    /// The body as DLedger writes it (`JSON.toJSONBytes`).
    fn to_json(&self) -> Vec<u8> {
        // Serialising these plain structs cannot fail; an empty object is the
        // only sane fallback should it ever.
        json::to_sorted_json(self).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// Parses a body as DLedger does (`JSON.parseObject`).
    fn from_json(bytes: &[u8]) -> Result<Self, ProtocolError> {
        if bytes.is_empty() {
            return Err(ProtocolError::EmptyBody);
        }
        serde_json::from_slice(bytes).map_err(|e| ProtocolError::BadJson(e.to_string()))
    }
}

macro_rules! body {
    ($($t:ident),+ $(,)?) => {$(
        impl Body for $t {
            fn base(&self) -> &Base { &self.base }
            fn base_mut(&mut self) -> &mut Base { &mut self.base }
        }
    )+};
}

/// A message with no fields beyond [`Base`].
macro_rules! base_only {
    ($($(#[$m:meta])* $t:ident),+ $(,)?) => {$(
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $t {
            #[serde(flatten)]
            pub base: Base,
        }
    )+};
}

base_only!(
    /// METADATA request.
    MetadataRequest,
    /// HEART_BEAT request: `leaderId` = `localId` = the leader, `term`.
    HeartBeatRequest,
    /// HEART_BEAT response: `code` and `term` only.
    HeartBeatResponse,
    /// LEADERSHIP_TRANSFER response: `code` and `term`.
    LeadershipTransferResponse,
);

/// METADATA response: peers id -> address, known leader.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataResponse {
    #[serde(flatten)]
    pub base: Base,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<BTreeMap<String, String>>,
}

/// APPEND request from a client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntryRequest {
    #[serde(flatten)]
    pub base: Base,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "json::base64_opt"
    )]
    pub body: Option<Bytes>,
}

/// APPEND response: the entry's index and position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntryResponse {
    #[serde(flatten)]
    pub base: Base,
    #[serde(default = "neg1", deserialize_with = "json::i64_or_neg1")]
    pub index: i64,
    #[serde(default = "neg1", deserialize_with = "json::i64_or_neg1")]
    pub pos: i64,
}

impl Default for AppendEntryResponse {
    fn default() -> Self {
        AppendEntryResponse {
            base: Base::default(),
            index: -1,
            pos: -1,
        }
    }
}

/// GET request; DLedger only reads `beginIndex`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetEntriesRequest {
    #[serde(flatten)]
    pub base: Base,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "json::opt_i64"
    )]
    pub begin_index: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "json::opt_i64_list"
    )]
    pub index_list: Option<Vec<i64>>,
    #[serde(default, deserialize_with = "json::i32_or_zero")]
    pub max_size: i32,
}

/// GET response: zero or one entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetEntriesResponse {
    #[serde(flatten)]
    pub base: Base,
    #[serde(default, deserialize_with = "json::null_as_default")]
    pub entries: Vec<EntryJson>,
}

/// VOTE request: `leaderId` and `localId` are the candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoteRequest {
    #[serde(flatten)]
    pub base: Base,
    #[serde(default = "neg1", deserialize_with = "json::i64_or_neg1")]
    pub ledger_end_index: i64,
    #[serde(default = "neg1", deserialize_with = "json::i64_or_neg1")]
    pub ledger_end_term: i64,
}

impl Default for VoteRequest {
    fn default() -> Self {
        VoteRequest {
            base: Base::default(),
            ledger_end_index: -1,
            ledger_end_term: -1,
        }
    }
}

/// VOTE response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoteResponse {
    #[serde(flatten)]
    pub base: Base,
    #[serde(
        default = "vote_unknown",
        serialize_with = "json::vote_result::serialize",
        deserialize_with = "json::vote_result::deserialize"
    )]
    pub vote_result: VoteResult,
}

impl Default for VoteResponse {
    fn default() -> Self {
        VoteResponse {
            base: Base::default(),
            vote_result: VoteResult::Unknown,
        }
    }
}

/// PUSH request. A single entry travels in `entry`, a batch in `batchEntry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushEntryRequest {
    #[serde(flatten)]
    pub base: Base,
    #[serde(default, deserialize_with = "json::null_as_default")]
    pub batch_entry: Vec<EntryJson>,
    #[serde(default = "neg1", deserialize_with = "json::i64_or_neg1")]
    pub commit_index: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<EntryJson>,
    #[serde(
        rename = "type",
        default = "push_append",
        serialize_with = "json::push_type::serialize",
        deserialize_with = "json::push_type::deserialize"
    )]
    pub kind: PushType,
}

impl Default for PushEntryRequest {
    fn default() -> Self {
        PushEntryRequest {
            base: Base::default(),
            batch_entry: Vec::new(),
            commit_index: -1,
            entry: None,
            kind: PushType::Append,
        }
    }
}

impl PushEntryRequest {
    /// The entries carried, whichever shape was used: a non-empty `batchEntry`
    /// wins, as in Java's getters.
    pub fn entries(&self) -> Vec<&EntryJson> {
        if !self.batch_entry.is_empty() {
            self.batch_entry.iter().collect()
        } else {
            self.entry.iter().collect()
        }
    }

    /// The JSON Java writes: the fields plus the getter-only `batch`,
    /// `count`, `firstEntryIndex`, `lastEntryIndex` and `totalSize`, keys
    /// sorted. Written directly (the leader sends one per push and
    /// follower): byte for byte what [`json::to_sorted_json`] of the struct
    /// plus those keys gives (a test checks it), without building a JSON tree.
    pub fn to_json_with_derived(&self) -> Vec<u8> {
        let b = &self.base;
        write_push(
            BaseView {
                code: b.code,
                group: b.group.as_deref(),
                leader_id: b.leader_id.as_deref(),
                local_id: b.local_id.as_deref(),
                remote_id: b.remote_id.as_deref(),
                term: b.term,
            },
            &self.batch_entry,
            self.entry.as_ref(),
            self.commit_index,
            self.kind,
        )
    }

    /// The generic path [`to_json_with_derived`](Self::to_json_with_derived)
    /// must match.
    #[cfg(test)]
    pub(crate) fn to_json_with_derived_generic(&self) -> Vec<u8> {
        let entries = self.entries();
        let first = entries.first().map_or(-1, |e| e.index);
        let last = entries.last().map_or(-1, |e| e.index);
        let total: i64 = self.batch_entry.iter().map(|e| i64::from(e.size)).sum();
        let mut v = match serde_json::to_value(self) {
            Ok(v) => v,
            Err(_) => return b"{}".to_vec(),
        };
        if let Some(map) = v.as_object_mut() {
            map.insert("batch".into(), (!self.batch_entry.is_empty()).into());
            map.insert("count".into(), entries.len().into());
            map.insert("firstEntryIndex".into(), first.into());
            map.insert("lastEntryIndex".into(), last.into());
            map.insert("totalSize".into(), total.into());
        }
        json::value_to_sorted_json(&v).unwrap_or_else(|_| b"{}".to_vec())
    }
}

/// PUSH response. `index` is absent for COMMIT replies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushEntryResponse {
    #[serde(flatten)]
    pub base: Base,
    #[serde(default, deserialize_with = "json::i64_or_zero")]
    pub begin_index: i64,
    #[serde(default, deserialize_with = "json::i32_or_zero")]
    pub count: i32,
    #[serde(default, deserialize_with = "json::i64_or_zero")]
    pub end_index: i64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "json::opt_i64"
    )]
    pub index: Option<i64>,
}

/// LEADERSHIP_TRANSFER request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeadershipTransferRequest {
    #[serde(flatten)]
    pub base: Base,
    #[serde(default, deserialize_with = "json::i64_or_zero")]
    pub take_leadership_ledger_index: i64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "json::opt_string"
    )]
    pub transfer_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "json::opt_string"
    )]
    pub transferee_id: Option<String>,
}

body!(
    MetadataRequest,
    MetadataResponse,
    AppendEntryRequest,
    AppendEntryResponse,
    GetEntriesRequest,
    GetEntriesResponse,
    VoteRequest,
    VoteResponse,
    HeartBeatRequest,
    HeartBeatResponse,
    LeadershipTransferRequest,
    LeadershipTransferResponse,
    PushEntryResponse,
);

impl Body for PushEntryRequest {
    fn base(&self) -> &Base {
        &self.base
    }
    fn base_mut(&mut self) -> &mut Base {
        &mut self.base
    }
    fn to_json(&self) -> Vec<u8> {
        self.to_json_with_derived()
    }

    /// The plain shape DLedger writers produce in one pass, anything else
    /// (and every error) through serde.
    fn from_json(bytes: &[u8]) -> Result<Self, ProtocolError> {
        if bytes.is_empty() {
            return Err(ProtocolError::EmptyBody);
        }
        if let Some(r) = super::push_json::parse_push(bytes) {
            return Ok(r);
        }
        serde_json::from_slice(bytes).map_err(|e| ProtocolError::BadJson(e.to_string()))
    }
}

/// The core's PUSH request as [`PushEntryRequest::to_json`] writes it,
/// without building the JSON structs first (same bytes; a test checks it).
pub fn push_request_json(r: &crate::core::message::PushEntryRequest) -> Vec<u8> {
    let h = &r.header;
    write_push(
        BaseView {
            code: h.code,
            group: h.group.as_deref(),
            leader_id: h.leader_id.as_deref(),
            local_id: h.local_id.as_deref(),
            remote_id: h.remote_id.as_deref(),
            term: h.term,
        },
        &r.batch_entry,
        r.entry.as_ref(),
        r.commit_index,
        r.kind,
    )
}

/// The [`Base`] fields by reference, from a [`Base`] or the core's header.
struct BaseView<'a> {
    code: i32,
    group: Option<&'a str>,
    leader_id: Option<&'a str>,
    local_id: Option<&'a str>,
    remote_id: Option<&'a str>,
    term: i64,
}

/// An entry as the PUSH body writes it: an [`EntryJson`] or a core [`Entry`].
trait EntryView {
    fn index(&self) -> i64;
    fn size(&self) -> i32;
    fn body(&self) -> Option<&Bytes>;
    /// The integer fields in the order of [`ENTRY_INT_KEYS`].
    fn ints(&self) -> [i64; 8];

    fn body_len(&self) -> usize {
        self.body().map_or(0, Bytes::len)
    }

    /// The entry object, keys sorted (as [`EntryJson`] serialises).
    fn write_json(&self, w: &mut json::ObjectWriter) {
        write_entry(w, self.body(), self.ints());
    }
}

impl EntryView for EntryJson {
    fn index(&self) -> i64 {
        self.index
    }
    fn size(&self) -> i32 {
        self.size
    }
    fn body(&self) -> Option<&Bytes> {
        self.body.as_ref()
    }
    fn ints(&self) -> [i64; 8] {
        [
            i64::from(self.body_crc),
            i64::from(self.chain_crc),
            i64::from(self.channel),
            self.index,
            i64::from(self.magic),
            self.pos,
            i64::from(self.size),
            self.term,
        ]
    }
}

impl EntryView for Entry {
    fn index(&self) -> i64 {
        self.index
    }
    fn size(&self) -> i32 {
        Entry::size(self)
    }
    fn body(&self) -> Option<&Bytes> {
        Some(&self.body)
    }
    /// As [`EntryJson::from`] this entry would write itself.
    fn ints(&self) -> [i64; 8] {
        EntryJson::from(self).ints()
    }
}

/// The entry object, keys sorted; `ints` in the order of [`ENTRY_INT_KEYS`].
fn write_entry(w: &mut json::ObjectWriter, body: Option<&Bytes>, ints: [i64; 8]) {
    w.begin_object();
    if let Some(body) = body {
        w.base64("body", body);
    }
    for (key, v) in ENTRY_INT_KEYS.into_iter().zip(ints) {
        w.int(key, v);
    }
    w.end_object();
}

const ENTRY_INT_KEYS: [&str; 8] = [
    "bodyCrc", "chainCrc", "channel", "index", "magic", "pos", "size", "term",
];

fn write_push<E: EntryView>(
    b: BaseView<'_>,
    batch_entry: &[E],
    entry: Option<&E>,
    commit_index: i64,
    kind: PushType,
) -> Vec<u8> {
    // A non-empty batch wins, as in Java's getters.
    let entries: &[E] = if !batch_entry.is_empty() {
        batch_entry
    } else {
        entry.map_or(&[], std::slice::from_ref)
    };
    let first = entries.first().map_or(-1, |e| e.index());
    let last = entries.last().map_or(-1, |e| e.index());
    // Java adds to totalSize only in addEntry (batch); setEntry leaves it 0.
    let total: i64 = batch_entry.iter().map(|e| i64::from(e.size())).sum();
    let body_len: usize = batch_entry
        .iter()
        .chain(entry)
        .map(|e| e.body_len() / 3 * 4 + 4)
        .sum();
    let mut w = json::ObjectWriter::with_capacity(256 + body_len + 200 * entries.len());
    w.bool("batch", !batch_entry.is_empty());
    w.key("batchEntry");
    w.begin_array();
    for e in batch_entry {
        w.array_item();
        e.write_json(&mut w);
    }
    w.end_array();
    w.int("code", i64::from(b.code));
    w.int("commitIndex", commit_index);
    w.int("count", entries.len() as i64);
    if let Some(e) = entry {
        w.key("entry");
        e.write_json(&mut w);
    }
    w.int("firstEntryIndex", first);
    w.opt_str("group", b.group);
    w.int("lastEntryIndex", last);
    w.opt_str("leaderId", b.leader_id);
    w.opt_str("localId", b.local_id);
    w.opt_str("remoteId", b.remote_id);
    w.int("term", b.term);
    w.int("totalSize", total);
    w.opt_str("type", Some(kind.java_name()));
    w.finish()
}

/// `DLedgerEntry` as JSON (`DL: entry/DLedgerEntry.java`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryJson {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "json::base64_opt"
    )]
    pub body: Option<Bytes>,
    #[serde(default, deserialize_with = "json::i32_or_zero")]
    pub body_crc: i32,
    #[serde(default, deserialize_with = "json::i32_or_zero")]
    pub chain_crc: i32,
    #[serde(default, deserialize_with = "json::i32_or_zero")]
    pub channel: i32,
    #[serde(default, deserialize_with = "json::i64_or_zero")]
    pub index: i64,
    #[serde(default, deserialize_with = "json::i32_or_zero")]
    pub magic: i32,
    #[serde(default, deserialize_with = "json::i64_or_zero")]
    pub pos: i64,
    #[serde(default, deserialize_with = "json::i32_or_zero")]
    pub size: i32,
    #[serde(default, deserialize_with = "json::i64_or_zero")]
    pub term: i64,
}

impl From<&Entry> for EntryJson {
    fn from(e: &Entry) -> Self {
        EntryJson {
            body: Some(e.body.clone()),
            body_crc: e.body_crc,
            chain_crc: e.chain_crc,
            channel: e.channel,
            index: e.index,
            magic: e.magic,
            pos: e.pos,
            size: e.size(),
            term: e.term,
        }
    }
}

impl EntryJson {
    /// The entry; a missing body is an empty one. `size` is derived from the
    /// body, so a stale `size` in the JSON cannot make replicas disagree.
    pub fn to_entry(&self) -> Entry {
        self.clone().into_entry()
    }

    /// [`to_entry`](Self::to_entry), taking the body instead of sharing it.
    pub fn into_entry(self) -> Entry {
        Entry {
            index: self.index,
            term: self.term,
            magic: self.magic,
            pos: self.pos,
            channel: self.channel,
            chain_crc: self.chain_crc,
            body_crc: self.body_crc,
            body: self.body.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: i64, body: Option<&[u8]>) -> EntryJson {
        EntryJson {
            body: body.map(Bytes::copy_from_slice),
            body_crc: -7,
            chain_crc: i32::MIN,
            channel: 3,
            index,
            magic: -26,
            pos: i64::MAX,
            size: 48 + body.map_or(0, <[u8]>::len) as i32,
            term: 5,
        }
    }

    proptest::proptest! {
        /// The leader writes the core's request directly: the same bytes as
        /// through the JSON structs and the generic sorted serialiser.
        #[test]
        fn core_push_json_is_the_generic_one(
            term in proptest::prelude::any::<i64>(),
            ids in proptest::collection::vec(proptest::option::of("[a-z0-9\"\u{e9}]{0,6}"), 4),
            entries in proptest::collection::vec(
                (proptest::prelude::any::<(i64, i64, i32, i32, i32, i32, i64)>(),
                 proptest::collection::vec(proptest::prelude::any::<u8>(), 0..70)),
                0..4,
            ),
            single in proptest::prelude::any::<bool>(),
            commit_index in proptest::prelude::any::<i64>(),
        ) {
            use crate::core::message as m;
            let mut entries: Vec<Entry> = entries
                .into_iter()
                .map(|((index, term, magic, channel, chain_crc, body_crc, pos), body)| Entry {
                    index, term, magic, pos, channel, chain_crc, body_crc, body: Bytes::from(body),
                })
                .collect();
            let entry = if single { entries.pop() } else { None };
            let r = m::PushEntryRequest {
                header: m::Header {
                    group: ids[0].clone(),
                    remote_id: ids[1].clone(),
                    local_id: ids[2].clone(),
                    leader_id: ids[3].clone(),
                    term,
                    code: 200,
                },
                kind: PushType::Append,
                commit_index,
                entry,
                batch_entry: entries,
            };
            let direct = push_request_json(&r);
            let generic = PushEntryRequest::from(&r).to_json_with_derived_generic();
            proptest::prop_assert_eq!(
                String::from_utf8_lossy(&direct),
                String::from_utf8_lossy(&generic)
            );
        }
    }

    #[test]
    fn direct_push_json_is_byte_for_byte_the_generic_one() {
        let bodies: [&[u8]; 5] = [b"", b"a", b"ab", b"abc", &[0xFF; 1000]];
        let mut cases = vec![PushEntryRequest::default()];
        for kind in [
            PushType::Append,
            PushType::Commit,
            PushType::Compare,
            PushType::Truncate,
        ] {
            cases.push(PushEntryRequest {
                base: Base {
                    code: 200,
                    group: Some("g\"1\\\u{1}\u{e9}".into()),
                    leader_id: Some("n0".into()),
                    local_id: Some("n1".into()),
                    remote_id: Some("n2".into()),
                    term: 9,
                },
                batch_entry: Vec::new(),
                commit_index: 41,
                entry: Some(entry(42, Some(b"hello"))),
                kind,
            });
        }
        cases.push(PushEntryRequest {
            base: Base {
                code: -1,
                group: None,
                leader_id: Some("x".into()),
                ..Base::default()
            },
            batch_entry: bodies
                .iter()
                .enumerate()
                .map(|(i, b)| entry(i as i64, Some(b)))
                .chain([entry(99, None)])
                .collect(),
            commit_index: -1,
            entry: Some(entry(7, None)),
            kind: PushType::Append,
        });
        for (i, req) in cases.iter().enumerate() {
            let direct = req.to_json_with_derived();
            let generic = req.to_json_with_derived_generic();
            assert_eq!(
                String::from_utf8_lossy(&direct),
                String::from_utf8_lossy(&generic),
                "case {i}"
            );
        }
    }
}
