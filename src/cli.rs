//! The command line: `lnvend run | sim | check-config | pour | pump-off`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, Mode};

#[derive(Parser, Debug)]
#[command(
    name = "lnvend",
    version,
    about = "Lightning-paid drink vending machine controller"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the real machine: touchscreen, GPIO pump, payment backend.
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run the simulator: the same UI, mock GPIO and a simulated Lightning backend
    /// (unless the file names others), plus a control panel.
    Sim {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// No window: commands on standard input, screens on standard output (for scripts).
        #[arg(long)]
        headless: bool,
    },
    /// Print the sales ledger: every sale since a date, with totals and owed credits.
    Sales {
        /// The machine's config (default: the simulator's built-in one, ./lnvend-sim-data).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Only sales created on or after this UTC date (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Comma-separated values instead of a table.
        #[arg(long)]
        csv: bool,
    },
    /// Read an operator PIN (4-8 digits) from standard input and print its hash for
    /// `operator_pin_hash` in the config.
    HashPin,
    /// Check a config file and print the effective configuration (secrets redacted).
    CheckConfig {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Check it as `lnvend sim` would read it instead of `lnvend run`.
        #[arg(long)]
        sim: bool,
    },
    /// Hardware test: run one pump channel for N ms, as a sale would (same watchdog).
    /// Refused above the maximum run time; Ctrl-C stops the pump.
    Pour {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_parser = parse_channel, default_value = "A")]
        channel: crate::pump::Channel,
        #[arg(long, value_name = "N")]
        ms: u64,
    },
    /// Drive every configured bridge pin low (also run by systemd after lnvend stops). Reads
    /// only the file's [gpio] table, so nothing else in it can keep the pins up.
    PumpOff {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

fn parse_channel(s: &str) -> Result<crate::pump::Channel, String> {
    match s {
        "A" | "a" => Ok(crate::pump::Channel::A),
        "B" | "b" => Ok(crate::pump::Channel::B),
        other => Err(format!("{other:?} is not a channel: A or B")),
    }
}

/// Logs: see [`crate::logging`].
pub fn init_logging() {
    crate::logging::init();
}

fn load(path: &std::path::Path, mode: Mode) -> Result<Config, ExitCode> {
    Config::load(path, mode).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(1)
    })
}

