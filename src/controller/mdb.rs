//! A commercial machine sold through the MDB HAT: the machine's keypad selects, lnvend
//! takes the payment, the machine vends.
//!
//! A vend request (`c,STATUS,VEND,<amount>,<item>`) on the idle screen becomes a sale of
//! "Item N" (or its name from `[[mdb.item]]`) at the machine's amount, exactly as a tap on
//! a tile does: invoice, QR, payment confirmed by the backend, the sale recorded, and only
//! then the dispense, which approves the vend once ([`crate::dispense::MdbDispenser`]).
//! The session ending on the machine before the payment (its keypad's cancel, its
//! timeout) cancels the invoice; a sale that ends without a vend (cancelled on the screen,
//! expired) denies the machine's request. A HAT that is silent, gone or flooding keeps
//! the machine out of service, and its next good line brings it back.
//!
//! An MDB item is not a tile: its product index lies past the catalog, so nothing of the
//! pump's (stock, tanks, pulses) applies, and its owed credit cannot be vended without
//! the machine asking (it stays owed, for a refund).

use tokio::sync::broadcast;

use super::*;
use crate::config::mdb::MdbConfig;
use crate::dispense::hat::{HatEvent, HatLink};
use crate::mdb::hat::{HatCommand, HatLine, MachineAmount};

/// The `[mdb]` settings the controller needs.
#[derive(Clone, Debug)]
pub struct MdbSettings {
    pub config: MdbConfig,
    /// The file's `currency`, for a machine priced in fiat.
    pub currency: Option<String>,
    /// `[[mdb.item]]` pictures by item number.
    pub pictures: Vec<(u16, Arc<crate::picture::Picture>)>,
}

/// A vend request as the machine made it: its amount and item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Request {
    amount: MachineAmount,
    item: u16,
}

