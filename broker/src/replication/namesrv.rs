//! Registration with the name servers (`BrokerOuterAPI`): REGISTER_BROKER to
//! every name server at start, periodically and right after topic changes;
//! UNREGISTER_BROKER on shutdown. One kept-open connection per name server
//! (a name server drops a broker whose connection closes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use std::io::Write;

use remoting::body::{to_json, DataVersion, RegisterBrokerBody, TopicConfigSerializeWrapper};
use remoting::code::{request_code, response_code};
use remoting::{Connection, RemotingCommand, Router};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::BrokerConfig;
use crate::meta::topic::TopicConfigManager;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Java `MixAll.MASTER_ID`.
const MASTER_ID: i64 = 0;
const UNREGISTER_TIMEOUT: Duration = Duration::from_secs(3);

/// Identity fields of the registration header.
#[derive(Debug, Clone)]
struct Identity {
    cluster_name: String,
    broker_name: String,
    broker_addr: String,
    ha_server_addr: String,
    broker_id: i64,
    /// `enableSlaveActingMaster`; Java sends `heartbeatTimeoutMillis` only then.
    acting_master: bool,
    heartbeat_timeout_millis: i64,
}

/// REGISTER_BROKER for `body` (the register body: JSON, or the zlib stream
/// of [`encode_compressed`] when `compressed`) with `id`'s header.
fn register_request(id: &Identity, body: Vec<u8>, compressed: bool) -> RemotingCommand {
    let crc = crc32fast::hash(&body) & 0x7FFF_FFFF;
    let request = RemotingCommand::request(request_code::REGISTER_BROKER)
        .with_ext("brokerName", &id.broker_name)
        .with_ext("brokerAddr", &id.broker_addr)
        .with_ext("clusterName", &id.cluster_name)
        .with_ext("haServerAddr", &id.ha_server_addr)
        .with_ext("brokerId", id.broker_id.to_string())
        .with_ext("enableActingMaster", id.acting_master.to_string())
        // Java 5.x always says `false` here, even for a compressed body, and
        // its own name server then fails to parse that body; saying `true`
        // is what Java's name server needs to inflate it.
        .with_ext("compressed", compressed.to_string())
        .with_ext("bodyCrc32", crc.to_string())
        .with_body(body);
    // Java: `isEnableSlaveActingMaster() ? getBrokerNotActiveTimeoutMillis() : null`;
    // without it the name server assumes 120 s.
    if id.acting_master {
        request.with_ext(
            "heartbeatTimeoutMillis",
            id.heartbeat_timeout_millis.to_string(),
        )
    } else {
        request
    }
}

/// Whether this broker may still claim to be master (id 0) now.
pub type MasterClaim = Box<dyn Fn() -> bool + Send + Sync>;

/// Called with a REGISTER_BROKER answer's `haServerAddr` and `masterAddr`
/// (a slave learns its master there, Java `BrokerController`).
pub type RegisterAnswer = Box<dyn Fn(Option<String>, Option<String>) + Send + Sync>;

pub struct NamesrvClient {
    addrs: Vec<String>,
    identity: Identity,
    /// The broker id sent with every registration; DLedger role changes move it.
    broker_id: AtomicI64,
    /// Checked before a registration as master goes out (DLedger: the
    /// leader's lease); a registration it refuses is skipped.
    master_claim: OnceLock<MasterClaim>,
    on_answer: OnceLock<RegisterAnswer>,
    /// Controller mode: no registration while the broker is isolated (not
    /// registered with the controller, or no role known yet).
    fenced: AtomicBool,
    /// One registration at a time, its identity read once it holds this:
    /// a registration never overtakes a later one with an older role.
    registering: Mutex<()>,
    timeout: Duration,
    compressed: bool,
    conns: Mutex<HashMap<String, Connection>>,
}

impl NamesrvClient {
    pub fn new(config: &BrokerConfig) -> Self {
        NamesrvClient {
            addrs: config.namesrv_addrs(),
            identity: Identity {
                cluster_name: config.broker_cluster_name.clone(),
                broker_name: config.broker_name.clone(),
                broker_addr: config.broker_addr(),
                ha_server_addr: config.ha_server_addr(),
                broker_id: config.broker_id,
                acting_master: config.enable_slave_acting_master,
                heartbeat_timeout_millis: config.broker_not_active_timeout_millis,
            },
            broker_id: AtomicI64::new(config.broker_id),
            master_claim: OnceLock::new(),
            on_answer: OnceLock::new(),
            fenced: AtomicBool::new(false),
            registering: Mutex::new(()),
            timeout: Duration::from_millis(config.register_broker_timeout_mills),
            compressed: config.compressed_register,
            conns: Mutex::new(HashMap::new()),
        }
    }

