//! Core Lightning. This module owns everything both ways of reaching a node share: the
//! JSON-RPC calls lnvend makes (`getinfo`, `invoice`, `listinvoices`, `waitinvoice`), how
//! their replies become [`InvoiceState`]s, how CLN's error codes become [`BackendError`]s, and
//! a rune refused for any call putting the machine out of service; the start-up catch-up and
//! its persisted cursors are in [`catch_up`]. The two transports plug into the
//! same [`ClnBackend`], so they can never disagree about what "paid" means: the local
//! `lightning-rpc` unix socket in [`socket`] (a small bounded JSON-RPC client that replaced
//! the `cln-rpc` crate), and clnrest over HTTPS in [`super::clnrest`].
//!
//! The invoice id is the label, and the label is `lnvend/<machine_id>/<sale_id>` ([`label`]):
//! two machines on one node never collide (a duplicate label is refused, and a label the
//! start-up catch-up reports only matches the ledger of the machine it names), and the
//! operator finds a sale in `lightning-cli listinvoices` by the code on the screen. Sales
//! made before the machine was named in the label keep their bare sale id (the ledger
//! stores each sale's invoice id).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{
    BackendError, CancelOutcome, HoldState, HoldSupport, Invoice, InvoiceId, InvoiceRequest,
    InvoiceState, PaymentBackend, PaymentHash, Preimage, WakeUps,
};
use crate::config::Network;
use crate::money::{Msat, Price};

mod catch_up;
pub mod hold;
mod socket;
mod withdraw;

pub use catch_up::CursorFile;
use withdraw::{cancel_outcome, Withdrawn};

/// CLN error codes lnvend reacts to (see the `errors` sections of the method schemas).
pub mod code {
    /// `invoice`: an invoice with this label already exists.
    pub const DUPLICATE_LABEL: i64 = 900;
    /// `waitinvoice`: the invoice expired (or was already expired) before being paid.
    pub const EXPIRED: i64 = 903;
    /// `delinvoice`: no invoice has this label.
    pub const NO_SUCH_INVOICE: i64 = 905;
    /// `delinvoice`: the invoice's status is not the one asked for (it changed just before).
    pub const STATUS_CHANGED: i64 = 906;
    /// JSON-RPC: the node offers no such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// clnrest: the rune does not allow the call.
    pub const RUNE_REFUSED: i64 = 1501;
    /// clnrest: the rune could not be checked.
    pub const RUNE_FAILED: i64 = 1502;
}

/// How a call failed: an error the node answered with, or no usable answer at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// A JSON-RPC error object from lightningd (or clnrest's `{code,message}` body).
    Rpc { code: i64, message: String },
    /// Transport, credentials or a malformed reply.
    Backend(BackendError),
}

impl CallError {
    /// The error as the rest of lnvend sees it. `method` names the call for the operator.
    pub fn into_backend(self, method: &str) -> BackendError {
        match self {
            CallError::Backend(e) => e,
            CallError::Rpc { code, message } => {
                let message = printable(&message);
                match code {
                    code::DUPLICATE_LABEL => BackendError::Rejected(format!(
                        "{method}: the node already has an invoice with this label (900): {message}"
                    )),
                    // Method not found: an old node, or a rune/plugin that hides the method.
                    code::METHOD_NOT_FOUND => BackendError::Rejected(format!(
                        "{method}: the node does not offer this method (-32601): {message}"
                    )),
                    // A rune that does not allow the call, as clnrest reports it in the body.
                    code::RUNE_REFUSED | code::RUNE_FAILED => BackendError::Unauthorized(format!(
                        "{method}: the rune was refused ({code}): {message}"
                    )),
                    _ => BackendError::Rejected(format!("{method}: error {code}: {message}")),
                }
            }
        }
    }
}

