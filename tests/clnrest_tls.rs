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