    /// Changes the broker id of later registrations (DLedger role change).
    pub fn set_broker_id(&self, id: i64) {
        self.broker_id.store(id, Ordering::Release);
    }

    /// Isolates the broker from the name servers (`true`: every
    /// registration is skipped) or lets it register again.
    pub fn set_fenced(&self, fenced: bool) {
        self.fenced.store(fenced, Ordering::Release);
    }

    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Acquire)
    }

    /// Installs the check that a registration as master (id 0) must pass
    /// when it goes out (once; later calls are ignored).
    pub fn set_master_claim(&self, claim: MasterClaim) {
        let _ = self.master_claim.set(claim);
    }

    /// Installs what a successful registration's answer is given to (once).
    pub fn on_register_answer(&self, f: RegisterAnswer) {
        let _ = self.on_answer.set(f);
    }

    fn identity_now(&self) -> Identity {
        Identity {
            broker_id: self.broker_id.load(Ordering::Acquire),
            ..self.identity.clone()
        }
    }

    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    async fn connection(&self, addr: &str) -> Result<Connection, String> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(addr) {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(addr, Arc::new(Router::new())),
        )
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
        conns.insert(addr.to_owned(), conn.clone());
        Ok(conn)
    }

    async fn forget(&self, addr: &str) {
        if let Some(c) = self.conns.lock().await.remove(addr) {
            c.close();
        }
    }

    /// REGISTER_BROKER with every topic to every name server, in parallel.
    /// Returns how many name servers accepted.
    /// Registrations are serialized, and one as master is skipped (0 is
    /// returned) when the master claim no longer holds: a DLedger leader
    /// resumed after a pause must not wipe its successor's route entry
    /// with a registration that came due while it was stopped.
    pub async fn register_all(&self, topics: &TopicConfigManager) -> usize {
        let _one_at_a_time = self.registering.lock().await;
        if self.is_fenced() {
            debug!("registration skipped: broker isolated");
            return 0;
        }
        let identity = self.identity_now();
        if identity.broker_id == MASTER_ID && self.master_claim.get().is_some_and(|holds| !holds())
        {
            info!("registration as master skipped: leadership not confirmed by a quorum lately");
            return 0;
        }
        let wrapper = topics.wrapper();
        let topic_count = wrapper.topic_config_table.len();
        let compressed = self.compressed;
        // At 100k topics the body is megabytes of JSON (and deflating it
        // takes a while): built off the async workers so that the broker's
        // other requests are not held up behind it.
        let built = tokio::task::spawn_blocking(move || register_body(wrapper, compressed)).await;
        let body = match built {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => {
                warn!(error = %e, "cannot build the registration body");
                return 0;
            }
            Err(e) => {
                warn!(error = %e, "building the registration body failed");
                return 0;
            }
        };
        debug!(
            topics = topic_count,
            body_bytes = body.len(),
            compressed,
            "registration body built"
        );
        let request = register_request(&identity, body, compressed);
        let calls = self.addrs.iter().map(|addr| {
            let request = request.clone();
            async move {
                let result = async {
                    let conn = self.connection(addr).await?;
                    let resp = conn
                        .request(request, self.timeout)
                        .await
                        .map_err(|e| e.to_string())?;
                    if resp.code == response_code::SUCCESS {
                        if let Some(f) = self.on_answer.get() {
                            let field = |k: &str| resp.ext(k).map(str::to_owned);
                            f(field("haServerAddr"), field("masterAddr"));
                        }
                        Ok(())
                    } else {
                        Err(format!(
                            "code {} {}",
                            resp.code,
                            resp.remark.unwrap_or_default()
                        ))
                    }
                }
                .await;
                match result {
                    Ok(()) => {
                        debug!(namesrv = %addr, "registered broker");
                        true
                    }
                    Err(e) => {
                        warn!(namesrv = %addr, error = %e, "register broker failed");
                        self.forget(addr).await;
                        false
                    }
                }
            }
        });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count()
    }

    /// The master (id 0) address of `broker_name` from the first name server
    /// that answers GET_BROKER_CLUSTER_INFO (DLedger slave sync).
    pub async fn master_addr(&self, broker_name: &str) -> Option<String> {
        for addr in &self.addrs {
            let Ok(conn) = self.connection(addr).await else {
                continue;
            };
            let request = RemotingCommand::request(request_code::GET_BROKER_CLUSTER_INFO);
            let Ok(resp) = conn.request(request, self.timeout).await else {
                self.forget(addr).await;
                continue;
            };
            if resp.code != response_code::SUCCESS {
                continue;
            }
            let info: remoting::body::ClusterInfo = match remoting::body::from_fastjson(&resp.body)
            {
                Ok(i) => i,
                Err(_) => continue,
            };
            if let Some(m) = info
                .broker_addr_table
                .get(broker_name)
                .and_then(|b| b.broker_addrs.get(&0))
            {
                return Some(m.clone());
            }
        }
        None
    }

    /// UNREGISTER_BROKER to every name server (best effort), then closes the
    /// connections.
    pub async fn unregister_all(&self) {
        let id = &self.identity_now();
        let request = RemotingCommand::request(request_code::UNREGISTER_BROKER)
            .with_ext("brokerName", &id.broker_name)
            .with_ext("brokerAddr", &id.broker_addr)
            .with_ext("clusterName", &id.cluster_name)
            .with_ext("brokerId", id.broker_id.to_string());
        let calls = self.addrs.iter().map(|addr| {
            let request = request.clone();
            async move {
                match self.connection(addr).await {
                    Ok(conn) => match conn.request(request, UNREGISTER_TIMEOUT).await {
                        Ok(_) => info!(namesrv = %addr, "unregistered broker"),
                        Err(e) => warn!(namesrv = %addr, error = %e, "unregister broker failed"),
                    },
                    Err(e) => warn!(namesrv = %addr, error = %e, "unregister broker failed"),
                }
            }
        });
        futures::future::join_all(calls).await;
        for (_, c) in self.conns.lock().await.drain() {
            c.close();
        }
    }
}

