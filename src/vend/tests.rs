//! Exhaustive tests of the vend cycle: every state against every event, then the
//! scenarios a customer or an operator would notice. Long on purpose: one test per rule of
//! the cycle, each readable on its own.

use super::*;
use crate::backend::Invoice;
use crate::money::Msat;

pub(super) fn product() -> Product {
    Product {
        index: 0,
        name: "Cola".into(),
        price: Price::Sats(Msat::from_sat(2100).unwrap()),
        pour: Duration::from_millis(4000),
        channel: Channel::A,
        sat_bounds: None,
        volume_ml: None,
        sold_out: false,
    }
}

/// How long the tests' machine waits for an invoice.
const GIVE_UP: Duration = Duration::from_secs(13);

fn creating(now: Instant) -> State {
    State::CreatingInvoice {
        sale: sale("s1"),
        give_up_at: now + GIVE_UP,
    }
}

pub(super) fn sale(id: &str) -> Sale {
    Sale {
        id: SaleId(id.into()),
        product: product(),
    }
}

pub(super) fn invoice(id: &str) -> Invoice {
    Invoice {
        id: InvoiceId(id.into()),
        bolt11: format!("lnbcrt-{id}"),
        payment_hash: format!("hash-{id}"),
        amount: Msat::from_sat(2100).unwrap(),
        expires_at_unix: 0,
    }
}

pub(super) fn t0() -> Instant {
    Instant::now()
}

pub(super) fn awaiting(now: Instant) -> State {
    State::AwaitingPayment {
        sale: sale("s1"),
        invoice: invoice("i1"),
        expires_at: now + Duration::from_secs(600),
        held: false,
    }
}

pub(super) fn pouring(now: Instant) -> State {
    State::Pouring {
        sale: sale("s1"),
        invoice_id: InvoiceId("i1".into()),
        started: now,
        ends: now + Duration::from_millis(4000),
        held: false,
    }
}

fn thank_you(now: Instant) -> State {
    State::ThankYou {
        sale: sale("s1"),
        invoice_id: InvoiceId("i1".into()),
        until: now + THANK_YOU,
    }
}

pub(super) fn fault(now: Instant, failure: PourFailure) -> State {
    State::Fault {
        sale: sale("s1"),
        invoice_id: InvoiceId("i1".into()),
        failure,
        until: now + FAULT_SCREEN,
        returned: false,
    }
}

fn oos_backend() -> State {
    State::OutOfService {
        reason: OutOfService::Backend("down".into()),
    }
}

/// One of each state.
pub(super) fn all_states(now: Instant) -> Vec<State> {
    vec![
        State::Idle,
        creating(now),
        awaiting(now),
        pouring(now),
        thank_you(now),
        oos_backend(),
        State::OutOfService {
            reason: OutOfService::Clock("not synchronised".into()),
        },
        fault(now, PourFailure::Pump("jam".into())),
        fault(now, PourFailure::NoFlow("dry".into())),
        State::Service,
        // The same, for a sale paid with a hold invoice.
        super::hold_tests::awaiting_held(now),
        super::hold_tests::pouring_held(now),
        super::hold_tests::returned(now),
    ]
}

fn sold_out_sale(id: &str) -> Sale {
    let mut s = sale(id);
    s.product.sold_out = true;
    s
}

