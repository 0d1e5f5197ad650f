//! DLedger's wire protocol (0.3.1.2): ordinary remoting frames with no custom
//! header and a fastjson body (docs/protocol/dledger.md §1).
//!
//! - [`body`]: the JSON bodies, field for field.
//! - [`json`]: fastjson's conventions (sorted keys, Base64 bytes, lenient input).
//! - `push_json`: a one-pass reader for the usual PUSH body (serde for the rest).
//! - request codes, response codes and the frame helpers here.

pub mod body;
pub mod convert;
pub mod json;
mod push_json;

use bytes::Bytes;
use remoting::RemotingCommand;

pub use body::*;

pub use crate::core::message::{RequestCode, ResponseCode};

/// A DLedger body that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("request has no body")]
    EmptyBody,
    #[error("bad DLedger JSON body: {0}")]
    BadJson(String),
    #[error("missing field {0}")]
    MissingField(&'static str),
    #[error("bad field {field}: {reason}")]
    BadField { field: &'static str, reason: String },
}

/// The remoting request DLedger sends: `code`, no `extFields`, JSON body.
pub fn request_frame<B: Body>(code: RequestCode, body: &B) -> RemotingCommand {
    RemotingCommand::request(code.code()).with_body(Bytes::from(body.to_json()))
}

/// The remoting response DLedger sends: header code 200 whatever the outcome
/// (the outcome is the body's `code`), JSON body.
pub fn response_frame<B: Body>(body: &B) -> RemotingCommand {
    RemotingCommand::response(ResponseCode::Success.code()).with_body(Bytes::from(body.to_json()))
}
