//! The relay-pulse dispenser in the whole machine: a paid sale on a pulse product sends
//! its pulse pattern once per payment, never the pump; a failed pulse is an owed credit; a
//! stop mid-pulse leaves the line low. Paused time, the simulated backend, mock pins.

mod common;

use std::time::Duration;

use common::*;
use lnvend::controller::{Input, Screen};
use lnvend::ledger::Ledger;
use lnvend::pump::mock::PinValue;
use lnvend::vend::Event;

/// The coin-op machine's credit input.
const COIN: u8 = 26;

fn pulse_product(pulse_ms: u64, pulses: u32) -> String {
    format!(
        "[[product]]\nname = \"Snack\"\nprice_sat = 1000\ndispenser = \"pulse\"\n\
         pulse_pin = {COIN}\npulse_ms = {pulse_ms}\npulses = {pulses}\ngap_ms = 300\n"
    )
}

#[tokio::test(start_paused = true)]
async fn a_paid_sale_on_a_pulse_product_pulses_its_pattern_exactly_once_per_payment() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), &pulse_product(120, 2)));
    m.wait_screen(Screen::Idle).await;
    for sale in 1..=2usize {
        m.tap(2);
        let v = m.wait_screen(Screen::Payment).await;
        assert_eq!(v.amount, "1,000 sats");
        let inv = m.sim().latest().unwrap();
        assert_eq!(
            m.gpio.on_count(COIN),
            2 * (sale as u64 - 1),
            "nothing before payment"
        );
        m.sim().pay(&inv.id).unwrap();
        // A duplicate confirmation, as a buggy backend might send.
        m.send(Input::Event(Event::PaymentConfirmed {
            invoice_id: inv.id.clone(),
        }));
        m.wait_screen(Screen::ThankYou).await;
        m.wait_screen(Screen::Idle).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        let highs = m.gpio.high_intervals(COIN);
        assert_eq!(highs.len(), 2 * sale, "two pulses per payment: {highs:?}");
        for (on, off) in &highs {
            assert_eq!(
                *off - *on,
                Duration::from_millis(120),
                "each pulse 120 ms wide"
            );
        }
        let (a, b) = (highs[2 * sale - 2], highs[2 * sale - 1]);
        assert_eq!(b.0 - a.1, Duration::from_millis(300), "300 ms apart");
    }
    assert_eq!(m.gpio.level(COIN), Some(PinValue::Level(false)));
    assert_eq!(
        on_time(&m.gpio, ENA),
        (Duration::ZERO, 0),
        "the pump never ran"
    );
    assert_eq!(on_time(&m.gpio, ENB), (Duration::ZERO, 0));
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.pour_count().unwrap(), 2, "one dispense per payment");
    assert!(l.owed().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_pulse_line_that_fails_makes_the_paid_sale_an_owed_credit() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), &pulse_product(120, 1)));
    m.tap(2);
    m.wait_screen(Screen::Payment).await;
    m.gpio.inject_fault(true);
    m.sim().pay_latest().unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(m.gpio.level(COIN), Some(PinValue::Level(false)), "left low");
    m.gpio.inject_fault(false);
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(
        l.pour_count().unwrap(),
        1,
        "one dispense started for the payment"
    );
    let owed = l.owed().unwrap();
    assert_eq!(owed.len(), 1, "the payment is owed, once: {owed:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stop_mid_pulse_drives_the_line_low_and_owes_the_sale() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), &pulse_product(5000, 1)));
    m.tap(2);
    m.wait_screen(Screen::Payment).await;
    m.sim().pay_latest().unwrap();
    let v = m.wait_screen(Screen::Pouring).await;
    assert!(v.vending, "the machine dispenses it: no cup, no pouring");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(m.gpio.level(COIN), Some(PinValue::Level(true)), "mid-pulse");
    let gpio = m.gpio.clone();
    m.shutdown().await;
    assert_eq!(
        gpio.level(COIN),
        Some(PinValue::Level(false)),
        "low after the stop"
    );
    let (held, n) = on_time(&gpio, COIN);
    assert_eq!(n, 1);
    assert!(held < Duration::from_secs(5), "cut at the stop: {held:?}");
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.owed().unwrap().len(), 1, "the cut sale is owed");
}

