//! The Bolt Card PIN pad on the payment screen, headless through slint's testing backend and
//! tapped as a finger would: it is there only while the controller holds a card request
//! that wants the PIN, the digits show as dots, OK sends nothing below 4 digits, a ninth
//! digit is not taken, OK sends exactly what was typed, and Cancel sends the cancel.
//!
//! The testing backend can be initialised once per process, so this file holds one test.

use std::cell::RefCell;
use std::rc::Rc;

use i_slint_backend_testing::ElementHandle;
use lnvend::controller::Screen;
use lnvend::ui::{self, samples, CardPin, MachineWindow};
use slint::platform::{PointerEventButton, WindowEvent};
use slint::{ComponentHandle, LogicalPosition};

#[derive(Debug, PartialEq)]
enum Sent {
    Pin(String),
    Cancel,
}

fn found(window: &MachineWindow, label: &str) -> Vec<ElementHandle> {
    ElementHandle::find_by_accessible_label(window, label).collect()
}

fn tap(window: &MachineWindow, label: &str) {
    let all = found(window, label);
    assert_eq!(all.len(), 1, "one element labelled {label:?}");
    let (p, s) = (all[0].absolute_position(), all[0].size());
    let at = LogicalPosition::new(p.x + s.width / 2.0, p.y + s.height / 2.0);
    let w = window.window();
    w.dispatch_event(WindowEvent::PointerPressed {
        position: at,
        button: PointerEventButton::Left,
    });
    w.dispatch_event(WindowEvent::PointerReleased {
        position: at,
        button: PointerEventButton::Left,
    });
    w.dispatch_event(WindowEvent::PointerExited);
}

fn type_pin(window: &MachineWindow, digits: &str) {
    for d in digits.chars() {
        tap(window, &format!("PIN digit {d}"));
    }
}

/// The texts on screen (a Text's accessible label is its text unless it names one).
fn texts(window: &MachineWindow) -> Vec<String> {
    ElementHandle::find_by_element_type_name(window, "Text")
        .filter_map(|e| e.accessible_value().or(e.accessible_label()))
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn a_pin_typed_on_the_pad_reaches_the_controller_masked_and_4_to_8_digits() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let window = MachineWindow::new().unwrap();
    window.show().unwrap();
    let sent = Rc::new(RefCell::new(Vec::new()));
    let s = sent.clone();
    window
        .global::<CardPin>()
        .on_submit(move |pin| s.borrow_mut().push(Sent::Pin(pin.to_string())));
    let s = sent.clone();
    window
        .global::<CardPin>()
        .on_cancel(move || s.borrow_mut().push(Sent::Cancel));

    let mut v = samples::blank(Screen::Payment);
    v.amount = "4,210 sats".into();
    v.card.hint = true;
    ui::render_cached(&window, &v);
    assert!(
        found(&window, "PIN digit 1").is_empty(),
        "no pad until asked"
    );

    v.card.pin_pad = true;
    ui::render_cached(&window, &v);
    type_pin(&window, "246");
    assert_eq!(found(&window, "PIN digits entered: 3").len(), 1);
    // The digits typed are nowhere on screen (the pad shows dots).
    let on_screen = texts(&window).join("|");
    assert!(on_screen.contains("Enter your card's PIN"), "{on_screen}");
    assert!(!on_screen.contains("246"), "{on_screen}");
    tap(&window, "Pay with this PIN");
    assert!(sent.borrow().is_empty(), "three digits are not sent");

    type_pin(&window, "81357");
    assert_eq!(found(&window, "PIN digits entered: 8").len(), 1);
    type_pin(&window, "9");
    assert_eq!(
        found(&window, "PIN digits entered: 8").len(),
        1,
        "a ninth digit is not taken"
    );
    tap(&window, "Pay with this PIN");
    assert_eq!(
        sent.borrow_mut().drain(..).collect::<Vec<_>>(),
        [Sent::Pin("24681357".into())]
    );

    // Clear, then Cancel: the cancel goes to the controller, no PIN.
    type_pin(&window, "1111");
    tap(&window, "Clear PIN");
    assert_eq!(found(&window, "PIN digits entered: 0").len(), 1);
    tap(&window, "Cancel the PIN and pay by QR");
    assert_eq!(
        sent.borrow_mut().drain(..).collect::<Vec<_>>(),
        [Sent::Cancel]
    );

    // The controller dropped the request: the pad goes and the QR is back.
    v.card.pin_pad = false;
    ui::render_cached(&window, &v);
    assert!(found(&window, "PIN digit 1").is_empty());
    assert_eq!(found(&window, "Lightning invoice QR code").len(), 1);
}
