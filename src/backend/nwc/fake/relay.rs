//! The in-memory NIP-01 relay of the fakes: REQ filters on kinds, authors, `#p`, `#e` and
//! `since`; ephemeral kinds forwarded, the replaceable info event stored; every published
//! event verified. Tests can take it down, cut its connections, or make it say anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use url::Url;

use super::lock;
use crate::backend::nwc::link::{Connector, Frame, Link, LinkError};
use crate::nostr::Event;

#[derive(Clone, Default)]
pub struct FakeRelay {
    inner: Arc<Mutex<RelayInner>>,
}

#[derive(Default)]
struct RelayInner {
    down: bool,
    next: u64,
    connects: u64,
    conns: HashMap<u64, FakeConn>,
    /// Replaceable events (kinds 10000–19999), the latest per author and kind.
    stored: Vec<Event>,
    /// Every event a client published, in order.
    published: Vec<Event>,
}

struct FakeConn {
    tx: mpsc::Sender<String>,
    subs: HashMap<String, Vec<Value>>,
}

impl FakeRelay {
    pub fn new() -> FakeRelay {
        FakeRelay::default()
    }

    /// Down: every connection is cut and new ones are refused.
    pub fn set_down(&self, down: bool) {
        let mut inner = lock(&self.inner);
        inner.down = down;
        if down {
            inner.conns.clear();
        }
    }

    /// Cuts every open connection (the clients reconnect).
    pub fn drop_connections(&self) {
        lock(&self.inner).conns.clear();
    }

    pub fn connections(&self) -> usize {
        lock(&self.inner).conns.len()
    }

    /// Connections accepted so far.
    pub fn connects(&self) -> u64 {
        lock(&self.inner).connects
    }

    pub fn published(&self) -> Vec<Event> {
        lock(&self.inner).published.clone()
    }

    /// Sends `text` as it is to every open connection (waits for room in each queue).
    pub async fn inject(&self, text: &str) {
        let txs: Vec<_> = lock(&self.inner)
            .conns
            .values()
            .map(|c| c.tx.clone())
            .collect();
        for tx in txs {
            let _ = tx.send(text.to_string()).await;
        }
    }

    /// What a relay does with a message from connection `id`.
    fn on_client_message(&self, id: u64, text: &str) {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let label = items.first().and_then(Value::as_str).unwrap_or("");
        let sub = items
            .get(1)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match label {
            "REQ" => {
                let filters: Vec<Value> = items.get(2..).unwrap_or(&[]).to_vec();
                let stored: Vec<String> = inner
                    .stored
                    .iter()
                    .filter(|e| filters.iter().any(|f| matches(f, e)))
                    .map(|e| json!(["EVENT", sub, e.to_value()]).to_string())
                    .collect();
                if let Some(c) = inner.conns.get_mut(&id) {
                    for m in stored {
                        let _ = c.tx.try_send(m);
                    }
                    let _ = c.tx.try_send(json!(["EOSE", sub]).to_string());
                    c.subs.insert(sub, filters);
                }
            }
            "CLOSE" => {
                if let Some(c) = inner.conns.get_mut(&id) {
                    c.subs.remove(&sub);
                }
            }
            "EVENT" => {
                let Some(raw) = items.get(1).cloned() else {
                    return;
                };
                let event = match Event::from_value(raw) {
                    Ok(e) => e,
                    Err(_) => {
                        if let Some(c) = inner.conns.get(&id) {
                            let _ = c.tx.try_send(r#"["NOTICE","invalid: event"]"#.to_string());
                        }
                        return;
                    }
                };
                if let Some(c) = inner.conns.get(&id) {
                    let _ =
                        c.tx.try_send(json!(["OK", event.id().to_hex(), true, ""]).to_string());
                }
                inner.published.push(event.clone());
                if (10_000..20_000).contains(&event.kind()) {
                    let (k, a) = (event.kind(), event.pubkey());
                    inner.stored.retain(|e| !(e.kind() == k && e.pubkey() == a));
                    inner.stored.push(event.clone());
                }
                for c in inner.conns.values() {
                    for (sub, filters) in &c.subs {
                        if filters.iter().any(|f| matches(f, &event)) {
                            let _ =
                                c.tx.try_send(json!(["EVENT", sub, event.to_value()]).to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Whether `event` passes the NIP-01 filter `f` (the fields NWC uses).
fn matches(f: &Value, event: &Event) -> bool {
    let list = |k: &str| f.get(k).and_then(Value::as_array);
    if let Some(kinds) = list("kinds") {
        if !kinds
            .iter()
            .any(|k| k.as_u64() == Some(u64::from(event.kind())))
        {
            return false;
        }
    }
    if let Some(authors) = list("authors") {
        let me = event.pubkey().to_hex();
        if !authors.iter().any(|a| a.as_str() == Some(me.as_str())) {
            return false;
        }
    }
    for (key, tag) in [("#p", "p"), ("#e", "e")] {
        if let Some(values) = list(key) {
            let hit = event
                .tag_values(tag)
                .any(|t| values.iter().any(|v| v.as_str() == Some(t)));
            if !hit {
                return false;
            }
        }
    }
    if let Some(since) = f.get("since").and_then(Value::as_u64) {
        if event.created_at() < since {
            return false;
        }
    }
    true
}

#[async_trait]
impl Connector for FakeRelay {
    async fn connect(&self, relay: &Url) -> Result<Box<dyn Link>, LinkError> {
        let mut inner = lock(&self.inner);
        if inner.down {
            return Err(LinkError::Connect {
                relay: crate::backend::nwc::link::relay_label(relay),
                reason: "connection refused (fake relay down)".into(),
            });
        }
        let (tx, rx) = mpsc::channel(1024);
        let id = inner.next;
        inner.next += 1;
        inner.connects += 1;
        inner.conns.insert(
            id,
            FakeConn {
                tx,
                subs: HashMap::new(),
            },
        );
        Ok(Box::new(FakeLink {
            id,
            relay: self.clone(),
            rx,
            pong: false,
        }))
    }
}

struct FakeLink {
    id: u64,
    relay: FakeRelay,
    rx: mpsc::Receiver<String>,
    /// A ping is waiting for its pong.
    pong: bool,
}

#[async_trait]
impl Link for FakeLink {
    async fn send(&mut self, text: String) -> Result<(), LinkError> {
        if !lock(&self.relay.inner).conns.contains_key(&self.id) {
            return Err(LinkError::Lost("cut".into()));
        }
        self.relay.on_client_message(self.id, &text);
        Ok(())
    }

    async fn ping(&mut self) -> Result<(), LinkError> {
        if !lock(&self.relay.inner).conns.contains_key(&self.id) {
            return Err(LinkError::Lost("cut".into()));
        }
        self.pong = true;
        Ok(())
    }

    async fn recv(&mut self) -> Option<Frame> {
        if std::mem::take(&mut self.pong) {
            return Some(Frame::Alive);
        }
        self.rx.recv().await.map(Frame::Text)
    }
}

impl Drop for FakeLink {
    fn drop(&mut self) {
        lock(&self.relay.inner).conns.remove(&self.id);
    }
}
