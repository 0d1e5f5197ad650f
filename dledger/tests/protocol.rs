//! DLedger JSON bodies against vectors printed by the official DLedger
//! 0.3.1.2 jar (`compat.DLedgerWire golden`, fastjson 1.2.83 as shipped with
//! RocketMQ 5.3.3). `compat-tests/tests/dledger_java_group.rs` re-checks the
//! same cases against the live jar in both directions.

use std::collections::BTreeMap;

use bytes::Bytes;
use dledger::protocol::*;

/// (case name, JSON exactly as Java writes it), from `golden/protocol.tsv`.
fn golden(name: &str) -> String {
    let text = include_str!("golden/protocol.tsv");
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(n, _)| *n == name)
        .map(|(_, j)| j.to_owned())
        .unwrap_or_else(|| panic!("no golden case {name}"))
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn ids(local: &str, remote: &str, leader: &str) -> Base {
    Base {
        group: s("g1"),
        local_id: s(local),
        remote_id: s(remote),
        leader_id: s(leader),
        ..Base::default()
    }
}

fn entry(index: i64, term: i64, pos: i64, body: &str) -> EntryJson {
    EntryJson {
        body: Some(Bytes::copy_from_slice(body.as_bytes())),
        body_crc: 0,
        chain_crc: 0,
        channel: 0,
        index,
        magic: 1,
        pos,
        size: 48 + body.len() as i32,
        term,
    }
}

fn push(kind: PushType, term: i64, commit_index: i64) -> PushEntryRequest {
    PushEntryRequest {
        base: Base {
            term,
            ..ids("n0", "n1", "n0")
        },
        commit_index,
        kind,
        ..PushEntryRequest::default()
    }
}

/// Checks one case: our bytes equal Java's, and Java's bytes parse to `value`.
fn check<B: Body + PartialEq + std::fmt::Debug>(name: &str, value: B) {
    let golden = golden(name);
    assert_eq!(
        String::from_utf8(value.to_json()).expect("utf-8"),
        golden,
        "{name}: our JSON differs from Java's"
    );
    let parsed = B::from_json(golden.as_bytes()).expect("parse golden");
    assert_eq!(parsed, value, "{name}: parsing Java's JSON");
}

/// Every golden case, built in Rust.
fn rust_cases() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let mut f = |name, json| out.push((name, json));
    f("MetadataRequest", metadata_request().to_json());
    f("MetadataResponse", metadata_response().to_json());
    f("AppendEntryRequest", append_request().to_json());
    f("AppendEntryResponse", append_response().to_json());
    f(
        "AppendEntryResponse.default",
        AppendEntryResponse::default().to_json(),
    );
    f("GetEntriesRequest", get_request().to_json());
    f("GetEntriesResponse", get_response().to_json());
    f("VoteRequest", vote_request().to_json());
    f("VoteResponse", vote_response().to_json());
    f("HeartBeatRequest", heartbeat_request().to_json());
    f("HeartBeatResponse", heartbeat_response().to_json());
    f("PushEntryRequest.append", push_append().to_json());
    f("PushEntryRequest.batch", push_batch().to_json());
    f(
        "PushEntryRequest.commit",
        push(PushType::Commit, 4, 10).to_json(),
    );
    f("PushEntryRequest.truncate", push_truncate().to_json());
    f("PushEntryResponse", push_response().to_json());
    f("PushEntryResponse.commit", push_commit_response().to_json());
    f("LeadershipTransferRequest", transfer_request().to_json());
    f("LeadershipTransferResponse", transfer_response().to_json());
    out
}

