//! What the UI shows: the [`View`] the controller publishes after every input, a pure
//! function of the state, the clock, the ledger's credits and the expiry notice (an idle
//! machine whose last payment request ran out says so for [`EXPIRED_NOTICE`]), and how it
//! is made.

use super::*;

/// Pixel size the QR is rasterised for.
pub const QR_PX: u32 = 430;

/// How long "This payment request expired" stays up before the tiles come back: long
/// enough to read, short enough that the next customer is not kept waiting.
pub const EXPIRED_NOTICE: Duration = Duration::from_secs(5);

/// What the expiry notice says.
pub const EXPIRED_TEXT: &str = "This payment request expired — nothing was charged";

/// The most owed credits the idle screen lists (its column scrolls past five).
pub const MAX_IDLE_CREDITS: usize = 20;

/// Which screen is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    Idle,
    Creating,
    Payment,
    Pouring,
    ThankYou,
    /// The payment request ran out unpaid: said for [`EXPIRED_NOTICE`], then idle.
    Expired,
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
    /// Bolt Cards on the payment screen.
    pub card: CardView,
}

impl Controller {
    pub(super) fn publish(&mut self) {
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
    pub(super) fn make_view(&mut self, now: Instant) -> View {
        let mut v = idle_view(&self.settings);
        if let Some(msg) = &self.pin_prompt {
            v.screen = Screen::Pin;
            v.pin_message = msg.clone();
            return v;
        }
        match &self.state {
            State::Idle => match self.expired_notice {
                Some(until) if now < until => {
                    v.screen = Screen::Expired;
                    v.message = EXPIRED_TEXT.into();
                }
                _ => {
                    self.expired_notice = None;
                    v.credits = self.idle_credits();
                }
            },
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
                v.card = self.card_view();
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
    pub(super) fn qr_for(&mut self, uri: &str) -> Option<Arc<QrBitmap>> {
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
    /// Owed credits still inside their "tap to pour" window, for the idle screen.
    pub(super) fn idle_credits(&mut self) -> Vec<CreditTile> {
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
        // The idle screen scrolls its credits; this only bounds the work of one view.
        tiles.truncate(MAX_IDLE_CREDITS);
        tiles
    }
    pub(super) fn product_named(&self, name: &str) -> Option<&Product> {
        self.settings.catalog.iter().find(|p| p.name == name)
    }
}

pub(super) fn idle_view(settings: &Settings) -> View {
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
        card: CardView::default(),
    }
}
