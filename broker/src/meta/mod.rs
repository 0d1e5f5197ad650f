//! What the broker knows besides messages, each kept by one manager: topic
//! configs, subscription groups, consumer offsets (these three persisted in
//! Java's JSON formats under `<root>/config`), queue locks and live clients.

pub(crate) mod client;
pub mod journal;
pub(crate) mod lock;
pub(crate) mod offsets;
pub(crate) mod request_mode;
pub(crate) mod subscription;
pub(crate) mod topic;
