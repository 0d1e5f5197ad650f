//! TLS and plaintext on one gRPC port ([`proxy::tls`]): a tonic client asks
//! QueryRoute once in plaintext h2c and once over TLS (trusting the
//! self-signed certificate, as the official clients do) on the same port,
//! and both get the service's answer; garbage bytes, a silent connection
//! and a broken TLS handshake do not stop the next client being served;
//! `enforcing` refuses plaintext and `disabled` serves only plaintext.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use proxy::pb::{self, messaging_service_client::MessagingServiceClient};
use proxy::tls::{self, TlsMode, TlsSettings};
use proxy::{
    Backend, ClientContext, ClientInfo, EndTransaction, GroupInfo, MessagingServer,
    OutgoingMessage, ProxyError, ReceiptHandle, ReceiveRequest, SendReceipt, ServiceConfig,
    StoredMessage, TopicRoute,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint, Uri};

/// Every topic is missing: QueryRoute answers TOPIC_NOT_FOUND, which proves
/// the request went through the service to the backend.
struct NoTopics;

fn none<T>(what: &str) -> Result<T, ProxyError> {
    Err(ProxyError::NotImplemented(what.to_owned()))
}

impl Backend for NoTopics {
    async fn route(&self, _: &ClientContext, topic: &str) -> Result<TopicRoute, ProxyError> {
        Err(ProxyError::TopicNotFound(topic.to_owned()))
    }
    async fn group(&self, _: &ClientContext, _: &str) -> Result<GroupInfo, ProxyError> {
        none("group")
    }
    async fn send(&self, _: &ClientContext, _: OutgoingMessage) -> Result<SendReceipt, ProxyError> {
        none("send")
    }
    async fn receive(
        &self,
        _: &ClientContext,
        _: ReceiveRequest,
    ) -> Result<Vec<StoredMessage>, ProxyError> {
        none("receive")
    }
    async fn ack(
        &self,
        _: &ClientContext,
        _: &str,
        _: &str,
        _: &ReceiptHandle,
    ) -> Result<(), ProxyError> {
        none("ack")
    }
    async fn change_invisible(
        &self,
        _: &ClientContext,
        _: &str,
        _: &str,
        _: &ReceiptHandle,
        _: i64,
    ) -> Result<ReceiptHandle, ProxyError> {
        none("change_invisible")
    }
    async fn forward_to_dlq(
        &self,
        _: &ClientContext,
        _: &str,
        _: &str,
        _: &ReceiptHandle,
        _: &str,
        _: i32,
    ) -> Result<(), ProxyError> {
        none("forward_to_dlq")
    }
    async fn end_transaction(
        &self,
        _: &ClientContext,
        _: EndTransaction,
    ) -> Result<(), ProxyError> {
        none("end_transaction")
    }
    async fn heartbeat(&self, _: &ClientContext, _: &ClientInfo) -> Result<(), ProxyError> {
        Ok(())
    }
    async fn unregister(&self, _: &ClientContext, _: &ClientInfo) -> Result<(), ProxyError> {
        Ok(())
    }
}

/// Serves the service on a free 127.0.0.1 port with `settings`.
async fn serve(settings: &TlsSettings, stop: &CancellationToken) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let acceptor = settings.acceptor().expect("acceptor");
    let incoming = tls::incoming(listener, acceptor, settings.mode, stop.clone());
    let service = MessagingServer::new(Arc::new(NoTopics), ServiceConfig::default()).into_service();
    let shutdown = stop.clone().cancelled_owned();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
    });
    port
}

