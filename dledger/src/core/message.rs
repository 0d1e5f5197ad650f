//! Typed DLedger RPC messages: **the contract between the Raft core and the
//! server/protocol layer.** The protocol layer maps each struct to and from
//! the fastjson body of the matching Java class (`DL: protocol/*.java`,
//! field for field: a Rust `snake_case` field is the Java camelCase key);
//! the core never sees JSON. Keep this file stable: add, do not rename.
//!
//! Conventions: `Option<String>` is a Java `String` that may be `null` (and
//! is then omitted from the JSON); `i64` fields hold Java's primitive
//! defaults when unset (`term` -1, `code` 200, indexes -1).

use crate::entry::Entry;

/// DLedgerRequestCode (docs/protocol/dledger.md §1.2): the remoting header `code` of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestCode {
    Metadata = 50000,
    Append = 50001,
    Get = 50002,
    Vote = 51001,
    HeartBeat = 51002,
    Pull = 51003,
    Push = 51004,
    LeadershipTransfer = 51005,
}

impl RequestCode {
    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_code(code: i32) -> Option<RequestCode> {
        use RequestCode::*;
        Some(match code {
            50000 => Metadata,
            50001 => Append,
            50002 => Get,
            51001 => Vote,
            51002 => HeartBeat,
            51003 => Pull,
            51004 => Push,
            51005 => LeadershipTransfer,
            _ => return None,
        })
    }
}

macro_rules! response_codes {
    ($($name:ident = $code:expr, $java:literal;)*) => {
        /// DLedgerResponseCode (docs/protocol/dledger.md §1.7): the `code` field inside every body.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ResponseCode {
            $($name,)*
        }

        impl ResponseCode {
            /// The numeric value on the wire.
            pub fn code(self) -> i32 {
                match self {
                    $(ResponseCode::$name => $code,)*
                }
            }

            /// Java's enum constant name (for logs and remarks).
            pub fn java_name(self) -> &'static str {
                match self {
                    $(ResponseCode::$name => $java,)*
                }
            }

            /// `DLedgerResponseCode.valueOf(int)`; unknown numbers are `None`
            /// (Java falls back to UNKNOWN).
            pub fn from_code(code: i32) -> Option<ResponseCode> {
                match code {
                    $($code => Some(ResponseCode::$name),)*
                    _ => None,
                }
            }
        }
    };
}

response_codes! {
    Unknown = -1, "UNKNOWN";
    Success = 200, "SUCCESS";
    Timeout = 300, "TIMEOUT";
    MetadataError = 301, "METADATA_ERROR";
    NetworkError = 302, "NETWORK_ERROR";
    Unsupported = 303, "UNSUPPORTED";
    UnknownGroup = 400, "UNKNOWN_GROUP";
    UnknownMember = 401, "UNKNOWN_MEMBER";
    UnexpectedMember = 402, "UNEXPECTED_MEMBER";
    ExpiredTerm = 403, "EXPIRED_TERM";
    NotLeader = 404, "NOT_LEADER";
    NotFollower = 405, "NOT_FOLLOWER";
    InconsistentState = 406, "INCONSISTENT_STATE";
    InconsistentTerm = 407, "INCONSISTENT_TERM";
    InconsistentIndex = 408, "INCONSISTENT_INDEX";
    InconsistentLeader = 409, "INCONSISTENT_LEADER";
    IndexOutOfRange = 410, "INDEX_OUT_OF_RANGE";
    UnexpectedArgument = 411, "UNEXPECTED_ARGUMENT";
    RepeatedRequest = 412, "REPEATED_REQUEST";
    RepeatedPush = 413, "REPEATED_PUSH";
    DiskError = 414, "DISK_ERROR";
    DiskFull = 415, "DISK_FULL";
    TermNotReady = 416, "TERM_NOT_READY";
    FallBehindTooMuch = 417, "FALL_BEHIND_TOO_MUCH";
    TakeLeadershipFailed = 418, "TAKE_LEADERSHIP_FAILED";
    IndexLessThanLocalBegin = 419, "INDEX_LESS_THAN_LOCAL_BEGIN";
    RequestWithEmptyBodys = 420, "REQUEST_WITH_EMPTY_BODYS";
    PushRequestIsFull = 421, "PUSH_REQUEST_IS_FULL";
    NewerInstallSnapshotRequestExist = 422, "NEWER_INSTALL_SNAPSHOT_REQUEST_EXIST";
    InternalError = 500, "INTERNAL_ERROR";
    TermChanged = 501, "TERM_CHANGED";
    WaitQuorumAckTimeout = 502, "WAIT_QUORUM_ACK_TIMEOUT";
    LeaderPendingFull = 503, "LEADER_PENDING_FULL";
    IllegalMemberState = 504, "ILLEGAL_MEMBER_STATE";
    LeaderNotReady = 505, "LEADER_NOT_READY";
    LeaderTransferring = 506, "LEADER_TRANSFERRING";
    LoadSnapshotError = 507, "LOAD_SNAPSHOT_ERROR";
    InstallSnapshotError = 508, "INSTALL_SNAPSHOT_ERROR";
}

