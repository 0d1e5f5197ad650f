//! Why a request failed, and the one mapping to a response code and remark.

use remoting::code::response_code as rc;
use remoting::{CommandError, HeaderError};
use store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("{}", store_remark(.0))]
    Store(#[from] StoreError),
    #[error("topic[{topic}] not exist, apply first please!")]
    TopicNotExist { topic: String },
    #[error("{0}")]
    NoPermission(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    MessageIllegal(String),
    #[error("subscription group [{group}] does not exist")]
    GroupNotExist { group: String },
    #[error("{0}")]
    SubscriptionNotExist(String),
    #[error("{0}")]
    SubscriptionNotLatest(String),
    #[error("{0}")]
    SubscriptionParseFailed(String),
    #[error("the consumer group[{group}] not online")]
    ConsumerNotOnline { group: String },
    #[error("{0}")]
    BadBody(String),
    #[error("{0}")]
    System(String),
}

impl BrokerError {
    pub fn code(&self) -> i32 {
        match self {
            BrokerError::Header(_) | BrokerError::BadBody(_) | BrokerError::System(_) => {
                rc::SYSTEM_ERROR
            }
            BrokerError::Store(e) => match e {
                StoreError::MessageTooLarge { .. }
                | StoreError::PropertiesTooLarge { .. }
                | StoreError::InvalidTopic(_)
                | StoreError::InvalidQueueId(_)
                | StoreError::MixedBatch
                | StoreError::BadBatch(_) => rc::MESSAGE_ILLEGAL,
                StoreError::DiskFull
                | StoreError::ShutDown
                | StoreError::NotWriter
                | StoreError::SlaveMode => rc::SERVICE_NOT_AVAILABLE,
                StoreError::Busy => rc::SYSTEM_BUSY,
                StoreError::Locked(_)
                | StoreError::Corrupt { .. }
                | StoreError::Io(_)
                | StoreError::ReplicaOffset { .. } => rc::SYSTEM_ERROR,
                // Java answers SYSTEM_ERROR with this remark.
                StoreError::InSyncReplicasNotEnough => rc::SYSTEM_ERROR,
            },
            BrokerError::TopicNotExist { .. } => rc::TOPIC_NOT_EXIST,
            BrokerError::NoPermission(_) => rc::NO_PERMISSION,
            BrokerError::InvalidParameter(_) => rc::INVALID_PARAMETER,
            BrokerError::MessageIllegal(_) => rc::MESSAGE_ILLEGAL,
            BrokerError::GroupNotExist { .. } => rc::SUBSCRIPTION_GROUP_NOT_EXIST,
            BrokerError::SubscriptionNotExist(_) => rc::SUBSCRIPTION_NOT_EXIST,
            BrokerError::SubscriptionNotLatest(_) => rc::SUBSCRIPTION_NOT_LATEST,
            BrokerError::SubscriptionParseFailed(_) => rc::SUBSCRIPTION_PARSE_FAILED,
            BrokerError::ConsumerNotOnline { .. } => rc::CONSUMER_NOT_ONLINE,
        }
    }
}

/// The remark a store failure answers with.
fn store_remark(e: &StoreError) -> String {
    match e {
        StoreError::MessageTooLarge { size, max } => {
            format!("message too large: {size} bytes, max {max}")
        }
        StoreError::PropertiesTooLarge { size, .. } => {
            format!("properties too large: {size} bytes")
        }
        StoreError::ShutDown => "store shut down".to_owned(),
        StoreError::Locked(_) | StoreError::Corrupt { .. } | StoreError::Io(_) => {
            format!("store i/o error: {e}")
        }
        _ => e.to_string(),
    }
}

impl From<BrokerError> for CommandError {
    fn from(e: BrokerError) -> Self {
        CommandError::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_like_java() {
        let full: CommandError = BrokerError::from(StoreError::DiskFull).into();
        assert_eq!(full.code, rc::SERVICE_NOT_AVAILABLE);
        let big: CommandError =
            BrokerError::from(StoreError::MessageTooLarge { size: 5, max: 4 }).into();
        assert_eq!(big.code, rc::MESSAGE_ILLEGAL);
        let missing: CommandError = BrokerError::TopicNotExist { topic: "T".into() }.into();
        assert_eq!(
            (missing.code, missing.remark.as_str()),
            (
                rc::TOPIC_NOT_EXIST,
                "topic[T] not exist, apply first please!"
            )
        );
    }
}
