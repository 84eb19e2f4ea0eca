//! The vend cycle with a hold invoice (issue 25): every state against every event, for the
//! rules a held payment adds. A held payment is settled only once its drink is recorded
//! poured or owed, cancelled when nothing was poured or the customer left, never both,
//! never left unresolved when its sale leaves the screen, and never poured but on the
//! backend's ACCEPTED for the invoice on screen.

use super::tests::{all_events, all_states, awaiting, fault, invoice, pouring, pours, sale, t0};
use super::*;

pub(super) fn awaiting_held(now: Instant) -> State {
    match awaiting(now) {
        State::AwaitingPayment {
            sale,
            invoice,
            expires_at,
            ..
        } => State::AwaitingPayment {
            sale,
            invoice,
            expires_at,
            held: true,
        },
        other => other,
    }
}

pub(super) fn pouring_held(now: Instant) -> State {
    match pouring(now) {
        State::Pouring {
            sale,
            invoice_id,
            started,
            ends,
            ..
        } => State::Pouring {
            sale,
            invoice_id,
            started,
            ends,
            held: true,
        },
        other => other,
    }
}

pub(super) fn returned(now: Instant) -> State {
    match fault(now, PourFailure::Pump("jam".into())) {
        State::Fault {
            sale,
            invoice_id,
            failure,
            until,
            ..
        } => State::Fault {
            sale,
            invoice_id,
            failure,
            until,
            returned: true,
        },
        other => other,
    }
}

fn settles(e: &[Effect]) -> usize {
    e.iter()
        .filter(|e| matches!(e, Effect::SettleHold { .. }))
        .count()
}

fn cancels(e: &[Effect]) -> usize {
    e.iter()
        .filter(|e| matches!(e, Effect::CancelHold { .. }))
        .count()
}

/// Whether `s` still has the held sale s1 in hand (its hold resolves later).
fn holds_s1(s: &State) -> bool {
    matches!(
        s,
        State::AwaitingPayment { sale, held: true, .. } | State::Pouring { sale, held: true, .. }
            if sale.id.0 == "s1"
    )
}

#[test]
fn a_held_sale_never_leaves_the_screen_unresolved_and_is_never_both_settled_and_cancelled() {
    let now = t0();
    for s in [awaiting_held(now), pouring_held(now)] {
        for e in all_events(now) {
            for at in [now, now + Duration::from_secs(3600)] {
                let (next, effects) = step(s.clone(), e.clone(), at);
                let (settle, cancel) = (settles(&effects), cancels(&effects));
                assert!(settle + cancel <= 1, "{} + {e:?}: {effects:?}", s.name());
                // A second report of a pour that was made: the first report resolves it.
                let repeat = matches!(
                    e,
                    Event::PourFailed {
                        failure: PourFailure::AlreadyPoured,
                        ..
                    }
                );
                if !holds_s1(&next) && !repeat {
                    assert_eq!(
                        settle + cancel,
                        1,
                        "{} + {e:?} left the held sale unresolved: {effects:?}",
                        s.name()
                    );
                }
            }
        }
    }
}

#[test]
fn a_settle_comes_only_after_the_pour_or_the_credit_is_recorded_and_a_cancel_owes_nothing() {
    let now = t0();
    for s in all_states(now) {
        for e in all_events(now) {
            for at in [now, now + Duration::from_secs(3600)] {
                let (_, effects) = step(s.clone(), e.clone(), at);
                if let Some(i) = effects
                    .iter()
                    .position(|e| matches!(e, Effect::SettleHold { .. }))
                {
                    assert!(
                        effects[..i].iter().any(|e| matches!(
                            e,
                            Effect::RecordPoured { .. } | Effect::RecordOwed { .. }
                        )),
                        "{} + {e:?}: settled before recording: {effects:?}",
                        s.name()
                    );
                }
                if cancels(&effects) > 0 {
                    assert!(
                        !effects.iter().any(|e| matches!(
                            e,
                            Effect::RecordOwed { .. }
                                | Effect::RecordPoured { .. }
                                | Effect::BeginPour { .. }
                        )),
                        "{} + {e:?}: a returned payment is neither owed nor poured: {effects:?}",
                        s.name()
                    );
                }
                // Only a held sale is ever settled or cancelled.
                let held_state = matches!(
                    s,
                    State::AwaitingPayment { held: true, .. } | State::Pouring { held: true, .. }
                );
                let held_event = matches!(e, Event::InvoiceCreated { held: true, .. });
                if !held_state && !held_event {
                    assert_eq!(
                        settles(&effects) + cancels(&effects),
                        0,
                        "{} + {e:?}: {effects:?}",
                        s.name()
                    );
                }
            }
        }
    }
}

#[test]
fn accepted_pours_once_with_the_pour_recorded_first_then_the_finished_pour_is_settled() {
    let now = t0();
    let (s, e) = step(
        awaiting_held(now),
        Event::PaymentConfirmed {
            invoice_id: InvoiceId("i1".into()),
        },
        now,
    );
    assert_eq!(s, pouring_held(now));
    assert_eq!(pours(&e), 1);
    assert_eq!(settles(&e) + cancels(&e), 0, "not before the pour");
    let (s, e) = step(
        s,
        Event::PourFinished {
            sale_id: SaleId("s1".into()),
            trouble: None,
        },
        now,
    );
    assert_eq!(s.name(), "ThankYou");
    assert_eq!(
        e,
        vec![
            Effect::RecordPoured {
                sale_id: SaleId("s1".into())
            },
            Effect::SettleHold {
                sale_id: SaleId("s1".into())
            }
        ]
    );
}

