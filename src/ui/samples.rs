//! Sample views of every screen, with realistic text, for the screenshots
//! (`scripts/screens`, docs/screens/) and the tests that render every customer screen in
//! every language. One list, so the pictures in the book (docs/reference/screens.md) are the
//! screens the tests check.

use std::sync::Arc;

use crate::controller::{
    CardView, ChartDay, CreditTile, OpCredit, OpEntry, OpFlow, OpProduct, OpTab, OperatorView,
    Screen, Tile, View, EXPIRED_TEXT, NOT_POURED_TEXT, RAN_OUT_TEXT, REFUND_FAILED_TEXT,
    SHORT_POUR_TEXT,
};
use crate::nfc::CardMessage;

/// A view of `screen` with nothing filled in.
pub fn blank(screen: Screen) -> View {
    View {
        screen,
        machine_id: "lobby-1".into(),
        tiles: Vec::new(),
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
        wallet_hint: String::new(),
        language: "en".into(),
        picture: None,
        card: Default::default(),
    }
}

/// The simulator's own pictures (examples/pictures/), by product index.
fn pictures() -> Vec<Option<Arc<crate::picture::Picture>>> {
    crate::config::Config::simulator_default().pictures
}

fn tiles() -> Vec<Tile> {
    let pics = pictures();
    [
        ("Cola", "2,100 sats", pics.first()),
        ("Club-Mate", "3,000 sats", pics.get(1)),
        ("Water", "500 sats", pics.get(2)),
        // A product without a picture beside those with one, priced in euros and sold once
        // (so its tile knows about what that came to in sats).
        ("Orange juice", "€2.50 · ≈4,210 sats", None),
    ]
    .into_iter()
    .map(|(name, price, image)| Tile {
        name: name.into(),
        price: price.into(),
        // One tile sold out, as a machine with a dry tank shows it.
        sold_out: name == "Water",
        image: image.cloned().flatten(),
    })
    .collect()
}

/// A QR of a made-up invoice text: only its look matters here.
fn qr(text: &str, px: u32) -> Option<Arc<crate::qr::QrBitmap>> {
    crate::qr::render(text, px).ok().map(Arc::new)
}

/// Every customer screen, by a file-friendly name.
pub fn customer_screens() -> Vec<(&'static str, View)> {
    let mut out = Vec::new();

    let mut v = blank(Screen::Idle);
    v.tiles = tiles();
    out.push(("idle", v.clone()));

    v.credits = vec![
        CreditTile {
            sale_id: "L1-0042".into(),
            product: "Cola".into(),
            sold_out: false,
        },
        CreditTile {
            sale_id: "L1-0043".into(),
            product: "Club-Mate".into(),
            sold_out: false,
        },
    ];
    out.push(("idle-credits", v.clone()));

    // A tank ran dry under a paid drink: its credit is kept, not a button.
    v.credits.push(CreditTile {
        sale_id: "S1764636496-00A7".into(),
        product: "Water".into(),
        sold_out: true,
    });
    out.push(("idle-credit-sold-out", v));

    let mut v = blank(Screen::Expired);
    v.tiles = tiles();
    v.message = EXPIRED_TEXT.into();
    out.push(("expired", v));

    let mut v = blank(Screen::Creating);
    v.product = "Club-Mate".into();
    v.amount = "3,000 sats".into();
    out.push(("creating", v));

    let mut v = blank(Screen::Payment);
    v.product = "Club-Mate".into();
    v.amount = "3,000 sats".into();
    v.payment_uri = "LIGHTNING:LNBC30U1SAMPLE".into();
    v.qr = qr(
        "LIGHTNING:LNBC30U1PSAMPLEINVOICEFORTHESCREENSHOTSONLYQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ",
        crate::controller::QR_PX,
    );
    v.seconds_left = 287;
    v.picture = pictures().get(1).cloned().flatten();
    out.push(("payment", v.clone()));

    // A Bolt Card that wants its PIN at this price: the pad over the QR.
    let mut pin = v.clone();
    pin.card.hint = true;
    pin.card.outcome = Some(crate::nfc::CardMessage::EnterPin);
    pin.card.pin_pad = true;
    out.push(("payment-card-pin", pin));

    // A fiat price, and the wallet hint an operator may switch on.
    v.amount = "€2.50 · 3,000 sats".into();
    v.wallet_hint = "No wallet yet? Ask at the bar.".into();
    out.push(("payment-fiat-hint", v.clone()));

    // A card reader: the tap hint, and a declined card with its service's reason.
    v.amount = "3,000 sats".into();
    v.wallet_hint = String::new();
    v.card = CardView {
        hint: true,
        outcome: Some(CardMessage::Declined("Daily limit reached".into())),
        ..CardView::default()
    };
    out.push(("payment-card", v));

    let mut v = blank(Screen::Pouring);
    v.product = "Club-Mate".into();
    v.amount = "3,000 sats".into();
    v.progress = 0.0;
    out.push(("pouring", v));

    // An item a commercial machine vends (MDB or a relay pulse): no cup.
    let mut v = blank(Screen::Pouring);
    v.product = "Crisps".into();
    v.amount = "2,500 sats".into();
    v.progress = 0.4;
    v.vending = true;
    out.push(("vending", v));

    let mut v = blank(Screen::ThankYou);
    v.product = "Club-Mate".into();
    out.push(("thanks", v));

    let mut v = blank(Screen::OutOfService);
    v.message = "Payments are unavailable right now. Please try again in a few minutes.".into();
    v.detail = "backend: connection refused (lnbits.example:443)".into();
    out.push(("out-of-service", v));

    let mut v = blank(Screen::Fault);
    v.product = "Club-Mate".into();
    v.amount = "3,000 sats".into();
    v.message = NOT_POURED_TEXT.into();
    v.code = "L1-0044".into();
    v.seconds_left = 60;
    v.fault_refund = true;
    out.push(("fault", v.clone()));

    // A pour by volume whose tank ran dry, and one stopped at its time limit.
    v.fault_refund = false;
    v.message = RAN_OUT_TEXT.into();
    out.push(("fault-ran-out", v.clone()));
    v.message = SHORT_POUR_TEXT.into();
    out.push(("fault-short-pour", v.clone()));

    // The backend could not make the refund: a fixed sentence and the backend's reason.
    v.message = NOT_POURED_TEXT.into();
    v.fault_refund = true;
    v.refund_text = REFUND_FAILED_TEXT.into();
    v.detail = "backend: refunds are not enabled on this store".into();
    out.push(("fault-refund-failed", v));

    let mut v = blank(Screen::Pin);
    v.pin_message = "Enter the operator PIN".into();
    out.push(("pin", v));

    out
}

