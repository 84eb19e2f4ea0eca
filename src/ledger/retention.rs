//! What keeps the ledger's cost flat as it grows for years (a prankster's 8,640 unpaid
//! invoices a day are 3 million rows a year): the retention of invoices' payloads, the
//! newest sale's time for look-backs that cannot trust the clock, and the tests that hold
//! every query the controller runs (per heartbeat, sweep, tap, operator view, start-up) to
//! an index. The indexes themselves are schema version 5 ([`super::schema`]).

use rusqlite::params;

use super::{unix_to_us, Ledger, LedgerError};

/// The newest sale's time: the last entry of `sales_by_time`.
const NEWEST_SALE: &str = "SELECT MAX(created_us) FROM sales";

/// See [`Ledger::drop_stale_payloads`]: the oldest entries of `sales_with_payload`.
const DROP_STALE_PAYLOADS: &str = concat!(
    "UPDATE sales SET bolt11 = '' WHERE rowid IN (
         SELECT rowid FROM sales WHERE bolt11 <> '' AND ",
    unpaid_sql!(),
    " AND created_us < ?1 AND expires_at < ?2 ORDER BY created_us LIMIT ?3)"
);

impl Ledger {
    /// The newest time (UNIX seconds) a sale was recorded at, if any: a lower bound of
    /// "now" that needs no wall clock (see `controller/startup.rs`).
    pub fn newest_sale_unix(&self) -> Result<Option<u64>, LedgerError> {
        let us: Option<i64> = self.conn.query_row(NEWEST_SALE, [], |r| r.get(0))?;
        Ok(us.map(|us| (us.max(0) / 1_000_000) as u64))
    }

