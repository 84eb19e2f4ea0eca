//! Core Lightning's hold invoices, through the holdinvoice plugin (daywalker90/holdinvoice,
//! run by the node as `--important-plugin`). This module owns the plugin's four calls as
//! lnvend makes them, over either transport (the socket or clnrest):
//!
//! - `holdinvoice`: `invoice`'s params plus lnvend's `preimage` and a `cltv` (the plugin
//!   requires one); its reply is `invoice`'s, read by the same code;
//! - `holdinvoicelookup payment_hash` → `state` OPEN | ACCEPTED (with `htlc_expiry`) |
//!   SETTLED | CANCELED. The plugin sends no notification and `waitinvoice` fires only on
//!   settle, so a held payment is learned only by asking this;
//! - `holdinvoicesettle` / `holdinvoicecancel payment_hash`: a transition the plugin refuses
//!   (settle of a CANCELED hold) is `-32602 … wrong state`, read as `Rejected`; the look-up
//!   after it (see [`crate::backend::hold::resolve`]) says what happened.
//!
//! Whether the node can ([`ClnBackend::hold_support_now`]): lnvend asks the three payment-hash
//! methods of a hash no invoice can have (all zeros: no one knows its preimage). The plugin
//! answers "not found" (`-32602`): the method is there and the rune allows it. `-32601`: no
//! plugin. A refused rune (clnrest 401/403 or 1501/1502): not usable with this rune. These
//! probes are not noted as rune refusals, so a rune without the hold methods leaves the
//! machine selling as before (`hold = "auto"`).

use serde_json::{json, Value};

use super::{parse_invoice_reply, CallError, ClnBackend, Rpc};
use crate::backend::hold::{HoldState, HoldSupport, PaymentHash, Preimage};
use crate::backend::{BackendError, Invoice, InvoiceRequest};

/// The `cltv` lnvend asks of a hold invoice (blocks): about a day, far more than a pour
/// needs, and well above the plugin's `holdinvoice-cancel-before-htlc-expiry` margin.
pub const HOLD_CLTV: u32 = 144;

/// The methods a hold needs besides `holdinvoice` (which has no harmless probe).
const HOLD_PROBES: [&str; 3] = [
    "holdinvoicelookup",
    "holdinvoicesettle",
    "holdinvoicecancel",
];

/// JSON-RPC's "method not found".
const NO_SUCH_METHOD: i64 = -32601;

/// The holdstate of a `holdinvoicelookup` reply.
pub fn parse_lookup(reply: &Value) -> Result<HoldState, BackendError> {
    let state = reply
        .get("state")
        .and_then(Value::as_str)
        .ok_or_else(|| BackendError::BadReply("holdinvoicelookup: no `state`".into()))?;
    match state {
        "OPEN" => Ok(HoldState::Open),
        "ACCEPTED" => Ok(HoldState::Accepted {
            htlc_expiry: reply
                .get("htlc_expiry")
                .and_then(Value::as_u64)
                .and_then(|h| u32::try_from(h).ok()),
        }),
        "SETTLED" => Ok(HoldState::Settled),
        "CANCELED" => Ok(HoldState::Canceled),
        other => Err(BackendError::BadReply(format!(
            "holdinvoicelookup: unknown state {:?}",
            super::printable(other)
        ))),
    }
}

/// The params of `holdinvoice`: `invoice`'s, lnvend's preimage, and [`HOLD_CLTV`].
pub fn hold_params(
    request: &InvoiceRequest,
    preimage: &Preimage,
) -> Result<(Value, crate::money::Msat), BackendError> {
    let (mut params, amount) = super::invoice_params(request)?;
    params["preimage"] = json!(preimage.expose_hex());
    params["cltv"] = json!(HOLD_CLTV);
    Ok((params, amount))
}

/// The plugin answers some refusals as a *result* `{"code", "message"}` rather than a
/// JSON-RPC error (seen on `holdinvoice` with an expiry within its margin, plugin 4.0.0):
/// such a reply is the node's refusal, not a reply we cannot trust.
fn refusal_in(reply: &Value) -> Option<BackendError> {
    let code = reply.get("code").and_then(Value::as_i64)?;
    let message = reply.get("message").and_then(Value::as_str)?;
    if reply.get("bolt11").is_some() {
        return None;
    }
    Some(BackendError::Rejected(format!(
        "holdinvoice: error {code}: {}",
        super::printable(message)
    )))
}

