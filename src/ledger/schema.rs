//! The ledger's schema and its ordered migrations, versioned with SQLite's `user_version`.
//!
//! Version 1 is the schema of lnvend before versioning (its files say `user_version = 0`);
//! every later version is one migration applied in order, each in its own transaction, so
//! a power cut in the middle of an upgrade leaves the old version whole and the next start
//! tries again. A file newer than this binary knows is refused rather than misread.

use rusqlite::Connection;

use super::LedgerError;

/// The version this binary writes.
pub const LATEST: u32 = 4;

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

/// The migrations, in order: `MIGRATIONS[i]` takes version `i + 1` to `i + 2`.
const MIGRATIONS: [&str; 3] = [V2, V3, V4];

fn user_version(conn: &Connection) -> Result<u32, LedgerError> {
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
        assert_eq!(user_version(&c).unwrap(), 4);
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
    fn a_file_from_a_newer_lnvend_is_refused() {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "user_version", LATEST + 1).unwrap();
        assert!(matches!(
            migrate(&mut c),
            Err(LedgerError::TooNew { found, .. }) if found == LATEST + 1
        ));
    }
}
