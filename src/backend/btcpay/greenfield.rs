//! Greenfield's wire format, read defensively: the invoice and payment-method replies, the
//! status words, BTC amounts as exact decimal strings, and the refund request. Pure code
//! (no IO), so every refusal of a hostile or broken reply is tested here; the client that
//! makes the calls is [`super`].

use serde::Deserialize;
use serde_json::json;

use crate::backend::{BackendError, InvoiceId, InvoiceState, RefundAmount};
use crate::money::Msat;

/// Greenfield's Lightning payment method id (v2); older servers call it `BTC-LightningNetwork`.
pub(super) const LN_METHODS: [&str; 2] = ["BTC-LN", "BTC-LightningNetwork"];

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(super) struct InvoiceData {
    pub(super) id: String,
    pub(super) status: String,
    /// Why the invoice has its status ("PaidLate", "PaidPartial", "PaidOver", …).
    #[serde(default)]
    pub(super) additional_status: Option<String>,
    #[serde(default)]
    pub(super) expiration_time: Option<f64>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(super) struct PaymentMethod {
    pub(super) payment_method_id: String,
    #[serde(default)]
    pub(super) destination: Option<String>,
    /// The invoice amount in this method's currency (BTC), as a decimal string.
    #[serde(default)]
    pub(super) amount: Option<String>,
    /// What was paid through this method (BTC), as a decimal string.
    #[serde(default)]
    pub(super) payment_method_paid: Option<String>,
    /// BTCPay 2.x: the Lightning prompt's details (`paymentHash`, `preimage`, …).
    #[serde(default)]
    pub(super) additional_data: Option<serde_json::Value>,
}

/// The Lightning payment method of an invoice, checked.
pub(super) struct LnMethod {
    pub(super) bolt11: String,
    /// The BOLT11's amount.
    pub(super) amount: Msat,
    /// What was paid through it, if BTCPay says.
    pub(super) paid: Option<Msat>,
}

/// Greenfield's status and additional status, as far as a pour is concerned.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Reported {
    Pending,
    Settled,
    /// Expired, but a payment arrived after the expiry (perhaps only part of it).
    PaidLate,
    Expired,
    Invalid,
}

pub(super) fn reported(status: &str, additional: Option<&str>) -> Result<Reported, BackendError> {
    Ok(match (status, additional) {
        ("New" | "Processing", _) => Reported::Pending,
        ("Settled", _) => Reported::Settled,
        ("Expired", Some("PaidLate")) => Reported::PaidLate,
        ("Expired", _) => Reported::Expired,
        ("Invalid", _) => Reported::Invalid,
        (other, _) => {
            return Err(BackendError::BadReply(format!(
                "unknown invoice status {other:?}"
            )))
        }
    })
}

/// A late payment of `paid` for an invoice of `asked`: paid only in full.
pub(super) fn late_payment(invoice: &str, paid: Msat, asked: Msat) -> InvoiceState {
    if paid >= asked {
        InvoiceState::Paid { received: paid }
    } else {
        tracing::error!(
            %invoice, %paid, %asked,
            "BTCPay invoice paid late and only in part; not a payment"
        );
        InvoiceState::Expired
    }
}

#[derive(Deserialize, Debug)]
pub(super) struct FieldError {
    #[serde(default)]
    pub(super) path: String,
    #[serde(default)]
    pub(super) message: String,
}

