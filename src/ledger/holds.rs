//! Sales paid with a hold invoice (schema version 6): the preimage lnvend made, recorded with
//! the sale before its QR is shown, and whether lnvend has seen the held payment resolved.
//!
//! What a held payment ends as is decided from the sale's own state, so the same rule serves
//! a running machine and a start after a crash ([`HeldSale::resolution`]): poured or owed
//! (some or all of the drink is the customer's) → settle; never poured (the customer left,
//! or nothing came out and the sale is `returned`) → cancel. The backend's answer then wins
//! ([`Ledger::record_hold_outcome`]): a hold the backend settled by itself is a paid sale
//! (owed, if it was not poured), one it cancelled owes nothing.

use rusqlite::{params, OptionalExtension};

use super::{now_us, Ledger, LedgerError, SaleState};
use crate::backend::hold::{Outcome, Resolution};
use crate::backend::{InvoiceId, PaymentHash, Preimage};
use crate::vend::SaleId;

/// A sale sold with a hold invoice whose payment lnvend has not seen resolved.
#[derive(Clone, Debug)]
pub struct HeldSale {
    pub sale_id: SaleId,
    pub invoice_id: InvoiceId,
    pub payment_hash: PaymentHash,
    pub preimage: Preimage,
    pub state: SaleState,
    /// When the held payment was recorded (the pour's start), microseconds.
    pub accepted_us: Option<i64>,
}

impl HeldSale {
    /// Settle or cancel, from the sale's state alone (see the module header).
    pub fn resolution(&self) -> Resolution {
        match self.state {
            SaleState::Poured
            | SaleState::Owed
            | SaleState::Pouring
            | SaleState::Settled
            | SaleState::Refunded => Resolution::Settle,
            SaleState::Created
            | SaleState::Cancelled
            | SaleState::Expired
            | SaleState::Returned => Resolution::Cancel,
        }
    }
}

const HELD_COLUMNS: &str =
    "h.sale_id, s.invoice_id, h.payment_hash, h.preimage, s.state, h.accepted_us";

fn held_row(r: &rusqlite::Row) -> rusqlite::Result<HeldSale> {
    let bad = |i: usize, what: &'static str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            Box::new(crate::backend::hold::BadHex::named(what)),
        )
    };
    let hash: String = r.get(2)?;
    let preimage: String = r.get(3)?;
    Ok(HeldSale {
        sale_id: SaleId(r.get(0)?),
        invoice_id: InvoiceId(r.get(1)?),
        payment_hash: PaymentHash::from_hex(&hash).map_err(|_| bad(2, "payment hash"))?,
        preimage: Preimage::from_hex(&preimage).map_err(|_| bad(3, "preimage"))?,
        state: r.get(4)?,
        accepted_us: r.get(5)?,
    })
}

impl Ledger {
    /// Records a hold invoice's preimage with its sale (the sale row is written by the
    /// caller in the same transaction, see [`Ledger::record_created_held`]).
    pub(super) fn insert_hold(
        tx: &rusqlite::Transaction,
        sale_id: &SaleId,
        preimage: &Preimage,
    ) -> Result<(), LedgerError> {
        tx.execute(
            "INSERT INTO holds (sale_id, payment_hash, preimage, state, created_us)
             VALUES (?1, ?2, ?3, 'held', ?4)",
            params![
                sale_id.0,
                preimage.payment_hash().to_hex(),
                preimage.expose_hex(),
                now_us()
            ],
        )?;
        Ok(())
    }