/// At most 200 printable characters of a node's message, for logs and the service screen.
pub(crate) fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// One way of calling a node's JSON-RPC methods with named params.
#[async_trait]
pub trait Rpc: Send + Sync + 'static {
    /// A short call that must answer within the configured request timeout.
    async fn call(&self, method: &str, params: Value) -> Result<Value, CallError>;

    /// Starts a call that blocks on the node's side until something happens
    /// (`waitinvoice`). Fails at once if the node cannot be reached, so the watcher backs
    /// off; the returned future resolves when the node answers or the connection drops.
    async fn start_long_call(&self, method: &str, params: Value) -> Result<LongCall, BackendError>;
}

/// A blocking call in flight.
pub type LongCall =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, CallError>> + Send>>;

/// CLN's name for a network, as `getinfo` reports it.
pub fn network_matches(ours: Network, theirs: &str) -> bool {
    match ours {
        Network::Bitcoin => theirs == "bitcoin",
        // testnet3 and testnet4 invoices share the `lntb` prefix.
        Network::Testnet => theirs == "testnet" || theirs == "testnet4",
        Network::Signet => theirs == "signet",
        Network::Regtest => theirs == "regtest",
    }
}

fn network_name(n: Network) -> &'static str {
    match n {
        Network::Bitcoin => "bitcoin",
        Network::Testnet => "testnet",
        Network::Signet => "signet",
        Network::Regtest => "regtest",
    }
}

/// `getinfo` must name the network the machine is configured for.
pub fn check_getinfo(reply: &Value, want: Network) -> Result<(), BackendError> {
    let got = reply
        .get("network")
        .and_then(Value::as_str)
        .ok_or_else(|| BackendError::BadReply("getinfo: no `network`".into()))?;
    if network_matches(want, got) {
        Ok(())
    } else {
        Err(BackendError::Rejected(format!(
            "the node is on {}, this machine is configured for {}",
            printable(got),
            network_name(want)
        )))
    }
}