/// The REGISTER_BROKER body for `wrapper`: Java's `RegisterBrokerBody`
/// JSON, or with `compressed` its zlib form.
pub fn register_body(
    mut wrapper: TopicConfigSerializeWrapper,
    compressed: bool,
) -> std::io::Result<Vec<u8>> {
    if compressed {
        return encode_compressed(&wrapper, &[]);
    }
    wrapper.topic_queue_mapping_info_map = Some(Default::default());
    wrapper.topic_queue_mapping_detail_map = Some(Default::default());
    wrapper.mapping_data_version = Some(DataVersion::default());
    Ok(to_json(&RegisterBrokerBody {
        topic_config_serialize_wrapper: wrapper,
        filter_server_list: vec![],
    }))
}

/// Java's `RegisterBrokerBody.encode(true)`: a zlib stream of big-endian
/// `i32` lengths and counts —
/// `len|DataVersion JSON`, `n`, `n x len|"name read write perm filterType attributesJson"`,
/// `len|filterServerList JSON`, `m`, `m x len|TopicQueueMappingInfo JSON`
/// (protocol >= V5_0_0; we have no static topics, so `m` is 0).
/// Topic sys flags and the order flag are not in it (as in Java).
pub fn encode_compressed(
    wrapper: &TopicConfigSerializeWrapper,
    filter_servers: &[String],
) -> std::io::Result<Vec<u8>> {
    fn chunk(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
        out.write_all(&len_i32(bytes.len())?.to_be_bytes())?;
        out.write_all(bytes)
    }
    fn len_i32(n: usize) -> std::io::Result<i32> {
        i32::try_from(n).map_err(|_| std::io::Error::other("length exceeds i32"))
    }
    let mut z = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(64 + wrapper.topic_config_table.len() * 16),
        flate2::Compression::default(),
    );
    let dv = serde_json::to_vec(&wrapper.data_version).map_err(std::io::Error::other)?;
    chunk(&mut z, &dv)?;
    z.write_all(&len_i32(wrapper.topic_config_table.len())?.to_be_bytes())?;
    let mut line = String::with_capacity(128);
    for (name, tc) in &wrapper.topic_config_table {
        use std::fmt::Write as _;
        line.clear();
        let name = if tc.topic_name.is_empty() {
            name
        } else {
            &tc.topic_name
        };
        let attrs = serde_json::to_string(&tc.attributes).map_err(std::io::Error::other)?;
        let _ = write!(
            line,
            "{name} {} {} {} {} {attrs}",
            tc.read_queue_nums, tc.write_queue_nums, tc.perm, tc.topic_filter_type
        );
        chunk(&mut z, line.as_bytes())?;
    }
    let filters = serde_json::to_vec(filter_servers).map_err(std::io::Error::other)?;
    chunk(&mut z, &filters)?;
    z.write_all(&0i32.to_be_bytes())?;
    z.finish()
}

