//! The simulated Lightning backend: the developer's stand-in for a real node, behind the same
//! [`PaymentBackend`] trait. It issues real, signed regtest BOLT11 invoices (`lnbcrt…`, signed
//! with a throwaway key made at start) that any decoder accepts, and it can be driven from the
//! simulator panel or a test: pay, expire, drop the wake-up connections, go down, or push a
//! wake-up that carries no payment (which must never pour).
//!
//! It keeps every invoice that can still be paid and the last [`KEEP_FINISHED`] paid or
//! expired ones, in memory and in its store file: enough for a restart to find a payment it
//! missed, without a simulator left running for days growing without end.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::CancelOutcome;
use super::{
    BackendError, HoldState, HoldSupport, Invoice, InvoiceId, InvoiceRequest, InvoiceState,
    PaymentBackend, PaymentHash, Preimage, WakeUps,
};
use crate::money::{Msat, Price};

/// Paid or expired invoices kept after newer ones (older ones are forgotten).
pub const KEEP_FINISHED: usize = 64;

mod hold;
mod withdraw;

/// Sats per whole fiat unit when no rate is configured (the config owns the default).
pub use crate::config::DEFAULT_FIAT_RATE_SAT;

/// An invoice as the simulator stores it on disk.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    id: String,
    bolt11: String,
    payment_hash: String,
    amount_msat: u64,
    expires_at_unix: u64,
    paid: bool,
    expired_early: bool,
    /// Withdrawn by lnvend (`cancel_invoice`): no payment is taken any more.
    #[serde(default)]
    withdrawn: bool,
    /// A hold invoice's state (`None`: an ordinary invoice).
    #[serde(default)]
    hold: Option<String>,
}

#[derive(Debug)]
struct SimInvoice {
    invoice: Invoice,
    expires: Instant,
    paid: bool,
    expired_early: bool,
    /// Withdrawn by lnvend (`cancel_invoice`), as a node deletes it: unpayable from now on.
    withdrawn: bool,
    /// Issue order, for forgetting the oldest first.
    seq: u64,
    /// A hold invoice's state (`None`: an ordinary invoice, `paid` says it all).
    hold: Option<HoldState>,
}

impl SimInvoice {
    fn finished(&self, now: Instant) -> bool {
        match self.hold {
            // A held payment is not finished until settled or cancelled.
            Some(HoldState::Accepted { .. }) => false,
            Some(HoldState::Open) | None => {
                self.paid || self.expired_early || self.withdrawn || now >= self.expires
            }
            Some(HoldState::Settled | HoldState::Canceled) => true,
        }
    }
}

#[derive(Default, Debug)]
struct Inner {
    invoices: HashMap<InvoiceId, SimInvoice>,
    latest: Option<InvoiceId>,
    down: bool,
    subscribers: HashMap<InvoiceId, Vec<mpsc::Sender<()>>>,
    created: u64,
    /// The last issue-order number handed out (loaded invoices included).
    seq: u64,
    /// How long `create_invoice` takes (a slow or hanging server).
    create_delay: Duration,
    /// Hold invoices switched on (off: as a node without the plugin, so `hold = "auto"`
    /// sells as before on the simulator unless a test or `hold = "always"` turns them on).
    holds: bool,
    /// Says it can hold but refuses every hold invoice (as a node whose plugin margin is
    /// longer than the QR's expiry does).
    refuse_holds: bool,
    /// Settles and cancels carried out.
    hold_calls: u64,
    /// Cannot withdraw invoices (as BTCPay, LNbits or NWC): a payment after Cancel is owed.
    keeps_cancelled: bool,
    /// Invoices withdrawn.
    withdrawn: u64,
    /// Withdrawals asked for (of any invoice, withdrawn or not).
    withdraw_asks: u64,
}

/// What a simulator control did, for the panel's status line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("no invoice is waiting for payment")]
    NoPendingInvoice,
    #[error("that invoice is not pending")]
    NotPending,
}

