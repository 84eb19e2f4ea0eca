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
    /// A PIN was entered on the PIN pad.
    OperatorPin(String),
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
    CardPin(Option<String>),
}

/// The operator's actions in the menu.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpAction {
    Exit,
    CancelPin,
    Tab(OpTab),
    /// Price of product `index` one step up (or down).
    Price {
        index: usize,
        up: bool,
    },
    /// Pour time of product `index` one step up (or down).
    Pour {
        index: usize,
        up: bool,
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
    Settle(String),
    Refund(String),
    CloseRefund,
}

/// The operator menu's pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OpTab {
    #[default]
    Products,
    Pump,
    Sales,
    Credits,
    Status,
}

/// The longest a held "prime" button runs the pump.
pub const PRIME_MAX: Duration = Duration::from_secs(10);
/// How long "reverse / clean" runs the pump backwards.
pub const REVERSE_RUN: Duration = Duration::from_secs(2);
/// Steps of the operator's +/- buttons.
pub const PRICE_STEP_SAT: u64 = 100;
pub const POUR_STEP: Duration = Duration::from_millis(250);

/// A cloneable sender of inputs.
#[derive(Clone, Debug)]
pub struct Inputs(pub(super) mpsc::UnboundedSender<Input>);

impl Inputs {
    /// Sends an input; false if the controller has stopped.
    pub fn send(&self, input: Input) -> bool {
        self.0.send(input).is_ok()
    }
}