/// Every customer screen and every variant of a line on it that the screenshots leave out
/// (each Bolt Card outcome, a column of sold-out credits only), for the tests that render them
/// all in every language.
pub fn checked_screens() -> Vec<(String, View)> {
    let mut out: Vec<(String, View)> = customer_screens()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    let card = out
        .iter()
        .find(|(n, _)| n == "payment-card")
        .map(|(_, v)| v.clone())
        .expect("a card sample");
    for m in [
        CardMessage::Working,
        CardMessage::Paying,
        CardMessage::EnterPin,
        CardMessage::OverLimit,
        // A service's reason as long as one reaches the screen (`MAX_REASON_CHARS`).
        CardMessage::Declined(long_reason()),
        CardMessage::Unreachable,
        CardMessage::NotAllowed,
        CardMessage::NotBoltCard,
        CardMessage::ReadFailed,
    ] {
        let mut v = card.clone();
        v.card.outcome = Some(m.clone());
        out.push((format!("payment-card {m:?}"), v));
    }
    // Only a sold-out credit: the column's heading says it is kept, not "tap to pour".
    let mut kept = out
        .iter()
        .find(|(n, _)| n == "idle-credit-sold-out")
        .map(|(_, v)| v.clone())
        .expect("a sold-out credit sample");
    kept.credits.retain(|c| c.sold_out);
    out.push(("idle-only-sold-out-credit".into(), kept));
    out
}

/// A card service's reason of the most characters the screen is given.
fn long_reason() -> String {
    let words =
        "The daily spending limit of this card was reached, try again tomorrow morning please";
    words
        .chars()
        .take(crate::nfc::lnurl::MAX_REASON_CHARS)
        .collect()
}

