//! `DLedgerConfig` (`DL: DLedgerConfig.java`): Java's key names and defaults
//! (spec §2.2). Only what the Raft core and the simulator read is typed here;
//! the store keeps its own keys.

use std::collections::HashMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A `peers` element without `-` or with an empty id.
    #[error("peers: bad element {0:?} (want id-host:port)")]
    BadPeer(String),
    #[error("peers: duplicate id {0:?}")]
    DuplicatePeer(String),
    /// Java refuses to start when `selfId` is not in `peers`.
    #[error("selfId {0:?} is not in peers")]
    SelfNotInPeers(String),
    #[error("{key}: bad value {value:?}")]
    BadValue { key: String, value: String },
}

/// One member of `peers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub id: String,
    /// Everything after `id-`: `host:port`.
    pub addr: String,
}

/// Parses `n0-127.0.0.1:40911;n1-127.0.0.1:40912`. The id is the text before
/// the first `-`, the address everything after it. Order is kept.
pub fn parse_peers(peers: &str) -> Result<Vec<Peer>, ConfigError> {
    let mut out: Vec<Peer> = Vec::new();
    for part in peers.split(';') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((id, addr)) = part.split_once('-') else {
            return Err(ConfigError::BadPeer(part.to_string()));
        };
        if id.is_empty() {
            return Err(ConfigError::BadPeer(part.to_string()));
        }
        if out.iter().any(|p| p.id == id) {
            return Err(ConfigError::DuplicatePeer(id.to_string()));
        }
        out.push(Peer {
            id: id.to_string(),
            addr: addr.to_string(),
        });
    }
    Ok(out)
}

/// The DLedger settings the core uses. Field names are Java's keys in snake case.
#[derive(Clone, Debug, PartialEq)]
pub struct DLedgerConfig {
    /// `group`.
    pub group: String,
    /// `selfId`.
    pub self_id: String,
    /// `peers`, parsed.
    pub peers: Vec<Peer>,
    /// `heartBeatTimeIntervalMs`.
    pub heart_beat_time_interval_ms: u64,
    /// `maxHeartBeatLeak`.
    pub max_heart_beat_leak: u64,
    /// `minVoteIntervalMs`.
    pub min_vote_interval_ms: u64,
    /// `maxVoteIntervalMs`.
    pub max_vote_interval_ms: u64,
    /// `minTakeLeadershipVoteIntervalMs`.
    pub min_take_leadership_vote_interval_ms: u64,
    /// `maxTakeLeadershipVoteIntervalMs`.
    pub max_take_leadership_vote_interval_ms: u64,
    /// `maxPendingRequestsNum`: more than this pending appends → 503.
    pub max_pending_requests_num: usize,
    /// `maxWaitAckTimeMs`: pending append → 502 after this.
    pub max_wait_ack_time_ms: u64,
    /// `maxPushTimeOutMs`: resend of the oldest un-acked APPEND.
    pub max_push_time_out_ms: u64,
    /// `maxLeadershipTransferWaitIndex`.
    pub max_leadership_transfer_wait_index: i64,
    /// `leadershipTransferWaitTimeout`.
    pub leadership_transfer_wait_timeout: u64,
    /// `preferredLeaderIds`, split on `;` (None = unset).
    pub preferred_leader_ids: Option<Vec<String>>,
    /// `enableLeaderElector`.
    pub enable_leader_elector: bool,
    /// Not a Java key: when true only entries of the leader's current term are
    /// counted for commit (Raft §5.4.2) and followers accept pushes only from
    /// their known leader in their current term. Default false = Java 0.3.1.2.
    /// Do not enable in broker groups (spec §2.11: no no-op entries there).
    pub strict_commit: bool,
}

impl Default for DLedgerConfig {
    fn default() -> Self {
        DLedgerConfig {
            group: "default".to_string(),
            self_id: "n0".to_string(),
            peers: vec![Peer {
                id: "n0".to_string(),
                addr: "localhost:20911".to_string(),
            }],
            heart_beat_time_interval_ms: 2000,
            max_heart_beat_leak: 3,
            min_vote_interval_ms: 300,
            max_vote_interval_ms: 1000,
            min_take_leadership_vote_interval_ms: 30,
            max_take_leadership_vote_interval_ms: 100,
            max_pending_requests_num: 10000,
            max_wait_ack_time_ms: 2500,
            max_push_time_out_ms: 1000,
            max_leadership_transfer_wait_index: 1000,
            leadership_transfer_wait_timeout: 1000,
            preferred_leader_ids: None,
            enable_leader_elector: true,
            strict_commit: false,
        }
    }
}

