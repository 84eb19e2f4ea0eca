//! Owed credits on the public idle screen, whole machine under paused tokio time: five
//! failed pours are five credits on the screen at once, each by its receipt code (the code
//! the fault screen showed); tapping one pours exactly that one; and by default they leave
//! the public screen after two minutes, for the operator.

mod common;

use std::time::Duration;

use common::*;
use lnvend::controller::{Input, Screen, View};
use lnvend::ledger::Ledger;

fn ids(v: &View) -> Vec<String> {
    v.credits.iter().map(|c| c.sale_id.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn five_owed_credits_are_all_offered_and_each_pours_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(failed_pour(&mut m).await);
    }
    let v = m
        .wait_for(Duration::from_secs(5), "five credits", |v| {
            v.screen == Screen::Idle && v.credits.len() == 5
        })
        .await;
    let mut shown = ids(&v);
    shown.sort();
    let mut want = codes.clone();
    want.sort();
    assert_eq!(shown, want, "every receipt code on the screen");

    let pours = on_time(&m.gpio, ENA).1;
    m.send(Input::RedeemCredit(codes[2].clone()));
    m.wait_screen(Screen::ThankYou).await;
    let v = m.wait_screen(Screen::Idle).await;
    assert_eq!(on_time(&m.gpio, ENA).1, pours + 1, "one pour");
    assert_eq!(v.credits.len(), 4);
    assert!(!ids(&v).contains(&codes[2]), "the poured credit is gone");
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.owed().unwrap().len(), 4, "the other four still owed");
}

#[tokio::test(start_paused = true)]
async fn by_default_a_credit_leaves_the_public_screen_after_two_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    let code = failed_pour(&mut m).await;
    let v = m
        .wait_for(Duration::from_secs(5), "the credit", |v| {
            !v.credits.is_empty()
        })
        .await;
    assert_eq!(ids(&v), vec![code]);
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert_eq!(m.views.borrow().credits.len(), 1, "still offered at 100 s");
    m.wait_for(Duration::from_secs(30), "the credit to leave", |v| {
        v.credits.is_empty()
    })
    .await;
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.owed().unwrap().len(), 1, "still owed, for the operator");
}
