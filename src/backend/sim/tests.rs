use super::*;
use std::str::FromStr;

fn request() -> InvoiceRequest {
    InvoiceRequest {
        sale_id: "s1".into(),
        machine_id: "bar-7".into(),
        product: "Cola".into(),
        price: Price::Sats(Msat::from_sat(2100).unwrap()),
        description: "Cola".into(),
        expiry: Duration::from_secs(600),
    }
}

#[tokio::test]
async fn issues_a_signed_regtest_invoice_that_decoders_accept() {
    let sim = SimBackend::new();
    let inv = sim.create_invoice(&request()).await.unwrap();
    assert!(inv.bolt11.starts_with("lnbcrt21u1"), "{}", inv.bolt11);
    let parsed = lightning_invoice::Bolt11Invoice::from_str(&inv.bolt11).unwrap();
    parsed.check_signature().unwrap();
    assert_eq!(parsed.currency(), Currency::Regtest);
    assert_eq!(parsed.amount_milli_satoshis(), Some(2_100_000));
    assert_eq!(parsed.expiry_time(), Duration::from_secs(600));
    assert_eq!(parsed.payment_hash().to_string(), inv.payment_hash);
}

#[tokio::test(start_paused = true)]
async fn pay_wakes_the_watcher_and_the_state_says_paid() {
    let sim = SimBackend::new();
    let inv = sim.create_invoice(&request()).await.unwrap();
    let mut wake = sim.wake_ups(&inv.id).await.unwrap();
    assert_eq!(
        sim.invoice_state(&inv.id).await.unwrap(),
        InvoiceState::Pending
    );
    sim.pay_latest().unwrap();
    assert_eq!(wake.recv().await, Some(()));
    assert_eq!(
        sim.invoice_state(&inv.id).await.unwrap(),
        InvoiceState::Paid {
            received: inv.amount
        }
    );
    assert_eq!(sim.pay(&inv.id), Err(SimError::NotPending), "paid twice");
}

#[tokio::test(start_paused = true)]
async fn invoices_expire_and_cannot_be_paid_after() {
    let sim = SimBackend::new();
    let inv = sim.create_invoice(&request()).await.unwrap();
    tokio::time::advance(Duration::from_secs(601)).await;
    assert_eq!(
        sim.invoice_state(&inv.id).await.unwrap(),
        InvoiceState::Expired
    );
    assert_eq!(sim.pay(&inv.id), Err(SimError::NotPending));
}

#[tokio::test]
async fn down_backend_refuses_everything_and_drops_connections() {
    let sim = SimBackend::new();
    let inv = sim.create_invoice(&request()).await.unwrap();
    let mut wake = sim.wake_ups(&inv.id).await.unwrap();
    sim.set_down(true);
    assert_eq!(wake.recv().await, None);
    assert!(matches!(
        sim.check_health().await,
        Err(BackendError::Unreachable(_))
    ));
    assert!(sim.create_invoice(&request()).await.is_err());
    assert!(sim.invoice_state(&inv.id).await.is_err());
    sim.set_down(false);
    assert!(sim.check_health().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_long_run_forgets_old_finished_invoices_but_never_a_payable_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("sim-backend.json");
    let sim = SimBackend::new().with_store(store.clone());
    let mut long = request();
    long.expiry = Duration::from_secs(3600);
    let payable = sim.create_invoice(&long).await.unwrap();
    let first_paid = sim.create_invoice(&request()).await.unwrap();
    sim.pay(&first_paid.id).unwrap();
    let mut last = None;
    for _ in 0..2 * KEEP_FINISHED {
        let inv = sim.create_invoice(&request()).await.unwrap();
        sim.pay(&inv.id).unwrap();
        last = Some(inv);
    }
    let last = last.unwrap();
    // The oldest paid invoice is gone; the newest paid and the payable one remain.
    assert!(sim.invoice_state(&first_paid.id).await.is_err());
    assert!(matches!(
        sim.invoice_state(&last.id).await.unwrap(),
        InvoiceState::Paid { .. }
    ));
    assert_eq!(
        sim.invoice_state(&payable.id).await.unwrap(),
        InvoiceState::Pending
    );
    assert_eq!(sim.invoices_created(), 2 * KEEP_FINISHED as u64 + 2);
    let stored: Vec<Stored> =
        serde_json::from_str(&std::fs::read_to_string(&store).unwrap()).unwrap();
    assert!(stored.len() <= KEEP_FINISHED + 2, "{} stored", stored.len());
    // A restarted simulator still finds the payable invoice and can take its payment.
    let again = SimBackend::new().with_store(store);
    again.pay(&payable.id).unwrap();
    assert!(matches!(
        again.invoice_state(&payable.id).await.unwrap(),
        InvoiceState::Paid { .. }
    ));
}
