//! The vend cycle's rules for pouring by volume: a sold-out product is never sold, a dry
//! tank owes the customer and sells the product out without stopping the machine, and a
//! short pour owes the rest.

use super::*;
use crate::backend::InvoiceId;
use crate::money::Msat;

fn product(sold_out: bool) -> Product {
    Product {
        index: 2,
        name: "Water".into(),
        price: Price::Sats(Msat::from_sat(500).unwrap()),
        pour: Duration::from_secs(20),
        channel: Channel::A,
        sat_bounds: None,
        volume_ml: Some(300),
        sold_out,
    }
}

fn pouring(now: Instant) -> State {
    State::Pouring {
        sale: Sale {
            id: SaleId("s1".into()),
            product: product(false),
        },
        invoice_id: InvoiceId("i1".into()),
        started: now,
        ends: now + Duration::from_secs(20),
    }
}

#[test]
fn a_sold_out_product_cannot_be_tapped_or_poured_as_a_credit() {
    let now = Instant::now();
    let tap = |sold_out| Event::ProductTapped {
        product: product(sold_out),
        sale_id: SaleId("s1".into()),
        give_up_at: now + Duration::from_secs(10),
    };
    let (s, e) = step(State::Idle, tap(true), now);
    assert_eq!((s, e), (State::Idle, vec![]));
    let (s, e) = step(State::Idle, tap(false), now);
    assert_eq!(s.name(), "CreatingInvoice");
    assert!(matches!(&e[..], [Effect::CreateInvoice { .. }]));
    let credit = Event::CreditTapped {
        sale: Sale {
            id: SaleId("s0".into()),
            product: product(true),
        },
        invoice_id: InvoiceId("i0".into()),
    };
    let (s, e) = step(State::Idle, credit, now);
    assert_eq!((s, e), (State::Idle, vec![]));
}

#[test]
fn no_flow_owes_the_sale_sells_the_product_out_and_the_machine_sells_on() {
    let now = Instant::now();
    let failure = PourFailure::NoFlow("no pulse in 1500 ms".into());
    let (s, e) = step(
        pouring(now),
        Event::PourFailed {
            sale_id: SaleId("s1".into()),
            failure: failure.clone(),
        },
        now,
    );
    assert_eq!(s.name(), "Fault");
    assert_eq!(
        e,
        vec![
            Effect::StopPump,
            Effect::RecordOwed {
                sale_id: SaleId("s1".into()),
                failure
            },
            Effect::SoldOut { index: 2 },
        ]
    );
    // The pump is fine: after the code is read the other products sell.
    let (s, _) = step(s, Event::FaultDismissed, now);
    assert_eq!(s, State::Idle);
}

#[test]
fn a_short_pour_owes_the_rest_without_selling_the_product_out() {
    let now = Instant::now();
    let failure = PourFailure::Short {
        poured_ml: 180,
        target_ml: 300,
    };
    let (s, e) = step(
        pouring(now),
        Event::PourFailed {
            sale_id: SaleId("s1".into()),
            failure: failure.clone(),
        },
        now,
    );
    assert_eq!(
        e,
        vec![
            Effect::StopPump,
            Effect::RecordOwed {
                sale_id: SaleId("s1".into()),
                failure
            },
        ]
    );
    let (s, _) = step(s, Event::Tick, now + FAULT_SCREEN);
    assert_eq!(s, State::Idle);
}
