//! Decoding the REGISTER_BROKER body (`RegisterBrokerBody.decode` and
//! `DefaultRequestProcessor.registerBroker`).
//!
//! Three shapes:
//! * version < V3_0_11 (37): a bare `TopicConfigSerializeWrapper` JSON;
//! * otherwise `RegisterBrokerBody` JSON, or when the header says
//!   `compressed=true` the zlib stream below;
//! * an empty body: no topics, DataVersion all zero.
//!
//! ```text
//! compressed (zlib) stream, all ints big-endian i32:
//!   len | DataVersion JSON
//!   n   | n x (len | TopicConfig text "name r w perm filterType [attributesJson]")
//!   len | filterServerList JSON
//!   (version >= V5_0_0) m | m x (len | TopicQueueMappingInfo JSON)
//! ```
//!
//! [`decode`] keeps everything the body says; [`decode_for_routes`] keeps
//! only what the route table uses (per topic its name and four small
//! integers), which is what the server calls: at 100k topics the full
//! decode is some 25 MB of short-lived maps and strings per registration,
//! the compact one under 8 MB.

use std::collections::BTreeMap;
use std::io::Read;

use remoting::body::{
    from_fastjson, DataVersion, RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper,
};
use serde_json::Value;

/// `MQVersion.Version.V3_0_11`: from here on the body is a `RegisterBrokerBody`.
pub const V3_0_11: i32 = 37;
/// `MQVersion.Version.V5_0_0`: the compressed body carries static-topic mappings.
pub const V5_0_0: i32 = 413;
/// Largest inflated body accepted; a broker with 100k topics needs ~10 MiB.
const MAX_INFLATED: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot inflate: {0}")]
    Inflate(std::io::Error),
    #[error("inflated body exceeds {MAX_INFLATED} bytes")]
    TooLarge,
    #[error("truncated compressed body reading {0}")]
    Truncated(&'static str),
    #[error("bad topic config {0:?}")]
    BadTopicConfig(String),
}

/// What the route table needs from a registration body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegisterPayload {
    pub wrapper: TopicConfigSerializeWrapper,
    /// `None` for old brokers (Java leaves the filter server table alone).
    pub filter_server_list: Option<Vec<String>>,
    /// Static-topic `TopicQueueMappingInfo` objects by topic.
    pub mapping_info: BTreeMap<String, Value>,
}

/// One topic of a registration body, as much as the route table keeps of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicQueues {
    /// The topic's key in the body's `topicConfigTable`.
    pub key: Box<str>,
    /// `topicName` when it is set and differs from `key` (only a hand-made
    /// JSON body can do that); queues are registered under this name.
    pub renamed: Option<Box<str>>,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_sys_flag: i32,
}

impl TopicQueues {
    /// The name the topic's queues are registered under (Java's
    /// `topicConfig.getTopicName()`, the key when that is empty).
    pub fn name(&self) -> &str {
        self.renamed.as_deref().unwrap_or(&self.key)
    }
}

/// Topics per chunk of a [`TopicList`]: 1024 x 48 bytes, under glibc's
/// initial 128 KiB mmap threshold.
const TOPIC_CHUNK: usize = 1024;

/// The topics of a registration body in body order, stored in chunks so
/// that 100k topics are no single large block: glibc serves a large block
/// by mmap and, once one is freed, raises its mmap threshold to that size,
/// after which such blocks come from the heap and the resident size keeps
/// their high-water mark (measured at 100k topics x 10 brokers: 40 MiB
/// with one 4 MB vector and one 3 MB inflated buffer per registration, 24
/// MiB without).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicList {
    chunks: Vec<Vec<TopicQueues>>,
}

