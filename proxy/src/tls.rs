//! TLS and plaintext HTTP/2 on one gRPC port, as Java's proxy serves them.
//!
//! The official 5.x clients (Java, Go, Node) dial TLS by default and do not
//! verify the server's certificate; some are configured for plaintext.
//! Java's proxy tells them apart by the first byte of each connection: a
//! TLS record of type handshake (0x16, the ClientHello) gets a TLS
//! handshake, anything else (HTTP/2's preface starts with `P`) is served as
//! plaintext h2c. We do the same, per connection in its own task under a
//! deadline, so a slow or silent client never holds up accepting others.
//!
//! Settings ([`TlsSettings`]) follow Java's names:
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `tls.server.mode` (`TlsSystemConfig`) | `permissive` | `disabled`: plaintext only; `permissive`: both; `enforcing`: TLS only |
//! | `tlsTestModeEnable` / `tls.test.mode.enable` | `true` | without key/cert files, a self-signed certificate made at start |
//! | `tlsKeyPath` / `tls.server.keyPath` | none | the server's private key, PEM (PKCS#8, PKCS#1 or SEC1) |
//! | `tlsCertPath` / `tls.server.certPath` | none | the server's certificate chain, PEM |
//!
//! Difference from Java: Java's test mode always uses a self-signed
//! certificate; ours uses the configured key and certificate when both are
//! set, and the self-signed one otherwise. Client authentication
//! (`tls.server.need.client.auth`) is not offered (Java's default, `none`).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::{debug, warn};

/// How long a new connection may take to send its first byte and finish
/// the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections classified but not yet taken by the HTTP/2 server.
const BACKLOG: usize = 256;
/// Connections between accept and the end of their handshake at a time;
/// beyond it new ones wait for a slot (the kernel's backlog holds them).
const MAX_HANDSHAKING: usize = 1024;
/// A TLS record of type handshake starts with this byte.
const TLS_HANDSHAKE: u8 = 0x16;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: {value:?} is not one of disabled, permissive, enforcing")]
    BadMode { key: String, value: String },
    #[error("{key}: {value:?} is not true or false")]
    BadBool { key: String, value: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("tlsTestModeEnable is false and tlsKeyPath/tlsCertPath are not both set")]
    NoCertificate,
    #[error("self-signed certificate: {0}")]
    SelfSigned(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Java's `TlsMode` (`tls.server.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plaintext only.
    Disabled,
    /// TLS or plaintext, by the first byte (Java's default).
    #[default]
    Permissive,
    /// TLS only: plaintext connections are closed.
    Enforcing,
}

impl TlsMode {
    /// Parses Java's names, case-insensitively.
    pub fn parse(key: &str, value: &str) -> Result<TlsMode, TlsError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "disabled" => Ok(TlsMode::Disabled),
            "permissive" => Ok(TlsMode::Permissive),
            "enforcing" => Ok(TlsMode::Enforcing),
            _ => Err(TlsError::BadMode {
                key: key.to_owned(),
                value: value.to_owned(),
            }),
        }
    }
}

/// TLS on the gRPC port, in Java's terms (see the module's table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `tls.server.mode`.
    pub mode: TlsMode,
    /// `tlsTestModeEnable`.
    pub test_mode: bool,
    /// `tlsKeyPath`.
    pub key_path: Option<PathBuf>,
    /// `tlsCertPath`.
    pub cert_path: Option<PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            mode: TlsMode::Permissive,
            test_mode: true,
            key_path: None,
            cert_path: None,
        }
    }
}

impl TlsSettings {
    /// Applies one key of `rmq-proxy.json`, the broker's properties or a
    /// `-D` system property. Returns whether the key is a TLS key.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<bool, TlsError> {
        let path = |v: &str| {
            let v = v.trim();
            (!v.is_empty()).then(|| PathBuf::from(v))
        };
        match key {
            "tls.server.mode" | "tlsServerMode" => self.mode = TlsMode::parse(key, value)?,
            "tlsTestModeEnable" | "tls.test.mode.enable" => {
                self.test_mode = match value.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(TlsError::BadBool {
                            key: key.to_owned(),
                            value: value.to_owned(),
                        })
                    }
                }
            }
            "tlsKeyPath" | "tls.server.keyPath" | "tlsServerKeyPath" => self.key_path = path(value),
            "tlsCertPath" | "tls.server.certPath" | "tlsServerCertPath" => {
                self.cert_path = path(value)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The acceptor these settings call for: `None` when TLS is disabled.
    pub fn acceptor(&self) -> Result<Option<TlsAcceptor>, TlsError> {
        if self.mode == TlsMode::Disabled {
            return Ok(None);
        }
        let (chain, key) = match (&self.key_path, &self.cert_path) {
            (Some(k), Some(c)) => (read_certs(c)?, read_key(k)?),
            _ if self.test_mode => self_signed()?,
            _ => return Err(TlsError::NoCertificate),
        };
        server_acceptor(chain, key).map(Some)
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        reason: format!("no usable private key: {e}"),
    })
}

/// A fresh self-signed certificate for `localhost` (clients of test mode
/// do not verify it).
fn self_signed() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let key = PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    Ok((vec![cert.cert.der().clone()], key))
}

