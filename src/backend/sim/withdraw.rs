//! The simulator's withdrawal of an invoice the customer left, as Core Lightning's
//! `delinvoice status=unpaid` behaves (or, switched off, as a backend that cannot), and
//! what a test needs to see of it. Apart from `sim.rs` to keep that file one room.

use super::{BackendError, CancelOutcome, InvoiceId, SimBackend};

impl SimBackend {
    /// Withdraws invoices when lnvend asks (the default, as Core Lightning's `delinvoice`),
    /// or not (as BTCPay, LNbits or a wallet over NWC: the invoice stays payable).
    pub fn set_cancels(&self, on: bool) {
        self.lock().keeps_cancelled = !on;
    }

    /// How many invoices lnvend withdrew.
    pub fn invoices_withdrawn(&self) -> u64 {
        self.lock().withdrawn
    }

    /// How many times lnvend asked to withdraw an invoice (a hold invoice must never be).
    pub fn withdraw_asks(&self) -> u64 {
        self.lock().withdraw_asks
    }

    /// Withdraws an unpaid plain invoice: unpayable from now on (reported `Invalid`).
    pub(super) fn withdraw(&self, id: &InvoiceId) -> Result<CancelOutcome, BackendError> {
        let mut inner = self.lock();
        inner.withdraw_asks += 1;
        if inner.keeps_cancelled {
            return Ok(CancelOutcome::Unsupported(
                "the simulated backend's invoice withdrawal is switched off".into(),
            ));
        }
        let Some(inv) = inner.invoices.get_mut(id) else {
            return Ok(CancelOutcome::Cancelled);
        };
        if inv.paid || inv.hold.is_some() {
            return Err(BackendError::Rejected(
                "the invoice is no longer unpaid (simulated)".into(),
            ));
        }
        if !inv.withdrawn {
            inv.withdrawn = true;
            inner.withdrawn += 1;
            self.persist(&inner);
        }
        Ok(CancelOutcome::Cancelled)
    }
}