fn metadata_request() -> MetadataRequest {
    MetadataRequest {
        base: Base {
            group: s("g1"),
            remote_id: s("n1"),
            ..Base::default()
        },
    }
}
fn metadata_response() -> MetadataResponse {
    MetadataResponse {
        base: Base {
            group: s("g1"),
            leader_id: s("n0"),
            ..Base::default()
        },
        peers: Some(BTreeMap::from([(
            "n0".to_owned(),
            "127.0.0.1:40911".to_owned(),
        )])),
    }
}
fn append_request() -> AppendEntryRequest {
    AppendEntryRequest {
        base: Base {
            group: s("g1"),
            remote_id: s("n0"),
            ..Base::default()
        },
        body: Some(Bytes::from_static(&[b'h', b'i', 0, 0xff, 0xfe])),
    }
}
fn append_response() -> AppendEntryResponse {
    AppendEntryResponse {
        base: Base {
            group: s("g1"),
            leader_id: s("n0"),
            term: 3,
            ..Base::default()
        },
        index: 5,
        pos: 9007199254740993,
    }
}
fn get_request() -> GetEntriesRequest {
    GetEntriesRequest {
        base: Base {
            group: s("g1"),
            remote_id: s("n0"),
            ..Base::default()
        },
        begin_index: Some(7),
        ..GetEntriesRequest::default()
    }
}
fn get_response() -> GetEntriesResponse {
    GetEntriesResponse {
        base: Base {
            group: s("g1"),
            ..Base::default()
        },
        entries: vec![entry(7, 2, 336, "abc")],
    }
}
fn vote_request() -> VoteRequest {
    VoteRequest {
        base: Base {
            term: 9,
            ..ids("n1", "n2", "n1")
        },
        ledger_end_index: 100,
        ledger_end_term: 8,
    }
}
fn vote_response() -> VoteResponse {
    VoteResponse {
        base: Base {
            term: 8,
            ..ids("n1", "n2", "n1")
        },
        vote_result: VoteResult::RejectTermNotReady,
    }
}
fn heartbeat_request() -> HeartBeatRequest {
    HeartBeatRequest {
        base: Base {
            term: 7,
            ..ids("n0", "n1", "n0")
        },
    }
}
fn heartbeat_response() -> HeartBeatResponse {
    HeartBeatResponse {
        base: Base {
            code: 409,
            term: 7,
            ..Base::default()
        },
    }
}
fn push_append() -> PushEntryRequest {
    PushEntryRequest {
        entry: Some(entry(6, 4, 300, "six")),
        ..push(PushType::Append, 4, 5)
    }
}
fn push_batch() -> PushEntryRequest {
    PushEntryRequest {
        batch_entry: vec![entry(6, 4, 300, "six"), entry(7, 4, 351, "seven")],
        ..push(PushType::Append, 4, 5)
    }
}
fn push_truncate() -> PushEntryRequest {
    PushEntryRequest {
        entry: Some(entry(0, 1, 0, "")),
        ..push(PushType::Truncate, 4, -1)
    }
}
fn push_response() -> PushEntryResponse {
    PushEntryResponse {
        base: Base {
            group: s("g1"),
            term: 4,
            code: 406,
            ..Base::default()
        },
        begin_index: 0,
        count: 1,
        end_index: 6,
        index: Some(6),
    }
}
fn push_commit_response() -> PushEntryResponse {
    PushEntryResponse {
        base: Base {
            group: s("g1"),
            term: 4,
            ..Base::default()
        },
        begin_index: -1,
        count: 0,
        end_index: -1,
        index: None,
    }
}
fn transfer_request() -> LeadershipTransferRequest {
    LeadershipTransferRequest {
        base: Base {
            group: s("g1"),
            remote_id: s("n0"),
            term: 3,
            ..Base::default()
        },
        take_leadership_ledger_index: 12,
        transfer_id: s("n0"),
        transferee_id: s("n1"),
    }
}
fn transfer_response() -> LeadershipTransferResponse {
    LeadershipTransferResponse {
        base: Base {
            code: 418,
            term: 3,
            ..Base::default()
        },
    }
}

#[test]
fn every_body_matches_java_byte_for_byte() {
    check("MetadataRequest", metadata_request());
    check("MetadataResponse", metadata_response());
    check("AppendEntryRequest", append_request());
    check("AppendEntryResponse", append_response());
    check(
        "AppendEntryResponse.default",
        AppendEntryResponse::default(),
    );
    check("GetEntriesRequest", get_request());
    check("GetEntriesResponse", get_response());
    check("VoteRequest", vote_request());
    check("VoteResponse", vote_response());
    check("HeartBeatRequest", heartbeat_request());
    check("HeartBeatResponse", heartbeat_response());
    check("PushEntryRequest.append", push_append());
    check("PushEntryRequest.batch", push_batch());
    check("PushEntryRequest.commit", push(PushType::Commit, 4, 10));
    check("PushEntryRequest.truncate", push_truncate());
    check("PushEntryResponse", push_response());
    check("PushEntryResponse.commit", push_commit_response());
    check("LeadershipTransferRequest", transfer_request());
    check("LeadershipTransferResponse", transfer_response());
    let cases = rust_cases();
    assert_eq!(
        cases.len(),
        include_str!("golden/protocol.tsv").lines().count()
    );
    for (name, json) in cases {
        assert_eq!(
            String::from_utf8(json).expect("utf-8"),
            golden(name),
            "{name}"
        );
    }
}

