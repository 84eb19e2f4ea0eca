//! The operator menu, headless through slint's testing backend: the Sales tab scrolls to
//! the last of its 20 rows, the Credits tab says "No owed credits" when there are none
//! (and lists them when there are), and the price and the pour time of a product row are
//! far enough apart for a finger.
//!
//! The testing backend can be initialised once per process, so this file holds one test.

use i_slint_backend_testing::ElementHandle;
use lnvend::controller::{OpCredit, OpProduct, OpTab, OperatorView, Screen, View};
use lnvend::ui::{self, MachineWindow};
use slint::platform::WindowEvent;
use slint::{ComponentHandle, LogicalPosition};

fn view(op: OperatorView) -> View {
    View {
        operator: Some(op),
        ..lnvend::ui::samples::blank(Screen::Operator)
    }
}

fn found(window: &MachineWindow, label: &str) -> Vec<ElementHandle> {
    ElementHandle::find_by_accessible_label(window, label).collect()
}

/// Whether an element labelled `label` is drawn fully inside the screen's page (below the
/// tabs, above the message line) at the moment.
fn on_screen(window: &MachineWindow, label: &str) -> bool {
    found(window, label).iter().any(|e| {
        let p = e.absolute_position();
        let s = e.size();
        p.y >= 72.0 && p.y + s.height <= 480.0 - 32.0
    })
}

#[test]
fn the_operator_pages_show_everything_they_hold() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let window = MachineWindow::new().unwrap();
    window.show().unwrap();
    let op = OperatorView {
        tab: OpTab::Sales,
        products: vec![OpProduct {
            name: "Cola".into(),
            price: "21 sats".into(),
            pour: "4.0 s".into(),
            stock: String::new(),
            price_entry: Default::default(),
            pour_entry: Default::default(),
        }],
        today: "20 sales".into(),
        total: "20 sales".into(),
        recent: (1..=20).map(|k| format!("sale {k} Cola poured")).collect(),
        ..OperatorView::default()
    };

    // Sales: the first row shows, the twentieth is reachable by scrolling the list.
    ui::render_cached(&window, &view(op.clone()));
    assert!(on_screen(&window, "sale 1 Cola poured"), "the first sale");
    assert!(
        !on_screen(&window, "sale 20 Cola poured"),
        "20 rows do not fit at once (else this test proves nothing)"
    );
    let list_at = found(&window, "sale 1 Cola poured")[0].absolute_position();
    // The mouse wheel of the testing backend (a finger's drag is not delivered as a scroll
    // through it).
    for _ in 0..20 {
        window
            .window()
            .dispatch_event(WindowEvent::PointerScrolled {
                position: LogicalPosition::new(200.0, list_at.y + 10.0),
                delta_x: 0.0,
                delta_y: -120.0,
            });
    }
    assert!(
        on_screen(&window, "sale 20 Cola poured"),
        "the last of the 20 sales after scrolling"
    );

    // Sales: the per-product totals of the last 14 days fit whole, however long, in every
    // language (each line is a Label, which says when it is cut off).
    let mut sales = op.clone();
    sales.chart_products = vec![
        "Club-Mate: 56 sales, 168,000 sats".into(),
        "Mineralwasser mit Kohlen: 1,204 sales, 12,873,100 sats".into(),
    ];
    for lang in lnvend::config::LANGUAGES {
        ui::render_cached(&window, &view(sales.clone()));
        ui::language::select(&window, lang);
        for line in &sales.chart_products {
            let e = found(&window, line);
            assert_eq!(e.len(), 1, "{lang}: {line:?} is on the Sales tab");
            assert_eq!(
                e[0].accessible_description().as_deref(),
                Some(""),
                "{lang}: {line:?} is cut off in its {:?} box",
                e[0].size()
            );
            assert!(on_screen(&window, line), "{lang}: {line:?} on the screen");
        }
    }

    // Credits: an empty list says so; a full one does not.
    let mut credits = op.clone();
    credits.tab = OpTab::Credits;
    ui::render_cached(&window, &view(credits.clone()));
    assert!(on_screen(&window, "No owed credits"));
    credits.credits = vec![OpCredit {
        sale_id: "S1-0001".into(),
        text: "S1-0001 Cola 21 sats".into(),
    }];
    ui::render_cached(&window, &view(credits));
    assert!(found(&window, "No owed credits").is_empty());
    assert_eq!(found(&window, "Mark S1-0001 settled").len(), 1);

    // Products: the price and the pour time buttons at least 16 px apart.
    let mut products = op;
    products.tab = OpTab::Products;
    ui::render_cached(&window, &view(products));
    let price = &found(&window, "Set the price of Cola")[0];
    let pour = &found(&window, "Set the pour time of Cola")[0];
    let gap = pour.absolute_position().x - (price.absolute_position().x + price.size().width);
    assert!(gap >= 16.0, "price and pour time are {gap} px apart");
}