/// The Lightning payment method among an invoice's `methods`: its BOLT11 (checked against
/// what BTCPay says of it: the amount, and the payment hash BTCPay will credit), the
/// BOLT11's amount, and what was paid through it.
pub(super) fn lightning_method(methods: &[PaymentMethod]) -> Result<LnMethod, BackendError> {
    let ln = methods
        .iter()
        .find(|m| LN_METHODS.contains(&m.payment_method_id.as_str()))
        .ok_or_else(|| {
            BackendError::Rejected("the BTCPay invoice has no Lightning payment method; is Lightning enabled for the store?".into())
        })?;
    let bolt11 = ln
        .destination
        .clone()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            BackendError::BadReply("BTC-LN payment method without a destination".into())
        })?;
    let parsed = crate::bolt11::decode(bolt11.trim()).map_err(|e| {
        BackendError::BadReply(format!("BTC-LN destination is not a BOLT11 invoice: {e}"))
    })?;
    let msat = parsed
        .amount_msat
        .ok_or_else(|| BackendError::BadReply("the BOLT11 invoice has no amount".into()))?;
    if let Some(btc) = &ln.amount {
        let stated = btc_to_msat(btc).ok_or_else(|| {
            BackendError::BadReply(format!("BTC-LN amount {btc:?} is not a BTC amount"))
        })?;
        if stated != msat {
            return Err(BackendError::BadReply(format!(
                "the BOLT11 asks for {msat} msat but BTCPay says the invoice is {stated} msat"
            )));
        }
    }
    // BTCPay credits the invoice whose hash it recorded; a BOLT11 for any other hash
    // would take the customer's money without ever settling this invoice.
    let recorded = ln.additional_data.as_ref().map(|d| &d["paymentHash"]);
    match recorded {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::String(hash)) => {
            let ours = &parsed.payment_hash;
            if !hash.eq_ignore_ascii_case(ours) {
                return Err(BackendError::BadReply(format!(
                    "the BOLT11's payment hash {ours} is not the one BTCPay recorded ({hash})"
                )));
            }
        }
        Some(_) => {
            return Err(BackendError::BadReply(
                "BTC-LN additionalData.paymentHash is not a string".into(),
            ))
        }
    }
    let paid = match &ln.payment_method_paid {
        None => None,
        Some(btc) => Some(Msat::from_msat(btc_to_msat(btc).ok_or_else(|| {
            BackendError::BadReply(format!(
                "BTC-LN paymentMethodPaid {btc:?} is not a BTC amount"
            ))
        })?)),
    };
    Ok(LnMethod {
        bolt11: bolt11.trim().to_string(),
        amount: Msat::from_msat(msat),
        paid,
    })
}

