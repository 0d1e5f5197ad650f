//! The DLedger commit log (`enableDLegerCommitLog=true`, docs/protocol/dledger.md §4):
//! the broker's records live in a DLedger group, one message per entry.
//!
//! - [`DLedgerLog`] is the store's [`ReplicatedLog`](store::ReplicatedLog):
//!   a put queues its entries on the DLedger leader's local append (in the
//!   store's writer lock, so log order = queue-offset order, never waiting)
//!   and the sender's task then awaits their quorum commit (or failure), so
//!   concurrent sends share quorum rounds; reads go to DLedger's committed
//!   reader (entry bodies by data-log position, never past the committed
//!   end).
//! - [`dispatch_loop`] feeds every committed entry, in index order, to
//!   [`MessageStore::dispatch_replicated`](store::MessageStore::dispatch_replicated):
//!   message offset = the entry's body position
//!   ([`dledger::entry::Entry::body_pos`]). It starts at the log's first
//!   entry on every start.
//! - [`role_loop`] follows DLedger role changes as Java's
//!   `DLedgerRoleChangeHandler`: LEADER → wait for `ledgerEnd ==
//!   committedIndex` and dispatch caught up, then the store becomes the
//!   writer in that term
//!   ([`MessageStore::become_writer`](store::MessageStore::become_writer):
//!   appends fenced to the term) and the broker master with broker id 0;
//!   FOLLOWER / CANDIDATE → the store stops writing, then slave with broker
//!   id = selfId number + 1. Each change re-registers with every name server
//!   at once. Until the first leadership is caught up (e.g. right after a
//!   restart, while the queues are rebuilt from the log) the store refuses
//!   every put, so no queue offset already in use is handed out again.
//!
//! As Java's `DLedgerCommitLog`, an append hook run inside the leader's
//! append writes PHYSICALOFFSET (record byte 28) = the body's position
//! (`entry.pos + 48`) into the stored entry, so followers (ours or Java's)
//! store the same bytes.

mod dispatch;
mod options;
mod replicated_log;
mod role;
mod services;

pub use dispatch::{dispatch_loop, DispatchState};
pub use options::{self_id_number, server_options};
pub use replicated_log::DLedgerLog;
pub use role::role_loop;
pub use services::MasterServices;
