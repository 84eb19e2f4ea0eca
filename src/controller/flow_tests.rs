//! Unit tests of the controller's pouring by volume: what a pour's end owes.

use super::*;

#[test]
fn a_credit_pour_owes_what_was_owed_less_what_it_poured_not_todays_volume() {
    // A first pour of a 300 ml drink that delivered 120 ml owes 180.
    assert_eq!(owed_after(None, 300, 120), 180);
    // Its credit, after the operator shortened the drink to 150 ml: the pour is capped
    // at 150 and delivers it, and 30 ml stay owed (not 150 - 150 = 0).
    assert_eq!(owed_after(Some(180), 150, 150), 30);
    // A credit pour that delivered all it owed owes nothing; never below nothing.
    assert_eq!(owed_after(Some(180), 300, 180), 0);
    assert_eq!(owed_after(Some(10), 300, 12), 0);
}

#[test]
fn every_end_of_a_pour_keeps_what_it_measured() {
    let id = || SaleId("s1".into());
    let fault = || Err(crate::pump::PumpError::Fault("jam".into()));
    let end = |r, ml: u32, owed, settled| volume_end(id(), r, ml, owed, settled, ml, 1500);
    // A dry tank, a pump fault, a failed anti-drip run after the volume: a few ml short
    // (or none) is a poured sale, with the trouble told (for the sold-out mark and the
    // pump fault).
    let (owed, ev) = end(Ok(VolumeOutcome::NoFlow { pulses: 133 }), 296, 4, true);
    assert_eq!(owed, None);
    assert!(
        matches!(ev, Event::PourFinished { trouble: Some(PourFailure::NoFlow(ref m)), .. } if m.starts_with("296 ml flowed")),
        "{ev:?}"
    );
    for (ml, left) in [(296, 4), (300, 0)] {
        let (owed, ev) = end(fault(), ml, left, true);
        assert_eq!(owed, None);
        assert!(
            matches!(ev, Event::PourFinished { trouble: Some(PourFailure::Pump(ref m)), .. } if m.contains("jam")),
            "{ev:?}"
        );
    }
    let (owed, ev) = end(Ok(VolumeOutcome::Reached { pulses: 135 }), 300, 0, true);
    assert_eq!(owed, None);
    assert_eq!(
        ev,
        Event::PourFinished {
            sale_id: id(),
            trouble: None
        }
    );
    // More than that owes the rest, on every path.
    // The ml in the cup go with the failure (a held payment is then settled, not returned).
    let (owed, ev) = end(Ok(VolumeOutcome::NoFlow { pulses: 45 }), 100, 200, false);
    assert_eq!(owed, Some(200));
    assert!(matches!(
        ev,
        Event::PourFailed {
            failure: PourFailure::NoFlow(_),
            delivered_ml: 100,
            ..
        }
    ));
    let (owed, ev) = end(fault(), 100, 200, false);
    assert_eq!(owed, Some(200));
    assert!(matches!(
        ev,
        Event::PourFailed {
            failure: PourFailure::Pump(_),
            delivered_ml: 100,
            ..
        }
    ));
    // Too little to tell from nothing is nothing.
    let (_, ev) = volume_end(id(), fault(), 1, 299, false, 0, 1500);
    assert!(
        matches!(
            ev,
            Event::PourFailed {
                delivered_ml: 0,
                ..
            }
        ),
        "{ev:?}"
    );
    // A credit capped by a shortened volume reaches its target and owes the rest.
    let (owed, ev) = end(Ok(VolumeOutcome::Reached { pulses: 68 }), 150, 30, false);
    assert_eq!(owed, Some(30));
    assert_eq!(
        ev,
        Event::PourFailed {
            sale_id: id(),
            failure: PourFailure::Short {
                poured_ml: 150,
                target_ml: 180
            },
            delivered_ml: 150,
        }
    );
}

fn sensor(pulses_per_litre: f64) -> FlowConfig {
    FlowConfig {
        pin: 17,
        pull: crate::config::flow::Pull::Up,
        pulses_per_litre,
        no_flow_ms: 1500,
        min_flow_ml_per_s: 2.0,
        mock_ml_per_s: 25.0,
    }
}

#[test]
fn a_short_pour_that_rounds_to_the_full_drink_owes_no_credit() {
    // 5880 pulses per litre: one pulse short of 300 ml measures as 300 ml.
    let fine = sensor(5880.0);
    let target = fine.pulses_for(300);
    let owed = 300 - fine.ml_of(target - 1).min(300);
    assert_eq!(owed, 0);
    assert!(negligible_owed(&fine, 300, owed));
    // A few ml of 300 (under 3 %) is the sensor's noise, not an undelivered drink.
    assert!(negligible_owed(&fine, 300, 8));
    // 450 pulses per litre: 4 ml of a 60 ml shot is under 3 pulses.
    assert!(negligible_owed(&sensor(450.0), 60, 4));
    // A real shortfall is owed.
    assert!(!negligible_owed(&fine, 300, 10));
    assert!(!negligible_owed(&sensor(450.0), 300, 180));
}
