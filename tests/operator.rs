//! Owed credits and the operator menu, whole machine under paused time: what the customer
//! and the operator see, what the pump did, and what the ledger holds.

mod common;

use std::time::Duration;

use common::*;
use lnvend::controller::{Input, OpAction, OpTab, Screen, View};
use lnvend::ledger::Ledger;
use lnvend::pump::Channel;

/// The simulator's PIN (examples/sim.toml holds its hash).
const PIN: &str = "1234";

fn pin_line() -> String {
    let sim = include_str!("../examples/sim.toml");
    let line = sim
        .lines()
        .find(|l| l.starts_with("operator_pin_hash"))
        .expect("the sim config has a PIN");
    format!("{line}\n")
}

fn cfg(dir: &std::path::Path, top: &str) -> lnvend::config::Config {
    let text = format!("{}{}", pin_line(), top) + &config_text(dir, "");
    lnvend::config::Config::parse(&text, "operator-test.toml", lnvend::config::Mode::Sim).unwrap()
}

async fn login(m: &mut TestMachine) -> View {
    m.send(Input::OpenOperator);
    let v = m.wait_screen(Screen::Pin).await;
    assert!(v.pin_message.contains("PIN"), "{}", v.pin_message);
    m.send(Input::OperatorPin(PIN.into()));
    m.wait_screen(Screen::Operator).await
}

/// Pays for Cola and makes the pump fail half-way: an owed credit.
async fn owed_cola(m: &mut TestMachine) -> String {
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::Pouring).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    m.gpio.inject_fault(true);
    let fault = m.wait_screen(Screen::Fault).await;
    m.gpio.inject_fault(false);
    m.send(Input::DismissFault);
    m.wait_screen(Screen::OutOfService).await;
    fault.code
}

#[tokio::test(start_paused = true)]
async fn a_customer_whose_pour_failed_taps_their_credit_and_gets_one_full_drink() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&cfg(dir.path(), ""));
    let code = owed_cola(&mut m).await;
    // The operator fixes the pump and puts the machine back in service.
    login(&mut m).await;
    m.send(Input::Operator(OpAction::Exit));
    let idle = m.wait_screen(Screen::Idle).await;
    assert_eq!(
        idle.credits.len(),
        1,
        "the paid Cola is offered on the idle screen"
    );
    assert_eq!(idle.credits[0].sale_id, code);
    assert_eq!(idle.credits[0].product, "Cola");
    let before = on_time(&m.gpio, ENA);
    m.send(Input::RedeemCredit(code.clone()));
    m.wait_screen(Screen::Pouring).await;
    let v = m.wait_screen(Screen::ThankYou).await;
    assert_eq!(v.product, "Cola");
    let after = on_time(&m.gpio, ENA);
    assert_eq!(after.1, before.1 + 1);
    assert_eq!(
        after.0 - before.0,
        Duration::from_millis(4000),
        "a full pour"
    );
    m.wait_screen(Screen::Idle).await;
    assert!(m.views.borrow().credits.is_empty(), "the credit is used up");
    // A second tap on the same code does nothing.
    m.send(Input::RedeemCredit(code.clone()));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, after.1);
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(
        l.sale_state(&lnvend::vend::SaleId(code)).unwrap(),
        Some(lnvend::ledger::SaleState::Poured)
    );
    assert!(l.owed().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn outside_its_window_a_credit_waits_for_the_operator_who_can_settle_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&cfg(dir.path(), "credit_window_s = 0\n"));
    let code = owed_cola(&mut m).await;
    let op = login(&mut m).await;
    assert_eq!(op.operator.as_ref().unwrap().tab, OpTab::Products);
    m.send(Input::Operator(OpAction::Tab(OpTab::Credits)));
    let v = m
        .wait_for(Duration::from_secs(5), "credits tab", |v| {
            v.operator.as_ref().is_some_and(|o| o.tab == OpTab::Credits)
        })
        .await;
    let credits = &v.operator.as_ref().unwrap().credits;
    assert_eq!(credits.len(), 1);
    assert!(
        credits[0].text.contains("2,100 sats"),
        "{}",
        credits[0].text
    );
    m.send(Input::Operator(OpAction::Exit));
    let idle = m.wait_screen(Screen::Idle).await;
    assert!(idle.credits.is_empty(), "not offered to the next customer");
    login(&mut m).await;
    m.send(Input::Operator(OpAction::Settle(code.clone())));
    let v = m
        .wait_for(Duration::from_secs(5), "settled", |v| {
            v.operator.as_ref().is_some_and(|o| o.credits.is_empty())
        })
        .await;
    assert!(v.operator.unwrap().message.contains("settled"));
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(
        l.sale_state(&lnvend::vend::SaleId(code)).unwrap(),
        Some(lnvend::ledger::SaleState::Settled)
    );
}

