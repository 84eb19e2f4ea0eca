//! Hold invoices over Nostr Wallet Connect (NIP-47 `make_hold_invoice`,
//! `settle_hold_invoice`, `cancel_hold_invoice`): the backend side of
//! [`crate::backend::hold`], for a wallet whose info event lists all three.
//!
//! Authority is as for plain invoices: only a checked `lookup_invoice` reply about the hash
//! says a payment is held (`state: "accepted"`, for at least what was asked) or taken
//! (`settled`). A `hold_invoice_accepted` notification is only a wake-up (the client routes
//! it like `payment_received`). `failed` or `expired` means the payment went back or never
//! came: cancelled.
//!
//! Whether this connection may hold ([`hold_support`]): the info event lists the methods,
//! then a `cancel_hold_invoice` for a hash no invoice has (all zeros: no one knows its
//! preimage) must be answered with anything but a refusal of the method. Some wallets
//! (LNbits' nwcprovider) list every method whatever the connection's permissions, and a
//! receive-only connection must keep selling the plain way, not stop at the first tap.

use super::{hash_of_bytes, judge_amount, NwcBackend};
use crate::backend::hold::{HoldState, HoldSupport, PaymentHash, Preimage};
use crate::backend::{BackendError, Invoice, InvoiceRequest};
use crate::money::Price;
use crate::nostr::nwc::{
    Direction, InvoiceState as NwcState, Method, NwcError, Reply, Request, Transaction,
    WalletErrorCode,
};

/// The `min_cltv_expiry_delta` asked of a hold invoice (blocks): about a day, far more than
/// a pour needs, so the held payment is never near its timeout while lnvend settles.
pub const HOLD_CLTV: u16 = 144;

const METHODS: [Method; 3] = [
    Method::MakeHoldInvoice,
    Method::SettleHoldInvoice,
    Method::CancelHoldInvoice,
];

pub(super) async fn hold_support(b: &NwcBackend) -> Result<HoldSupport, BackendError> {
    let info = b
        .pool
        .info(b.timeout)
        .await
        .map_err(|e| b.backend_error(e))?;
    if let Some(m) = METHODS.iter().find(|m| !info.supports(**m)) {
        return Ok(HoldSupport::No(format!(
            "the wallet's info event does not list {}",
            m.as_str()
        )));
    }
    let probe = Request::CancelHoldInvoice {
        payment_hash: crate::nostr::nwc::PaymentHash([0; 32]),
    };
    match b.pool.request(&probe, b.timeout).await {
        Ok(_) => Ok(HoldSupport::Yes),
        Err(super::RequestError::Nwc(NwcError::Wallet(w))) => Ok(match w.code {
            WalletErrorCode::Restricted
            | WalletErrorCode::Unauthorized
            | WalletErrorCode::NotImplemented
            | WalletErrorCode::UnsupportedEncryption => HoldSupport::No(format!(
                "the wallet refuses cancel_hold_invoice on this connection: {w}"
            )),
            // NOT_FOUND (no such invoice) or any other answer about the invoice: the
            // method is there and this connection may call it.
            _ => HoldSupport::Yes,
        }),
        Err(e) => Err(b.backend_error(e)),
    }
}

pub(super) async fn create(
    b: &NwcBackend,
    request: &InvoiceRequest,
    preimage: &Preimage,
) -> Result<Invoice, BackendError> {
    let amount = match &request.price {
        Price::Sats(m) => *m,
        Price::Fiat(_) => {
            return Err(BackendError::Rejected(
                "a wallet connection takes prices in sats".into(),
            ))
        }
    };
    let hash = hash_of_bytes(preimage.payment_hash().to_bytes());
    let ask = Request::MakeHoldInvoice {
        amount,
        description: Some(request.description.clone()),
        expiry_secs: Some(u32::try_from(request.expiry.as_secs()).unwrap_or(u32::MAX)),
        payment_hash: hash,
        min_cltv_expiry_delta: Some(HOLD_CLTV),
    };
    let tx = match b.call(&ask).await? {
        Reply::MakeHoldInvoice(tx) => tx,
        _ => {
            return Err(BackendError::BadReply(
                "not a make_hold_invoice reply".into(),
            ))
        }
    };
    if tx.payment_hash != hash {
        return Err(BackendError::BadReply(
            "the wallet made a hold invoice for another payment hash".into(),
        ));
    }
    b.remember(super::parse_made(&tx, amount)?)
}

