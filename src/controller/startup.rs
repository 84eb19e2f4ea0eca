//! Start-up: what the controller does before the first input. The pump is already off
//! (`Pump::new`); here pours interrupted by a crash become owed credits, invoices still
//! payable are watched again, older unsettled ones and the backend's own record of
//! payments made while lnvend was down are checked, and the credits a customer may still
//! be waiting for are offered again (on a trusted clock only). On a clock that is not
//! trusted yet (a Pi at 1970 before NTP answers) "the last week" counts back from the
//! newest sale in the ledger, and every unsettled invoice of it is checked with the
//! backend, none watched: only the backend can say which is still payable.

use super::*;
use crate::ledger::OpenInvoice;

impl Controller {
    pub(super) fn start_up(&mut self) {
        self.check_clock();
        self.load_stock();
        let now = self.settings.clock.now();
        let window = self.settings.credit_window;
        let anchor = self.recheck_anchor();
        match &mut self.ledger {
            Ok(ledger) => {
                match ledger.recover_interrupted() {
                    Ok(ids) => {
                        for id in ids {
                            tracing::warn!(sale = %id, "a pour was interrupted by a restart; the sale is now an owed credit");
                            // Owed from now, whatever the wall clock says.
                            if matches!(ledger.owed_sale(&id), Ok(Some(o)) if o.public) {
                                self.offers.offer(id, now + window);
                            }
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "could not recover interrupted pours"),
                }
                self.offers_pending = true;
                match ledger.newest_sale_id() {
                    Ok(Some(id)) => self.last_id = parse_sale_id(&id).unwrap_or((0, 0)),
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "could not read the newest sale id"),
                }
                match ledger.meta(PIN_FAILURES) {
                    Ok(Some(n)) => {
                        let failures = n.parse().unwrap_or(crate::operator::FREE_TRIES);
                        self.lockout = Lockout::restore(failures, now);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "could not read the PIN lockout; locking the pad");
                        self.lockout = Lockout::restore(crate::operator::FREE_TRIES, now);
                    }
                }
                match ledger.owed() {
                    Ok(owed) if !owed.is_empty() => {
                        tracing::warn!(
                            count = owed.len(),
                            "owed credits are waiting for the operator"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "could not list owed credits"),
                }
                // Unsettled invoices of the week before `anchor` (see `recheck_anchor`):
                // those still payable are watched again, the newest up to the watch cap;
                // every other one (expired while lnvend was down, beyond the cap, or on a
                // clock that cannot tell) is asked about once, in case it was paid.
                if let Some((anchor, trusted)) = anchor {
                    // Counted back from the newest sale when it is older than the clock: a
                    // machine that was off for longer than the window (a holiday, a broken
                    // power supply) still re-checks the invoices of its last week of sales,
                    // the one on screen when the power went among them.
                    let from = match ledger.newest_sale_unix() {
                        Ok(Some(newest)) => newest.min(anchor),
                        Ok(None) | Err(_) => anchor,
                    };
                    match ledger.unsettled_since(from.saturating_sub(RECHECK_WINDOW.as_secs())) {
                        Ok(open) => self.recheck_unsettled(open, anchor, trusted),
                        Err(e) => tracing::error!(error = %e, "could not list unsettled invoices"),
                    }
                }
                self.tasks.spawn(late::catch_up(
                    self.backend.clone(),
                    self.settings.request_timeout,
                    self.tx.clone(),
                ));
            }
            Err(reason) => {
                let reason = reason.clone();
                tracing::error!(%reason, "the sales ledger cannot be opened; out of service");
                self.apply(Event::LedgerDown { reason });
            }
        }
        // Held payments of before the start: their resolution starts here, before the first
        // input is handled, and goes on in the background (retried until the node answers)
        // while the machine sells.
        self.start_holds();
        self.offer_credits_from_before();
        self.publish();
    }