impl<R: Rpc> ClnBackend<R> {
    /// Whether the node has the plugin and the rune allows its methods (see the header).
    pub(super) async fn hold_support_now(&self) -> Result<HoldSupport, BackendError> {
        let zero = json!({ "payment_hash": "00".repeat(32) });
        for method in HOLD_PROBES {
            match self.rpc.call(method, zero.clone()).await {
                // "not found" for the hash, as expected, or an answer at all.
                Ok(_) => {}
                Err(CallError::Rpc { code, .. }) if code == NO_SUCH_METHOD => {
                    return Ok(HoldSupport::No(format!(
                        "the node has no `{method}` (the holdinvoice plugin is not running)"
                    )))
                }
                Err(e) => match e.into_backend(method) {
                    BackendError::Rejected(_) => {}
                    BackendError::Unauthorized(_) => {
                        return Ok(HoldSupport::No(format!(
                            "the rune does not allow `{method}`"
                        )))
                    }
                    e @ (BackendError::Unreachable(_)
                    | BackendError::BadReply(_)
                    | BackendError::Config(_)) => return Err(e),
                },
            }
        }
        Ok(HoldSupport::Yes)
    }

    pub(super) async fn create_hold(
        &self,
        request: &InvoiceRequest,
        preimage: &Preimage,
    ) -> Result<Invoice, BackendError> {
        let (params, amount) = hold_params(request, preimage)?;
        let reply = self
            .call("holdinvoice", params)
            .await
            .and_then(|reply| match refusal_in(&reply) {
                Some(e) => Err(e),
                None => Ok(reply),
            })
            .map_err(|e| match e {
                BackendError::Rejected(m) if m.contains("expiry") => {
                    BackendError::Rejected(format!(
                        "{m} (lower the node's holdinvoice-cancel-before-invoice-expiry below \
                 lnvend's invoice expiry, see the operator's guide)"
                    ))
                }
                other => other,
            })?;
        parse_invoice_reply(&reply, request, amount)
    }

    pub(super) async fn lookup_hold(&self, hash: &PaymentHash) -> Result<HoldState, BackendError> {
        let reply = self
            .call(
                "holdinvoicelookup",
                json!({ "payment_hash": hash.to_hex() }),
            )
            .await?;
        parse_lookup(&reply)
    }

    pub(super) async fn finish_hold(
        &self,
        method: &'static str,
        hash: &PaymentHash,
    ) -> Result<(), BackendError> {
        self.call(method, json!({ "payment_hash": hash.to_hex() }))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::{Msat, Price};
    use std::time::Duration;

    #[test]
    fn a_refusal_the_plugin_sends_as_a_result_is_a_refusal() {
        let reply = json!({"code": -32602, "message": "expiry: needs to be greater than '1800' requested: '300'"});
        match refusal_in(&reply) {
            Some(BackendError::Rejected(m)) => assert!(m.contains("expiry: needs"), "{m}"),
            other => panic!("{other:?}"),
        }
        for fine in [
            json!({"bolt11": "lnbcrt1", "payment_hash": "00", "expires_at": 1}),
            json!({"code": "x", "message": "m"}),
            json!({"code": 1}),
        ] {
            assert!(refusal_in(&fine).is_none(), "{fine}");
        }
    }

    #[test]
    fn lookup_replies_become_hold_states_and_strange_ones_are_refused() {
        assert_eq!(
            parse_lookup(&json!({"state": "OPEN"})).unwrap(),
            HoldState::Open
        );
        assert_eq!(
            parse_lookup(&json!({"state": "ACCEPTED", "htlc_expiry": 250})).unwrap(),
            HoldState::Accepted {
                htlc_expiry: Some(250)
            }
        );
        assert_eq!(
            parse_lookup(&json!({"state": "SETTLED"})).unwrap(),
            HoldState::Settled
        );
        assert_eq!(
            parse_lookup(&json!({"state": "CANCELED"})).unwrap(),
            HoldState::Canceled
        );
        // "paid" is not a holdstate: a reply lnvend cannot trust, never a pour.
        for bad in [json!({"state": "paid"}), json!({}), json!({"state": 3})] {
            assert!(matches!(parse_lookup(&bad), Err(BackendError::BadReply(_))));
        }
    }

    #[test]
    fn holdinvoice_params_carry_the_preimage_and_a_cltv_over_the_plugins_margin() {
        let request = InvoiceRequest {
            sale_id: "S1".into(),
            machine_id: "bar-7".into(),
            product: "Cola".into(),
            price: Price::Sats(Msat::from_sat(2100).unwrap()),
            description: "Cola".into(),
            expiry: Duration::from_secs(300),
        };
        let pre = Preimage::random();
        let (p, amount) = hold_params(&request, &pre).unwrap();
        assert_eq!(p["preimage"], pre.expose_hex());
        assert!(p["cltv"].as_u64().unwrap() > 6);
        assert_eq!(p["label"], "lnvend/bar-7/S1");
        assert_eq!(p["expiry"], 300);
        assert_eq!(amount, Msat::from_sat(2100).unwrap());
    }
}