/// `RequestOrResponse`: the fields every request and response carries
/// (docs/protocol/dledger.md §1.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub group: Option<String>,
    /// Id of the receiver of the request.
    pub remote_id: Option<String>,
    /// Id of the sender of the request.
    pub local_id: Option<String>,
    /// Meaning depends on the message (the candidate for VOTE).
    pub leader_id: Option<String>,
    pub term: i64,
    /// A DLedgerResponseCode number; 200 in requests.
    pub code: i32,
}

impl Default for Header {
    fn default() -> Self {
        Header {
            group: None,
            remote_id: None,
            local_id: None,
            leader_id: None,
            term: -1,
            code: ResponseCode::Success.code(),
        }
    }
}

impl Header {
    /// `copyBaseInfo`: every base field of `other`.
    pub fn copy_of(other: &Header) -> Header {
        other.clone()
    }
}

/// `VoteResponse.RESULT`, in Java's declaration order (the ordinal is the discriminant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VoteResult {
    Unknown = 0,
    Accept = 1,
    RejectUnknownLeader = 2,
    RejectUnexpectedLeader = 3,
    RejectExpiredVoteTerm = 4,
    RejectAlreadyVoted = 5,
    RejectAlreadyHasLeader = 6,
    RejectTermNotReady = 7,
    RejectTermSmallThanLedger = 8,
    RejectExpiredLedgerTerm = 9,
    RejectSmallLedgerEndIndex = 10,
    RejectTakingLeadership = 11,
}

impl VoteResult {
    pub const ALL: [VoteResult; 12] = [
        VoteResult::Unknown,
        VoteResult::Accept,
        VoteResult::RejectUnknownLeader,
        VoteResult::RejectUnexpectedLeader,
        VoteResult::RejectExpiredVoteTerm,
        VoteResult::RejectAlreadyVoted,
        VoteResult::RejectAlreadyHasLeader,
        VoteResult::RejectTermNotReady,
        VoteResult::RejectTermSmallThanLedger,
        VoteResult::RejectExpiredLedgerTerm,
        VoteResult::RejectSmallLedgerEndIndex,
        VoteResult::RejectTakingLeadership,
    ];

    /// The enum name fastjson writes.
    pub fn java_name(self) -> &'static str {
        match self {
            VoteResult::Unknown => "UNKNOWN",
            VoteResult::Accept => "ACCEPT",
            VoteResult::RejectUnknownLeader => "REJECT_UNKNOWN_LEADER",
            VoteResult::RejectUnexpectedLeader => "REJECT_UNEXPECTED_LEADER",
            VoteResult::RejectExpiredVoteTerm => "REJECT_EXPIRED_VOTE_TERM",
            VoteResult::RejectAlreadyVoted => "REJECT_ALREADY_VOTED",
            VoteResult::RejectAlreadyHasLeader => "REJECT_ALREADY_HAS_LEADER",
            VoteResult::RejectTermNotReady => "REJECT_TERM_NOT_READY",
            VoteResult::RejectTermSmallThanLedger => "REJECT_TERM_SMALL_THAN_LEDGER",
            VoteResult::RejectExpiredLedgerTerm => "REJECT_EXPIRED_LEDGER_TERM",
            VoteResult::RejectSmallLedgerEndIndex => "REJECT_SMALL_LEDGER_END_INDEX",
            VoteResult::RejectTakingLeadership => "REJECT_TAKING_LEADERSHIP",
        }
    }

    pub fn from_java_name(name: &str) -> Option<VoteResult> {
        VoteResult::ALL.into_iter().find(|r| r.java_name() == name)
    }

    /// fastjson also accepts the ordinal.
    pub fn from_ordinal(ordinal: i64) -> Option<VoteResult> {
        usize::try_from(ordinal)
            .ok()
            .and_then(|i| VoteResult::ALL.get(i).copied())
    }
}

/// `PushEntryRequest.Type`, in Java's declaration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PushType {
    Append = 0,
    Commit = 1,
    Compare = 2,
    Truncate = 3,
}

impl PushType {
    pub fn java_name(self) -> &'static str {
        match self {
            PushType::Append => "APPEND",
            PushType::Commit => "COMMIT",
            PushType::Compare => "COMPARE",
            PushType::Truncate => "TRUNCATE",
        }
    }

    pub fn from_java_name(name: &str) -> Option<PushType> {
        Some(match name {
            "APPEND" => PushType::Append,
            "COMMIT" => PushType::Commit,
            "COMPARE" => PushType::Compare,
            "TRUNCATE" => PushType::Truncate,
            _ => return None,
        })
    }
}

/// Roles of `MemberState.Role` the core uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Candidate,
    Leader,
    Follower,
}

impl Role {
    pub fn java_name(self) -> &'static str {
        match self {
            Role::Candidate => "CANDIDATE",
            Role::Leader => "LEADER",
            Role::Follower => "FOLLOWER",
        }
    }
}