    /// The wall-clock time (UNIX seconds) the look-backs over unsettled invoices count from,
    /// and whether it is the trusted clock: the wall clock once it is trusted; before that
    /// the newest sale in the ledger, which needs no clock. A Pi booting at 1970 would
    /// otherwise make every invoice ever look payable (and list all of them), a clock running
    /// ahead none. `None` without a ledger or a sale.
    pub(super) fn recheck_anchor(&self) -> Option<(u64, bool)> {
        let clock = &self.settings.clock;
        if clock.sync_problem().is_none() {
            return Some((clock.unix(), true));
        }
        match self.ledger.as_ref().ok()?.newest_sale_unix() {
            Ok(newest) => newest.map(|t| (t, false)),
            Err(e) => {
                tracing::error!(error = %e, "could not read the newest sale's time");
                None
            }
        }
    }

    /// At start: watches the newest still-payable invoices (up to [`MAX_WATCHES`], and only
    /// on a trusted clock, which alone can say what is still payable) and has every other
    /// one checked once, so no invoice is lost to the watch cap or to a wrong clock.
    fn recheck_unsettled(&mut self, open: Vec<OpenInvoice>, now_unix: u64, trusted: bool) {
        let (mut payable, rest): (Vec<_>, Vec<_>) = open
            .into_iter()
            .partition(|o| trusted && o.invoice.expires_at_unix > now_unix);
        // Oldest first: those beyond the cap are the oldest, and are checked instead.
        let beyond_cap = payable.len().saturating_sub(MAX_WATCHES);
        // Checked newest first: the invoice on screen when the machine went down is the one
        // most likely paid, and a prankster's week can be tens of thousands of invoices,
        // asked at the check's pace (hours); the oldest wait.
        let check: Vec<InvoiceId> = rest
            .into_iter()
            .chain(payable.drain(..beyond_cap))
            .rev()
            .map(|o| o.invoice.id)
            .collect();
        for o in payable {
            tracing::info!(sale = %o.sale_id, invoice = %o.invoice.id, "still watching an unpaid invoice from before the restart");
            self.spawn_watch(o.invoice);
        }
        if !check.is_empty() {
            tracing::info!(
                count = check.len(),
                trusted,
                "checking the unsettled invoices of the last week with the backend"
            );
            self.tasks.spawn(late::check_invoices(
                self.backend.clone(),
                check,
                self.settings.request_timeout,
                late::Attempts::AT_START,
                self.tx.clone(),
            ));
        }
    }

    /// Credits the customer may still be waiting for from before the start: those that
    /// became owed within the window. Only on a trusted wall clock (a Pi booting with
    /// yesterday's time would make yesterday's credits look fresh), and a clock that went
    /// backwards makes a credit look younger than it is, so only ages between zero and the
    /// window count.
    pub(super) fn offer_credits_from_before(&mut self) {
        if !self.offers_pending || self.settings.clock.sync_problem().is_some() {
            return;
        }
        self.offers_pending = false;
        let Ok(ledger) = &self.ledger else {
            return;
        };
        let now = self.settings.clock.now();
        let window_us = self.settings.credit_window.as_micros() as i64;
        let wall_us = self.settings.clock.unix_us();
        match ledger.public_credits() {
            Ok(credits) => {
                for (o, credited_us) in credits {
                    let age = wall_us.checked_sub(credited_us).unwrap_or(-1);
                    if (0..window_us).contains(&age) && !self.offers.is_offered(&o.sale_id, now) {
                        let left = Duration::from_micros((window_us - age) as u64);
                        self.offers.offer(o.sale_id, now + left);
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "could not list owed credits"),
        }
    }
}

/// Reads `S<unix seconds>-<4 hex digits>` back.
pub(super) fn parse_sale_id(id: &str) -> Option<(u64, u16)> {
    let (secs, suffix) = id.strip_prefix('S')?.split_once('-')?;
    Some((secs.parse().ok()?, u16::from_str_radix(suffix, 16).ok()?))
}

/// The ledger key under which the operator PIN's failure count survives a restart.
pub(super) const PIN_FAILURES: &str = "pin_failures";
