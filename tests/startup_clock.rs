//! Start-up on a wall clock lnvend cannot trust yet (a Pi without a real-time clock boots
//! at 1970, or at whatever it saved, until NTP answers): the invoices left unsettled
//! before the restart are all re-checked with the backend, however many there are, and a
//! payment made while the machine was down becomes an owed credit, never lost.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use lnvend::backend::InvoiceId;
use lnvend::clock::FakeClock;
use lnvend::controller::{late, Input, Screen, MAX_WATCHES};
use lnvend::ledger::{Ledger, SaleState};

fn real_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// More invoices than the machine watches at once.
const ABANDONED: usize = MAX_WATCHES + 8;

/// Runs a machine on a right clock that shows `ABANDONED` QRs a customer walks away from
/// (oldest first: their invoice ids); then restarts it on the clock `wrong` makes, the
/// backend says invoice `paid` of them was paid meanwhile, and the machine runs for
/// `run_for`. Returns the ledger's sales (id, state, invoice id).
async fn restart_with_one_paid(
    wrong: impl FnOnce(&FakeClock),
    paid: fn(&[InvoiceId]) -> &InvoiceId,
    run_for: Duration,
) -> (Vec<InvoiceId>, InvoiceId, Vec<(SaleState, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let clock = Arc::new(FakeClock::new(real_now()));
    let as_clock = || Some(clock.clone() as Arc<dyn lnvend::clock::Clock>);
    let mut m = TestMachine::start_with_clock(&config, as_clock());
    // Left invoices stay payable (as BTCPay's, LNbits' or an NWC wallet's).
    m.sim().set_cancels(false);
    m.wait_screen(Screen::Idle).await;
    let mut ids = Vec::new();
    for _ in 0..ABANDONED {
        m.tap(0);
        m.wait_screen_within(Screen::Payment, Duration::from_secs(15))
            .await;
        ids.push(m.sim().latest().unwrap().id);
        m.send(Input::Cancel);
        m.wait_screen(Screen::Idle).await;
    }
    m.shutdown().await;

    wrong(&clock);
    let m = TestMachine::start_with_clock(&config, as_clock());
    // Paid while the machine was down (the backend knows; nothing wakes the machine).
    let paid = paid(&ids).clone();
    m.sim().pay_after_expiry(&paid).unwrap();
    tokio::time::sleep(run_for).await;
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    let rows = l
        .sales_since(i64::MIN, 1000)
        .unwrap()
        .into_iter()
        .map(|r| (r.state, r.invoice_id))
        .collect();
    (ids, paid, rows)
}

/// The paid invoice's sale is owed (a credit: nothing is poured on a screen nobody
/// looks at), every other one is still an abandoned invoice, none missing.
fn assert_found_and_none_lost(ids: &[InvoiceId], paid: &InvoiceId, rows: &[(SaleState, String)]) {
    assert_eq!(rows.len(), ids.len(), "every sale still in the ledger");
    for (state, invoice) in rows {
        if invoice == &paid.0 {
            assert_eq!(
                *state,
                SaleState::Owed,
                "the payment made while down is owed"
            );
        } else {
            assert_eq!(*state, SaleState::Cancelled, "{invoice}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn at_1970_the_oldest_of_more_unsettled_invoices_than_the_watch_cap_is_found_at_start() {
    // The oldest is the one a cap on the newest leaves out. Found by the start-up check
    // itself, before the periodic sweep first runs.
    let (ids, paid, rows) = restart_with_one_paid(
        |c| c.set_unix(0),
        |ids| &ids[0],
        late::SWEEP_EVERY - Duration::from_secs(10),
    )
    .await;
    assert_found_and_none_lost(&ids, &paid, &rows);
}

#[tokio::test(start_paused = true)]
async fn on_an_unsynchronised_clock_running_a_year_ahead_a_payment_made_while_down_is_found() {
    // "The last week" of a clock a year ahead holds none of the invoices: they must be
    // found all the same, by the start-up check or a sweep soon after.
    let (ids, paid, rows) = restart_with_one_paid(
        |c| {
            c.jump(365 * 24 * 3600);
            c.set_synced(false);
        },
        |ids| &ids[ids.len() / 2],
        3 * late::SWEEP_EVERY,
    )
    .await;
    assert_found_and_none_lost(&ids, &paid, &rows);
}

#[tokio::test(start_paused = true)]
async fn a_payment_made_just_before_eight_days_off_is_found_on_a_trusted_clock() {
    // The machine was off longer than the start-up look-back (a holiday, a broken power
    // supply): the week counts back from its newest sale, not from today, so the invoice
    // on screen when the power went, paid then, is still found.
    let (ids, paid, rows) = restart_with_one_paid(
        |c| c.jump(8 * 24 * 3600),
        |ids| ids.last().unwrap(),
        late::SWEEP_EVERY - Duration::from_secs(10),
    )
    .await;
    assert_found_and_none_lost(&ids, &paid, &rows);
}
