//! The controller task: the only place where the vend cycle meets the world. It owns the
//! state, the pump and the ledger, receives every input (taps, backend answers, payment
//! confirmations, pump reports, health, time) on one channel, runs [`vend::step`], carries
//! out the effects in order, and publishes a [`View`] for the UI.
//!
//! The money rules live here in two places only: a sale is written to the ledger before its
//! QR is shown (`InvoiceCreated` is turned into `InvoiceFailed` if it cannot be), and a
//! pour starts only after the ledger committed the payment and the pour start.
//!
//! Beside it: [`late`] (payments that arrive where no watch looks) and [`limits`] (the
//! invoice rate limit and the public credit offers, on the monotonic clock).

pub mod late;
pub mod limits;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{sleep_until, Instant};

use crate::backend::watch::{watch_invoice, WatchTiming};
use crate::backend::{Invoice, InvoiceId, InvoiceRequest, PaymentBackend};
use crate::clock::{instant_of_unix, Clock};
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
    /// A background check (start-up, catch-up, sweep) found this invoice paid: the
    /// controller compares `received` with the ledger's amount before believing it.
    PaidOutOfBand {
        invoice_id: InvoiceId,
        received: Msat,
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
    /// The wall and monotonic clocks, and whether the wall clock may be trusted.
    pub clock: Arc<dyn Clock>,
}