/// Runs the command; the exit code says how it went.
pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::CheckConfig { config, sim } => {
            let mode = if sim { Mode::Sim } else { Mode::Run };
            match load(&config, mode) {
                Ok(c) => {
                    print!("{}", c.to_redacted_toml());
                    let system = match mode {
                        // The simulator never waits for the clock; a machine's system is
                        // only asked about for `run`.
                        Mode::Run => crate::clock::sync_source_warning(
                            c.require_clock_sync(),
                            std::path::Path::new("/"),
                        ),
                        Mode::Sim => None,
                    };
                    for w in c.warnings().into_iter().chain(system) {
                        eprintln!("warning: {w}");
                    }
                    eprintln!("hold invoices: {}", c.backend().hold_summary());
                    eprintln!("{}: OK", config.display());
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
        Command::HashPin => {
            let mut line = String::new();
            if std::io::stdin().read_line(&mut line).is_err() {
                eprintln!("error: cannot read the PIN from standard input");
                return ExitCode::from(1);
            }
            match crate::operator::hash_pin(line.trim()) {
                Ok(h) => {
                    println!("operator_pin_hash = \"{h}\"");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Sales { config, since, csv } => {
            let loaded = match &config {
                // A machine's file, or a simulator's file (which may name no backend).
                Some(path) => {
                    Config::load(path, Mode::Run).or_else(|_| Config::load(path, Mode::Sim))
                }
                None => Ok(Config::simulator_default()),
            };
            let cfg = match loaded {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(1);
                }
            };
            let since_us = match since.as_deref().map(crate::timefmt::parse_date_us) {
                None => 0,
                Some(Some(us)) => us,
                Some(None) => {
                    eprintln!("error: --since must be a date like 2026-11-21");
                    return ExitCode::from(1);
                }
            };
            match sales_report(&cfg, since_us, csv) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Run { config } => {
            init_logging();
            let cfg = match load(&config, Mode::Run) {
                Ok(c) => c,
                Err(code) => return code,
            };
            finish(crate::app::run(cfg, Mode::Run))
        }
        Command::Pour {
            config,
            channel,
            ms,
        } => match load(&config, Mode::Run) {
            Ok(cfg) => crate::hwtest::main_pour(&cfg, channel, ms),
            Err(code) => code,
        },
        // Only the [gpio] table: nothing else in the file may keep the pins from going low.
        Command::PumpOff { config } => match Config::load_gpio(&config, Mode::Run) {
            Ok(gpio) => crate::hwtest::main_pump_off(&gpio, &Config::pulse_pins_of(&config)),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Sim { config, headless } => {
            init_logging();
            let cfg = match config {
                Some(path) => match load(&path, Mode::Sim) {
                    Ok(c) => c,
                    Err(code) => return code,
                },
                None => Config::simulator_default(),
            };
            if headless {
                finish(crate::app::run_headless(cfg))
            } else {
                finish(crate::app::run(cfg, Mode::Sim))
            }
        }
    }
}

/// The columns of `lnvend sales --csv`; new ones go at the end, so spreadsheets made from
/// older exports keep their columns. `fiat_amount`/`fiat_currency`: what a fiat-priced sale
/// cost in its currency on the day (empty for a sats price). `poured_ml` is what the sale's
/// pours measured (a timed pour's configured ml), `owed_ml` a short pour's undelivered
/// share; both empty when not known.
pub const CSV_HEADER: &str = "sale_id,created_utc,product,price_sat,backend,invoice_id,state,\
fiat_amount,fiat_currency,poured_ml,owed_ml";

/// The sales report: one line per sale, then totals and owed credits.
pub fn sales_report(
    cfg: &Config,
    since_us: i64,
    csv: bool,
) -> Result<String, crate::ledger::LedgerError> {
    use std::fmt::Write;
    let dir = cfg.data_dir();
    if !dir.join("sales.db").exists() {
        return Ok(if csv {
            format!("{CSV_HEADER}\n")
        } else {
            format!("no sales recorded yet in {}\n", dir.display())
        });
    }
    let ledger = crate::ledger::Ledger::open(&dir)?;
    let rows = ledger.sales_since(since_us, usize::MAX >> 1)?;
    let mut out = String::new();
    let sats = |msat: u64| {
        format!("{}.{:03}", msat / 1000, msat % 1000)
            .trim_end_matches(".000")
            .to_string()
    };
    if csv {
        let _ = writeln!(out, "{CSV_HEADER}");
        let ml = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
        for r in &rows {
            let (fiat_amount, fiat_currency) = r.fiat.clone().unwrap_or_default();
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{}",
                r.sale_id,
                crate::timefmt::format_us(r.created_us),
                csv_field(&r.product),
                sats(r.price_msat),
                r.backend,
                csv_field(&r.invoice_id),
                r.state,
                csv_field(&fiat_amount),
                csv_field(&fiat_currency),
                ml(r.poured_ml),
                ml(r.owed_ml)
            );
        }
        return Ok(out);
    }
    let _ = writeln!(
        out,
        "{:<18} {:<20} {:<16} {:>10} {:>12} {:<8} state",
        "sale", "created (UTC)", "product", "sats", "fiat", "backend"
    );
    for r in &rows {
        let fiat = r
            .fiat
            .as_ref()
            .map(|(a, c)| format!("{a} {c}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<18} {:<20} {:<16} {:>10} {:>12} {:<8} {}",
            r.sale_id.0,
            crate::timefmt::format_us(r.created_us),
            r.product,
            sats(r.price_msat),
            fiat,
            r.backend,
            r.state
        );
    }
    let t = ledger.totals_since(since_us)?;
    let _ = writeln!(out, "\npoured: {} sales, {} sats", t.count, sats(t.msat));
    // What each credit is worth: a partly poured drink owes only its undelivered share,
    // and that is what the operator refunds by hand.
    let owed = ledger.owed()?;
    let owed_msat: u64 = owed.iter().map(|o| o.value().as_msat()).sum();
    let _ = writeln!(
        out,
        "owed credits: {} ({} sats)",
        owed.len(),
        sats(owed_msat)
    );
    for o in owed {
        let _ = writeln!(
            out,
            "  {} {} {}: {}",
            o.sale_id,
            o.product,
            o.value_text(),
            o.reason
        );
    }
    // A refund's claim link stays here (and in the Credits tab) until the operator
    // dismisses it: the menu may have been left before the backend answered.
    let links = ledger.refund_links()?;
    if !links.is_empty() {
        let _ = writeln!(out, "refund links not dismissed: {}", links.len());
        for r in links {
            let _ = writeln!(out, "  {}", r.text());
        }
    }
    Ok(out)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pump::Channel;

    #[test]
    fn sales_show_the_fiat_price_of_the_day_in_the_table_and_the_csv() {
        use crate::backend::{Invoice, InvoiceId};
        use crate::money::{Fiat, Msat, Price};
        use crate::vend::{Product, Sale, SaleId};
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::parse(
            &format!(
                "data_dir = \"{}\"\ncurrency = \"EUR\"\n[[product]]\nname = \"Cola\"\nprice_fiat = \"2.50\"\npour_ms = 4000\n",
                dir.path().display()
            ),
            "t",
            Mode::Sim,
        )
        .unwrap();
        let mut ledger = crate::ledger::Ledger::open(dir.path()).unwrap();
        for (id, price, sat) in [
            (
                "S1700000000-0001",
                Price::Fiat(Fiat::parse("2.50", "EUR").unwrap()),
                2600,
            ),
            (
                "S1700000001-0001",
                Price::Sats(Msat::from_sat(2100).unwrap()),
                2100,
            ),
        ] {
            let sale = Sale {
                id: SaleId(id.into()),
                product: Product {
                    index: 0,
                    name: "Cola".into(),
                    price,
                    pour: std::time::Duration::from_secs(4),
                    channel: Channel::A,
                    sat_bounds: None,
                    volume_ml: None,
                    sold_out: false,
                },
            };
            let invoice = Invoice {
                id: InvoiceId(format!("inv-{id}")),
                bolt11: "lnbcrt1".into(),
                payment_hash: format!("h-{id}"),
                amount: Msat::from_sat(sat).unwrap(),
                expires_at_unix: 2_000_000_000,
            };
            ledger.record_created(&sale, "sim", &invoice).unwrap();
        }
        drop(ledger);
        let csv = sales_report(&cfg, 0, true).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        let fiat_row = lines
            .iter()
            .find(|l| l.starts_with("S1700000000-0001"))
            .unwrap();
        assert!(
            fiat_row.ends_with(",2600,sim,inv-S1700000000-0001,created,2.50,EUR,,"),
            "{fiat_row}"
        );
        let sats_row = lines
            .iter()
            .find(|l| l.starts_with("S1700000001-0001"))
            .unwrap();
        assert!(sats_row.ends_with(",created,,,,"), "{sats_row}");
        let table = sales_report(&cfg, 0, false).unwrap();
        let row = table
            .lines()
            .find(|l| l.starts_with("S1700000000-0001"))
            .unwrap();
        assert!(row.contains("2.50 EUR"), "{table}");
    }

    #[test]
    fn pour_takes_a_channel_defaulting_to_a_and_a_time() {
        let cli =
            Cli::try_parse_from(["lnvend", "pour", "--config", "c.toml", "--ms", "1500"]).unwrap();
        let Command::Pour { channel, ms, .. } = cli.command else {
            panic!("not parsed as pour: {:?}", cli.command)
        };
        assert_eq!((channel, ms), (Channel::A, 1500));
        let cli = Cli::try_parse_from([
            "lnvend",
            "pour",
            "--config",
            "c.toml",
            "--channel",
            "B",
            "--ms",
            "10",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Pour {
                channel: Channel::B,
                ..
            }
        ));
        assert!(
            Cli::try_parse_from(["lnvend", "pour", "--config", "c.toml", "--ms", "-5"]).is_err()
        );
        assert!(Cli::try_parse_from(["lnvend", "pump-off", "--config", "c.toml"]).is_ok());
    }
}
