//! The machine's two outside conditions for selling: the wall clock (nothing is sold while
//! it is not known to be right) and the payment backend's health, as the controller notes
//! them for the screen, the metrics and the state machine.

use super::*;

impl Controller {
    /// Looks at the wall clock: nothing is sold while it is not known to be right.
    pub(super) fn check_clock(&mut self) {
        let problem = self.settings.clock.sync_problem();
        let changed = self.clock_problem.as_ref() != Some(&problem);
        let known_before = self.clock_problem.is_some();
        // Recorded first: `apply` consults it whenever the machine is back on the idle screen.
        self.clock_problem = Some(problem.clone());
        match &problem {
            Some(reason) => {
                if changed {
                    tracing::warn!(%reason, "the wall clock is not trusted; selling nothing until it is");
                }
                self.apply(Event::ClockWrong {
                    reason: reason.clone(),
                });
            }
            None if changed && known_before => {
                tracing::info!("the wall clock is synchronised; selling");
                self.offer_credits_from_before();
                self.apply(Event::ClockRight);
                if let Some(reason) = self.backend_down.clone() {
                    self.apply(Event::BackendDown { reason });
                }
            }
            None => {}
        }
        self.publish();
    }

    pub(super) fn note_health(&mut self, e: &Event) {
        match e {
            Event::BackendUp => {
                self.observe_health(true);
                self.health = format!("{}: answering", self.backend.name());
                self.backend_down = None;
            }
            Event::BackendDown { reason } => {
                self.observe_health(false);
                self.health = format!("{}: {reason}", self.backend.name());
                self.backend_down = Some(reason.clone());
            }
            Event::ProductTapped { .. }
            | Event::CancelTapped
            | Event::FaultDismissed
            | Event::InvoiceCreated { .. }
            | Event::InvoiceFailed { .. }
            | Event::PaymentConfirmed { .. }
            | Event::InvoiceExpired { .. }
            | Event::Tick
            | Event::PourFinished { .. }
            | Event::PourFailed { .. }
            | Event::ServiceRestored
            | Event::LedgerDown { .. }
            | Event::CreditTapped { .. }
            | Event::ServiceEntered
            | Event::ServiceLeft
            | Event::ClockWrong { .. }
            | Event::ClockRight => {}
        }
    }
}
