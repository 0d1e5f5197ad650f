//! Cluster mode (`mqproxy`): the gRPC service's backend over remoting to
//! the brokers a name server lists, ours or Java's.

pub mod backend;
pub mod clients;
pub mod config;
pub mod error;
pub mod header;
pub mod receipt;
pub mod route;

pub use backend::ClusterBackend;
pub use config::ClusterConfig;
pub use error::ClusterError;