/// The most invoices watched live at once. Beyond it the oldest abandoned invoice's watch
/// ends and the late-payment sweep ([`late`]) covers it: a prankster tapping and cancelling
/// cannot grow the machine without bound.
pub const MAX_WATCHES: usize = 32;

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
    /// A sale whose invoice waits for the rate limit, and when it may be asked for.
    deferred: Option<(Sale, Instant)>,
    invoices: limits::TokenBucket,
    /// Live watches, with the order they started in (for dropping the oldest).
    watches: HashMap<InvoiceId, (u64, JoinHandle<()>)>,
    watch_seq: u64,
    /// One-shot background work (invoice creation, checks, refunds), aborted at shutdown.
    tasks: JoinSet<()>,
    /// The periodic sweep's check, while it runs.
    sweep_task: Option<JoinHandle<()>>,
    /// When the sweep last asked about each unwatched invoice.
    swept: HashMap<InvoiceId, Instant>,
    /// Owed credits the public screen offers, until when.
    offers: limits::Offers,
    /// The last sale id minted (seconds, suffix), so ids only ever go up.
    last_id: (u64, u16),
    /// The wall clock's state at the last look (None: not looked yet).
    clock_problem: Option<Option<String>>,
    /// The last backend health report, to restore it once the clock is right.
    backend_down: Option<String>,
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
            deferred: None,
            invoices: limits::TokenBucket::new(
                limits::INVOICE_BURST,
                limits::INVOICE_REFILL,
                Instant::now(),
            ),
            watches: HashMap::new(),
            watch_seq: 0,
            tasks: JoinSet::new(),
            sweep_task: None,
            swept: HashMap::new(),
            offers: limits::Offers::default(),
            last_id: (0, 0),
            clock_problem: None,
            backend_down: None,
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
        let mut sweep =
            tokio::time::interval_at(Instant::now() + late::SWEEP_EVERY, late::SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                    self.start_deferred_invoice();
                    self.handle(Input::Event(Event::Tick));
                }
                _ = beat.tick() => {
                    self.heartbeat.send_replace(Instant::now());
                    self.check_clock();
                }
                _ = sweep.tick() => self.sweep(),
            }
            // Finished one-shot tasks leave their results here; drop them as they come.
            while self.tasks.try_join_next().is_some() {}
        }
        // The pump first: whatever else fails below, it is off.
        if let Err(e) = self.pump.stop() {
            tracing::error!(error = %e, "could not stop the pump at shutdown");
        }
        if let Some(p) = self.pour_task.take() {
            p.abort();
        }
        // A pour cut short by a stop is owed now, not left "pouring" until the next start.
        if let State::Pouring { sale, .. } = &self.state {
            let sale = sale.id.clone();
            match &mut self.ledger {
                Ok(l) => match l.record_owed(&sale, "the machine was stopped during the pour") {
                    Ok(_) => {
                        tracing::warn!(sale = %sale, "stopped during the pour: the sale is an owed credit")
                    }
                    Err(e) => {
                        tracing::error!(sale = %sale, error = %e, "stopped during the pour and could not record it; it becomes owed at the next start")
                    }
                },
                Err(_) => tracing::error!(sale = %sale, "stopped during the pour with no ledger"),
            }
        }
        health.abort();
        for (_, (_, w)) in self.watches.drain() {
            w.abort();
        }
        if let Some(t) = self.sweep_task.take() {
            t.abort();
        }
        if let Some(t) = self.op_pump.take() {
            t.abort();
        }
        self.tasks.shutdown().await;
        let _ = health.await;
        tracing::info!("controller stopped; pump off");
    }

    fn start_up(&mut self) {
        self.check_clock();
        let now = self.settings.clock.now();
        let window = self.settings.credit_window;
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
                // Credits the customer may still be waiting for: those that became owed
                // within the window (just now, for pours the restart interrupted). A wall
                // clock that went backwards makes a credit look younger than it is, so only
                // ages between zero and the window count.
                let wall_us = self.settings.clock.unix_us();
                match ledger.public_credits() {
                    Ok(credits) => {
                        for (o, credited_us) in credits {
                            let age = wall_us.checked_sub(credited_us).unwrap_or(-1);
                            let window_us = window.as_micros() as i64;
                            if (0..window_us).contains(&age) {
                                let left = Duration::from_micros((window_us - age) as u64);
                                self.offers.offer(o.sale_id, now + left);
                            }
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "could not list owed credits"),
                }
                match ledger.newest_sale_id() {
                    Ok(Some(id)) => self.last_id = parse_sale_id(&id).unwrap_or((0, 0)),
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "could not read the newest sale id"),
                }
                match ledger.meta(PIN_FAILURES) {
                    Ok(Some(n)) => {
                        let failures = n.parse().unwrap_or(crate::operator::FREE_TRIES);
                        self.lockout = Lockout::restore(failures, now);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "could not read the PIN lockout; locking the pad");
                        self.lockout = Lockout::restore(crate::operator::FREE_TRIES, now);
                    }
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
                // lnvend was down are checked, in case they were paid in time.
                let now_unix = self.settings.clock.unix();
                match ledger.unsettled_since(now_unix.saturating_sub(RECHECK_WINDOW.as_secs())) {
                    Ok(open) => {
                        let mut expired = Vec::new();
                        for o in open {
                            if o.invoice.expires_at_unix > now_unix {
                                tracing::info!(sale = %o.sale_id, invoice = %o.invoice.id, "still watching an unpaid invoice from before the restart");
                                self.spawn_watch(o.invoice);
                            } else {
                                expired.push(o.invoice.id);
                            }
                        }
                        if !expired.is_empty() {
                            self.tasks.spawn(late::check_invoices(
                                self.backend.clone(),
                                expired,
                                self.settings.request_timeout,
                                late::Attempts::AT_START,
                                self.tx.clone(),
                            ));
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "could not list unsettled invoices"),
                }
                self.tasks.spawn(late::catch_up(
                    self.backend.clone(),
                    self.settings.request_timeout,
                    self.tx.clone(),
                ));
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
            State::Idle => Some(
                self.offers
                    .next_end()
                    .map_or(now + Duration::from_secs(30), |e| e.max(now)),
            ),
            State::CreatingInvoice { .. }
            | State::ThankYou { .. }
            | State::OutOfService { .. }
            | State::Service => None,
        };
        let deferred = self.deferred.as_ref().map(|(_, at)| *at);
        [self.state.deadline(), refresh, deferred]
            .into_iter()
            .flatten()
            .min()
    }

    /// Looks at the wall clock: nothing is sold while it is not known to be right.
    fn check_clock(&mut self) {
        let problem = self.settings.clock.sync_problem();
        let changed = self.clock_problem.as_ref() != Some(&problem);
        match &problem {
            Some(reason) => {
                if changed {
                    tracing::warn!(%reason, "the wall clock is not trusted; selling nothing until it is");
                }
                self.apply(Event::ClockWrong {
                    reason: reason.clone(),
                });
            }
            None if changed && self.clock_problem.is_some() => {
                tracing::info!("the wall clock is synchronised; selling");
                self.apply(Event::ClockRight);
                if let Some(reason) = self.backend_down.clone() {
                    self.apply(Event::BackendDown { reason });
                }
            }
            None => {}
        }
        self.clock_problem = Some(problem);
        self.publish();
    }

    /// Starts the invoice a tap is waiting for, once the rate limit allows.
    fn start_deferred_invoice(&mut self) {
        let Some((sale, at)) = self.deferred.take() else {
            return;
        };
        let still_wanted =
            matches!(&self.state, State::CreatingInvoice { sale: s, .. } if s.id == sale.id);
        if !still_wanted {
            // Cancelled (or given up) before it was asked for: no invoice at all.
            self.creating.remove(&sale.id);
            return;
        }
        let now = Instant::now();
        if now < at || !self.invoices.take(now) {
            let at = self.invoices.ready_at(now);
            self.deferred = Some((sale, at));
            return;
        }
        self.spawn_create(sale);
    }

    /// The periodic look at unsettled invoices no watch covers (see [`late`]).
    fn sweep(&mut self) {
        if self.sweep_task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.watches.retain(|_, (_, h)| !h.is_finished());
        let Ok(ledger) = &self.ledger else {
            return;
        };
        let since = self
            .settings
            .clock
            .unix()
            .saturating_sub((late::LATE_WINDOW + self.settings.invoice_expiry).as_secs());
        let open = match ledger.unsettled_since(since) {
            Ok(open) => open,
            Err(e) => {
                tracing::error!(error = %e, "could not list unsettled invoices");
                return;
            }
        };
        let mut candidates: Vec<(Option<Instant>, InvoiceId)> = open
            .into_iter()
            .map(|o| o.invoice.id)
            .filter(|id| !self.watches.contains_key(id))
            .map(|id| (self.swept.get(&id).copied(), id))
            .collect();
        // Forget what is no longer a candidate, so the map stays as small as the window.
        self.swept
            .retain(|id, _| candidates.iter().any(|(_, c)| c == id));
        // Never asked first, then the longest ago.
        candidates.sort();
        let now = Instant::now();
        let batch: Vec<InvoiceId> = candidates
            .into_iter()
            .take(late::SWEEP_BATCH)
            .map(|(_, id)| id)
            .collect();
        if batch.is_empty() {
            return;
        }
        for id in &batch {
            self.swept.insert(id.clone(), now);
        }
        tracing::debug!(count = batch.len(), "checking unwatched unsettled invoices");
        self.sweep_task = Some(tokio::spawn(late::check_invoices(
            self.backend.clone(),
            batch,
            self.settings.request_timeout,
            late::Attempts::ONCE,
            self.tx.clone(),
        )));
    }

    /// A payment a background check found: believed only for one of our invoices and for at
    /// least its amount, then handled like any confirmation (a late one becomes owed).
    fn paid_out_of_band(&mut self, invoice_id: InvoiceId, received: Msat) -> Option<Event> {
        let recorded = match &self.ledger {
            Ok(l) => l.invoice_by_id(&invoice_id),
            Err(_) => return None,
        };
        match recorded {
            Ok(Some(open)) if received >= open.invoice.amount => {
                Some(Event::PaymentConfirmed { invoice_id })
            }
            Ok(Some(open)) => {
                tracing::error!(invoice = %invoice_id, %received, expected = %open.invoice.amount, "an invoice was paid with less than its price; not owed automatically, refund by hand");
                None
            }
            Ok(None) => {
                tracing::info!(invoice = %invoice_id, "a paid invoice that is not one of ours; ignored");
                None
            }
            Err(e) => {
                tracing::error!(invoice = %invoice_id, error = %e, "could not look up a paid invoice");
                None
            }
        }
    }

    fn handle(&mut self, input: Input) {
        let event = match input {
            Input::Tap(i) => match self.settings.catalog.get(i).cloned() {
                Some(product) => {
                    // A tap waiting for the rate limit waits on "Preparing…", which gives up
                    // a request time after its turn comes.
                    let now = Instant::now();
                    let turn = self.invoices.ready_at(now);
                    Event::ProductTapped {
                        product,
                        sale_id: self.new_sale_id(),
                        give_up_at: turn + self.settings.request_timeout,
                    }
                }
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
            Input::PaidOutOfBand {
                invoice_id,
                received,
            } => match self.paid_out_of_band(invoice_id, received) {
                Some(e) => e,
                None => return,
            },
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
        let quiet = matches!(
            event,
            Event::Tick | Event::BackendUp | Event::ClockWrong { .. }
        );
        let event_name = event.name();
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
                let now = Instant::now();
                if self.invoices.take(now) {
                    self.spawn_create(sale);
                } else {
                    tracing::info!(sale = %sale.id, "invoices asked for too quickly; this one waits its turn");
                    // Only the newest tap waits; an older waiting one was left already.
                    if let Some((old, _)) = self.deferred.take() {
                        self.creating.remove(&old.id);
                    }
                    let at = self.invoices.ready_at(now);
                    self.deferred = Some((sale, at));
                }
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
                self.offers.withdraw(&sale_id);
                if let Ok(l) = &mut self.ledger {
                    // Once more on a failure (a busy disk), then out of service: the sale
                    // stays "pouring" in the ledger and becomes owed at the next start, at
                    // most once more on the public screen (see ledger::MAX_AUTOMATIC_POURS).
                    let recorded = l
                        .record_poured(&sale_id)
                        .or_else(|_| l.record_poured(&sale_id));
                    if let Err(e) = recorded {
                        tracing::error!(sale = %sale_id, error = %e, "could not record the finished pour; out of service");
                        let _ = self.tx.send(Input::Event(Event::LedgerDown {
                            reason: format!("cannot record a finished pour: {e}"),
                        }));
                    }
                }
            }
            Effect::RecordOwed { sale_id, failure } => {
                let reason = failure_text(&failure);
                tracing::error!(sale = %sale_id, %reason, "paid but not poured: owed credit");
                match &mut self.ledger {
                    Ok(l) => match l.record_owed(&sale_id, &reason) {
                        Ok(true) => {
                            let until = Instant::now() + self.settings.credit_window;
                            self.offers.offer(sale_id, until);
                        }
                        Ok(false) => {
                            // Its credit pour was interrupted too: the operator decides.
                            self.offers.withdraw(&sale_id);
                            tracing::warn!(sale = %sale_id, "a second interrupted pour of one sale: only the operator can settle or refund it now");
                        }
                        Err(e) => {
                            tracing::error!(sale = %sale_id, error = %e, "COULD NOT RECORD AN OWED CREDIT; the fault screen shows the code");
                        }
                    },
                    Err(_) => {
                        tracing::error!(sale = %sale_id, "no ledger: the owed credit exists only on the fault screen and in this log")
                    }
                }
            }
            Effect::RecordLatePayment { invoice_id } => match &mut self.ledger {
                Ok(l) => match l.record_late_payment(&invoice_id) {
                    Ok(Some(sale)) => {
                        tracing::warn!(sale = %sale, invoice = %invoice_id, "a payment arrived after the customer left; recorded as an owed credit");
                        let until = Instant::now() + self.settings.credit_window;
                        self.offers.offer(sale, until);
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
        if !credit {
            self.invoices.give_back();
        }
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

    /// Asks the backend for the sale's invoice (the rate limit already let it through).
    fn spawn_create(&mut self, sale: Sale) {
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
        let clock = self.settings.clock.clone();
        self.tasks.spawn(async move {
            let ev = create_invoice(
                backend.as_ref(),
                &request,
                sale.product.sat_bounds,
                network,
                timeout,
                clock.as_ref(),
            )
            .await;
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

    fn spawn_watch(&mut self, invoice: Invoice) {
        self.watches.retain(|_, (_, h)| !h.is_finished());
        if self.watches.len() >= MAX_WATCHES && !self.watches.contains_key(&invoice.id) {
            // The oldest watch of an invoice nobody is looking at goes; the sweep covers it.
            let on_screen = match &self.state {
                State::AwaitingPayment { invoice, .. } => Some(invoice.id.clone()),
                _ => None,
            };
            let oldest = self
                .watches
                .iter()
                .filter(|(id, _)| Some(*id) != on_screen.as_ref())
                .min_by_key(|(_, (seq, _))| *seq)
                .map(|(id, _)| id.clone());
            if let Some(id) = oldest {
                if let Some((_, h)) = self.watches.remove(&id) {
                    h.abort();
                }
                tracing::info!(invoice = %id, "too many invoices watched; the late-payment sweep checks this one instead");
            }
        }
        let expires_at = instant_of_unix(self.settings.clock.as_ref(), invoice.expires_at_unix);
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
        self.watch_seq += 1;
        if let Some((_, old)) = self.watches.insert(id, (self.watch_seq, handle)) {
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
            State::CreatingInvoice { sale, .. } => {
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
    fn idle_credits(&mut self) -> Vec<CreditTile> {
        let offered = self.offers.current(Instant::now());
        let Ok(ledger) = &self.ledger else {
            return Vec::new();
        };
        let mut tiles = Vec::new();
        for id in offered {
            match ledger.owed_sale(&id) {
                // Still owed, and the customer may pour it themselves.
                Ok(Some(o)) if o.public && self.product_named(&o.product).is_some() => {
                    tiles.push(CreditTile {
                        sale_id: o.sale_id.0,
                        product: o.product,
                    })
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot read an owed credit"),
            }
        }
        tiles.truncate(3);
        tiles
    }

    fn product_named(&self, name: &str) -> Option<&Product> {
        self.settings.catalog.iter().find(|p| p.name == name)
    }

    /// The sale behind a credit tile, if it is still owed and inside its window.
    fn credit_sale(&mut self, sale_id: &str) -> Option<(Sale, InvoiceId)> {
        let tile = self
            .idle_credits()
            .into_iter()
            .find(|c| c.sale_id == sale_id)?;
        let product = self.product_named(&tile.product)?.clone();
        let id = SaleId(tile.sale_id);
        let invoice_id = self.ledger.as_ref().ok()?.invoice_of(&id).ok()??;
        tracing::info!(sale = %id, "customer tapped an owed credit");
        self.offers.withdraw(&id);
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
        let outcome = self.lockout.attempt(&hash, pin, Instant::now());
        // Kept in the ledger, so a power cycle gives no fresh tries.
        if let Ok(l) = &mut self.ledger {
            if let Err(e) = l.set_meta(PIN_FAILURES, &self.lockout.failures().to_string()) {
                tracing::error!(error = %e, "could not record the PIN attempt");
            }
        }
        match outcome {
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
            Event::BackendUp => {
                self.health = format!("{}: answering", self.backend.name());
                self.backend_down = None;
            }
            Event::BackendDown { reason } => {
                self.health = format!("{}: {reason}", self.backend.name());
                self.backend_down = Some(reason.clone());
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
            | Event::ServiceLeft
            | Event::ClockWrong { .. }
            | Event::ClockRight => {}
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
            let now = self.settings.clock.unix_us();
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
    bounds: Option<(Msat, Msat)>,
    network: Network,
    timeout: Duration,
    clock: &dyn Clock,
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
    crate::bolt11::check(&invoice, request, network, clock.wall()).map_err(|e| {
        tracing::error!(invoice = %invoice.id, error = %e, "refusing to show an invoice that does not match the request");
        e.to_string()
    })?;
    if let Some((lo, hi)) = bounds {
        if invoice.amount < lo || invoice.amount > hi {
            let reason = format!(
                "the backend priced {} at {}, outside this product's min_sat..max_sat ({}..{}); is its exchange rate broken?",
                request.price.display(),
                invoice.amount.display_sats(),
                lo.display_sats(),
                hi.display_sats()
            );
            tracing::error!(invoice = %invoice.id, %reason, "refusing to show the invoice");
            return Err(reason);
        }
    }
    let expires_at = instant_of_unix(clock, invoice.expires_at_unix);
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

/// Reads `S<unix seconds>-<4 hex digits>` back.
fn parse_sale_id(id: &str) -> Option<(u64, u16)> {
    let (secs, suffix) = id.strip_prefix('S')?.split_once('-')?;
    Some((secs.parse().ok()?, u16::from_str_radix(suffix, 16).ok()?))
}

/// The ledger key under which the operator PIN's failure count survives a restart.
const PIN_FAILURES: &str = "pin_failures";

impl Controller {
    /// `S<unix seconds>-<4 hex digits>`, always above the last one minted (or found in the
    /// ledger at start), whatever the wall clock does: a clock stepped back an hour must not
    /// make an id the ledger (or Core Lightning's labels) already holds. Within one second
    /// the suffix counts up from a random start.
    fn new_sale_id(&mut self) -> SaleId {
        let (last_s, last_n) = self.last_id;
        let now = self.settings.clock.unix();
        let (secs, suffix) = if now > last_s {
            (now, rand::random::<u16>() & 0x7fff)
        } else if last_n == u16::MAX {
            (last_s + 1, 0)
        } else {
            (last_s, last_n + 1)
        };
        self.last_id = (secs, suffix);
        SaleId(format!("S{secs}-{suffix:04X}"))
    }
}

fn failure_text(f: &PourFailure) -> String {
    match f {
        PourFailure::Pump(r) => format!("pump: {r}"),
        PourFailure::Ledger(r) => format!("ledger: {r}"),
        PourFailure::AlreadyPoured => "already poured".into(),
    }
}
