//! The `/metrics` listener: GET `/metrics` answers the text exposition, anything else 404
//! or 405. It runs on its own task and only reads atomics, so a slow or hostile scraper
//! costs the controller nothing: a connection gets 5 s for its request head and 10 s in all,
//! one request per connection, no request body is read, and at most 8 connections are
//! served at once (further ones are closed as soon as they are accepted). Dropping the
//! [`MetricsListener`] ends the accept loop and every connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, Response, StatusCode};
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::Metrics;

const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
const WHOLE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 8;

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr}: {source}")]
pub struct ListenError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// A running listener; dropping it stops it.
pub struct MetricsListener {
    bound: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsListener {
    /// Listens on `addr` (inside a tokio runtime).
    pub fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<MetricsListener, ListenError> {
        let err = |source| ListenError { addr, source };
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(err)?;
        socket.set_reuseaddr(true).map_err(err)?;
        socket.bind(addr).map_err(err)?;
        let listener = socket.listen(128).map_err(err)?;
        let bound = listener.local_addr().map_err(err)?;
        metrics.set_served();
        let task = tokio::spawn(accept_loop(listener, metrics));
        tracing::info!(%bound, "serving /metrics");
        Ok(MetricsListener { bound, task })
    }

    pub fn bound(&self) -> SocketAddr {
        self.bound
    }
}

impl Drop for MetricsListener {
    fn drop(&mut self) {
        // The accept loop owns the socket and the connections: aborting it drops them all.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, metrics: Arc<Metrics>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if conns.len() >= MAX_CONNECTIONS => drop(stream),
                Ok((stream, _)) => {
                    conns.spawn(serve(stream, metrics.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener could not accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn serve(stream: TcpStream, metrics: Arc<Metrics>) {
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let metrics = metrics.clone();
        async move { Ok::<_, Infallible>(answer(&req, &metrics)) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    if tokio::time::timeout(WHOLE_TIMEOUT, conn).await.is_err() {
        tracing::debug!("metrics connection timed out");
    }
}

fn answer<B>(req: &Request<B>, metrics: &Metrics) -> Response<Body> {
    if req.uri().path() != "/metrics" {
        return StatusCode::NOT_FOUND.into_response();
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
        .into_response()
}
