//! Everything that can reach the controller, on its one channel: the customer's and the
//! operator's taps, the backend's answers, the pump's reports, and time.

use super::*;

/// Everything that can reach the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The customer tapped the product with this index.
    Tap(usize),
    Cancel,
    DismissFault,
    /// A customer tapped the owed credit of this sale on the idle screen.
    RedeemCredit(String),
    /// The hidden corner was held for three seconds.
    OpenOperator,
    /// A PIN was entered on the PIN pad (a secret: an `Input` in a log shows no PIN).
    OperatorPin(Secret),
    /// The PIN check that `OperatorPin` started off the controller loop is done.
    PinChecked {
        matched: bool,
    },
    /// Something the operator did in the menu.
    Operator(OpAction),
    /// The customer on the fault screen asked for their money back.
    RefundFault,
    /// A background operator task finished, with a line for the operator.
    OperatorNote(String),
    /// A refund finished: the link (BTCPay) or `None` (to be refunded by hand), or an error.
    RefundDone {
        sale_id: String,
        result: Result<Option<String>, String>,
    },
    /// A background check (start-up, catch-up, sweep) found this invoice paid: the
    /// controller compares `received` with the ledger's amount before believing it.
    PaidOutOfBand {
        invoice_id: InvoiceId,
        received: Msat,
    },
    /// A pour put `ml` of product `index` into the cup (sent before its `PourFinished` or
    /// `PourFailed`); `owed_ml` of the drink is still owed (None: nothing).
    PouredMl {
        sale_id: SaleId,
        index: usize,
        ml: u32,
        owed_ml: Option<u32>,
    },
    /// The operator's calibration pour ended: the pulses it counted, or why it failed.
    CalibrationPoured {
        channel: Channel,
        pulses: Result<u64, String>,
    },
    Event(Event),
    /// The NFC reader's thread: a card tap or the reader's health.
    Nfc(crate::nfc::NfcEvent),
    /// A card exchange for this invoice finished (the service accepted it, wants the PIN,
    /// or said why not). Never a payment: only the backend confirms one.
    CardDone {
        invoice_id: InvoiceId,
        result: Result<crate::nfc::CardStep, crate::nfc::LnurlError>,
    },
    /// The card's PIN typed on its pad, or `None` for cancel.
    CardPin(Option<crate::secret::Secret>),
    /// The backend's answer at start: can it hold invoices?
    HoldSupport(crate::backend::HoldSupport),
    /// Try again to settle or cancel a held payment whose ledger row could not be read.
    ResolveHold {
        sale_id: SaleId,
        want: crate::backend::hold::Resolution,
    },
    /// A held payment ended as the backend confirmed (see `controller::hold`).
    HoldResolved {
        sale_id: SaleId,
        outcome: crate::backend::hold::Outcome,
        /// When the payment was accepted (UNIX microseconds), for the held-time metric.
        accepted_us: Option<i64>,
    },
}

/// The operator's actions in the menu.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpAction {
    Exit,
    CancelPin,
    Tab(OpTab),
    /// Price of product `index`, as typed on the keypad: whole sats, or the fiat price's
    /// minor units (cents). Refused with a message outside the product's [`OpEntry`] range.
    SetPrice {
        index: usize,
        value: u64,
    },
    /// Pour time of product `index` in milliseconds, as typed on the keypad.
    SetPour {
        index: usize,
        ms: u64,
    },
    /// Save the edited products to the overrides file and use them.
    Save,
    /// Pour product `index` once, unpaid, to check the dose.
    TestPour {
        index: usize,
    },
    /// Run the pump forward while held (at most [`PRIME_MAX`]).
    Prime {
        channel: Channel,
        on: bool,
    },
    /// Run the pump backwards briefly (clean the line).
    Reverse {
        channel: Channel,
    },
    /// The tank of product `index` was refilled: its stock is the tank's size again.
    Refill {
        index: usize,
    },
    /// Pour about [`CALIBRATION_ML`] on the channel's current calibration, into a jug.
    CalibratePour {
        channel: Channel,
    },
    /// The jug holds `measured_ml` after the calibration pour: compute and save the
    /// channel's pulses per litre. 0 cancels the calibration.
    Calibrate {
        channel: Channel,
        measured_ml: u32,
    },
    Settle(String),
    Refund(String),
    CloseRefund,
    /// Show the claim QR of this sale's kept refund link again.
    ShowRefundLink(String),
    /// The operator is done with this sale's refund link (claimed, or handed over).
    DismissRefundLink(String),
}

/// The operator menu's pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OpTab {
    #[default]
    Products,
    Pump,
    /// Stock, refills, and the flow sensors' calibration and dry-run test.
    Stock,
    Sales,
    Credits,
    Status,
}

/// The longest a held "prime" button runs the pump.
pub const PRIME_MAX: Duration = Duration::from_secs(10);
/// How long "reverse / clean" runs the pump backwards.
pub const REVERSE_RUN: Duration = Duration::from_secs(2);
/// The highest fiat price the keypad takes, in minor units (10,000.00): like
/// `MAX_PRICE_SAT`, a bound against a slipped digit.
pub const MAX_PRICE_FIAT_MINOR: u64 = 1_000_000;

/// A cloneable sender of inputs.
#[derive(Clone, Debug)]
pub struct Inputs(pub(super) mpsc::UnboundedSender<Input>);

impl Inputs {
    /// Sends an input; false if the controller has stopped.
    pub fn send(&self, input: Input) -> bool {
        self.0.send(input).is_ok()
    }
}
