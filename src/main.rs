//! The `lnvend` binary: parse the command line, hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    lnvend::cli::main(lnvend::cli::Cli::parse())
}
