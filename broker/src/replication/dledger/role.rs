//! Role changes (Java `DLedgerRoleChangeHandler`): the store's writer term,
//! the broker's id and role, re-registration, and the master-only services.

use std::sync::Arc;
use std::time::Duration;

use dledger::core::message::Role;
use dledger::server::DLedgerServer;
use dledger::{LogIndex, Term};
use store::MessageStore;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{self_id_number, DispatchState, MasterServices};
use crate::config::BrokerRole;
use crate::meta::topic::TopicConfigManager;
use crate::processor::SharedConfig;
use crate::replication::namesrv::NamesrvClient;

/// Java's polling period while a new leader waits to become master.
const LEADER_WAIT_POLL: Duration = Duration::from_millis(100);

/// Applies broker id and role, then re-registers at once.
async fn become_role(
    config: &SharedConfig,
    namesrv: &NamesrvClient,
    topics: &TopicConfigManager,
    broker_id: i64,
    role: BrokerRole,
) {
    {
        let mut c = config.write().unwrap_or_else(|p| p.into_inner());
        c.broker_id = broker_id;
        c.broker_role = role;
    }
    namesrv.set_broker_id(broker_id);
    info!(broker_id, %role, "broker role changed");
    if !namesrv.addrs().is_empty() {
        namesrv.register_all(topics).await;
    }
}

/// Java `DLedgerRoleChangeHandler`, one change at a time. The master-only
/// services run while master and are stopped (and waited for) on becoming
/// slave and on shutdown.
#[allow(clippy::too_many_arguments)]
pub async fn role_loop(
    server: Arc<DLedgerServer>,
    store: MessageStore,
    state: Arc<DispatchState>,
    config: SharedConfig,
    namesrv: Arc<NamesrvClient>,
    topics: Arc<TopicConfigManager>,
    mut services: MasterServices,
    shutdown: CancellationToken,
) {
    follow_roles(
        server,
        store,
        state,
        config,
        namesrv,
        topics,
        &mut services,
        shutdown,
    )
    .await;
    services.stop().await;
}

#[allow(clippy::too_many_arguments)]
async fn follow_roles(
    server: Arc<DLedgerServer>,
    store: MessageStore,
    state: Arc<DispatchState>,
    config: SharedConfig,
    namesrv: Arc<NamesrvClient>,
    topics: Arc<TopicConfigManager>,
    services: &mut MasterServices,
    shutdown: CancellationToken,
) {
    let mut roles = server.subscribe_role();
    let slave_id = {
        let c = config.read().unwrap_or_else(|p| p.into_inner());
        self_id_number(c.d_leger_self_id.trim()).unwrap_or(0) + 1
    };
    // The term the store accepts puts in (`None`: it refuses them, as it
    // does from the start until the first leadership is caught up).
    let mut writer_term: Option<Term> = None;
    loop {
        let rs = roles.borrow_and_update().clone();
        match rs.role {
            Role::Leader if writer_term == Some(rs.term) => {}
            Role::Leader => {
                // Leader again in another term without a follower state
                // seen in between: the queue offsets handed out in the old
                // term may not match what the log holds now.
                if writer_term.take().is_some() {
                    stop_writing(&store).await;
                    services.stop().await;
                }
                // Wait until every earlier entry is committed and dispatched.
                loop {
                    let now = server.role();
                    if now.role != Role::Leader || now.term != rs.term {
                        break;
                    }
                    let Ok(l) = server.ledger().await else { return };
                    let caught_up = l.end_index < LogIndex(0)
                        || (l.end_index == l.committed_index
                            && state.dispatched() >= l.committed_index);
                    if caught_up {
                        let (s, term) = (store.clone(), rs.term.get());
                        let _ = tokio::task::spawn_blocking(move || s.become_writer(term)).await;
                        writer_term = Some(rs.term);
                        info!(
                            term = rs.term.get(),
                            "queues rebuilt: accepting writes as master"
                        );
                        services.run();
                        become_role(&config, &namesrv, &topics, 0, BrokerRole::SyncMaster).await;
                        break;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(LEADER_WAIT_POLL) => {}
                    }
                }
            }
            Role::Follower | Role::Candidate => {
                // Refuse writes before anything else, then (Java
                // `changeToSlave`) stop the master-only services.
                if writer_term.take().is_some() {
                    stop_writing(&store).await;
                }
                services.stop().await;
                let is_slave = {
                    let c = config.read().unwrap_or_else(|p| p.into_inner());
                    c.broker_role.is_slave() && c.broker_id == slave_id
                };
                if !is_slave {
                    become_role(&config, &namesrv, &topics, slave_id, BrokerRole::Slave).await;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = roles.changed() => if r.is_err() { return },
        }
    }
}

/// [`MessageStore::stop_writing`] off the async workers (it waits for the
/// writer lock).
async fn stop_writing(store: &MessageStore) {
    let s = store.clone();
    let _ = tokio::task::spawn_blocking(move || s.stop_writing()).await;
    info!("not master: writes refused");
}
