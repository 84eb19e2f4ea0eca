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
    },
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
    /// Drive every configured bridge pin low (also run by systemd after lnvend stops).
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
                    eprintln!("{}: OK", config.display());
                    ExitCode::SUCCESS
                }
                Err(code) => code,
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
        Command::PumpOff { config } => match load(&config, Mode::Run) {
            Ok(cfg) => crate::hwtest::main_pump_off(&cfg),
            Err(code) => code,
        },
        Command::Sim { config } => {
            init_logging();
            let cfg = match config {
                Some(path) => match load(&path, Mode::Sim) {
                    Ok(c) => c,
                    Err(code) => return code,
                },
                None => Config::simulator_default(),
            };
            finish(crate::app::run(cfg, Mode::Sim))
        }
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
