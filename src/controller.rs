//! The controller task: the only place where the vend cycle meets the world. It owns the
//! state, the pump and the ledger, receives every input (taps, backend answers, payment
//! confirmations, pump reports, health, time) on one channel, runs [`vend::step`], carries
//! out the effects in order, and publishes a [`View`] for the UI.
//!
//! The money rules live here in two places only: a sale is written to the ledger before its
//! QR is shown (`InvoiceCreated` is turned into `InvoiceFailed` if it cannot be), and a
//! pour starts only after the ledger committed the payment and the pour start.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use crate::backend::watch::{watch_invoice, WatchTiming};
use crate::backend::{Invoice, InvoiceId, InvoiceRequest, InvoiceState, PaymentBackend};
use crate::config::Network;
use crate::ledger::{Ledger, LedgerError};
use crate::money::{Fiat, Msat, Price};
use crate::operator::{Lockout, PinHash, PinOutcome};
use crate::pump::{self, PourSettings, Pump};
use crate::pump::{Channel, Direction};
use crate::qr::{self, QrBitmap};
use crate::vend::{self, Effect, Event, PourFailure, Product, Sale, SaleId, State};

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
    Event(Event),
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
pub struct Inputs(mpsc::UnboundedSender<Input>);

impl Inputs {
    /// Sends an input; false if the controller has stopped.
    pub fn send(&self, input: Input) -> bool {
        self.0.send(input).is_ok()
    }
}

/// Which screen is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    Idle,
    Creating,
    Payment,
    Pouring,
    ThankYou,
    OutOfService,
    Fault,
    /// The operator PIN pad.
    Pin,
    /// The operator menu.
    Operator,
}

/// An owed credit offered on the idle screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditTile {
    pub sale_id: String,
    pub product: String,
}

/// One product row in the operator menu.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpProduct {
    pub name: String,
    pub price: String,
    pub pour: String,
}

/// One owed credit in the operator menu.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpCredit {
    pub sale_id: String,
    pub text: String,
}

/// What the operator menu shows.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct OperatorView {
    pub tab: OpTab,
    pub products: Vec<OpProduct>,
    pub unsaved: bool,
    pub today: String,
    pub total: String,
    pub recent: Vec<String>,
    pub credits: Vec<OpCredit>,
    pub status: Vec<String>,
    pub message: String,
    /// A refund to show: a QR of the claim link, or a receipt code to refund by hand.
    pub refund_qr: Option<Arc<QrBitmap>>,
    pub refund_text: String,
}

/// A product tile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tile {
    pub name: String,
    pub price: String,
}

/// What the UI shows; a pure function of the state and the clock.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub screen: Screen,
    pub machine_id: String,
    pub tiles: Vec<Tile>,
    pub product: String,
    pub amount: String,
    /// `LIGHTNING:` + upper-case BOLT11 while paying.
    pub payment_uri: String,
    pub qr: Option<Arc<QrBitmap>>,
    pub seconds_left: u64,
    /// 0.0..=1.0 while pouring.
    pub progress: f32,
    /// The reason out of service, or what went wrong on the fault screen, in plain words.
    pub message: String,
    /// The code a customer shows the operator on the fault screen.
    pub code: String,
    /// For the operator: the technical reason the machine is out of service.
    pub detail: String,
    /// Owed credits a customer may still tap to have poured (idle screen).
    pub credits: Vec<CreditTile>,
    /// The PIN pad's line (wrong PIN, locked out…).
    pub pin_message: String,
    /// The fault screen offers a refund to the customer's wallet.
    pub fault_refund: bool,
    /// The fault screen's refund: a QR of the claim link, or why it failed.
    pub refund_qr: Option<Arc<QrBitmap>>,
    pub refund_text: String,
    pub operator: Option<OperatorView>,
}

/// Settings of a controller.
#[derive(Clone, Debug)]
pub struct Settings {
    pub machine_id: String,
    pub catalog: Vec<Product>,
    pub invoice_expiry: Duration,
    pub pour: PourSettings,
    pub watch: WatchTiming,
    /// How often the backend's health is checked.
    pub health_every: Duration,
    /// How long a backend call may take before it counts as unreachable.
    pub request_timeout: Duration,
    /// The network every shown invoice must be for.
    pub network: Network,
    /// The operator PIN (no operator menu without one).
    pub pin_hash: Option<PinHash>,
    /// How long an owed credit is offered as "tap to pour".
    pub credit_window: Duration,
    /// The longest pour a product may be set to (max run time less the anti-drip pulse).
    pub max_pour: Duration,
    /// Whether the fault screen offers a refund (the backend refunds by itself).
    pub fault_refund: bool,
    /// Where the operator's product changes are saved (none: not saved).
    pub overrides_path: Option<std::path::PathBuf>,
    pub version: String,
}

/// How far back unsettled invoices are re-checked at start.
pub const RECHECK_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// Pixel size the QR is rasterised for.
pub const QR_PX: u32 = 430;

pub struct Controller {
    settings: Settings,
    state: State,
    backend: Arc<dyn PaymentBackend>,
    pump: Pump,
    ledger: Result<Ledger, String>,
    tx: mpsc::UnboundedSender<Input>,
    rx: mpsc::UnboundedReceiver<Input>,
    view: watch::Sender<View>,
    /// Sales whose invoice is being created, to record them when it arrives.
    creating: HashMap<SaleId, Sale>,
    watches: HashMap<InvoiceId, JoinHandle<()>>,
    pour_task: Option<JoinHandle<()>>,
    qr_cache: Option<(String, Arc<QrBitmap>)>,
    heartbeat: watch::Sender<Instant>,
    /// The PIN pad is up (with its message).
    pin_prompt: Option<String>,
    lockout: Lockout,
    op: OpState,
    /// The last health report, for the operator.
    health: String,
    /// A pump run the operator started (prime, test, reverse), to stop it on exit.
    op_pump: Option<JoinHandle<()>>,
    /// A refund asked for on the fault screen: its sale, then the link or the error.
    fault_refund: Option<(SaleId, Option<Result<String, String>>)>,
}