/// One of each event, aimed at sale s1 / invoice i1 where it has a target.
pub(super) fn all_events(now: Instant) -> Vec<Event> {
    vec![
        Event::ProductTapped {
            product: product(),
            sale_id: SaleId("s2".into()),
            give_up_at: now + GIVE_UP,
        },
        Event::ProductTapped {
            product: sold_out_sale("s2").product,
            sale_id: SaleId("s2".into()),
            give_up_at: now + GIVE_UP,
        },
        Event::CancelTapped,
        Event::FaultDismissed,
        Event::InvoiceCreated {
            sale_id: SaleId("s1".into()),
            invoice: invoice("i1"),
            expires_at: now + Duration::from_secs(600),
            held: false,
        },
        Event::InvoiceCreated {
            sale_id: SaleId("s1".into()),
            invoice: invoice("i1"),
            expires_at: now + Duration::from_secs(600),
            held: true,
        },
        Event::InvoiceCreated {
            sale_id: SaleId("s3".into()),
            invoice: invoice("i3"),
            expires_at: now + Duration::from_secs(600),
            held: true,
        },
        Event::InvoiceFailed {
            sale_id: SaleId("s1".into()),
            reason: "x".into(),
        },
        Event::PaymentConfirmed {
            invoice_id: InvoiceId("i1".into()),
        },
        Event::PaymentConfirmed {
            invoice_id: InvoiceId("other".into()),
        },
        Event::InvoiceExpired {
            invoice_id: InvoiceId("i1".into()),
        },
        Event::Tick,
        Event::PourFinished {
            sale_id: SaleId("s1".into()),
            trouble: None,
        },
        Event::PourFailed {
            sale_id: SaleId("s1".into()),
            failure: PourFailure::Pump("jam".into()),
            delivered_ml: 0,
        },
        Event::PourFailed {
            sale_id: SaleId("s1".into()),
            failure: PourFailure::NoFlow("dry".into()),
            delivered_ml: 0,
        },
        Event::PourFailed {
            sale_id: SaleId("s1".into()),
            failure: PourFailure::Ledger("disk".into()),
            delivered_ml: 0,
        },
        Event::PourFailed {
            sale_id: SaleId("s1".into()),
            failure: PourFailure::AlreadyPoured,
            delivered_ml: 0,
        },
        Event::PourFinished {
            sale_id: SaleId("s1".into()),
            trouble: Some(PourFailure::Pump("stalled at the end".into())),
        },
        Event::PourFailed {
            sale_id: SaleId("s1".into()),
            failure: PourFailure::Short {
                poured_ml: 120,
                target_ml: 300,
            },
            delivered_ml: 0,
        },
        Event::BackendDown { reason: "x".into() },
        Event::BackendUp,
        Event::ServiceRestored,
        Event::LedgerDown {
            reason: "disk".into(),
        },
        Event::CreditTapped {
            sale: sale("s1"),
            invoice_id: InvoiceId("i1".into()),
        },
        Event::CreditTapped {
            sale: sold_out_sale("s1"),
            invoice_id: InvoiceId("i1".into()),
        },
        Event::ServiceEntered,
        Event::ServiceLeft,
        Event::ClockWrong {
            reason: "not synchronised".into(),
        },
        Event::ClockRight,
    ]
}

pub(super) fn pours(effects: &[Effect]) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::BeginPour { .. }))
        .count()
}

#[test]
fn the_only_pours_in_the_whole_table_are_a_confirmed_payment_on_screen_or_a_tapped_credit() {
    let now = t0();
    for s in all_states(now) {
        for e in all_events(now) {
            let (next, effects) = step(s.clone(), e.clone(), now);
            let expect = matches!(
                (&s, &e),
                (State::AwaitingPayment { .. }, Event::PaymentConfirmed { invoice_id })
                    if invoice_id.0 == "i1"
            ) || matches!(
                (&s, &e),
                (
                    State::Idle | State::ThankYou { .. },
                    Event::CreditTapped { sale, .. }
                ) if !sale.product.sold_out
            );
            assert_eq!(pours(&effects), usize::from(expect), "{} + {e:?}", s.name());
            if expect {
                assert_eq!(next.name(), "Pouring");
            }
        }
    }
}

#[test]
fn every_confirmed_payment_is_poured_ignored_as_a_repeat_or_sent_to_the_ledger() {
    let now = t0();
    for s in all_states(now) {
        for id in ["i1", "other"] {
            let e = Event::PaymentConfirmed {
                invoice_id: InvoiceId(id.into()),
            };
            let (_, effects) = step(s.clone(), e, now);
            let poured = pours(&effects) == 1;
            let recorded = effects.iter().any(
                |e| matches!(e, Effect::RecordLatePayment { invoice_id } if invoice_id.0 == id),
            );
            // The same payment seen again while it pours, after, or on its fault screen.
            let repeat = id == "i1"
                && matches!(
                    s,
                    State::Pouring { .. } | State::ThankYou { .. } | State::Fault { .. }
                );
            assert!(
                poured || recorded || repeat,
                "payment {id} lost in state {}",
                s.name()
            );
        }
    }
}

#[test]
fn a_tap_on_idle_asks_for_an_invoice_and_no_qr_yet() {
    let now = t0();
    let (s, e) = step(
        State::Idle,
        Event::ProductTapped {
            product: product(),
            sale_id: SaleId("s1".into()),
            give_up_at: now + GIVE_UP,
        },
        now,
    );
    assert_eq!(s, creating(now));
    assert_eq!(e, vec![Effect::CreateInvoice { sale: sale("s1") }]);
}

