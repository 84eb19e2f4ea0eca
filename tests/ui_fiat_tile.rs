//! A product priced in fiat: its tile says "€2.50" until an invoice has told what that came
//! to in sats, then "€2.50 · ≈2,500 sats" (an estimate: the rate moves), while the payment
//! screen keeps the invoice's exact sats. Whole machine, simulated backend, paused time.

mod common;

use common::*;
use lnvend::controller::{Input, Screen};

fn fiat_config(dir: &std::path::Path) -> lnvend::config::Config {
    let text = config_text(dir, "\n[backend]\nkind = \"sim\"\nfiat_rate_sat = 1000\n").replace(
        "price_sat = 2100",
        "price_fiat = \"2.50\"\nmin_sat = 1000\nmax_sat = 5000",
    );
    lnvend::config::Config::parse(
        &format!("currency = \"EUR\"\n{text}"),
        "fiat-tile-test.toml",
        lnvend::config::Mode::Sim,
    )
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_fiat_tile_shows_about_how_many_sats_once_an_invoice_said_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&fiat_config(dir.path()));
    let idle = m.wait_screen(Screen::Idle).await;
    assert_eq!(idle.tiles[0].price, "€2.50", "no sats before any invoice");
    assert_eq!(idle.tiles[1].price, "3,000 sats");

    m.tap(0);
    let pay = m.wait_screen(Screen::Payment).await;
    assert_eq!(
        pay.amount, "€2.50 · 2,500 sats",
        "the payment screen is exact"
    );

    m.send(Input::Cancel);
    let idle = m.wait_screen(Screen::Idle).await;
    assert_eq!(idle.tiles[0].price, "€2.50 · ≈2,500 sats");
    assert_eq!(
        idle.tiles[1].price, "3,000 sats",
        "a sats price is unchanged"
    );
    m.shutdown().await;
}
