//! The idle screen with owed credits, headless through slint's testing backend: with two
//! and with five credits (and few or many products), every credit is its own button
//! labelled with its receipt code, big enough to touch, inside the screen and clear of
//! every product tile, and a finger on a credit redeems exactly that credit while a finger
//! on a tile buys that product. A credit whose drink is sold out is listed after them as
//! kept for its customer, and is no button.
//!
//! The testing backend can be initialised once per process, so this file holds one test.

use std::cell::RefCell;
use std::rc::Rc;

use i_slint_backend_testing::ElementHandle;
use lnvend::ui::{CreditTile, MachineUi, MachineWindow, ProductTile};
use slint::platform::{PointerEventButton, WindowEvent};
use slint::{ComponentHandle, LogicalPosition, ModelRc, VecModel};

#[derive(Debug, PartialEq)]
enum Tapped {
    Product(i32),
    Credit(String),
}

#[derive(Clone, Copy, Debug)]
struct Rect {
    x: f32,
    y: f32,
    w: f32,
    h: f32,
}

impl Rect {
    fn of(e: &ElementHandle) -> Rect {
        let p = e.absolute_position();
        let s = e.size();
        Rect {
            x: p.x,
            y: p.y,
            w: s.width,
            h: s.height,
        }
    }
    fn overlaps(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
    fn centre(&self) -> LogicalPosition {
        LogicalPosition::new(self.x + self.w / 2.0, self.y + self.h / 2.0)
    }
}

/// A finger down and up at `at`, as the touchscreen delivers it.
fn touch(window: &MachineWindow, at: LogicalPosition) {
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

fn one(window: &MachineWindow, label: &str) -> ElementHandle {
    let found: Vec<_> = ElementHandle::find_by_accessible_label(window, label).collect();
    assert_eq!(found.len(), 1, "one element labelled {label:?}");
    found.into_iter().next().unwrap()
}

#[test]
fn every_owed_credit_is_a_separate_button_clear_of_the_tiles() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let window = MachineWindow::new().unwrap();
    let tapped = Rc::new(RefCell::new(Vec::new()));
    let t = tapped.clone();
    window
        .idle()
        .on_tap_product(move |i| t.borrow_mut().push(Tapped::Product(i)));
    let t = tapped.clone();
    window
        .idle()
        .on_redeem_credit(move |id| t.borrow_mut().push(Tapped::Credit(id.to_string())));
    window.show().unwrap();

    let names = [
        "Cola", "Mate", "Water", "Juice", "Beer", "Tea", "Lemonade", "Soda",
    ];
    for n_products in [2usize, 8] {
        for n_credits in [2usize, 5] {
            let case = format!("{n_products} products, {n_credits} credits");
            let products: Vec<ProductTile> = names[..n_products]
                .iter()
                .map(|n| ProductTile {
                    name: (*n).into(),
                    price: "2,100 sats".into(),
                    sold_out: false,
                    ..ProductTile::default()
                })
                .collect();
            let credits: Vec<CreditTile> = (0..n_credits)
                .map(|k| CreditTile {
                    sale_id: format!("S1764636496-00A{k}").into(),
                    product: names[k % n_products].into(),
                    sold_out: false,
                })
                .collect();
            window
                .idle()
                .set_products(ModelRc::new(VecModel::from(products)));
            window.idle().set_pourable_credits(n_credits as i32);
            window
                .idle()
                .set_credits(ModelRc::new(VecModel::from(credits.clone())));

            let tiles: Vec<Rect> = names[..n_products]
                .iter()
                .map(|n| Rect::of(&one(&window, &format!("Buy {n}, 2,100 sats"))))
                .collect();
            for c in &credits {
                let label = format!("Pour your paid {}, receipt {}", c.product, c.sale_id);
                let r = Rect::of(&one(&window, &label));
                assert!(r.w >= 60.0 && r.h >= 60.0, "{case}: {label} is {r:?}");
                assert!(
                    r.x >= 0.0 && r.y >= 0.0 && r.x + r.w <= 800.0 && r.y + r.h <= 480.0,
                    "{case}: {label} is off the screen: {r:?}"
                );
                for (i, t) in tiles.iter().enumerate() {
                    assert!(
                        !r.overlaps(t),
                        "{case}: {label} {r:?} overlaps tile {i} {t:?}"
                    );
                }
                tapped.borrow_mut().clear();
                touch(&window, r.centre());
                assert_eq!(
                    *tapped.borrow(),
                    vec![Tapped::Credit(c.sale_id.to_string())],
                    "{case}: a finger on {label}"
                );
            }
            for (i, t) in tiles.iter().enumerate() {
                assert!(t.w >= 60.0 && t.h >= 60.0, "{case}: tile {i} is {t:?}");
                tapped.borrow_mut().clear();
                touch(&window, t.centre());
                assert_eq!(
                    *tapped.borrow(),
                    vec![Tapped::Product(i as i32)],
                    "{case}: a finger on tile {i}"
                );
            }
        }
    }

    // A credit whose drink is sold out is listed after the pourable one, as kept for its
    // customer: no button, and a finger on it pours nothing.
    let credits = vec![
        CreditTile {
            sale_id: "S1764636496-00B0".into(),
            product: "Cola".into(),
            sold_out: false,
        },
        CreditTile {
            sale_id: "S1764636496-00B1".into(),
            product: "Water".into(),
            sold_out: true,
        },
    ];
    window.idle().set_pourable_credits(1);
    window
        .idle()
        .set_credits(ModelRc::new(VecModel::from(credits)));
    let pour = Rect::of(&one(
        &window,
        "Pour your paid Cola, receipt S1764636496-00B0",
    ));
    assert_eq!(
        ElementHandle::find_by_accessible_label(
            &window,
            "Pour your paid Water, receipt S1764636496-00B1"
        )
        .count(),
        0,
        "a sold-out credit is no button"
    );
    let kept = Rect::of(&one(&window, "Water, sold out"));
    let note = Rect::of(&one(&window, "Kept for you. Please ask staff."));
    let code = Rect::of(&one(&window, "Receipt S1764636496-00B1"));
    assert!(kept.y >= pour.y + pour.h, "listed after the pourable one");
    assert!(
        note.y > kept.y && code.y > note.y,
        "{kept:?} {note:?} {code:?}"
    );
    assert!(code.y + code.h <= 480.0, "on the screen: {code:?}");
    for r in [kept, note, code] {
        tapped.borrow_mut().clear();
        touch(&window, r.centre());
        assert!(
            tapped.borrow().is_empty(),
            "a finger on {r:?} did {:?}",
            tapped.borrow()
        );
    }
    // The header counts only the credit that can be poured.
    one(&window, "Paid — tap to pour:");
}