impl TopicList {
    pub fn push(&mut self, t: TopicQueues) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < TOPIC_CHUNK => c.push(t),
            _ => {
                let mut c = Vec::with_capacity(TOPIC_CHUNK);
                c.push(t);
                self.chunks.push(c);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &TopicQueues> {
        self.chunks.iter().flatten()
    }

    /// Whether the body's topic table has exactly one key (the list may
    /// repeat it: a map would hold it once).
    pub fn has_one_key(&self) -> bool {
        let mut it = self.iter();
        match it.next() {
            Some(first) => it.all(|t| t.key == first.key),
            None => false,
        }
    }
}

impl FromIterator<TopicQueues> for TopicList {
    fn from_iter<I: IntoIterator<Item = TopicQueues>>(iter: I) -> Self {
        let mut list = TopicList::default();
        for t in iter {
            list.push(t);
        }
        list
    }
}

/// A registration body as the route table needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoutePayload {
    pub data_version: DataVersion,
    /// In body order, duplicates included: applied in order, a later one
    /// overwrites an earlier one, as a map insert would.
    pub topics: TopicList,
    /// `None` for old brokers (Java leaves the filter server table alone).
    pub filter_server_list: Option<Vec<String>>,
    /// Static-topic `TopicQueueMappingInfo` objects by topic.
    pub mapping_info: BTreeMap<String, Value>,
}

impl From<RegisterPayload> for RoutePayload {
    fn from(p: RegisterPayload) -> Self {
        let topics = p
            .wrapper
            .topic_config_table
            .into_iter()
            .map(|(key, tc)| TopicQueues {
                renamed: (!tc.topic_name.is_empty() && tc.topic_name != key)
                    .then(|| tc.topic_name.into_boxed_str()),
                key: key.into_boxed_str(),
                read_queue_nums: tc.read_queue_nums,
                write_queue_nums: tc.write_queue_nums,
                perm: tc.perm,
                topic_sys_flag: tc.topic_sys_flag,
            })
            .collect();
        RoutePayload {
            data_version: p.wrapper.data_version,
            topics,
            filter_server_list: p.filter_server_list,
            mapping_info: p.mapping_info,
        }
    }
}

/// `UtilAll.crc32`: CRC32 masked to 31 bits.
pub fn body_crc32(body: &[u8]) -> i32 {
    (crc32fast::hash(body) & 0x7FFF_FFFF) as i32
}

/// Decodes the body of a REGISTER_BROKER request of protocol `version`.
pub fn decode(body: &[u8], compressed: bool, version: i32) -> Result<RegisterPayload, BodyError> {
    if version < V3_0_11 {
        if body.is_empty() {
            return Ok(RegisterPayload::default());
        }
        let wrapper: TopicConfigSerializeWrapper = from_fastjson(body)?;
        return Ok(RegisterPayload {
            wrapper,
            filter_server_list: None,
            mapping_info: BTreeMap::new(),
        });
    }
    if body.is_empty() {
        return Ok(RegisterPayload {
            filter_server_list: Some(Vec::new()),
            ..Default::default()
        });
    }
    if compressed {
        return decode_compressed(body, version);
    }
    match from_fastjson::<RegisterBrokerBody>(body) {
        Ok(b) => Ok(from_body(b)),
        // The Java broker sends `compressed=false` even when its
        // `compressedRegister` is on (BrokerOuterAPI). A zlib header cannot
        // start JSON, so try the compressed form before giving up.
        Err(e) if looks_like_zlib(body) => {
            decode_compressed(body, version).map_err(|_| BodyError::Json(e))
        }
        Err(e) => Err(e.into()),
    }
}

/// [`decode`] reduced to what the route table keeps. Compressed bodies are
/// read straight into the compact form; JSON ones are decoded in full and
/// then reduced.
pub fn decode_for_routes(
    body: &[u8],
    compressed: bool,
    version: i32,
) -> Result<RoutePayload, BodyError> {
    if version >= V3_0_11 && !body.is_empty() {
        if compressed {
            return decode_compressed_for_routes(body, version);
        }
        // Same sniffing as `decode`: a zlib header cannot start JSON.
        return match from_fastjson::<RegisterBrokerBody>(body) {
            Ok(b) => Ok(from_body(b).into()),
            Err(e) if looks_like_zlib(body) => {
                decode_compressed_for_routes(body, version).map_err(|_| BodyError::Json(e))
            }
            Err(e) => Err(e.into()),
        };
    }
    decode(body, compressed, version).map(RoutePayload::from)
}

