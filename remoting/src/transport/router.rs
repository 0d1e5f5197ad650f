//! The request-code router: one handler per code, error-to-response mapping
//! and the unknown-code answer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tracing::debug;

use super::{BoxFuture, Connection, HandlerResult};
use crate::code::response_code;
use crate::command::RemotingCommand;

/// Handles one request code. Implemented for `Fn(Connection, RemotingCommand) -> impl Future`.
/// The function itself runs on the connection's read loop, in arrival order;
/// only the future it returns runs concurrently with later requests.
pub trait Handler: Send + Sync + 'static {
    fn call(&self, conn: Connection, request: RemotingCommand) -> BoxFuture<HandlerResult>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Connection, RemotingCommand) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    fn call(&self, conn: Connection, request: RemotingCommand) -> BoxFuture<HandlerResult> {
        Box::pin(self(conn, request))
    }
}

type CloseHook = Arc<dyn Fn(&Connection) + Send + Sync>;

/// The request-code -> handler table, plus hooks for closed connections.
#[derive(Default, Clone)]
pub struct Router {
    handlers: HashMap<i32, Arc<dyn Handler>>,
    pub(super) on_close: Vec<CloseHook>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn route(mut self, code: i32, handler: impl Handler) -> Self {
        self.handlers.insert(code, Arc::new(handler));
        self
    }

    /// Called once when a connection closes, for whatever reason.
    pub fn on_close(mut self, hook: impl Fn(&Connection) + Send + Sync + 'static) -> Self {
        self.on_close.push(Arc::new(hook));
        self
    }

    pub fn handles(&self, code: i32) -> bool {
        self.handlers.contains_key(&code)
    }

    pub(super) fn dispatch(
        &self,
        conn: Connection,
        request: RemotingCommand,
    ) -> BoxFuture<RemotingCommand> {
        let code = request.code;
        let Some(handler) = self.handlers.get(&code) else {
            debug!(peer = %conn.peer(), code, "request code not supported");
            return Box::pin(std::future::ready(
                RemotingCommand::response(response_code::REQUEST_CODE_NOT_SUPPORTED)
                    .with_remark(format!(" request type {code} not supported")),
            ));
        };
        let peer = conn.peer();
        let fut = handler.call(conn, request);
        Box::pin(async move {
            match fut.await {
                Ok(response) => response,
                Err(e) => {
                    debug!(%peer, code, response_code = e.code, remark = %e.remark, "request failed");
                    RemotingCommand::response(e.code).with_remark(e.remark)
                }
            }
        })
    }
}
