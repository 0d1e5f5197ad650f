//! Typed custom headers that both the broker (which decodes them) and the
//! gRPC proxy (which sends them) speak: the POP family, transactions and
//! CONSUMER_SEND_MSG_BACK, with Java's field names. `bname` is Java 5's
//! `RpcRequestHeader.brokerName`; optional fields are left out when `None`.

use crate::command_header;

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
        pub broker_name: Option<String> = "bname",
    }
}

command_header! {
    pub struct PopMessageResponseHeader {
        pub pop_time: i64 = "popTime",
        pub invisible_time: i64 = "invisibleTime",
        pub revive_qid: i32 = "reviveQid",
        pub rest_num: Option<i64> = "restNum",
        pub start_offset_info: Option<String> = "startOffsetInfo",
        pub msg_offset_info: Option<String> = "msgOffsetInfo",
        pub order_count_info: Option<String> = "orderCountInfo",
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
        pub broker_name: Option<String> = "bname",
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
        pub broker_name: Option<String> = "bname",
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
    /// END_TRANSACTION (37).
    pub struct EndTransactionRequestHeader {
        pub topic: Option<String> = "topic",
        pub producer_group: String = "producerGroup",
        pub tran_state_table_offset: i64 = "tranStateTableOffset",
        pub commit_log_offset: i64 = "commitLogOffset",
        pub commit_or_rollback: i32 = "commitOrRollback",
        pub from_transaction_check: Option<bool> = "fromTransactionCheck",
        pub msg_id: Option<String> = "msgId",
        pub transaction_id: Option<String> = "transactionId",
        pub broker_name: Option<String> = "bname",
    }
}

command_header! {
    /// CHECK_TRANSACTION_STATE (39), broker → producer.
    pub struct CheckTransactionStateRequestHeader {
        pub topic: Option<String> = "topic",
        pub tran_state_table_offset: i64 = "tranStateTableOffset",
        pub commit_log_offset: i64 = "commitLogOffset",
        pub msg_id: Option<String> = "msgId",
        pub transaction_id: Option<String> = "transactionId",
        pub offset_msg_id: Option<String> = "offsetMsgId",
        pub broker_name: Option<String> = "bname",
    }
}

command_header! {
    /// CONSUMER_SEND_MSG_BACK (36).
    pub struct ConsumerSendMsgBackRequestHeader {
        pub offset: i64 = "offset",
        pub group: String = "group",
        pub delay_level: i32 = "delayLevel",
        pub origin_msg_id: Option<String> = "originMsgId",
        pub origin_topic: Option<String> = "originTopic",
        pub unit_mode: Option<bool> = "unitMode",
        pub max_reconsume_times: Option<i32> = "maxReconsumeTimes",
        pub broker_name: Option<String> = "bname",
    }
}

/// Java `MessageSysFlag.TRANSACTION_*_TYPE`: the `commitOrRollback` values.
pub const TRANSACTION_NOT_TYPE: i32 = 0;
pub const TRANSACTION_PREPARED_TYPE: i32 = 0x1 << 2;
pub const TRANSACTION_COMMIT_TYPE: i32 = 0x2 << 2;
pub const TRANSACTION_ROLLBACK_TYPE: i32 = 0x3 << 2;

/// `ExtraInfoUtil.getRetry(topic)`: the topic-type digit of a pop's extra
/// info, `"0"` a normal topic, `"1"` `%RETRY%group_topic`, `"2"`
/// `%RETRY%group+topic` (the 5.x pop retry topic).
pub fn retry_flag(topic: &str) -> &'static str {
    match topic.strip_prefix("%RETRY%") {
        Some(rest) if rest.contains('+') => "2",
        Some(_) => "1",
        None => "0",
    }
}

/// `ExtraInfoUtil.buildExtraInfo` with the message's queue offset, the text
/// an ack or invisible-time change sends back (`extraInfo`):
/// `ckOffset popTime invisibleTime reviveQid topicType brokerName queueId queueOffset`.
#[allow(clippy::too_many_arguments)]
pub fn build_extra_info(
    ck_offset: i64,
    pop_time: i64,
    invisible_time: i64,
    revive_qid: i32,
    topic: &str,
    broker_name: &str,
    queue_id: i32,
    queue_offset: i64,
) -> String {
    format!(
        "{ck_offset} {pop_time} {invisible_time} {revive_qid} {} {broker_name} {queue_id} {queue_offset}",
        retry_flag(topic)
    )
}
