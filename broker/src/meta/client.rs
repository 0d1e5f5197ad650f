//! Producer and consumer groups and the connections in them
//! (`ProducerManager`, `ConsumerManager`), filled by heartbeats and emptied by
//! UNREGISTER_CLIENT, connection close or expiry. When a consumer group's set
//! of connections (or its subscriptions) changes, every member gets
//! NOTIFY_CONSUMER_IDS_CHANGED so it rebalances at once.
//!
//! Cost per heartbeat does not grow with the group: a heartbeat that changes
//! nothing only refreshes its channel's timestamp. Notifications are
//! coalesced per group (see [`NOTIFY_COALESCE_WINDOW`]): Java notifies every
//! member on every change, so N consumers joining one group cost it N²/2
//! messages; here the first change of a quiet group is sent at once and the
//! changes in the following window become one more notification at its end
//! carrying the membership as it is then.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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

/// After a group's members were notified, further changes of the group
/// within this window are sent as one notification when it ends. A group
/// with one change (a consumer starting or leaving) is notified at once,
/// as in Java; a storm of N joins costs each member at most
/// 1 + storm length / window notifications instead of up to N.
pub const NOTIFY_COALESCE_WINDOW: Duration = Duration::from_millis(1000);

type ConsumerTable = Arc<Mutex<HashMap<String, ConsumerGroupInfo>>>;

/// Per-group notification state.
#[derive(Debug, Clone, Copy)]
struct NotifyState {
    last_sent: Instant,
    /// A trailing notification is scheduled for the end of the window.
    pending: bool,
}

#[derive(Default)]
struct Notifier {
    groups: Mutex<HashMap<String, NotifyState>>,
    /// NOTIFY_CONSUMER_IDS_CHANGED requests sent (one per member).
    sent: AtomicU64,
    /// Group changes absorbed into an already scheduled notification.
    coalesced: AtomicU64,
}

#[derive(Default)]
pub struct ClientManager {
    consumers: ConsumerTable,
    producers: Mutex<HashMap<String, BTreeMap<u64, ClientChannel>>>,
    /// The broker's `notifyConsumerIdsChangedEnable`.
    notify_enabled: bool,
    notifier: Arc<Notifier>,
    window: Duration,
}

impl ClientManager {
    pub fn new(notify_enabled: bool) -> Self {
        Self::with_notify_window(notify_enabled, NOTIFY_COALESCE_WINDOW)
    }

    /// As [`ClientManager::new`] with another coalescing window (tests).
    pub fn with_notify_window(notify_enabled: bool, window: Duration) -> Self {
        ClientManager {
            notify_enabled,
            window,
            ..Default::default()
        }
    }

    /// Registers or refreshes a consumer; returns whether the group changed.
    pub fn register_consumer(&self, reg: ConsumerRegistration<'_>) -> bool {
        let changed = {
            let mut groups = self.consumers.lock().unwrap_or_else(|p| p.into_inner());
            let info = match groups.get_mut(reg.group) {
                Some(info) => info,
                None => groups.entry(reg.group.to_owned()).or_default(),
            };
            set_if_different(&mut info.consume_type, reg.consume_type);
            set_if_different(&mut info.message_model, reg.message_model);
            set_if_different(&mut info.consume_from_where, reg.consume_from_where);
            let id = reg.channel.conn.id();
            let new_channel = match info.channels.get_mut(&id) {
                Some(existing) => {
                    existing.last_update = Instant::now();
                    set_if_different(&mut existing.client_id, &reg.channel.client_id);
                    false
                }
                None => {
                    info!(group = reg.group, client_id = %reg.channel.client_id, peer = %reg.channel.conn.peer(), "new consumer connection");
                    info.channels.insert(id, reg.channel);
                    true
                }
            };
            let subs_changed = info.update_subscriptions(reg.subscriptions);
            new_channel || subs_changed
        };
        if changed && reg.notify {
            self.notify_group(reg.group);
        }
        changed
    }

