//! Queue offsets (max, min, by time, earliest store time) and the
//! consumer offset table.

use remoting::{command_header, RemotingCommand};

use super::AdminProcessor;
use crate::error::BrokerError;

command_header! {
    pub struct TopicQueueHeader {
        pub topic: String = "topic",
        pub queue_id: i32 = "queueId",
    }
}

command_header! {
    pub struct SearchOffsetRequestHeader {
        pub topic: String = "topic",
        pub queue_id: i32 = "queueId",
        pub timestamp: i64 = "timestamp",
        pub boundary_type: Option<String> = "boundaryType",
    }
}

impl AdminProcessor {
    pub fn all_consumer_offsets(&self) -> Result<RemotingCommand, BrokerError> {
        Ok(RemotingCommand::success().with_body(self.offsets.to_json()))
    }

    pub fn max_offset(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: TopicQueueHeader = req.header()?;
        let offset = self
            .store
            .with(0, |s| s.max_offset(&h.topic, h.queue_id).get());
        Ok(RemotingCommand::success().with_ext("offset", offset.to_string()))
    }

    pub fn min_offset(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: TopicQueueHeader = req.header()?;
        let offset = self
            .store
            .with(0, |s| s.min_offset(&h.topic, h.queue_id).get());
        Ok(RemotingCommand::success().with_ext("offset", offset.to_string()))
    }

    pub fn search_offset(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: SearchOffsetRequestHeader = req.header()?;
        let offset = self.store.with(0, |s| {
            s.offset_by_time(&h.topic, h.queue_id, h.timestamp).get()
        });
        Ok(RemotingCommand::success().with_ext("offset", offset.to_string()))
    }

    pub fn earliest_store_time(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: TopicQueueHeader = req.header()?;
        let ts = self
            .store
            .with(None, |s| s.earliest_store_time(&h.topic, h.queue_id))
            .unwrap_or(-1);
        Ok(RemotingCommand::success().with_ext("timestamp", ts.to_string()))
    }
}
