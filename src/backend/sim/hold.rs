//! The simulated backend's hold invoices, modelled on Core Lightning's holdinvoice plugin: a
//! payment to a hold invoice is ACCEPTED (held), not paid; settle takes it (the invoice is then
//! paid, as `listinvoices` says), cancel returns it. Like the plugin, a payment still held
//! when its invoice runs out is settled by the backend itself, and an unpaid hold invoice that
//! runs out is CANCELED. A test drives it with [`SimBackend::pay`] (which holds) and
//! [`SimBackend::settle_by_itself`].

use bitcoin::hashes::{sha256, Hash};
use tokio::time::Instant;

use super::{BackendError, HoldState, Invoice, InvoiceId, InvoiceRequest, SimBackend, SimError};
use crate::backend::{PaymentHash, Preimage};

/// A stored state name back into a [`HoldState`].
pub(super) fn parse(name: &str) -> Option<HoldState> {
    match name {
        "open" => Some(HoldState::Open),
        "accepted" => Some(HoldState::Accepted { htlc_expiry: None }),
        "settled" => Some(HoldState::Settled),
        "canceled" => Some(HoldState::Canceled),
        _ => None,
    }
}

impl SimBackend {
    pub(super) fn create_hold(
        &self,
        request: &InvoiceRequest,
        preimage: &Preimage,
    ) -> Result<Invoice, BackendError> {
        let hash = sha256::Hash::from_byte_array(preimage.payment_hash().to_bytes());
        self.issue(request, hash, Some(HoldState::Open))
    }

    pub(super) fn hold_state_of(&self, hash: &PaymentHash) -> Result<HoldState, BackendError> {
        let mut inner = self.lock();
        let now = Instant::now();
        let id = InvoiceId(hash.to_hex());
        let inv = inner
            .invoices
            .get_mut(&id)
            .ok_or_else(|| BackendError::Rejected(format!("no hold invoice {hash}")))?;
        let state = match inv.hold {
            None => {
                return Err(BackendError::Rejected(format!(
                    "{hash} is not a hold invoice"
                )))
            }
            // As the plugin does near the expiry: a held payment is taken, an unpaid invoice
            // refused.
            Some(HoldState::Accepted { .. }) if now >= inv.expires => {
                inv.paid = true;
                HoldState::Settled
            }
            Some(HoldState::Open) if now >= inv.expires || inv.expired_early => HoldState::Canceled,
            Some(s) => s,
        };
        let changed = inv.hold != Some(state);
        inv.hold = Some(state);
        if changed {
            self.persist(&inner);
        }
        Ok(state)
    }

    /// Settles (`Some(preimage)`) or cancels (`None`), refusing as the plugin does a
    /// transition from a final state to the other one, or a settle of an unpaid invoice.
    pub(super) fn finish_hold(
        &self,
        hash: &PaymentHash,
        settle: Option<&Preimage>,
    ) -> Result<(), BackendError> {
        let state = self.hold_state_of(hash)?;
        let mut inner = self.lock();
        let id = InvoiceId(hash.to_hex());
        let Some(inv) = inner.invoices.get_mut(&id) else {
            return Err(BackendError::Rejected(format!("no hold invoice {hash}")));
        };
        inner_finish(inv, state, settle, hash)?;
        inner.hold_calls += 1;
        self.persist(&inner);
        Ok(())
    }

    /// The backend settles a held payment by itself (the plugin near an HTLC's expiry).
    pub fn settle_by_itself(&self, id: &InvoiceId) -> Result<(), SimError> {
        let mut inner = self.lock();
        let inv = inner.invoices.get_mut(id).ok_or(SimError::NotPending)?;
        match inv.hold {
            Some(HoldState::Accepted { .. }) => {
                inv.hold = Some(HoldState::Settled);
                inv.paid = true;
                self.persist(&inner);
                Ok(())
            }
            Some(HoldState::Open | HoldState::Settled | HoldState::Canceled) | None => {
                Err(SimError::NotPending)
            }
        }
    }

    /// A hold invoice's state as the simulated node keeps it, without any of its own moves.
    pub fn hold_of(&self, id: &InvoiceId) -> Option<HoldState> {
        self.lock().invoices.get(id).and_then(|i| i.hold)
    }

    /// How many settles and cancels the simulated node carried out.
    pub fn hold_calls(&self) -> u64 {
        self.lock().hold_calls
    }
}

