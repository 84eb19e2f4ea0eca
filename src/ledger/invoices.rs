//! The ledger's view of invoices: the ones that may still be paid (watched again at start,
//! checked by the sweep), and a sale's invoice looked up by either id. Every query here is a
//! range of an index as long as its window, or one row by key: none grows with the ledger's
//! age (`open_invoices`, which does, exists for the tests only).

use rusqlite::{params, OptionalExtension};

use super::{unix_to_us, Ledger, LedgerError};
use crate::backend::{Invoice, InvoiceId};
use crate::vend::SaleId;

/// An invoice that may still be paid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenInvoice {
    pub sale_id: SaleId,
    pub invoice: Invoice,
}

/// The unsettled (never paid) invoices created at or after `?1` (µs), oldest first: a
/// range of `sales_by_state`, as long as the window, however old the ledger.
pub(super) const UNSETTLED_SINCE: &str = concat!(
    "FROM sales WHERE ",
    unpaid_sql!(),
    " AND created_us >= ?1 ORDER BY created_us"
);

/// Reads an `OpenInvoice` from `id, invoice_id, bolt11, payment_hash, price_msat, expires_at`.
fn open_invoice_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OpenInvoice> {
    Ok(OpenInvoice {
        sale_id: SaleId(r.get(0)?),
        invoice: Invoice {
            id: InvoiceId(r.get(1)?),
            bolt11: r.get(2)?,
            payment_hash: r.get(3)?,
            amount: crate::money::Msat::from_msat(r.get::<_, i64>(4)? as u64),
            expires_at_unix: r.get::<_, i64>(5)? as u64,
        },
    })
}

impl Ledger {
    /// Invoices not paid, poured or owed that have not expired by `now_unix`. Tests only: it
    /// reads every unsettled sale the ledger ever had (the controller asks
    /// [`Ledger::unsettled_since`], a window).
    #[cfg(test)]
    pub fn open_invoices(&self, now_unix: u64) -> Result<Vec<OpenInvoice>, LedgerError> {
        let mut st = self.conn.prepare(
            "SELECT id, invoice_id, bolt11, payment_hash, price_msat, expires_at FROM sales
             WHERE state IN (?2, ?3, ?4) AND expires_at > ?1",
        )?;
        let rows = st.query_map(
            params![
                now_unix as i64,
                super::SaleState::Created,
                super::SaleState::Cancelled,
                super::SaleState::Expired
            ],
            open_invoice_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Invoices never seen paid, created since `since_unix`, expired or not: at start each is
    /// checked once, so a payment made while lnvend was down is not lost.
    pub fn unsettled_since(&self, since_unix: u64) -> Result<Vec<OpenInvoice>, LedgerError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT id, invoice_id, bolt11, payment_hash, price_msat, expires_at {UNSETTLED_SINCE}"
        ))?;
        let rows = st.query_map(params![unix_to_us(since_unix)], open_invoice_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The ids of the same invoices, oldest first (the periodic sweep needs no more).
    pub fn unsettled_ids_since(&self, since_unix: u64) -> Result<Vec<InvoiceId>, LedgerError> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT invoice_id {UNSETTLED_SINCE}"))?;
        let rows = st.query_map(params![unix_to_us(since_unix)], |r| r.get(0).map(InvoiceId))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A sale's invoice as recorded (for confirming a payment reported out of band).
    pub fn invoice_by_id(
        &self,
        invoice_id: &InvoiceId,
    ) -> Result<Option<OpenInvoice>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, invoice_id, bolt11, payment_hash, price_msat, expires_at FROM sales
                 WHERE invoice_id = ?1",
                params![invoice_id.0],
                open_invoice_row,
            )
            .optional()?)
    }

    /// The invoice id of a sale.
    pub fn invoice_of(&self, sale_id: &SaleId) -> Result<Option<InvoiceId>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT invoice_id FROM sales WHERE id = ?1",
                params![sale_id.0],
                |r| r.get(0).map(InvoiceId),
            )
            .optional()?)
    }
}