/// The operator menu's working state.
#[derive(Default)]
struct OpState {
    tab: OpTab,
    draft: Vec<Product>,
    unsaved: bool,
    message: String,
    refund: Option<(Option<String>, String)>,
}

/// How often the controller loop proves it is alive (see [`Controller::heartbeat`]).
pub const HEARTBEAT: Duration = Duration::from_secs(2);

impl Controller {
    /// `ledger` is the opened ledger, or why it could not be opened (the machine then stays
    /// out of service: no sale without a record).
    pub fn new(
        settings: Settings,
        backend: Arc<dyn PaymentBackend>,
        pump: Pump,
        ledger: Result<Ledger, LedgerError>,
    ) -> Controller {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = State::Idle;
        let ledger = ledger.map_err(|e| e.to_string());
        let initial = idle_view(&settings);
        let (view, _) = watch::channel(initial);
        Controller {
            settings,
            state,
            backend,
            pump,
            ledger,
            tx,
            rx,
            view,
            creating: HashMap::new(),
            watches: HashMap::new(),
            pour_task: None,
            qr_cache: None,
            heartbeat: watch::channel(Instant::now()).0,
            pin_prompt: None,
            lockout: Lockout::default(),
            op: OpState::default(),
            health: "not checked yet".into(),
            op_pump: None,
            fault_refund: None,
        }
    }

    /// Updated by the controller loop itself every [`HEARTBEAT`]: a value that stops moving
    /// means the loop is stuck (the systemd watchdog is fed from this).
    pub fn heartbeat(&self) -> watch::Receiver<Instant> {
        self.heartbeat.subscribe()
    }

    pub fn inputs(&self) -> Inputs {
        Inputs(self.tx.clone())
    }

