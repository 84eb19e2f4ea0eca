use super::*;
use crate::mdb::frame::{Control, Word};

fn hex(words: &[Word]) -> String {
    words
        .iter()
        .map(|w| format!("{:02X}{}", w.byte, if w.mode { "*" } else { "" }))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses "12* 00 7E" back into words.
fn words(s: &str) -> Vec<Word> {
    s.split_whitespace()
        .map(|t| {
            let mode = t.ends_with('*');
            let byte = u8::from_str_radix(t.trim_end_matches('*'), 16).unwrap();
            Word { byte, mode }
        })
        .collect()
}

fn vmc_id() -> VmcId {
    VmcId {
        manufacturer: *b"LNV",
        serial: *b"000000000042",
        model: *b"DRINKS-1    ",
        version: 0x0102,
    }
}

fn reader_id() -> ReaderId {
    ReaderId {
        manufacturer: *b"LNV",
        serial: *b"000000000007",
        model: *b"LNVEND      ",
        version: 0x0100,
    }
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
        Command::SetupPrices {
            max: 0x01F4,
            min: 0x0032,
        },
        Command::Poll,
        Command::VendRequest {
            price: 0x0096,
            item: 0x0007,
        },
        Command::VendCancel,
        Command::VendSuccess { item: 0x0007 },
        Command::VendFailure,
        Command::SessionComplete,
        Command::CashSale {
            price: 0x0064,
            item: 0x0003,
        },
        Command::ReaderDisable,
        Command::ReaderEnable,
        Command::ReaderCancel,
        Command::ExpansionRequestId(vmc_id()),
    ]
}

#[test]
fn every_command_round_trips_on_both_addresses() {
    for addr in [Address::Cashless1, Address::Cashless2] {
        for c in all_commands() {
            let w = c.encode(addr);
            assert!(w.len() <= frame::MAX_BLOCK, "{c:?} too long");
            assert_eq!(w[0].byte & 0xF8, addr.base());
            assert_eq!(decode_from_vmc(&w, addr), Ok(FromVmc::Command(c.clone())));
        }
    }
}

/// Command bytes built from the spec's tables (cashless #1), checksum worked by hand.
#[test]
fn commands_encode_to_the_spec_bytes() {
    let cases: [(Command, &str); 9] = [
        (Command::Reset, "10* 10"),
        (Command::Poll, "12* 12"),
        (
            Command::SetupConfig {
                vmc_level: 1,
                columns: 16,
                rows: 2,
                display_info: 1,
            },
            "11* 00 01 10 02 01 25",
        ),
        (
            Command::SetupPrices {
                max: 0x01F4,
                min: 0x0032,
            },
            "11* 01 01 F4 00 32 39",
        ),
        (
            Command::VendRequest {
                price: 0x0096,
                item: 0x0007,
            },
            "13* 00 00 96 00 07 B0",
        ),
        (Command::VendSuccess { item: 7 }, "13* 02 00 07 1C"),
        (Command::SessionComplete, "13* 04 17"),
        (Command::ReaderEnable, "14* 01 15"),
        (Command::ReaderDisable, "14* 00 14"),
    ];
    for (c, bytes) in cases {
        assert_eq!(hex(&c.encode(Address::Cashless1)), bytes, "{c:?}");
        assert_eq!(
            decode_from_vmc(&words(bytes), Address::Cashless1),
            Ok(FromVmc::Command(c))
        );
    }
    // Cashless #2 uses 0x60: READER ENABLE is 64* 01 65.
    assert_eq!(
        hex(&Command::ReaderEnable.encode(Address::Cashless2)),
        "64* 01 65"
    );
}

#[test]
fn other_addresses_and_control_bytes_are_told_apart() {
    // A coin changer poll (0B* 0B) and cashless #2's poll are not ours as cashless #1.
    assert_eq!(
        decode_from_vmc(&words("0B* 0B"), Address::Cashless1),
        Ok(FromVmc::NotOurs { address: 0x0B })
    );
    assert_eq!(
        decode_from_vmc(&words("62* 62"), Address::Cashless1),
        Ok(FromVmc::NotOurs { address: 0x62 })
    );
    assert_eq!(
        decode_from_vmc(&words("AA"), Address::Cashless1),
        Ok(FromVmc::Control(Control::Ret))
    );
}

#[test]
fn malformed_commands_are_errors_not_guesses() {
    let a = Address::Cashless1;
    // Wrong checksum.
    assert!(matches!(
        decode_from_vmc(&words("14* 01 16"), a),
        Err(DecodeError::Frame(FrameError::Checksum { .. }))
    ));
    // VEND REQUEST one byte short.
    assert_eq!(
        decode_from_vmc(&words("13* 00 00 96 00 A9"), a),
        Err(DecodeError::Length {
            what: "VEND REQUEST",
            got: 4,
            want: 5
        })
    );
    // POLL with a stray data byte.
    assert!(matches!(
        decode_from_vmc(&words("12* 01 13"), a),
        Err(DecodeError::Length { what: "POLL", .. })
    ));
    // REVALUE (level 2), an unknown READER subcommand, level 3 32-bit prices, 0x16.
    assert_eq!(
        decode_from_vmc(&words("15* 00 15"), a),
        Err(DecodeError::Unsupported {
            command: 5,
            sub: Some(0)
        })
    );
    assert!(matches!(
        decode_from_vmc(&words("14* 03 17"), a),
        Err(DecodeError::Unsupported { .. })
    ));
    let mut prices = vec![0x11, 0x01];
    prices.extend([0u8; 10]);
    let w = frame::encode_vmc(prices[0], &prices[1..]);
    assert!(matches!(
        decode_from_vmc(&w, a),
        Err(DecodeError::Unsupported { command: 1, .. })
    ));
    assert!(matches!(
        decode_from_vmc(&words("16* 16"), a),
        Err(DecodeError::Unsupported {
            command: 6,
            sub: None
        })
    ));
    // SETUP and VEND without their subcommand byte.
    assert!(matches!(
        decode_from_vmc(&words("13* 13"), a),
        Err(DecodeError::Unsupported { sub: None, .. })
    ));
}

