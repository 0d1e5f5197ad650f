//! The PROM exporter's endpoint: `GET /metrics` (any path, as Java's
//! OpenTelemetry `PrometheusHttpServer` answers any) over HTTP/1.1, one
//! request per connection. Requests are read up to a bound and a deadline;
//! the body is the registry's exposition.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Request head bytes read at most.
const MAX_REQUEST: usize = 16 * 1024;
/// A scrape that has not sent its request by then is dropped.
const READ_DEADLINE: Duration = Duration::from_secs(10);
/// Scrapes served at once.
const MAX_CONNECTIONS: usize = 16;

pub(crate) async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            debug!(%peer, "too many metrics connections; dropped");
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &registry).await {
                debug!(%peer, error = %e, "metrics request failed");
            }
            drop(permit);
        });
    }
}

/// Reads the request head, then writes one response and closes.
async fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    let complete = tokio::time::timeout(READ_DEADLINE, async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(true);
            }
            if head.len() > MAX_REQUEST {
                return Ok(false);
            }
        }
    })
    .await
    .unwrap_or(Ok(false))?;
    if !complete {
        return Ok(());
    }
    let method = head.split(|b| *b == b' ').next().unwrap_or_default();
    let (status, body, content_type) = match method {
        b"GET" | b"HEAD" => ("200 OK", super::render(registry), CONTENT_TYPE),
        _ => ("405 Method Not Allowed", String::new(), "text/plain"),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    if method != b"HEAD" {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}
