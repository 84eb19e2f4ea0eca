//! What the ledger tells the operator and `lnvend sales`: totals, the list of sales, one
//! sale's state, the count of pours. Read-only.

use rusqlite::{params, OptionalExtension};

use super::{Ledger, LedgerError, SaleRow, SaleState, Totals};
use crate::vend::SaleId;

impl Ledger {
    /// Poured sales created at or after `since_us`.
    pub fn totals_since(&self, since_us: i64) -> Result<Totals, LedgerError> {
        let (count, msat): (i64, i64) = self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(price_msat), 0) FROM sales WHERE state = ?2 AND created_us >= ?1",
            params![since_us, SaleState::Poured],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(Totals {
            count: count as u64,
            msat: msat as u64,
        })
    }

    /// Sales created at or after `since_us`, newest first, at most `limit` (all states).
    pub fn sales_since(&self, since_us: i64, limit: usize) -> Result<Vec<SaleRow>, LedgerError> {
        let mut st = self.conn.prepare(
            "SELECT id, product, price_msat, backend, invoice_id, state, created_us, fiat_amount,
                    fiat_currency, poured_ml, owed_ml FROM sales
             WHERE created_us >= ?1 ORDER BY created_us DESC, id DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![since_us, limit as i64], |r| {
            Ok(SaleRow {
                sale_id: SaleId(r.get(0)?),
                product: r.get(1)?,
                price_msat: r.get::<_, i64>(2)? as u64,
                backend: r.get(3)?,
                invoice_id: r.get(4)?,
                state: r.get(5)?,
                created_us: r.get(6)?,
                fiat: match (
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                ) {
                    (Some(a), Some(c)) => Some((a, c)),
                    _ => None,
                },
                poured_ml: r
                    .get::<_, Option<i64>>(9)?
                    .map(|ml| ml.clamp(0, i64::from(u32::MAX)) as u32),
                owed_ml: r
                    .get::<_, Option<i64>>(10)?
                    .map(|ml| ml.clamp(0, i64::from(u32::MAX)) as u32),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Poured sales created at or after `since_us`, per UTC day: (days since the epoch,
    /// count, msat), oldest first, days without a sale left out.
    pub fn poured_per_day(&self, since_us: i64) -> Result<Vec<(i64, u64, u64)>, LedgerError> {
        let mut st = self.conn.prepare(
            "SELECT created_us / 86400000000 AS day, COUNT(*), COALESCE(SUM(price_msat), 0)
             FROM sales WHERE state = ?2 AND created_us >= ?1 GROUP BY day ORDER BY day",
        )?;
        let rows = st.query_map(params![since_us, SaleState::Poured], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Poured sales created at or after `since_us`, per product: (product, count, msat),
    /// the best seller first.
    pub fn poured_per_product(
        &self,
        since_us: i64,
    ) -> Result<Vec<(String, u64, u64)>, LedgerError> {
        let mut st = self.conn.prepare(
            "SELECT product, COUNT(*), COALESCE(SUM(price_msat), 0) FROM sales
             WHERE state = ?2 AND created_us >= ?1 GROUP BY product
             ORDER BY COUNT(*) DESC, product",
        )?;
        let rows = st.query_map(params![since_us, SaleState::Poured], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The state of one sale.
    pub fn sale_state(&self, sale_id: &SaleId) -> Result<Option<SaleState>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT state FROM sales WHERE id = ?1",
                params![sale_id.0],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// How many pours the ledger holds.
    pub fn pour_count(&self) -> Result<u64, LedgerError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM pours", [], |r| r.get::<_, i64>(0))? as u64)
    }
}
