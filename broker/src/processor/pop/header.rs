//! POP request and response headers, with Java's field names. The ones the
//! gRPC proxy sends too live in [`remoting::headers`].

use remoting::command_header;
pub use remoting::headers::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, ChangeInvisibleTimeResponseHeader,
    PopMessageRequestHeader, PopMessageResponseHeader,
};

command_header! {
    /// PEEK_MESSAGE (200052).
    pub struct PeekMessageRequestHeader {
        pub consumer_group: String = "consumerGroup",
        pub topic: String = "topic",
        pub queue_id: i32 = "queueId",
        pub max_msg_nums: i32 = "maxMsgNums",
    }
}

command_header! {
    /// NOTIFICATION (200054).
    pub struct NotificationRequestHeader {
        pub consumer_group: String = "consumerGroup",
        pub topic: String = "topic",
        pub queue_id: i32 = "queueId",
        pub poll_time: i64 = "pollTime",
        pub born_time: i64 = "bornTime",
        pub order: Option<bool> = "order",
        pub attempt_id: Option<String> = "attemptId",
    }
}

command_header! {
    pub struct NotificationResponseHeader {
        pub has_msg: bool = "hasMsg",
        pub polling_full: Option<bool> = "pollingFull",
    }
}

command_header! {
    /// POLLING_INFO (200055).
    pub struct PollingInfoRequestHeader {
        pub consumer_group: String = "consumerGroup",
        pub topic: String = "topic",
        pub queue_id: i32 = "queueId",
    }
}

command_header! {
    pub struct PollingInfoResponseHeader {
        pub polling_num: i32 = "pollingNum",
    }
}
