//! The simulator panel's Bolt Card buttons ("Tap card", "Tap replayed card", "Tap card over
//! its limit"): each holds a virtual NTAG 424 to the virtual reader, through the same NDEF
//! read as a real card, against the simulator's built-in card service, which pays through
//! the simulated backend. Needs `[nfc] reader = "virtual"` (the built-in simulator config
//! has it).

use std::sync::Arc;

use slint::ComponentHandle;

use super::{Sim, SimWindow};
use crate::backend::sim::SimBackend;
use crate::nfc::reader::{read_ndef_uri, FakeCards};
use crate::nfc::sim_service::{SimCard, SimCardService};
use crate::nfc::virtual_card::VirtualNtag424;

pub fn connect(
    panel: &SimWindow,
    cards: Option<FakeCards>,
    sim: Option<Arc<SimBackend>>,
    rt: &tokio::runtime::Handle,
) {
    let g = panel.global::<Sim>();
    let weak = panel.as_weak();
    let status = move |text: String| {
        let _ = weak.upgrade_in_event_loop(move |p| p.global::<Sim>().set_status(text.into()));
    };
    let ready = match (cards, sim) {
        (Some(cards), Some(sim)) => match rt.block_on(SimCardService::start(sim)) {
            Ok(service) => Ok((cards, service)),
            Err(e) => Err(format!("the card service did not start: {e}")),
        },
        (None, _) => Err("no virtual card reader: set [nfc] reader = \"virtual\"".to_string()),
        (_, None) => Err("the payment backend is not the simulator".to_string()),
    };
    let tap = move |card: SimCard, replay: bool| -> String {
        match &ready {
            Ok((cards, service)) => {
                let uri = service.tap_uri(card, replay);
                let read = read_ndef_uri(&mut VirtualNtag424::with_uri(&uri));
                if cards.send(read).is_err() {
                    return "the virtual reader has stopped".into();
                }
                match (card, replay) {
                    (_, true) => "card tapped again with its last p/c".into(),
                    (SimCard::Low, false) => "card with a 1,000 sat limit tapped".into(),
                    (SimCard::Good, false) => "card tapped".into(),
                }
            }
            Err(why) => why.clone(),
        }
    };
    let tap = Arc::new(tap);
    let (t, st) = (tap.clone(), status.clone());
    g.on_tap_card(move || st(t(SimCard::Good, false)));
    let (t, st) = (tap.clone(), status.clone());
    g.on_tap_replayed_card(move || st(t(SimCard::Good, true)));
    let (t, st) = (tap, status);
    g.on_tap_card_over_limit(move || st(t(SimCard::Low, false)));
}
