//! Controller mode (`enableControllerMode=true`, RIP-44; the facts are in
//! docs/protocol/controller.md §4–§6): the broker's id and role come from
//! the controllers.
//!
//! - [`identity`]: `brokerIdentity` / `brokerIdentity-temp` (§6.1).
//! - [`client`]: leader discovery (1005), calls to the leader, heartbeats.
//! - [`state`]: the sans-IO role decision (strictly greater `masterEpoch`).
//! - [`manager`]: start-up (1012 → temp → 1013 → identity → 1003 → 904 →
//!   1002), the periodic tasks (904, 1004, 1005, 1001), role changes in
//!   place, and the router's handle for 1007 / 1008.
//! - [`replica`]: the replication seam ([`ControllerReplication`]);
//!   [`autoswitch`]: its implementation over `ha::autoswitch` (AutoSwitch
//!   HA master / client, epoch file).
//! - [`wire`]: codes, requests, tolerant answer readers.

pub mod autoswitch;
pub mod client;
pub mod identity;
pub mod manager;
pub mod replica;
pub mod state;
pub mod wire;

pub use autoswitch::AutoSwitchReplication;
pub use manager::{epoch_cache_answer, notify_answer, ControllerHandle, ControllerManager, Parts};
pub use replica::ControllerReplication;