/// Every operator tab, by a file-friendly name.
pub fn operator_screens() -> Vec<(&'static str, View)> {
    let op = OperatorView {
        tab: OpTab::Products,
        products: vec![
            product("Cola", 2100, "4.00 s", 4000, "7400 of 10000 ml"),
            product(
                "Club-Mate",
                3000,
                "2.50 s",
                2500,
                "SOLD OUT (0 of 10000 ml)",
            ),
        ],
        flow: vec![
            OpFlow {
                channel: crate::pump::Channel::A,
                text: "Channel A: 5880.0 pulses per litre; now 0.0 pulses/s (0 ml/s)".into(),
            },
            OpFlow {
                channel: crate::pump::Channel::B,
                text: "Channel B: 5880.0 pulses per litre; now 0.0 pulses/s (0 ml/s)".into(),
            },
        ],
        // Two weeks of sales, a quiet day and an empty one among them.
        chart: (0..crate::controller::CHART_DAYS as u64)
            .map(|k| {
                let count = [9, 12, 7, 0, 14, 18, 11, 3, 10, 13, 8, 16, 21, 12][k as usize % 14];
                ChartDay {
                    date: if k < 12 {
                        format!("11-{:02}", 19 + k)
                    } else {
                        format!("12-{:02}", k - 11)
                    },
                    count,
                    msat: count * 2_300_000,
                }
            })
            .collect(),
        chart_products: vec![
            "Cola: 98 sales, 205,800 sats".into(),
            "Club-Mate: 56 sales, 168,000 sats".into(),
        ],
        today: "12 sales, 27,300 sats".into(),
        total: "1,204 sales, 2,873,100 sats".into(),
        recent: (1..=20)
            .map(|k| format!("2026-12-01 18:{:02}  Cola  2,100 sats  poured", 59 - k))
            .collect(),
        credits: vec![OpCredit {
            sale_id: "L1-0044".into(),
            text: "L1-0044 Club-Mate 3,000 sats: pump: stopped early".into(),
        }],
        refund_links: vec![OpCredit {
            sale_id: "L1-0041".into(),
            text: "L1-0041: 2,100 sats, claim at https://pay.example.org/pull-payments/PP4bXq9sTz"
                .into(),
        }],
        status: vec![
            "Machine: lobby-1".into(),
            "Payment backend: ok".into(),
            "Network: Bitcoin".into(),
            "Ledger: writable".into(),
            format!("lnvend {}", env!("CARGO_PKG_VERSION")),
        ],
        ..OperatorView::default()
    };
    let mut out = Vec::new();
    for (name, tab) in [
        ("operator-products", OpTab::Products),
        ("operator-pump", OpTab::Pump),
        ("operator-stock", OpTab::Stock),
        ("operator-sales", OpTab::Sales),
        ("operator-credits", OpTab::Credits),
        ("operator-status", OpTab::Status),
    ] {
        let mut v = blank(Screen::Operator);
        v.operator = Some(OperatorView { tab, ..op.clone() });
        out.push((name, v));
    }
    out
}

fn product(name: &str, sat: u64, pour: &str, ms: u64, stock: &str) -> OpProduct {
    OpProduct {
        name: name.into(),
        price: crate::money::Msat::from_sat(sat)
            .map(|m| m.display_sats())
            .unwrap_or_default(),
        pour: pour.into(),
        stock: stock.into(),
        price_entry: OpEntry {
            value: sat,
            min: 1,
            max: crate::config::MAX_PRICE_SAT,
            unit: "sats".into(),
        },
        pour_entry: OpEntry {
            value: ms,
            min: 1,
            max: 29_500,
            unit: "ms".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The header's promise: the book's pictures are the screens these lists hold. A screen
    /// added here without `scripts/screens` run (its picture in every language) or without
    /// its entry in docs/reference/screens.md fails, so a reader never looks for it in vain.
    #[test]
    fn every_sample_screen_is_drawn_in_the_book_and_listed_on_its_reference_page() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let page = std::fs::read_to_string(root.join("docs/reference/screens.md"))
            .expect("docs/reference/screens.md");
        let mut missing = Vec::new();
        let mut check = |pngs: Vec<String>, link: String| {
            missing.extend(pngs.into_iter().filter(|png| !root.join(png).is_file()));
            if !page.contains(&link) {
                missing.push(format!("docs/reference/screens.md: {link}"));
            }
        };
        for (name, _) in super::customer_screens() {
            let pngs = crate::config::LANGUAGES
                .iter()
                .map(|lang| format!("docs/screens/{lang}/{name}.png"))
                .collect();
            check(pngs, format!("](../screens/en/{name}.png)"));
        }
        for (name, _) in super::operator_screens() {
            check(
                vec![format!("docs/screens/{name}.png")],
                format!("](../screens/{name}.png)"),
            );
        }
        assert!(
            missing.is_empty(),
            "run scripts/screens, look at the new pictures, and list them: {missing:?}"
        );
    }
}