fn looks_like_zlib(body: &[u8]) -> bool {
    body.len() >= 2
        && body[0] & 0x0F == 8
        && (u16::from(body[0]) << 8 | u16::from(body[1])) % 31 == 0
}

fn from_body(b: RegisterBrokerBody) -> RegisterPayload {
    let mut wrapper = b.topic_config_serialize_wrapper;
    let mapping_info = wrapper
        .topic_queue_mapping_info_map
        .take()
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    RegisterPayload {
        wrapper,
        filter_server_list: Some(b.filter_server_list),
        mapping_info,
    }
}

fn inflate(body: &[u8]) -> Result<Vec<u8>, BodyError> {
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(body)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut inflated)
        .map_err(BodyError::Inflate)?;
    if inflated.len() as u64 > MAX_INFLATED {
        return Err(BodyError::TooLarge);
    }
    Ok(inflated)
}

/// The parts after the topic configs: the filter server list, then (from
/// V5_0_0) the static-topic mappings.
fn decode_compressed_tail(
    r: &mut impl ChunkRead,
    version: i32,
) -> Result<(Vec<String>, BTreeMap<String, Value>), BodyError> {
    // Java logs a bad list and goes on with an empty one.
    let filter_server_list =
        serde_json::from_slice::<Option<Vec<String>>>(r.chunk("filter server list")?)
            .ok()
            .flatten()
            .unwrap_or_default();
    let mut mapping_info = BTreeMap::new();
    if version >= V5_0_0 {
        let m = r.int("mapping count")?;
        for _ in 0..m {
            let info: Value = from_fastjson(r.chunk("topic queue mapping")?)?;
            let topic = info
                .get("topic")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            mapping_info.insert(topic, info);
        }
    }
    Ok((filter_server_list, mapping_info))
}

fn decode_compressed(body: &[u8], version: i32) -> Result<RegisterPayload, BodyError> {
    let inflated = inflate(body)?;
    let mut r = Reader { buf: &inflated };
    let data_version: DataVersion = serde_json::from_slice(r.chunk("data version")?)?;
    let n = r.int("topic count")?;
    let mut wrapper = TopicConfigSerializeWrapper {
        data_version,
        ..Default::default()
    };
    for _ in 0..n {
        let text = r.chunk("topic config")?;
        let tc = decode_topic_config(&String::from_utf8_lossy(text))?;
        wrapper.topic_config_table.insert(tc.topic_name.clone(), tc);
    }
    let (filter_server_list, mapping_info) = decode_compressed_tail(&mut r, version)?;
    Ok(RegisterPayload {
        wrapper,
        filter_server_list: Some(filter_server_list),
        mapping_info,
    })
}

/// Reads the compressed stream as it inflates, never holding all of it:
/// see [`TopicList`] for why large blocks are avoided.
fn decode_compressed_for_routes(body: &[u8], version: i32) -> Result<RoutePayload, BodyError> {
    let mut r = StreamReader {
        r: flate2::read::ZlibDecoder::new(body).take(MAX_INFLATED + 1),
        buf: Vec::new(),
    };
    let data_version: DataVersion = serde_json::from_slice(r.chunk("data version")?)?;
    let n = r.int("topic count")?;
    let mut topics = TopicList::default();
    for _ in 0..n {
        let text = r.chunk("topic config")?;
        topics.push(decode_topic_queues(&String::from_utf8_lossy(text))?);
    }
    let (filter_server_list, mapping_info) = decode_compressed_tail(&mut r, version)?;
    r.finish()?;
    Ok(RoutePayload {
        data_version,
        topics,
        filter_server_list: Some(filter_server_list),
        mapping_info,
    })
}