fn inner_finish(
    inv: &mut super::SimInvoice,
    state: HoldState,
    settle: Option<&Preimage>,
    hash: &PaymentHash,
) -> Result<(), BackendError> {
    let wrong = |s: HoldState| {
        BackendError::Rejected(format!(
            "the hold invoice is in the wrong state: {}",
            s.name()
        ))
    };
    match (state, settle) {
        (HoldState::Accepted { .. } | HoldState::Settled, Some(preimage)) => {
            if preimage.payment_hash() != *hash {
                return Err(BackendError::Rejected("the preimage does not match".into()));
            }
            inv.hold = Some(HoldState::Settled);
            inv.paid = true;
            Ok(())
        }
        (s @ (HoldState::Open | HoldState::Canceled), Some(_)) => Err(wrong(s)),
        (HoldState::Open | HoldState::Accepted { .. } | HoldState::Canceled, None) => {
            inv.hold = Some(HoldState::Canceled);
            Ok(())
        }
        (s @ HoldState::Settled, None) => Err(wrong(s)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backend::hold::{resolve, Outcome, Resolution};
    use crate::backend::{InvoiceState, PaymentBackend};
    use crate::money::{Msat, Price};

    fn request() -> InvoiceRequest {
        InvoiceRequest {
            sale_id: "s1".into(),
            machine_id: "bar-7".into(),
            product: "Cola".into(),
            price: Price::Sats(Msat::from_sat(2100).unwrap()),
            description: "Cola".into(),
            expiry: Duration::from_secs(300),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_payment_is_accepted_not_paid_until_settled() {
        let sim = SimBackend::new();
        let pre = Preimage::random();
        let inv = sim.create_hold_invoice(&request(), &pre).await.unwrap();
        inv.check_hold(
            &request(),
            &pre,
            crate::config::Network::Regtest,
            std::time::SystemTime::now(),
        )
        .unwrap();
        let hash = pre.payment_hash();
        assert_eq!(sim.hold_state(&hash).await.unwrap(), HoldState::Open);
        sim.pay(&inv.id).unwrap();
        assert!(matches!(
            sim.hold_state(&hash).await.unwrap(),
            HoldState::Accepted { .. }
        ));
        assert_eq!(
            sim.invoice_state(&inv.id).await.unwrap(),
            InvoiceState::Pending,
            "a held payment is not taken"
        );
        assert_eq!(
            resolve(&sim, &hash, &pre, Resolution::Settle).await,
            Ok(Outcome::Settled)
        );
        assert!(matches!(
            sim.invoice_state(&inv.id).await.unwrap(),
            InvoiceState::Paid { .. }
        ));
        // Asked again (a retry after a lost answer): still settled, nothing more done.
        assert_eq!(
            resolve(&sim, &hash, &pre, Resolution::Settle).await,
            Ok(Outcome::Settled)
        );
        assert_eq!(sim.hold_calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_hold_is_returned_and_cannot_be_settled_after() {
        let sim = SimBackend::new();
        let pre = Preimage::random();
        let inv = sim.create_hold_invoice(&request(), &pre).await.unwrap();
        let hash = pre.payment_hash();
        sim.pay(&inv.id).unwrap();
        assert_eq!(
            resolve(&sim, &hash, &pre, Resolution::Cancel).await,
            Ok(Outcome::Canceled)
        );
        assert_eq!(
            resolve(&sim, &hash, &pre, Resolution::Settle).await,
            Ok(Outcome::Canceled),
            "the backend's word decides: returned"
        );
        assert_ne!(
            sim.invoice_state(&inv.id).await.unwrap(),
            InvoiceState::Paid {
                received: inv.amount
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_settled_by_the_backend_itself_is_a_paid_sale_even_when_lnvend_cancels() {
        let sim = SimBackend::new();
        let pre = Preimage::random();
        let inv = sim.create_hold_invoice(&request(), &pre).await.unwrap();
        sim.pay(&inv.id).unwrap();
        // Left held past the expiry: the backend takes it, as the plugin does.
        tokio::time::advance(Duration::from_secs(301)).await;
        assert_eq!(
            resolve(&sim, &pre.payment_hash(), &pre, Resolution::Cancel).await,
            Ok(Outcome::Settled)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unpaid_hold_is_not_settled_and_a_down_backend_is_an_error_to_retry() {
        let sim = SimBackend::new();
        let pre = Preimage::random();
        sim.create_hold_invoice(&request(), &pre).await.unwrap();
        let hash = pre.payment_hash();
        assert_eq!(
            resolve(&sim, &hash, &pre, Resolution::Settle).await,
            Ok(Outcome::NotPaid)
        );
        sim.set_down(true);
        assert!(matches!(
            resolve(&sim, &hash, &pre, Resolution::Cancel).await,
            Err(BackendError::Unreachable(_))
        ));
        sim.set_down(false);
        assert_eq!(
            resolve(&sim, &hash, &pre, Resolution::Cancel).await,
            Ok(Outcome::Canceled)
        );
        // A settle with the wrong preimage is refused by the backend.
        let other = Preimage::random();
        let inv2 = sim.create_hold_invoice(&request(), &other).await.unwrap();
        sim.pay(&inv2.id).unwrap();
        assert!(sim
            .settle_hold(&other.payment_hash(), &Preimage::random())
            .await
            .is_err());
    }
}
