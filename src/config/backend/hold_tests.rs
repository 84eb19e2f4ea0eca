//! `[backend] hold`: its default, its checks, and what check-config says of it.

use crate::config::{Config, HoldMode, Mode};

const BASE: &str = r#"
machine_id = "bar-1"

[[product]]
name = "Cola"
price_sat = 2100
pour_ms = 4000

[gpio]
backend = "mock"
"#;

fn with_backend(backend: &str) -> String {
    format!("{BASE}\n[backend]\n{backend}\n")
}

const CLN: &str =
    "kind = \"cln\"\nrpc_socket = \"/run/lightningd/lightning-rpc\"\nnetwork = \"regtest\"";

#[test]
fn hold_is_auto_by_default_and_check_config_says_what_auto_means_for_the_backend() {
    let c = Config::parse(&with_backend(CLN), "t.toml", Mode::Run).unwrap();
    assert_eq!(c.backend().hold(), HoldMode::Auto);
    let said = c.backend().hold_summary();
    assert!(
        said.starts_with("auto") && said.contains("holdinvoice plugin"),
        "{said}"
    );
    let never = Config::parse(
        &with_backend(&format!("{CLN}\nhold = \"never\"")),
        "t.toml",
        Mode::Run,
    )
    .unwrap();
    assert_eq!(never.backend().hold(), HoldMode::Never);
    assert!(never.backend().hold_summary().contains("before the pour"));
    let always = Config::parse(
        &with_backend(&format!("{CLN}\nhold = \"always\"")),
        "t.toml",
        Mode::Run,
    )
    .unwrap();
    assert!(always
        .backend()
        .hold_summary()
        .contains("does not start unless"));
    // The simulator's auto keeps today's flow (so the simulator behaves as before).
    let sim = Config::parse(&with_backend("kind = \"sim\""), "t.toml", Mode::Sim).unwrap();
    assert_eq!(sim.backend().hold(), HoldMode::Auto);
    assert!(sim.backend().hold_summary().contains("before the pour"));
}

#[test]
fn a_wrong_hold_value_is_refused_at_its_line_and_btcpay_and_lnbits_have_no_hold_key() {
    let text = with_backend(&format!("{CLN}\nhold = \"sometimes\""));
    let e = Config::parse(&text, "t.toml", Mode::Run).unwrap_err();
    let line = text.lines().position(|l| l.starts_with("hold =")).unwrap() + 1;
    assert!(
        e.message.contains("sometimes") || e.message.contains("variant"),
        "{e}"
    );
    assert!(
        e.line == line || e.line == line - 4,
        "the hold line or its table: {e}"
    );
    for other in [
        "kind = \"lnbits\"\nurl = \"https://lnbits.example\"\ninvoice_key = \"k\"\nhold = \"auto\"",
        "kind = \"btcpay\"\nurl = \"https://btcpay.example\"\nstore_id = \"s\"\napi_key = \"k\"\nhold = \"auto\"",
    ] {
        let e = Config::parse(&with_backend(other), "t.toml", Mode::Run).unwrap_err();
        assert!(e.message.contains("unknown field `hold`"), "{e}");
        let c = Config::parse(
            &with_backend(&other.replace("\nhold = \"auto\"", "")),
            "t.toml",
            Mode::Run,
        )
        .unwrap();
        assert_eq!(c.backend().hold(), HoldMode::Never);
        assert!(c.backend().hold_summary().starts_with("not available"));
    }
}
