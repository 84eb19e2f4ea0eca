//! BTCPay's signed webhooks: the listener, and the map of watches a delivery can wake.
//!
//! A delivery is only ever a wake-up (the watcher then asks Greenfield), so the listener's
//! job is to stay cheap and alive whatever reaches its port: the `BTCPay-Sig` HMAC is checked
//! in constant time (a request without a well-formed one is refused before its body is
//! read), a connection gets 5 s for its request head and 10 s for its body, a
//! body is at most 1 MiB, one request is served per connection, and at most 32 connections
//! are served at once (further ones are closed as soon as they are accepted, so a flood
//! costs neither a task nor a file descriptor each). The listener belongs to its
//! [`WebhookListener`]: dropping that ends the accept loop and every connection it serves.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, Response, StatusCode};
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use super::http::MAX_BODY;
use super::BackendError;
use crate::secret::Secret;

/// What the listener allows a connection.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// From accepting the connection to the end of the request head.
    pub header_timeout: Duration,
    /// From the end of the request head to the end of the body.
    pub body_timeout: Duration,
    /// Connections served at once; further ones are closed at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            max_connections: 32,
        }
    }
}

/// Connections the kernel queues for the accept loop (which drains it at once).
const BACKLOG: u32 = 1024;

/// Wake-up senders per invoice id, held weakly: the watch owns its channel, so a closed
/// status socket still closes the watcher's channel, and a finished watch leaves nothing
/// that a webhook could keep alive.
#[derive(Clone, Default)]
pub struct Wakers(Arc<Mutex<HashMap<String, Vec<mpsc::WeakSender<()>>>>>);

impl Wakers {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<mpsc::WeakSender<()>>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets webhooks for `invoice` wake the watch behind `tx`.
    pub fn register(&self, invoice: &str, tx: &mpsc::Sender<()>) {
        let mut map = self.map();
        // Entries of watches that ended without a webhook (or whose `forget` raced with
        // this one) go here, so the map stays small whatever happens.
        map.retain(|_, list| {
            list.retain(|w| w.strong_count() > 0);
            !list.is_empty()
        });
        map.entry(invoice.to_string())
            .or_default()
            .push(tx.downgrade());
    }

    /// Drops the entries for `invoice` whose watch has gone.
    pub fn forget_closed(&self, invoice: &str) {
        let mut map = self.map();
        if let Some(list) = map.get_mut(invoice) {
            list.retain(|w| w.strong_count() > 0);
            if list.is_empty() {
                map.remove(invoice);
            }
        }
    }

    /// Wakes every watch of `invoice`.
    pub fn wake(&self, invoice: &str) {
        let mut map = self.map();
        if let Some(list) = map.get_mut(invoice) {
            list.retain(|w| match w.upgrade() {
                Some(tx) => {
                    let _ = tx.try_send(());
                    true
                }
                None => false,
            });
            if list.is_empty() {
                map.remove(invoice);
            }
        }
    }

