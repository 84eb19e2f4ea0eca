//! Stock in the ledger: each product's ml left, and one timestamped row per change, so an
//! operator can see when a tank was refilled and how fast it empties, and a power cut never
//! forgets a pour's ml. Also the ml of each sale: what the flow sensor measured, and for a
//! short pour the share still owed (its credit pours only that).
//!
//! Products on one pump channel share its tank (two sizes of one drink). Their rows stay
//! per product (the metrics, the Stock tab and every older ledger know stock by product),
//! and every change moves all the rows of a tank together in one transaction: a pour of
//! one size counts off the other's stock, a dry run or a refill is the whole tank's.
//! `tank` arguments name the tank's products, the one concerned first.

use rusqlite::{params, OptionalExtension};

use super::{now_us, Ledger, LedgerError};
use crate::vend::SaleId;

/// One product's stock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stock {
    pub ml: u32,
    pub tank_ml: u32,
}

/// One row of a product's stock history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StockMove {
    /// "start", "pour", "dry", "refill", or "shared" (the counts of a tank's products
    /// brought to its lowest, see [`Ledger::share_tank`]).
    pub kind: String,
    pub delta_ml: i64,
    pub stock_ml: u32,
    pub sale_id: Option<String>,
    pub at_us: i64,
}

impl Ledger {
    /// The product's stock, counted from `start_ml` the first time it is asked for. Later
    /// calls return what the ledger holds (a new `tank_ml` in the config is taken up).
    pub fn stock_or_start(
        &mut self,
        product: &str,
        tank_ml: u32,
        start_ml: u32,
    ) -> Result<Stock, LedgerError> {
        let tx = self.conn.transaction()?;
        let at = now_us();
        let added = tx.execute(
            "INSERT OR IGNORE INTO stock (product, ml, tank_ml, updated_us) VALUES (?1, ?2, ?3, ?4)",
            params![product, start_ml, tank_ml, at],
        )?;
        if added == 1 {
            tx.execute(
                "INSERT INTO stock_moves (product, kind, delta_ml, stock_ml, at_us) VALUES (?1, 'start', ?2, ?2, ?3)",
                params![product, start_ml, at],
            )?;
        } else {
            tx.execute(
                "UPDATE stock SET tank_ml = ?2 WHERE product = ?1",
                params![product, tank_ml],
            )?;
        }
        let ml: i64 = tx.query_row(
            "SELECT ml FROM stock WHERE product = ?1",
            params![product],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(Stock {
            ml: ml.clamp(0, i64::from(u32::MAX)) as u32,
            tank_ml,
        })
    }

    /// The product's stock, if it is counted.
    pub fn stock(&self, product: &str) -> Result<Option<Stock>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT ml, tank_ml FROM stock WHERE product = ?1",
                params![product],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
            .optional()?
            .map(|(ml, tank)| Stock {
                ml: ml.clamp(0, i64::from(u32::MAX)) as u32,
                tank_ml: tank.clamp(0, i64::from(u32::MAX)) as u32,
            }))
    }

    /// The products of one tank, counted separately until now (an older ledger, or a
    /// product newly put on the channel), count the lowest of them from now on: the tank
    /// holds at most that, since each count missed the other products' pours. Returns the
    /// tank's count, if counted.
    pub fn share_tank(&mut self, tank: &[&str]) -> Result<Option<u32>, LedgerError> {
        let tx = self.conn.transaction()?;
        let mut counts = Vec::new();
        for product in tank {
            if let Some(ml) = count(&tx, product)? {
                counts.push((*product, ml));
            }
        }
        let Some(lowest) = counts.iter().map(|(_, ml)| *ml).min() else {
            return Ok(None);
        };
        let at = now_us();
        for (product, ml) in counts {
            if ml > lowest {
                move_stock(&tx, &[product], "shared", lowest - ml, None, at)?;
            }
        }
        tx.commit()?;
        Ok(Some(lowest.clamp(0, i64::from(u32::MAX)) as u32))
    }

    /// A sale's pour put `ml` into the cup: the sale keeps it, and a counted stock goes down
    /// by it (never below zero), for every product of the tank. Returns the stock left, if
    /// counted.
    pub fn record_pour_ml(
        &mut self,
        sale_id: &SaleId,
        tank: &[&str],
        ml: u32,
    ) -> Result<Option<u32>, LedgerError> {
        let tx = self.conn.transaction()?;
        let at = now_us();
        // A credit pour adds to what the first pour of the sale measured.
        tx.execute(
            "UPDATE sales SET poured_ml = COALESCE(poured_ml, 0) + ?2 WHERE id = ?1",
            params![sale_id.0, ml],
        )?;
        let left = move_stock(&tx, tank, "pour", -i64::from(ml), Some(&sale_id.0), at)?;
        tx.commit()?;
        Ok(left)
    }

    /// The tank was found dry (no flow): the stock of each of its products is zero
    /// whatever was counted. A product whose stock is not counted is marked dry in `meta`,
    /// so it stays sold out across a restart until its refill.
    pub fn record_dry(&mut self, tank: &[&str]) -> Result<(), LedgerError> {
        let tx = self.conn.transaction()?;
        let at = now_us();
        for product in tank {
            match count(&tx, product)? {
                Some(ml) => {
                    move_stock(&tx, &[product], "dry", -ml, None, at)?;
                }
                None => {
                    tx.execute(
                        "INSERT INTO meta (key, value) VALUES (?1, ?2)
                         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        params![dry_key(product), at.to_string()],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Whether a product whose stock is not counted was found dry and not refilled since.
    pub fn is_dry(&self, product: &str) -> Result<bool, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM meta WHERE key = ?1",
                params![dry_key(product)],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The operator refilled the tank: the stock of each of its products is the tank's
    /// size again, and none is marked dry. Returns the tank's stock, if counted.
    pub fn record_refill(&mut self, tank: &[&str]) -> Result<Option<u32>, LedgerError> {
        let tx = self.conn.transaction()?;
        let at = now_us();
        let mut first = None;
        for product in tank {
            let row: Option<(i64, i64)> = tx
                .query_row(
                    "SELECT ml, tank_ml FROM stock WHERE product = ?1",
                    params![product],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((ml, size)) = row {
                let left = move_stock(&tx, &[product], "refill", size - ml, None, at)?;
                first = first.or(left);
            }
            tx.execute("DELETE FROM meta WHERE key = ?1", params![dry_key(product)])?;
        }
        tx.commit()?;
        Ok(first)
    }

    /// The product's stock history, oldest first.
    pub fn stock_moves(&self, product: &str) -> Result<Vec<StockMove>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT kind, delta_ml, stock_ml, sale_id, at_us FROM stock_moves
             WHERE product = ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map(params![product], |r| {
            Ok(StockMove {
                kind: r.get(0)?,
                delta_ml: r.get(1)?,
                stock_ml: r.get::<_, i64>(2)?.clamp(0, i64::from(u32::MAX)) as u32,
                sale_id: r.get(3)?,
                at_us: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A pour that did not finish: `ml` of the drink is still owed, and the credit pours
    /// only that. None: nothing is owed (the credit poured it).
    pub fn set_owed_ml(&mut self, sale_id: &SaleId, ml: Option<u32>) -> Result<(), LedgerError> {
        self.conn.execute(
            "UPDATE sales SET owed_ml = ?2 WHERE id = ?1",
            params![sale_id.0, ml],
        )?;
        Ok(())
    }

    /// What a short pour left owed, if the sale was one.
    pub fn owed_ml(&self, sale_id: &SaleId) -> Result<Option<u32>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT owed_ml FROM sales WHERE id = ?1",
                params![sale_id.0],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten()
            .map(|ml| ml.clamp(0, i64::from(u32::MAX)) as u32))
    }

    /// What the sale's pours measured, if any.
    pub fn poured_ml(&self, sale_id: &SaleId) -> Result<Option<u32>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT poured_ml FROM sales WHERE id = ?1",
                params![sale_id.0],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten()
            .map(|ml| ml.clamp(0, i64::from(u32::MAX)) as u32))
    }
}

/// The `meta` key that marks an uncounted product's tank dry.
fn dry_key(product: &str) -> String {
    format!("dry:{product}")
}

/// A product's counted stock, if counted.
fn count(tx: &rusqlite::Transaction<'_>, product: &str) -> Result<Option<i64>, LedgerError> {
    Ok(tx
        .query_row(
            "SELECT ml FROM stock WHERE product = ?1",
            params![product],
            |r| r.get(0),
        )
        .optional()?)
}

/// Moves the counted stock of each product of `tank` by `delta` (clamped at zero) with its
/// history row; returns the tank's stock left (its first counted product's), None when no
/// product of it is counted.
fn move_stock(
    tx: &rusqlite::Transaction<'_>,
    tank: &[&str],
    kind: &str,
    delta: i64,
    sale_id: Option<&str>,
    at: i64,
) -> Result<Option<u32>, LedgerError> {
    let mut first = None;
    for product in tank {
        let Some(now) = count(tx, product)? else {
            continue;
        };
        let after = now.saturating_add(delta).max(0);
        tx.execute(
            "UPDATE stock SET ml = ?2, updated_us = ?3 WHERE product = ?1",
            params![product, after, at],
        )?;
        tx.execute(
            "INSERT INTO stock_moves (product, kind, delta_ml, stock_ml, sale_id, at_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![product, kind, after - now, after, sale_id, at],
        )?;
        first = first.or(Some(after.clamp(0, i64::from(u32::MAX)) as u32));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_counts_down_per_pour_never_below_zero_and_refills_to_the_tank() {
        let mut l = Ledger::in_memory().unwrap();
        assert_eq!(l.stock("Cola").unwrap(), None);
        let s = l.stock_or_start("Cola", 1000, 700).unwrap();
        assert_eq!(
            s,
            Stock {
                ml: 700,
                tank_ml: 1000
            }
        );
        // A second start (the next boot) keeps what was counted.
        assert_eq!(l.stock_or_start("Cola", 1000, 1000).unwrap().ml, 700);
        let sale = SaleId("S1-0001".into());
        assert_eq!(l.record_pour_ml(&sale, &["Cola"], 300).unwrap(), Some(400));
        assert_eq!(l.record_pour_ml(&sale, &["Cola"], 300).unwrap(), Some(100));
        assert_eq!(l.record_pour_ml(&sale, &["Cola"], 300).unwrap(), Some(0));
        assert_eq!(l.record_refill(&["Cola"]).unwrap(), Some(1000));
        l.record_dry(&["Cola"]).unwrap();
        assert_eq!(l.stock("Cola").unwrap().unwrap().ml, 0);
        let moves = l.stock_moves("Cola").unwrap();
        let kinds: Vec<&str> = moves.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(kinds, ["start", "pour", "pour", "pour", "refill", "dry"]);
        assert_eq!(moves[3].delta_ml, -100, "clamped at zero");
        assert_eq!(moves[4].delta_ml, 1000);
        assert!(moves.iter().all(|m| m.at_us > 0));
        assert_eq!(moves[1].sale_id.as_deref(), Some("S1-0001"));
        // A product without stock keeping has no rows at all.
        assert_eq!(l.record_pour_ml(&sale, &["Water"], 250).unwrap(), None);
        assert!(l.stock_moves("Water").unwrap().is_empty());
    }

    #[test]
    fn a_shared_tank_moves_every_product_s_count_together() {
        let mut l = Ledger::in_memory().unwrap();
        // An older ledger counted the two sizes apart: 4000 and 2500 ml.
        l.stock_or_start("Cola small", 5000, 4000).unwrap();
        l.stock_or_start("Cola large", 5000, 2500).unwrap();
        let tank = ["Cola small", "Cola large"];
        assert_eq!(l.share_tank(&tank).unwrap(), Some(2500), "the lowest count");
        assert_eq!(l.stock("Cola small").unwrap().unwrap().ml, 2500);
        let moves = l.stock_moves("Cola small").unwrap();
        assert_eq!(moves.last().unwrap().kind, "shared");
        assert_eq!(moves.last().unwrap().delta_ml, -1500);
        assert_eq!(l.share_tank(&tank).unwrap(), Some(2500), "again: no change");
        assert_eq!(l.stock_moves("Cola small").unwrap().len(), 2);
        // 330 ml of the small size lowers the large size's stock too.
        let sale = SaleId("S1-0001".into());
        assert_eq!(l.record_pour_ml(&sale, &tank, 330).unwrap(), Some(2170));
        assert_eq!(l.stock("Cola large").unwrap().unwrap().ml, 2170);
        l.record_dry(&["Cola large", "Cola small"]).unwrap();
        assert_eq!(l.stock("Cola small").unwrap().unwrap().ml, 0);
        assert_eq!(
            l.record_refill(&["Cola large", "Cola small"]).unwrap(),
            Some(5000)
        );
        assert_eq!(l.stock("Cola small").unwrap().unwrap().ml, 5000);
        // Uncounted products of one tank are all marked dry, and all refilled.
        l.record_dry(&["Tea", "Tea large"]).unwrap();
        assert!(l.is_dry("Tea large").unwrap());
        l.record_refill(&["Tea large", "Tea"]).unwrap();
        assert!(!l.is_dry("Tea").unwrap());
        assert_eq!(l.share_tank(&["Tea", "Tea large"]).unwrap(), None);
    }

    #[test]
    fn an_uncounted_product_found_dry_stays_dry_until_its_refill() {
        let mut l = Ledger::in_memory().unwrap();
        assert!(!l.is_dry("Water").unwrap());
        l.record_dry(&["Water"]).unwrap();
        assert!(l.is_dry("Water").unwrap());
        assert!(!l.is_dry("Cola").unwrap(), "one product's tank only");
        assert!(l.stock_moves("Water").unwrap().is_empty());
        assert_eq!(l.record_refill(&["Water"]).unwrap(), None);
        assert!(!l.is_dry("Water").unwrap());
    }
}