/// Re-registers every `period` and whenever `changed` fires, until shutdown.
/// Java: first periodic run after 10 s, period clamped to 10..60 s.
pub async fn registration_loop(
    client: Arc<NamesrvClient>,
    topics: Arc<TopicConfigManager>,
    changed: Arc<Notify>,
    period: Duration,
    shutdown: CancellationToken,
) {
    let period = period.clamp(Duration::from_secs(10), Duration::from_secs(60));
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(10),
        period,
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = changed.notified() => {}
            _ = ticker.tick() => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = client.register_all(&topics) => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod register_header_tests {
    use super::*;

    fn identity(config: &BrokerConfig) -> Identity {
        NamesrvClient::new(config).identity
    }

    #[test]
    fn heartbeat_timeout_is_sent_only_with_slave_acting_master() {
        let mut config = BrokerConfig::default();
        let plain = register_request(&identity(&config), b"{}".to_vec(), false);
        assert_eq!(plain.ext("enableActingMaster"), Some("false"));
        assert_eq!(plain.ext("heartbeatTimeoutMillis"), None);

        assert!(config.set("enableSlaveActingMaster", "true").unwrap());
        assert!(config.set("brokerNotActiveTimeoutMillis", "4000").unwrap());
        let acting = register_request(&identity(&config), b"{}".to_vec(), false);
        assert_eq!(acting.ext("enableActingMaster"), Some("true"));
        assert_eq!(acting.ext("heartbeatTimeoutMillis"), Some("4000"));
        assert_eq!(acting.ext("bodyCrc32"), plain.ext("bodyCrc32"));
    }

    #[test]
    fn compressed_body_decodes_on_the_name_server_and_is_small() {
        let mut wrapper = TopicConfigSerializeWrapper {
            data_version: DataVersion {
                counter: 7,
                state_version: 3,
                timestamp: 1_700_000_000_000,
            },
            ..Default::default()
        };
        for i in 0..20_000 {
            let mut tc = remoting::body::TopicConfig::new(format!("scale-topic-{i:05}"), 8, 8, 6);
            if i % 1000 == 0 {
                tc.attributes
                    .insert("+message.type".into(), "NORMAL".into());
                tc.perm = 4;
            }
            wrapper.topic_config_table.insert(tc.topic_name.clone(), tc);
        }
        let json = register_body(wrapper.clone(), false).unwrap();
        let zipped = register_body(wrapper.clone(), true).unwrap();
        // The name server's decoder is the one Java's layout was taken from.
        let payload =
            nameserver::register_body::decode(&zipped, true, remoting::CURRENT_VERSION).unwrap();
        assert_eq!(payload.wrapper.data_version, wrapper.data_version);
        assert_eq!(payload.wrapper.topic_config_table.len(), 20_000);
        for (name, tc) in &wrapper.topic_config_table {
            let got = &payload.wrapper.topic_config_table[name];
            assert_eq!(
                (
                    &got.topic_name,
                    got.read_queue_nums,
                    got.write_queue_nums,
                    got.perm,
                    &got.attributes
                ),
                (
                    &tc.topic_name,
                    tc.read_queue_nums,
                    tc.write_queue_nums,
                    tc.perm,
                    &tc.attributes
                )
            );
        }
        assert_eq!(payload.filter_server_list, Some(vec![]));
        assert!(payload.mapping_info.is_empty());
        // A header that says `false` is sniffed as zlib too.
        assert!(
            nameserver::register_body::decode(&zipped, false, remoting::CURRENT_VERSION).is_ok()
        );
        assert!(
            zipped.len() * 10 < json.len(),
            "compressed {} bytes vs JSON {} bytes",
            zipped.len(),
            json.len()
        );
        let request = register_request(&identity(&BrokerConfig::default()), zipped.clone(), true);
        assert_eq!(request.ext("compressed"), Some("true"));
        assert_eq!(
            request.ext("bodyCrc32"),
            Some(
                nameserver::register_body::body_crc32(&zipped)
                    .to_string()
                    .as_str()
            )
        );
    }
}
