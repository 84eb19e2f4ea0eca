//! The HAT's lines as a real session shows them (public logs of a Qibixx HAT), and the
//! malformed and hostile lines that must never become a vend.

use super::*;

fn amount(s: &str) -> MachineAmount {
    MachineAmount::parse(s).unwrap()
}

#[test]
fn a_logged_session_parses_line_by_line() {
    // Enable, a session, a selection of item 17 at 15.19, approval, success.
    let session = [
        ("r,ACK", Some(HatLine::Ack)),
        ("c,1", Some(HatLine::Switched(true))),
        (
            "c,STATUS,INACTIVE",
            Some(HatLine::Status(HatStatus::Inactive)),
        ),
        (
            "c,STATUS,DISABLED",
            Some(HatLine::Status(HatStatus::Disabled)),
        ),
        (
            "c,STATUS,ENABLED",
            Some(HatLine::Status(HatStatus::Enabled)),
        ),
        ("c,STATUS,IDLE,0", Some(HatLine::Status(HatStatus::Idle))),
        (
            "c,STATUS,VEND,15.19,17",
            Some(HatLine::VendRequest {
                amount: amount("15.19"),
                item: 17,
            }),
        ),
        ("c,VEND,SUCCESS", Some(HatLine::VendSuccess)),
        ("c,STATUS,IDLE\r", Some(HatLine::Status(HatStatus::Idle))),
    ];
    for (line, want) in session {
        assert_eq!(parse(line), want, "{line:?}");
    }
}

#[test]
fn failures_are_told_apart_from_success_a_keypad_cancel_and_errors_about_nothing_sold() {
    // Qibixx's documented failure, quoted or not.
    assert_eq!(
        parse("c,ERR,VEND 3"),
        Some(HatLine::VendFailed("VEND 3".into()))
    );
    assert_eq!(
        parse("c,ERR,\"VEND 3\""),
        Some(HatLine::VendFailed("VEND 3".into()))
    );
    // The HAT refusing an approval (bad payload, wrong state): nothing vended.
    assert_eq!(
        parse("c,ERR,\"VEND -3\""),
        Some(HatLine::VendFailed("VEND -3".into()))
    );
    assert_eq!(
        parse("c,VEND,FAIL"),
        Some(HatLine::VendFailed("FAIL".into()))
    );
    assert_eq!(parse("c,VEND,"), Some(HatLine::VendFailed("".into())));
    assert_eq!(parse("c,VEND"), None);
    // The customer cancelled on the keypad.
    assert_eq!(parse("c,ERR,VEND 1"), Some(HatLine::SessionCancelled));
    assert_eq!(parse("c,ERR,\"VEND 1\""), Some(HatLine::SessionCancelled));
    // A `C,1` to a device already on: not a failed vend, not a session's end.
    assert_eq!(
        parse("c,ERR,\"cashless is on\""),
        Some(HatLine::Error("cashless is on".into()))
    );
    assert_eq!(
        parse("c,ERR,\"START -3\""),
        Some(HatLine::Error("START -3".into()))
    );
    // Its configuration's answer is nothing to act on.
    assert_eq!(parse("c,SET,OK"), None);
}

#[test]
fn commands_are_the_documented_lines_and_echo_the_amount_exactly() {
    assert_eq!(HatCommand::Enable.line(), "C,1");
    assert_eq!(HatCommand::Disable.line(), "C,0");
    assert_eq!(HatCommand::Deny.line(), "C,VEND,-1");
    assert_eq!(HatCommand::Stop.line(), "C,STOP");
    assert_eq!(HatCommand::AlwaysIdle.line(), "C,SETCONF,mdb-always-idle=1");
    assert_eq!(HatCommand::Approve(amount("15.19")).line(), "C,VEND,15.19");
    assert_eq!(HatCommand::Approve(amount("2.05")).line(), "C,VEND,2.05");
    assert_eq!(HatCommand::Approve(amount("150")).line(), "C,VEND,150");
}

#[test]
fn malformed_and_hostile_lines_are_never_a_vend_request() {
    for line in [
        "c,STATUS,VEND,-1.00,3",
        "c,STATUS,VEND,1e3,3",
        "c,STATUS,VEND,1.,3",
        "c,STATUS,VEND,.5,3",
        "c,STATUS,VEND,1.23456,3",
        "c,STATUS,VEND,9999999999,3",
        "c,STATUS,VEND,1.00,",
        "c,STATUS,VEND,1.00,-3",
        "c,STATUS,VEND,1.00,65536",
        "c,STATUS,VEND,1.00,100000",
        "c,STATUS,VEND,1.00,3,extra",
        "c,STATUS,VEND,1.00",
        "c,STATUS,VEND,１.00,3",
        "C,STATUS,VEND,1.00,3",
        "c,STATUS,VEND,1.00,3 ",
        "",
        "garbage",
    ] {
        assert_eq!(parse(line), None, "{line:?}");
    }
    let long = format!("c,STATUS,VEND,1.00,3{}", ",".repeat(MAX_LINE));
    assert_eq!(parse(&long), None);
}

#[test]
fn the_splitter_bounds_every_line_and_drops_an_overlong_one_whole() {
    let mut s = LineSplitter::default();
    assert_eq!(s.push(b"r,AC"), Vec::<String>::new(), "no line end yet");
    assert_eq!(s.push(b"K\r\nc,1\n\n"), vec!["r,ACK", "c,1"]);
    // A flood without a line end never grows the buffer, and its tail is not a line.
    let flood = vec![b'x'; 100_000];
    assert!(s.push(&flood).is_empty());
    assert!(s.buf.len() <= MAX_LINE);
    assert_eq!(
        s.push(b"c,STATUS,VEND,1.00,3\nc,VEND,SUCCESS\n"),
        vec!["c,VEND,SUCCESS"]
    );
    assert_eq!(s.dropped, 1);
}

#[test]
fn item_numbers_take_mdb_s_whole_sixteen_bits() {
    // Row and column packed into one number (row << 8 | column), as machines send them.
    for (line, item) in [
        ("c,STATUS,VEND,1.00,1289", 1289),
        ("c,STATUS,VEND,1.00,65535", 65535),
        ("c,STATUS,VEND,1.00,0", 0),
    ] {
        assert_eq!(
            parse(line),
            Some(HatLine::VendRequest {
                amount: amount("1.00"),
                item
            }),
            "{line}"
        );
    }
}
