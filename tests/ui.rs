//! The touchscreen, headless, through slint's testing backend: a customer taps a product by
//! its accessible label, the payment screen appears, the QR on it decodes back to the
//! invoice, Cancel returns to the tiles, the operator's typed buttons reach the controller,
//! and every touch target is at least 60 px.
//!
//! The testing backend can be initialised once per process, so this file holds one test.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use i_slint_backend_testing::ElementHandle;
use lnvend::ui::{self, Machine, MachineUi, MachineWindow, OpTab, Screen};
use slint::{ComponentHandle, Model};

/// Runs the slint event loop until `done` returns true (checked every 20 ms) or 20 s pass.
fn run_until(window: &MachineWindow, what: &str, done: impl Fn(&MachineWindow) -> bool + 'static) {
    let ok = Rc::new(Cell::new(false));
    let ok2 = ok.clone();
    let weak = window.as_weak();
    let started = Instant::now();
    let timer = slint::Timer::default();
    timer.start(
        slint::TimerMode::Repeated,
        Duration::from_millis(20),
        move || {
            let w = weak.unwrap();
            if done(&w) {
                ok2.set(true);
                let _ = slint::quit_event_loop();
            } else if started.elapsed() > Duration::from_secs(20) {
                let _ = slint::quit_event_loop();
            }
        },
    );
    slint::run_event_loop_until_quit().unwrap();
    assert!(ok.get(), "timed out waiting for {what}");
}

fn decode_qr(img: &slint::Image) -> String {
    let buf = img.to_rgb8().expect("the QR is an RGB image");
    let (w, h) = (buf.width() as usize, buf.height() as usize);
    let px = buf.as_slice();
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| px[y * w + x].r);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code on the payment screen");
    grids[0].decode().expect("the QR decodes").1
}

