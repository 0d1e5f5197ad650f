//! The broker's handle on the `store` crate's [`MessageStore`].
//!
//! Processors share one [`BrokerStore`]; [`BrokerStore::shutdown`] closes the
//! store and drops the handle so the directory lock is released even while
//! requests still hold the broker's handle (a restart in the same process can
//! reopen the folder). After that, [`BrokerStore::with`] yields its default.

use std::sync::RwLock;

use store::{FlushDiskType, MessageStore, MessageToStore, PendingPut, StoreConfig, StoreError};
use tracing::warn;

use crate::config::BrokerConfig;

pub struct BrokerStore {
    inner: RwLock<Option<MessageStore>>,
}

/// The store's configuration from the broker's (Java reads both from one file).
pub fn store_config(config: &BrokerConfig) -> StoreConfig {
    StoreConfig {
        store_path_root_dir: config.store_root(),
        mapped_file_size_commit_log: config.mapped_file_size_commit_log,
        mapped_file_size_consume_queue: config.mapped_file_size_consume_queue,
        flush_disk_type: if config.is_sync_flush() {
            FlushDiskType::SyncFlush
        } else {
            FlushDiskType::AsyncFlush
        },
        flush_interval_commit_log_ms: config.flush_interval_commit_log.max(1) as u64,
        max_message_size: config.max_message_size.max(0) as usize,
        max_transfer_bytes_on_message_in_memory: config
            .max_transfer_bytes_on_message_in_memory
            .max(1) as usize,
        max_transfer_count_on_message_in_memory: config
            .max_transfer_count_on_message_in_memory
            .max(1) as usize,
        max_transfer_bytes_on_message_in_disk: config.max_transfer_bytes_on_message_in_disk.max(1)
            as usize,
        max_transfer_count_on_message_in_disk: config.max_transfer_count_on_message_in_disk.max(1)
            as usize,
        access_message_in_memory_max_ratio: config.access_message_in_memory_max_ratio.clamp(0, 100)
            as u32,
        message_delay_level: config.message_delay_level.clone(),
        max_hash_slot_num: config.max_hash_slot_num.max(1) as u32,
        max_index_num: config.max_index_num.max(1) as u32,
        sync_flush_timeout_ms: config.sync_flush_timeout.max(1) as u64,
        file_reserved_time_hours: config.file_reserved_time.max(0) as u64,
        delete_when: config.delete_when.clone(),
        disk_max_used_space_ratio: config.disk_max_used_space_ratio.max(0) as u32,
        clean_file_forcibly_enable: config.clean_file_forcibly_enable,
        destroy_maped_file_interval_forcibly_ms: config.destroy_maped_file_interval_forcibly.max(0)
            as u64,
        clean_resource_interval_ms: config.clean_resource_interval.max(1) as u64,
        delete_file_batch_max: config.delete_file_batch_max.max(1) as usize,
        ..StoreConfig::default()
    }
}

/// Opens the store the config describes.
pub fn open(config: &BrokerConfig) -> anyhow::Result<MessageStore> {
    if !config.store_path_commit_log.is_empty()
        && config.commit_log_dir() != config.store_root().join("commitlog")
    {
        warn!(storePathCommitLog = %config.store_path_commit_log, "storePathCommitLog is not supported; using <storePathRootDir>/commitlog");
    }
    Ok(MessageStore::open(store_config(config))?)
}

/// What the broker keeps of a DLedger commit log besides the store.
pub struct DLedgerParts {
    pub server: std::sync::Arc<dledger::server::DLedgerServer>,
    pub state: std::sync::Arc<crate::replication::dledger::DispatchState>,
}

/// `enableDLegerCommitLog=true`: starts the DLedger member (its files in
/// `<storePathRootDir>/dledger-<selfId>/`) and opens the store on it.
pub async fn open_dledger(config: &BrokerConfig) -> anyhow::Result<(MessageStore, DLedgerParts)> {
    let opts = crate::replication::dledger::server_options(config)?;
    let server = std::sync::Arc::new(dledger::server::DLedgerServer::start(opts.clone()).await?);
    let log = std::sync::Arc::new(crate::replication::dledger::DLedgerLog::new(server.clone()));
    let state = log.state();
    let store_cfg = store_config(config);
    let store = tokio::task::spawn_blocking(move || MessageStore::open_replicated(store_cfg, log))
        .await??;
    Ok((store, DLedgerParts { server, state }))
}

impl BrokerStore {
    pub fn new(store: MessageStore) -> BrokerStore {
        BrokerStore {
            inner: RwLock::new(Some(store)),
        }
    }

    /// Runs `f` on the open store, or returns `default` once shut down.
    #[inline]
    pub fn with<T>(&self, default: T, f: impl FnOnce(&MessageStore) -> T) -> T {
        match self
            .inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(s) => f(s),
            None => default,
        }
    }

    /// [`MessageStore::put`]: stored or queued now, in call order; the
    /// outcome is awaited on the caller's task. Fails once shut down.
    pub fn put(&self, msg: &MessageToStore) -> PendingPut {
        self.with(PendingPut::failed(StoreError::ShutDown), |s| s.put(msg))
    }

    /// [`MessageStore::put_messages`], as [`put`](Self::put).
    pub fn put_messages(&self, msgs: &[MessageToStore]) -> PendingPut {
        self.with(PendingPut::failed(StoreError::ShutDown), |s| {
            s.put_messages(msgs)
        })
    }

    /// Shuts the store down and drops the handle. Idempotent.
    pub fn shutdown(&self) {
        if let Some(s) = self.inner.write().unwrap_or_else(|p| p.into_inner()).take() {
            s.shutdown();
        }
    }
}
