use super::*;
use crate::mdb::cashless::{decode_from_vmc, Address, FromVmc, VmcId};
use crate::mdb::frame::Word;

fn profile() -> Profile {
    Profile {
        config: ReaderConfig {
            level: 1,
            country: 0x1978,
            scale: 1,
            decimals: 2,
            max_response_s: 5,
            options: 0,
        },
        id: ReaderId {
            manufacturer: *b"LNV",
            serial: *b"000000000007",
            model: *b"LNVEND      ",
            version: 0x0100,
        },
    }
}

fn run(s: State, i: Input) -> (State, Output) {
    step(s, &profile(), i)
}

fn cmd(s: State, c: Command) -> (State, Output) {
    run(s, Input::Vmc(c))
}

fn replied(r: Reply, events: Vec<Event>) -> Output {
    Output {
        response: Some(Response::Replies(vec![r])),
        events,
    }
}

fn acked(events: Vec<Event>) -> Output {
    Output {
        response: Some(Response::Ack),
        events,
    }
}

fn silent(events: Vec<Event>) -> Output {
    Output {
        response: None,
        events,
    }
}

fn vend(step: VendStep) -> State {
    State::Vend {
        funds: 500,
        price: 150,
        item: 7,
        step,
    }
}

fn idle(funds: u16) -> State {
    State::SessionIdle {
        funds,
        cancel_requested: false,
    }
}

fn all_states() -> Vec<State> {
    vec![
        State::Inactive { just_reset: true },
        State::Inactive { just_reset: false },
        State::Disabled,
        State::Enabled { begin: None },
        State::Enabled { begin: Some(500) },
        idle(500),
        State::SessionIdle {
            funds: 500,
            cancel_requested: true,
        },
        vend(VendStep::AwaitingPayment),
        vend(VendStep::ApprovalQueued),
        vend(VendStep::Approved),
        vend(VendStep::DenialQueued),
    ]
}

fn all_commands() -> Vec<Command> {
    vec![
        Command::Reset,
        Command::SetupConfig {
            vmc_level: 1,
            columns: 16,
            rows: 2,
            display_info: 1,
        },
        Command::SetupPrices { max: 500, min: 50 },
        Command::Poll,
        Command::VendRequest {
            price: 150,
            item: 7,
        },
        Command::VendCancel,
        Command::VendSuccess { item: 7 },
        Command::VendFailure,
        Command::SessionComplete,
        Command::CashSale {
            price: 100,
            item: 3,
        },
        Command::ReaderDisable,
        Command::ReaderEnable,
        Command::ReaderCancel,
        Command::ExpansionRequestId(VmcId {
            manufacturer: *b"VMC",
            serial: *b"000000000001",
            model: *b"MODEL       ",
            version: 0x0100,
        }),
    ]
}

/// The commands each state accepts; every other command must come back as CMD OUT OF
/// SEQUENCE with the state unchanged.
fn accepted(s: &State, c: &Command) -> bool {
    use Command as C;
    let common = matches!(c, C::Reset | C::Poll);
    common
        || match s {
            State::Inactive { .. } => {
                matches!(
                    c,
                    C::SetupConfig { .. } | C::SetupPrices { .. } | C::ExpansionRequestId(_)
                )
            }
            State::Disabled => matches!(
                c,
                C::SetupConfig { .. }
                    | C::SetupPrices { .. }
                    | C::ExpansionRequestId(_)
                    | C::ReaderEnable
                    | C::ReaderDisable
                    | C::CashSale { .. }
            ),
            State::Enabled { .. } => matches!(
                c,
                C::ReaderDisable
                    | C::ReaderEnable
                    | C::ReaderCancel
                    | C::ExpansionRequestId(_)
                    | C::CashSale { .. }
            ),
            State::SessionIdle { .. } => matches!(c, C::VendRequest { .. } | C::SessionComplete),
            State::Vend {
                step: VendStep::Approved,
                ..
            } => matches!(c, C::VendSuccess { .. } | C::VendFailure),
            State::Vend { .. } => matches!(c, C::VendCancel),
        }
}

#[test]
fn every_command_not_allowed_in_a_state_is_out_of_sequence() {
    let mut checked = 0;
    for s in all_states() {
        for c in all_commands() {
            if accepted(&s, &c) {
                continue;
            }
            let (next, o) = cmd(s.clone(), c.clone());
            assert_eq!(next, s, "{c:?} in {s:?} changed the state");
            assert_eq!(
                o,
                replied(Reply::OutOfSequence, vec![Event::OutOfSequence]),
                "{c:?} in {s:?}"
            );
            checked += 1;
        }
    }
    // 11 states x 14 commands, less the accepted pairs: the table really was walked.
    assert!(checked > 90, "only {checked} pairs checked");
}