#[test]
fn input_rules_follow_fastjson() {
    // Absent keys keep Java's defaults.
    let v = VoteRequest::from_json(b"{}").expect("empty object");
    assert_eq!(v, VoteRequest::default());
    assert_eq!(
        (v.base.term, v.base.code, v.ledger_end_index),
        (-1, 200, -1)
    );
    // Enums by ordinal, nulls for primitives, numbers as strings, unknown keys.
    let r = VoteResponse::from_json(
        br#"{"voteResult":7,"term":null,"code":"200","whatever":{"a":[1,2]},"leaderId":null}"#,
    )
    .expect("lenient input");
    assert_eq!(r.vote_result, VoteResult::RejectTermNotReady);
    assert_eq!(
        (r.base.term, r.base.code, r.base.leader_id),
        (-1, 200, None)
    );
    let p =
        PushEntryRequest::from_json(br#"{"type":2,"count":5,"batch":true,"firstEntryIndex":9}"#)
            .expect("derived keys ignored");
    assert_eq!(p.kind, PushType::Compare);
    assert!(p.entries().is_empty());
    // i64 beyond 2^53 survives.
    let a =
        AppendEntryResponse::from_json(br#"{"pos":9223372036854775807,"index":-1}"#).expect("i64");
    assert_eq!(a.pos, i64::MAX);
    // Unpadded base64 is accepted.
    let a = AppendEntryRequest::from_json(br#"{"body":"aGk"}"#).expect("unpadded");
    assert_eq!(a.body.as_deref(), Some(&b"hi"[..]));
    // Batch wins over entry, as Java's getters.
    let p = PushEntryRequest::from_json(
        br#"{"entry":{"index":1,"body":"YQ=="},"batchEntry":[{"index":2},{"index":3}]}"#,
    )
    .expect("both shapes");
    let idx: Vec<i64> = p.entries().iter().map(|e| e.index).collect();
    assert_eq!(idx, vec![2, 3]);
}

#[test]
fn lenient_numbers_and_bytes_without_a_json_tree() {
    // Decimals are cut, booleans count 0/1, numeric text is trimmed; inside
    // a PUSH (flattened base) and alone.
    let p = PushEntryRequest::from_json(
        br#"{"term":"  7 ","commitIndex":2.9,"code":true,"batchEntry":[
            {"index":1e3,"size":null,"body":[-1,255,0]},
            {"index":"5","body":null},
            {"index":6,"body":"YQ\u003d\u003d"}]}"#,
    )
    .expect("lenient push");
    assert_eq!((p.base.term, p.commit_index, p.base.code), (7, 2, 1));
    let e = &p.batch_entry;
    assert_eq!((e[0].index, e[0].size), (1000, 0));
    assert_eq!(e[0].body.as_deref(), Some(&[0xFF, 0xFF, 0][..]));
    assert_eq!((e[1].index, e[1].body.as_deref()), (5, None));
    assert_eq!(e[2].body.as_deref(), Some(&b"a"[..]));
    let a = AppendEntryRequest::from_json(br#"{"term":-3,"body":"aGk="}"#).expect("plain");
    assert_eq!((a.base.term, a.body.as_deref()), (-3, Some(&b"hi"[..])));
    // Out of range, wrong types and bad text are errors.
    for bad in [
        &br#"{"term":9223372036854775808}"#[..],
        br#"{"term":"x"}"#,
        br#"{"term":[1]}"#,
        br#"{"term":1e300}"#,
        br#"{"body":"a*=="}"#,
        br#"{"body":12}"#,
        br#"{"body":[256]}"#,
        br#"{"body":{"a":1}}"#,
    ] {
        assert!(
            AppendEntryRequest::from_json(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn bad_bodies_are_errors_not_panics() {
    for bad in [
        &b""[..],
        b"null",
        b"[]",
        b"{",
        b"\xff\xfe",
        br#"{"term":"x"}"#,
        br#"{"voteResult":"NOPE"}"#,
        br#"{"voteResult":99}"#,
        br#"{"body":"***"}"#,
        br#"{"term":1e400}"#,
    ] {
        assert!(
            VoteResponse::from_json(bad).is_err() || AppendEntryRequest::from_json(bad).is_err(),
            "{bad:?}"
        );
        let _ = PushEntryRequest::from_json(bad);
        let _ = GetEntriesResponse::from_json(bad);
    }
}

#[test]
fn entries_convert_both_ways() {
    let e = entry(6, 4, 300, "six");
    let back = EntryJson::from(&e.to_entry());
    assert_eq!(back, e);
}

mod typed {
    //! The core's typed messages through the wire and back.
    use bytes::Bytes;
    use dledger::core::message as m;
    use dledger::entry::Entry;
    use dledger::protocol::convert::{
        decode_request, decode_response, encode_request, encode_response,
    };
    use dledger::protocol::RequestCode;

    fn header(term: i64, code: i32) -> m::Header {
        m::Header {
            group: Some("g1".into()),
            remote_id: Some("n1".into()),
            local_id: Some("n0".into()),
            leader_id: Some("n0".into()),
            term,
            code,
        }
    }

    fn entry(index: i64, body: &'static [u8]) -> Entry {
        Entry {
            index,
            term: 3,
            magic: 1,
            pos: 48 * index,
            channel: 0,
            chain_crc: 0,
            body_crc: 0,
            body: Bytes::from_static(body),
        }
    }

    fn same_push(a: &m::PushEntryRequest, b: &m::PushEntryRequest) -> bool {
        a.header == b.header
            && a.kind == b.kind
            && a.commit_index == b.commit_index
            && a.entry.as_ref().map(|e| e.index) == b.entry.as_ref().map(|e| e.index)
            && a.entries().len() == b.entries().len()
            && a.entries()
                .iter()
                .zip(b.entries())
                .all(|(x, y)| x.same_as(y))
    }

    #[test]
    fn requests_round_trip_through_frames() {
        let requests = vec![
            m::Request::Vote(m::VoteRequest {
                header: header(5, 200),
                ledger_end_index: 10,
                ledger_end_term: 4,
            }),
            m::Request::HeartBeat(m::HeartBeatRequest {
                header: header(5, 200),
            }),
            m::Request::Push(m::PushEntryRequest {
                header: header(5, 200),
                kind: m::PushType::Append,
                commit_index: 3,
                entry: Some(entry(4, b"four")),
                batch_entry: vec![],
            }),
            m::Request::Push(m::PushEntryRequest {
                header: header(5, 200),
                kind: m::PushType::Append,
                commit_index: 3,
                entry: None,
                batch_entry: vec![entry(4, b"four"), entry(5, b""), entry(6, &[0, 255])],
            }),
            m::Request::Push(m::PushEntryRequest {
                header: header(5, 200),
                kind: m::PushType::Commit,
                commit_index: 9,
                entry: None,
                batch_entry: vec![],
            }),
            m::Request::LeadershipTransfer(m::LeadershipTransferRequest {
                header: header(5, 200),
                transfer_id: Some("n0".into()),
                transferee_id: Some("n1".into()),
                take_leadership_ledger_index: 77,
            }),
        ];
        for req in requests {
            let frame = encode_request(&req);
            assert_eq!(frame.code, req.code().code());
            assert!(frame.ext_fields.is_none(), "DLedger sends no custom header");
            let code = RequestCode::from_code(frame.code).expect("code");
            let back = decode_request(code, &frame.body)
                .expect("peer code")
                .expect("decodes");
            match (&req, &back) {
                (m::Request::Vote(a), m::Request::Vote(b)) => assert_eq!(a, b),
                (m::Request::HeartBeat(a), m::Request::HeartBeat(b)) => assert_eq!(a, b),
                (m::Request::Push(a), m::Request::Push(b)) => {
                    assert!(same_push(a, b), "{a:?} vs {b:?}")
                }
                (m::Request::LeadershipTransfer(a), m::Request::LeadershipTransfer(b)) => {
                    assert_eq!(a, b)
                }
                other => panic!("variant changed: {other:?}"),
            }
        }
        for code in [
            RequestCode::Metadata,
            RequestCode::Append,
            RequestCode::Get,
            RequestCode::Pull,
        ] {
            assert!(
                decode_request(code, b"{}").is_none(),
                "{code:?} is not for the core"
            );
        }
    }

    #[test]
    fn responses_round_trip_with_header_code_200() {
        let responses = vec![
            m::Response::Vote(m::VoteResponse {
                header: header(6, 200),
                vote_result: m::VoteResult::RejectAlreadyVoted,
            }),
            m::Response::HeartBeat(m::HeartBeatResponse {
                header: m::Header {
                    code: 416,
                    term: 6,
                    ..m::Header::default()
                },
            }),
            m::Response::Push(m::PushEntryResponse {
                header: header(6, 406),
                index: Some(4),
                count: 1,
                begin_index: 0,
                end_index: 3,
            }),
            m::Response::Push(m::PushEntryResponse {
                header: header(6, 200),
                index: None,
                count: 0,
                begin_index: -1,
                end_index: -1,
            }),
            m::Response::LeadershipTransfer(m::LeadershipTransferResponse {
                header: m::Header {
                    code: 418,
                    term: 6,
                    ..m::Header::default()
                },
            }),
        ];
        let codes = [
            RequestCode::Vote,
            RequestCode::HeartBeat,
            RequestCode::Push,
            RequestCode::Push,
            RequestCode::LeadershipTransfer,
        ];
        for (resp, code) in responses.into_iter().zip(codes) {
            let frame = encode_response(&resp);
            assert_eq!(frame.code, 200, "outcome is in the body, header says 200");
            assert!(frame.is_response());
            assert_eq!(decode_response(code, &frame.body).expect("decodes"), resp);
        }
        // A Java VoteResponse whose result is given by ordinal.
        let r =
            decode_response(RequestCode::Vote, br#"{"term":3,"voteResult":1}"#).expect("ordinal");
        assert!(matches!(r, m::Response::Vote(v) if v.vote_result == m::VoteResult::Accept));
        assert!(decode_response(RequestCode::Vote, b"not json").is_err());
        assert!(decode_response(RequestCode::Get, b"{}").is_err());
    }
}

mod junk {
    use dledger::protocol::convert::{decode_request, decode_response};
    use dledger::protocol::*;
    use proptest::prelude::*;

    fn all(bytes: &[u8]) {
        let _ = MetadataRequest::from_json(bytes);
        let _ = MetadataResponse::from_json(bytes);
        let _ = AppendEntryRequest::from_json(bytes);
        let _ = AppendEntryResponse::from_json(bytes);
        let _ = GetEntriesRequest::from_json(bytes);
        let _ = GetEntriesResponse::from_json(bytes);
        for code in [
            RequestCode::Vote,
            RequestCode::HeartBeat,
            RequestCode::Push,
            RequestCode::LeadershipTransfer,
        ] {
            let _ = decode_request(code, bytes);
            let _ = decode_response(code, bytes);
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            all(&bytes);
        }

        /// Well-formed JSON with DLedger's keys and values of any type.
        #[test]
        fn wrongly_typed_fields_never_panic(
            fields in proptest::collection::vec((
                prop::sample::select(vec![
                    "code", "term", "group", "leaderId", "remoteId", "localId", "body",
                    "entry", "batchEntry", "type", "voteResult", "index", "pos", "beginIndex",
                    "endIndex", "count", "commitIndex", "entries", "peers", "indexList",
                    "ledgerEndIndex", "takeLeadershipLedgerIndex", "transferId",
                ]),
                prop::sample::select(vec![
                    "null", "true", "-1", "1e300", "9223372036854775808", "\"x\"", "\"AAAA\"",
                    "[]", "[1,\"a\",null]", "{}", "{\"index\":\"z\"}", "[{\"body\":5}]", "3.5",
                ]),
            ), 0..8)
        ) {
            let body = format!(
                "{{{}}}",
                fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect::<Vec<_>>().join(",")
            );
            all(body.as_bytes());
        }
    }
}
