//! Errors: a failed request (answered with a response code) is kept apart
//! from a failure that stops the server.

use remoting::code::response_code;
use remoting::{CommandError, HeaderError};

use crate::config::ConfigError;
use crate::kv::KvError;
use crate::register_body::BodyError;

/// A request that failed; [`NamesrvError::to_command_error`] is the one
/// place that maps it to a response code and remark.
#[derive(Debug, thiserror::Error)]
pub enum NamesrvError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("crc32 not match")]
    Crc32Mismatch { expected: i32, actual: i32 },
    #[error("Failed to decode RegisterBrokerBody: {0}")]
    RegisterBody(#[source] BodyError),
    #[error("register broker failed")]
    RegisterRejected,
    #[error("the connection closed before the broker was registered")]
    ConnectionClosed,
    #[error("malformed {what} body: {source}")]
    Body {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("No topic route info in name server for the topic: {0}\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details.")]
    TopicNotExist(String),
    #[error("No config item, Namespace: {namespace} Key: {key}")]
    KvNotFound { namespace: String, key: String },
    #[error("No config item, Namespace: {0}")]
    KvNamespaceNotFound(String),
    #[error("namespace or key is null")]
    KvKeyMissing,
    /// A topic list disabled by `enableAllTopicList` / `enableTopicList`.
    #[error("disable")]
    Disabled,
    #[error("name server not ready")]
    NotReady,
    #[error("Can not update config in black list.")]
    ConfigBlackListed,
    #[error("{0}")]
    Config(#[from] ConfigError),
}

impl NamesrvError {
    pub fn to_command_error(&self) -> CommandError {
        let code = match self {
            NamesrvError::TopicNotExist(_) => response_code::TOPIC_NOT_EXIST,
            NamesrvError::KvNotFound { .. } | NamesrvError::KvNamespaceNotFound(_) => {
                response_code::QUERY_NOT_FOUND
            }
            NamesrvError::ConfigBlackListed => response_code::NO_PERMISSION,
            NamesrvError::Header(_)
            | NamesrvError::Crc32Mismatch { .. }
            | NamesrvError::RegisterBody(_)
            | NamesrvError::RegisterRejected
            | NamesrvError::ConnectionClosed
            | NamesrvError::Body { .. }
            | NamesrvError::KvKeyMissing
            | NamesrvError::Disabled
            | NamesrvError::NotReady
            | NamesrvError::Config(_) => response_code::SYSTEM_ERROR,
        };
        CommandError::new(code, self.to_string())
    }
}

/// Why the server cannot start or must stop.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Kv(#[from] KvError),
    #[error("server i/o error: {0}")]
    Io(#[from] std::io::Error),
}