    pub fn views(&self) -> watch::Receiver<View> {
        self.view.subscribe()
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Runs until `shutdown` resolves. The pump is stopped on the way out, whatever happened.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let _stop = StopOnDrop(self.pump.clone());
        self.start_up();
        let health = tokio::spawn(health_loop(
            self.backend.clone(),
            self.settings.health_every,
            self.settings.request_timeout,
            self.tx.clone(),
        ));
        tokio::pin!(shutdown);
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wake = self.next_wake();
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                input = self.rx.recv() => match input {
                    Some(input) => self.handle(input),
                    None => break,
                },
                () = sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                    self.handle(Input::Event(Event::Tick));
                }
                _ = beat.tick() => {
                    self.heartbeat.send_replace(Instant::now());
                }
            }
        }
        health.abort();
        for (_, w) in self.watches.drain() {
            w.abort();
        }
        if let Some(p) = self.pour_task.take() {
            p.abort();
        }
        if let Err(e) = self.pump.stop() {
            tracing::error!(error = %e, "could not stop the pump at shutdown");
        }
        tracing::info!("controller stopped; pump off");
    }

    fn start_up(&mut self) {
        match &mut self.ledger {
            Ok(ledger) => {
                match ledger.recover_interrupted() {
                    Ok(ids) => {
                        for id in ids {
                            tracing::warn!(sale = %id, "a pour was interrupted by a restart; the sale is now an owed credit");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "could not recover interrupted pours"),
                }
                match ledger.owed() {
                    Ok(owed) if !owed.is_empty() => {
                        tracing::warn!(
                            count = owed.len(),
                            "owed credits are waiting for the operator"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "could not list owed credits"),
                }
                // Invoices that are still payable are watched again; those that expired while
                // lnvend was down are checked once, in case they were paid in time.
                let now = unix_now();
                match ledger.unsettled_since(now.saturating_sub(RECHECK_WINDOW.as_secs())) {
                    Ok(open) => {
                        for o in open {
                            if o.invoice.expires_at_unix > now {
                                tracing::info!(sale = %o.sale_id, invoice = %o.invoice.id, "still watching an unpaid invoice from before the restart");
                                self.spawn_watch(o.invoice);
                            } else {
                                self.spawn_recheck(o.invoice);
                            }
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "could not list unsettled invoices"),
                }
                self.spawn_catch_up();
            }
            Err(reason) => {
                let reason = reason.clone();
                tracing::error!(%reason, "the sales ledger cannot be opened; out of service");
                self.apply(Event::LedgerDown { reason });
            }
        }
        self.publish();
    }

    fn next_wake(&self) -> Option<Instant> {
        let now = Instant::now();
        let refresh = match self.state {
            State::AwaitingPayment { .. } | State::Fault { .. } => {
                Some(now + Duration::from_millis(500))
            }

            State::Pouring { .. } => Some(now + Duration::from_millis(100)),
            // Owed credits leave the idle screen when their window ends.
            State::Idle => Some(now + Duration::from_secs(30)),
            State::CreatingInvoice { .. }
            | State::ThankYou { .. }
            | State::OutOfService { .. }
            | State::Service => None,
        };
        match (self.state.deadline(), refresh) {
            (Some(d), Some(r)) => Some(d.min(r)),
            (d, r) => d.or(r),
        }
    }

    fn handle(&mut self, input: Input) {
        let event = match input {
            Input::Tap(i) => match self.settings.catalog.get(i) {
                Some(product) => Event::ProductTapped {
                    product: product.clone(),
                    sale_id: new_sale_id(),
                },
                None => {
                    tracing::warn!(index = i, "tap on a product that does not exist");
                    return;
                }
            },
            Input::Cancel => Event::CancelTapped,
            Input::DismissFault => Event::FaultDismissed,
            Input::RedeemCredit(id) => match self.credit_sale(&id) {
                Some((sale, invoice_id)) => Event::CreditTapped { sale, invoice_id },
                None => {
                    self.publish();
                    return;
                }
            },
            Input::OpenOperator => {
                self.open_pin_pad();
                self.publish();
                return;
            }
            Input::OperatorPin(pin) => match self.check_pin(&pin) {
                Some(e) => e,
                None => {
                    self.publish();
                    return;
                }
            },
            Input::Operator(action) => match self.operator_action(action) {
                Some(e) => e,
                None => {
                    self.publish();
                    return;
                }
            },
            Input::RefundFault => {
                self.refund_from_fault_screen();
                self.publish();
                return;
            }
            Input::OperatorNote(note) => {
                self.op.message = note;
                self.publish();
                return;
            }
            Input::RefundDone { sale_id, result } => {
                self.refund_done(sale_id, result);
                self.publish();
                return;
            }
            Input::Event(e) => {
                self.note_health(&e);
                e
            }
        };
        let event = self.record_before_showing(event);
        self.apply(event);
        self.publish();
    }

    /// No QR without a record: an invoice the ledger cannot store is treated as failed.
    fn record_before_showing(&mut self, event: Event) -> Event {
        let Event::InvoiceCreated {
            sale_id,
            invoice,
            expires_at,
        } = event
        else {
            return event;
        };
        let Some(sale) = self.creating.remove(&sale_id) else {
            tracing::error!(sale = %sale_id, "an invoice arrived for a sale we did not start");
            return Event::InvoiceFailed {
                sale_id,
                reason: "unexpected invoice".into(),
            };
        };
        let backend = self.backend.name();
        let result = match &mut self.ledger {
            Ok(l) => l
                .record_created(&sale, backend, &invoice)
                .map_err(|e| e.to_string()),
            Err(reason) => Err(reason.clone()),
        };
        match result {
            Ok(()) => Event::InvoiceCreated {
                sale_id,
                invoice,
                expires_at,
            },
            Err(reason) => {
                tracing::error!(sale = %sale_id, %reason, "cannot record the sale; not showing its QR");
                let _ = self.tx.send(Input::Event(Event::LedgerDown {
                    reason: reason.clone(),
                }));
                Event::InvoiceFailed {
                    sale_id,
                    reason: format!("cannot record the sale: {reason}"),
                }
            }
        }
    }

    fn apply(&mut self, event: Event) {
        let now = Instant::now();
        let quiet = matches!(event, Event::Tick | Event::BackendUp);
        let event_name = event_name(&event);
        let before = self.state.name();
        let old = std::mem::replace(&mut self.state, State::Idle);
        let (state, effects) = vend::step(old, event, now);
        self.state = state;
        let after = self.state.name();
        if before != after || !quiet {
            let sale = self
                .state
                .sale_id()
                .map(|s| s.to_string())
                .unwrap_or_default();
            if before != after {
                tracing::info!(sale = %sale, event = event_name, from = before, to = after, "transition");
            } else {
                tracing::debug!(sale = %sale, event = event_name, state = after, "event");
            }
        }
        if let State::OutOfService { reason } = &self.state {
            if before != after {
                tracing::warn!(reason = reason.detail(), "out of service");
            }
        }
        for effect in effects {
            self.execute(effect);
        }
    }

    fn execute(&mut self, effect: Effect) {
        match effect {
            Effect::CreateInvoice { sale } => {
                self.creating.insert(sale.id.clone(), sale.clone());
                let backend = self.backend.clone();
                let tx = self.tx.clone();
                let request = InvoiceRequest {
                    sale_id: sale.id.0.clone(),
                    price: sale.product.price.clone(),
                    description: format!("{} ({})", sale.product.name, self.settings.machine_id),
                    expiry: self.settings.invoice_expiry,
                };
                let timeout = self.settings.request_timeout;
                let network = self.settings.network;
                tokio::spawn(async move {
                    let ev = create_invoice(backend.as_ref(), &request, network, timeout).await;
                    let ev = match ev {
                        Ok((invoice, expires_at)) => Event::InvoiceCreated {
                            sale_id: sale.id,
                            invoice,
                            expires_at,
                        },
                        Err(reason) => {
                            tracing::error!(sale = %sale.id, %reason, "could not get an invoice");
                            Event::InvoiceFailed {
                                sale_id: sale.id,
                                reason,
                            }
                        }
                    };
                    let _ = tx.send(Input::Event(ev));
                });
            }
            Effect::WatchInvoice { sale_id, invoice } => {
                tracing::info!(sale = %sale_id, invoice = %invoice.id, amount = %invoice.amount, "invoice shown; watching for payment");
                self.spawn_watch(invoice);
            }
            Effect::AbandonInvoice {
                sale_id,
                invoice_id,
                why,
            } => {
                tracing::info!(sale = %sale_id, invoice = %invoice_id, ?why, "invoice left; still watching it until it expires");
                if let Ok(l) = &mut self.ledger {
                    if let Err(e) = l.record_abandoned(&sale_id, why) {
                        tracing::error!(sale = %sale_id, error = %e, "could not record the abandoned invoice");
                    }
                }
            }
            Effect::BeginPour {
                sale,
                invoice_id,
                credit,
            } => self.begin_pour(sale, invoice_id, credit),
            Effect::StopPump => {
                if let Some(p) = self.pour_task.take() {
                    p.abort();
                }
                if let Err(e) = self.pump.stop() {
                    tracing::error!(error = %e, "could not stop the pump");
                }
            }
            Effect::RecordPoured { sale_id } => {
                tracing::info!(sale = %sale_id, "poured");
                if let Ok(l) = &mut self.ledger {
                    if let Err(e) = l.record_poured(&sale_id) {
                        tracing::error!(sale = %sale_id, error = %e, "could not record the finished pour");
                    }
                }
            }
            Effect::RecordOwed { sale_id, failure } => {
                let reason = failure_text(&failure);
                tracing::error!(sale = %sale_id, %reason, "paid but not poured: owed credit");
                match &mut self.ledger {
                    Ok(l) => {
                        if let Err(e) = l.record_owed(&sale_id, &reason) {
                            tracing::error!(sale = %sale_id, error = %e, "COULD NOT RECORD AN OWED CREDIT; the fault screen shows the code");
                        }
                    }
                    Err(_) => {
                        tracing::error!(sale = %sale_id, "no ledger: the owed credit exists only on the fault screen and in this log")
                    }
                }
            }
            Effect::RecordLatePayment { invoice_id } => match &mut self.ledger {
                Ok(l) => match l.record_late_payment(&invoice_id) {
                    Ok(Some(sale)) => {
                        tracing::warn!(sale = %sale, invoice = %invoice_id, "a payment arrived after the customer left; recorded as an owed credit")
                    }
                    Ok(None) => {
                        tracing::info!(invoice = %invoice_id, "payment report for an invoice already settled or not ours; ignored")
                    }
                    Err(e) => {
                        tracing::error!(invoice = %invoice_id, error = %e, "could not record a late payment")
                    }
                },
                Err(_) => {
                    tracing::error!(invoice = %invoice_id, "a late payment arrived and there is no ledger to record it")
                }
            },
        }
    }

    fn begin_pour(&mut self, sale: Sale, invoice_id: InvoiceId, credit: bool) {
        let recorded = match &mut self.ledger {
            Ok(l) if credit => l.begin_credit_pour(&sale.id),
            Ok(l) => l.begin_pour(&sale.id, &invoice_id),
            Err(reason) => Err(LedgerError::UnknownSale(reason.clone())),
        };
        let tx = self.tx.clone();
        if let Err(e) = recorded {
            let failure = match e {
                LedgerError::AlreadyPoured => PourFailure::AlreadyPoured,
                other => PourFailure::Ledger(other.to_string()),
            };
            tracing::error!(sale = %sale.id, failure = ?failure, "pour not started");
            let _ = tx.send(Input::Event(Event::PourFailed {
                sale_id: sale.id,
                failure,
            }));
            return;
        }
        tracing::info!(sale = %sale.id, invoice = %invoice_id, channel = %sale.product.channel, ms = sale.product.pour.as_millis() as u64, "payment recorded; pouring");
        let pump = self.pump.clone();
        let settings = self.settings.pour;
        self.pour_task = Some(tokio::spawn(async move {
            let result = pump::pour(&pump, sale.product.channel, sale.product.pour, settings).await;
            let ev = match result {
                Ok(()) => Event::PourFinished { sale_id: sale.id },
                Err(e) => Event::PourFailed {
                    sale_id: sale.id,
                    failure: PourFailure::Pump(e.to_string()),
                },
            };
            let _ = tx.send(Input::Event(ev));
        }));
    }

    /// One authenticated check of an invoice that can no longer be paid.
    fn spawn_recheck(&self, invoice: Invoice) {
        let backend = self.backend.clone();
        let tx = self.tx.clone();
        let timeout = self.settings.request_timeout;
        tokio::spawn(async move {
            for attempt in 0..5u32 {
                match tokio::time::timeout(timeout, backend.invoice_state(&invoice.id)).await {
                    Ok(Ok(InvoiceState::Paid { received })) if received >= invoice.amount => {
                        let _ = tx.send(Input::Event(Event::PaymentConfirmed {
                            invoice_id: invoice.id.clone(),
                        }));
                        return;
                    }
                    Ok(Ok(_)) => return,
                    Ok(Err(e)) => {
                        tracing::warn!(invoice = %invoice.id, error = %e, "re-check failed")
                    }
                    Err(_) => tracing::warn!(invoice = %invoice.id, "re-check timed out"),
                }
                tokio::time::sleep(Duration::from_secs(5 << attempt)).await;
            }
            tracing::error!(invoice = %invoice.id, "could not re-check an old invoice; it stays unsettled in the ledger");
        });
    }

    /// Asks the backend for payments it saw while lnvend was down, and confirms each.
    fn spawn_catch_up(&self) {
        let backend = self.backend.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            match backend.paid_while_away().await {
                Ok(ids) => {
                    for id in ids {
                        match backend.invoice_state(&id).await {
                            Ok(InvoiceState::Paid { .. }) => {
                                let _ = tx
                                    .send(Input::Event(Event::PaymentConfirmed { invoice_id: id }));
                            }
                            Ok(other) => {
                                tracing::warn!(invoice = %id, state = ?other, "reported paid while away but not paid now")
                            }
                            Err(e) => {
                                tracing::error!(invoice = %id, error = %e, "could not confirm a payment made while away")
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not ask the backend for payments made while lnvend was down")
                }
            }
        });
    }

    fn spawn_watch(&mut self, invoice: Invoice) {
        let expires_at = instant_of_unix(invoice.expires_at_unix);
        let id = invoice.id.clone();
        let backend = self.backend.clone();
        let timing = self.settings.watch;
        let tx = self.tx.clone();
        let (etx, mut erx) = mpsc::unbounded_channel();
        let handle = tokio::spawn(async move {
            let forward = async {
                while let Some(ev) = erx.recv().await {
                    let _ = tx.send(Input::Event(ev));
                }
            };
            tokio::join!(
                watch_invoice(backend, invoice, expires_at, timing, etx),
                forward
            );
        });
        self.watches.retain(|_, h| !h.is_finished());
        if let Some(old) = self.watches.insert(id, handle) {
            old.abort();
        }
    }

    fn publish(&mut self) {
        let view = self.make_view(Instant::now());
        self.view.send_if_modified(|v| {
            if *v != view {
                *v = view;
                true
            } else {
                false
            }
        });
    }

    fn make_view(&mut self, now: Instant) -> View {
        let mut v = idle_view(&self.settings);
        if let Some(msg) = &self.pin_prompt {
            v.screen = Screen::Pin;
            v.pin_message = msg.clone();
            return v;
        }
        match &self.state {
            State::Idle => {
                v.credits = self.idle_credits();
            }
            State::Service => {
                v.screen = Screen::Operator;
                v.operator = Some(self.operator_view());
            }
            State::CreatingInvoice { sale } => {
                v.screen = Screen::Creating;
                v.product = sale.product.name.clone();
                v.amount = sale.product.price.display();
            }
            State::AwaitingPayment {
                sale,
                invoice,
                expires_at,
            } => {
                v.screen = Screen::Payment;
                v.product = sale.product.name.clone();
                v.amount = match &sale.product.price {
                    Price::Sats(_) => invoice.amount.display_sats(),
                    Price::Fiat(f) => format!("{} ({f})", invoice.amount.display_sats()),
                };
                v.payment_uri = qr::payment_uri(&invoice.bolt11);
                v.seconds_left = expires_at.saturating_duration_since(now).as_secs();
                v.qr = self.qr_for(&v.payment_uri);
            }
            State::Pouring {
                sale,
                started,
                ends,
                ..
            } => {
                v.screen = Screen::Pouring;
                v.product = sale.product.name.clone();
                let total = (*ends - *started).as_secs_f32().max(0.001);
                v.progress =
                    (now.saturating_duration_since(*started).as_secs_f32() / total).min(1.0);
            }
            State::ThankYou { sale, .. } => {
                v.screen = Screen::ThankYou;
                v.product = sale.product.name.clone();
            }
            State::OutOfService { reason } => {
                v.screen = Screen::OutOfService;
                v.message = reason.customer_text();
                v.detail = reason.detail().to_string();
            }
            State::Fault {
                sale,
                failure,
                until,
                ..
            } => {
                v.screen = Screen::Fault;
                v.product = sale.product.name.clone();
                v.amount = sale.product.price.display();
                v.code = sale.id.0.clone();
                v.seconds_left = until.saturating_duration_since(now).as_secs();
                v.fault_refund = self.settings.fault_refund
                    && matches!(failure, PourFailure::Pump(_) | PourFailure::Ledger(_));
                if let Some((id, Some(result))) = &self.fault_refund {
                    if *id == sale.id {
                        match result {
                            Ok(link) => {
                                v.refund_text =
                                    "Scan with your Lightning wallet to claim your refund".into();
                                v.refund_qr = qr::render(link, 300).ok().map(Arc::new);
                            }
                            Err(e) => {
                                v.refund_text = format!(
                                    "The refund failed ({e}); show the code to the operator."
                                )
                            }
                        }
                    }
                }
                v.message = match failure {
                    PourFailure::AlreadyPoured => {
                        "This payment was already used for a drink.".into()
                    }
                    PourFailure::Pump(_) | PourFailure::Ledger(_) => {
                        "Your payment is recorded, but the drink could not be poured.".into()
                    }
                };
            }
        }
        v
    }

    fn qr_for(&mut self, uri: &str) -> Option<Arc<QrBitmap>> {
        if let Some((u, bmp)) = &self.qr_cache {
            if u == uri {
                return Some(bmp.clone());
            }
        }
        match qr::render(uri, QR_PX) {
            Ok(bmp) => {
                let bmp = Arc::new(bmp);
                self.qr_cache = Some((uri.to_string(), bmp.clone()));
                Some(bmp)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot draw the payment QR");
                None
            }
        }
    }
}

/// Operator mode and owed credits: the parts of the controller a customer rarely sees.
impl Controller {
    /// Owed credits still inside their "tap to pour" window, for the idle screen.
    fn idle_credits(&self) -> Vec<CreditTile> {
        let Ok(ledger) = &self.ledger else {
            return Vec::new();
        };
        let since = unix_now_us() - self.settings.credit_window.as_micros() as i64;
        match ledger.recent_credits(since) {
            Ok(owed) => owed
                .into_iter()
                .filter(|o| self.product_named(&o.product).is_some())
                .take(3)
                .map(|o| CreditTile {
                    sale_id: o.sale_id.0,
                    product: o.product,
                })
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot list owed credits");
                Vec::new()
            }
        }
    }

    fn product_named(&self, name: &str) -> Option<&Product> {
        self.settings.catalog.iter().find(|p| p.name == name)
    }

    /// The sale behind a credit tile, if it is still owed and inside its window.
    fn credit_sale(&self, sale_id: &str) -> Option<(Sale, InvoiceId)> {
        let tile = self
            .idle_credits()
            .into_iter()
            .find(|c| c.sale_id == sale_id)?;
        let product = self.product_named(&tile.product)?.clone();
        let id = SaleId(tile.sale_id);
        let invoice_id = self.ledger.as_ref().ok()?.invoice_of(&id).ok()??;
        tracing::info!(sale = %id, "customer tapped an owed credit");
        Some((Sale { id, product }, invoice_id))
    }

    fn open_pin_pad(&mut self) {
        if !matches!(self.state, State::Idle | State::OutOfService { .. }) {
            // Never in front of a paying customer.
            return;
        }
        self.pin_prompt = Some(match self.settings.pin_hash {
            Some(_) => "Enter the operator PIN".into(),
            None => {
                "No operator PIN is configured (operator_pin_hash, see `lnvend hash-pin`)".into()
            }
        });
    }

    fn check_pin(&mut self, pin: &str) -> Option<Event> {
        self.pin_prompt.as_ref()?;
        let Some(hash) = self.settings.pin_hash.clone() else {
            self.pin_prompt = None;
            return None;
        };
        match self.lockout.attempt(&hash, pin, Instant::now()) {
            PinOutcome::Accepted => {
                tracing::info!("operator menu opened");
                self.pin_prompt = None;
                self.op = OpState {
                    draft: self.settings.catalog.clone(),
                    ..OpState::default()
                };
                Some(Event::ServiceEntered)
            }
            PinOutcome::Wrong { tries_left } => {
                tracing::warn!(tries_left, "wrong operator PIN");
                self.pin_prompt = Some(format!("Wrong PIN: {tries_left} tries left"));
                None
            }
            PinOutcome::LockedOut { for_ } => {
                tracing::warn!(seconds = for_.as_secs(), "operator PIN locked out");
                self.pin_prompt = Some(format!(
                    "Too many wrong PINs: locked for {} s",
                    for_.as_secs().max(1)
                ));
                None
            }
        }
    }

    fn note_health(&mut self, e: &Event) {
        match e {
            Event::BackendUp => self.health = format!("{}: answering", self.backend.name()),
            Event::BackendDown { reason } => {
                self.health = format!("{}: {reason}", self.backend.name())
            }
            Event::ProductTapped { .. }
            | Event::CancelTapped
            | Event::FaultDismissed
            | Event::InvoiceCreated { .. }
            | Event::InvoiceFailed { .. }
            | Event::PaymentConfirmed { .. }
            | Event::InvoiceExpired { .. }
            | Event::Tick
            | Event::PourFinished { .. }
            | Event::PourFailed { .. }
            | Event::ServiceRestored
            | Event::LedgerDown { .. }
            | Event::CreditTapped { .. }
            | Event::ServiceEntered
            | Event::ServiceLeft => {}
        }
    }

    /// Handles a menu action; returns an event for the vend cycle when there is one.
    fn operator_action(&mut self, action: OpAction) -> Option<Event> {
        if let OpAction::CancelPin = action {
            self.pin_prompt = None;
            return None;
        }
        if self.state != State::Service {
            return None;
        }
        match action {
            OpAction::CancelPin => None,
            OpAction::Exit => {
                self.stop_op_pump();
                self.op = OpState::default();
                tracing::info!("operator menu closed");
                Some(Event::ServiceLeft)
            }
            OpAction::Tab(t) => {
                self.op.tab = t;
                None
            }
            OpAction::Price { index, up } => {
                if let Some(p) = self.op.draft.get_mut(index) {
                    p.price = step_price(&p.price, up);
                    self.op.unsaved = true;
                }
                None
            }
            OpAction::Pour { index, up } => {
                let max = self.settings.max_pour;
                if let Some(p) = self.op.draft.get_mut(index) {
                    p.pour = if up {
                        (p.pour + POUR_STEP).min(max)
                    } else {
                        p.pour.saturating_sub(POUR_STEP).max(POUR_STEP)
                    };
                    self.op.unsaved = true;
                }
                None
            }
            OpAction::Save => {
                self.save_products();
                None
            }
            OpAction::TestPour { index } => {
                if let Some(p) = self.op.draft.get(index).cloned() {
                    self.op.message =
                        format!("Test pour: {} for {} ms…", p.name, p.pour.as_millis());
                    let (pump, settings, tx) =
                        (self.pump.clone(), self.settings.pour, self.tx.clone());
                    self.run_op_pump(async move {
                        let note = match pump::pour(&pump, p.channel, p.pour, settings).await {
                            Ok(()) => {
                                format!("Test pour of {} done ({} ms).", p.name, p.pour.as_millis())
                            }
                            Err(e) => format!("Test pour failed: {e}"),
                        };
                        let _ = tx.send(Input::OperatorNote(note));
                    });
                }
                None
            }
            OpAction::Prime { channel, on } => {
                if on {
                    let (pump, duty, tx) =
                        (self.pump.clone(), self.settings.pour.duty, self.tx.clone());
                    self.op.message = format!("Priming channel {channel}…");
                    self.run_op_pump(async move {
                        let note = match pump.start(channel, Direction::Forward, duty) {
                            Ok(_) => {
                                // Held longer than this: stop anyway.
                                tokio::time::sleep(PRIME_MAX).await;
                                let _ = pump.stop();
                                format!("Priming stopped after {} s.", PRIME_MAX.as_secs())
                            }
                            Err(e) => format!("Prime failed: {e}"),
                        };
                        let _ = tx.send(Input::OperatorNote(note));
                    });
                } else {
                    self.stop_op_pump();
                    self.op.message = format!("Channel {channel} primed.");
                }
                None
            }
            OpAction::Reverse { channel } => {
                let (pump, duty, tx) =
                    (self.pump.clone(), self.settings.pour.duty, self.tx.clone());
                self.op.message = format!("Reversing channel {channel}…");
                self.run_op_pump(async move {
                    let note = match pump.start(channel, Direction::Reverse, duty) {
                        Ok(_) => {
                            tokio::time::sleep(REVERSE_RUN).await;
                            match pump.stop() {
                                Ok(()) => format!(
                                    "Reversed channel {channel} for {} s.",
                                    REVERSE_RUN.as_secs()
                                ),
                                Err(e) => format!("Reverse: {e}"),
                            }
                        }
                        Err(e) => format!("Reverse failed: {e}"),
                    };
                    let _ = tx.send(Input::OperatorNote(note));
                });
                None
            }
            OpAction::Settle(id) => {
                if let Ok(l) = &mut self.ledger {
                    match l.mark_settled(&SaleId(id.clone())) {
                        Ok(true) => {
                            tracing::info!(sale = %id, "operator settled an owed credit by hand");
                            self.op.message = format!("{id} marked as settled.");
                        }
                        Ok(false) => self.op.message = format!("{id} is no longer owed."),
                        Err(e) => self.op.message = format!("Could not record: {e}"),
                    }
                }
                None
            }
            OpAction::Refund(id) => {
                self.start_refund(id);
                None
            }
            OpAction::CloseRefund => {
                self.op.refund = None;
                None
            }
        }
    }

    fn run_op_pump(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.stop_op_pump();
        self.op_pump = Some(tokio::spawn(task));
    }

    fn stop_op_pump(&mut self) {
        if let Some(t) = self.op_pump.take() {
            t.abort();
        }
        if let Err(e) = self.pump.stop() {
            tracing::error!(error = %e, "could not stop the pump");
        }
    }

    fn save_products(&mut self) {
        let draft = self.op.draft.clone();
        let overrides = crate::operator::Overrides {
            products: draft
                .iter()
                .map(|p| crate::operator::ProductOverride {
                    index: p.index,
                    name: p.name.clone(),
                    price_sat: p.price.msat().and_then(|m| m.as_whole_sat()),
                    price_fiat: match &p.price {
                        Price::Fiat(f) => Some(f.amount_str()),
                        Price::Sats(_) => None,
                    },
                    pour_ms: p.pour.as_millis() as u64,
                })
                .collect(),
        };
        let saved = match &self.settings.overrides_path {
            Some(path) => {
                crate::operator::save_overrides(path, &overrides).map_err(|e| e.to_string())
            }
            None => Ok(()),
        };
        match saved {
            Ok(()) => {
                tracing::info!("operator saved product settings");
                self.settings.catalog = draft;
                self.op.unsaved = false;
                self.op.message = "Saved: new prices and pour times are in use.".into();
            }
            Err(e) => {
                tracing::error!(error = %e, "could not save product settings");
                self.op.message = format!("NOT saved: {e}");
            }
        }
    }

    fn start_refund(&mut self, id: String) {
        let sale = SaleId(id.clone());
        let invoice = match &self.ledger {
            Ok(l) => l.invoice_of(&sale).ok().flatten(),
            Err(_) => None,
        };
        let Some(invoice) = invoice else {
            self.op.message = format!("Unknown sale {id}.");
            return;
        };
        self.op.message = format!("Refunding {id}…");
        let (backend, tx) = (self.backend.clone(), self.tx.clone());
        tokio::spawn(async move {
            let result = backend.refund(&invoice).await.map_err(|e| e.to_string());
            let _ = tx.send(Input::RefundDone {
                sale_id: id,
                result,
            });
        });
    }

    fn refund_from_fault_screen(&mut self) {
        let State::Fault { sale, failure, .. } = &self.state else {
            return;
        };
        let refundable = matches!(failure, PourFailure::Pump(_) | PourFailure::Ledger(_));
        let started = self
            .fault_refund
            .as_ref()
            .is_some_and(|(id, _)| *id == sale.id);
        if !self.settings.fault_refund || !refundable || started {
            return;
        }
        tracing::info!(sale = %sale.id, "customer asked for a refund on the fault screen");
        self.fault_refund = Some((sale.id.clone(), None));
        self.start_refund(sale.id.0.clone());
    }

    fn refund_done(&mut self, sale_id: String, result: Result<Option<String>, String>) {
        let sale = SaleId(sale_id.clone());
        if let Some((id, slot @ None)) = &mut self.fault_refund {
            if *id == sale {
                let shown = match &result {
                    Ok(Some(link)) => Ok(link.clone()),
                    Ok(None) => Err("this backend cannot refund by itself".to_string()),
                    Err(e) => Err(e.clone()),
                };
                if let (Ok(Some(link)), Ok(l)) = (&result, &mut self.ledger) {
                    if let Err(e) = l.record_refunded(&sale, link) {
                        tracing::error!(sale = %sale_id, error = %e, "refund made but not recorded");
                    }
                }
                if let Err(e) = &shown {
                    tracing::error!(sale = %sale_id, error = %e, "refund from the fault screen failed");
                }
                *slot = Some(shown);
                return;
            }
        }
        match result {
            Ok(detail) => {
                let record = detail
                    .clone()
                    .unwrap_or_else(|| format!("by hand, receipt {sale_id}"));
                if let Ok(l) = &mut self.ledger {
                    match l.record_refunded(&sale, &record) {
                        Ok(true) => tracing::info!(sale = %sale_id, "owed credit refunded"),
                        Ok(false) => {
                            self.op.message = format!("{sale_id} is no longer owed.");
                            return;
                        }
                        Err(e) => {
                            self.op.message = format!("Refund made but NOT recorded: {e}");
                            return;
                        }
                    }
                }
                self.op.refund = Some(match detail {
                    Some(link) => (Some(link), format!("Scan to claim the refund of {sale_id}")),
                    None => (
                        None,
                        format!("Refund {sale_id} by hand; receipt code {sale_id}"),
                    ),
                });
                self.op.message.clear();
            }
            Err(e) => {
                tracing::error!(sale = %sale_id, error = %e, "refund failed");
                self.op.message = format!("Refund failed: {e}");
            }
        }
    }

    fn operator_view(&mut self) -> OperatorView {
        let mut v = OperatorView {
            tab: self.op.tab,
            unsaved: self.op.unsaved,
            message: self.op.message.clone(),
            ..OperatorView::default()
        };
        v.products = self
            .op
            .draft
            .iter()
            .map(|p| OpProduct {
                name: p.name.clone(),
                price: p.price.display(),
                pour: format!("{:.2} s", p.pour.as_secs_f64()),
            })
            .collect();
        if let Ok(l) = &self.ledger {
            let now = unix_now_us();
            let sats = |t: crate::ledger::Totals| {
                format!(
                    "{} sales, {}",
                    t.count,
                    Msat::from_msat(t.msat).display_sats()
                )
            };
            v.today = l
                .totals_since(crate::timefmt::today_start_us(now))
                .map(sats)
                .unwrap_or_else(|e| e.to_string());
            v.total = l
                .totals_since(0)
                .map(sats)
                .unwrap_or_else(|e| e.to_string());
            v.recent = l
                .sales_since(0, 20)
                .map(|rows| {
                    rows.into_iter()
                        .map(|r| {
                            format!(
                                "{}  {}  {}  {}",
                                crate::timefmt::format_us(r.created_us),
                                r.product,
                                Msat::from_msat(r.price_msat).display_sats(),
                                r.state
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            v.credits = l
                .owed()
                .map(|o| {
                    o.into_iter()
                        .map(|o| OpCredit {
                            text: format!(
                                "{} {} {}: {}",
                                o.sale_id,
                                o.product,
                                Msat::from_msat(o.price_msat).display_sats(),
                                o.reason
                            ),
                            sale_id: o.sale_id.0,
                        })
                        .collect()
                })
                .unwrap_or_default();
        }
        v.status = vec![
            format!("Machine: {}", self.settings.machine_id),
            format!("Payment backend: {}", self.health),
            format!("Network: {:?}", self.settings.network),
            format!(
                "Ledger: {}",
                match &self.ledger {
                    Ok(_) => "writable".to_string(),
                    Err(e) => e.clone(),
                }
            ),
            format!("lnvend {}", self.settings.version),
        ];
        if let Some((link, text)) = &self.op.refund {
            v.refund_text = text.clone();
            v.refund_qr = link.as_ref().and_then(|l| match qr::render(l, 300) {
                Ok(b) => Some(Arc::new(b)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot draw the refund QR");
                    None
                }
            });
        }
        v
    }
}

/// One operator step of a price: 100 sats, or 0.10 of a fiat unit; never below one step.
fn step_price(p: &Price, up: bool) -> Price {
    match p {
        Price::Sats(m) => {
            let sat = m.as_msat() / 1000;
            let next = if up {
                sat.saturating_add(PRICE_STEP_SAT)
                    .min(crate::config::MAX_PRICE_SAT)
            } else {
                sat.saturating_sub(PRICE_STEP_SAT)
                    .max(PRICE_STEP_SAT.min(sat.max(1)))
            };
            Price::Sats(Msat::from_sat(next).unwrap_or(*m))
        }
        Price::Fiat(f) => {
            let minor = if up {
                f.minor().saturating_add(10)
            } else {
                f.minor().saturating_sub(10).max(10)
            };
            let text = format!("{}.{:02}", minor / 100, minor % 100);
            Fiat::parse(&text, f.currency())
                .map(Price::Fiat)
                .unwrap_or_else(|_| p.clone())
        }
    }
}

fn unix_now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn idle_view(settings: &Settings) -> View {
    View {
        screen: Screen::Idle,
        machine_id: settings.machine_id.clone(),
        tiles: settings
            .catalog
            .iter()
            .map(|p| Tile {
                name: p.name.clone(),
                price: p.price.display(),
            })
            .collect(),
        product: String::new(),
        amount: String::new(),
        payment_uri: String::new(),
        qr: None,
        seconds_left: 0,
        progress: 0.0,
        message: String::new(),
        code: String::new(),
        detail: String::new(),
        credits: Vec::new(),
        pin_message: String::new(),
        fault_refund: false,
        refund_qr: None,
        refund_text: String::new(),
        operator: None,
    }
}

/// Asks for an invoice and checks the BOLT11 against the request before it can be shown.
async fn create_invoice(
    backend: &dyn PaymentBackend,
    request: &InvoiceRequest,
    network: Network,
    timeout: Duration,
) -> Result<(Invoice, Instant), String> {
    let invoice = match tokio::time::timeout(timeout, backend.create_invoice(request)).await {
        Err(_) => {
            return Err(format!(
                "the payment backend did not answer within {timeout:?}"
            ))
        }
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(i)) => i,
    };
    crate::bolt11::check(&invoice, request, network, SystemTime::now()).map_err(|e| {
        tracing::error!(invoice = %invoice.id, error = %e, "refusing to show an invoice that does not match the request");
        e.to_string()
    })?;
    let expires_at = instant_of_unix(invoice.expires_at_unix);
    Ok((invoice, expires_at))
}

async fn health_loop(
    backend: Arc<dyn PaymentBackend>,
    every: Duration,
    timeout: Duration,
    tx: mpsc::UnboundedSender<Input>,
) {
    let mut last_ok: Option<bool> = None;
    loop {
        let ev = match tokio::time::timeout(timeout, backend.check_health()).await {
            Ok(Ok(())) => Event::BackendUp,
            Ok(Err(e)) => Event::BackendDown {
                reason: e.to_string(),
            },
            Err(_) => Event::BackendDown {
                reason: format!("no answer within {timeout:?}"),
            },
        };
        let ok = ev == Event::BackendUp;
        if last_ok != Some(ok) {
            match &ev {
                Event::BackendDown { reason } => tracing::warn!(%reason, "payment backend down"),
                _ => tracing::info!(backend = backend.name(), "payment backend up"),
            }
            last_ok = Some(ok);
        }
        if tx.send(Input::Event(ev)).is_err() {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

struct StopOnDrop(Pump);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        // Runs on panic unwinding of the controller task too.
        self.0.emergency_stop();
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The tokio instant at which a UNIX time falls (now if it is past).
fn instant_of_unix(unix: u64) -> Instant {
    Instant::now() + Duration::from_secs(unix.saturating_sub(unix_now()))
}

/// `S<unix seconds>-<4 hex digits>`. Within one second the suffix counts up from a random
/// start, so two sales started in the same second never get the same id (two random
/// suffixes collided in a soak of fast vend cycles, and the ledger then refused the sale).
fn new_sale_id() -> SaleId {
    static LAST: std::sync::Mutex<(u64, u16)> = std::sync::Mutex::new((0, 0));
    let now = unix_now();
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let suffix = if last.0 == now {
        last.1.wrapping_add(1)
    } else {
        rand::random::<u16>()
    };
    *last = (now, suffix);
    SaleId(format!("S{now}-{suffix:04X}"))
}

fn failure_text(f: &PourFailure) -> String {
    match f {
        PourFailure::Pump(r) => format!("pump: {r}"),
        PourFailure::Ledger(r) => format!("ledger: {r}"),
        PourFailure::AlreadyPoured => "already poured".into(),
    }
}

fn event_name(e: &Event) -> &'static str {
    match e {
        Event::ProductTapped { .. } => "ProductTapped",
        Event::CancelTapped => "CancelTapped",
        Event::FaultDismissed => "FaultDismissed",
        Event::InvoiceCreated { .. } => "InvoiceCreated",
        Event::InvoiceFailed { .. } => "InvoiceFailed",
        Event::PaymentConfirmed { .. } => "PaymentConfirmed",
        Event::InvoiceExpired { .. } => "InvoiceExpired",
        Event::Tick => "Tick",
        Event::PourFinished { .. } => "PourFinished",
        Event::PourFailed { .. } => "PourFailed",
        Event::BackendDown { .. } => "BackendDown",
        Event::BackendUp => "BackendUp",
        Event::ServiceRestored => "ServiceRestored",
        Event::LedgerDown { .. } => "LedgerDown",
        Event::CreditTapped { .. } => "CreditTapped",
        Event::ServiceEntered => "ServiceEntered",
        Event::ServiceLeft => "ServiceLeft",
    }
}
