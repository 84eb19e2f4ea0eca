//! The ledger's schema and its ordered migrations, versioned with SQLite's `user_version`.
//!
//! Version 1 is the schema of lnvend before versioning (its files say `user_version = 0`);
//! every later version is one migration applied in order, each in its own transaction, so
//! a power cut in the middle of an upgrade leaves the old version whole and the next start
//! tries again. A file newer than this binary knows is refused rather than misread.

use rusqlite::Connection;

use super::LedgerError;

/// The version this binary writes.
pub const LATEST: u32 = 6;

/// Version 1: the schema before versioning, unchanged (a file of that time is exactly this).
const V1: &str = "
CREATE TABLE IF NOT EXISTS sales (
    id TEXT PRIMARY KEY,
    product TEXT NOT NULL,
    price_msat INTEGER NOT NULL,
    backend TEXT NOT NULL,
    invoice_id TEXT NOT NULL UNIQUE,
    payment_hash TEXT NOT NULL,
    bolt11 TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    created_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS transitions (
    sale_id TEXT NOT NULL REFERENCES sales(id),
    kind TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS pours (
    invoice_id TEXT PRIMARY KEY,
    sale_id TEXT NOT NULL UNIQUE REFERENCES sales(id),
    started_us INTEGER NOT NULL
);
";

/// Version 2:
/// * `sales.pour_attempts` counts the pours begun for a sale (the paid pour, then at most
///   one credit pour by the customer), so a sale whose second pour is interrupted goes to
///   the operator and is never offered on the public screen again. Existing rows get the
///   number of `pour_started` transitions they already have.
/// * `meta` keeps small machine facts that must survive a power cut (the operator PIN's
///   failure count, so a power cycle gives no fresh tries).
const V2: &str = "
ALTER TABLE sales ADD COLUMN pour_attempts INTEGER NOT NULL DEFAULT 0;
UPDATE sales SET pour_attempts = (
    SELECT COUNT(*) FROM transitions t WHERE t.sale_id = sales.id AND t.kind = 'pour_started'
);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transitions_by_sale ON transitions(sale_id);
";

/// Version 3 (pouring by volume):
/// * `sales.poured_ml` is what the flow sensor measured (or a timed pour's configured ml);
///   `sales.owed_ml` is the undelivered share of a short pour, which its credit pours.
/// * `stock` keeps each product's stock in ml; `stock_moves` has one timestamped row per
///   change (the first count, every pour, a tank found dry, every refill).
const V3: &str = "
ALTER TABLE sales ADD COLUMN poured_ml INTEGER;
ALTER TABLE sales ADD COLUMN owed_ml INTEGER;
CREATE TABLE stock (
    product TEXT PRIMARY KEY,
    ml INTEGER NOT NULL,
    tank_ml INTEGER NOT NULL,
    updated_us INTEGER NOT NULL
);
CREATE TABLE stock_moves (
    product TEXT NOT NULL,
    kind TEXT NOT NULL,
    delta_ml INTEGER NOT NULL,
    stock_ml INTEGER NOT NULL,
    sale_id TEXT,
    at_us INTEGER NOT NULL
);
CREATE INDEX stock_moves_by_product ON stock_moves(product, at_us);
";

/// Version 4: `sales.fiat_amount` (a decimal string, e.g. "2.50") and `sales.fiat_currency`
/// (ISO code) record what a fiat-priced drink cost in that currency on the day it was sold,
/// for the operator's accounting (the sats amount at that day's rate is `price_msat`).
/// Both NULL for a sats price and for every sale made before this version.
const V4: &str = "
ALTER TABLE sales ADD COLUMN fiat_amount TEXT;
ALTER TABLE sales ADD COLUMN fiat_currency TEXT;
";

/// The states of a sale never seen paid, as SQL: a customer may still pay these invoices
/// ([`SaleState::unpaid`](super::SaleState)). Spelled as a literal (a macro, so the index
/// below and the queries that must match it share one text): SQLite uses a partial index
/// only for a query whose WHERE clause contains the index's own condition.
macro_rules! unpaid_sql {
    () => {
        "state IN ('created', 'cancelled', 'expired')"
    };
}
#[cfg(test)]
pub(super) const UNPAID_SQL: &str = unpaid_sql!();

/// One UTC day in microseconds: the unit of `poured_days`.
pub(super) const DAY_US: i64 = 86_400_000_000;

/// Version 5 (a ledger that grows for years; nothing on the controller's path may scan it):
/// * `sales_by_state (state, created_us)`: the few owed, pouring or recent unsettled sales
///   of one state, found without reading the millions of expired pranks around them.
/// * `sales_by_time (created_us, id)`: the newest sales (the operator's list, the ledger's
///   newest time) from the end of the index.
/// * `sales_with_payload`: the unpaid invoices that still carry their BOLT11, oldest first,
///   so the retention step ([`Ledger::drop_stale_payloads`](super::Ledger)) finds the next
///   few to empty without a scan. Emptied rows leave the index, which stays about a week
///   of invoices long.
/// * `poured_days` (per UTC day of the sale and product) and `poured_totals` (per product,
///   all time): the count and sum of poured sales, kept as each sale is poured, so the
///   operator's totals and chart read a handful of rows instead of every sale ever made.
///   Filled from the existing sales here.
const V5: &str = concat!(
    "
CREATE INDEX sales_by_state ON sales(state, created_us);
CREATE INDEX sales_by_time ON sales(created_us, id);
CREATE INDEX sales_with_payload ON sales(created_us) WHERE bolt11 <> '' AND ",
    unpaid_sql!(),
    ";
CREATE TABLE poured_days (
    day INTEGER NOT NULL,
    product TEXT NOT NULL,
    count INTEGER NOT NULL,
    msat INTEGER NOT NULL,
    PRIMARY KEY (day, product)
) WITHOUT ROWID;
CREATE TABLE poured_totals (
    product TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    msat INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO poured_days (day, product, count, msat)
    SELECT created_us / 86400000000, product, COUNT(*), SUM(price_msat) FROM sales
    WHERE state = 'poured' GROUP BY 1, 2;
INSERT INTO poured_totals (product, count, msat)
    SELECT product, SUM(count), SUM(msat) FROM poured_days GROUP BY product;
"
);

/// Version 6 (hold invoices, see `super::holds`): `holds` has one row per sale sold with a
/// hold invoice: its payment hash, the preimage lnvend made (needed to settle after a
/// crash; the ledger file is readable by lnvend's user only), and where the hold is:
/// `held` until lnvend saw the backend settle or cancel it, then `settled` or `canceled`.
/// `holds_unresolved` finds the few `held` rows at start without reading the others.
const V6: &str = "
CREATE TABLE holds (
    sale_id TEXT PRIMARY KEY REFERENCES sales(id),
    payment_hash TEXT NOT NULL,
    preimage TEXT NOT NULL,
    state TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    accepted_us INTEGER,
    resolved_us INTEGER
);
CREATE INDEX holds_unresolved ON holds(created_us) WHERE state = 'held';
";

/// The migrations, in order: `MIGRATIONS[i]` takes version `i + 1` to `i + 2`.
const MIGRATIONS: [&str; 5] = [V2, V3, V4, V5, V6];

pub(super) fn user_version(conn: &Connection) -> Result<u32, LedgerError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get::<_, u32>(0))?)
}

