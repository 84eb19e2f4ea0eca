//! The Bolt Card rows of the bench table: card tap → pump on against a loopback LNbits 1.6.2
//! with the Bolt Cards extension (tests/support/lnbits_boltcards.rs), the card's wallet and
//! the machine's wallet in that one LNbits, and the test card making real SUN `p`/`c`.
//!
//! * **tap → pump on**: from the card entering the field of the bench's reader (the NTAG 424
//!   model read through the readers' APDUs on the reader thread) to the enable pin going
//!   high, on the whole machine: read, withdrawRequest, callback (in which the extension
//!   pays the invoice inside LNbits), then the machine's own LNbits backend confirming.
//! * Its parts, taken from the same taps: the card's URL names a timing proxy
//!   ([`proxy`]) in front of LNbits, so the machine's own requests are timed as they go out
//!   and as their replies come back, and an observer on LNbits' websocket for the invoice
//!   notes when LNbits pushed the payment. **read** (card in the field → the reader thread
//!   has its URL: the APDU exchange with the in-memory card model, no radio, no pcscd; a
//!   PC/SC reader adds about 44 ms per APDU through vpcd, five APDUs), **withdrawRequest**
//!   (the GET of the card's URL until its reply: the extension's SUN check), **callback**
//!   (the GET with `k1` and the invoice on screen until its reply: the extension pays the
//!   invoice inside LNbits before it answers), LNbits' **push** of the payment to the
//!   observer (from the callback going out), **confirmation** (that push → the
//!   authenticated state check, the ledger commit, pump on), and **lnvend's own** share:
//!   the whole minus LNbits' (the withdrawRequest, and the callback until LNbits pushed the
//!   payment or replied, whichever came first): the read, the hops between the steps and
//!   the confirmation.

mod proxy;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lnvend::controller::{Input, Screen};
use lnvend::nfc::reader::ReadError;
use lnvend::nfc::{CardReader, TapError};

use crate::lnbits_boltcards::{BoltLnbits, CardSpec};
use crate::sun_card::{CardField, SunCard};
use crate::{ms_between, pump_on_after, Rig, With};

const K1: &str = "0c3b25d92b38ae443229dd59ad34b85d";
const K2: &str = "b45775776cb224c75bcde7ca3704e933";
const UID: &str = "04B0B0B0B0B0B0";
const NFC: &str =
    "\n[nfc]\nreader = \"virtual\"\nallow_insecure_http = true\nallow_private_hosts = true\n";

#[derive(Default)]
pub struct CardSamples {
    pub tap_to_pump: Vec<f64>,
    pub read: Vec<f64>,
    pub withdraw_request: Vec<f64>,
    pub callback: Vec<f64>,
    /// LNbits' push of the payment, from the callback's request going out (negative: never).
    pub push_in_callback: Vec<f64>,
    pub confirmation: Vec<f64>,
    pub lnvend_own: Vec<f64>,
}

fn key(h: &str) -> [u8; 16] {
    hex::decode(h).unwrap().try_into().unwrap()
}

/// `taps` card payments on the whole machine, each split into its parts.
pub fn measure(dir: &Path, venv: &Path, taps: usize) -> CardSamples {
    let mut s = CardSamples::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = dir.join("cards");
    std::fs::create_dir_all(&data).unwrap();
    let bolt = rt.block_on(BoltLnbits::start(venv, &data, 10_000_000));
    let issued = rt.block_on(bolt.issue(&CardSpec {
        uid: UID,
        k1: K1,
        k2: K2,
        tx_limit_sat: 5000,
        daily_limit_sat: 100_000_000,
    }));
    let proxy = proxy::Proxy::start(bolt.lnbits.port);
    let through_proxy = issued.base_url.replacen(
        &format!("127.0.0.1:{}/", bolt.lnbits.port),
        &format!("127.0.0.1:{}/", proxy.port),
        1,
    );
    assert_ne!(
        through_proxy, issued.base_url,
        "the card's URL names LNbits' port"
    );
    let uid: [u8; 7] = hex::decode(UID).unwrap().try_into().unwrap();
    let mut card = SunCard::new(key(K1), key(K2), uid, &through_proxy);

    let cfg = crate::config(
        &dir.join("card-machine"),
        50,
        &format!("{}{NFC}", bolt.backend_toml()),
    );
    let mut rig = Rig::start(
        &cfg,
        With::Lnbits(bolt.lnbits.url(), bolt.card_wallet_adminkey.clone()),
    );
    let (field, cards) = CardField::new();
    let read_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let reader = TimedReader {
        field,
        read_at: read_at.clone(),
    };
    let inputs = rig.inputs.clone();
    lnvend::nfc::reader::spawn(Box::new(reader), true, move |e| inputs.send(Input::Nfc(e)))
        .expect("reader thread");
    for _ in 0..taps {
        let (v, _) = rig.tap_to_qr();
        let id = crate::invoice_id(&rig.payer, &crate::bolt11_of(&v));
        let observer = rig
            .rt
            .block_on(crate::observe_push(&bolt.lnbits.url(), &id));
        let since = tokio::time::Instant::now();
        let gpio = rig.gpio.clone();
        let pump = rig
            .rt
            .spawn(async move { pump_on_after(&gpio, since).await });
        *read_at.lock().unwrap() = None;
        let t0 = Instant::now();
        cards.send(card.tap()).unwrap();
        let on = rig
            .rt
            .block_on(pump)
            .unwrap()
            .expect("the pump started after the card tap");
        let pushed = rig.rt.block_on(observer).unwrap();
        s.tap_to_pump.push(ms_between(t0, on));
        let read = read_at.lock().unwrap().expect("the reader read the card");
        s.read.push(ms_between(t0, read));
        let ex = proxy.since(t0);
        let find = |part: &str| {
            let e = ex
                .iter()
                .find(|e| e.path.contains(part))
                .unwrap_or_else(|| panic!("no {part} request through the proxy: {ex:?}"));
            (e.sent, e.replied.expect("a reply"))
        };
        let (wr_sent, wr_replied) = find("/scan/");
        let (cb_sent, cb_replied) = find("/lnurl/cb/");
        s.withdraw_request.push(ms_between(wr_sent, wr_replied));
        s.callback.push(ms_between(cb_sent, cb_replied));
        // LNbits' share: the withdrawRequest, and the callback until LNbits had paid
        // (its push; the machine's watch does not wait for the callback's reply).
        let paid = pushed.map_or(cb_replied, |p| p.min(cb_replied));
        let service = ms_between(wr_sent, wr_replied) + ms_between(cb_sent, paid);
        s.lnvend_own.push(ms_between(t0, on) - service);
        if let Some(at) = pushed {
            s.push_in_callback.push(ms_between(cb_sent, at));
            s.confirmation.push(ms_between(at, on));
        }
        rig.wait(|v| v.screen == Screen::ThankYou, "thank you");
    }
    rig.shutdown();
    drop(proxy);
    drop(bolt);
    s
}

/// The bench's card field, noting when each read ended (the reader thread then hands the
/// URL to the controller).
struct TimedReader {
    field: CardField,
    read_at: Arc<Mutex<Option<Instant>>>,
}

impl CardReader for TimedReader {
    fn wait_for_card(&mut self) -> Result<Result<String, TapError>, ReadError> {
        let r = self.field.wait_for_card();
        *self.read_at.lock().unwrap() = Some(Instant::now());
        r
    }

    fn describe(&self) -> String {
        self.field.describe()
    }
}