#[tokio::test(start_paused = true)]
async fn the_controller_hands_the_dispenser_the_product_s_pattern_and_owes_a_partial_one() {
    use lnvend::dispense::fake::{Answer, FakeDispenser};
    use lnvend::dispense::Plan;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let mut m = lnvend::app::assemble(&config(dir.path(), &pulse_product(120, 3))).unwrap();
    // Two of the three credit pulses went out, then the line failed.
    let fake = FakeDispenser::new();
    fake.answer(Answer::Partial(2));
    m.controller.set_dispenser(Arc::new(fake.clone()));
    let inputs = m.controller.inputs();
    let sim = m.sim.clone().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(m.controller.run(async {
        let _ = rx.await;
    }));
    assert!(inputs.send(Input::Tap(2)));
    while sim.latest().is_none() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.pay_latest().unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let plans = fake.plans();
    assert_eq!(plans.len(), 1, "one dispense per payment: {plans:?}");
    let Plan::Pulse(spec) = &plans[0] else {
        panic!("a pulse product is dispensed as a pulse: {plans:?}");
    };
    assert_eq!((spec.pin, spec.pulses), (COIN, 3));
    assert_eq!(spec.width, Duration::from_millis(120));
    assert_eq!(spec.gap, Duration::from_millis(300));
    let _ = stop.send(());
    task.await.unwrap();
    assert_eq!(fake.stops(), 1, "every output stopped at shutdown");
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(
        l.owed().unwrap().len(),
        1,
        "a partial pattern is owed, not poured"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_mid_pattern_leaves_the_line_low_for_good_and_owes_the_sale() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), &pulse_product(400, 4)));
    m.tap(2);
    m.wait_screen(Screen::Payment).await;
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::Pouring).await;
    // The first pulse is out; the second is high when the machine stops.
    loop {
        if m.gpio.on_count(COIN) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gpio = m.gpio.clone();
    m.shutdown().await;
    assert_eq!(
        gpio.level(COIN),
        Some(PinValue::Level(false)),
        "low at the stop"
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        gpio.level(COIN),
        Some(PinValue::Level(false)),
        "and stays low"
    );
    assert_eq!(on_time(&gpio, COIN).1, 2, "no pulse after the stop");
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.owed().unwrap().len(), 1, "the cut sale is owed");
}

/// What the journal shows the operator: a pump sale's log line names its channel and pour
/// time; a pulse sale's says "dispensing" and names the product, no pump words.
#[tokio::test(start_paused = true)]
async fn the_journal_says_dispensing_for_a_pulse_sale_and_pouring_for_a_pump_sale() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Log {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The process's subscriber (a thread's own would miss call sites another test thread
    // registered first); the other tests' lines are told apart by this test's invoice ids.
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber here");
    let mut invoices = Vec::new();

    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), &pulse_product(120, 1)));
    m.wait_screen(Screen::Idle).await;
    for tile in [0, 2] {
        m.tap(tile);
        m.wait_screen(Screen::Payment).await;
        let inv = m.sim().latest().unwrap();
        m.sim().pay(&inv.id).unwrap();
        m.wait_screen(Screen::ThankYou).await;
        m.wait_screen(Screen::Idle).await;
        invoices.push(inv.id.to_string());
    }
    m.shutdown().await;
    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    let got: Vec<&str> = invoices
        .iter()
        .flat_map(|id| {
            text.lines()
                .filter(move |l| l.contains("payment recorded") && l.contains(id.as_str()))
        })
        .collect();
    assert_eq!(got.len(), 2, "one line per paid sale: {got:?}");
    assert!(
        got[0].contains("payment recorded; pouring") && got[0].contains("channel="),
        "the pump sale: {}",
        got[0]
    );
    assert!(
        got[1].contains("payment recorded; dispensing")
            && got[1].contains("product=Snack")
            && !got[1].contains("pour")
            && !got[1].contains("channel="),
        "the pulse sale: {}",
        got[1]
    );
}
