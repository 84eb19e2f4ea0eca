//! HTTP(S) and websocket plumbing shared by the real backends: one rustls configuration
//! (the public web roots, plus an operator's CA, or exactly one pinned certificate for a LAN
//! server with a self-signed certificate), no redirects followed, reply bodies capped at 1 MB,
//! websocket messages capped at 64 KiB, and errors that name the problem without ever
//! carrying a key.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::BackendError;

/// The largest reply body lnvend reads; anything bigger is refused as hostile.
pub const MAX_BODY: usize = 1 << 20;

/// How to trust the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// Extra CA certificates (PEM) to trust besides the public web roots.
    pub ca_file: Option<PathBuf>,
    /// Trust exactly the certificate with this SHA-256 (and nothing else).
    pub cert_sha256: Option<[u8; 32]>,
}

impl From<&crate::config::Transport> for TlsSettings {
    fn from(t: &crate::config::Transport) -> TlsSettings {
        TlsSettings {
            ca_file: t.ca_file.clone(),
            cert_sha256: t.cert_sha256,
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for `tls`.
pub fn rustls_config(tls: &TlsSettings) -> Result<Arc<rustls::ClientConfig>, BackendError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| BackendError::Unreachable(format!("TLS set-up: {e}")))?;
    let config = match tls.cert_sha256 {
        Some(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCert {
                sha256: pin,
                provider: provider(),
            }))
            .with_no_client_auth(),
        None => {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Some(ca) = &tls.ca_file {
                for cert in read_pem_certs(ca)? {
                    roots.add(cert).map_err(|e| {
                        BackendError::Unreachable(format!("CA file {}: {e}", ca.display()))
                    })?;
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, BackendError> {
    let bytes = std::fs::read(path).map_err(|e| {
        BackendError::Unreachable(format!("cannot read CA file {}: {e}", path.display()))
    })?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut bytes.as_slice()).collect();
    let certs =
        certs.map_err(|e| BackendError::Unreachable(format!("CA file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(BackendError::Unreachable(format!(
            "CA file {} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// Accepts exactly one certificate, by its SHA-256, whatever its issuer, name or dates: the
/// operator copied the fingerprint from the server, which is stronger than a name check.
#[derive(Debug)]
struct PinnedCert {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if got == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate SHA-256 {} does not match the pinned one",
                hex::encode(got)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An HTTP client with lnvend's TLS rules and a per-request timeout. It never follows a
/// redirect: reqwest drops only `Authorization` on a cross-host redirect, so LNbits'
/// `X-Api-Key` or clnrest's `Rune` would go to whatever host a 3xx names.
pub fn client(tls: &TlsSettings, timeout: Duration) -> Result<reqwest::Client, BackendError> {
    let config = rustls_config(tls)?;
    reqwest::Client::builder()
        .use_preconfigured_tls((*config).clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("lnvend/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BackendError::Unreachable(format!("HTTP client: {}", e.without_url())))
}

/// The largest websocket message (and frame) lnvend reads. A wake-up needs a few bytes; the
/// library's default (64 MiB) would let a hostile push fill the Pi's memory.
pub const MAX_WS_MESSAGE: usize = 64 << 10;

/// The websocket settings for every wake-up socket: a message or frame over
/// [`MAX_WS_MESSAGE`] is an error that ends the stream (the watcher then polls and
/// reconnects), and the buffers are sized for small messages.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_WS_MESSAGE))
        .max_frame_size(Some(MAX_WS_MESSAGE))
        .read_buffer_size(16 << 10)
}

/// A websocket connector with the same TLS rules.
pub fn ws_connector(tls: &TlsSettings) -> Result<tokio_tungstenite::Connector, BackendError> {
    Ok(tokio_tungstenite::Connector::Rustls(rustls_config(tls)?))
}

/// A request that did not get an answer, with its cause (see [`error_chain`]).
pub fn transport_error(e: reqwest::Error) -> BackendError {
    if e.is_timeout() {
        BackendError::Unreachable("timed out".into())
    } else {
        BackendError::Unreachable(error_chain(e))
    }
}

/// reqwest's error and every cause under it, e.g. "error sending request: client error
/// (Connect): tcp connect error: Connection refused (os error 111)" or "…: unexpected
/// error: server certificate SHA-256 … does not match the pinned one": its top line alone
/// says the same for both. Never the URL, which can hold a card's `k1` or a key: reqwest's
/// own text names it, so it is dropped, and cut out of any cause that repeats it.
pub fn error_chain(e: reqwest::Error) -> String {
    use std::error::Error as _;
    let url = e.url().cloned();
    let e = e.without_url();
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        // An io::Error shows the error it wraps, which is then its own cause's text.
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    if let Some(url) = url {
        let parts = [Some(url.as_str()), Some(url.path()), url.query()];
        for part in parts.into_iter().flatten().filter(|p| p.len() > 1) {
            out = out.replace(part, "<redacted>");
        }
    }
    out
}

/// Reads a reply body, refusing more than [`MAX_BODY`] bytes.
pub async fn read_body(mut resp: reqwest::Response) -> Result<(StatusCode, Vec<u8>), BackendError> {
    let status = resp.status();
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(BackendError::BadReply(format!(
            "reply body over {MAX_BODY} bytes"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(BackendError::BadReply(format!(
                "reply body over {MAX_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// Parses a JSON body into `T`; a parse failure is a bad reply, never a panic.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, BackendError> {
    serde_json::from_slice(body).map_err(|e| BackendError::BadReply(format!("malformed JSON: {e}")))
}

/// A short, printable excerpt of a reply body for logs.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    text.chars().filter(|c| !c.is_control()).collect()
}

/// The usual meaning of an HTTP error status for a payment API.
pub fn status_error(status: StatusCode, body: &[u8], what: &str) -> BackendError {
    match status.as_u16() {
        401 => BackendError::Unauthorized(format!("{what}: the key was rejected (401)")),
        403 => BackendError::Unauthorized(format!(
            "{what}: the key lacks a permission (403): {}",
            excerpt(body)
        )),
        404 => BackendError::Rejected(format!("{what}: not found (404)")),
        422 | 400 => {
            BackendError::Rejected(format!("{what}: {} {}", status.as_u16(), excerpt(body)))
        }
        300..=399 => BackendError::Rejected(format!(
            "{what}: the server redirected ({}); redirects are not followed, so the key stays \
             with the configured host: put the final URL in the config",
            status.as_u16()
        )),
        500..=599 => BackendError::Unreachable(format!("{what}: server error {}", status.as_u16())),
        _ => BackendError::BadReply(format!("{what}: unexpected status {}", status.as_u16())),
    }
}

/// A minimal HTTP/1.1 server for the backends' unit tests: answers every request with one
/// canned response and keeps each request's head, so a test can see what reached it.
#[cfg(test)]
pub(crate) mod test_server {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub(crate) type Seen = Arc<Mutex<Vec<String>>>;

    pub(crate) async fn start(response: String) -> (SocketAddr, Seen) {
        start_with(move |_| response.clone()).await
    }

    /// The same, answering each request with what `respond` makes of its head.
    pub(crate) async fn start_with(
        respond: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> (SocketAddr, Seen) {
        let respond = Arc::new(respond);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Seen = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let log = log.clone();
                let respond = respond.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let response = respond(&head);
                    log.lock().unwrap().push(head);
                    let _ = conn.write_all(response.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        (addr, seen)
    }

    /// A 302 to `to`, as a hostile or misconfigured server would send.
    pub(crate) fn redirect_to(to: SocketAddr, path: &str) -> String {
        format!(
            "HTTP/1.1 302 Found\r\nLocation: http://{to}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_build_for_every_trust_mode() {
        let t = Duration::from_secs(2);
        client(&TlsSettings::default(), t).unwrap();
        client(
            &TlsSettings {
                ca_file: None,
                cert_sha256: Some([7; 32]),
            },
            t,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not a pem").unwrap();
        let err = client(
            &TlsSettings {
                ca_file: Some(empty),
                cert_sha256: None,
            },
            t,
        )
        .unwrap_err();
        assert!(err.to_string().contains("no certificate"), "{err}");
    }

    /// The cause of a failed request is named (not just reqwest's "error sending
    /// request"), and nothing of the URL, which may carry a key or a card's `k1`.
    #[tokio::test]
    async fn a_transport_error_names_its_cause_but_never_its_url() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let c = client(&TlsSettings::default(), Duration::from_secs(2)).unwrap();
        let e = c
            .get(format!(
                "http://{addr}/lnurl/cb/k1-SECRET?k1=k1-SECRET&api-key=KEY-SECRET"
            ))
            .send()
            .await
            .unwrap_err();
        let shown = transport_error(e).to_string();
        assert!(shown.contains("refused"), "{shown}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn statuses_map_to_what_the_operator_must_do() {
        assert!(matches!(
            status_error(StatusCode::UNAUTHORIZED, b"", "x"),
            BackendError::Unauthorized(_)
        ));
        assert!(matches!(
            status_error(StatusCode::FORBIDDEN, b"", "x"),
            BackendError::Unauthorized(_)
        ));
        assert!(matches!(
            status_error(StatusCode::BAD_GATEWAY, b"", "x"),
            BackendError::Unreachable(_)
        ));
        assert!(matches!(
            status_error(StatusCode::UNPROCESSABLE_ENTITY, b"[{\"path\":\"amount\"}]", "x"),
            BackendError::Rejected(m) if m.contains("amount")
        ));
        assert!(parse_json::<serde_json::Value>(b"{not json").is_err());
        assert_eq!(excerpt(b"a\nb\x07c"), "abc");
    }
}
