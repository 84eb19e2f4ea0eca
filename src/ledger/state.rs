//! A sale's state as the ledger stores it: an enum for the code, the same TEXT strings in
//! the file as lnvend always wrote.

/// Where a sale is, as the `sales.state` column spells it. The column stays TEXT with the
/// strings lnvend always wrote, so files of every version read without a migration; a
/// string no variant knows is an error (a damaged or foreign file), never a guess.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SaleState {
    /// Invoice shown, not (yet) paid.
    Created,
    /// The customer left the invoice.
    Cancelled,
    /// The invoice ran out on screen.
    Expired,
    /// Paid (or an owed credit tapped) and its pour begun, not yet finished.
    Pouring,
    Poured,
    /// Paid and not poured: a credit to pour, settle or refund.
    Owed,
    /// The operator gave the drink or the money by hand.
    Settled,
    Refunded,
    /// Paid with a hold invoice and given back (cancelled) because nothing was poured:
    /// nothing was charged, nothing is owed.
    Returned,
}

impl SaleState {
    pub const ALL: [SaleState; 9] = [
        SaleState::Created,
        SaleState::Cancelled,
        SaleState::Expired,
        SaleState::Pouring,
        SaleState::Poured,
        SaleState::Owed,
        SaleState::Settled,
        SaleState::Refunded,
        SaleState::Returned,
    ];

    /// The string in the `sales.state` column.
    pub const fn as_str(self) -> &'static str {
        match self {
            SaleState::Created => "created",
            SaleState::Cancelled => "cancelled",
            SaleState::Expired => "expired",
            SaleState::Pouring => "pouring",
            SaleState::Poured => "poured",
            SaleState::Owed => "owed",
            SaleState::Settled => "settled",
            SaleState::Refunded => "refunded",
            SaleState::Returned => "returned",
        }
    }

    /// The state a column string names, or `None` for a string no lnvend ever wrote.
    pub fn parse(s: &str) -> Option<SaleState> {
        SaleState::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Never seen paid: a customer may still pay these invoices.
    pub(crate) fn unpaid(self) -> bool {
        matches!(
            self,
            SaleState::Created | SaleState::Cancelled | SaleState::Expired
        )
    }
}

impl std::fmt::Display for SaleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `sales.state` string no variant knows.
#[derive(Debug, thiserror::Error)]
#[error("unknown sale state {0:?} in the sales ledger")]
pub struct UnknownSaleState(String);

impl rusqlite::types::FromSql for SaleState {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let s = v.as_str()?;
        SaleState::parse(s).ok_or_else(|| {
            // A damaged file could hold anything: enough of it to recognise, not all of it.
            let shown: String = s.chars().take(40).collect();
            rusqlite::types::FromSqlError::Other(Box::new(UnknownSaleState(shown)))
        })
    }
}

impl rusqlite::types::ToSql for SaleState {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}
