//! Errors of the remoting layer.

use crate::code::response_code;

/// A connection-level failure: the frame or the connection is unusable.
#[derive(Debug, thiserror::Error)]
pub enum RemotingError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("unknown serialize type {0}")]
    UnknownSerializeType(u8),
    #[error("request timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("connection closed")]
    ConnectionClosed,
}

impl RemotingError {
    pub(crate) fn malformed(what: impl Into<String>) -> Self {
        RemotingError::Malformed(what.into())
    }
}

/// A custom header could not be read from `extFields`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the custom header field {0} is null")]
    Missing(&'static str),
    #[error("the custom header field {field} has an invalid value {value:?}")]
    Invalid { field: &'static str, value: String },
}

/// A request that failed: becomes a response with this code and remark.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{remark} (code {code})")]
pub struct CommandError {
    pub code: i32,
    pub remark: String,
}

impl CommandError {
    pub fn new(code: i32, remark: impl Into<String>) -> Self {
        CommandError {
            code,
            remark: remark.into(),
        }
    }

    pub fn system(remark: impl Into<String>) -> Self {
        Self::new(response_code::SYSTEM_ERROR, remark)
    }
}

impl From<HeaderError> for CommandError {
    /// Java answers an unreadable header with SYSTEM_ERROR and the exception
    /// text (`NettyRemotingAbstract.processRequestCommand`).
    fn from(e: HeaderError) -> Self {
        CommandError::system(e.to_string())
    }
}
