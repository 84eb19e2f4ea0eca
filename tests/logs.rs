//! Logs as journald and a file see them: the real binary with stderr to a pipe writes plain
//! text, no ANSI escape codes (which `journalctl` and `grep` would show as garbage).

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn logs_to_a_pipe_carry_no_ansi_colours() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("machine.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}/data\"\n[[product]]\nname = \"Cola\"\nprice_sat = 2100\npour_ms = 1000\n[gpio]\nbackend = \"mock\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lnvend"))
        .args(["sim", "--headless", "--config"])
        .arg(&cfg)
        .env("LNVEND_LOG", "info")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A sale's worth of log lines, then out.
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "tap 0").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    writeln!(stdin, "cancel").unwrap();
    writeln!(stdin, "quit").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("transition"), "the log says little: {err}");
    assert!(!err.contains('\u{1b}'), "escape codes in a pipe: {err:?}");
}

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use lnvend::controller::Screen;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Every event's fields, by name, as journald would get them (upper-cased).
#[derive(Clone, Default)]
struct Fields(Arc<Mutex<Vec<HashMap<String, String>>>>);

struct Visitor<'a>(&'a mut HashMap<String, String>);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_ascii_uppercase(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_ascii_uppercase(), value.to_string());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Fields {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = HashMap::new();
        event.record(&mut Visitor(&mut fields));
        self.0.lock().unwrap().push(fields);
    }
}

#[tokio::test(start_paused = true)]
async fn every_transition_carries_the_sale_id_product_and_state_journald_filters_on() {
    let fields = Fields::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(fields.clone()));
    let dir = tempfile::tempdir().unwrap();
    let mut m = common::TestMachine::start(&common::config(dir.path(), ""));
    m.wait_screen(Screen::Idle).await;
    m.tap(1);
    m.wait_screen(Screen::Payment).await;
    m.send(lnvend::controller::Input::Cancel);
    m.wait_screen(Screen::Idle).await;
    m.shutdown().await;
    let events = fields.0.lock().unwrap().clone();
    let transitions: Vec<&HashMap<String, String>> = events
        .iter()
        .filter(|f| f.get("MESSAGE").map(String::as_str) == Some("transition"))
        .collect();
    let sale = transitions
        .iter()
        .find_map(|f| (f["STATE"] == "AwaitingPayment").then(|| f["SALE_ID"].clone()))
        .expect("a transition to the payment screen");
    assert!(sale.starts_with('S'), "{sale}");
    // Every step of this sale, back to idle included, is found by its SALE_ID.
    let of_sale: Vec<&str> = transitions
        .iter()
        .filter(|f| f["SALE_ID"] == sale)
        .map(|f| {
            assert_eq!(f["PRODUCT"], "Mate");
            f["STATE"].as_str()
        })
        .collect();
    assert_eq!(of_sale, ["CreatingInvoice", "AwaitingPayment", "Idle"]);
}

#[path = "support/lnurlw_service.rs"]
mod lnurlw_service;

/// A Bolt Card exchange as `LNVEND_LOG=debug` logs it, against services that put `k1` in
/// the callback's path (LNbits' Bolt Cards extension does): one that declines the
/// callback, one whose callback cannot be reached, and one that accepts. No log line
/// carries the `k1` (a failed callback's `k1` can be used again) or the card's `p` and `c`.
#[tokio::test]
async fn a_card_exchange_logs_no_k1_p_or_c_even_at_debug() {
    use lnurlw_service::{Behaviour, CardService, K1};
    use lnvend::controller::Input;
    use lnvend::nfc::{CardUrl, NfcEvent};
    let fields = Fields::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(fields.clone()));
    let in_path = || Behaviour {
        k1_in_path: true,
        ..Behaviour::default()
    };
    let declining = CardService::start(Behaviour {
        callback_error: Some("Card disabled".into()),
        ..in_path()
    })
    .await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_origin = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = CardService::start(Behaviour {
        callback_origin: Some(closed_origin),
        ..in_path()
    })
    .await;
    let accepting = CardService::start(in_path()).await;
    let dir = tempfile::tempdir().unwrap();
    let nfc =
        "[nfc]\nreader = \"virtual\"\nallow_insecure_http = true\nallow_private_hosts = true\n";
    let mut m = common::TestMachine::start(&common::short_pour_config(dir.path(), nfc));
    m.wait_screen(Screen::Idle).await;
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    // (service, p, what the screen says, callbacks that reach the service)
    let taps = [
        (
            &declining,
            "0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A01",
            "Card disabled",
            1,
        ),
        (
            &unreachable,
            "0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A02",
            "cannot be reached",
            0,
        ),
        (
            &accepting,
            "0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A03",
            "Paying with your card",
            1,
        ),
    ];
    for (service, p, says, callbacks) in taps {
        let url = CardUrl::from_card_uri(&service.tap_uri(p), true).unwrap();
        m.send(Input::Nfc(NfcEvent::Tap(Ok(url))));
        m.wait_for(std::time::Duration::from_secs(20), says, |v| {
            v.card.message.contains(says)
        })
        .await;
        assert_eq!(service.scans().len(), 1, "{says}: the card was read");
        assert_eq!(service.callbacks().len(), callbacks, "{says}");
    }
    m.send(Input::Cancel);
    m.wait_screen(Screen::Idle).await;
    m.shutdown().await;
    let events = fields.0.lock().unwrap().clone();
    let lines: Vec<String> = events.iter().map(|f| format!("{f:?}")).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("sending the invoice to the card's service")),
        "the debug lines of the exchange were captured: {lines:#?}"
    );
    for line in &lines {
        for secret in [K1, "E19CCB1FED8892CE", "0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0"] {
            assert!(!line.contains(secret), "{secret} in the log: {line}");
        }
    }
}
