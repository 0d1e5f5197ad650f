//! RocketMQ 5.x controller mode (RIP-44) for the `controller_*` suites.
//!
//! - [`ControllerGroup`]: N controllers of chosen [`ControllerKind`]s (the
//!   official Java 5.3.3 `ControllerStartup`, our `mqcontroller`, or a name
//!   server with `enableControllerInNamesrv=true`, ours or Java's) in one
//!   DLedger group with one `controllerDLegerPeers` string on free loopback
//!   ports, each with its own folder, store (4 MiB DLedger files) and log.
//!   A member can be SIGKILLed, stopped, restarted (same store) and paused
//!   (SIGSTOP/SIGCONT); the leader is found with CONTROLLER_GET_METADATA_INFO
//!   (1005) sent straight to every member.
//! - [`controller_broker`]: the official Java 5.3.3 broker in controller
//!   mode (`enableControllerMode=true`, `brokerId=-1`, `brokerRole=SLAVE`,
//!   `allAckInSyncStateSet=true`, [`CLUSTER`]/[`BROKER_NAME`]).
//! - Direct reads for polling (1005 [`metadata`], 1006 [`sync_state`]) and
//!   [`Admin`]: the 5.3.3 mqadmin commands of controller mode, parsed.
//! - [`failover_flow`]: the broker failover scenario shared by the suites
//!   (producer and push consumer through a master kill, the old master's
//!   return and a controller leader kill; `check_acks` at the end).
//!
//! Every wait polls with a deadline; a failure prints every process's logs.
//!
//! Submodules: `group` (members and the group), `reads` (1005/1006 sent
//! straight), `brokers` (Java brokers in controller mode), `admin` (mqadmin),
//! `flow` (the shared failover scenario), `ours` (our brokers in controller
//! mode, [`OurControllerBroker`]).

mod acks;
mod admin;
mod brokers;
mod flow;
mod group;
mod ours;
mod reads;

pub use acks::{create_topic_on, send_raw, RawAcks};
pub use admin::{
    parse_broker_epochs, parse_controller_config, parse_controller_metadata, parse_sync_state_set,
    Admin, AdminBrokerEpoch, AdminElect, AdminMetadata, AdminSyncState, Epoch,
};
pub use brokers::{controller_broker, controller_broker_keys, kill_broker, route};
pub use flow::{failover_flow, FlowTimings};
pub use group::{controller_bin, substitute, ControllerGroup, ControllerKind, ControllerMember};
pub use ours::{broker_epochs, BrokerEpochs, EpochEntry, OurControllerBroker, HA_PROXY_IP};
pub use reads::{metadata, parse_replicas_info, request, sync_state, Metadata, Replica, SyncState};

/// The official Java version of the controllers, brokers and tools.
pub const VERSION: &str = "5.3.3";
pub const CLUSTER: &str = "CtlCluster";
pub const BROKER_NAME: &str = "ctl-a";
pub const DLEDGER_GROUP: &str = "CtlGroup";
/// DLedger data file size of every controller (`mappedFileSize`, 4 MiB).
pub const MAPPED_FILE_SIZE: u64 = 4 * 1024 * 1024;
/// Commit-log file size of every broker (8 MiB).
pub const BROKER_FILE_SIZE: u64 = 8 * 1024 * 1024;

/// Controller request codes (`RequestCode.java`).
pub mod code {
    pub const ALTER_SYNC_STATE_SET: i32 = 1001;
    pub const ELECT_MASTER: i32 = 1002;
    pub const REGISTER_BROKER: i32 = 1003;
    pub const GET_REPLICA_INFO: i32 = 1004;
    pub const GET_METADATA_INFO: i32 = 1005;
    pub const GET_SYNC_STATE_DATA: i32 = 1006;
    pub const GET_BROKER_EPOCH_CACHE: i32 = 1007;
    pub const UPDATE_CONTROLLER_CONFIG: i32 = 1009;
    pub const GET_CONTROLLER_CONFIG: i32 = 1010;
    pub const CLEAN_BROKER_DATA: i32 = 1011;
    pub const GET_NEXT_BROKER_ID: i32 = 1012;
    /// Response: the node is not the controller leader.
    pub const NOT_LEADER: i32 = 2007;
}
