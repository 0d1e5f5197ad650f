//! RocketMQ 5's gRPC `MessagingService` (package `apache.rocketmq.v2`), the
//! protocol of the official 5.x clients (Java, Go, Node, Python, ...).
//!
//! - [`pb`]: the messages and the tonic server/client, generated at build
//!   time from `proto/apache/rocketmq/v2/*.proto` with `protox` (no system
//!   `protoc` needed).
//! - [`Backend`]: what the service needs from a store of messages, in our
//!   own types. The broker implements it in process (local mode, `mqbroker`
//!   with the proxy enabled); `mqproxy` implements it over remoting
//!   (cluster mode).
//! - [`service::MessagingServer`]: the tonic service over any backend:
//!   request validation, message conversion, Java's result codes, the
//!   telemetry stream (settings, transaction recovery).

pub mod backend;
pub mod cluster;
pub mod error;
pub mod receipt;

pub use backend::*;
pub use error::ProxyError;
pub use receipt::ReceiptHandle;

/// Generated protobuf messages and the tonic `MessagingService`.
pub mod pb {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("apache.rocketmq.v2");
}

pub mod service;
pub mod tls;
pub use service::{MessagingServer, ServiceConfig};

/// The tonic and prost-types versions the generated code uses (tests and
/// drivers build clients with them).
pub use {prost_types, tonic};
