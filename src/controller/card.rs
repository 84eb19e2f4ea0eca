//! Bolt Card taps on the payment screen: what the controller does with the reader's
//! [`NfcEvent`]s and with the card exchange it starts.
//!
//! A tap hands the card's service the invoice already on screen, in a task of its own so
//! the loop never waits on a stranger's server. Nothing here can pour: the pour comes, as
//! for a QR payment, only from the backend's confirmation of that invoice through its
//! watch. One invoice is offered to one card exchange: a tap while one is in flight, or
//! after a service accepted the invoice, is ignored. Whatever the outcome, the QR stays up
//! and payable.

use super::*;
use crate::nfc::{self, CardMessage, CardStep, CardUrl, LnurlError, NfcEvent, ReaderHealth};
use crate::nfc::{SafeGet, TapError, WithdrawRequest};
use crate::secret::Secret;

/// The card side of the controller.
#[derive(Debug)]
pub(super) struct Cards {
    /// The rules for card services; `None`: no reader configured.
    get: Option<SafeGet>,
    health: ReaderHealth,
    /// The invoice a card exchange is running for.
    in_flight: Option<InvoiceId>,
    /// The invoice a service accepted (no second exchange for it).
    sent: Option<InvoiceId>,
    /// What the payment screen of this invoice says about the card.
    message: Option<(InvoiceId, CardMessage)>,
    /// A PIN card's request, waiting for the customer's PIN.
    pin: Option<(InvoiceId, WithdrawRequest)>,
}

impl Default for Cards {
    fn default() -> Cards {
        Cards {
            get: None,
            health: ReaderHealth::Off,
            in_flight: None,
            sent: None,
            message: None,
            pin: None,
        }
    }
}

/// What the payment screen shows about cards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CardView {
    /// A reader is configured and healthy: "Scan the QR or tap your card".
    pub hint: bool,
    /// The outcome of the last tap for this invoice, in plain words (empty: none).
    pub message: String,
    /// The card's PIN pad is up.
    pub pin_pad: bool,
    /// The outcome the message says, for the screen's own (translated) words.
    pub outcome: Option<CardMessage>,
}

impl Controller {
    /// Takes Bolt Card taps from now on (a reader is configured; see `[nfc]`).
    pub fn enable_cards(&mut self, get: SafeGet) {
        self.cards.get = Some(get);
    }

    /// The invoice on screen, if a payment screen is up.
    fn invoice_on_screen(&self) -> Option<&Invoice> {
        match &self.state {
            State::AwaitingPayment { invoice, .. } => Some(invoice),
            State::Idle
            | State::Service
            | State::CreatingInvoice { .. }
            | State::Pouring { .. }
            | State::ThankYou { .. }
            | State::OutOfService { .. }
            | State::Fault { .. } => None,
        }
    }

    pub(super) fn nfc_event(&mut self, event: NfcEvent) {
        match event {
            NfcEvent::Health(h) => {
                if h != self.cards.health {
                    tracing::info!(reader = ?h, "NFC reader");
                }
                self.cards.health = h;
            }
            NfcEvent::Tap(tap) => self.card_tapped(tap),
        }
    }

    fn card_tapped(&mut self, tap: Result<CardUrl, TapError>) {
        let Some(get) = self.cards.get.clone() else {
            tracing::warn!("a card tap without a configured reader; ignored");
            return;
        };
        let Some(invoice) = self.invoice_on_screen().cloned() else {
            tracing::debug!("a card tap with no payment screen up; ignored");
            return;
        };
        let busy = [&self.cards.in_flight, &self.cards.sent]
            .into_iter()
            .any(|i| i.as_ref() == Some(&invoice.id))
            || self
                .cards
                .pin
                .as_ref()
                .is_some_and(|(i, _)| *i == invoice.id);
        if busy {
            tracing::info!(invoice = %invoice.id, "a second card tap for this invoice; ignored");
            return;
        }
        let card = match tap {
            Ok(card) => card,
            Err(e) => {
                tracing::info!(error = %e, "card tap not usable");
                self.cards.message = Some((invoice.id, CardMessage::from_tap_error(&e)));
                return;
            }
        };
        tracing::info!(invoice = %invoice.id, service = %card, "card tapped; asking its service");
        self.cards.in_flight = Some(invoice.id.clone());
        self.cards.message = Some((invoice.id.clone(), CardMessage::Working));
        let tx = self.tx.clone();
        self.tasks.spawn(async move {
            let result = nfc::pay_with_card(&get, &card, &invoice.bolt11, invoice.amount).await;
            let _ = tx.send(Input::CardDone {
                invoice_id: invoice.id,
                result,
            });
        });
    }

