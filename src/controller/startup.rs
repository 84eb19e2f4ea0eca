//! Start-up: what the controller does before the first input. The pump is already off
//! (`Pump::new`); here pours interrupted by a crash become owed credits, invoices still
//! payable are watched again, older unsettled ones and the backend's own record of
//! payments made while lnvend was down are checked, and the credits a customer may still
//! be waiting for are offered again (on a trusted clock only).

use super::*;

impl Controller {
    pub(super) fn start_up(&mut self) {
        self.check_clock();
        self.load_stock();
        let now = self.settings.clock.now();
        let window = self.settings.credit_window;
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
                // Invoices that are still payable are watched again; those that expired while
                // lnvend was down are checked, in case they were paid in time.
                let now_unix = self.settings.clock.unix();
                match ledger.unsettled_since(now_unix.saturating_sub(RECHECK_WINDOW.as_secs())) {
                    Ok(open) => {
                        let mut expired = Vec::new();
                        for o in open {
                            if o.invoice.expires_at_unix > now_unix {
                                tracing::info!(sale = %o.sale_id, invoice = %o.invoice.id, "still watching an unpaid invoice from before the restart");
                                self.spawn_watch(o.invoice);
                            } else {
                                expired.push(o.invoice.id);
                            }
                        }
                        if !expired.is_empty() {
                            self.tasks.spawn(late::check_invoices(
                                self.backend.clone(),
                                expired,
                                self.settings.request_timeout,
                                late::Attempts::AT_START,
                                self.tx.clone(),
                            ));
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "could not list unsettled invoices"),
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
        self.offer_credits_from_before();
        self.publish();
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
