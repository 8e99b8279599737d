//! `tensorcity`: parse the command line and run it; errors become one line on
//! stderr and a non-zero exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tensorcity::cli::Cli::parse();
    match tensorcity::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
