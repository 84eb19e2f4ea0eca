//! Tap to pay with a Bolt Card (an NTAG 424 DNA carrying an LNURL-withdraw link): the
//! reader beside the screen, the card's NDEF URL, and the LNURL-withdraw exchange that hands
//! the card's service the invoice already on screen.
//!
//! Owns: reading cards (`reader`, with its fake and a model card in `virtual_card`), parsing
//! what they carry (`ndef`), and talking to the card's service under strict rules
//! (`lnurl`). It never decides a pour: a card payment is confirmed only by the configured
//! payment backend, through the same watch as a QR payment, so a service that says "OK"
//! and pays nothing gets nothing.

pub mod lnurl;
pub mod ndef;
#[cfg(feature = "pcsc")]
pub mod pcsc_reader;
pub mod pn532;
pub mod pn532_rppal;
pub mod reader;
pub mod sim_service;
pub mod virtual_card;

pub use lnurl::{LnurlError, SafeGet, Session, WithdrawRequest};
pub use ndef::CardUrl;
pub use reader::{CardReader, FakeReader, NfcEvent, ReaderHealth, TapError};

use crate::config::{NfcConfig, NfcReaderKind};
use crate::money::Msat;
use crate::secret::Secret;

/// The reader `[nfc]` names, or why it cannot be opened in this build. `Virtual` comes back
/// with the sender that plays the cards (the simulator's panel, tests).
pub fn open_reader(
    cfg: &NfcConfig,
) -> Result<(Box<dyn CardReader>, Option<reader::FakeCards>), String> {
    match cfg.reader {
        NfcReaderKind::Virtual => {
            let (reader, cards) = FakeReader::new();
            Ok((Box::new(reader), Some(cards)))
        }
        NfcReaderKind::Off => Err("no reader configured".into()),
        #[cfg(feature = "pcsc")]
        NfcReaderKind::Pcsc => Ok((Box::new(pcsc_reader::PcscReader::new()), None)),
        #[cfg(not(feature = "pcsc"))]
        NfcReaderKind::Pcsc => Err("this lnvend was built without the `pcsc` feature".into()),
        NfcReaderKind::Pn532I2c => {
            let name = format!("pn532-i2c: bus {} at {:#04x}", cfg.i2c_bus, cfg.i2c_address);
            let bus = pn532_rppal::I2cTransport::open(cfg.i2c_bus, cfg.i2c_address)
                .map_err(|e| format!("{name}: {e}"))?;
            Ok((Box::new(pn532::Pn532Reader::new(Box::new(bus), name)), None))
        }
        NfcReaderKind::Pn532Spi => {
            let name = format!("pn532-spi: spidev{}.{}", cfg.spi_bus, cfg.spi_chip_select);
            let bus = pn532_rppal::SpiTransport::open(cfg.spi_bus, cfg.spi_chip_select)
                .map_err(|e| format!("{name}: {e}"))?;
            Ok((Box::new(pn532::Pn532Reader::new(Box::new(bus), name)), None))
        }
    }
}

/// How far a card payment got once the service has been asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardStep {
    /// The service accepted the invoice and says it will pay: wait for the backend.
    Sent,
    /// The card wants its PIN for this price: ask, then [`send_with_pin`].
    NeedsPin(WithdrawRequest),
}

/// Steps 3–5 of the flow: fetch the card's withdrawRequest, check `price` (the invoice on
/// screen) against its limits, and send `bolt11` to its callback, unless a PIN is needed.
pub async fn pay_with_card(
    get: &SafeGet,
    card: &CardUrl,
    bolt11: &str,
    price: Msat,
) -> Result<CardStep, LnurlError> {
    // One session: the callback goes over the withdrawRequest's connection when it can.
    let mut session = get.session();
    let req = session.withdraw_request(card).await?;
    req.check_price(price)?;
    if req.needs_pin(price) {
        return Ok(CardStep::NeedsPin(req));
    }
    session.callback(&req, bolt11, None).await?;
    Ok(CardStep::Sent)
}

/// Sends the invoice with the PIN the customer typed (LUD-21 draft: `&pin=`).
pub async fn send_with_pin(
    get: &SafeGet,
    req: &WithdrawRequest,
    bolt11: &str,
    pin: &Secret,
) -> Result<(), LnurlError> {
    get.callback(req, bolt11, Some(pin)).await
}

/// What the payment screen says about a tap, in plain words. The QR stays payable in every
/// case but [`CardMessage::Paying`]'s success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardMessage {
    /// "Paying with your card…": the service accepted; waiting for the backend.
    Paying,
    /// Reading the card, talking to its service.
    Working,
    /// The card's PIN is needed for this price.
    EnterPin,
    OverLimit,
    /// The service's own words (printable, short).
    Declined(String),
    Unreachable,
    /// The card's service is at an address this machine may not contact.
    NotAllowed,
    NotBoltCard,
    /// Hold the card still and try again.
    ReadFailed,
}

impl CardMessage {
    /// The message for a failed exchange with the card's service.
    pub fn from_error(e: &LnurlError) -> CardMessage {
        match e {
            LnurlError::OverLimit { .. } => CardMessage::OverLimit,
            LnurlError::Declined { reason } => CardMessage::Declined(reason.clone()),
            LnurlError::Unreachable { .. } | LnurlError::BadReply { .. } => {
                CardMessage::Unreachable
            }
            LnurlError::Refused { .. } => CardMessage::NotAllowed,
        }
    }

    /// The message for a tap the reader could not turn into a Bolt Card URL.
    pub fn from_tap_error(e: &TapError) -> CardMessage {
        match e {
            TapError::Read(_) => CardMessage::ReadFailed,
            TapError::NotBoltCard(_) => CardMessage::NotBoltCard,
        }
    }

    /// The English text for the screen (the .slint side wraps its own copies in `@tr`).
    pub fn text(&self) -> String {
        match self {
            CardMessage::Paying => "Paying with your card…".into(),
            CardMessage::Working => "Reading your card…".into(),
            CardMessage::EnterPin => "Enter your card's PIN, or pay by QR.".into(),
            CardMessage::OverLimit => {
                "This drink is over your card's limit. You can still pay by QR.".into()
            }
            CardMessage::Declined(reason) => {
                let reason = reason.trim_end_matches(['.', '!', ' ']);
                format!("Your card was declined: {reason}. You can still pay by QR.")
            }
            CardMessage::Unreachable => {
                "Your card's service cannot be reached. You can still pay by QR.".into()
            }
            CardMessage::NotAllowed => {
                "This card's service is not allowed here. You can still pay by QR.".into()
            }
            CardMessage::NotBoltCard => "That card is not a Bolt Card.".into(),
            CardMessage::ReadFailed => {
                "Could not read the card. Hold it still and try again.".into()
            }
        }
    }
}
