//! Subscription groups, and the consumer and producer groups online.

use std::collections::BTreeMap;

use remoting::{command_header, RemotingCommand};
use serde::Serialize;

use super::{success_with_json, AdminProcessor, TopicHeader};
use crate::error::BrokerError;
use crate::meta::client::ClientChannel;
use crate::meta::subscription::SubscriptionGroupConfig;

command_header! {
    pub struct GroupHeader {
        pub consumer_group: String = "consumerGroup",
    }
}

command_header! {
    pub struct ProducerGroupHeader {
        pub producer_group: String = "producerGroup",
    }
}

command_header! {
    /// GET_SUBSCRIPTIONGROUP_CONFIG (352): Java's `GetSubscriptionGroupConfigRequestHeader`.
    pub struct GetSubscriptionGroupConfigRequestHeader {
        pub group: String = "group",
    }
}

command_header! {
    pub struct DeleteSubscriptionGroupRequestHeader {
        pub group_name: String = "groupName",
        pub remove_offset: Option<bool> = "removeOffset",
        pub clean_offset: Option<bool> = "cleanOffset",
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Connection {
    client_addr: String,
    client_id: String,
    language: String,
    version: i32,
}

impl From<&ClientChannel> for Connection {
    fn from(c: &ClientChannel) -> Self {
        Connection {
            client_addr: c.conn.peer().to_string(),
            client_id: c.client_id.clone(),
            language: c.language.name().to_owned(),
            version: c.version,
        }
    }
}

impl AdminProcessor {
    pub fn consumer_connections(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: GroupHeader = req.header()?;
        let info = self
            .clients
            .consumer_group(&h.consumer_group)
            .ok_or_else(|| BrokerError::ConsumerNotOnline {
                group: h.consumer_group.clone(),
            })?;
        let connections: Vec<Connection> = info.channels.values().map(Connection::from).collect();
        let body = serde_json::json!({
            "connectionSet": connections,
            "consumeFromWhere": info.consume_from_where,
            "consumeType": info.consume_type,
            "messageModel": info.message_model,
            "subscriptionTable": info.subscriptions,
        });
        Ok(success_with_json(&body))
    }

    pub fn producer_connections(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: ProducerGroupHeader = req.header()?;
        let members = self.clients.producer_group(&h.producer_group);
        if members.is_empty() {
            return Err(BrokerError::System(format!(
                "the producer group[{}] not exist",
                h.producer_group
            )));
        }
        let connections: Vec<Connection> = members.iter().map(Connection::from).collect();
        Ok(success_with_json(
            &serde_json::json!({ "connectionSet": connections }),
        ))
    }

    /// GET_ALL_PRODUCER_INFO (328, 5.x `producer -b`): `ProducerTableInfo`,
    /// `{"data":{group:[ProducerInfo...]}}`.
    pub fn all_producer_info(&self) -> Result<RemotingCommand, BrokerError> {
        let now_ms = remoting::body::now_millis();
        let data: BTreeMap<String, Vec<serde_json::Value>> = self
            .clients
            .producer_groups()
            .into_iter()
            .map(|(group, members)| {
                let infos = members
                    .iter()
                    .map(|c| {
                        let age = c.last_update.elapsed().as_millis() as i64;
                        serde_json::json!({
                            "clientId": c.client_id,
                            "language": c.language.name(),
                            "lastUpdateTimestamp": now_ms - age,
                            "remoteIP": c.conn.peer().to_string(),
                            "version": c.version,
                        })
                    })
                    .collect();
                (group, infos)
            })
            .collect();
        Ok(success_with_json(&serde_json::json!({ "data": data })))
    }

    pub fn topic_consumed_by(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let h: TopicHeader = req.header()?;
        let mut groups = self.clients.groups_subscribing(&h.topic);
        groups.extend(self.offsets.groups_of_topic(&h.topic));
        groups.sort();
        groups.dedup();
        Ok(success_with_json(
            &serde_json::json!({ "groupList": groups }),
        ))
    }

    pub fn all_subscription_groups(&self) -> Result<RemotingCommand, BrokerError> {
        Ok(success_with_json(&self.groups.wrapper()))
    }

    /// GET_SUBSCRIPTIONGROUP_CONFIG (352, asked by the 5.x proxy in cluster
    /// mode before every receive): the group's config as JSON, or
    /// SUBSCRIPTION_GROUP_NOT_EXIST. Like Java, a lookup only: an unknown
    /// group is not created here.
    pub fn subscription_group(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: GetSubscriptionGroupConfigRequestHeader = req.header()?;
        match self.groups.get(&h.group) {
            Some(config) => Ok(success_with_json(&config)),
            None => Err(BrokerError::GroupNotExist { group: h.group }),
        }
    }

    pub fn update_subscription_group(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let config: SubscriptionGroupConfig = remoting::body::from_fastjson(&req.body)
            .map_err(|e| BrokerError::BadBody(format!("bad subscription group body: {e}")))?;
        if config.group_name.is_empty() {
            return Err(BrokerError::System("the group name is empty".into()));
        }
        self.groups.update(config);
        Ok(RemotingCommand::success())
    }

    /// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST (225, 5.x `updateSubGroupList`):
    /// body `{"groupConfigList":[SubscriptionGroupConfig...]}`.
    pub fn update_subscription_group_list(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        #[derive(serde::Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Body {
            group_config_list: Vec<SubscriptionGroupConfig>,
        }
        let body: Body = remoting::body::from_fastjson(&req.body)
            .map_err(|e| BrokerError::BadBody(format!("bad subscription group list body: {e}")))?;
        if body
            .group_config_list
            .iter()
            .any(|g| g.group_name.is_empty())
        {
            return Err(BrokerError::System("the group name is empty".into()));
        }
        for g in body.group_config_list {
            self.groups.update(g);
        }
        Ok(RemotingCommand::success())
    }

    pub fn delete_subscription_group(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: DeleteSubscriptionGroupRequestHeader = req.header()?;
        self.groups.delete(&h.group_name);
        if h.remove_offset.or(h.clean_offset).unwrap_or(false) {
            self.offsets.remove_group(&h.group_name);
        }
        Ok(RemotingCommand::success())
    }
}
