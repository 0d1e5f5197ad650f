//! GET_BROKER_HA_STATUS (907): Java's `HARuntimeInfo`, which
//! `mqadmin haStatus` prints — the master's slave connections, or a slave's
//! connection to its master.

use remoting::code::response_code;
use remoting::RemotingCommand;
use serde_json::{json, Value};

use crate::error::BrokerError;
use crate::replication::ha::Replication;
use crate::store::BrokerStore;

/// The answer for this broker (fastjson's key order: sorted).
pub(crate) fn ha_status(
    replication: Option<&Replication>,
    store: &BrokerStore,
) -> Result<RemotingCommand, BrokerError> {
    let Some(r) = replication else {
        // Java: a store without an HA service (DLedger) has no runtime info.
        return Ok(RemotingCommand::response(response_code::SYSTEM_ERROR)
            .with_remark("Can not get HARuntimeInfo, may be duplicationEnable is true"));
    };
    let max = store.with(0, |s| s.commit_log_max_offset().get());
    let body = match &r.client {
        Some(client) => {
            let st = client.status();
            json!({
                "haClientRuntimeInfo": {
                    "lastReadTimestamp": ha::wall_clock_ms(st.last_read_ms),
                    "lastWriteTimestamp": ha::wall_clock_ms(st.last_write_ms),
                    "masterAddr": st.master_addr.unwrap_or_default(),
                    "masterFlushOffset": 0,
                    "maxOffset": max,
                    "transferredByteInSecond": 0,
                },
                "haConnectionInfo": [],
                "inSyncSlaveNums": 0,
                "master": false,
                "masterCommitLogMaxOffset": 0,
            })
        }
        None => {
            let conns: Vec<Value> = r
                .master
                .connections()
                .into_iter()
                .map(|c| {
                    let ack = c.slave_ack_offset.get().max(0);
                    let diff = max - ack;
                    json!({
                        "addr": c.addr.to_string(),
                        "diff": diff,
                        "inSync": c.in_sync,
                        "slaveAckOffset": ack,
                        "transferFromWhere": c.transfer_from.get().max(0),
                        "transferredByteInSecond": 0,
                    })
                })
                .collect();
            let in_sync = r.master.in_sync_replicas() - 1;
            json!({
                "haClientRuntimeInfo": {
                    "lastReadTimestamp": 0,
                    "lastWriteTimestamp": 0,
                    "masterFlushOffset": 0,
                    "maxOffset": 0,
                    "transferredByteInSecond": 0,
                },
                "haConnectionInfo": conns,
                "inSyncSlaveNums": in_sync,
                "master": true,
                "masterCommitLogMaxOffset": max,
            })
        }
    };
    Ok(RemotingCommand::success().with_body(body.to_string().into_bytes()))
}