    /// Invoices with at least one registered watch.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Verifies `BTCPay-Sig: sha256=<hex>` over the raw body, in constant time.
pub fn signature_valid(secret: &Secret, body: &[u8], header: Option<&str>) -> bool {
    use hmac::{Hmac, Mac};
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Whether a `BTCPay-Sig` header could be a valid one (`sha256=` and 64 hex digits).
fn signature_shaped(header: Option<&str>) -> bool {
    header
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct WebhookEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    invoice_id: Option<String>,
    #[serde(default)]
    store_id: Option<String>,
}

/// What a delivery needs to be judged.
struct Receiver {
    secret: Secret,
    store_id: String,
    wakers: Wakers,
    limits: Limits,
}

/// A running listener; dropping it stops the listener and closes its connections.
pub struct WebhookListener {
    bound: SocketAddr,
    task: JoinHandle<()>,
}

impl WebhookListener {
    /// Listens on `addr` (inside a tokio runtime).
    pub fn start(
        addr: SocketAddr,
        secret: Secret,
        store_id: String,
        wakers: Wakers,
        limits: Limits,
    ) -> Result<WebhookListener, BackendError> {
        let listener = bind(addr).map_err(|e| {
            BackendError::Rejected(format!("cannot listen for webhooks on {addr}: {e}"))
        })?;
        let bound = listener
            .local_addr()
            .map_err(|e| BackendError::Rejected(format!("webhook listener: {e}")))?;
        let receiver = Arc::new(Receiver {
            secret,
            store_id,
            wakers,
            limits,
        });
        let task = tokio::spawn(accept_loop(listener, receiver));
        Ok(WebhookListener { bound, task })
    }

    pub fn bound(&self) -> SocketAddr {
        self.bound
    }
}

impl Drop for WebhookListener {
    fn drop(&mut self) {
        // The accept loop owns the listening socket and the set of connections: aborting
        // it drops all of them.
        self.task.abort();
    }
}

impl std::fmt::Debug for WebhookListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookListener")
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

async fn accept_loop(listener: TcpListener, receiver: Arc<Receiver>) {
    let mut conns = JoinSet::new();
    let mut saturated = false;
    loop {
        tokio::select! {
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if conns.len() >= receiver.limits.max_connections {
                        // Closed at once: a flood must not cost a task or a lasting fd.
                        if !saturated {
                            tracing::warn!(%peer, "webhook listener busy; refusing connections");
                        }
                        saturated = true;
                        drop(stream);
                        continue;
                    }
                    saturated = false;
                    conns.spawn(serve(stream, receiver.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, or the peer gave up before accept: wait a
                    // moment instead of spinning.
                    tracing::warn!(error = %e, "webhook listener could not accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// One connection, one request, within the head and body deadlines.
async fn serve(stream: TcpStream, receiver: Arc<Receiver>) {
    let limits = receiver.limits;
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let receiver = receiver.clone();
        async move { Ok::<_, Infallible>(handle(req, &receiver).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    // hyper's head timeout and the handler's body timeout cover a slow peer; this bounds
    // whatever else could keep a connection (a peer that never reads the response).
    let whole = limits.header_timeout + limits.body_timeout + Duration::from_secs(5);
    match tokio::time::timeout(whole, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "webhook connection ended"),
        Err(_) => tracing::debug!("webhook connection timed out"),
    }
}

async fn handle(req: Request<hyper::body::Incoming>, receiver: &Receiver) -> Response<Body> {
    if req.method() != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let (parts, body) = req.into_parts();
    let sig = parts
        .headers
        .get("btcpay-sig")
        .and_then(|v| v.to_str().ok());
    // Without a signature there is nothing to check the body against: refuse before
    // reading (and holding) up to a MiB of it.
    if !signature_shaped(sig) {
        tracing::warn!("webhook without a BTCPay-Sig refused");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let read = axum::body::to_bytes(Body::new(body), MAX_BODY);
    let body: Bytes = match tokio::time::timeout(receiver.limits.body_timeout, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "webhook body refused");
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        }
        Err(_) => {
            tracing::warn!("webhook body too slow; connection closed");
            return StatusCode::REQUEST_TIMEOUT.into_response();
        }
    };
    if !signature_valid(&receiver.secret, &body, sig) {
        tracing::warn!("webhook with a bad or missing BTCPay-Sig refused");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let event: WebhookEvent = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "signed webhook with a malformed body");
            return StatusCode::BAD_REQUEST.into_response();
        }
    };
    if event
        .store_id
        .as_deref()
        .is_some_and(|s| s != receiver.store_id)
    {
        tracing::warn!(kind = %event.kind, "webhook for another store ignored");
        return StatusCode::OK.into_response();
    }
    if let Some(id) = event.invoice_id {
        tracing::debug!(kind = %event.kind, invoice = %id, "webhook: re-checking the invoice");
        receiver.wakers.wake(&id);
    }
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_signatures_are_checked() {
        use hmac::{Hmac, Mac};
        let secret = Secret::new("whsec");
        let body = br#"{"type":"InvoiceSettled","invoiceId":"abc"}"#;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"whsec").unwrap();
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signature_valid(&secret, body, Some(&good)));
        assert!(!signature_valid(&secret, b"{}", Some(&good)), "other body");
        assert!(
            !signature_valid(&Secret::new("other"), body, Some(&good)),
            "other secret"
        );
        assert!(!signature_valid(&secret, body, None));
        assert!(!signature_valid(&secret, body, Some("sha256=zz")));
        assert!(!signature_valid(
            &secret,
            body,
            Some(&good.replace("sha256=", "sha1="))
        ));
        assert!(signature_shaped(Some(&good)));
        assert!(!signature_shaped(None));
        assert!(!signature_shaped(Some("sha256=zz")));
        assert!(!signature_shaped(Some(&good[..good.len() - 1])));
    }

    #[tokio::test]
    async fn a_finished_watch_leaves_no_waker() {
        let wakers = Wakers::default();
        let (tx, mut rx) = mpsc::channel(1);
        wakers.register("inv1", &tx);
        wakers.wake("inv1");
        assert_eq!(rx.recv().await, Some(()), "a webhook wakes the watch");
        drop(tx);
        wakers.forget_closed("inv1");
        assert!(wakers.is_empty());
    }
}