    pub(super) fn card_done(
        &mut self,
        invoice_id: InvoiceId,
        result: Result<CardStep, LnurlError>,
    ) {
        if self.cards.in_flight.as_ref() == Some(&invoice_id) {
            self.cards.in_flight = None;
        }
        // A slow service may answer after its sale left the screen (cancelled, expired): its
        // answer must not overwrite the card state of the sale on screen now, or that sale
        // would lose its message and take a second card exchange. A payment the service
        // still makes for the old invoice is a late payment (see `late`).
        if self.invoice_on_screen().map(|i| &i.id) != Some(&invoice_id) {
            match &result {
                Ok(CardStep::Sent) => {
                    tracing::warn!(invoice = %invoice_id, "the card's service accepted the invoice of a sale no longer on screen; a payment for it is handled as a late payment")
                }
                Ok(CardStep::NeedsPin(_)) => {
                    tracing::info!(invoice = %invoice_id, "a card's PIN request for a sale no longer on screen; dropped")
                }
                Err(e) => {
                    tracing::info!(invoice = %invoice_id, error = %e, "a card exchange for a sale no longer on screen failed")
                }
            }
            return;
        }
        let message = match result {
            Ok(CardStep::Sent) => {
                tracing::info!(invoice = %invoice_id, "the card's service accepted the invoice; waiting for the backend to confirm the payment");
                self.cards.sent = Some(invoice_id.clone());
                CardMessage::Paying
            }
            Ok(CardStep::NeedsPin(req)) => {
                self.cards.pin = Some((invoice_id.clone(), req));
                CardMessage::EnterPin
            }
            Err(e) => {
                tracing::warn!(invoice = %invoice_id, error = %e, "card payment not started");
                CardMessage::from_error(&e)
            }
        };
        self.cards.message = Some((invoice_id, message));
    }

    /// The customer typed the card's PIN (or cancelled with `None`).
    pub(super) fn card_pin(&mut self, pin: Option<Secret>) {
        // The pad allows 4 to 8 digits; anything else is not sent (and the pad stays).
        if pin.as_ref().is_some_and(|p| !pin_shape_ok(p)) {
            tracing::info!("a card PIN of the wrong shape; not sent");
            return;
        }
        let Some((invoice_id, req)) = self.cards.pin.take() else {
            return;
        };
        let Some(get) = self.cards.get.clone() else {
            return;
        };
        let on_screen = self.invoice_on_screen().cloned();
        let (Some(pin), Some(invoice)) = (pin, on_screen) else {
            self.cards.message = None;
            return;
        };
        if invoice.id != invoice_id {
            return;
        }
        self.cards.in_flight = Some(invoice_id.clone());
        self.cards.message = Some((invoice_id.clone(), CardMessage::Working));
        let tx = self.tx.clone();
        self.tasks.spawn(async move {
            let result = nfc::send_with_pin(&get, &req, &invoice.bolt11, &pin)
                .await
                .map(|()| CardStep::Sent);
            let _ = tx.send(Input::CardDone { invoice_id, result });
        });
    }

    /// The card part of the view for the screen up now.
    pub(super) fn card_view(&self) -> CardView {
        let hint = self.cards.get.is_some() && self.cards.health == ReaderHealth::Ready;
        let Some(invoice) = self.invoice_on_screen() else {
            return CardView {
                hint,
                ..CardView::default()
            };
        };
        let outcome = match &self.cards.message {
            Some((id, m)) if *id == invoice.id => Some(m.clone()),
            _ => None,
        };
        CardView {
            hint,
            message: outcome.as_ref().map(CardMessage::text).unwrap_or_default(),
            outcome,
            pin_pad: self
                .cards
                .pin
                .as_ref()
                .is_some_and(|(i, _)| *i == invoice.id),
        }
    }

    /// For the operator's Status tab.
    pub(super) fn card_status(&self) -> String {
        if self.cards.get.is_none() {
            return "NFC reader: off".into();
        }
        match &self.cards.health {
            ReaderHealth::Off => "NFC reader: starting".into(),
            ReaderHealth::Ready => "NFC reader: ready".into(),
            ReaderHealth::Down(why) => format!("NFC reader: unavailable ({why})"),
        }
    }
}

/// A card PIN as the pad makes it: 4 to 8 ASCII digits.
fn pin_shape_ok(pin: &Secret) -> bool {
    let p = pin.expose();
    (4..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod pin_tests {
    use super::*;

    #[test]
    fn a_card_pin_is_four_to_eight_digits() {
        for ok in ["1234", "00000000", "246813"] {
            assert!(pin_shape_ok(&Secret::new(ok)), "{ok}");
        }
        for bad in ["", "123", "123456789", "12a4", "12 34", "１２３４"] {
            assert!(!pin_shape_ok(&Secret::new(bad)), "{bad}");
        }
    }
}
