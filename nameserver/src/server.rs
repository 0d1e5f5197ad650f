//! The request handlers (Java's `DefaultRequestProcessor` and
//! `ClientRequestProcessor`), the liveness scan and [`run`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::Bytes;
use remoting::body::{from_fastjson, now_millis, to_json, DataVersion, KvTable, TopicRouteData};
use remoting::code::request_code as rc;
use remoting::header::GetRouteInfoRequestHeader;
use remoting::{command_header, serve, Connection, RemotingCommand, Router, ServerConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::NamesrvConfig;
use crate::error::{NamesrvError, ServerError};
use crate::json::{self, JsonForm};
use crate::kv::{KvConfig, NAMESPACE_ORDER_TOPIC_CONFIG};
use crate::register_body;
use crate::route::{
    BrokerAddrInfo, ConnId, RegisterBroker, RouteKey, RouteOptions, RouteTable, UnregisterBroker,
};

/// Request ext fields set by zone-aware clients and brokers (`MixAll`).
const ZONE_NAME: &str = "__ZONE_NAME";
const ZONE_MODE: &str = "__ZONE_MODE";

command_header! {
    /// REGISTER_BROKER (103).
    pub struct RegisterBrokerRequestHeader {
        pub broker_name: String = "brokerName",
        pub broker_addr: String = "brokerAddr",
        pub cluster_name: String = "clusterName",
        pub ha_server_addr: Option<String> = "haServerAddr",
        pub broker_id: i64 = "brokerId",
        pub heartbeat_timeout_millis: Option<i64> = "heartbeatTimeoutMillis",
        pub enable_acting_master: Option<bool> = "enableActingMaster",
        pub compressed: Option<bool> = "compressed",
        pub body_crc32: Option<i32> = "bodyCrc32",
    }
}

command_header! {
    pub struct RegisterBrokerResponseHeader {
        pub ha_server_addr: Option<String> = "haServerAddr",
        pub master_addr: Option<String> = "masterAddr",
    }
}

command_header! {
    /// UNREGISTER_BROKER (104).
    pub struct UnregisterBrokerRequestHeader {
        pub broker_name: String = "brokerName",
        pub broker_addr: String = "brokerAddr",
        pub cluster_name: String = "clusterName",
        pub broker_id: i64 = "brokerId",
    }
}

command_header! {
    /// QUERY_DATA_VERSION (322) and BROKER_HEARTBEAT (904): only the cluster
    /// and address identify the broker.
    pub struct BrokerAddrHeader {
        pub cluster_name: String = "clusterName",
        pub broker_addr: String = "brokerAddr",
        pub broker_name: Option<String> = "brokerName",
        pub broker_id: Option<i64> = "brokerId",
    }
}

command_header! {
    pub struct QueryDataVersionResponseHeader {
        pub changed: bool = "changed",
    }
}

command_header! {
    /// GET_BROKER_MEMBER_GROUP (901).
    pub struct GetBrokerMemberGroupRequestHeader {
        pub cluster_name: String = "clusterName",
        pub broker_name: String = "brokerName",
    }
}

command_header! {
    /// WIPE_WRITE_PERM_OF_BROKER (205) and ADD_WRITE_PERM_OF_BROKER (327).
    pub struct BrokerNameHeader {
        pub broker_name: String = "brokerName",
    }
}

command_header! {
    pub struct WipeWritePermResponseHeader {
        pub wipe_topic_count: i32 = "wipeTopicCount",
    }
}

command_header! {
    pub struct AddWritePermResponseHeader {
        pub add_topic_count: i32 = "addTopicCount",
    }
}

command_header! {
    /// PUT_KV_CONFIG (100).
    pub struct PutKvConfigRequestHeader {
        pub namespace: Option<String> = "namespace",
        pub key: Option<String> = "key",
        pub value: String = "value",
    }
}

command_header! {
    /// GET_KV_CONFIG (101) and DELETE_KV_CONFIG (102).
    pub struct KvKeyHeader {
        pub namespace: String = "namespace",
        pub key: String = "key",
    }
}

command_header! {
    pub struct GetKvConfigResponseHeader {
        pub value: Option<String> = "value",
    }
}

command_header! {
    /// GET_KVLIST_BY_NAMESPACE (219).
    pub struct NamespaceHeader {
        pub namespace: String = "namespace",
    }
}

command_header! {
    /// DELETE_TOPIC_IN_NAMESRV (216).
    pub struct DeleteTopicRequestHeader {
        pub topic: String = "topic",
        pub cluster_name: Option<String> = "clusterName",
    }
}

command_header! {
    /// REGISTER_TOPIC_IN_NAMESRV (217).
    pub struct TopicHeader {
        pub topic: String = "topic",
    }
}

command_header! {
    /// GET_TOPICS_BY_CLUSTER (224).
    pub struct ClusterHeader {
        pub cluster: String = "cluster",
    }
}

/// Everything the handlers share. The route table is the only state that
/// matters; the rest is configuration, the KV table and the connections of
/// registered brokers (so that the liveness scan can close them).
pub struct Namesrv {
    config: RwLock<NamesrvConfig>,
    routes: RwLock<RouteTable>,
    /// Bumped whenever `routes` is locked for writing (see `routes_mut`).
    routes_version: AtomicU64,
    /// GET_ROUTEINFO_BY_TOPIC answers. Lock order: `routes`, then this.
    route_cache: RwLock<RouteBodyCache>,
    /// The GET_ALL_TOPIC_LIST_FROM_NAMESERVER answer and the route table's
    /// topic-set version it was encoded at (megabytes at 100k topics).
    topic_list_cache: Mutex<Option<(u64, Bytes)>>,
    kv: Mutex<KvConfig>,
    /// `kvConfigPath` cannot change at run time (it is black-listed).
    kv_path: PathBuf,
    /// Connections that registered a broker. Lock order: `routes`, then this.
    conns: Mutex<HashMap<ConnId, Connection>>,
    started: std::time::Instant,
}

/// Encoded route bodies for one route-table version and one set of options.
/// Keyed by [`RouteKey`], not by topic: topics on the same brokers with the
/// same queues have the same body, so the cache holds one body per distinct
/// queue list (a handful) rather than one per topic asked for (up to
/// 100k bodies of ~1.5 KB each with 10 brokers).
#[derive(Default)]
struct RouteBodyCache {
    version: u64,
    opts: RouteOptions,
    /// Per JSON form.
    bodies: [HashMap<RouteKey, Bytes>; 2],
}

impl RouteBodyCache {
    fn slot(form: JsonForm) -> usize {
        match form {
            JsonForm::Standard => 0,
            JsonForm::Legacy => 1,
        }
    }
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(l: &Mutex<T>) -> MutexGuard<'_, T> {
    l.lock().unwrap_or_else(PoisonError::into_inner)
}

type HandlerResult = Result<RemotingCommand, NamesrvError>;

impl Namesrv {
    /// Loads the KV table from `kvConfigPath`; a malformed file is an error.
    pub fn new(config: NamesrvConfig) -> Result<Self, ServerError> {
        let kv_path = PathBuf::from(&config.kv_config_path);
        let kv = KvConfig::load(&kv_path)?;
        info!(path = %kv_path.display(), "KV config loaded");
        Ok(Namesrv {
            config: RwLock::new(config),
            routes: RwLock::new(RouteTable::new()),
            routes_version: AtomicU64::new(0),
            route_cache: RwLock::new(RouteBodyCache::default()),
            topic_list_cache: Mutex::new(None),
            kv: Mutex::new(kv),
            kv_path,
            conns: Mutex::new(HashMap::new()),
            started: std::time::Instant::now(),
        })
    }

    /// Reads the route table (for tests and diagnostics).
    pub fn with_routes<R>(&self, f: impl FnOnce(&RouteTable) -> R) -> R {
        f(&read(&self.routes))
    }

    pub fn config(&self) -> NamesrvConfig {
        read(&self.config).clone()
    }

    fn route_options(&self) -> RouteOptions {
        let c = read(&self.config);
        RouteOptions {
            delete_topic_with_broker_registration: c.delete_topic_with_broker_registration,
            support_acting_master: c.support_acting_master,
        }
    }

    /// A connection closed: brokers registered on it go away at once.
    pub fn connection_closed(&self, conn: &Connection) {
        let mut routes = self.routes_mut();
        routes.connection_closed(conn.id());
        lock(&self.conns).remove(&conn.id());
    }

    /// One liveness scan: expired brokers are removed and their connections
    /// closed, as Java does.
    pub fn scan_not_active(&self, now_ms: i64) {
        let expired = self.routes_mut().scan_not_active(now_ms);
        if expired.is_empty() {
            return;
        }
        let conns = lock(&self.conns);
        for id in expired {
            if let Some(conn) = conns.get(&id) {
                conn.close();
            }
        }
    }

    fn persist_kv(&self, kv: &KvConfig) {
        if let Err(e) = kv.persist(&self.kv_path) {
            error!(path = %self.kv_path.display(), error = %e, "persisting KV config failed");
        }
    }

    fn register_broker(&self, conn: &Connection, req: &RemotingCommand) -> HandlerResult {
        let h: RegisterBrokerRequestHeader = req.header()?;
        if let Some(expected) = h.body_crc32.filter(|c| *c != 0) {
            let actual = register_body::body_crc32(&req.body);
            if actual != expected {
                warn!(peer = %conn.peer(), expected, actual, "register broker: crc32 not match");
                return Err(NamesrvError::Crc32Mismatch { expected, actual });
            }
        }
        let payload =
            register_body::decode_for_routes(&req.body, h.compressed.unwrap_or(false), req.version)
                .map_err(NamesrvError::RegisterBody)?;
        let register = RegisterBroker {
            cluster_name: h.cluster_name,
            broker_addr: h.broker_addr,
            broker_name: h.broker_name,
            broker_id: h.broker_id,
            ha_server_addr: h.ha_server_addr.unwrap_or_default(),
            zone_name: req.ext(ZONE_NAME).map(str::to_owned),
            heartbeat_timeout_millis: h.heartbeat_timeout_millis,
            enable_acting_master: h.enable_acting_master,
            payload,
        };
        let opts = self.route_options();
        let result = {
            let mut routes = self.routes_mut();
            // The close hook may already have run for this connection; a
            // broker registered now would linger until it times out.
            if conn.is_closed() {
                return Err(NamesrvError::ConnectionClosed);
            }
            let result = routes.register_broker(register, conn.id(), now_millis(), opts);
            if result.is_some() {
                lock(&self.conns).insert(conn.id(), conn.clone());
            }
            result
        }
        .ok_or(NamesrvError::RegisterRejected)?;

        let mut response = RemotingCommand::success().with_header(&RegisterBrokerResponseHeader {
            ha_server_addr: result.ha_server_addr,
            master_addr: result.master_addr,
        });
        if read(&self.config).return_order_topic_config_to_broker {
            if let Some(table) = lock(&self.kv).namespace(NAMESPACE_ORDER_TOPIC_CONFIG) {
                response = response.with_body(to_json(&KvTable {
                    table: table.clone(),
                }));
            }
        }
        Ok(response)
    }

    fn unregister_broker(&self, req: &RemotingCommand) -> HandlerResult {
        let h: UnregisterBrokerRequestHeader = req.header()?;
        self.routes_mut().unregister_brokers(&[UnregisterBroker {
            cluster_name: h.cluster_name,
            broker_addr: h.broker_addr,
            broker_name: h.broker_name,
            broker_id: h.broker_id,
        }]);
        Ok(RemotingCommand::success())
    }

    fn query_data_version(&self, req: &RemotingCommand) -> HandlerResult {
        let h: BrokerAddrHeader = req.header()?;
        let dv: Option<DataVersion> = if req.body.is_empty() {
            None
        } else {
            Some(
                from_fastjson(&req.body).map_err(|source| NamesrvError::Body {
                    what: "DataVersion",
                    source,
                })?,
            )
        };
        let addr = BrokerAddrInfo::new(&h.cluster_name, &h.broker_addr);
        let (changed, stored) =
            self.routes_mut()
                .query_data_version(&addr, dv.as_ref(), now_millis());
        let mut response =
            RemotingCommand::success().with_header(&QueryDataVersionResponseHeader { changed });
        if let Some(stored) = stored {
            response = response.with_body(to_json(&stored));
        }
        Ok(response)
    }

    fn broker_heartbeat(&self, req: &RemotingCommand) -> HandlerResult {
        let h: BrokerAddrHeader = req.header()?;
        self.routes_mut().touch(
            &BrokerAddrInfo::new(&h.cluster_name, &h.broker_addr),
            now_millis(),
        );
        Ok(RemotingCommand::success())
    }

    fn broker_member_group(&self, req: &RemotingCommand) -> HandlerResult {
        let h: GetBrokerMemberGroupRequestHeader = req.header()?;
        let group = read(&self.routes).broker_member_group(&h.cluster_name, &h.broker_name);
        Ok(RemotingCommand::success()
            .with_body(json::broker_member_group(&group, JsonForm::Legacy)))
    }

    fn route_by_topic(&self, req: &RemotingCommand) -> HandlerResult {
        let h: GetRouteInfoRequestHeader = req.header()?;
        let (wait, order_enabled) = {
            let c = read(&self.config);
            let wait = c.need_wait_for_service
                && self.started.elapsed()
                    < Duration::from_secs(u64::try_from(c.wait_seconds_for_service).unwrap_or(0));
            (wait, c.order_message_enable)
        };
        if wait {
            return Err(NamesrvError::NotReady);
        }
        let opts = self.route_options();
        let order_conf = if order_enabled {
            lock(&self.kv)
                .get(NAMESPACE_ORDER_TOPIC_CONFIG, &h.topic)
                .map(str::to_owned)
        } else {
            None
        };
        let form = if req.version >= json::V4_9_4 || h.accept_standard_json_only == Some(true) {
            JsonForm::Standard
        } else {
            JsonForm::Legacy
        };
        // Java's ZoneRouteRPCHook filters and re-encodes (in the legacy form).
        let zone_mode = req
            .ext(ZONE_MODE)
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("true"));
        if let Some(zone) = req
            .ext(ZONE_NAME)
            .filter(|z| zone_mode && !z.trim().is_empty())
        {
            let mut route = read(&self.routes)
                .topic_route(&h.topic, opts)
                .ok_or_else(|| NamesrvError::TopicNotExist(h.topic.clone()))?;
            route.order_topic_conf = order_conf;
            route.filter_by_zone(zone);
            return Ok(RemotingCommand::success().with_body(json::route(&route, JsonForm::Legacy)));
        }
        let body = self.route_body(&h.topic, opts, order_conf, form)?;
        Ok(RemotingCommand::success().with_body(body))
    }

    /// The encoded route of `topic`: from the cache while the route table
    /// (its version) and the options are those it was encoded with, else
    /// encoded and cached. Routes with an order config or a static-topic
    /// mapping are particular to their topic and encoded every time (a few
    /// µs); they are rare.
    fn route_body(
        &self,
        topic: &str,
        opts: RouteOptions,
        order_conf: Option<String>,
        form: JsonForm,
    ) -> Result<Bytes, NamesrvError> {
        // Held throughout, so the version cannot move under us.
        let routes = read(&self.routes);
        let version = self.routes_version.load(Ordering::Relaxed);
        let slot = RouteBodyCache::slot(form);
        let key = routes.route_key(topic).filter(|_| order_conf.is_none());
        if let Some(key) = key {
            let cache = read(&self.route_cache);
            if cache.version == version && cache.opts == opts {
                if let Some(body) = cache.bodies[slot].get(&key) {
                    return Ok(body.clone());
                }
            }
        }
        let mut route = routes
            .topic_route(topic, opts)
            .ok_or_else(|| NamesrvError::TopicNotExist(topic.to_owned()))?;
        route.order_topic_conf = order_conf;
        let body = Bytes::from(json::route(&route, form));
        let Some(key) = key else {
            return Ok(body);
        };
        let mut cache = write(&self.route_cache);
        if cache.version != version || cache.opts != opts {
            // Versions only grow, so whatever is cached is older: drop it all.
            *cache = RouteBodyCache {
                version,
                opts,
                ..RouteBodyCache::default()
            };
        }
        cache.bodies[slot].insert(key, body.clone());
        Ok(body)
    }

    /// The route table for writing; every write invalidates cached route bodies.
    fn routes_mut(&self) -> RwLockWriteGuard<'_, RouteTable> {
        let routes = write(&self.routes);
        self.routes_version.fetch_add(1, Ordering::Relaxed);
        routes
    }

    fn cluster_info(&self) -> HandlerResult {
        let info = read(&self.routes).cluster_info();
        Ok(RemotingCommand::success().with_body(json::cluster_info(&info, JsonForm::Legacy)))
    }

    fn set_write_perm(&self, req: &RemotingCommand, writable: bool) -> HandlerResult {
        let h: BrokerNameHeader = req.header()?;
        let count = self.routes_mut().set_write_perm(&h.broker_name, writable);
        info!(broker = %h.broker_name, writable, topics = count, "write permission changed");
        Ok(if writable {
            RemotingCommand::success().with_header(&AddWritePermResponseHeader {
                add_topic_count: count,
            })
        } else {
            RemotingCommand::success().with_header(&WipeWritePermResponseHeader {
                wipe_topic_count: count,
            })
        })
    }

    fn topic_list(&self, code: i32) -> HandlerResult {
        let (all_enabled, enabled) = {
            let c = read(&self.config);
            (c.enable_all_topic_list, c.enable_topic_list)
        };
        let routes = read(&self.routes);
        let list = match code {
            rc::GET_ALL_TOPIC_LIST_FROM_NAMESERVER if all_enabled => {
                let version = routes.topic_set_version();
                let mut cache = lock(&self.topic_list_cache);
                let body = match cache.as_ref() {
                    Some((v, body)) if *v == version => body.clone(),
                    _ => {
                        let body = Bytes::from(to_json(&routes.all_topics()));
                        *cache = Some((version, body.clone()));
                        body
                    }
                };
                return Ok(RemotingCommand::success().with_body(body));
            }
            rc::GET_SYSTEM_TOPIC_LIST_FROM_NS => routes.system_topics(),
            rc::GET_UNIT_TOPIC_LIST if enabled => routes.unit_topics(),
            rc::GET_HAS_UNIT_SUB_TOPIC_LIST if enabled => routes.has_unit_sub_topics(),
            rc::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST if enabled => {
                routes.has_unit_sub_ununit_topics()
            }
            _ => return Err(NamesrvError::Disabled),
        };
        Ok(RemotingCommand::success().with_body(to_json(&list)))
    }

    fn topics_by_cluster(&self, req: &RemotingCommand) -> HandlerResult {
        if !read(&self.config).enable_topic_list {
            return Err(NamesrvError::Disabled);
        }
        let h: ClusterHeader = req.header()?;
        let list = read(&self.routes).topics_by_cluster(&h.cluster);
        Ok(RemotingCommand::success().with_body(to_json(&list)))
    }

    fn delete_topic(&self, req: &RemotingCommand) -> HandlerResult {
        let h: DeleteTopicRequestHeader = req.header()?;
        let cluster = h.cluster_name.as_deref().filter(|c| !c.is_empty());
        self.routes_mut().delete_topic(&h.topic, cluster);
        info!(topic = %h.topic, cluster = cluster.unwrap_or(""), "topic deleted");
        Ok(RemotingCommand::success())
    }

    fn register_topic(&self, req: &RemotingCommand) -> HandlerResult {
        let h: TopicHeader = req.header()?;
        if !req.body.is_empty() {
            let data: TopicRouteData =
                from_fastjson(&req.body).map_err(|source| NamesrvError::Body {
                    what: "TopicRouteData",
                    source,
                })?;
            self.routes_mut()
                .register_topic(&h.topic, &data.queue_datas);
        }
        Ok(RemotingCommand::success())
    }

    fn put_kv(&self, req: &RemotingCommand) -> HandlerResult {
        let h: PutKvConfigRequestHeader = req.header()?;
        let (Some(namespace), Some(key)) = (h.namespace, h.key) else {
            return Err(NamesrvError::KvKeyMissing);
        };
        let mut kv = lock(&self.kv);
        kv.put(&namespace, &key, &h.value);
        info!(%namespace, %key, value = %h.value, "KV config put");
        self.persist_kv(&kv);
        Ok(RemotingCommand::success())
    }

    fn get_kv(&self, req: &RemotingCommand) -> HandlerResult {
        let h: KvKeyHeader = req.header()?;
        let value = lock(&self.kv).get(&h.namespace, &h.key).map(str::to_owned);
        match value {
            Some(value) => Ok(RemotingCommand::success()
                .with_header(&GetKvConfigResponseHeader { value: Some(value) })),
            None => Err(NamesrvError::KvNotFound {
                namespace: h.namespace,
                key: h.key,
            }),
        }
    }

    fn delete_kv(&self, req: &RemotingCommand) -> HandlerResult {
        let h: KvKeyHeader = req.header()?;
        let mut kv = lock(&self.kv);
        let old = kv.delete(&h.namespace, &h.key);
        info!(namespace = %h.namespace, key = %h.key, existed = old.is_some(), "KV config deleted");
        self.persist_kv(&kv);
        Ok(RemotingCommand::success())
    }

    fn kv_list(&self, req: &RemotingCommand) -> HandlerResult {
        let h: NamespaceHeader = req.header()?;
        let table = lock(&self.kv).namespace(&h.namespace).cloned();
        match table {
            Some(table) => Ok(RemotingCommand::success().with_body(to_json(&KvTable { table }))),
            None => Err(NamesrvError::KvNamespaceNotFound(h.namespace)),
        }
    }

    fn update_config(&self, conn: &Connection, req: &RemotingCommand) -> HandlerResult {
        if req.body.is_empty() {
            return Ok(RemotingCommand::success());
        }
        let props = remoting::properties::parse(&String::from_utf8_lossy(&req.body));
        let mut config = write(&self.config);
        let black_list = config.black_list();
        if props.keys().any(|k| black_list.contains(k)) {
            return Err(NamesrvError::ConfigBlackListed);
        }
        config
            .update(props.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(crate::config::ConfigError::from)?;
        info!(peer = %conn.peer(), ?props, "name server config updated");
        if let Err(e) = config.persist() {
            error!(error = %e, "persisting name server config failed");
        }
        Ok(RemotingCommand::success())
    }

    fn get_config(&self) -> HandlerResult {
        let text = read(&self.config).all_configs_text();
        Ok(RemotingCommand::success().with_body(text.into_bytes()))
    }
}

