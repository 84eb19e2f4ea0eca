//! The card note on the payment screen (`ui/screens/card.slint`): the tap hint and the last
//! tap's outcome, as the controller's [`CardView`] says.

use super::{CardOutcome, MachineUi};
use crate::controller::CardView;
use crate::nfc::CardMessage;

pub fn render<W: MachineUi>(window: &W, view: &CardView) {
    let card = window.card();
    card.set_hint(view.hint);
    let (outcome, reason) = match &view.outcome {
        None => (CardOutcome::None, ""),
        Some(m) => match m {
            CardMessage::Working => (CardOutcome::Working, ""),
            CardMessage::Paying => (CardOutcome::Paying, ""),
            CardMessage::EnterPin => (CardOutcome::EnterPin, ""),
            CardMessage::OverLimit => (CardOutcome::OverLimit, ""),
            // The screen's sentence ends it: no "used..".
            CardMessage::Declined(reason) => (
                CardOutcome::Declined,
                reason.trim_end_matches(['.', '!', ' ']),
            ),
            CardMessage::Unreachable => (CardOutcome::Unreachable, ""),
            CardMessage::NotAllowed => (CardOutcome::NotAllowed, ""),
            CardMessage::NotBoltCard => (CardOutcome::NotBoltCard, ""),
            CardMessage::ReadFailed => (CardOutcome::ReadFailed, ""),
        },
    };
    card.set_outcome(outcome);
    window.card_pin().set_shown(view.pin_pad);
    card.set_reason(reason.into());
}
