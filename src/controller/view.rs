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

/// What the fault screen says when a payment already bought its drink.
pub const ALREADY_POURED_TEXT: &str = "This payment was already used for a drink.";
/// What the fault screen says when a paid drink could not be poured.
pub const NOT_POURED_TEXT: &str = "Your payment is recorded, but the drink could not be poured.";
/// A held payment that is being cancelled: the customer's wallet gets it back by itself.
pub const RETURNED_TEXT: &str =
    "Nothing was charged — your payment is on its way back to your wallet.";
/// A pour by volume found no flow: the tank is dry (the sale is owed, the product sold out).
pub const RAN_OUT_TEXT: &str = "This drink just ran out. Your payment is recorded as a credit.";
/// A pour by volume reached its time limit first: the rest is owed as a credit.
pub const SHORT_POUR_TEXT: &str =
    "Only part of your drink could be poured. The rest is recorded as a credit.";
/// What the fault screen says over the refund's claim QR.
pub const REFUND_SCAN_TEXT: &str = "Scan with your Lightning wallet to claim your refund";

/// What the fault screen says while the backend makes the refund it asked for (the screen
/// waits for it).
pub const REFUND_PREPARING_TEXT: &str = "Preparing your refund…";

/// What the fault screen says when the backend could not make the refund; the backend's
/// reason goes in the view's `detail`, under it (it is the backend's, not ours to translate).
pub const REFUND_FAILED_TEXT: &str = "The refund failed. Show the code to the operator.";

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

/// An owed credit on the idle screen, inside its credit window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditTile {
    pub sale_id: String,
    pub product: String,
    /// Its product cannot pour now (a tank that ran dry, stock used up, a product the
    /// operator removed): listed, so its customer sees it is kept for them and whom to ask,
    /// but not a button. Such credits come after the ones that can be poured.
    pub sold_out: bool,
}

/// One product row in the operator menu.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpProduct {
    pub name: String,
    pub price: String,
    pub pour: String,
    /// "4200 of 10000 ml", "SOLD OUT"…; empty when no stock is kept.
    pub stock: String,
    /// What the keypad edits the price as (whole sats, or the fiat price's cents).
    pub price_entry: OpEntry,
    /// What the keypad edits the pour time as (milliseconds).
    pub pour_entry: OpEntry,
}

/// A flow sensor in the operator menu: its calibration and live pulse rate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpFlow {
    pub channel: Channel,
    pub text: String,
}

/// One number the operator types on the keypad: its value now, the range the controller
/// accepts (shown on the keypad) and its unit.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OpEntry {
    pub value: u64,
    pub min: u64,
    pub max: u64,
    pub unit: String,
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
    /// Refunds recorded with a claim link the operator has not dismissed (Credits tab).
    pub refund_links: Vec<OpCredit>,
    pub status: Vec<String>,
    pub message: String,
    /// A refund to show: a QR of the claim link, or a receipt code to refund by hand.
    pub refund_qr: Option<Arc<QrBitmap>>,
    pub refund_text: String,
    /// The Sales tab's chart: the last [`CHART_DAYS`] days, oldest first (filled only while
    /// the tab is open).
    pub chart: Vec<ChartDay>,
    /// Per-product totals of the same days, e.g. "Cola: 12 sales, 25,200 sats".
    pub chart_products: Vec<String>,
    /// The flow sensors (the Stock tab).
    pub flow: Vec<OpFlow>,
    /// A calibration pour on this channel waits for the jug's ml (the keypad is up).
    pub calibrating: Option<Channel>,
}

/// How many days the operator's sales chart shows.
pub const CHART_DAYS: usize = 14;

/// One day of the operator's sales chart: poured sales.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ChartDay {
    /// "MM-DD" (UTC).
    pub date: String,
    pub count: u64,
    pub msat: u64,
}

