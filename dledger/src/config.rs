//! `DLedgerConfig` (`DL: DLedgerConfig.java`): Java's key names and, except
//! for the election timers, Java's defaults (docs/protocol/dledger.md §2.2). Only what the Raft
//! core and the simulator read is typed here; the store keeps its own keys.
//!
//! # Timers
//!
//! Java's timers (heartbeat every 2000 ms, a follower gives up after 3 missed
//! ones, votes 300-1000 ms apart) make a failover take 6-8 s, sized for a JVM
//! that may pause for GC. Our defaults are ten times shorter
//! ([`OUR_TIMERS`]): heartbeat every 200 ms, so a follower starts an election
//! after 600 ms without one, and votes 100-300 ms apart; leader loss to the
//! first acknowledged append then takes about 1 s. That still leaves 400 ms
//! of slack for a stalled thread on a busy machine before a healthy leader is
//! voted out.
//!
//! Every member of a group must run the same timers: a follower with our
//! 600 ms timeout under a Java leader beating every 2 s would start an
//! election between every two heartbeats. For groups with Java nodes, set
//! the Java values ([`JAVA_TIMERS`], [`DLedgerConfig::use_java_timers`],
//! `dledger server --java-timers`) or the same keys on every node.

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

/// The election timers: `heartBeatTimeIntervalMs`, `maxHeartBeatLeak`,
/// `minVoteIntervalMs`, `maxVoteIntervalMs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    pub heart_beat_time_interval_ms: u64,
    pub max_heart_beat_leak: u64,
    pub min_vote_interval_ms: u64,
    pub max_vote_interval_ms: u64,
    /// How long a candidate waits for vote answers before counting what it
    /// has: this + random(`maxVoteIntervalMs`). Not a Java key (`voteWaitBaseMs`
    /// here); Java hard-codes 2000 ms, which a silent (paused, cut off) peer
    /// adds to every vote round.
    pub vote_wait_base_ms: u64,
}

/// Our defaults (see the module documentation).
pub const OUR_TIMERS: Timers = Timers {
    heart_beat_time_interval_ms: 200,
    max_heart_beat_leak: 3,
    min_vote_interval_ms: 100,
    max_vote_interval_ms: 300,
    vote_wait_base_ms: 300,
};

/// Java DLedger 0.3.1.2's defaults (`DLedgerConfig.java`).
pub const JAVA_TIMERS: Timers = Timers {
    heart_beat_time_interval_ms: 2000,
    max_heart_beat_leak: 3,
    min_vote_interval_ms: 300,
    max_vote_interval_ms: 1000,
    vote_wait_base_ms: 2000,
};

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
    /// Not a Java key (`voteWaitBaseMs`): see [`Timers::vote_wait_base_ms`].
    pub vote_wait_base_ms: u64,
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
    /// `enableBatchPush`: the leader pushes the entries a follower lacks in
    /// one request (Java's batch shape) instead of one request per entry.
    /// Ours defaults to true (Java: false); Java 0.3.1.2 followers accept it.
    pub enable_batch_push: bool,
    /// `maxBatchPushSize`: a batch push closes at this many bytes of entries
    /// (ours 64 KiB; Java 4 KiB).
    pub max_batch_push_size: usize,
    /// Not a Java key: when true only entries of the leader's current term are
    /// counted for commit (Raft §5.4.2) and followers accept pushes only from
    /// their known leader in their current term. Default false = Java 0.3.1.2.
    /// Do not enable in broker groups (docs/protocol/dledger.md §2.11: no no-op entries there).
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
            heart_beat_time_interval_ms: OUR_TIMERS.heart_beat_time_interval_ms,
            max_heart_beat_leak: OUR_TIMERS.max_heart_beat_leak,
            min_vote_interval_ms: OUR_TIMERS.min_vote_interval_ms,
            max_vote_interval_ms: OUR_TIMERS.max_vote_interval_ms,
            vote_wait_base_ms: OUR_TIMERS.vote_wait_base_ms,
            min_take_leadership_vote_interval_ms: 30,
            max_take_leadership_vote_interval_ms: 100,
            max_pending_requests_num: 10000,
            max_wait_ack_time_ms: 2500,
            max_push_time_out_ms: 1000,
            max_leadership_transfer_wait_index: 1000,
            leadership_transfer_wait_timeout: 1000,
            preferred_leader_ids: None,
            enable_leader_elector: true,
            enable_batch_push: true,
            max_batch_push_size: 64 * 1024,
            strict_commit: false,
        }
    }
}

