//! The sales ledger: SQLite in the data directory, WAL with `synchronous=FULL`, so a sale
//! that was recorded survives a power cut. One row per sale (= per invoice) and one row per
//! transition. The pour of a payment is a row in `pours` keyed by the invoice id: the
//! primary key makes a second pour for one payment impossible, whatever the code above does.
//! The payment and the pour start are committed in one transaction *before* the pump starts.
//! A sale may be poured by the machine at most twice: the paid pour, and once more as an
//! owed credit the customer taps; if that second pour is interrupted too, the sale waits
//! for the operator (`pour_attempts`, see [`schema`]).

// First: the modules below use its `unpaid_sql!`.
#[macro_use]
pub mod schema;

mod holds;
mod invoices;
mod owed;
mod refund_links;
mod reports;
mod retention;
mod state;
mod stock;

pub use holds::HeldSale;
pub use invoices::OpenInvoice;
pub use owed::Owed;
use owed::{owed_row, OWED_COLUMNS};
pub use refund_links::RefundLink;
pub use state::{SaleState, UnknownSaleState};
pub use stock::{Stock, StockMove};

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::backend::{Invoice, InvoiceId};
use crate::vend::{Abandoned, Sale, SaleId};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot create the data directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("sales ledger: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("this payment was already poured")]
    AlreadyPoured,
    #[error("unknown sale {0}")]
    UnknownSale(String),
    #[error("the sales ledger has schema version {found}; this lnvend knows up to {known} (downgrade refused)")]
    TooNew { found: u32, known: u32 },
}

/// How many pours a sale may get without the operator: the paid one and one credit pour.
pub const MAX_AUTOMATIC_POURS: i64 = 2;

/// One sale for the operator's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleRow {
    pub sale_id: SaleId,
    pub product: String,
    pub price_msat: u64,
    pub backend: String,
    pub invoice_id: String,
    pub state: SaleState,
    pub created_us: i64,
    /// A fiat price at the time of sale: (amount as a decimal string, currency).
    pub fiat: Option<(String, String)>,
    /// What its pours put into the cup, measured (or a timed pour's configured ml).
    pub poured_ml: Option<u32>,
    /// The undelivered share of a short pour, owed as a credit.
    pub owed_ml: Option<u32>,
}

/// Counts and sums of poured sales.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Totals {
    pub count: u64,
    pub msat: u64,
}

pub struct Ledger {
    conn: Connection,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").finish_non_exhaustive()
    }
}

/// SQLite's page cache for the ledger, in KiB.
const LEDGER_CACHE_KIB: i64 = 256;

use crate::clock::unix_now_us as now_us;

/// A UNIX time in seconds as the ledger's microseconds.
fn unix_to_us(unix: u64) -> i64 {
    i64::try_from(unix)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000)
}

/// Sales whose pour began and never ended (`?1`: [`SaleState::Pouring`]).
const INTERRUPTED: &str = "SELECT id FROM sales WHERE state = ?1";

/// The newest sale id of the `S<unix seconds>-<hex>` form: read from the end of the
/// primary key's index, stopping at the first match (a `MAX(id)` with this filter walks
/// every matching id).
const NEWEST_SALE_ID: &str =
    "SELECT id FROM sales WHERE id GLOB 'S[0-9]*-*' ORDER BY id DESC LIMIT 1";

/// Owed sales, oldest first (`?1`: [`SaleState::Owed`]).
fn owed_query() -> String {
    format!("SELECT {OWED_COLUMNS} FROM sales s WHERE s.state = ?1 ORDER BY s.created_us")
}

/// Public owed credits with the time they became owed (`?1`: [`MAX_AUTOMATIC_POURS`],
/// `?2`: [`SaleState::Owed`]).
fn public_credits_query() -> String {
    format!(
        "SELECT {OWED_COLUMNS}, (SELECT MAX(at_us) FROM transitions t
             WHERE t.sale_id = s.id AND t.kind = 'credited') FROM sales s
         WHERE s.state = ?2 AND s.pour_attempts < ?1
         ORDER BY s.created_us"
    )
}

