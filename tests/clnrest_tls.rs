//! clnrest over TLS with the node's own self-signed certificate (what clnrest generates by
//! default): the machine works when the operator pinned that certificate, and refuses the
//! node (out of service, no QR) when nothing vouches for it.

mod common;
mod fake_lightningd;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use fake_lightningd::FakeNode;
use lnvend::controller::Screen;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A TCP listener that completes a TLS handshake before handing the connection to axum.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A client that refuses our certificate just ends its handshake.
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// A fake clnrest on TLS with a fresh self-signed certificate; its address and the
/// certificate's SHA-256.
async fn tls_node() -> (FakeNode, SocketAddr, String) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let der: CertificateDer<'static> = ck.cert.der().clone();
    let pin = hex::encode(Sha256::digest(der.as_ref()));
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der], key)
    .unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let node = FakeNode::new("regtest");
    node.serve_rest(
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        },
        "tls-rune",
    );
    (node, addr, pin)
}

fn backend(addr: SocketAddr, pin: Option<&str>) -> String {
    let pin = pin.map_or(String::new(), |p| format!("cert_sha256 = \"{p}\"\n"));
    format!(
        "[backend]\nkind = \"cln\"\nurl = \"https://{addr}\"\nrune = \"tls-rune\"\nnetwork = \"regtest\"\n{pin}"
    )
}

// Real time: under paused time the health check went out of service, most likely because
// the clock auto-advances past the request timeout during the TLS handshake.
#[tokio::test]
async fn a_pinned_self_signed_node_certificate_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (node, addr, pin) = tls_node().await;
    let mut m = TestMachine::start(&config(dir.path(), &backend(addr, Some(&pin))));
    m.wait_screen(Screen::Idle).await;
    m.tap(0);
    let v = m.wait_screen(Screen::Payment).await;
    assert!(v.qr.is_some());
    assert_eq!(node.invoice_count(), 1);
    m.shutdown().await;
    node.assert_replies_valid();
}

#[tokio::test(start_paused = true)]
async fn an_unpinned_self_signed_node_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (node, addr, _pin) = tls_node().await;
    let mut m = TestMachine::start(&config(dir.path(), &backend(addr, None)));
    m.wait_screen(Screen::OutOfService).await;
    m.tap(0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(m.views.borrow().screen, Screen::OutOfService);
    assert_eq!(node.invoice_count(), 0, "no invoice, no QR");
    assert_eq!(node.calls("getinfo"), 0, "not one request got through");
    m.shutdown().await;
}

/// Everything the machine logs, as plain text.
#[derive(Clone, Default)]
struct Log(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the operator sees on the out-of-service screen for a machine with `backend`.
async fn out_of_service_detail(backend: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), backend));
    let v = m.wait_screen(Screen::OutOfService).await;
    m.shutdown().await;
    v.detail
}

/// A pin that does not match the node's certificate and a node that is not listening are
/// two different problems for the operator: the screen and the log say which.
#[tokio::test]
async fn a_wrong_pin_and_a_closed_port_say_different_things() {
    let log = Log::default();
    let writer = log.clone();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    );
    let (_node, addr, pin) = tls_node().await;
    let wrong_pin = out_of_service_detail(&backend(addr, Some(&"ab".repeat(32)))).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let no_node = out_of_service_detail(&backend(closed_addr, Some(&pin))).await;
    assert!(
        wrong_pin.contains("does not match the pinned"),
        "{wrong_pin}"
    );
    assert!(no_node.contains("refused"), "{no_node}");
    assert!(!no_node.contains("pinned"), "{no_node}");
    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("does not match the pinned"), "{log}");
    assert!(log.contains("Connection refused"), "{log}");
    assert!(!log.contains("tls-rune"), "{log}");
}