impl DLedgerConfig {
    /// Java DLedger 0.3.1.2's defaults, timers included.
    pub fn java_defaults() -> Self {
        let mut c = DLedgerConfig::default();
        c.use_java_timers();
        c.enable_batch_push = false;
        c.max_batch_push_size = 4 * 1024;
        c
    }

    /// Switches the election timers to Java's defaults ([`JAVA_TIMERS`]).
    pub fn use_java_timers(&mut self) {
        self.set_timers(JAVA_TIMERS);
    }

    pub fn set_timers(&mut self, t: Timers) {
        self.heart_beat_time_interval_ms = t.heart_beat_time_interval_ms;
        self.max_heart_beat_leak = t.max_heart_beat_leak;
        self.min_vote_interval_ms = t.min_vote_interval_ms;
        self.max_vote_interval_ms = t.max_vote_interval_ms;
        self.vote_wait_base_ms = t.vote_wait_base_ms;
    }

    pub fn timers(&self) -> Timers {
        Timers {
            heart_beat_time_interval_ms: self.heart_beat_time_interval_ms,
            max_heart_beat_leak: self.max_heart_beat_leak,
            min_vote_interval_ms: self.min_vote_interval_ms,
            max_vote_interval_ms: self.max_vote_interval_ms,
            vote_wait_base_ms: self.vote_wait_base_ms,
        }
    }

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
                "voteWaitBaseMs" => self.vote_wait_base_ms = num(k, v)?,
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
                "enableBatchPush" => self.enable_batch_push = num(k, v)?,
                "maxBatchPushSize" => self.max_batch_push_size = num(k, v)?,
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
    fn defaults_are_java_except_our_faster_timers() {
        let c = DLedgerConfig::default();
        assert_eq!(c.timers(), OUR_TIMERS);
        assert_eq!(
            (c.heart_beat_time_interval_ms, c.max_heart_beat_leak),
            (200, 3)
        );
        assert_eq!((c.min_vote_interval_ms, c.max_vote_interval_ms), (100, 300));
        // A follower's election timeout is max(2, leak) heartbeats; it must
        // stay well above the vote spread so a vote round ends first.
        let timeout = c.heart_beat_time_interval_ms * c.max_heart_beat_leak.max(2);
        assert!(timeout >= 2 * c.max_vote_interval_ms);
        // Everything else is Java's.
        assert_eq!(
            (c.max_pending_requests_num, c.max_wait_ack_time_ms),
            (10000, 2500)
        );
        assert_eq!(c.max_push_time_out_ms, 1000);
        assert_eq!(c.group, "default");
        assert_eq!(c.self_id, "n0");
        // Ours pushes batches; Java's default does not.
        assert_eq!((c.enable_batch_push, c.max_batch_push_size), (true, 65536));
        assert_eq!(
            DLedgerConfig {
                heart_beat_time_interval_ms: 2000,
                max_heart_beat_leak: 3,
                min_vote_interval_ms: 300,
                max_vote_interval_ms: 1000,
                vote_wait_base_ms: 2000,
                enable_batch_push: false,
                max_batch_push_size: 4096,
                ..c.clone()
            },
            DLedgerConfig::java_defaults()
        );
    }

    #[test]
    fn java_timer_keys_override_ours() {
        let mut c = DLedgerConfig::default();
        let m: HashMap<String, String> = [
            ("heartBeatTimeIntervalMs", "2000"),
            ("maxHeartBeatLeak", "3"),
            ("minVoteIntervalMs", "300"),
            ("maxVoteIntervalMs", "1000"),
            ("voteWaitBaseMs", "2000"),
            ("enableBatchPush", "false"),
            ("maxBatchPushSize", "4096"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        c.apply_properties(&m).unwrap();
        assert_eq!(c.timers(), JAVA_TIMERS);
        assert_eq!(c, DLedgerConfig::java_defaults());
        let m: HashMap<String, String> =
            [("enableBatchPush".to_string(), "yes".to_string())].into();
        assert!(matches!(
            c.apply_properties(&m),
            Err(ConfigError::BadValue { .. })
        ));
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
