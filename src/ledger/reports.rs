//! What the ledger tells the operator and `lnvend sales`: totals, the list of sales, one
//! sale's state, the count of pours; and the running totals of poured sales they read,
//! which `record_poured` keeps (see [`count_poured`]).

use rusqlite::{params, OptionalExtension};

use super::schema::DAY_US;
use super::{Ledger, LedgerError, SaleRow, SaleState, Totals};
use crate::vend::SaleId;

/// The poured sales created at or after `?1` (µs), as rows of (day, product, count, msat):
/// the whole days from day `?2` on from `poured_days`, and the part of a day before it
/// from the sales themselves (a range of `sales_by_state`, one day long at most). `?3` is
/// [`SaleState::Poured`]. `?2` is the first whole day, see [`first_whole_day`].
pub(super) const POURED_SINCE: &str =
    "SELECT day, product, count AS c, msat AS m FROM poured_days WHERE day >= ?2
     UNION ALL
     SELECT created_us / 86400000000, product, 1, price_msat FROM sales
     WHERE state = ?3 AND created_us >= ?1 AND created_us < ?2 * 86400000000";

/// The poured sales of all time, from the running totals.
pub(super) const TOTALS_ALL_TIME: &str =
    "SELECT COALESCE(SUM(count), 0), COALESCE(SUM(msat), 0) FROM poured_totals";

/// Sales created at or after `?1`, newest first, at most `?2`: from the end of
/// `sales_by_time`.
pub(super) const SALES_SINCE: &str =
    "SELECT id, product, price_msat, backend, invoice_id, state, created_us, fiat_amount,
            fiat_currency, poured_ml, owed_ml FROM sales
     WHERE created_us >= ?1 ORDER BY created_us DESC, id DESC LIMIT ?2";

/// The first UTC day (days since the epoch) that begins at or after `since_us`.
fn first_whole_day(since_us: i64) -> i64 {
    let day = since_us.div_euclid(DAY_US);
    if since_us.rem_euclid(DAY_US) == 0 {
        day
    } else {
        day + 1
    }
}

/// Counts a sale that was just poured into the running totals (inside its transaction).
pub(super) fn count_poured(
    tx: &rusqlite::Transaction<'_>,
    sale_id: &SaleId,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO poured_days (day, product, count, msat)
             SELECT created_us / 86400000000, product, 1, price_msat FROM sales WHERE id = ?1
         ON CONFLICT (day, product) DO UPDATE SET count = count + 1, msat = msat + excluded.msat",
        params![sale_id.0],
    )?;
    tx.execute(
        "INSERT INTO poured_totals (product, count, msat)
             SELECT product, 1, price_msat FROM sales WHERE id = ?1
         ON CONFLICT (product) DO UPDATE SET count = count + 1, msat = msat + excluded.msat",
        params![sale_id.0],
    )?;
    Ok(())
}

impl Ledger {
    /// Poured sales created at or after `since_us`, from the running totals: all time (any
    /// `since_us` at or before the first sale) reads one row per product.
    pub fn totals_since(&self, since_us: i64) -> Result<Totals, LedgerError> {
        let sums = "COALESCE(SUM(c), 0), COALESCE(SUM(m), 0)";
        let (count, msat): (i64, i64) = if since_us <= 0 {
            self.conn
                .query_row(TOTALS_ALL_TIME, [], |r| Ok((r.get(0)?, r.get(1)?)))?
        } else {
            self.conn.query_row(
                &format!("SELECT {sums} FROM ({POURED_SINCE})"),
                params![since_us, first_whole_day(since_us), SaleState::Poured],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
        };
        Ok(Totals {
            count: count as u64,
            msat: msat as u64,
        })
    }

    /// Sales created at or after `since_us`, newest first, at most `limit` (all states).
    pub fn sales_since(&self, since_us: i64, limit: usize) -> Result<Vec<SaleRow>, LedgerError> {
        let mut st = self.conn.prepare(SALES_SINCE)?;
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
        self.poured_grouped("day", "day", since_us)
    }

    /// Poured sales created at or after `since_us`, per product: (product, count, msat),
    /// the best seller first.
    pub fn poured_per_product(
        &self,
        since_us: i64,
    ) -> Result<Vec<(String, u64, u64)>, LedgerError> {
        self.poured_grouped("product", "SUM(c) DESC, product", since_us)
    }

    /// [`POURED_SINCE`] summed per `key`, in `order`.
    fn poured_grouped<K: rusqlite::types::FromSql>(
        &self,
        key: &str,
        order: &str,
        since_us: i64,
    ) -> Result<Vec<(K, u64, u64)>, LedgerError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {key}, SUM(c), SUM(m) FROM ({POURED_SINCE}) GROUP BY {key} ORDER BY {order}"
        ))?;
        let rows = st.query_map(
            params![since_us, first_whole_day(since_us), SaleState::Poured],
            |r| {
                Ok((
                    r.get::<_, K>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            },
        )?;
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