#[tokio::test(start_paused = true)]
async fn a_refund_on_a_backend_without_refunds_gives_a_receipt_to_refund_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&cfg(dir.path(), ""));
    let code = owed_cola(&mut m).await;
    login(&mut m).await;
    m.send(Input::Operator(OpAction::Refund(code.clone())));
    let v = m
        .wait_for(Duration::from_secs(5), "refund", |v| {
            v.operator
                .as_ref()
                .is_some_and(|o| !o.refund_text.is_empty())
        })
        .await;
    let op = v.operator.unwrap();
    assert!(op.refund_text.contains(&code), "{}", op.refund_text);
    assert!(op.refund_qr.is_none(), "nothing to scan: refunded by hand");
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(
        l.sale_state(&lnvend::vend::SaleId(code)).unwrap(),
        Some(lnvend::ledger::SaleState::Refunded)
    );
}

#[tokio::test(start_paused = true)]
async fn wrong_pins_lock_the_pad_and_a_paying_customer_is_never_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&cfg(dir.path(), ""));
    m.wait_screen(Screen::Idle).await;
    m.send(Input::OpenOperator);
    m.wait_screen(Screen::Pin).await;
    // One PIN at a time: each is checked before the pad takes the next.
    let mut v = m.views.borrow().clone();
    for left in (1..=4).rev() {
        m.send(Input::OperatorPin("9999".into()));
        let want = format!("{left} tries left");
        v = m
            .wait_for(Duration::from_secs(5), &want, |v| {
                v.pin_message.contains(&want)
            })
            .await;
    }
    assert_eq!(v.screen, Screen::Pin);
    m.send(Input::OperatorPin("9999".into()));
    m.wait_for(Duration::from_secs(5), "locked", |v| {
        v.pin_message.contains("locked for 30 s")
    })
    .await;
    m.send(Input::OperatorPin(PIN.into()));
    let v = m
        .wait_for(Duration::from_secs(5), "still locked", |v| {
            v.pin_message.contains("locked")
        })
        .await;
    assert_eq!(
        v.screen,
        Screen::Pin,
        "the right PIN is refused while locked"
    );
    tokio::time::sleep(Duration::from_secs(31)).await;
    m.send(Input::OperatorPin(PIN.into()));
    m.wait_screen(Screen::Operator).await;
    m.send(Input::Operator(OpAction::Exit));
    m.wait_screen(Screen::Idle).await;
    // While a customer pays, the corner does nothing.
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.send(Input::OpenOperator);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(m.views.borrow().screen, Screen::Payment);
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn new_prices_and_pour_times_apply_at_once_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = cfg(dir.path(), "");
    let mut m = TestMachine::start(&config);
    login(&mut m).await;
    m.send(Input::Operator(OpAction::SetPrice {
        index: 0,
        value: 2500,
    }));
    m.send(Input::Operator(OpAction::SetPour { index: 0, ms: 3500 }));
    let v = m
        .wait_for(Duration::from_secs(5), "edited", |v| {
            v.operator
                .as_ref()
                .is_some_and(|o| o.unsaved && o.products[0].pour == "3.50 s")
        })
        .await;
    assert_eq!(v.operator.unwrap().products[0].price, "2,500 sats");
    m.send(Input::Operator(OpAction::Save));
    m.send(Input::Operator(OpAction::Exit));
    let idle = m.wait_screen(Screen::Idle).await;
    assert_eq!(idle.tiles[0].price, "2,500 sats");
    m.tap(0);
    let pay = m.wait_screen(Screen::Payment).await;
    assert_eq!(pay.amount, "2,500 sats", "the new price is charged");
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::ThankYou).await;
    assert_eq!(
        on_time(&m.gpio, ENA),
        (Duration::from_millis(3500), 1),
        "the new pour time"
    );
    m.shutdown().await;
    assert!(dir.path().join("overrides.toml").exists());
    // A restart keeps them.
    let mut m = TestMachine::start(&config);
    let idle = m.wait_screen(Screen::Idle).await;
    assert_eq!(idle.tiles[0].price, "2,500 sats");
    m.shutdown().await;
}