#[test]
fn the_invoice_arrives_and_is_watched() {
    let now = t0();
    let exp = now + Duration::from_secs(600);
    let (s, e) = step(
        creating(now),
        Event::InvoiceCreated {
            sale_id: SaleId("s1".into()),
            invoice: invoice("i1"),
            expires_at: exp,
            held: false,
        },
        now,
    );
    assert_eq!(s, awaiting(now));
    assert_eq!(
        e,
        vec![Effect::WatchInvoice {
            sale_id: SaleId("s1".into()),
            invoice: invoice("i1")
        }]
    );
}

#[test]
fn payment_pours_for_the_products_time_then_thanks_then_idle() {
    let now = t0();
    let (s, e) = step(
        awaiting(now),
        Event::PaymentConfirmed {
            invoice_id: InvoiceId("i1".into()),
        },
        now,
    );
    assert_eq!(s, pouring(now));
    assert_eq!(
        e,
        vec![Effect::BeginPour {
            sale: sale("s1"),
            invoice_id: InvoiceId("i1".into()),
            credit: false,
        }]
    );
    let later = now + Duration::from_millis(4000);
    let (s, e) = step(
        s,
        Event::PourFinished {
            sale_id: SaleId("s1".into()),
            trouble: None,
        },
        later,
    );
    assert_eq!(s.name(), "ThankYou");
    assert_eq!(
        e,
        vec![Effect::RecordPoured {
            sale_id: SaleId("s1".into())
        }]
    );
    let (s, _) = step(s, Event::Tick, later + Duration::from_secs(1));
    assert_eq!(s.name(), "ThankYou", "thank-you stays a moment");
    let (s, _) = step(s, Event::Tick, later + THANK_YOU);
    assert_eq!(s, State::Idle);
}

#[test]
fn the_same_payment_reported_twice_pours_once() {
    let now = t0();
    let confirm = Event::PaymentConfirmed {
        invoice_id: InvoiceId("i1".into()),
    };
    let (s, e1) = step(awaiting(now), confirm.clone(), now);
    let (s, e2) = step(s, confirm.clone(), now);
    let (s, _) = step(
        s,
        Event::PourFinished {
            sale_id: SaleId("s1".into()),
            trouble: None,
        },
        now,
    );
    let (_, e3) = step(s, confirm, now);
    assert_eq!(pours(&e1) + pours(&e2) + pours(&e3), 1);
    assert!(
        e2.is_empty() && e3.is_empty(),
        "a repeat is not even a late payment"
    );
}

#[test]
fn a_payment_for_another_invoice_is_ignored_on_screen_and_left_to_the_ledger() {
    let now = t0();
    let (s, e) = step(
        awaiting(now),
        Event::PaymentConfirmed {
            invoice_id: InvoiceId("other".into()),
        },
        now,
    );
    assert_eq!(s, awaiting(now), "the QR stays");
    assert_eq!(
        e,
        vec![Effect::RecordLatePayment {
            invoice_id: InvoiceId("other".into())
        }]
    );
}

#[test]
fn payment_after_cancel_is_owed_not_poured() {
    let now = t0();
    let (s, e) = step(awaiting(now), Event::CancelTapped, now);
    assert_eq!(s, State::Idle);
    assert_eq!(
        e,
        vec![Effect::AbandonInvoice {
            sale_id: SaleId("s1".into()),
            invoice_id: InvoiceId("i1".into()),
            why: Abandoned::Cancelled
        }]
    );
    let (s, e) = step(
        s,
        Event::PaymentConfirmed {
            invoice_id: InvoiceId("i1".into()),
        },
        now,
    );
    assert_eq!(s, State::Idle, "no pour on the idle screen");
    assert_eq!(
        e,
        vec![Effect::RecordLatePayment {
            invoice_id: InvoiceId("i1".into())
        }]
    );
}

#[test]
fn payment_after_expiry_is_owed_not_poured_even_on_the_next_customers_screen() {
    let now = t0();
    let (s, e) = step(awaiting(now), Event::Tick, now + Duration::from_secs(599));
    assert_eq!(s.name(), "AwaitingPayment");
    assert!(e.is_empty());
    let (s, e) = step(s, Event::Tick, now + Duration::from_secs(600));
    assert_eq!(s, State::Idle);
    assert!(matches!(
        &e[..],
        [Effect::AbandonInvoice {
            why: Abandoned::Expired,
            ..
        }]
    ));
    // The next customer is paying their own invoice when the old one is paid.
    let next = State::AwaitingPayment {
        held: false,
        sale: sale("s2"),
        invoice: invoice("i2"),
        expires_at: now + Duration::from_secs(1200),
    };
    let (s, e) = step(
        next.clone(),
        Event::PaymentConfirmed {
            invoice_id: InvoiceId("i1".into()),
        },
        now + Duration::from_secs(610),
    );
    assert_eq!(s, next);
    assert_eq!(
        e,
        vec![Effect::RecordLatePayment {
            invoice_id: InvoiceId("i1".into())
        }]
    );
}