pub(super) async fn state(b: &NwcBackend, hash: &PaymentHash) -> Result<HoldState, BackendError> {
    let h = hash_of_bytes(hash.to_bytes());
    let tx = match b.call(&Request::LookupInvoice { payment_hash: h }).await? {
        Reply::LookupInvoice(tx) => tx,
        _ => return Err(BackendError::BadReply("not a lookup_invoice reply".into())),
    };
    let issued = b.issued.get(&h.to_hex());
    judge_hold(&h, &tx, issued.as_ref().map(|i| i.amount))
}

/// What a checked `lookup_invoice` reply says of a hold invoice, given what was asked (if
/// known this run; else the signed BOLT11's amount).
pub(super) fn judge_hold(
    hash: &crate::nostr::nwc::PaymentHash,
    tx: &Transaction,
    asked: Option<crate::money::Msat>,
) -> Result<HoldState, BackendError> {
    if tx.payment_hash != *hash {
        return Err(BackendError::BadReply(
            "lookup_invoice answered about another payment hash".into(),
        ));
    }
    if tx.direction == Some(Direction::Outgoing) {
        return Err(BackendError::BadReply(
            "the wallet reports an outgoing payment for our hold invoice".into(),
        ));
    }
    let enough = judge_amount(hash, tx, asked);
    // Without `state`, `settled_at` counts only as a time a payment could have arrived
    // (see `judge`: LNbits' nwcprovider sends it for an expired invoice too).
    let bolt11 = tx
        .invoice
        .as_deref()
        .and_then(|b| crate::bolt11::decode(b).ok())
        .filter(|b| b.payment_hash.eq_ignore_ascii_case(&hash.to_hex()));
    let settled_at = super::settled_at_in_time(tx, super::expiry_unix(tx, bolt11.as_ref()));
    match (tx.state, settled_at) {
        (Some(NwcState::Accepted), _) if enough => Ok(HoldState::Accepted { htlc_expiry: None }),
        // Held for less than the price: not a pour; left open, so a cancel returns it.
        (Some(NwcState::Accepted), _) => Ok(HoldState::Open),
        (Some(NwcState::Settled), _) | (None, true) if enough => Ok(HoldState::Settled),
        (Some(NwcState::Settled), _) | (None, true) => Err(BackendError::BadReply(
            "the wallet reports the hold invoice taken for less than the price".into(),
        )),
        (Some(NwcState::Pending), _) | (None, false) => Ok(HoldState::Open),
        (Some(NwcState::Expired | NwcState::Failed), _) => Ok(HoldState::Canceled),
        (Some(NwcState::Unknown), _) => Err(BackendError::BadReply(
            "the wallet reports a hold invoice state lnvend does not know".into(),
        )),
    }
}

pub(super) async fn settle(
    b: &NwcBackend,
    hash: &PaymentHash,
    preimage: &Preimage,
) -> Result<(), BackendError> {
    if preimage.payment_hash() != *hash {
        return Err(BackendError::Rejected(
            "the preimage is not this hold invoice's".into(),
        ));
    }
    let preimage = crate::nostr::nwc::Preimage::new(
        hex::decode(preimage.expose_hex())
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or_else(|| BackendError::Rejected("a preimage is 32 bytes".into()))?,
    );
    match b.call(&Request::SettleHoldInvoice { preimage }).await? {
        Reply::SettleHoldInvoice => Ok(()),
        _ => Err(BackendError::BadReply(
            "not a settle_hold_invoice reply".into(),
        )),
    }
}

pub(super) async fn cancel(b: &NwcBackend, hash: &PaymentHash) -> Result<(), BackendError> {
    let payment_hash = hash_of_bytes(hash.to_bytes());
    match b.call(&Request::CancelHoldInvoice { payment_hash }).await? {
        Reply::CancelHoldInvoice => Ok(()),
        _ => Err(BackendError::BadReply(
            "not a cancel_hold_invoice reply".into(),
        )),
    }
}
