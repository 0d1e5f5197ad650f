//! The core's typed messages ([`crate::core::message`]) to and from the JSON
//! bodies, and whole remoting frames for peer-to-peer traffic.

use bytes::Bytes;
use remoting::RemotingCommand;

use super::body as b;
use super::body::Body;
use super::{response_frame, ProtocolError, RequestCode};
use crate::core::message as m;

impl From<&m::Header> for b::Base {
    fn from(h: &m::Header) -> Self {
        b::Base {
            code: h.code,
            group: h.group.clone(),
            leader_id: h.leader_id.clone(),
            local_id: h.local_id.clone(),
            remote_id: h.remote_id.clone(),
            term: h.term,
        }
    }
}

impl From<b::Base> for m::Header {
    fn from(b: b::Base) -> Self {
        m::Header {
            group: b.group,
            remote_id: b.remote_id,
            local_id: b.local_id,
            leader_id: b.leader_id,
            term: b.term,
            code: b.code,
        }
    }
}

impl From<&m::VoteRequest> for b::VoteRequest {
    fn from(r: &m::VoteRequest) -> Self {
        b::VoteRequest {
            base: (&r.header).into(),
            ledger_end_index: r.ledger_end_index,
            ledger_end_term: r.ledger_end_term,
        }
    }
}
impl From<b::VoteRequest> for m::VoteRequest {
    fn from(r: b::VoteRequest) -> Self {
        m::VoteRequest {
            header: r.base.into(),
            ledger_end_index: r.ledger_end_index,
            ledger_end_term: r.ledger_end_term,
        }
    }
}

impl From<&m::VoteResponse> for b::VoteResponse {
    fn from(r: &m::VoteResponse) -> Self {
        b::VoteResponse {
            base: (&r.header).into(),
            vote_result: r.vote_result,
        }
    }
}
impl From<b::VoteResponse> for m::VoteResponse {
    fn from(r: b::VoteResponse) -> Self {
        m::VoteResponse {
            header: r.base.into(),
            vote_result: r.vote_result,
        }
    }
}

impl From<&m::HeartBeatRequest> for b::HeartBeatRequest {
    fn from(r: &m::HeartBeatRequest) -> Self {
        b::HeartBeatRequest {
            base: (&r.header).into(),
        }
    }
}
impl From<b::HeartBeatRequest> for m::HeartBeatRequest {
    fn from(r: b::HeartBeatRequest) -> Self {
        m::HeartBeatRequest {
            header: r.base.into(),
        }
    }
}

impl From<&m::HeartBeatResponse> for b::HeartBeatResponse {
    fn from(r: &m::HeartBeatResponse) -> Self {
        b::HeartBeatResponse {
            base: (&r.header).into(),
        }
    }
}
impl From<b::HeartBeatResponse> for m::HeartBeatResponse {
    fn from(r: b::HeartBeatResponse) -> Self {
        m::HeartBeatResponse {
            header: r.base.into(),
        }
    }
}

impl From<&m::PushEntryRequest> for b::PushEntryRequest {
    fn from(r: &m::PushEntryRequest) -> Self {
        b::PushEntryRequest {
            base: (&r.header).into(),
            batch_entry: r.batch_entry.iter().map(b::EntryJson::from).collect(),
            commit_index: r.commit_index,
            entry: r.entry.as_ref().map(b::EntryJson::from),
            kind: r.kind,
        }
    }
}
impl From<b::PushEntryRequest> for m::PushEntryRequest {
    fn from(r: b::PushEntryRequest) -> Self {
        m::PushEntryRequest {
            header: r.base.into(),
            kind: r.kind,
            commit_index: r.commit_index,
            entry: r.entry.map(b::EntryJson::into_entry),
            batch_entry: r
                .batch_entry
                .into_iter()
                .map(b::EntryJson::into_entry)
                .collect(),
        }
    }
}

impl From<&m::PushEntryResponse> for b::PushEntryResponse {
    fn from(r: &m::PushEntryResponse) -> Self {
        b::PushEntryResponse {
            base: (&r.header).into(),
            begin_index: r.begin_index,
            count: r.count,
            end_index: r.end_index,
            index: r.index,
        }
    }
}
impl From<b::PushEntryResponse> for m::PushEntryResponse {
    fn from(r: b::PushEntryResponse) -> Self {
        m::PushEntryResponse {
            header: r.base.into(),
            index: r.index,
            count: r.count,
            begin_index: r.begin_index,
            end_index: r.end_index,
        }
    }
}

impl From<&m::LeadershipTransferRequest> for b::LeadershipTransferRequest {
    fn from(r: &m::LeadershipTransferRequest) -> Self {
        b::LeadershipTransferRequest {
            base: (&r.header).into(),
            take_leadership_ledger_index: r.take_leadership_ledger_index,
            transfer_id: r.transfer_id.clone(),
            transferee_id: r.transferee_id.clone(),
        }
    }
}
impl From<b::LeadershipTransferRequest> for m::LeadershipTransferRequest {
    fn from(r: b::LeadershipTransferRequest) -> Self {
        m::LeadershipTransferRequest {
            header: r.base.into(),
            transfer_id: r.transfer_id,
            transferee_id: r.transferee_id,
            take_leadership_ledger_index: r.take_leadership_ledger_index,
        }
    }
}

