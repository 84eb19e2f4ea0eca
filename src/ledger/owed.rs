//! Owed credits: a paid sale not (fully) poured, what it is worth (the whole price, or a
//! partly poured drink's undelivered share), and its refund's record. Kept apart from the
//! ledger's sale transitions in `mod.rs` because the money arithmetic of a credit lives here.

use rusqlite::{params, OptionalExtension};

use super::{now_us, Ledger, LedgerError, SaleState, MAX_AUTOMATIC_POURS};
use crate::money::Msat;
use crate::vend::SaleId;

/// A sale that was paid and not poured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owed {
    pub sale_id: SaleId,
    pub product: String,
    pub price_msat: u64,
    pub reason: String,
    /// May be offered on the public screen ("tap to pour"); false once a credit pour of
    /// this sale was interrupted too: then only the operator settles or refunds it.
    pub public: bool,
    /// What its pours measured so far, and what of the drink is still owed (None: not
    /// known, e.g. a timed pour that failed: then the whole drink is owed).
    pub poured_ml: Option<u32>,
    pub owed_ml: Option<u32>,
}

impl Owed {
    /// The money this credit is worth: the whole price, or for a drink that was partly
    /// poured (a short pour, a tank that ran dry mid-pour) only the undelivered share,
    /// `owed_ml` of the `poured_ml + owed_ml` the drink was, rounded up to a whole sat (see
    /// [`Msat::share_rounded_up`]). The share is taken from the ml this sale recorded, not
    /// from the product's volume today, so an operator's later change to the product does
    /// not change what is owed.
    pub fn value(&self) -> Msat {
        let price = Msat::from_msat(self.price_msat);
        let Some(owed) = self.owed_ml else {
            return price;
        };
        let drink = u64::from(self.poured_ml.unwrap_or(0)) + u64::from(owed);
        price
            .share_rounded_up(u64::from(owed), drink)
            .unwrap_or(price)
    }

    /// Whether nothing of the drink is left to give: a row whose pours delivered it all
    /// (`owed_ml` 0 after some ml were poured, as a damaged or hand-edited file may hold).
    /// Such a credit is neither offered, poured (a 0 ml pour) nor refunded (a 0 sat
    /// refund); the operator settles it.
    pub fn nothing_owed(&self) -> bool {
        self.value() == Msat::ZERO
    }

    /// Whether [`Owed::value`] is less than the price (part of the drink was poured).
    pub fn is_partial(&self) -> bool {
        self.value() < Msat::from_msat(self.price_msat)
    }

    /// For the operator and `lnvend sales`: "360 of 600 sats (180 of 300 ml owed)", or
    /// "600 sats" for a whole drink.
    pub fn value_text(&self) -> String {
        let price = Msat::from_msat(self.price_msat);
        match (self.is_partial(), self.owed_ml) {
            (true, Some(owed)) => format!(
                "{} of {} ({owed} of {} ml owed)",
                self.value().display_sats(),
                price.display_sats(),
                // u64: a damaged row's ml are clamped to u32::MAX each.
                u64::from(self.poured_ml.unwrap_or(0)) + u64::from(owed)
            ),
            (true, None) | (false, _) => price.display_sats(),
        }
    }
}

/// The columns [`owed_row`] reads, in its order.
pub(super) const OWED_COLUMNS: &str =
    "s.id, s.product, s.price_msat, COALESCE(s.reason, ''), s.pour_attempts, s.poured_ml, s.owed_ml";

/// Reads an `Owed` from [`OWED_COLUMNS`].
pub(super) fn owed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Owed> {
    Ok(Owed {
        sale_id: SaleId(r.get(0)?),
        product: r.get(1)?,
        price_msat: r.get::<_, i64>(2)? as u64,
        reason: r.get(3)?,
        public: r.get::<_, i64>(4)? < MAX_AUTOMATIC_POURS,
        poured_ml: r.get::<_, Option<i64>>(5)?.map(ml_of),
        owed_ml: r.get::<_, Option<i64>>(6)?.map(ml_of),
    })
}

/// An ml column as the code holds it (a damaged file's negative or huge value is clamped).
fn ml_of(v: i64) -> u32 {
    v.clamp(0, i64::from(u32::MAX)) as u32
}

impl Ledger {
    /// An owed credit was refunded: `amount` given back (its [`Owed::value`]), `detail` the
    /// refund link or receipt code. The amount leads the `refunded` transition's detail as
    /// "<msat> msat; " (see [`Ledger::refunded`]): the transitions table already holds what
    /// each step was, so no schema change is needed to keep it.
    pub fn record_refunded(
        &mut self,
        sale_id: &SaleId,
        amount: Msat,
        detail: &str,
    ) -> Result<bool, LedgerError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE sales SET state = ?2 WHERE id = ?1 AND state = ?3",
            params![sale_id.0, SaleState::Refunded, SaleState::Owed],
        )?;
        if n == 1 {
            tx.execute(
                "INSERT INTO transitions (sale_id, kind, at_us, detail) VALUES (?1, 'refunded', ?2, ?3)",
                params![
                    sale_id.0,
                    now_us(),
                    format!("{} msat; {detail}", amount.as_msat())
                ],
            )?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    /// What a refunded sale was given back, and the link or receipt it was given by. The
    /// amount is `None` for a refund recorded before lnvend kept it (the whole price then).
    pub fn refunded(
        &self,
        sale_id: &SaleId,
    ) -> Result<Option<(Option<Msat>, String)>, LedgerError> {
        let detail: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT detail FROM transitions WHERE sale_id = ?1 AND kind = 'refunded'
                 ORDER BY rowid DESC LIMIT 1",
                params![sale_id.0],
                |r| r.get(0),
            )
            .optional()?;
        Ok(detail.map(|d| {
            let d = d.unwrap_or_default();
            let amount = d
                .split_once(" msat; ")
                .and_then(|(n, rest)| Some((n.parse::<u64>().ok()?, rest)));
            match amount {
                Some((msat, rest)) => (Some(Msat::from_msat(msat)), rest.to_string()),
                None => (None, d),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owed(poured_ml: Option<u32>, owed_ml: Option<u32>) -> Owed {
        Owed {
            sale_id: SaleId("s1".into()),
            product: "Water".into(),
            price_msat: 600_000,
            reason: String::new(),
            public: true,
            poured_ml,
            owed_ml,
        }
    }

    #[test]
    fn a_damaged_rows_huge_ml_are_shown_without_overflow() {
        let o = owed(Some(u32::MAX), Some(u32::MAX));
        assert_eq!(o.value(), Msat::from_msat(300_000));
        assert!(
            o.value_text().contains("8589934590 ml owed"),
            "{}",
            o.value_text()
        );
    }

    #[test]
    fn a_credit_whose_pours_delivered_everything_owes_nothing() {
        assert!(owed(Some(300), Some(0)).nothing_owed());
        assert!(!owed(Some(120), Some(180)).nothing_owed());
        assert!(!owed(None, None).nothing_owed());
        // Nothing poured and nothing recorded owed: the whole drink, as for an unknown share.
        assert!(!owed(Some(0), Some(0)).nothing_owed());
    }
}