/// Trusts any server certificate (the official clients' default against a
/// test-mode proxy).
#[derive(Debug)]
struct TrustAll(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for TrustAll {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    #[allow(deprecated)] // ring: the provider built in
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustAll(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

async fn plain_channel(port: u16) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
}

async fn tls_channel(port: u16) -> Result<Channel, tonic::transport::Error> {
    let connector = tls_connector();
    Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .timeout(Duration::from_secs(10))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            async move {
                let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
                let name = rustls::pki_types::ServerName::try_from("localhost")
                    .map_err(std::io::Error::other)?;
                let tls = tokio::time::timeout(
                    Duration::from_secs(5),
                    connector.connect(name.to_owned(), tcp),
                )
                .await
                .map_err(std::io::Error::other)??;
                let (_, session) = tls.get_ref();
                if session.alpn_protocol() != Some(b"h2") {
                    return Err(std::io::Error::other("server did not choose h2"));
                }
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
}

/// QueryRoute for a missing topic: the service's TOPIC_NOT_FOUND.
async fn ask(channel: Channel) -> Result<(), tonic::Status> {
    let mut client = MessagingServiceClient::new(channel);
    let mut req = tonic::Request::new(pb::QueryRouteRequest {
        topic: Some(pb::Resource {
            name: "TopicTls".into(),
            ..Default::default()
        }),
        endpoints: None,
    });
    req.metadata_mut().insert(
        "x-mq-client-id",
        "tls-test@127.0.0.1".parse().expect("ascii"),
    );
    let resp = client.query_route(req).await?.into_inner();
    let status = resp.status.expect("status");
    assert_eq!(
        status.code,
        pb::Code::TopicNotFound as i32,
        "answer from the service: {status:?}"
    );
    Ok(())
}

#[tokio::test]
async fn plaintext_and_tls_on_one_port() {
    let stop = CancellationToken::new();
    let port = serve(&TlsSettings::default(), &stop).await;

    ask(plain_channel(port).await.expect("plaintext connect"))
        .await
        .expect("plaintext answer");
    ask(tls_channel(port).await.expect("TLS connect"))
        .await
        .expect("TLS answer");

    // A connection that never sends a byte holds a handshake slot only:
    // others are served meanwhile.
    let _silent = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("silent");
    // Garbage that is neither HTTP/2 nor TLS: dropped by the HTTP/2 server.
    let mut garbage = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("garbage");
    garbage
        .write_all(b"\x00\xffGET / HTTP/1.0\r\n\r\n\x16\x03")
        .await
        .expect("write garbage");
    // A TLS record header followed by nonsense: a failed handshake.
    let mut bad_tls = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("bad tls");
    bad_tls
        .write_all(b"\x16\x03\x01\x00\x05hello-not-a-client-hello")
        .await
        .expect("write bad tls");
    // A TLS record header, then silence (cut short).
    let mut half = TcpStream::connect(("127.0.0.1", port)).await.expect("half");
    half.write_all(b"\x16\x03").await.expect("write half");

    ask(plain_channel(port).await.expect("plaintext after garbage"))
        .await
        .expect("plaintext answer after garbage");
    ask(tls_channel(port).await.expect("TLS after garbage"))
        .await
        .expect("TLS answer after garbage");
    stop.cancel();
}

#[tokio::test]
async fn enforcing_refuses_plaintext() {
    let stop = CancellationToken::new();
    let settings = TlsSettings {
        mode: TlsMode::Enforcing,
        ..TlsSettings::default()
    };
    let port = serve(&settings, &stop).await;
    ask(tls_channel(port).await.expect("TLS connect"))
        .await
        .expect("TLS answer");
    // The connection is closed before HTTP/2: the call fails.
    let refused = match plain_channel(port).await {
        Ok(c) => ask(c).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "plaintext served under tls.server.mode=enforcing");
    stop.cancel();
}

#[tokio::test]
async fn disabled_serves_plaintext_only() {
    let stop = CancellationToken::new();
    let settings = TlsSettings {
        mode: TlsMode::Disabled,
        ..TlsSettings::default()
    };
    let port = serve(&settings, &stop).await;
    ask(plain_channel(port).await.expect("plaintext connect"))
        .await
        .expect("plaintext answer");
    assert!(
        tls_channel(port).await.is_err(),
        "TLS handshake succeeded with tls.server.mode=disabled"
    );
    stop.cancel();
}

#[test]
fn rmq_proxy_json_tls_keys() {
    let c = proxy::cluster::ClusterConfig::from_json(
        r#"{"tlsTestModeEnable": false, "tlsKeyPath": "/etc/k.pem",
            "tlsCertPath": "/etc/c.pem", "tls.server.mode": "enforcing"}"#,
    )
    .expect("json");
    let tls = c.service_config().expect("service config").tls;
    assert_eq!(tls.mode, TlsMode::Enforcing);
    assert!(!tls.test_mode);
    assert_eq!(
        tls.key_path.as_deref(),
        Some(std::path::Path::new("/etc/k.pem"))
    );
    assert_eq!(
        tls.cert_path.as_deref(),
        Some(std::path::Path::new("/etc/c.pem"))
    );
    let defaults = proxy::cluster::ClusterConfig::from_json("{}")
        .expect("json")
        .service_config()
        .expect("service config")
        .tls;
    assert_eq!(defaults, TlsSettings::default());
    let bad = proxy::cluster::ClusterConfig::from_json(r#"{"tls.server.mode": "sometimes"}"#)
        .expect("json")
        .service_config();
    assert!(bad.is_err());
}
