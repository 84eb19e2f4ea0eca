//! The `lnvend` binary as an operator uses it: `check-config` and `sales`.

use std::process::Command;

/// The simulator's config, without its pictures (they live beside examples/sim.toml, not
/// beside the copy a test writes).
fn sim_toml() -> String {
    include_str!("../examples/sim.toml")
        .lines()
        .filter(|l| !l.starts_with("image = "))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn lnvend() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lnvend"))
}

/// `lnvend check-config --sim` of `text` refuses it, exiting 1 with `expected` (after
/// `file:`) on standard error; returns standard error.
fn refused(text: &str, expected: impl Fn(&std::path::Path) -> String) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("machine.toml");
    std::fs::write(&path, text).unwrap();
    let out = lnvend()
        .args(["check-config", "--sim", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains(&expected(&path)), "{err}");
    err
}

#[test]
fn check_config_names_file_line_and_field_and_exits_1() {
    let text = sim_toml().replace("price_sat = 3000", "price_sat = 0");
    let line = text.lines().position(|l| l == "price_sat = 0").unwrap() + 1;
    refused(&text, |path| {
        format!("{}:{line}:1: product[1].price_sat:", path.display())
    });
}

#[test]
fn check_config_prints_the_effective_config_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("machine.toml");
    let text = format!(
        "{}\n[backend]\nkind = \"lnbits\"\nurl = \"https://lnbits.example\"\ninvoice_key = \"inv-key-SECRET-9\"\n",
        sim_toml().replace("[backend]\nkind = \"sim\"\n", "").replace("backend = \"mock\"\ntrace = \"lnvend-sim-data/pins.jsonl\"", "backend = \"mock\"")
    );
    std::fs::write(&path, text).unwrap();
    let out = lnvend()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("kind = \"lnbits\""), "{stdout}");
    assert!(stdout.contains("<redacted>"));
    assert!(!stdout.contains("SECRET") && !stderr.contains("SECRET"));
    // The PIN hash is a secret too: a 4-digit PIN falls to an offline search of it.
    assert!(
        stdout.contains("operator_pin_hash = \"<redacted>\""),
        "{stdout}"
    );
    assert!(
        !stdout.contains("pbkdf2") && !stderr.contains("pbkdf2"),
        "{stdout}"
    );
}