impl Ledger {
    /// Opens (or creates) `sales.db` in `dir`.
    pub fn open(dir: &Path) -> Result<Ledger, LedgerError> {
        std::fs::create_dir_all(dir).map_err(|source| LedgerError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let conn = Connection::open(dir.join("sales.db"))?;
        Ledger::init(conn)
    }

    /// Whether opening the ledger in `dir` will migrate a file of an older lnvend to this
    /// one's schema. A migration can read the whole file (version 5's indexes: about 18 s
    /// for 3M sales on the build machine, more from a Pi's SD card), so the service first
    /// asks systemd for more start time than its `TimeoutStartSec`. A missing, new or
    /// unreadable file is `false` (opening it says why).
    pub fn upgrade_pending(dir: &Path) -> bool {
        let path = dir.join("sales.db");
        if !path.exists() {
            return false;
        }
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        let Ok(conn) = Connection::open_with_flags(&path, flags) else {
            return false;
        };
        let has_sales = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'sales'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .is_ok_and(|n| n > 0);
        has_sales && schema::user_version(&conn).is_ok_and(|v| v < schema::LATEST)
    }

    /// A ledger that lives only in memory (tests).
    pub fn in_memory() -> Result<Ledger, LedgerError> {
        Ledger::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Ledger, LedgerError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // A sale touches a handful of pages. SQLite's default 2 MB page cache would only
        // make the process grow with the ledger over its first few thousand sales (the soak
        // showed +2 MB); the kernel keeps the file's pages warm anyway.
        conn.pragma_update(None, "cache_size", -LEDGER_CACHE_KIB)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))?;
        schema::migrate(&mut conn)?;
        Ok(Ledger { conn })
    }

    fn transition(
        &self,
        sale_id: &str,
        kind: &str,
        detail: Option<&str>,
    ) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT INTO transitions (sale_id, kind, at_us, detail) VALUES (?1, ?2, ?3, ?4)",
            params![sale_id, kind, now_us(), detail],
        )?;
        Ok(())
    }

    /// Records a new sale with its invoice, before the QR is shown.
    pub fn record_created(
        &mut self,
        sale: &Sale,
        backend: &str,
        invoice: &Invoice,
    ) -> Result<(), LedgerError> {
        self.record_created_with(sale, backend, invoice, None)
    }

    /// [`Ledger::record_created`] for a hold invoice: the sale and its preimage in one
    /// durable transaction, before the QR is shown (a settle after a crash needs it).
    pub fn record_created_held(
        &mut self,
        sale: &Sale,
        backend: &str,
        invoice: &Invoice,
        preimage: &crate::backend::Preimage,
    ) -> Result<(), LedgerError> {
        self.record_created_with(sale, backend, invoice, Some(preimage))
    }

    fn record_created_with(
        &mut self,
        sale: &Sale,
        backend: &str,
        invoice: &Invoice,
        preimage: Option<&crate::backend::Preimage>,
    ) -> Result<(), LedgerError> {
        // What a fiat-priced drink cost in its currency today, kept beside the sats.
        let fiat = match &sale.product.price {
            crate::money::Price::Fiat(f) => Some(f.clone()),
            crate::money::Price::Sats(_) => None,
        };
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO sales (id, product, price_msat, backend, invoice_id, payment_hash, bolt11,
                                expires_at, state, created_us, fiat_amount, fiat_currency)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                sale.id.0,
                sale.product.name,
                invoice.amount.as_msat() as i64,
                backend,
                invoice.id.0,
                invoice.payment_hash,
                invoice.bolt11,
                invoice.expires_at_unix as i64,
                SaleState::Created,
                now_us(),
                fiat.as_ref().map(|f| f.amount_str()),
                fiat.as_ref().map(|f| f.currency().to_string()),
            ],
        )?;
        tx.execute(
            "INSERT INTO transitions (sale_id, kind, at_us) VALUES (?1, 'created', ?2)",
            params![sale.id.0, now_us()],
        )?;
        if let Some(preimage) = preimage {
            Ledger::insert_hold(&tx, &sale.id, preimage)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The customer left the invoice (cancelled, or it expired on screen).
    pub fn record_abandoned(
        &mut self,
        sale_id: &SaleId,
        why: Abandoned,
    ) -> Result<(), LedgerError> {
        let state = match why {
            Abandoned::Cancelled => SaleState::Cancelled,
            Abandoned::Expired => SaleState::Expired,
        };
        let n = self.conn.execute(
            "UPDATE sales SET state = ?2 WHERE id = ?1 AND state = ?3",
            params![sale_id.0, state, SaleState::Created],
        )?;
        if n == 1 {
            // These two transitions have always been named like the state they lead to.
            self.transition(&sale_id.0, state.as_str(), None)?;
        }
        Ok(())
    }

    /// Records the payment and the start of its pour in one durable transaction. Fails with
    /// `AlreadyPoured` if this payment already has a pour.
    pub fn begin_pour(
        &mut self,
        sale_id: &SaleId,
        invoice_id: &InvoiceId,
    ) -> Result<(), LedgerError> {
        let tx = self.conn.transaction()?;
        let known: Option<String> = tx
            .query_row(
                "SELECT id FROM sales WHERE id = ?1 AND invoice_id = ?2",
                params![sale_id.0, invoice_id.0],
                |r| r.get(0),
            )
            .optional()?;
        if known.is_none() {
            return Err(LedgerError::UnknownSale(sale_id.0.clone()));
        }
        let at = now_us();
        match tx.execute(
            "INSERT INTO pours (invoice_id, sale_id, started_us) VALUES (?1, ?2, ?3)",
            params![invoice_id.0, sale_id.0, at],
        ) {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(LedgerError::AlreadyPoured)
            }
            Err(e) => return Err(e.into()),
        }
        tx.execute(
            "UPDATE sales SET state = ?2, pour_attempts = pour_attempts + 1 WHERE id = ?1",
            params![sale_id.0, SaleState::Pouring],
        )?;
        tx.execute(
            "INSERT INTO transitions (sale_id, kind, at_us) VALUES (?1, 'paid', ?2), (?1, 'pour_started', ?2)",
            params![sale_id.0, at],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn record_poured(&mut self, sale_id: &SaleId) -> Result<(), LedgerError> {
        let tx = self.conn.transaction()?;
        let changed = tx.execute(
            "UPDATE sales SET state = ?2 WHERE id = ?1 AND state <> ?2",
            params![sale_id.0, SaleState::Poured],
        )?;
        if changed == 1 {
            // Poured is final: counted once in the running totals (see `schema`, v5).
            reports::count_poured(&tx, sale_id)?;
        }
        tx.execute(
            "INSERT INTO transitions (sale_id, kind, at_us) VALUES (?1, 'poured', ?2)",
            params![sale_id.0, now_us()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A paid sale that was not (fully) poured becomes an owed credit. Returns whether the
    /// customer may still pour it themselves (false after an interrupted credit pour).
    pub fn record_owed(&mut self, sale_id: &SaleId, reason: &str) -> Result<bool, LedgerError> {
        let tx = self.conn.transaction()?;
        // Never over a sale already settled one way or another (a pour that finished just
        // as the machine stopped, a credit already refunded).
        let changed = tx.execute(
            "UPDATE sales SET state = ?3, reason = ?2
             WHERE id = ?1 AND state NOT IN (?4, ?5, ?6)",
            params![
                sale_id.0,
                reason,
                SaleState::Owed,
                SaleState::Poured,
                SaleState::Settled,
                SaleState::Refunded
            ],
        )?;
        if changed == 0 {
            // Nothing owed: it was poured, settled or refunded already (or is unknown).
            tx.commit()?;
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO transitions (sale_id, kind, at_us, detail) VALUES (?1, 'failed', ?2, ?3), (?1, 'credited', ?2, ?3)",
            params![sale_id.0, now_us(), reason],
        )?;
        let attempts: i64 = tx
            .query_row(
                "SELECT pour_attempts FROM sales WHERE id = ?1",
                params![sale_id.0],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        tx.commit()?;
        Ok(attempts < MAX_AUTOMATIC_POURS)
    }

    /// A confirmed payment for an invoice that is not on screen. If it is one of ours and
    /// was never poured, it becomes owed and its sale id is returned; otherwise nothing.
    pub fn record_late_payment(
        &mut self,
        invoice_id: &InvoiceId,
    ) -> Result<Option<SaleId>, LedgerError> {
        let tx = self.conn.transaction()?;
        let row: Option<(String, SaleState)> = tx
            .query_row(
                "SELECT id, state FROM sales WHERE invoice_id = ?1",
                params![invoice_id.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((id, state)) = row else {
            return Ok(None);
        };
        if !state.unpaid() {
            return Ok(None);
        }
        let at = now_us();
        tx.execute(
            "UPDATE sales SET state = ?2, reason = 'paid after the customer left the payment screen' WHERE id = ?1",
            params![id, SaleState::Owed],
        )?;
        tx.execute(
            "INSERT INTO transitions (sale_id, kind, at_us) VALUES (?1, 'paid', ?2), (?1, 'credited', ?2)",
            params![id, at],
        )?;
        tx.commit()?;
        Ok(Some(SaleId(id)))
    }

    /// At start, before anything else: sales whose pour began but never finished (crash,
    /// power cut) become owed. Returns them.
    pub fn recover_interrupted(&mut self) -> Result<Vec<SaleId>, LedgerError> {
        let ids: Vec<String> = {
            let mut st = self.conn.prepare(INTERRUPTED)?;
            let rows = st.query_map(params![SaleState::Pouring], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for id in &ids {
            self.record_owed(&SaleId(id.clone()), "the machine stopped during the pour")?;
        }
        Ok(ids.into_iter().map(SaleId).collect())
    }

    pub fn owed(&self) -> Result<Vec<Owed>, LedgerError> {
        let mut st = self.conn.prepare(&owed_query())?;
        let rows = st.query_map(params![SaleState::Owed], owed_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One owed credit, if the sale is owed.
    pub fn owed_sale(&self, sale_id: &SaleId) -> Result<Option<Owed>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {OWED_COLUMNS} FROM sales s WHERE s.id = ?1 AND s.state = ?2"),
                params![sale_id.0, SaleState::Owed],
                owed_row,
            )
            .optional()?)
    }

    /// Starts the customer's pour of an owed credit: only one start wins, only while it is
    /// owed, and only if the machine has not already begun two pours for this sale.
    pub fn begin_credit_pour(&mut self, sale_id: &SaleId) -> Result<(), LedgerError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE sales SET state = ?3, pour_attempts = pour_attempts + 1
             WHERE id = ?1 AND state = ?4 AND pour_attempts < ?2",
            params![
                sale_id.0,
                MAX_AUTOMATIC_POURS,
                SaleState::Pouring,
                SaleState::Owed
            ],
        )?;
        if n != 1 {
            return Err(LedgerError::AlreadyPoured);
        }
        tx.execute(
            "INSERT INTO transitions (sale_id, kind, at_us) VALUES (?1, 'pour_started', ?2)",
            params![sale_id.0, now_us()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Public owed credits with the wall-clock time (µs) they last became owed, oldest
    /// first. Used once at start: the running machine keeps its offers on the monotonic
    /// clock.
    pub fn public_credits(&self) -> Result<Vec<(Owed, i64)>, LedgerError> {
        let mut st = self.conn.prepare(&public_credits_query())?;
        let rows = st.query_map(params![MAX_AUTOMATIC_POURS, SaleState::Owed], |r| {
            Ok((owed_row(r)?, r.get::<_, Option<i64>>(7)?.unwrap_or(0)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest sale id of the `S<unix seconds>-<hex>` form, to keep new ids above it
    /// whatever the wall clock says.
    pub fn newest_sale_id(&self) -> Result<Option<String>, LedgerError> {
        Ok(self
            .conn
            .query_row(NEWEST_SALE_ID, [], |r| r.get(0))
            .optional()?)
    }

    /// A small durable fact (see `meta` in [`schema`]).
    pub fn meta(&self, key: &str) -> Result<Option<String>, LedgerError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// The operator settled an owed credit by hand (a drink or cash given).
    pub fn mark_settled(&mut self, sale_id: &SaleId) -> Result<bool, LedgerError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE sales SET state = ?2 WHERE id = ?1 AND state = ?3",
            params![sale_id.0, SaleState::Settled, SaleState::Owed],
        )?;
        if n == 1 {
            tx.execute(
                "INSERT INTO transitions (sale_id, kind, at_us) VALUES (?1, 'settled', ?2)",
                params![sale_id.0, now_us()],
            )?;
        }
        tx.commit()?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Msat;
    use crate::pump::Channel;
    use crate::vend::Product;
    use std::time::Duration;

    fn sale(id: &str) -> (Sale, Invoice) {
        (
            Sale {
                id: SaleId(id.into()),
                product: Product {
                    index: 0,
                    name: "Cola".into(),
                    price: crate::money::Price::Sats(Msat::from_sat(2100).unwrap()),
                    pour: Duration::from_secs(4),
                    channel: Channel::A,
                    sat_bounds: None,
                    volume_ml: None,
                    sold_out: false,
                },
            },
            Invoice {
                id: InvoiceId(format!("inv-{id}")),
                bolt11: "lnbcrt1...".into(),
                payment_hash: format!("hash-{id}"),
                amount: Msat::from_sat(2100).unwrap(),
                expires_at_unix: 2_000_000_000,
            },
        )
    }

    #[test]
    fn a_payment_can_start_only_one_pour() {
        let mut l = Ledger::in_memory().unwrap();
        let (s, i) = sale("a");
        l.record_created(&s, "sim", &i).unwrap();
        l.begin_pour(&s.id, &i.id).unwrap();
        assert!(matches!(
            l.begin_pour(&s.id, &i.id),
            Err(LedgerError::AlreadyPoured)
        ));
        l.record_poured(&s.id).unwrap();
        assert_eq!(l.pour_count().unwrap(), 1);
        assert_eq!(l.sale_state(&s.id).unwrap(), Some(SaleState::Poured));
    }

    #[test]
    fn a_pour_for_an_unknown_sale_is_refused() {
        let mut l = Ledger::in_memory().unwrap();
        assert!(matches!(
            l.begin_pour(&SaleId("x".into()), &InvoiceId("y".into())),
            Err(LedgerError::UnknownSale(_))
        ));
    }

    #[test]
    fn late_payments_for_our_abandoned_invoices_become_owed_once() {
        let mut l = Ledger::in_memory().unwrap();
        let (s, i) = sale("b");
        l.record_created(&s, "sim", &i).unwrap();
        l.record_abandoned(&s.id, Abandoned::Cancelled).unwrap();
        assert_eq!(l.record_late_payment(&i.id).unwrap(), Some(s.id.clone()));
        assert_eq!(l.record_late_payment(&i.id).unwrap(), None, "second report");
        assert_eq!(
            l.record_late_payment(&InvoiceId("not ours".into()))
                .unwrap(),
            None
        );
        let owed = l.owed().unwrap();
        assert_eq!(owed.len(), 1);
        assert_eq!(owed[0].price_msat, 2_100_000);
    }

    #[test]
    fn a_late_report_of_a_poured_payment_owes_nothing() {
        let mut l = Ledger::in_memory().unwrap();
        let (s, i) = sale("c");
        l.record_created(&s, "sim", &i).unwrap();
        l.begin_pour(&s.id, &i.id).unwrap();
        l.record_poured(&s.id).unwrap();
        assert_eq!(l.record_late_payment(&i.id).unwrap(), None);
        assert!(l.owed().unwrap().is_empty());
    }

    #[test]
    fn an_interrupted_pour_is_owed_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (s, i) = sale("d");
        {
            let mut l = Ledger::open(dir.path()).unwrap();
            l.record_created(&s, "sim", &i).unwrap();
            l.begin_pour(&s.id, &i.id).unwrap();
        }
        let mut l = Ledger::open(dir.path()).unwrap();
        assert_eq!(l.recover_interrupted().unwrap(), vec![s.id.clone()]);
        assert_eq!(l.owed().unwrap()[0].sale_id, s.id);
        assert!(matches!(
            l.begin_pour(&s.id, &i.id),
            Err(LedgerError::AlreadyPoured)
        ));
    }

    #[test]
    fn open_invoices_are_the_unpaid_unexpired_ones() {
        let mut l = Ledger::in_memory().unwrap();
        let (s, i) = sale("e");
        l.record_created(&s, "sim", &i).unwrap();
        l.record_abandoned(&s.id, Abandoned::Cancelled).unwrap();
        assert_eq!(l.open_invoices(1_000).unwrap().len(), 1);
        assert_eq!(l.open_invoices(2_000_000_001).unwrap().len(), 0);
    }

    #[test]
    fn a_credit_is_poured_at_most_once_and_can_be_settled_or_refunded_instead() {
        let mut l = Ledger::in_memory().unwrap();
        let (s, i) = sale("f");
        l.record_created(&s, "sim", &i).unwrap();
        l.begin_pour(&s.id, &i.id).unwrap();
        assert!(l.record_owed(&s.id, "pump: jam").unwrap(), "public");
        assert_eq!(l.public_credits().unwrap().len(), 1);
        l.begin_credit_pour(&s.id).unwrap();
        assert!(matches!(
            l.begin_credit_pour(&s.id),
            Err(LedgerError::AlreadyPoured)
        ));
        l.record_poured(&s.id).unwrap();
        assert!(l.owed().unwrap().is_empty());
        assert!(!l.mark_settled(&s.id).unwrap(), "a poured sale is not owed");

        let (s2, i2) = sale("g");
        l.record_created(&s2, "sim", &i2).unwrap();
        l.record_late_payment(&i2.id).unwrap();
        let whole = l.owed_sale(&s2.id).unwrap().unwrap().value();
        assert_eq!(
            whole,
            Msat::from_sat(2100).unwrap(),
            "nothing poured: all of it"
        );
        assert!(l
            .record_refunded(&s2.id, whole, "https://pay.example/pp/1")
            .unwrap());
        assert!(
            !l.record_refunded(&s2.id, whole, "again").unwrap(),
            "refunded once"
        );
        assert_eq!(
            l.refunded(&s2.id).unwrap(),
            Some((Some(whole), "https://pay.example/pp/1".to_string()))
        );
        assert!(matches!(
            l.begin_credit_pour(&s2.id),
            Err(LedgerError::AlreadyPoured)
        ));
        assert_eq!(l.sale_state(&s2.id).unwrap(), Some(SaleState::Refunded));
    }

    #[test]
    fn a_partly_poured_credit_is_worth_its_undelivered_share_and_the_refund_records_it() {
        let mut l = Ledger::in_memory().unwrap();
        let (s, i) = sale("p");
        l.record_created(&s, "sim", &i).unwrap();
        l.begin_pour(&s.id, &i.id).unwrap();
        // 120 of 300 ml poured, 180 owed: 60 % of 2,100 sats.
        l.record_pour_ml(&s.id, &["Cola"], 120).unwrap();
        l.set_owed_ml(&s.id, Some(180)).unwrap();
        l.record_owed(&s.id, "short pour: 120 of 300 ml").unwrap();
        let o = l.owed_sale(&s.id).unwrap().unwrap();
        assert_eq!(o.value(), Msat::from_sat(1260).unwrap());
        assert!(o.is_partial());
        assert_eq!(
            o.value_text(),
            "1,260 sats of 2,100 sats (180 of 300 ml owed)"
        );
        assert!(l.record_refunded(&s.id, o.value(), "by hand").unwrap());
        assert_eq!(
            l.refunded(&s.id).unwrap(),
            Some((Some(Msat::from_sat(1260).unwrap()), "by hand".to_string()))
        );
        // A dry tank before the first drop: owed_ml is the whole drink, so is the value.
        let (s, i) = sale("q");
        l.record_created(&s, "sim", &i).unwrap();
        l.begin_pour(&s.id, &i.id).unwrap();
        l.set_owed_ml(&s.id, Some(300)).unwrap();
        l.record_owed(&s.id, "no flow").unwrap();
        let o = l.owed_sale(&s.id).unwrap().unwrap();
        assert_eq!(o.value(), Msat::from_sat(2100).unwrap());
        assert!(!o.is_partial());
        assert_eq!(o.value_text(), "2,100 sats");
        // A refund recorded by an older lnvend has no amount; a sale never refunded, nothing.
        l.conn
            .execute(
                "INSERT INTO transitions (sale_id, kind, at_us, detail) VALUES ('q', 'refunded', 1, 'by hand, receipt q')",
                [],
            )
            .unwrap();
        assert_eq!(
            l.refunded(&s.id).unwrap(),
            Some((None, "by hand, receipt q".to_string()))
        );
        assert_eq!(l.refunded(&SaleId("p2".into())).unwrap(), None);
    }

    #[test]
    fn totals_count_only_poured_sales() {
        let mut l = Ledger::in_memory().unwrap();
        for id in ["h1", "h2", "h3"] {
            let (s, i) = sale(id);
            l.record_created(&s, "sim", &i).unwrap();
            if id != "h3" {
                l.begin_pour(&s.id, &i.id).unwrap();
                l.record_poured(&s.id).unwrap();
            }
        }
        assert_eq!(
            l.totals_since(0).unwrap(),
            Totals {
                count: 2,
                msat: 4_200_000
            }
        );
        let rows = l.sales_since(0, 20).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(l.sales_since(0, 2).unwrap().len(), 2);
    }

    #[test]
    fn an_interrupted_credit_pour_goes_to_the_operator_never_back_to_the_public() {
        let mut l = Ledger::in_memory().unwrap();
        let (s, i) = sale("k");
        l.record_created(&s, "sim", &i).unwrap();
        l.begin_pour(&s.id, &i.id).unwrap();
        // The paid pour is interrupted: the customer may tap it once.
        assert_eq!(l.recover_interrupted().unwrap(), vec![s.id.clone()]);
        assert!(l.owed_sale(&s.id).unwrap().unwrap().public);
        l.begin_credit_pour(&s.id).unwrap();
        // The credit pour is interrupted too (a crash, or its record_poured failed).
        assert_eq!(l.recover_interrupted().unwrap(), vec![s.id.clone()]);
        let owed = l.owed_sale(&s.id).unwrap().unwrap();
        assert!(!owed.public, "second interruption: operator only");
        assert!(l.public_credits().unwrap().is_empty());
        assert!(matches!(
            l.begin_credit_pour(&s.id),
            Err(LedgerError::AlreadyPoured)
        ));
        assert_eq!(
            l.owed().unwrap().len(),
            1,
            "still owed, in the operator's list"
        );
        assert!(l.mark_settled(&s.id).unwrap());
        // The same holds when the credit pour fails while running.
        let (s2, i2) = sale("m");
        l.record_created(&s2, "sim", &i2).unwrap();
        l.begin_pour(&s2.id, &i2.id).unwrap();
        assert!(l.record_owed(&s2.id, "pump: jam").unwrap());
        l.begin_credit_pour(&s2.id).unwrap();
        assert!(!l.record_owed(&s2.id, "pump: jam again").unwrap());
    }

    #[test]
    fn a_ledger_written_before_versioning_opens_and_migrates_with_every_sale_intact() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/ledger/v1-from-25a8c75.db"
            ),
            dir.path().join("sales.db"),
        )
        .unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        let version: u32 = l
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, schema::LATEST);
        let states: Vec<(String, SaleState)> = l
            .sales_since(0, 100)
            .unwrap()
            .into_iter()
            .map(|r| (r.sale_id.0, r.state))
            .collect();
        assert_eq!(states.len(), 10);
        let state = |id: &str| {
            states
                .iter()
                .find(|(s, _)| s == id)
                .map(|(_, st)| *st)
                .unwrap()
        };
        assert_eq!(state("S1764000000-0001"), SaleState::Poured);
        assert_eq!(state("S1764000010-0002"), SaleState::Cancelled);
        assert_eq!(state("S1764000060-0007"), SaleState::Refunded);
        assert_eq!(state("S1764000080-0009"), SaleState::Pouring);
        assert_eq!(l.pour_count().unwrap(), 6);
        // The pour counts came over: the credit already poured twice is not public.
        let attempts = |id: &str| -> i64 {
            l.conn
                .query_row(
                    "SELECT pour_attempts FROM sales WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .unwrap()
        };
        assert_eq!(attempts("S1764000070-0008"), 2);
        assert_eq!(attempts("S1764000000-0001"), 1);
        assert_eq!(attempts("S1764000090-000A"), 0);
        let owed: Vec<String> = l.owed().unwrap().into_iter().map(|o| o.sale_id.0).collect();
        assert_eq!(owed, vec!["S1764000030-0004", "S1764000040-0005"]);
        // And the old file keeps working: the interrupted pour is owed, a new sale records.
        assert_eq!(
            l.recover_interrupted().unwrap(),
            vec![SaleId("S1764000080-0009".into())]
        );
        let (s, i) = sale("new");
        l.record_created(&s, "sim", &i).unwrap();
        assert_eq!(
            l.newest_sale_id().unwrap().as_deref(),
            Some("S1764000090-000A")
        );
        drop(l);
        // Opening it again is no migration at all.
        Ledger::open(dir.path()).unwrap();
    }

    #[test]
    fn sale_states_keep_the_strings_every_old_file_holds() {
        let strings: Vec<&str> = SaleState::ALL.iter().map(|v| v.as_str()).collect();
        assert_eq!(
            strings,
            [
                "created",
                "cancelled",
                "expired",
                "pouring",
                "poured",
                "owed",
                "settled",
                "refunded",
                "returned"
            ]
        );
        for v in SaleState::ALL {
            assert_eq!(SaleState::parse(v.as_str()), Some(v));
            // `lnvend sales` prints the state with Display: the same word as in the file.
            assert_eq!(v.to_string(), v.as_str());
        }
        assert_eq!(SaleState::parse("Poured"), None);
        assert_eq!(SaleState::parse(""), None);
    }

    #[test]
    fn an_unknown_state_in_the_file_is_an_error_not_a_guess() {
        let mut l = Ledger::in_memory().unwrap();
        let (s, i) = sale("u");
        l.record_created(&s, "sim", &i).unwrap();
        l.conn
            .execute(
                "UPDATE sales SET state = 'half-poured' WHERE id = ?1",
                params![s.id.0],
            )
            .unwrap();
        let err = l.sale_state(&s.id).unwrap_err();
        assert!(err.to_string().contains("half-poured"), "{err}");
        assert!(l.sales_since(0, 10).is_err());
        // A payment reported for it neither pours nor is silently dropped as "not ours".
        assert!(l.record_late_payment(&i.id).is_err());
        assert!(l.owed().unwrap().is_empty());
    }

    #[test]
    fn the_ledger_sql_names_sale_states_only_through_sale_state() {
        let src = include_str!("mod.rs");
        let code = &src[..src.find("#[cfg(test)]").unwrap()];
        for pat in ["state = '", "state IN ('", "state='", "state IN('"] {
            assert!(
                !code.contains(pat),
                "a sale state spelled in SQL ({pat}…): bind a SaleState instead"
            );
        }
    }

    #[test]
    fn meta_values_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut l = Ledger::open(dir.path()).unwrap();
            assert_eq!(l.meta("pin_failures").unwrap(), None);
            l.set_meta("pin_failures", "3").unwrap();
            l.set_meta("pin_failures", "4").unwrap();
        }
        let l = Ledger::open(dir.path()).unwrap();
        assert_eq!(l.meta("pin_failures").unwrap().as_deref(), Some("4"));
    }
}
