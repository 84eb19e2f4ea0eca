//! lnvend: the controller of a Lightning-paid drink vending machine.
//!
//! The library does all the work; `main.rs` only parses the command line. Start reading at
//! [`vend`] (the pure vend cycle), then [`controller`] (where it meets the pump, the ledger
//! and the payment backend), [`assemble`] (how the pieces are built from the configuration)
//! and [`app`] (how they run under systemd and are shut down).

pub mod app;
pub mod assemble;
pub mod backend;
pub mod bolt11;
pub mod cli;
pub mod clock;
pub mod config;
pub mod controller;
pub mod dispense;
pub mod display;
pub mod hwtest;
pub mod ledger;
pub mod logging;
pub mod mdb;
pub mod metrics;
pub mod money;
pub mod nfc;
pub mod nostr;
pub mod notify;
pub mod operator;
pub mod picture;
pub mod pump;
pub mod qr;
pub mod secret;
pub mod timefmt;
pub mod ui;
pub mod vend;
