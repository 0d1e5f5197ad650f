//! Topic routes from the name servers (GET_ROUTEINFO_BY_TOPIC), cached and
//! refreshed like Java's `ClusterTopicRouteService`: an entry older than
//! `topicRouteServiceCacheRefreshSeconds` is fetched again on its next use,
//! and a stale entry keeps serving while the name servers are unreachable,
//! up to `topicRouteServiceCacheExpiredSeconds`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use remoting::body::{from_fastjson, TopicRouteData};
use remoting::header::GetRouteInfoRequestHeader;
use remoting::{request_code, response_code, RemotingCommand};
use tracing::{debug, warn};

use super::clients::{refused, Clients};
use super::error::ClusterError;

const NAMESRV_TIMEOUT: Duration = Duration::from_secs(3);
/// Java `PermName.PERM_READ` / `PERM_WRITE`.
const PERM_READ: i32 = 1 << 2;
const PERM_WRITE: i32 = 1 << 1;
/// Java `MixAll.MASTER_ID`.
const MASTER_ID: i64 = 0;

/// One queue of a topic and the master that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressedQueue {
    pub topic: String,
    pub broker_name: String,
    pub broker_addr: String,
    pub queue_id: i32,
}

struct Cached {
    route: Arc<TopicRouteData>,
    fetched: Instant,
}

pub struct Routes {
    namesrv: Vec<String>,
    /// The name server tried first; moves on after a failure.
    first: AtomicUsize,
    clients: Arc<Clients>,
    refresh: Duration,
    expire: Duration,
    cache: Mutex<HashMap<String, Cached>>,
    /// Broker name -> id -> address, from every route seen.
    brokers: Mutex<HashMap<String, BTreeMap<i64, String>>>,
    /// Round-robin position per topic for sends and pops.
    cursor: Mutex<HashMap<String, usize>>,
}

impl Routes {
    pub fn new(
        namesrv: Vec<String>,
        clients: Arc<Clients>,
        refresh: Duration,
        expire: Duration,
    ) -> Self {
        Routes {
            namesrv,
            first: AtomicUsize::new(0),
            clients,
            refresh,
            expire,
            cache: Mutex::new(HashMap::new()),
            brokers: Mutex::new(HashMap::new()),
            cursor: Mutex::new(HashMap::new()),
        }
    }

    /// The route of `topic`, from the cache when fresh enough.
    pub async fn route(&self, topic: &str) -> Result<Arc<TopicRouteData>, ClusterError> {
        let stale = {
            let cache = lock(&self.cache);
            match cache.get(topic) {
                Some(c) if c.fetched.elapsed() < self.refresh => return Ok(c.route.clone()),
                Some(c) if c.fetched.elapsed() < self.expire => Some(c.route.clone()),
                _ => None,
            }
        };
        match self.fetch(topic).await {
            Ok(route) => Ok(route),
            Err(e @ ClusterError::TopicNotFound(_)) => {
                lock(&self.cache).remove(topic);
                Err(e)
            }
            Err(e) => match stale {
                Some(route) => {
                    warn!(%topic, error = %e, "route refresh failed; serving the cached route");
                    Ok(route)
                }
                None => Err(e),
            },
        }
    }

    /// Forgets the cached route of `topic` (after a broker said it moved).
    pub fn invalidate(&self, topic: &str) {
        lock(&self.cache).remove(topic);
    }

    async fn fetch(&self, topic: &str) -> Result<Arc<TopicRouteData>, ClusterError> {
        if self.namesrv.is_empty() {
            return Err(ClusterError::NoNameServer);
        }
        let n = self.namesrv.len();
        let first = self.first.load(Ordering::Relaxed);
        let mut last = ClusterError::NoNameServer;
        for i in 0..n {
            let addr = &self.namesrv[(first + i) % n];
            let header = GetRouteInfoRequestHeader {
                topic: topic.to_owned(),
                accept_standard_json_only: Some(true),
            };
            let cmd =
                RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_header(&header);
            let response = match self.clients.invoke(addr, cmd, NAMESRV_TIMEOUT).await {
                Ok(r) => r,
                Err(e) => {
                    debug!(%addr, error = %e, "name server unreachable");
                    self.first.store((first + i + 1) % n, Ordering::Relaxed);
                    last = e;
                    continue;
                }
            };
            match response.code {
                response_code::SUCCESS => {
                    let route: TopicRouteData =
                        from_fastjson(&response.body).map_err(|e| ClusterError::BadAnswer {
                            addr: addr.clone(),
                            detail: e.to_string(),
                        })?;
                    let route = Arc::new(route);
                    self.learn(&route);
                    lock(&self.cache).insert(
                        topic.to_owned(),
                        Cached {
                            route: route.clone(),
                            fetched: Instant::now(),
                        },
                    );
                    return Ok(route);
                }
                response_code::TOPIC_NOT_EXIST => {
                    return Err(ClusterError::TopicNotFound(topic.to_owned()))
                }
                _ => last = refused(addr, &response),
            }
        }
        Err(last)
    }

