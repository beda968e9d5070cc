//! HTTPS: a self-signed certificate made here, clients that trust it (TLS 1.3 and 1.2), a raw
//! TLS 1.1 hello that must be refused, and the HSTS header.

mod util;

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use util::{harness, http_on, TempDir};

struct Cert {
    _dir: TempDir,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    der: CertificateDer<'static>,
}

fn self_signed() -> Cert {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let dir = TempDir::new("tls");
    let (cert_path, key_path) = (dir.path("cert.pem"), dir.path("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key_pair.serialize_pem()).unwrap();
    Cert { _dir: dir, cert: cert_path, key: key_path, der: cert.der().clone() }
}

fn client(
    trusted: Option<&CertificateDer<'static>>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    if let Some(cert) = trusted {
        roots.add(cert.clone()).unwrap();
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

async fn connect(
    connector: &TlsConnector,
    addr: std::net::SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await
}

/// A TLS 1.1 ClientHello (record version 3.1, client version 3.2), with no extensions.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02];
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // ECDHE-RSA-AES128-SHA, AES128-SHA
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0, (body.len() >> 8) as u8, body.len() as u8];
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01, (handshake.len() >> 8) as u8, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn https_with_modern_versions_only_and_hsts() {
    let cert = self_signed();
    let (cert_path, key_path) = (cert.cert.clone(), cert.key.clone());
    let h = harness(move |c| {
        c.tls.cert = Some(cert_path);
        c.tls.key = Some(key_path);
    })
    .await;
    let server = h.serve().await;
    let addr = server.addr;

    // TLS 1.3 by default, ALPN http/1.1, HSTS on every answer.
    let modern = client(Some(&cert.der), rustls::DEFAULT_VERSIONS);
    let stream = connect(&modern, addr).await.unwrap();
    let (_, session) = stream.get_ref();
    assert_eq!(session.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
    let reply = http_on(stream, "GET", "/healthz", &[], None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("strict-transport-security"), Some("max-age=31536000"));

    // A task over HTTPS.
    let task = util::task(&["echo", "over tls"]).to_string();
    let stream = connect(&modern, addr).await.unwrap();
    let reply = http_on(stream, "POST", "/v1.1/tasks", &[("Content-Type", "application/json")], Some(&task)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(util::decoded(&reply.json(), "stdout"), "over tls\n");
    assert!(reply.header("strict-transport-security").is_some());

    // TLS 1.2 still works.
    let tls12 = client(Some(&cert.der), &[&rustls::version::TLS12]);
    let stream = connect(&tls12, addr).await.unwrap();
    assert_eq!(stream.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(http_on(stream, "GET", "/healthz", &[], None).await.status, 200);

    // TLS 1.1 is refused with an alert, never a ServerHello.
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw.write_all(&tls11_client_hello()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), raw.read_to_end(&mut answer)).await;
    assert!(!answer.is_empty(), "no answer to a TLS 1.1 hello");
    assert_eq!(answer[0], 0x15, "expected an alert record, got {answer:02x?}");
    assert!(!answer.contains(&0x16), "a handshake record came back: {answer:02x?}");

    // A client that does not trust the certificate fails its handshake.
    let untrusting = client(None, rustls::DEFAULT_VERSIONS);
    assert!(connect(&untrusting, addr).await.is_err());

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(!answer.starts_with(b"HTTP/"), "{:?}", String::from_utf8_lossy(&answer));

    server.shutdown().await;
    h.assert_cleaned_up().await;
}

#[tokio::test]
async fn no_hsts_without_tls() {
    let h = harness(|_| {}).await;
    let reply = h.get("/healthz").await;
    assert!(reply.headers.get("strict-transport-security").is_none());
}

#[tokio::test]
async fn bad_tls_files_are_startup_errors_naming_the_key() {
    let cert = self_signed();
    let docker = runner::connect_docker(std::time::Duration::from_secs(30)).await.unwrap();
    let cases = [
        (Some(cert.cert.clone()), Some(cert.key.with_extension("missing")), "tls.key"),
        (Some(cert.key.clone()), Some(cert.key.clone()), "tls.cert"),
        (Some(cert.cert.clone()), Some(cert.cert.clone()), "tls.key"),
    ];
    for (cert_path, key_path, key) in cases {
        let mut config = runner::config::Config::default();
        config.auth.insecure_no_auth = true;
        config.tls.cert = cert_path;
        config.tls.key = key_path;
        let err = runner::AppState::new(config, docker.clone()).unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{err}");
    }
    // A key that does not belong to the certificate.
    let other = self_signed();
    let mut config = runner::config::Config::default();
    config.auth.insecure_no_auth = true;
    config.tls.cert = Some(cert.cert.clone());
    config.tls.key = Some(other.key.clone());
    let err = runner::AppState::new(config, docker).unwrap_err().to_string();
    assert!(err.contains("`tls.key`"), "{err}");
}
