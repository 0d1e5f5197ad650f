//! Cluster mode (`mqproxy`): the gRPC service's backend over remoting to
//! the brokers a name server lists, ours or Java's, and the remoting port
//! that relays remoting clients to those brokers.

pub mod backend;
pub mod clients;
pub mod config;
pub mod error;
pub mod header;
pub mod receipt;
pub mod remoting_port;
pub mod route;

pub use backend::ClusterBackend;
pub use config::ClusterConfig;
pub use error::ClusterError;