    pub fn unregister_consumer(&self, group: &str, conn: &Connection, notify: bool) {
        if self.remove_consumer_channel(group, conn.id()) && notify {
            self.notify_group(group);
        }
    }

    /// Removes a channel; whether it was there.
    fn remove_consumer_channel(&self, group: &str, conn_id: u64) -> bool {
        let mut groups = self.consumers.lock().unwrap_or_else(|p| p.into_inner());
        let Some(info) = groups.get_mut(group) else {
            return false;
        };
        let Some(removed) = info.channels.remove(&conn_id) else {
            return false;
        };
        info!(%group, client_id = %removed.client_id, "consumer connection removed");
        if info.channels.is_empty() {
            groups.remove(group);
        }
        true
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
                    to_notify.push(group.clone());
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
        for group in to_notify {
            self.notify_group(&group);
        }
        // Forget the notification state of quiet groups.
        let window = self.window;
        self.notifier
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, st| st.pending || st.last_sent.elapsed() < window);
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

    /// The group's membership changed: notify its members now, or fold the
    /// change into the notification scheduled for the end of the window.
    fn notify_group(&self, group: &str) {
        if !self.notify_enabled {
            return;
        }
        let now = Instant::now();
        let wait = {
            let mut groups = self
                .notifier
                .groups
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match groups.get_mut(group) {
                Some(st) if st.pending => {
                    self.notifier.coalesced.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(st) if now.duration_since(st.last_sent) < self.window => {
                    st.pending = true;
                    Some(self.window - now.duration_since(st.last_sent))
                }
                Some(st) => {
                    st.last_sent = now;
                    None
                }
                None => {
                    groups.insert(
                        group.to_owned(),
                        NotifyState {
                            last_sent: now,
                            pending: false,
                        },
                    );
                    None
                }
            }
        };
        match wait {
            None => send_notifications(&self.notifier, &self.consumers, group),
            Some(wait) => {
                let Ok(rt) = tokio::runtime::Handle::try_current() else {
                    return;
                };
                let notifier = self.notifier.clone();
                let consumers = self.consumers.clone();
                let group = group.to_owned();
                rt.spawn(async move {
                    tokio::time::sleep(wait).await;
                    if let Some(st) = notifier
                        .groups
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(&group)
                    {
                        st.pending = false;
                        st.last_sent = Instant::now();
                    }
                    send_notifications(&notifier, &consumers, &group);
                });
            }
        }
    }
}

fn set_if_different(field: &mut String, value: &str) {
    if field != value {
        value.clone_into(field);
    }
}

/// One NOTIFY_CONSUMER_IDS_CHANGED to every current member of `group`.
fn send_notifications(notifier: &Notifier, consumers: &ConsumerTable, group: &str) {
    let members = {
        let groups = consumers.lock().unwrap_or_else(|p| p.into_inner());
        match groups.get(group) {
            Some(info) => members_of(info),
            None => return,
        }
    };
    if members.is_empty() {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let sent = notifier
        .sent
        .fetch_add(members.len() as u64, Ordering::Relaxed)
        + members.len() as u64;
    debug!(
        %group,
        members = members.len(),
        sent_in_all = sent,
        coalesced_in_all = notifier.coalesced.load(Ordering::Relaxed),
        "notifying consumer ids changed"
    );
    for conn in members {
        let cmd = RemotingCommand::request(request_code::NOTIFY_CONSUMER_IDS_CHANGED)
            .with_ext("consumerGroup", group);
        rt.spawn(async move {
            if let Err(e) = conn.oneway(cmd).await {
                debug!(peer = %conn.peer(), error = %e, "cannot notify consumer");
            }
        });
    }
}

fn members_of(info: &ConsumerGroupInfo) -> Vec<Connection> {
    info.channels.values().map(|c| c.conn.clone()).collect()
}