/// VOTE 51001. `header.leader_id` = `header.local_id` = the candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteRequest {
    pub header: Header,
    pub ledger_end_index: i64,
    pub ledger_end_term: i64,
}

/// Answer to VOTE. `header` = the request's base fields with `term` replaced
/// by the voter's term (see docs/protocol/dledger.md §2.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteResponse {
    pub header: Header,
    pub vote_result: VoteResult,
}

/// HEART_BEAT 51002. `leader_id` = `local_id` = the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartBeatRequest {
    pub header: Header,
}

/// Answer to HEART_BEAT: usually only `code` and `term` are set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartBeatResponse {
    pub header: Header,
}

/// PUSH 51004. Single shape: `entry` set, `batch_entry` empty. Batch shape:
/// `entry` None, `batch_entry` non-empty. COMMIT: neither.
#[derive(Clone, Debug)]
pub struct PushEntryRequest {
    pub header: Header,
    pub kind: PushType,
    pub commit_index: i64,
    pub entry: Option<Entry>,
    pub batch_entry: Vec<Entry>,
}

impl PushEntryRequest {
    /// Java's `isBatch()`: `batchEntry` non-empty.
    pub fn is_batch(&self) -> bool {
        !self.batch_entry.is_empty()
    }

    /// `getFirstEntryIndex()`; -1 with no entry.
    pub fn first_entry_index(&self) -> i64 {
        if let Some(e) = self.batch_entry.first() {
            e.index
        } else {
            self.entry.as_ref().map_or(-1, |e| e.index)
        }
    }

    /// `getLastEntryIndex()`; -1 with no entry.
    pub fn last_entry_index(&self) -> i64 {
        if let Some(e) = self.batch_entry.last() {
            e.index
        } else {
            self.entry.as_ref().map_or(-1, |e| e.index)
        }
    }

    /// `getCount()`.
    pub fn count(&self) -> i32 {
        if self.is_batch() {
            self.batch_entry.len() as i32
        } else {
            i32::from(self.entry.is_some())
        }
    }

    /// The entries carried, in order.
    pub fn entries(&self) -> Vec<&Entry> {
        if self.is_batch() {
            self.batch_entry.iter().collect()
        } else {
            self.entry.iter().collect()
        }
    }
}

/// Answer to PUSH. `header.term` echoes the request's term; `index` is None
/// (omitted) for COMMIT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushEntryResponse {
    pub header: Header,
    pub index: Option<i64>,
    pub count: i32,
    /// The receiver's ledger begin index.
    pub begin_index: i64,
    /// The receiver's ledger end index.
    pub end_index: i64,
}

/// LEADERSHIP_TRANSFER 51005 (admin → leader and leader → transferee).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadershipTransferRequest {
    pub header: Header,
    pub transfer_id: Option<String>,
    pub transferee_id: Option<String>,
    pub take_leadership_ledger_index: i64,
}

/// Answer to LEADERSHIP_TRANSFER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadershipTransferResponse {
    pub header: Header,
}

/// APPEND 50001 from a client; the server turns it into
/// [`Node::propose`](super::Node::propose).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendEntryRequest {
    pub header: Header,
    pub body: bytes::Bytes,
}

/// Answer to APPEND (and the outcome of a proposal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendEntryResponse {
    pub header: Header,
    pub index: i64,
    pub pos: i64,
}

/// A peer-to-peer request the core handles or sends.
#[derive(Clone, Debug)]
pub enum Request {
    Vote(VoteRequest),
    HeartBeat(HeartBeatRequest),
    Push(PushEntryRequest),
    LeadershipTransfer(LeadershipTransferRequest),
}

impl Request {
    pub fn header(&self) -> &Header {
        match self {
            Request::Vote(r) => &r.header,
            Request::HeartBeat(r) => &r.header,
            Request::Push(r) => &r.header,
            Request::LeadershipTransfer(r) => &r.header,
        }
    }

    /// The remoting request code to send it with.
    pub fn code(&self) -> RequestCode {
        match self {
            Request::Vote(_) => RequestCode::Vote,
            Request::HeartBeat(_) => RequestCode::HeartBeat,
            Request::Push(_) => RequestCode::Push,
            Request::LeadershipTransfer(_) => RequestCode::LeadershipTransfer,
        }
    }
}

/// The answer to a [`Request`] of the same variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Vote(VoteResponse),
    HeartBeat(HeartBeatResponse),
    Push(PushEntryResponse),
    LeadershipTransfer(LeadershipTransferResponse),
}

impl Response {
    pub fn header(&self) -> &Header {
        match self {
            Response::Vote(r) => &r.header,
            Response::HeartBeat(r) => &r.header,
            Response::Push(r) => &r.header,
            Response::LeadershipTransfer(r) => &r.header,
        }
    }

    /// The body `code`.
    pub fn code(&self) -> i32 {
        self.header().code
    }
}
