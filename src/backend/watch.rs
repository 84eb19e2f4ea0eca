//! Watching one invoice until it is paid, expires, or is no longer worth watching.
//!
//! The same loop serves every backend: wake-ups (websocket, long-poll) only trigger a
//! reconciling [`PaymentBackend::invoice_state`] call, which is the sole authority for a
//! payment. While the wake-up stream is down the loop polls every `poll_down` and reconnects
//! with backoff and jitter; on every (re)connect it reconciles at once, so a payment that
//! happened while the connection was down is found immediately.
//!
//! Wake-ups are unauthenticated (anyone can push to an LNbits socket), so a flood of them
//! must not become a flood of key-authenticated checks: the first wake-up after a quiet spell
//! is checked at once (a real payment pours without delay), later ones merge into one check
//! after a gap that doubles up to `poll_down` while they keep coming ([`Coalesce`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep_until, Instant};

use super::{HoldState, Invoice, InvoiceState, PaymentBackend, PaymentHash, WakeUps};

/// Timing of a watch.
#[derive(Clone, Copy, Debug)]
pub struct WatchTiming {
    /// Poll interval while the wake-up stream is down.
    pub poll_down: Duration,
    /// Safety poll interval while the wake-up stream is up.
    pub poll_up: Duration,
    /// First reconnect delay; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How long past the invoice's expiry to keep asking (clock skew, late settlement).
    pub grace: Duration,
    /// The least time between two checks prompted by wake-ups; doubles up to `poll_down`
    /// while wake-ups keep coming.
    pub wake_gap_min: Duration,
    /// Poll interval for a hold invoice, which has no wake-up: it is the customer's wait
    /// between paying and the pump, so it is short (a lookup on the node is cheap).
    pub poll_hold: Duration,
}

impl Default for WatchTiming {
    fn default() -> Self {
        WatchTiming {
            poll_down: Duration::from_secs(2),
            poll_up: Duration::from_secs(15),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            grace: Duration::from_secs(60),
            wake_gap_min: Duration::from_millis(250),
            poll_hold: Duration::from_millis(250),
        }
    }
}

/// How long a wake-up stream must stay up before its drop resets the reconnect backoff.
const STABLE: Duration = Duration::from_secs(10);

/// When to check after a wake-up.
#[derive(Debug)]
struct Coalesce {
    min: Duration,
    /// Also the quiet spell after which a wake-up is checked at once again.
    max: Duration,
    gap: Duration,
    last_wake: Option<Instant>,
    last_check: Option<Instant>,
    /// A wake-up arrived since the last check.
    woken: bool,
}

impl Coalesce {
    fn new(min: Duration, max: Duration) -> Coalesce {
        Coalesce {
            min,
            max: max.max(min),
            gap: min,
            last_wake: None,
            last_check: None,
            woken: false,
        }
    }

    /// A wake-up arrived at `now`: the time to check for it.
    fn on_wake(&mut self, now: Instant) -> Instant {
        let quiet = self.last_wake.is_none_or(|t| now - t >= self.max);
        self.last_wake = Some(now);
        self.woken = true;
        if quiet {
            self.gap = self.min;
            return now;
        }
        self.last_check.map_or(now, |c| (c + self.gap).max(now))
    }

    /// A check ran at `now` (prompted by a wake-up, a poll or a reconnect).
    fn checked(&mut self, now: Instant) {
        if std::mem::take(&mut self.woken) {
            self.gap = (self.gap * 2).min(self.max);
        }
        self.last_check = Some(now);
    }
}

/// How a watch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchOutcome {
    Paid,
    Expired,
    /// Gave up after the expiry and the grace period without a final answer.
    GaveUp,
}

/// Watches `invoice` until a final state and says which: `Paid` only when the backend's
/// authenticated state shows at least the invoice's amount received. `expires_at` is the
/// invoice's expiry on the tokio clock. What a payment means for the sale is the caller's
/// business: this layer knows nothing of the vend cycle.
pub async fn watch_invoice(
    backend: Arc<dyn PaymentBackend>,
    invoice: Invoice,
    expires_at: Instant,
    timing: WatchTiming,
) -> WatchOutcome {
    watch_payment(backend, invoice, None, expires_at, timing).await
}