#[test]
fn a_customer_taps_a_product_and_sees_a_scannable_qr() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let dir = tempfile::tempdir().unwrap();
    // With the simulator's operator PIN (1234).
    let pin = include_str!("../examples/sim.toml")
        .lines()
        .find(|l| l.starts_with("operator_pin_hash"))
        .unwrap();
    let text = format!("{pin}\n{}", common::config_text(dir.path(), ""));
    let cfg =
        lnvend::config::Config::parse(&text, "ui-test.toml", lnvend::config::Mode::Sim).unwrap();
    let machine = lnvend::app::assemble(&cfg).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let window = MachineWindow::new().unwrap();
    let inputs = machine.controller.inputs();
    ui::attach(&window, inputs, machine.controller.views(), rt.handle());
    let sim = machine.sim.clone().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let ctl = rt.spawn(machine.controller.run(async {
        let _ = stop_rx.await;
    }));
    window.show().unwrap();

    // The idle screen: one tile per product, labelled for accessibility, big enough to touch.
    assert_eq!(window.machine().get_screen(), Screen::Idle);
    let tiles: Vec<_> =
        ElementHandle::find_by_accessible_label(&window, "Buy Cola, 2,100 sats").collect();
    assert_eq!(tiles.len(), 1);
    let mate: Vec<_> =
        ElementHandle::find_by_accessible_label(&window, "Buy Mate, 3,000 sats").collect();
    assert_eq!(mate.len(), 1);
    for t in tiles.iter().chain(mate.iter()) {
        let size = t.size();
        assert!(size.width >= 60.0 && size.height >= 60.0, "tile {size:?}");
    }
    tiles[0].invoke_accessible_default_action();

    run_until(&window, "the payment screen", |w| {
        w.global::<Machine>().get_screen() == Screen::Payment
    });
    let m = window.payment();
    assert_eq!(m.get_product(), "Cola");
    assert_eq!(m.get_amount(), "2,100 sats");
    assert!(
        m.get_countdown().starts_with("Expires in 4:5"),
        "{}",
        m.get_countdown()
    );
    let invoice = sim.latest().unwrap();
    let scanned = decode_qr(&m.get_qr());
    assert_eq!(
        scanned,
        format!("LIGHTNING:{}", invoice.bolt11.to_uppercase())
    );
    let parsed: lightning_invoice::Bolt11Invoice = scanned["LIGHTNING:".len()..]
        .to_lowercase()
        .parse()
        .unwrap();
    assert_eq!(parsed.amount_milli_satoshis(), Some(2_100_000));

    let cancel: Vec<_> =
        ElementHandle::find_by_accessible_label(&window, "Cancel payment").collect();
    assert_eq!(cancel.len(), 1);
    let size = cancel[0].size();
    assert!(size.height >= 60.0 && size.width >= 60.0, "cancel {size:?}");
    cancel[0].invoke_accessible_default_action();
    run_until(&window, "the idle screen again", |w| {
        w.global::<Machine>().get_screen() == Screen::Idle
    });

    // A backend that hangs: "Preparing your invoice…" offers Cancel at once.
    sim.set_create_delay(Duration::from_secs(3600));
    let cola: Vec<_> =
        ElementHandle::find_by_accessible_label(&window, "Buy Cola, 2,100 sats").collect();
    cola[0].invoke_accessible_default_action();
    run_until(&window, "the preparing screen", |w| {
        w.global::<Machine>().get_screen() == Screen::Creating
    });
    let cancel: Vec<_> =
        ElementHandle::find_by_accessible_label(&window, "Cancel payment").collect();
    assert_eq!(cancel.len(), 1, "Cancel while preparing");
    let size = cancel[0].size();
    assert!(size.height >= 60.0 && size.width >= 60.0, "cancel {size:?}");
    cancel[0].invoke_accessible_default_action();
    run_until(
        &window,
        "the idle screen after cancelling the preparation",
        |w| w.global::<Machine>().get_screen() == Screen::Idle,
    );
    sim.set_create_delay(Duration::ZERO);

    // The operator: the corner, the PIN pad by its labelled keys, the menu, and out again.
    let tap = |label: &str| {
        let found: Vec<_> = ElementHandle::find_by_accessible_label(&window, label).collect();
        assert_eq!(found.len(), 1, "one element labelled {label:?}");
        let size = found[0].size();
        assert!(
            size.width >= 60.0 && size.height >= 60.0,
            "{label}: {size:?}"
        );
        found[0].invoke_accessible_default_action();
    };
    tap("Operator");
    run_until(&window, "the PIN pad", |w| {
        w.global::<Machine>().get_screen() == Screen::Pin
    });
    for d in ["Digit 1", "Digit 2", "Digit 3", "Digit 4"] {
        tap(d);
    }
    tap("Enter PIN");
    run_until(&window, "the operator menu", |w| {
        w.global::<Machine>().get_screen() == Screen::Operator
    });
    assert_eq!(window.operator().get_products().row_count(), 2);
    // Each typed button reaches the controller: a price typed on the keypad is the price
    // (and marks the menu unsaved), a tab turns the page.
    assert!(!window.operator().get_unsaved());
    tap("Set the price of Cola");
    for d in ["Digit 2", "Digit 1"] {
        tap(d);
    }
    tap("Set Price of Cola (now 2,100 sats)");
    run_until(&window, "the typed price, unsaved", |w| {
        w.operator().get_unsaved()
            && w.operator().get_products().row_data(0).map(|p| p.price) == Some("21 sats".into())
    });
    tap("Operator tab Pump");
    run_until(&window, "the pump page", |w| {
        w.operator().get_current_tab() == OpTab::Pump
    });
    assert_eq!(
        ElementHandle::find_by_accessible_label(&window, "Reverse channel B").count(),
        1
    );
    tap("Operator tab Status");
    run_until(&window, "the status page", |w| {
        w.operator().get_current_tab() == OpTab::Status
    });
    tap("Leave the operator menu");
    run_until(&window, "the idle screen after the menu", |w| {
        w.global::<Machine>().get_screen() == Screen::Idle
    });
    // The PIN pad's Cancel goes back to the tiles.
    tap("Operator");
    run_until(&window, "the PIN pad again", |w| {
        w.global::<Machine>().get_screen() == Screen::Pin
    });
    tap("Cancel operator login");
    run_until(&window, "the idle screen after cancelling the PIN", |w| {
        w.global::<Machine>().get_screen() == Screen::Idle
    });

    let _ = stop_tx.send(());
    rt.block_on(ctl).unwrap();
}
