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

fn decode_compressed(body: &[u8], version: i32) -> Result<RegisterPayload, BodyError> {
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(body)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut inflated)
        .map_err(BodyError::Inflate)?;
    if inflated.len() as u64 > MAX_INFLATED {
        return Err(BodyError::TooLarge);
    }
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
    Ok(RegisterPayload {
        wrapper,
        filter_server_list: Some(filter_server_list),
        mapping_info,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn int(&mut self, what: &'static str) -> Result<usize, BodyError> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<4>()
            .ok_or(BodyError::Truncated(what))?;
        self.buf = rest;
        // A negative length or count is as broken as a short read.
        usize::try_from(i32::from_be_bytes(*head)).map_err(|_| BodyError::Truncated(what))
    }

    fn chunk(&mut self, what: &'static str) -> Result<&'a [u8], BodyError> {
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
                    let _ = decode(body, compressed, version);
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn random_bodies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
                                     compressed: bool, version in 0i32..600) {
            let _ = decode(&body, compressed, version);
        }

        /// Random bytes behind a valid zlib stream reach the length-prefixed parser.
        #[test]
        fn random_inflated_streams_never_panic(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(&raw).unwrap();
            let body = z.finish().unwrap();
            let _ = decode(&body, true, 479);
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
