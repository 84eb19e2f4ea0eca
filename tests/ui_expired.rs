//! The expiry notice on the touchscreen, headless through slint's testing backend: it is
//! said in words on the idle screen, a finger where a tile was buys nothing while it is up,
//! and the tiles work again once it is gone.
//!
//! The testing backend can be initialised once per process, so this file holds one test.

use std::cell::RefCell;
use std::rc::Rc;

use i_slint_backend_testing::ElementHandle;
use lnvend::controller::{Screen, Tile, View, EXPIRED_TEXT};
use lnvend::ui::{self, Machine, MachineUi, MachineWindow, Screen as UiScreen};
use slint::platform::{PointerEventButton, WindowEvent};
use slint::{ComponentHandle, LogicalPosition};

fn view(screen: Screen, message: &str) -> View {
    View {
        screen,
        machine_id: "m1".into(),
        tiles: vec![Tile {
            name: "Cola".into(),
            price: "2,100 sats".into(),
            sold_out: false,
            image: None,
        }],
        product: String::new(),
        amount: String::new(),
        payment_uri: String::new(),
        qr: None,
        seconds_left: 0,
        vending: false,
        progress: 0.0,
        message: message.into(),
        code: String::new(),
        detail: String::new(),
        credits: Vec::new(),
        pin_message: String::new(),
        fault_refund: false,
        refund_qr: None,
        refund_text: String::new(),
        operator: None,
        wallet_hint: String::new(),
        language: "en".into(),
        picture: None,
        card: Default::default(),
    }
}

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

#[test]
fn the_expiry_notice_is_said_and_buys_nothing() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let window = MachineWindow::new().unwrap();
    let taps = Rc::new(RefCell::new(Vec::new()));
    let t = taps.clone();
    window
        .idle()
        .on_tap_product(move |i| t.borrow_mut().push(i));
    window.show().unwrap();

    ui::render_cached(&window, &view(Screen::Idle, ""));
    let tile: Vec<_> =
        ElementHandle::find_by_accessible_label(&window, "Buy Cola, 2,100 sats").collect();
    assert_eq!(tile.len(), 1);
    let p = tile[0].absolute_position();
    let s = tile[0].size();
    let centre = LogicalPosition::new(p.x + s.width / 2.0, p.y + s.height / 2.0);

    ui::render_cached(&window, &view(Screen::Expired, EXPIRED_TEXT));
    assert_eq!(window.global::<Machine>().get_screen(), UiScreen::Idle);
    let said: String = window.idle().get_notice().into();
    assert!(said.contains("This payment request expired"), "{said}");
    assert!(said.contains("nothing was charged"), "{said}");
    let shown = ElementHandle::find_by_accessible_label(&window, &said).count();
    assert_eq!(shown, 1, "the notice is on the screen as text");
    touch(&window, centre);
    assert!(
        taps.borrow().is_empty(),
        "a tap under the notice bought {taps:?}"
    );

    ui::render_cached(&window, &view(Screen::Idle, ""));
    touch(&window, centre);
    assert_eq!(
        *taps.borrow(),
        vec![0],
        "the tile buys again after the notice"
    );
}
