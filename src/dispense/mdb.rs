//! The MDB vend through the Qibixx HAT: the payment is recorded (the controller does that
//! before any dispense), then the vend is approved and the machine's answer awaited.
//!
//! `c,VEND,SUCCESS` is a delivered sale; a failure (`c,ERR,VEND 3`, or the keypad's cancel
//! `c,ERR,VEND 1`) is the only proof that nothing was vended. Once the approval was sent, the session ending, the HAT going down, lines lost
//! or no answer within the machine's vend time is an *unknown* outcome: the machine may
//! have vended. Both are a failed dispense the controller makes an owed credit (an MDB
//! sale never has a hold invoice, so nothing is returned on a guess); the unknown one is
//! logged as such for the operator. The approval is sent once per dispense and never again
//! for the same sale (a credit is not re-approved without the machine asking).

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::time::{timeout_at, Instant};

use super::hat::{HatEvent, HatLink};
use super::{DispenseError, Dispensed};
use crate::mdb::hat::{HatCommand, HatLine, HatStatus, MachineAmount};

/// The machine's dispenser over the HAT.
#[derive(Clone, Debug)]
pub struct MdbDispenser {
    link: HatLink,
    /// How long the machine may take to vend after the approval.
    vend_timeout: Duration,
}

impl MdbDispenser {
    pub fn new(link: HatLink, vend_timeout: Duration) -> MdbDispenser {
        MdbDispenser { link, vend_timeout }
    }

    /// Approves the vend of `amount` the machine asked for, and waits for its result.
    pub async fn run(&self, amount: MachineAmount) -> Dispensed {
        // Subscribed before the approval, so the answer cannot slip past.
        let mut events = self.link.subscribe();
        // The deadline runs from before the approval is queued: a link slow to take it
        // eats into the vend time, and the approval is dropped unsent at the deadline
        // rather than approving a later request.
        let deadline = Instant::now() + self.vend_timeout;
        if !self
            .link
            .send_by(HatCommand::Approve(amount), deadline)
            .await
        {
            return Dispensed::Failed(DispenseError::Mdb(
                "the approval could not be queued (the HAT link has ended or is stuck)".into(),
            ));
        }
        loop {
            let ev = match timeout_at(deadline, events.recv()).await {
                Err(_) => return unknown(format!("no vend result within {:?}", self.vend_timeout)),
                // The result may be among the lines lost.
                Ok(Err(RecvError::Lagged(n))) => {
                    return unknown(format!("{n} lines from the HAT were lost"))
                }
                Ok(Err(RecvError::Closed)) => return unknown("the HAT link has ended".into()),
                Ok(Ok(ev)) => ev,
            };
            match ev {
                HatEvent::Line(HatLine::VendSuccess) => return Dispensed::Delivered { units: 1 },
                // Qibixx's documented failure: nothing was vended.
                HatEvent::Line(HatLine::VendFailed(why)) if why == "VEND 3" => {
                    return Dispensed::Failed(DispenseError::Mdb(format!(
                        "the machine reported a failed vend ({why})"
                    )))
                }
                // Any other vend error, or the keypad's cancel (which may have crossed the
                // approval on the line): the machine may still have vended.
                HatEvent::Line(HatLine::VendFailed(why)) => {
                    return unknown(format!("the HAT answered the vend with {why:?}"))
                }
                HatEvent::Line(HatLine::SessionCancelled) => {
                    return unknown("the session was cancelled around the approval".into())
                }
                // Another request after the approval: the approval may have met it.
                HatEvent::Line(HatLine::VendRequest { amount: asked, .. }) if asked != amount => {
                    return unknown(format!(
                        "the machine asked for {asked} after the approval of {amount}"
                    ))
                }
                HatEvent::Line(HatLine::Error(why)) => {
                    tracing::info!(%why, "the MDB HAT reported an error during the vend; waiting for its result");
                }
                HatEvent::Line(HatLine::Status(
                    s @ (HatStatus::Inactive | HatStatus::Disabled),
                )) => return unknown(format!("the cashless device went {s:?} during the vend")),
                HatEvent::Down(why) => {
                    return unknown(format!("the HAT went down during the vend: {why}"))
                }
                // Keep-alives, status lines of the session, a stray request: the result is
                // still to come.
                HatEvent::Line(
                    HatLine::Ack
                    | HatLine::Switched(_)
                    | HatLine::Status(HatStatus::Enabled | HatStatus::Idle)
                    | HatLine::VendRequest { .. },
                )
                | HatEvent::Up => {}
            }
        }
    }
}

/// The approval was sent and no result came: the machine may have vended. The sale is
/// owed all the same (nothing proves it was), and the operator is told to look.
fn unknown(why: String) -> Dispensed {
    tracing::warn!(
        %why,
        "the MDB vend's outcome is unknown: the machine may have vended; the sale is owed"
    );
    Dispensed::Failed(DispenseError::Mdb(format!("outcome unknown: {why}")))
}
