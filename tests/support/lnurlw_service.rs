//! A local LNURL-withdraw service for the card tests: answers a Bolt Card's tap URL with a
//! withdrawRequest and its callback with `{"status":"OK"}` (or the configured error), and
//! records what reached it. It pays nothing by itself: the tests pay (or do not pay) the
//! invoice at the simulated backend, as a real service would pay it over Lightning.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;

/// How the service answers.
#[derive(Clone, Debug)]
pub struct Behaviour {
    pub min_msat: u64,
    pub max_msat: u64,
    /// Answer the tap URL with this LNURL error instead of a withdrawRequest.
    pub scan_error: Option<String>,
    /// Answer the callback with this LNURL error instead of OK.
    pub callback_error: Option<String>,
    /// Refuse a `p` it has seen before, as a Bolt Card service refuses a replayed tap.
    pub refuse_replays: bool,
    /// A PIN card: `pinLimit` (msat, like the other amounts) in the withdrawRequest, and a
    /// callback at or above it without this `pin` is refused with "Wrong PIN".
    pub pin: Option<(u64, String)>,
    /// The first callback answers only after this long (a slow service), the others at once.
    pub first_callback_delay: Option<std::time::Duration>,
    /// The callback carries `k1` in its path (`/cb/<k1>`), as LNbits' Bolt Cards extension
    /// puts it, instead of in the query.
    pub k1_in_path: bool,
    /// The callback is on this origin instead of the service's own (a closed port: a
    /// callback that cannot be reached).
    pub callback_origin: Option<String>,
}

impl Default for Behaviour {
    fn default() -> Behaviour {
        Behaviour {
            min_msat: 1000,
            max_msat: 100_000_000,
            scan_error: None,
            callback_error: None,
            refuse_replays: true,
            pin: None,
            first_callback_delay: None,
            k1_in_path: false,
            callback_origin: None,
        }
    }
}

#[derive(Clone)]
struct Shared {
    behaviour: Behaviour,
    base: String,
    scans: Arc<Mutex<Vec<HashMap<String, String>>>>,
    callbacks: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

pub struct CardService {
    pub base: String,
    scans: Arc<Mutex<Vec<HashMap<String, String>>>>,
    callbacks: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

pub const K1: &str = "k1-of-the-card-service-0123456789";

impl CardService {
    pub async fn start(behaviour: Behaviour) -> CardService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Shared {
            behaviour,
            base: base.clone(),
            scans: Arc::default(),
            callbacks: Arc::default(),
        };
        let app = Router::new()
            .route("/scan", get(scan))
            .route("/cb", get(callback))
            .route("/cb/{k1}", get(callback))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        CardService {
            base,
            scans: shared.scans,
            callbacks: shared.callbacks,
        }
    }

    /// The NDEF URI of a tap with this `p` (a real card's `p` changes with every tap).
    pub fn tap_uri(&self, p: &str) -> String {
        format!(
            "{}/scan?p={p}&c=E19CCB1FED8892CE",
            self.base.replacen("http", "lnurlw", 1)
        )
    }

    pub fn scans(&self) -> Vec<HashMap<String, String>> {
        self.scans.lock().unwrap().clone()
    }

    pub fn callbacks(&self) -> Vec<HashMap<String, String>> {
        self.callbacks.lock().unwrap().clone()
    }
}

fn error(reason: &str) -> String {
    serde_json::json!({"status": "ERROR", "reason": reason}).to_string()
}

async fn scan(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> String {
    let replay = {
        let mut scans = s.scans.lock().unwrap();
        let seen = scans.iter().any(|old| old.get("p") == q.get("p"));
        scans.push(q);
        seen
    };
    if let Some(e) = &s.behaviour.scan_error {
        return error(e);
    }
    if replay && s.behaviour.refuse_replays {
        return error("This link is already used.");
    }
    let mut req = serde_json::json!({
        "tag": "withdrawRequest",
        "callback": match (&s.behaviour.callback_origin, s.behaviour.k1_in_path) {
            (origin, true) => format!("{}/cb/{K1}", origin.as_deref().unwrap_or(&s.base)),
            (origin, false) => format!("{}/cb", origin.as_deref().unwrap_or(&s.base)),
        },
        "k1": K1,
        "defaultDescription": "Bolt Card",
        "minWithdrawable": s.behaviour.min_msat,
        "maxWithdrawable": s.behaviour.max_msat,
    });
    if let Some((limit, _)) = &s.behaviour.pin {
        req["pinLimit"] = (*limit).into();
    }
    req.to_string()
}

async fn callback(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> String {
    let pin_ok = match &s.behaviour.pin {
        None => true,
        Some((_, pin)) => q.get("pin") == Some(pin),
    };
    let first = {
        let mut callbacks = s.callbacks.lock().unwrap();
        callbacks.push(q);
        callbacks.len() == 1
    };
    if let Some(delay) = s.behaviour.first_callback_delay.filter(|_| first) {
        tokio::time::sleep(delay).await;
    }
    if !pin_ok {
        return error("Wrong PIN");
    }
    match &s.behaviour.callback_error {
        Some(e) => error(e),
        None => r#"{"status":"OK"}"#.into(),
    }
}
