//! An invoice that runs out, seen by the customer: the machine says so ("This payment
//! request expired — nothing was charged") for a few seconds, then shows the tiles again,
//! and nothing is poured. A customer's own Cancel goes straight back to the tiles.

mod common;

use std::time::Duration;

use common::*;
use lnvend::controller::{Input, Screen, EXPIRED_NOTICE};
use tokio::time::Instant;

const SAID: &str = "This payment request expired — nothing was charged";

#[tokio::test(start_paused = true)]
async fn a_countdown_that_runs_out_says_nothing_was_charged_then_idles() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let v = m
        .wait_for(Duration::from_secs(400), "the expiry notice", |v| {
            v.screen != Screen::Payment
        })
        .await;
    assert_eq!(v.screen, Screen::Expired, "not straight to the tiles");
    assert_eq!(v.message, SAID);
    let shown = Instant::now();
    m.wait_for(Duration::from_secs(30), "the tiles again", |v| {
        v.screen == Screen::Idle
    })
    .await;
    let for_how_long = shown.elapsed();
    assert!(
        for_how_long >= EXPIRED_NOTICE - Duration::from_millis(600)
            && for_how_long <= EXPIRED_NOTICE + Duration::from_secs(1),
        "shown for {for_how_long:?}"
    );
    assert!(
        EXPIRED_NOTICE >= Duration::from_secs(3),
        "long enough to read"
    );
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "nothing poured");
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_invoice_the_backend_calls_expired_says_so_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.sim().expire_latest().unwrap();
    let v = m
        .wait_for(Duration::from_secs(30), "the expiry notice", |v| {
            v.screen != Screen::Payment
        })
        .await;
    assert_eq!(v.screen, Screen::Expired);
    assert_eq!(v.message, SAID);
    m.wait_for(Duration::from_secs(30), "the tiles again", |v| {
        v.screen == Screen::Idle
    })
    .await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "nothing poured");
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn cancel_goes_straight_back_to_the_tiles() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.send(Input::Cancel);
    let v = m
        .wait_for(Duration::from_secs(5), "the next screen", |v| {
            v.screen != Screen::Payment
        })
        .await;
    assert_eq!(v.screen, Screen::Idle);
    m.shutdown().await;
}
