//! The `lnvend` binary as an operator uses it: `check-config` and `sales`.

use std::process::Command;

fn lnvend() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lnvend"))
}

#[test]
fn check_config_names_file_line_and_field_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("machine.toml");
    let text = include_str!("../examples/sim.toml").replace("price_sat = 3000", "price_sat = 0");
    let line = text.lines().position(|l| l == "price_sat = 0").unwrap() + 1;
    std::fs::write(&path, text).unwrap();
    let out = lnvend()
        .args(["check-config", "--sim", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:{line}:1: product[1].price_sat:",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn check_config_prints_the_effective_config_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("machine.toml");
    let text = format!(
        "{}\n[backend]\nkind = \"lnbits\"\nurl = \"https://lnbits.example\"\ninvoice_key = \"inv-key-SECRET-9\"\n",
        include_str!("../examples/sim.toml").replace("[backend]\nkind = \"sim\"\n", "").replace("backend = \"mock\"\ntrace = \"lnvend-sim-data/pins.jsonl\"", "backend = \"mock\"")
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
                l.record_poured(&sale.id).unwrap();
            } else {
                l.record_owed(&sale.id, "pump: jam").unwrap();
            }
        }
    }
    let path = dir.path().join("m.toml");
    let text = include_str!("../examples/sim.toml")
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
    assert!(csv.starts_with("sale_id,created_utc,product,price_sat,backend,invoice_id,state\n"));
    assert!(csv.contains("\"Cola, cold\""), "{csv}");
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
