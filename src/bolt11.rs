//! Checking a BOLT11 invoice before it is shown: whatever a backend says, the string the
//! customer's wallet will pay must be a validly signed invoice for exactly the amount we
//! asked, with the payment hash the backend reported, and not already expired.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lightning_invoice::Bolt11Invoice;

use crate::backend::{Invoice, InvoiceRequest};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Bolt11Error {
    #[error("the invoice does not parse as BOLT11: {0}")]
    Parse(String),
    #[error("the invoice signature does not verify")]
    Signature,
    #[error("the invoice asks for {got:?} msat, we asked for {want} msat")]
    Amount { got: Option<u64>, want: u64 },
    #[error("the invoice's payment hash is not the one the backend reported")]
    PaymentHash,
    #[error("the invoice expires in {0:?}, too soon to pay")]
    ExpiresTooSoon(Duration),
    #[error("the invoice expiry disagrees with the backend's by {0} s")]
    ExpiryMismatch(u64),
}

/// The least time a customer must have to pay.
pub const MIN_TIME_TO_PAY: Duration = Duration::from_secs(30);

pub fn check(
    invoice: &Invoice,
    request: &InvoiceRequest,
    now: SystemTime,
) -> Result<(), Bolt11Error> {
    let parsed = Bolt11Invoice::from_str(invoice.bolt11.trim())
        .map_err(|e| Bolt11Error::Parse(e.to_string()))?;
    parsed
        .check_signature()
        .map_err(|_| Bolt11Error::Signature)?;
    let want = request.amount.as_msat();
    if parsed.amount_milli_satoshis() != Some(want) || invoice.amount.as_msat() != want {
        return Err(Bolt11Error::Amount {
            got: parsed.amount_milli_satoshis(),
            want,
        });
    }
    if !parsed
        .payment_hash()
        .to_string()
        .eq_ignore_ascii_case(&invoice.payment_hash)
    {
        return Err(Bolt11Error::PaymentHash);
    }
    let expires = parsed.expires_at().unwrap_or(Duration::MAX).as_secs();
    let now_s = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let left = Duration::from_secs(expires.saturating_sub(now_s));
    if left < MIN_TIME_TO_PAY {
        return Err(Bolt11Error::ExpiresTooSoon(left));
    }
    let diff = expires.abs_diff(invoice.expires_at_unix);
    if diff > 5 {
        return Err(Bolt11Error::ExpiryMismatch(diff));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::sim::SimBackend;
    use crate::backend::PaymentBackend;
    use crate::money::Msat;

    fn req(sat: u64) -> InvoiceRequest {
        InvoiceRequest {
            sale_id: "s".into(),
            amount: Msat::from_sat(sat).unwrap(),
            description: "Cola".into(),
            expiry: Duration::from_secs(600),
        }
    }

    #[tokio::test]
    async fn a_matching_invoice_passes_and_a_wrong_amount_is_refused() {
        let sim = SimBackend::new();
        let inv = sim.create_invoice(&req(2100)).await.unwrap();
        assert_eq!(check(&inv, &req(2100), SystemTime::now()), Ok(()));
        assert!(matches!(
            check(&inv, &req(21), SystemTime::now()),
            Err(Bolt11Error::Amount { .. })
        ));
    }

    #[tokio::test]
    async fn an_expired_or_tampered_invoice_is_refused() {
        let sim = SimBackend::new();
        let inv = sim.create_invoice(&req(2100)).await.unwrap();
        let late = SystemTime::now() + Duration::from_secs(590);
        assert!(matches!(
            check(&inv, &req(2100), late),
            Err(Bolt11Error::ExpiresTooSoon(_))
        ));
        let mut other = inv.clone();
        other.payment_hash = "00".repeat(32);
        assert_eq!(
            check(&other, &req(2100), SystemTime::now()),
            Err(Bolt11Error::PaymentHash)
        );
        let mut garbled = inv.clone();
        garbled.bolt11.replace_range(20..21, "q");
        assert!(check(&garbled, &req(2100), SystemTime::now()).is_err());
        let mut wrong_expiry = inv;
        wrong_expiry.expires_at_unix += 600;
        assert!(matches!(
            check(&wrong_expiry, &req(2100), SystemTime::now()),
            Err(Bolt11Error::ExpiryMismatch(_))
        ));
    }
}