/// The controller's side of the HAT.
#[derive(Default)]
pub(super) struct MdbState {
    link: Option<HatLink>,
    /// The sale the machine asked for and has not been answered yet: its request.
    pending: Option<(SaleId, Request)>,
    /// The vend request the machine has open now (None: none, or its session ended). An
    /// approval is sent only while it is still the paid sale's.
    open: Option<Request>,
    /// Why the HAT is down (None: it answers).
    down: Option<String>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for MdbState {
    /// The link's tasks end with the controller, however it ends (a crash's drop too).
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What the controller is told when `n` events from the HAT were lost: the HAT's level
/// now (an Up is ignored when the machine knows it is up already).
fn lagged(up: bool, n: u64) -> HatEvent {
    tracing::warn!(
        lost = n,
        "events from the MDB HAT were lost; its state is read back"
    );
    if up {
        HatEvent::Up
    } else {
        HatEvent::Down("events from the MDB HAT were lost while it was down".into())
    }
}

impl Controller {
    /// Sells through the HAT on `link`: its events (from `events`) come in on the
    /// controller's channel; `task` is the link's, aborted at shutdown. The machine is out
    /// of service until the HAT answers.
    pub fn attach_mdb(
        &mut self,
        link: HatLink,
        mut events: broadcast::Receiver<HatEvent>,
        task: JoinHandle<()>,
    ) {
        let tx = self.tx.clone();
        let level = link.clone();
        let forward = tokio::spawn(async move {
            loop {
                let ev = match events.recv().await {
                    Ok(ev) => ev,
                    // Lines lost are lost, but an Up or Down among them must not be: the
                    // level is read back instead.
                    Err(broadcast::error::RecvError::Lagged(n)) => lagged(level.is_up(), n),
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if tx.send(Input::Mdb(ev)).is_err() {
                    return;
                }
            }
        });
        self.mdb.link = Some(link);
        self.mdb.down = Some("MDB HAT: waiting for it to answer".into());
        self.mdb.tasks = vec![task, forward];
    }

    /// At shutdown: the cashless device is disabled (`C,0`, so the machine does not offer
    /// a payment no one will answer), then the link's tasks end.
    pub(super) async fn stop_mdb(&mut self) {
        if let Some(link) = &self.mdb.link {
            if link.is_up()
                && !link
                    .send_and_wait(HatCommand::Disable, Duration::from_millis(500))
                    .await
            {
                tracing::warn!("could not disable the MDB cashless device at shutdown");
            }
        }
        for t in self.mdb.tasks.drain(..) {
            t.abort();
        }
    }

    /// The HAT is down: the backend's "up" is not enough to sell.
    pub(super) fn mdb_gate(&self, e: Event) -> Event {
        match (&e, &self.mdb.down) {
            (Event::BackendUp, Some(reason)) => Event::BackendDown {
                reason: reason.clone(),
            },
            _ => e,
        }
    }

    /// What a HAT event means for the vend cycle, if anything.
    pub(super) fn mdb_event(&mut self, ev: HatEvent) -> Option<Event> {
        match ev {
            HatEvent::Up => {
                // Also how lost events are read back (`lagged`): what the machine has open
                // is not known now, so nothing is approved on what was open before.
                self.mdb.open = None;
                let was = self.mdb.down.take()?;
                tracing::info!(was = %was, "MDB HAT answers");
                self.backend_down.is_none().then_some(Event::BackendUp)
            }
            HatEvent::Down(why) => {
                // Lines may have been missed (a silence, a flood dropped, an unplug): the
                // request seen before is not known to be open any more. A payment that
                // still comes is owed, never approved on it.
                self.mdb.open = None;
                let reason = format!("MDB HAT: {why}");
                self.mdb.down = Some(reason.clone());
                Some(Event::BackendDown { reason })
            }
            HatEvent::Line(HatLine::VendRequest { amount, item }) => {
                self.vend_request(amount, item)
            }
            HatEvent::Line(HatLine::Error(why)) => {
                tracing::info!(%why, "the MDB HAT reported an error (no vend is affected)");
                None
            }
            // The session moving on (a status line, the keypad's cancel, a vend's result):
            // the machine's request is no longer open.
            HatEvent::Line(
                HatLine::Status(_)
                | HatLine::SessionCancelled
                | HatLine::VendSuccess
                | HatLine::VendFailed(_),
            ) => {
                self.mdb.open = None;
                let (sale, _) = self.mdb.pending.as_ref()?;
                let asking = matches!(
                    &self.state,
                    State::CreatingInvoice { sale: s, .. } | State::AwaitingPayment { sale: s, .. }
                        if &s.id == sale
                );
                if !asking {
                    return None;
                }
                // The machine ended its session (its keypad's cancel or its own timeout):
                // nothing may be vended for it now.
                tracing::info!(sale = %sale, "the machine ended the session before payment");
                self.mdb.pending = None;
                Some(Event::CancelTapped)
            }
            HatEvent::Line(HatLine::Ack | HatLine::Switched(_)) => None,
        }
    }

    fn vend_request(&mut self, amount: MachineAmount, item: u16) -> Option<Event> {
        let m = self.settings.mdb.clone()?;
        let request = Request { amount, item };
        if let Some((sale, asked)) = self.mdb.pending.clone() {
            if asked == request && self.mdb.open == Some(request) {
                // The machine repeating itself: the sale on screen is already this one.
                tracing::debug!(item, "the same vend request again: ignored");
                return None;
            }
            // Another selection mid-session: the sale on screen is no longer what the
            // machine would vend. It ends (a payment arriving late is owed), and the
            // machine's session is ended with it.
            tracing::info!(sale = %sale, item, "a different vend request mid-session: the sale ends and the machine's request is denied");
            self.mdb.pending = None;
            self.mdb.open = None;
            // The new request is the one open on the machine.
            self.mdb_deny(true);
            let asking = matches!(
                &self.state,
                State::CreatingInvoice { sale: s, .. } | State::AwaitingPayment { sale: s, .. }
                    if s.id == sale
            );
            return asking.then_some(Event::CancelTapped);
        }
        if let State::Pouring { sale, .. } = &self.state {
            if sale.product.index >= self.settings.catalog.len() {
                // An MDB vend is in flight: a line to the machine now (a deny) could cross
                // its approval. The request is left alone; the vend's result decides.
                tracing::info!(item, "a vend request during an MDB vend: left alone");
                return None;
            }
        }
        let idle = matches!(self.state, State::Idle) && self.mdb.down.is_none();
        let price = m.config.price(amount, m.currency.as_deref());
        let price = match (idle, price) {
            (true, Ok(p)) => p,
            (false, _) => {
                tracing::info!(item, "a vend request while busy or out of service: denied");
                self.mdb_deny(true);
                return None;
            }
            (true, Err(why)) => {
                tracing::warn!(item, amount = %amount, %why, "a vend request lnvend cannot price: denied");
                self.mdb_deny(true);
                return None;
            }
        };
        let product = Product {
            index: self.settings.catalog.len() + usize::from(item),
            name: m.config.item_name(item),
            price,
            pour: m.config.vend_timeout(),
            channel: Channel::A,
            sat_bounds: None,
            volume_ml: None,
            sold_out: false,
        };
        let sale_id = self.new_sale_id();
        self.mdb.pending = Some((sale_id.clone(), request));
        self.mdb.open = Some(request);
        let turn = self.invoices.ready_at(Instant::now());
        Some(Event::ProductTapped {
            product,
            sale_id,
            give_up_at: turn + self.settings.request_timeout,
        })
    }

    /// The picture of the MDB item sold as product `index`, if it has one.
    pub(super) fn mdb_picture(&self, index: usize) -> Option<Arc<crate::picture::Picture>> {
        let item = index.checked_sub(self.settings.catalog.len())?;
        let m = self.settings.mdb.as_ref()?;
        m.pictures
            .iter()
            .find(|(n, _)| usize::from(*n) == item)
            .map(|(_, p)| p.clone())
    }

    /// Tells the machine no: its open vend request is denied (`C,VEND,-1`), or, with none
    /// open, its session is ended (`C,STOP`).
    fn mdb_deny(&mut self, request_open: bool) {
        let command = match request_open {
            true => HatCommand::Deny,
            false => HatCommand::Stop,
        };
        if let Some(link) = &self.mdb.link {
            if !link.try_send(command) {
                tracing::warn!(command = %command.line(), "could not queue the MDB deny");
            }
        }
    }

    /// After every input: a request whose sale ended without a vend is denied.
    pub(super) fn mdb_settle(&mut self) {
        let Some((sale, _)) = &self.mdb.pending else {
            return;
        };
        if self.state.sale_id() == Some(sale) {
            return;
        }
        tracing::info!(sale = %sale, "the sale ended without a vend: the machine's request is denied");
        let request_open = self.mdb.open.is_some();
        self.mdb.pending = None;
        self.mdb.open = None;
        self.mdb_deny(request_open);
    }

    /// The plan of an MDB sale: approve the machine's request for it (once). None: not
    /// an MDB sale. Err: an MDB sale the machine is not asking for (a credit).
    pub(super) fn mdb_plan(&mut self, sale: &Sale) -> Option<Result<Plan, String>> {
        if let Some((id, request)) = self.mdb.pending.clone() {
            if id == sale.id {
                self.mdb.pending = None;
                if let Some(down) = &self.mdb.down {
                    return Some(Err(format!("the HAT is down ({down}); nothing approved")));
                }
                // Approved only while the machine's open request is still the one paid
                // for: an approval must never vend another item or amount.
                if self.mdb.open != Some(request) {
                    return Some(Err(
                        "the machine's request changed or ended before the payment".into(),
                    ));
                }
                self.mdb.open = None;
                return Some(Ok(Plan::Mdb(request.amount)));
            }
        }
        (self.settings.mdb.is_some() && sale.product.index >= self.settings.catalog.len()).then(
            || Err("the machine is not asking for this vend; select it on the machine".into()),
        )
    }
}
