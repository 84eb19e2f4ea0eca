//! The IO boundary of the relay client: one connection to one relay, as text messages.
//! [`WsConnector`] is the real one (a websocket, each message capped at
//! [`MAX_RELAY_MESSAGE`] by tungstenite before it is buffered whole); `super::fake` has an
//! in-memory relay behind the same traits.

use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use url::Url;

use crate::backend::http::{self, TlsSettings};
pub use crate::nostr::relay::relay_label;
use crate::nostr::relay::MAX_RELAY_MESSAGE;

/// Why a relay connection could not be made or ended. Carries the relay's
/// [`relay_label`] at most, never a message's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect to {relay}: {reason}")]
    Connect { relay: String, reason: String },
    #[error("the relay connection is lost: {0}")]
    Lost(String),
}

/// Opens connections to relays.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    async fn connect(&self, relay: &Url) -> Result<Box<dyn Link>, LinkError>;
}

/// What came from a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message (NIP-01 speaks text).
    Text(String),
    /// Any other frame (a pong, a ping, binary): nothing to read, but the relay is there.
    Alive,
}

/// One open relay connection. The client bounds every call with its own timeouts.
#[async_trait]
pub trait Link: Send + 'static {
    async fn send(&mut self, text: String) -> Result<(), LinkError>;
    /// Sends a websocket ping; a live relay answers with a frame ([`Frame::Alive`]).
    async fn ping(&mut self) -> Result<(), LinkError>;
    /// The next frame; `None` once the connection has ended (closed, broken, or a message
    /// over the size limit, which ends it rather than being buffered).
    async fn recv(&mut self) -> Option<Frame>;
}

/// Websocket connections with the machine's TLS rules (public roots for `wss://`).
#[derive(Debug, Clone)]
pub struct WsConnector {
    pub tls: TlsSettings,
    pub timeout: Duration,
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_RELAY_MESSAGE))
        .max_frame_size(Some(MAX_RELAY_MESSAGE))
        .read_buffer_size(16 << 10)
}

#[async_trait]
impl Connector for WsConnector {
    async fn connect(&self, relay: &Url) -> Result<Box<dyn Link>, LinkError> {
        let fail = |reason: String| LinkError::Connect {
            relay: relay_label(relay),
            reason,
        };
        let connector = http::ws_connector(&self.tls).map_err(|e| fail(e.to_string()))?;
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            relay.as_str(),
            Some(ws_config()),
            false,
            Some(connector),
        );
        let (socket, _) = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| fail("timed out".into()))?
            .map_err(|e| fail(e.to_string()))?;
        Ok(Box::new(WsLink { socket }))
    }
}

struct WsLink {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

#[async_trait]
impl Link for WsLink {
    async fn send(&mut self, text: String) -> Result<(), LinkError> {
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| LinkError::Lost(e.to_string()))
    }

    async fn ping(&mut self) -> Result<(), LinkError> {
        self.socket
            .send(Message::Ping(Default::default()))
            .await
            .map_err(|e| LinkError::Lost(e.to_string()))
    }

    async fn recv(&mut self) -> Option<Frame> {
        match self.socket.next().await? {
            Ok(Message::Text(t)) => Some(Frame::Text(t.as_str().to_owned())),
            // NIP-01 speaks text; tungstenite answers pings by itself.
            Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {
                Some(Frame::Alive)
            }
            Ok(Message::Close(_)) | Err(_) => None,
        }
    }
}