/// [`Reader`] over a stream that is still inflating, with the same
/// outcomes as inflating all first: a stream that inflates to more than
/// `MAX_INFLATED` bytes or is corrupt anywhere is an error even when the
/// part read parses.
struct StreamReader<R> {
    /// Inflates at most `MAX_INFLATED + 1` bytes.
    r: std::io::Take<R>,
    /// The last chunk read.
    buf: Vec<u8>,
}

impl<R: Read> StreamReader<R> {
    /// Inflates the rest, which must be sound and within the limit.
    fn finish(mut self) -> Result<(), BodyError> {
        std::io::copy(&mut self.r, &mut std::io::sink()).map_err(BodyError::Inflate)?;
        if self.r.limit() == 0 {
            return Err(BodyError::TooLarge);
        }
        Ok(())
    }

    fn error(&self, e: Option<std::io::Error>, what: &'static str) -> BodyError {
        if self.r.limit() == 0 {
            return BodyError::TooLarge;
        }
        match e {
            Some(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => BodyError::Inflate(e),
            _ => BodyError::Truncated(what),
        }
    }
}

impl<R: Read> ChunkRead for StreamReader<R> {
    fn int(&mut self, what: &'static str) -> Result<usize, BodyError> {
        let mut head = [0u8; 4];
        if let Err(e) = self.r.read_exact(&mut head) {
            return Err(self.error(Some(e), what));
        }
        // A negative length or count is as broken as a short read.
        usize::try_from(i32::from_be_bytes(head)).map_err(|_| BodyError::Truncated(what))
    }

