//! Whole-machine scenarios for the ways a machine could still lose money, give drinks away
//! or die in service (the hardening issue), under paused tokio time with the simulated
//! backend, mock GPIO, a real ledger, and a clock the test controls.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use lnvend::clock::FakeClock;
use lnvend::controller::{late, limits, Input, OpAction, Screen, View, MAX_WATCHES};
use lnvend::ledger::Ledger;
use lnvend::vend::Event;

/// The test host's wall clock now: the clock starts right, and the tests move it.
fn real_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn pin_line() -> String {
    let line = include_str!("../examples/sim.toml")
        .lines()
        .find(|l| l.starts_with("operator_pin_hash"))
        .expect("the sim config has a PIN");
    format!("{line}\n")
}

fn cfg(dir: &std::path::Path, top: &str, extra: &str) -> lnvend::config::Config {
    let text = format!("{}{top}", pin_line()) + &config_text(dir, extra);
    lnvend::config::Config::parse(&text, "hardening-test.toml", lnvend::config::Mode::Sim).unwrap()
}

fn start_machine(cfg: &lnvend::config::Config, clock: &Arc<FakeClock>) -> TestMachine {
    TestMachine::start_with_clock(cfg, Some(clock.clone() as Arc<dyn lnvend::clock::Clock>))
}

fn idle_credit_ids(v: &View) -> Vec<String> {
    v.credits.iter().map(|c| c.sale_id.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_credit_pours_at_most_once_by_itself_and_a_second_failure_goes_to_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::new(real_now()));
    let mut m = start_machine(&cfg(dir.path(), "", ""), &clock);
    let code = failed_pour(&mut m).await;
    let idle = m.wait_for(Duration::from_secs(5), "the credit tile", |v| {
        v.screen == Screen::Idle && !v.credits.is_empty()
    });
    assert_eq!(idle_credit_ids(&idle.await), vec![code.clone()]);
    // The customer taps it, and the pump fails again.
    m.send(Input::RedeemCredit(code.clone()));
    m.wait_screen(Screen::Pouring).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    m.gpio.inject_fault(true);
    m.wait_screen(Screen::Fault).await;
    m.gpio.inject_fault(false);
    m.send(Input::DismissFault);
    m.send(Input::Event(Event::ServiceRestored));
    let idle = m.wait_screen(Screen::Idle).await;
    assert!(
        idle.credits.is_empty(),
        "never back on the public screen: {:?}",
        idle.credits
    );
    // Tapping the old code (it is on the customer's receipt) pours nothing.
    let pours = on_time(&m.gpio, ENA).1;
    m.send(Input::RedeemCredit(code.clone()));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, pours);
    assert_eq!(pours, 2, "the paid pour and one credit pour, no more");
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    let owed = l.owed().unwrap();
    assert_eq!(owed.len(), 1, "still owed, in the operator's Credits tab");
    assert!(!owed[0].public);
}

