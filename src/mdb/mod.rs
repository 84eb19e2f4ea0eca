//! The raw MDB (Multi-Drop Bus) layer for a cashless device: pure code, no IO.
//!
//! Commercial vending machines talk to their payment peripherals over MDB. lnvend can sit on
//! that bus as a cashless reader, so a machine's own controller (the VMC) sells drinks that
//! are paid over Lightning. This room owns the protocol only, so that any board that
//! exposes the bus (a 9-bit UART, or a HAT that forwards raw bytes) can reuse it:
//!
//! - [`frame`]: 9-bit words, the mode bit, the checksum, ACK/RET/NAK, the 36-byte bound;
//! - [`cashless`]: the level 1 cashless commands and replies as typed enums, encode and
//!   decode (decode never panics and rejects wrong lengths and checksums);
//! - [`device`]: the reader's state machine, a pure `step` driven by VMC commands and by
//!   lnvend's decisions (funds available, approve, deny).
//!
//! It imports nothing from the payment backends, the controller or the vend cycle: the
//! dispenser that drives it translates its [`device::Event`]s into lnvend's terms.
//! Boards that speak their own text protocol (the Qibixx MDB Pi HAT runs the state machine
//! in its firmware) need only the vocabulary here, not the bytes.

pub mod cashless;
pub mod device;
pub mod frame;
pub mod hat;
