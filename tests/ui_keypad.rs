//! Keypad entry in the operator menu, headless through slint's testing backend, tapped as
//! an operator's finger would: the price button opens the keypad with its allowed range,
//! typing 2 1 OK sets exactly 21 (after 121, which ±100 steppers could never undo), ⌫
//! drops the last digit, a value out of range is refused on the keypad with a word and
//! sent nowhere, Cancel sends nothing, and the pour time is typed the same way.
//!
//! The testing backend can be initialised once per process, so this file holds one test.

use std::cell::RefCell;
use std::rc::Rc;

use i_slint_backend_testing::ElementHandle;
use lnvend::controller::{OpEntry, OpProduct, OpTab, OperatorView, Screen, View};
use lnvend::ui::{self, MachineWindow};
use slint::platform::{PointerEventButton, WindowEvent};
use slint::{ComponentHandle, LogicalPosition};

#[derive(Debug, PartialEq)]
enum Sent {
    Price(i32, i32),
    Pour(i32, i32),
}

fn view(price: &str) -> View {
    let op = OperatorView {
        tab: OpTab::Products,
        products: vec![OpProduct {
            name: "Cola".into(),
            price: price.into(),
            pour: "4.00 s".into(),
            stock: String::new(),
            price_entry: OpEntry {
                value: 21,
                min: 1,
                max: 10_000_000,
                unit: "sats".into(),
            },
            pour_entry: OpEntry {
                value: 4000,
                min: 1,
                max: 29_500,
                unit: "ms".into(),
            },
        }],
        ..OperatorView::default()
    };
    View {
        operator: Some(op),
        ..lnvend::ui::samples::blank(Screen::Operator)
    }
}

fn found(window: &MachineWindow, label: &str) -> Vec<ElementHandle> {
    ElementHandle::find_by_accessible_label(window, label).collect()
}

/// A finger down and up on the middle of the one element labelled `label`.
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

fn type_digits(window: &MachineWindow, digits: &str) {
    for d in digits.chars() {
        tap(window, &format!("Digit {d}"));
    }
}

/// What the keypad's display holds now.
fn display(window: &MachineWindow, title: &str) -> String {
    found(window, title)
        .iter()
        .find_map(|e| e.accessible_value())
        .map(|v| v.to_string())
        .unwrap_or_default()
}

#[test]
fn prices_and_pour_times_are_typed_on_a_keypad_that_refuses_out_of_range() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let window = MachineWindow::new().unwrap();
    window.show().unwrap();
    let sent = Rc::new(RefCell::new(Vec::new()));
    let s = sent.clone();
    window
        .global::<lnvend::ui::Operator>()
        .on_set_price(move |i, v| s.borrow_mut().push(Sent::Price(i, v)));
    let s = sent.clone();
    window
        .global::<lnvend::ui::Operator>()
        .on_set_pour(move |i, v| s.borrow_mut().push(Sent::Pour(i, v)));

    ui::render_cached(&window, &view("21 sats"));
    assert!(
        found(&window, "Digit 1").is_empty(),
        "no keypad until asked"
    );
    tap(&window, "Set the price of Cola");
    let title = "Price of Cola (now 21 sats)";
    assert!(
        !found(&window, "Allowed: 1 to 10000000 sats").is_empty(),
        "the range is shown"
    );
    type_digits(&window, "121");
    assert_eq!(display(&window, title), "121");
    tap(&window, &format!("Set {title}"));
    assert_eq!(
        sent.borrow_mut().drain(..).collect::<Vec<_>>(),
        [Sent::Price(0, 121)]
    );
    assert!(found(&window, "Digit 1").is_empty(), "OK closes the keypad");

    // Back to 21: what the ±100 steppers could not do. ⌫ drops only the last digit.
    ui::render_cached(&window, &view("121 sats"));
    tap(&window, "Set the price of Cola");
    let title = "Price of Cola (now 121 sats)";
    type_digits(&window, "215");
    tap(&window, "Delete the last digit");
    assert_eq!(display(&window, title), "21");
    tap(&window, &format!("Set {title}"));
    assert_eq!(
        sent.borrow_mut().drain(..).collect::<Vec<_>>(),
        [Sent::Price(0, 21)]
    );

    // Out of range: refused on the keypad with a word, nothing sent, the keypad stays.
    ui::render_cached(&window, &view("21 sats"));
    tap(&window, "Set the price of Cola");
    let title = "Price of Cola (now 21 sats)";
    type_digits(&window, "99999999");
    tap(&window, &format!("Set {title}"));
    assert!(
        !found(&window, "Too high: at most 10000000 sats").is_empty(),
        "the refusal is said"
    );
    tap(&window, "Clear");
    type_digits(&window, "0");
    tap(&window, &format!("Set {title}"));
    assert!(!found(&window, "Too low: at least 1 sats").is_empty());
    assert!(sent.borrow().is_empty(), "nothing out of range is sent");
    // Cancel: the keypad goes, nothing is sent.
    tap(&window, "Cancel the entry");
    assert!(found(&window, "Digit 1").is_empty());
    assert!(sent.borrow().is_empty());

    // The pour time, in ms, the same way; its range is the pump's.
    tap(&window, "Set the pour time of Cola");
    assert!(!found(&window, "Allowed: 1 to 29500 ms").is_empty());
    type_digits(&window, "3500");
    tap(&window, "Set Pour time of Cola (now 4.00 s)");
    assert_eq!(
        sent.borrow_mut().drain(..).collect::<Vec<_>>(),
        [Sent::Pour(0, 3500)]
    );
}
