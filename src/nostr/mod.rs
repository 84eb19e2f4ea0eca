//! Nostr, as far as Nostr Wallet Connect needs it: NIP-01 events (canonical id, BIP-340
//! signatures, relay messages), NIP-44 v2 and NIP-04 encrypted payloads, and NIP-47's
//! connection URI, info event, requests, responses and notifications.
//!
//! This room is pure: no sockets, no clock, no imports from `backend` or `controller`. The
//! NWC payment backend (which owns the relay connection) builds on it. Everything here treats
//! relay input as hostile: sizes are bounded before parsing, an event exists only after its id
//! and signature verified, and every defect is an error value, never a panic. Keys, the
//! connection secret and preimages never appear in `Debug` output or errors.

pub mod event;
pub mod nip04;
pub mod nip44;
pub mod nwc;
pub mod relay;

pub use event::{Event, EventError, EventId, KeyError, Keys, PublicKey, UnsignedEvent};

use bitcoin::secp256k1::ecdh::shared_secret_point;

/// The unhashed x-coordinate of `ours.secret * theirs` (NIP-04 and NIP-44 both start here;
/// libsecp256k1's default ECDH would hash it, which Nostr does not).
fn shared_x(ours: &Keys, theirs: &PublicKey) -> [u8; 32] {
    let full = theirs.xonly().public_key(bitcoin::secp256k1::Parity::Even);
    let mut point = shared_secret_point(&full, &ours.secret_key());
    let mut x = [0u8; 32];
    x.copy_from_slice(&point[..32]);
    point.fill(0);
    x
}
