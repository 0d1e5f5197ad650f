//! POP request and response headers, with Java's field names.

use remoting::command_header;

command_header! {
    /// POP_MESSAGE (200050); PEEK_MESSAGE's subset too.
    pub struct PopMessageRequestHeader {
        pub consumer_group: String = "consumerGroup",
        pub topic: String = "topic",
        pub queue_id: i32 = "queueId",
        pub max_msg_nums: i32 = "maxMsgNums",
        pub invisible_time: i64 = "invisibleTime",
        pub poll_time: i64 = "pollTime",
        pub born_time: i64 = "bornTime",
        pub init_mode: i32 = "initMode",
        pub exp_type: Option<String> = "expType",
        pub exp: Option<String> = "exp",
        pub order: Option<bool> = "order",
        pub attempt_id: Option<String> = "attemptId",
    }
}

command_header! {
    pub struct PopMessageResponseHeader {
        pub pop_time: i64 = "popTime",
        pub invisible_time: i64 = "invisibleTime",
        pub revive_qid: i32 = "reviveQid",
        pub rest_num: i64 = "restNum",
        pub start_offset_info: Option<String> = "startOffsetInfo",
        pub msg_offset_info: Option<String> = "msgOffsetInfo",
        pub order_count_info: Option<String> = "orderCountInfo",
    }
}

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
    /// ACK_MESSAGE (200051).
    pub struct AckMessageRequestHeader {
        pub consumer_group: String = "consumerGroup",
        pub topic: String = "topic",
        pub queue_id: i32 = "queueId",
        pub extra_info: String = "extraInfo",
        pub offset: i64 = "offset",
    }
}

command_header! {
    /// CHANGE_MESSAGE_INVISIBLETIME (200053).
    pub struct ChangeInvisibleTimeRequestHeader {
        pub consumer_group: String = "consumerGroup",
        pub topic: String = "topic",
        pub queue_id: i32 = "queueId",
        pub extra_info: String = "extraInfo",
        pub offset: i64 = "offset",
        pub invisible_time: i64 = "invisibleTime",
    }
}

command_header! {
    pub struct ChangeInvisibleTimeResponseHeader {
        pub pop_time: i64 = "popTime",
        pub invisible_time: i64 = "invisibleTime",
        pub revive_qid: i32 = "reviveQid",
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
