//! The command line: `lnvend run | sim | check-config`.

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
