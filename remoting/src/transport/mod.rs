//! A tokio transport for remoting commands.
//!
//! One [`Connection`] type serves both ends: either side may send requests
//! (server-initiated requests such as NOTIFY_CONSUMER_IDS_CHANGED go over the
//! client's connection), responses are matched by `opaque`, and incoming
//! requests are answered by a [`Router`]: one handler per request code, with
//! error-to-response mapping and the unknown-code answer done once, here.

mod connection;
mod idle;
mod read_loop;
mod router;
mod server;
mod write;

use std::future::Future;
use std::pin::Pin;

use crate::command::RemotingCommand;
use crate::error::CommandError;

pub use connection::Connection;
pub use router::{Handler, Interceptor, Router};
pub use server::{bind, serve, shutdown_signal, ServerConfig, DEFAULT_IDLE_SECONDS};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
pub type HandlerResult = Result<RemotingCommand, CommandError>;
