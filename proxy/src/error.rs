//! Errors a [`crate::Backend`] or the service reports, and their
//! `apache.rocketmq.v2.Code`.

use crate::pb::Code;

/// Why a request failed. Each variant maps to one `Code` (see
/// [`ProxyError::code`]); [`ProxyError::Remoting`] carries a broker's
/// remoting response code and is mapped as Java's proxy maps it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("topic {0} not found")]
    TopicNotFound(String),
    #[error("consumer group {0} not found")]
    GroupNotFound(String),
    #[error("illegal filter expression: {0}")]
    IllegalFilter(String),
    #[error("message body too large: {size} > {max}")]
    BodyTooLarge { size: usize, max: usize },
    #[error("invalid receipt handle: {0}")]
    InvalidReceiptHandle(String),
    #[error("no permission: {0}")]
    Forbidden(String),
    #[error("too many requests: {0}")]
    TooManyRequests(String),
    #[error("not implemented: {0}")]
    NotImplemented(String),
    #[error("upstream timed out: {0}")]
    Timeout(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// A precise code chosen by the caller (validation failures).
    #[error("{message}")]
    Status { code: Code, message: String },
    /// A broker's remoting answer other than success.
    #[error("broker answered code {code}: {remark}")]
    Remoting { code: i32, remark: String },
}

impl ProxyError {
    pub fn status(code: Code, message: impl Into<String>) -> ProxyError {
        ProxyError::Status {
            code,
            message: message.into(),
        }
    }

    /// The `apache.rocketmq.v2.Code` for this error.
    pub fn code(&self) -> Code {
        match self {
            ProxyError::TopicNotFound(_) => Code::TopicNotFound,
            ProxyError::GroupNotFound(_) => Code::ConsumerGroupNotFound,
            ProxyError::IllegalFilter(_) => Code::IllegalFilterExpression,
            ProxyError::BodyTooLarge { .. } => Code::MessageBodyTooLarge,
            ProxyError::InvalidReceiptHandle(_) => Code::InvalidReceiptHandle,
            ProxyError::Forbidden(_) => Code::Forbidden,
            ProxyError::TooManyRequests(_) => Code::TooManyRequests,
            ProxyError::NotImplemented(_) => Code::NotImplemented,
            ProxyError::Timeout(_) => Code::ProxyTimeout,
            ProxyError::Internal(_) => Code::InternalServerError,
            ProxyError::Status { code, .. } => *code,
            ProxyError::Remoting { code, .. } => remoting_code(*code),
        }
    }
}

/// Java remoting `ResponseCode` to the gRPC `Code`, as Java's proxy
/// (`ResponseBuilder.buildStatus`) does for the codes a broker answers.
pub fn remoting_code(code: i32) -> Code {
    match code {
        0 => Code::Ok,
        1 => Code::InternalServerError, // SYSTEM_ERROR
        2 => Code::TooManyRequests,     // SYSTEM_BUSY
        3 => Code::NotImplemented,      // REQUEST_CODE_NOT_SUPPORTED
        10 => Code::MasterPersistenceTimeout,
        11 => Code::HaNotAvailable,
        12 => Code::SlavePersistenceTimeout,
        13 => Code::MessageCorrupted,    // MESSAGE_ILLEGAL
        14 => Code::InternalServerError, // SERVICE_NOT_AVAILABLE
        15 => Code::VersionUnsupported,
        16 => Code::Forbidden,                 // NO_PERMISSION
        17 => Code::TopicNotFound,             // TOPIC_NOT_EXIST
        19 | 20 | 21 => Code::MessageNotFound, // PULL_NOT_FOUND, PULL_RETRY_IMMEDIATELY, PULL_OFFSET_MOVED
        23 => Code::IllegalFilterExpression,   // SUBSCRIPTION_PARSE_FAILED
        24 | 25 => Code::IllegalFilterExpression,
        26 => Code::ConsumerGroupNotFound, // SUBSCRIPTION_GROUP_NOT_EXIST
        208 => Code::MessageNotFound,      // QUERY_NOT_FOUND
        _ => Code::InternalServerError,
    }
}
