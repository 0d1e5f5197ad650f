//! Batch bodies (SEND_BATCH_MESSAGE): the producer's framing of several
//! messages, split into items before each is encoded as a record.

use super::RecordError;

/// One message of a batch body (docs/protocol/messages.md §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem<'a> {
    pub flag: i32,
    pub body: &'a [u8],
    /// Valid UTF-8 ([`decode_batch`] checks it).
    pub properties: &'a [u8],
}

/// Split a SEND_BATCH_MESSAGE body, one item per record:
///
/// ```text
/// int32 totalSize | int32 magic (0) | int32 bodyCrc (0) | int32 flag
/// int32 bodyLen | body | int16 propLen | properties
/// ```
///
/// Each record must fit in the rest of `buf` and hold its body and
/// properties within its `totalSize`; bytes past the properties, up to
/// `totalSize`, are skipped. Magic and CRC are not checked (Java does not
/// either); properties must be UTF-8. The first bad record is the error.
pub fn decode_batch(buf: &[u8]) -> Result<Vec<BatchItem<'_>>, RecordError> {
    let mut rest = buf;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 20 {
            return Err(RecordError::BatchHeader(rest.len()));
        }
        let total = be_i32(rest, 0);
        if total < 22 || total as usize > rest.len() {
            return Err(RecordError::BatchSize(total));
        }
        let (rec, next) = rest.split_at(total as usize);
        rest = next;
        let flag = be_i32(rec, 12);
        let body_len = be_i32(rec, 16);
        let rec = &rec[20..];
        if body_len < 0 || body_len as usize > rec.len() {
            return Err(RecordError::BatchBodyLen(body_len));
        }
        let (body, rec) = rec.split_at(body_len as usize);
        if rec.len() < 2 {
            return Err(RecordError::BatchPropertiesTruncated);
        }
        let props_len = i16::from_be_bytes([rec[0], rec[1]]);
        let rec = &rec[2..];
        if props_len < 0 || props_len as usize > rec.len() {
            return Err(RecordError::BatchPropertiesLen(props_len));
        }
        let properties = &rec[..props_len as usize];
        if std::str::from_utf8(properties).is_err() {
            return Err(RecordError::BatchPropertiesUtf8);
        }
        out.push(BatchItem {
            flag,
            body,
            properties,
        });
    }
    Ok(out)
}

fn be_i32(b: &[u8], pos: usize) -> i32 {
    i32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]])
}

/// Encode a batch body (what producers send); used by tests and tools.
pub fn encode_batch<P: AsRef<[u8]>, B: AsRef<[u8]>>(items: &[(i32, B, P)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (flag, body, props) in items {
        let (body, props) = (body.as_ref(), props.as_ref());
        let total = 4 + 4 + 4 + 4 + 4 + body.len() + 2 + props.len();
        out.extend_from_slice(&(total as i32).to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&flag.to_be_bytes());
        out.extend_from_slice(&(body.len() as i32).to_be_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&(props.len() as i16).to_be_bytes());
        out.extend_from_slice(props);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::record::*;

    #[test]
    fn batch_round_trip() {
        let body = encode_batch(&[
            (1, &b"a"[..], &b"K\x01v\x02"[..]),
            (2, &b"bc"[..], &b""[..]),
        ]);
        let items = decode_batch(&body).expect("batch");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].flag, 1);
        assert_eq!(items[0].body, b"a");
        assert_eq!(items[0].properties, b"K\x01v\x02");
        assert_eq!(items[1].body, b"bc");
        assert!(decode_batch(&body[..body.len() - 1]).is_err());
    }

    #[test]
    fn batch_round_trip_and_junk() {
        let entries: [(i32, &[u8], &[u8]); 2] = [
            (1, b"hello", "UNIQ_KEY\u{1}X\u{2}".as_bytes()),
            (0, b"", b""),
        ];
        let bytes = encode_batch(&entries);
        let want = |items: &[(i32, &'static [u8], &'static [u8])]| {
            items
                .iter()
                .map(|&(flag, body, properties)| BatchItem {
                    flag,
                    body,
                    properties,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(decode_batch(&bytes).expect("batch"), want(&entries));
        let first_len = encode_batch(&entries[..1]).len();
        for cut in 1..bytes.len() {
            let r = decode_batch(&bytes[..cut]);
            if cut == first_len {
                assert_eq!(r.expect("first record"), want(&entries[..1]));
            } else {
                assert!(r.is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn batch_junk_is_named() {
        let one = encode_batch(&[(0, &b"ab"[..], &b"K\x01v\x02"[..])]);
        assert_eq!(decode_batch(&one[..19]), Err(RecordError::BatchHeader(19)));
        let mut bad = one.clone();
        bad[..4].copy_from_slice(&21i32.to_be_bytes());
        assert_eq!(decode_batch(&bad), Err(RecordError::BatchSize(21)));
        let mut bad = one.clone();
        bad[16..20].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(decode_batch(&bad), Err(RecordError::BatchBodyLen(-1)));
        let mut bad = one.clone();
        bad[22..24].copy_from_slice(&9i16.to_be_bytes());
        assert_eq!(decode_batch(&bad), Err(RecordError::BatchPropertiesLen(9)));
        let mut bad = one.clone();
        bad[24] = 0xFF;
        assert_eq!(decode_batch(&bad), Err(RecordError::BatchPropertiesUtf8));
        // Bytes past the properties but inside totalSize are skipped.
        let mut padded = one.clone();
        padded[..4].copy_from_slice(&(one.len() as i32 + 3).to_be_bytes());
        padded.extend_from_slice(&[9, 9, 9]);
        let items = decode_batch(&padded).expect("padded");
        assert_eq!((items.len(), items[0].body), (1, &b"ab"[..]));
        assert_eq!(
            RecordError::BatchSize(21).to_string(),
            "bad batch record size 21"
        );
    }
}
