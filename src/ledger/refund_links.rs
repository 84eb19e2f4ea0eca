//! Refund claim links waiting for the operator: a BTCPay refund is a pull payment the
//! customer claims from its link, and until the operator dismisses it the link stays in
//! the Credits tab and in `lnvend sales`, whoever left the menu before the answer came.
//!
//! lnvend does not ask BTCPay whether a link was claimed (the store's Pull Payments page
//! shows that); the operator's Dismiss ends it. Kept in `meta` under one key per sale, so
//! no schema change, and the list is read through `meta`'s key index: it grows with the
//! links not yet dismissed, never with the ledger's age.

use rusqlite::params;

use super::{Ledger, LedgerError};
use crate::money::Msat;
use crate::vend::SaleId;

/// A recorded refund whose claim link the operator has not dismissed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundLink {
    pub sale_id: SaleId,
    pub link: String,
    /// What it gives back (None: recorded before lnvend kept the amount).
    pub amount: Option<Msat>,
}

impl RefundLink {
    /// As the operator reads it: "S…: 2,100 sats, claim at https://…".
    pub fn text(&self) -> String {
        match self.amount {
            Some(a) => format!(
                "{}: {}, claim at {}",
                self.sale_id,
                a.display_sats(),
                self.link
            ),
            None => format!("{}: claim at {}", self.sale_id, self.link),
        }
    }
}

/// `meta` keys of the links: this, then the sale id.
const PREFIX: &str = "refund_link:";
/// The first key after every key that starts with [`PREFIX`] (':' + 1 is ';').
const PREFIX_END: &str = "refund_link;";

impl Ledger {
    /// Keeps the claim link of `sale`'s recorded refund until it is dismissed.
    pub fn keep_refund_link(&mut self, sale: &SaleId, link: &str) -> Result<(), LedgerError> {
        self.set_meta(&format!("{PREFIX}{}", sale.0), link)
    }

    /// The refund links not dismissed yet, by sale id (oldest sale first).
    pub fn refund_links(&self) -> Result<Vec<RefundLink>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, value FROM meta WHERE key >= ?1 AND key < ?2 ORDER BY key")?;
        let rows = stmt.query_map(params![PREFIX, PREFIX_END], |r| {
            let key: String = r.get(0)?;
            Ok((
                SaleId(key.trim_start_matches(PREFIX).to_string()),
                r.get(1)?,
            ))
        })?;
        let found: Vec<(SaleId, String)> = rows.collect::<Result<_, _>>()?;
        found
            .into_iter()
            .map(|(sale_id, link)| {
                let amount = self.refunded(&sale_id)?.and_then(|(a, _)| a);
                Ok(RefundLink {
                    sale_id,
                    link,
                    amount,
                })
            })
            .collect()
    }

    /// The operator dismissed `sale`'s link (claimed, or handed over otherwise). False when
    /// there was none.
    pub fn dismiss_refund_link(&mut self, sale: &SaleId) -> Result<bool, LedgerError> {
        let n = self.conn.execute(
            "DELETE FROM meta WHERE key = ?1",
            params![format!("{PREFIX}{}", sale.0)],
        )?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refund_link_stays_until_dismissed_and_other_meta_is_not_one() {
        let mut l = Ledger::in_memory().unwrap();
        l.set_meta("pin_failures", "2").unwrap();
        l.set_meta("refund_linkage", "not a link").unwrap();
        let (a, b) = (SaleId("S2-0001".into()), SaleId("S1-0001".into()));
        l.keep_refund_link(&a, "https://pay.example/pull-payments/PP2")
            .unwrap();
        l.keep_refund_link(&b, "https://pay.example/pull-payments/PP1")
            .unwrap();
        let links = l.refund_links().unwrap();
        let found: Vec<(&SaleId, &str)> = links
            .iter()
            .map(|r| (&r.sale_id, r.link.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (&b, "https://pay.example/pull-payments/PP1"),
                (&a, "https://pay.example/pull-payments/PP2")
            ]
        );
        assert_eq!(
            links[0].text(),
            "S1-0001: claim at https://pay.example/pull-payments/PP1",
            "no amount recorded for this sale"
        );
        assert!(l.dismiss_refund_link(&b).unwrap());
        assert!(!l.dismiss_refund_link(&b).unwrap(), "dismissed once");
        assert_eq!(l.refund_links().unwrap().len(), 1);
        assert_eq!(l.meta("pin_failures").unwrap().as_deref(), Some("2"));
    }
}
