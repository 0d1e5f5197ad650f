//! Label values of `request_code` and `response_code`: Java's
//! `RemotingHelper.getRequestCodeDesc`/`getResponseCodeDesc` give the
//! constant's name in lower case, or the number for a code they do not name.
//! The arms follow `remoting::code`; a code named there twice keeps its
//! first name.

use std::borrow::Cow;

pub fn request_code_desc(code: i32) -> Cow<'static, str> {
    use remoting::code::request_code as c;
    Cow::Borrowed(match code {
        c::SEND_MESSAGE => "send_message",
        c::PULL_MESSAGE => "pull_message",
        c::QUERY_MESSAGE => "query_message",
        c::QUERY_CONSUMER_OFFSET => "query_consumer_offset",
        c::UPDATE_CONSUMER_OFFSET => "update_consumer_offset",
        c::UPDATE_AND_CREATE_TOPIC => "update_and_create_topic",
        c::UPDATE_AND_CREATE_TOPIC_LIST => "update_and_create_topic_list",
        c::GET_ALL_TOPIC_CONFIG => "get_all_topic_config",
        c::UPDATE_BROKER_CONFIG => "update_broker_config",
        c::GET_BROKER_CONFIG => "get_broker_config",
        c::GET_BROKER_RUNTIME_INFO => "get_broker_runtime_info",
        c::SEARCH_OFFSET_BY_TIMESTAMP => "search_offset_by_timestamp",
        c::GET_MAX_OFFSET => "get_max_offset",
        c::GET_MIN_OFFSET => "get_min_offset",
        c::GET_EARLIEST_MSG_STORETIME => "get_earliest_msg_storetime",
        c::VIEW_MESSAGE_BY_ID => "view_message_by_id",
        c::HEART_BEAT => "heart_beat",
        c::UNREGISTER_CLIENT => "unregister_client",
        c::CONSUMER_SEND_MSG_BACK => "consumer_send_msg_back",
        c::END_TRANSACTION => "end_transaction",
        c::GET_CONSUMER_LIST_BY_GROUP => "get_consumer_list_by_group",
        c::CHECK_TRANSACTION_STATE => "check_transaction_state",
        c::NOTIFY_CONSUMER_IDS_CHANGED => "notify_consumer_ids_changed",
        c::LOCK_BATCH_MQ => "lock_batch_mq",
        c::UNLOCK_BATCH_MQ => "unlock_batch_mq",
        c::GET_ALL_CONSUMER_OFFSET => "get_all_consumer_offset",
        c::CHECK_CLIENT_CONFIG => "check_client_config",
        c::PUT_KV_CONFIG => "put_kv_config",
        c::GET_KV_CONFIG => "get_kv_config",
        c::DELETE_KV_CONFIG => "delete_kv_config",
        c::REGISTER_BROKER => "register_broker",
        c::UNREGISTER_BROKER => "unregister_broker",
        c::GET_ROUTEINFO_BY_TOPIC => "get_routeinfo_by_topic",
        c::GET_BROKER_CLUSTER_INFO => "get_broker_cluster_info",
        c::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => "update_and_create_subscriptiongroup",
        c::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => "get_all_subscriptiongroup_config",
        c::GET_TOPIC_STATS_INFO => "get_topic_stats_info",
        c::GET_CONSUMER_CONNECTION_LIST => "get_consumer_connection_list",
        c::GET_PRODUCER_CONNECTION_LIST => "get_producer_connection_list",
        c::WIPE_WRITE_PERM_OF_BROKER => "wipe_write_perm_of_broker",
        c::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => "get_all_topic_list_from_nameserver",
        c::DELETE_SUBSCRIPTIONGROUP => "delete_subscriptiongroup",
        c::GET_CONSUME_STATS => "get_consume_stats",
        c::DELETE_TOPIC_IN_BROKER => "delete_topic_in_broker",
        c::DELETE_TOPIC_IN_NAMESRV => "delete_topic_in_namesrv",
        c::REGISTER_TOPIC_IN_NAMESRV => "register_topic_in_namesrv",
        c::GET_KVLIST_BY_NAMESPACE => "get_kvlist_by_namespace",
        c::RESET_CONSUMER_CLIENT_OFFSET => "reset_consumer_client_offset",
        c::GET_CONSUMER_STATUS_FROM_CLIENT => "get_consumer_status_from_client",
        c::INVOKE_BROKER_TO_RESET_OFFSET => "invoke_broker_to_reset_offset",
        c::INVOKE_BROKER_TO_GET_CONSUMER_STATUS => "invoke_broker_to_get_consumer_status",
        c::GET_TOPICS_BY_CLUSTER => "get_topics_by_cluster",
        c::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST => "update_and_create_subscriptiongroup_list",
        c::QUERY_TOPIC_CONSUME_BY_WHO => "query_topic_consume_by_who",
        c::GET_SYSTEM_TOPIC_LIST_FROM_NS => "get_system_topic_list_from_ns",
        c::GET_SYSTEM_TOPIC_LIST_FROM_BROKER => "get_system_topic_list_from_broker",
        c::CLEAN_EXPIRED_CONSUMEQUEUE => "clean_expired_consumequeue",
        c::GET_CONSUMER_RUNNING_INFO => "get_consumer_running_info",
        c::CONSUME_MESSAGE_DIRECTLY => "consume_message_directly",
        c::SEND_MESSAGE_V2 => "send_message_v2",
        c::GET_UNIT_TOPIC_LIST => "get_unit_topic_list",
        c::GET_HAS_UNIT_SUB_TOPIC_LIST => "get_has_unit_sub_topic_list",
        c::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST => "get_has_unit_sub_ununit_topic_list",
        c::VIEW_BROKER_STATS_DATA => "view_broker_stats_data",
        c::CLEAN_UNUSED_TOPIC => "clean_unused_topic",
        c::GET_BROKER_CONSUME_STATS => "get_broker_consume_stats",
        c::UPDATE_NAMESRV_CONFIG => "update_namesrv_config",
        c::GET_NAMESRV_CONFIG => "get_namesrv_config",
        c::SEND_BATCH_MESSAGE => "send_batch_message",
        c::QUERY_CONSUME_QUEUE => "query_consume_queue",
        c::QUERY_DATA_VERSION => "query_data_version",
        c::ADD_WRITE_PERM_OF_BROKER => "add_write_perm_of_broker",
        c::GET_ALL_PRODUCER_INFO => "get_all_producer_info",
        c::GET_TOPIC_CONFIG => "get_topic_config",
        c::LITE_PULL_MESSAGE => "lite_pull_message",
        c::GET_BROKER_MEMBER_GROUP => "get_broker_member_group",
        c::BROKER_HEARTBEAT => "broker_heartbeat",
        c::GET_BROKER_HA_STATUS => "get_broker_ha_status",
        other => return Cow::Owned(other.to_string()),
    })
}

