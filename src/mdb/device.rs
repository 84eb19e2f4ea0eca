//! The cashless device's state machine (MDB level 1), as a pure `step`.
//!
//! States follow the spec: Inactive → Disabled (SETUP) → Enabled (READER ENABLE) → Session
//! Idle (BEGIN SESSION delivered) → Vend (VEND REQUEST) → back to Session Idle → Enabled
//! (SESSION COMPLETE answered with END SESSION). A level 1 reader cannot vend without a
//! session, so lnvend opens one with [`Input::FundsAvailable`] (the most it will let the
//! customer spend), and answers each VEND REQUEST with [`Input::Approve`] once the payment
//! is confirmed, or [`Input::Deny`].
//!
//! Money safety lives here: an approval always equals the price the VMC asked for, a request
//! above the session's funds is denied without asking lnvend, and every way a paid vend can
//! end without VEND SUCCESS (failure, cancel after approval, RESET) is reported as an
//! [`Event`] carrying the paid amount, so lnvend can turn it into a credit or refund.
//!
//! Replies that the spec lets the reader send only when polled (JUST RESET, BEGIN SESSION,
//! VEND APPROVED/DENIED, SESSION CANCEL REQUEST) wait in the state until the next POLL.
//! Re-sending a reply on the VMC's RET, and the bus timeouts, are the bus layer's job: this
//! machine assumes each response it returns is delivered.

use super::cashless::{Command, ReaderConfig, ReaderId, Reply, Response};

/// Where the reader is. Every state carries what it still owes the VMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// After power-up or RESET; `just_reset` until a POLL has reported it.
    Inactive {
        just_reset: bool,
    },
    Disabled,
    /// Enabled; `begin` holds the funds of a session lnvend opened that the VMC has not
    /// yet polled for.
    Enabled {
        begin: Option<u16>,
    },
    SessionIdle {
        funds: u16,
        cancel_requested: bool,
    },
    Vend {
        funds: u16,
        price: u16,
        item: u16,
        step: VendStep,
    },
}

/// Progress of one vend inside the Vend state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendStep {
    /// lnvend is collecting the payment.
    AwaitingPayment,
    /// Paid; VEND APPROVED goes out on the next POLL.
    ApprovalQueued,
    /// VEND APPROVED delivered; the machine is dispensing.
    Approved,
    /// VEND DENIED goes out on the next POLL.
    DenialQueued,
}

/// What drives the machine: a decoded command from the VMC, or lnvend's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Vmc(Command),
    /// Open a session with this much spendable (scaled units).
    FundsAvailable(u16),
    /// The payment for the pending VEND REQUEST is confirmed.
    Approve,
    /// Refuse the pending vend request, or withdraw the session lnvend opened.
    Deny,
}

/// What lnvend hears about, besides the bytes on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The VMC reset the reader. `paid` is the amount of an approved vend that was never
    /// confirmed as dispensed: lnvend must credit or refund it.
    Reset {
        paid: Option<u16>,
    },
    Configured {
        vmc_level: u8,
        columns: u8,
        rows: u8,
    },
    PriceRange {
        max: u16,
        min: u16,
    },
    Enabled,
    Disabled,
    SessionStarted {
        funds: u16,
    },
    /// The customer chose `item` at `price`: collect the payment.
    VendRequested {
        price: u16,
        item: u16,
    },
    /// Dispensed: the sale is complete.
    VendSucceeded {
        amount: u16,
        item: u16,
    },
    /// The machine failed to dispense an approved (paid) vend: credit or refund `amount`.
    VendFailed {
        amount: u16,
    },
    /// The VMC cancelled the request; `paid` is set if the payment had already been taken.
    VendCancelled {
        paid: Option<u16>,
    },
    /// The request exceeded the session's funds and was denied here.
    VendDeniedOverFunds {
        price: u16,
        funds: u16,
    },
    SessionEnded,
    CashSale {
        price: u16,
        item: u16,
    },
    /// The VMC sent a command the current state does not allow; CMD OUT OF SEQUENCE went back.
    OutOfSequence,
    /// An lnvend input that does not apply in the current state; nothing changed.
    InputIgnored,
}