pub struct SimBackend {
    inner: Mutex<Inner>,
    key: SecretKey,
    /// Where the invoices are kept, so a restarted simulator finds them like a real server
    /// that kept running would.
    store: Option<std::path::PathBuf>,
    /// Sats per whole unit of a fiat currency, for fiat prices.
    fiat_rate_sat: u64,
    /// The simulated world's wall clock: the machine's own, so a test that jumps the
    /// machine's clock moves the simulated server's with it, as one host's clock would.
    clock: std::sync::Arc<dyn crate::clock::Clock>,
}

impl std::fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimBackend").finish_non_exhaustive()
    }
}

impl Default for SimBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl SimBackend {
    pub fn new() -> SimBackend {
        let key = loop {
            if let Ok(k) = SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
                break k;
            }
        };
        SimBackend {
            inner: Mutex::new(Inner::default()),
            key,
            store: None,
            fiat_rate_sat: DEFAULT_FIAT_RATE_SAT,
            clock: std::sync::Arc::new(crate::clock::SystemClock::new(false)),
        }
    }

    /// Reads the wall clock from `clock` (call before `with_store`).
    pub fn with_clock(mut self, clock: std::sync::Arc<dyn crate::clock::Clock>) -> SimBackend {
        self.clock = clock;
        self
    }

    /// Keeps the invoices in `path` (JSON), loading what an earlier run left there.
    pub fn with_store(mut self, path: std::path::PathBuf) -> SimBackend {
        if let Ok(text) = std::fs::read_to_string(&path) {
            match serde_json::from_str::<Vec<Stored>>(&text) {
                Ok(list) => {
                    let now_unix = self.clock.unix();
                    let mut inner = self.lock();
                    // The newest invoice is the one a customer may be looking at.
                    inner.latest = list
                        .iter()
                        .max_by_key(|st| st.expires_at_unix)
                        .map(|st| InvoiceId(st.id.clone()));
                    let mut list = list;
                    list.sort_by_key(|st| st.expires_at_unix);
                    for st in list {
                        let left = st.expires_at_unix.saturating_sub(now_unix);
                        let invoice = Invoice {
                            id: InvoiceId(st.id.clone()),
                            bolt11: st.bolt11,
                            payment_hash: st.payment_hash,
                            amount: Msat::from_msat(st.amount_msat),
                            expires_at_unix: st.expires_at_unix,
                        };
                        inner.seq += 1;
                        let seq = inner.seq;
                        inner.invoices.insert(
                            invoice.id.clone(),
                            SimInvoice {
                                invoice,
                                expires: Instant::now() + Duration::from_secs(left),
                                paid: st.paid,
                                expired_early: st.expired_early,
                                withdrawn: st.withdrawn,
                                seq,
                                hold: st.hold.as_deref().and_then(hold::parse),
                            },
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "ignoring the simulator's stored invoices")
                }
            }
        }
        self.store = Some(path);
        self
    }

    fn persist(&self, inner: &Inner) {
        let Some(path) = &self.store else {
            return;
        };
        let list: Vec<Stored> = inner
            .invoices
            .values()
            .map(|i| Stored {
                id: i.invoice.id.0.clone(),
                bolt11: i.invoice.bolt11.clone(),
                payment_hash: i.invoice.payment_hash.clone(),
                amount_msat: i.invoice.amount.as_msat(),
                expires_at_unix: i.invoice.expires_at_unix,
                paid: i.paid,
                expired_early: i.expired_early,
                withdrawn: i.withdrawn,
                hold: i.hold.map(|h| h.name().to_owned()),
            })
            .collect();
        let tmp = path.with_extension("json.tmp");
        let written = serde_json::to_vec(&list)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            tracing::warn!(file = %path.display(), error = %e, "cannot store the simulator's invoices");
        }
    }

    /// Converts fiat prices at `sat_per_unit` sats per whole unit (any currency).
    pub fn with_fiat_rate(mut self, sat_per_unit: u64) -> SimBackend {
        self.fiat_rate_sat = sat_per_unit;
        self
    }

    fn amount_of(&self, price: &Price) -> Result<Msat, BackendError> {
        match price {
            Price::Sats(m) => Ok(*m),
            Price::Fiat(f) => f
                .minor()
                .checked_mul(self.fiat_rate_sat)
                .and_then(|v| v.checked_mul(10))
                .map(Msat::from_msat)
                .ok_or_else(|| BackendError::Rejected("fiat amount too large".into())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere must not take the simulator down with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The invoice most recently issued, if any.
    pub fn latest(&self) -> Option<Invoice> {
        let inner = self.lock();
        let id = inner.latest.as_ref()?;
        inner.invoices.get(id).map(|i| i.invoice.clone())
    }

    /// How many invoices were issued.
    pub fn invoices_created(&self) -> u64 {
        self.lock().created
    }

    /// Pays an invoice as a wallet would, and wakes its watchers.
    pub fn pay(&self, id: &InvoiceId) -> Result<(), SimError> {
        self.settle(id, true)
    }

    /// Pays an invoice without waking anyone: only a poll can find it.
    pub fn pay_silently(&self, id: &InvoiceId) -> Result<(), SimError> {
        self.settle(id, false)
    }

    /// A payment that arrives after the invoice expired, as BTCPay reports a `PaidLate`
    /// invoice: paid, though nobody watches it any more. Wakes nobody.
    pub fn pay_after_expiry(&self, id: &InvoiceId) -> Result<(), SimError> {
        let mut inner = self.lock();
        let inv = inner.invoices.get_mut(id).ok_or(SimError::NotPending)?;
        if inv.paid || inv.withdrawn {
            return Err(SimError::NotPending);
        }
        inv.paid = true;
        self.persist(&inner);
        Ok(())
    }

    /// Makes every later `create_invoice` take this long (a slow or hung server).
    pub fn set_create_delay(&self, delay: Duration) {
        self.lock().create_delay = delay;
    }

    /// Wake-up streams still open (watchers listening).
    pub fn wake_up_streams(&self) -> usize {
        self.lock()
            .subscribers
            .values()
            .flatten()
            .filter(|tx| !tx.is_closed())
            .count()
    }

    /// Pays the invoice most recently issued (the one on screen).
    pub fn pay_latest(&self) -> Result<InvoiceId, SimError> {
        let id = self
            .lock()
            .latest
            .clone()
            .ok_or(SimError::NoPendingInvoice)?;
        self.pay(&id)?;
        Ok(id)
    }

    fn settle(&self, id: &InvoiceId, wake: bool) -> Result<(), SimError> {
        let mut inner = self.lock();
        let now = Instant::now();
        let inv = inner.invoices.get_mut(id).ok_or(SimError::NotPending)?;
        if inv.paid || inv.expired_early || inv.withdrawn || now >= inv.expires {
            return Err(SimError::NotPending);
        }
        match inv.hold {
            // A hold invoice's payment is held, not taken: ACCEPTED until settled.
            Some(HoldState::Open) => inv.hold = Some(HoldState::Accepted { htlc_expiry: None }),
            Some(HoldState::Accepted { .. } | HoldState::Settled | HoldState::Canceled) => {
                return Err(SimError::NotPending)
            }
            None => inv.paid = true,
        }
        self.persist(&inner);
        if wake {
            wake_all(&mut inner, id);
        }
        Ok(())
    }

    /// Makes the latest invoice expire now, and wakes its watchers.
    pub fn expire_latest(&self) -> Result<InvoiceId, SimError> {
        let mut inner = self.lock();
        let id = inner.latest.clone().ok_or(SimError::NoPendingInvoice)?;
        let inv = inner
            .invoices
            .get_mut(&id)
            .ok_or(SimError::NoPendingInvoice)?;
        if inv.paid || inv.expired_early {
            return Err(SimError::NotPending);
        }
        inv.expired_early = true;
        self.persist(&inner);
        wake_all(&mut inner, &id);
        Ok(id)
    }

    /// Sends a wake-up that carries no payment, like a spoofed websocket push.
    pub fn spoof_wakeup(&self, id: &InvoiceId) {
        wake_all(&mut self.lock(), id);
    }

    /// Closes every wake-up connection, as a network drop would.
    pub fn drop_connections(&self) {
        self.lock().subscribers.clear();
    }

    /// Switches hold invoices on, or off (a node without the plugin).
    pub fn set_holds(&self, on: bool) {
        self.lock().holds = on;
    }

    /// Refuses every hold invoice from now on (or not), while still saying it can hold.
    pub fn refuse_hold_invoices(&self, refuse: bool) {
        self.lock().refuse_holds = refuse;
    }

    /// While down, every call fails as if the server were unreachable.
    pub fn set_down(&self, down: bool) {
        let mut inner = self.lock();
        inner.down = down;
        if down {
            inner.subscribers.clear();
        }
    }

    pub fn is_down(&self) -> bool {
        self.lock().down
    }

    fn make_bolt11(
        &self,
        request: &InvoiceRequest,
        amount: Msat,
        hash: sha256::Hash,
    ) -> Result<(String, u64), BackendError> {
        let secp = Secp256k1::new();
        let now = self.clock.wall();
        let since_epoch = crate::clock::unix_of(now);
        if since_epoch == 0 {
            return Err(BackendError::BadReply("clock before 1970".into()));
        }
        let built = InvoiceBuilder::new(Currency::Regtest)
            .description(request.description.clone())
            .payment_hash(hash)
            .payment_secret(PaymentSecret(rand::random()))
            .duration_since_epoch(Duration::from_secs(since_epoch))
            .min_final_cltv_expiry_delta(144)
            .amount_milli_satoshis(amount.as_msat())
            .expiry_time(request.expiry)
            .build_signed(|m| secp.sign_ecdsa_recoverable(m, &self.key))
            .map_err(|e| BackendError::Rejected(format!("cannot build invoice: {e}")))?;
        Ok((built.to_string(), since_epoch + request.expiry.as_secs()))
    }
}

/// Forgets the oldest finished invoices beyond [`KEEP_FINISHED`], and the wake-up lists
/// whose watchers have all gone.
fn forget_old(inner: &mut Inner) {
    let now = Instant::now();
    let mut finished: Vec<(u64, InvoiceId)> = inner
        .invoices
        .iter()
        .filter(|(_, i)| i.finished(now))
        .map(|(id, i)| (i.seq, id.clone()))
        .collect();
    if finished.len() > KEEP_FINISHED {
        finished.sort_unstable_by_key(|(seq, _)| *seq);
        for (_, id) in &finished[..finished.len() - KEEP_FINISHED] {
            inner.invoices.remove(id);
        }
    }
    inner.subscribers.retain(|_, subs| {
        subs.retain(|tx| !tx.is_closed());
        !subs.is_empty()
    });
}

fn wake_all(inner: &mut Inner, id: &InvoiceId) {
    if let Some(subs) = inner.subscribers.get_mut(id) {
        // A full channel already holds a wake-up; a closed one is pruned.
        subs.retain(|tx| !matches!(tx.try_send(()), Err(mpsc::error::TrySendError::Closed(_))));
    }
}

#[async_trait]
impl PaymentBackend for SimBackend {
    fn name(&self) -> &'static str {
        "sim"
    }

    async fn check_health(&self) -> Result<(), BackendError> {
        if self.is_down() {
            return Err(BackendError::Unreachable(
                "the simulated backend is switched off".into(),
            ));
        }
        Ok(())
    }

    async fn create_invoice(&self, request: &InvoiceRequest) -> Result<Invoice, BackendError> {
        self.check_health().await?;
        let delay = self.lock().create_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let preimage: [u8; 32] = rand::random();
        let hash = sha256::Hash::hash(&preimage);
        self.issue(request, hash, None)
    }

    async fn invoice_state(&self, id: &InvoiceId) -> Result<InvoiceState, BackendError> {
        self.check_health().await?;
        let inner = self.lock();
        let inv = inner
            .invoices
            .get(id)
            .ok_or_else(|| BackendError::Rejected(format!("unknown invoice {id}")))?;
        Ok(if inv.paid {
            InvoiceState::Paid {
                received: inv.invoice.amount,
            }
        } else if inv.withdrawn {
            InvoiceState::Invalid
        } else if inv.expired_early || Instant::now() >= inv.expires {
            InvoiceState::Expired
        } else {
            InvoiceState::Pending
        })
    }

    async fn wake_ups(&self, id: &InvoiceId) -> Result<WakeUps, BackendError> {
        self.check_health().await?;
        let (tx, rx) = mpsc::channel(1);
        self.lock()
            .subscribers
            .entry(id.clone())
            .or_default()
            .push(tx);
        Ok(rx)
    }

    async fn hold_support(&self) -> Result<HoldSupport, BackendError> {
        self.check_health().await?;
        Ok(if self.lock().holds {
            HoldSupport::Yes
        } else {
            HoldSupport::No("the simulated backend's hold invoices are switched off".into())
        })
    }

    async fn create_hold_invoice(
        &self,
        request: &InvoiceRequest,
        preimage: &Preimage,
    ) -> Result<Invoice, BackendError> {
        self.check_health().await?;
        if self.lock().refuse_holds {
            return Err(BackendError::Rejected(
                "expiry: needs to be greater than '1800' (simulated)".into(),
            ));
        }
        self.create_hold(request, preimage)
    }

    async fn hold_state(&self, hash: &PaymentHash) -> Result<HoldState, BackendError> {
        self.check_health().await?;
        self.hold_state_of(hash)
    }

    async fn settle_hold(
        &self,
        hash: &PaymentHash,
        preimage: &Preimage,
    ) -> Result<(), BackendError> {
        self.check_health().await?;
        self.finish_hold(hash, Some(preimage))
    }

    async fn cancel_hold(&self, hash: &PaymentHash) -> Result<(), BackendError> {
        self.check_health().await?;
        self.finish_hold(hash, None)
    }

    async fn cancel_invoice(&self, id: &InvoiceId) -> Result<CancelOutcome, BackendError> {
        self.check_health().await?;
        self.withdraw(id)
    }
}

impl SimBackend {
    /// Records a new invoice for `hash` (a hold invoice when `hold` is given).
    fn issue(
        &self,
        request: &InvoiceRequest,
        hash: sha256::Hash,
        hold: Option<HoldState>,
    ) -> Result<Invoice, BackendError> {
        let amount = self.amount_of(&request.price)?;
        let (bolt11, expires_at_unix) = self.make_bolt11(request, amount, hash)?;
        let payment_hash = hash.to_string();
        let invoice = Invoice {
            id: InvoiceId(payment_hash.clone()),
            bolt11,
            payment_hash,
            amount,
            expires_at_unix,
        };
        let mut inner = self.lock();
        inner.created += 1;
        inner.seq += 1;
        let seq = inner.seq;
        inner.latest = Some(invoice.id.clone());
        inner.invoices.insert(
            invoice.id.clone(),
            SimInvoice {
                invoice: invoice.clone(),
                expires: Instant::now() + request.expiry,
                paid: false,
                expired_early: false,
                withdrawn: false,
                seq,
                hold,
            },
        );
        forget_old(&mut inner);
        self.persist(&inner);
        Ok(invoice)
    }
}

#[cfg(test)]
mod tests;
