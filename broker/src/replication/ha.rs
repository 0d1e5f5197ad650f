//! Master/slave replication for a broker with a local commit log (Java's
//! classic HA; the `ha` crate does the wire): every broker listens on its
//! HA port; a master installs the HA service as its store's replication
//! hook, a slave runs the HA client towards `haMasterAddress` or the
//! master the name server names in its REGISTER_BROKER answer, and its
//! store takes only shipped bytes.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use ha::{HaClient, HaConfig, HaMaster, ReplicaLog, SyncRule};
use store::{CommitLogOffset, MessageStore, StoreError};
use tracing::info;

use crate::config::{BrokerConfig, BrokerRole};
use crate::store::BrokerStore;

/// The broker's store as the HA service sees it.
struct Log(Arc<BrokerStore>);

impl ReplicaLog for Log {
    fn max_offset(&self) -> CommitLogOffset {
        self.0
            .with(CommitLogOffset(0), MessageStore::commit_log_max_offset)
    }

    fn file_size(&self) -> i64 {
        self.0.with(1, |s| {
            i64::try_from(s.config().mapped_file_size_commit_log).unwrap_or(i64::MAX)
        })
    }

    fn chunk(&self, from: CommitLogOffset, max: usize) -> Option<Bytes> {
        self.0.with(None, |s| s.transfer_chunk(from, max))
    }

    fn append(&self, offset: CommitLogOffset, data: &[u8]) -> Result<CommitLogOffset, StoreError> {
        self.0.with(Err(StoreError::ShutDown), |s| {
            s.append_replica(offset, data)
        })
    }
}

/// The HA keys of `config`.
pub fn ha_config(config: &BrokerConfig) -> HaConfig {
    let ms = |v: i64| Duration::from_millis(v.max(1) as u64);
    HaConfig {
        sync: match config.broker_role {
            BrokerRole::SyncMaster if config.sync_master_rule == "4.x" => SyncRule::SyncV4,
            BrokerRole::SyncMaster => SyncRule::Sync {
                in_sync_replicas: config.in_sync_replicas.max(1) as u32,
            },
            BrokerRole::AsyncMaster | BrokerRole::Slave => SyncRule::Async,
        },
        heartbeat_interval: ms(config.ha_send_heartbeat_interval),
        housekeeping_interval: ms(config.ha_housekeeping_interval),
        transfer_batch_size: config.ha_transfer_batch_size.max(1) as usize,
        max_gap_not_in_sync: config.ha_max_gap_not_in_sync.max(1),
        slave_timeout: ms(config.slave_timeout),
        ..HaConfig::default()
    }
}

/// What a broker with a local commit log runs for replication.
pub struct Replication {
    /// Serves the HA port (every broker, as Java).
    pub master: Arc<HaMaster>,
    /// A slave's connection to its master.
    pub client: Option<HaClient>,
}

impl Replication {
    /// Binds the HA port and starts the side `config`'s role needs.
    pub async fn start(config: &BrokerConfig, store: Arc<BrokerStore>) -> anyhow::Result<Self> {
        let port = config.ha_port();
        let listener = remoting::transport::bind(&config.bind_address, port, 128)
            .await
            .with_context(|| format!("binding the HA port {port} (haListenPort)"))?;
        let cfg = ha_config(config);
        let log: Arc<dyn ReplicaLog> = Arc::new(Log(store.clone()));
        let master = HaMaster::start(log.clone(), listener, cfg.clone());
        let client = if config.broker_role.is_slave() {
            store.with((), |s| s.set_replica(true));
            let addr = config.static_ha_master();
            info!(master = ?addr, "slave: replicating the master's commit log");
            Some(HaClient::start(log, addr, cfg))
        } else {
            store.with((), |s| s.set_replication(Some(master.clone())));
            None
        };
        Ok(Replication { master, client })
    }

    /// A REGISTER_BROKER answer named the master's HA address (only used
    /// when `haMasterAddress` is not configured, as Java).
    pub fn master_learnt(&self, config: &BrokerConfig, ha_server_addr: Option<String>) {
        if let (Some(client), None, Some(addr)) =
            (&self.client, config.static_ha_master(), ha_server_addr)
        {
            if !addr.is_empty() {
                client.set_master(Some(addr));
            }
        }
    }

    pub fn shutdown(&self) {
        self.master.shutdown();
        if let Some(c) = &self.client {
            c.shutdown();
        }
    }
}