    fn learn(&self, route: &TopicRouteData) {
        let mut brokers = lock(&self.brokers);
        for b in &route.broker_datas {
            brokers.insert(b.broker_name.clone(), b.broker_addrs.clone());
        }
    }

    /// The master address of `broker_name` (Java `getBrokerAddr`): from the
    /// routes seen, else from the route of the topic named after the broker.
    pub async fn broker_addr(&self, broker_name: &str) -> Result<String, ClusterError> {
        if let Some(addr) = self.known_master(broker_name) {
            return Ok(addr);
        }
        match self.route(broker_name).await {
            Ok(_) | Err(ClusterError::TopicNotFound(_)) => {}
            Err(e) => return Err(e),
        }
        self.known_master(broker_name)
            .ok_or_else(|| ClusterError::BrokerNotFound(broker_name.to_owned()))
    }

    fn known_master(&self, broker_name: &str) -> Option<String> {
        lock(&self.brokers)
            .get(broker_name)
            .and_then(|addrs| addrs.get(&MASTER_ID).cloned())
    }

    /// Every master address seen, by broker name.
    pub fn masters(&self) -> Vec<(String, String)> {
        lock(&self.brokers)
            .iter()
            .filter_map(|(name, addrs)| addrs.get(&MASTER_ID).map(|a| (name.clone(), a.clone())))
            .collect()
    }

    /// The writable (or readable) queues of `topic` whose master is known.
    pub async fn queues(
        &self,
        topic: &str,
        write: bool,
    ) -> Result<Vec<AddressedQueue>, ClusterError> {
        let route = self.route(topic).await?;
        Ok(queues_of(topic, &route, write))
    }

    /// The next queue in round-robin order, skipping `avoid` brokers when
    /// another one is available (a failed send moves to another broker, like
    /// Java's `MessageQueueSelector` with penalties).
    pub async fn select(
        &self,
        topic: &str,
        write: bool,
        avoid: &[String],
    ) -> Result<AddressedQueue, ClusterError> {
        let all = self.queues(topic, write).await?;
        if all.is_empty() {
            return Err(ClusterError::NoQueue(
                topic.to_owned(),
                if write { "writable" } else { "readable" },
            ));
        }
        let preferred: Vec<&AddressedQueue> = all
            .iter()
            .filter(|q| !avoid.contains(&q.broker_name))
            .collect();
        let pick_from: Vec<&AddressedQueue> = if preferred.is_empty() {
            all.iter().collect()
        } else {
            preferred
        };
        let n = {
            let mut cursor = lock(&self.cursor);
            let c = cursor.entry(topic.to_owned()).or_insert(0);
            *c = c.wrapping_add(1);
            *c
        };
        Ok(pick_from[n % pick_from.len()].clone())
    }
}

/// Queues of a route: `readQueueNums`/`writeQueueNums` of each broker whose
/// permission allows it and whose master is listed.
pub fn queues_of(topic: &str, route: &TopicRouteData, write: bool) -> Vec<AddressedQueue> {
    let mut out = Vec::new();
    for qd in &route.queue_datas {
        let (perm, count) = if write {
            (PERM_WRITE, qd.write_queue_nums)
        } else {
            (PERM_READ, qd.read_queue_nums)
        };
        if qd.perm & perm == 0 {
            continue;
        }
        let Some(addr) = route
            .broker_datas
            .iter()
            .find(|b| b.broker_name == qd.broker_name)
            .and_then(|b| b.broker_addrs.get(&MASTER_ID))
        else {
            continue;
        };
        for queue_id in 0..count.clamp(0, 1024) {
            out.push(AddressedQueue {
                topic: topic.to_owned(),
                broker_name: qd.broker_name.clone(),
                broker_addr: addr.clone(),
                queue_id,
            });
        }
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoting::body::{BrokerData, QueueData};

    fn route() -> TopicRouteData {
        TopicRouteData {
            broker_datas: vec![
                BrokerData {
                    broker_name: "a".into(),
                    broker_addrs: [(0, "127.0.0.1:1".to_owned())].into(),
                    ..Default::default()
                },
                BrokerData {
                    broker_name: "b".into(),
                    broker_addrs: [(1, "127.0.0.1:2".to_owned())].into(),
                    ..Default::default()
                },
            ],
            queue_datas: vec![
                QueueData {
                    broker_name: "a".into(),
                    perm: PERM_READ,
                    read_queue_nums: 2,
                    write_queue_nums: 3,
                    ..Default::default()
                },
                QueueData {
                    broker_name: "b".into(),
                    perm: PERM_READ | PERM_WRITE,
                    read_queue_nums: 2,
                    write_queue_nums: 2,
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn queues_need_permission_and_a_master() {
        let r = route();
        // a: read only; b: no master.
        assert!(queues_of("T", &r, true).is_empty());
        let read = queues_of("T", &r, false);
        assert_eq!(read.len(), 2);
        assert!(read
            .iter()
            .all(|q| q.broker_name == "a" && q.broker_addr == "127.0.0.1:1"));
    }
}