#[test]
fn every_accepted_command_gets_something_other_than_out_of_sequence() {
    for s in all_states() {
        for c in all_commands() {
            if !accepted(&s, &c) {
                continue;
            }
            let (_, o) = cmd(s.clone(), c.clone());
            assert!(!o.events.contains(&Event::OutOfSequence), "{c:?} in {s:?}");
            assert!(o.response.is_some(), "{c:?} in {s:?} got no response");
        }
    }
}

#[test]
fn reset_from_every_state_goes_inactive_and_reports_unfinished_paid_vends() {
    for s in all_states() {
        let paid = match &s {
            State::Vend {
                step: VendStep::ApprovalQueued | VendStep::Approved,
                ..
            } => Some(150),
            _ => None,
        };
        let (next, o) = cmd(s.clone(), Command::Reset);
        assert_eq!(next, State::Inactive { just_reset: true }, "from {s:?}");
        assert_eq!(o, acked(vec![Event::Reset { paid }]), "from {s:?}");
    }
}

#[test]
fn inactive_reports_just_reset_once_then_acks() {
    let (s, o) = cmd(State::Inactive { just_reset: true }, Command::Poll);
    assert_eq!(o, replied(Reply::JustReset, vec![]));
    assert_eq!(s, State::Inactive { just_reset: false });
    let (s, o) = cmd(s, Command::Poll);
    assert_eq!(o, acked(vec![]));
    assert_eq!(s, State::Inactive { just_reset: false });
}

#[test]
fn setup_config_answers_reader_config_and_leaves_inactive() {
    let c = Command::SetupConfig {
        vmc_level: 1,
        columns: 16,
        rows: 2,
        display_info: 1,
    };
    let want = replied(
        Reply::ReaderConfig(profile().config),
        vec![Event::Configured {
            vmc_level: 1,
            columns: 16,
            rows: 2,
        }],
    );
    for from in [State::Inactive { just_reset: false }, State::Disabled] {
        let (s, o) = cmd(from, c.clone());
        assert_eq!(s, State::Disabled);
        assert_eq!(o, want);
    }
}

#[test]
fn prices_and_id_are_answered_before_enabling() {
    for from in [State::Inactive { just_reset: false }, State::Disabled] {
        let (s, o) = cmd(from.clone(), Command::SetupPrices { max: 500, min: 50 });
        assert_eq!(s, from);
        assert_eq!(o, acked(vec![Event::PriceRange { max: 500, min: 50 }]));
    }
    let id_cmd = all_commands().pop().unwrap();
    for from in [
        State::Inactive { just_reset: false },
        State::Disabled,
        State::Enabled { begin: Some(500) },
    ] {
        let (s, o) = cmd(from.clone(), id_cmd.clone());
        assert_eq!(s, from);
        assert_eq!(o, replied(Reply::PeripheralId(profile().id), vec![]));
    }
}

#[test]
fn reader_enable_and_disable() {
    let (s, o) = cmd(State::Disabled, Command::ReaderEnable);
    assert_eq!(
        (s, o),
        (State::Enabled { begin: None }, acked(vec![Event::Enabled]))
    );
    let (s, o) = cmd(State::Disabled, Command::ReaderDisable);
    assert_eq!((s, o), (State::Disabled, acked(vec![])));
    let (s, o) = cmd(State::Enabled { begin: Some(500) }, Command::ReaderEnable);
    assert_eq!((s, o), (State::Enabled { begin: Some(500) }, acked(vec![])));
    // Disabling drops a session the VMC has not been told of.
    let (s, o) = cmd(State::Enabled { begin: Some(500) }, Command::ReaderDisable);
    assert_eq!((s, o), (State::Disabled, acked(vec![Event::Disabled])));
}

#[test]
fn reader_cancel_in_enabled_answers_cancelled_and_drops_the_pending_session() {
    let (s, o) = cmd(State::Enabled { begin: Some(500) }, Command::ReaderCancel);
    assert_eq!(s, State::Enabled { begin: None });
    assert_eq!(o, replied(Reply::Cancelled, vec![]));
}

#[test]
fn cash_sale_is_acked_and_reported_outside_sessions() {
    let ev = vec![Event::CashSale {
        price: 100,
        item: 3,
    }];
    let c = Command::CashSale {
        price: 100,
        item: 3,
    };
    assert_eq!(
        cmd(State::Disabled, c.clone()),
        (State::Disabled, acked(ev.clone()))
    );
    assert_eq!(
        cmd(State::Enabled { begin: None }, c),
        (State::Enabled { begin: None }, acked(ev))
    );
}

