//! QUERY_MESSAGE (12): messages by `KEYS` word or `UNIQ_KEY` from the store's
//! key index (Java `QueryMessageProcessor.queryMessage`).

use std::sync::Arc;

use remoting::code::response_code as rc;
use remoting::{command_header, RemotingCommand};

use crate::error::BrokerError;
use crate::store::BrokerStore;

/// Java `MixAll.UNIQUE_MSG_QUERY_FLAG`.
pub const UNIQUE_MSG_QUERY_FLAG: &str = "_UNIQUE_KEY_QUERY";
/// Java `MessageStoreConfig.defaultQueryMaxNum`: `maxNum` of a unique-key query.
pub const DEFAULT_QUERY_MAX_NUM: i32 = 32;

command_header! {
    pub struct QueryMessageRequestHeader {
        pub topic: String = "topic",
        pub key: String = "key",
        pub max_num: i32 = "maxNum",
        pub begin_timestamp: i64 = "beginTimestamp",
        pub end_timestamp: i64 = "endTimestamp",
    }
}

command_header! {
    pub struct QueryMessageResponseHeader {
        pub index_last_update_timestamp: i64 = "indexLastUpdateTimestamp",
        pub index_last_update_phyoffset: i64 = "indexLastUpdatePhyoffset",
    }
}

pub struct QueryProcessor {
    pub store: Arc<BrokerStore>,
}

impl QueryProcessor {
    /// SUCCESS with the concatenated records, or QUERY_NOT_FOUND; both carry
    /// the index header. The store caps `maxNum` at 64 (`maxMsgsNumBatch`).
    pub fn query_message(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let mut h: QueryMessageRequestHeader = req.header()?;
        if req.ext(UNIQUE_MSG_QUERY_FLAG) == Some("true") {
            h.max_num = DEFAULT_QUERY_MAX_NUM;
        }
        let r = self.store.with(store::QueryResult::default(), |s| {
            s.query_by_key(
                &h.topic,
                &h.key,
                h.max_num,
                h.begin_timestamp,
                h.end_timestamp,
            )
        });
        let header = QueryMessageResponseHeader {
            index_last_update_timestamp: r.index_last_update_timestamp,
            index_last_update_phyoffset: r.index_last_update_phyoffset,
        };
        if r.messages.is_empty() {
            return Ok(RemotingCommand::response(rc::QUERY_NOT_FOUND)
                .with_header(&header)
                .with_remark("can not find message, maybe time range not correct"));
        }
        let mut body = Vec::with_capacity(r.messages.iter().map(|m| m.len()).sum());
        for m in &r.messages {
            body.extend_from_slice(m);
        }
        Ok(RemotingCommand::success()
            .with_header(&header)
            .with_body(body))
    }
}
