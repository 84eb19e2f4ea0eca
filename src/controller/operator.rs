//! Operator mode: the PIN pad and its lockout, the menu's actions (prices, pour times, test
//! pours, priming) and saving the overrides. The parts of the controller a customer rarely
//! sees; owed credits and their refunds are in `credits`.

use super::*;

/// The operator menu's working state.
#[derive(Default)]
pub(super) struct OpState {
    pub(super) tab: OpTab,
    pub(super) draft: Vec<Product>,
    pub(super) unsaved: bool,
    pub(super) message: String,
    pub(super) refund: Option<(Option<String>, String)>,
    /// A calibration pour's count, waiting for the measured ml.
    pub(super) calibration: Option<(Channel, u64)>,
    /// A PIN is being checked off the controller loop (see `check_pin`).
    pub(super) pin_checking: bool,
}

/// What the PIN pad says while a PIN is checked.
pub const PIN_CHECKING_TEXT: &str = "Checking the PIN…";

impl Controller {
    pub(super) fn open_pin_pad(&mut self) {
        if !matches!(self.state, State::Idle | State::OutOfService { .. }) {
            // Never in front of a paying customer.
            return;
        }
        if self.op.pin_checking {
            // A cancelled pad's PIN is still being checked: its answer must find no pad,
            // or a right PIN typed by someone else would open the menu for whoever holds
            // the corner now. The corner works again once the answer is in.
            return;
        }
        self.pin_prompt = Some(match self.settings.pin_hash {
            Some(_) => "Enter the operator PIN".into(),
            None => {
                "No operator PIN is configured (operator_pin_hash, see `lnvend hash-pin`)".into()
            }
        });
    }
    /// A PIN from the pad: checked off the controller loop (PBKDF2 takes up to about 2 s
    /// of a Pi 3B core, see `operator::MAX_PIN_ROUNDS`), its answer back as
    /// [`Input::PinChecked`]. One check at a time: a PIN typed while one is checked is
    /// dropped, so a finger on the pad cannot queue work.
    pub(super) fn check_pin(&mut self, pin: Secret) {
        if self.pin_prompt.is_none() || self.op.pin_checking {
            return;
        }
        let Some(hash) = self.settings.pin_hash.clone() else {
            self.pin_prompt = None;
            return;
        };
        if let Some(locked) = self.lockout.locked(Instant::now()) {
            self.pin_outcome(locked);
            return;
        }
        self.op.pin_checking = true;
        self.pin_prompt = Some(PIN_CHECKING_TEXT.into());
        // Booked as a wrong try before the check, so a power cut or a restart during it
        // gives no fresh try; the answer then books what it really was.
        if let Ok(l) = &mut self.ledger {
            let failures = self.lockout.failures().saturating_add(1);
            if let Err(e) = l.set_meta(PIN_FAILURES, &failures.to_string()) {
                tracing::error!(error = %e, "could not record the PIN attempt");
            }
        }
        let tx = self.tx.clone();
        self.tasks.spawn(async move {
            let matched = tokio::task::spawn_blocking(move || hash.matches(pin.expose()))
                .await
                .unwrap_or(false);
            let _ = tx.send(Input::PinChecked { matched });
        });
    }
    /// The answer of the PIN check `check_pin` started. Booked even when the pad was
    /// cancelled meanwhile (a cancel gives no fresh tries), but opens the menu only from
    /// the pad.
    pub(super) fn pin_checked(&mut self, matched: bool) -> Option<Event> {
        if !std::mem::take(&mut self.op.pin_checking) {
            return None;
        }
        let outcome = self.lockout.record(matched, Instant::now());
        if self.pin_prompt.is_none() {
            self.save_pin_failures();
            return None;
        }
        self.pin_outcome(outcome)
    }
    fn save_pin_failures(&mut self) {
        if let Ok(l) = &mut self.ledger {
            if let Err(e) = l.set_meta(PIN_FAILURES, &self.lockout.failures().to_string()) {
                tracing::error!(error = %e, "could not record the PIN attempt");
            }
        }
    }
    fn pin_outcome(&mut self, outcome: PinOutcome) -> Option<Event> {
        self.save_pin_failures();
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
    /// Handles a menu action; returns an event for the vend cycle when there is one.
    pub(super) fn operator_action(&mut self, action: OpAction) -> Option<Event> {
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
            OpAction::SetPrice { index, value } => {
                self.set_price(index, value);
                None
            }
            OpAction::SetPour { index, ms } => {
                self.set_pour(index, ms);
                None
            }
            OpAction::Save => {
                self.save_products();
                None
            }
            OpAction::TestPour { index } => {
                if let Some(p) = self.op.draft.get(index).cloned() {
                    if let Some(ml) = p.volume_ml {
                        self.test_pour_volume(p, ml);
                        return None;
                    }
                    self.op.message =
                        format!("Test pour: {} for {} ms…", p.name, p.pour.as_millis());
                    let (dispenser, tx) = (self.dispenser.clone(), self.tx.clone());
                    // A pulse product's test sends its pattern (and wears no pump).
                    let (plan, wear) = match self.pulse_of(index) {
                        Some(spec) => (Plan::Pulse(spec), None),
                        None => (
                            Plan::Timed {
                                channel: p.channel,
                                duration: p.pour,
                            },
                            Some(self.metrics.wear(&p.channel.to_string())),
                        ),
                    };
                    self.run_op_pump(async move {
                        let _wear = wear;
                        let note = match dispenser.dispense(plan).await {
                            Dispensed::Delivered { .. } => {
                                format!("Test pour of {} done ({} ms).", p.name, p.pour.as_millis())
                            }
                            Dispensed::Partial { trouble, .. } => format!(
                                "Test pour cut short: {}",
                                trouble.map_or_else(|| "stopped".into(), |e| e.to_string())
                            ),
                            Dispensed::Failed(e) => format!("Test pour failed: {e}"),
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
                    let wear = self.metrics.wear(&channel.to_string());
                    self.run_op_pump(async move {
                        let _wear = wear;
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
                let wear = self.metrics.wear(&channel.to_string());
                self.run_op_pump(async move {
                    let _wear = wear;
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
            OpAction::Refill { index } => {
                self.refill(index);
                None
            }
            OpAction::CalibratePour { channel } => {
                self.calibration_pour(channel);
                None
            }
            OpAction::Calibrate {
                channel,
                measured_ml,
            } => {
                self.calibrate(channel, measured_ml);
                None
            }
            OpAction::Settle(id) => {
                // A refund under way may still give the money back: settled as well, the
                // sale would be paid out twice (by hand and by the refund).
                if self.refunding.contains_key(&SaleId(id.clone())) {
                    self.op.message =
                        format!("The refund of {id} is under way: settle it only if it fails.");
                    return None;
                }
                if self.refund_unrecorded(&SaleId(id.clone())) {
                    self.op.message =
                        format!("{id} was refunded; the ledger records it once it can.");
                    return None;
                }
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
                // A refund not started says why in the menu's message line.
                let _ = self.start_refund(id);
                None
            }
            OpAction::CloseRefund => {
                self.op.refund = None;
                None
            }
            OpAction::ShowRefundLink(id) => {
                self.refund_link_action(id, false);
                None
            }
            OpAction::DismissRefundLink(id) => {
                self.refund_link_action(id, true);
                None
            }
        }
    }
    pub(super) fn run_op_pump(
        &mut self,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.stop_op_pump();
        self.op_pump = Some(tokio::spawn(task));
    }
    pub(super) fn stop_op_pump(&mut self) {
        if let Some(t) = self.op_pump.take() {
            t.abort();
        }
        if let Err(e) = self.pump.stop() {
            tracing::error!(error = %e, "could not stop the pump");
        }
    }
    pub(super) fn save_products(&mut self) {
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
            flow: self.saved_flow_overrides(),
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
    pub(super) fn operator_view(&mut self) -> OperatorView {
        let mut v = OperatorView {
            tab: self.op.tab,
            unsaved: self.op.unsaved,
            message: self.op.message.clone(),
            calibrating: self.op.calibration.map(|(c, _)| c),
            ..OperatorView::default()
        };
        v.flow = self.flow_lines();
        v.products = self
            .op
            .draft
            .iter()
            .map(|p| OpProduct {
                name: p.name.clone(),
                price: p.price.display(),
                // By volume this is the longest the pour may take (its +/− set that).
                pour: format!("{:.2} s", p.pour.as_secs_f64()),
                stock: self.stock_text(p.index),
                price_entry: price_entry(&p.price),
                pour_entry: pour_entry(p.pour, self.min_pour(p), self.settings.max_pour),
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
            if v.tab == OpTab::Sales {
                (v.chart, v.chart_products) = self.sales_chart(now);
            }
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
            let unrecorded: Vec<SaleId> = self
                .unrecorded_refunds
                .iter()
                .map(|(id, ..)| id.clone())
                .collect();
            v.credits = l
                .owed()
                .map(|o| {
                    o.into_iter()
                        .map(|o| OpCredit {
                            // What a refund gives back: the undelivered share, not the price.
                            text: format!(
                                "{}{} {} {}: {}",
                                if unrecorded.contains(&o.sale_id) {
                                    "REFUNDED, not recorded yet: "
                                } else {
                                    ""
                                },
                                o.sale_id,
                                o.product,
                                o.value_text(),
                                o.reason
                            ),
                            sale_id: o.sale_id.0,
                        })
                        .collect()
                })
                .unwrap_or_default();
        }
        v.refund_links = self.refund_link_rows();
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
            self.card_status(),
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

/// The keypad's view of a price: whole sats up to [`crate::config::MAX_PRICE_SAT`], or a
/// fiat price's cents up to [`MAX_PRICE_FIAT_MINOR`]; never 0, which would give drinks away.
fn price_entry(p: &Price) -> OpEntry {
    match p {
        Price::Sats(m) => OpEntry {
            value: m.as_msat() / 1000,
            min: 1,
            max: crate::config::MAX_PRICE_SAT,
            unit: "sats".into(),
        },
        Price::Fiat(f) => OpEntry {
            value: f.minor(),
            min: 1,
            max: MAX_PRICE_FIAT_MINOR,
            unit: format!("{} cents", f.currency()),
        },
    }
}

/// The keypad's view of a pour time: milliseconds, at most what the pump may run for one
/// drink (its hard maximum less the anti-drip reverse), and at least `min_pour`, as config
/// requires.
fn pour_entry(pour: Duration, min_pour: Duration, max_pour: Duration) -> OpEntry {
    OpEntry {
        value: pour.as_millis() as u64,
        min: (min_pour.as_millis() as u64).max(1),
        max: max_pour.as_millis() as u64,
        unit: "ms".into(),
    }
}

fn in_range(e: &OpEntry, value: u64) -> bool {
    (e.min..=e.max).contains(&value)
}

impl Controller {
    /// A typed price, checked here whatever the keypad let through.
    fn set_price(&mut self, index: usize, value: u64) {
        let Some(p) = self.op.draft.get_mut(index) else {
            return;
        };
        let e = price_entry(&p.price);
        if !in_range(&e, value) {
            self.op.message = format!(
                "Price of {} not changed: {value} is outside {} to {} {}.",
                p.name, e.min, e.max, e.unit
            );
            return;
        }
        let price = match &p.price {
            Price::Sats(_) => Msat::from_sat(value).map(Price::Sats),
            Price::Fiat(f) => {
                Fiat::parse(&format!("{}.{:02}", value / 100, value % 100), f.currency())
                    .ok()
                    .map(Price::Fiat)
            }
        };
        if let Some(price) = price {
            p.price = price;
            self.op.unsaved = true;
            self.op.message.clear();
        }
    }

    /// A typed pour time, checked here whatever the keypad let through.
    fn set_pour(&mut self, index: usize, ms: u64) {
        let max = self.settings.max_pour;
        let Some(min) = self.op.draft.get(index).map(|p| self.min_pour(p)) else {
            return;
        };
        let Some(p) = self.op.draft.get_mut(index) else {
            return;
        };
        let e = pour_entry(p.pour, min, max);
        if !in_range(&e, ms) {
            self.op.message = format!(
                "Pour time of {} not changed: {ms} is outside {} to {} {}.",
                p.name, e.min, e.max, e.unit
            );
            return;
        }
        p.pour = Duration::from_millis(ms);
        self.op.unsaved = true;
        self.op.message.clear();
    }
}
