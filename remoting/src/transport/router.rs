//! The request-code router: one handler per code, error-to-response mapping
//! and the unknown-code answer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::debug;

use super::{BoxFuture, Connection, HandlerResult};
use crate::code::response_code;
use crate::command::RemotingCommand;
use crate::error::CommandError;

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

/// Sees every request a [`Router`] dispatches, in the shape of Java's
/// `RPCHook`: `before` runs on the read loop ahead of the handler and may
/// refuse the request (its error becomes the response, the handler is not
/// called); `after` sees the response and how long the request took.
/// Both must be cheap: they run for every request.
pub trait Interceptor: Send + Sync + 'static {
    fn before(&self, _conn: &Connection, _request: &RemotingCommand) -> Result<(), CommandError> {
        Ok(())
    }

    /// `code` is the request's code; `elapsed` runs from dispatch to the
    /// response (refusals by `before` and unknown codes included).
    fn after(
        &self,
        _conn: &Connection,
        _code: i32,
        _response: &RemotingCommand,
        _elapsed: Duration,
    ) {
    }
}

/// So that the caller can keep a handle on an interceptor it installs.
impl<T: Interceptor + ?Sized> Interceptor for Arc<T> {
    fn before(&self, conn: &Connection, request: &RemotingCommand) -> Result<(), CommandError> {
        (**self).before(conn, request)
    }

    fn after(&self, conn: &Connection, code: i32, response: &RemotingCommand, elapsed: Duration) {
        (**self).after(conn, code, response, elapsed)
    }
}

/// The request-code -> handler table, plus interceptors and hooks for
/// closed connections.
#[derive(Default, Clone)]
pub struct Router {
    handlers: HashMap<i32, Arc<dyn Handler>>,
    interceptors: Vec<Arc<dyn Interceptor>>,
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

    /// Adds an interceptor; they run in the order added, and the first
    /// `before` that refuses ends the request.
    pub fn intercept(mut self, interceptor: impl Interceptor) -> Self {
        self.interceptors.push(Arc::new(interceptor));
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
        if self.interceptors.is_empty() {
            return self.dispatch_inner(conn, request);
        }
        let started = Instant::now();
        let code = request.code;
        let interceptors = self.interceptors.clone();
        let refused = interceptors
            .iter()
            .find_map(|i| i.before(&conn, &request).err());
        let fut = match refused {
            Some(e) => {
                debug!(peer = %conn.peer(), code, response_code = e.code, remark = %e.remark, "request refused");
                let response = RemotingCommand::response(e.code).with_remark(e.remark);
                Box::pin(std::future::ready(response))
            }
            None => self.dispatch_inner(conn.clone(), request),
        };
        Box::pin(async move {
            let response = fut.await;
            let elapsed = started.elapsed();
            for i in &interceptors {
                i.after(&conn, code, &response, elapsed);
            }
            response
        })
    }

    fn dispatch_inner(
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