#[tokio::test(start_paused = true)]
async fn a_payment_after_expiry_is_found_by_the_sweep_and_becomes_an_owed_credit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::new(real_now()));
    let mut m = start_machine(&cfg(dir.path(), "", ""), &clock);
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let inv = m.sim().latest().unwrap();
    // The countdown runs out; the watch gives up a minute after expiry.
    m.wait_screen_within(Screen::Idle, Duration::from_secs(400))
        .await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(m.sim().wake_up_streams(), 0, "the watch has ended");
    // The customer's wallet pays anyway (BTCPay would say Expired/PaidLate).
    m.sim().pay_after_expiry(&inv.id).unwrap();
    let v = m
        .wait_for(
            late::SWEEP_EVERY + Duration::from_secs(10),
            "the late payment as a credit",
            |v| !v.credits.is_empty(),
        )
        .await;
    assert_eq!(v.screen, Screen::Idle);
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "never poured on an idle screen");
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.owed().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn nothing_is_sold_until_the_clock_is_synchronised() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::new(real_now()));
    clock.set_synced(false);
    let mut m = start_machine(&cfg(dir.path(), "", ""), &clock);
    let v = m.wait_screen(Screen::OutOfService).await;
    assert!(v.message.contains("correct time"), "{}", v.message);
    m.tap(0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(m.screen(), Screen::OutOfService);
    assert_eq!(m.sim().invoices_created(), 0, "no invoice on a wrong clock");
    clock.set_synced(true);
    m.wait_screen_within(Screen::Idle, Duration::from_secs(3))
        .await;
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    // A Pi without an RTC that boots at 1970 is not trusted either.
    m.send(Input::Cancel);
    m.wait_screen(Screen::Idle).await;
    clock.set_unix(0);
    m.wait_screen_within(Screen::OutOfService, Duration::from_secs(3))
        .await;
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn wall_clock_jumps_never_expose_old_credits_collide_sale_ids_or_refuse_a_sale() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::new(real_now()));
    let config = cfg(dir.path(), "credit_window_s = 120\n", "");
    let mut m = start_machine(&config, &clock);
    let code = failed_pour(&mut m).await;
    assert_eq!(idle_credit_ids(&m.views.borrow()), vec![code.clone()]);
    // The window ends on the monotonic clock...
    tokio::time::sleep(Duration::from_secs(121)).await;
    m.wait_for(Duration::from_secs(35), "the credit to leave", |v| {
        v.credits.is_empty()
    })
    .await;
    // ...and a wall clock stepped back three hours does not bring it back.
    clock.jump(-3 * 3600);
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert!(m.views.borrow().credits.is_empty());
    // Sales started on the stepped-back clock get ids above the earlier ones.
    for _ in 0..3 {
        m.tap(1);
        m.wait_screen(Screen::Payment).await;
        m.send(Input::Cancel);
        m.wait_screen(Screen::Idle).await;
    }
    m.shutdown().await;
    // A restart on the stepped-back clock does not offer the old credit either.
    let mut m = start_machine(&config, &clock);
    m.wait_screen(Screen::Idle).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(m.views.borrow().credits.is_empty());
    m.tap(1);
    m.wait_screen(Screen::Payment).await;
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    let mut ids: Vec<String> = l
        .sales_since(i64::MIN, 100)
        .unwrap()
        .into_iter()
        .map(|r| r.sale_id.0)
        .collect();
    assert_eq!(ids.len(), 5, "every sale was recorded: {ids:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "no two sales share an id");
    let newest = l.newest_sale_id().unwrap().unwrap();
    assert!(newest > code, "{newest} after {code}");
}