fn all_replies() -> Vec<Reply> {
    vec![
        Reply::JustReset,
        Reply::ReaderConfig(ReaderConfig {
            level: 1,
            country: 0x1978,
            scale: 1,
            decimals: 2,
            max_response_s: 5,
            options: 0,
        }),
        Reply::BeginSession { funds: 0x01F4 },
        Reply::SessionCancelRequest,
        Reply::VendApproved { amount: 0x0096 },
        Reply::VendDenied,
        Reply::EndSession,
        Reply::Cancelled,
        Reply::PeripheralId(reader_id()),
        Reply::Malfunction { code: 0x30 },
        Reply::OutOfSequence,
        Reply::DisplayRequest {
            tenths: 30,
            text: b"Pay with Lightning".to_vec(),
        },
    ]
}

#[test]
fn every_reply_round_trips_alone() {
    for r in all_replies() {
        let resp = Response::Replies(vec![r.clone()]);
        let w = resp.encode();
        assert!(w.last().unwrap().mode, "{r:?} must end with the mode bit");
        assert_eq!(Response::decode(&w), Ok(resp));
    }
    assert_eq!(Response::decode(&Response::Ack.encode()), Ok(Response::Ack));
}

#[test]
fn replies_encode_to_the_spec_bytes() {
    // READER CONFIG DATA with the values Bouni/MateDealer (mdb.c, `cdCfg_t cd`) publishes:
    // level 1, country 1978 (EUR), scale 1, 2 decimals, 5 s, no options.
    let cfg = Response::Replies(vec![all_replies()[1].clone()]);
    assert_eq!(hex(&cfg.encode()), "01 01 19 78 01 02 05 00 9B*");
    let cases: [(Reply, &str); 6] = [
        (Reply::JustReset, "00 00*"),
        (Reply::BeginSession { funds: 0x01F4 }, "03 01 F4 F8*"),
        (Reply::VendApproved { amount: 0x0096 }, "05 00 96 9B*"),
        (Reply::VendDenied, "06 06*"),
        (Reply::EndSession, "07 07*"),
        (Reply::OutOfSequence, "0B 0B*"),
    ];
    for (r, bytes) in cases {
        assert_eq!(hex(&Response::Replies(vec![r.clone()]).encode()), bytes);
        assert_eq!(
            Response::decode(&words(bytes)),
            Ok(Response::Replies(vec![r]))
        );
    }
    // The lone ACK is 00* with no checksum, distinct from JUST RESET (00 00*).
    assert_eq!(hex(&Response::Ack.encode()), "00*");
}

#[test]
fn several_replies_share_a_block() {
    let rs = vec![
        Reply::JustReset,
        all_replies()[1].clone(),
        Reply::EndSession,
    ];
    let resp = Response::Replies(rs);
    assert_eq!(Response::decode(&resp.encode()), Ok(resp));
}

#[test]
fn malformed_replies_are_errors() {
    assert_eq!(
        Response::decode(&words("0C 0C*")),
        Err(DecodeError::UnknownReply(0x0C))
    );
    assert_eq!(
        Response::decode(&words("03 01 04*")),
        Err(DecodeError::Length {
            what: "BEGIN SESSION",
            got: 1,
            want: 2
        })
    );
    assert_eq!(
        Response::decode(&words("02 1E 20*")),
        Err(DecodeError::Display(0))
    );
    let mut long = vec![0x02, 0x1E];
    long.extend([b'x'; 33]);
    let w = frame::encode_peripheral(&long);
    assert_eq!(Response::decode(&w), Err(DecodeError::Display(33)));
    assert!(matches!(
        Response::decode(&words("05 00 96 9C*")),
        Err(DecodeError::Frame(FrameError::Checksum { .. }))
    ));
    assert!(Response::decode(&words("FF*")).is_err());
}

/// A small deterministic generator, so the hostile-input test needs no dependency.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u16 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u16
    }
}

#[test]
fn hostile_bytes_never_panic() {
    let mut g = Lcg(7);
    for _ in 0..20_000 {
        let len = usize::from(g.next() % 40);
        let mut w: Vec<Word> = (0..len)
            .map(|_| Word::from_u16(g.next() & 0x1FF).unwrap())
            .collect();
        let _ = decode_from_vmc(&w, Address::Cashless1);
        let _ = Response::decode(&w);
        // Also with a valid checksum and framing, so the length checks get exercised.
        if let Some(first) = w.first_mut() {
            first.byte = 0x10 | (first.byte & 0x07);
            let bytes: Vec<u8> = w.iter().map(|x| x.byte).collect();
            let _ = decode_from_vmc(
                &frame::encode_vmc(bytes[0], &bytes[1..]),
                Address::Cashless1,
            );
            let _ = Response::decode(&frame::encode_peripheral(&bytes));
        }
    }
}