#[test]
fn sales_lists_every_sale_and_the_owed_credits() {
    use lnvend::backend::{Invoice, InvoiceId};
    use lnvend::ledger::Ledger;
    use lnvend::money::{Msat, Price};
    use lnvend::pump::Channel;
    use lnvend::vend::{Product, Sale, SaleId};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let mut l = Ledger::open(&data).unwrap();
        for (id, poured) in [("S1-A", true), ("S2-B", false)] {
            let sale = Sale {
                id: SaleId(id.into()),
                product: Product {
                    index: 0,
                    name: "Cola, cold".into(),
                    price: Price::Sats(Msat::from_sat(2100).unwrap()),
                    pour: std::time::Duration::from_secs(1),
                    channel: Channel::A,
                    sat_bounds: None,
                    volume_ml: None,
                    sold_out: false,
                },
            };
            let inv = Invoice {
                id: InvoiceId(format!("inv-{id}")),
                bolt11: "lnbcrt1".into(),
                payment_hash: format!("h-{id}"),
                amount: Msat::from_sat(2100).unwrap(),
                expires_at_unix: 0,
            };
            l.record_created(&sale, "sim", &inv).unwrap();
            l.begin_pour(&sale.id, &inv.id).unwrap();
            if poured {
                l.record_pour_ml(&sale.id, &["Cola, cold"], 300).unwrap();
                l.record_poured(&sale.id).unwrap();
            } else {
                l.record_owed(&sale.id, "pump: jam").unwrap();
            }
        }
    }
    let path = dir.path().join("m.toml");
    let text = sim_toml()
        .replace(
            "data_dir = \"lnvend-sim-data\"",
            &format!("data_dir = \"{}\"", data.display()),
        )
        .replace("trace = \"lnvend-sim-data/pins.jsonl\"\n", "");
    std::fs::write(&path, text).unwrap();
    let out = lnvend()
        .args(["sales", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("S1-A") && text.contains("S2-B"), "{text}");
    assert!(text.contains("poured: 1 sales, 2100 sats"), "{text}");
    assert!(text.contains("owed credits: 1 (2100 sats)"), "{text}");
    let out = lnvend()
        .args(["sales", "--csv", "--since", "2000-01-01", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(csv.starts_with(
        "sale_id,created_utc,product,price_sat,backend,invoice_id,state,fiat_amount,fiat_currency,poured_ml,owed_ml\n"
    ));
    assert!(csv.contains("\"Cola, cold\""), "{csv}");
    // The poured sale carries its ml; the owed one has none.
    assert!(
        csv.lines()
            .any(|l| l.starts_with("S1-A,") && l.ends_with(",poured,,,300,")),
        "{csv}"
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("S2-B,") && l.ends_with(",owed,,,,")),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 3);
    let out = lnvend()
        .args(["sales", "--since", "2999-01-01", "--csv", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "nothing since then"
    );
    let out = lnvend()
        .args(["sales", "--since", "soon", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// A machine's file whose payment side is broken in every way `pump-off` must not care
/// about: a missing key file, an unknown key and a wrong type in `[backend]`.
fn broken_backend_config(dir: &std::path::Path, gpio_extra: &str) -> std::path::PathBuf {
    let text = format!(
        r#"machine_id = "pump-off-test"

[[product]]
name = "Cola"
price_sat = 2100
pour_ms = 1500

[gpio]
backend = "mock"
trace = "{d}/pins.jsonl"
{gpio_extra}
[gpio.channel_b]
in3 = 5
in4 = 6
enb = 13

[backend]
kind = "btcpay"
url = 5
store_id = "store"
api_key_file = "{d}/no-such-key"
colour = "blue"
"#,
        d = dir.display()
    );
    let path = dir.join("machine.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn pump_off_drives_every_pin_low_whatever_is_wrong_outside_the_gpio_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = broken_backend_config(dir.path(), "");
    let out = lnvend()
        .args(["pump-off", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let trace = std::fs::read_to_string(dir.path().join("pins.jsonl")).unwrap();
    let mut last = std::collections::BTreeMap::new();
    for line in trace.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        last.insert(v["pin"].as_u64().unwrap(), v["level"].clone());
    }
    let pins: Vec<u64> = last.keys().copied().collect();
    assert_eq!(pins, [5, 6, 13, 18, 23, 24], "{trace}");
    assert!(last.values().all(|l| l == 0), "{trace}");
}

#[test]
fn pump_off_still_refuses_a_broken_gpio_table_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, field) in [
        ("max_run_ms = \"long\"\n", "gpio.max_run_ms"),
        (
            "channel_a = { in1 = 23, in2 = 23, ena = 18 }\n",
            "gpio.channel_a.in2",
        ),
    ] {
        let path = broken_backend_config(dir.path(), extra);
        let text = std::fs::read_to_string(&path).unwrap();
        let line = text.lines().position(|l| l == extra.trim_end()).unwrap() + 1;
        let out = lnvend()
            .args(["pump-off", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("{}:{line}:", path.display())) && stderr.contains(field),
            "{extra}: {stderr}"
        );
    }
}

#[test]
fn check_config_warns_that_the_unit_hides_a_cln_socket_under_home_and_names_the_drop_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("machine.toml");
    let check = |socket: &str| {
        let text = format!(
            "[[product]]\nname = \"Cola\"\nprice_sat = 2100\npour_ms = 1500\n\n\
             [backend]\nkind = \"cln\"\nrpc_socket = \"{socket}\"\nnetwork = \"regtest\"\n"
        );
        std::fs::write(&path, text).unwrap();
        let out = lnvend()
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        stderr
    };
    for socket in [
        "/home/bitcoin/.lightning/regtest/lightning-rpc",
        "/root/.lightning/regtest/lightning-rpc",
    ] {
        let stderr = check(socket);
        let warning = stderr
            .lines()
            .find(|l| l.starts_with("warning: "))
            .unwrap_or_else(|| panic!("no warning for {socket}: {stderr}"));
        assert!(
            warning.contains(socket) && warning.contains("cln-socket-under-home.conf"),
            "{warning}"
        );
    }
    let stderr = check("/run/lightningd/lightning-rpc");
    // Only the socket's warning is asked about: the host's own time service may earn one
    // of its own (clock::sync_source_warning).
    assert!(!stderr.contains("warning: backend.rpc_socket"), "{stderr}");
}

/// The package's postinst, run with every command it calls replaced by a stub that logs it:
/// a group this system lacks is made, and lnvend joins every device group.
#[test]
fn postinst_makes_missing_device_groups_and_puts_lnvend_in_each() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    let stub = |name: &str, body: &str| {
        let path = dir.path().join(name);
        let script = format!(
            "#!/bin/sh\necho \"{name} $*\" >> '{}'\n{body}\n",
            log.display()
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    // This system has the user, and the groups video and input but not gpio or render.
    stub(
        "getent",
        "case \"$1 $2\" in \"group gpio\"|\"group render\") exit 2;; *) exit 0;; esac",
    );
    for name in ["adduser", "addgroup", "chown", "chmod", "systemctl"] {
        stub(name, "exit 0");
    }
    let out = Command::new("/bin/sh")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/debian/postinst"))
        .arg("configure")
        .env("PATH", dir.path())
        .output()
        .unwrap();
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        out.status.success(),
        "{}\n{calls}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: Vec<&str> = calls
        .lines()
        .filter(|l| l.starts_with("addgroup"))
        .collect();
    assert_eq!(
        made,
        ["addgroup --system gpio", "addgroup --system render"],
        "{calls}"
    );
    for g in ["gpio", "video", "input", "render", "i2c", "spi", "dialout"] {
        assert!(
            calls.lines().any(|l| l == format!("adduser lnvend {g}")),
            "lnvend not added to {g}:\n{calls}"
        );
    }
}

#[test]
fn check_config_refuses_a_pin_hash_with_hostile_rounds_by_its_line_without_printing_it() {
    let sim = sim_toml();
    let line = sim
        .lines()
        .position(|l| l.starts_with("operator_pin_hash"))
        .unwrap()
        + 1;
    let text = sim.replace("pbkdf2-sha256$50000$", "pbkdf2-sha256$4000000000$");
    let started = std::time::Instant::now();
    let err = refused(&text, |path| {
        format!(
            "{}:{line}:1: operator_pin_hash: 4000000000 PBKDF2 rounds",
            path.display()
        )
    });
    assert!(!err.contains("db0ff46869bf9d3a"), "no salt or hash: {err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn sim_without_a_config_keeps_its_data_in_lnvend_sim_data_of_the_current_directory() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut child = lnvend()
        .args(["sim", "--headless"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // One sale's invoice, so the ledger holds a row, then quit.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"tap 0\nquit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        dir.path().join("lnvend-sim-data/sales.db").is_file(),
        "the README's ./lnvend-sim-data"
    );
    assert!(
        !dir.path().join("examples").exists(),
        "nothing under ./examples"
    );
}