/// Percent-encodes a path segment (ids are alphanumeric in practice; this keeps a hostile
/// reply from steering a request elsewhere).
pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// "0.00002100" BTC → 2_100_000 msat, exactly (no floating point).
pub(super) fn btc_to_msat(btc: &str) -> Option<u64> {
    let (whole, frac) = btc.trim().split_once('.').unwrap_or((btc.trim(), ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    if frac.len() > 11 {
        // Below a millisatoshi: only zeros are acceptable.
        if !frac[11..].bytes().all(|b| b == b'0') {
            return None;
        }
    }
    let frac11: String = format!("{:0<11}", &frac[..frac.len().min(11)]);
    let whole: u64 = whole.parse().ok()?;
    let frac: u64 = frac11.parse().ok()?;
    whole.checked_mul(100_000_000_000)?.checked_add(frac)
}

/// The Greenfield refund request for `amount` of invoice `id`, claimable over Lightning.
///
/// * The whole payment: `RateThen`, what the invoice was paid in BTC at the rate of that
///   moment (a fiat-priced drink is given back the sats it cost, whatever the rate since).
/// * A share: `Custom` in `BTC`, the invoice's own currency, with the exact sats the
///   ledger computed (rounded up to a whole sat in the customer's favour). Not `RateThen`
///   with `subtractPercentage`: that leaves the rounding of a percentage of the paid
///   amount to the server, which may round the customer's share down.
pub(super) fn refund_request(
    id: &InvoiceId,
    machine_id: &str,
    amount: RefundAmount,
) -> serde_json::Value {
    let mut body = json!({
        "name": format!("Refund {}", id.0),
        "description": format!("Refund from vending machine {machine_id}"),
        "refundVariant": "RateThen",
        "payoutMethods": ["BTC-LN"],
    });
    match amount {
        RefundAmount::Whole => {}
        RefundAmount::Part(share) => {
            let msat = share.as_msat();
            // Whole sats already; a stray msat is rounded up, never down.
            let sats = msat.div_ceil(1000);
            body["refundVariant"] = json!("Custom");
            body["customAmount"] =
                json!(format!("{}.{:08}", sats / 100_000_000, sats % 100_000_000));
            body["customCurrency"] = json!("BTC");
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_refund_asks_for_exactly_its_sats_and_a_whole_one_for_what_was_paid() {
        let id = InvoiceId("INV1".into());
        let whole = refund_request(&id, "m1", RefundAmount::Whole);
        assert_eq!(whole["refundVariant"], "RateThen");
        assert!(whole.get("customAmount").is_none());
        assert_eq!(whole["payoutMethods"], json!(["BTC-LN"]));
        let part = refund_request(&id, "m1", RefundAmount::Part(Msat::from_msat(1_260_000)));
        assert_eq!(part["refundVariant"], "Custom");
        assert_eq!(part["customAmount"], "0.00001260");
        assert_eq!(part["customCurrency"], "BTC");
        assert!(part.get("subtractPercentage").is_none());
        let odd = refund_request(&id, "m1", RefundAmount::Part(Msat::from_msat(1_500)));
        assert_eq!(odd["customAmount"], "0.00000002", "rounded up");
        let big = refund_request(
            &id,
            "m1",
            RefundAmount::Part(Msat::from_sat(150_000_000).unwrap()),
        );
        assert_eq!(big["customAmount"], "1.50000000");
    }

    #[test]
    fn btc_amounts_convert_exactly() {
        assert_eq!(btc_to_msat("0.00002100"), Some(2_100_000));
        assert_eq!(btc_to_msat("1"), Some(100_000_000_000));
        assert_eq!(btc_to_msat("0.00000000001"), Some(1));
        assert_eq!(btc_to_msat("0.000000000010"), Some(1));
        assert_eq!(btc_to_msat("0.000000000001"), None, "below a msat");
        assert_eq!(btc_to_msat("-1"), None);
        assert_eq!(btc_to_msat("1e-5"), None);
        assert_eq!(btc_to_msat(""), None);
    }

    #[test]
    fn a_late_payment_counts_only_in_full() {
        assert_eq!(
            reported("Expired", Some("PaidLate")).unwrap(),
            Reported::PaidLate
        );
        assert_eq!(
            reported("Expired", Some("None")).unwrap(),
            Reported::Expired
        );
        assert_eq!(
            reported("Expired", Some("PaidPartial")).unwrap(),
            Reported::Expired
        );
        assert_eq!(reported("Expired", None).unwrap(), Reported::Expired);
        assert_eq!(
            reported("Settled", Some("PaidOver")).unwrap(),
            Reported::Settled
        );
        assert_eq!(reported("Settled", None).unwrap(), Reported::Settled);
        assert_eq!(reported("Processing", None).unwrap(), Reported::Pending);
        assert_eq!(
            reported("Invalid", Some("PaidLate")).unwrap(),
            Reported::Invalid
        );
        assert!(reported("Paid", None).is_err());
        let asked = Msat::from_msat(2_100_000);
        assert_eq!(
            late_payment("i", Msat::from_msat(2_100_000), asked),
            InvoiceState::Paid { received: asked }
        );
        assert_eq!(
            late_payment("i", Msat::from_msat(2_200_000), asked),
            InvoiceState::Paid {
                received: Msat::from_msat(2_200_000)
            }
        );
        assert_eq!(
            late_payment("i", Msat::from_msat(2_099_999), asked),
            InvoiceState::Expired
        );
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(urlencode("AbC-12_x"), "AbC-12_x");
        assert_eq!(urlencode("../x?y"), "..%2Fx%3Fy");
    }
}