#[tokio::test(start_paused = true)]
async fn a_power_cycle_gives_no_fresh_pin_tries() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::new(real_now()));
    let config = cfg(dir.path(), "", "");
    let mut m = start_machine(&config, &clock);
    m.wait_screen(Screen::Idle).await;
    m.send(Input::OpenOperator);
    m.wait_screen(Screen::Pin).await;
    for _ in 0..5 {
        m.send(Input::OperatorPin("0000".into()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = m.views.borrow().clone();
    assert!(v.pin_message.contains("locked"), "{}", v.pin_message);
    m.shutdown().await;
    let mut m = start_machine(&config, &clock);
    m.wait_screen(Screen::Idle).await;
    m.send(Input::OpenOperator);
    m.wait_screen(Screen::Pin).await;
    m.send(Input::OperatorPin("1234".into()));
    let v = m
        .wait_for(Duration::from_secs(2), "the PIN answer", |v| {
            v.pin_message.contains("locked")
        })
        .await;
    assert_eq!(
        v.screen,
        Screen::Pin,
        "even the right PIN waits out the lockout"
    );
    // Once the lockout has passed, the right PIN opens the menu.
    tokio::time::sleep(Duration::from_secs(31)).await;
    m.send(Input::OperatorPin("1234".into()));
    m.wait_screen(Screen::Operator).await;
    m.send(Input::Operator(OpAction::Exit));
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_prankster_tapping_and_cancelling_makes_bounded_invoices_and_watches() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::new(real_now()));
    let mut m = start_machine(&cfg(dir.path(), "", ""), &clock);
    m.wait_screen(Screen::Idle).await;
    let t0 = tokio::time::Instant::now();
    for _ in 0..100 {
        m.tap(0);
        tokio::time::sleep(Duration::from_millis(200)).await;
        m.send(Input::Cancel);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = t0.elapsed();
    let allowed =
        limits::INVOICE_BURST as u64 + elapsed.as_secs() / limits::INVOICE_REFILL.as_secs() + 1;
    let made = m.sim().invoices_created();
    assert!(
        made <= allowed,
        "{made} invoices in {elapsed:?} (allowed {allowed})"
    );
    assert!(made >= 3, "some were made: {made}");
    assert!(
        m.sim().wake_up_streams() <= MAX_WATCHES,
        "{} live watches",
        m.sim().wake_up_streams()
    );
    // A real customer after the prankster still gets a QR, within one refill.
    m.tap(0);
    m.wait_screen_within(
        Screen::Payment,
        limits::INVOICE_REFILL + Duration::from_secs(1),
    )
    .await;
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_broken_exchange_rate_puts_the_machine_out_of_service_instead_of_selling_for_1_sat() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::new(real_now()));
    let text = |rate: u64| {
        let base = config_text(
            dir.path(),
            &format!("\n[backend]\nkind = \"sim\"\nfiat_rate_sat = {rate}\n"),
        )
        .replace(
            "price_sat = 2100",
            "price_fiat = \"2.50\"\nmin_sat = 1000\nmax_sat = 5000",
        );
        lnvend::config::Config::parse(
            &format!("currency = \"EUR\"\n{base}"),
            "t.toml",
            lnvend::config::Mode::Sim,
        )
        .unwrap()
    };
    // 1 sat per euro: 2.50 EUR would be 2.5 sats.
    let mut m = start_machine(&text(1), &clock);
    m.tap(0);
    let v = m.wait_screen(Screen::OutOfService).await;
    assert!(v.detail.contains("min_sat"), "{}", v.detail);
    assert!(v.qr.is_none());
    m.shutdown().await;
    // A sane rate sells.
    let mut m = start_machine(&text(1000), &clock);
    m.wait_screen(Screen::Idle).await;
    m.tap(0);
    let v = m.wait_screen(Screen::Payment).await;
    assert_eq!(v.amount, "€2.50 · 2,500 sats");
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_backend_that_hangs_on_the_invoice_is_given_up_after_the_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::new(real_now()));
    let mut m = start_machine(&cfg(dir.path(), "", ""), &clock);
    m.wait_screen(Screen::Idle).await;
    m.sim().set_create_delay(Duration::from_secs(3600));
    m.tap(0);
    m.wait_screen(Screen::Creating).await;
    let t0 = tokio::time::Instant::now();
    let v = m.wait_screen(Screen::OutOfService).await;
    assert!(
        t0.elapsed() <= Duration::from_secs(20),
        "{:?}",
        t0.elapsed()
    );
    assert!(v.message.contains("try again"), "{}", v.message);
    // Cancel on "Preparing…" works at once too.
    m.sim().set_create_delay(Duration::from_secs(3600));
    m.send(Input::Event(Event::BackendUp));
    m.wait_screen(Screen::Idle).await;
    m.tap(0);
    m.wait_screen(Screen::Creating).await;
    m.send(Input::Cancel);
    m.wait_screen_within(Screen::Idle, Duration::from_millis(100))
        .await;
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_payment_reported_by_the_catch_up_for_less_than_the_price_is_not_owed() {
    use async_trait::async_trait;
    use lnvend::backend::sim::SimBackend;
    use lnvend::backend::{
        BackendError, Invoice, InvoiceId, InvoiceRequest, InvoiceState, PaymentBackend, WakeUps,
    };
    use lnvend::controller::Controller;
    use lnvend::money::Msat;
    use lnvend::pump::mock::MockGpio;
    use lnvend::pump::{L298n, Pump};

    /// A node whose cursor reports one invoice paid, with `received`.
    #[derive(Debug)]
    struct CatchUp {
        sim: SimBackend,
        id: InvoiceId,
        received: Msat,
    }
    #[async_trait]
    impl PaymentBackend for CatchUp {
        fn name(&self) -> &'static str {
            "catch-up"
        }
        async fn check_health(&self) -> Result<(), BackendError> {
            Ok(())
        }
        async fn create_invoice(&self, r: &InvoiceRequest) -> Result<Invoice, BackendError> {
            self.sim.create_invoice(r).await
        }
        async fn invoice_state(&self, id: &InvoiceId) -> Result<InvoiceState, BackendError> {
            if *id == self.id {
                Ok(InvoiceState::Paid {
                    received: self.received,
                })
            } else {
                Ok(InvoiceState::Expired)
            }
        }
        async fn wake_ups(&self, _id: &InvoiceId) -> Result<WakeUps, BackendError> {
            Err(BackendError::Unreachable("none".into()))
        }
        async fn paid_while_away(&self) -> Result<Vec<InvoiceId>, BackendError> {
            Ok(vec![self.id.clone()])
        }
    }

    for (received, owed) in [(1, 0), (2_100_000, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let config = cfg(dir.path(), "", "");
        // A first run leaves an invoice unpaid in the ledger.
        let mut m = TestMachine::start(&config);
        m.tap(0);
        m.wait_screen(Screen::Payment).await;
        let inv = m.sim().latest().unwrap();
        m.send(Input::Cancel);
        m.wait_screen(Screen::Idle).await;
        m.shutdown().await;
        // Wait past its expiry, so only the catch-up (not a watch) can find it.
        tokio::time::sleep(Duration::from_secs(400)).await;
        let backend = Arc::new(CatchUp {
            sim: SimBackend::new(),
            id: inv.id.clone(),
            received: Msat::from_msat(received),
        });
        let gpio = MockGpio::new(None).unwrap();
        let (a, b) = config.bridge_pins();
        let pump = Pump::new(L298n::new(Box::new(gpio.pins()), a, b), config.max_run()).unwrap();
        let mut settings = lnvend::app::settings(&config);
        settings.clock = Arc::new(FakeClock::new(real_now()));
        let c = Controller::new(settings, backend, pump, Ledger::open(dir.path()));
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(c.run(async {
            let _ = rx.await;
        }));
        tokio::time::sleep(Duration::from_secs(60)).await;
        let _ = stop.send(());
        task.await.unwrap();
        let l = Ledger::open(dir.path()).unwrap();
        assert_eq!(
            l.owed().unwrap().len(),
            owed,
            "received {received} msat for a 2,100,000 msat sale"
        );
        assert_eq!(gpio.high_intervals(ENA).len(), 0, "nothing poured");
    }
}

#[tokio::test(start_paused = true)]
async fn credits_from_before_a_restart_are_offered_only_on_a_trusted_clock() {
    let dir = tempfile::tempdir().unwrap();
    let start = real_now();
    let clock = Arc::new(FakeClock::new(start));
    let config = cfg(dir.path(), "", "");
    let mut m = start_machine(&config, &clock);
    let code = failed_pour(&mut m).await;
    m.shutdown().await;
    // The Pi boots with the wall clock it saved at shutdown (a minute later, it thinks),
    // not yet synchronised; the real time is ten hours later.
    clock.set_synced(false);
    let mut m = start_machine(&config, &clock);
    m.wait_screen(Screen::OutOfService).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    clock.jump(10 * 3600);
    clock.set_synced(true);
    let v = m
        .wait_screen_within(Screen::Idle, Duration::from_secs(3))
        .await;
    assert!(
        v.credits.is_empty(),
        "yesterday's credit offered to whoever walks up: {:?}",
        v.credits
    );
    m.shutdown().await;
    // On a clock that was right all along, a restart soon after still offers it.
    let clock = Arc::new(FakeClock::new(start + 30));
    let dir2 = tempfile::tempdir().unwrap();
    let config2 = cfg(dir2.path(), "", "");
    let mut m = start_machine(&config2, &clock);
    let code2 = failed_pour(&mut m).await;
    m.shutdown().await;
    let mut m = start_machine(&config2, &clock);
    let v = m
        .wait_for(Duration::from_secs(3), "the credit offered again", |v| {
            !v.credits.is_empty()
        })
        .await;
    assert_eq!(idle_credit_ids(&v), vec![code2]);
    assert_ne!(code, "");
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_credit_tap_the_machine_cannot_serve_leaves_the_tile_standing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::new(real_now()));
    let mut m = start_machine(&cfg(dir.path(), "", ""), &clock);
    let code = failed_pour(&mut m).await;
    m.wait_for(Duration::from_secs(3), "the tile", |v| {
        !v.credits.is_empty()
    })
    .await;
    // The backend blips just as the customer taps.
    m.send(Input::Event(Event::BackendDown {
        reason: "blip".into(),
    }));
    m.send(Input::RedeemCredit(code.clone()));
    m.wait_screen(Screen::OutOfService).await;
    m.send(Input::Event(Event::BackendUp));
    let v = m.wait_screen(Screen::Idle).await;
    assert_eq!(idle_credit_ids(&v), vec![code.clone()], "still offered");
    m.send(Input::RedeemCredit(code));
    m.wait_screen(Screen::Pouring).await;
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn leaving_the_operator_menu_on_a_wrong_clock_sells_nothing_even_for_a_moment() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::new(real_now()));
    clock.set_synced(false);
    let mut m = start_machine(&cfg(dir.path(), "", ""), &clock);
    m.wait_screen(Screen::OutOfService).await;
    m.send(Input::OpenOperator);
    m.wait_screen(Screen::Pin).await;
    m.send(Input::OperatorPin("1234".into()));
    m.wait_screen(Screen::Operator).await;
    m.send(Input::Operator(OpAction::Exit));
    // No time passes: the very next view must already refuse sales.
    m.tap(0);
    tokio::task::yield_now().await;
    let v = m
        .wait_for(Duration::from_millis(1), "the menu closed", |v| {
            v.screen != Screen::Operator
        })
        .await;
    assert_eq!(v.screen, Screen::OutOfService, "{v:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(m.sim().invoices_created(), 0, "no invoice on a wrong clock");
    m.shutdown().await;
}