#[test]
fn backend_expiry_returns_to_idle_only_for_the_invoice_on_screen() {
    let now = t0();
    let (s, _) = step(
        awaiting(now),
        Event::InvoiceExpired {
            invoice_id: InvoiceId("old".into()),
        },
        now,
    );
    assert_eq!(s, awaiting(now));
    let (s, e) = step(
        s,
        Event::InvoiceExpired {
            invoice_id: InvoiceId("i1".into()),
        },
        now,
    );
    assert_eq!(s, State::Idle);
    assert_eq!(e.len(), 1);
}

#[test]
fn backend_unreachable_means_out_of_service_and_no_qr() {
    let now = t0();
    let (s, e) = step(
        creating(now),
        Event::InvoiceFailed {
            sale_id: SaleId("s1".into()),
            reason: "unreachable".into(),
        },
        now,
    );
    assert_eq!(
        s,
        State::OutOfService {
            reason: OutOfService::Backend("unreachable".into())
        }
    );
    assert!(e.is_empty());
    let (s, e) = step(
        s,
        Event::ProductTapped {
            product: product(),
            sale_id: SaleId("s2".into()),
            give_up_at: now + GIVE_UP,
        },
        now,
    );
    assert_eq!(
        s.name(),
        "OutOfService",
        "taps do nothing while out of service"
    );
    assert!(e.is_empty());
    let (s, _) = step(State::Idle, Event::BackendDown { reason: "x".into() }, now);
    assert_eq!(s.name(), "OutOfService");
    let (s, _) = step(s, Event::BackendUp, now);
    assert_eq!(s, State::Idle);
}

#[test]
fn a_qr_on_screen_stays_while_the_backend_blips() {
    let now = t0();
    let (s, _) = step(
        awaiting(now),
        Event::BackendDown { reason: "x".into() },
        now,
    );
    assert_eq!(s, awaiting(now));
}

#[test]
fn an_invoice_arriving_after_cancel_is_recorded_and_watched_never_shown() {
    let now = t0();
    let (s, e) = step(creating(now), Event::CancelTapped, now);
    assert_eq!(s, State::Idle);
    assert!(e.is_empty());
    let (s, e) = step(
        s,
        Event::InvoiceCreated {
            sale_id: SaleId("s1".into()),
            invoice: invoice("i1"),
            expires_at: now,
            held: false,
        },
        now,
    );
    assert_eq!(s, State::Idle);
    assert!(matches!(
        &e[..],
        [Effect::WatchInvoice { .. }, Effect::AbandonInvoice { .. }]
    ));
}

#[test]
fn a_pump_failure_owes_the_customer_and_shows_the_code_then_waits_for_the_operator() {
    let now = t0();
    let (s, e) = step(
        pouring(now),
        Event::PourFailed {
            sale_id: SaleId("s1".into()),
            failure: PourFailure::Pump("jam".into()),
            delivered_ml: 0,
        },
        now,
    );
    assert_eq!(s, fault(now, PourFailure::Pump("jam".into())));
    assert_eq!(
        e,
        vec![
            Effect::StopPump,
            Effect::RecordOwed {
                sale_id: SaleId("s1".into()),
                failure: PourFailure::Pump("jam".into())
            }
        ]
    );
    let (s, _) = step(s, Event::FaultDismissed, now);
    assert_eq!(
        s,
        State::OutOfService {
            reason: OutOfService::Pump("jam".into())
        }
    );
    let (s, _) = step(s, Event::BackendUp, now);
    assert_eq!(
        s.name(),
        "OutOfService",
        "backend health does not clear a pump fault"
    );
    let (s, _) = step(s, Event::ServiceRestored, now);
    assert_eq!(s, State::Idle);
}

#[test]
fn a_pour_that_never_reports_is_stopped_and_owed() {
    let now = t0();
    let (s, e) = step(
        pouring(now),
        Event::Tick,
        now + Duration::from_millis(4000) + POUR_GRACE,
    );
    assert_eq!(s.name(), "Fault");
    assert!(e.contains(&Effect::StopPump));
    assert!(e.iter().any(|e| matches!(e, Effect::RecordOwed { .. })));
    let (s, e) = step(pouring(now), Event::Tick, now + Duration::from_millis(4100));
    assert_eq!(s, pouring(now));
    assert!(e.is_empty());
}

