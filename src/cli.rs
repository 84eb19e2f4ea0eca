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

/// Logs go to stderr; under journald (JOURNAL_STREAM set) without colours or timestamps,
/// which the journal adds itself.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LNVEND_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if journald {
        builder.with_ansi(false).without_time().init();
    } else {
        builder.init();
    }
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
                    for w in c.warnings() {
                        eprintln!("warning: {w}");
                    }
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
            Ok(gpio) => crate::hwtest::main_pump_off(&gpio),
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

/// The columns of `lnvend sales --csv`. `poured_ml` is what the sale's pours measured (a
/// timed pour's configured ml), `owed_ml` a short pour's undelivered share; both empty when
/// not known.
pub const CSV_HEADER: &str =
    "sale_id,created_utc,product,price_sat,backend,invoice_id,state,poured_ml,owed_ml";

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
        out.push_str(CSV_HEADER);
        out.push('\n');
        let ml = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
        for r in &rows {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{}",
                r.sale_id,
                crate::timefmt::format_us(r.created_us),
                csv_field(&r.product),
                sats(r.price_msat),
                r.backend,
                csv_field(&r.invoice_id),
                r.state,
                ml(r.poured_ml),
                ml(r.owed_ml)
            );
        }
        return Ok(out);
    }
    let _ = writeln!(
        out,
        "{:<18} {:<20} {:<16} {:>10} {:<8} state",
        "sale", "created (UTC)", "product", "sats", "backend"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "{:<18} {:<20} {:<16} {:>10} {:<8} {}",
            r.sale_id.0,
            crate::timefmt::format_us(r.created_us),
            r.product,
            sats(r.price_msat),
            r.backend,
            r.state
        );
    }
    let t = ledger.totals_since(since_us)?;
    let _ = writeln!(out, "\npoured: {} sales, {} sats", t.count, sats(t.msat));
    let owed = ledger.owed()?;
    let owed_msat: u64 = owed.iter().map(|o| o.price_msat).sum();
    let _ = writeln!(
        out,
        "owed credits: {} ({} sats)",
        owed.len(),
        sats(owed_msat)
    );
    for o in owed {
        let _ = writeln!(
            out,
            "  {} {} {} sats: {}",
            o.sale_id,
            o.product,
            sats(o.price_msat),
            o.reason
        );
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