/// The reader's fixed description of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub config: ReaderConfig,
    pub id: ReaderId,
}

/// One step's effects: the bus response (none for lnvend inputs) and the events.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    pub response: Option<Response>,
    pub events: Vec<Event>,
}

fn reply(r: Reply) -> Option<Response> {
    Some(Response::Replies(vec![r]))
}

fn out(response: Option<Response>, events: Vec<Event>) -> Output {
    Output { response, events }
}

fn ack(events: Vec<Event>) -> Output {
    out(Some(Response::Ack), events)
}

fn out_of_sequence() -> Output {
    out(reply(Reply::OutOfSequence), vec![Event::OutOfSequence])
}

/// The amount already taken for a vend that has not been confirmed dispensed.
fn paid_in(state: &State) -> Option<u16> {
    match state {
        State::Vend {
            price,
            step: VendStep::ApprovalQueued | VendStep::Approved,
            ..
        } => Some(*price),
        State::Vend {
            step: VendStep::AwaitingPayment | VendStep::DenialQueued,
            ..
        }
        | State::Inactive { .. }
        | State::Disabled
        | State::Enabled { .. }
        | State::SessionIdle { .. } => None,
    }
}

/// Advances the reader by one input.
pub fn step(state: State, profile: &Profile, input: Input) -> (State, Output) {
    match input {
        Input::Vmc(cmd) => on_command(state, profile, cmd),
        Input::FundsAvailable(funds) => match state {
            State::Enabled { .. } if funds > 0 => {
                (State::Enabled { begin: Some(funds) }, out(None, vec![]))
            }
            State::Enabled { .. }
            | State::Inactive { .. }
            | State::Disabled
            | State::SessionIdle { .. }
            | State::Vend { .. } => (state, out(None, vec![Event::InputIgnored])),
        },
        Input::Approve => match state {
            State::Vend {
                funds,
                price,
                item,
                step: VendStep::AwaitingPayment,
            } => (
                State::Vend {
                    funds,
                    price,
                    item,
                    step: VendStep::ApprovalQueued,
                },
                out(None, vec![]),
            ),
            State::Vend { .. }
            | State::Inactive { .. }
            | State::Disabled
            | State::Enabled { .. }
            | State::SessionIdle { .. } => (state, out(None, vec![Event::InputIgnored])),
        },
        Input::Deny => match state {
            State::Vend {
                funds,
                price,
                item,
                step: VendStep::AwaitingPayment,
            } => (
                State::Vend {
                    funds,
                    price,
                    item,
                    step: VendStep::DenialQueued,
                },
                out(None, vec![]),
            ),
            State::Enabled { begin: Some(_) } => {
                (State::Enabled { begin: None }, out(None, vec![]))
            }
            State::SessionIdle {
                funds,
                cancel_requested: false,
            } => (
                State::SessionIdle {
                    funds,
                    cancel_requested: true,
                },
                out(None, vec![]),
            ),
            State::Vend { .. }
            | State::SessionIdle { .. }
            | State::Enabled { begin: None }
            | State::Inactive { .. }
            | State::Disabled => (state, out(None, vec![Event::InputIgnored])),
        },
    }
}

fn on_command(state: State, profile: &Profile, cmd: Command) -> (State, Output) {
    // RESET is valid everywhere and forgets everything, reporting an unfinished paid vend.
    if let Command::Reset = cmd {
        let paid = paid_in(&state);
        return (
            State::Inactive { just_reset: true },
            ack(vec![Event::Reset { paid }]),
        );
    }
    match state {
        State::Inactive { just_reset } => inactive(just_reset, profile, cmd),
        State::Disabled => disabled(profile, cmd),
        State::Enabled { begin } => enabled(begin, profile, cmd),
        State::SessionIdle {
            funds,
            cancel_requested,
        } => session_idle(funds, cancel_requested, cmd),
        State::Vend {
            funds,
            price,
            item,
            step,
        } => vend(funds, price, item, step, cmd),
    }
}