#[test]
fn funds_available_opens_a_session_on_the_next_poll() {
    let (s, o) = run(State::Enabled { begin: None }, Input::FundsAvailable(500));
    assert_eq!(
        (s.clone(), o),
        (State::Enabled { begin: Some(500) }, silent(vec![]))
    );
    let (s, o) = cmd(s, Command::Poll);
    assert_eq!(s, idle(500));
    assert_eq!(
        o,
        replied(
            Reply::BeginSession { funds: 500 },
            vec![Event::SessionStarted { funds: 500 }]
        )
    );
    // Without a session pending, a poll in Enabled is a plain ACK.
    let (s, o) = cmd(State::Enabled { begin: None }, Command::Poll);
    assert_eq!((s, o), (State::Enabled { begin: None }, acked(vec![])));
}

#[test]
fn funds_are_ignored_outside_enabled_and_zero_funds_open_nothing() {
    for s in all_states() {
        if matches!(s, State::Enabled { .. }) {
            continue;
        }
        assert_eq!(
            run(s.clone(), Input::FundsAvailable(500)),
            (s, silent(vec![Event::InputIgnored]))
        );
    }
    let s = State::Enabled { begin: None };
    assert_eq!(
        run(s.clone(), Input::FundsAvailable(0)),
        (s, silent(vec![Event::InputIgnored]))
    );
}

#[test]
fn deny_withdraws_a_pending_session_or_requests_a_cancel() {
    let (s, o) = run(State::Enabled { begin: Some(500) }, Input::Deny);
    assert_eq!((s, o), (State::Enabled { begin: None }, silent(vec![])));
    let (s, o) = run(idle(500), Input::Deny);
    let asked = State::SessionIdle {
        funds: 500,
        cancel_requested: true,
    };
    assert_eq!((s.clone(), o), (asked.clone(), silent(vec![])));
    // Asking twice changes nothing.
    assert_eq!(
        run(asked.clone(), Input::Deny),
        (asked, silent(vec![Event::InputIgnored]))
    );
    // The request goes out on the next poll, and the VMC closes the session.
    let (s, o) = cmd(s, Command::Poll);
    assert_eq!(o, replied(Reply::SessionCancelRequest, vec![]));
    assert_eq!(s, idle(500));
    let (s, o) = cmd(s, Command::SessionComplete);
    assert_eq!(s, State::Enabled { begin: None });
    assert_eq!(o, replied(Reply::EndSession, vec![Event::SessionEnded]));
}

#[test]
fn deny_and_approve_are_ignored_where_they_do_not_apply() {
    for s in [
        State::Inactive { just_reset: false },
        State::Disabled,
        State::Enabled { begin: None },
        vend(VendStep::ApprovalQueued),
        vend(VendStep::Approved),
        vend(VendStep::DenialQueued),
    ] {
        assert_eq!(
            run(s.clone(), Input::Deny),
            (s, silent(vec![Event::InputIgnored]))
        );
    }
    for s in all_states() {
        if s == vend(VendStep::AwaitingPayment) {
            continue;
        }
        assert_eq!(
            run(s.clone(), Input::Approve),
            (s, silent(vec![Event::InputIgnored]))
        );
    }
}

#[test]
fn vend_request_within_funds_asks_lnvend_for_payment() {
    let (s, o) = cmd(
        idle(500),
        Command::VendRequest {
            price: 150,
            item: 7,
        },
    );
    assert_eq!(s, vend(VendStep::AwaitingPayment));
    assert_eq!(
        o,
        acked(vec![Event::VendRequested {
            price: 150,
            item: 7
        }])
    );
    // Polls while the customer pays are plain ACKs.
    assert_eq!(cmd(s.clone(), Command::Poll), (s, acked(vec![])));
}

#[test]
fn vend_request_over_funds_is_denied_without_asking_lnvend() {
    let (s, o) = cmd(
        idle(100),
        Command::VendRequest {
            price: 150,
            item: 7,
        },
    );
    assert_eq!(
        o,
        acked(vec![Event::VendDeniedOverFunds {
            price: 150,
            funds: 100
        }])
    );
    let (s, o) = cmd(s, Command::Poll);
    assert_eq!((s, o), (idle(100), replied(Reply::VendDenied, vec![])));
}

#[test]
fn approve_sends_vend_approved_for_exactly_the_price() {
    let (s, o) = run(vend(VendStep::AwaitingPayment), Input::Approve);
    assert_eq!(
        (s.clone(), o),
        (vend(VendStep::ApprovalQueued), silent(vec![]))
    );
    let (s, o) = cmd(s, Command::Poll);
    assert_eq!(s, vend(VendStep::Approved));
    assert_eq!(o, replied(Reply::VendApproved { amount: 150 }, vec![]));
    assert_eq!(cmd(s.clone(), Command::Poll), (s, acked(vec![])));
}