/// A rustls server offering HTTP/2 by ALPN, no client authentication.
fn server_acceptor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, TlsError> {
    // ring is the provider built in (aws-lc is not); its lack of
    // post-quantum key exchange is why it is marked deprecated.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// A plaintext or TLS connection, as tonic serves it.
pub enum MaybeTls {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl MaybeTls {
    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }
}

impl Connected for MaybeTls {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        match self {
            MaybeTls::Plain(s) => s.connect_info(),
            MaybeTls::Tls(t) => t.get_ref().0.connect_info(),
        }
    }
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(t) => Pin::new(t.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.is_write_vectored(),
            MaybeTls::Tls(t) => t.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Reads the first byte (without consuming it) and runs the TLS handshake
/// when it starts a TLS record, all under [`HANDSHAKE_TIMEOUT`].
async fn classify(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    mode: TlsMode,
) -> io::Result<MaybeTls> {
    let work = async move {
        let mut first = [0u8; 1];
        let n = stream.peek(&mut first).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before its first byte",
            ));
        }
        match tls {
            Some(acceptor) if first[0] == TLS_HANDSHAKE => {
                Ok(MaybeTls::Tls(Box::new(acceptor.accept(stream).await?)))
            }
            _ if mode == TlsMode::Enforcing => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "plaintext refused (tls.server.mode=enforcing)",
            )),
            _ => Ok(MaybeTls::Plain(stream)),
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no TLS handshake or first byte"))?
}

/// Accepts on `listener` until `shutdown` (or the server drops the stream),
/// handing tonic classified connections: pass the result to
/// `tonic::transport::Server::serve_with_incoming_shutdown`. Failed or
/// refused handshakes are dropped and logged at debug level.
pub fn incoming(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    mode: TlsMode,
    shutdown: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<MaybeTls>> {
    let (tx, rx) = mpsc::channel(BACKLOG);
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKING));
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = shutdown.cancelled() => break,
                _ = tx.closed() => break,
            };
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.cancelled() => break,
                _ = tx.closed() => break,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: do not spin.
                    warn!(error = %e, "gRPC accept failed");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let tx = tx.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let classified = classify(stream, tls, mode).await;
                drop(permit);
                match classified {
                    Ok(c) => {
                        let _ = tx.send(Ok(c)).await;
                    }
                    Err(e) => debug!(%peer, error = %e, "gRPC connection dropped before HTTP/2"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_keys() {
        let mut s = TlsSettings::default();
        assert_eq!(s.mode, TlsMode::Permissive);
        assert!(s.test_mode);
        assert!(s.apply("tls.server.mode", "Enforcing").expect("mode"));
        assert_eq!(s.mode, TlsMode::Enforcing);
        assert!(s.apply("tlsTestModeEnable", "false").expect("bool"));
        assert!(!s.test_mode);
        assert!(s.apply("tlsKeyPath", "/k.pem").expect("key"));
        assert!(s.apply("tlsCertPath", " /c.pem ").expect("cert"));
        assert_eq!(s.key_path.as_deref(), Some(Path::new("/k.pem")));
        assert_eq!(s.cert_path.as_deref(), Some(Path::new("/c.pem")));
        assert!(!s.apply("grpcServerPort", "8081").expect("other key"));
        assert!(s.apply("tls.server.mode", "strict").is_err());
        assert!(s.apply("tlsTestModeEnable", "yes").is_err());
    }

    #[test]
    fn acceptor_by_settings() {
        let off = TlsSettings {
            mode: TlsMode::Disabled,
            ..TlsSettings::default()
        };
        assert!(off.acceptor().expect("disabled").is_none());
        assert!(TlsSettings::default()
            .acceptor()
            .expect("self-signed")
            .is_some());
        let strict = TlsSettings {
            test_mode: false,
            ..TlsSettings::default()
        };
        assert!(matches!(strict.acceptor(), Err(TlsError::NoCertificate)));
        let missing = TlsSettings {
            key_path: Some("/nonexistent/k.pem".into()),
            cert_path: Some("/nonexistent/c.pem".into()),
            ..TlsSettings::default()
        };
        assert!(matches!(missing.acceptor(), Err(TlsError::Read { .. })));
    }

    /// PEM armour (rcgen's own needs its `pem` feature).
    fn pem(label: &str, der: &[u8]) -> String {
        const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut b64 = String::new();
        for chunk in der.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    b64.push(char::from(B64[(n >> (18 - 6 * i) & 63) as usize]));
                } else {
                    b64.push('=');
                }
            }
        }
        let mut out = format!("-----BEGIN {label}-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }

    #[test]
    fn pem_files() {
        let dir = std::env::temp_dir().join(format!("proxy-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("gen");
        let (k, c) = (dir.join("rocketmq.key"), dir.join("rocketmq.crt"));
        std::fs::write(&k, pem("PRIVATE KEY", &cert.signing_key.serialize_der())).expect("key");
        std::fs::write(&c, pem("CERTIFICATE", cert.cert.der())).expect("cert");
        let s = TlsSettings {
            test_mode: false,
            key_path: Some(k.clone()),
            cert_path: Some(c.clone()),
            ..TlsSettings::default()
        };
        assert!(s.acceptor().expect("from files").is_some());
        std::fs::write(&c, b"garbage").expect("garbage");
        assert!(matches!(s.acceptor(), Err(TlsError::Pem { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