#[test]
fn nothing_poured_is_cancelled_and_the_screen_says_nothing_was_charged() {
    let now = t0();
    for failure in [
        PourFailure::Pump("stalled at the start".into()),
        PourFailure::Ledger("disk full".into()),
        PourFailure::NoFlow("no pulse".into()),
    ] {
        let (s, e) = step(
            pouring_held(now),
            Event::PourFailed {
                sale_id: SaleId("s1".into()),
                failure: failure.clone(),
                delivered_ml: 0,
            },
            now,
        );
        assert!(
            matches!(&s, State::Fault { returned: true, .. }),
            "{failure:?}: {s:?}"
        );
        assert!(e.contains(&Effect::CancelHold {
            sale_id: SaleId("s1".into())
        }));
        assert!(e.contains(&Effect::StopPump));
        assert!(
            !e.iter().any(|e| matches!(e, Effect::RecordOwed { .. })),
            "{failure:?}: nothing is owed, the money goes back"
        );
    }
}

#[test]
fn a_pour_that_failed_after_measured_flow_is_settled_and_owes_only_the_rest() {
    // 250 of 300 ml in the cup, then the tank ran dry or the pump failed: the customer keeps
    // the drink and is owed the rest; returning the whole payment would give the 250 ml away.
    let now = t0();
    for failure in [
        PourFailure::NoFlow("250 ml flowed, then no flow".into()),
        PourFailure::Pump("stalled mid-pour".into()),
    ] {
        let (s, e) = step(
            pouring_held(now),
            Event::PourFailed {
                sale_id: SaleId("s1".into()),
                failure: failure.clone(),
                delivered_ml: 250,
            },
            now,
        );
        assert!(
            matches!(
                &s,
                State::Fault {
                    returned: false,
                    ..
                }
            ),
            "{failure:?}: {s:?}"
        );
        assert!(
            !e.iter().any(|e| matches!(e, Effect::CancelHold { .. })),
            "{failure:?}"
        );
        let owe = e
            .iter()
            .position(|e| matches!(e, Effect::RecordOwed { .. }))
            .expect("owes the rest");
        let settle = e
            .iter()
            .position(|e| matches!(e, Effect::SettleHold { .. }))
            .expect("settled");
        assert!(owe < settle, "{failure:?}: recorded before it is settled");
        assert_eq!(
            e.contains(&Effect::SoldOut { index: 0 }),
            matches!(failure, PourFailure::NoFlow(_)),
            "{failure:?}: a dry tank still sells out"
        );
    }
}

#[test]
fn a_short_pour_is_settled_and_owes_the_rest_an_unreported_one_too() {
    let now = t0();
    let short = PourFailure::Short {
        poured_ml: 120,
        target_ml: 300,
    };
    let (s, e) = step(
        pouring_held(now),
        Event::PourFailed {
            sale_id: SaleId("s1".into()),
            failure: short.clone(),
            delivered_ml: 120,
        },
        now,
    );
    assert!(matches!(
        s,
        State::Fault {
            returned: false,
            ..
        }
    ));
    assert_eq!(
        e,
        vec![
            Effect::StopPump,
            Effect::RecordOwed {
                sale_id: SaleId("s1".into()),
                failure: short
            },
            Effect::SettleHold {
                sale_id: SaleId("s1".into())
            }
        ]
    );
    // A pour that never reports back: the pump may have run; settle and owe.
    let (_, e) = step(
        pouring_held(now),
        Event::Tick,
        now + Duration::from_secs(60),
    );
    assert!(e.iter().any(|e| matches!(e, Effect::RecordOwed { .. })));
    assert_eq!(settles(&e), 1);
    assert_eq!(cancels(&e), 0);
}

#[test]
fn cancel_expiry_and_an_invoice_never_shown_cancel_the_hold_and_pour_nothing() {
    let now = t0();
    let cancel = Effect::CancelHold {
        sale_id: SaleId("s1".into()),
    };
    let (s, e) = step(awaiting_held(now), Event::CancelTapped, now);
    assert_eq!(s, State::Idle);
    assert!(e.contains(&cancel));
    let (s, e) = step(
        awaiting_held(now),
        Event::Tick,
        now + Duration::from_secs(601),
    );
    assert_eq!(s, State::Idle);
    assert!(e.contains(&cancel));
    let (s, e) = step(
        awaiting_held(now),
        Event::InvoiceExpired {
            invoice_id: InvoiceId("i1".into()),
        },
        now,
    );
    assert_eq!(s, State::Idle);
    assert!(e.contains(&cancel));
    // The customer left before the hold invoice came: it is cancelled, never shown.
    let (s, e) = step(
        State::Idle,
        Event::InvoiceCreated {
            sale_id: SaleId("s1".into()),
            invoice: invoice("i1"),
            expires_at: now + Duration::from_secs(600),
            held: true,
        },
        now,
    );
    assert_eq!(s, State::Idle);
    assert!(e.contains(&cancel));
    assert_eq!(pours(&e), 0);
}

#[test]
fn a_credit_pour_holds_nothing() {
    let now = t0();
    let (s, _) = step(
        State::Idle,
        Event::CreditTapped {
            sale: sale("s9"),
            invoice_id: InvoiceId("i9".into()),
        },
        now,
    );
    assert!(matches!(s, State::Pouring { held: false, .. }));
}
