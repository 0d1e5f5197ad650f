//! The proxy's remoting port (`remotingListenPort`): remoting clients use
//! the proxy as their name server and as every broker, as with Java's
//! proxy (`RemotingProtocolServer` and its activities).
//!
//! * GET_ROUTEINFO_BY_TOPIC is answered from the name servers (through the
//!   route cache) with every broker address, masters and slaves, replaced
//!   by the proxy's own remoting address, so the client sends everything
//!   here. Like Java, the answer carries the queue and broker data only.
//! * Requests for one broker carry its name: `bname` (Java's
//!   `RpcRequestHeader`, set by the 5.x clients on sends, pulls, offsets,
//!   send-backs, end-transaction, pop, ack), or `n` for SEND_MESSAGE_V2 and
//!   SEND_BATCH_MESSAGE; LOCK_BATCH_MQ / UNLOCK_BATCH_MQ go to the broker of
//!   the first queue in their body, as Java's proxy. They are forwarded unchanged to that broker's
//!   master and its answer is relayed. Java refuses a request without the
//!   name (VERSION_NOT_SUPPORTED); we send it to the first broker with a
//!   master in the route of the header's `topic` instead (else to the
//!   first master of `rocketMQClusterName`), so 4.x clients work against a
//!   single-broker cluster.
//! * PULL_MESSAGE is held as long as the broker holds it: the wait is the
//!   request's `suspendTimeoutMillis` plus 10 s (POP_MESSAGE: `pollTime`
//!   plus 10 s); other forwards wait 3 s, as Java's proxy.
//! * HEART_BEAT is forwarded to every master of the cluster (so brokers
//!   know each group's subscription for pulls and the producer groups for
//!   transaction checks) and kept here per connection: GET_CONSUMER_LIST_BY
//!   _GROUP is answered from it, since every client shares the proxy's one
//!   connection to a broker and a broker keeps one client per connection.
//!   When the clients of a group change here, the group's clients get
//!   NOTIFY_CONSUMER_IDS_CHANGED from the proxy; when the last client of a
//!   group leaves, the brokers get UNREGISTER_CLIENT.
//! * CHECK_TRANSACTION_STATE from a broker goes to a client of the
//!   message's producer group (`PGROUP`) that is connected here.
//! * CHECK_CLIENT_CONFIG is answered SUCCESS, as Java's proxy does.
//! * QUERY_ASSIGNMENT, SET_MESSAGE_REQUEST_MODE and BATCH_ACK_MESSAGE are
//!   not served by Java's proxy on this port (a 5.x push consumer then
//!   falls back to rebalancing itself and pulling); we serve them so that
//!   a group set to POP pops through the proxy:
//!   - QUERY_ASSIGNMENT goes to every master of the topic: only a broker
//!     knows the group's request mode. In POP mode the answers (queues
//!     named by their broker) are merged; a broker's share of queues there
//!     does not depend on which client asks. In PULL mode the brokers'
//!     allocation is of no use (each sees one client, the proxy, for all
//!     of ours), so the proxy allocates the route's readable queues itself
//!     among the group's clients connected here, with the client's
//!     strategy (AVG, AVG_BY_CIRCLE), as a broker would.
//!   - SET_MESSAGE_REQUEST_MODE goes to every master of the topic.
//!   - BATCH_ACK_MESSAGE goes to the broker its body names (`brokerName`;
//!     the client builds one body per broker).
//!
//! Any other code is answered REQUEST_CODE_NOT_SUPPORTED. A malformed frame
//! closes its connection only (the transport's rule).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use remoting::body::{
    from_fastjson, to_json, GetConsumerListByGroupResponseBody, HeartbeatData,
    LockBatchRequestBody, TopicRouteData,
};
use remoting::header::GetRouteInfoRequestHeader;
use remoting::transport::HandlerResult;
use remoting::{
    command_header, request_code as rq, response_code, CommandError, Connection, RemotingCommand,
    Router, ServerConfig,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::clients::Clients;
use super::config::ClusterConfig;
use super::error::ClusterError;
use super::route::Routes;

/// Java's proxy gives a broker 3 s for a forwarded request.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);
/// Added to a held pull's (or pop's) own wait, as Java's `PullMessageActivity`.
const HOLD_MARGIN: Duration = Duration::from_secs(10);
/// Upper bound of a held request's wait, whatever the client asks.
const MAX_HOLD: Duration = Duration::from_secs(300);
/// Java `ProxyConfig.channelExpiredTimeout` (120 s): a client not heard
/// from for this long no longer counts in GET_CONSUMER_LIST_BY_GROUP.
const CLIENT_EXPIRY: Duration = Duration::from_secs(120);
/// Java `AbstractRemotingActivity.BROKER_NAME_FIELD`.
const BROKER_NAME_FIELD: &str = "bname";
/// The broker name's key in SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE headers.
const BROKER_NAME_FIELD_V2: &str = "n";
/// Java `MessageConst.PROPERTY_PRODUCER_GROUP`.
const PROPERTY_PRODUCER_GROUP: &str = "PGROUP";
/// Java `MixAll.MASTER_ID`.
const MASTER_ID: i64 = 0;

command_header! {
    /// UNREGISTER_CLIENT (35).
    struct UnregisterClientHeader {
        client_id: Option<String> = "clientID",
        producer_group: Option<String> = "producerGroup",
        consumer_group: Option<String> = "consumerGroup",
    }
}

command_header! {
    /// GET_CONSUMER_LIST_BY_GROUP (38) and NOTIFY_CONSUMER_IDS_CHANGED (40).
    struct ConsumerGroupHeader {
        consumer_group: String = "consumerGroup",
    }
}

/// One client connection's registration in a group.
struct Member {
    conn: Connection,
    client_id: String,
    last_heartbeat: Instant,
}

/// Producer and consumer groups of the clients connected to this port, by
/// connection (Java's `ProducerManager` / `ConsumerManager` of the proxy).
#[derive(Default)]
struct Registry {
    consumers: HashMap<String, HashMap<u64, Member>>,
    producers: HashMap<String, HashMap<u64, Member>>,
}

/// What a registry change asks of the caller.
#[derive(Default, Debug, PartialEq)]
struct Changes {
    /// Consumer groups whose set of connections changed: their clients
    /// are told (NOTIFY_CONSUMER_IDS_CHANGED).
    notify: Vec<String>,
    /// (producer group, consumer group, client id) with no client left here:
    /// the brokers are told (UNREGISTER_CLIENT).
    gone: Vec<(Option<String>, Option<String>, String)>,
}

impl Registry {
    fn heartbeat(&mut self, conn: &Connection, data: &HeartbeatData) -> Changes {
        let now = Instant::now();
        let mut changes = Changes::default();
        let member = || Member {
            conn: conn.clone(),
            client_id: data.client_id.clone(),
            last_heartbeat: now,
        };
        for c in &data.consumer_data_set {
            let members = self.consumers.entry(c.group_name.clone()).or_default();
            let fresh = members
                .get(&conn.id())
                .is_none_or(|m| m.client_id != data.client_id);
            members.insert(conn.id(), member());
            if fresh {
                changes.notify.push(c.group_name.clone());
            }
        }
        for p in &data.producer_data_set {
            self.producers
                .entry(p.group_name.clone())
                .or_default()
                .insert(conn.id(), member());
        }
        changes
    }

    /// Removes `conn` from the groups named (UNREGISTER_CLIENT).
    fn unregister(
        &mut self,
        conn: &Connection,
        client_id: &str,
        producer_group: Option<&str>,
        consumer_group: Option<&str>,
    ) -> Changes {
        let mut changes = Changes::default();
        if let Some(g) = producer_group {
            if remove(&mut self.producers, g, conn.id()) {
                changes
                    .gone
                    .push((Some(g.to_owned()), None, client_id.to_owned()));
            }
        }
        if let Some(g) = consumer_group {
            let had = self
                .consumers
                .get(g)
                .is_some_and(|m| m.contains_key(&conn.id()));
            if remove(&mut self.consumers, g, conn.id()) {
                changes
                    .gone
                    .push((None, Some(g.to_owned()), client_id.to_owned()));
            } else if had {
                changes.notify.push(g.to_owned());
            }
        }
        changes
    }

    /// Removes `conn` from every group (it closed).
    fn closed(&mut self, conn: &Connection) -> Changes {
        let mut changes = Changes::default();
        let id = conn.id();
        let groups: Vec<(String, String)> = self
            .producers
            .iter()
            .filter_map(|(g, m)| m.get(&id).map(|m| (g.clone(), m.client_id.clone())))
            .collect();
        for (g, client) in groups {
            if remove(&mut self.producers, &g, id) {
                changes.gone.push((Some(g), None, client));
            }
        }
        let groups: Vec<(String, String)> = self
            .consumers
            .iter()
            .filter_map(|(g, m)| m.get(&id).map(|m| (g.clone(), m.client_id.clone())))
            .collect();
        for (g, client) in groups {
            if remove(&mut self.consumers, &g, id) {
                changes.gone.push((None, Some(g), client));
            } else {
                changes.notify.push(g);
            }
        }
        changes
    }

    /// The client ids of `group` heard from within [`CLIENT_EXPIRY`].
    fn consumer_ids(&self, group: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .consumers
            .get(group)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(|m| !m.conn.is_closed() && m.last_heartbeat.elapsed() < CLIENT_EXPIRY)
            .map(|m| m.client_id.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        ids.sort();
        ids
    }

    fn consumer_conns(&self, group: &str) -> Vec<Connection> {
        self.consumers
            .get(group)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(|m| !m.conn.is_closed())
            .map(|m| m.conn.clone())
            .collect()
    }

    /// The producer of `group` heard from last.
    fn producer_conn(&self, group: &str) -> Option<Connection> {
        self.producers
            .get(group)?
            .values()
            .filter(|m| !m.conn.is_closed())
            .max_by_key(|m| m.last_heartbeat)
            .map(|m| m.conn.clone())
    }
}

/// Removes `id` from `group`; true when the group is now empty (and gone).
fn remove(groups: &mut HashMap<String, HashMap<u64, Member>>, group: &str, id: u64) -> bool {
    let Some(members) = groups.get_mut(group) else {
        return false;
    };
    if members.remove(&id).is_none() {
        return false;
    }
    if members.is_empty() {
        groups.remove(group);
        return true;
    }
    false
}

/// The remoting port's state; cheap to share between connections.
pub struct RemotingPort {
    cluster_name: String,
    /// `remotingAccessAddr`: the host put in route answers; without it, the
    /// address the client reached us on.
    access_host: Option<String>,
    clients: Arc<Clients>,
    routes: Arc<Routes>,
    registry: Arc<Mutex<Registry>>,
}

impl RemotingPort {
    /// The port's own connections to name servers and brokers, with the
    /// route cache settings of `config`.
    pub fn new(config: &ClusterConfig) -> Arc<RemotingPort> {
        let registry: Arc<Mutex<Registry>> = Arc::default();
        let routes_slot: Arc<OnceLock<Arc<Routes>>> = Arc::default();
        // Requests brokers send on our connections to them.
        let broker_router = {
            let registry = registry.clone();
            let routes_slot = routes_slot.clone();
            Router::new().route(
                rq::CHECK_TRANSACTION_STATE,
                move |conn: Connection, req: RemotingCommand| {
                    let registry = registry.clone();
                    let routes = routes_slot.get().cloned();
                    async move {
                        relay_check(&registry, routes.as_deref(), &conn, req).await;
                        // One-way from the broker: nothing is written back.
                        Ok(RemotingCommand::success())
                    }
                },
            )
        };
        let clients = Arc::new(Clients::new(Arc::new(broker_router)));
        let routes = Arc::new(Routes::new(
            config.namesrv_addr.clone(),
            clients.clone(),
            config.route_refresh,
            config.route_expire,
        ));
        let _ = routes_slot.set(routes.clone());
        let access_host = match config.raw.get("remotingAccessAddr") {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            _ => None,
        };
        Arc::new(RemotingPort {
            cluster_name: config.cluster_name.clone(),
            access_host,
            clients,
            routes,
            registry,
        })
    }

    /// The request-code table of the port.
    pub fn router(self: &Arc<Self>) -> Router {
        let mut router = Router::new();
        let local: [(i32, Local); 7] = [
            (rq::GET_ROUTEINFO_BY_TOPIC, Local::Route),
            (rq::HEART_BEAT, Local::Heartbeat),
            (rq::UNREGISTER_CLIENT, Local::Unregister),
            (rq::GET_CONSUMER_LIST_BY_GROUP, Local::ConsumerList),
            (rq::CHECK_CLIENT_CONFIG, Local::CheckClientConfig),
            (rq::QUERY_ASSIGNMENT, Local::QueryAssignment),
            (rq::SET_MESSAGE_REQUEST_MODE, Local::SetRequestMode),
        ];
        for (code, what) in local {
            let me = self.clone();
            router = router.route(code, move |conn: Connection, req: RemotingCommand| {
                let me = me.clone();
                async move { me.local(what, &conn, req).await }
            });
        }
        for code in FORWARDED {
            let me = self.clone();
            router = router.route(code, move |_conn: Connection, req: RemotingCommand| {
                let me = me.clone();
                async move { me.forward(req).await }
            });
        }
        let me = self.clone();
        router.on_close(move |conn: &Connection| {
            let changes = lock(&me.registry).closed(conn);
            if changes != Changes::default() {
                let me = me.clone();
                tokio::spawn(async move { me.apply(changes).await });
            }
        })
    }

    /// Serves `listener` until `shutdown`, then closes the broker connections.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let router = Arc::new(self.router());
        let served = remoting::serve(listener, router, ServerConfig::default(), shutdown).await;
        self.clients.close_all().await;
        served
    }

    async fn local(&self, what: Local, conn: &Connection, req: RemotingCommand) -> HandlerResult {
        match what {
            Local::Route => self.route(conn, &req).await,
            Local::Heartbeat => self.heartbeat(conn, req).await,
            Local::Unregister => self.unregister(conn, req).await,
            Local::ConsumerList => {
                let h: ConsumerGroupHeader = req.header()?;
                let ids = lock(&self.registry).consumer_ids(&h.consumer_group);
                if ids.is_empty() {
                    return Err(CommandError::system(format!(
                        "no consumer for this group, {}",
                        h.consumer_group
                    )));
                }
                Ok(RemotingCommand::success().with_body(to_json(
                    &GetConsumerListByGroupResponseBody {
                        consumer_id_list: ids,
                    },
                )))
            }
            Local::CheckClientConfig => Ok(RemotingCommand::success().with_remark("")),
            Local::QueryAssignment => self.query_assignment(req).await,
            Local::SetRequestMode => self.set_request_mode(req).await,
        }
    }

    /// The masters (name, address) of `topic`'s route.
    async fn topic_masters(&self, topic: &str) -> Result<Vec<(String, String)>, CommandError> {
        let route = self.routes.route(topic).await.map_err(|e| match e {
            ClusterError::TopicNotFound(t) => CommandError::new(
                response_code::TOPIC_NOT_EXIST,
                format!("No topic route info in name server for the topic: {t}"),
            ),
            e => CommandError::system(e.to_string()),
        })?;
        let mut out: Vec<(String, String)> = Vec::new();
        for b in &route.broker_datas {
            if let Some(addr) = b.broker_addrs.get(&MASTER_ID) {
                if !out.iter().any(|(_, a)| a == addr) {
                    out.push((b.broker_name.clone(), addr.clone()));
                }
            }
        }
        Ok(out)
    }

    /// Sends `req` to every address and collects the answers, in order.
    async fn invoke_all(
        &self,
        addrs: &[(String, String)],
        req: &RemotingCommand,
    ) -> Vec<Result<RemotingCommand, String>> {
        let sends = addrs.iter().map(|(_, addr)| async move {
            self.clients
                .invoke(addr, req.clone(), FORWARD_TIMEOUT)
                .await
                .map_err(|e| format!("{addr}: {e}"))
        });
        futures::future::join_all(sends).await
    }

    /// QUERY_ASSIGNMENT (see the module docs).
    async fn query_assignment(&self, req: RemotingCommand) -> HandlerResult {
        let body: serde_json::Value = from_fastjson(&req.body)
            .map_err(|e| CommandError::system(format!("bad QueryAssignmentRequestBody: {e}")))?;
        let text = |k: &str| body.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let (topic, group, client) = (text("topic"), text("consumerGroup"), text("clientId"));
        let masters = self.topic_masters(topic).await?;
        let answers = self.invoke_all(&masters, &req).await;
        let mut merged: Vec<serde_json::Value> = Vec::new();
        let mut failure: Option<RemotingCommand> = None;
        let mut answered = false;
        for a in answers {
            match a {
                Ok(r) if r.code == response_code::SUCCESS => {
                    answered = true;
                    let v: serde_json::Value = from_fastjson(&r.body).unwrap_or_default();
                    if let Some(list) = v.get("messageQueueAssignments").and_then(|l| l.as_array())
                    {
                        for a in list {
                            if !merged.contains(a) {
                                merged.push(a.clone());
                            }
                        }
                    }
                }
                Ok(r) => {
                    failure.get_or_insert(r);
                }
                Err(e) => warn!(error = %e, "QUERY_ASSIGNMENT not forwarded"),
            }
        }
        if !answered {
            return match failure {
                Some(r) => Ok(r),
                None => Err(CommandError::system(format!(
                    "no broker of {topic} answered QUERY_ASSIGNMENT"
                ))),
            };
        }
        let pop = merged
            .iter()
            .any(|a| a.get("mode").and_then(|m| m.as_str()) == Some("POP"));
        let assignments = if pop {
            Some(
                merged
                    .into_iter()
                    .filter(|a| a.get("mode").and_then(|m| m.as_str()) == Some("POP"))
                    .collect(),
            )
        } else {
            let route = self.routes.route(topic).await.ok();
            let all: Vec<(String, i32)> = route
                .as_deref()
                .map(|r| {
                    super::route::queues_of(topic, r, false)
                        .into_iter()
                        .map(|q| (q.broker_name, q.queue_id))
                        .collect()
                })
                .unwrap_or_default();
            let cids = lock(&self.registry).consumer_ids(group);
            allocate(&all, &cids, client, text("strategyName"), text("messageModel")).map(|qs| {
                qs.into_iter()
                    .map(|(broker, queue)| {
                        serde_json::json!({
                            "messageQueue": {"brokerName": broker, "queueId": queue, "topic": topic},
                            "mode": "PULL",
                        })
                    })
                    .collect::<Vec<_>>()
            })
        };
        debug!(%topic, %group, %client, pop, queues = assignments.as_ref().map(Vec::len), "queue assignment");
        let out = match assignments {
            Some(list) => serde_json::json!({ "messageQueueAssignments": list }),
            None => serde_json::json!({}),
        };
        Ok(RemotingCommand::success().with_body(to_json(&out)))
    }

    /// SET_MESSAGE_REQUEST_MODE: to every master of the topic; the first
    /// refusal is the answer.
    async fn set_request_mode(&self, req: RemotingCommand) -> HandlerResult {
        let body: serde_json::Value = from_fastjson(&req.body).map_err(|e| {
            CommandError::system(format!("bad SetMessageRequestModeRequestBody: {e}"))
        })?;
        let topic = body
            .get("topic")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let masters = self.topic_masters(topic).await?;
        for a in self.invoke_all(&masters, &req).await {
            match a {
                Ok(r) if r.code == response_code::SUCCESS => {}
                Ok(r) => return Ok(r),
                Err(e) => return Err(CommandError::system(e)),
            }
        }
        Ok(RemotingCommand::success())
    }

    /// `host:port` the client is to use for every broker.
    fn advertised(&self, conn: &Connection) -> String {
        let local = conn.local();
        match &self.access_host {
            Some(host) => format!("{host}:{}", local.port()),
            None => local.to_string(),
        }
    }

    async fn route(&self, conn: &Connection, req: &RemotingCommand) -> HandlerResult {
        let h: GetRouteInfoRequestHeader = req.header()?;
        match self.routes.route(&h.topic).await {
            Ok(route) => Ok(RemotingCommand::success()
                .with_body(to_json(&through_proxy(&route, &self.advertised(conn))))),
            Err(ClusterError::TopicNotFound(t)) => Err(CommandError::new(
                response_code::TOPIC_NOT_EXIST,
                format!("No topic route info in name server for the topic: {t}"),
            )),
            Err(e) => Err(CommandError::system(e.to_string())),
        }
    }

    async fn heartbeat(&self, conn: &Connection, req: RemotingCommand) -> HandlerResult {
        let data: HeartbeatData = from_fastjson(&req.body)
            .map_err(|e| CommandError::system(format!("bad heartbeat body: {e}")))?;
        let changes = lock(&self.registry).heartbeat(conn, &data);
        // Awaited, so that a consumer's first pull finds its subscription
        // on the broker; a broker that fails is logged, not reported (the
        // client heartbeats again).
        let masters = self.cluster_masters().await;
        let sends = masters.iter().map(|addr| {
            let cmd = req.clone();
            async move {
                match self.clients.invoke(addr, cmd, FORWARD_TIMEOUT).await {
                    Ok(r) if r.code == response_code::SUCCESS => {}
                    Ok(r) => warn!(%addr, code = r.code, remark = ?r.remark, "broker refused a heartbeat"),
                    Err(e) => warn!(%addr, error = %e, "heartbeat not forwarded"),
                }
            }
        });
        futures::future::join_all(sends).await;
        self.apply(changes).await;
        Ok(RemotingCommand::success().with_remark(""))
    }

    async fn unregister(&self, conn: &Connection, req: RemotingCommand) -> HandlerResult {
        let h: UnregisterClientHeader = req.header()?;
        let changes = lock(&self.registry).unregister(
            conn,
            h.client_id.as_deref().unwrap_or_default(),
            h.producer_group.as_deref().filter(|g| !g.is_empty()),
            h.consumer_group.as_deref().filter(|g| !g.is_empty()),
        );
        self.apply(changes).await;
        Ok(RemotingCommand::success().with_remark(""))
    }

    /// Tells clients and brokers about registry changes.
    async fn apply(&self, changes: Changes) {
        for group in &changes.notify {
            let conns = lock(&self.registry).consumer_conns(group);
            for c in conns {
                let cmd = RemotingCommand::request(rq::NOTIFY_CONSUMER_IDS_CHANGED).with_header(
                    &ConsumerGroupHeader {
                        consumer_group: group.clone(),
                    },
                );
                if let Err(e) = c.oneway(cmd).await {
                    debug!(peer = %c.peer(), error = %e, "consumer ids change not sent");
                }
            }
        }
        if changes.gone.is_empty() {
            return;
        }
        let masters = self.cluster_masters().await;
        for (producer_group, consumer_group, client_id) in changes.gone {
            for addr in &masters {
                let cmd = RemotingCommand::request(rq::UNREGISTER_CLIENT).with_header(
                    &UnregisterClientHeader {
                        client_id: Some(client_id.clone()),
                        producer_group: producer_group.clone(),
                        consumer_group: consumer_group.clone(),
                    },
                );
                if let Err(e) = self.clients.invoke(addr, cmd, FORWARD_TIMEOUT).await {
                    debug!(%addr, error = %e, "unregister not forwarded");
                }
            }
        }
    }

    /// Every master of `rocketMQClusterName` (the route of the topic named
    /// after the cluster) and every master seen in a route.
    async fn cluster_masters(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Ok(route) = self.routes.route(&self.cluster_name).await {
            out.extend(
                route
                    .broker_datas
                    .iter()
                    .filter_map(|b| b.broker_addrs.get(&MASTER_ID).cloned()),
            );
        }
        for (_, addr) in self.routes.masters() {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
        out
    }

    /// Sends `req` as it is to the broker it names and relays the answer.
    async fn forward(&self, req: RemotingCommand) -> HandlerResult {
        let addr = self.target(&req).await?;
        if req.is_oneway() {
            if let Err(e) = self.clients.oneway(&addr, req).await {
                debug!(%addr, error = %e, "one-way request not forwarded");
            }
            // Not written: the transport answers no one-way request.
            return Ok(RemotingCommand::success());
        }
        let timeout = hold_time(&req);
        self.clients
            .invoke(&addr, req, timeout)
            .await
            .map_err(|e| CommandError::system(e.to_string()))
    }

    /// The master address of the broker `req` is for.
    async fn target(&self, req: &RemotingCommand) -> Result<String, CommandError> {
        let named = match req.code {
            rq::SEND_MESSAGE_V2 | rq::SEND_BATCH_MESSAGE => req
                .ext(BROKER_NAME_FIELD_V2)
                .or_else(|| req.ext(BROKER_NAME_FIELD))
                .map(str::to_owned),
            // The broker of the first queue of the body, as Java's proxy.
            rq::LOCK_BATCH_MQ | rq::UNLOCK_BATCH_MQ => {
                from_fastjson::<LockBatchRequestBody>(&req.body)
                    .ok()
                    .and_then(|b| b.mq_set.into_iter().next())
                    .map(|mq| mq.broker_name)
            }
            // The client builds one body per broker and names it there.
            rq::BATCH_ACK_MESSAGE => from_fastjson::<serde_json::Value>(&req.body)
                .ok()
                .and_then(|b| b.get("brokerName")?.as_str().map(str::to_owned)),
            _ => req.ext(BROKER_NAME_FIELD).map(str::to_owned),
        };
        if let Some(name) = named.filter(|n| !n.is_empty()) {
            return self.routes.broker_addr(&name).await.map_err(|e| match e {
                ClusterError::BrokerNotFound(b) => {
                    CommandError::system(format!("broker {b} cannot find"))
                }
                e => CommandError::system(e.to_string()),
            });
        }
        // No broker name (clients before 5.x): the first broker of the
        // topic's route, else of the cluster.
        let topic = match req.code {
            rq::SEND_MESSAGE_V2 | rq::SEND_BATCH_MESSAGE => req.ext("b"),
            _ => req.ext("topic"),
        };
        if let Some(topic) = topic.filter(|t| !t.is_empty()) {
            if let Ok(route) = self.routes.route(topic).await {
                if let Some(addr) = first_master(&route) {
                    return Ok(addr);
                }
            }
        }
        self.cluster_masters()
            .await
            .into_iter()
            .next()
            .ok_or_else(|| {
                CommandError::new(
                    response_code::VERSION_NOT_SUPPORTED,
                    "Request doesn't have field bname",
                )
            })
    }
}

/// The requests relayed to the broker they name.
const FORWARDED: [i32; 19] = [
    rq::SEND_MESSAGE,
    rq::SEND_MESSAGE_V2,
    rq::SEND_BATCH_MESSAGE,
    rq::CONSUMER_SEND_MSG_BACK,
    rq::END_TRANSACTION,
    rq::PULL_MESSAGE,
    rq::LITE_PULL_MESSAGE,
    rq::QUERY_CONSUMER_OFFSET,
    rq::UPDATE_CONSUMER_OFFSET,
    rq::GET_MAX_OFFSET,
    rq::GET_MIN_OFFSET,
    rq::SEARCH_OFFSET_BY_TIMESTAMP,
    rq::GET_EARLIEST_MSG_STORETIME,
    rq::POP_MESSAGE,
    rq::ACK_MESSAGE,
    rq::CHANGE_MESSAGE_INVISIBLETIME,
    rq::BATCH_ACK_MESSAGE,
    rq::LOCK_BATCH_MQ,
    rq::UNLOCK_BATCH_MQ,
];

#[derive(Clone, Copy)]
enum Local {
    Route,
    Heartbeat,
    Unregister,
    ConsumerList,
    CheckClientConfig,
    QueryAssignment,
    SetRequestMode,
}

/// The queues (broker name, queue id) `client` gets of `all` in PULL mode:
/// every queue when broadcasting; else the share of the named strategy
/// (Java's `AllocateMessageQueueAveragely` / `...AveragelyByCircle`) among
/// `cids` (sorted), queues in (broker, id) order. `None` (no assignment
/// list) for an unknown strategy or no client, as a broker answers.
fn allocate(
    all: &[(String, i32)],
    cids: &[String],
    client: &str,
    strategy: &str,
    model: &str,
) -> Option<Vec<(String, i32)>> {
    let mut all = all.to_vec();
    all.sort();
    all.dedup();
    if model == "BROADCASTING" {
        return Some(all);
    }
    if cids.is_empty() {
        return None;
    }
    let Some(index) = cids.iter().position(|c| c == client) else {
        return Some(vec![]);
    };
    let (n, c) = (all.len(), cids.len());
    match strategy {
        "AVG" => {
            if n == 0 {
                return Some(vec![]);
            }
            let rest = n % c;
            let size = if n <= c {
                1
            } else if index < rest {
                n / c + 1
            } else {
                n / c
            };
            let start = if index < rest {
                index * size
            } else {
                index * size + rest
            };
            Some(
                all.into_iter()
                    .skip(start)
                    .take(size.min(n.saturating_sub(start)))
                    .collect(),
            )
        }
        "AVG_BY_CIRCLE" => Some(
            all.into_iter()
                .enumerate()
                .filter(|(i, _)| i % c == index)
                .map(|(_, q)| q)
                .collect(),
        ),
        _ => None,
    }
}

/// How long a forwarded request may take: a held pull or pop as long as
/// the broker may hold it plus [`HOLD_MARGIN`], anything else 3 s.
fn hold_time(req: &RemotingCommand) -> Duration {
    let held = match req.code {
        rq::PULL_MESSAGE | rq::LITE_PULL_MESSAGE => req.ext("suspendTimeoutMillis"),
        rq::POP_MESSAGE => req.ext("pollTime"),
        _ => None,
    };
    match held.and_then(|v| v.trim().parse::<u64>().ok()) {
        Some(ms) => (Duration::from_millis(ms) + HOLD_MARGIN).min(MAX_HOLD),
        None => FORWARD_TIMEOUT,
    }
}

/// `route` with every broker address (each id) replaced by `proxy`, and
/// only its queue and broker data, as Java's `ProxyTopicRouteData`.
fn through_proxy(route: &TopicRouteData, proxy: &str) -> TopicRouteData {
    let mut out = TopicRouteData {
        queue_datas: route.queue_datas.clone(),
        broker_datas: route.broker_datas.clone(),
        ..Default::default()
    };
    for b in &mut out.broker_datas {
        b.broker_addrs = b
            .broker_addrs
            .keys()
            .map(|id| (*id, proxy.to_owned()))
            .collect::<BTreeMap<_, _>>();
    }
    out
}

/// The master of the first broker (in queue-data order) that has one.
fn first_master(route: &TopicRouteData) -> Option<String> {
    route
        .queue_datas
        .iter()
        .filter_map(|q| {
            route
                .broker_datas
                .iter()
                .find(|b| b.broker_name == q.broker_name)
        })
        .chain(route.broker_datas.iter())
        .find_map(|b| b.broker_addrs.get(&MASTER_ID).cloned())
}

/// Relays a broker's CHECK_TRANSACTION_STATE to a client of the message's
/// producer group connected to this port, with the broker's name in `bname`
/// so the client's END_TRANSACTION comes back to the right broker.
async fn relay_check(
    registry: &Mutex<Registry>,
    routes: Option<&Routes>,
    broker: &Connection,
    mut req: RemotingCommand,
) {
    let stored = match store::StoredMessage::decode(&req.body) {
        Ok(m) => m,
        Err(e) => {
            warn!(peer = %broker.peer(), error = %e, "bad CHECK_TRANSACTION_STATE body");
            return;
        }
    };
    let Some(group) = store::properties::get(&stored.properties, PROPERTY_PRODUCER_GROUP) else {
        debug!(peer = %broker.peer(), "transaction check without a producer group");
        return;
    };
    let Some(client) = lock(registry).producer_conn(group) else {
        debug!(%group, "transaction check for a producer group not connected here");
        return;
    };
    if req.ext(BROKER_NAME_FIELD).is_none_or(str::is_empty) {
        let peer = broker.peer().to_string();
        if let Some((name, _)) = routes
            .map(Routes::masters)
            .unwrap_or_default()
            .into_iter()
            .find(|(_, addr)| *addr == peer)
        {
            req.set_ext(BROKER_NAME_FIELD, name);
        }
    }
    if let Err(e) = client.oneway(req).await {
        debug!(peer = %client.peer(), error = %e, "transaction check not relayed");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Binds the remoting port on `bind` (like the gRPC port) and serves it
/// until `shutdown`; returns the task and the bound address.
pub async fn start(
    config: &ClusterConfig,
    bind: &str,
    shutdown: CancellationToken,
) -> std::io::Result<(
    std::net::SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    let listener = remoting::transport::bind(bind, config.remoting_port, 1024).await?;
    let local = listener.local_addr()?;
    let port = RemotingPort::new(config);
    info!(%local, "remoting port listening");
    let task = tokio::spawn(port.serve(listener, shutdown));
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoting::body::{BrokerData, ConsumerData, ProducerData, QueueData};

    #[test]
    fn routes_point_every_broker_at_the_proxy() {
        let route = TopicRouteData {
            broker_datas: vec![BrokerData {
                broker_name: "b".into(),
                cluster: "c".into(),
                broker_addrs: [(0, "10.0.0.1:10911".into()), (1, "10.0.0.2:10911".into())].into(),
                ..Default::default()
            }],
            queue_datas: vec![QueueData {
                broker_name: "b".into(),
                perm: 6,
                read_queue_nums: 4,
                write_queue_nums: 4,
                topic_sys_flag: 0,
            }],
            order_topic_conf: Some("b:4".into()),
            filter_server_table: [("10.0.0.1:10911".to_owned(), vec!["x".to_owned()])].into(),
        };
        let out = through_proxy(&route, "127.0.0.1:8080");
        assert_eq!(
            out.broker_datas[0].broker_addrs,
            BTreeMap::from([(0, "127.0.0.1:8080".into()), (1, "127.0.0.1:8080".into())])
        );
        assert_eq!(out.broker_datas[0].broker_name, "b");
        assert_eq!(out.queue_datas, route.queue_datas);
        assert!(out.filter_server_table.is_empty() && out.order_topic_conf.is_none());
        assert_eq!(first_master(&route).as_deref(), Some("10.0.0.1:10911"));
    }

    #[test]
    fn held_requests_wait_longer() {
        let pull =
            RemotingCommand::request(rq::PULL_MESSAGE).with_ext("suspendTimeoutMillis", "20000");
        assert_eq!(hold_time(&pull), Duration::from_secs(30));
        let bad = RemotingCommand::request(rq::PULL_MESSAGE).with_ext("suspendTimeoutMillis", "x");
        assert_eq!(hold_time(&bad), FORWARD_TIMEOUT);
        let huge = RemotingCommand::request(rq::POP_MESSAGE).with_ext("pollTime", "99999999999");
        assert_eq!(hold_time(&huge), MAX_HOLD);
        assert_eq!(
            hold_time(&RemotingCommand::request(rq::SEND_MESSAGE)),
            FORWARD_TIMEOUT
        );
    }

    #[test]
    fn pull_assignments_split_the_route_among_clients() {
        let all: Vec<(String, i32)> = [("b", 1), ("a", 0), ("a", 1), ("b", 0), ("a", 2)]
            .iter()
            .map(|(b, q)| (b.to_string(), *q))
            .collect();
        let q = |v: &[(&str, i32)]| -> Option<Vec<(String, i32)>> {
            Some(v.iter().map(|(b, q)| (b.to_string(), *q)).collect())
        };
        let cids = ["x".to_owned(), "y".to_owned()];
        let avg = |c: &str| allocate(&all, &cids, c, "AVG", "CLUSTERING");
        assert_eq!(avg("x"), q(&[("a", 0), ("a", 1), ("a", 2)]));
        assert_eq!(avg("y"), q(&[("b", 0), ("b", 1)]));
        assert_eq!(avg("z"), q(&[]));
        assert_eq!(
            allocate(&all, &cids, "y", "AVG_BY_CIRCLE", "CLUSTERING"),
            q(&[("a", 1), ("b", 0)])
        );
        assert_eq!(
            allocate(&all, &cids, "y", "AVG", "BROADCASTING").map(|v| v.len()),
            Some(5)
        );
        assert_eq!(
            allocate(&all, &cids, "x", "CONSISTENT_HASH", "CLUSTERING"),
            None
        );
        assert_eq!(allocate(&all, &[], "x", "AVG", "CLUSTERING"), None);
        // More clients than queues: one each, the last ones none.
        let many: Vec<String> = (0..7).map(|i| i.to_string()).collect();
        assert_eq!(
            allocate(&all, &many, "4", "AVG", "CLUSTERING"),
            q(&[("b", 1)])
        );
        assert_eq!(allocate(&all, &many, "5", "AVG", "CLUSTERING"), q(&[]));
    }

    fn conn() -> (Connection, tokio::io::DuplexStream) {
        let (a, b) = tokio::io::duplex(1024);
        let (r, w) = tokio::io::split(a);
        let addr: std::net::SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let c = Connection::spawn(
            r,
            w,
            addr,
            addr,
            Arc::new(Router::new()),
            CancellationToken::new(),
        );
        (c, b)
    }

    fn hb(client: &str, consumer: Option<&str>, producer: Option<&str>) -> HeartbeatData {
        HeartbeatData {
            client_id: client.into(),
            consumer_data_set: consumer
                .map(|g| ConsumerData {
                    group_name: g.into(),
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            producer_data_set: producer
                .map(|g| ProducerData {
                    group_name: g.into(),
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn registry_tracks_groups_per_connection() {
        let (a, _a) = conn();
        let (b, _b) = conn();
        let mut r = Registry::default();
        let ch = r.heartbeat(&a, &hb("A", Some("g"), Some("p")));
        assert_eq!(ch.notify, ["g"]);
        assert_eq!(
            r.heartbeat(&a, &hb("A", Some("g"), Some("p"))),
            Changes::default()
        );
        assert_eq!(r.heartbeat(&b, &hb("B", Some("g"), None)).notify, ["g"]);
        assert_eq!(r.consumer_ids("g"), ["A", "B"]);
        assert!(r.producer_conn("p") == Some(a.clone()));
        // A leaves the group: B is told, nothing for the brokers yet.
        let ch = r.unregister(&a, "A", None, Some("g"));
        assert_eq!((ch.notify, ch.gone), (vec!["g".to_owned()], vec![]));
        assert_eq!(r.consumer_ids("g"), ["B"]);
        // B closes: the last of g; A closes: the last of p.
        let ch = r.closed(&b);
        assert_eq!(ch.gone, [(None, Some("g".to_owned()), "B".to_owned())]);
        let ch = r.closed(&a);
        assert_eq!(ch.gone, [(Some("p".to_owned()), None, "A".to_owned())]);
        assert!(r.consumer_ids("g").is_empty() && r.producer_conn("p").is_none());
    }
}
