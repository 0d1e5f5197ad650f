//! A DLedger client with the behaviour of Java's `DLedgerClient`: find the
//! leader through METADATA, send APPEND/GET to it, retry once on NOT_LEADER.
//! Used by the `dledger append|get|leadershipTransfer` commands and tests.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use super::peer::{PeerClient, RPC_TIMEOUT};
use crate::config::parse_peers;
use crate::protocol::{
    request_frame, AppendEntryRequest, AppendEntryResponse, Base, Body, GetEntriesRequest,
    GetEntriesResponse, LeadershipTransferRequest, LeadershipTransferResponse, MetadataRequest,
    MetadataResponse, RequestCode, ResponseCode,
};

/// Talks to a DLedger group as a client.
pub struct DLedgerClient {
    group: String,
    peers: BTreeMap<String, PeerClient>,
    leader: Option<String>,
    timeout: Duration,
}

impl DLedgerClient {
    /// `peers` in DLedger's `id-host:port;...` form.
    pub fn new(group: &str, peers: &str) -> Result<Self, crate::config::ConfigError> {
        let parsed = parse_peers(peers)?;
        Ok(DLedgerClient {
            group: group.to_owned(),
            peers: parsed
                .into_iter()
                .map(|p| (p.id, PeerClient::new(p.addr)))
                .collect(),
            leader: None,
            timeout: RPC_TIMEOUT,
        })
    }

    fn base(&self, remote: &str) -> Base {
        Base {
            group: Some(self.group.clone()),
            remote_id: Some(remote.to_owned()),
            ..Base::default()
        }
    }

    async fn call<Req: Body, Resp: Body>(
        &self,
        id: &str,
        code: RequestCode,
        req: &Req,
    ) -> Option<Resp> {
        let peer = self.peers.get(id)?;
        let resp = peer
            .call(request_frame(code, req), self.timeout)
            .await
            .ok()?;
        Resp::from_json(&resp.body).ok()
    }

    /// Asks one peer for the group's metadata.
    pub async fn metadata(&self, id: &str) -> Option<MetadataResponse> {
        let req = MetadataRequest {
            base: self.base(id),
        };
        self.call(id, RequestCode::Metadata, &req).await
    }

    /// Finds the leader by asking every peer in turn, as Java's metadata updater.
    pub async fn refresh_leader(&mut self) -> Option<String> {
        self.leader = None;
        let ids: Vec<String> = self.peers.keys().cloned().collect();
        for id in ids {
            if let Some(m) = self.metadata(&id).await {
                if m.base.code == ResponseCode::Success.code() {
                    if let Some(l) = m.base.leader_id.filter(|l| self.peers.contains_key(l)) {
                        self.leader = Some(l);
                        break;
                    }
                }
            }
        }
        self.leader.clone()
    }

    async fn leader(&mut self) -> Option<String> {
        match &self.leader {
            Some(l) => Some(l.clone()),
            None => self.refresh_leader().await,
        }
    }

    /// APPEND one body through the leader.
    pub async fn append(&mut self, body: Bytes) -> AppendEntryResponse {
        for attempt in 0..2 {
            let Some(leader) = self.leader().await else {
                return AppendEntryResponse {
                    base: Base {
                        code: ResponseCode::MetadataError.code(),
                        ..Base::default()
                    },
                    ..AppendEntryResponse::default()
                };
            };
            let req = AppendEntryRequest {
                base: self.base(&leader),
                body: Some(body.clone()),
            };
            match self
                .call::<_, AppendEntryResponse>(&leader, RequestCode::Append, &req)
                .await
            {
                Some(r) if r.base.code == ResponseCode::NotLeader.code() && attempt == 0 => {
                    self.leader = None;
                }
                Some(r) => return r,
                None => {
                    self.leader = None;
                    return AppendEntryResponse {
                        base: Base {
                            code: ResponseCode::InternalError.code(),
                            ..Base::default()
                        },
                        ..AppendEntryResponse::default()
                    };
                }
            }
        }
        AppendEntryResponse {
            base: Base {
                code: ResponseCode::NotLeader.code(),
                ..Base::default()
            },
            ..AppendEntryResponse::default()
        }
    }

    /// GET the entry at `index` from the leader.
    pub async fn get(&mut self, index: i64) -> GetEntriesResponse {
        for attempt in 0..2 {
            let Some(leader) = self.leader().await else {
                return GetEntriesResponse {
                    base: Base {
                        code: ResponseCode::MetadataError.code(),
                        ..Base::default()
                    },
                    ..GetEntriesResponse::default()
                };
            };
            match self.get_from(&leader, index).await {
                Some(r) if r.base.code == ResponseCode::NotLeader.code() && attempt == 0 => {
                    self.leader = None;
                }
                Some(r) => return r,
                None => {
                    self.leader = None;
                    break;
                }
            }
        }
        GetEntriesResponse {
            base: Base {
                code: ResponseCode::InternalError.code(),
                ..Base::default()
            },
            ..GetEntriesResponse::default()
        }
    }

    /// GET sent to one named peer (DLedger answers only on the leader).
    pub async fn get_from(&self, id: &str, index: i64) -> Option<GetEntriesResponse> {
        let req = GetEntriesRequest {
            base: self.base(id),
            begin_index: Some(index),
            ..GetEntriesRequest::default()
        };
        self.call(id, RequestCode::Get, &req).await
    }

    /// LEADERSHIP_TRANSFER to the current leader `leader`.
    pub async fn leadership_transfer(
        &self,
        leader: &str,
        transferee: &str,
        term: i64,
    ) -> LeadershipTransferResponse {
        let req = LeadershipTransferRequest {
            base: Base {
                term,
                ..self.base(leader)
            },
            transfer_id: Some(leader.to_owned()),
            transferee_id: Some(transferee.to_owned()),
            take_leadership_ledger_index: 0,
        };
        self.call(leader, RequestCode::LeadershipTransfer, &req)
            .await
            .unwrap_or_else(|| LeadershipTransferResponse {
                base: Base {
                    code: ResponseCode::InternalError.code(),
                    ..Base::default()
                },
            })
    }

    pub async fn close(&self) {
        for p in self.peers.values() {
            p.close().await;
        }
    }
}
