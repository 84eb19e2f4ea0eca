//! Checking a BOLT11 invoice before it is shown: whatever a backend says, the string the
//! customer's wallet will pay must be a validly signed invoice for exactly the amount we
//! asked, with the payment hash the backend reported, and not already expired.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lightning_invoice::{Bolt11Invoice, Currency};

use crate::backend::{Invoice, InvoiceRequest};
use crate::config::Network;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Bolt11Error {
    #[error("the invoice does not parse as BOLT11: {0}")]
    Parse(String),
    #[error("the invoice is for {got}, this machine sells on {want:?}")]
    Network { got: String, want: Network },
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
    network: Network,
    now: SystemTime,
) -> Result<(), Bolt11Error> {
    let parsed = Bolt11Invoice::from_str(invoice.bolt11.trim())
        .map_err(|e| Bolt11Error::Parse(e.to_string()))?;
    parsed
        .check_signature()
        .map_err(|_| Bolt11Error::Signature)?;
    let want_net = match network {
        Network::Bitcoin => Currency::Bitcoin,
        Network::Testnet => Currency::BitcoinTestnet,
        Network::Signet => Currency::Signet,
        Network::Regtest => Currency::Regtest,
    };
    if parsed.currency() != want_net {
        return Err(Bolt11Error::Network {
            got: format!("{:?}", parsed.currency()),
            want: network,
        });
    }
    // A sats price must be met exactly; a fiat price was converted by the backend, so the
    // BOLT11 must at least ask for what the backend says it asks for.
    let want = request.price.msat().unwrap_or(invoice.amount).as_msat();
    let got = parsed.amount_milli_satoshis();
    if got != Some(want) || invoice.amount.as_msat() != want || want == 0 {
        return Err(Bolt11Error::Amount { got, want });
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
    use crate::money::{Msat, Price};

    fn req(sat: u64) -> InvoiceRequest {
        InvoiceRequest {
            sale_id: "s".into(),
            price: Price::Sats(Msat::from_sat(sat).unwrap()),
            description: "Cola".into(),
            expiry: Duration::from_secs(600),
        }
    }

    #[tokio::test]
    async fn a_matching_invoice_passes_and_a_wrong_amount_is_refused() {
        let sim = SimBackend::new();
        let inv = sim.create_invoice(&req(2100)).await.unwrap();
        assert_eq!(
            check(&inv, &req(2100), Network::Regtest, SystemTime::now()),
            Ok(())
        );
        assert!(matches!(
            check(&inv, &req(21), Network::Regtest, SystemTime::now()),
            Err(Bolt11Error::Amount { .. })
        ));
    }

    #[tokio::test]
    async fn an_invoice_for_another_network_is_refused() {
        let sim = SimBackend::new();
        let inv = sim.create_invoice(&req(2100)).await.unwrap();
        assert!(matches!(
            check(&inv, &req(2100), Network::Bitcoin, SystemTime::now()),
            Err(Bolt11Error::Network { .. })
        ));
    }

    #[tokio::test]
    async fn an_expired_or_tampered_invoice_is_refused() {
        let sim = SimBackend::new();
        let inv = sim.create_invoice(&req(2100)).await.unwrap();
        let late = SystemTime::now() + Duration::from_secs(590);
        assert!(matches!(
            check(&inv, &req(2100), Network::Regtest, late),
            Err(Bolt11Error::ExpiresTooSoon(_))
        ));
        let mut other = inv.clone();
        other.payment_hash = "00".repeat(32);
        assert_eq!(
            check(&other, &req(2100), Network::Regtest, SystemTime::now()),
            Err(Bolt11Error::PaymentHash)
        );
        let mut garbled = inv.clone();
        garbled.bolt11.replace_range(20..21, "q");
        assert!(check(&garbled, &req(2100), Network::Regtest, SystemTime::now()).is_err());
        let mut wrong_expiry = inv;
        wrong_expiry.expires_at_unix += 600;
        assert!(matches!(
            check(
                &wrong_expiry,
                &req(2100),
                Network::Regtest,
                SystemTime::now()
            ),
            Err(Bolt11Error::ExpiryMismatch(_))
        ));
    }
}
