//! `[backend] kind = "nwc"`: the connection URI is read from its file at load, refused with
//! the file, line and field when it is not a NIP-47 URI, and never printed.

use crate::config::{BackendConfig, Config, HoldMode, Mode};

const BASE: &str = r#"
machine_id = "bar-1"

[[product]]
name = "Cola"
price_sat = 2100
pour_ms = 4000

[gpio]
backend = "mock"
"#;

const WALLET: &str = "b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4";
const SECRET: &str = "71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c";

/// Writes the URI file and a config naming it; loads it.
fn load(uri: &str, backend_extra: &str) -> Result<Config, crate::config::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("nwc.uri"), format!("{uri}\n")).unwrap();
    let text = format!(
        "{BASE}\n[backend]\nkind = \"nwc\"\nconnection_uri_file = \"nwc.uri\"\n{backend_extra}"
    );
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path, Mode::Run)
}

#[test]
fn the_uri_is_read_at_load_and_check_config_never_prints_it() {
    let uri =
        format!("nostr+walletconnect://{WALLET}?relay=wss%3A%2F%2Frelay.example&secret={SECRET}");
    let c = load(
        &uri,
        "relays = [\"wss://other.example\"]\nnetwork = \"regtest\"\n",
    )
    .unwrap();
    match c.backend() {
        BackendConfig::Nwc(n) => {
            assert_eq!(n.connection_uri.as_ref().unwrap().expose(), uri);
            assert_eq!(n.relays, ["wss://other.example"]);
            assert_eq!(n.request_timeout_ms, 10_000);
            assert!(!format!("{n:?}").contains(SECRET));
        }
        other => panic!("{other:?}"),
    }
    // Hold invoices when the wallet offers them, unless the operator says otherwise.
    assert_eq!(c.backend().hold(), HoldMode::Auto);
    assert!(c.backend().hold_summary().contains("make_hold_invoice"));
    let never = load(&uri, "hold = \"never\"\n").unwrap();
    assert_eq!(never.backend().hold(), HoldMode::Never);
    assert!(never.backend().hold_summary().starts_with("never"));
    let always = load(&uri, "hold = \"always\"\n").unwrap();
    assert_eq!(always.backend().hold(), HoldMode::Always);
    let printed = c.to_redacted_toml();
    assert!(!printed.contains(SECRET), "{printed}");
    assert!(printed.contains("connection_uri_file"), "{printed}");
    assert!(printed.contains("kind = \"nwc\""), "{printed}");
}

#[test]
fn a_bad_uri_or_relay_names_the_field_and_never_the_secret() {
    let bad = [
        // Not a NIP-47 URI at all (a pasted LNbits key, say).
        SECRET.to_string(),
        format!("nostr+walletconnect://{WALLET}?secret={SECRET}"),
        format!("nostr+walletconnect://{WALLET}?relay=wss://r.example&secret={SECRET}00"),
        format!("nostr+walletconnect://{WALLET}?relay=https://r.example&secret={SECRET}"),
    ];
    for uri in bad {
        let e = load(&uri, "").unwrap_err();
        assert_eq!(e.field, "backend.connection_uri_file", "{e}");
        assert!(e.line > 0, "{e}");
        assert!(!e.to_string().contains(SECRET), "{e}");
    }
    let good = format!("nostr+walletconnect://{WALLET}?relay=wss://r.example&secret={SECRET}");
    let e = load(&good, "relays = [\"https://r.example\"]\n").unwrap_err();
    assert_eq!(e.field, "backend.relays", "{e}");
    let e = load(&good, "request_timeout_ms = 5\n").unwrap_err();
    assert_eq!(e.field, "backend.request_timeout_ms", "{e}");
    let e = load(&good, "connection_uri = \"x\"\n").unwrap_err();
    assert!(e.message.contains("connection_uri"), "{e}");
}

#[test]
fn a_missing_uri_file_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        format!("{BASE}\n[backend]\nkind = \"nwc\"\nconnection_uri_file = \"missing.uri\"\n");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    let e = Config::load(&path, Mode::Run).unwrap_err();
    assert_eq!(e.field, "backend.connection_uri_file", "{e}");
}

#[test]
fn a_fiat_price_is_refused_at_load_with_its_file_line_and_field() {
    let uri =
        format!("nostr+walletconnect://{WALLET}?relay=wss%3A%2F%2Frelay.example&secret={SECRET}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("nwc.uri"), format!("{uri}\n")).unwrap();
    let text = format!(
        "currency = \"EUR\"\n{}\n[backend]\nkind = \"nwc\"\nconnection_uri_file = \"nwc.uri\"\n",
        BASE.replace("price_sat = 2100", "price_fiat = \"2.50\"")
    );
    let path = dir.path().join("c.toml");
    std::fs::write(&path, &text).unwrap();
    // Without this, the machine would start and every sale would fail at the QR.
    let e = Config::load(&path, Mode::Run).unwrap_err();
    assert_eq!(e.field, "product[0].price_fiat", "{e}");
    assert!(e.message.contains("sats only"), "{e}");
    let line = text
        .lines()
        .position(|l| l.starts_with("price_fiat"))
        .unwrap()
        + 1;
    assert_eq!(e.line, line, "{e}");
    assert!(e.to_string().contains("c.toml"), "{e}");
}
