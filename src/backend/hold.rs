//! Hold invoices (issue 25): what the backend boundary knows of them, apart from any one
//! backend. With a hold invoice the customer's payment is locked in (its HTLC is held by the
//! merchant's node) but not taken: lnvend pours, then settles; a pour that cannot happen is
//! cancelled and the money goes back to the customer's wallet by itself.
//!
//! lnvend makes the preimage ([`Preimage`], from the OS's random source) and keeps it as a
//! secret: it never prints (not in `Debug`, logs or errors), and only
//! [`Preimage::expose_hex`] reads it, where it goes on the wire or into the ledger (which must
//! hold it before the QR is shown: a settle after a crash needs it). The payment hash, which
//! is public, is the id every hold call takes ([`PaymentHash`]).
//!
//! [`resolve`] is the one way lnvend ends a hold: look it up, settle or cancel, and look
//! again, so a call whose answer was lost (the node restarted, the plugin settled by itself
//! near expiry) ends in the state the node really has, never in a guess.

use std::fmt;

use bitcoin::hashes::{sha256, Hash};

use super::{BackendError, PaymentBackend};

/// A hold invoice's preimage: the secret whose release (by settling) takes the payment.
#[derive(Clone, PartialEq, Eq)]
pub struct Preimage([u8; 32]);

impl Preimage {
    /// A fresh preimage from the operating system's random source.
    pub fn random() -> Preimage {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Preimage(bytes)
    }

    /// A preimage read back from the ledger (64 hex digits).
    pub fn from_hex(text: &str) -> Result<Preimage, BadHex> {
        let bytes = hex::decode(text.trim()).map_err(|_| BadHex("preimage"))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| BadHex("preimage"))?;
        Ok(Preimage(bytes))
    }

    /// The value in hex, for the call or the ledger row that needs it. Never log the result.
    pub fn expose_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// sha256 of the preimage: the payment hash the invoice must carry.
    pub fn payment_hash(&self) -> PaymentHash {
        PaymentHash(sha256::Hash::hash(&self.0).to_byte_array())
    }
}

impl fmt::Debug for Preimage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Preimage(<redacted>)")
    }
}

impl Drop for Preimage {
    fn drop(&mut self) {
        // Not a guarantee (copies may exist), but the value does not linger in freed memory.
        self.0 = [0; 32];
    }
}

/// A text that should have been 32 bytes in hex. Names the field, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not 32 bytes in hex")]
pub struct BadHex(&'static str);

impl BadHex {
    /// The error for a field named `what`.
    pub fn named(what: &'static str) -> BadHex {
        BadHex(what)
    }
}

/// A payment hash (public: it is in the BOLT11).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PaymentHash([u8; 32]);

impl PaymentHash {
    pub fn from_hex(text: &str) -> Result<PaymentHash, BadHex> {
        let bytes = hex::decode(text.trim()).map_err(|_| BadHex("payment hash"))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| BadHex("payment hash"))?;
        Ok(PaymentHash(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }
}

impl fmt::Display for PaymentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PaymentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PaymentHash({})", self.to_hex())
    }
}

/// A hold invoice's state as the backend reports it (the holdinvoice plugin's holdstates).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HoldState {
    /// Not (fully) paid yet.
    Open,
    /// Paid in full and held: the money is locked in but not taken. This, and only this (or
    /// `Settled`), authorises a pour. `htlc_expiry`: the block height at which the earliest
    /// held HTLC runs out, when the backend says.
    Accepted { htlc_expiry: Option<u32> },
    /// Taken: by lnvend's settle, or by the backend itself near the expiry.
    Settled,
    /// Returned (or never paid, and now refused).
    Canceled,
}

impl HoldState {
    pub fn name(&self) -> &'static str {
        match self {
            HoldState::Open => "open",
            HoldState::Accepted { .. } => "accepted",
            HoldState::Settled => "settled",
            HoldState::Canceled => "canceled",
        }
    }
}

/// Whether a backend can take hold invoices, and if not why (for check-config and logs).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum HoldSupport {
    Yes,
    No(String),
}

/// What lnvend wants done with a held payment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Resolution {
    /// The drink was poured (or is owed): take the payment.
    Settle,
    /// Nothing was poured: give the payment back.
    Cancel,
}

/// How a held payment ended, as the backend confirmed it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// The payment was taken: a paid sale (poured, or owed what was not poured).
    Settled,
    /// The payment went back to the customer (or was never made): nothing was charged.
    Canceled,
    /// The customer never paid (still OPEN) and lnvend asked to settle: nothing to do yet.
    NotPaid,
}

/// Ends a held payment the way `want` says, and returns how it really ended: looks it up,
/// settles or cancels, and looks again. A settle asked of a payment the backend already
/// returned ends `Canceled` (and a cancel of one it already took, `Settled`): the backend's
/// word decides what the ledger records. Errors (the node unreachable or busy) are for the
/// caller to retry; nothing here gives up on a held payment.
pub async fn resolve(
    backend: &dyn PaymentBackend,
    hash: &PaymentHash,
    preimage: &Preimage,
    want: Resolution,
) -> Result<Outcome, BackendError> {
    let before = backend.hold_state(hash).await?;
    match (before, want) {
        (HoldState::Settled, _) => return Ok(Outcome::Settled),
        (HoldState::Canceled, _) => return Ok(Outcome::Canceled),
        (HoldState::Open, Resolution::Settle) => return Ok(Outcome::NotPaid),
        (HoldState::Accepted { .. }, Resolution::Settle) => {
            settle_or_check(backend.settle_hold(hash, preimage).await)?
        }
        (HoldState::Open | HoldState::Accepted { .. }, Resolution::Cancel) => {
            settle_or_check(backend.cancel_hold(hash).await)?
        }
    }
    match backend.hold_state(hash).await? {
        HoldState::Settled => Ok(Outcome::Settled),
        HoldState::Canceled => Ok(Outcome::Canceled),
        other @ (HoldState::Open | HoldState::Accepted { .. }) => {
            Err(BackendError::BadReply(format!(
                "the hold invoice is still {} after lnvend's call",
                other.name()
            )))
        }
    }
}

/// A settle or cancel refused because the hold is already in another final state is not an
/// error: the look-up after it says which. Anything else is.
fn settle_or_check(result: Result<(), BackendError>) -> Result<(), BackendError> {
    match result {
        Ok(()) | Err(BackendError::Rejected(_)) => Ok(()),
        Err(
            e @ (BackendError::Unreachable(_)
            | BackendError::Unauthorized(_)
            | BackendError::BadReply(_)
            | BackendError::Config(_)),
        ) => Err(e),
    }
}

#[cfg(test)]
mod tests;