/// Issue 17, bug 5: with ±100 steps, 21 → 121 → 100 and 21 was gone for good. A typed price
/// reaches any value in range and back; a value outside the shown range changes nothing and
/// says why.
#[tokio::test(start_paused = true)]
async fn a_typed_price_goes_back_to_21_and_an_out_of_range_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&cfg(dir.path(), ""));
    let v = login(&mut m).await;
    let row = v.operator.unwrap().products[0].clone();
    assert_eq!(
        (row.price_entry.min, row.price_entry.unit.as_str()),
        (1, "sats")
    );
    assert_eq!(row.price_entry.value, 2100);
    let price_is = |want: &'static str| {
        move |v: &View| {
            v.operator
                .as_ref()
                .is_some_and(|o| o.products[0].price == want)
        }
    };
    for (value, shown) in [(21, "21 sats"), (121, "121 sats"), (21, "21 sats")] {
        m.send(Input::Operator(OpAction::SetPrice { index: 0, value }));
        m.wait_for(Duration::from_secs(5), shown, price_is(shown))
            .await;
    }
    m.send(Input::Operator(OpAction::SetPrice { index: 0, value: 0 }));
    let v = m
        .wait_for(Duration::from_secs(5), "refused", |v| {
            v.operator
                .as_ref()
                .is_some_and(|o| o.message.contains("not changed"))
        })
        .await;
    let op = v.operator.unwrap();
    assert_eq!(op.products[0].price, "21 sats", "0 would give drinks away");
    assert!(op.message.contains("1 to 10000000 sats"), "{}", op.message);
    let max_pour = op.products[0].pour_entry.max;
    assert!(max_pour >= 4000, "the configured pour fits: {max_pour}");
    m.send(Input::Operator(OpAction::SetPour {
        index: 0,
        ms: max_pour + 1,
    }));
    m.send(Input::Operator(OpAction::SetPour { index: 1, ms: 1234 }));
    let v = m
        .wait_for(Duration::from_secs(5), "pour set", |v| {
            v.operator
                .as_ref()
                .is_some_and(|o| o.products[1].pour == "1.23 s")
        })
        .await;
    let op = v.operator.unwrap();
    assert_eq!(
        op.products[0].pour, "4.00 s",
        "past the pump's limit: refused"
    );
    assert_eq!(op.products[1].pour_entry.value, 1234);
    m.send(Input::Operator(OpAction::Save));
    m.send(Input::Operator(OpAction::Exit));
    let idle = m.wait_screen(Screen::Idle).await;
    assert_eq!(idle.tiles[0].price, "21 sats", "the typed price is sold");
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_pour_prime_and_reverse_drive_the_pump_as_labelled() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&cfg(dir.path(), ""));
    login(&mut m).await;
    m.send(Input::Operator(OpAction::TestPour { index: 1 }));
    m.wait_for(Duration::from_secs(10), "test done", |v| {
        v.operator
            .as_ref()
            .is_some_and(|o| o.message.contains("done"))
    })
    .await;
    assert_eq!(on_time(&m.gpio, ENB), (Duration::from_millis(2500), 1));
    // Prime while held...
    m.send(Input::Operator(OpAction::Prime {
        channel: Channel::A,
        on: true,
    }));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    m.send(Input::Operator(OpAction::Prime {
        channel: Channel::A,
        on: false,
    }));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (t, n) = on_time(&m.gpio, ENA);
    assert_eq!(n, 1);
    assert!(
        t >= Duration::from_millis(1500) && t <= Duration::from_millis(1600),
        "{t:?}"
    );
    // ...and never longer than 10 s even if the release is lost.
    m.send(Input::Operator(OpAction::Prime {
        channel: Channel::A,
        on: true,
    }));
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (t2, n2) = on_time(&m.gpio, ENA);
    assert_eq!(n2, 2);
    assert_eq!(t2 - t, Duration::from_secs(10));
    // Reverse runs the reverse input, briefly.
    m.send(Input::Operator(OpAction::Reverse {
        channel: Channel::A,
    }));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rev = m.gpio.high_intervals(24);
    assert_eq!(rev.len(), 1);
    assert_eq!(rev[0].1 - rev[0].0, Duration::from_secs(2));
    assert!(
        !m.pump.is_running(),
        "everything the operator started has stopped"
    );
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_sales_tab_charts_today_s_poured_sale_and_its_product() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&cfg(dir.path(), ""));
    m.wait_screen(Screen::Idle).await;
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::ThankYou).await;
    m.wait_screen(Screen::Idle).await;
    // A Mate left unpaid is no sale.
    m.tap(1);
    m.wait_screen(Screen::Payment).await;
    m.send(Input::Cancel);
    m.wait_screen(Screen::Idle).await;
    login(&mut m).await;
    m.send(Input::Operator(OpAction::Tab(OpTab::Sales)));
    let v = m
        .wait_for(Duration::from_secs(5), "the chart", |v| {
            v.operator.as_ref().is_some_and(|o| !o.chart.is_empty())
        })
        .await;
    let op = v.operator.unwrap();
    assert_eq!(op.chart.len(), 14);
    let today = op.chart.last().unwrap();
    assert_eq!((today.count, today.msat), (1, 2_100_000));
    assert_eq!(op.chart.iter().map(|d| d.count).sum::<u64>(), 1);
    assert_eq!(
        op.chart_products,
        vec!["Cola: 1 sales, 2,100 sats".to_string()]
    );
    m.shutdown().await;
}