#[test]
fn an_already_poured_refusal_owes_nothing_and_returns_to_idle() {
    let now = t0();
    let (s, e) = step(
        pouring(now),
        Event::PourFailed {
            sale_id: SaleId("s1".into()),
            failure: PourFailure::AlreadyPoured,
            delivered_ml: 0,
        },
        now,
    );
    assert!(e.is_empty());
    let (s, _) = step(s, Event::Tick, now + FAULT_SCREEN);
    assert_eq!(s, State::Idle);
}

#[test]
fn reports_about_other_sales_change_nothing() {
    let now = t0();
    for s in all_states(now) {
        for e in [
            Event::PourFinished {
                sale_id: SaleId("zz".into()),
                trouble: None,
            },
            Event::PourFailed {
                sale_id: SaleId("zz".into()),
                failure: PourFailure::Pump("x".into()),
                delivered_ml: 0,
            },
            Event::InvoiceFailed {
                sale_id: SaleId("zz".into()),
                reason: "x".into(),
            },
        ] {
            let (next, effects) = step(s.clone(), e.clone(), now);
            assert_eq!(next, s, "{e:?}");
            assert!(effects.is_empty());
        }
    }
}

#[test]
fn the_ledger_going_down_stops_new_sales_but_not_a_pour_in_progress() {
    let now = t0();
    let down = Event::LedgerDown {
        reason: "disk full".into(),
    };
    let (s, _) = step(State::Idle, down.clone(), now);
    assert_eq!(
        s,
        State::OutOfService {
            reason: OutOfService::Ledger("disk full".into())
        }
    );
    let (s, _) = step(s, Event::BackendUp, now);
    assert_eq!(s.name(), "OutOfService");
    let (s, _) = step(pouring(now), down, now);
    assert_eq!(s, pouring(now));
}

#[test]
fn cancel_works_only_where_there_is_something_to_cancel() {
    let now = t0();
    for s in all_states(now) {
        let (next, _) = step(s.clone(), Event::CancelTapped, now);
        match s {
            State::CreatingInvoice { .. } | State::AwaitingPayment { .. } => {
                assert_eq!(next, State::Idle)
            }
            State::Idle
            | State::Pouring { .. }
            | State::ThankYou { .. }
            | State::OutOfService { .. }
            | State::Service
            | State::Fault { .. } => assert_eq!(next, s),
        }
    }
}

#[test]
fn deadlines_drive_the_ticks() {
    let now = t0();
    assert_eq!(State::Idle.deadline(), None);
    assert_eq!(
        awaiting(now).deadline(),
        Some(now + Duration::from_secs(600))
    );
    assert_eq!(
        pouring(now).deadline(),
        Some(now + Duration::from_millis(4000) + POUR_GRACE)
    );
    assert_eq!(thank_you(now).deadline(), Some(now + THANK_YOU));
}

#[test]
fn a_tapped_credit_pours_as_a_credit_and_only_when_nobody_else_is_served() {
    let now = t0();
    let tap = Event::CreditTapped {
        sale: sale("s9"),
        invoice_id: InvoiceId("i9".into()),
    };
    let (s, e) = step(State::Idle, tap.clone(), now);
    assert_eq!(s.name(), "Pouring");
    assert_eq!(
        e,
        vec![Effect::BeginPour {
            sale: sale("s9"),
            invoice_id: InvoiceId("i9".into()),
            credit: true
        }]
    );
    for busy in [awaiting(now), pouring(now), State::Service, oos_backend()] {
        let (s, e) = step(busy.clone(), tap.clone(), now);
        assert_eq!(s, busy);
        assert!(e.is_empty());
    }
}