pub fn response_code_desc(code: i32) -> Cow<'static, str> {
    use remoting::code::response_code as c;
    Cow::Borrowed(match code {
        c::SUCCESS => "success",
        c::SYSTEM_ERROR => "system_error",
        c::SYSTEM_BUSY => "system_busy",
        c::REQUEST_CODE_NOT_SUPPORTED => "request_code_not_supported",
        c::TRANSACTION_FAILED => "transaction_failed",
        c::FLUSH_DISK_TIMEOUT => "flush_disk_timeout",
        c::SLAVE_NOT_AVAILABLE => "slave_not_available",
        c::FLUSH_SLAVE_TIMEOUT => "flush_slave_timeout",
        c::MESSAGE_ILLEGAL => "message_illegal",
        c::SERVICE_NOT_AVAILABLE => "service_not_available",
        c::VERSION_NOT_SUPPORTED => "version_not_supported",
        c::NO_PERMISSION => "no_permission",
        c::TOPIC_NOT_EXIST => "topic_not_exist",
        c::TOPIC_EXIST_ALREADY => "topic_exist_already",
        c::PULL_NOT_FOUND => "pull_not_found",
        c::PULL_RETRY_IMMEDIATELY => "pull_retry_immediately",
        c::PULL_OFFSET_MOVED => "pull_offset_moved",
        c::QUERY_NOT_FOUND => "query_not_found",
        c::SUBSCRIPTION_PARSE_FAILED => "subscription_parse_failed",
        c::SUBSCRIPTION_NOT_EXIST => "subscription_not_exist",
        c::SUBSCRIPTION_NOT_LATEST => "subscription_not_latest",
        c::SUBSCRIPTION_GROUP_NOT_EXIST => "subscription_group_not_exist",
        c::FILTER_DATA_NOT_EXIST => "filter_data_not_exist",
        c::FILTER_DATA_NOT_LATEST => "filter_data_not_latest",
        c::INVALID_PARAMETER => "invalid_parameter",
        c::CONSUMER_NOT_ONLINE => "consumer_not_online",
        c::CONSUME_MSG_TIMEOUT => "consume_msg_timeout",
        c::NO_MESSAGE => "no_message",
        c::FLOW_CONTROL => "flow_control",
        c::NOT_LEADER_FOR_QUEUE => "not_leader_for_queue",
        c::ILLEGAL_OPERATION => "illegal_operation",
        c::GO_AWAY => "go_away",
        other => return Cow::Owned(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_java_field_names_in_lower_case() {
        assert_eq!(request_code_desc(310), "send_message_v2");
        assert_eq!(request_code_desc(11), "pull_message");
        assert_eq!(request_code_desc(99_999), "99999");
        assert_eq!(response_code_desc(0), "success");
        assert_eq!(response_code_desc(1), "system_error");
        assert_eq!(response_code_desc(22), "query_not_found");
    }
}
