//! END_TRANSACTION (37) (`EndTransactionProcessor`): commit re-puts the half
//! message to its real topic and queue, rollback only marks it resolved,
//! "unknown" is ignored.

use std::sync::Arc;

pub use remoting::headers::EndTransactionRequestHeader;
use remoting::headers::{TRANSACTION_COMMIT_TYPE, TRANSACTION_NOT_TYPE, TRANSACTION_ROLLBACK_TYPE};
use remoting::{Connection, RemotingCommand};
use store::{properties, CommitLogOffset, StoreError};

use crate::error::BrokerError;
use crate::message;
use crate::meta::topic;
use crate::services::schedule::{unpark, ScheduleService};
use crate::services::transaction::{Outcome, TransactionService};

/// `MessageSysFlag` transaction bits.
const TRANSACTION_TYPE_MASK: i32 = 0xC;

pub struct EndTransactionProcessor {
    pub tx: Arc<TransactionService>,
    pub schedule: Arc<ScheduleService>,
}

impl EndTransactionProcessor {
    pub async fn handle(
        &self,
        conn: &Connection,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, BrokerError> {
        let h: EndTransactionRequestHeader = req.header()?;
        let outcome = match h.commit_or_rollback {
            TRANSACTION_COMMIT_TYPE => Outcome::Commit,
            TRANSACTION_ROLLBACK_TYPE => Outcome::Rollback,
            TRANSACTION_NOT_TYPE => {
                tracing::debug!(group = %h.producer_group, from = %conn.peer(), check = ?h.from_transaction_check, "transaction state unknown");
                return Ok(RemotingCommand::success());
            }
            other => {
                return Err(BrokerError::System(format!(
                    "illegal commitOrRollback {other}"
                )))
            }
        };
        let record = self
            .tx
            .store
            .with(None, |s| s.message_at(CommitLogOffset(h.commit_log_offset)))
            .ok_or_else(|| {
                BrokerError::System("Find prepared transaction message failed".into())
            })?;
        let view = store::record::decode(&record).map_err(|e| {
            BrokerError::System(format!("Find prepared transaction message failed: {e}"))
        })?;
        let props = message::decode_properties(view.properties);
        if view.topic != topic::TRANS_HALF_TOPIC {
            return Err(BrokerError::System(
                "Find prepared transaction message failed".into(),
            ));
        }
        if props.get(properties::PGROUP).map(String::as_str) != Some(&h.producer_group) {
            return Err(BrokerError::System("The producer group wrong".into()));
        }
        if view.queue_offset != h.tran_state_table_offset {
            return Err(BrokerError::System(
                "The transaction state table offset wrong".into(),
            ));
        }
        if view.physical_offset != h.commit_log_offset {
            return Err(BrokerError::System("The commit log offset wrong".into()));
        }
        let id = props
            .get(properties::TRANSACTION_ID)
            .or_else(|| props.get(properties::UNIQ_KEY))
            .cloned()
            .unwrap_or_default();
        if self.tx.is_resolved(view.queue_offset, &id) {
            tracing::info!(offset = view.queue_offset, transaction = %id, "transaction already resolved; ignored");
            return Ok(RemotingCommand::success());
        }
        let real = match outcome {
            Outcome::Rollback => None,
            Outcome::Commit => {
                let mut m = unpark(&record, &[], &[]).map_err(BrokerError::System)?;
                m.sys_flag = (m.sys_flag & !TRANSACTION_TYPE_MASK) | TRANSACTION_COMMIT_TYPE;
                m.prepared_transaction_offset = h.commit_log_offset;
                // Committed messages with a delay level are delayed (Java
                // `CommitLog.putMessage` for COMMIT_TYPE).
                let level = props
                    .get(properties::DELAY)
                    .and_then(|d| d.parse::<i32>().ok())
                    .unwrap_or(0);
                if level > 0 {
                    let mut p = props.clone();
                    self.schedule.park(&mut m, &mut p, level);
                    m.properties = message::encode_properties(&p);
                }
                Some(m)
            }
        };
        self.tx
            .resolve(view.queue_offset, &id, real.as_ref())
            .await
            .map_err(|e: StoreError| BrokerError::System(e.to_string()))?;
        tracing::debug!(offset = view.queue_offset, ?outcome, check = ?h.from_transaction_check, "transaction ended");
        Ok(RemotingCommand::success())
    }
}
