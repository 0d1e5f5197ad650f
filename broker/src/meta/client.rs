//! Producer and consumer groups and the connections in them
//! (`ProducerManager`, `ConsumerManager`), filled by heartbeats and emptied by
//! UNREGISTER_CLIENT, connection close or expiry. When a consumer group's set
//! of connections changes, every member gets NOTIFY_CONSUMER_IDS_CHANGED so it
//! rebalances at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use remoting::body::SubscriptionData;
use remoting::code::request_code;
use remoting::{Connection, LanguageCode, RemotingCommand};
use tracing::{debug, info};

/// One client connection as a group member.
#[derive(Debug, Clone)]
pub struct ClientChannel {
    pub conn: Connection,
    pub client_id: String,
    pub language: LanguageCode,
    pub version: i32,
    pub last_update: Instant,
}

impl ClientChannel {
    pub fn new(conn: Connection, client_id: String, language: LanguageCode, version: i32) -> Self {
        ClientChannel {
            conn,
            client_id,
            language,
            version,
            last_update: Instant::now(),
        }
    }
}

/// A consumer group: members and what they subscribe.
#[derive(Debug, Clone, Default)]
pub struct ConsumerGroupInfo {
    pub channels: BTreeMap<u64, ClientChannel>,
    pub subscriptions: BTreeMap<String, SubscriptionData>,
    pub consume_type: String,
    pub message_model: String,
    pub consume_from_where: String,
}

impl ConsumerGroupInfo {
    /// Java `ConsumerGroupInfo.updateSubscription`: adds new topics, keeps the
    /// newest version of each, drops topics no longer subscribed.
    fn update_subscriptions(&mut self, subs: &[SubscriptionData]) -> bool {
        let mut changed = false;
        for s in subs {
            match self.subscriptions.get(&s.topic) {
                None => {
                    self.subscriptions.insert(s.topic.clone(), s.clone());
                    changed = true;
                }
                Some(old) if s.sub_version > old.sub_version => {
                    self.subscriptions.insert(s.topic.clone(), s.clone());
                }
                Some(_) => {}
            }
        }
        let before = self.subscriptions.len();
        self.subscriptions
            .retain(|t, _| subs.iter().any(|s| &s.topic == t));
        changed || self.subscriptions.len() != before
    }

    pub fn client_ids(&self) -> Vec<String> {
        self.channels
            .values()
            .map(|c| c.client_id.clone())
            .collect()
    }
}

/// What a consumer heartbeat registers.
pub struct ConsumerRegistration<'a> {
    pub group: &'a str,
    pub channel: ClientChannel,
    pub consume_type: &'a str,
    pub message_model: &'a str,
    pub consume_from_where: &'a str,
    pub subscriptions: &'a [SubscriptionData],
    /// The group's `notifyConsumerIdsChangedEnable`.
    pub notify: bool,
}

#[derive(Default)]
pub struct ClientManager {
    consumers: Mutex<HashMap<String, ConsumerGroupInfo>>,
    producers: Mutex<HashMap<String, BTreeMap<u64, ClientChannel>>>,
    /// The broker's `notifyConsumerIdsChangedEnable`.
    notify_enabled: bool,
}

impl ClientManager {
    pub fn new(notify_enabled: bool) -> Self {
        ClientManager {
            notify_enabled,
            ..Default::default()
        }
    }

    /// Registers or refreshes a consumer; returns whether the group changed.
    pub fn register_consumer(&self, reg: ConsumerRegistration<'_>) -> bool {
        let (changed, members) = {
            let mut groups = self.consumers.lock().unwrap_or_else(|p| p.into_inner());
            let info = groups.entry(reg.group.to_owned()).or_default();
            info.consume_type = reg.consume_type.to_owned();
            info.message_model = reg.message_model.to_owned();
            info.consume_from_where = reg.consume_from_where.to_owned();
            let id = reg.channel.conn.id();
            let new_channel = match info.channels.get_mut(&id) {
                Some(existing) => {
                    existing.last_update = Instant::now();
                    existing.client_id = reg.channel.client_id.clone();
                    false
                }
                None => {
                    info!(group = reg.group, client_id = %reg.channel.client_id, peer = %reg.channel.conn.peer(), "new consumer connection");
                    info.channels.insert(id, reg.channel);
                    true
                }
            };
            let subs_changed = info.update_subscriptions(reg.subscriptions);
            (new_channel || subs_changed, members_of(info))
        };
        if changed && reg.notify {
            self.notify_group(reg.group, members);
        }
        changed
    }

    pub fn unregister_consumer(&self, group: &str, conn: &Connection, notify: bool) {
        if let Some(members) = self.remove_consumer_channel(group, conn.id()) {
            if notify {
                self.notify_group(group, members);
            }
        }
    }