#[test]
fn deny_sends_vend_denied_and_returns_to_session_idle() {
    let (s, o) = run(vend(VendStep::AwaitingPayment), Input::Deny);
    assert_eq!(
        (s.clone(), o),
        (vend(VendStep::DenialQueued), silent(vec![]))
    );
    let (s, o) = cmd(s, Command::Poll);
    assert_eq!((s, o), (idle(500), replied(Reply::VendDenied, vec![])));
}

#[test]
fn vend_success_completes_the_sale_and_spends_the_funds() {
    let (s, o) = cmd(vend(VendStep::Approved), Command::VendSuccess { item: 7 });
    assert_eq!(s, idle(350));
    assert_eq!(
        o,
        acked(vec![Event::VendSucceeded {
            amount: 150,
            item: 7
        }])
    );
}

#[test]
fn vend_failure_after_approval_reports_the_paid_amount() {
    let (s, o) = cmd(vend(VendStep::Approved), Command::VendFailure);
    assert_eq!(
        (s, o),
        (idle(500), acked(vec![Event::VendFailed { amount: 150 }]))
    );
}

#[test]
fn vend_cancel_is_answered_with_vend_denied_and_reports_a_taken_payment() {
    let cases = [
        (VendStep::AwaitingPayment, None),
        (VendStep::ApprovalQueued, Some(150)),
        (VendStep::DenialQueued, None),
    ];
    for (st, paid) in cases {
        let (s, o) = cmd(vend(st), Command::VendCancel);
        assert_eq!(s, idle(500), "{st:?}");
        assert_eq!(
            o,
            replied(Reply::VendDenied, vec![Event::VendCancelled { paid }]),
            "{st:?}"
        );
    }
}

#[test]
fn session_complete_ends_the_session() {
    let (s, o) = cmd(idle(350), Command::SessionComplete);
    assert_eq!(s, State::Enabled { begin: None });
    assert_eq!(o, replied(Reply::EndSession, vec![Event::SessionEnded]));
}

/// A whole level 1 vend cycle on the wire, built from the spec's command and reply tables:
/// what the VMC sends to cashless #1, and the bytes this reader answers with.
#[test]
fn full_vend_cycle_on_the_wire() {
    let script: [(&str, &str); 12] = [
        ("10* 10", "00*"),                                        // RESET → ACK
        ("12* 12", "00 00*"),                                     // POLL → JUST RESET
        ("11* 00 01 10 02 01 25", "01 01 19 78 01 02 05 00 9B*"), // SETUP → CONFIG DATA
        ("11* 01 01 F4 00 32 39", "00*"),                         // MAX/MIN PRICES → ACK
        ("14* 01 15", "00*"),                                     // READER ENABLE → ACK
        ("12* 12", "00*"),                                        // POLL, nothing to say
        ("12* 12", "03 01 F4 F8*"),                               // (funds 500) → BEGIN SESSION
        ("13* 00 00 96 00 07 B0", "00*"),                         // VEND REQUEST 150, item 7
        ("12* 12", "05 00 96 9B*"),                               // (approved) → VEND APPROVED 150
        ("13* 02 00 07 1C", "00*"),                               // VEND SUCCESS item 7
        ("13* 04 17", "07 07*"),                                  // SESSION COMPLETE → END SESSION
        ("12* 12", "00*"),                                        // back to Enabled
    ];
    let parse = |s: &str| -> Vec<Word> {
        s.split_whitespace()
            .map(|t| Word {
                byte: u8::from_str_radix(t.trim_end_matches('*'), 16).unwrap(),
                mode: t.ends_with('*'),
            })
            .collect()
    };
    let show = |w: &[Word]| {
        w.iter()
            .map(|w| format!("{:02X}{}", w.byte, if w.mode { "*" } else { "" }))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = State::Inactive { just_reset: false };
    let mut events = Vec::new();
    for (i, (from_vmc, want)) in script.iter().enumerate() {
        // lnvend's decisions, at the points where a real dispenser would make them.
        if i == 6 {
            s = run(s, Input::FundsAvailable(500)).0;
        }
        if i == 8 {
            s = run(s, Input::Approve).0;
        }
        let c = match decode_from_vmc(&parse(from_vmc), Address::Cashless1) {
            Ok(FromVmc::Command(c)) => c,
            other => panic!("line {i}: {other:?}"),
        };
        let (next, o) = step(s, &profile(), Input::Vmc(c));
        s = next;
        let resp = o.response.expect("every command gets a response");
        assert_eq!(show(&resp.encode()), *want, "line {i}: {from_vmc}");
        events.extend(o.events);
    }
    assert!(events.contains(&Event::VendSucceeded {
        amount: 150,
        item: 7
    }));
    assert_eq!(s, State::Enabled { begin: None });
}