    /// Retention: empties the BOLT11 of at most `limit` never-paid invoices (created,
    /// cancelled, expired) that were created and expired before `before_unix`, oldest
    /// first; returns how many. The row stays, with its product, price, state, times,
    /// invoice id and payment hash: the sale is still in the accounts, and a payment of it
    /// reported later is still found by its invoice id and becomes an owed credit for the
    /// price recorded. Only the text a customer's wallet needed to pay goes, which nothing
    /// reads once the invoice expired (start-up watches only unexpired invoices). The caller
    /// passes a time well past anything its late-payment checks still look at, from a
    /// trusted clock only.
    pub fn drop_stale_payloads(
        &mut self,
        before_unix: u64,
        limit: usize,
    ) -> Result<usize, LedgerError> {
        Ok(self.conn.execute(
            DROP_STALE_PAYLOADS,
            params![unix_to_us(before_unix), before_unix as i64, limit as i64],
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::invoices::UNSETTLED_SINCE;
    use super::super::reports::{POURED_SINCE, SALES_SINCE, TOTALS_ALL_TIME};
    use super::super::*;
    use super::*;
    use crate::backend::{Invoice, InvoiceId};
    use crate::money::Msat;
    use crate::vend::{Abandoned, Product, Sale, SaleId};

    const DAY_S: i64 = 24 * 3600;
    /// Where the tests put "now": 2026-12-01 00:00 UTC.
    const NOW: i64 = 1_796_083_200;

    /// Records a sale of `product` at `price_sat`, created `age_s` before [`NOW`], whose
    /// invoice expired 5 minutes after; then moves it to `state` the way the controller
    /// does.
    fn sale_at(l: &mut Ledger, id: &str, age_s: i64, state: SaleState) -> Invoice {
        let sale = Sale {
            id: SaleId(id.into()),
            product: Product {
                index: 0,
                name: "Cola".into(),
                price: crate::money::Price::Sats(Msat::from_sat(2100).unwrap()),
                pour: std::time::Duration::from_secs(4),
                channel: crate::pump::Channel::A,
                sat_bounds: None,
                volume_ml: None,
                sold_out: false,
            },
        };
        let created = NOW - age_s;
        let invoice = Invoice {
            id: InvoiceId(format!("inv-{id}")),
            bolt11: format!("lnbc21u1p{}", "q".repeat(380)),
            payment_hash: format!("hash-{id}"),
            amount: Msat::from_sat(2100).unwrap(),
            expires_at_unix: (created + 300) as u64,
        };
        l.record_created(&sale, "sim", &invoice).unwrap();
        l.conn
            .execute(
                "UPDATE sales SET created_us = ?2, expires_at = ?3 WHERE id = ?1",
                params![id, created * 1_000_000, created + 300],
            )
            .unwrap();
        match state {
            SaleState::Created => {}
            SaleState::Cancelled => l.record_abandoned(&sale.id, Abandoned::Cancelled).unwrap(),
            SaleState::Expired => l.record_abandoned(&sale.id, Abandoned::Expired).unwrap(),
            SaleState::Poured => {
                l.begin_pour(&sale.id, &invoice.id).unwrap();
                l.record_poured(&sale.id).unwrap();
            }
            SaleState::Owed => {
                l.record_late_payment(&invoice.id).unwrap();
            }
            SaleState::Pouring | SaleState::Settled | SaleState::Refunded | SaleState::Returned => {
                unreachable!("not used here")
            }
        }
        invoice
    }

    fn bolt11_of(l: &Ledger, id: &str) -> String {
        l.conn
            .query_row("SELECT bolt11 FROM sales WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .unwrap()
    }

    /// What the accounts keep of a sale: everything but the BOLT11.
    fn kept(l: &Ledger, id: &str) -> (String, i64, String, String, String, i64) {
        l.conn
            .query_row(
                "SELECT product, price_msat, state, invoice_id, payment_hash, created_us
                 FROM sales WHERE id = ?1",
                params![id],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .unwrap()
    }

    #[test]
    fn only_unpaid_invoices_past_the_window_lose_their_bolt11_and_keep_their_money() {
        let mut l = Ledger::in_memory().unwrap();
        let old = 10 * DAY_S;
        sale_at(&mut l, "old-expired", old, SaleState::Expired);
        sale_at(&mut l, "old-cancelled", old, SaleState::Cancelled);
        sale_at(&mut l, "old-created", old, SaleState::Created);
        sale_at(&mut l, "old-poured", old, SaleState::Poured);
        sale_at(&mut l, "old-owed", old, SaleState::Owed);
        sale_at(&mut l, "recent-expired", 2 * DAY_S, SaleState::Expired);
        let ids = [
            "old-expired",
            "old-cancelled",
            "old-created",
            "old-poured",
            "old-owed",
            "recent-expired",
        ];
        let before: Vec<_> = ids.iter().map(|id| kept(&l, id)).collect();
        let totals = l.totals_since(0).unwrap();
        // The controller's cut: a week before now.
        let cut = (NOW - 7 * DAY_S) as u64;
        assert_eq!(l.drop_stale_payloads(cut, 100).unwrap(), 3);
        for id in ["old-expired", "old-cancelled", "old-created"] {
            assert_eq!(bolt11_of(&l, id), "", "{id}");
        }
        for id in ["old-poured", "old-owed", "recent-expired"] {
            assert!(bolt11_of(&l, id).starts_with("lnbc21u1p"), "{id} kept it");
        }
        let after: Vec<_> = ids.iter().map(|id| kept(&l, id)).collect();
        assert_eq!(
            before, after,
            "every sale, its price, state and invoice kept"
        );
        assert_eq!(l.totals_since(0).unwrap(), totals);
        assert_eq!(l.sales_since(0, 100).unwrap().len(), ids.len());
        // Nothing more to drop; an invoice created before the cut that expired after it
        // (a long expiry) stays whole.
        assert_eq!(l.drop_stale_payloads(cut, 100).unwrap(), 0);
        l.conn
            .execute(
                "UPDATE sales SET created_us = ?1, expires_at = ?2 WHERE id = 'recent-expired'",
                params![(NOW - old) * 1_000_000, cut as i64 + 1],
            )
            .unwrap();
        assert_eq!(l.drop_stale_payloads(cut, 100).unwrap(), 0);
        assert_ne!(bolt11_of(&l, "recent-expired"), "");
    }

    #[test]
    fn a_late_payment_of_an_invoice_without_its_bolt11_is_still_found_and_owed() {
        let mut l = Ledger::in_memory().unwrap();
        let inv = sale_at(&mut l, "prank", 30 * DAY_S, SaleState::Cancelled);
        assert_eq!(l.drop_stale_payloads(NOW as u64, 10).unwrap(), 1);
        assert_eq!(bolt11_of(&l, "prank"), "");
        // The controller checks the amount against its record first...
        let recorded = l.invoice_by_id(&inv.id).unwrap().expect("still ours");
        assert_eq!(recorded.invoice.amount, inv.amount);
        assert_eq!(recorded.invoice.payment_hash, inv.payment_hash);
        // ...then the payment becomes an owed credit worth the price.
        assert_eq!(
            l.record_late_payment(&inv.id).unwrap(),
            Some(SaleId("prank".into()))
        );
        let owed = l.owed().unwrap();
        assert_eq!(owed.len(), 1);
        assert_eq!(owed[0].value(), Msat::from_sat(2100).unwrap());
    }

    #[test]
    fn retention_takes_at_most_its_batch_oldest_first() {
        let mut l = Ledger::in_memory().unwrap();
        for i in 0..5 {
            sale_at(
                &mut l,
                &format!("p{i}"),
                (20 - i) * DAY_S,
                SaleState::Expired,
            );
        }
        assert_eq!(l.drop_stale_payloads(NOW as u64, 2).unwrap(), 2);
        assert_eq!(bolt11_of(&l, "p0"), "");
        assert_eq!(bolt11_of(&l, "p1"), "");
        assert_ne!(bolt11_of(&l, "p2"), "");
        assert_eq!(l.drop_stale_payloads(NOW as u64, 10).unwrap(), 3);
    }

    #[test]
    fn the_running_totals_match_the_sales_for_any_start() {
        let mut l = Ledger::in_memory().unwrap();
        // Poured sales at several times of several days, and others that do not count.
        let ages = [
            0,
            3600,
            5 * 3600,
            DAY_S + 60,
            DAY_S + 7200,
            3 * DAY_S + 1,
            9 * DAY_S,
        ];
        for (i, age) in ages.iter().enumerate() {
            sale_at(&mut l, &format!("p{i}"), *age, SaleState::Poured);
            sale_at(&mut l, &format!("x{i}"), *age, SaleState::Expired);
        }
        sale_at(&mut l, "o", DAY_S, SaleState::Owed);
        // Poured twice (a retry): counted once.
        l.record_poured(&SaleId("p0".into())).unwrap();
        for since_s in [
            0,
            NOW - 10 * DAY_S,
            NOW - DAY_S - 3600,
            NOW - DAY_S,
            NOW - 4000,
            NOW + 1,
        ] {
            let since = since_s * 1_000_000;
            let n = ages.iter().filter(|a| NOW - **a >= since_s).count() as u64;
            assert_eq!(
                l.totals_since(since).unwrap(),
                Totals {
                    count: n,
                    msat: n * 2_100_000
                },
                "since {since_s}"
            );
            let per_day = l.poured_per_day(since).unwrap();
            assert_eq!(
                per_day.iter().map(|d| d.1).sum::<u64>(),
                n,
                "since {since_s}"
            );
            let per_product = l.poured_per_product(since).unwrap();
            let expected = if n == 0 {
                vec![]
            } else {
                vec![("Cola".to_string(), n, n * 2_100_000)]
            };
            assert_eq!(per_product, expected, "since {since_s}");
        }
        // Per day: the three sales of "today" (NOW is midnight: ages 1 h and 5 h are the day
        // before, age 0 is today).
        let day = NOW / DAY_S;
        let per_day = l.poured_per_day((NOW - 2 * DAY_S) * 1_000_000).unwrap();
        assert_eq!(
            per_day,
            vec![
                (day - 2, 2, 4_200_000),
                (day - 1, 2, 4_200_000),
                (day, 1, 2_100_000)
            ]
        );
    }

    /// Every query the controller runs that could touch many sales, by when it runs. (The
    /// rest find one sale by its id or invoice id: a primary key or unique index.)
    fn controller_queries() -> Vec<(&'static str, String)> {
        vec![
            ("heartbeat (metrics), operator view: owed()", owed_query()),
            ("start-up: interrupted pours", INTERRUPTED.into()),
            ("start-up: the newest sale id", NEWEST_SALE_ID.into()),
            ("start-up: public credits", public_credits_query()),
            (
                "start-up, sweep: the newest sale's time",
                NEWEST_SALE.into(),
            ),
            (
                "start-up, sweep: unsettled invoices",
                format!("SELECT id, bolt11 {UNSETTLED_SINCE}"),
            ),
            ("sweep: retention", DROP_STALE_PAYLOADS.into()),
            ("operator view: all-time totals", TOTALS_ALL_TIME.into()),
            (
                "operator view: today, chart",
                format!("SELECT SUM(c) FROM ({POURED_SINCE})"),
            ),
            ("operator view: recent sales", SALES_SINCE.into()),
        ]
    }

    #[test]
    fn no_query_of_the_controller_scans_the_sales() {
        let mut l = Ledger::in_memory().unwrap();
        // A ledger with a little of everything, so the planner has something to plan for.
        sale_at(&mut l, "a", DAY_S, SaleState::Expired);
        sale_at(&mut l, "b", DAY_S, SaleState::Poured);
        for (what, sql) in controller_queries() {
            let mut st = l
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            // Planned with its parameters unbound, as SQLite plans the prepared statement.
            let mut rows = st.raw_query();
            let mut plan: Vec<String> = Vec::new();
            while let Some(r) = rows.next().unwrap() {
                plan.push(r.get(3).unwrap());
            }
            // A SCAN reads a whole table or index; only the per-product totals may (and a
            // query reads its own subquery's few rows).
            let scans: Vec<&String> = plan
                .iter()
                .filter(|d| d.starts_with("SCAN"))
                .filter(|d| {
                    !d.starts_with("SCAN poured_totals") && !d.starts_with("SCAN (subquery")
                })
                .collect();
            assert!(scans.is_empty(), "{what} scans: {plan:?}");
        }
    }
}