/// [`watch_invoice`], or for a hold invoice (`hold`: its payment hash) the hold's state:
/// `Paid` when the backend says ACCEPTED (or SETTLED), `Expired` when CANCELED. A held
/// payment has no wake-up (Core Lightning's plugin sends none, and `waitinvoice` fires only
/// on settle), so it is polled every `poll_hold`.
pub async fn watch_payment(
    backend: Arc<dyn PaymentBackend>,
    invoice: Invoice,
    hold: Option<PaymentHash>,
    expires_at: Instant,
    timing: WatchTiming,
) -> WatchOutcome {
    let give_up = expires_at + timing.grace;
    let mut wake: Option<WakeUps> = None;
    let mut connected_at = Instant::now();
    let mut backoff = timing.backoff_min;
    // No wake-up stream is ever opened for a hold.
    let mut next_connect = if hold.is_some() {
        give_up
    } else {
        Instant::now()
    };
    let mut next_poll = Instant::now();
    let mut coalesce = Coalesce::new(timing.wake_gap_min, timing.poll_down);

    loop {
        let now = Instant::now();
        if hold.is_none() && wake.is_none() && now >= next_connect {
            match backend.wake_ups(&invoice.id).await {
                Ok(rx) => {
                    tracing::debug!(invoice = %invoice.id, "wake-up stream connected");
                    wake = Some(rx);
                    connected_at = Instant::now();
                }
                Err(e) => {
                    tracing::debug!(invoice = %invoice.id, error = %e, "wake-up stream unavailable");
                    next_connect = Instant::now() + jitter(backoff);
                    backoff = (backoff * 2).min(timing.backoff_max);
                }
            }
            // Reconcile on every (re)connect attempt: the payment may have happened while
            // the stream was down.
            next_poll = Instant::now();
        }

        if Instant::now() >= next_poll {
            let outcome = match &hold {
                Some(hash) => reconcile_hold(backend.as_ref(), &invoice, hash).await,
                None => reconcile(backend.as_ref(), &invoice).await,
            };
            if let Some(outcome) = outcome {
                return outcome;
            }
            coalesce.checked(Instant::now());
            let interval = if hold.is_some() {
                timing.poll_hold
            } else if wake.is_some() {
                timing.poll_up
            } else {
                timing.poll_down
            };
            next_poll = Instant::now() + interval;
        }

        if Instant::now() >= give_up {
            tracing::warn!(invoice = %invoice.id, "stopped watching an invoice with no final state");
            return WatchOutcome::GaveUp;
        }

        let mut wake_at = next_poll.min(give_up);
        if wake.is_none() {
            wake_at = wake_at.min(next_connect);
        }
        match wake.as_mut() {
            Some(rx) => {
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Some(()) => {
                            next_poll = next_poll.min(coalesce.on_wake(Instant::now()));
                        }
                        None => {
                            tracing::debug!(invoice = %invoice.id, "wake-up stream dropped");
                            wake = None;
                            // A stream that held a while earns a quick reconnect; one that
                            // drops at once (a server refusing, a long-poll failing) backs off.
                            if connected_at.elapsed() >= STABLE {
                                backoff = timing.backoff_min;
                            }
                            next_connect = Instant::now() + jitter(backoff);
                            backoff = (backoff * 2).min(timing.backoff_max);
                            next_poll = Instant::now();
                        }
                    },
                    _ = sleep_until(wake_at) => {}
                }
            }
            None => sleep_until(wake_at).await,
        }
    }
}

async fn reconcile(backend: &dyn PaymentBackend, invoice: &Invoice) -> Option<WatchOutcome> {
    match backend.invoice_state(&invoice.id).await {
        Ok(InvoiceState::Paid { received }) if received >= invoice.amount => {
            Some(WatchOutcome::Paid)
        }
        Ok(InvoiceState::Paid { received }) => {
            tracing::error!(
                invoice = %invoice.id, %received, expected = %invoice.amount,
                "backend reports an underpaid invoice; not pouring"
            );
            None
        }
        Ok(InvoiceState::Expired | InvoiceState::Invalid) => Some(WatchOutcome::Expired),
        Ok(InvoiceState::Pending) => None,
        Err(e) => {
            tracing::warn!(invoice = %invoice.id, error = %e, "could not check invoice state");
            None
        }
    }
}