/// Brings the file to [`LATEST`]; returns the version it had.
pub fn migrate(conn: &mut Connection) -> Result<u32, LedgerError> {
    let mut version = user_version(conn)?;
    let found = version;
    if version == 0 {
        // Either a new file or one written before versioning: version 1 either way.
        let tx = conn.transaction()?;
        tx.execute_batch(V1)?;
        tx.pragma_update(None, "user_version", 1)?;
        tx.commit()?;
        version = 1;
    }
    if version > LATEST {
        return Err(LedgerError::TooNew {
            found: version,
            known: LATEST,
        });
    }
    while version < LATEST {
        let tx = conn.transaction()?;
        tx.execute_batch(MIGRATIONS[(version - 1) as usize])?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
        version += 1;
        tracing::info!(version, "sales ledger migrated");
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_gets_the_latest_schema() {
        let mut c = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut c).unwrap(), 0);
        assert_eq!(user_version(&c).unwrap(), LATEST);
        // Running it again is a no-op.
        assert_eq!(migrate(&mut c).unwrap(), LATEST);
    }

    #[test]
    fn v3_keeps_every_sale_and_adds_stock_with_empty_ml() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(V1).unwrap();
        c.execute_batch(V2).unwrap();
        c.pragma_update(None, "user_version", 2).unwrap();
        c.execute(
            "INSERT INTO sales (id, product, price_msat, backend, invoice_id, payment_hash, bolt11, expires_at, state, created_us)
             VALUES ('S1-0001', 'Cola', 2100000, 'sim', 'i1', 'h', 'b', 0, 'poured', 1)",
            [],
        )
        .unwrap();
        assert_eq!(migrate(&mut c).unwrap(), 2);
        assert_eq!(user_version(&c).unwrap(), LATEST);
        let (product, ml): (String, Option<i64>) = c
            .query_row("SELECT product, poured_ml FROM sales", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((product.as_str(), ml), ("Cola", None));
        let stock: i64 = c
            .query_row("SELECT COUNT(*) FROM stock", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stock, 0);
    }

    #[test]
    fn a_version_3_file_gains_the_fiat_columns_and_keeps_its_sales() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(V1).unwrap();
        c.execute_batch(V2).unwrap();
        c.execute_batch(V3).unwrap();
        c.pragma_update(None, "user_version", 3).unwrap();
        c.execute(
            "INSERT INTO sales (id, product, price_msat, backend, invoice_id, payment_hash,
                                bolt11, expires_at, state, created_us, poured_ml)
             VALUES ('S1-0001', 'Cola', 2100000, 'sim', 'i1', 'h1', 'b1', 0, 'poured', 1, 300)",
            [],
        )
        .unwrap();
        assert_eq!(migrate(&mut c).unwrap(), 3);
        assert_eq!(user_version(&c).unwrap(), LATEST);
        let row: (String, i64, Option<i64>, Option<String>, Option<String>) = c
            .query_row(
                "SELECT product, price_msat, poured_ml, fiat_amount, fiat_currency FROM sales",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(row, ("Cola".into(), 2_100_000, Some(300), None, None));
    }

    #[test]
    fn a_version_5_file_gains_the_holds_table_and_keeps_its_sales() {
        let mut c = Connection::open_in_memory().unwrap();
        for v in [V1, V2, V3, V4, V5] {
            c.execute_batch(v).unwrap();
        }
        c.pragma_update(None, "user_version", 5).unwrap();
        c.execute(
            "INSERT INTO sales (id, product, price_msat, backend, invoice_id, payment_hash,
                                bolt11, expires_at, state, created_us)
             VALUES ('S1-0001', 'Cola', 2100000, 'sim', 'i1', 'h1', 'b1', 0, 'poured', 1)",
            [],
        )
        .unwrap();
        assert_eq!(migrate(&mut c).unwrap(), 5);
        assert_eq!(user_version(&c).unwrap(), LATEST);
        let (sales, holds): (i64, i64) = c
            .query_row(
                "SELECT (SELECT COUNT(*) FROM sales), (SELECT COUNT(*) FROM holds)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((sales, holds), (1, 0));
        // The start-up query for unresolved holds uses the partial index, not a scan.
        let plan: String = c
            .query_row(
                "EXPLAIN QUERY PLAN SELECT sale_id FROM holds WHERE state = 'held' ORDER BY created_us",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("holds_unresolved"), "{plan}");
    }

    /// The service asks systemd for more start time exactly when an older lnvend's file is
    /// about to be migrated: not for a new machine, not for a file already up to date.
    #[test]
    fn an_older_file_is_known_to_need_its_migration_before_it_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            !crate::ledger::Ledger::upgrade_pending(dir.path()),
            "no file yet"
        );
        drop(crate::ledger::Ledger::open(dir.path()).unwrap());
        assert!(
            !crate::ledger::Ledger::upgrade_pending(dir.path()),
            "up to date"
        );
        let c = Connection::open(dir.path().join("sales.db")).unwrap();
        c.pragma_update(None, "user_version", LATEST - 1).unwrap();
        drop(c);
        assert!(
            crate::ledger::Ledger::upgrade_pending(dir.path()),
            "one version behind"
        );
    }

    #[test]
    fn v5_indexes_every_older_file_and_counts_its_poured_sales_once() {
        for from in 1..=4u32 {
            let mut c = Connection::open_in_memory().unwrap();
            c.execute_batch(V1).unwrap();
            for m in &MIGRATIONS[..from as usize - 1] {
                c.execute_batch(m).unwrap();
            }
            c.pragma_update(None, "user_version", from).unwrap();
            // Two poured sales on one day, one the next, and a prank (columns of v1 only).
            for (id, state, day) in [
                ("S1", "poured", 20_000),
                ("S2", "poured", 20_000),
                ("S3", "poured", 20_001),
                ("S4", "expired", 20_001),
            ] {
                c.execute(
                    "INSERT INTO sales (id, product, price_msat, backend, invoice_id, payment_hash,
                                        bolt11, expires_at, state, created_us)
                     VALUES (?1, 'Cola', 2100000, 'sim', ?1, 'h', 'lnbc1', 0, ?2, ?3)",
                    rusqlite::params![id, state, day * DAY_US + 3_600_000_000],
                )
                .unwrap();
            }
            assert_eq!(migrate(&mut c).unwrap(), from);
            assert_eq!(user_version(&c).unwrap(), LATEST, "from v{from}");
            let l = super::super::Ledger { conn: c };
            let all = l.totals_since(0).unwrap();
            assert_eq!((all.count, all.msat), (3, 6_300_000), "from v{from}");
            assert_eq!(
                l.poured_per_day(20_000 * DAY_US).unwrap(),
                vec![(20_000, 2, 4_200_000), (20_001, 1, 2_100_000)],
                "from v{from}"
            );
            assert_eq!(l.sales_since(0, 10).unwrap().len(), 4, "from v{from}");
            let indexes: Vec<String> = l
                .conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sales' AND sql IS NOT NULL ORDER BY name")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(
                indexes,
                ["sales_by_state", "sales_by_time", "sales_with_payload"],
                "from v{from}"
            );
        }
    }

    #[test]
    fn the_unpaid_states_in_sql_are_the_unpaid_sale_states() {
        let unpaid: Vec<String> = super::super::SaleState::ALL
            .into_iter()
            .filter(|s| s.unpaid())
            .map(|s| format!("'{s}'"))
            .collect();
        assert_eq!(UNPAID_SQL, format!("state IN ({})", unpaid.join(", ")));
    }

    #[test]
    fn a_file_from_a_newer_lnvend_is_refused() {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "user_version", LATEST + 1).unwrap();
        assert!(matches!(
            migrate(&mut c),
            Err(LedgerError::TooNew { found, .. }) if found == LATEST + 1
        ));
    }
}
