//! The controller task: the only place where the vend cycle meets the world. It owns the
//! state, the pump and the ledger, receives every input (taps, backend answers, payment
//! confirmations, pump reports, health, time) on one channel, runs [`vend::step`], carries
//! out the effects in order, and publishes a [`View`] for the UI.
//!
//! The money rules live here in two places only: a sale is written to the ledger before its
//! QR is shown (`InvoiceCreated` is turned into `InvoiceFailed` if it cannot be), and a
//! pour starts only after the ledger committed the payment and the pour start.
//!
//! The rooms: [`input`] (what reaches the controller), [`view`] (what the UI shows),
//! `effects` (carrying out the vend cycle's effects, the ledger first), `tasks` (the
//! background work it starts, all tracked and ended at shutdown), `operator` (the PIN and
//! the menu), `credits` (the credit a customer taps, refunds), [`late`] (payments that
//! arrive where no watch looks) and [`limits`] (the invoice rate limit and the public
//! credit offers, on the monotonic clock).

mod calibration;
mod card;
mod credits;
mod effects;
mod flow;
mod health;
mod hold;
pub mod input;
pub mod late;
pub mod limits;
mod mdb;
mod observe;
mod operator;
mod sales_chart;
mod settings;
mod startup;
mod tasks;
pub mod view;

pub use calibration::CALIBRATION_ML;
pub use card::CardView;
pub use flow::{FlowChannel, StockSpec};
pub use input::*;
pub use mdb::MdbSettings;
pub use settings::Settings;
pub use view::*;

use operator::OpState;
use startup::PIN_FAILURES;
use tasks::health_loop;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{sleep_until, Instant};

use crate::backend::watch::{watch_payment, WatchOutcome, WatchTiming};
use crate::backend::{CancelOutcome, Invoice, InvoiceId, InvoiceRequest, PaymentBackend};
use crate::clock::{instant_of_unix, Clock};
use crate::config::Network;
use crate::dispense::{Dispensed, Dispenser, MachineDispenser, Plan, PumpDispenser};
use crate::ledger::{Ledger, LedgerError};
use crate::money::{Fiat, Msat, Price};
use crate::operator::{Lockout, PinHash, PinOutcome};
use crate::pump::{Channel, Direction};
use crate::pump::{PourSettings, Pump};
use crate::qr::{self, QrBitmap};
use crate::secret::Secret;
use crate::vend::{self, Effect, Event, PourFailure, Product, Sale, SaleId, State};

/// The most invoices watched live at once. Beyond it the oldest abandoned invoice's watch
/// ends and the late-payment sweep ([`late`]) covers it: a prankster tapping and cancelling
/// cannot grow the machine without bound.
pub const MAX_WATCHES: usize = 32;

/// How far back unsettled invoices are re-checked at start.
pub const RECHECK_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

