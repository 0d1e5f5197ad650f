//! A single-pass reader for the PUSH request body in the shape DLedger
//! writers produce (ours and fastjson's): one object, keys DLedger knows,
//! plain integers, strings without escapes, Base64 bodies. It returns `None`
//! for anything else (null, decimals, numbers as text, escapes, unknown or
//! repeated keys, bad Base64...), and the caller then uses the serde path,
//! which stays the definition of what is accepted: whatever this reader
//! returns, the serde path returns too (property tests check it).
//!
//! A follower reads one PUSH per entry; this skips serde's buffering of the
//! flattened [`Base`] fields, the key-by-key dispatch and the UTF-8 check of
//! the Base64 text.

use bytes::Bytes;

use super::body::{EntryJson, PushEntryRequest, PushType};
use super::json::decode_base64_bytes;

/// The request, or `None` when the body is not in the plain shape.
pub fn parse_push(bytes: &[u8]) -> Option<PushEntryRequest> {
    let mut c = Cursor { b: bytes, i: 0 };
    let req = c.push()?;
    c.ws();
    (c.i == bytes.len()).then_some(req)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    /// JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// The next byte is `c` (consumed) or not (left).
    fn try_eat(&mut self, c: u8) -> bool {
        self.eat(c).is_some()
    }

    fn literal(&mut self, lit: &[u8]) -> Option<()> {
        self.ws();
        let end = self.i.checked_add(lit.len())?;
        (self.b.get(self.i..end)? == lit).then(|| self.i = end)
    }

    /// A string's raw bytes, with no escape in it.
    fn raw_str(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let rest = self.b.get(self.i..)?;
        let n = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[n] != b'"' {
            return None;
        }
        self.i += n + 1;
        Some(&rest[..n])
    }

    /// A string as serde_json would take it: valid UTF-8, no control
    /// character.
    fn text(&mut self) -> Option<&'a str> {
        let s = self.raw_str()?;
        if s.iter().any(|&c| c < 0x20) {
            return None;
        }
        std::str::from_utf8(s).ok()
    }

    /// A JSON integer of at most 18 digits (no overflow possible), not
    /// followed by a fraction or an exponent.
    fn int(&mut self) -> Option<i64> {
        self.ws();
        let neg = self.b.get(self.i) == Some(&b'-');
        if neg {
            self.i += 1;
        }
        let start = self.i;
        let mut v: i64 = 0;
        while let Some(&d) = self.b.get(self.i) {
            if !d.is_ascii_digit() {
                break;
            }
            if self.i - start == 18 {
                return None;
            }
            v = v * 10 + i64::from(d - b'0');
            self.i += 1;
        }
        let digits = self.i - start;
        // No digit, a leading zero ("01": invalid JSON), too long, or a
        // decimal / exponent follows.
        if digits == 0
            || (digits > 1 && self.b[start] == b'0')
            || matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        Some(if neg { -v } else { v })
    }

    fn int32(&mut self) -> Option<i32> {
        i32::try_from(self.int()?).ok()
    }

    /// The value of a getter-only key serde ignores: an integer or a boolean.
    fn ignored_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            _ => self.int().map(|_| ()),
        }
    }

    /// `{` key `:` value (`,` key `:` value)* `}` with every key one of
    /// `keys` and none twice, calling `field` with the key's position there.
    /// An unknown or repeated key is `None` (serde refuses a repeated field;
    /// the fallback gives its error).
    fn object(
        &mut self,
        keys: &[&[u8]],
        mut field: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        debug_assert!(keys.len() <= 32);
        let mut seen = 0u32;
        self.eat(b'{')?;
        if self.try_eat(b'}') {
            return Some(());
        }
        loop {
            let key = self.raw_str()?;
            let at = keys.iter().position(|k| *k == key)?;
            let bit = 1u32 << at;
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            self.eat(b':')?;
            field(self, at)?;
            if self.try_eat(b'}') {
                return Some(());
            }
            self.eat(b',')?;
        }
    }

    fn push(&mut self) -> Option<PushEntryRequest> {
        // Absent keys keep serde's defaults (`Base`: code 200, term -1).
        let mut r = PushEntryRequest::default();
        const KEYS: [&[u8]; 15] = [
            b"batch",
            b"batchEntry",
            b"code",
            b"commitIndex",
            b"count",
            b"entry",
            b"firstEntryIndex",
            b"group",
            b"lastEntryIndex",
            b"leaderId",
            b"localId",
            b"remoteId",
            b"term",
            b"totalSize",
            b"type",
        ];
        self.object(&KEYS, |c, at| {
            let b = &mut r.base;
            match at {
                0 | 4 | 6 | 8 | 13 => c.ignored_scalar()?,
                1 => r.batch_entry = c.entries()?,
                2 => b.code = c.int32()?,
                3 => r.commit_index = c.int()?,
                5 => r.entry = Some(c.entry()?),
                7 => b.group = Some(c.text()?.to_owned()),
                9 => b.leader_id = Some(c.text()?.to_owned()),
                10 => b.local_id = Some(c.text()?.to_owned()),
                11 => b.remote_id = Some(c.text()?.to_owned()),
                12 => b.term = c.int()?,
                _ => r.kind = PushType::from_java_name(c.text()?)?,
            }
            Some(())
        })?;
        Some(r)
    }

    fn entries(&mut self) -> Option<Vec<EntryJson>> {
        self.eat(b'[')?;
        let mut out = Vec::new();
        if self.try_eat(b']') {
            return Some(out);
        }
        loop {
            out.push(self.entry()?);
            if self.try_eat(b']') {
                return Some(out);
            }
            self.eat(b',')?;
        }
    }

    fn entry(&mut self) -> Option<EntryJson> {
        let mut e = EntryJson {
            body: None,
            body_crc: 0,
            chain_crc: 0,
            channel: 0,
            index: 0,
            magic: 0,
            pos: 0,
            size: 0,
            term: 0,
        };
        const KEYS: [&[u8]; 9] = [
            b"body",
            b"bodyCrc",
            b"chainCrc",
            b"channel",
            b"index",
            b"magic",
            b"pos",
            b"size",
            b"term",
        ];
        self.object(&KEYS, |c, at| {
            match at {
                0 => e.body = Some(Bytes::from(decode_base64_bytes(c.raw_str()?).ok()?)),
                1 => e.body_crc = c.int32()?,
                2 => e.chain_crc = c.int32()?,
                3 => e.channel = c.int32()?,
                4 => e.index = c.int()?,
                5 => e.magic = c.int32()?,
                6 => e.pos = c.int()?,
                7 => e.size = c.int32()?,
                _ => e.term = c.int()?,
            }
            Some(())
        })?;
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::body::{Base, Body};
    use proptest::prelude::*;

    fn serde_path(json: &[u8]) -> Result<PushEntryRequest, String> {
        serde_json::from_slice(json).map_err(|e| e.to_string())
    }

    /// The fast reader may decline, but what it returns is serde's answer.
    fn check(json: &[u8]) -> Option<PushEntryRequest> {
        let fast = parse_push(json);
        let slow = serde_path(json);
        if let Some(f) = &fast {
            assert_eq!(Ok(f), slow.as_ref(), "{}", String::from_utf8_lossy(json));
        }
        let both = PushEntryRequest::from_json(json).map_err(|e| e.to_string());
        assert_eq!(
            both.is_ok(),
            slow.is_ok(),
            "{}",
            String::from_utf8_lossy(json)
        );
        if let (Ok(a), Ok(b)) = (&both, &slow) {
            assert_eq!(a, b);
        }
        fast
    }

    #[test]
    fn plain_shapes_are_read_directly_others_fall_back() {
        let fast = [
            &br#"{}"#[..],
            br#" { "term" : 3 , "entry" : { "body" : "YQ" , "index" : -0 } } "#,
            br#"{"batch":false,"batchEntry":[],"code":200,"commitIndex":-1,"count":1,"entry":{"body":"aGk=","bodyCrc":0,"chainCrc":0,"channel":0,"index":5,"magic":-26,"pos":0,"size":50,"term":2},"firstEntryIndex":5,"group":"g","lastEntryIndex":5,"leaderId":"n0","localId":"n0","remoteId":"n1","term":2,"totalSize":0,"type":"APPEND"}"#,
            "{\"batchEntry\":[{\"index\":1},{\"index\":2,\"body\":\"\"}],\"type\":\"TRUNCATE\",\"group\":\"\u{e9}\"}"
                .as_bytes(),
            br#"{"code":-2147483648,"term":999999999999999999}"#,
        ];
        for json in fast {
            assert!(check(json).is_some(), "{}", String::from_utf8_lossy(json));
        }
        let slow = [
            &b""[..],
            b"null",
            b"[]",
            b"{",
            b"{}x",
            br#"{"term":"3"}"#,
            br#"{"term":3.0}"#,
            br#"{"term":1e2}"#,
            br#"{"term":01}"#,
            br#"{"term":-}"#,
            br#"{"term":9223372036854775807}"#,
            br#"{"term":null}"#,
            br#"{"term":true}"#,
            br#"{"code":2147483648}"#,
            br#"{"term":1,"term":2}"#,
            br#"{"type":1}"#,
            br#"{"type":"NOPE"}"#,
            br#"{"group":"a\"b"}"#,
            br#"{"group":"a\u0001"}"#,
            "{\"group\":\"a\u{1}\"}".as_bytes(),
            b"{\"group\":\"\xff\"}",
            br#"{"extra":1}"#,
            br#"{"b\u0061tch":true}"#,
            br#"{"batch":"yes"}"#,
            br#"{"entry":null}"#,
            br#"{"entry":{"body":null}}"#,
            br#"{"entry":{"body":"a\/8="}}"#,
            br#"{"entry":{"body":"YQ=a"}}"#,
            br#"{"entry":{"body":[1,2]}}"#,
            br#"{"entry":{"index":1,"index":1}}"#,
            br#"{"entry":{"other":1}}"#,
            br#"{"entry":[1]}"#,
            br#"{"batchEntry":null}"#,
            br#"{"batchEntry":[{"index":1},]}"#,
            br#"{"term":1,}"#,
        ];
        for json in slow {
            assert!(check(json).is_none(), "{}", String::from_utf8_lossy(json));
        }
    }

    #[test]
    fn javas_pushes_are_read_directly() {
        // The bodies Java DLedger writes (the golden file compat-tests checks
        // against Java) take the direct path.
        let golden = include_str!("../../tests/golden/protocol.tsv");
        let mut n = 0;
        for (name, json) in golden.lines().filter_map(|l| l.split_once('\t')) {
            if name.starts_with("PushEntryRequest.") {
                assert!(check(json.as_bytes()).is_some(), "{name}");
                n += 1;
            }
        }
        assert_eq!(n, 4);
    }

    fn text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[a-zA-Z0-9:._\\-\u{e9}\"\\\\\u{1}]{0,12}")
    }

    fn entry_json() -> impl Strategy<Value = EntryJson> {
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
            any::<(i32, i32, i32, i64, i32, i64, i32, i64)>(),
        )
            .prop_map(
                |(body, (bc, cc, ch, index, magic, pos, size, term))| EntryJson {
                    body: body.map(Bytes::from),
                    body_crc: bc,
                    chain_crc: cc,
                    channel: ch,
                    index,
                    magic,
                    pos,
                    size,
                    term,
                },
            )
    }

    proptest! {
        /// What we (and Java) write reads back the same either way, and
        /// directly unless a string needs an escape or a number 19 digits.
        #[test]
        fn written_pushes_read_back_identically(
            code in any::<i32>(),
            (group, leader_id, local_id, remote_id) in (text(), text(), text(), text()),
            term in any::<i64>(),
            commit_index in any::<i64>(),
            entry in proptest::option::of(entry_json()),
            batch_entry in proptest::collection::vec(entry_json(), 0..4),
            kind in prop::sample::select(vec![PushType::Append, PushType::Commit, PushType::Compare, PushType::Truncate]),
        ) {
            let req = PushEntryRequest {
                base: Base { code, group, leader_id, local_id, remote_id, term },
                batch_entry,
                commit_index,
                entry,
                kind,
            };
            let json = req.to_json_with_derived();
            let back = check(&json);
            let plain = !String::from_utf8_lossy(&json).contains(['\\'])
                && !json.windows(19).any(|w| w.iter().all(u8::is_ascii_digit));
            if plain {
                prop_assert_eq!(back.as_ref(), Some(&req));
            }
            prop_assert_eq!(PushEntryRequest::from_json(&json).ok(), Some(req));
        }

        /// Hand-made bodies with odd values, spacing and keys: the direct
        /// reader never answers differently from serde.
        #[test]
        fn odd_bodies_read_as_serde_reads_them(
            fields in proptest::collection::vec((
                prop::sample::select(vec![
                    "batch", "batchEntry", "code", "commitIndex", "count", "entry", "group",
                    "leaderId", "localId", "remoteId", "term", "totalSize", "type", "x", "b\\u0061tch",
                ]),
                prop::sample::select(vec![
                    "0", "-0", "7", "-7", "01", "1.5", "2e3", "-", "999999999999999999",
                    "9999999999999999999", "2147483648", "-2147483649", "true", "false", "null",
                    "\"5\"", "\"APPEND\"", "\"COMMIT\"", "\"n\\/0\"", "\"\u{e9}\"", "[]", "{}",
                    "[{}]", "[{\"index\":3,\"body\":\"YQ\"}]", "[{\"body\":\"YQ=\"},{\"size\":-1}]",
                    "{\"body\":\"+/8=\",\"term\":2}", "{\"body\":\"+\\/8=\"}", "{\"body\":\"Y\"}",
                    "{\"index\":1,\"index\":2}", "{\"body\":null}", "{\"pos\":\"1\"}",
                ]),
                prop::sample::select(vec!["", " ", "\n\t", "\r "]),
            ), 0..6),
        ) {
            let mut json = String::from("{");
            for (i, (k, v, space)) in fields.iter().enumerate() {
                if i > 0 {
                    json.push(',');
                }
                json.push_str(&format!("{space}\"{k}\"{space}:{space}{v}{space}"));
            }
            json.push('}');
            check(json.as_bytes());
        }
    }
}