    /// Held payments not yet seen resolved, oldest first: a handful at most (index
    /// `holds_unresolved`), resolved at start before anything is sold.
    pub fn unresolved_holds(&self) -> Result<Vec<HeldSale>, LedgerError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {HELD_COLUMNS} FROM holds h JOIN sales s ON s.id = h.sale_id
             WHERE h.state = 'held' ORDER BY h.created_us"
        ))?;
        let rows = st.query_map([], held_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The hold of a sale, if it was sold with one and is not resolved yet.
    pub fn unresolved_hold(&self, sale_id: &SaleId) -> Result<Option<HeldSale>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {HELD_COLUMNS} FROM holds h JOIN sales s ON s.id = h.sale_id
                     WHERE h.sale_id = ?1 AND h.state = 'held'"
                ),
                params![sale_id.0],
                held_row,
            )
            .optional()?)
    }

    /// Whether the sale of this invoice was sold with a hold invoice (resolved or not).
    pub fn is_held_invoice(&self, invoice_id: &InvoiceId) -> Result<Option<SaleId>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT h.sale_id FROM holds h JOIN sales s ON s.id = h.sale_id
                 WHERE s.invoice_id = ?1",
                params![invoice_id.0],
                |r| r.get(0),
            )
            .optional()?
            .map(SaleId))
    }

    /// Notes when a held payment was accepted (the pour's start), for the held-time metric.
    pub fn hold_accepted(&mut self, sale_id: &SaleId) -> Result<(), LedgerError> {
        self.conn.execute(
            "UPDATE holds SET accepted_us = ?2 WHERE sale_id = ?1 AND accepted_us IS NULL",
            params![sale_id.0, now_us()],
        )?;
        Ok(())
    }

    /// Nothing was poured of a held payment's sale: it is to be given back. Recorded before
    /// the cancel is asked, so a crash in between still cancels at the next start. A sale
    /// poured, owed or settled meanwhile keeps its state (false).
    pub fn mark_returned(&mut self, sale_id: &SaleId, reason: &str) -> Result<bool, LedgerError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE sales SET state = ?2, reason = ?3 WHERE id = ?1 AND state = ?4",
            params![sale_id.0, SaleState::Returned, reason, SaleState::Pouring],
        )?;
        if n == 1 {
            tx.execute(
                "INSERT INTO transitions (sale_id, kind, at_us, detail) VALUES (?1, 'failed', ?2, ?3), (?1, 'returning', ?2, ?3)",
                params![sale_id.0, now_us(), reason],
            )?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    /// The backend's answer for a held payment. `Settled`: taken, so a sale never poured
    /// becomes owed (a paid sale: the backend settled by itself), and the sale id is
    /// returned to offer its credit. `Canceled`: given back, so an owed or returning sale
    /// owes nothing and is `returned`. The hold is resolved either way.
    pub fn record_hold_outcome(
        &mut self,
        sale_id: &SaleId,
        outcome: Outcome,
    ) -> Result<Option<SaleId>, LedgerError> {
        let tx = self.conn.transaction()?;
        let state: Option<SaleState> = tx
            .query_row(
                "SELECT state FROM sales WHERE id = ?1",
                params![sale_id.0],
                |r| r.get(0),
            )
            .optional()?;
        let Some(state) = state else {
            return Err(LedgerError::UnknownSale(sale_id.0.clone()));
        };
        let at = now_us();
        let mut newly_owed = None;
        let hold_state = match outcome {
            Outcome::NotPaid => {
                // Nothing to resolve yet (an unpaid hold asked to settle): stays held.
                tx.commit()?;
                return Ok(None);
            }
            Outcome::Settled => {
                match state {
                    SaleState::Created
                    | SaleState::Cancelled
                    | SaleState::Expired
                    | SaleState::Returned => {
                        tx.execute(
                            "UPDATE sales SET state = ?2, reason = 'the payment was taken by the node before lnvend could return it' WHERE id = ?1",
                            params![sale_id.0, SaleState::Owed],
                        )?;
                        tx.execute(
                            "INSERT INTO transitions (sale_id, kind, at_us) VALUES (?1, 'paid', ?2), (?1, 'credited', ?2)",
                            params![sale_id.0, at],
                        )?;
                        newly_owed = Some(sale_id.clone());
                    }
                    SaleState::Pouring
                    | SaleState::Poured
                    | SaleState::Owed
                    | SaleState::Settled
                    | SaleState::Refunded => {}
                }
                "settled"
            }
            Outcome::Canceled => {
                match state {
                    SaleState::Owed | SaleState::Pouring | SaleState::Returned => {
                        tx.execute(
                            "UPDATE sales SET state = ?2 WHERE id = ?1",
                            params![sale_id.0, SaleState::Returned],
                        )?;
                    }
                    // Poured and returned (the backend gave it back before lnvend's settle):
                    // the drink was free; the sale stays poured, the hold says so.
                    SaleState::Poured
                    | SaleState::Created
                    | SaleState::Cancelled
                    | SaleState::Expired
                    | SaleState::Settled
                    | SaleState::Refunded => {}
                }
                "canceled"
            }
        };
        tx.execute(
            "UPDATE holds SET state = ?2, resolved_us = ?3 WHERE sale_id = ?1",
            params![sale_id.0, hold_state, at],
        )?;
        tx.execute(
            "INSERT INTO transitions (sale_id, kind, at_us) VALUES (?1, ?2, ?3)",
            params![
                sale_id.0,
                if hold_state == "settled" {
                    "hold_settled"
                } else {
                    "hold_canceled"
                },
                at
            ],
        )?;
        tx.commit()?;
        Ok(newly_owed)
    }
}

#[cfg(test)]
mod tests;
