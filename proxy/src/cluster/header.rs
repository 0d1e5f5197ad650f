//! The remoting headers the proxy sends to brokers, with Java's field
//! names. The POP, transaction and send-back ones are the broker's own, from
//! [`remoting::headers`].

use remoting::command_header;
pub use remoting::headers::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, ChangeInvisibleTimeResponseHeader,
    CheckTransactionStateRequestHeader, ConsumerSendMsgBackRequestHeader,
    EndTransactionRequestHeader, PopMessageRequestHeader, PopMessageResponseHeader,
    TRANSACTION_COMMIT_TYPE, TRANSACTION_ROLLBACK_TYPE,
};

command_header! {
    /// GET_SUBSCRIPTIONGROUP_CONFIG (352).
    pub struct GetSubscriptionGroupConfigRequestHeader {
        pub group: String = "group",
    }
}

command_header! {
    /// GET_TOPIC_CONFIG (351).
    pub struct GetTopicConfigRequestHeader {
        pub topic: String = "topic",
    }
}

/// Java `RequestCode.GET_SUBSCRIPTIONGROUP_CONFIG`.
pub const GET_SUBSCRIPTIONGROUP_CONFIG: i32 = 352;
/// Java `ConsumeInitMode.MAX`: a new group starts at the queue's end, as
/// the gRPC proxy asks.
pub const CONSUME_INIT_MODE_MAX: i32 = 1;
