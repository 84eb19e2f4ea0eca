//! Withdrawing an invoice the customer left (`delinvoice status=unpaid`): what the node's
//! answer means, and which labels lnvend withdrew, so that only those read as unpayable when
//! the node no longer has them. Apart from `cln.rs` (the backend), which calls it.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::{code, printable, CallError};
use crate::backend::{BackendError, CancelOutcome};

/// How many withdrawn labels are remembered: more than a watch's lifetime of Cancels. An
/// older one reads as an error again, as before the withdrawal, and is checked by the
/// sweep until its window ends.
const WITHDRAWN_KEPT: usize = 512;

/// The labels lnvend withdrew in this run, newest last, at most [`WITHDRAWN_KEPT`]: only
/// for these does a missing label mean "never paid, and now unpayable". Any other missing
/// label stays an error: a paid invoice that autoclean or the operator deleted must not read
/// as never paid.
#[derive(Debug, Default)]
pub(super) struct Withdrawn(Mutex<VecDeque<String>>);

impl Withdrawn {
    pub(super) fn remember(&self, label: &str) {
        let mut labels = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if labels.len() == WITHDRAWN_KEPT {
            labels.pop_front();
        }
        labels.push_back(label.to_owned());
    }

    pub(super) fn contains(&self, label: &str) -> bool {
        let labels = self.0.lock().unwrap_or_else(|e| e.into_inner());
        labels.iter().any(|l| l == label)
    }
}

/// What a refused `delinvoice` means for the invoice.
pub(super) fn cancel_outcome(e: CallError) -> Result<CancelOutcome, BackendError> {
    match e {
        // No such label: nothing can pay it (already deleted, or cleaned up after expiry).
        CallError::Rpc {
            code: code::NO_SUCH_INVOICE,
            ..
        } => Ok(CancelOutcome::Cancelled),
        // Paid (or expired) just before: left alone; the watch and the sweep decide.
        CallError::Rpc {
            code: code::STATUS_CHANGED,
            message,
        } => Err(BackendError::Rejected(format!(
            "delinvoice: the invoice is no longer unpaid: {}",
            printable(&message)
        ))),
        // Not offered to us: a node without the method, or a rune without it.
        e @ (CallError::Rpc {
            code: code::METHOD_NOT_FOUND | code::RUNE_REFUSED | code::RUNE_FAILED,
            ..
        }
        | CallError::Backend(BackendError::Unauthorized(_))) => Ok(CancelOutcome::Unsupported(
            e.into_backend("delinvoice").to_string(),
        )),
        other => Err(other.into_backend("delinvoice")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_withdrawn_labels_are_kept() {
        let w = Withdrawn::default();
        for i in 0..=WITHDRAWN_KEPT {
            w.remember(&format!("l{i}"));
        }
        assert!(!w.contains("l0"), "the oldest is forgotten");
        assert!(w.contains("l1"));
        assert!(w.contains(&format!("l{WITHDRAWN_KEPT}")));
    }
}