    fn chunk(&mut self, what: &'static str) -> Result<&[u8], BodyError> {
        let len = self.int(what)?;
        self.buf.clear();
        // Not reserved up front: a corrupt length may be anything.
        let read = (&mut self.r).take(len as u64).read_to_end(&mut self.buf);
        match read {
            Ok(n) if n == len => Ok(&self.buf),
            Ok(_) => Err(self.error(None, what)),
            Err(e) => Err(self.error(Some(e), what)),
        }
    }
}

/// [`decode_topic_config`] without the parts the route table ignores (the
/// attributes, which Java skips when unparsable anyway): the first five
/// fields, checked the same way.
fn decode_topic_queues(text: &str) -> Result<TopicQueues, BodyError> {
    let bad = || BodyError::BadTopicConfig(text.to_owned());
    let mut parts = text.split(' ');
    let mut next = || parts.next().ok_or_else(bad);
    let name = next()?;
    let int = |s: &str| s.parse::<i32>().map_err(|_| bad());
    let read_queue_nums = int(next()?)?;
    let write_queue_nums = int(next()?)?;
    let perm = int(next()?)?;
    let filter = next()?;
    if filter != "SINGLE_TAG" && filter != "MULTI_TAG" {
        return Err(bad());
    }
    Ok(TopicQueues {
        key: name.into(),
        renamed: None,
        read_queue_nums,
        write_queue_nums,
        perm,
        topic_sys_flag: 0,
    })
}

/// The length-prefixed reads of the compressed layout.
trait ChunkRead {
    /// A big-endian i32 length or count.
    fn int(&mut self, what: &'static str) -> Result<usize, BodyError>;
    /// A length and that many bytes.
    fn chunk(&mut self, what: &'static str) -> Result<&[u8], BodyError>;
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl ChunkRead for Reader<'_> {
    fn int(&mut self, what: &'static str) -> Result<usize, BodyError> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<4>()
            .ok_or(BodyError::Truncated(what))?;
        self.buf = rest;
        // A negative length or count is as broken as a short read.
        usize::try_from(i32::from_be_bytes(*head)).map_err(|_| BodyError::Truncated(what))
    }

    fn chunk(&mut self, what: &'static str) -> Result<&[u8], BodyError> {
        let len = self.int(what)?;
        if len > self.buf.len() {
            return Err(BodyError::Truncated(what));
        }
        let (chunk, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(chunk)
    }
}

/// `TopicConfig.decode`: fields separated by single spaces; Java's
/// `String.split` drops trailing empty parts, and an unparsable attributes
/// part is ignored.
pub fn decode_topic_config(text: &str) -> Result<TopicConfig, BodyError> {
    let bad = || BodyError::BadTopicConfig(text.to_owned());
    let mut parts: Vec<&str> = text.split(' ').collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    if parts.len() < 5 {
        return Err(bad());
    }
    let int = |s: &str| s.parse::<i32>().map_err(|_| bad());
    let filter = parts[4];
    if filter != "SINGLE_TAG" && filter != "MULTI_TAG" {
        return Err(bad());
    }
    let mut tc = TopicConfig {
        topic_name: parts[0].to_owned(),
        read_queue_nums: int(parts[1])?,
        write_queue_nums: int(parts[2])?,
        perm: int(parts[3])?,
        topic_filter_type: filter.to_owned(),
        ..Default::default()
    };
    if let Some(attrs) = parts.get(5) {
        if let Ok(map) = serde_json::from_str(attrs) {
            tc.attributes = map;
        }
    }
    Ok(tc)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// Encodes like Java's `RegisterBrokerBody.encode(true)`.
    pub(crate) fn encode_compressed(
        dv: &DataVersion,
        topics: &[TopicConfig],
        filters: &[&str],
        mappings: Option<&[Value]>,
    ) -> Vec<u8> {
        let mut raw = Vec::new();
        let chunk = |raw: &mut Vec<u8>, bytes: &[u8]| {
            raw.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            raw.extend_from_slice(bytes);
        };
        chunk(&mut raw, &serde_json::to_vec(dv).unwrap());
        raw.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for t in topics {
            let attrs = serde_json::to_string(&t.attributes).unwrap();
            let text = format!(
                "{} {} {} {} {} {}",
                t.topic_name,
                t.read_queue_nums,
                t.write_queue_nums,
                t.perm,
                t.topic_filter_type,
                attrs
            );
            chunk(&mut raw, text.as_bytes());
        }
        chunk(&mut raw, &serde_json::to_vec(filters).unwrap());
        if let Some(ms) = mappings {
            raw.extend_from_slice(&(ms.len() as i32).to_be_bytes());
            for m in ms {
                chunk(&mut raw, &serde_json::to_vec(m).unwrap());
            }
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&raw).unwrap();
        z.finish().unwrap()
    }

    fn dv(counter: i64) -> DataVersion {
        DataVersion {
            counter,
            state_version: 0,
            timestamp: 1700000000000,
        }
    }

    #[test]
    fn java_json_body() {
        // As a 5.3 Java broker sends it (fastjson, keys sorted, mapping maps empty).
        let body = br#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1700000000000},"mappingDataVersion":{"counter":0,"stateVersion":0,"timestamp":1700000000000},"topicConfigTable":{"T":{"attributes":{},"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"T","topicSysFlag":0,"writeQueueNums":4}},"topicQueueMappingDetailMap":{},"topicQueueMappingInfoMap":{}}}"#;
        let p = decode(body, false, 479).unwrap();
        assert_eq!(p.wrapper.data_version, dv(3));
        assert_eq!(p.wrapper.topic_config_table["T"].read_queue_nums, 4);
        assert_eq!(p.filter_server_list, Some(vec![]));
        assert!(p.mapping_info.is_empty());
    }

    #[test]
    fn old_brokers_send_a_bare_wrapper() {
        let body = br#"{"dataVersion":{"counter":1,"timestamp":5},"topicConfigTable":{"T":{"topicName":"T","readQueueNums":2,"writeQueueNums":2,"perm":6}}}"#;
        let p = decode(body, false, 36).unwrap();
        assert_eq!(p.wrapper.topic_config_table["T"].write_queue_nums, 2);
        assert_eq!(p.filter_server_list, None);
        // The same bytes are not a RegisterBrokerBody: no topics.
        let p = decode(body, false, 37).unwrap();
        assert!(p.wrapper.topic_config_table.is_empty());
    }

    #[test]
    fn compressed_body_with_and_without_mappings() {
        let mut t = TopicConfig::new("T", 8, 8, 6);
        t.attributes.insert("+message.type".into(), "NORMAL".into());
        let mapping = serde_json::json!({"topic":"S","bname":"b","totalQueues":2,"epoch":1,"dirty":false,"currIdMap":{"0":0}});
        let body = encode_compressed(
            &dv(7),
            &[t.clone(), TopicConfig::new("U", 1, 1, 4)],
            &["f:1"],
            Some(&[mapping]),
        );
        let p = decode(&body, true, 479).unwrap();
        assert_eq!(p.wrapper.data_version, dv(7));
        assert_eq!(p.wrapper.topic_config_table["T"], t);
        assert_eq!(p.wrapper.topic_config_table["U"].perm, 4);
        assert_eq!(p.filter_server_list, Some(vec!["f:1".to_owned()]));
        assert_eq!(p.mapping_info["S"]["bname"], "b");

        let old = encode_compressed(&dv(7), &[t], &[], None);
        assert_eq!(
            decode(&old, true, 400)
                .unwrap()
                .wrapper
                .topic_config_table
                .len(),
            1
        );
        // A 5.x reader needs the mapping count: a short stream is an error.
        assert!(matches!(
            decode(&old, true, 479),
            Err(BodyError::Truncated(_))
        ));
        // The Java broker's compressed body under `compressed=false`.
        let body = encode_compressed(&dv(1), &[], &[], Some(&[]));
        assert_eq!(
            decode(&body, false, 479).unwrap().wrapper.data_version,
            dv(1)
        );
    }

    #[test]
    fn topic_config_text_form() {
        let t = decode_topic_config("T 4 2 6 MULTI_TAG ").unwrap();
        assert_eq!((t.read_queue_nums, t.write_queue_nums, t.perm), (4, 2, 6));
        assert_eq!(t.topic_filter_type, "MULTI_TAG");
        assert!(decode_topic_config("T 4 2 6 SINGLE_TAG not-json")
            .unwrap()
            .attributes
            .is_empty());
        assert!(decode_topic_config("T 4 2 6").is_err());
        assert!(decode_topic_config("T x 2 6 SINGLE_TAG").is_err());
        assert!(decode_topic_config("T 4 2 6 OTHER").is_err());
        assert!(decode_topic_config("T  4 2 6 SINGLE_TAG").is_err());
    }

    #[test]
    fn junk_never_panics() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1]).unwrap();
        let junk = [
            b"".to_vec(),
            b"{".to_vec(),
            b"null".to_vec(),
            b"[1,2]".to_vec(),
            vec![0x78, 0x9c, 1, 2, 3],
            z.finish().unwrap(),
        ];
        for body in &junk {
            for compressed in [false, true] {
                for version in [0, 37, 479] {
                    assert_route_decode_agrees(body, compressed, version);
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn random_bodies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
                                     compressed: bool, version in 0i32..600) {
            assert_route_decode_agrees(&body, compressed, version);
        }

        /// Random bytes behind a valid zlib stream reach the length-prefixed parser.
        #[test]
        fn random_inflated_streams_never_panic(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(&raw).unwrap();
            let body = z.finish().unwrap();
            assert_route_decode_agrees(&body, true, 479);
        }
    }

    /// The topics as a map would hold them: by key, the last one kept.
    fn normalized(mut p: RoutePayload) -> RoutePayload {
        let by_key: BTreeMap<Box<str>, TopicQueues> = p
            .topics
            .iter()
            .map(|t| (t.key.clone(), t.clone()))
            .collect();
        p.topics = by_key.into_values().collect();
        p
    }

    /// The compact decode keeps exactly what the full one would give the
    /// route table, and fails exactly when it fails.
    fn assert_route_decode_agrees(body: &[u8], compressed: bool, version: i32) {
        let full = decode(body, compressed, version).map(RoutePayload::from);
        let compact = decode_for_routes(body, compressed, version);
        match (full, compact) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.topics.has_one_key(), b.topics.has_one_key());
                assert_eq!(normalized(a), normalized(b))
            }
            (Err(_), Err(_)) => {}
            (a, b) => panic!("full {a:?} vs compact {b:?}"),
        }
    }

