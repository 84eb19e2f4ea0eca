//! The simulator's built-in Bolt Card service: an LNURL-withdraw server on this machine's
//! loopback with two virtual cards, that pays an accepted invoice at the simulated backend
//! as a card's wallet would. It keeps each card's tap counter, so a replayed tap is refused
//! as a real service refuses it, and each card's limit. It checks no SUN MAC: the virtual
//! cards are the simulator's own (the real-card checks are the LNbits extension's job).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::routing::get;
use axum::Router;

use crate::backend::sim::SimBackend;

/// The simulator's cards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SimCard {
    /// Allows up to 100,000 sat a tap.
    Good,
    /// Allows up to 1,000 sat a tap (less than any drink of the built-in config but water).
    Low,
}

impl SimCard {
    fn id(self) -> &'static str {
        match self {
            SimCard::Good => "good",
            SimCard::Low => "low",
        }
    }

    fn max_msat(self) -> u64 {
        match self {
            SimCard::Good => 100_000_000,
            SimCard::Low => 1_000_000,
        }
    }
}

#[derive(Default)]
struct Cards {
    /// Highest counter seen per card (a tap must go above it).
    last: HashMap<&'static str, u32>,
    /// The counter each card writes into its next tap.
    next: HashMap<&'static str, u32>,
    /// k1 → the card whose tap issued it (used once).
    open: HashMap<String, &'static str>,
}

/// A running service.
#[derive(Clone)]
pub struct SimCardService {
    base: String,
    cards: Arc<Mutex<Cards>>,
}

#[derive(Clone)]
struct Shared {
    base: String,
    cards: Arc<Mutex<Cards>>,
    sim: Arc<SimBackend>,
}

fn error(reason: &str) -> String {
    serde_json::json!({"status": "ERROR", "reason": reason}).to_string()
}

impl SimCardService {
    /// Starts the service on 127.0.0.1 (inside a tokio runtime).
    pub async fn start(sim: Arc<SimBackend>) -> std::io::Result<SimCardService> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let cards: Arc<Mutex<Cards>> = Arc::default();
        let shared = Shared {
            base: base.clone(),
            cards: cards.clone(),
            sim,
        };
        let app = Router::new()
            .route("/card/{id}", get(scan))
            .route("/cb", get(callback))
            .with_state(shared);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the simulator's card service stopped");
            }
        });
        Ok(SimCardService { base, cards })
    }

    /// The NDEF URI `card` shows on its next tap (its counter goes up), or, with `replay`,
    /// the one it showed last time.
    pub fn tap_uri(&self, card: SimCard, replay: bool) -> String {
        let mut cards = self.cards.lock().unwrap_or_else(|p| p.into_inner());
        let next = cards.next.entry(card.id()).or_insert(1);
        let counter = if replay {
            next.saturating_sub(1).max(1)
        } else {
            let c = *next;
            *next += 1;
            c
        };
        format!(
            "{}/card/{}?p={counter:08X}&c=0000000000000000",
            self.base.replacen("http", "lnurlw", 1),
            card.id()
        )
    }
}

fn query(uri: &Uri) -> HashMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn card_of(id: &str) -> Option<SimCard> {
    [SimCard::Good, SimCard::Low]
        .into_iter()
        .find(|c| c.id() == id)
}

async fn scan(State(s): State<Shared>, Path(id): Path<String>, uri: Uri) -> String {
    let q = query(&uri);
    let Some(card) = card_of(&id) else {
        return error("Unknown card.");
    };
    let Some(counter) = q.get("p").and_then(|p| u32::from_str_radix(p, 16).ok()) else {
        return error("Bad p.");
    };
    let mut cards = s.cards.lock().unwrap_or_else(|p| p.into_inner());
    if cards
        .last
        .get(card.id())
        .is_some_and(|&last| counter <= last)
    {
        return error("This link is already used.");
    }
    cards.last.insert(card.id(), counter);
    let k1 = format!("{:032x}", rand::random::<u128>());
    cards.open.insert(k1.clone(), card.id());
    serde_json::json!({
        "tag": "withdrawRequest",
        "callback": format!("{}/cb", s.base),
        "k1": k1,
        "defaultDescription": "Simulator Bolt Card",
        "minWithdrawable": 1000,
        "maxWithdrawable": card.max_msat(),
    })
    .to_string()
}

async fn callback(State(s): State<Shared>, uri: Uri) -> String {
    let q = query(&uri);
    let opened = {
        let mut cards = s.cards.lock().unwrap_or_else(|p| p.into_inner());
        q.get("k1").and_then(|k| cards.open.remove(k.as_str()))
    };
    if opened.is_none() {
        return error("Payment already claimed.");
    }
    let Some(pr) = q.get("pr") else {
        return error("No invoice.");
    };
    // Pays only the invoice the machine shows, as a wallet paying that BOLT11 would.
    match s.sim.latest() {
        Some(inv) if inv.bolt11.eq_ignore_ascii_case(pr) => {
            let sim = s.sim.clone();
            // A moment later, as a Lightning payment takes one.
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(400)).await;
                if let Err(e) = sim.pay(&inv.id) {
                    tracing::info!(error = %e, "the simulator's card could not pay");
                }
            });
            r#"{"status":"OK"}"#.into()
        }
        _ => error("Unknown invoice."),
    }
}