pub struct Controller {
    settings: Settings,
    state: State,
    backend: Arc<dyn PaymentBackend>,
    pump: Pump,
    /// Every sale's dispense goes through this (the pump itself is kept for the operator's
    /// prime and reverse runs, and for the emergency stop).
    dispenser: Arc<dyn Dispenser>,
    /// The MDB HAT's session, when the machine sells through one.
    mdb: mdb::MdbState,
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
    /// Sales whose refund is under way (one at a time per sale), with the amount asked for.
    refunding: HashMap<SaleId, Msat>,
    /// Why the ledger cannot be trusted to record sales, once a write failed after a pour:
    /// the machine goes out of service as soon as it is back on the idle screen.
    ledger_fault: Option<String>,
    /// Finished pours the ledger could not record yet.
    unrecorded_pours: Vec<SaleId>,
    /// Refunds made that the ledger could not record yet (see `credits::refund_done`).
    unrecorded_refunds: Vec<(SaleId, Msat, String)>,
    /// When the fault screen of a sale began to show its refund's answer (it stays
    /// `credits::REFUND_ANSWER_SHOWN` at least).
    fault_answer_shown: Option<(SaleId, Instant)>,
    /// The credits of before the start are offered only once the wall clock is trusted
    /// (their age comes from the ledger's wall-clock dates).
    offers_pending: bool,
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
    /// The payment request ran out: the idle screen says so until then.
    expired_notice: Option<Instant>,
    /// What Prometheus reads (see `observe`).
    metrics: Arc<crate::metrics::Metrics>,
    /// A step may have changed the owed credits: refresh their gauges.
    owed_changed: bool,
    /// Products that cannot be sold now (stock used up, tank found dry), by index.
    sold_out: std::collections::BTreeSet<usize>,
    /// The stock left of every product that keeps one, by index.
    stock_ml: HashMap<usize, u32>,
    /// Each flow sensor's last rate sample (when, pulses, pulses per second).
    flow_rate: HashMap<Channel, (Instant, u64, f64)>,
    /// The amount the payment screen showed for this sale, for "Payment received" after.
    paid_amount: Option<(SaleId, String)>,
    /// Bolt Card taps (see `card`).
    cards: card::Cards,
    /// The sats of the last invoice for each fiat-priced product (by index), with the fiat
    /// price it was for: the tile's "≈ sats" (see `view`).
    fiat_sats: HashMap<usize, (crate::money::Fiat, Msat)>,
    /// Whether new sales get hold invoices (see `hold`).
    holds: hold::HoldUse,
    /// The preimages of hold invoices being created, until the ledger has them.
    preimages: HashMap<SaleId, crate::backend::Preimage>,
    /// Sales whose held payment a background task is settling or cancelling.
    resolving: std::collections::HashSet<SaleId>,
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
        let metrics = Arc::new(crate::metrics::Metrics::new(
            &crate::metrics::BuildInfo {
                version: settings.version.clone(),
                backend: backend.name().to_string(),
                machine_id: settings.machine_id.clone(),
            },
            &settings
                .catalog
                .iter()
                .map(|p| p.name.clone())
                .collect::<Vec<_>>(),
            settings.clock.unix(),
        ));
        metrics.state(&state);
        let (view, _) = watch::channel(initial);
        let dispenser: Arc<dyn Dispenser> = Arc::new(MachineDispenser::new(
            PumpDispenser::new(pump.clone(), settings.pour),
            None,
        ));
        Controller {
            settings,
            state,
            backend,
            pump,
            dispenser,
            mdb: mdb::MdbState::default(),
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
            refunding: HashMap::new(),
            ledger_fault: None,
            unrecorded_pours: Vec::new(),
            unrecorded_refunds: Vec::new(),
            fault_answer_shown: None,
            offers_pending: false,
            pour_task: None,
            qr_cache: None,
            heartbeat: watch::channel(Instant::now()).0,
            pin_prompt: None,
            lockout: Lockout::default(),
            op: OpState::default(),
            health: "not checked yet".into(),
            op_pump: None,
            fault_refund: None,
            expired_notice: None,
            metrics,
            owed_changed: true,
            sold_out: std::collections::BTreeSet::new(),
            stock_ml: HashMap::new(),
            flow_rate: HashMap::new(),
            paid_amount: None,
            cards: card::Cards::default(),
            fiat_sats: HashMap::new(),
            holds: hold::HoldUse::default(),
            preimages: HashMap::new(),
            resolving: std::collections::HashSet::new(),
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
    /// Replaces the dispenser (the machine's pump and pulse lines, or a fake in tests).
    pub fn set_dispenser(&mut self, dispenser: Arc<dyn Dispenser>) {
        self.dispenser = dispenser;
    }
    /// The payment backend (the app asks it at start whether it can hold invoices).
    pub fn backend(&self) -> Arc<dyn PaymentBackend> {
        self.backend.clone()
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
                    self.retry_unrecorded_pours();
                    self.check_clock();
                    self.refresh_served_metrics();
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
        if let Err(e) = self.dispenser.stop() {
            tracing::error!(error = %e, "could not stop the dispenser at shutdown");
        }
        self.take_pour_report().await;
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
        self.stop_mdb().await;
        self.tasks.shutdown().await;
        let _ = health.await;
        tracing::info!("controller stopped; pump off");
    }
    pub(super) fn next_wake(&self) -> Option<Instant> {
        let now = Instant::now();
        let refresh = match self.state {
            State::AwaitingPayment { .. } | State::Fault { .. } => {
                Some(now + Duration::from_millis(500))
            }

            State::Pouring { .. } => Some(now + Duration::from_millis(100)),
            // Owed credits leave the idle screen when their window ends, and the expiry
            // notice when its time is up.
            State::Idle => Some(
                self.offers
                    .next_end()
                    .into_iter()
                    .chain(self.expired_notice)
                    .min()
                    .map_or(now + Duration::from_secs(30), |e| e.max(now)),
            ),
            // The live pulse rate of the dry-run test, while an operator pump run goes.
            State::Service
                if !self.settings.flow.is_empty()
                    && self.op_pump.as_ref().is_some_and(|t| !t.is_finished()) =>
            {
                Some(now + Duration::from_millis(500))
            }
            State::CreatingInvoice { .. }
            | State::ThankYou { .. }
            | State::OutOfService { .. }
            | State::Service => None,
        };
        let deferred = self.deferred.as_ref().map(|(_, at)| *at);
        [
            self.fault_deadline(self.state.deadline()),
            refresh,
            deferred,
        ]
        .into_iter()
        .flatten()
        .min()
    }
    pub(super) fn handle(&mut self, input: Input) {
        let event = match input {
            Input::Tap(i) => match self.settings.catalog.get(i).cloned() {
                Some(product) => {
                    // A tap waiting for the rate limit waits on "Preparing…", which gives up
                    // a request time after its turn comes.
                    let now = Instant::now();
                    let turn = self.invoices.ready_at(now);
                    Event::ProductTapped {
                        product: self.with_stock(product),
                        sale_id: self.new_sale_id(),
                        give_up_at: turn + self.settings.request_timeout,
                    }
                }
                None => {
                    tracing::warn!(index = i, "tap on a product that does not exist");
                    return;
                }
            },
            Input::Mdb(ev) => match self.mdb_event(ev) {
                Some(e) => e,
                None => {
                    self.mdb_settle();
                    self.publish();
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
            Input::OperatorPin(pin) => {
                self.check_pin(pin);
                self.publish();
                return;
            }
            Input::PinChecked { matched } => match self.pin_checked(matched) {
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
            Input::CalibrationPoured { channel, pulses } => {
                self.calibration_poured(channel, pulses);
                self.publish();
                return;
            }
            Input::PouredMl {
                sale_id,
                index,
                ml,
                owed_ml,
            } => {
                self.poured_ml(&sale_id, index, ml, owed_ml);
                self.publish();
                return;
            }
            Input::Nfc(e) => {
                self.nfc_event(e);
                self.publish();
                return;
            }
            Input::CardDone { invoice_id, result } => {
                self.card_done(invoice_id, result);
                self.publish();
                return;
            }
            Input::CardPin(pin) => {
                self.card_pin(pin);
                self.publish();
                return;
            }
            Input::HoldSupport(support) => {
                self.hold_support(support);
                return;
            }
            Input::ResolveHold { sale_id, want } => {
                self.spawn_resolve(sale_id, want);
                return;
            }
            Input::HoldResolved {
                sale_id,
                outcome,
                accepted_us,
            } => {
                self.hold_resolved(sale_id, outcome, accepted_us);
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
                let e = self.mdb_gate(e);
                if let Event::InvoiceFailed { sale_id, .. } = &e {
                    self.creating.remove(sale_id);
                    self.preimages.remove(sale_id);
                }
                e
            }
        };
        if self.fault_screen_waits(&event) {
            self.publish();
            return;
        }
        let event = self.record_before_showing(event);
        // Only the countdown or the backend ends a payment screen this way; a Cancel is the
        // customer's own and goes straight back to the tiles.
        let ran_out = matches!(self.state, State::AwaitingPayment { .. })
            && matches!(event, Event::Tick | Event::InvoiceExpired { .. });
        self.apply(event);
        self.mdb_settle();
        self.expired_notice = match self.state {
            State::Idle if ran_out => Some(Instant::now() + EXPIRED_NOTICE),
            State::Idle => self.expired_notice,
            _ => None,
        };
        self.publish();
    }
    /// `S<unix seconds>-<4 hex digits>`, always above the last one minted (or found in the
    /// ledger at start), whatever the wall clock does: a clock stepped back an hour must not
    /// make an id the ledger (or Core Lightning's labels) already holds. Within one second
    /// the suffix counts up from a random start.
    pub(super) fn new_sale_id(&mut self) -> SaleId {
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

struct StopOnDrop(Pump);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        // Runs on panic unwinding of the controller task too.
        self.0.emergency_stop();
    }
}