    #[test]
    fn route_decode_of_compressed_bodies() {
        let mut t = TopicConfig::new("T", 8, 4, 6);
        t.attributes.insert("+message.type".into(), "NORMAL".into());
        let later = TopicConfig::new("T", 2, 2, 4);
        let body = encode_compressed(
            &dv(3),
            &[t, TopicConfig::new("A", 1, 1, 4), later],
            &[],
            Some(&[]),
        );
        let p = decode_for_routes(&body, true, 479).unwrap();
        let keys: Vec<&str> = p.topics.iter().map(|t| &*t.key).collect();
        assert_eq!(keys, ["T", "A", "T"], "body order");
        assert!(!p.topics.has_one_key());
        let p = normalized(p);
        let last = p.topics.iter().last().unwrap();
        assert_eq!(
            (last.read_queue_nums, last.perm),
            (2, 4),
            "the later duplicate wins"
        );
        assert_eq!(p.data_version, dv(3));
        assert_route_decode_agrees(&body, true, 479);
        assert_route_decode_agrees(&body, false, 479);
        assert_route_decode_agrees(&body, true, 400);
    }

    #[test]
    fn route_decode_of_json_bodies_uses_the_topic_name() {
        let body = br#"{"filterServerList":["f"],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3},"topicConfigTable":{"K":{"perm":6,"readQueueNums":4,"topicName":"N","topicSysFlag":1,"writeQueueNums":2},"E":{"readQueueNums":1,"writeQueueNums":1}}}}"#;
        let p = decode_for_routes(body, false, 479).unwrap();
        let topics: Vec<&TopicQueues> = p.topics.iter().collect();
        assert_eq!(topics.len(), 2);
        assert_eq!((&*topics[0].key, topics[0].name()), ("E", "E"));
        assert_eq!((&*topics[1].key, topics[1].name()), ("K", "N"));
        assert_eq!(topics[1].topic_sys_flag, 1);
        assert_eq!(p.filter_server_list, Some(vec!["f".to_owned()]));
        for version in [0, 36, 37, 479] {
            assert_route_decode_agrees(body, false, version);
            assert_route_decode_agrees(b"", false, version);
        }
    }