/// A config whose PIN hash takes a fifth of the most rounds a config may ask for: a check
/// long enough to measure, short enough for a test (the hash matches no PIN: only wrong
/// PINs are typed).
fn slow_pin_cfg(dir: &std::path::Path) -> lnvend::config::Config {
    let line = format!(
        "operator_pin_hash = \"pbkdf2-sha256${}${}${}\"\n",
        lnvend::operator::MAX_PIN_ROUNDS / 5,
        "00".repeat(16),
        "00".repeat(32)
    );
    let text = line + &config_text(dir, "");
    lnvend::config::Config::parse(&text, "operator-test.toml", lnvend::config::Mode::Sim).unwrap()
}

/// Real time on purpose: what is measured is the controller answering while a PIN's
/// PBKDF2 runs on another thread (the derivation takes real CPU time, which paused tokio
/// time cannot stand in for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_check_leaves_the_controller_free_and_a_second_pin_queues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = slow_pin_cfg(dir.path());
    // How long one check takes on this machine now.
    let hash =
        lnvend::operator::PinHash::parse(cfg.operator_pin_hash.as_ref().unwrap().expose()).unwrap();
    let t = std::time::Instant::now();
    assert!(!tokio::task::spawn_blocking(move || hash.matches("000000"))
        .await
        .unwrap());
    let derive = t.elapsed();

    let mut m = TestMachine::start(&cfg);
    m.wait_screen(Screen::Idle).await;
    m.send(Input::OpenOperator);
    m.wait_screen(Screen::Pin).await;
    // Two PINs in a row: the second arrives while the first is checked and is dropped.
    m.send(Input::OperatorPin("000000".into()));
    m.send(Input::OperatorPin("000001".into()));
    let limit = derive * 20 + Duration::from_secs(5);
    m.wait_for(limit, "the first answer", |v| {
        v.pin_message.contains("tries left")
    })
    .await;
    // Long enough for a second check, had it been queued behind the first.
    tokio::time::sleep(derive * 2).await;
    assert_eq!(
        m.views.borrow().pin_message,
        "Wrong PIN: 4 tries left",
        "one check, not two"
    );
    // While a third is checked, the controller still answers at once: Cancel closes the
    // pad long before the derivation could have ended.
    m.send(Input::OperatorPin("000002".into()));
    let t = std::time::Instant::now();
    m.send(Input::Operator(OpAction::CancelPin));
    m.wait_for(limit, "the pad closed", |v| v.screen != Screen::Pin)
        .await;
    let answered = t.elapsed();
    assert!(
        answered < derive / 2,
        "Cancel waited {answered:?} for a {derive:?} PIN check"
    );
    // The cancelled check still counts: a cancel gives no fresh tries.
    tokio::time::sleep(derive * 2).await;
    m.send(Input::OpenOperator);
    m.wait_screen(Screen::Pin).await;
    m.send(Input::OperatorPin("000003".into()));
    m.wait_for(limit, "the fourth answer", |v| {
        v.pin_message.contains("2 tries left")
    })
    .await;
    m.shutdown().await;
}