    /// Removes a channel; the remaining members if it was there.
    fn remove_consumer_channel(&self, group: &str, conn_id: u64) -> Option<Vec<Connection>> {
        let mut groups = self.consumers.lock().unwrap_or_else(|p| p.into_inner());
        let info = groups.get_mut(group)?;
        let removed = info.channels.remove(&conn_id)?;
        info!(%group, client_id = %removed.client_id, "consumer connection removed");
        let members = members_of(info);
        if info.channels.is_empty() {
            groups.remove(group);
        }
        Some(members)
    }

    pub fn register_producer(&self, group: &str, channel: ClientChannel) {
        let mut producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        let members = producers.entry(group.to_owned()).or_default();
        match members.get_mut(&channel.conn.id()) {
            Some(existing) => existing.last_update = Instant::now(),
            None => {
                debug!(%group, client_id = %channel.client_id, "new producer connection");
                members.insert(channel.conn.id(), channel);
            }
        }
    }

    pub fn unregister_producer(&self, group: &str, conn: &Connection) {
        let mut producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(members) = producers.get_mut(group) {
            members.remove(&conn.id());
            if members.is_empty() {
                producers.remove(group);
            }
        }
    }

    /// A connection closed: drop it everywhere and tell the groups it left.
    pub fn connection_closed(&self, conn: &Connection) {
        self.remove_everywhere(|c| c.conn.id() == conn.id());
    }

    /// Drops channels silent for longer than `timeout` (Java
    /// `channelExpiredTimeout`), closing their connections.
    pub fn expire(&self, timeout: Duration) {
        let now = Instant::now();
        self.remove_everywhere(|c| {
            let expired = now.duration_since(c.last_update) > timeout;
            if expired {
                info!(client_id = %c.client_id, peer = %c.conn.peer(), "client channel expired");
                c.conn.close();
            }
            expired
        });
    }

    fn remove_everywhere(&self, mut drop_it: impl FnMut(&ClientChannel) -> bool) {
        let mut to_notify = Vec::new();
        {
            let mut groups = self.consumers.lock().unwrap_or_else(|p| p.into_inner());
            groups.retain(|group, info| {
                let before = info.channels.len();
                info.channels.retain(|_, c| !drop_it(c));
                if info.channels.len() != before && !info.channels.is_empty() {
                    to_notify.push((group.clone(), members_of(info)));
                }
                !info.channels.is_empty()
            });
        }
        {
            let mut producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
            producers.retain(|_, members| {
                members.retain(|_, c| !drop_it(c));
                !members.is_empty()
            });
        }
        for (group, members) in to_notify {
            self.notify_group(&group, members);
        }
    }

    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        let groups = self.consumers.lock().unwrap_or_else(|p| p.into_inner());
        groups
            .get(group)
            .map(ConsumerGroupInfo::client_ids)
            .unwrap_or_default()
    }

    pub fn consumer_group(&self, group: &str) -> Option<ConsumerGroupInfo> {
        self.consumers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(group)
            .cloned()
    }

    pub fn subscription(&self, group: &str, topic: &str) -> Option<SubscriptionData> {
        let groups = self.consumers.lock().unwrap_or_else(|p| p.into_inner());
        groups.get(group)?.subscriptions.get(topic).cloned()
    }

    /// Online groups subscribing `topic`.
    pub fn groups_subscribing(&self, topic: &str) -> Vec<String> {
        let groups = self.consumers.lock().unwrap_or_else(|p| p.into_inner());
        groups
            .iter()
            .filter(|(_, i)| i.subscriptions.contains_key(topic))
            .map(|(g, _)| g.clone())
            .collect()
    }

    pub fn producer_group(&self, group: &str) -> Vec<ClientChannel> {
        let producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        producers
            .get(group)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every producer group and its members (GET_ALL_PRODUCER_INFO).
    pub fn producer_groups(&self) -> Vec<(String, Vec<ClientChannel>)> {
        let producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        producers
            .iter()
            .map(|(g, m)| (g.clone(), m.values().cloned().collect()))
            .collect()
    }

    fn notify_group(&self, group: &str, members: Vec<Connection>) {
        if !self.notify_enabled || members.is_empty() {
            return;
        }
        debug!(%group, members = members.len(), "notifying consumer ids changed");
        for conn in members {
            let cmd = RemotingCommand::request(request_code::NOTIFY_CONSUMER_IDS_CHANGED)
                .with_ext("consumerGroup", group);
            tokio::spawn(async move {
                if let Err(e) = conn.oneway(cmd).await {
                    debug!(peer = %conn.peer(), error = %e, "cannot notify consumer");
                }
            });
        }
    }
}

fn members_of(info: &ConsumerGroupInfo) -> Vec<Connection> {
    info.channels.values().map(|c| c.conn.clone()).collect()
}
