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
        held: false,
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
            delivered_ml: 0,
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
            delivered_ml: 0,
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

#[test]
fn a_pour_that_ends_in_trouble_a_few_ml_short_is_poured_and_owes_nothing() {
    let now = Instant::now();
    let finished = |trouble| Event::PourFinished {
        sale_id: SaleId("s1".into()),
        trouble: Some(trouble),
    };
    let poured = Effect::RecordPoured {
        sale_id: SaleId("s1".into()),
    };
    // The tank ran dry just before the end: thanks, and the product is sold out.
    let (s, e) = step(
        pouring(now),
        finished(PourFailure::NoFlow("dry".into())),
        now,
    );
    assert_eq!(s.name(), "ThankYou");
    assert_eq!(
        e,
        vec![
            poured.clone(),
            Effect::StopPump,
            Effect::SoldOut { index: 2 }
        ]
    );
    let (s, _) = step(s, Event::Tick, now + THANK_YOU);
    assert_eq!(s, State::Idle);
    // A pump fault (the anti-drip run, a GPIO error): no credit, and no next sale either.
    let (s, e) = step(pouring(now), finished(PourFailure::Pump("jam".into())), now);
    assert_eq!(
        s,
        State::OutOfService {
            reason: OutOfService::Pump("jam".into())
        }
    );
    assert_eq!(e, vec![poured, Effect::StopPump]);
}
