//! A RocketMQ name server: brokers register their topics here, clients and
//! admin tools ask it for routes. Wire-compatible with Java's `mqnamesrv`.
//!
//! * [`route`]: the route table, no I/O; everything served is a function of it.
//! * [`register_body`]: REGISTER_BROKER body decoding (JSON and compressed).
//! * [`json`]: route and cluster bodies in Java's standard and legacy JSON forms.
//! * [`kv`]: the KV config table and its `kvConfig.json` file.
//! * [`config`]: `NamesrvConfig` from Java `.properties` keys.
//! * [`server`]: request handlers, the liveness scan and [`run`].

pub mod config;
pub mod error;
pub mod json;
pub mod kv;
pub mod register_body;
pub mod route;
pub mod server;

pub use config::NamesrvConfig;
pub use error::{NamesrvError, ServerError};
pub use server::{router, run, run_with, Namesrv};