impl DLedgerConfig {
    /// A config for `self_id` in `group` with the given peers string.
    pub fn new(group: &str, self_id: &str, peers: &str) -> Result<Self, ConfigError> {
        let cfg = DLedgerConfig {
            group: group.to_string(),
            self_id: self_id.to_string(),
            peers: parse_peers(peers)?,
            ..DLedgerConfig::default()
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Java's start-up check: self must be a peer.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.peers.iter().any(|p| p.id == self.self_id) {
            return Err(ConfigError::SelfNotInPeers(self.self_id.clone()));
        }
        Ok(())
    }

    /// Applies Java keys from a properties map. Unknown keys are ignored (as
    /// Java does); a bad number is an error naming the key.
    pub fn apply_properties(&mut self, props: &HashMap<String, String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ConfigError> {
            v.trim().parse().map_err(|_| ConfigError::BadValue {
                key: key.to_string(),
                value: v.to_string(),
            })
        }
        for (k, v) in props {
            match k.as_str() {
                "group" => self.group = v.trim().to_string(),
                "selfId" => self.self_id = v.trim().to_string(),
                "peers" => self.peers = parse_peers(v)?,
                "heartBeatTimeIntervalMs" => self.heart_beat_time_interval_ms = num(k, v)?,
                "maxHeartBeatLeak" => self.max_heart_beat_leak = num(k, v)?,
                "minVoteIntervalMs" => self.min_vote_interval_ms = num(k, v)?,
                "maxVoteIntervalMs" => self.max_vote_interval_ms = num(k, v)?,
                "minTakeLeadershipVoteIntervalMs" => {
                    self.min_take_leadership_vote_interval_ms = num(k, v)?
                }
                "maxTakeLeadershipVoteIntervalMs" => {
                    self.max_take_leadership_vote_interval_ms = num(k, v)?
                }
                "maxPendingRequestsNum" => self.max_pending_requests_num = num(k, v)?,
                "maxWaitAckTimeMs" => self.max_wait_ack_time_ms = num(k, v)?,
                "maxPushTimeOutMs" => self.max_push_time_out_ms = num(k, v)?,
                "maxLeadershipTransferWaitIndex" => {
                    self.max_leadership_transfer_wait_index = num(k, v)?
                }
                "leadershipTransferWaitTimeout" => {
                    self.leadership_transfer_wait_timeout = num(k, v)?
                }
                "preferredLeaderIds" => {
                    self.preferred_leader_ids =
                        Some(v.split(';').map(|s| s.trim().to_string()).collect())
                }
                "enableLeaderElector" => self.enable_leader_elector = num(k, v)?,
                _ => {}
            }
        }
        self.validate()
    }

    /// Ids of all members, self included, in `peers` order.
    pub fn peer_ids(&self) -> Vec<String> {
        self.peers.iter().map(|p| p.id.clone()).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn peers_id_is_text_before_first_dash() {
        let p = parse_peers("n0-127.0.0.1:40911;n1-host-a:40912;").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].id, "n1");
        assert_eq!(p[1].addr, "host-a:40912");
        assert_eq!(parse_peers("n0"), Err(ConfigError::BadPeer("n0".into())));
        assert!(matches!(
            parse_peers("n0-a;n0-b"),
            Err(ConfigError::DuplicatePeer(_))
        ));
    }

    #[test]
    fn defaults_match_java() {
        let c = DLedgerConfig::default();
        assert_eq!(
            (c.heart_beat_time_interval_ms, c.max_heart_beat_leak),
            (2000, 3)
        );
        assert_eq!(
            (c.min_vote_interval_ms, c.max_vote_interval_ms),
            (300, 1000)
        );
        assert_eq!(
            (c.max_pending_requests_num, c.max_wait_ack_time_ms),
            (10000, 2500)
        );
        assert_eq!(c.max_push_time_out_ms, 1000);
        assert_eq!(c.group, "default");
        assert_eq!(c.self_id, "n0");
    }

    #[test]
    fn properties_apply_and_self_must_be_peer() {
        let mut c = DLedgerConfig::default();
        let mut m = HashMap::new();
        m.insert("peers".to_string(), "a-h:1;b-h:2;c-h:3".to_string());
        m.insert("selfId".to_string(), "b".to_string());
        m.insert("preferredLeaderIds".to_string(), "c".to_string());
        m.insert("unknownKey".to_string(), "x".to_string());
        c.apply_properties(&m).unwrap();
        assert_eq!(c.peer_ids(), vec!["a", "b", "c"]);
        assert_eq!(c.preferred_leader_ids, Some(vec!["c".to_string()]));
        m.insert("selfId".to_string(), "z".to_string());
        assert_eq!(
            c.apply_properties(&m),
            Err(ConfigError::SelfNotInPeers("z".into()))
        );
        m.insert("selfId".to_string(), "a".to_string());
        m.insert("maxWaitAckTimeMs".to_string(), "x".to_string());
        assert!(matches!(
            c.apply_properties(&m),
            Err(ConfigError::BadValue { .. })
        ));
    }
}