#[test]
fn the_operator_menu_opens_only_on_an_idle_or_stopped_machine_and_blocks_sales() {
    let now = t0();
    let (s, _) = step(State::Idle, Event::ServiceEntered, now);
    assert_eq!(s, State::Service);
    let (s2, e) = step(
        s.clone(),
        Event::ProductTapped {
            product: product(),
            sale_id: SaleId("s2".into()),
            give_up_at: now + GIVE_UP,
        },
        now,
    );
    assert_eq!(s2, State::Service, "no sale while the operator works");
    assert!(e.is_empty());
    let (s3, e) = step(
        s.clone(),
        Event::PaymentConfirmed {
            invoice_id: InvoiceId("late".into()),
        },
        now,
    );
    assert_eq!(s3, State::Service);
    assert_eq!(e.len(), 1, "a late payment is still recorded");
    let (s4, _) = step(s, Event::ServiceLeft, now);
    assert_eq!(s4, State::Idle);
    let (s5, _) = step(awaiting(now), Event::ServiceEntered, now);
    assert_eq!(s5, awaiting(now), "never in front of a paying customer");
    let stopped = State::OutOfService {
        reason: OutOfService::Pump("jam".into()),
    };
    let (s6, _) = step(stopped, Event::ServiceEntered, now);
    let (s7, _) = step(s6, Event::ServiceLeft, now);
    assert_eq!(
        s7,
        State::Idle,
        "the operator clears a pump fault by visiting the menu"
    );
}

#[test]
fn a_backend_that_never_makes_the_invoice_is_given_up_with_a_plain_message() {
    let now = t0();
    let (s, _) = step(
        creating(now),
        Event::Tick,
        now + GIVE_UP - Duration::from_millis(1),
    );
    assert_eq!(s, creating(now), "still waiting just before the deadline");
    assert_eq!(creating(now).deadline(), Some(now + GIVE_UP));
    let (s, e) = step(s, Event::Tick, now + GIVE_UP);
    assert!(e.is_empty());
    let State::OutOfService { reason } = &s else {
        panic!("{s:?}")
    };
    assert!(matches!(reason, OutOfService::Backend(_)));
    assert!(reason.customer_text().contains("try again"));
    // The invoice that arrives after all is recorded and watched, never shown.
    let (s, e) = step(
        s,
        Event::InvoiceCreated {
            sale_id: SaleId("s1".into()),
            invoice: invoice("i1"),
            expires_at: now + Duration::from_secs(600),
            held: false,
        },
        now + GIVE_UP,
    );
    assert_eq!(s.name(), "OutOfService");
    assert!(e.iter().any(|e| matches!(e, Effect::WatchInvoice { .. })));
    assert!(e.iter().any(|e| matches!(e, Effect::AbandonInvoice { .. })));
}

#[test]
fn nothing_is_sold_while_the_clock_is_wrong_and_sales_resume_when_it_is_right() {
    let now = t0();
    let wrong = || Event::ClockWrong {
        reason: "not synchronised".into(),
    };
    let (s, _) = step(State::Idle, wrong(), now);
    assert_eq!(
        s,
        State::OutOfService {
            reason: OutOfService::Clock("not synchronised".into())
        }
    );
    let (s2, e) = step(
        s.clone(),
        Event::ProductTapped {
            product: product(),
            sale_id: SaleId("s2".into()),
            give_up_at: now + GIVE_UP,
        },
        now,
    );
    assert_eq!(s2, s, "a tap sells nothing");
    assert!(e.is_empty());
    // The backend's health does not hide the clock.
    let (s3, _) = step(s.clone(), Event::BackendUp, now);
    assert_eq!(s3, s);
    let (s4, _) = step(s, Event::ClockRight, now);
    assert_eq!(s4, State::Idle);
    // A backend outage is second to the clock, and a pump fault first.
    let (s5, _) = step(oos_backend(), wrong(), now);
    assert_eq!(s5.name(), "OutOfService");
    assert!(matches!(
        s5,
        State::OutOfService {
            reason: OutOfService::Clock(_)
        }
    ));
    let pump = State::OutOfService {
        reason: OutOfService::Pump("jam".into()),
    };
    assert_eq!(step(pump.clone(), wrong(), now).0, pump);
    assert_eq!(step(pump.clone(), Event::ClockRight, now).0, pump);
    // A customer already paying keeps their QR.
    assert_eq!(step(awaiting(now), wrong(), now).0, awaiting(now));
    assert_eq!(step(pouring(now), wrong(), now).0, pouring(now));
}

#[test]
fn a_pour_that_is_merely_late_is_not_called_failed() {
    // The anti-drip pulse (up to 2 s) and a slow fsync'd commit before the pump started make
    // a real pour report a few seconds after its planned end: it must still count.
    let now = t0();
    let late = now + Duration::from_millis(4000) + Duration::from_secs(2) + Duration::from_secs(3);
    let (s, e) = step(pouring(now), Event::Tick, late);
    assert_eq!(s.name(), "Pouring");
    assert!(e.is_empty());
}
