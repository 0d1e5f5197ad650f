//! Peer bytes never panic the controller: log entry bodies
//! ([`Event::decode`]) and request frames ([`compute::decode`],
//! [`compute::decode_heartbeat`]) built from junk either decode or give an
//! error, and what decodes behaves (events re-encode to themselves, requests
//! run against a populated state without panicking).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use controller::compute::{self, codes, Request};
use controller::event::Event;
use controller::policy::{Liveness, Rank};
use controller::state::ReplicasInfo;
use proptest::prelude::*;
use remoting::RemotingCommand;

/// Every member alive, ranked by id.
struct AllAlive;

impl Liveness for AllAlive {
    fn is_alive(&self, _cluster: &str, _name: &str, _id: i64) -> bool {
        true
    }
    fn rank(&self, _cluster: &str, _name: &str, id: i64) -> Option<Rank> {
        Some(Rank {
            epoch: 1,
            max_offset: id,
            election_priority: 0,
        })
    }
}

fn ids() -> impl Strategy<Value = BTreeSet<i64>> {
    proptest::collection::btree_set(any::<i64>(), 0..5)
}

fn name() -> impl Strategy<Value = String> {
    // Quotes, backslashes, control and non-ASCII characters included.
    proptest::string::string_regex("[a-z\"\\\\\u{0}-\u{1f}é中-]{0,12}").unwrap()
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (name(), ids()).prop_map(
            |(broker_name, new_sync_state_set)| Event::AlterSyncStateSet {
                broker_name,
                new_sync_state_set
            }
        ),
        (
            proptest::option::of(name()),
            name(),
            proptest::option::of(name()),
            any::<i64>(),
            proptest::option::of(name())
        )
            .prop_map(|(c, b, a, id, code)| Event::ApplyBrokerId {
                cluster_name: c,
                broker_name: b,
                broker_address: a,
                new_broker_id: id,
                register_check_code: code,
            }),
        (name(), proptest::option::of(any::<i64>()), any::<bool>()).prop_map(|(b, id, e)| {
            Event::ElectMaster {
                broker_name: b,
                new_master_broker_id: id,
                new_master_elected: e,
            }
        }),
        (name(), proptest::option::of(ids())).prop_map(|(b, set)| Event::CleanBrokerData {
            broker_name: b,
            broker_id_set_to_clean: set,
        }),
        (
            proptest::option::of(name()),
            name(),
            proptest::option::of(name()),
            any::<i64>()
        )
            .prop_map(|(c, b, a, id)| Event::UpdateBrokerAddress {
                cluster_name: c,
                broker_name: b,
                broker_address: a,
                broker_id: id,
            }),
    ]
}

/// JSON-ish text: pieces of real event bodies and of bad ones.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("\"brokerName\"".to_owned()),
        Just("\"newSyncStateSet\"".to_owned()),
        Just("\"newBrokerId\"".to_owned()),
        Just("\"newMasterBrokerId\"".to_owned()),
        Just("\"newMasterElected\"".to_owned()),
        Just("\"brokerIdSetToClean\"".to_owned()),
        Just("\"brokerId\"".to_owned()),
        Just("\"syncStateSet\"".to_owned()),
        Just("\"syncStateSetEpoch\"".to_owned()),
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("1e400".to_owned()),
        Just("-9223372036854775809".to_owned()),
        Just("\"12\"".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        name().prop_map(|s| format!("{s:?}")),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|p| p.concat().into_bytes())
}

const CODES: [i32; 9] = [
    codes::ALTER_SYNC_STATE_SET,
    codes::ELECT_MASTER,
    codes::REGISTER_BROKER,
    codes::GET_REPLICA_INFO,
    codes::GET_SYNC_STATE_DATA,
    codes::CLEAN_BROKER_DATA,
    codes::GET_NEXT_BROKER_ID,
    codes::APPLY_BROKER_ID,
    codes::BROKER_HEARTBEAT,
];

const KEYS: [&str; 20] = [
    "clusterName",
    "brokerName",
    "brokerId",
    "brokerAddr",
    "brokerAddress",
    "masterBrokerId",
    "masterEpoch",
    "designateElect",
    "brokerControllerIdsToClean",
    "brokerIdSetToClean",
    "isCleanLivingBroker",
    "appliedBrokerId",
    "registerCheckCode",
    "epoch",
    "maxOffset",
    "confirmOffset",
    "heartbeatTimeoutMills",
    "electionPriority",
    "invokeTime",
    "x",
];

fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| format!(" {n} ")),
        Just("null".to_owned()),
        Just(String::new()),
        Just("true".to_owned()),
        Just("1;2;x".to_owned()),
        Just("99999999999999999999".to_owned()),
        name(),
    ]
}

fn request() -> impl Strategy<Value = RemotingCommand> {
    (
        proptest::sample::select(&CODES[..]),
        proptest::collection::vec((proptest::sample::select(&KEYS[..]), field_value()), 0..8),
        prop_oneof![jsonish(), proptest::collection::vec(any::<u8>(), 0..64)],
    )
        .prop_map(|(code, fields, body)| {
            let mut cmd = RemotingCommand::request(code);
            for (k, v) in fields {
                cmd = cmd.with_ext(k, v);
            }
            cmd.with_body(body)
        })
}

/// A state with two sets, one with a master: compute has something to check.
fn populated() -> ReplicasInfo {
    let mut s = ReplicasInfo::default();
    for (name, id) in [("a", 1), ("a", 2), ("", 1)] {
        s.apply(&Event::ApplyBrokerId {
            cluster_name: Some("c".into()),
            broker_name: name.into(),
            broker_address: Some(format!("h:{id}")),
            new_broker_id: id,
            register_check_code: Some(format!("h:{id};1")),
        });
    }
    s.apply(&Event::ElectMaster {
        broker_name: "a".into(),
        new_master_broker_id: Some(1),
        new_master_elected: true,
    });
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn events_round_trip_and_every_cut_is_an_error(e in event()) {
        let bytes = e.encode();
        prop_assert_eq!(Event::decode(&bytes), Ok(e));
        for cut in 0..bytes.len() {
            prop_assert!(Event::decode(&bytes[..cut]).is_err(), "cut at {}", cut);
        }
    }

    #[test]
    fn junk_entry_bodies_never_panic(
        id in prop_oneof![1i16..=6, any::<i16>()],
        json in prop_oneof![jsonish(), proptest::collection::vec(any::<u8>(), 0..128)],
    ) {
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&json);
        if let Ok(e) = Event::decode(&body) {
            // Whatever decodes is a real event: it re-encodes to itself and
            // applies without panicking.
            prop_assert_eq!(Event::decode(&e.encode()), Ok(e.clone()));
            populated().apply(&e);
        }
        let _ = Event::decode(&json);
    }

    #[test]
    fn mutated_entries_never_panic(e in event(), at in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = e.encode();
        let i = at % bytes.len();
        bytes[i] = byte;
        if let Ok(d) = Event::decode(&bytes) {
            prop_assert_eq!(Event::decode(&d.encode()), Ok(d));
        }
    }

    #[test]
    fn junk_requests_never_panic(cmd in request()) {
        if cmd.code == codes::BROKER_HEARTBEAT {
            prop_assert_eq!(compute::decode(&cmd), Ok(None));
            if let Ok(hb) = compute::decode_heartbeat(&cmd) {
                let id = cmd.ext("brokerId").map(str::trim);
                let want = match id {
                    None | Some("") | Some("null") => None,
                    Some(v) => Some(v.parse::<i64>().unwrap()),
                };
                prop_assert_eq!(hb.broker_id, want);
            }
            return Ok(());
        }
        // Every leader-only code decodes to a request or an error.
        let req: Request = match compute::decode(&cmd) {
            Ok(Some(r)) => r,
            Ok(None) => return Err(TestCaseError::fail("a leader-only code not decoded")),
            Err(_) => return Ok(()),
        };
        // A decoded request runs, and its events apply, without panicking.
        let mut state = populated();
        for unclean in [false, true] {
            let out = compute::compute(&state, &AllAlive, unclean, &req);
            let resp = out.clone().into_response();
            prop_assert_eq!(resp.code, out.code);
            for e in &out.events {
                prop_assert_eq!(Event::decode(&e.encode()), Ok(e.clone()));
                state.apply(e);
            }
        }
    }
}