async fn reconcile_hold(
    backend: &dyn PaymentBackend,
    invoice: &Invoice,
    hash: &PaymentHash,
) -> Option<WatchOutcome> {
    match backend.hold_state(hash).await {
        // ACCEPTED: the backend holds HTLCs for the whole amount (the plugin accepts no
        // less), authenticated like any `Paid`.
        Ok(HoldState::Accepted { .. } | HoldState::Settled) => Some(WatchOutcome::Paid),
        Ok(HoldState::Canceled) => Some(WatchOutcome::Expired),
        Ok(HoldState::Open) => None,
        Err(e) => {
            tracing::warn!(invoice = %invoice.id, error = %e, "could not check the hold invoice");
            None
        }
    }
}

/// Up to a quarter more, so machines behind one server do not reconnect in lockstep.
fn jitter(d: Duration) -> Duration {
    let extra = rand::random::<f64>() * 0.25;
    d + d.mul_f64(extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::sim::SimBackend;
    use crate::backend::InvoiceRequest;
    use crate::money::Msat;

    async fn setup() -> (Arc<SimBackend>, Invoice, Instant) {
        let sim = Arc::new(SimBackend::new());
        let inv = sim
            .create_invoice(&InvoiceRequest {
                sale_id: "s".into(),
                machine_id: "bar-7".into(),
                product: "Cola".into(),
                price: crate::money::Price::Sats(Msat::from_sat(10).unwrap()),
                description: "x".into(),
                expiry: Duration::from_secs(300),
            })
            .await
            .unwrap();
        (sim, inv, Instant::now() + Duration::from_secs(300))
    }

    #[tokio::test(start_paused = true)]
    async fn a_payment_with_a_wakeup_is_seen_at_once() {
        let (sim, inv, exp) = setup().await;
        let mut task = tokio::spawn(watch_invoice(
            sim.clone(),
            inv.clone(),
            exp,
            WatchTiming::default(),
        ));
        tokio::time::sleep(Duration::from_secs(7)).await;
        let t0 = Instant::now();
        sim.pay(&inv.id).unwrap();
        let ev = (&mut task).await.unwrap();
        assert_eq!(ev, WatchOutcome::Paid);
        assert_eq!(Instant::now(), t0, "no poll interval waited");
    }

    /// A held payment sends no wake-up: the pump waits for the next lookup, so that
    /// lookup comes within a blink, not after the 2 s poll of a stream that is down.
    #[tokio::test(start_paused = true)]
    async fn a_held_payment_is_seen_within_a_quarter_second() {
        let sim = Arc::new(SimBackend::new());
        sim.set_holds(true);
        let preimage = crate::backend::Preimage::random();
        let inv = sim
            .create_hold_invoice(
                &InvoiceRequest {
                    sale_id: "s".into(),
                    machine_id: "bar-7".into(),
                    product: "Cola".into(),
                    price: crate::money::Price::Sats(Msat::from_sat(10).unwrap()),
                    description: "x".into(),
                    expiry: Duration::from_secs(300),
                },
                &preimage,
            )
            .await
            .unwrap();
        let mut task = tokio::spawn(watch_payment(
            sim.clone(),
            inv.clone(),
            Some(preimage.payment_hash()),
            Instant::now() + Duration::from_secs(300),
            WatchTiming::default(),
        ));
        tokio::time::sleep(Duration::from_millis(7_010)).await;
        let t0 = Instant::now();
        sim.pay(&inv.id).unwrap();
        let ev = (&mut task).await.unwrap();
        assert_eq!(ev, WatchOutcome::Paid);
        assert!(
            Instant::now() - t0 <= Duration::from_millis(250),
            "a held payment waited {:?} for its lookup",
            Instant::now() - t0
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_spoofed_wakeup_does_not_confirm_anything() {
        let (sim, inv, exp) = setup().await;
        let task = tokio::spawn(watch_invoice(
            sim.clone(),
            inv.clone(),
            exp,
            WatchTiming::default(),
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        for _ in 0..5 {
            sim.spoof_wakeup(&inv.id);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!task.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_payment_while_the_stream_is_down_is_found_by_polling() {
        let (sim, inv, exp) = setup().await;
        let mut task = tokio::spawn(watch_invoice(
            sim.clone(),
            inv.clone(),
            exp,
            WatchTiming::default(),
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        sim.set_down(true);
        tokio::time::sleep(Duration::from_secs(5)).await;
        sim.set_down(false);
        let t0 = Instant::now();
        sim.pay_silently(&inv.id).unwrap();
        let ev = (&mut task).await.unwrap();
        assert_eq!(ev, WatchOutcome::Paid);
        assert!(
            Instant::now() - t0 <= Duration::from_millis(2500),
            "found within a poll"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_is_reported_and_the_watch_ends() {
        let (sim, inv, exp) = setup().await;
        let mut task = tokio::spawn(watch_invoice(
            sim.clone(),
            inv.clone(),
            exp,
            WatchTiming::default(),
        ));
        assert_eq!((&mut task).await.unwrap(), WatchOutcome::Expired);
        assert!(Instant::now() >= exp);
    }

    /// The simulator, counting the key-authenticated state checks a watch makes.
    struct Counting {
        sim: Arc<SimBackend>,
        checks: std::sync::atomic::AtomicUsize,
    }

    impl Counting {
        fn checks(&self) -> usize {
            self.checks.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl PaymentBackend for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        async fn check_health(&self) -> Result<(), crate::backend::BackendError> {
            self.sim.check_health().await
        }
        async fn create_invoice(
            &self,
            request: &InvoiceRequest,
        ) -> Result<Invoice, crate::backend::BackendError> {
            self.sim.create_invoice(request).await
        }
        async fn invoice_state(
            &self,
            id: &crate::backend::InvoiceId,
        ) -> Result<InvoiceState, crate::backend::BackendError> {
            self.checks
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.sim.invoice_state(id).await
        }
        async fn wake_ups(
            &self,
            id: &crate::backend::InvoiceId,
        ) -> Result<WakeUps, crate::backend::BackendError> {
            self.sim.wake_ups(id).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_pushes_is_not_a_flood_of_checks_and_a_real_one_after_is_seen_at_once() {
        let (sim, inv, exp) = setup().await;
        let counting = Arc::new(Counting {
            sim: sim.clone(),
            checks: Default::default(),
        });
        let mut task = tokio::spawn(watch_invoice(
            counting.clone(),
            inv.clone(),
            exp,
            WatchTiming::default(),
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = counting.checks();
        assert_eq!(before, 1, "one check on connect");

        // The first push after a quiet spell is checked at once (a real payment's latency).
        sim.spoof_wakeup(&inv.id);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            counting.checks(),
            before + 1,
            "the first push is checked at once"
        );

        // 200 spoofed pushes within 2 s.
        for _ in 0..200 {
            sim.spoof_wakeup(&inv.id);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let flood = counting.checks() - before;
        assert!(flood <= 8, "{flood} checks for 201 pushes");
        assert!(flood >= 2, "pushes still lead to a check: {flood}");
        assert!(!task.is_finished(), "nothing confirmed");

        // After the quiet spell a real payment is seen with no wait.
        let t0 = Instant::now();
        sim.pay(&inv.id).unwrap();
        assert_eq!((&mut task).await.unwrap(), WatchOutcome::Paid);
        assert_eq!(Instant::now(), t0, "no gap waited");
    }

    #[tokio::test(start_paused = true)]
    async fn a_payment_during_a_flood_is_still_found_within_the_poll_interval() {
        let (sim, inv, exp) = setup().await;
        let mut task = tokio::spawn(watch_invoice(
            sim.clone(),
            inv.clone(),
            exp,
            WatchTiming::default(),
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        for _ in 0..150 {
            sim.spoof_wakeup(&inv.id);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let t0 = Instant::now();
        sim.pay(&inv.id).unwrap();
        for _ in 0..50 {
            sim.spoof_wakeup(&inv.id);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let ev = tokio::time::timeout(Duration::from_secs(3), &mut task)
            .await
            .expect("found within the largest gap")
            .unwrap();
        assert_eq!(ev, WatchOutcome::Paid);
        assert!(Instant::now() - t0 <= Duration::from_millis(2100));
    }
}