impl From<&m::LeadershipTransferResponse> for b::LeadershipTransferResponse {
    fn from(r: &m::LeadershipTransferResponse) -> Self {
        b::LeadershipTransferResponse {
            base: (&r.header).into(),
        }
    }
}
impl From<b::LeadershipTransferResponse> for m::LeadershipTransferResponse {
    fn from(r: b::LeadershipTransferResponse) -> Self {
        m::LeadershipTransferResponse {
            header: r.base.into(),
        }
    }
}

impl From<&m::AppendEntryResponse> for b::AppendEntryResponse {
    fn from(r: &m::AppendEntryResponse) -> Self {
        b::AppendEntryResponse {
            base: (&r.header).into(),
            index: r.index,
            pos: r.pos,
        }
    }
}
impl From<b::AppendEntryResponse> for m::AppendEntryResponse {
    fn from(r: b::AppendEntryResponse) -> Self {
        m::AppendEntryResponse {
            header: r.base.into(),
            index: r.index,
            pos: r.pos,
        }
    }
}

impl TryFrom<b::AppendEntryRequest> for m::AppendEntryRequest {
    type Error = ProtocolError;
    fn try_from(r: b::AppendEntryRequest) -> Result<Self, ProtocolError> {
        Ok(m::AppendEntryRequest {
            header: r.base.into(),
            body: r.body.ok_or(ProtocolError::MissingField("body"))?,
        })
    }
}
impl From<&m::AppendEntryRequest> for b::AppendEntryRequest {
    fn from(r: &m::AppendEntryRequest) -> Self {
        b::AppendEntryRequest {
            base: (&r.header).into(),
            body: Some(r.body.clone()),
        }
    }
}

/// The body of a peer request as it goes on the wire.
pub fn request_body(req: &m::Request) -> Vec<u8> {
    match req {
        m::Request::Vote(r) => b::VoteRequest::from(r).to_json(),
        m::Request::HeartBeat(r) => b::HeartBeatRequest::from(r).to_json(),
        m::Request::Push(r) => b::push_request_json(r),
        m::Request::LeadershipTransfer(r) => b::LeadershipTransferRequest::from(r).to_json(),
    }
}

/// The remoting frame for a peer request.
pub fn encode_request(req: &m::Request) -> RemotingCommand {
    RemotingCommand::request(req.code().code()).with_body(Bytes::from(request_body(req)))
}

/// A peer request from its remoting code and body. METADATA, APPEND, GET and
/// PULL are not peer requests the core handles: `None`.
pub fn decode_request(code: RequestCode, body: &[u8]) -> Option<Result<m::Request, ProtocolError>> {
    Some(match code {
        RequestCode::Vote => b::VoteRequest::from_json(body).map(|r| m::Request::Vote(r.into())),
        RequestCode::HeartBeat => {
            b::HeartBeatRequest::from_json(body).map(|r| m::Request::HeartBeat(r.into()))
        }
        RequestCode::Push => {
            b::PushEntryRequest::from_json(body).map(|r| m::Request::Push(r.into()))
        }
        RequestCode::LeadershipTransfer => b::LeadershipTransferRequest::from_json(body)
            .map(|r| m::Request::LeadershipTransfer(r.into())),
        RequestCode::Metadata | RequestCode::Append | RequestCode::Get | RequestCode::Pull => {
            return None
        }
    })
}

/// The remoting response frame for a peer response (header code 200).
pub fn encode_response(resp: &m::Response) -> RemotingCommand {
    match resp {
        m::Response::Vote(r) => response_frame(&b::VoteResponse::from(r)),
        m::Response::HeartBeat(r) => response_frame(&b::HeartBeatResponse::from(r)),
        m::Response::Push(r) => response_frame(&b::PushEntryResponse::from(r)),
        m::Response::LeadershipTransfer(r) => {
            response_frame(&b::LeadershipTransferResponse::from(r))
        }
    }
}

/// A peer's answer to a request we sent with `code`. Java ignores the
/// response header code and reads only the body.
pub fn decode_response(code: RequestCode, body: &[u8]) -> Result<m::Response, ProtocolError> {
    match code {
        RequestCode::Vote => b::VoteResponse::from_json(body).map(|r| m::Response::Vote(r.into())),
        RequestCode::HeartBeat => {
            b::HeartBeatResponse::from_json(body).map(|r| m::Response::HeartBeat(r.into()))
        }
        RequestCode::Push => {
            b::PushEntryResponse::from_json(body).map(|r| m::Response::Push(r.into()))
        }
        RequestCode::LeadershipTransfer => b::LeadershipTransferResponse::from_json(body)
            .map(|r| m::Response::LeadershipTransfer(r.into())),
        other => Err(ProtocolError::BadField {
            field: "code",
            reason: format!("{other:?} is not a peer request"),
        }),
    }
}
