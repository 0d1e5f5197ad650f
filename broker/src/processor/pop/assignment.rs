//! QUERY_ASSIGNMENT (400) and SET_MESSAGE_REQUEST_MODE (401), Java
//! `QueryAssignmentProcessor`: the broker assigns queues to the clients of
//! a group, and in POP mode hands out queue id -1 ("pop any queue") unless
//! `popShareQueueNum` asks for a share.
//!
//! Not Java's: the queues assigned are this broker's own (its topic config);
//! Java asks the name server for the topic's route across all brokers.

use std::collections::BTreeSet;

use remoting::code::response_code as rc;
use remoting::RemotingCommand;
use serde::{Deserialize, Serialize};

use super::PopProcessor;
use crate::error::BrokerError;
use crate::meta::request_mode::RequestMode;
use crate::processor::read_config;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct QueryAssignmentBody {
    topic: String,
    consumer_group: String,
    client_id: String,
    strategy_name: String,
    message_model: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
struct Assignment {
    message_queue: Mq,
    mode: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
struct Mq {
    broker_name: String,
    queue_id: i32,
    topic: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryAssignmentResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    message_queue_assignments: Option<Vec<Assignment>>,
}

/// An allocation strategy: (client, all queues, all clients) → its queues.
type Allocate = fn(&str, &[Mq], &[String]) -> Vec<Mq>;

/// `AllocateMessageQueueAveragely`.
fn allocate_avg<T: Clone>(client: &str, all: &[T], cids: &[String]) -> Vec<T> {
    let Some(index) = cids.iter().position(|c| c == client) else {
        return vec![];
    };
    if all.is_empty() {
        return vec![];
    }
    let (n, c) = (all.len(), cids.len());
    let m = n % c;
    let avg = if n <= c {
        1
    } else if m > 0 && index < m {
        n / c + 1
    } else {
        n / c
    };
    let start = if m > 0 && index < m {
        index * avg
    } else {
        index * avg + m
    };
    let range = avg.min(n.saturating_sub(start));
    all.iter().skip(start).take(range).cloned().collect()
}

/// `AllocateMessageQueueAveragelyByCircle`.
fn allocate_circle<T: Clone>(client: &str, all: &[T], cids: &[String]) -> Vec<T> {
    let Some(index) = cids.iter().position(|c| c == client) else {
        return vec![];
    };
    all.iter()
        .enumerate()
        .filter(|(i, _)| i % cids.len() == index)
        .map(|(_, q)| q.clone())
        .collect()
}

impl PopProcessor {
    pub fn query_assignment(&self, req: &RemotingCommand) -> Result<RemotingCommand, BrokerError> {
        let b: QueryAssignmentBody = remoting::body::from_fastjson(&req.body)
            .map_err(|e| BrokerError::BadBody(format!("bad QueryAssignmentRequestBody: {e}")))?;
        let (broker_name, default_mode, default_share) = {
            let c = read_config(&self.pop.config);
            (
                c.broker_name.clone(),
                c.default_message_request_mode.clone(),
                c.default_pop_share_queue_num,
            )
        };
        let mode = self
            .modes
            .get(&b.topic, &b.consumer_group)
            .unwrap_or_else(|| {
                let mode = if b.topic.starts_with("%RETRY%") {
                    "PULL".to_owned()
                } else {
                    default_mode
                };
                RequestMode {
                    consumer_group: b.consumer_group.clone(),
                    pop_share_queue_num: if mode == "POP" { default_share } else { 0 },
                    mode,
                    topic: b.topic.clone(),
                }
            });
        let all: Option<Vec<Mq>> = self.pop.topics.get(&b.topic).map(|t| {
            (0..t.read_queue_nums)
                .map(|q| Mq {
                    broker_name: broker_name.clone(),
                    queue_id: q,
                    topic: b.topic.clone(),
                })
                .collect()
        });
        let queues: Option<Vec<Mq>> = match (b.message_model.as_str(), all) {
            (_, None) => None,
            ("BROADCASTING", Some(all)) => Some(all),
            (_, Some(all)) => {
                let mut cids = self.clients.consumer_ids(&b.consumer_group);
                cids.sort();
                cids.dedup();
                let alloc: Option<Allocate> = match b.strategy_name.as_str() {
                    "AVG" => Some(allocate_avg::<Mq>),
                    "AVG_BY_CIRCLE" => Some(allocate_circle::<Mq>),
                    _ => None,
                };
                match alloc {
                    _ if cids.is_empty() => None,
                    None => None,
                    Some(alloc) if mode.mode == "POP" => {
                        let share = mode.pop_share_queue_num;
                        if share <= 0 || share as usize >= cids.len().saturating_sub(1) {
                            Some(
                                all.iter()
                                    .map(|q| Mq {
                                        queue_id: -1,
                                        ..q.clone()
                                    })
                                    .collect(),
                            )
                        } else if cids.len() <= all.len() {
                            let mut r = alloc(&b.client_id, &all, &cids);
                            if let Some(mut i) = cids.iter().position(|c| *c == b.client_id) {
                                for _ in 0..share {
                                    i = (i + 1) % cids.len();
                                    r.extend(alloc(&cids[i], &all, &cids));
                                }
                            }
                            Some(r)
                        } else {
                            // More clients than queues: each gets one,
                            // queues shared round the circle.
                            cids.iter()
                                .position(|c| *c == b.client_id)
                                .map(|i| vec![all[i % all.len()].clone()])
                                .or(Some(vec![]))
                        }
                    }
                    Some(alloc) => Some(alloc(&b.client_id, &all, &cids)),
                }
            }
        };
        let assignments = queues.map(|qs| {
            let set: BTreeSet<Assignment> = qs
                .into_iter()
                .map(|q| Assignment {
                    message_queue: q,
                    mode: mode.mode.clone(),
                })
                .collect();
            set.into_iter().collect()
        });
        let body = serde_json::to_vec(&QueryAssignmentResponse {
            message_queue_assignments: assignments,
        })
        .map_err(|e| BrokerError::System(e.to_string()))?;
        Ok(RemotingCommand::success().with_body(body))
    }

    pub fn set_message_request_mode(
        &self,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let b: RequestMode = remoting::body::from_fastjson(&req.body).map_err(|e| {
            BrokerError::BadBody(format!("bad SetMessageRequestModeRequestBody: {e}"))
        })?;
        if b.topic.starts_with("%RETRY%") {
            return Ok(RemotingCommand::response(rc::NO_PERMISSION)
                .with_remark("retry topic is not allowed to set mode"));
        }
        tracing::info!(topic = %b.topic, group = %b.consumer_group, mode = %b.mode, share = b.pop_share_queue_num, "message request mode set");
        self.modes.set(b);
        Ok(RemotingCommand::success())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averagely_as_java() {
        let all: Vec<i32> = (0..5).collect();
        let cids: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(allocate_avg("a", &all, &cids), vec![0, 1, 2]);
        assert_eq!(allocate_avg("b", &all, &cids), vec![3, 4]);
        assert_eq!(allocate_avg("c", &all, &cids), Vec::<i32>::new());
        assert_eq!(allocate_circle("b", &all, &cids), vec![1, 3]);
    }
}
