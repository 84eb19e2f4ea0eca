//! The MDB vend through the Qibixx HAT: the payment is recorded (the controller does that
//! before any dispense), then the vend is approved and the machine's answer awaited.
//!
//! `c,VEND,SUCCESS` is a delivered sale. A failure line, the session ending, the HAT going
//! down, or no answer within the machine's vend time is a failed dispense: the controller
//! makes the sale an owed credit. The approval is sent once per dispense and never again
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
        if !self.link.send(HatCommand::Approve(amount)).await {
            return Dispensed::Failed(DispenseError::Mdb("the HAT link has ended".into()));
        }
        let deadline = Instant::now() + self.vend_timeout;
        loop {
            let ev = match timeout_at(deadline, events.recv()).await {
                Err(_) => {
                    return Dispensed::Failed(DispenseError::Mdb(format!(
                        "no vend result within {:?}",
                        self.vend_timeout
                    )))
                }
                Ok(Err(RecvError::Lagged(_))) => continue,
                Ok(Err(RecvError::Closed)) => {
                    return Dispensed::Failed(DispenseError::Mdb("the HAT link has ended".into()))
                }
                Ok(Ok(ev)) => ev,
            };
            match ev {
                HatEvent::Line(HatLine::VendSuccess) => return Dispensed::Delivered { units: 1 },
                HatEvent::Line(HatLine::VendFailed(why)) => {
                    return Dispensed::Failed(DispenseError::Mdb(format!(
                        "the machine reported a failed vend ({why})"
                    )))
                }
                HatEvent::Line(HatLine::Status(
                    s @ (HatStatus::Inactive | HatStatus::Disabled),
                )) => {
                    return Dispensed::Failed(DispenseError::Mdb(format!(
                        "the cashless device went {s:?} during the vend"
                    )))
                }
                HatEvent::Down(why) => {
                    return Dispensed::Failed(DispenseError::Mdb(format!(
                        "the HAT went down during the vend: {why}"
                    )))
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