/// A product tile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tile {
    pub name: String,
    pub price: String,
    /// Shown greyed as "sold out"; a tap on it is refused.
    pub sold_out: bool,
    /// The product's picture, shared with the config that loaded it.
    pub image: Option<Arc<crate::picture::Picture>>,
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
    /// While dispensing: the machine vends it (a relay pulse or an MDB vend), not the pump
    /// pouring into the customer's cup: the pouring screen's words say so.
    pub vending: bool,
    /// The reason out of service, or what went wrong on the fault screen, in plain words.
    pub message: String,
    /// The code a customer shows the operator on the fault screen.
    pub code: String,
    /// For the operator: the technical reason the machine is out of service, or why the
    /// fault screen's refund failed.
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
    /// The payment screen's line for people with no Lightning wallet (empty: none).
    pub wallet_hint: String,
    /// The product's picture on the payment screen (the one being paid for).
    pub picture: Option<Arc<crate::picture::Picture>>,
    /// The customer screens' default language (a code of `config::LANGUAGES`): a customer
    /// may pick another for one sale; back on the idle screen it is this one again.
    pub language: String,
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
        for (i, t) in v.tiles.iter_mut().enumerate() {
            t.sold_out = self.is_sold_out(i);
            if let (Some(p), Some((fiat, sats))) =
                (self.settings.catalog.get(i), self.fiat_sats.get(&i))
            {
                t.price = approx_price_text(&p.price, fiat, *sats);
            }
        }
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
                v.amount = price_text(&sale.product.price);
            }
            State::AwaitingPayment {
                sale,
                invoice,
                expires_at,
                ..
            } => {
                v.screen = Screen::Payment;
                v.product = sale.product.name.clone();
                v.amount = match &sale.product.price {
                    Price::Sats(_) => invoice.amount.display_sats(),
                    Price::Fiat(f) => {
                        self.fiat_sats
                            .insert(sale.product.index, (f.clone(), invoice.amount));
                        format!("{} · {}", fiat_text(f), invoice.amount.display_sats())
                    }
                };
                self.paid_amount = Some((sale.id.clone(), v.amount.clone()));
                v.picture = self
                    .settings
                    .pictures
                    .get(sale.product.index)
                    .cloned()
                    .flatten()
                    .or_else(|| self.mdb_picture(sale.product.index));
                v.wallet_hint = self.settings.wallet_hint.clone();
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
                v.vending = !self.is_pump_product(sale.product.index);
                // What the customer just paid, as the payment screen said it; a credit
                // poured later was paid at the product's price.
                v.amount = match &self.paid_amount {
                    Some((id, amount)) if *id == sale.id => amount.clone(),
                    _ => price_text(&sale.product.price),
                };
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
                until,
                returned: true,
                ..
            } => {
                // The held payment goes back by itself: nothing to claim, no code needed.
                v.screen = Screen::Fault;
                v.product = sale.product.name.clone();
                v.amount = price_text(&sale.product.price);
                v.seconds_left = until.saturating_duration_since(now).as_secs();
                v.message = RETURNED_TEXT.into();
            }
            State::Fault {
                sale,
                failure,
                until,
                returned: false,
                ..
            } => {
                v.screen = Screen::Fault;
                v.product = sale.product.name.clone();
                v.amount = price_text(&sale.product.price);
                v.code = sale.id.0.clone();
                v.seconds_left = until.saturating_duration_since(now).as_secs();
                v.fault_refund = self.settings.fault_refund && credits::fault_refundable(failure);
                if self.fault_refund_pending() {
                    v.refund_text = REFUND_PREPARING_TEXT.into();
                }
                if let Some((id, Some(result))) = &self.fault_refund {
                    if *id == sale.id {
                        match result {
                            Ok(link) => {
                                v.refund_text = REFUND_SCAN_TEXT.into();
                                v.refund_qr = qr::render(link, 300).ok().map(Arc::new);
                            }
                            Err(e) => {
                                v.refund_text = REFUND_FAILED_TEXT.into();
                                v.detail = e.to_string();
                            }
                        }
                    }
                }
                v.message = match failure {
                    PourFailure::AlreadyPoured => ALREADY_POURED_TEXT.into(),
                    PourFailure::Pump(_) | PourFailure::Ledger(_) => NOT_POURED_TEXT.into(),
                    PourFailure::NoFlow(_) => RAN_OUT_TEXT.into(),
                    // One fixed sentence (the ml are in the operator's Credits tab), so it
                    // can be said in the customer's language.
                    PourFailure::Short { .. } => SHORT_POUR_TEXT.into(),
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
    /// Owed credits still inside their "tap to pour" window, for the idle screen: the ones
    /// that can pour first, then those of a sold-out product. A customer whose drink ran
    /// out is still at the machine: the credit is shown to them as kept (with its receipt
    /// code, and to ask staff), never silently hidden; it becomes a button again if the
    /// tank is refilled inside the window, and after the window it waits in the operator's
    /// Credits tab like every other credit.
    pub(super) fn idle_credits(&mut self) -> Vec<CreditTile> {
        let offered = self.offers.current(Instant::now());
        let Ok(ledger) = &self.ledger else {
            return Vec::new();
        };
        let mut tiles = Vec::new();
        for id in offered {
            match ledger.owed_sale(&id) {
                // Still owed, and the customer may pour it themselves; not while its refund
                // is under way (a pour then would give the drink and the money).
                // Nor one with nothing left to pour (a 0 ml pour).
                Ok(Some(o))
                    if o.public
                        && !o.nothing_owed()
                        && !self.refunding.contains_key(&o.sale_id)
                        && !self.refund_unrecorded(&o.sale_id) =>
                {
                    let pourable = self
                        .product_named(&o.product)
                        .is_some_and(|p| !self.is_sold_out(p.index));
                    tiles.push(CreditTile {
                        sale_id: o.sale_id.0,
                        product: o.product,
                        sold_out: !pourable,
                    })
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot read an owed credit"),
            }
        }
        // Stable: each group keeps its oldest-first order.
        tiles.sort_by_key(|t| t.sold_out);
        // The idle screen scrolls its credits; this only bounds the work of one view.
        tiles.truncate(MAX_IDLE_CREDITS);
        tiles
    }
    pub(super) fn product_named(&self, name: &str) -> Option<&Product> {
        self.settings.catalog.iter().find(|p| p.name == name)
    }
}

/// A fiat amount the way a price tag shows it: "€2.50", "$2.50", "£2.50"; other
/// currencies by their code ("CHF 2.50").
pub fn fiat_text(f: &Fiat) -> String {
    let symbol = match f.currency() {
        "EUR" => "€",
        "USD" => "$",
        "GBP" => "£",
        other => return format!("{other} {}", f.amount_str()),
    };
    format!("{symbol}{}", f.amount_str())
}

/// A product's price for the customer: "2,100 sats" or "€2.50" (its sats are known only
/// once the backend made the invoice).
pub fn price_text(p: &Price) -> String {
    match p {
        Price::Sats(m) => m.display_sats(),
        Price::Fiat(f) => fiat_text(f),
    }
}

/// A tile's price once an invoice told what a fiat price came to: "€2.50 · ≈2,500 sats".
/// The "≈" because the rate moves (the payment screen shows the invoice's exact sats). An
/// approximation for another price (the operator changed it since) is not shown.
pub fn approx_price_text(price: &Price, fiat: &Fiat, sats: Msat) -> String {
    match price {
        Price::Fiat(f) if f == fiat => format!("{} · ≈{}", fiat_text(f), sats.display_sats()),
        _ => price_text(price),
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
                price: price_text(&p.price),
                sold_out: false,
                image: settings.pictures.get(p.index).cloned().flatten(),
            })
            .collect(),
        product: String::new(),
        amount: String::new(),
        payment_uri: String::new(),
        qr: None,
        seconds_left: 0,
        progress: 0.0,
        vending: false,
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
        wallet_hint: String::new(),
        language: settings.language.clone(),
        picture: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fiat_price_reads_like_a_price_tag() {
        let f = |a: &str, c: &str| fiat_text(&Fiat::parse(a, c).unwrap());
        assert_eq!(f("2.5", "EUR"), "€2.50");
        assert_eq!(f("3", "USD"), "$3.00");
        assert_eq!(f("1.99", "GBP"), "£1.99");
        assert_eq!(f("4.20", "CHF"), "CHF 4.20");
        assert_eq!(
            price_text(&Price::Sats(Msat::from_sat(4210).unwrap())),
            "4,210 sats"
        );
    }

    #[test]
    fn a_fiat_tile_shows_its_last_invoice_sats_as_an_approximation_for_that_price_only() {
        let eur = Fiat::parse("2.50", "EUR").unwrap();
        let sats = Msat::from_sat(4210).unwrap();
        assert_eq!(
            approx_price_text(&Price::Fiat(eur.clone()), &eur, sats),
            "€2.50 · ≈4,210 sats"
        );
        // The operator set another price since: the old invoice says nothing about it.
        let three = Fiat::parse("3", "EUR").unwrap();
        assert_eq!(approx_price_text(&Price::Fiat(three), &eur, sats), "€3.00");
        let in_sats = Price::Sats(Msat::from_sat(2100).unwrap());
        assert_eq!(approx_price_text(&in_sats, &eur, sats), "2,100 sats");
    }
}