/// SETUP CONFIG DATA: answered with READER CONFIG DATA (Inactive and Disabled).
fn config_reply(profile: &Profile, vmc_level: u8, columns: u8, rows: u8) -> Output {
    out(
        reply(Reply::ReaderConfig(profile.config)),
        vec![Event::Configured {
            vmc_level,
            columns,
            rows,
        }],
    )
}

/// EXPANSION REQUEST ID: answered with PERIPHERAL ID (Inactive, Disabled, Enabled).
fn id_reply(profile: &Profile) -> Output {
    out(reply(Reply::PeripheralId(profile.id.clone())), vec![])
}

fn inactive(just_reset: bool, profile: &Profile, cmd: Command) -> (State, Output) {
    let stay = State::Inactive { just_reset };
    match cmd {
        Command::Poll if just_reset => (
            State::Inactive { just_reset: false },
            out(reply(Reply::JustReset), vec![]),
        ),
        Command::Poll => (stay, ack(vec![])),
        // The reader leaves Inactive once the VMC has told it its configuration.
        Command::SetupConfig {
            vmc_level,
            columns,
            rows,
            ..
        } => (
            State::Disabled,
            config_reply(profile, vmc_level, columns, rows),
        ),
        Command::SetupPrices { max, min } => (stay, ack(vec![Event::PriceRange { max, min }])),
        Command::ExpansionRequestId(_) => (stay, id_reply(profile)),
        Command::Reset
        | Command::VendRequest { .. }
        | Command::VendCancel
        | Command::VendSuccess { .. }
        | Command::VendFailure
        | Command::SessionComplete
        | Command::CashSale { .. }
        | Command::ReaderDisable
        | Command::ReaderEnable
        | Command::ReaderCancel => (stay, out_of_sequence()),
    }
}

fn disabled(profile: &Profile, cmd: Command) -> (State, Output) {
    match cmd {
        Command::Poll => (State::Disabled, ack(vec![])),
        Command::SetupConfig {
            vmc_level,
            columns,
            rows,
            ..
        } => (
            State::Disabled,
            config_reply(profile, vmc_level, columns, rows),
        ),
        Command::SetupPrices { max, min } => {
            (State::Disabled, ack(vec![Event::PriceRange { max, min }]))
        }
        Command::ExpansionRequestId(_) => (State::Disabled, id_reply(profile)),
        Command::ReaderEnable => (State::Enabled { begin: None }, ack(vec![Event::Enabled])),
        Command::ReaderDisable => (State::Disabled, ack(vec![])),
        Command::CashSale { price, item } => {
            (State::Disabled, ack(vec![Event::CashSale { price, item }]))
        }
        Command::Reset
        | Command::ReaderCancel
        | Command::VendRequest { .. }
        | Command::VendCancel
        | Command::VendSuccess { .. }
        | Command::VendFailure
        | Command::SessionComplete => (State::Disabled, out_of_sequence()),
    }
}

fn enabled(begin: Option<u16>, profile: &Profile, cmd: Command) -> (State, Output) {
    let stay = State::Enabled { begin };
    match cmd {
        Command::Poll => match begin {
            Some(funds) => (
                State::SessionIdle {
                    funds,
                    cancel_requested: false,
                },
                out(
                    reply(Reply::BeginSession { funds }),
                    vec![Event::SessionStarted { funds }],
                ),
            ),
            None => (stay, ack(vec![])),
        },
        // A session lnvend opened but the VMC never heard of is simply dropped.
        Command::ReaderDisable => (State::Disabled, ack(vec![Event::Disabled])),
        Command::ReaderEnable => (stay, ack(vec![])),
        Command::ReaderCancel => (
            State::Enabled { begin: None },
            out(reply(Reply::Cancelled), vec![]),
        ),
        Command::ExpansionRequestId(_) => (stay, id_reply(profile)),
        Command::CashSale { price, item } => (stay, ack(vec![Event::CashSale { price, item }])),
        Command::Reset
        | Command::SetupConfig { .. }
        | Command::SetupPrices { .. }
        | Command::VendRequest { .. }
        | Command::VendCancel
        | Command::VendSuccess { .. }
        | Command::VendFailure
        | Command::SessionComplete => (stay, out_of_sequence()),
    }
}

