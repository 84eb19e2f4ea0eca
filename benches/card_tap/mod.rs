//! The Bolt Card rows of the bench table: card tap → pump on against a loopback LNbits 1.6.2
//! with the Bolt Cards extension (tests/support/lnbits_boltcards.rs), the card's wallet and
//! the machine's wallet in that one LNbits, and the test card making real SUN `p`/`c`.
//!
//! * **tap → pump on**: from the card entering the field of the bench's reader (the NTAG 424
//!   model read through the readers' APDUs on the reader thread) to the enable pin going
//!   high, on the whole machine: read, withdrawRequest, callback (in which the extension
//!   pays the invoice inside LNbits), then the machine's own LNbits backend confirming.
//! * Its parts, measured alone on fresh taps against the same LNbits: **read** (the APDU
//!   exchange with the in-memory card model: no radio, no pcscd; a PC/SC reader adds about
//!   44 ms per APDU through vpcd, five APDUs), **withdrawRequest** (GET of the card's URL,
//!   with the extension's SUN check), **callback** (GET callback with `k1` and a fresh
//!   invoice of the machine's wallet, returning once the extension has paid it), and on the
//!   machine **confirmation** (from the view saying "Paying with your card…" to pump on).

use std::path::Path;
use std::time::Instant;

use lnvend::controller::{Input, Screen};
use serde_json::{json, Value};

use crate::lnbits_boltcards::{BoltLnbits, CardSpec};
use crate::sun_card::{CardField, SunCard};
use crate::{ms, ms_between, pump_on_after, Rig, With};

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
    pub confirmation: Vec<f64>,
}

fn key(h: &str) -> [u8; 16] {
    hex::decode(h).unwrap().try_into().unwrap()
}

/// `taps` card payments on the whole machine, and `taps` of each part alone.
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
    let uid: [u8; 7] = hex::decode(UID).unwrap().try_into().unwrap();
    let mut card = SunCard::new(key(K1), key(K2), uid, &issued.base_url);

    // The parts alone.
    let http = reqwest::Client::new();
    for _ in 0..taps {
        let mut model = card.tap();
        let t = Instant::now();
        let uri = lnvend::nfc::reader::read_ndef_uri(&mut model)
            .expect("read")
            .expect("a URI");
        s.read.push(ms(t.elapsed()));
        let url = uri.replacen("lnurlw://", "http://", 1);
        let (wr, callback_ms) = rt.block_on(async {
            let t = Instant::now();
            let wr: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
            let wr_ms = ms(t.elapsed());
            assert_eq!(wr["tag"], "withdrawRequest", "{wr}");
            let invoice = crate::lnbits_server::call(
                http.post(format!("{}/api/v1/payments", bolt.lnbits.url()))
                    .header("X-Api-Key", &bolt.machine_inkey)
                    .json(&json!({"out": false, "amount": 10, "memo": "bench"})),
                "machine invoice",
            )
            .await;
            let pr = invoice["bolt11"].as_str().expect("bolt11");
            let t = Instant::now();
            let ok: Value = http
                .get(wr["callback"].as_str().unwrap())
                .query(&[("k1", wr["k1"].as_str().unwrap()), ("pr", pr)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(ok["status"], "OK", "{ok}");
            (wr_ms, ms(t.elapsed()))
        });
        s.withdraw_request.push(wr);
        s.callback.push(callback_ms);
    }

    // The whole machine.
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
    let inputs = rig.inputs.clone();
    lnvend::nfc::reader::spawn(Box::new(field), true, move |e| inputs.send(Input::Nfc(e)))
        .expect("reader thread");
    for _ in 0..taps {
        rig.tap_to_qr();
        let since = tokio::time::Instant::now();
        let gpio = rig.gpio.clone();
        let pump = rig
            .rt
            .spawn(async move { pump_on_after(&gpio, since).await });
        let t0 = Instant::now();
        cards.send(card.tap()).unwrap();
        // The view may go from "Paying" to the pour between two looks: then no
        // confirmation sample for this tap.
        let seen =
            rig.try_wait(|v| v.card.message.starts_with("Paying") || v.screen == Screen::Pouring);
        let paying_at = seen
            .filter(|v| v.screen == Screen::Payment)
            .map(|_| Instant::now());
        let on = rig
            .rt
            .block_on(pump)
            .unwrap()
            .expect("the pump started after the card tap");
        s.tap_to_pump.push(ms_between(t0, on));
        if let Some(at) = paying_at {
            s.confirmation.push(ms_between(at, on));
        }
        rig.wait(|v| v.screen == Screen::ThankYou, "thank you");
    }
    rig.shutdown();
    drop(bolt);
    s
}
