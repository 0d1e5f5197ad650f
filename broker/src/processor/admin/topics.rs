//! Topic table requests: create/update, delete, list, get, system topics.

use std::collections::BTreeMap;

use remoting::body::{DataVersion, TopicConfig, TopicList};
use remoting::{command_header, RemotingCommand};

use super::{success_with_json, AdminProcessor, TopicHeader};
use crate::error::BrokerError;
use crate::meta::topic;
use crate::processor::read_config;

command_header! {
    pub struct CreateTopicRequestHeader {
        pub topic: String = "topic",
        pub default_topic: Option<String> = "defaultTopic",
        pub read_queue_nums: i32 = "readQueueNums",
        pub write_queue_nums: i32 = "writeQueueNums",
        pub perm: i32 = "perm",
        pub topic_filter_type: Option<String> = "topicFilterType",
        pub topic_sys_flag: Option<i32> = "topicSysFlag",
        pub order: Option<bool> = "order",
        pub attributes: Option<String> = "attributes",
        pub force: Option<bool> = "force",
    }
}

/// `+key=value,-key` (5.x `AttributeParser`) applied over `current`.
fn apply_attributes(current: &mut BTreeMap<String, String>, spec: &str) {
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(kv) = item.strip_prefix('+') {
            if let Some((k, v)) = kv.split_once('=') {
                current.insert(k.to_owned(), v.to_owned());
            }
        } else if let Some(k) = item.strip_prefix('-') {
            current.remove(k);
        }
    }
}

impl AdminProcessor {
    pub fn update_and_create_topic(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: CreateTopicRequestHeader = req.header()?;
        topic::validate_topic(&h.topic).map_err(BrokerError::System)?;
        if self.topics.is_system_topic(&h.topic) && !self.topics.contains(&h.topic) {
            return Err(BrokerError::System(format!(
                "The topic[{}] is conflict with system topic.",
                h.topic
            )));
        }
        if h.topic == read_config(&self.config).broker_cluster_name {
            return Err(BrokerError::System(format!(
                "The topic[{}] is conflict with system topic.",
                h.topic
            )));
        }
        let mut config = self
            .topics
            .get(&h.topic)
            .unwrap_or_else(|| TopicConfig::new(&h.topic, 0, 0, 0));
        config.read_queue_nums = h.read_queue_nums;
        config.write_queue_nums = h.write_queue_nums;
        config.perm = h.perm;
        if let Some(t) = h.topic_filter_type.filter(|t| !t.is_empty()) {
            config.topic_filter_type = t;
        }
        config.topic_sys_flag = h.topic_sys_flag.unwrap_or(0);
        config.order = h.order.unwrap_or(false);
        if let Some(a) = h.attributes.as_deref() {
            apply_attributes(&mut config.attributes, a);
        }
        self.topics.update(config);
        Ok(RemotingCommand::success())
    }

    /// UPDATE_AND_CREATE_TOPIC_LIST (18, 5.x): body `{"topicConfigList":[TopicConfig...]}`.
    pub fn update_and_create_topic_list(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        #[derive(serde::Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Body {
            topic_config_list: Vec<TopicConfig>,
        }
        let body: Body = remoting::body::from_fastjson(&req.body)
            .map_err(|e| BrokerError::BadBody(format!("bad topic list body: {e}")))?;
        for t in &body.topic_config_list {
            topic::validate_topic(&t.topic_name).map_err(BrokerError::System)?;
            if self.topics.is_system_topic(&t.topic_name) && !self.topics.contains(&t.topic_name) {
                return Err(BrokerError::System(format!(
                    "The topic[{}] is conflict with system topic.",
                    t.topic_name
                )));
            }
        }
        for t in body.topic_config_list {
            self.topics.update(t);
        }
        Ok(RemotingCommand::success())
    }

    pub fn delete_topic(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: TopicHeader = req.header()?;
        topic::validate_topic(&h.topic).map_err(BrokerError::System)?;
        if self.topics.is_system_topic(&h.topic) {
            return Err(BrokerError::System(format!(
                "The topic[{}] is conflict with system topic.",
                h.topic
            )));
        }
        self.topics.delete(&h.topic);
        self.offsets.remove_topic(&h.topic);
        self.store.with((), |s| {
            if let Err(e) = s.delete_topic(&h.topic) {
                tracing::warn!(topic = %h.topic, error = %e, "cannot delete the topic's consume queues");
            }
        });
        Ok(RemotingCommand::success())
    }

    pub fn all_topic_config(&self) -> Result<RemotingCommand, BrokerError> {
        let mut wrapper = self.topics.wrapper();
        wrapper.topic_queue_mapping_info_map = Some(Default::default());
        wrapper.topic_queue_mapping_detail_map = Some(Default::default());
        wrapper.mapping_data_version = Some(DataVersion::default());
        Ok(success_with_json(&wrapper))
    }

    /// GET_TOPIC_CONFIG (351): body `TopicConfigAndQueueMapping`, which is a
    /// TopicConfig plus a `mappingDetail` that is null (left out) for normal topics.
    pub fn topic_config(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: TopicHeader = req.header()?;
        match self.topics.get(&h.topic) {
            Some(t) => Ok(success_with_json(&t)),
            None => Ok(
                RemotingCommand::response(remoting::response_code::TOPIC_NOT_EXIST)
                    .with_remark(format!("No topic in this broker. topic: {}", h.topic)),
            ),
        }
    }

    pub fn system_topics(&self) -> Result<RemotingCommand, BrokerError> {
        let list: Vec<String> = self
            .topics
            .topic_names()
            .into_iter()
            .filter(|t| self.topics.is_system_topic(t))
            .collect();
        Ok(success_with_json(&TopicList {
            topic_list: list,
            broker_addr: None,
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn attribute_spec() {
        let mut a = BTreeMap::new();
        apply_attributes(&mut a, "+message.type=NORMAL,+x=1");
        apply_attributes(&mut a, "-x");
        assert_eq!(a.len(), 1);
        assert_eq!(a["message.type"], "NORMAL");
    }
}
