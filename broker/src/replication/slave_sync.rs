//! Slave sync (Java `SlaveSynchronize`) for DLedger slaves: while this
//! broker is a slave it copies the master's topic configs, subscription
//! groups, consumer offsets, delay-level offsets and the timer checkpoint
//! every [`SYNC_PERIOD`],
//! so the broker that
//! becomes master next serves the group's topics and resumes consumers at
//! (nearly) their committed offsets. The master is the name server's id 0
//! for this broker name.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use remoting::body::{from_fastjson, TopicConfigSerializeWrapper};
use remoting::code::{request_code, response_code};
use remoting::{Connection, RemotingCommand, Router};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::meta::offsets::ConsumerOffsetManager;
use crate::meta::subscription::{SubscriptionGroupManager, SubscriptionGroupWrapper};
use crate::meta::topic::TopicConfigManager;
use crate::processor::SharedConfig;
use crate::replication::namesrv::NamesrvClient;

/// Java syncs every 3 s (full sync at most every 10 s).
pub const SYNC_PERIOD: Duration = Duration::from_secs(3);
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct OffsetWrapper {
    offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
}

pub struct SlaveSync {
    pub config: SharedConfig,
    pub namesrv: Arc<NamesrvClient>,
    pub topics: Arc<TopicConfigManager>,
    pub groups: Arc<SubscriptionGroupManager>,
    pub offsets: Arc<ConsumerOffsetManager>,
    /// Delay-level offsets (Java syncs `delayOffset.json`).
    pub schedule: Arc<crate::services::schedule::ScheduleService>,
    /// Timer progress (Java syncs the `TimerCheckpoint`).
    pub timer: Arc<crate::services::timer::TimerService>,
}

/// GET_ALL_DELAY_OFFSET.
pub const GET_ALL_DELAY_OFFSET: i32 = 45;

impl SlaveSync {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(SYNC_PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut conn: Option<(String, Connection)> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let (slave, broker_name, own) = {
                let c = self.config.read().unwrap_or_else(|p| p.into_inner());
                (
                    c.broker_role.is_slave(),
                    c.broker_name.clone(),
                    c.broker_addr(),
                )
            };
            if !slave {
                continue;
            }
            let Some(master) = self.namesrv.master_addr(&broker_name).await else {
                continue;
            };
            if master == own {
                continue;
            }
            if conn
                .as_ref()
                .is_none_or(|(a, c)| *a != master || c.is_closed())
            {
                let c = tokio::time::timeout(
                    CALL_TIMEOUT,
                    Connection::connect(&master, Arc::new(Router::new())),
                )
                .await;
                conn = match c {
                    Ok(Ok(c)) => Some((master.clone(), c)),
                    _ => None,
                };
            }
            let Some((_, c)) = conn.as_ref() else {
                continue;
            };
            if let Err(e) = self.sync_once(c).await {
                debug!(master = %master, error = %e, "slave sync failed");
                conn = None;
            }
        }
    }

    async fn call(&self, c: &Connection, code: i32) -> Result<bytes::Bytes, String> {
        let mut req = RemotingCommand::request(code);
        crate::access::v1::sign_outbound(&crate::processor::read_config(&self.config), &mut req);
        let resp = c
            .request(req, CALL_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        if resp.code != response_code::SUCCESS {
            return Err(format!(
                "code {} {}",
                resp.code,
                resp.remark.unwrap_or_default()
            ));
        }
        Ok(resp.body)
    }

    async fn sync_once(&self, c: &Connection) -> Result<(), String> {
        let body = self.call(c, request_code::GET_ALL_TOPIC_CONFIG).await?;
        let topics: TopicConfigSerializeWrapper =
            from_fastjson(&body).map_err(|e| e.to_string())?;
        for (name, cfg) in topics.topic_config_table {
            if self.topics.get(&name).as_ref() != Some(&cfg) {
                info!(topic = %name, "slave sync: topic config from master");
                self.topics.update(cfg);
            }
        }
        let body = self
            .call(c, request_code::GET_ALL_SUBSCRIPTIONGROUP_CONFIG)
            .await?;
        let groups: SubscriptionGroupWrapper = from_fastjson(&body).map_err(|e| e.to_string())?;
        for (name, cfg) in groups.subscription_group_table {
            if self.groups.get(&name).as_ref() != Some(&cfg) {
                self.groups.update(cfg);
            }
        }
        let body = self.call(c, request_code::GET_ALL_CONSUMER_OFFSET).await?;
        let offsets: OffsetWrapper = from_fastjson(&body).map_err(|e| e.to_string())?;
        for (key, queues) in offsets.offset_table {
            let Some((topic, group)) = key.split_once('@') else {
                continue;
            };
            for (q, o) in queues {
                if self.offsets.query(group, topic, q) != Some(o) {
                    self.offsets.commit(group, topic, q, o);
                }
            }
        }
        let body = self.call(c, GET_ALL_DELAY_OFFSET).await?;
        self.schedule.sync_offsets(&body)?;
        // A master without a timer store (Java's `timerWheelEnable=false`)
        // refuses: the rest of the sync still counts.
        match self
            .call(c, crate::services::timer::GET_TIMER_CHECK_POINT)
            .await
        {
            Ok(body) => self.timer.sync_from_master(&body)?,
            Err(e) => debug!(error = %e, "slave sync: no timer checkpoint"),
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;
    use crate::services::schedule::ScheduleService;

    /// The GET_ALL_DELAY_OFFSET body a master serves is what a slave takes
    /// (also fastjson's unquoted integer keys, as a Java master sends them),
    /// in memory and in `delayOffset.json`.
    #[test]
    fn delay_offsets_round_trip_from_master_to_slave() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = BrokerConfig::default();
        c.apply(&remoting::properties::parse(&format!(
            "storePathRootDir={}\nmaxHashSlotNum=1000\nmaxIndexNum=4000\n",
            dir.path().display()
        )))
        .unwrap();
        let open = || {
            let store = Arc::new(crate::store::BrokerStore::new(
                crate::store::open(&c).unwrap(),
            ));
            let s = ScheduleService::open(store.clone(), c.config_dir(), &c.message_delay_level);
            (store, s.unwrap())
        };
        let (store, slave) = open();
        slave.sync_offsets(b"{\"offsetTable\":{1:0,3:0}}").unwrap();
        let want: BTreeMap<i32, i64> = [(1, 0), (3, 0)].into();
        assert_eq!(slave.offsets(), want);
        let body = slave.encode();
        let back: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(back["offsetTable"]["3"], 0);
        assert!(slave.sync_offsets(b"not json").is_err());
        assert_eq!(slave.offsets(), want, "a bad body changes nothing");
        drop(slave);
        store.shutdown();
        drop(store);
        // Persisted: a restart (the next master) starts from them.
        let (store, again) = open();
        assert_eq!(again.offsets(), want);
        store.shutdown();
    }
}