/// Adds a synchronous handler; the route table work is short and never
/// waits, so it runs on the connection's read loop.
fn sync_route<F>(router: Router, code: i32, ns: &Arc<Namesrv>, f: F) -> Router
where
    F: Fn(&Namesrv, &Connection, &RemotingCommand) -> HandlerResult + Send + Sync + 'static,
{
    let ns = ns.clone();
    router.route(code, move |conn: Connection, req: RemotingCommand| {
        std::future::ready(f(&ns, &conn, &req).map_err(|e| e.to_command_error()))
    })
}

/// The request-code table of the name server.
pub fn router(ns: Arc<Namesrv>) -> Router {
    let mut r = Router::new();
    r = sync_route(r, rc::PUT_KV_CONFIG, &ns, |ns, _, req| ns.put_kv(req));
    r = sync_route(r, rc::GET_KV_CONFIG, &ns, |ns, _, req| ns.get_kv(req));
    r = sync_route(r, rc::DELETE_KV_CONFIG, &ns, |ns, _, req| ns.delete_kv(req));
    r = sync_route(r, rc::GET_KVLIST_BY_NAMESPACE, &ns, |ns, _, req| {
        ns.kv_list(req)
    });
    r = sync_route(r, rc::REGISTER_BROKER, &ns, |ns, conn, req| {
        ns.register_broker(conn, req)
    });
    r = sync_route(r, rc::UNREGISTER_BROKER, &ns, |ns, _, req| {
        ns.unregister_broker(req)
    });
    r = sync_route(r, rc::QUERY_DATA_VERSION, &ns, |ns, _, req| {
        ns.query_data_version(req)
    });
    r = sync_route(r, rc::BROKER_HEARTBEAT, &ns, |ns, _, req| {
        ns.broker_heartbeat(req)
    });
    r = sync_route(r, rc::GET_BROKER_MEMBER_GROUP, &ns, |ns, _, req| {
        ns.broker_member_group(req)
    });
    r = sync_route(r, rc::GET_ROUTEINFO_BY_TOPIC, &ns, |ns, _, req| {
        ns.route_by_topic(req)
    });
    r = sync_route(r, rc::GET_BROKER_CLUSTER_INFO, &ns, |ns, _, _| {
        ns.cluster_info()
    });
    r = sync_route(r, rc::WIPE_WRITE_PERM_OF_BROKER, &ns, |ns, _, req| {
        ns.set_write_perm(req, false)
    });
    r = sync_route(r, rc::ADD_WRITE_PERM_OF_BROKER, &ns, |ns, _, req| {
        ns.set_write_perm(req, true)
    });
    for code in [
        rc::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
        rc::GET_SYSTEM_TOPIC_LIST_FROM_NS,
        rc::GET_UNIT_TOPIC_LIST,
        rc::GET_HAS_UNIT_SUB_TOPIC_LIST,
        rc::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST,
    ] {
        r = sync_route(r, code, &ns, move |ns, _, _| ns.topic_list(code));
    }
    r = sync_route(r, rc::GET_TOPICS_BY_CLUSTER, &ns, |ns, _, req| {
        ns.topics_by_cluster(req)
    });
    r = sync_route(r, rc::DELETE_TOPIC_IN_NAMESRV, &ns, |ns, _, req| {
        ns.delete_topic(req)
    });
    r = sync_route(r, rc::REGISTER_TOPIC_IN_NAMESRV, &ns, |ns, _, req| {
        ns.register_topic(req)
    });
    r = sync_route(r, rc::UPDATE_NAMESRV_CONFIG, &ns, |ns, conn, req| {
        ns.update_config(conn, req)
    });
    r = sync_route(r, rc::GET_NAMESRV_CONFIG, &ns, |ns, _, _| ns.get_config());
    r.on_close(move |conn| ns.connection_closed(conn))
}