    proptest::proptest! {
        /// Topic lines made of the pieces that matter (names, numbers,
        /// filter types, spaces, junk) decode alike both ways.
        #[test]
        fn route_decode_agrees_on_topic_lines(
            lines in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::sample::select(vec!["T", "U", "4", "-1", "x", "", "SINGLE_TAG", "MULTI_TAG", "{}", "{bad"]),
                    0..8,
                ),
                0..6,
            )
        ) {
            let mut raw = Vec::new();
            let chunk = |raw: &mut Vec<u8>, b: &[u8]| {
                raw.extend_from_slice(&(b.len() as i32).to_be_bytes());
                raw.extend_from_slice(b);
            };
            chunk(&mut raw, br#"{"counter":1}"#);
            raw.extend_from_slice(&(lines.len() as i32).to_be_bytes());
            for parts in &lines {
                chunk(&mut raw, parts.join(" ").as_bytes());
            }
            chunk(&mut raw, b"[]");
            raw.extend_from_slice(&0i32.to_be_bytes());
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(&raw).unwrap();
            assert_route_decode_agrees(&z.finish().unwrap(), true, 479);
        }
    }

    #[test]
    fn crc_is_masked_to_31_bits() {
        assert_eq!(body_crc32(b""), 0);
        assert_eq!(
            body_crc32(b"123456789"),
            (0xCBF4_3926u32 & 0x7FFF_FFFF) as i32
        );
    }
}
