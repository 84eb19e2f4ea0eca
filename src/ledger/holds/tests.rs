use std::time::Duration;

use super::*;
use crate::backend::Invoice;
use crate::money::Msat;
use crate::pump::Channel;
use crate::vend::{Abandoned, Product, Sale};

fn held(l: &mut Ledger, id: &str) -> (Sale, Invoice, Preimage) {
    let pre = Preimage::random();
    let sale = Sale {
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
    };
    let invoice = Invoice {
        id: InvoiceId(format!("inv-{id}")),
        bolt11: "lnbcrt1...".into(),
        payment_hash: pre.payment_hash().to_hex(),
        amount: Msat::from_sat(2100).unwrap(),
        expires_at_unix: 2_000_000_000,
    };
    l.record_created_held(&sale, "cln", &invoice, &pre).unwrap();
    (sale, invoice, pre)
}

#[test]
fn a_hold_is_recorded_with_its_preimage_before_the_qr_and_found_at_start() {
    let mut l = Ledger::in_memory().unwrap();
    let (s, i, pre) = held(&mut l, "a");
    let (plain, plain_inv) = {
        let (mut s2, mut i2, _) = held(&mut Ledger::in_memory().unwrap(), "b");
        s2.id = SaleId("b".into());
        i2.id = InvoiceId("inv-b".into());
        (s2, i2)
    };
    l.record_created(&plain, "cln", &plain_inv).unwrap();
    let found = l.unresolved_holds().unwrap();
    assert_eq!(found.len(), 1, "only the held sale");
    assert_eq!(found[0].sale_id, s.id);
    assert_eq!(found[0].preimage, pre, "the settle after a crash needs it");
    assert_eq!(found[0].payment_hash, pre.payment_hash());
    assert_eq!(l.is_held_invoice(&i.id).unwrap(), Some(s.id.clone()));
    assert_eq!(l.is_held_invoice(&plain_inv.id).unwrap(), None);
    // Never poured: cancel.
    assert_eq!(found[0].resolution(), Resolution::Cancel);
}

#[test]
fn the_resolution_follows_the_sale_poured_owed_or_never_poured() {
    let mut l = Ledger::in_memory().unwrap();
    let (poured, pi, _) = held(&mut l, "p");
    l.begin_pour(&poured.id, &pi.id).unwrap();
    l.record_poured(&poured.id).unwrap();
    let (interrupted, ii, _) = held(&mut l, "i");
    l.begin_pour(&interrupted.id, &ii.id).unwrap();
    let (left, _, _) = held(&mut l, "l");
    l.record_abandoned(&left.id, Abandoned::Cancelled).unwrap();
    // A crash: the interrupted pour becomes owed, as today.
    assert_eq!(
        l.recover_interrupted().unwrap(),
        vec![interrupted.id.clone()]
    );
    let by_id = |id: &SaleId| {
        l.unresolved_holds()
            .unwrap()
            .into_iter()
            .find(|h| &h.sale_id == id)
            .unwrap()
            .resolution()
    };
    assert_eq!(by_id(&poured.id), Resolution::Settle);
    assert_eq!(by_id(&interrupted.id), Resolution::Settle, "settle and owe");
    assert_eq!(by_id(&left.id), Resolution::Cancel);
}

#[test]
fn a_returned_sale_owes_nothing_and_shows_returned() {
    let mut l = Ledger::in_memory().unwrap();
    let (s, i, _) = held(&mut l, "r");
    l.begin_pour(&s.id, &i.id).unwrap();
    assert!(l.mark_returned(&s.id, "pump: stalled").unwrap());
    assert_eq!(l.sale_state(&s.id).unwrap(), Some(SaleState::Returned));
    assert_eq!(
        l.unresolved_hold(&s.id).unwrap().unwrap().resolution(),
        Resolution::Cancel,
        "a crash before the cancel still cancels"
    );
    assert_eq!(
        l.record_hold_outcome(&s.id, Outcome::Canceled).unwrap(),
        None
    );
    assert_eq!(l.sale_state(&s.id).unwrap(), Some(SaleState::Returned));
    assert!(l.unresolved_holds().unwrap().is_empty());
    assert!(l.owed().unwrap().is_empty(), "nothing is owed");
}

#[test]
fn a_hold_the_node_settled_by_itself_is_a_paid_sale_owed_once() {
    let mut l = Ledger::in_memory().unwrap();
    let (s, _, _) = held(&mut l, "n");
    l.record_abandoned(&s.id, Abandoned::Expired).unwrap();
    assert_eq!(
        l.record_hold_outcome(&s.id, Outcome::Settled).unwrap(),
        Some(s.id.clone())
    );
    assert_eq!(l.sale_state(&s.id).unwrap(), Some(SaleState::Owed));
    assert!(l.unresolved_holds().unwrap().is_empty());
    // A poured sale settled: a sale as any other, nothing owed.
    let (p, pi, _) = held(&mut l, "p");
    l.begin_pour(&p.id, &pi.id).unwrap();
    l.record_poured(&p.id).unwrap();
    assert_eq!(
        l.record_hold_outcome(&p.id, Outcome::Settled).unwrap(),
        None
    );
    assert_eq!(l.sale_state(&p.id).unwrap(), Some(SaleState::Poured));
    // An unpaid hold asked to settle stays to be resolved.
    let (u, _, _) = held(&mut l, "u");
    assert_eq!(
        l.record_hold_outcome(&u.id, Outcome::NotPaid).unwrap(),
        None
    );
    assert_eq!(l.unresolved_holds().unwrap().len(), 1);
}
