//! Encoding a record: its length and host flags (`CommitLog.calMsgLength`)
//! and the bytes themselves from a [`RecordHeader`] and the variable parts.

use std::net::{IpAddr, SocketAddr};

use super::{
    crc32, properties, RecordError, BORNHOST_V6_FLAG, MAX_V1_TOPIC_LEN, MESSAGE_MAGIC_CODE_V1,
    MESSAGE_MAGIC_CODE_V2, POS_BORN_HOST, STOREHOSTADDRESS_V6_FLAG,
};

fn host_len(sys_flag: i32, v6_flag: i32) -> usize {
    if sys_flag & v6_flag != 0 {
        20
    } else {
        8
    }
}

/// Offset of STORETIMESTAMP for a record with this sysFlag.
pub fn store_timestamp_pos(sys_flag: i32) -> usize {
    POS_BORN_HOST + host_len(sys_flag, BORNHOST_V6_FLAG)
}

/// sysFlag with the IPv6 host bits set from the addresses, as the Java broker
/// does before encoding.
pub fn with_host_flags(sys_flag: i32, born_host: &SocketAddr, store_host: &SocketAddr) -> i32 {
    let mut f = sys_flag & !(BORNHOST_V6_FLAG | STOREHOSTADDRESS_V6_FLAG);
    if born_host.is_ipv6() {
        f |= BORNHOST_V6_FLAG;
    }
    if store_host.is_ipv6() {
        f |= STOREHOSTADDRESS_V6_FLAG;
    }
    f
}

/// Length of a record with these field sizes (`CommitLog.calMsgLength`).
pub fn record_len(sys_flag: i32, body_len: usize, topic_len: usize, props_len: usize) -> usize {
    let topic_len_size = if topic_len > MAX_V1_TOPIC_LEN { 2 } else { 1 };
    4 + 4
        + 4
        + 4
        + 4
        + 8
        + 8
        + 4
        + 8
        + host_len(sys_flag, BORNHOST_V6_FLAG)
        + 8
        + host_len(sys_flag, STOREHOSTADDRESS_V6_FLAG)
        + 4
        + 8
        + 4
        + body_len
        + topic_len_size
        + topic_len
        + 2
        + props_len
}

/// Everything in a record except body, topic and properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub physical_offset: i64,
    /// The IPv6 host bits are recomputed from the addresses.
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
}

fn put_host(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&i32::from(addr.port()).to_be_bytes());
}

/// Append one record to `out`; returns its length. Body CRC is computed here.
pub fn encode_into(
    out: &mut Vec<u8>,
    h: &RecordHeader,
    body: &[u8],
    topic: &str,
    properties: &[u8],
) -> Result<usize, RecordError> {
    if topic.len() > i16::MAX as usize {
        return Err(RecordError::TopicTooLong(topic.len()));
    }
    if properties.len() > properties::MAX_PROPERTIES_LEN {
        return Err(RecordError::PropertiesTooLong(properties.len()));
    }
    let sys_flag = with_host_flags(h.sys_flag, &h.born_host, &h.store_host);
    let len = record_len(sys_flag, body.len(), topic.len(), properties.len());
    let v2 = topic.len() > MAX_V1_TOPIC_LEN;
    out.reserve(len);
    let start = out.len();
    out.extend_from_slice(&(len as i32).to_be_bytes());
    let magic = if v2 {
        MESSAGE_MAGIC_CODE_V2
    } else {
        MESSAGE_MAGIC_CODE_V1
    };
    out.extend_from_slice(&magic.to_be_bytes());
    out.extend_from_slice(&crc32(body).to_be_bytes());
    out.extend_from_slice(&h.queue_id.to_be_bytes());
    out.extend_from_slice(&h.flag.to_be_bytes());
    out.extend_from_slice(&h.queue_offset.to_be_bytes());
    out.extend_from_slice(&h.physical_offset.to_be_bytes());
    out.extend_from_slice(&sys_flag.to_be_bytes());
    out.extend_from_slice(&h.born_timestamp.to_be_bytes());
    put_host(out, &h.born_host);
    out.extend_from_slice(&h.store_timestamp.to_be_bytes());
    put_host(out, &h.store_host);
    out.extend_from_slice(&h.reconsume_times.to_be_bytes());
    out.extend_from_slice(&h.prepared_transaction_offset.to_be_bytes());
    out.extend_from_slice(&(body.len() as i32).to_be_bytes());
    out.extend_from_slice(body);
    if v2 {
        out.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    } else {
        out.push(topic.len() as u8);
    }
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(&(properties.len() as i16).to_be_bytes());
    out.extend_from_slice(properties);
    debug_assert_eq!(out.len() - start, len);
    Ok(len)
}