async fn scan_loop(ns: Arc<Namesrv>, interval: Duration, stop: CancellationToken) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = ticker.tick() => ns.scan_not_active(now_millis()),
        }
    }
}

/// Binds `bindAddress:listenPort` like Java's Netty server: SO_REUSEADDR on
/// (a restarted server can take its port back at once) and the configured
/// backlog (`serverSocketBacklog`).
pub async fn bind(config: &NamesrvConfig) -> std::io::Result<TcpListener> {
    let port = u16::try_from(config.listen_port).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("listenPort {} out of range", config.listen_port),
        )
    })?;
    let backlog = u32::try_from(config.server_socket_backlog).unwrap_or(1024);
    remoting::transport::bind(&config.bind_address, port, backlog).await
}

/// Serves the name server protocol on `listener` until `shutdown` is
/// cancelled. The caller binds the listener (`bindAddress:listenPort` in the
/// binary, 127.0.0.1:0 in tests).
pub async fn run(
    listener: TcpListener,
    config: NamesrvConfig,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let ns = Arc::new(Namesrv::new(config)?);
    run_with(listener, ns, shutdown).await
}

/// [`run`] over an existing [`Namesrv`], so tests can look at its state.
pub async fn run_with(
    listener: TcpListener,
    ns: Arc<Namesrv>,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let config = ns.config();
    if config.cluster_test {
        warn!("clusterTest is not supported; serving normally");
    }
    if config.notify_min_broker_id_changed {
        warn!("notifyMinBrokerIdChanged is not supported; brokers are not notified");
    }
    let interval = Duration::from_millis(
        u64::try_from(config.scan_not_active_broker_interval)
            .unwrap_or(0)
            .max(1),
    );
    let stop_scan = shutdown.child_token();
    let scan = tokio::spawn(scan_loop(ns.clone(), interval, stop_scan.clone()));
    let served = serve(
        listener,
        Arc::new(router(ns)),
        ServerConfig::default()
            .with_idle_seconds(config.server_channel_max_idle_time_seconds.into()),
        shutdown,
    )
    .await;
    stop_scan.cancel();
    let _ = scan.await;
    served?;
    Ok(())
}