/// A config whose PIN is `246813`, hashed with the most rounds lnvend accepts (the slowest
/// check it can be made to do).
fn slow_right_pin_cfg(dir: &std::path::Path) -> lnvend::config::Config {
    let rounds = lnvend::operator::MAX_PIN_ROUNDS;
    let salt = [7u8; 16];
    let mut dk = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"246813", &salt, rounds, &mut dk);
    let line = format!(
        "operator_pin_hash = \"pbkdf2-sha256${rounds}${}${}\"\n",
        hex::encode(salt),
        hex::encode(dk)
    );
    let text = line + &config_text(dir, "");
    lnvend::config::Config::parse(&text, "operator-test.toml", lnvend::config::Mode::Sim).unwrap()
}

/// The operator types the right PIN and cancels while it is checked; someone else holds
/// the corner at once. The cancelled check's answer opens no menu for them, and the pad
/// works as before once it is in. Real time, as above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_right_pin_opens_no_menu_for_the_next_person_at_the_corner() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = slow_right_pin_cfg(dir.path());
    let mut m = TestMachine::start(&cfg);
    m.wait_screen(Screen::Idle).await;
    m.send(Input::OpenOperator);
    m.wait_screen(Screen::Pin).await;
    m.send(Input::OperatorPin("246813".into()));
    m.send(Input::Operator(OpAction::CancelPin));
    m.send(Input::OpenOperator);
    // Long enough for the check of the slowest hash to end, on a loaded machine.
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_ne!(
            m.screen(),
            Screen::Operator,
            "the menu opened for nobody's PIN"
        );
    }
    assert_ne!(
        m.screen(),
        Screen::Pin,
        "the corner was held during the check"
    );
    m.send(Input::OpenOperator);
    m.wait_screen(Screen::Pin).await;
    m.send(Input::OperatorPin("246813".into()));
    m.wait_for(Duration::from_secs(30), "the menu", |v| {
        v.screen == Screen::Operator
    })
    .await;
    m.shutdown().await;
}

/// A wrong PIN whose check a restart cut short still counts after the restart: a power
/// cycle during the check gives no fresh try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_a_pin_check_gives_no_fresh_try() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = slow_pin_cfg(dir.path());
    let mut m = TestMachine::start(&cfg);
    m.wait_screen(Screen::Idle).await;
    m.send(Input::OpenOperator);
    m.wait_screen(Screen::Pin).await;
    m.send(Input::OperatorPin("000000".into()));
    m.wait_for(Duration::from_secs(5), "the check", |v| {
        v.pin_message == "Checking the PIN…"
    })
    .await;
    m.shutdown().await;

    let mut m = TestMachine::start(&cfg);
    m.wait_screen(Screen::Idle).await;
    m.send(Input::OpenOperator);
    m.wait_screen(Screen::Pin).await;
    m.send(Input::OperatorPin("000001".into()));
    let v = m
        .wait_for(Duration::from_secs(60), "the answer", |v| {
            v.pin_message.contains("tries left")
        })
        .await;
    assert_eq!(
        v.pin_message, "Wrong PIN: 3 tries left",
        "the cut-short try counted"
    );
    m.shutdown().await;
}