/// An msat amount as CLN prints it: an integer, or (before v23) a string ending in "msat".
pub fn parse_msat(v: Option<&Value>, field: &str) -> Result<Msat, BackendError> {
    let bad = || BackendError::BadReply(format!("`{field}` is missing or not an msat amount"));
    match v.ok_or_else(bad)? {
        Value::Number(n) => n.as_u64().map(Msat::from_msat).ok_or_else(bad),
        Value::String(s) => s
            .strip_suffix("msat")
            .and_then(|d| d.parse().ok())
            .map(Msat::from_msat)
            .ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// What every label lnvend gives an invoice starts with (the node's other apps' invoices
/// do not).
pub const LABEL_PREFIX: &str = "lnvend/";

/// The node's label (and our invoice id) of `request`'s invoice.
pub fn label(request: &InvoiceRequest) -> String {
    format!("{LABEL_PREFIX}{}/{}", request.machine_id, request.sale_id)
}

/// The params of `invoice` for `request`. CLN invoices are in sats only (fiat prices are
/// refused when the configuration is loaded; this is the backstop).
pub fn invoice_params(request: &InvoiceRequest) -> Result<(Value, Msat), BackendError> {
    let amount = match &request.price {
        Price::Sats(m) => *m,
        Price::Fiat(f) => {
            return Err(BackendError::Rejected(format!(
                "Core Lightning cannot price in {}; use price_sat",
                f.currency()
            )))
        }
    };
    let params = json!({
        "amount_msat": amount.as_msat(),
        "label": label(request),
        "description": request.description,
        "expiry": request.expiry.as_secs(),
    });
    Ok((params, amount))
}

/// The reply of `invoice` as an [`Invoice`].
pub fn parse_invoice_reply(
    reply: &Value,
    request: &InvoiceRequest,
    amount: Msat,
) -> Result<Invoice, BackendError> {
    let text = |f: &str| {
        reply
            .get(f)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| BackendError::BadReply(format!("invoice: no `{f}`")))
    };
    let expires_at_unix = reply
        .get("expires_at")
        .and_then(Value::as_u64)
        .ok_or_else(|| BackendError::BadReply("invoice: no `expires_at`".into()))?;
    Ok(Invoice {
        id: InvoiceId(label(request)),
        bolt11: text("bolt11")?,
        payment_hash: text("payment_hash")?,
        amount,
        expires_at_unix,
    })
}

/// The state of one invoice as `listinvoices` or `waitinvoice` describe it.
pub fn state_of(inv: &Value) -> Result<InvoiceState, BackendError> {
    match inv.get("status").and_then(Value::as_str) {
        Some("paid") => {
            let received = parse_msat(inv.get("amount_received_msat"), "amount_received_msat")?;
            // An amountless invoice has no `amount_msat`; lnvend never makes one, so a
            // missing amount is read as "anything received is not enough to trust".
            let asked = parse_msat(inv.get("amount_msat"), "amount_msat")?;
            if received >= asked {
                Ok(InvoiceState::Paid { received })
            } else {
                // Reported as paid with what came in; the watcher refuses to pour for it.
                tracing::error!(%received, %asked, "the node reports an invoice paid with less than asked");
                Ok(InvoiceState::Paid { received })
            }
        }
        Some("expired") => Ok(InvoiceState::Expired),
        Some("unpaid") => Ok(InvoiceState::Pending),
        Some(other) => Err(BackendError::BadReply(format!(
            "unknown invoice status {:?}",
            printable(other)
        ))),
        None => Err(BackendError::BadReply("invoice without `status`".into())),
    }
}

/// The state of invoice `label` from a `listinvoices label=…` reply; `None`: the node has no
/// invoice with that label.
pub fn state_from_listinvoices(
    reply: &Value,
    label: &str,
) -> Result<Option<InvoiceState>, BackendError> {
    let invoices = reply
        .get("invoices")
        .and_then(Value::as_array)
        .ok_or_else(|| BackendError::BadReply("listinvoices: no `invoices` array".into()))?;
    let mut matching = invoices
        .iter()
        .filter(|i| i.get("label").and_then(Value::as_str) == Some(label));
    match (matching.next(), matching.next()) {
        (Some(inv), None) => state_of(inv).map(Some),
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(BackendError::BadReply(format!(
            "listinvoices: two invoices labelled {label}"
        ))),
    }
}

/// A Core Lightning node behind some [`Rpc`] transport.
pub struct ClnBackend<R: Rpc> {
    rpc: Arc<R>,
    name: &'static str,
    network: Network,
    pay_index: CursorFile,
    updated_index: CursorFile,
    refused: Refusals,
    /// Whether [`PERMISSION_PROBES`] went through once since the start.
    probed: AtomicBool,
    /// Whether the start-up catch-up (`catch_up`) went through (see `remember_pay_index`).
    caught_up: AtomicBool,
    /// The labels lnvend withdrew in this run (see [`Withdrawn`]).
    withdrawn: Withdrawn,
}

/// The last call the node refused our rune for, if no later call of that method went
/// through: a rune without a permission lnvend needs puts the machine out of service (by
/// [`PaymentBackend::check_health`]), whichever call found out, not only `getinfo`.
///
/// A refusal stands for [`REFUSAL_STANDS`]. The methods of [`PERMISSION_PROBES`] are asked
/// again at every health check while it stands (a refusal of theirs is noted afresh each
/// time); `invoice` has no harmless probe, and is tried again by the next customer's tap
/// once the refusal has lapsed. Without the lapse a rune the operator fixed on the node
/// would keep the machine out of service until a restart.
#[derive(Clone, Debug, Default)]
struct Refusals(Arc<Mutex<Option<(String, BackendError, Instant)>>>);

/// How long a refused rune keeps the machine out of service before `invoice` is tried again.
const REFUSAL_STANDS: Duration = Duration::from_secs(60);

impl Refusals {
    fn note<T>(&self, method: &str, result: &Result<T, BackendError>) {
        match result {
            Err(e @ BackendError::Unauthorized(_)) => {
                *self.lock() = Some((method.to_owned(), e.clone(), Instant::now()))
            }
            Ok(_) => self.permitted(method),
            Err(_) => {}
        }
    }

    /// The node let a call of `method` through (it answered, or refused only its params).
    fn permitted(&self, method: &str) {
        let mut refused = self.lock();
        if refused.as_ref().is_some_and(|(m, _, _)| m == method) {
            *refused = None;
        }
    }

    fn standing(&self) -> Option<BackendError> {
        let mut refused = self.lock();
        if refused
            .as_ref()
            .is_some_and(|(_, _, at)| at.elapsed() >= REFUSAL_STANDS)
        {
            *refused = None;
        }
        refused.as_ref().map(|(_, e, _)| e.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(String, BackendError, Instant)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Calls lnvend makes besides `getinfo`, in forms that read nothing and change nothing:
/// `listinvoices` in both shapes lnvend sends (by label, and the catch-up's page by the
/// `updated` index, here from its far end) and a `waitinvoice` of a label no invoice has
/// (it answers at once that there is none). Asked at the first health check, so a rune
/// without one of them puts the machine out of service before a customer sees a QR it
/// could never confirm, and again while a refusal stands, so a rune the operator fixed on
/// the node brings the machine back by itself. (`invoice` has no such form: a rune without
/// it is found by the first tap, which shows no QR.)
const PERMISSION_PROBES: [(&str, &str, &str); 3] = [
    (
        "listinvoices",
        "listinvoices",
        r#"{"label": "lnvend/permission-probe"}"#,
    ),
    (
        "listinvoices",
        CATCH_UP_SHAPE,
        r#"{"index": "updated", "start": 18446744073709551615, "limit": 1}"#,
    ),
    (
        "waitinvoice",
        "waitinvoice",
        r#"{"label": "lnvend/permission-probe"}"#,
    ),
];

/// The catch-up's `listinvoices` by the `updated` index, as its rune verdict is kept.
const CATCH_UP_SHAPE: &str = "listinvoices by index";

impl<R: Rpc> std::fmt::Debug for ClnBackend<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClnBackend")
            .field("name", &self.name)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

impl<R: Rpc> ClnBackend<R> {
    pub fn new(rpc: R, name: &'static str, network: Network, data_dir: &Path) -> ClnBackend<R> {
        ClnBackend {
            rpc: Arc::new(rpc),
            name,
            network,
            pay_index: CursorFile::pay_index(data_dir),
            updated_index: CursorFile::updated_index(data_dir),
            refused: Refusals::default(),
            probed: AtomicBool::new(false),
            caught_up: AtomicBool::new(false),
            withdrawn: Withdrawn::default(),
        }
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, BackendError> {
        self.call_as(method, method, params).await
    }

    /// A call whose rune verdict is kept under `shape` (see [`PERMISSION_PROBES`]): a rune
    /// may allow `listinvoices` by label and refuse the catch-up's page by index, and the
    /// one going through must not clear the other's refusal.
    async fn call_as(
        &self,
        method: &str,
        shape: &str,
        params: Value,
    ) -> Result<Value, BackendError> {
        let result = self
            .rpc
            .call(method, params)
            .await
            .map_err(|e| e.into_backend(method));
        self.refused.note(shape, &result);
        result
    }

    /// Asks the node each [`PERMISSION_PROBES`] call: a refused rune is noted (by
    /// [`Self::call`]), any other answer of the node clears that method's refusal. A node
    /// that cannot be reached fails the health check as `getinfo` would.
    async fn probe_permissions(&self) -> Result<(), BackendError> {
        for (method, shape, params) in PERMISSION_PROBES {
            let params: Value = serde_json::from_str(params).unwrap_or_else(|_| json!({}));
            match self.call_as(method, shape, params).await {
                Ok(_) | Err(BackendError::Rejected(_)) => self.refused.permitted(shape),
                Err(BackendError::Unauthorized(_)) => {}
                Err(
                    e @ (BackendError::Unreachable(_)
                    | BackendError::BadReply(_)
                    | BackendError::Config(_)),
                ) => return Err(e),
            }
        }
        Ok(())
    }

    fn remember_pay_index(&self, inv: &Value) {
        // Not before the start-up catch-up went through: its floor is the saved pay_index,
        // and a payment confirmed in this run (pay_index 11) would otherwise hide one made
        // while lnvend was down (pay_index 10) from a catch-up retried after the node came
        // back. The catch-up saves the highest index it walked past itself.
        if !self.caught_up.load(Ordering::Relaxed) {
            return;
        }
        if let Some(i) = inv.get("pay_index").and_then(Value::as_u64) {
            if let Err(e) = self.pay_index.raise_to(i) {
                tracing::error!(error = %e, "could not save the node's pay_index");
            }
        }
    }
}

#[async_trait]
impl<R: Rpc> PaymentBackend for ClnBackend<R> {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn check_health(&self) -> Result<(), BackendError> {
        let info = self.call("getinfo", json!({})).await?;
        check_getinfo(&info, self.network)?;
        if !self.probed.load(Ordering::Relaxed) || self.refused.standing().is_some() {
            self.probe_permissions().await?;
            self.probed.store(true, Ordering::Relaxed);
        }
        match self.refused.standing() {
            Some(refused) => Err(refused),
            None => Ok(()),
        }
    }

    async fn create_invoice(&self, request: &InvoiceRequest) -> Result<Invoice, BackendError> {
        let (params, amount) = invoice_params(request)?;
        let reply = self.call("invoice", params).await?;
        parse_invoice_reply(&reply, request, amount)
    }

    async fn invoice_state(&self, id: &InvoiceId) -> Result<InvoiceState, BackendError> {
        let reply = self.call("listinvoices", json!({ "label": id.0 })).await?;
        let state = match state_from_listinvoices(&reply, &id.0)? {
            Some(state) => state,
            // Withdrawn by lnvend while unpaid: nothing can pay it now.
            None if self.withdrawn.contains(&id.0) => InvoiceState::Invalid,
            None => {
                return Err(BackendError::Rejected(format!(
                    "the node has no invoice labelled {}",
                    id.0
                )))
            }
        };
        if let InvoiceState::Paid { .. } = state {
            if let Some(inv) = reply["invoices"].as_array().and_then(|a| a.first()) {
                self.remember_pay_index(inv);
            }
        }
        Ok(state)
    }

    async fn wake_ups(&self, id: &InvoiceId) -> Result<WakeUps, BackendError> {
        let wait = self
            .rpc
            .start_long_call("waitinvoice", json!({ "label": id.0 }))
            .await;
        self.refused.note("waitinvoice", &wait);
        let wait = wait?;
        let (tx, rx) = mpsc::channel(1);
        let label = id.0.clone();
        let refused = self.refused.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = wait => match r.map_err(|e| match e {
                    CallError::Backend(b @ BackendError::Unauthorized(_)) => {
                        refused.note::<()>("waitinvoice", &Err(b.clone()));
                        CallError::Backend(b)
                    }
                    other => other,
                }) {
                    // Paid (or expired: waitinvoice also returns for that); the watcher asks
                    // listinvoices, which decides.
                    Ok(_) => { let _ = tx.send(()).await; }
                    Err(CallError::Rpc { code: code::EXPIRED, .. }) => {
                        tracing::debug!(invoice = %label, "waitinvoice: expired");
                    }
                    Err(e) => {
                        tracing::debug!(invoice = %label, error = %e.into_backend("waitinvoice"), "waitinvoice ended");
                    }
                },
                // The watcher is gone: drop the call, and with it the connection.
                _ = tx.closed() => {}
            }
        });
        Ok(rx)
    }

    /// Asked until the node answers: see [`catch_up`].
    async fn paid_while_away(&self) -> Result<Vec<InvoiceId>, BackendError> {
        Ok(self.catch_up().await)
    }

    /// See [`hold`]: the holdinvoice plugin, and a rune that allows its methods.
    async fn hold_support(&self) -> Result<HoldSupport, BackendError> {
        self.hold_support_now().await
    }

    async fn create_hold_invoice(
        &self,
        request: &InvoiceRequest,
        preimage: &Preimage,
    ) -> Result<Invoice, BackendError> {
        self.create_hold(request, preimage).await
    }

    async fn hold_state(&self, hash: &PaymentHash) -> Result<HoldState, BackendError> {
        self.lookup_hold(hash).await
    }

    /// The plugin has the preimage from `holdinvoice`; settling needs only the hash.
    async fn settle_hold(&self, hash: &PaymentHash, _: &Preimage) -> Result<(), BackendError> {
        self.finish_hold("holdinvoicesettle", hash).await
    }

    async fn cancel_hold(&self, hash: &PaymentHash) -> Result<(), BackendError> {
        self.finish_hold("holdinvoicecancel", hash).await
    }

    /// `delinvoice status=unpaid`: the node refuses a payment of a label it no longer has.
    /// Not through [`Self::call`]: a rune without `delinvoice` costs only this convenience,
    /// and must not put the machine out of service as a missing `invoice` permission does.
    async fn cancel_invoice(&self, id: &InvoiceId) -> Result<CancelOutcome, BackendError> {
        let params = json!({ "label": id.0, "status": "unpaid" });
        let outcome = match self.rpc.call("delinvoice", params).await {
            Ok(_) => Ok(CancelOutcome::Cancelled),
            Err(e) => cancel_outcome(e),
        };
        if outcome == Ok(CancelOutcome::Cancelled) {
            self.withdrawn.remember(&id.0);
        }
        outcome
    }
}

pub use socket::{SocketRpc, MAX_SOCKET_REPLY};

/// The local node's backend.
pub type ClnSocketBackend = ClnBackend<SocketRpc>;

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> InvoiceRequest {
        InvoiceRequest {
            sale_id: "S1-00AA".into(),
            machine_id: "bar-7".into(),
            product: "Cola".into(),
            price: Price::Sats(Msat::from_sat(2100).unwrap()),
            description: "Cola".into(),
            expiry: Duration::from_secs(300),
        }
    }

    #[test]
    fn a_withdrawn_invoice_is_cancelled_a_paid_one_left_and_a_missing_permission_costs_nothing() {
        let rpc = |code: i64| CallError::Rpc {
            code,
            message: "m".into(),
        };
        assert_eq!(
            cancel_outcome(rpc(code::NO_SUCH_INVOICE)),
            Ok(CancelOutcome::Cancelled)
        );
        // Paid just before: an error, so nothing believes it withdrawn.
        assert!(matches!(
            cancel_outcome(rpc(code::STATUS_CHANGED)),
            Err(BackendError::Rejected(m)) if m.contains("no longer unpaid")
        ));
        for not_offered in [
            rpc(code::METHOD_NOT_FOUND),
            rpc(code::RUNE_REFUSED),
            rpc(code::RUNE_FAILED),
            CallError::Backend(BackendError::Unauthorized("401".into())),
        ] {
            assert!(matches!(
                cancel_outcome(not_offered),
                Ok(CancelOutcome::Unsupported(_))
            ));
        }
        assert!(matches!(
            cancel_outcome(CallError::Backend(BackendError::Unreachable("x".into()))),
            Err(BackendError::Unreachable(_))
        ));
        assert!(matches!(
            cancel_outcome(rpc(-1)),
            Err(BackendError::Rejected(_))
        ));
    }

    #[test]
    fn networks_map_to_cln_names_and_a_mismatch_names_both() {
        assert!(network_matches(Network::Bitcoin, "bitcoin"));
        assert!(network_matches(Network::Testnet, "testnet4"));
        assert!(!network_matches(Network::Bitcoin, "regtest"));
        let e = check_getinfo(&json!({"network": "testnet"}), Network::Bitcoin).unwrap_err();
        assert!(
            matches!(&e, BackendError::Rejected(m) if m.contains("testnet") && m.contains("bitcoin")),
            "{e}"
        );
        check_getinfo(&json!({"network": "signet"}), Network::Signet).unwrap();
    }

    #[test]
    fn invoice_params_carry_the_machine_and_sale_id_as_label_and_refuse_fiat() {
        let (p, amount) = invoice_params(&request()).unwrap();
        let mut other = request();
        other.machine_id = "bar-8".into();
        assert_eq!(
            p["label"],
            format!("lnvend/{}/S1-00AA", request().machine_id)
        );
        assert_ne!(
            invoice_params(&other).unwrap().0["label"],
            p["label"],
            "the same sale id on another machine"
        );
        assert_eq!(p["amount_msat"], 2_100_000);
        assert_eq!(p["expiry"], 300);
        assert_eq!(amount, Msat::from_msat(2_100_000));
        let mut fiat = request();
        fiat.price = Price::Fiat(crate::money::Fiat::parse("2.50", "EUR").unwrap());
        assert!(matches!(
            invoice_params(&fiat),
            Err(BackendError::Rejected(_))
        ));
    }

    #[test]
    fn an_absurd_expires_at_is_refused_before_it_is_shown() {
        let reply = |expires_at: &str| {
            serde_json::from_str::<Value>(&format!(
                r#"{{"bolt11":"lnbcrt1x","payment_hash":"{}","expires_at":{expires_at}}}"#,
                "ab".repeat(32)
            ))
            .unwrap()
        };
        let amount = Msat::from_msat(2_100_000);
        // Past u64 or negative: not an expiry at all.
        for bad in ["18446744073709551616", "1e30", "-5", "\"soon\""] {
            assert!(
                matches!(
                    parse_invoice_reply(&reply(bad), &request(), amount),
                    Err(BackendError::BadReply(_))
                ),
                "{bad}"
            );
        }
        // u64::MAX parses, and the BOLT11 check refuses it without overflowing.
        let inv = parse_invoice_reply(&reply("18446744073709551615"), &request(), amount).unwrap();
        assert_eq!(inv.expires_at_unix, u64::MAX);
        let now = std::time::SystemTime::now();
        let secs = crate::clock::unix_of(now);
        let mut ok = inv.clone();
        ok.bolt11 =
            crate::bolt11::tests::handmade(2_100_000, [0xab; 32], secs, Some(300), [7; 32], None);
        ok.expires_at_unix = u64::MAX;
        assert!(matches!(
            ok.check(&request(), Network::Regtest, now),
            Err(crate::bolt11::Bolt11Error::ExpiresTooLate { .. })
        ));
    }

    #[test]
    fn listinvoices_states() {
        let paid = json!({"invoices": [{"label": "a", "status": "paid", "amount_msat": 1000,
            "amount_received_msat": 1000, "pay_index": 3}]});
        assert_eq!(
            state_from_listinvoices(&paid, "a").unwrap(),
            Some(InvoiceState::Paid {
                received: Msat::from_msat(1000)
            })
        );
        let old_style = json!({"invoices": [{"label": "a", "status": "paid",
            "amount_msat": "1000msat", "amount_received_msat": "1001msat"}]});
        assert_eq!(
            state_from_listinvoices(&old_style, "a").unwrap(),
            Some(InvoiceState::Paid {
                received: Msat::from_msat(1001)
            })
        );
        let expired = json!({"invoices": [{"label": "a", "status": "expired"}]});
        assert_eq!(
            state_from_listinvoices(&expired, "a").unwrap(),
            Some(InvoiceState::Expired)
        );
        let unpaid = json!({"invoices": [{"label": "a", "status": "unpaid"}]});
        assert_eq!(
            state_from_listinvoices(&unpaid, "a").unwrap(),
            Some(InvoiceState::Pending)
        );
        // No such label: the caller decides (lnvend withdrew it, or it is an error).
        assert_eq!(
            state_from_listinvoices(&json!({"invoices": []}), "a").unwrap(),
            None
        );
        assert!(state_from_listinvoices(
            &json!({"invoices": [{"label": "a", "status": "paid"}]}),
            "a"
        )
        .is_err());
        assert!(state_from_listinvoices(
            &json!({"invoices": [{"label": "a", "status": "weird"}]}),
            "a"
        )
        .is_err());
    }

    #[test]
    fn error_codes_become_what_the_operator_must_do() {
        let dup = CallError::Rpc {
            code: 900,
            message: "Duplicate label".into(),
        };
        assert!(
            matches!(dup.into_backend("invoice"), BackendError::Rejected(m) if m.contains("label"))
        );
        let rune = CallError::Rpc {
            code: 1502,
            message: "Not authorized".into(),
        };
        assert!(matches!(
            rune.into_backend("invoice"),
            BackendError::Unauthorized(_)
        ));
    }
}
