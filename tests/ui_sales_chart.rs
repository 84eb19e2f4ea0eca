//! The operator's Sales tab chart, headless through slint's testing backend: fourteen day
//! columns in date order inside the screen, bars in proportion to the busiest day (a quiet
//! day still visible, an empty one flat), and the per-product totals beside the chart.
//!
//! The testing backend can be initialised once per process, so this file holds one test.

use i_slint_backend_testing::ElementHandle;
use lnvend::controller::{ChartDay, OpTab, OperatorView, Screen, View};
use lnvend::ui::{self, MachineWindow};
use slint::ComponentHandle;

fn view(op: OperatorView) -> View {
    View {
        operator: Some(op),
        ..lnvend::ui::samples::blank(Screen::Operator)
    }
}

fn one(window: &MachineWindow, label: &str) -> ElementHandle {
    let mut found: Vec<ElementHandle> =
        ElementHandle::find_by_accessible_label(window, label).collect();
    assert_eq!(found.len(), 1, "one element labelled {label:?}");
    found.remove(0)
}

#[test]
fn the_sales_tab_charts_fourteen_days_with_totals_per_product() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let window = MachineWindow::new().unwrap();
    window.show().unwrap();
    // 11-19 … 12-02: 8 sales on the last day, 2 on 11-25, nothing else.
    let chart: Vec<ChartDay> = (0..14)
        .map(|k| {
            let (m, d) = if k < 12 { (11, 19 + k) } else { (12, k - 11) };
            let count = match k {
                13 => 8,
                6 => 2,
                _ => 0,
            };
            ChartDay {
                date: format!("{m:02}-{d:02}"),
                count,
                msat: count * 2_100_000,
            }
        })
        .collect();
    let op = OperatorView {
        tab: OpTab::Sales,
        today: "8 sales, 16,800 sats".into(),
        total: "10 sales, 21,000 sats".into(),
        recent: (1..=20).map(|k| format!("sale {k} Cola poured")).collect(),
        chart,
        chart_products: vec![
            "Cola: 7 sales, 14,700 sats".into(),
            "Mate: 3 sales, 6,300 sats".into(),
        ],
        ..OperatorView::default()
    };
    ui::render_cached(&window, &view(op));

    let columns: Vec<ElementHandle> = ["11-19", "11-25", "12-01", "12-02"]
        .iter()
        .map(|date| {
            let label = match *date {
                "12-02" => format!("{date}: 8 sales, 16,800 sats"),
                "11-25" => format!("{date}: 2 sales, 4,200 sats"),
                _ => format!("{date}: 0 sales, 0 sats"),
            };
            one(&window, &label)
        })
        .collect();
    for pair in columns.windows(2) {
        assert!(
            pair[0].absolute_position().x < pair[1].absolute_position().x,
            "oldest on the left"
        );
    }
    for c in &columns {
        let (p, s) = (c.absolute_position(), c.size());
        assert!(
            p.x >= 0.0 && p.x + s.width <= 800.0 && p.y >= 72.0 && p.y + s.height <= 448.0,
            "a column inside the Sales page: {p:?} {s:?}"
        );
    }
    let busiest = one(&window, "sales bar 12-02").size().height;
    let quiet = one(&window, "sales bar 11-25").size().height;
    let empty = one(&window, "sales bar 11-19").size().height;
    assert!(
        busiest > 60.0,
        "the busiest day fills the chart: {busiest} px"
    );
    assert!(
        (quiet - busiest / 4.0).abs() <= 1.0,
        "2 of 8 sales is a quarter of the bar: {quiet} of {busiest} px"
    );
    assert_eq!(empty, 0.0, "a day without sales has no bar");
    let sats = one(&window, "sats bar 12-02").size().height;
    assert!((sats - busiest).abs() <= 1.0, "its sats bar is as tall");

    for line in ["Cola: 7 sales, 14,700 sats", "Mate: 3 sales, 6,300 sats"] {
        let e = one(&window, line);
        let chart_right = columns[3].absolute_position().x + columns[3].size().width;
        assert!(
            e.absolute_position().x >= chart_right,
            "{line} beside the chart"
        );
        assert!(
            e.absolute_position().x + e.size().width <= 800.0,
            "{line} on screen"
        );
    }
    assert!(one(&window, "most: 8 sales, 16,800 sats").size().height > 0.0);
}