#[cfg(test)]
mod tests {
    use crate::record::*;

    use crate::record::test_header as header;

    #[test]
    fn encode_matches_hand_computed_bytes() {
        let mut out = Vec::new();
        let len = encode_into(&mut out, &header(), b"hi", "T", b"A\x01b\x02").expect("encode");
        assert_eq!(len, 91 + 2 + 1 + 4);
        let mut want: Vec<u8> = Vec::new();
        want.extend_from_slice(&98i32.to_be_bytes());
        want.extend_from_slice(&[0xDA, 0xA3, 0x20, 0xA7]);
        want.extend_from_slice(&crc32(b"hi").to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 3]); // queue id
        want.extend_from_slice(&[0, 0, 0, 7]); // flag
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 5]); // queue offset
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x11, 0x22]); // physical
        want.extend_from_slice(&[0, 0, 0, 0]); // sysflag
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // born ts
        want.extend_from_slice(&[10, 0, 0, 1, 0, 0, 0x15, 0xB3]); // born host
        want.extend_from_slice(&[0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]);
        want.extend_from_slice(&[10, 0, 0, 5, 0, 0, 0x2A, 0x9F]); // store host
        want.extend_from_slice(&[0, 0, 0, 2]); // reconsume
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9]); // prepared tx
        want.extend_from_slice(&[0, 0, 0, 2, b'h', b'i']);
        want.extend_from_slice(&[1, b'T']);
        want.extend_from_slice(&[0, 4, b'A', 1, b'b', 2]);
        assert_eq!(out, want);
        // crc32("hi") = 0xD8932AAC, masked = 0x58932AAC
        assert_eq!(crc32(b"hi"), 0x5893_2AAC);

        let v = decode(&out).expect("decode");
        assert_eq!(v.header(), header());
        assert_eq!(v.body, b"hi");
        assert_eq!(v.topic, "T");
        assert_eq!(v.properties, "A\u{1}b\u{2}");
        assert!(v.body_crc_ok());
        assert_eq!(store_timestamp_pos(v.sys_flag), 56);
        assert!(matches!(scan(&out, 0x1122, true), ScanItem::Record(_)));
        assert!(matches!(
            scan(&out, 0, true),
            ScanItem::Invalid(RecordError::PhysicalOffset { .. })
        ));
    }

    #[test]
    fn ipv6_hosts_and_v2_topic() {
        let mut h = header();
        h.born_host = "[::1]:1234".parse().expect("addr");
        h.store_host = "[fe80::1]:10911".parse().expect("addr");
        let topic = "t".repeat(200);
        let mut out = Vec::new();
        let len = encode_into(&mut out, &h, b"x", &topic, b"").expect("encode");
        assert_eq!(len, 91 + 12 + 12 + 1 + 1 + 200);
        let v = decode(&out).expect("decode");
        assert_eq!(v.magic_code, MESSAGE_MAGIC_CODE_V2);
        assert_eq!(v.sys_flag, BORNHOST_V6_FLAG | STOREHOSTADDRESS_V6_FLAG);
        assert_eq!(v.born_host, h.born_host);
        assert_eq!(v.store_host, h.store_host);
        assert_eq!(v.topic, topic);
        assert_eq!(store_timestamp_pos(v.sys_flag), 68);
        assert_eq!(
            &out[68..76],
            &h.store_timestamp.to_be_bytes(),
            "store timestamp at 68 with an IPv6 born host"
        );
    }
}