fn session_idle(funds: u16, cancel_requested: bool, cmd: Command) -> (State, Output) {
    let stay = State::SessionIdle {
        funds,
        cancel_requested,
    };
    match cmd {
        Command::Poll if cancel_requested => (
            State::SessionIdle {
                funds,
                cancel_requested: false,
            },
            out(reply(Reply::SessionCancelRequest), vec![]),
        ),
        Command::Poll => (stay, ack(vec![])),
        Command::VendRequest { price, item } if price > funds => (
            State::Vend {
                funds,
                price,
                item,
                step: VendStep::DenialQueued,
            },
            ack(vec![Event::VendDeniedOverFunds { price, funds }]),
        ),
        Command::VendRequest { price, item } => (
            State::Vend {
                funds,
                price,
                item,
                step: VendStep::AwaitingPayment,
            },
            ack(vec![Event::VendRequested { price, item }]),
        ),
        Command::SessionComplete => (
            State::Enabled { begin: None },
            out(reply(Reply::EndSession), vec![Event::SessionEnded]),
        ),
        Command::Reset
        | Command::SetupConfig { .. }
        | Command::SetupPrices { .. }
        | Command::VendCancel
        | Command::VendSuccess { .. }
        | Command::VendFailure
        | Command::CashSale { .. }
        | Command::ReaderDisable
        | Command::ReaderEnable
        | Command::ReaderCancel
        | Command::ExpansionRequestId(_) => (stay, out_of_sequence()),
    }
}

fn vend(funds: u16, price: u16, item: u16, step: VendStep, cmd: Command) -> (State, Output) {
    let stay = State::Vend {
        funds,
        price,
        item,
        step,
    };
    let idle = |funds| State::SessionIdle {
        funds,
        cancel_requested: false,
    };
    match (step, cmd) {
        (VendStep::AwaitingPayment | VendStep::Approved, Command::Poll) => (stay, ack(vec![])),
        (VendStep::ApprovalQueued, Command::Poll) => (
            State::Vend {
                funds,
                price,
                item,
                step: VendStep::Approved,
            },
            out(reply(Reply::VendApproved { amount: price }), vec![]),
        ),
        (VendStep::DenialQueued, Command::Poll) => {
            (idle(funds), out(reply(Reply::VendDenied), vec![]))
        }
        // The session's funds shrink by what was spent; price <= funds was checked on entry.
        (VendStep::Approved, Command::VendSuccess { item }) => (
            idle(funds.saturating_sub(price)),
            ack(vec![Event::VendSucceeded {
                amount: price,
                item,
            }]),
        ),
        (VendStep::Approved, Command::VendFailure) => {
            (idle(funds), ack(vec![Event::VendFailed { amount: price }]))
        }
        // The VMC withdrew the request before the approval reached it: VEND DENIED now.
        (
            VendStep::AwaitingPayment | VendStep::ApprovalQueued | VendStep::DenialQueued,
            Command::VendCancel,
        ) => {
            let paid = match step {
                VendStep::ApprovalQueued => Some(price),
                VendStep::AwaitingPayment | VendStep::DenialQueued | VendStep::Approved => None,
            };
            (
                idle(funds),
                out(
                    reply(Reply::VendDenied),
                    vec![Event::VendCancelled { paid }],
                ),
            )
        }
        (
            VendStep::AwaitingPayment
            | VendStep::ApprovalQueued
            | VendStep::Approved
            | VendStep::DenialQueued,
            Command::Reset
            | Command::SetupConfig { .. }
            | Command::SetupPrices { .. }
            | Command::VendRequest { .. }
            | Command::SessionComplete
            | Command::CashSale { .. }
            | Command::ReaderDisable
            | Command::ReaderEnable
            | Command::ReaderCancel
            | Command::ExpansionRequestId(_),
        )
        | (VendStep::Approved, Command::VendCancel)
        | (
            VendStep::AwaitingPayment | VendStep::ApprovalQueued | VendStep::DenialQueued,
            Command::VendSuccess { .. } | Command::VendFailure,
        ) => (stay, out_of_sequence()),
    }
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;
